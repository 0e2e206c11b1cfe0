package connlimit

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// server accepts from l and runs handle on each connection, until l is
// closed; close waits for every goroutine it started.
type server struct {
	l  *Listener
	wg sync.WaitGroup
}

func serve(t *testing.T, o Options, handle func(*Listener, net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: New(ln, o)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(s.l, c)
			}()
		}
	}()
	t.Cleanup(func() { s.l.Close(); s.wg.Wait() })
	return s
}

// dialFrom connects from a given loopback address, as another client host.
func dialFrom(t *testing.T, from string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// greeting reads the server's first line: "hello" when it kept the
// connection, "" when it closed it.
func greeting(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSpace(line)
}

// One address holds at most PerHost pending connections; the rest are
// closed at once and counted, other addresses are not affected, and a slot
// frees when a connection closes or is established.
func TestPerHostCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	held := make(chan net.Conn, 100)
	s := serve(t, Options{Name: "test", PerHost: 3, Registry: reg, Log: log}, func(_ *Listener, c net.Conn) {
		io.WriteString(c, "hello\n")
		held <- c
		io.Copy(io.Discard, c) // until the client closes
	})
	addr := s.l.Addr()
	var kept []net.Conn
	refused := 0
	for range 10 {
		c := dialFrom(t, "127.0.0.2", addr)
		if greeting(t, c) == "hello" {
			kept = append(kept, c)
		} else {
			refused++
		}
	}
	if len(kept) != 3 || refused != 7 {
		t.Fatalf("from one address: %d kept, %d refused; want 3 and 7", len(kept), refused)
	}
	if got := value(s.l.m.refused.WithLabelValues(refusedPerHost)); got != 7 {
		t.Fatalf("refused counted %v, want 7", got)
	}
	if c := dialFrom(t, "127.0.0.3", addr); greeting(t, c) != "hello" {
		t.Fatal("another address was refused")
	}
	logMu.Lock()
	lines := strings.Count(logs.String(), "connection refused")
	logMu.Unlock()
	if lines != logsPerMinute {
		t.Fatalf("%d refusal lines logged for 7 refusals from one address, want %d:\n%s", lines, logsPerMinute, logs.String())
	}

	// Closing one frees its slot.
	kept[0].Close()
	waitGauge(t, s.l.m.pending, 3) // two of 127.0.0.2, one of 127.0.0.3
	if c := dialFrom(t, "127.0.0.2", addr); greeting(t, c) != "hello" {
		t.Fatal("refused after a slot was freed by a close")
	}
	// Established connections do not count: establish all five held so far.
	for range 5 {
		s.l.Established(<-held)
	}
	if c := dialFrom(t, "127.0.0.2", addr); greeting(t, c) != "hello" {
		t.Fatal("refused after connections were established")
	}
	if got := value(s.l.m.refused.WithLabelValues(refusedPerHost)); got != 7 {
		t.Fatalf("refused counted %v, want still 7", got)
	}
}

