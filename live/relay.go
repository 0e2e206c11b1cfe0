// Package live is the WebRTC relay: supervisors watch any recorder live in
// a browser over WHEP. It takes a copy of what ingest receives, keeps the
// current GOP of each stream so a new viewer's picture starts at once, fans
// units out to viewers without ever waiting for one, and converts what
// browsers cannot play (AAC audio, H.265 or B-frame video) only while
// someone watches. Every viewing session is recorded for audit.
package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/media"
)

// Errors of Offer and Hangup.
var (
	ErrNotLive  = errors.New("device is not live")
	ErrLimit    = errors.New("too many live viewing sessions")
	ErrBadOffer = errors.New("bad SDP offer")
	ErrNoMedia  = errors.New("nothing in the offer can carry this stream")
	ErrNotFound = errors.New("no such viewing session")
	ErrAudit    = errors.New("the viewing session cannot be recorded for audit")
)

// Audit records viewing sessions (the catalog).
type Audit interface {
	StartLiveView(ctx context.Context, v evidence.LiveView) error
	EndLiveView(ctx context.Context, id string, endedAt time.Time, reason string) error
}

// Slots make the viewing limits cluster-wide: every node's viewers count
// in shared pools (coord.Local, coord.Redis). TakeSlot is idempotent per
// id, answers coord.ErrFull at the limit, and members not renewed within
// ttl stop counting; RenewSlots extends several members of a pool in one
// call. coord.ErrUnavailable (or any other error) means the backend did not
// answer: the relay then goes on with its own counters alone.
type Slots interface {
	TakeSlot(ctx context.Context, pool, id string, limit int, ttl time.Duration) error
	RenewSlots(ctx context.Context, pool string, ids []string, ttl time.Duration) error
	ReleaseSlot(ctx context.Context, pool, id string) error
}

// The slot pools of the viewing limits: every session, and each user's.
const PoolAll = "view:all"

// PoolUser is the pool of one user's sessions.
func PoolUser(user string) string { return "view:user:" + user }

// slotTimeout bounds one call to the slots: past it the backend is taken as
// down for that call, and the local counters decide.
const slotTimeout = 2 * time.Second

// Options configure a Relay.
type Options struct {
	// UDPAddr is the one UDP port of every viewer's ICE (a UDP mux), e.g.
	// ":8189"; empty disables ICE over UDP.
	UDPAddr string
	// TCPAddr is the ICE-TCP fallback listener, e.g. ":8189"; empty
	// disables it.
	TCPAddr string
	// PublicIPs replace the host candidates' addresses (1:1 NAT).
	PublicIPs []string
	// ICEServers are STUN/TURN servers offered to the relay's ICE agent.
	ICEServers []webrtc.ICEServer
	// Loopback includes 127.0.0.1 among the candidates (tests, one-machine
	// set-ups).
	Loopback bool
	// MaxSessions bounds viewing sessions in all; MaxPerUser per user. With
	// Slots they bound the sessions of every node together (pools PoolAll
	// and PoolUser); each node also holds its own to them, which is all
	// that holds while the slots do not answer.
	MaxSessions, MaxPerUser int
	// Slots: nil keeps the limits to this relay.
	Slots Slots
	// SlotTTL is how long a session's slot counts without renewal (default
	// 20 s); the relay renews its sessions' slots every quarter of it.
	SlotTTL     time.Duration
	Transcoders Transcoders
	Audit       Audit
	Registry    prometheus.Registerer
	Log         *slog.Logger
}

// Relay is the live role.
type Relay struct {
	o     Options
	log   *slog.Logger
	m     *metrics
	api   *webrtc.API
	udp   *net.UDPConn
	batch *batchConn // over udp: the viewers' datagrams of a pass go out together
	tcp   net.Listener
	done  chan struct{}

	mu       sync.Mutex
	streams  map[string]*stream // by device
	sessions map[string]*viewer // by session id
	perUser  map[string]int     // sessions by user

	slotsWarned atomic.Int64 // unix nanoseconds of the last warning that the slots do not answer
}

