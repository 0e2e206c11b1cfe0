// Package peer vouches for the requests one bodycam node makes to another
// on a signed-in user's behalf (a live view forwarded to the node that
// records the device). The sending node has checked the user's credentials
// and access; the receiving node cannot check them again (it never sees
// the user's token), so it trusts the sender's word, and only the word of a
// node that holds the credential key every node of the cluster shares.
//
// A request carries the user's identity and an HMAC-SHA256 over its
// method, path, query, sending and receiving node, time, a nonce, the
// SHA-256 of its body and the identity, keyed with a key derived from the
// shared credential key. The receiver checks the MAC, that it is the node
// named, that the time is within ±60 s of its clock, and that the nonce
// was not seen before (a replay cache that holds nonces while their time
// is within the window).
package peer

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Headers of a vouched request.
const (
	HeaderFrom     = "X-Bodycam-Peer-From"
	HeaderTo       = "X-Bodycam-Peer-To"
	HeaderTime     = "X-Bodycam-Peer-Time" // Unix milliseconds
	HeaderNonce    = "X-Bodycam-Peer-Nonce"
	HeaderIdentity = "X-Bodycam-Peer-Identity" // base64url JSON of Identity
	HeaderMAC      = "X-Bodycam-Peer-MAC"      // base64url HMAC-SHA256
)

// Errors of Verify. Each means the request is not vouched for (401).
var (
	ErrUnsigned  = errors.New("peer: the request is not vouched for by a node")
	ErrBadMAC    = errors.New("peer: the request's MAC does not match (another credential key, or altered)")
	ErrStale     = errors.New("peer: the request's time is outside the window (clocks apart, or a replay)")
	ErrReplay    = errors.New("peer: the request was seen before (a replay)")
	ErrWrongNode = errors.New("peer: the request is vouched for another node")
	ErrBusy      = errors.New("peer: too many vouched requests in the window")
)

// Identity is the user a node vouches for, as it authenticated them.
type Identity struct {
	User      string `json:"user"`
	Role      string `json:"role"`
	Remote    string `json:"remote"`     // the user's address as the sending node saw it
	UserAgent string `json:"user_agent"` // the user's client
}

// Deriver is the keyring's derivation from the credential key
// (keyring.Keyring.DeviceSecret).
type Deriver interface {
	DeviceSecret(deviceID, salt string) string
}

// KeyFrom derives the key nodes vouch with from the credential key every
// node shares, through the keyring's derivation under an id no device can
// have (a NUL byte; the API's bootstrap-admin print does the same), so it
// is never the secret of a device.
func KeyFrom(k Deriver) []byte {
	return []byte(k.DeviceSecret("\x00peer-requests", "bodycam-peer-v1"))
}

// Options configure an Auth.
type Options struct {
	// Node is this node's id: what it signs as, and the only receiver it
	// accepts requests for.
	Node string
	// Key is the secret every node shares (KeyFrom, or the credential key
	// itself): at least 16 bytes. It is derived again with a fixed label,
	// so the MAC key is used for nothing else.
	Key []byte
	// Window is how far a request's time may be from the receiver's clock
	// (default 60 s).
	Window time.Duration
	// MaxSeen bounds the replay cache (default 1,000,000 nonces); past it,
	// requests are refused (ErrBusy) until old nonces leave the window.
	MaxSeen int
	Now     func() time.Time // tests
}

// Auth signs and checks vouched requests.
type Auth struct {
	node    string
	key     []byte
	window  time.Duration
	maxSeen int
	now     func() time.Time

	mu        sync.Mutex
	seen      map[string]time.Time // nonce -> when its time leaves the window
	lastSweep time.Time
}

