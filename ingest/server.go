// Package ingest records what recorders publish: an RTSP server (gortsplib)
// that authenticates devices, turns each publish session into a recording of
// hashed fMP4 segments in a local spool (durable within about a second), and
// an uploader that moves them to the object store and the catalog, chained
// per device, ending each recording with a signed manifest.
package ingest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/connlimit"
	"github.com/bodycam/bodycam/media"
)

// Keys derives device secrets.
type Keys interface {
	DeviceSecret(deviceID, salt string) string
}

// LiveSink takes a live copy of what publishers send: the live relay. Its
// methods are called on the RTSP reader goroutines and must not block.
type LiveSink interface {
	// Start announces a publisher's tracks, in the order Write numbers them.
	Start(device, recording string, tracks []media.Track) LiveFeed
}

// LiveFeed is one publisher's live media.
type LiveFeed interface {
	// Write hands over one access unit; the sink may keep it.
	Write(track int, u media.Unit)
	// Close says the publisher has gone.
	Close()
}

// Options configure a Server.
type Options struct {
	RTSPAddr string // TCP (and RTSPS when TLS is set)
	// UDPAddr is the RTP port of the UDP transport (RTCP is the next port);
	// empty disables UDP.
	UDPAddr string
	TLS     *tls.Config
	// ReadTimeout ends a recording over TCP whose publisher sends nothing
	// for this long (within an eighth more: the deadline is moved once
	// every ReadTimeout/8, not before every packet). Default 10s.
	ReadTimeout     time.Duration
	SegmentDuration time.Duration
	Spool           *Spool
	Store           Store
	Catalog         Catalog
	Keys            Keys
	Signer          Signer
	Events          Publisher
	Live            LiveSink // optional
	Custody         Custody  // optional
	Holds           Holds    // optional
	Registry        prometheus.Registerer
	// DeviceRegistry receives the per-device series (which devices publish,
	// and when): who may read them is narrower than who may read the rest.
	// nil: Registry.
	DeviceRegistry prometheus.Registerer
	Log            *slog.Logger
	UploadWorkers  int
	// NodeID names this node in the cluster (device leases, recordings).
	NodeID string
	// Leases makes one publisher per device hold across nodes; nil: this
	// node alone decides (fences are issued here).
	Leases Leases

	// RequestTimeout: a connection that is not recording must complete each
	// request (the first counted from the connection's accept, the TLS
	// handshake included) within it, or it is closed. Default 10s.
	RequestTimeout time.Duration
	// MaxPendingPerHost caps the connections one client address (IPv4, or
	// IPv6 /64) may hold before they record; recording connections do not
	// count. Default 64.
	MaxPendingPerHost int
	// MaxPending caps the connections all addresses together may hold
	// before they record (recording connections do not count, so it never
	// refuses a recorder for the number recording). Default
	// connlimit.DefaultMaxPending: a quarter of the file limit.
	MaxPending int
}

// Server is the ingest role.
type Server struct {
	o     Options
	rtsp  *gortsplib.Server
	conns *connlimit.Listener // under rtsp's listener
	up    *uploader
	m     *metrics
	log   *slog.Logger

	mu       sync.Mutex
	live     map[string]*session // by device id
	fences   map[string]int64    // the last fence issued or seen here, by device
	ends     map[string]endNote  // devices whose last session here ended without their recorder stopping it
	sessions sync.WaitGroup
	ready    chan struct{}
	draining atomic.Bool
}

// New builds a Server; Run starts it.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.MaxPendingPerHost == 0 {
		o.MaxPendingPerHost = 64
	}
	if o.MaxPending == 0 {
		o.MaxPending = connlimit.DefaultMaxPending()
	}
	if o.UploadWorkers == 0 {
		o.UploadWorkers = 8
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.DeviceRegistry == nil {
		o.DeviceRegistry = o.Registry
	}
	s := &Server{o: o, log: o.Log, m: newMetrics(o.Registry, o.DeviceRegistry, o.Spool), live: map[string]*session{}, fences: map[string]int64{}, ends: map[string]endNote{}, ready: make(chan struct{})}
	s.up = &uploader{superseded: s.supersede, spool: o.Spool, store: o.Store, cat: o.Catalog, signer: o.Signer, events: o.Events, custody: o.Custody, holds: o.Holds,
		log: o.Log.With("part", "uploader"), m: s.m, workers: o.UploadWorkers,
		notify: make(chan struct{}, 1), busy: map[string]bool{}, dirty: map[string]bool{}, retry: map[string]retryState{}}
	return s
}

