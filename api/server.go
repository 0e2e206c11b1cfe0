// Package api is bodycam's HTTP face: the JSON API under /api/v1, health,
// metrics and the OpenAPI description. It declares the small interfaces it
// needs from the catalog, the object store and the keyring; cmd/bodycam
// hands it the real ones.
package api

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	_ "embed"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/ingest"
	"github.com/bodycam/bodycam/internal/peer"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/verify"
)

// Catalog is what the API needs from the system of record.
type Catalog interface {
	CreateDevice(ctx context.Context, d evidence.Device) error
	Device(ctx context.Context, id string) (evidence.Device, error)
	Devices(ctx context.Context) ([]evidence.Device, error)
	DisableDevice(ctx context.Context, id string) error
	Recordings(ctx context.Context, f catalog.RecordingFilter) ([]evidence.Recording, error)
	// UploadsOfRecordings and SameEvents: an uploaded recording's origin
	// and the recordings of the same event, for a page of recordings.
	UploadsOfRecordings(ctx context.Context, ids []string) (map[string]catalog.UploadRecord, error)
	SameEvents(ctx context.Context, ids []string) (map[string][]string, error)
	LiveViews
	verify.Catalog
	Ping(ctx context.Context) error
}

// Pinger is a backing service whose reachability /healthz reports.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Objects is the object store as the API reads it.
type Objects interface {
	Pinger
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange reads length bytes of an object from offset (storage.Store).
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// LiveLister reports who is publishing now.
type LiveLister interface {
	Live() []ingest.Live
}

// Keys lists the public keys signatures are checked with, and derives
// device secrets. A *keyring.Keyring lists its own keys; in a cluster,
// keyring.WithCatalog lists every node's, so that what one node signed
// verifies on every other.
type Keys interface {
	PublicKeys(ctx context.Context) ([]keyring.PublicKey, error)
	DeviceSecret(deviceID, salt string) string
}

// Options wire a Server.
type Options struct {
	Catalog Catalog
	Store   Objects
	Keys    Keys
	Live    LiveLister
	// Cluster and Leases: the cluster's nodes and who publishes on each;
	// nil: this node alone.
	Cluster Cluster
	Leases  LeaseLister
	Relay   Relay // nil: live viewing disabled
	// Directory and Peers let viewers watch, through this node, devices
	// that other nodes of a cluster record (cluster.go); either nil: this
	// node's relay only. Peers also lets other nodes' requests in at the
	// internal endpoints (nil: they refuse everything).
	Directory Directory
	Peers     *peer.Auth
	// PeerClient makes the requests to other nodes (nil: a client with a
	// 10 s timeout that follows no redirect; give one with the TLS roots
	// that other nodes' HTTPS advertise URLs need).
	PeerClient *http.Client
	Users      Users
	Audit      DeniedAudit // nil: refusals are only logged and counted
	Cases      Cases
	Custody    Custody   // nil: no custody ledger (tests of other parts)
	Links      Linker    // links footage to cases (caselink)
	Webhooks   Webhooks  // nil: webhook delivery not configured (its endpoints answer 503)
	Uploads    Uploads   // nil: dock upload not configured (its endpoints answer 503)
	Bookmarks  Bookmarks // nil: no bookmarks (their endpoints answer 503)
	Jobs       Jobs      // nil: no jobs (their endpoints, derived media's too, answer 503)
	Shares     Shares    // nil: no sharing (its endpoints answer 503)
	// Copies keeps copy requests (nil: their endpoints answer 503, and
	// with approval required no copy goes out); CopyApproval is the rule
	// (zero: off, copies go out as the roles allow). See copies.go.
	Copies       CopyRequests
	CopyApproval CopyApproval
	// JobQueued is called when a job was queued through the API (the
	// runner's Wake); nil: none.
	JobQueued func()
	// Retention: the retention classes recordings are shown and
	// categorized under; nil: none (recordings show no categories, and
	// the categories endpoints answer 503).
	Retention *Retention
	Signer    catalog.Signer
	// Stats: the supervision dashboard's numbers (nil: its endpoints
	// answer 503); StepLimits: how long a case may stay in each step
	// before it is overdue (nil: evidence.DefaultStepLimits).
	Stats      StatsSource
	StepLimits evidence.StepLimits
	// Remux makes the playback copy of an uploaded video file (nil: such
	// files are served by /original only).
	Remux      Remuxer
	AdminToken string
	// SignIn bounds the work sign-ins may cause (zero: the defaults).
	SignIn SignInLimits
	// Passwords hashes and checks passwords; nil: argon2id (package
	// password). Tests count the checks through it.
	Passwords Passwords
	// RTSPPort goes into the publish URLs handed to new devices, with the
	// scheme rtsps when RTSPS is set (the port then speaks TLS only).
	RTSPPort string
	RTSPS    bool
	// TLS, when set, makes Serve speak HTTPS only, with HSTS on every
	// response.
	TLS *tls.Config
	Log *slog.Logger
	// Registry receives the API's metrics and is served at /metrics.
	Registry *prometheus.Registry
}

// Server serves the HTTP API.
type Server struct {
	o        Options
	handler  http.Handler
	metrics  *httpMetrics
	patterns []string
	views    viewings // viewings of media already in the custody ledger
	health   healthLog
	// adminPrint is the fingerprint of the bootstrap admin token that the
	// sessions it opens carry.
	adminPrint string
	hashing    *hashSlots
	signIns    *hostLimiter
	lastSweep  atomic.Int64 // unix nanoseconds of the last sweep of sign-in failures
	// draining is set when the server is about to stop: /readyz says so
	// while everything still serves (Drain).
	draining atomic.Bool
	srv      atomic.Pointer[http.Server] // while Serve runs
}

// Routes lists the "METHOD /path" patterns the server serves.
func (s *Server) Routes() []string { return append([]string(nil), s.patterns...) }

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the embedded OpenAPI description.
func OpenAPI() []byte { return openAPI }

// New builds a Server.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Passwords == nil {
		o.Passwords = argon2Passwords{}
	}
	limits := o.SignIn.withDefaults()
	s := &Server{o: o, metrics: newHTTPMetrics(o.Registry), adminPrint: adminTokenPrint(o.Keys, o.AdminToken),
		hashing: &hashSlots{slots: make(chan struct{}, limits.Hashing), wait: limits.Wait}, signIns: newHostLimiter(limits)}
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.metrics.wrap(pattern, h))
		if strings.Contains(pattern, " ") {
			s.patterns = append(s.patterns, pattern)
		}
	}
	route("GET /healthz", s.healthz)
	route("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	s.patterns = append(s.patterns, "GET /metrics")
	route("GET /api/v1/openapi.yaml", s.openapi)
	route("GET /api/v1/keys", s.listKeys)
	readers := s.allow(evidenceReaders...)
	anyone := s.allow(evidence.RoleOfficer, evidence.RoleSupervisor, evidence.RoleAuditor, evidence.RoleAdmin)
	watchers := s.allow(evidence.RoleSupervisor, evidence.RoleAuditor)
	route("POST /api/v1/devices", s.admin(s.createDevice))
	route("GET /api/v1/devices", s.allow(evidence.RoleAdmin, evidence.RoleSupervisor, evidence.RoleAuditor)(s.listDevices))
	route("GET /api/v1/devices/{id}", s.allow(evidence.RoleAdmin, evidence.RoleSupervisor, evidence.RoleAuditor)(s.getDevice))
	route("DELETE /api/v1/devices/{id}", s.admin(s.deleteDevice))
	route("POST /api/v1/users", s.admin(s.createUser))
	route("GET /api/v1/users", s.admin(s.listUsers))
	route("GET /api/v1/users/{id}", s.admin(s.getUser))
	route("DELETE /api/v1/users/{id}", s.admin(s.disableUser))
	route("POST /api/v1/users/{id}/tokens", s.admin(s.createDockToken))
	route("GET /api/v1/users/{id}/tokens", s.admin(s.listDockTokens))
	route("DELETE /api/v1/users/{id}/tokens/{token}", s.admin(s.revokeDockToken))
	route("GET /api/v1/officers", s.allow(evidence.RoleSupervisor, evidence.RoleAuditor)(s.listOfficers))
	// Open also to a user who must replace a password an admin set. A dock
	// too: signed in to the console it sees who it is and its own uploads
	// (GET /api/v1/uploads), and sets its own password.
	pending := s.allowPending(evidence.RoleOfficer, evidence.RoleSupervisor, evidence.RoleAuditor, evidence.RoleAdmin, evidence.RoleDock)
	route("POST /api/v1/users/{id}/password", pending(s.setPassword))
	route("POST /api/v1/users/{id}/certificate", s.admin(s.setCertificate))
	route("POST /api/v1/tokens", anyone(s.createToken))
	route("GET /api/v1/tokens", anyone(s.listTokens))
	route("DELETE /api/v1/tokens/{id}", anyone(s.revokeToken))
	route("GET /api/v1/recordings", readers(s.listRecordings))
	route("GET /api/v1/recordings/{id}", readers(s.getRecording))
	route("GET /api/v1/recordings/{id}/media", readers(s.media))
	route("GET /api/v1/recordings/{id}/original", readers(s.original))
	route("POST /api/v1/recordings/{id}/verify", readers(s.verifyRecording))
	route("GET /api/v1/recordings/{id}/bookmarks", readers(s.listBookmarks))
	route("POST /api/v1/recordings/{id}/bookmarks", s.allow(evidence.RoleOfficer, evidence.RoleSupervisor)(s.createBookmark))
	route("POST /api/v1/recordings/{id}/bookmarks/{bookmark}/remove", s.allow(evidence.RoleOfficer, evidence.RoleSupervisor)(s.removeBookmark))
	route("GET /api/v1/recordings/{id}/derived", readers(s.listDerived))
	route("GET /api/v1/recordings/{id}/poster", readers(s.poster))
	route("GET /api/v1/recordings/{id}/thumbnails", readers(s.listThumbnails))
	route("GET /api/v1/recordings/{id}/thumbnails/{n}", readers(s.thumbnail))
	route("GET /api/v1/recordings/{id}/sprite", readers(s.sprite))
	route("GET /api/v1/recordings/{id}/sprite/index", readers(s.spriteIndex))
	route("GET /api/v1/recordings/{id}/clips", readers(s.listAsked(askedClips)))
	route("POST /api/v1/recordings/{id}/clips", s.allow(evidence.RoleOfficer, evidence.RoleSupervisor)(s.createClip))
	route("GET /api/v1/recordings/{id}/clips/{job}", readers(s.serveAsked(askedClips)))
	route("GET /api/v1/recordings/{id}/redactions", readers(s.listAsked(askedRedactions)))
	route("POST /api/v1/recordings/{id}/redactions", s.allow(evidence.RoleOfficer, evidence.RoleSupervisor)(s.createRedaction))
	route("GET /api/v1/recordings/{id}/redactions/{job}", readers(s.serveAsked(askedRedactions)))
	jobWatchers := s.allow(evidence.RoleAdmin, evidence.RoleAuditor, evidence.RoleSupervisor)
	route("GET /api/v1/jobs", jobWatchers(s.listJobs))
	route("GET /api/v1/jobs/{id}", jobWatchers(s.getJob))
	route("POST /api/v1/jobs/{id}/rerun", s.admin(s.rerunJob))
	route("PUT /api/v1/recordings/{id}/categories", s.allow(evidence.RoleOfficer, evidence.RoleSupervisor)(s.setCategories))
	route("GET /api/v1/categories", anyone(s.listCategories))
	route("GET /api/v1/nodes", s.allow(evidence.RoleAdmin, evidence.RoleAuditor)(s.listNodes))
	route("GET /api/v1/live", s.allow(evidence.RoleSupervisor, evidence.RoleAuditor, evidence.RoleAdmin)(s.listLive))
	route("POST /api/v1/live/{device}/whep", watchers(s.whepOffer))
	route("DELETE /api/v1/live/{device}/whep/{session}", watchers(s.whepDelete))
	route("GET /api/v1/live/viewers", s.allow(evidence.RoleSupervisor, evidence.RoleAuditor, evidence.RoleAdmin)(s.listViewers))
	route("GET /api/v1/live/views", s.allow(evidence.RoleSupervisor, evidence.RoleAuditor)(s.listLiveViews))
	// The supervision dashboard: supervisors (their unit's) and auditors.
	route("GET /api/v1/stats", s.allow(evidence.RoleSupervisor, evidence.RoleAuditor)(s.stats))
	route("GET /api/v1/stats.csv", s.allow(evidence.RoleSupervisor, evidence.RoleAuditor)(s.statsCSV))
	// For other nodes only (cluster.go): no sign-in, a node's word for its
	// user instead; not in Routes (nor the API description).
	for pattern, h := range map[string]http.HandlerFunc{internalOffer: s.internalOffer, internalHangup: s.internalHangup, internalViewers: s.internalViewers} {
		mux.Handle(pattern, s.metrics.wrap(pattern, h))
	}
	caseWriters := s.allow(evidence.RoleOfficer, evidence.RoleSupervisor)
	route("POST /api/v1/cases", caseWriters(s.createCase))
	route("GET /api/v1/cases", readers(s.listCases))
	route("GET /api/v1/cases/{id}", readers(s.getCase))
	route("POST /api/v1/cases/{id}/transition", caseWriters(s.transitionCase))
	route("POST /api/v1/cases/{id}/evidence", caseWriters(s.linkEvidence))
	route("POST /api/v1/cases/{id}/evidence/{link}/unlink", caseWriters(s.unlinkEvidence))
	route("GET /api/v1/cases/{id}/custody", readers(s.caseCustody))
	route("GET /api/v1/cases/{id}/audit", readers(s.caseReport))
	route("GET /api/v1/recordings/{id}/audit", readers(s.recordingReport))
	route("GET /api/v1/users/{id}/audit", s.allow(evidence.RoleAuditor)(s.userReport))
	route("POST /api/v1/custody/verify", s.allow(evidence.RoleAuditor)(s.verifyLedger))
	route("GET /api/v1/cases/{id}/export", readers(s.exportCase))
	copiers := s.allow(evidence.RoleOfficer, evidence.RoleSupervisor, evidence.RoleAuditor)
	route("POST /api/v1/copy-requests", copiers(s.createCopyRequest))
	route("GET /api/v1/copy-requests", copiers(s.listCopyRequests))
	route("GET /api/v1/copy-requests/{id}", copiers(s.getCopyRequest))
	route("POST /api/v1/copy-requests/{id}/decision", s.allow(evidence.RoleSupervisor)(s.decideCopyRequest))
	route("POST /api/v1/cases/{id}/shares", caseWriters(s.createShare))
	route("GET /api/v1/cases/{id}/shares", readers(s.listShares))
	route("POST /api/v1/cases/{id}/shares/{share}/revoke", caseWriters(s.revokeShare))
	route("POST /api/v1/cases/{id}/shares/{share}/code", caseWriters(s.renewShareCode))
	// A share's recipient: no account, the share's code and then its
	// session cookie (shares.go); the share's page is the console's.
	route("POST /api/v1/shared/{share}/open", s.openShare)
	route("GET /api/v1/shared/{share}", s.getShared)
	route("GET /api/v1/shared/{share}/download", s.downloadShared)
	route("GET /api/v1/shared/{share}/receipts/{receipt}", s.sharedReceipt)
	mux.HandleFunc("GET /share/{share}", s.sharePage)
	route("GET /api/v1/webhooks/dead-letters", s.admin(s.listDeadLetters))
	route("POST /api/v1/webhooks/dead-letters/{id}/retry", s.admin(s.retryDeadLetter))
	s.uploadRoutes(route)
	route("POST /api/v1/session", s.signIn)
	route("GET /api/v1/session", pending(s.whoAmI))
	route("DELETE /api/v1/session", s.signOut)
	// Officers' certificates: public pages (no sign-in), for the chest card.
	mux.HandleFunc("GET /verify/officer/{token}", s.officerCertificate)
	mux.HandleFunc("GET /verify/officer/{token}/qr.png", s.officerQR)
	// The console's page and files (not part of the API description).
	mux.HandleFunc("GET /{$}", s.console)
	mux.HandleFunc("GET /console/", s.console)
	// Profiling for operators, admin only.
	mux.Handle("GET /debug/pprof/", s.admin(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", s.admin(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", s.admin(pprof.Trace))
	route("/api/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowed(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, r.Method+" not allowed on "+r.URL.Path)
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	s.handler = hsts(s.logRequests(mux))
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx ends, then stops accepting and gives running
// requests up to drain to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	srv := &http.Server{
		Handler:     s.handler,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:    slog.NewLogLogger(s.o.Log.Handler(), slog.LevelWarn),

		// How long a connection may hold a descriptor without doing its
		// part. A request's headers within 10 s; the whole request, body
		// included, within 30 s: bodies are at most 64 KiB (a WHEP offer
		// too), and without it a body dribbled a byte at a time, even one
		// refused unread (the server drains it for keep-alive), held a
		// connection for ever. net/http lifts the read deadline once the
		// body is read, so long answers (media, exports) are not cut, and
		// there is no WriteTimeout for them. A keep-alive connection left
		// idle is closed after a minute.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       time.Minute,

		// A request line and headers fit in 64 KiB (Go's default is 1 MiB):
		// what a client sends is bounded before it reaches a log or the
		// ledger.
		MaxHeaderBytes: 64 << 10,
	}
	s.srv.Store(srv)
	if s.draining.Load() {
		srv.SetKeepAlivesEnabled(false)
	}
	errc := make(chan error, 1)
	if s.o.TLS != nil {
		srv.TLSConfig = s.o.TLS.Clone()
		go func() { errc <- srv.ServeTLS(ln, "", "") }() // HTTP/2 and HTTP/1.1
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.o.Log.Warn("http: requests still running after the drain period; closing them", "drain", drain)
		err = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Drain marks the server as about to stop: /readyz answers 503 from now on,
// so a load balancer polling it sends no more work, while everything still
// serves; answers from now on close their connection (Connection: close),
// and idle keep-alive connections are closed, so clients reconnect through
// the balancer to another node. Serve stops accepting when its context
// ends. Drain may be called more than once.
func (s *Server) Drain() {
	s.draining.Store(true)
	if srv := s.srv.Load(); srv != nil {
		srv.SetKeepAlivesEnabled(false)
	}
}

// allowed lists the methods other routes accept for r's path, so a wrong
// method gets 405 rather than the JSON 404 of the /api/ catch-all.
func allowed(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/api/" {
			out = append(out, m)
		}
	}
	return out
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openAPI)
}

