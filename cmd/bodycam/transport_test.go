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
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// The listeners' total caps (TestDescriptorFlood) raised above the
	// per-address ones: this is about one address.
	s := startWith(t, launch{wrapper: []string{"prlimit", "--nofile=1024:1024"}}, t.TempDir(), "--segment-duration", "2s",
		"--http-max-conns", "512", "--rtsp-max-pending", "512")
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

// floodConn is how one connection of an HTTP flood ended, as its client saw it.
type floodConn struct {
	slow     bool          // a POST whose body came a byte every 2 s; else a GET, then idle keep-alive
	answered bool          // the server sent something
	closed   time.Duration // how long after its connect the server closed it; -1: open until the test closed it
}

// httpFlood opens n HTTP connections to the server, spread over the
// addresses from: every other one a POST /api/v1/devices (no credentials)
// announcing a 60,000-byte body that it sends a byte every 2 s, the rest
// a GET /healthz that then keeps the connection idle. Each reports when
// the server closed it; those still open are closed when stop is closed.
func (s *server) httpFlood(from []string, n int, stop <-chan struct{}) <-chan floodConn {
	s.t.Helper()
	out := make(chan floodConn, n)
	var wg sync.WaitGroup
	s.t.Cleanup(wg.Wait)
	addr := strings.TrimPrefix(s.url, "http://")
	for i := range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from[i%len(from)])}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			s.t.Fatalf("HTTP connection %d of %d: %v", i+1, n, err)
		}
		start, slow := time.Now(), i%2 == 0
		req := "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
		if slow {
			req = "POST /api/v1/devices HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"
		}
		c.Write([]byte(req)) // refused ones may fail: the read below sees it
		var byTest atomic.Bool
		done := make(chan struct{})
		wg.Add(3)
		go func() { // the test's end closes what is still open
			defer wg.Done()
			select {
			case <-stop:
				byTest.Store(true)
				c.Close()
			case <-done:
			}
		}()
		go func() { // the dribbled body
			defer wg.Done()
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for slow {
				select {
				case <-done:
					return
				case <-tick.C:
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer close(done)
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			got, _ := io.Copy(io.Discard, c) // EOF or a reset: the server closed it
			fc := floodConn{slow: slow, answered: got > 0, closed: time.Since(start)}
			if byTest.Load() {
				fc.closed = -1
			}
			c.Close()
			out <- fc
		}()
	}
	return out
}

