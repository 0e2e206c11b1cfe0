package main

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Approval before copying in the console, in a real browser
// (test/browser/console-copies.mjs): an officer asks for a copy of a case's
// export where the Export link was, a second supervisor grants it on the
// Approvals page, and the officer's case then offers the export as a link
// carrying the grant, which downloads once.
func TestConsoleCopyApproval(t *testing.T) {
	node, dir, chromium := browserEnv(t)
	s := start(t, t.TempDir()) // --copy-approval required: the default
	admin := s.token()
	// unitToken sets each user's own password: pw + " of their own".
	const pw = "a long enough test password of their own"
	officer := s.roleToken(admin, "o-copy", "officer")
	s.roleToken(admin, "s-copy", "supervisor")
	if code, body := s.call("POST", "/api/v1/cases", officer, `{"id":"C-COPY","title":"Copies in the console"}`); code != 201 {
		t.Fatalf("file case: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console-copies.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BODYCAM_URL="+s.url, "BODYCAM_CASE=C-COPY", "BODYCAM_CHROMIUM="+chromium,
		"BODYCAM_OFFICER=o-copy", "BODYCAM_OFFICER_PASSWORD="+pw, "BODYCAM_SUPERVISOR=s-copy", "BODYCAM_SUPERVISOR_PASSWORD="+pw)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser test failed (%v):\n%s\nserver log:\n%s", err, out, s.log)
	}
	t.Logf("browser test passed:\n%s", out)
}
