package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bodycam/bodycam/internal/testsvc"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bodycam-bin-*")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "bodycam")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build bodycam: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if minioServer != nil {
		minioServer.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	minioOnce   sync.Once
	minioServer *testsvc.MinIO
	minioErr    error
)

func sharedMinIO(t *testing.T) *testsvc.MinIO {
	minioOnce.Do(func() { minioServer, minioErr = testsvc.StartMinIO() })
	if minioErr != nil {
		t.Fatalf("this test needs a real MinIO server: %v", minioErr)
	}
	return minioServer
}

// runOnce runs the binary to completion and returns its exit code and stderr.
func runOnce(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

// Bad configuration exits non-zero with one line that names the setting.
func TestBadConfigurationExits(t *testing.T) {
	m := sharedMinIO(t)
	c, _ := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err := c.MakeBucket(context.Background(), "no-lock", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	port, _ := testsvc.FreePort()
	dead := "127.0.0.1:" + strconv.Itoa(port)
	s3 := []string{"--s3-access-key", m.AccessKey, "--s3-secret-key", m.SecretKey}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"--frobnicate"}, 2, "--frobnicate"},
		{"bad url", []string{"--database-url", "mysql://db/x"}, 2, "database-url"},
		{"bad duration", []string{"--segment-duration", "fast"}, 2, "segment-duration"},
		{"unreachable minio", append([]string{"--s3-endpoint", dead}, s3...), 1, "s3-endpoint"},
		{"bucket without object lock", append([]string{"--s3-endpoint", m.Endpoint, "--s3-bucket", "no-lock"}, s3...), 1, "s3-bucket"},
		{"unreachable postgres", []string{"--database-url", "postgres://postgres@" + dead + "/x?sslmode=disable"}, 1, "database-url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0", "--rtsp-udp-addr", "",
				"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0"}, tc.args...)
			code, stderr := runOnce(t, args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and one line naming %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	if code, stderr := runOnce(t, "nonsense"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("unknown command: %d %s", code, stderr)
	}
}

type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	url     string
	client  *http.Client
	dataDir string
	log     *syncBuffer
	done    chan error
}

// syncBuffer collects a child's stderr while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `bodycam serve` and waits for /healthz.
func start(t *testing.T, dataDir string, extra ...string) *server {
	return startWith(t, launch{}, dataDir, extra...)
}

// launch says how to run the server: under a wrapper command (prlimit),
// and speaking HTTPS to clients trusting the given configuration.
type launch struct {
	wrapper []string
	https   *tls.Config // nil: plain HTTP
	bin     string      // "": the binary TestMain built
	// httpPort: the HTTP API's port (0: a free one); a node that others
	// reach at an advertised URL keeps it across a restart.
	httpPort int
}

func startWith(t *testing.T, l launch, dataDir string, extra ...string) *server {
	t.Helper()
	port, _ := testsvc.FreePort()
	if l.httpPort != 0 {
		port = l.httpPort
	}
	rtsp, _ := testsvc.FreePort()
	// No delay before the listeners close on SIGTERM (no load balancer
	// polls /readyz here); TestReadyzWhileDraining sets one.
	args := append([]string{"serve", "--data-dir", dataDir, "--spool-min-free", "1MiB", "--shutdown-delay", "0",
		"--http-addr", "127.0.0.1:" + strconv.Itoa(port), "--rtsp-addr", "127.0.0.1:" + strconv.Itoa(rtsp), "--rtsp-udp-addr", "",
		"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0"}, extra...)
	bin := binary
	if l.bin != "" {
		bin = l.bin
	}
	cmdline := append(append(append([]string{}, l.wrapper...), bin), args...)
	s := &server{t: t, cmd: exec.Command(cmdline[0], cmdline[1:]...), url: "http://127.0.0.1:" + strconv.Itoa(port), client: http.DefaultClient,
		dataDir: dataDir, log: &syncBuffer{}, done: make(chan error, 1)}
	if l.https != nil {
		s.url = "https://127.0.0.1:" + strconv.Itoa(port)
		s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: l.https, ForceAttemptHTTP2: true}}
	}
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { s.cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			t.Fatalf("bodycam exited during start-up: %v\n%s", err, s.log)
		default:
		}
		if resp, err := s.client.Get(s.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("bodycam not healthy within 30s:\n%s", s.log)
	return nil
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("exit after SIGTERM: %v\n%s", err, s.log)
		}
	case <-time.After(20 * time.Second):
		s.t.Fatalf("no exit within 20s of SIGTERM\n%s", s.log)
	}
	if !strings.Contains(s.log.String(), "bodycam stopped") {
		s.t.Fatalf("no orderly stop in the log:\n%s", s.log)
	}
}

