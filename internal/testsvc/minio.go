// Package testsvc starts and reaches the real backing services that tests run
// against: a MinIO server on a loopback port, and a fresh database on the
// machine's PostgreSQL. A missing service is a test failure, never a skip.
package testsvc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// MinIOVersion is the server that the tests and .ci/run install.
const MinIOVersion = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIO is a minio server owned by a test binary.
type MinIO struct {
	Endpoint  string // 127.0.0.1:port
	AccessKey string
	SecretKey string
	dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// MinIOBinary finds the minio server: $BODYCAM_MINIO_BIN, then PATH, then
// $GOPATH/bin and ~/go/bin.
func MinIOBinary() (string, error) {
	if p := os.Getenv("BODYCAM_MINIO_BIN"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	var dirs []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.Join(string(trimNL(out)), "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "minio")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("minio server binary not found: run `go install %s` (or `bash .ci/run`), or set BODYCAM_MINIO_BIN", MinIOVersion)
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// StartMinIO starts a minio server with its data in a new temporary directory
// and waits until it is ready.
func StartMinIO() (*MinIO, error) { return StartMinIOIn("") }

// StartMinIOIn is StartMinIO with the data directory made under parent
// (the default temporary directory when empty): a benchmark can give MinIO
// a disk of its own.
func StartMinIOIn(parent string) (*MinIO, error) {
	dir, err := os.MkdirTemp(parent, "bodycam-minio-*")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		Endpoint:  "127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "bodycam-test",
		SecretKey: randHex(16),
		dir:       dir,
	}
	if err := m.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return m, nil
}

// Start (re)starts the server on its address and data directory; tests of
// storage outages Stop it and Start it again.
func (m *MinIO) Start() error {
	bin, err := MinIOBinary()
	if err != nil {
		return err
	}
	consolePort, err := FreePort()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(m.dir, "minio.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "server", "--quiet", "--address", m.Endpoint,
		"--console-address", "127.0.0.1:"+strconv.Itoa(consolePort), filepath.Join(m.dir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start minio: %w", err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(m.exited) }()

	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			log, _ := os.ReadFile(filepath.Join(m.dir, "minio.log"))
			return fmt.Errorf("minio exited during start-up: %s", log)
		default:
		}
		resp, err := http.Get("http://" + m.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.Stop()
	return errors.New("minio did not become ready within 60s")
}

// Pid is the running server's process id (0 when stopped).
func (m *MinIO) Pid() int {
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Stop ends the server; its data stays for a later Start.
func (m *MinIO) Stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		<-m.exited
	}
	m.cmd = nil
}

// Close stops the server and removes its data.
func (m *MinIO) Close() {
	m.Stop()
	os.RemoveAll(m.dir)
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