// All addresses together hold at most MaxPending pending connections: a
// flood from many addresses, each under its own cap, is refused at once
// beyond it (counted with the reason "total", logged a few lines in all),
// while established connections do not count and a slot frees when a
// pending one closes.
func TestMaxPending(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	held := make(chan net.Conn, 100)
	s := serve(t, Options{Name: "test", PerHost: 4, MaxPending: 10, Registry: reg, Log: log}, func(_ *Listener, c net.Conn) {
		io.WriteString(c, "hello\n")
		held <- c
		io.Copy(io.Discard, c)
	})
	addr := s.l.Addr()
	kept, refused := 0, 0
	for i := range 20 { // 4 from each of 5 addresses: each at its own cap
		c := dialFrom(t, fmt.Sprintf("127.0.0.%d", 2+i%5), addr)
		if greeting(t, c) == "hello" {
			kept++
		} else {
			refused++
		}
	}
	if kept != 10 || refused != 10 {
		t.Fatalf("from five addresses: %d kept, %d refused; want 10 and 10", kept, refused)
	}
	if total, perHost := value(s.l.m.refused.WithLabelValues(refusedTotal)), value(s.l.m.refused.WithLabelValues(refusedPerHost)); total != 10 || perHost != 0 {
		t.Fatalf("refused counted %v for the total cap and %v per host, want 10 and 0", total, perHost)
	}
	logMu.Lock()
	lines := strings.Count(logs.String(), "connection refused")
	logMu.Unlock()
	if lines != logsPerMinute {
		t.Fatalf("%d refusal lines logged for 10 refusals from five addresses, want %d in all:\n%s", lines, logsPerMinute, logs.String())
	}
	// Established connections leave the cap: a recorder gets in.
	for range 3 {
		s.l.Established(<-held)
	}
	for i := range 3 {
		if c := dialFrom(t, fmt.Sprintf("127.0.0.%d", 10+i), addr); greeting(t, c) != "hello" {
			t.Fatalf("refused with %d of the 10 slots freed by established connections", 3-i)
		}
	}
	if c := dialFrom(t, "127.0.0.20", addr); greeting(t, c) != "" {
		t.Fatal("accepted beyond the cap")
	}
	// A pending connection's close frees its slot.
	(<-held).Close()
	waitGauge(t, s.l.m.pending, 9)
	if c := dialFrom(t, "127.0.0.21", addr); greeting(t, c) != "hello" {
		t.Fatal("refused after a pending connection closed")
	}
}