func (s *server) call(method, path, token, body string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *server) token() string {
	s.t.Helper()
	path := filepath.Join(s.dataDir, "admin-token")
	st, err := os.Stat(path)
	if err != nil {
		s.t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		s.t.Fatalf("admin-token mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// The embedded default: directory objects, SQLite, generated token and keys.
func TestServeEmbeddedDefault(t *testing.T) {
	dataDir := t.TempDir()
	os.Chmod(dataDir, 0o755) // an operator's directory, open to others: narrowed
	s := start(t, dataDir)
	token := s.token()
	if st, err := os.Stat(dataDir); err != nil || st.Mode().Perm() != 0o700 || !strings.Contains(s.log.String(), "narrowed to its owner") {
		t.Fatalf("data directory %v, %v; want it 0700, and said so in the log", st.Mode().Perm(), err)
	}
	if !strings.Contains(s.log.String(), filepath.Join(dataDir, "admin-token")) {
		t.Fatalf("admin token path not logged:\n%s", s.log)
	}
	if strings.Contains(s.log.String(), token) {
		t.Fatal("the admin token itself is in the log")
	}
	if code, _ := s.call("POST", "/api/v1/devices", "", `{"id":"cam-1"}`); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	code, body := s.call("POST", "/api/v1/devices", token, `{"id":"cam-1","name":"Chest 1","officer_id":"o-9"}`)
	if code != 201 || !strings.Contains(body, "rtsp_password") {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, _ := s.call("POST", "/api/v1/devices", token, `{"id":"cam-1"}`); code != 409 {
		t.Fatalf("duplicate: %d", code)
	}
	code, body = s.call("GET", "/metrics", "", "")
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", "bodycam_http_requests_total", "go_build_info"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
	if code, body := s.call("GET", "/api/v1/openapi.yaml", "", ""); code != 200 || !strings.Contains(body, "/api/v1/devices") {
		t.Fatalf("openapi: %d", code)
	}
	if st, err := os.Stat(filepath.Join(dataDir, "keys", "signing.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v %v", st, err)
	}
	s.stop()

	// A restart keeps the device, the token and the key.
	keysBefore := publicKeyFiles(dataDir)
	s2 := start(t, dataDir)
	if s2.token() != token {
		t.Fatal("token changed across restarts")
	}
	if code, body := s2.call("GET", "/api/v1/devices/cam-1", token, ""); code != 200 || !strings.Contains(body, "Chest 1") {
		t.Fatalf("device after restart: %d %s", code, body)
	}
	if keysAfter := publicKeyFiles(dataDir); keysAfter != keysBefore {
		t.Fatalf("keys changed across restarts: %s vs %s", keysBefore, keysAfter)
	}
	s2.stop()

	// Rotation: the new key signs, the old one is still listed.
	out, err := exec.Command(binary, "keys", "rotate", "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("keys rotate: %v %s", err, out)
	}
	s3 := start(t, dataDir)
	var keys struct {
		Items []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"items"`
	}
	_, body = s3.call("GET", "/api/v1/keys", "", "")
	json.Unmarshal([]byte(body), &keys)
	if len(keys.Items) != 2 || !strings.Contains(keysBefore, keys.Items[0].ID) || keys.Items[0].Current || !keys.Items[1].Current {
		t.Fatalf("after rotation: %s (before: %s)", body, keysBefore)
	}
	s3.stop()
}

// publicKeyFiles lists the public keys on file, which /api/v1/keys serves.
func publicKeyFiles(dataDir string) string {
	files, _ := filepath.Glob(filepath.Join(dataDir, "keys", "public", "*.pem"))
	return strings.Join(files, ",")
}

// The scale-out backends: a real MinIO and a real PostgreSQL.
func TestServeMinIOPostgres(t *testing.T) {
	m := sharedMinIO(t)
	db := testsvc.Postgres(t)
	args := []string{"--s3-endpoint", m.Endpoint, "--s3-access-key", m.AccessKey, "--s3-secret-key", m.SecretKey,
		"--s3-bucket", "serve-test", "--database-url", db, "--admin-token", "an-admin-token-for-tests"}
	s := start(t, t.TempDir(), args...)
	if code, body := s.call("GET", "/healthz", "", ""); code != 200 || !strings.Contains(body, `"storage": "ok"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	if code, body := s.call("POST", "/api/v1/devices", "an-admin-token-for-tests", `{"id":"cam-pg"}`); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	if !strings.Contains(s.log.String(), "catalog=postgres") || !strings.Contains(s.log.String(), "storage=\"s3 ") {
		t.Fatalf("log does not show the backends:\n%s", s.log)
	}
	s.stop()
	// Another node (new data dir) on the same database sees the device.
	s2 := start(t, t.TempDir(), args...)
	if code, _ := s2.call("GET", "/api/v1/devices/cam-pg", "an-admin-token-for-tests", ""); code != 200 {
		t.Fatalf("device on a second node: %d", code)
	}
	s2.stop()
}

// kill -9 mid-stream: on restart the spool is recovered, completed into
// valid segments, uploaded and chained; the recording is interrupted with the
// gap explicit, and the next recording continues the device's chain.
func TestKill9MidStream(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, "--segment-duration", "1s")
	token := s.token()
	code, body := s.call("POST", "/api/v1/devices", token, `{"id":"cam-k"}`)
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	var dev struct {
		Password string `json:"rtsp_password"`
	}
	json.Unmarshal([]byte(body), &dev)
	publish := func(rtspAddr string, seconds int) *exec.Cmd {
		return exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
			"-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-f", "rtsp", "-rtsp_transport", "tcp",
			fmt.Sprintf("rtsp://cam-k:%s@%s/cam-k", dev.Password, rtspAddr))
	}
	ff := publish(s.arg("--rtsp-addr"), 30)
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	ff.Process.Kill()
	ff.Wait()

	s2 := start(t, dataDir, "--segment-duration", "1s")
	aud := s2.roleToken(token, "aud-1", "auditor") // admins read no evidence
	rec := s2.waitStored(aud, "cam-k")
	if rec.State != "interrupted" || rec.SegmentCount < 4 {
		t.Fatalf("recovered recording: %+v", rec)
	}
	_, body = s2.call("GET", "/api/v1/recordings/"+rec.ID, aud, "")
	if !strings.Contains(body, `"kind": "interrupted"`) {
		t.Fatalf("no explicit interrupted gap: %s", body)
	}
	_, body = s2.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, "")
	if !strings.Contains(body, `"ok": true`) {
		t.Fatalf("verify after recovery: %s", body)
	}
	media := filepath.Join(t.TempDir(), "m.mp4")
	resp, err := http.Get(s2.url + "/api/v1/recordings/" + rec.ID + "/media")
	if err == nil {
		resp.Body.Close() // no token: must be refused
		if resp.StatusCode != 401 {
			t.Fatalf("media without a token: %d", resp.StatusCode)
		}
	}
	_, mbody := s2.call("GET", "/api/v1/recordings/"+rec.ID+"/media", aud, "")
	os.WriteFile(media, []byte(mbody), 0o644)
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", media, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("recovered media does not decode cleanly: %v %s", err, out)
	}
	// A new recording continues the chain.
	if out, err := publish(s2.arg("--rtsp-addr"), 2).CombinedOutput(); err != nil {
		t.Fatalf("publish after restart: %v %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body = s2.call("GET", "/api/v1/recordings?device=cam-k&state=complete", aud, "")
		if strings.Contains(body, "manifest_key") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second recording not stored: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	json.Unmarshal([]byte(body), &list)
	_, body = s2.call("POST", "/api/v1/recordings/"+list.Items[0].ID+"/verify", aud, "")
	if !strings.Contains(body, `"ok": true`) {
		t.Fatalf("verify of the next recording (chain continuity): %s", body)
	}
	s2.stop()
}

// A simulated recorder on a bad uplink (--loss): what it loses is counted,
// and (the clip has B-frames) the video it cannot put in order until the
// next keyframe is an explicit undecodable gap; nothing is a discontinuity;
// the recording still verifies.
func TestSimulateLoss(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, "--segment-duration", "2s")
	cmd := exec.Command(binary, "simulate", "--api", s.url, "--data-dir", dataDir, "--devices", "1", "--mode", "clip",
		"--size", "320x240", "--bitrate", "500k", "--duration", "8s", "--prefix", "lossy-", "--loss", "0.03")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	aud := s.roleToken(s.token(), "aud-1", "auditor")
	rec := s.waitStored(aud, "lossy-1")
	_, v := s.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, "")
	if !strings.Contains(v, `"ok": true`) || !strings.Contains(v, `"kind": "undecodable"`) ||
		strings.Contains(v, `"kind": "discontinuity"`) {
		t.Fatalf("verify: %s", v)
	}
	_, metrics := s.call("GET", "/metrics", "", "")
	lost := 0.0
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, "bodycam_ingest_lost_packets_total "); ok {
			lost, _ = strconv.ParseFloat(v, 64)
		}
	}
	if lost == 0 {
		t.Fatal("no lost packets counted")
	}
	s.stop()
}

