package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// idleConns opens n connections to addr from the loopback address from (a
// client host other than the recorder's 127.0.0.1) and sends nothing on
// them: a scanner or a broken client. It reports, for each, how long after
// its connect the server closed it.
func (s *server) idleConns(from, addr string, n int) <-chan time.Duration {
	s.t.Helper()
	out := make(chan time.Duration, n)
	var wg sync.WaitGroup
	s.t.Cleanup(wg.Wait)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	for i := range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			log := s.log.String()
			s.t.Fatalf("idle connection %d of %d to %s: %v; the server's log ends:\n%s", i+1, n, addr, err, log[max(0, len(log)-3000):])
		}
		start := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			io.Copy(io.Discard, c) // EOF or a reset: the server closed it
			out <- time.Since(start)
		}()
	}
	return out
}

// metricValue reads a metric of the server's /metrics: the sum of its
// samples, whatever their labels.
func (s *server) metricValue(name string) float64 {
	s.t.Helper()
	_, body := s.call("GET", "/metrics", "", "")
	samples := regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+`(?:\{[^}]*\})? (\S+)$`).FindAllStringSubmatch(body, -1)
	if samples == nil {
		s.t.Fatalf("no metric %s", name)
	}
	var sum float64
	for _, m := range samples {
		v, _ := strconv.ParseFloat(m[1], 64)
		sum += v
	}
	return sum
}

// 2,000 idle connections against each port, from one address, while the
// server runs with an ordinary file limit (1,024): a real recorder on
// another address still connects and records completely, the idle
// connections are all closed (the address's cap at once, the rest at the
// request timeout), and the refusals are counted and logged a few lines only.
// Before, they were all accepted and held: the descriptors ran out, and the
// first failed accept stopped the RTSP server.
func TestIdleConnectionFlood(t *testing.T) {
	const (
		flood   = 2000
		timeout = 10 * time.Second // --rtsp-request-timeout's default, and the HTTP server's header timeout
		margin  = 5 * time.Second
	)
	s := startWith(t, launch{wrapper: []string{"prlimit", "--nofile=1024:1024"}}, t.TempDir(), "--segment-duration", "2s")
	limits, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", s.cmd.Process.Pid))
	if !regexp.MustCompile(`Max open files\s+1024\s+1024`).Match(limits) {
		t.Fatalf("the server does not run with a 1024 file limit:\n%s", limits)
	}
	admin := s.token()
	aud := s.roleToken(admin, "aud-1", "auditor")
	secret := s.register(admin, "cam-flood")

	rtspIdle := s.idleConns("127.0.0.2", s.arg("--rtsp-addr"), flood)
	httpIdle := s.idleConns("127.0.0.2", strings.TrimPrefix(s.url, "http://"), flood)
	ff := s.publishFFmpeg("cam-flood", secret, 8, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac")

	for _, p := range []struct {
		name string
		ch   <-chan time.Duration
		cap  int
	}{{"rtsp", rtspIdle, 64}, {"http", httpIdle, 256}} {
		atOnce, atTimeout := 0, 0
		var longest time.Duration
		for range flood {
			d := <-p.ch
			longest = max(longest, d)
			switch {
			case d < 2*time.Second:
				atOnce++
			case d < timeout+margin:
				atTimeout++
			}
		}
		if atOnce+atTimeout != flood || atTimeout != p.cap {
			t.Errorf("%s: of %d idle connections %d were closed at once, %d at the timeout (want the cap, %d), the longest held %v",
				p.name, flood, atOnce, atTimeout, p.cap, longest)
		}
		if got := s.metricValue("bodycam_" + p.name + "_connections_refused_total"); got != float64(flood-p.cap) {
			t.Errorf("%s: %v refusals counted, want %d", p.name, got, flood-p.cap)
		}
		if got := s.metricValue("bodycam_" + p.name + "_connections_timed_out_total"); got < float64(p.cap) {
			t.Errorf("%s: %v time-outs counted, want at least %d", p.name, got, p.cap)
		}
		if got := s.metricValue("bodycam_" + p.name + "_accept_errors_total"); got != 0 {
			t.Errorf("%s: %v accept errors: the server ran out of descriptors", p.name, got)
		}
	}
	if err := ff.Wait(); err != nil {
		t.Fatalf("the recorder failed: %v\n%s", err, s.log)
	}
	rec := s.waitStored(aud, "cam-flood")
	_, v := s.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, "")
	if rec.State != "complete" || rec.SegmentCount < 3 || !strings.Contains(v, `"ok": true`) || !strings.Contains(v, `"gaps": []`) {
		t.Fatalf("the recording made during the flood: %+v\nverify: %s", rec, v)
	}
	refusals := regexp.MustCompile(`connection refused: .*host=127\.0\.0\.2`).FindAllString(s.log.String(), -1)
	if len(refusals) == 0 || len(refusals) > 2*3 {
		t.Errorf("%d refusal lines logged for %d refusals; want a few (at most three per port and minute)", len(refusals), 2*flood-64-256)
	}
	s.stop()
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir and returns
// their paths and a client configuration that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, &tls.Config{RootCAs: pool}
}