// New makes an Auth.
func New(o Options) (*Auth, error) {
	if o.Node == "" {
		return nil, errors.New("peer: no node id")
	}
	if len(o.Key) < 16 {
		return nil, errors.New("peer: the key must be at least 16 bytes")
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.MaxSeen <= 0 {
		o.MaxSeen = 1_000_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := hmac.New(sha256.New, o.Key)
	m.Write([]byte("bodycam-peer-request-mac-v1"))
	return &Auth{node: o.Node, key: m.Sum(nil), window: o.Window, maxSeen: o.MaxSeen, now: o.Now,
		seen: map[string]time.Time{}}, nil
}

// Node is this node's id.
func (a *Auth) Node() string { return a.node }

// Sign vouches for req, to be sent to node to with body (which req must
// carry), on behalf of id.
func (a *Auth) Sign(req *http.Request, to string, body []byte, id Identity) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	ident, _ := json.Marshal(id)
	h := req.Header
	h.Set(HeaderFrom, a.node)
	h.Set(HeaderTo, to)
	h.Set(HeaderTime, strconv.FormatInt(a.now().UnixMilli(), 10))
	h.Set(HeaderNonce, hex.EncodeToString(nonce))
	h.Set(HeaderIdentity, base64.RawURLEncoding.EncodeToString(ident))
	h.Set(HeaderMAC, base64.RawURLEncoding.EncodeToString(a.mac(req, body)))
}

// Verify checks that r, whose body is body, is vouched for by a node for
// this node, and returns the identity and the sending node. Every error
// means 401.
func (a *Auth) Verify(r *http.Request, body []byte) (Identity, string, error) {
	h := r.Header
	for _, k := range []string{HeaderFrom, HeaderTo, HeaderTime, HeaderNonce, HeaderIdentity, HeaderMAC} {
		if h.Get(k) == "" {
			return Identity{}, "", ErrUnsigned
		}
	}
	if h.Get(HeaderTo) != a.node {
		return Identity{}, "", fmt.Errorf("%w (%q, this is %q)", ErrWrongNode, h.Get(HeaderTo), a.node)
	}
	ms, err := strconv.ParseInt(h.Get(HeaderTime), 10, 64)
	if err != nil {
		return Identity{}, "", ErrUnsigned
	}
	at, now := time.UnixMilli(ms), a.now()
	if at.Before(now.Add(-a.window)) || at.After(now.Add(a.window)) {
		return Identity{}, "", fmt.Errorf("%w (%s from here)", ErrStale, at.Sub(now).Round(time.Millisecond))
	}
	got, err := base64.RawURLEncoding.DecodeString(h.Get(HeaderMAC))
	if err != nil || !hmac.Equal(got, a.mac(r, body)) {
		return Identity{}, "", ErrBadMAC
	}
	var id Identity
	ident, err := base64.RawURLEncoding.DecodeString(h.Get(HeaderIdentity))
	if err != nil || json.Unmarshal(ident, &id) != nil {
		return Identity{}, "", ErrUnsigned // vouched but unreadable: a node of another version
	}
	if err := a.once(h.Get(HeaderFrom)+"/"+h.Get(HeaderNonce), at.Add(a.window), now); err != nil {
		return Identity{}, "", err
	}
	return id, h.Get(HeaderFrom), nil
}

// once records a nonce, refusing one seen before. Only requests whose MAC
// matched get here, so only nodes can fill the cache.
func (a *Auth) once(nonce string, until, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.lastSweep) > a.window/4 || len(a.seen) >= a.maxSeen {
		for n, t := range a.seen {
			if !t.After(now) {
				delete(a.seen, n)
			}
		}
		a.lastSweep = now
	}
	if _, dup := a.seen[nonce]; dup {
		return ErrReplay
	}
	if len(a.seen) >= a.maxSeen {
		return ErrBusy
	}
	a.seen[nonce] = until
	return nil
}

// mac is the HMAC over what a request says: each field with its length
// first, so no two requests share a message.
func (a *Auth) mac(r *http.Request, body []byte) []byte {
	sum := sha256.Sum256(body)
	var msg bytes.Buffer
	for _, f := range []string{"bodycam-peer-v1", r.Method, r.URL.EscapedPath(), r.URL.RawQuery,
		r.Header.Get(HeaderFrom), r.Header.Get(HeaderTo), r.Header.Get(HeaderTime), r.Header.Get(HeaderNonce),
		hex.EncodeToString(sum[:]), r.Header.Get(HeaderIdentity)} {
		binary.Write(&msg, binary.BigEndian, uint32(len(f)))
		msg.WriteString(f)
	}
	m := hmac.New(sha256.New, a.key)
	m.Write(msg.Bytes())
	return m.Sum(nil)
}
