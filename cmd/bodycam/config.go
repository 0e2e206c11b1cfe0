package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/connlimit"
	"github.com/bodycam/bodycam/live"
	"github.com/bodycam/bodycam/outbox"
	"github.com/bodycam/bodycam/storage"
)

// Config is everything `bodycam serve` can be told. Each setting is a flag
// (--data-dir), an environment variable (BODYCAM_DATA_DIR) and a key in the
// optional YAML file (data-dir: ...). Precedence, lowest first: default,
// file, environment, flag.
type Config struct {
	DataDir         string
	RTSPAddr        string
	RTSPUDPAddr     string
	RTSPTLSCert     string
	RTSPTLSKey      string
	RTSPReadTimeout time.Duration
	SpoolMinFree    size
	HTTPAddr        string
	WebRTCUDPAddr   string
	WebRTCTCPAddr   string
	WebRTCPublicIPs string
	WebRTCICE       string
	LiveMaxSessions int
	LiveMaxPerUser  int
	Workers         int
	S3Endpoint      string
	S3AccessKey     string
	S3SecretKey     string
	S3Bucket        string
	S3TLS           bool
	S3Region        string
	DatabaseURL     string
	RedisURL        string
	NodeID          string
	AdvertiseURL    string
	SegmentDuration time.Duration
	AdminToken      string
	RetentionMode   string
	RetentionPeriod days
	CaseRetention   days
	RetentionEvery  time.Duration
	// Retention classes (issue 16): NAME=PERIOD each; the periods of
	// footage marked important; the shortest period accepted (tests and
	// evaluations only lower it).
	Categories         list
	ImportantRetention period
	RetentionMinimum   days
	// CaseStepLimits: how long a case may stay in each step before the
	// supervision dashboard calls it overdue (evidence.ParseStepLimits).
	CaseStepLimits  string
	SigningKey      string
	CredentialKey   string
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration

	RTSPRequestTimeout    time.Duration
	RTSPMaxPendingPerHost int
	RTSPMaxPending        int // 0: connlimit.DefaultMaxPending
	HTTPMaxConnsPerHost   int
	HTTPMaxConns          int // 0: connlimit.DefaultMaxPending
	HTTPTLSCert           string
	HTTPTLSKey            string
	AdminTokenFile        string
	SpoolDir              string // "": <data-dir>/spool
	MetricsAddr           string // "": no operations metrics listener
	ShutdownDelay         time.Duration

	// Secrets also come from files (a mounted Kubernetes or systemd
	// secret), which loadSecrets reads into the plain settings.
	S3AccessKeyFile string
	S3SecretKeyFile string
	DatabaseURLFile string

	// Events for other systems (package outbox).
	WebhookURLs       list
	WebhookSecretFile string
	WebhookSecret     []byte // read from WebhookSecretFile by loadSecrets
	WebhookRetryFor   time.Duration
	EventsKeep        days

	// Approval before copying (api.CopyApproval): required or off; the
	// roles exempt from it; how long a grant is valid unless its decision
	// says.
	CopyApproval       string
	CopyApprovalExempt list
	CopyGrantTTL       time.Duration

	// Dock upload (package upload).
	UploadMaxSize      size
	UploadSpoolMax     size
	UploadAbandonAfter time.Duration
}

func defaults() Config {
	return Config{
		DataDir:            "./data",
		RTSPAddr:           ":8554",
		RTSPUDPAddr:        ":8000",
		RTSPReadTimeout:    10 * time.Second,
		SpoolMinFree:       size(1 << 30),
		HTTPAddr:           ":8080",
		WebRTCUDPAddr:      ":8189",
		WebRTCTCPAddr:      ":8189",
		LiveMaxSessions:    200,
		LiveMaxPerUser:     32,
		Workers:            1,
		NodeID:             hostName(),
		S3Bucket:           "bodycam",
		SegmentDuration:    4 * time.Second,
		RetentionMode:      "compliance",
		RetentionPeriod:    days(180 * 24 * time.Hour),
		CaseRetention:      days(180 * 24 * time.Hour),
		RetentionEvery:     time.Hour,
		ImportantRetention: period{Years: 2},
		RetentionMinimum:   days(evidence.MinRetention),
		CaseStepLimits:     evidence.DefaultStepLimits().String(),
		LogLevel:           "info",
		LogFormat:          "text",
		ShutdownTimeout:    30 * time.Second,
		ShutdownDelay:      5 * time.Second,
		WebhookRetryFor:    24 * time.Hour,
		EventsKeep:         days(7 * 24 * time.Hour),
		CopyApproval:       "required",
		CopyGrantTTL:       api.DefaultGrantTTL,

		UploadMaxSize:      size(64 << 30),
		UploadSpoolMax:     size(256 << 30),
		UploadAbandonAfter: 72 * time.Hour,

		RTSPRequestTimeout:    10 * time.Second,
		RTSPMaxPendingPerHost: 64,
		HTTPMaxConnsPerHost:   256,
	}
}