// arg returns the value the server was started with for a flag.
func (s *server) arg(name string) string {
	for i, a := range s.cmd.Args {
		if a == name && i+1 < len(s.cmd.Args) {
			return s.cmd.Args[i+1]
		}
	}
	return ""
}

// The simulator registers its recorders once, publishes a looping clip, and
// what it publishes is recorded without gaps.
func TestSimulateClip(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, "--segment-duration", "2s")
	cmd := exec.Command(binary, "simulate", "--api", s.url, "--data-dir", dataDir, "--devices", "2", "--mode", "clip",
		"--size", "320x240", "--bitrate", "500k", "--duration", "12s", "--prefix", "sim-")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	aud := s.roleToken(s.token(), "aud-1", "auditor") // admins read no evidence
	for _, dev := range []string{"sim-1", "sim-2"} {
		deadline := time.Now().Add(20 * time.Second)
		var body string
		for {
			_, body = s.call("GET", "/api/v1/recordings?device="+dev, aud, "")
			if strings.Contains(body, "manifest_key") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no finished recording: %s\n%s\n%s", dev, body, out, s.log)
			}
			time.Sleep(200 * time.Millisecond)
		}
		var list struct {
			Items []struct {
				ID           string `json:"id"`
				SegmentCount int    `json:"segment_count"`
			} `json:"items"`
		}
		json.Unmarshal([]byte(body), &list)
		if len(list.Items) != 1 || list.Items[0].SegmentCount < 4 {
			t.Fatalf("%s: %s", dev, body)
		}
		_, v := s.call("POST", "/api/v1/recordings/"+list.Items[0].ID+"/verify", aud, "")
		if !strings.Contains(v, `"ok": true`) || !strings.Contains(v, `"gaps": []`) {
			t.Fatalf("%s verify: %s", dev, v)
		}
	}
	st, err := os.Stat(filepath.Join(dataDir, "simulator.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("simulator state: %v %v", st, err)
	}
	s.stop()
}