// Ready is closed once the RTSP listener accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the RTSP listener's address, once Ready.
func (s *Server) Addr() string { return s.rtsp.NetListener().Addr().String() }

// Run recovers the spool, then records until ctx ends. Shutdown order: stop
// accepting, end every recording (its last media flushed to the spool), then
// one last upload pass.
func (s *Server) Run(ctx context.Context) error {
	ended, err := s.o.Spool.recover(time.Now())
	if err != nil {
		return err
	}
	for _, rec := range ended {
		s.log.Warn("recording interrupted by an abnormal stop; recovered from the spool", "recording", rec)
		s.m.gaps.WithLabelValues(string(evidence.GapInterrupted)).Inc()
	}
	upCtx, stopUploads := context.WithCancel(context.WithoutCancel(ctx))
	upDone := make(chan error, 1)
	go func() { upDone <- s.up.Run(upCtx) }()

	s.rtsp = &gortsplib.Server{
		Handler:      s,
		RTSPAddress:  s.o.RTSPAddr,
		ReadTimeout:  s.o.ReadTimeout,
		WriteTimeout: 10 * time.Second,
		TLSConfig:    s.o.TLS,
		AuthMethods:  authMethods(s.o.TLS != nil),
		// gortsplib reads a connection's first bytes (and its TLS
		// handshake) with no deadline, and stops the whole server on an
		// Accept error such as EMFILE: connlimit bounds both, and caps what
		// one address, and all of them, may hold before they record.
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			// gortsplib sets a read deadline before every RTP packet:
			// once recording, moving it once every ReadTimeout/8 is
			// enough (a read timeout then fires 10 to 11.25 s after the
			// last data, for 10 s).
			s.conns = connlimit.New(ln, connlimit.Options{Name: "rtsp", PerHost: s.o.MaxPendingPerHost, MaxPending: s.o.MaxPending,
				RequestTimeout: s.o.RequestTimeout, DeadlineSlack: s.o.ReadTimeout / 8, Registry: s.o.Registry, Log: s.log})
			return s.conns, nil
		},
	}
	if s.o.UDPAddr != "" {
		rtcp, err := nextPort(s.o.UDPAddr)
		if err != nil {
			stopUploads()
			return fmt.Errorf("rtsp-udp-addr: %v", err)
		}
		s.rtsp.UDPRTPAddress, s.rtsp.UDPRTCPAddress = s.o.UDPAddr, rtcp
	}
	if err := s.rtsp.Start(); err != nil {
		stopUploads()
		<-upDone
		return fmt.Errorf("rtsp-addr: %v", err)
	}
	close(s.ready)
	var leases sync.WaitGroup
	if s.o.Leases != nil {
		leaseCtx, stopLeases := context.WithCancel(ctx)
		defer func() { stopLeases(); leases.Wait() }()
		leases.Add(1)
		go func() { defer leases.Done(); s.reassert(leaseCtx, 3*time.Second) }()
	}
	s.log.Info("rtsp listening", "addr", s.Addr(), "udp", s.o.UDPAddr, "tls", s.o.TLS != nil,
		"max_pending", s.o.MaxPending, "max_pending_per_host", s.o.MaxPendingPerHost)
	errc := make(chan error, 1)
	go func() { errc <- s.rtsp.Wait() }()
	select {
	case <-ctx.Done():
		s.rtsp.Close()
		<-errc
		err = nil
	case err = <-errc:
	}
	s.sessions.Wait()
	stopUploads()
	<-upDone
	return err
}

// authMethods are the RTSP authentication methods offered and accepted:
// Digest (MD5, the one FFmpeg and GStreamer speak) always, Basic only over
// TLS, where the secret it carries is not in clear text.
func authMethods(tls bool) []auth.VerifyMethod {
	if tls {
		return []auth.VerifyMethod{auth.VerifyMethodDigestMD5, auth.VerifyMethodBasic}
	}
	return []auth.VerifyMethod{auth.VerifyMethodDigestMD5}
}