// New opens the relay's ICE sockets and prepares its WebRTC engine.
func New(o Options) (*Relay, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 200
	}
	if o.MaxPerUser <= 0 {
		o.MaxPerUser = 32
	}
	if o.SlotTTL <= 0 {
		o.SlotTTL = 20 * time.Second
	}
	if o.UDPAddr == "" && o.TCPAddr == "" {
		return nil, errors.New("live: neither a UDP nor a TCP address for ICE")
	}
	r := &Relay{o: o, log: o.Log, m: newMetrics(o.Registry), done: make(chan struct{}),
		streams: map[string]*stream{}, sessions: map[string]*viewer{}, perUser: map[string]int{}}

	se := webrtc.SettingEngine{}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelError
	se.LoggerFactory = lf
	se.SetICETimeouts(5*time.Second, 15*time.Second, 2*time.Second)
	se.SetIncludeLoopbackCandidate(o.Loopback)
	// No multicast DNS: pion's default opens two sockets and five
	// goroutines per viewer to resolve browsers' ".local" candidates, which
	// only a relay on the viewer's own LAN could reach. A browser's checks
	// reach the relay's candidates all the same, and ICE learns its address
	// from them (peer-reflexive).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// The relay is the DTLS server (a=setup:passive), without the cookie
	// exchange: the viewer starts the handshake as soon as its ICE is up,
	// and it takes two round trips instead of three (pion's answerer
	// default is the client, with HelloVerifyRequest). The cookie guards a
	// server against spoofed source addresses; here DTLS only ever comes
	// from the address ICE has checked with the session's credentials.
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return nil, err
	}
	se.SetDTLSInsecureSkipHelloVerify(true)
	var networks []webrtc.NetworkType
	if o.UDPAddr != "" {
		addr, err := net.ResolveUDPAddr("udp", o.UDPAddr)
		if err != nil {
			return nil, fmt.Errorf("live: ICE UDP port %s: %w", o.UDPAddr, err)
		}
		conn, err := net.ListenUDP("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("live: ICE UDP port %s: %w", o.UDPAddr, err)
		}
		// Room for a pass's datagrams (a unit to every viewer, a new
		// viewer's GOP) while the NIC drains them; the kernel caps it at
		// net.core.wmem_max.
		conn.SetWriteBuffer(4 << 20)
		r.udp, r.batch = conn, newBatchConn(conn)
		se.SetICEUDPMux(webrtc.NewICEUDPMux(lf.NewLogger("ice-udp"), r.batch))
		networks = append(networks, webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6)
	}
	if o.TCPAddr != "" {
		ln, err := net.Listen("tcp", o.TCPAddr)
		if err != nil {
			r.closeSockets()
			return nil, fmt.Errorf("live: ICE TCP port %s: %w", o.TCPAddr, err)
		}
		r.tcp = ln
		se.SetICETCPMux(webrtc.NewICETCPMux(lf.NewLogger("ice-tcp"), ln, 64))
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	if len(o.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: o.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost,
		}); err != nil {
			r.closeSockets()
			return nil, fmt.Errorf("live: public IPs: %w", err)
		}
	}

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		r.closeSockets()
		return nil, err
	}
	// No interceptors: what a send-only relay needs of them, the writers do
	// once per stream or per pass (fanout.go): NACKs are answered from the
	// stream's packet log (pion's responder kept a copy of every packet per
	// viewer), sender reports go once a second from the writer (pion's
	// took a lock and the time per packet).
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	r.api = webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	return r, nil
}

// UDPAddr is the ICE UDP port's address, if any.
func (r *Relay) UDPAddr() net.Addr {
	if r.udp == nil {
		return nil
	}
	return r.udp.LocalAddr()
}

// Run serves until ctx ends, then closes every viewing session. With
// Slots, it renews its sessions' slots meanwhile.
func (r *Relay) Run(ctx context.Context) error {
	var renew <-chan time.Time
	if r.o.Slots != nil {
		t := time.NewTicker(r.o.SlotTTL / 4)
		defer t.Stop()
		renew = t.C
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-renew:
			r.renewSlots(ctx)
		}
	}
	r.mu.Lock()
	close(r.done)
	viewers := make([]*viewer, 0, len(r.sessions))
	for _, v := range r.sessions {
		viewers = append(viewers, v)
	}
	r.mu.Unlock()
	for _, v := range viewers {
		v.close("server shutting down")
	}
	r.closeSockets()
	return nil
}

func (r *Relay) closeSockets() {
	if r.udp != nil {
		r.udp.Close()
	}
	if r.tcp != nil {
		r.tcp.Close()
	}
}

// Start is called by ingest when a publisher starts: its live stream.
// It returns the stream as an ingest.LiveFeed.
func (r *Relay) Start(device, recording string, tracks []media.Track) *stream {
	s := newStream(r, device, recording, tracks)
	r.mu.Lock()
	old := r.streams[device]
	r.streams[device] = s
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	r.m.streams.Inc()
	return s
}

func (r *Relay) remove(s *stream) {
	r.mu.Lock()
	if r.streams[s.device] == s {
		delete(r.streams, s.device)
		r.m.streams.Dec()
	}
	r.mu.Unlock()
}

// OfferRequest is one viewer's WHEP offer.
type OfferRequest struct {
	Device    string
	User      string
	Remote    string
	UserAgent string
	SDP       string
}

// Session is an accepted viewing session.
type Session struct {
	ID          string
	Answer      string
	RecordingID string
	Video       string // what the viewer gets, e.g. "H264" or "H264 (transcoded from H265)"
	Audio       string
}

