package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"image/jpeg"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// jobOf is a job as the API lists it.
type jobOf struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	State       string `json:"state"`
	Attempts    int    `json:"attempts"`
	LeaseOwner  string `json:"lease_owner"`
	Error       string `json:"error"`
	RequestedBy string `json:"requested_by"`
}

// posterJob is the recording's poster job, once there is one.
func (s *server) posterJob(token, recording string) (jobOf, bool) {
	s.t.Helper()
	code, body := s.call("GET", "/api/v1/jobs?kind=poster&recording="+recording, token, "")
	var list struct {
		Items []jobOf `json:"items"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		s.t.Fatalf("jobs: %d %s", code, body)
	}
	if len(list.Items) == 0 {
		return jobOf{}, false
	}
	return list.Items[0], true
}

// filesUnder lists the files below dir, relative to it.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// The kill -9 mid-job: a recording is closed, its poster job
// stores the poster and is killed with the server (kill -9) before it
// finishes; after a restart the job runs again (the node ends its own old
// lease at start) and finishes, and exactly one poster (with one signed
// provenance record) exists in the store: the second attempt found the
// first one's object. The poster is a JPEG of the recording's size, its
// provenance names the recording's objects with their catalog hashes and
// verifies with the server's key, and its making and viewing are custody
// events.
func TestKill9MidJob(t *testing.T) {
	dataDir := t.TempDir()
	t.Setenv("BODYCAM_TEST_DERIVE_PAUSE", "10m")
	s := start(t, dataDir, "--segment-duration", "1s")
	token := s.token()
	pw := s.register(token, "cam-j")
	aud := s.roleToken(token, "aud-j", "auditor")
	if err := s.publishFFmpeg("cam-j", pw, 3, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac").Wait(); err != nil {
		t.Fatal(err)
	}
	rec := s.waitStored(aud, "cam-j")
	waitUntil(t, 30*time.Second, "the poster job paused mid-job", func() bool {
		j, ok := s.posterJob(token, rec.ID)
		return ok && j.State == "running" && strings.Contains(s.log.String(), "pausing mid-job")
	})
	derived := filepath.Join(dataDir, "objects", "derived")
	if files := filesUnder(t, derived); len(files) != 1 || !strings.HasSuffix(files[0], ".jpg") {
		t.Fatalf("before the kill: %v, want the poster stored and nothing else", files)
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done

	t.Setenv("BODYCAM_TEST_DERIVE_PAUSE", "")
	s2 := start(t, dataDir, "--segment-duration", "1s")
	var job jobOf
	waitUntil(t, 60*time.Second, "the poster job done after the restart", func() bool {
		var ok bool
		job, ok = s2.posterJob(token, rec.ID)
		return ok && job.State == "done"
	})
	if job.Attempts != 2 || job.RequestedBy != "system" || !strings.Contains(s2.log.String(), "jobs this node held when it stopped run again") {
		t.Fatalf("job after the restart: %+v", job)
	}
	files := filesUnder(t, derived)
	var jpgs, provs, sigs int
	for _, f := range files {
		switch {
		case strings.HasSuffix(f, ".jpg"):
			jpgs++
		case strings.HasSuffix(f, ".provenance.json"):
			provs++
		case strings.HasSuffix(f, ".provenance.json.sig"):
			sigs++
		}
	}
	if jpgs != 1 || provs != 1 || sigs != 1 || len(files) != 3 {
		t.Fatalf("derived objects after the restart: %v; want exactly one poster, its provenance and signature", files)
	}

	// The derived list, with the provenance and its signature.
	code, body := s2.call("GET", "/api/v1/recordings/"+rec.ID+"/derived", aud, "")
	var list struct {
		Items []struct {
			Kind          string `json:"kind"`
			Key           string `json:"key"`
			SHA256        string `json:"sha256"`
			JobID         string `json:"job_id"`
			ProvenanceKey string `json:"provenance_key"`
			Signature     []byte `json:"provenance_signature"`
		} `json:"items"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Items) != 1 || list.Items[0].JobID != job.ID {
		t.Fatalf("derived: %d %s", code, body)
	}
	d := list.Items[0]
	provBytes, err := os.ReadFile(filepath.Join(dataDir, "objects", d.ProvenanceKey))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		KeyID   string `json:"signing_key_id"`
		JobID   string `json:"job_id"`
		Sources []struct {
			Key, SHA256 string
		} `json:"sources"`
		Output struct {
			Key, SHA256 string
		} `json:"output"`
		Software map[string]string `json:"software"`
	}
	if err := json.Unmarshal(provBytes, &prov); err != nil {
		t.Fatal(err)
	}
	_, body = s2.call("GET", "/api/v1/keys", "", "")
	var keys struct {
		Items []struct {
			ID        string `json:"id"`
			PublicKey []byte `json:"public_key"`
		} `json:"items"`
	}
	json.Unmarshal([]byte(body), &keys)
	verified := false
	for _, k := range keys.Items {
		if k.ID == prov.KeyID && ed25519.Verify(k.PublicKey, provBytes, d.Signature) {
			verified = true
		}
	}
	if !verified {
		t.Fatalf("the provenance signature does not verify with key %s: %s", prov.KeyID, provBytes)
	}
	_, recBody := s2.call("GET", "/api/v1/recordings/"+rec.ID, aud, "")
	if prov.Output.Key != d.Key || prov.Output.SHA256 != d.SHA256 || len(prov.Sources) != 2 || prov.JobID != job.ID ||
		!strings.Contains(prov.Software["ffmpeg"], "libavcodec") || prov.Software["bodycam"] == "" {
		t.Fatalf("provenance: %s", provBytes)
	}
	for _, src := range prov.Sources {
		if !strings.Contains(recBody, src.Key) || !strings.Contains(recBody, src.SHA256) {
			t.Fatalf("provenance source %s %s is not the recording's object: %s", src.Key, src.SHA256, recBody)
		}
	}
	// The poster: a JPEG of the recording's picture size, not blank.
	code, body = s2.call("GET", "/api/v1/recordings/"+rec.ID+"/poster", aud, "")
	if code != 200 {
		t.Fatalf("poster: %d %s", code, body)
	}
	img, err := jpeg.Decode(bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatalf("poster is not a JPEG: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X != 640 || sz.Y != 360 {
		t.Fatalf("poster %v, want 640x360", sz)
	}
	colours := map[uint32]bool{}
	for y := 0; y < 360; y += 20 {
		for x := 0; x < 640; x += 20 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[(r>>13)<<6|(g>>13)<<3|b>>13] = true
		}
	}
	if len(colours) < 6 {
		t.Fatalf("the poster has %d colours: not the test pattern", len(colours))
	}
	code, body = s2.call("POST", "/api/v1/custody/verify", aud, "")
	if code != 200 || !strings.Contains(body, `"ok": true`) {
		t.Fatalf("custody verify: %d %s", code, body)
	}
	s2.stop()
	cat, err := catalog.Open(context.Background(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	events, err := cat.CustodyEvents(context.Background(), catalog.CustodyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	made, viewed := 0, 0
	for _, e := range events {
		if e.TargetID != rec.ID {
			continue
		}
		if e.Action == evidence.ActionDerived && e.Actor == "jobs" && strings.Contains(e.Detail, d.Key) && strings.Contains(e.Detail, d.SHA256) {
			made++
		}
		if e.Action == evidence.ActionPlayback && e.Actor == "aud-j" && strings.Contains(e.Detail, "poster "+d.Key) {
			viewed++
		}
	}
	if made != 1 || viewed != 1 {
		t.Fatalf("custody: %d derived events, %d poster viewings; want 1 and 1", made, viewed)
	}
}
