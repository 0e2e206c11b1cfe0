package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/caselink"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/cluster"
	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/custody"
	"github.com/bodycam/bodycam/derive"
	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/ingest"
	"github.com/bodycam/bodycam/internal/connlimit"
	"github.com/bodycam/bodycam/internal/peer"
	"github.com/bodycam/bodycam/jobs"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/live"
	"github.com/bodycam/bodycam/media"
	"github.com/bodycam/bodycam/outbox"
	"github.com/bodycam/bodycam/password"
	"github.com/bodycam/bodycam/retention"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/dir"
	"github.com/bodycam/bodycam/storage/s3"
	"github.com/bodycam/bodycam/upload"
)

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs every role until ctx ends, then shuts down in order: stop
// accepting, drain, flush, close.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	// Certificates first: a bad pair stops the start before anything is made.
	rtspTLS, err := loadTLS(cfg.RTSPTLSCert, cfg.RTSPTLSKey)
	if err != nil {
		return fmt.Errorf("rtsp-tls-cert: %v", err)
	}
	httpTLS, err := loadTLS(cfg.HTTPTLSCert, cfg.HTTPTLSKey)
	if err != nil {
		return fmt.Errorf("http-tls-cert: %v", err)
	}
	wasOpen, err := privateDir(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data-dir: %v", err)
	}
	// The spool is evidence not yet stored: as private as the data
	// directory, wherever it lives.
	spoolWasOpen, err := privateDir(cfg.spoolDir())
	if err != nil {
		return fmt.Errorf("spool-dir: %v", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()

	store, storeDesc, err := openStore(startCtx, cfg)
	if err != nil {
		return err
	}
	cat, err := catalog.Open(startCtx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		if cfg.DatabaseURL != "" {
			return fmt.Errorf("database-url: %v", err)
		}
		return fmt.Errorf("data-dir: %v", err)
	}
	defer cat.Close()
	keys, err := keyring.Open(filepath.Join(cfg.DataDir, "keys"), keyring.Options{SigningKey: cfg.SigningKey, CredentialKey: cfg.CredentialKey})
	if err != nil {
		return err
	}
	token, err := adminToken(cfg, log)
	if err != nil {
		return err
	}
	// Every node's public keys are in the catalog, so that what one node
	// signed verifies on any other.
	if err := keys.Publish(startCtx, cat, cfg.NodeID); err != nil {
		return fmt.Errorf("signing key: publishing it in the catalog: %v", err)
	}
	co, coDesc, err := openCoord(startCtx, cfg, log)
	if err != nil {
		return err
	}
	defer co.Close()
	// Before anything is done as this node (ending its viewing sessions,
	// its first heartbeat): no other process may be running as it.
	if err := cluster.CheckID(ctx, co, cfg.NodeID, coord.DefaultNodeTTL, time.Second, log.With("component", "cluster")); err != nil {
		return fmt.Errorf("node-id: %v", err)
	}
	peers, err := peer.New(peer.Options{Node: cfg.NodeID, Key: peer.KeyFrom(keys)})
	if err != nil {
		return fmt.Errorf("node-id: %v", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	spool, err := ingest.OpenSpool(cfg.spoolDir(), uint64(cfg.SpoolMinFree))
	if err != nil {
		return fmt.Errorf("spool-dir: %v", err)
	}
	bus := events.NewBus()
	ledger := custody.New(func(ctx context.Context, e evidence.CustodyEvent) (evidence.CustodyEvent, error) {
		return cat.AppendCustody(ctx, e, keys)
	}, log.With("component", "custody"), reg)
	links := caselink.New(caselink.Options{Catalog: cat, Holds: store, Custody: ledger, Log: log.With("component", "caselink"), Registry: reg})
	iceServers, _ := live.ParseICEServers(strings.Split(cfg.WebRTCICE, ",")) // validated
	relay, err := live.New(live.Options{
		UDPAddr: cfg.WebRTCUDPAddr, TCPAddr: cfg.WebRTCTCPAddr, PublicIPs: cfg.publicIPs(), ICEServers: iceServers,
		Loopback: loopbackOnly(cfg.HTTPAddr), MaxSessions: cfg.LiveMaxSessions, MaxPerUser: cfg.LiveMaxPerUser,
		Transcoders: transcoders(), Audit: liveAudit{cat, ledger, cfg.NodeID}, Registry: reg, Log: log.With("component", "live"),
		Slots: co,
	})
	if err != nil {
		return fmt.Errorf("webrtc-udp-addr: %v", err)
	}
	// Nobody can be watching through a node that was not running: its
	// viewing sessions left open by an abnormal stop end now (one node:
	// every open one, those of older versions included), each in the
	// custody ledger as when the viewer hangs up.
	endOpen := func() ([]evidence.LiveView, error) {
		return cat.EndNodeLiveViews(startCtx, cfg.NodeID, time.Now(), "server stopped abnormally")
	}
	if cat.Dialect() == catalog.SQLite && cfg.RedisURL == "" {
		endOpen = func() ([]evidence.LiveView, error) {
			return cat.EndOpenLiveViews(startCtx, time.Now(), "server stopped abnormally")
		}
	}
	if views, err := endOpen(); err == nil && len(views) > 0 {
		log.Warn("live viewing sessions left open by an abnormal stop were ended", "sessions", len(views))
		for _, v := range views {
			ledger.Record(startCtx, cluster.LiveViewEnded(v, v.EndedAt, "server stopped abnormally"))
		}
	}
	// Descriptors: each listener's connections that are not recording get at
	// most a quarter of the file limit by default, so a flood of both from
	// many addresses leaves half to recordings, the spool and the backends.
	rtspMaxPending, httpMaxConns := cfg.RTSPMaxPending, cfg.HTTPMaxConns
	if rtspMaxPending == 0 {
		rtspMaxPending = connlimit.DefaultMaxPending()
	}
	if httpMaxConns == 0 {
		httpMaxConns = connlimit.DefaultMaxPending()
	}
	// Which recorders publish and when is not for whoever reaches the HTTP
	// port: those series are served only on --metrics-addr.
	devices := prometheus.NewRegistry()
	rtsp := ingest.New(ingest.Options{
		RTSPAddr: cfg.RTSPAddr, UDPAddr: cfg.RTSPUDPAddr, TLS: rtspTLS, ReadTimeout: cfg.RTSPReadTimeout,
		RequestTimeout: cfg.RTSPRequestTimeout, MaxPendingPerHost: cfg.RTSPMaxPendingPerHost, MaxPending: rtspMaxPending,
		SegmentDuration: cfg.SegmentDuration, Spool: spool, Store: store, Catalog: cat, Keys: keys, Signer: keys,
		Events: bus, Live: liveSink{relay}, Custody: ledger, Holds: links, Registry: reg, DeviceRegistry: devices,
		Log: log.With("component", "ingest"), NodeID: cfg.NodeID, Leases: co,
	})
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("metrics-addr: %v", err)
		}
	}
	_, rtspPort, _ := net.SplitHostPort(cfg.RTSPAddr)
	tcp, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http-addr: %v", err)
	}
	// Events for other systems: the outbox the catalog writes with each
	// change, relayed to the Redis stream (with several nodes; nothing
	// reads coord.Local's) and to the webhooks, each by one node at a time.
	ro := outbox.RelayOptions{Catalog: cat, Lease: co, Holder: cfg.NodeID, Keep: time.Duration(cfg.EventsKeep),
		Log: log.With("component", "outbox"), Registry: reg}
	if cfg.RedisURL != "" {
		ro.Stream = co
	}
	evRelay := outbox.NewRelay(ro)
	hooks, err := outbox.NewWebhooks(outbox.WebhookOptions{Catalog: cat, URLs: cfg.WebhookURLs, Secret: cfg.WebhookSecret,
		Lease: co, Holder: cfg.NodeID, RetryFor: cfg.WebhookRetryFor, Log: log.With("component", "webhooks"), Registry: reg})
	if err != nil {
		return fmt.Errorf("webhook-url: %v", err)
	}
	var apiHooks api.Webhooks // nil unless configured (not a typed nil)
	if len(cfg.WebhookURLs) > 0 {
		apiHooks = hooks
	}
	node := cluster.New(cluster.Options{ID: cfg.NodeID, AdvertiseURL: cfg.advertiseURL(tcp.Addr()), Coord: co, Catalog: cat, Custody: ledger,
		Recovered: rtsp.Reassert, Registry: reg, Log: log.With("component", "cluster"),
		Stats: func() cluster.Stats {
			st := rtsp.Stats()
			return cluster.Stats{Publishers: st.Publishers, Viewers: len(relay.Viewers()), SpoolBytes: st.BacklogBytes, UploadBacklog: st.UploadBacklog}
		}})
	// In the cluster before the first publisher: a lease is only as good
	// as its node's heartbeat.
	node.Join(startCtx)
	// Dock upload: partial uploads in the spool, finished files sealed with
	// the key that signs manifests.
	uploads, err := upload.New(upload.Options{Dir: cfg.uploadDir(), MaxSize: int64(cfg.UploadMaxSize), SpoolMax: int64(cfg.UploadSpoolMax),
		AbandonAfter: cfg.UploadAbandonAfter, Catalog: cat, Store: store, Signer: keys, Custody: ledger, Holds: links,
		Registry: reg, Log: log.With("component", "upload")})
	if err != nil {
		return fmt.Errorf("spool-dir: %v", err)
	}
	// Durable jobs: this node's workers (--workers), the handlers this
	// build has, and the feed that turns closed recordings (events of the
	// outbox) into jobs.
	runner := jobs.New(jobs.Options{Catalog: cat, Workers: cfg.Workers, Node: cfg.NodeID, Log: log.With("component", "jobs"), Registry: reg})
	deriver := derive.New(derive.Options{Catalog: cat, Store: store, Signer: keys, Custody: ledger, Holds: links, Picture: picturer(), Frames: framer(), Render: renderer(),
		Version: buildVersion(), FFmpeg: ffmpegVersion(), Pause: testPause(log), Log: log.With("component", "derive")})
	for kind, h := range deriver.Handlers() {
		runner.Handle(kind, h)
	}
	feed := outbox.NewJobFeed(outbox.JobFeedOptions{Catalog: cat, Rules: derive.Rules, Queued: runner.Wake, Lease: co, Holder: cfg.NodeID,
		Log: log.With("component", "jobs"), Registry: reg})
	policy, _ := cfg.retentionPolicy()                            // checked by Validate
	stepLimits, _ := evidence.ParseStepLimits(cfg.CaseStepLimits) // checked by Validate
	copyRule, _ := cfg.copyApproval()                             // checked by Validate
	httpAPI := api.New(api.Options{
		Catalog: cat, Users: cat, Cases: cat, Custody: ledger, Audit: ledger, Links: links, Signer: keys,
		Cluster: node, Leases: co, Directory: co, Peers: peers, Webhooks: apiHooks, Uploads: uploads, Bookmarks: cat, Shares: cat, Jobs: cat, JobQueued: runner.Wake,
		Stats: cat, StepLimits: stepLimits, Copies: cat, CopyApproval: copyRule,
		Retention: &api.Retention{Policy: policy, Minimum: time.Duration(cfg.RetentionMinimum), Catalog: cat},
		Store:     store, Remux: remuxer(store), Keys: keyring.WithCatalog(keys, cat), Live: rtsp, Relay: relay, AdminToken: token, RTSPPort: rtspPort, RTSPS: rtspTLS != nil,
		TLS: httpTLS, Log: log.With("component", "api"), Registry: reg,
	})
	// The HTTP server closes connections that do not send a whole request in
	// time, or idle after one (api.Server.Serve); the caps keep one address,
	// and all of them, from holding more descriptors than that leaves (and
	// back off on EMFILE). HTTP connections are never established: the
	// total cap counts every one.
	ln := connlimit.New(tcp, connlimit.Options{Name: "http", PerHost: cfg.HTTPMaxConnsPerHost, MaxPending: httpMaxConns,
		Registry: reg, Log: log.With("component", "api")})
	log.Info("bodycam serving", "http", ln.Addr().String(), "https", httpTLS != nil, "storage", storeDesc,
		"catalog", string(cat.Dialect()), "signing_key", keys.ID(), "data_dir", cfg.DataDir, "spool_dir", cfg.spoolDir(),
		"transcoding", transcoding, "workers", cfg.Workers, "node", cfg.NodeID, "coordination", coDesc, "file_limit", connlimit.FileLimit(), "http_max_conns", httpMaxConns, "rtsp_max_pending", rtspMaxPending,
		"copy_approval", cfg.CopyApproval)
	if wasOpen != 0 { // said once serving: a start that fails says one line, its reason
		log.Warn("data directory was open to group or others; narrowed to its owner", "dir", cfg.DataDir, "was", wasOpen.String())
	}
	if cfg.RetentionMinimum < days(evidence.MinRetention) {
		log.Warn("--retention-minimum is below the legal minimum of 180 days: for tests and evaluations only, footage may be deleted before the law allows",
			"retention_minimum", cfg.RetentionMinimum.String())
	}
	if spoolWasOpen != 0 {
		log.Warn("spool directory was open to group or others; narrowed to its owner", "dir", cfg.spoolDir(), "was", spoolWasOpen.String())
	}

	// A stop (SIGINT/SIGTERM) first only marks the node not ready: it goes
	// on serving everything for --shutdown-delay while /readyz answers 503,
	// so load balancers polling it stop sending work before the listeners
	// close; then every part stops in order.
	running, stopRunning := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunning()
	g, gctx := errgroup.WithContext(running)
	g.Go(func() error {
		select {
		case <-gctx.Done(): // a part failed
			return nil
		case <-ctx.Done():
		}
		httpAPI.Drain()
		rtsp.Drain()
		node.Drain()
		log.Info("stopping: /readyz answers 503, serving on until the delay ends", "shutdown_delay", cfg.ShutdownDelay)
		delay := time.NewTimer(cfg.ShutdownDelay)
		defer delay.Stop()
		select {
		case <-delay.C:
		case <-gctx.Done():
		}
		stopRunning()
		return nil
	})
	g.Go(func() error { return httpAPI.Serve(gctx, ln, cfg.ShutdownTimeout) })
	if metricsLn != nil {
		g.Go(func() error { return serveMetrics(gctx, metricsLn, prometheus.Gatherers{reg, devices}) })
	}
	g.Go(func() error { return rtsp.Run(gctx) })
	g.Go(func() error { return uploads.Run(gctx) })
	g.Go(func() error { return node.Run(gctx) })
	g.Go(func() error { return evRelay.Run(gctx) })
	g.Go(func() error { return hooks.Run(gctx) })
	g.Go(func() error { return relay.Run(gctx) })
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return feed.Run(gctx) })
	job := &retention.Job{Policy: policy, Interval: cfg.RetentionEvery, Catalog: cat, Store: store,
		Signer: keys, Custody: ledger, Log: log.With("component", "retention"),
		Lease: co, Holder: cfg.NodeID}
	job.Register(reg)
	g.Go(func() error { return job.Run(gctx) })
	g.Go(func() error { return ledger.Run(gctx) })
	err = g.Wait()
	ledger.Flush(context.Background()) // refusals counted while the API drained
	log.Info("bodycam stopped")
	return err
}

