package peer

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func newAuth(t *testing.T, node, key string, now func() time.Time) *Auth {
	t.Helper()
	a, err := New(Options{Node: node, Key: []byte(key), Now: now, MaxSeen: 4})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func signed(a *Auth, to, method, url, body string, id Identity) *http.Request {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	a.Sign(req, to, []byte(body), id)
	return req
}

// A request signed by A for B verifies on B once, with its identity; any
// change to what it says, another key, another receiver, a time outside
// the window or a second delivery is refused.
func TestVouch(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	now := func() time.Time { return clock }
	const key = "0123456789abcdef0123456789abcdef"
	a, b := newAuth(t, "a", key, now), newAuth(t, "b", key, now)
	id := Identity{User: "sup-1", Role: "supervisor", Remote: "10.0.0.1:5000", UserAgent: "Firefox"}
	url := "http://b.example:8080/internal/v1/live/cam-1/whep"

	req := signed(a, "b", "POST", url, "v=0 offer", id)
	got, from, err := b.Verify(req, []byte("v=0 offer"))
	if err != nil || got != id || from != "a" {
		t.Fatalf("verify: %+v from %q, %v", got, from, err)
	}
	if _, _, err := b.Verify(req, []byte("v=0 offer")); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed: %v, want ErrReplay", err)
	}

	for name, c := range map[string]struct {
		mutate func(r *http.Request) *http.Request
		body   string
		want   error
	}{
		"other body":     {nil, "v=0 other", ErrBadMAC},
		"other path":     {func(r *http.Request) *http.Request { r.URL.Path = "/internal/v1/live/cam-2/whep"; return r }, "", ErrBadMAC},
		"other query":    {func(r *http.Request) *http.Request { r.URL.RawQuery = "x=1"; return r }, "", ErrBadMAC},
		"other method":   {func(r *http.Request) *http.Request { r.Method = "DELETE"; return r }, "", ErrBadMAC},
		"other identity": {func(r *http.Request) *http.Request { r.Header.Set(HeaderIdentity, "e30"); return r }, "", ErrBadMAC},
		"other sender":   {func(r *http.Request) *http.Request { r.Header.Set(HeaderFrom, "c"); return r }, "", ErrBadMAC},
		"later time": {func(r *http.Request) *http.Request {
			r.Header.Set(HeaderTime, "1700000001000")
			return r
		}, "", ErrBadMAC},
		"for another node": {func(r *http.Request) *http.Request { r.Header.Set(HeaderTo, "c"); return r }, "", ErrWrongNode},
		"no MAC":           {func(r *http.Request) *http.Request { r.Header.Del(HeaderMAC); return r }, "", ErrUnsigned},
		"nothing":          {func(r *http.Request) *http.Request { r, _ = http.NewRequest("POST", url, nil); return r }, "", ErrUnsigned},
	} {
		req := signed(a, "b", "POST", url, "v=0 offer", id)
		body := "v=0 offer"
		if c.body != "" {
			body = c.body
		}
		if c.mutate != nil {
			req = c.mutate(req)
		}
		if _, _, err := b.Verify(req, []byte(body)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}

	other := newAuth(t, "a", "another key of 32 bytes, not it!", now)
	if _, _, err := b.Verify(signed(other, "b", "POST", url, "x", id), []byte("x")); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("another key: %v, want ErrBadMAC", err)
	}

	// ±60 s: a request from 61 s ago or ahead is refused; one from 59 s
	// ago passes.
	for skew, want := range map[time.Duration]error{-61 * time.Second: ErrStale, 61 * time.Second: ErrStale, -59 * time.Second: nil} {
		past := newAuth(t, "a", key, func() time.Time { return clock.Add(skew) })
		if _, _, err := b.Verify(signed(past, "b", "GET", url, "", id), nil); !errors.Is(err, want) {
			t.Errorf("skew %v: %v, want %v", skew, err, want)
		}
	}

	// Nonces leave the cache once their time leaves the window; a full
	// cache refuses rather than forgets.
	for i := 0; i < 2; i++ {
		if _, _, err := b.Verify(signed(a, "b", "GET", url, "", id), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := b.Verify(signed(a, "b", "GET", url, "", id), nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("a full replay cache: %v, want ErrBusy", err)
	}
	clock = clock.Add(2 * time.Minute)
	if _, _, err := b.Verify(signed(a, "b", "GET", url, "", id), nil); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if n := len(b.seen); n != 1 {
		t.Fatalf("%d nonces kept after the window, want 1", n)
	}
}

type deriver struct{}

func (deriver) DeviceSecret(id, salt string) string { return "derived:" + id + ":" + salt }

func TestNewRefusesWeakKeys(t *testing.T) {
	if _, err := New(Options{Node: "a", Key: []byte("short")}); err == nil {
		t.Fatal("a 5-byte key accepted")
	}
	if _, err := New(Options{Key: KeyFrom(deriver{})}); err == nil {
		t.Fatal("no node id accepted")
	}
	if _, err := New(Options{Node: "a", Key: KeyFrom(deriver{})}); err != nil {
		t.Fatal(err)
	}
}