func nextPort(addr string) (string, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", fmt.Errorf("want host:port, got %q", addr)
	}
	var p int
	if _, err := fmt.Sscanf(addr[i+1:], "%d", &p); err != nil || p <= 0 || p%2 != 0 || p >= 65535 {
		return "", fmt.Errorf("want an even port (RTCP takes the next one), got %q", addr)
	}
	return fmt.Sprintf("%s:%d", addr[:i], p+1), nil
}

// Live describes a recorder publishing now.
type Live struct {
	DeviceID    string    `json:"device_id"`
	RecordingID string    `json:"recording_id"`
	Since       time.Time `json:"since"`
	RemoteAddr  string    `json:"remote_addr"`
	Codecs      []string  `json:"codecs"`
	NodeID      string    `json:"node_id"`
}

// Live lists who is publishing now, by device id.
func (s *Server) Live() []Live {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Live, 0, len(s.live))
	for _, ss := range s.live {
		if ss.recordingID == "" {
			continue
		}
		out = append(out, Live{DeviceID: ss.device.ID, RecordingID: ss.recordingID, Since: ss.started, RemoteAddr: ss.remote, Codecs: ss.codecNames(), NodeID: s.o.NodeID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// unknownSecret makes credential checks for unknown devices fail the same
// way as wrong secrets do, so ids cannot be probed.
var unknownSecret = randHex(24)

func (s *Server) refuse(reason string, code base.StatusCode, log func(string, ...any), msg string, args ...any) (*base.Response, error) {
	s.m.refused.WithLabelValues(reason).Inc()
	if log != nil {
		log(msg, args...)
	}
	return &base.Response{StatusCode: code}, errors.New(msg)
}

// OnAnnounce authenticates a publisher and checks what it wants to send.
func (s *Server) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	remote := ctx.Conn.NetConn().RemoteAddr().String()
	id := strings.Trim(ctx.Path, "/")
	log := s.log.With("device", id, "remote", remote)
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dev, err := s.o.Catalog.Device(rctx, id)
	secret := unknownSecret
	switch {
	case err == nil:
		secret = s.o.Keys.DeviceSecret(dev.ID, dev.SecretSalt)
	case errors.Is(err, catalog.ErrNotFound) || evidence.ValidateDeviceID(id) != nil:
	default:
		s.m.errors.WithLabelValues("catalog").Inc()
		return s.refuse("catalog", base.StatusServiceUnavailable, log.Error, "catalog unavailable; publisher refused", "err", err)
	}
	if !ctx.Conn.VerifyCredentials(ctx.Request, id, secret) {
		if _, given := ctx.Request.Header["Authorization"]; !given {
			// The first request of every client: answer with the challenge.
			return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
		}
		if s.o.TLS == nil && basicAuth(ctx.Request) {
			s.m.refused.WithLabelValues("basic_auth").Inc()
			log.Warn("publisher refused: it sent its secret in clear text (Basic authentication over plain RTSP); " +
				"only Digest is accepted without RTSPS: set the recorder to Digest or use RTSPS, and treat the secret as exposed")
			// Without the refused credentials gortsplib answers with a
			// fresh Digest challenge and keeps the connection, instead of
			// closing it as it does after wrong credentials: the recorder
			// can still answer it with Digest.
			delete(ctx.Request.Header, "Authorization")
			return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
		}
		s.m.refused.WithLabelValues("auth").Inc()
		log.Warn("publisher refused: unknown device, wrong secret, or a path that is not the device's id")
		return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	if dev.Disabled {
		return s.refuse("disabled", base.StatusForbidden, log.Warn, "publisher refused: device is disabled")
	}
	q, _ := url.ParseQuery(ctx.Query)
	caseID := q.Get("case")
	if caseID != "" && (len(caseID) > 64 || evidence.ValidateDeviceID(caseID) != nil) {
		return s.refuse("bad_request", base.StatusBadRequest, log.Warn, "publisher refused: bad case id", "case", caseID)
	}
	var tracks []*track
	for _, medi := range ctx.Description.Medias {
		for _, forma := range medi.Formats {
			t, err := newTrack(len(tracks)+1, medi, forma)
			if err != nil {
				return s.refuse("codec", base.StatusUnsupportedMediaType, log.Warn, "publisher refused: "+err.Error())
			}
			tracks = append(tracks, t)
		}
	}
	if len(tracks) == 0 {
		return s.refuse("codec", base.StatusBadRequest, log.Warn, "publisher refused: no media announced")
	}
	if err := s.o.Spool.CheckSpace(); err != nil {
		return s.refuse("spool_full", base.StatusServiceUnavailable, log.Error, "publisher refused: "+err.Error())
	}
	if s.draining.Load() {
		return s.refuse("draining", base.StatusServiceUnavailable, log.Info, "publisher refused: this node is draining before it stops; publish to another")
	}
	ss := &session{srv: s, device: dev, caseID: caseID, remote: remote, tracks: tracks, rtsp: ctx.Session,
		log: log, done: make(chan struct{}), halted: make(chan struct{}), connClosed: make(chan struct{})}
	s.mu.Lock()
	other := s.live[id]
	s.mu.Unlock()
	ss.lastRecv.Store(time.Now().UnixNano())
	if other != nil && !s.takeOver(other, ss) {
		return s.refuse("duplicate", base.StatusCode(409), log.Warn, "publisher refused: the device is already publishing", "other", other.remote)
	}
	s.mu.Lock()
	if cur := s.live[id]; cur != nil && cur != other {
		s.mu.Unlock() // another connection of the device got in first
		return s.refuse("duplicate", base.StatusCode(409), log.Warn, "publisher refused: the device is already publishing", "other", cur.remote)
	}
	s.live[id] = ss
	s.mu.Unlock()
	if err := s.lease(ss); err != nil {
		s.mu.Lock()
		delete(s.live, id)
		s.mu.Unlock()
		var held errHeld
		errors.As(err, &held)
		return s.refuse("duplicate", base.StatusCode(409), log.Warn, err.Error(), "other_node", held.holder.Node)
	}
	ctx.Session.SetUserData(ss)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// basicAuth reports whether req carries Basic credentials.
func basicAuth(req *base.Request) bool {
	var h headers.Authorization
	return h.Unmarshal(req.Header["Authorization"]) == nil && h.Method == headers.AuthMethodBasic
}

// OnRequest gives the connection's next request a full request timeout.
func (s *Server) OnRequest(c *gortsplib.ServerConn, _ *base.Request) {
	s.conns.RequestDone(c.NetConn())
}

// OnSetup accepts the publisher's transports; bodycam serves no RTSP readers
// (live viewing is WebRTC).
func (s *Server) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStateInitial {
		return &base.Response{StatusCode: base.StatusMethodNotAllowed}, nil, errors.New("reading over RTSP is not offered; watch live over WebRTC")
	}
	return &base.Response{StatusCode: base.StatusOK}, nil, nil
}

// OnRecord starts the recording.
func (s *Server) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	ss, _ := ctx.Session.UserData().(*session)
	if ss == nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, errors.New("RECORD without ANNOUNCE")
	}
	if err := ss.start(); err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, err
	}
	s.leaseRecording(ss)
	// A recording connection is an authenticated device: no longer timed
	// per request nor counted toward its address's cap (many recorders
	// may share one carrier NAT address).
	s.conns.Established(ctx.Conn.NetConn())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnPacketsLost counts RTP sequence gaps.
func (s *Server) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	s.m.packetsLost.Add(float64(ctx.Lost))
	if ss, _ := ctx.Session.UserData().(*session); ss != nil {
		ss.lost.Add(ctx.Lost)
	}
}