// loadTLS is the server configuration of a certificate and key pair (TLS
// 1.2 or later), or nil without one.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// serveMetrics serves every metric, the per-device series included, at
// /metrics on ln (--metrics-addr) until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener, g prometheus.Gatherer) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics-addr: %v", err)
	case <-ctx.Done():
	}
	srv.Close()
	<-errc
	return nil
}

// liveSink hands ingest's live copies to the relay.
type liveSink struct{ r *live.Relay }

func (l liveSink) Start(device, recording string, tracks []media.Track) ingest.LiveFeed {
	return l.r.Start(device, recording, tracks)
}

// loopbackOnly reports whether the HTTP API listens on loopback only (a
// one-machine set-up or a test): the relay then offers loopback candidates.
func loopbackOnly(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// openStore opens the object store the settings choose, with a description
// for the log.
func openStore(ctx context.Context, cfg Config) (storage.Store, string, error) {
	if cfg.S3Endpoint == "" {
		root := filepath.Join(cfg.DataDir, "objects")
		s, err := dir.Open(root, dir.Options{Retention: cfg.retention()})
		if err != nil {
			return nil, "", fmt.Errorf("data-dir: %v", err)
		}
		return s, "dir " + root, nil
	}
	s, err := s3.Open(ctx, s3.Options{
		Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
		Bucket: cfg.S3Bucket, Region: cfg.S3Region, TLS: cfg.S3TLS, Retention: cfg.retention(),
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "s3-") {
			err = fmt.Errorf("s3-endpoint %s: no answer within 20s", cfg.S3Endpoint)
		}
		return nil, "", err
	}
	checks := "the server checks uploads' SHA-256"
	if !s.ServerChecksHashes() {
		checks = "the server does not check SHA-256 checksums; uploads are hashed here"
	}
	return s, "s3 " + cfg.S3Endpoint + "/" + cfg.S3Bucket + " (" + checks + ")", nil
}

// privateDir makes the data (or spool) directory, or narrows an existing
// one, to its owner (0700): they hold the spool, the catalog, the keys and,
// with the directory backend, the evidence itself. It returns the mode it narrowed
// (0: none).
func privateDir(dir string) (fs.FileMode, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return 0, err
	}
	perm := st.Mode().Perm()
	if perm&0o077 == 0 {
		return 0, nil
	}
	return perm, os.Chmod(dir, 0o700)
}

