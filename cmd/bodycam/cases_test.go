package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
