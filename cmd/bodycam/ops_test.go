package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// --spool-dir puts the spool on a disk of its own: a recording is spooled
// there (and only there), the directory is narrowed to its owner like the
// data directory, and the recording is stored and verifies.
func TestSpoolDir(t *testing.T) {
	dataDir := t.TempDir()
	spoolDir := filepath.Join(t.TempDir(), "fast-disk", "spool")
	if err := os.MkdirAll(spoolDir, 0o755); err != nil { // an operator's directory, open to others
		t.Fatal(err)
	}
	s := start(t, dataDir, "--spool-dir", spoolDir, "--segment-duration", "1s")
	token := s.token()
	pw := s.register(token, "cam-spool")
	aud := s.roleToken(token, "aud-1", "auditor")
	ff := s.publishFFmpeg("cam-spool", pw, 4, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got, _ := filepath.Glob(filepath.Join(spoolDir, "cam-spool", "*", "*.m4s*")); len(got) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live recording is not spooled in --spool-dir:\n%s", s.log)
		}
	}
	if err := ff.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	rec := s.waitStored(aud, "cam-spool")
	if _, body := s.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, ""); !strings.Contains(body, `"ok": true`) {
		t.Fatalf("verify: %s", body)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "spool")); !os.IsNotExist(err) {
		t.Fatalf("the data directory has a spool too: %v", err)
	}
	if st, err := os.Stat(spoolDir); err != nil || st.Mode().Perm() != 0o700 || !strings.Contains(s.log.String(), "spool directory was open to group or others") {
		t.Fatalf("spool directory %v, %v; want it 0700, and said so in the log", st.Mode().Perm(), err)
	}
	if !strings.Contains(s.log.String(), "spool_dir="+spoolDir) {
		t.Fatalf("the start-up line does not say where the spool is:\n%s", s.log)
	}
	s.stop()
}

// The secrets of the scale-out backends come from files: the server
// reaches MinIO and PostgreSQL with them, and no secret is on its command
// line or in its environment. A secret file others can read, or a file
// with its plain twin, stops the start with exit 2 and one line naming the
// setting.
func TestSecretFilesServe(t *testing.T) {
	m := sharedMinIO(t)
	db := testsvc.Postgres(t)
	dir := t.TempDir()
	secret := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const token = "an-admin-token-from-a-file"
	files := []string{"--s3-endpoint", m.Endpoint, "--s3-bucket", "secret-files",
		"--s3-access-key-file", secret("s3-access", m.AccessKey), "--s3-secret-key-file", secret("s3-secret", m.SecretKey),
		"--database-url-file", secret("db", db), "--admin-token-file", secret("token", token)}

	base := []string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0", "--rtsp-udp-addr", "",
		"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0"}
	open := secret("open", m.SecretKey)
	os.Chmod(open, 0o644)
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"readable by others", "s3-secret-key-file", []string{"--s3-endpoint", m.Endpoint, "--s3-access-key", m.AccessKey, "--s3-secret-key-file", open}},
		{"missing", "database-url-file", []string{"--database-url-file", filepath.Join(dir, "none")}},
		{"both", "s3-access-key-file", []string{"--s3-access-key-file", filepath.Join(dir, "s3-access"), "--s3-access-key", m.AccessKey}},
	} {
		code, stderr := runOnce(t, append(base, tc.args...)...)
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "bodycam serve: "+tc.want+": ") ||
			strings.Contains(stderr, m.SecretKey) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and one line naming %s", tc.name, code, stderr, tc.want)
		}
	}

	s := start(t, t.TempDir(), files...)
	if code, body := s.call("GET", "/healthz", "", ""); code != 200 || !strings.Contains(body, `"storage": "ok"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	if code, body := s.call("POST", "/api/v1/devices", token, `{"id":"cam-secret"}`); code != 201 {
		t.Fatalf("register with the file's admin token: %d %s", code, body)
	}
	if !strings.Contains(s.log.String(), "catalog=postgres") {
		t.Fatalf("not on PostgreSQL:\n%s", s.log)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.cmd.Process.Pid))
	environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.cmd.Process.Pid))
	for _, v := range []string{m.SecretKey, db, token} {
		if strings.Contains(string(cmdline), v) || strings.Contains(string(environ), v) || strings.Contains(s.log.String(), v) {
			t.Fatalf("a secret is on the command line, in the environment or in the log")
		}
	}
	s.stop()
}