// OnDecodeError counts packets gortsplib could not parse.
func (s *Server) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	s.m.errors.WithLabelValues("rtp_decode").Inc()
	s.log.Debug("rtp decode error", "err", ctx.Error)
}

// OnConnClose notes why a publisher's connection ended, so that a session
// that ends for lack of a connection gets the real reason (a read timeout,
// a reset) rather than gortsplib's "not in use".
func (s *Server) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	if sess := ctx.Conn.Session(); sess != nil {
		if ss, _ := sess.UserData().(*session); ss != nil {
			if ctx.Error != nil {
				ss.connErr.Store(&ctx.Error)
			}
			ss.connOnce.Do(func() { close(ss.connClosed) })
		}
	}
}

// connCloseWait bounds how long a session that ended for lack of a
// connection waits for that connection's close to be reported: gortsplib
// detaches the connection from the session before it reports the close, on
// two goroutines, so either may come first.
const connCloseWait = 2 * time.Second

// OnSessionClose ends the session's recording.
func (s *Server) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	ss, _ := ctx.Session.UserData().(*session)
	if ss == nil {
		return
	}
	// The device may publish again at once: its next session is not
	// refused while this one's last media goes to the spool (a loaded
	// disk can take seconds), and records after it (the uploader takes a
	// device's recordings oldest first).
	s.mu.Lock()
	if s.live[ss.device.ID] == ss {
		delete(s.live, ss.device.ID)
	}
	s.mu.Unlock()
	var notInUse liberrors.ErrServerSessionNotInUse
	if errors.As(ctx.Error, &notInUse) {
		select {
		case <-ss.connClosed:
		case <-time.After(connCloseWait):
		}
	}
	ss.stop(ctx.Error)
	s.unlease(ss)
}