// flags binds every setting to fs.
func (c *Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the catalog (SQLite), objects (directory backend), keys, spool and admin token")
	fs.StringVar(&c.RTSPAddr, "rtsp-addr", c.RTSPAddr, "RTSP listen address for recorders")
	fs.StringVar(&c.RTSPUDPAddr, "rtsp-udp-addr", c.RTSPUDPAddr, "RTP port for recorders using UDP (RTCP takes the next port; must be even); empty disables UDP")
	fs.StringVar(&c.RTSPTLSCert, "rtsp-tls-cert", c.RTSPTLSCert, "PEM certificate: with --rtsp-tls-key, the RTSP port speaks RTSPS (TLS)")
	fs.StringVar(&c.RTSPTLSKey, "rtsp-tls-key", c.RTSPTLSKey, "PEM private key for --rtsp-tls-cert")
	fs.DurationVar(&c.RTSPReadTimeout, "rtsp-read-timeout", c.RTSPReadTimeout, "a publisher silent this long is disconnected and its recording closed")
	fs.DurationVar(&c.RTSPRequestTimeout, "rtsp-request-timeout", c.RTSPRequestTimeout, "an RTSP connection that is not recording must complete each request (the first, TLS handshake included, from its connect) within this, or it is closed")
	fs.IntVar(&c.RTSPMaxPendingPerHost, "rtsp-max-pending-per-host", c.RTSPMaxPendingPerHost, "RTSP connections one client address (IPv4, IPv6 /64) may hold before they record; more are closed at once; recording connections do not count")
	fs.IntVar(&c.RTSPMaxPending, "rtsp-max-pending", c.RTSPMaxPending, "RTSP connections all client addresses together may hold before they record; more are closed at once; recording connections do not count; 0: a quarter of the file limit, at most 4096")
	fs.StringVar(&c.SpoolDir, "spool-dir", c.SpoolDir, "directory of the spool, media not yet in the object store (a fast local disk, or a volume per pod); empty: <data-dir>/spool")
	fs.Var(&c.SpoolMinFree, "spool-min-free", "new publishers are refused when the spool disk has less free space than this (e.g. 1GiB, 500MiB)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address for the API, console and metrics")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "a second listener for Prometheus, on a network clients do not reach: /metrics with the per-device series (which recorders publish, and when) that the HTTP port's /metrics leaves out; empty: none")
	fs.StringVar(&c.HTTPTLSCert, "http-tls-cert", c.HTTPTLSCert, "PEM certificate (chain): with --http-tls-key, the HTTP port speaks HTTPS only (TLS 1.2+, HSTS)")
	fs.StringVar(&c.HTTPTLSKey, "http-tls-key", c.HTTPTLSKey, "PEM private key for --http-tls-cert")
	fs.IntVar(&c.HTTPMaxConnsPerHost, "http-max-conns-per-host", c.HTTPMaxConnsPerHost, "HTTP connections one client address (IPv4, IPv6 /64) may hold at once; more are closed at once")
	fs.IntVar(&c.HTTPMaxConns, "http-max-conns", c.HTTPMaxConns, "HTTP connections all client addresses together may hold at once; more are closed at once; 0: a quarter of the file limit, at most 4096")
	fs.StringVar(&c.WebRTCUDPAddr, "webrtc-udp-addr", c.WebRTCUDPAddr, "the one UDP port of live viewers' WebRTC (ICE UDP mux); empty disables ICE over UDP")
	fs.StringVar(&c.WebRTCTCPAddr, "webrtc-tcp-addr", c.WebRTCTCPAddr, "ICE-TCP listener, the fallback for viewers whose UDP is blocked; empty disables it")
	fs.StringVar(&c.WebRTCPublicIPs, "webrtc-public-ips", c.WebRTCPublicIPs, "comma-separated public IPs announced instead of the host's own (1:1 NAT)")
	fs.StringVar(&c.WebRTCICE, "webrtc-ice-servers", c.WebRTCICE, "comma-separated STUN/TURN servers: stun:host:port, turn:user:password@host:port")
	fs.IntVar(&c.LiveMaxSessions, "live-max-sessions", c.LiveMaxSessions, "live viewing sessions the server takes in all (every node together, with --redis-url); more get 429")
	fs.IntVar(&c.Workers, "workers", c.Workers, "background jobs (posters, ...) this node runs at once, at a lower priority than recording; 0: none here (other nodes run them)")
	fs.IntVar(&c.LiveMaxPerUser, "live-max-per-user", c.LiveMaxPerUser, "live viewing sessions one user may hold at once (on every node together, with --redis-url); more get 429")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", c.S3Endpoint, "S3/MinIO endpoint host:port; empty keeps objects in <data-dir>/objects")
	fs.StringVar(&c.S3AccessKey, "s3-access-key", c.S3AccessKey, "S3 access key")
	fs.StringVar(&c.S3AccessKeyFile, "s3-access-key-file", c.S3AccessKeyFile, "file holding the S3 access key (not readable by group or others); instead of --s3-access-key")
	fs.StringVar(&c.S3SecretKey, "s3-secret-key", c.S3SecretKey, "S3 secret key (visible in ps: prefer --s3-secret-key-file)")
	fs.StringVar(&c.S3SecretKeyFile, "s3-secret-key-file", c.S3SecretKeyFile, "file holding the S3 secret key (not readable by group or others); instead of --s3-secret-key")
	fs.StringVar(&c.S3Bucket, "s3-bucket", c.S3Bucket, "S3 bucket; created with Object Lock when missing")
	fs.BoolVar(&c.S3TLS, "s3-tls", c.S3TLS, "use HTTPS to reach S3")
	fs.StringVar(&c.S3Region, "s3-region", c.S3Region, "S3 region (default us-east-1)")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL (postgres://...); empty uses SQLite in <data-dir>/catalog.db")
	fs.StringVar(&c.DatabaseURLFile, "database-url-file", c.DatabaseURLFile, "file holding the PostgreSQL URL with its password (not readable by group or others); instead of --database-url")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL (redis://...) for multi-node coordination; empty keeps it in-process")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "this node's name among the nodes of a cluster (letters, digits, . _ -; at most 64); default: the host name")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", c.AdvertiseURL, "http(s)://host:port at which the other nodes reach this node's HTTP API (live views of devices this node records go through it); empty: --http-addr's host and port when it names a host, else none (required with --redis-url then)")
	fs.Var(&c.WebhookURLs, "webhook-url", "a URL (http:// or https://) every event for other systems is POSTed to, signed; give it again for more (comma-separated in the environment and the file)")
	fs.StringVar(&c.WebhookSecretFile, "webhook-secret-file", c.WebhookSecretFile, "file holding the secret (16+ bytes, not readable by group or others) that signs webhook deliveries (HMAC-SHA256); required with --webhook-url")
	fs.DurationVar(&c.WebhookRetryFor, "webhook-retry-for", c.WebhookRetryFor, "a webhook event not delivered this long after its first attempt becomes a dead letter (admins queue it again) and the webhook goes on")
	fs.Var(&c.EventsKeep, "events-keep", "events for other systems stay in the catalog's outbox this long (e.g. 7d); a webhook or stream down longer misses the older ones")
	fs.StringVar(&c.CopyApproval, "copy-approval", c.CopyApproval, "required: a download of media or a case export needs a copy request granted by a supervisor other than the requester (POST /api/v1/copy-requests); off: copies go out as the roles allow (watching is allowed by role either way)")
	fs.Var(&c.CopyApprovalExempt, "copy-approval-exempt", "roles that download and export without a grant (only auditor may be given), each copy still a custody event; give it again for more (comma-separated in the environment and the file)")
	fs.DurationVar(&c.CopyGrantTTL, "copy-grant-ttl", c.CopyGrantTTL, "how long a copy grant is valid unless its decision says (valid_for); at most 168h")
	fs.Var(&c.UploadMaxSize, "upload-max-size", "largest file a dock may upload (e.g. 64GiB)")
	fs.Var(&c.UploadSpoolMax, "upload-spool-max", "unfinished dock uploads may declare this many bytes together (their partial files are in <spool-dir>/_uploads); a creation past it gets 507")
	fs.DurationVar(&c.UploadAbandonAfter, "upload-abandon-after", c.UploadAbandonAfter, "a partial dock upload that received no byte this long (or a refused one its dock did not delete) is deleted, with a custody event")
	fs.DurationVar(&c.SegmentDuration, "segment-duration", c.SegmentDuration, "target segment length; segments are cut at the next keyframe after it")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "bearer token with the admin role (visible in ps: prefer --admin-token-file); generated into <data-dir>/admin-token when empty")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", c.AdminTokenFile, "file holding the admin bearer token (not readable by group or others); instead of --admin-token")
	fs.StringVar(&c.RetentionMode, "retention-mode", c.RetentionMode, "object retention: compliance, governance or off")
	fs.Var(&c.RetentionPeriod, "retention-period", "how long every stored object is locked against deletion (e.g. 180d, 72h)")
	fs.Var(&c.CaseRetention, "unlinked-retention", "footage in no case is deleted this long after it ended or left its last case, leaving a signed tombstone (at least 180d outside tests; e.g. 180d)")
	fs.DurationVar(&c.RetentionEvery, "retention-interval", c.RetentionEvery, "how often the retention job looks for footage due for deletion")
	fs.Var(&c.Categories, "category", "a retention class NAME=PERIOD (PERIOD: 180d, 3y or permanent; at least 180d); give it again for more (comma-separated in the environment and the file); given at all, it replaces the default set: traffic_stop=180d, no_incident=180d, arrest=3y, complaint=permanent")
	fs.Var(&c.ImportantRetention, "important-retention", "footage marked important is kept at least this long whatever its categories (e.g. 2y, permanent)")
	fs.StringVar(&c.CaseStepLimits, "case-step-limits", c.CaseStepLimits, "how long a case may stay in a step of its workflow before the supervision dashboard shows it overdue, STATE=DURATION,... (states not named keep their default; 0 removes a limit)")
	fs.Var(&c.RetentionMinimum, "retention-minimum", "FOR TESTS AND EVALUATION ONLY: the shortest retention period accepted; below 180d (the legal minimum of six months) footage may be deleted before the law allows")
	fs.StringVar(&c.SigningKey, "signing-key", c.SigningKey, "Ed25519 private key file (PKCS#8 PEM); empty creates <data-dir>/keys/signing.key")
	fs.StringVar(&c.CredentialKey, "credential-key", c.CredentialKey, "file with the key device secrets are derived from (hex); empty creates <data-dir>/keys/credential.key; share it between nodes")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", c.ShutdownDelay, "on SIGINT/SIGTERM, how long to go on serving with /readyz answering 503 (so load balancers stop sending work) before the listeners close; 0 closes them at once")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long running requests may take to finish once the listeners closed (after --shutdown-delay)")
}

