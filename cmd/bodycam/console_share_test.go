package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/export"
)

// Sharing with a recipient outside in real browsers (test/browser/share.mjs,
// Chromium driven by playwright-core), with approval before copying on (the
// default): a supervisor asks for a copy of the case, another grants it,
// and the first shares one of the case's two recordings (both published by
// the real ffmpeg) from the case page with that grant; a
// recipient in a fresh browser context, with no account, opens the link
// with the one-time code (a wrong one refused), sees and downloads only
// what was shared, and checks the signed receipt with openssl; the share's
// session reaches nothing else; revoked, and expired, the share is refused.
// The downloaded zip verifies offline and holds only the shared recording,
// and the ledger tells every step.
func TestShareInBrowser(t *testing.T) {
	node, dir, chromium := browserEnv(t)
	s := start(t, t.TempDir(), "--segment-duration", "1s")
	token := s.token()
	const user, password = "sup-share", "a supervisor's long password"
	if code, body := s.call("POST", "/api/v1/users", token,
		`{"id":"`+user+`","name":"Sgt. Share","role":"supervisor","password":"`+password+`"}`); code != 201 {
		t.Fatalf("create the supervisor: %d %s", code, body)
	}
	var recs []string
	aud := s.roleToken(token, "aud-share", "auditor")
	for _, device := range []string{"cam-share-1", "cam-share-2"} {
		pw := s.register(token, device)
		if err := s.publishFFmpeg(device, pw, 3, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac").Wait(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, s.waitStored(aud, device).ID)
	}
	s.roleToken(token, "off-share", "officer")
	sup := s.roleToken(token, "sup-share-api", "supervisor")
	if code, body := s.call("POST", "/api/v1/cases", sup, `{"id":"C-SHARE","title":"Shared with the DA","officer":"off-share"}`); code != 201 {
		t.Fatalf("file case: %d %s", code, body)
	}
	for _, r := range recs {
		if code, body := s.call("POST", "/api/v1/cases/C-SHARE/evidence", sup, `{"recording_id":"`+r+`"}`); code != 201 {
			t.Fatalf("link %s: %d %s", r, code, body)
		}
	}

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "share.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BODYCAM_URL="+s.url, "BODYCAM_USER="+user, "BODYCAM_PASSWORD="+password, "BODYCAM_CASE=C-SHARE",
		"BODYCAM_SHARED="+recs[0], "BODYCAM_OTHER="+recs[1], "BODYCAM_APPROVER_TOKEN="+sup, "BODYCAM_CHROMIUM="+chromium, "BODYCAM_OUT="+out)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser test failed (%v, after %v):\n%s\nserver log:\n%s", err, time.Since(started).Round(time.Millisecond), res, s.log)
	}
	t.Logf("browser test passed in %v:\n%s", time.Since(started).Round(time.Millisecond), res)

	// The zip the recipient got verifies offline and holds only the shared
	// recording.
	zip, err := os.ReadFile(filepath.Join(out, "shared.zip"))
	if err != nil {
		t.Fatal(err)
	}
	rep := export.Verify(bytes.NewReader(zip), int64(len(zip)), export.Options{})
	if !rep.OK || rep.Checked.Recordings != 1 || !strings.HasPrefix(rep.ExportedBy, "share:sh-") {
		t.Fatalf("the shared zip does not verify, or holds more than shared: %+v", rep)
	}
	_, custody := s.call("GET", "/api/v1/cases/C-SHARE/custody", sup, "")
	for _, want := range []string{`"action": "share"`, `"action": "share_open"`, `"outcome": "denied"`, `"action": "share_download"`, `"action": "share_revoke"`,
		"sent to the wrong office", "A. Prosecutor", `"action": "copy_use"`} {
		if !strings.Contains(custody, want) {
			t.Errorf("the case's custody record lacks %s", want)
		}
	}
	s.stop()
}