// noteEnd keeps how a device's session ended for its next one: a hole
// from its last media when the recorder did not stop it, nothing when it
// did. A session that recorded nothing leaves the hole it inherited as it
// was.
func (s *Server) noteEnd(ss *session, reason string, byPublisher, recorded bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case byPublisher:
		delete(s.ends, ss.device.ID)
	case !recorded && ss.prior != nil:
		s.ends[ss.device.ID] = *ss.prior
	default:
		s.ends[ss.device.ID] = endNote{recording: ss.recordingID, last: ss.lastMedia(), reason: reason}
	}
}

// staleAfter is how long a publisher's session may have received nothing
// before a new connection of the same device takes its place: the
// recorder has reconnected (its old connection died without a close the
// server saw) and must not wait for the read timeout. A session receiving
// media is never displaced: the second publisher is refused.
const staleAfter = 2 * time.Second

// takeOverWait bounds how long a new publisher waits for the stale session
// it displaces to stop recording.
const takeOverWait = 3 * time.Second

// takeOver ends other, a session of the same device as ss, if it records
// and has received nothing for staleAfter, and reports whether it stopped
// recording in time for ss to start.
func (s *Server) takeOver(other, ss *session) bool {
	s.mu.Lock()
	recording := other.recordingID != ""
	s.mu.Unlock()
	if !recording {
		// Still being set up (its ANNOUNCE may wait for the cluster's
		// lease): refused as before, the recorder tries again.
		return false
	}
	if since := time.Since(other.lastMedia()); since < staleAfter {
		return false
	}
	if !other.replaced.CompareAndSwap(nil, &ss.remote) {
		return false // another new connection is taking it over
	}
	s.m.takeovers.Inc()
	ss.log.Warn("the device connected again while its previous session was silent; that session is ended and this one records",
		"previous_remote", other.remote, "previous_recording", other.recordingID, "silent_for", time.Since(other.lastMedia()).Round(time.Millisecond))
	other.rtsp.Close()
	select {
	case <-other.halted:
		return true
	case <-time.After(takeOverWait):
		return false
	}
}

// Stats is what this node records, for its presence in the cluster.
type Stats struct {
	Publishers    int
	BacklogBytes  int64 // closed segments waiting for upload
	UploadBacklog int64 // how many
}

// Stats reports the publishers recording and the upload backlog as last
// measured.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := 0
	for _, ss := range s.live {
		if ss.recordingID != "" {
			n++
		}
	}
	s.mu.Unlock()
	return Stats{Publishers: n, BacklogBytes: s.up.backlogBytes.Load(), UploadBacklog: s.up.backlogSegs.Load()}
}

// Drain refuses new publishers (503, so recorders go to another node)
// while those recording go on until the server stops.
func (s *Server) Drain() { s.draining.Store(true) }