// healthz reports whether the storage and the catalog answer.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	checks, ok := s.ping(r.Context(), 3*time.Second)
	status, code := "ok", http.StatusOK
	if !ok {
		status, code = "unavailable", http.StatusServiceUnavailable
	} else if s.degraded(r.Context(), checks) {
		status = "degraded"
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// readyTimeout bounds /readyz's pings: a backing service slower than this
// is as good as down for new work, and the answer stays within a
// probe's timeout (3 s is enough).
const readyTimeout = 2 * time.Second

// readyz says whether this node should be sent work: not while it drains
// before a stop (Drain), nor while the catalog or the object store does
// not answer. Unlike /healthz (liveness), a 503 here never means the
// process should be restarted.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining", "checks": map[string]string{}})
		return
	}
	checks, ok := s.ping(r.Context(), readyTimeout)
	status, code := "ready", http.StatusOK
	if !ok {
		status, code = "unavailable", http.StatusServiceUnavailable
	} else if s.degraded(r.Context(), checks) {
		status = "degraded"
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// degraded notes whether coordination answers in checks. A node without
// it records alone (degraded) but is still alive and ready: coordination
// never stops evidence coming in.
func (s *Server) degraded(ctx context.Context, checks map[string]string) bool {
	if s.o.Cluster == nil {
		return false
	}
	if err := s.o.Cluster.Ping(ctx); err != nil {
		checks["coordination"] = err.Error()
		s.health.note(s.o.Log, "coordination", checks["coordination"])
		return true
	}
	checks["coordination"] = "ok"
	s.health.note(s.o.Log, "coordination", "ok")
	return false
}

// ping asks the object store and the catalog at once, each within limit.
func (s *Server) ping(ctx context.Context, limit time.Duration) (map[string]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	pingers := map[string]Pinger{"storage": s.o.Store, "catalog": s.o.Catalog}
	errs := make(map[string]chan error, len(pingers))
	for name, p := range pingers {
		c := make(chan error, 1)
		errs[name] = c
		go func() { c <- p.Ping(ctx) }()
	}
	checks, ok := map[string]string{}, true
	for name, c := range errs {
		if err := <-c; err != nil {
			checks[name], ok = err.Error(), false
		} else {
			checks[name] = "ok"
		}
		s.health.note(s.o.Log, name, checks[name])
	}
	return checks, ok
}

// healthLog logs each check's changes (failing, then answering again), not
// every probe: a load balancer asks every few seconds.
type healthLog struct {
	mu   sync.Mutex
	last map[string]string
}

func (h *healthLog) note(log *slog.Logger, check, state string) {
	h.mu.Lock()
	was, seen := h.last[check]
	if h.last == nil {
		h.last = map[string]string{}
	}
	h.last[check] = state
	h.mu.Unlock()
	switch {
	case state != "ok" && state != was:
		log.Warn("health check failed", "check", check, "err", state)
	case state == "ok" && seen && was != "ok":
		log.Info("health check answers again", "check", check)
	}
}

type keyJSON struct {
	ID           string    `json:"id"`
	Algorithm    string    `json:"algorithm"`
	PublicKey    []byte    `json:"public_key"`
	PublicKeyPEM string    `json:"public_key_pem"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	Current      bool      `json:"current"`
	NodeID       string    `json:"node_id,omitempty"`
}

// listKeys is public: anyone checking a signature needs the keys, every
// node's.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.o.Keys.PublicKeys(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := []keyJSON{}
	for _, k := range keys {
		items = append(items, keyJSON{ID: k.ID, Algorithm: "Ed25519", PublicKey: k.Key,
			PublicKeyPEM: string(keyring.PublicPEM(k.Key)), CreatedAt: k.Created, Current: k.Current, NodeID: k.Node})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// keyLookup returns a lookup of every key signatures may be checked with.
func (s *Server) keyLookup(ctx context.Context) (func(id string) ed25519.PublicKey, error) {
	keys, err := s.o.Keys.PublicKeys(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		byID[k.ID] = k.Key
	}
	return func(id string) ed25519.PublicKey { return byID[id] }, nil
}