// adminToken returns the configured admin token: --admin-token, the file
// --admin-token-file names, or the one kept in <data-dir>/admin-token,
// generating it (mode 0600) on first start.
func adminToken(cfg Config, log *slog.Logger) (string, error) {
	if cfg.AdminTokenFile != "" { // read by loadSecrets
		log.Info("admin token loaded", "path", cfg.AdminTokenFile)
		return cfg.AdminToken, nil
	}
	if cfg.AdminToken != "" {
		return cfg.AdminToken, nil
	}
	path := filepath.Join(cfg.DataDir, "admin-token")
	token, err := readTokenFile(path)
	if err == nil {
		log.Info("admin token loaded", "path", path)
		return token, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("admin-token: %v", err)
	}
	token = password.NewSecret()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("admin-token: %v", err)
	}
	_, err = fmt.Fprintln(f, token)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("admin-token: %v", err)
	}
	log.Info("admin token generated; read it from the file", "path", path)
	return token, nil
}

// readTokenFile reads the admin token kept in the data directory.
func readTokenFile(path string) (string, error) {
	token, err := readSecretFile(path)
	if err != nil {
		return "", err
	}
	if token = strings.TrimSpace(token); len(token) < 16 {
		return "", fmt.Errorf("%s holds fewer than 16 characters", path)
	}
	return token, nil
}

// testPause is a test's hook into every derived job (TestKill9MidJob): with
// BODYCAM_TEST_DERIVE_PAUSE=<duration> in the environment, a job waits
// that long after storing its object and before its provenance record, so
// that a test can kill the server mid-job. Nil (no pause) otherwise.
func testPause(log *slog.Logger) func(ctx context.Context) {
	d, err := time.ParseDuration(os.Getenv("BODYCAM_TEST_DERIVE_PAUSE"))
	if err != nil || d <= 0 {
		return nil
	}
	log.Warn("BODYCAM_TEST_DERIVE_PAUSE set: every derived job pauses mid-job (tests only)", "pause", d)
	return func(ctx context.Context) {
		log.Info("derive: pausing mid-job (BODYCAM_TEST_DERIVE_PAUSE)")
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