// With --http-tls-cert/--http-tls-key the HTTP port speaks HTTPS only (TLS
// 1.2 or later): every answer carries HSTS, the console's session cookie is
// Secure, and plain HTTP on the port gets nothing done.
func TestHTTPS(t *testing.T) {
	certFile, keyFile, clientTLS := selfSigned(t, t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"cert without key", []string{"--http-tls-cert", certFile}, 2},
		{"key without cert", []string{"--http-tls-key", keyFile}, 2},
		{"unreadable pair", []string{"--http-tls-cert", keyFile, "--http-tls-key", certFile}, 1},
	} {
		args := append([]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0", "--rtsp-udp-addr", "",
			"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0"}, tc.args...)
		code, stderr := runOnce(t, args...)
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], "http-tls-cert") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit %d and one line naming http-tls-cert", tc.name, code, stderr, tc.code)
		}
	}

	s := startWith(t, launch{https: clientTLS}, t.TempDir(), "--http-tls-cert", certFile, "--http-tls-key", keyFile)
	admin := s.token()
	for _, path := range []string{"/healthz", "/api/v1/devices", "/no/such/page"} { // 200, 401, 404
		resp, err := s.client.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") {
			t.Errorf("%s (%d): Strict-Transport-Security %q", path, resp.StatusCode, hsts)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("%s: not over TLS 1.2+: %+v", path, resp.TLS)
		}
	}
	// TLS 1.1 is refused.
	old := clientTLS.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, err := tls.Dial("tcp", strings.TrimPrefix(s.url, "https://"), old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake was accepted")
	}
	// The console's sign-in sets a Secure cookie.
	const pw = "a long enough test password"
	if code, body := s.call("POST", "/api/v1/users", admin, `{"id":"sup-1","role":"supervisor","password":"`+pw+`"}`); code != 201 {
		t.Fatalf("create user: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", s.url+"/api/v1/session", strings.NewReader(`{"user":"sup-1","password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", s.url)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cookies := resp.Cookies(); resp.StatusCode != 200 || len(cookies) != 1 || !cookies[0].Secure || !cookies[0].HttpOnly {
		t.Fatalf("sign-in over HTTPS: %d, cookies %v; want one Secure, HttpOnly session cookie", resp.StatusCode, cookies)
	}
	// Plain HTTP on the port: refused, and nothing done.
	plain := "http://" + strings.TrimPrefix(s.url, "https://")
	req, _ = http.NewRequest("POST", plain+"/api/v1/devices", strings.NewReader(`{"id":"cam-plain"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the HTTPS port: %d, want 400", resp.StatusCode)
		}
	}
	if code, _ := s.call("GET", "/api/v1/devices/cam-plain", admin, ""); code != 404 {
		t.Errorf("a device was registered over plain HTTP: %d", code)
	}
	s.stop()
}

// --admin-token-file keeps the token out of the command line (which `ps`
// shows anyone on the machine); a file others can read is refused, and
// giving both settings is a configuration error.
func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "admin-token")
	const token = "a-token-from-a-file-0123456789"
	os.WriteFile(file, []byte(token+"\n"), 0o640)
	base := []string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0", "--rtsp-udp-addr", "",
		"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0"}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"readable by the group", []string{"--admin-token-file", file}, 1},
		{"missing file", []string{"--admin-token-file", filepath.Join(dir, "none")}, 1},
		{"both settings", []string{"--admin-token-file", file, "--admin-token", token}, 2},
	} {
		code, stderr := runOnce(t, append(base, tc.args...)...)
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], "admin-token-file") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit %d and one line naming admin-token-file", tc.name, code, stderr, tc.code)
		}
	}
	os.Chmod(file, 0o600)
	dataDir := t.TempDir()
	s := start(t, dataDir, "--admin-token-file", file)
	if code, body := s.call("POST", "/api/v1/devices", token, `{"id":"cam-1"}`); code != 201 {
		t.Fatalf("the file's token: %d %s", code, body)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.cmd.Process.Pid))
	if strings.Contains(string(cmdline), token) || strings.Contains(s.log.String(), token) {
		t.Fatal("the token is on the command line or in the log")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "admin-token")); err == nil {
		t.Fatal("a token was generated into the data directory besides the file's")
	}
	s.stop()
}
