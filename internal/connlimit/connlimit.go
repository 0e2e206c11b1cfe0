// Package connlimit owns what a listener allows a client before it has
// proven who it is: at most PerHost such connections per client address (an
// IPv4 address, or an IPv6 /64, which one subscriber holds whole), at most
// MaxPending of them in all, and, optionally, a time limit on each request
// until the server marks the connection established. A scanner or a broken
// client can then hold only a few file descriptors, each for a few seconds;
// a flood from many addresses only the listener's share of them; and the
// connections that matter (established ones: recorders recording) never
// count toward either cap. Refused and timed-out connections are counted in
// Prometheus and logged, at most a few lines per address a minute.
//
// Accept never hands a temporary error (EMFILE, ECONNABORTED) to the server
// above: it backs off and accepts again, as net/http does, because some
// servers (gortsplib's) stop for good on the first Accept error.
package connlimit

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Listener.
type Options struct {
	// Name is the protocol, for metrics (bodycam_<Name>_connections_...)
	// and logs: "rtsp", "http".
	Name string
	// PerHost is how many connections one client address may hold until
	// they are established; more are closed at once. 0: no cap.
	PerHost int
	// MaxPending is how many connections all addresses together may hold
	// until they are established; more are closed at once. It bounds the
	// file descriptors a flood from many addresses can take. A server that
	// never marks connections established (HTTP) is capped in all its
	// connections. 0: no cap.
	MaxPending int
	// RequestTimeout, when set, bounds a connection that is not
	// established: its first request must be complete within RequestTimeout
	// of the accept, each later one within RequestTimeout of the moment the
	// server starts reading it (every read deadline the server sets is cut
	// to that). 0: the server's own deadlines apply.
	RequestTimeout time.Duration
	// DeadlineSlack, when set, lets an established connection keep its read
	// deadline when the server asks for one at most DeadlineSlack earlier,
	// and sets a new one DeadlineSlack later than asked. A server that sets
	// a deadline before every read (gortsplib does, before every RTP
	// packet) then moves the runtime's timer once every DeadlineSlack, not
	// once a read; its read timeout becomes between what it asks and that
	// plus DeadlineSlack. A deadline at or before the time it is set (a
	// wake-up) or zero (none) is set as asked. 0: every deadline as asked.
	DeadlineSlack time.Duration
	// Registry receives the metrics; nil: not exported.
	Registry prometheus.Registerer
	Log      *slog.Logger
}

// Listener is a net.Listener that applies Options to what it accepts.
type Listener struct {
	net.Listener
	o    Options
	m    *metrics
	logs *logLimiter

	mu      sync.Mutex
	hosts   map[string]int   // connections not yet established, by host key
	pending map[string]*Conn // the same, by remote address
	total   int              // the same, in all
}

type metrics struct {
	open, pending   prometheus.Gauge
	refused         *prometheus.CounterVec // by reason: refusedPerHost, refusedTotal
	timedOut, fails prometheus.Counter
}

// Reasons of bodycam_<name>_connections_refused_total.
const (
	refusedPerHost = "per_host" // the address held PerHost pending connections
	refusedTotal   = "total"    // all addresses held MaxPending
)

// New wraps ln. It registers the listener's metrics with o.Registry, so
// call it once per name and registry.
func New(ln net.Listener, o Options) *Listener {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Name == "" {
		o.Name = "net"
	}
	p := "bodycam_" + o.Name + "_"
	m := &metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: p + "connections_open",
			Help: "Connections open now."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: p + "connections_pending",
			Help: "Connections open now that are not established (they count toward the per-address cap)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: p + "connections_refused_total",
			Help: "Connections closed at once: their address already held its cap of pending connections (reason per_host), or all addresses held the listener's (reason total)."},
			[]string{"reason"}),
		timedOut: prometheus.NewCounter(prometheus.CounterOpts{Name: p + "connections_timed_out_total",
			Help: "Connections closed because the client sent no complete request in time (also keep-alive connections left idle)."}),
		fails: prometheus.NewCounter(prometheus.CounterOpts{Name: p + "accept_errors_total",
			Help: "Temporary accept errors (e.g. out of file descriptors); the listener backs off and goes on."}),
	}
	if o.Registry != nil {
		o.Registry.MustRegister(m.open, m.pending, m.refused, m.timedOut, m.fails)
	}
	for _, r := range []string{refusedPerHost, refusedTotal} {
		m.refused.WithLabelValues(r) // exported at 0 from the start
	}
	return &Listener{Listener: ln, o: o, m: m, logs: newLogLimiter(logsPerMinute, time.Minute),
		hosts: map[string]int{}, pending: map[string]*Conn{}}
}