// envName maps a flag name to its environment variable.
func envName(flagName string) string {
	return "BODYCAM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig builds the configuration from defaults, the YAML file named by
// --config or BODYCAM_CONFIG, the environment and args, then validates it.
// Every error names the setting it is about.
func loadConfig(name string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	cfg, rest, err := parseConfig(name, "[flags]", args, getenv, usage)
	if err == nil && len(rest) > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (settings are flags: --name value)", rest[0])
	}
	return cfg, err
}

// parseConfig is loadConfig for commands that also take arguments (before
// or after the flags), which it returns.
func parseConfig(name, synopsis string, args []string, getenv func(string) string, usage io.Writer) (Config, []string, error) {
	cfg := defaults()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.flags(fs)
	configFile := fs.String("config", getenv("BODYCAM_CONFIG"), "YAML file with settings (keys are the flag names)")
	printUsage := func() {
		fmt.Fprintf(usage, "Usage: bodycam %s %s\n\nEach flag can also be set as BODYCAM_<NAME> (e.g. BODYCAM_DATA_DIR) or in the --config file.\n\n", name, synopsis)
		fs.SetOutput(usage)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	fs.Usage = func() {} // errors are reported in one line by the caller
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage()
				return cfg, nil, err
			}
			return cfg, nil, flagError(err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	explicit := map[string]string{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = f.Value.String() })

	if *configFile != "" {
		if err := applyFile(fs, *configFile); err != nil {
			return cfg, nil, err
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || envErr != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			resetList(f)
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s (from %s): %v", f.Name, envName(f.Name), cause(err))
			}
		}
	})
	if envErr != nil {
		return cfg, nil, envErr
	}
	for name, v := range explicit {
		resetList(fs.Lookup(name))
		fs.Set(name, v)
	}
	return cfg, rest, cfg.Validate()
}

