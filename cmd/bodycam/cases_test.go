package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/storage/dir"
)

// A recorder that publishes with ?case= has its recording linked to that
// case from its first byte: the link is the device's, in the custody
// ledger with the ingest, and every stored object is on legal hold.
func TestPublishedForCase(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, "--segment-duration", "1s")
	admin := s.token()
	officer := s.roleToken(admin, "o-1", "officer")
	code, body := s.call("POST", "/api/v1/devices", admin, `{"id":"cam-c2","officer_id":"o-1"}`)
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	var dev struct {
		Password string `json:"rtsp_password"`
	}
	json.Unmarshal([]byte(body), &dev)
	if code, body := s.call("POST", "/api/v1/cases", officer, `{"id":"C-7","title":"Street vending"}`); code != 201 {
		t.Fatalf("file the case: %d %s", code, body)
	}
	ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
		"-pix_fmt", "yuv420p", "-f", "rtsp", "-rtsp_transport", "tcp",
		fmt.Sprintf("rtsp://cam-c2:%s@%s/cam-c2?case=C-7", dev.Password, s.arg("--rtsp-addr")))
	if out, err := ff.CombinedOutput(); err != nil {
		t.Fatalf("publish: %v %s", err, out)
	}
	rec := s.waitStored(officer, "cam-c2")
	if rec.CaseID != "C-7" {
		t.Fatalf("recording's case %q", rec.CaseID)
	}
	_, body = s.call("GET", "/api/v1/cases/C-7", officer, "")
	if !strings.Contains(body, `"recording_id": "`+rec.ID+`"`) || !strings.Contains(body, `"linked_by": "device:cam-c2"`) ||
		!strings.Contains(body, `"active": true`) {
		t.Fatalf("the case does not hold the recording from its first byte: %s", body)
	}
	_, body = s.call("GET", "/api/v1/cases/C-7/custody", officer, "")
	for _, want := range []string{`"action": "link"`, `"action": "ingest"`, `"actor": "device:cam-c2"`} {
		if !strings.Contains(body, want) {
			t.Fatalf("custody lacks %s: %s", want, body)
		}
	}
	// Every viewing is in the case's custody, whatever its Range (finding 2:
	// these three returned the whole recording and left no record).
	_, whole := s.call("GET", "/api/v1/recordings/"+rec.ID+"/media", officer, "")
	for i, rg := range []string{"bytes=-999999999", "bytes= 0-", "bytes=1-,0-"} {
		viewer := fmt.Sprintf("aud-%d", i)
		tok := s.roleToken(admin, viewer, "auditor")
		req, _ := http.NewRequest("GET", s.url+"/api/v1/recordings/"+rec.ID+"/media", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Range", rg)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 || string(b) != whole {
			t.Fatalf("Range %q: %d, %d bytes of %d", rg, resp.StatusCode, len(b), len(whole))
		}
		_, body = s.call("GET", "/api/v1/cases/C-7/custody", officer, "")
		if n := strings.Count(body, `"actor": "`+viewer+`"`); n != 1 || !strings.Contains(body, "Range "+rg) {
			t.Fatalf("Range %q: %d custody events of %s: %s", rg, n, viewer, body)
		}
	}
	// Every stored object of the recording is on legal hold.
	_, body = s.call("GET", "/api/v1/recordings/"+rec.ID, officer, "")
	var full struct {
		Segments []struct {
			Key string `json:"key"`
		} `json:"segments"`
	}
	json.Unmarshal([]byte(body), &full)
	store, err := dir.Open(filepath.Join(dataDir, "objects"), dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Segments) < 3 {
		t.Fatalf("segments: %s", body)
	}
	for _, sg := range full.Segments {
		if st, err := store.Stat(context.Background(), sg.Key); err != nil || !st.LegalHold {
			t.Fatalf("%s: %+v, %v; want a legal hold", sg.Key, st, err)
		}
	}
	s.stop()
}