// logsPerMinute is how many lines one address (for the total cap: all
// addresses together) can cause a minute; the rest are counted and summed up
// in the next line.
const logsPerMinute = 3

// Accept returns the next connection whose address, and the listener, are
// under their caps.
func (l *Listener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporary(err) {
				return nil, err
			}
			l.m.fails.Inc()
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.note("accept", "", slog.LevelError, l.o.Name+": accept failed; retrying", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		host := HostKey(c.RemoteAddr())
		l.mu.Lock()
		if l.o.PerHost > 0 && l.hosts[host] >= l.o.PerHost {
			l.mu.Unlock()
			l.m.refused.WithLabelValues(refusedPerHost).Inc() // before the close the client sees
			c.Close()
			l.note("refused", host, slog.LevelWarn, l.o.Name+": connection refused: the address holds its cap of pending connections",
				"remote", c.RemoteAddr().String(), "cap", l.o.PerHost)
			continue
		}
		if l.o.MaxPending > 0 && l.total >= l.o.MaxPending {
			l.mu.Unlock()
			l.m.refused.WithLabelValues(refusedTotal).Inc() // before the close the client sees
			c.Close()
			// One key for every address: a flood from many logs a few
			// lines a minute in all.
			l.note("refused-total", "", slog.LevelWarn, l.o.Name+": connection refused: the listener holds its cap of pending connections from all addresses",
				"remote", c.RemoteAddr().String(), "cap", l.o.MaxPending)
			continue
		}
		lc := &Conn{Conn: c, l: l, host: host, pending: true}
		l.hosts[host]++
		l.total++
		l.pending[c.RemoteAddr().String()] = lc
		l.mu.Unlock()
		l.m.open.Inc()
		l.m.pending.Inc()
		if l.o.RequestTimeout > 0 {
			lc.requestBy = time.Now().Add(l.o.RequestTimeout)
			c.SetReadDeadline(lc.requestBy) // a TLS handshake or a first byte that never comes
		}
		return lc, nil
	}
}

// DefaultMaxPending is the MaxPending a listener gets unless configured: a
// quarter of the process's file limit (as Go raised it at start-up, to the
// hard limit), so that an HTTP and an RTSP listener flooded together leave
// at least half of the descriptors to recordings, the spool, the catalog and
// the object store. It is at most 4,096, whatever the limit: every held
// connection costs a goroutine and buffers (tens of KiB), and a flood of
// cheap IPv6 /64s must not turn a generous file limit into gigabytes. A
// limit that cannot be read counts as 1,024.
func DefaultMaxPending() int {
	return int(min(max(FileLimit()/4, 16), 4096))
}

// FileLimit is the process's limit of open files (the soft one, which Go
// raises to the hard one at start-up), or 1,024 when it cannot be read.
func FileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	return rl.Cur
}

func temporary(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// release takes a connection off its host's pending count.
func (l *Listener) release(c *Conn) {
	l.mu.Lock()
	if l.hosts[c.host]--; l.hosts[c.host] <= 0 {
		delete(l.hosts, c.host)
	}
	l.total--
	delete(l.pending, c.RemoteAddr().String())
	l.mu.Unlock()
	l.m.pending.Dec()
}

// note logs one line about host unless host has had its share this minute.
func (l *Listener) note(kind, host string, level slog.Level, msg string, args ...any) {
	ok, dropped, summary := l.logs.allow(kind+" "+host, time.Now())
	if summary.lines > 0 {
		l.o.Log.Warn(l.o.Name+": connection events not logged in the last minute (rate limit); see the metrics",
			"events", summary.lines, "addresses", summary.keys)
	}
	if !ok {
		return
	}
	if host != "" {
		args = append(args, "host", host)
	}
	if dropped > 0 {
		args = append(args, "not_logged_since", dropped)
	}
	l.o.Log.Log(context.Background(), level, msg, args...)
}

// HostKey is the client address connections are counted by: an IPv4
// address, or the /64 of an IPv6 one.
func HostKey(a net.Addr) string {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		h, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		ip = net.ParseIP(h)
		if ip == nil {
			return h
		}
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// Conn is a connection the Listener accepted.
type Conn struct {
	net.Conn
	l    *Listener
	host string

	mu        sync.Mutex
	pending   bool      // not established: counts toward the cap, requests are timed
	requestBy time.Time // the request being read must be complete by then; zero: set at the next read deadline
	aborted   bool      // the last read deadline was in the past: a wake-up, not a timeout
	timedOut  bool
	closed    bool

	// For DeadlineSlack, once established: the read deadline in force
	// (Unix ns; 0: none, or one set as asked).
	established atomic.Bool
	armed       atomic.Int64
}

// SetReadDeadline sets the read deadline, cut to the request time limit
// while the connection is pending.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if slack := c.l.o.DeadlineSlack; slack > 0 && c.established.Load() {
		if t.IsZero() {
			c.armed.Store(0)
			return c.Conn.SetReadDeadline(t)
		}
		want, armed := t.UnixNano(), c.armed.Load()
		if armed != 0 && want <= armed && armed-want <= int64(slack) {
			return nil // the deadline in force is at most slack later than asked
		}
		if !t.After(time.Now()) {
			c.armed.Store(0)
			return c.Conn.SetReadDeadline(t) // a wake-up, at once
		}
		t = t.Add(slack)
		c.armed.Store(t.UnixNano())
		return c.Conn.SetReadDeadline(t)
	}
	c.mu.Lock()
	now := time.Now()
	c.aborted = !t.IsZero() && !t.After(now)
	if c.pending && c.l.o.RequestTimeout > 0 {
		if c.requestBy.IsZero() {
			c.requestBy = now.Add(c.l.o.RequestTimeout)
		}
		if t.IsZero() || t.After(c.requestBy) {
			t = c.requestBy
		}
	}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines; the read one as SetReadDeadline does.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// Read reads, and counts a pending connection whose request time ran out.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		c.mu.Lock()
		first := c.pending && !c.aborted && !c.timedOut
		c.timedOut = c.timedOut || first
		c.mu.Unlock()
		if first {
			c.l.m.timedOut.Inc()
			c.l.note("timeout", c.host, slog.LevelInfo, c.l.o.Name+": connection closed: no complete request in time",
				"remote", c.RemoteAddr().String())
		}
	}
	return n, err
}

