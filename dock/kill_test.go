package dock

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binOut  []byte
)

// bodycamBinary builds cmd/bodycam once for the package's tests (without
// cgo: the agent needs none of it, and the build is quicker).
func bodycamBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bodycam-dock-bin-*")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "bodycam")
		cmd := exec.Command("go", "build", "-tags", "nocgo", "-o", binPath, "github.com/bodycam/bodycam/cmd/bodycam")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		binOut, binErr = cmd.CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("go build bodycam: %v\n%s", binErr, binOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// `bodycam dock` killed with SIGKILL in the middle of an upload resumes,
// when started again, from the server's offset: the same upload, and less
// than twice the file's bytes sent in all.
func TestKillResume(t *testing.T) {
	bin := bodycamBinary(t)
	ts := newTestServer(t)
	cam, state := t.TempDir(), t.TempDir()
	const name = "CAM7_20261201083000_0001.MP4"
	b := media(t, cam, name, 6_000_000, 7)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeText(t, tokenFile, ts.Token+"\n")
	args := []string{"dock", "--server", ts.URL, "--token-file", tokenFile, "--once", "--settle", "10ms",
		"--chunk", "256KiB", "--progress-every", "500ms", cam}

	var out1 bytes.Buffer
	first := exec.Command(bin, append(args, "--rate", "1MB/s")...)
	first.Env = append(os.Environ(), "BODYCAM_STATE_DIR="+state) // the environment sets flags too
	first.Stdout, first.Stderr = &out1, &out1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for ts.received.Load() < 2_000_000 {
		if time.Now().After(deadline) {
			first.Process.Kill()
			first.Wait()
			t.Fatalf("the agent sent %d bytes in 30 s:\n%s", ts.received.Load(), out1.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	killedAt := ts.received.Load()

	// What the killed agent left: the upload's URL and an offset.
	sb, err := os.ReadFile(filepath.Join(state, "state", filepath.Base(cam)+".json"))
	if err != nil {
		t.Fatalf("no state after the kill: %v", err)
	}
	var cs struct {
		Files map[string]entry `json:"files"`
	}
	if err := json.Unmarshal(sb, &cs); err != nil {
		t.Fatal(err)
	}
	if e := cs.Files[name]; e.UploadURL == "" || e.Offset == 0 || e.SHA256 == "" {
		t.Fatalf("state after the kill: %+v", e)
	}

	var out2 bytes.Buffer
	second := exec.Command(bin, append(args, "--state-dir", state)...)
	second.Stdout, second.Stderr = &out2, &out2
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("second run: %v\n%s", err, out2.String())
		}
	case <-time.After(60 * time.Second):
		second.Process.Kill()
		<-done
		t.Fatalf("second run did not finish:\n%s", out2.String())
	}
	total := ts.received.Load()
	t.Logf("killed after %d bytes; %d bytes received in all for a %d-byte file", killedAt, total, len(b))
	if total >= 2*int64(len(b)) || total < int64(len(b)) {
		t.Errorf("received %d bytes in all for a %d-byte file: did not resume", total, len(b))
	}
	if ts.creates.Load() != 1 {
		t.Errorf("%d uploads created, want 1 (resumed)", ts.creates.Load())
	}
	if got := ts.storedFor("CAM7", b); !bytes.Equal(got, b) {
		t.Errorf("stored %d bytes, not the file's", len(got))
	}
	f := reportFile(t, readReport(t, state, filepath.Base(cam)), name)
	if f.State != StateUploaded || !f.Verified || f.Released {
		t.Errorf("report: %+v", f)
	}
}