// The attack of issue 10 (finding 1): a recorder publishing with ?case= of a
// case its officer may not change (another unit's) is recorded all the
// same, but linked to nothing: the case's people gain no access to it, the
// recording and its signed manifest name no case, and the refusal is a
// custody event and a metric. Both ways round: cam-a (unit a) into unit b's
// case, cam-b (unit b) into unit a's.
func TestPublishedForForeignCase(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, "--segment-duration", "1s")
	admin := s.token()
	oa := s.unitToken(admin, "o-a", "officer", "a")
	ob := s.unitToken(admin, "o-b", "officer", "b")
	sb := s.unitToken(admin, "s-b", "supervisor", "b")
	aud := s.unitToken(admin, "aud", "auditor", "")
	secrets := map[string]string{}
	for dev, officer := range map[string]string{"cam-a": "o-a", "cam-b": "o-b"} {
		code, body := s.call("POST", "/api/v1/devices", admin, `{"id":"`+dev+`","officer_id":"`+officer+`"}`)
		if code != 201 {
			t.Fatalf("register %s: %d %s", dev, code, body)
		}
		var d struct {
			Password string `json:"rtsp_password"`
		}
		json.Unmarshal([]byte(body), &d)
		secrets[dev] = d.Password
	}
	for token, c := range map[string]string{ob: "INC-1001", oa: "C-A1"} {
		if code, body := s.call("POST", "/api/v1/cases", token, `{"id":"`+c+`","title":"t"}`); code != 201 {
			t.Fatalf("file %s: %d %s", c, code, body)
		}
	}
	var wg sync.WaitGroup
	for dev, c := range map[string]string{"cam-a": "INC-1001", "cam-b": "C-A1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
				"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
				"-pix_fmt", "yuv420p", "-f", "rtsp", "-rtsp_transport", "tcp",
				fmt.Sprintf("rtsp://%s:%s@%s/%s?case=%s", dev, secrets[dev], s.arg("--rtsp-addr"), dev, c))
			if out, err := ff.CombinedOutput(); err != nil {
				t.Errorf("publish %s: %v %s", dev, err, out)
			}
		}()
	}
	wg.Wait()
	recA, recB := s.waitStored(aud, "cam-a"), s.waitStored(aud, "cam-b")
	for _, rec := range []storedRecording{recA, recB} {
		if rec.CaseID != "" || rec.SegmentCount < 2 || rec.State != "complete" {
			t.Fatalf("recording %+v: want it complete, in no case", rec)
		}
		// The signed manifest names no case either.
		b, err := os.ReadFile(filepath.Join(dataDir, "objects", rec.ManifestKey))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			CaseID string `json:"case_id"`
		}
		if json.Unmarshal(b, &m); m.CaseID != "" {
			t.Fatalf("manifest of %s names case %q", rec.ID, m.CaseID)
		}
	}
	for token, c := range map[string]string{ob: "INC-1001", oa: "C-A1"} {
		if code, body := s.call("GET", "/api/v1/cases/"+c, token, ""); code != 200 || strings.Contains(body, "recording_id") {
			t.Fatalf("case %s holds footage it was not given: %s", c, body)
		}
	}
	// o-b and o-b's supervisor still cannot read o-a's footage, and o-b
	// cannot link it either.
	for who, token := range map[string]string{"o-b": ob, "s-b": sb} {
		if code, body := s.call("GET", "/api/v1/recordings/"+recA.ID+"/media", token, ""); code != 404 {
			t.Fatalf("%s reads cam-a's footage: %d %s", who, code, body)
		}
	}
	if code, body := s.call("POST", "/api/v1/cases/INC-1001/evidence", ob, `{"recording_id":"`+recA.ID+`"}`); code != 400 {
		t.Fatalf("o-b links cam-a's footage: %d %s", code, body)
	}
	_, metrics := s.call("GET", "/metrics", "", "")
	if !strings.Contains(metrics, `bodycam_case_links_total{by="device",op="link",outcome="denied"} 2`) {
		t.Fatalf("refused device links not counted:\n%s", grepLines(metrics, "bodycam_case_links_total"))
	}
	s.stop()
	// The ledger has each refusal, by the device, naming why.
	cat, err := catalog.Open(context.Background(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	events, err := cat.CustodyEvents(context.Background(), catalog.CustodyFilter{TargetIDs: []string{recA.ID, recB.ID}})
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{}
	for _, e := range events {
		if e.Action == evidence.ActionLink {
			if e.Outcome != evidence.OutcomeDenied || e.CaseID != "" {
				t.Fatalf("link event %+v: want a refusal outside any case", e)
			}
			refused[e.Actor] = e.Detail
		}
	}
	if !strings.Contains(refused["device:cam-a"], "o-a (officer) may not change case INC-1001") ||
		!strings.Contains(refused["device:cam-b"], "o-b (officer) may not change case C-A1") {
		t.Fatalf("refusals in the ledger: %v", refused)
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