// Close closes the connection (safe to call more than once).
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	wasPending := c.pending
	c.pending = false
	c.mu.Unlock()
	if wasPending {
		c.l.release(c)
	}
	c.l.m.open.Dec()
	return c.Conn.Close()
}

// find returns the pending or established Conn c is, or is over (a
// server-side *tls.Conn), or, for servers that wrap connections in types of
// their own, the pending Conn from c's remote address (gortsplib's
// RTSP-over-HTTP tunnel reads from the client's POST connection and reports
// its address). nil: none of this listener's.
func (l *Listener) find(c net.Conn) *Conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*Conn); ok && lc.l == l {
		return lc
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending[c.RemoteAddr().String()]
}

// Established marks c as past its handshake: it no longer counts toward its
// address's cap and its requests are no longer timed here. c is a
// connection Accept returned, a *tls.Conn over one, or a wrapper with its
// remote address. It reports whether c was found.
func (l *Listener) Established(c net.Conn) bool {
	lc := l.find(c)
	if lc == nil {
		return false
	}
	lc.mu.Lock()
	was := lc.pending && !lc.closed
	lc.pending = false
	lc.mu.Unlock()
	lc.established.Store(true)
	if was {
		l.release(lc)
	}
	return true
}

// RequestDone says the server has read a whole request on c (found as
// Established finds it): the next one gets a full RequestTimeout from when
// the server starts reading it.
func (l *Listener) RequestDone(c net.Conn) {
	if lc := l.find(c); lc != nil {
		lc.mu.Lock()
		lc.requestBy = time.Time{}
		lc.mu.Unlock()
	}
}

// logLimiter lets each key log a few lines per window.
type logLimiter struct {
	mu     sync.Mutex
	per    int
	window time.Duration
	keys   map[string]*logWindow
	swept  time.Time
}

type logWindow struct {
	start   time.Time
	lines   int
	dropped int
}

type logSummary struct{ lines, keys int }

func newLogLimiter(per int, window time.Duration) *logLimiter {
	return &logLimiter{per: per, window: window, keys: map[string]*logWindow{}}
}

// allow reports whether key may log now, how many of its lines were not
// logged since its last one, and, once a window, the lines of keys that
// have gone quiet and were never reported (their entries are then dropped,
// which keeps the map to the keys of the last window).
func (l *logLimiter) allow(key string, now time.Time) (ok bool, dropped int, quiet logSummary) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= l.window {
		l.swept = now
		for k, w := range l.keys {
			if now.Sub(w.start) >= l.window && k != key {
				if w.dropped > 0 {
					quiet.lines += w.dropped
					quiet.keys++
				}
				delete(l.keys, k)
			}
		}
	}
	w := l.keys[key]
	if w == nil || now.Sub(w.start) >= l.window {
		carried := 0
		if w != nil {
			carried = w.dropped
		}
		w = &logWindow{start: now, dropped: carried}
		l.keys[key] = w
	}
	if w.lines >= l.per {
		w.dropped++
		return false, 0, quiet
	}
	w.lines++
	dropped, w.dropped = w.dropped, 0
	return true, dropped, quiet
}