// Offer answers a viewer's offer. The session counts against the limits
// until it ends: hung up, failed, or its publisher gone.
func (r *Relay) Offer(ctx context.Context, req OfferRequest) (Session, error) {
	r.mu.Lock()
	s := r.streams[req.Device]
	switch {
	case s == nil:
		r.mu.Unlock()
		return Session{}, fmt.Errorf("%w: %s", ErrNotLive, req.Device)
	case len(r.sessions) >= r.o.MaxSessions:
		r.mu.Unlock()
		r.m.refused.WithLabelValues("limit").Inc()
		return Session{}, fmt.Errorf("%w: %d in all, the most this server takes", ErrLimit, r.o.MaxSessions)
	case r.perUser[req.User] >= r.o.MaxPerUser:
		r.mu.Unlock()
		r.m.refused.WithLabelValues("user_limit").Inc()
		return Session{}, fmt.Errorf("%w: %s already has %d, the most one user may", ErrLimit, req.User, r.o.MaxPerUser)
	}
	id := newID()
	v := &viewer{r: r, s: s, id: id, user: req.User, done: make(chan struct{}), connected: make(chan struct{}),
		held: map[string]bool{}}
	r.sessions[id] = v // reserved; released by close
	r.perUser[req.User]++
	r.mu.Unlock()
	if err := r.takeSlots(ctx, v); err != nil {
		v.abandon()
		return Session{}, err
	}

	answer, err := v.negotiate(ctx, req.SDP)
	if err != nil {
		v.abandon()
		return Session{}, err
	}
	v.view = evidence.LiveView{ID: id, DeviceID: req.Device, RecordingID: s.recording, User: req.User,
		RemoteAddr: req.Remote, UserAgent: req.UserAgent, Video: v.videoDesc, Audio: v.audioDesc, StartedAt: time.Now().UTC()}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	err = r.o.Audit.StartLiveView(actx, v.view)
	cancel()
	if err != nil {
		r.log.Error("live viewing refused: it cannot be recorded for audit", "device", req.Device, "user", req.User, "err", err)
		r.m.errors.WithLabelValues("audit").Inc()
		v.abandon()
		return Session{}, fmt.Errorf("%w: %v", ErrAudit, err)
	}
	v.audited.Store(true)
	if !s.add(v) {
		v.close("publisher stopped")
		return Session{}, fmt.Errorf("%w: %s", ErrNotLive, req.Device)
	}
	r.m.sessions.Inc()
	r.m.started.Inc()
	go v.watchConnect()
	r.log.Info("live viewing started", "session", id, "device", req.Device, "user", req.User, "remote", req.Remote,
		"video", v.videoDesc, "audio", v.audioDesc)
	return Session{ID: id, Answer: answer, RecordingID: s.recording, Video: v.videoDesc, Audio: v.audioDesc}, nil
}

// Hangup ends a viewing session (WHEP DELETE). Only its user or an admin
// may end it.
func (r *Relay) Hangup(device, id, user string, admin bool) error {
	r.mu.Lock()
	v := r.sessions[id]
	r.mu.Unlock()
	if v == nil || v.s.device != device || (!admin && v.user != user) {
		return ErrNotFound
	}
	v.close("viewer hung up")
	return nil
}

// ViewerInfo describes a session in progress.
type ViewerInfo struct {
	ID, Device, User, Remote string
	Video, Audio             string
	Started                  time.Time
	Connected                bool
	Dropped                  uint64
}

// Viewers lists the sessions in progress.
func (r *Relay) Viewers() []ViewerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ViewerInfo, 0, len(r.sessions))
	for _, v := range r.sessions {
		if !v.audited.Load() {
			continue
		}
		out = append(out, ViewerInfo{ID: v.id, Device: v.s.device, User: v.user, Remote: v.view.RemoteAddr,
			Video: v.videoDesc, Audio: v.audioDesc, Started: v.view.StartedAt, Connected: v.isConnected(), Dropped: v.dropped.Load()})
	}
	return out
}

// release frees a session's place.
func (r *Relay) release(v *viewer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions[v.id] != v {
		return
	}
	delete(r.sessions, v.id)
	if r.perUser[v.user]--; r.perUser[v.user] <= 0 {
		delete(r.perUser, v.user)
	}
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ParseICEServers reads "stun:host:port" and "turn:user:pass@host:port"
// style entries (comma-separated in the configuration).
func ParseICEServers(list []string) ([]webrtc.ICEServer, error) {
	var out []webrtc.ICEServer
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		scheme, rest, ok := strings.Cut(s, ":")
		if !ok || (scheme != "stun" && scheme != "stuns" && scheme != "turn" && scheme != "turns") || rest == "" {
			return nil, fmt.Errorf("ICE server %q: want stun:host:port or turn:user:password@host:port", s)
		}
		srv := webrtc.ICEServer{URLs: []string{s}}
		if cred, host, ok := strings.Cut(rest, "@"); ok {
			user, pass, ok := strings.Cut(cred, ":")
			if !ok || user == "" {
				return nil, fmt.Errorf("ICE server %q: credentials must be user:password", s)
			}
			srv = webrtc.ICEServer{URLs: []string{scheme + ":" + host}, Username: user, Credential: pass}
		}
		out = append(out, srv)
	}
	return out, nil
}
