package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
)

// runBinary runs the built bodycam and returns its exit code and output.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// zipFiles reads a zip into name -> bytes, in order.
func zipFiles(t *testing.T, b []byte) ([]string, map[string][]byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
	}
	return names, out
}

// From the recorder to the court: an officer's camera records, the officer
// files a case and links the footage, an auditor exports the case, and the
// export checks out offline with `bodycam verify` and standard tools; its
// derived copy plays; a flipped byte is found and named.
func TestCaseExportEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, "--segment-duration", "2s")
	admin := s.token()
	officer := s.roleToken(admin, "o-1", "officer")
	auditor := s.roleToken(admin, "aud-1", "auditor")
	supervisor := s.roleToken(admin, "s-1", "supervisor")
	code, body := s.call("POST", "/api/v1/devices", admin, `{"id":"cam-x","name":"Chest cam","officer_id":"o-1"}`)
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	var dev struct {
		Password string `json:"rtsp_password"`
	}
	json.Unmarshal([]byte(body), &dev)
	ff := s.publishFFmpeg("cam-x", dev.Password, 6, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac")
	ff.Wait()

	rec := s.waitStored(officer, "cam-x")
	if rec.SegmentCount < 3 {
		t.Fatalf("recording %+v: want an init and at least 2 media segments", rec)
	}
	if code, body := s.call("POST", "/api/v1/cases", officer, `{"id":"C-1","title":"Traffic stop, Main St"}`); code != 201 {
		t.Fatalf("file case: %d %s", code, body)
	}
	if code, body := s.call("POST", "/api/v1/cases/C-1/evidence", officer, `{"recording_id":"`+rec.ID+`","note":"the stop"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}

	// Approval before copying (the default): the auditor asks, a
	// supervisor grants, the export carries the grant.
	grant := s.grantCopy(auditor, supervisor, `{"kind":"case","id":"C-1","reason":"court bundle for the hearing"}`)
	req, _ := http.NewRequest("GET", s.url+"/api/v1/cases/C-1/export", nil)
	req.Header.Set("Authorization", "Bearer "+auditor)
	req.Header.Set("X-Bodycam-Grant", grant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	zipBytes, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="case-C-1.zip"` {
		t.Fatalf("export: %d %v %v %.300s", resp.StatusCode, resp.Header, err, zipBytes)
	}
	work := t.TempDir()
	zipPath := filepath.Join(work, "case.zip")
	os.WriteFile(zipPath, zipBytes, 0o644)

	// bodycam verify, offline: exit 0; --json parses; --key pins the
	// server's published key.
	code, out := runBinary(t, "verify", zipPath)
	if code != 0 || !strings.Contains(out, "OK: every check passed") {
		t.Fatalf("verify of a good export: exit %d\n%s", code, out)
	}
	t.Logf("bodycam verify:\n%s", out)
	code, out = runBinary(t, "verify", zipPath, "--json")
	var rep export.Report
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || !rep.OK || rep.CaseID != "C-1" || rep.ExportedBy != "aud-1" ||
		rep.Checked.Recordings != 1 || rep.Checked.Segments != rec.SegmentCount || rep.Checked.Manifests != 1 || rep.Checked.Derived != 1 {
		t.Fatalf("verify --json: exit %d, %v\n%s", code, err, out)
	}
	pems, _ := filepath.Glob(filepath.Join(dataDir, "keys", "public", "*.pem"))
	if len(pems) != 1 {
		t.Fatalf("public keys: %v", pems)
	}
	if code, out := runBinary(t, "verify", "--key", pems[0], zipPath); code != 0 || !strings.Contains(out, "trusted key") {
		t.Fatalf("verify --key: exit %d\n%s", code, out)
	}

	// The layout, the derived copy plays, the export is in the excerpt.
	names, files := zipFiles(t, zipBytes)
	dir := "recordings/" + rec.ID + "/"
	for _, want := range []string{"README.txt", "case.json", "custody.json", dir + "init.mp4", dir + "000001.m4s", dir + "manifest.json",
		dir + "manifest.json.sig", dir + "recording.json", dir + "derived/playable.mp4", "SHA256SUMS", "SHA256SUMS.sig"} {
		if !slices.Contains(names, want) {
			t.Fatalf("the export lacks %s: %v", want, names)
		}
	}
	playable := filepath.Join(work, "playable.mp4")
	os.WriteFile(playable, files[dir+"derived/playable.mp4"], 0o644)
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", playable, "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("derived/playable.mp4 does not decode cleanly: %v %s", err, out)
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", playable).Output()
	if d, _ := strconv.ParseFloat(strings.TrimSpace(string(probe)), 64); err != nil || d < 4 {
		t.Fatalf("derived/playable.mp4 duration %q (%v), want about 6 s", probe, err)
	}
	var x evidence.Excerpt
	if err := json.Unmarshal(files["custody.json"], &x); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range x.Events {
		actions = append(actions, e.Action+"/"+e.Actor)
	}
	for _, want := range []string{"ingest/device:cam-x", "case_create/o-1", "link/o-1", "hold/o-1", "export/aud-1"} {
		if !slices.Contains(actions, want) {
			t.Fatalf("custody excerpt lacks %s: %v", want, actions)
		}
	}

	// The README's standard tools, on the real server key.
	ext := filepath.Join(work, "x")
	if out, err := exec.Command("unzip", "-q", zipPath, "-d", ext).CombinedOutput(); err != nil {
		t.Fatalf("unzip: %v %s", err, out)
	}
	keyID := strings.TrimSuffix(filepath.Base(pems[0]), ".pem")
	for _, cmd := range []string{
		"openssl pkeyutl -verify -pubin -inkey keys/" + keyID + ".pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig",
		"openssl pkeyutl -verify -pubin -inkey keys/" + keyID + ".pem -rawin -in " + dir + "manifest.json -sigfile " + dir + "manifest.json.sig",
		"sha256sum -c --quiet SHA256SUMS",
	} {
		c := exec.Command("bash", "-c", cmd)
		c.Dir = ext
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", cmd, err, out)
		}
	}

	// One flipped byte in a segment: exit 1, the segment named.
	seg := dir + "000002.m4s"
	var tampered bytes.Buffer
	zw := zip.NewWriter(&tampered)
	for _, n := range names {
		d := files[n]
		if n == seg {
			d = slices.Clone(d)
			d[len(d)/2] ^= 0x10
		}
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
		w.Write(d)
	}
	zw.Close()
	bad := filepath.Join(work, "tampered.zip")
	os.WriteFile(bad, tampered.Bytes(), 0o644)
	code, out = runBinary(t, "verify", bad)
	if code != 1 || !strings.Contains(out, seg+": segment seq 2 does not match") || !strings.Contains(out, seg+": content does not match SHA256SUMS") {
		t.Fatalf("verify of a tampered export: exit %d\n%s", code, out)
	}
	t.Logf("bodycam verify (tampered):\n%s", out)
	s.stop()
}
