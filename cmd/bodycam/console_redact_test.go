package main

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The console's review tools in a real browser (test/browser/console-redact.mjs,
// Chromium driven by playwright-core) on a stored recording published by
// the real ffmpeg: a supervisor plays its review proxy, draws a redaction
// box on the paused picture, submits it, and plays the redacted copy in the
// recording's player, whose picture is black inside the box and not
// outside it; then plays the case's two cameras together, in step by their
// recorded times.
func TestConsoleRedaction(t *testing.T) {
	node, dir, chromium := browserEnv(t)
	s := start(t, t.TempDir(), "--segment-duration", "1s")
	token := s.token()
	const device, user, password = "cam-redact", "sup-redact", "a supervisor's long password"
	pw := s.register(token, device)
	if code, body := s.call("POST", "/api/v1/users", token,
		`{"id":"`+user+`","name":"Sgt. Redact","role":"supervisor","password":"`+password+`"}`); code != 201 {
		t.Fatalf("create the supervisor: %d %s", code, body)
	}
	// A second camera of the same incident, starting a second later.
	const device2 = "cam-redact-2"
	pw2 := s.register(token, device2)
	first := s.publishFFmpeg(device, pw, 5, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac")
	time.Sleep(time.Second)
	second := s.publishFFmpeg(device2, pw2, 5, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac")
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatal(err)
	}
	aud := s.roleToken(token, "aud-redact", "auditor")
	rec := s.waitStored(aud, device)
	rec2 := s.waitStored(aud, device2)
	s.call("GET", "/api/v1/recordings/"+rec.ID+"/media?rendition=proxy", aud, "") // made when first asked for
	s.jobDone(token, rec.ID, "proxy")
	s.roleToken(token, "off-redact", "officer")
	sup := s.roleToken(token, "sup-redact-api", "supervisor")
	if code, body := s.call("POST", "/api/v1/cases", sup, `{"id":"C-SYNC","title":"Two cameras","officer":"off-redact"}`); code != 201 {
		t.Fatalf("file case: %d %s", code, body)
	}
	for _, r := range []string{rec.ID, rec2.ID} {
		if code, body := s.call("POST", "/api/v1/cases/C-SYNC/evidence", sup, `{"recording_id":"`+r+`"}`); code != 201 {
			t.Fatalf("link %s: %d %s", r, code, body)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console-redact.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BODYCAM_URL="+s.url, "BODYCAM_USER="+user, "BODYCAM_PASSWORD="+password,
		"BODYCAM_DEVICE="+device, "BODYCAM_RECORDING="+rec.ID, "BODYCAM_CASE=C-SYNC", "BODYCAM_CHROMIUM="+chromium)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser test failed (%v, after %v):\n%s\nserver log:\n%s", err, time.Since(started).Round(time.Millisecond), out, s.log)
	}
	t.Logf("browser test passed in %v:\n%s", time.Since(started).Round(time.Millisecond), out)
	s.stop()
}
