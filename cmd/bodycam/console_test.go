package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// The operations console in a real browser: Chromium (the Debian package)
// driven by test/browser/console.mjs (Node, playwright-core) against the
// real server and the real ffmpeg publishing H.264 and G.711. It signs in
// with the admin token (a wrong one first; the admin sees who is live but
// may not watch), then as a supervisor (a wrong password first; the admin
// set the password, so the console asks for a new one first, refusing a
// wrong current one), watches
// the device live and checks the picture
// moves at 640x360 with audio, opens a second view and closes one (the
// session is hung up), verifies the live recording, files a case, links the
// recording to it, moves it a step and reads its custody, and finally stops the
// publisher and expects the open view to say the stream ended.
func TestConsole(t *testing.T) {
	node, dir, chromium := browserEnv(t)
	// The console's downloads are plain links here; its copy requests
	// (approval before copying) are TestConsoleCopyApproval's.
	s := start(t, t.TempDir(), "--copy-approval", "off")
	token := s.token()
	const device = "cam-console"
	pw := s.register(token, device)
	// Admins run the system; supervisors watch live.
	const user, password = "sup-console", "a supervisor's long password"
	if code, body := s.call("POST", "/api/v1/users", token,
		`{"id":"`+user+`","name":"Sgt. Console","role":"supervisor","password":"`+password+`"}`); code != 201 {
		t.Fatalf("create the supervisor: %d %s", code, body)
	}
	// The admin then resets it: the console asks for a new one first.
	if code, body := s.call("POST", "/api/v1/users/"+user+"/password", token, `{"password":"`+password+`"}`); code != 204 {
		t.Fatalf("reset the supervisor's password: %d %s", code, body)
	}
	// A supervisor files a case naming an officer in charge.
	const officer = "off-console"
	if code, body := s.call("POST", "/api/v1/users", token,
		`{"id":"`+officer+`","name":"Ofc. Console","role":"officer","password":"an officer's long password"}`); code != 201 {
		t.Fatalf("create the officer: %d %s", code, body)
	}
	ff := s.publishFFmpeg(device, pw, 120, "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30",
		"-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BODYCAM_URL="+s.url, "BODYCAM_TOKEN="+token, "BODYCAM_DEVICE="+device,
		"BODYCAM_USER="+user, "BODYCAM_PASSWORD="+password, "BODYCAM_OFFICER="+officer,
		"BODYCAM_CHROMIUM="+chromium, fmt.Sprintf("BODYCAM_PUBLISHER_PID=%d", ff.Process.Pid))
	// Node and the browser it starts share a process group, ended together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser test failed (%v, after %v):\n%s\nserver log:\n%s", err, time.Since(started).Round(time.Millisecond), out, s.log)
	}
	t.Logf("browser test passed in %v:\n%s", time.Since(started).Round(time.Millisecond), out)
	if m := regexp.MustCompile(`first_frame_ms=(\d+)`).FindSubmatch(out); m != nil {
		t.Logf("click to first decoded frame: %s ms", m[1])
	}
	s.stop()
}