// The file descriptors of a 1,024-file server, attacked from eight
// addresses at once with more connections than it has descriptors: RTSP
// connections that never send a request, HTTP POSTs whose body comes a byte
// every 2 s (refused unread: no credentials) and HTTP keep-alive connections
// left idle. A recording in progress (ffmpeg, 127.0.0.1) goes on, and a new
// recorder connects and records once the RTSP ones have timed out, while the
// HTTP flood still holds: both are stored complete, without gaps. Each
// listener holds at most a quarter of the file limit (256) of them and
// refuses the rest at once; the slow bodies are cut at the 30 s read
// timeout; the server never runs out of descriptors. Before, all were held
// (a body dribbled to a refusal had no deadline at all): accept failed with
// EMFILE, a new publisher timed out, and the recording in progress was ended
// as interrupted when the spool could not open its next segment.
func TestDescriptorFlood(t *testing.T) {
	const (
		perAddrRTSP  = 80
		perAddrHTTP  = 120
		capEach      = 1024 / 4
		readTimeout  = 30 * time.Second // api.Server's ReadTimeout
		rtspTimeout  = 10 * time.Second // --rtsp-request-timeout's default
		atOnce       = 2 * time.Second
		timeoutSlack = 5 * time.Second
	)
	from := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"}
	s := startWith(t, launch{wrapper: []string{"prlimit", "--nofile=1024:1024"}}, t.TempDir(), "--segment-duration", "2s")
	if !regexp.MustCompile(`file_limit=1024 http_max_conns=256 rtsp_max_pending=256`).MatchString(s.log.String()) {
		t.Fatalf("the start-up line does not give the caps derived from a 1024 file limit:\n%s", s.log)
	}
	admin := s.token()
	aud := s.roleToken(admin, "aud-1", "auditor")
	secretA, secretB := s.register(admin, "cam-during"), s.register(admin, "cam-after")
	codec := []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac"}
	during := s.publishFFmpeg("cam-during", secretA, 16, codec...)
	http.DefaultClient.CloseIdleConnections() // the flood alone holds the HTTP listener
	time.Sleep(300 * time.Millisecond)

	stop := make(chan struct{})
	stopped := sync.OnceFunc(func() { close(stop) })
	defer stopped()
	var rtsp []<-chan time.Duration
	for _, a := range from {
		rtsp = append(rtsp, s.idleConns(a, s.arg("--rtsp-addr"), perAddrRTSP))
	}
	flood := s.httpFlood(from, perAddrHTTP*len(from), stop)

	// RTSP: a quarter of the file limit held until the request timeout, the
	// rest refused at once.
	var refused, timedOut int
	var longest time.Duration
	for _, ch := range rtsp {
		for range perAddrRTSP {
			d := <-ch
			longest = max(longest, d)
			switch {
			case d < atOnce:
				refused++
			case d > rtspTimeout-time.Second && d < rtspTimeout+timeoutSlack:
				timedOut++
			}
		}
	}
	if timedOut != capEach || refused != perAddrRTSP*len(from)-capEach {
		t.Errorf("RTSP: of %d idle connections from %d addresses, %d were closed at once and %d at the request timeout (want %d, the total cap); the longest held %v",
			perAddrRTSP*len(from), len(from), refused, timedOut, capEach, longest)
	}
	// A new recorder gets in while the HTTP flood still holds.
	after := s.startFFmpeg("cam-after", secretB, 5, codec...)

	// HTTP: a quarter of the file limit held, the rest refused at once; the
	// slow bodies cut at the read timeout, the idle ones held until the
	// test lets them go.
	var conns []floodConn
	slowLeft := perAddrHTTP * len(from) / 2
	deadline := time.After(readTimeout + 2*timeoutSlack)
collect:
	for slowLeft > 0 {
		select {
		case c := <-flood:
			conns = append(conns, c)
			if c.slow {
				slowLeft--
			}
		case <-deadline:
			break collect
		}
	}
	stopped()
	for len(conns) < perAddrHTTP*len(from) {
		conns = append(conns, <-flood)
	}
	var httpRefused, slowCut, idleHeld, other int
	for _, c := range conns {
		switch {
		case c.closed >= 0 && c.closed < atOnce && !c.answered:
			httpRefused++
		case c.slow && c.closed > readTimeout-time.Second && c.closed < readTimeout+timeoutSlack:
			slowCut++
		case !c.slow && c.closed < 0 && c.answered:
			idleHeld++
		default:
			other++
			if other <= 5 {
				t.Logf("HTTP connection not refused, cut or held: %+v", c)
			}
		}
	}
	if httpRefused != len(conns)-capEach || slowCut+idleHeld != capEach || slowCut == 0 || idleHeld == 0 || other != 0 {
		t.Errorf("HTTP: of %d connections, %d refused at once (want %d), %d slow bodies cut at the read timeout and %d idle ones held (want %d in all), %d otherwise",
			len(conns), httpRefused, len(conns)-capEach, slowCut, idleHeld, capEach, other)
	}

	for name, ff := range map[string]*exec.Cmd{"the recorder recording when the flood came": during, "the recorder that connected during it": after} {
		if err := ff.Wait(); err != nil {
			t.Errorf("%s failed: %v", name, err)
		}
	}
	for _, device := range []string{"cam-during", "cam-after"} {
		rec := s.waitStored(aud, device)
		_, v := s.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, "")
		if rec.State != "complete" || rec.SegmentCount < 2 || !strings.Contains(v, `"ok": true`) || !strings.Contains(v, `"gaps": []`) {
			t.Errorf("%s: the recording made during the flood: %+v\nverify: %s", device, rec, v)
		}
	}
	// Each address dialled its RTSP connections in turn: the first four
	// filled their own caps (64) and the listener's, the rest met the
	// listener's. The HTTP ones came from all eight in turn: under their
	// own caps, all met the listener's.
	for _, p := range []struct {
		name           string
		refused, total int
	}{{"rtsp", refused, perAddrRTSP * (len(from) - 4)}, {"http", httpRefused, httpRefused}} {
		if got := s.metricValue("bodycam_" + p.name + "_connections_refused_total"); got != float64(p.refused) {
			t.Errorf("%s: %v refusals counted, want %d", p.name, got, p.refused)
		}
		if got := s.metricValue("bodycam_" + p.name + `_connections_refused_total{reason="total"}`); got != float64(p.total) {
			t.Errorf("%s: %v refusals counted for the total cap, want %d", p.name, got, p.total)
		}
		if got := s.metricValue("bodycam_" + p.name + "_accept_errors_total"); got != 0 {
			t.Errorf("%s: %v accept errors: the server ran out of descriptors", p.name, got)
		}
	}
	log := s.log.String()
	if strings.Contains(log, "too many open files") || strings.Contains(log, "interrupted") {
		t.Errorf("the server ran out of descriptors:\n%s", log)
	}
	if n := strings.Count(log, "connection refused: the listener holds its cap"); n == 0 || n > 2*3 {
		t.Errorf("%d refusal lines logged for the total caps; want a few (at most three per port and minute)", n)
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
		{"readable by the group", []string{"--admin-token-file", file}, 2},
		{"missing file", []string{"--admin-token-file", filepath.Join(dir, "none")}, 2},
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