func waitGauge(t *testing.T, g prometheus.Gauge, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for value(g) != want {
		if time.Now().After(deadline) {
			t.Fatalf("gauge %v, want %v", value(g), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// value reads a counter or a gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	m.Write(&d)
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A line server that, like gortsplib, sets a long read deadline before each
// request: a client that sends nothing, or dribbles bytes without ever
// finishing a request, is cut at the request timeout; one that sends whole
// requests, or has been established, is not.
func TestRequestTimeout(t *testing.T) {
	const timeout = time.Second
	reg := prometheus.NewRegistry()
	s := serve(t, Options{Name: "test", RequestTimeout: timeout, Registry: reg}, func(l *Listener, c net.Conn) {
		r := bufio.NewReader(c)
		for {
			c.SetReadDeadline(time.Now().Add(time.Hour))
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			l.RequestDone(c)
			if strings.TrimSpace(line) == "establish" {
				l.Established(c)
			}
			io.WriteString(c, "ok\n")
		}
	})
	addr := s.l.Addr()
	// closedWithin reads until the server closes c and says how long it took.
	closedWithin := func(c net.Conn) time.Duration {
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		io.Copy(io.Discard, c)
		return time.Since(start)
	}
	type result struct {
		name string
		took time.Duration
	}
	results := make(chan result, 4)
	var wg sync.WaitGroup
	run := func(name string, f func(net.Conn) time.Duration) {
		c := dialFrom(t, "127.0.0.1", addr)
		wg.Add(1)
		go func() { defer wg.Done(); results <- result{name, f(c)} }()
	}
	run("silent", closedWithin)
	run("dribbling", func(c net.Conn) time.Duration {
		start := time.Now()
		var writer sync.WaitGroup
		writer.Add(1)
		go func() { // never a newline
			defer writer.Done()
			for range 40 {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		closedWithin(c)
		took := time.Since(start)
		c.Close()
		writer.Wait()
		return took
	})
	run("chatty", func(c net.Conn) time.Duration {
		start := time.Now()
		r := bufio.NewReader(c)
		for range 15 { // 3 s of whole requests
			io.WriteString(c, "ping\n")
			if _, err := r.ReadString('\n'); err != nil {
				return time.Since(start)
			}
			time.Sleep(200 * time.Millisecond)
		}
		c.Close()
		return -1 // never cut
	})
	run("established", func(c net.Conn) time.Duration {
		r := bufio.NewReader(c)
		io.WriteString(c, "establish\n")
		if _, err := r.ReadString('\n'); err != nil {
			return 0
		}
		c.SetReadDeadline(time.Now().Add(3 * timeout))
		if _, err := r.ReadByte(); err != nil && errors.Is(err, io.EOF) {
			return 0 // the server closed it
		}
		c.Close()
		return -1
	})
	wg.Wait()
	close(results)
	for r := range results {
		switch r.name {
		case "silent", "dribbling":
			if r.took < timeout-100*time.Millisecond || r.took > timeout+3*time.Second {
				t.Errorf("%s: closed after %v, want about %v", r.name, r.took, timeout)
			}
		default:
			if r.took != -1 {
				t.Errorf("%s: cut after %v", r.name, r.took)
			}
		}
	}
	if got := value(s.l.m.timedOut); got != 2 {
		t.Fatalf("timed out counted %v, want 2", got)
	}
}

// Out of file descriptors, Accept backs off and goes on instead of
// returning the error (gortsplib stops its server for good on one).
func TestAcceptSurvivesEMFILE(t *testing.T) {
	reg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{Name: "test", Registry: reg})
	defer l.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	free, err := syscall.Dup(0) // the lowest free descriptor: the next accept would get it
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(free)
	low := old
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		}
	}
	defer restore()
	type accepted struct {
		c   net.Conn
		err error
	}
	done := make(chan accepted, 1)
	go func() { c, err := l.Accept(); done <- accepted{c, err} }()
	deadline := time.Now().Add(10 * time.Second)
	for value(l.m.fails) < 2 {
		select {
		case a := <-done:
			restore()
			t.Fatalf("Accept returned %v, %v while out of descriptors", a.c, a.err)
		default:
		}
		if time.Now().After(deadline) {
			restore()
			t.Fatal("no EMFILE seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	restore()
	a := <-done
	if a.err != nil {
		t.Fatalf("Accept after descriptors came back: %v", a.err)
	}
	a.c.Close()
}

// Established and RequestDone reach the connection under a server-side TLS
// connection.
func TestEstablishedUnderTLS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{Name: "test", PerHost: 1, Registry: prometheus.NewRegistry()})
	tl := tls.NewListener(l, cfg)
	defer tl.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if value(l.m.pending) != 1 {
		t.Fatal("not pending")
	}
	if !l.Established(sc) {
		t.Fatal("Established did not find the connection under *tls.Conn")
	}
	if value(l.m.pending) != 0 {
		t.Fatal("still pending")
	}
}

func TestHostKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:554":                "192.0.2.7",
		"[::ffff:192.0.2.7]:554":       "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:554":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::9]:40000": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:554":        "2001:db8:1:3::/64",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := HostKey(a); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// Each address logs a few lines a window; the next line after says how many
// were not logged, and addresses that went quiet are summed up once.
func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(3, time.Minute)
	t0 := time.Unix(1_000_000, 0)
	allowed := 0
	for i := range 10 {
		if ok, _, _ := l.allow("a", t0.Add(time.Duration(i)*time.Second)); ok {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("allowed %d of 10 in a window, want 3", allowed)
	}
	l.allow("b", t0)
	l.allow("b", t0)
	l.allow("b", t0)
	l.allow("b", t0) // dropped; b then goes quiet
	ok, dropped, quiet := l.allow("a", t0.Add(61*time.Second))
	if !ok || dropped != 7 {
		t.Fatalf("next window: ok %v, dropped %d; want true, 7", ok, dropped)
	}
	if quiet.lines != 1 || quiet.keys != 1 {
		t.Fatalf("quiet summary %+v, want 1 line of 1 address", quiet)
	}
	if len(l.keys) != 1 {
		t.Fatalf("%d keys kept, want only the active one", len(l.keys))
	}
}

// A server's own wrapper of a connection is found by its remote address.
func TestEstablishedWrapped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{Name: "test", PerHost: 1, Registry: prometheus.NewRegistry()})
	defer l.Close()
	dialFrom(t, "127.0.0.1", ln.Addr())
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if l.Established(wrapped{remote: ln.Addr()}) {
		t.Fatal("established a connection that is not there")
	}
	if !l.Established(wrapped{remote: sc.RemoteAddr()}) || value(l.m.pending) != 0 {
		t.Fatalf("not established through a wrapper; pending %v", value(l.m.pending))
	}
	sc.Close()
	if value(l.m.pending) != 0 || value(l.m.open) != 0 {
		t.Fatalf("after close: pending %v, open %v", value(l.m.pending), value(l.m.open))
	}
}

// wrapped is a server's own connection type over one of the listener's.
type wrapped struct {
	net.Conn
	remote net.Addr
}

func (w wrapped) RemoteAddr() net.Addr { return w.remote }

// The default total cap is a quarter of the file limit, within 16..4,096.
func TestDefaultMaxPending(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	for _, c := range []struct{ limit, want uint64 }{{1024, 256}, {48, 16}, {old.Max, min(old.Max/4, 4096)}} {
		rl := old
		rl.Cur = c.limit
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
		got := DefaultMaxPending()
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		if uint64(got) != c.want {
			t.Errorf("file limit %d: %d, want %d", c.limit, got, c.want)
		}
	}
}

// With DeadlineSlack, an established connection keeps its read deadline
// while the ones asked fall at most the slack before it, so the one in
// force is never earlier than asked; a wake-up (a deadline already past)
// and "none" are set as asked. A pending connection gets every deadline as
// asked.
func TestDeadlineSlack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const slack = time.Hour // nothing times out by itself during the test
	l := New(ln, Options{Name: "test", DeadlineSlack: slack, Registry: prometheus.NewRegistry()})
	defer l.Close()
	dialFrom(t, "127.0.0.1", ln.Addr())
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := nc.(*Conn)
	now := time.Now()
	c.SetReadDeadline(now.Add(time.Minute))
	if c.armed.Load() != 0 {
		t.Fatal("a pending connection's deadline was moved")
	}
	l.Established(c)
	asked := now.Add(time.Minute)
	c.SetReadDeadline(asked)
	if got := c.armed.Load(); got != asked.Add(slack).UnixNano() {
		t.Fatalf("armed at %v, want %v", time.Unix(0, got), asked.Add(slack))
	}
	for _, later := range []time.Duration{time.Second, 30 * time.Minute, slack} {
		c.SetReadDeadline(asked.Add(later))
		if got := c.armed.Load(); got != asked.Add(slack).UnixNano() {
			t.Fatalf("asked %v later: re-armed at %v", later, time.Unix(0, got))
		}
	}
	beyond := asked.Add(slack + time.Nanosecond)
	c.SetReadDeadline(beyond)
	if got := c.armed.Load(); got != beyond.Add(slack).UnixNano() {
		t.Fatalf("asked past the one in force: armed at %v, want %v", time.Unix(0, got), beyond.Add(slack))
	}
	// Much earlier than the one in force (a shorter timeout): set again.
	c.SetReadDeadline(asked)
	if got := c.armed.Load(); got != asked.Add(slack).UnixNano() {
		t.Fatalf("an earlier deadline: armed at %v, want %v", time.Unix(0, got), asked.Add(slack))
	}
	// A wake-up: the read returns at once.
	c.SetReadDeadline(time.Unix(1, 0))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read after a past deadline: %v", err)
	}
	if c.armed.Load() != 0 {
		t.Fatal("a wake-up was moved")
	}
	c.SetReadDeadline(time.Time{})
	if c.armed.Load() != 0 {
		t.Fatal("no deadline kept one")
	}
}
