package api

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bodycam/bodycam/password"
)

// Passwords hashes and checks passwords (argon2id, package password).
type Passwords interface {
	Hash(secret string) string
	Verify(hash, secret string) (bool, error)
}

type argon2Passwords struct{}

func (argon2Passwords) Hash(secret string) string { return password.Hash(secret) }
func (argon2Passwords) Verify(hash, secret string) (bool, error) {
	return password.Verify(hash, secret)
}

// SignInLimits bound the work sign-ins may make the server do. Each argon2id
// computation takes 19 MiB and tens of milliseconds of a core, and a sign-in
// needs one before anything is known about who is asking; unbounded, a flood
// of anonymous sign-ins takes the memory and the CPU that ingest needs.
// Zero values are the defaults.
type SignInLimits struct {
	// Hashing is how many argon2id computations run at once (sign-in,
	// password changes, new users). Default: half the cores Go may use, at
	// least 1 and at most 8, so the rest stay free for ingest.
	Hashing int
	// Wait is how long a request waits for a hashing slot before it is
	// answered 503 with Retry-After. Default 3 s.
	Wait time.Duration
	// Burst and PerSecond: the sign-ins one client address may make at once
	// and then each second (a token bucket; IPv6 addresses count per /64).
	// More get 429 with Retry-After. Default 20 and 2: a shift signing in
	// behind one NAT address is not refused, one address cannot take the
	// hashing slots for long.
	Burst     int
	PerSecond float64
	// Hosts bounds the addresses tracked; when that many are tracked and
	// none can be forgotten, new ones share one bucket. Default 4096.
	Hosts int
}

func (l SignInLimits) withDefaults() SignInLimits {
	if l.Hashing <= 0 {
		l.Hashing = min(max(1, runtime.GOMAXPROCS(0)/2), 8)
	}
	if l.Wait <= 0 {
		l.Wait = 3 * time.Second
	}
	if l.Burst <= 0 {
		l.Burst = 20
	}
	if l.PerSecond <= 0 {
		l.PerSecond = 2
	}
	if l.Hosts <= 0 {
		l.Hosts = 4096
	}
	return l
}

// hashSlots bounds concurrent argon2id computations.
type hashSlots struct {
	slots chan struct{}
	wait  time.Duration
}

// acquire waits up to the bound for a slot; ok false means the server is
// too busy (or the request ended).
func (h *hashSlots) acquire(ctx context.Context) (release func(), ok bool) {
	release = func() { <-h.slots }
	select {
	case h.slots <- struct{}{}:
		return release, true
	default:
	}
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return release, true
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, false
}

// hostLimiter is a token bucket per client address.
type hostLimiter struct {
	mu        sync.Mutex
	burst     float64
	rate      float64 // tokens a second
	max       int
	hosts     map[string]*bucket
	overflow  bucket // shared by new addresses while the map is full
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newHostLimiter(l SignInLimits) *hostLimiter {
	return &hostLimiter{burst: float64(l.Burst), rate: l.PerSecond, max: l.Hosts, hosts: map[string]*bucket{},
		overflow: bucket{tokens: float64(l.Burst)}}
}

// take spends one of host's tokens at now, or says how long until there
// is one.
func (l *hostLimiter) take(host string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.hosts[host]
	if b == nil {
		if len(l.hosts) >= l.max && now.Sub(l.lastSweep) >= time.Second {
			l.sweep(now)
		}
		if len(l.hosts) >= l.max {
			b = &l.overflow
		} else {
			b = &bucket{tokens: l.burst, at: now}
			l.hosts[host] = b
		}
	}
	if !b.at.IsZero() {
		b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	}
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}

// sweep forgets the addresses whose buckets are full again: they are as if
// never seen.
func (l *hostLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for h, b := range l.hosts {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.hosts, h)
		}
	}
}

// clientHost is the address a request's limits are kept under: its IP, or
// for IPv6 its /64 (one subscriber's network hands out any address in it).
// The connection's address, never a header a client could forge.
func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// retryAfter sets Retry-After to d in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((d+time.Second-1)/time.Second))))
}

// crossSite says why r, which sets or relies on the session cookie, looks
// sent from another site's page (login CSRF, cross-site requests riding on
// the cookie); "" when it does not. Browsers send Sec-Fetch-Site on every
// request: only same-origin, and none (a typed URL, a bookmark) pass. An
// Origin, where sent, must be this server's own: its host as the request
// addressed it (the scheme is not compared behind plain HTTP, so a TLS
// proxy in front works; Sec-Fetch-Site covers a scheme change).
func crossSite(r *http.Request) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "cross-site", "same-site":
		return "a request from another site's page (Sec-Fetch-Site: " + site + ") may not sign in or use the console's session"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	ok := err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) &&
		(u.Scheme == "https" || (u.Scheme == "http" && r.TLS == nil))
	if ok {
		return ""
	}
	if len(origin) > 100 {
		origin = origin[:100] + "…"
	}
	return "a request from another origin (" + strings.ToValidUTF8(origin, "?") + ") may not sign in or use the console's session"
}