// flagError rewrites the flag package's messages into one line that names
// the setting.
func flagError(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s (see --help)", rest)
	}
	if m := regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([a-z0-9-]+): (.*)$`).FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s: invalid value %q: %s", m[2], m[1], explain(m[3]))
	}
	if rest, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("%s: needs a value", rest)
	}
	return err
}

func cause(err error) string {
	if m := regexp.MustCompile(`: (.*)$`).FindStringSubmatch(err.Error()); m != nil {
		return explain(m[1])
	}
	return err.Error()
}

// explain turns the flag package's terse "parse error" into what is wanted.
func explain(msg string) string {
	if msg == "parse error" {
		return "want a duration such as 4s, 500ms or 1m, or true/false for a switch"
	}
	return msg
}

func applyFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %v", err)
	}
	var settings map[string]any
	if err := yaml.Unmarshal(b, &settings); err != nil {
		return fmt.Errorf("config: %s: %v", path, oneLine(err.Error()))
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "config" || fs.Lookup(k) == nil {
			return fmt.Errorf("config: %s: unknown setting %q", path, k)
		}
		var v string
		_, isList := fs.Lookup(k).Value.(*list)
		switch x := settings[k].(type) {
		case string:
			v = x
		case bool, int, float64:
			v = fmt.Sprint(x)
		case []any:
			if !isList {
				return fmt.Errorf("%s (in %s): want a single value", k, path)
			}
			var items []string
			for _, item := range x {
				s, ok := item.(string)
				if !ok {
					return fmt.Errorf("%s (in %s): want a list of strings", k, path)
				}
				items = append(items, s)
			}
			v = strings.Join(items, ",")
		default:
			return fmt.Errorf("%s (in %s): want a single value", k, path)
		}
		resetList(fs.Lookup(k))
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("%s (in %s): %v", k, path, cause(err))
		}
	}
	return nil
}

// publicIPs lists --webrtc-public-ips.
func (c Config) publicIPs() []string {
	var out []string
	for _, ip := range strings.Split(c.WebRTCPublicIPs, ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			out = append(out, ip)
		}
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Validate checks every setting; the error names the first bad one.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data-dir: must not be empty")
	}
	if err := c.validSpoolDir(); err != nil {
		return err
	}
	for _, s := range c.secretFiles() {
		if *s.file != "" && *s.plain != "" {
			return fmt.Errorf("%s: give --%s or --%s, not both (prefer the file: a flag is visible in ps)", s.fileName, s.fileName, s.plainName)
		}
	}
	if c.RTSPUDPAddr != "" {
		if err := validAddr(c.RTSPUDPAddr); err != nil {
			return fmt.Errorf("rtsp-udp-addr: %v", err)
		}
		_, p, _ := net.SplitHostPort(c.RTSPUDPAddr)
		if n, _ := strconv.Atoi(p); n == 0 || n%2 != 0 {
			return fmt.Errorf("rtsp-udp-addr: the RTP port must be even and not 0 (RTCP takes the next), got %q", c.RTSPUDPAddr)
		}
	}
	if (c.RTSPTLSCert == "") != (c.RTSPTLSKey == "") {
		return errors.New("rtsp-tls-cert: --rtsp-tls-cert and --rtsp-tls-key go together")
	}
	if c.RTSPReadTimeout < time.Second {
		return errors.New("rtsp-read-timeout: must be at least 1s")
	}
	if c.RTSPRequestTimeout < time.Second || c.RTSPRequestTimeout > 10*time.Minute {
		return fmt.Errorf("rtsp-request-timeout: %v is outside 1s..10m", c.RTSPRequestTimeout)
	}
	if c.RTSPMaxPendingPerHost < 1 {
		return errors.New("rtsp-max-pending-per-host: must be at least 1")
	}
	if c.HTTPMaxConnsPerHost < 1 {
		return errors.New("http-max-conns-per-host: must be at least 1")
	}
	for _, s := range []struct {
		name string
		v    int
	}{{"rtsp-max-pending", c.RTSPMaxPending}, {"http-max-conns", c.HTTPMaxConns}} {
		if s.v < 0 {
			return fmt.Errorf("%s: must be at least 1, or 0 for a quarter of the file limit", s.name)
		}
		// Caps the descriptors could not hold would leave nothing for
		// recordings, the spool and the backends.
		if limit := connlimit.FileLimit(); uint64(s.v) > limit/2 {
			return fmt.Errorf("%s: %d is more than half of the process's file limit (%d): the rest is for recordings, the spool and the backends; 0 takes a quarter", s.name, s.v, limit)
		}
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		return errors.New("http-tls-cert: --http-tls-cert and --http-tls-key go together")
	}
	for name, addr := range map[string]string{"webrtc-udp-addr": c.WebRTCUDPAddr, "webrtc-tcp-addr": c.WebRTCTCPAddr} {
		if addr == "" {
			continue
		}
		if err := validAddr(addr); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
	}
	if c.WebRTCUDPAddr == "" && c.WebRTCTCPAddr == "" {
		return errors.New("webrtc-udp-addr: live viewing needs --webrtc-udp-addr or --webrtc-tcp-addr")
	}
	for _, ip := range c.publicIPs() {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("webrtc-public-ips: %q is not an IP address", ip)
		}
	}
	if _, err := live.ParseICEServers(strings.Split(c.WebRTCICE, ",")); err != nil {
		return fmt.Errorf("webrtc-ice-servers: %v", err)
	}
	if c.Workers < 0 || c.Workers > 64 {
		return errors.New("workers: --workers must be 0 to 64")
	}
	if c.LiveMaxSessions < 1 || c.LiveMaxPerUser < 1 {
		return errors.New("live-max-sessions: --live-max-sessions and --live-max-per-user must be at least 1")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("metrics-addr: want host:port, got %q", c.MetricsAddr)
		}
	}
	for name, addr := range map[string]string{"rtsp-addr": c.RTSPAddr, "http-addr": c.HTTPAddr} {
		if err := validAddr(addr); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
	}
	if c.S3Endpoint != "" {
		if strings.Contains(c.S3Endpoint, "://") {
			return fmt.Errorf("s3-endpoint: want host:port without a scheme (use --s3-tls for HTTPS), got %q", c.S3Endpoint)
		}
		if err := validAddr(c.S3Endpoint); err != nil || strings.HasPrefix(c.S3Endpoint, ":") {
			return fmt.Errorf("s3-endpoint: want host:port, got %q", c.S3Endpoint)
		}
		if c.S3AccessKey == "" && c.S3AccessKeyFile == "" {
			return errors.New("s3-access-key: required with --s3-endpoint (or --s3-access-key-file)")
		}
		if c.S3SecretKey == "" && c.S3SecretKeyFile == "" {
			return errors.New("s3-secret-key: required with --s3-endpoint (or --s3-secret-key-file)")
		}
		if !bucketName.MatchString(c.S3Bucket) || strings.Contains(c.S3Bucket, "..") {
			return fmt.Errorf("s3-bucket: %q is not a valid bucket name (3-63 of a-z 0-9 . -)", c.S3Bucket)
		}
	}
	if c.DatabaseURL != "" {
		if err := catalog.ValidateURL(c.DatabaseURL); err != nil {
			return err
		}
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil {
			return fmt.Errorf("redis-url: %v", err)
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return fmt.Errorf("redis-url: scheme %q not supported (want redis:// or rediss://)", u.Scheme)
		}
		if u.Host == "" {
			return errors.New("redis-url: no host")
		}
	}
	if !nodeIDPattern.MatchString(c.NodeID) {
		return fmt.Errorf("node-id: %q is not a node name (letters, digits, . _ -, at most 64, starting with a letter or digit); set --node-id", c.NodeID)
	}
	if c.AdvertiseURL != "" {
		if err := validAdvertiseURL(c.AdvertiseURL); err != nil {
			return fmt.Errorf("advertise-url: %v", err)
		}
	} else if c.RedisURL != "" && !namesHost(c.HTTPAddr) {
		return fmt.Errorf("advertise-url: required with --redis-url when --http-addr (%q) names no host: the other nodes forward live views to this node there", c.HTTPAddr)
	}
	for _, u := range c.WebhookURLs {
		if err := outbox.ValidateURL(u); err != nil {
			return fmt.Errorf("webhook-url: %v", err)
		}
	}
	if len(c.WebhookURLs) > 0 && c.WebhookSecretFile == "" {
		return errors.New("webhook-secret-file: required with --webhook-url (webhook deliveries are signed)")
	}
	if c.WebhookRetryFor < time.Second {
		return errors.New("webhook-retry-for: at least 1s")
	}
	if time.Duration(c.EventsKeep) <= c.WebhookRetryFor {
		return fmt.Errorf("events-keep: %v must be longer than --webhook-retry-for (%v): events still being retried would be pruned", c.EventsKeep.String(), c.WebhookRetryFor)
	}
	if c.UploadMaxSize == 0 {
		return errors.New("upload-max-size: must be more than 0")
	}
	if c.UploadSpoolMax < c.UploadMaxSize {
		return fmt.Errorf("upload-spool-max: %s is less than --upload-max-size (%s): the largest file could never be uploaded", c.UploadSpoolMax.String(), c.UploadMaxSize.String())
	}
	if c.UploadAbandonAfter < time.Minute {
		return errors.New("upload-abandon-after: at least 1m")
	}
	if c.SegmentDuration < 500*time.Millisecond || c.SegmentDuration > 10*time.Minute {
		return fmt.Errorf("segment-duration: %v is outside 500ms..10m", c.SegmentDuration)
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return errors.New("admin-token: must be at least 16 characters")
	}
	mode, err := storage.ParseMode(c.RetentionMode)
	if err != nil {
		return fmt.Errorf("retention-mode: %v", err)
	}
	if c.CaseRetention <= 0 {
		return errors.New("unlinked-retention: must be positive")
	}
	if c.RetentionMinimum <= 0 {
		return errors.New("retention-minimum: must be positive")
	}
	if _, err := c.copyApproval(); err != nil {
		return err
	}
	if _, err := c.retentionPolicy(); err != nil {
		return err
	}
	if _, err := evidence.ParseStepLimits(c.CaseStepLimits); err != nil {
		return fmt.Errorf("case-step-limits: %v", err)
	}
	if c.RetentionEvery < time.Second {
		return errors.New("retention-interval: at least 1s")
	}
	if mode != storage.Off && c.RetentionPeriod <= 0 {
		return errors.New("retention-period: must be positive unless --retention-mode off")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level: %q (want debug, info, warn or error)", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log-format: %q (want text or json)", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("shutdown-timeout: must be positive")
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > 10*time.Minute {
		return fmt.Errorf("shutdown-delay: %v is outside 0..10m", c.ShutdownDelay)
	}
	return nil
}

var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// hostName is the default node id: the host name up to its first dot
// (what a node id may hold), or "bodycam".
func hostName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "bodycam"
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

// validAdvertiseURL accepts http(s)://host[:port] with nothing else: the
// other nodes add the internal paths to it, and a path a proxy rewrote
// would not match what the node vouching for a request signed.
func validAdvertiseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: want http:// or https://", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q: no host", s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: want only scheme, host and port (no path, query or credentials)", s)
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q: %s is no address another node can reach", s, u.Hostname())
	}
	return nil
}

// namesHost reports whether a listen address names a host another node
// could reach (not ":8080", "0.0.0.0:8080" or "[::]:8080").
func namesHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsUnspecified()
}

// advertiseURL is how the other nodes reach this node's HTTP API:
// --advertise-url, or --http-addr's host with the port the listener got
// (ln, which tells the port when --http-addr asks for port 0), over https
// when --http-tls-cert is set. "" when --http-addr names no host: such a
// node cannot be reached by others, and devices it records can be watched
// only through it.
func (c Config) advertiseURL(ln net.Addr) string {
	if c.AdvertiseURL != "" {
		return strings.TrimRight(c.AdvertiseURL, "/")
	}
	if !namesHost(c.HTTPAddr) {
		return ""
	}
	host, port, _ := net.SplitHostPort(c.HTTPAddr)
	if ln != nil {
		if _, p, err := net.SplitHostPort(ln.String()); err == nil {
			port = p
		}
	}
	scheme := "http"
	if c.HTTPTLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// spoolDir is where the spool lives: --spool-dir, or <data-dir>/spool.
func (c Config) spoolDir() string {
	if c.SpoolDir != "" {
		return c.SpoolDir
	}
	return filepath.Join(c.DataDir, "spool")
}

// uploadDir is where partial dock uploads live: <spool-dir>/_uploads (not a
// device id, so ingest's spool never takes it for a device's).
func (c Config) uploadDir() string { return filepath.Join(c.spoolDir(), "_uploads") }

// validSpoolDir refuses a spool that would share names with the data
// directory's own files: the spool holds a directory per device, and a
// device may be called "keys" or "objects".
func (c Config) validSpoolDir() error {
	if c.SpoolDir == "" {
		return nil
	}
	spool, err1 := filepath.Abs(c.SpoolDir)
	data, err2 := filepath.Abs(c.DataDir)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("spool-dir: %v", err)
	}
	if within(data, spool) {
		return fmt.Errorf("spool-dir: %q holds the data directory %q; give the spool a directory of its own", c.SpoolDir, c.DataDir)
	}
	for _, sub := range []string{"objects", "keys"} {
		if within(spool, filepath.Join(data, sub)) {
			return fmt.Errorf("spool-dir: %q is inside the data directory's %s; give the spool a directory of its own", c.SpoolDir, sub)
		}
	}
	return nil
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// secretFile pairs a secret's -file setting with its plain twin.
type secretFile struct {
	fileName, plainName string
	file, plain         *string
}

func (c *Config) secretFiles() []secretFile {
	return []secretFile{
		{"admin-token-file", "admin-token", &c.AdminTokenFile, &c.AdminToken},
		{"s3-access-key-file", "s3-access-key", &c.S3AccessKeyFile, &c.S3AccessKey},
		{"s3-secret-key-file", "s3-secret-key", &c.S3SecretKeyFile, &c.S3SecretKey},
		{"database-url-file", "database-url", &c.DatabaseURLFile, &c.DatabaseURL},
	}
}

// loadSecrets reads the secrets the -file settings name into their plain
// twins. A file must be readable by its owner only, as the keys are; one
// trailing newline is dropped. Errors name the -file setting and never
// show what the file holds.
func (c Config) loadSecrets() (Config, error) {
	for _, s := range c.secretFiles() {
		if *s.file == "" {
			continue
		}
		v, err := readSecretFile(*s.file)
		if err != nil {
			return c, fmt.Errorf("%s: %v", s.fileName, err)
		}
		*s.plain = v
	}
	if c.AdminTokenFile != "" {
		// A token file written by hand may end in spaces too.
		if c.AdminToken = strings.TrimSpace(c.AdminToken); len(c.AdminToken) < 16 {
			return c, fmt.Errorf("admin-token-file: %s holds fewer than 16 characters", c.AdminTokenFile)
		}
	}
	if c.WebhookSecretFile != "" {
		v, err := readSecretFile(c.WebhookSecretFile)
		if err != nil {
			return c, fmt.Errorf("webhook-secret-file: %v", err)
		}
		if len(v) < outbox.MinSecret {
			return c, fmt.Errorf("webhook-secret-file: %s holds fewer than %d bytes", c.WebhookSecretFile, outbox.MinSecret)
		}
		c.WebhookSecret = []byte(v)
	}
	if c.DatabaseURLFile != "" {
		// Not catalog.ValidateURL's message: a URL that does not parse
		// would be quoted whole, password and all.
		u, err := url.Parse(c.DatabaseURL)
		switch {
		case err != nil:
			return c, fmt.Errorf("database-url-file: %s does not hold a URL", c.DatabaseURLFile)
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			return c, fmt.Errorf("database-url-file: %s holds a URL of scheme %q (want postgres://)", c.DatabaseURLFile, u.Scheme)
		case u.Host == "":
			return c, fmt.Errorf("database-url-file: %s holds a URL without a host", c.DatabaseURLFile)
		}
	}
	return c, nil
}

// maxSecret bounds what a secret file may hold: a PostgreSQL URL with many
// parameters fits, a file named by mistake is refused rather than read.
const maxSecret = 16 << 10

// readSecretFile reads a secret from a file only its owner can read.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by group or others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecret {
		return "", fmt.Errorf("%s is larger than %d KiB, too large for a secret", path, maxSecret>>10)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case v == "":
		return "", fmt.Errorf("%s is empty", path)
	case strings.ContainsAny(v, "\r\n"):
		return "", fmt.Errorf("%s holds more than one line", path)
	}
	return v, nil
}

func validAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want [host]:port, got %q", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port in %q", addr)
	}
	return nil
}

// defaultCategories are the retention classes without --category: routine
// footage at the legal minimum; an arrest kept long enough for charges, and
// complaints about it, to come after it (once a case links it, it is held
// anyway); a complaint for good. (Not the list's default value: a flag
// given would add to it instead of replacing it.)
var defaultCategories = []string{"traffic_stop=180d", "no_incident=180d", "arrest=3y", "complaint=permanent"}

// retentionPolicy is how long footage is kept (package retention), checked
// against --retention-minimum. Errors name the setting.
func (c Config) retentionPolicy() (evidence.RetentionPolicy, error) {
	p := evidence.RetentionPolicy{Unlinked: evidence.RetentionPeriod{Duration: time.Duration(c.CaseRetention)},
		Important: evidence.RetentionPeriod(c.ImportantRetention)}
	cats := c.Categories
	if len(cats) == 0 {
		cats = defaultCategories
	}
	for _, item := range cats {
		name, v, ok := strings.Cut(item, "=")
		if !ok {
			return p, fmt.Errorf("category: %q: want NAME=PERIOD, e.g. arrest=3y", item)
		}
		per, err := evidence.ParseRetentionPeriod(v)
		if err != nil {
			return p, fmt.Errorf("category: %s: %v", name, err)
		}
		p.Classes = append(p.Classes, evidence.RetentionClass{Name: strings.TrimSpace(name), Period: per})
	}
	if err := p.Validate(time.Duration(c.RetentionMinimum)); err != nil {
		// The policy's words for its parts become the settings' names.
		msg := err.Error()
		for _, w := range []struct{ from, to string }{
			{"category ", "category: "}, {"unlinked retention: ", "unlinked-retention: "}, {"important retention: ", "important-retention: "},
		} {
			if rest, ok := strings.CutPrefix(msg, w.from); ok {
				msg = w.to + rest
				break
			}
		}
		if c.RetentionMinimum != days(evidence.MinRetention) {
			msg += " (--retention-minimum is " + c.RetentionMinimum.String() + ")"
		}
		return p, errors.New(msg)
	}
	return p, nil
}

// retention is the storage policy the settings describe.
func (c Config) retention() storage.Retention {
	mode, _ := storage.ParseMode(c.RetentionMode)
	return storage.Retention{Mode: mode, Period: time.Duration(c.RetentionPeriod)}
}

// days is a duration that also accepts a day count: "180d".
type days time.Duration

func (d *days) String() string {
	if d == nil {
		return "0"
	}
	td := time.Duration(*d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", td/(24*time.Hour))
	}
	return td.String()
}

func (d *days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 || v > 36500 {
			return fmt.Errorf("want a number of days (e.g. 180d) or a duration (e.g. 72h)")
		}
		*d = days(time.Duration(v) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a number of days (e.g. 180d) or a duration (e.g. 72h)")
	}
	*d = days(v)
	return nil
}

// period is a retention period: 180d, 3y, permanent (or a duration).
type period evidence.RetentionPeriod

func (p *period) String() string {
	if p == nil {
		return ""
	}
	return evidence.RetentionPeriod(*p).String()
}

func (p *period) Set(s string) error {
	v, err := evidence.ParseRetentionPeriod(s)
	if err != nil {
		return errors.New("want a period such as 180d, 2y or permanent")
	}
	*p = period(v)
	return nil
}

// list is a setting that may be given several times (--webhook-url a
// --webhook-url b), or as a comma-separated list (in the environment; in
// the file also a YAML list). Each source replaces what a lower one set.
type list []string

func (l *list) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *list) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// resetList empties a list setting before a source sets it again.
func resetList(f *flag.Flag) {
	if l, ok := f.Value.(*list); ok {
		*l = nil
	}
}

// size is a byte count that accepts KiB, MiB and GiB suffixes.
type size uint64

func (s *size) String() string {
	if s == nil {
		return "0"
	}
	switch v := uint64(*s); {
	case v > 0 && v%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", v>>30)
	case v > 0 && v%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", v>>20)
	default:
		return strconv.FormatUint(v, 10)
	}
}

func (s *size) Set(v string) error {
	mult := uint64(1)
	for suffix, m := range map[string]uint64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			v, mult = n, m
			break
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return errors.New("want a size such as 1GiB, 500MiB or 1048576")
	}
	*s = size(n * mult)
	return nil
}

// copyApproval is the rule of approval before copying the settings give.
// Only auditors may be exempted: they read everything and change nothing,
// and an oversight body may need copies without asking the supervisors it
// oversees; officers and supervisors always ask.
func (c Config) copyApproval() (api.CopyApproval, error) {
	var a api.CopyApproval
	switch c.CopyApproval {
	case "required":
		a.Required = true
	case "off":
	default:
		return a, fmt.Errorf("copy-approval: required or off, got %q", c.CopyApproval)
	}
	for _, r := range c.CopyApprovalExempt {
		if evidence.Role(r) != evidence.RoleAuditor {
			return a, fmt.Errorf("copy-approval-exempt: only auditor may be exempted, got %q", r)
		}
		a.Exempt = append(a.Exempt, evidence.RoleAuditor)
	}
	if c.CopyGrantTTL <= 0 || c.CopyGrantTTL > evidence.MaxCopyGrant {
		return a, fmt.Errorf("copy-grant-ttl: more than 0 and at most %s, got %s", evidence.MaxCopyGrant, c.CopyGrantTTL)
	}
	a.GrantTTL = c.CopyGrantTTL
	return a, nil
}
