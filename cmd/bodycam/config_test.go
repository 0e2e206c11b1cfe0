package main

import (
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Precedence, lowest first: default, file, environment, flag.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bodycam.yaml")
	os.WriteFile(file, []byte("data-dir: /from/file\nhttp-addr: 127.0.0.1:1111\nrtsp-addr: 127.0.0.1:2222\nsegment-duration: 6s\ns3-tls: true\nretention-period: 30d\n"), 0o600)
	cfg, err := loadConfig("serve", []string{"--config", file, "--rtsp-addr", "127.0.0.1:3333"},
		env(map[string]string{"BODYCAM_HTTP_ADDR": "127.0.0.1:4444", "BODYCAM_RTSP_ADDR": "127.0.0.1:5555"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"data-dir (file)":         {cfg.DataDir, "/from/file"},
		"http-addr (env > file)":  {cfg.HTTPAddr, "127.0.0.1:4444"},
		"rtsp-addr (flag > env)":  {cfg.RTSPAddr, "127.0.0.1:3333"},
		"s3-bucket (default)":     {cfg.S3Bucket, "bodycam"},
		"retention-period (file)": {cfg.RetentionPeriod.String(), "30d"},
	}
	for name, v := range want {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", name, v[0], v[1])
		}
	}
	if cfg.SegmentDuration != 6*time.Second || !cfg.S3TLS {
		t.Errorf("file values not applied: %+v", cfg)
	}
	// BODYCAM_CONFIG names the file too.
	cfg, err = loadConfig("serve", nil, env(map[string]string{"BODYCAM_CONFIG": file}), io.Discard)
	if err != nil || cfg.DataDir != "/from/file" {
		t.Fatalf("BODYCAM_CONFIG: %v %v", cfg.DataDir, err)
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("segment-duration: soon\n"), 0o600)
	unknown := filepath.Join(t.TempDir(), "unknown.yaml")
	os.WriteFile(unknown, []byte("colour: red\n"), 0o600)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--colour", "red"}, nil, "unknown flag --colour"},
		{[]string{"--segment-duration", "soon"}, nil, "segment-duration"},
		{[]string{"--segment-duration", "1h"}, nil, "segment-duration"},
		{[]string{"--s3-tls=maybe"}, nil, "s3-tls"},
		{[]string{"--database-url", "mysql://db/x"}, nil, "database-url"},
		{[]string{"--database-url", "postgres://"}, nil, "database-url"},
		{[]string{"--redis-url", "http://r"}, nil, "redis-url"},
		{[]string{"--node-id", "node/1"}, nil, "node-id"},
		{[]string{"--node-id", ""}, nil, "node-id"},
		{[]string{"--advertise-url", "node-a:8080"}, nil, "advertise-url"},
		{[]string{"--advertise-url", "ftp://node-a:8080"}, nil, "advertise-url"},
		{[]string{"--advertise-url", "http://node-a:8080/bodycam"}, nil, "advertise-url"},
		{[]string{"--advertise-url", "http://0.0.0.0:8080"}, nil, "advertise-url"},
		{[]string{"--redis-url", "redis://r:6379"}, nil, "advertise-url: required with --redis-url"},
		{[]string{"--redis-url", "redis://r:6379", "--http-addr", "0.0.0.0:8080"}, nil, "advertise-url: required with --redis-url"},
		{[]string{"--s3-endpoint", "https://minio:9000"}, nil, "s3-endpoint"},
		{[]string{"--s3-endpoint", "minio"}, nil, "s3-endpoint"},
		{[]string{"--s3-endpoint", "minio:9000"}, nil, "s3-access-key"},
		{[]string{"--s3-endpoint", "minio:9000", "--s3-access-key", "a", "--s3-secret-key", "b", "--s3-bucket", "Bad_Bucket"}, nil, "s3-bucket"},
		{[]string{"--http-addr", "8080"}, nil, "http-addr"},
		{[]string{"--rtsp-addr", ":99999"}, nil, "rtsp-addr"},
		{[]string{"--admin-token", "short"}, nil, "admin-token"},
		{[]string{"--admin-token", "0123456789abcdef", "--admin-token-file", "/run/secrets/token"}, nil, "admin-token-file"},
		{nil, map[string]string{"BODYCAM_ADMIN_TOKEN": "0123456789abcdef", "BODYCAM_ADMIN_TOKEN_FILE": "/run/secrets/token"}, "admin-token-file"},
		{[]string{"--s3-secret-key", "x", "--s3-secret-key-file", "/run/secrets/s3"}, nil, "s3-secret-key-file: give --s3-secret-key-file or --s3-secret-key, not both"},
		{[]string{"--s3-access-key-file", "/run/secrets/a"}, map[string]string{"BODYCAM_S3_ACCESS_KEY": "a"}, "s3-access-key-file"},
		{[]string{"--database-url-file", "/run/secrets/db", "--database-url", "postgres://db/x"}, nil, "database-url-file"},
		{[]string{"--s3-endpoint", "minio:9000", "--s3-access-key-file", "/run/secrets/a"}, nil, "s3-secret-key: required with --s3-endpoint (or --s3-secret-key-file)"},
		{[]string{"--data-dir", "/var/lib/bodycam", "--spool-dir", "/var/lib/bodycam"}, nil, "spool-dir"},
		{[]string{"--data-dir", "/var/lib/bodycam", "--spool-dir", "/var/lib"}, nil, "spool-dir"},
		{[]string{"--data-dir", "/var/lib/bodycam", "--spool-dir", "/var/lib/bodycam/objects/spool"}, nil, "spool-dir"},
		{[]string{"--data-dir", "data", "--spool-dir", "./data/keys"}, nil, "spool-dir"},
		{[]string{"--shutdown-delay", "-1s"}, nil, "shutdown-delay"},
		{nil, map[string]string{"BODYCAM_SHUTDOWN_DELAY": "1h"}, "shutdown-delay"},
		{[]string{"--http-tls-key", "key.pem"}, nil, "http-tls-cert"},
		{[]string{"--http-tls-cert", "cert.pem"}, nil, "http-tls-cert"},
		{[]string{"--rtsp-request-timeout", "500ms"}, nil, "rtsp-request-timeout"},
		{[]string{"--rtsp-max-pending-per-host", "0"}, nil, "rtsp-max-pending-per-host"},
		{[]string{"--http-max-conns-per-host", "0"}, nil, "http-max-conns-per-host"},
		{[]string{"--http-max-conns-per-host", "many"}, nil, "http-max-conns-per-host"},
		{[]string{"--http-max-conns", "-1"}, nil, "http-max-conns"},
		{[]string{"--http-max-conns", "2000000000"}, nil, "http-max-conns: 2000000000 is more than half of the process's file limit"},
		{nil, map[string]string{"BODYCAM_RTSP_MAX_PENDING": "-5"}, "rtsp-max-pending"},
		{[]string{"--rtsp-max-pending", "2000000000"}, nil, "rtsp-max-pending: 2000000000 is more than half"},
		{[]string{"--retention-mode", "forever"}, nil, "retention-mode"},
		{[]string{"--retention-period", "ten"}, nil, "retention-period"},
		// Retention classes: never below the legal minimum of 180 days.
		{[]string{"--category", "arrest=30d"}, nil, "category: arrest: 30d is below the minimum retention of 180d"},
		{[]string{"--category", "arrest=179d"}, nil, "category: arrest: 179d is below"},
		{[]string{"--category", "arrest"}, nil, `category: "arrest": want NAME=PERIOD`},
		{[]string{"--category", "arrest=soon"}, nil, "category: arrest"},
		{[]string{"--category", "Arrest=1y"}, nil, "category: \"Arrest\""},
		{[]string{"--category", "arrest=1y", "--category", "arrest=2y"}, nil, "category: arrest: configured twice"},
		{nil, map[string]string{"BODYCAM_CATEGORY": "arrest=3y,errand=10d"}, "category: errand: 10d is below"},
		{[]string{"--unlinked-retention", "30d"}, nil, "unlinked-retention: 30d is below the minimum retention of 180d"},
		{[]string{"--important-retention", "90d"}, nil, "important-retention: 90d is below"},
		{[]string{"--important-retention", "soon"}, nil, "important-retention"},
		{[]string{"--retention-minimum", "0s"}, nil, "retention-minimum: must be positive"},
		// A lowered minimum (tests) says so in the refusal.
		{[]string{"--retention-minimum", "1h", "--category", "arrest=30m"}, nil, "category: arrest: 30m0s is below the minimum retention of 1h0m0s (--retention-minimum is 1h0m0s)"},
		{[]string{"--case-step-limits", "filed=soon"}, nil, `case-step-limits: case step limit "filed=soon"`},
		{nil, map[string]string{"BODYCAM_CASE_STEP_LIMITS": "archived=1h"}, "case-step-limits"},
		{[]string{"--copy-approval", "maybe"}, nil, `copy-approval: required or off, got "maybe"`},
		{[]string{"--copy-approval-exempt", "supervisor"}, nil, `copy-approval-exempt: only auditor may be exempted, got "supervisor"`},
		{nil, map[string]string{"BODYCAM_COPY_APPROVAL_EXEMPT": "auditor,officer"}, `copy-approval-exempt: only auditor`},
		{[]string{"--copy-grant-ttl", "169h"}, nil, "copy-grant-ttl: more than 0 and at most 168h0m0s"},
		{[]string{"--copy-grant-ttl", "0s"}, nil, "copy-grant-ttl"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"stray"}, nil, "unexpected argument"},
		{nil, map[string]string{"BODYCAM_SEGMENT_DURATION": "x"}, "BODYCAM_SEGMENT_DURATION"},
		{[]string{"--config", bad}, nil, "segment-duration"},
		{[]string{"--config", unknown}, nil, `unknown setting "colour"`},
		{[]string{"--config", "/no/such/file.yaml"}, nil, "config"},
		{[]string{"--webhook-url", "https://receiver.example/hook"}, nil, "webhook-secret-file: required with --webhook-url"},
		{[]string{"--webhook-url", "ftp://u:s3cr3t-pw@receiver.example/hook", "--webhook-secret-file", "/run/secrets/wh"}, nil, `webhook-url: ftp://receiver.example/hook: scheme "ftp"`},
		{nil, map[string]string{"BODYCAM_WEBHOOK_URL": "https://a.example/h,receiver.example/h", "BODYCAM_WEBHOOK_SECRET_FILE": "/s"}, "webhook-url"},
		{[]string{"--webhook-retry-for", "0s"}, nil, "webhook-retry-for"},
		{[]string{"--events-keep", "1d", "--webhook-retry-for", "48h"}, nil, "events-keep: 1d must be longer than --webhook-retry-for"},
	}
	for _, c := range cases {
		_, err := loadConfig("serve", c.args, env(c.env), io.Discard)
		if err == nil {
			t.Errorf("%v %v: accepted", c.args, c.env)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "s3cr3t") {
			t.Errorf("%v %v: error %q, want one line containing %q", c.args, c.env, msg, c.want)
		}
	}
}

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := loadConfig("serve", nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "./data" || cfg.RTSPAddr != ":8554" || cfg.HTTPAddr != ":8080" || cfg.S3Bucket != "bodycam" {
		t.Fatalf("defaults differ from PRODUCT.md: %+v", cfg)
	}
}

// The advertise URL is --advertise-url, or --http-addr's host with the
// port its listener got; none when --http-addr names no host.
func TestAdvertiseURL(t *testing.T) {
	port := func(p int) net.Addr { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: p} }
	for _, c := range []struct {
		args []string
		ln   net.Addr
		want string
	}{
		{nil, port(8080), ""},
		{[]string{"--http-addr", "0.0.0.0:8080"}, port(8080), ""},
		{[]string{"--http-addr", "10.0.0.1:8080"}, port(8080), "http://10.0.0.1:8080"},
		{[]string{"--http-addr", "127.0.0.1:0"}, port(41234), "http://127.0.0.1:41234"},
		{[]string{"--http-addr", "[::1]:0"}, port(41234), "http://[::1]:41234"},
		{[]string{"--http-addr", "node-a.internal:8443", "--http-tls-cert", "c.pem", "--http-tls-key", "k.pem"}, port(8443), "https://node-a.internal:8443"},
		{[]string{"--advertise-url", "https://node-a.example:8443/", "--redis-url", "redis://r:6379"}, port(8080), "https://node-a.example:8443"},
		{[]string{"--http-addr", "127.0.0.1:8080", "--redis-url", "redis://r:6379"}, port(8080), "http://127.0.0.1:8080"},
	} {
		cfg, err := loadConfig("serve", c.args, env(nil), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got := cfg.advertiseURL(c.ln); got != c.want {
			t.Errorf("%v: %q, want %q", c.args, got, c.want)
		}
	}
	if cfg, _ := loadConfig("serve", nil, env(nil), io.Discard); cfg.NodeID == "" || strings.Contains(cfg.NodeID, ".") {
		t.Errorf("default node id %q: want the host name up to its first dot", cfg.NodeID)
	}
}

// The transport settings come from a flag, the environment or the file
// like every other.
func TestTransportSettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bodycam.yaml")
	os.WriteFile(file, []byte("rtsp-request-timeout: 7s\nhttp-max-conns-per-host: 99\nhttp-max-conns: 300\nrtsp-max-pending: 100\nhttp-tls-cert: /etc/bodycam/cert.pem\nhttp-tls-key: /etc/bodycam/key.pem\n"), 0o600)
	cfg, err := loadConfig("serve", []string{"--config", file, "--rtsp-max-pending-per-host", "12"},
		env(map[string]string{"BODYCAM_ADMIN_TOKEN_FILE": "/run/secrets/admin-token", "BODYCAM_RTSP_MAX_PENDING_PER_HOST": "5", "BODYCAM_RTSP_MAX_PENDING": "200"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RTSPRequestTimeout != 7*time.Second || cfg.HTTPMaxConnsPerHost != 99 || cfg.RTSPMaxPendingPerHost != 12 ||
		cfg.HTTPMaxConns != 300 || cfg.RTSPMaxPending != 200 ||
		cfg.HTTPTLSCert != "/etc/bodycam/cert.pem" || cfg.HTTPTLSKey != "/etc/bodycam/key.pem" || cfg.AdminTokenFile != "/run/secrets/admin-token" {
		t.Fatalf("%+v", cfg)
	}
	def := defaults()
	if def.RTSPRequestTimeout != 10*time.Second || def.RTSPMaxPendingPerHost != 64 || def.HTTPMaxConnsPerHost != 256 ||
		def.HTTPMaxConns != 0 || def.RTSPMaxPending != 0 {
		t.Fatalf("defaults differ from the README: %+v", def)
	}
}

// --webhook-url may be given several times, or as a comma-separated list
// in the environment, or a YAML list in the file; each source replaces a
// lower one's, as every setting does.
func TestWebhookURLsSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bodycam.yaml")
	os.WriteFile(file, []byte("webhook-url: [https://f1.example/h, https://f2.example/h]\nwebhook-secret-file: /run/secrets/wh\nevents-keep: 14d\n"), 0o600)
	one := filepath.Join(t.TempDir(), "one.yaml")
	os.WriteFile(one, []byte("webhook-url: https://f3.example/h\nwebhook-secret-file: /run/secrets/wh\n"), 0o600)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, ""},
		{[]string{"--webhook-url", "https://a.example/h", "--webhook-url", "http://b.example:8080/h", "--webhook-secret-file", "/s"}, nil,
			"https://a.example/h,http://b.example:8080/h"},
		{nil, map[string]string{"BODYCAM_WEBHOOK_URL": "https://a.example/h, https://b.example/h", "BODYCAM_WEBHOOK_SECRET_FILE": "/s"},
			"https://a.example/h,https://b.example/h"},
		{[]string{"--config", file}, nil, "https://f1.example/h,https://f2.example/h"},
		{[]string{"--config", one}, nil, "https://f3.example/h"},
		{[]string{"--config", file}, map[string]string{"BODYCAM_WEBHOOK_URL": "https://env.example/h"}, "https://env.example/h"},
		{[]string{"--config", file, "--webhook-url", "https://flag.example/h"}, map[string]string{"BODYCAM_WEBHOOK_URL": "https://env.example/h"},
			"https://flag.example/h"},
	} {
		cfg, err := loadConfig("serve", c.args, env(c.env), io.Discard)
		if err != nil || cfg.WebhookURLs.String() != c.want {
			t.Errorf("%v %v: %q, %v; want %q", c.args, c.env, cfg.WebhookURLs.String(), err, c.want)
		}
	}
	cfg, _ := loadConfig("serve", []string{"--config", file}, env(nil), io.Discard)
	if cfg.EventsKeep.String() != "14d" || cfg.WebhookRetryFor != 24*time.Hour {
		t.Errorf("events-keep %s, webhook-retry-for %v", cfg.EventsKeep.String(), cfg.WebhookRetryFor)
	}
	def := defaults()
	if def.EventsKeep.String() != "7d" || def.WebhookRetryFor != 24*time.Hour || len(def.WebhookURLs) != 0 {
		t.Errorf("defaults differ from the README: %+v", def)
	}
}

// The README's configuration table lists every setting.
func TestREADMEListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaults()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.flags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(readme), "| `--"+f.Name+"`") && !strings.Contains(string(readme), ", `--"+f.Name+"`") {
			t.Errorf("--%s is not in the README's configuration table", f.Name)
		}
	})
}

// The spool goes where --spool-dir says, <data-dir>/spool by default; any
// directory of its own is fine, also inside the data directory.
func TestSpoolDirSetting(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--data-dir", "/var/lib/bodycam"}, nil, "/var/lib/bodycam/spool"},
		{[]string{"--data-dir", "/var/lib/bodycam", "--spool-dir", "/fast/spool"}, nil, "/fast/spool"},
		{nil, map[string]string{"BODYCAM_DATA_DIR": "/d", "BODYCAM_SPOOL_DIR": "/d/spool"}, "/d/spool"},
		{[]string{"--data-dir", "/var/lib/bodycam", "--spool-dir", "/var/lib/bodycam-spool"}, nil, "/var/lib/bodycam-spool"},
	} {
		cfg, err := loadConfig("serve", c.args, env(c.env), io.Discard)
		if err != nil || cfg.spoolDir() != c.want {
			t.Errorf("%v %v: spool %q, %v; want %q", c.args, c.env, cfg.spoolDir(), err, c.want)
		}
	}
}

// Every secret can come from a file: read whole, one trailing newline
// dropped, refused when others could read it, empty, of several lines or
// missing, with an error that names the -file setting and never shows
// what the file holds.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	const dbURL = "postgres://bodycam:s3cr3t-pw@db.internal:5432/bodycam?sslmode=verify-full"
	access := write("access", "AKIAEXAMPLE\n", 0o600)
	secret := write("secret", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY\r\n", 0o400)
	db := write("db", dbURL+"\n", 0o600)
	token := write("token", "  an-admin-token-of-a-good-length \n", 0o600)
	cfg, err := loadConfig("serve", []string{"--s3-endpoint", "minio:9000", "--s3-access-key-file", access, "--database-url-file", db},
		env(map[string]string{"BODYCAM_S3_SECRET_KEY_FILE": secret, "BODYCAM_ADMIN_TOKEN_FILE": token}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = cfg.loadSecrets(); err != nil {
		t.Fatal(err)
	}
	wh := write("webhook", "a webhook secret of a good length\n", 0o600)
	if whCfg, err := loadConfig("serve", []string{"--webhook-url", "https://r.example/h", "--webhook-secret-file", wh}, env(nil), io.Discard); err != nil {
		t.Fatal(err)
	} else if whCfg, err = whCfg.loadSecrets(); err != nil || string(whCfg.WebhookSecret) != "a webhook secret of a good length" {
		t.Fatalf("webhook secret %q, %v", whCfg.WebhookSecret, err)
	}
	if cfg.S3AccessKey != "AKIAEXAMPLE" || cfg.S3SecretKey != "wJalrXUtnFEMI/K7MDENG+bPxRfiCY" || cfg.DatabaseURL != dbURL ||
		cfg.AdminToken != "an-admin-token-of-a-good-length" {
		t.Fatalf("secrets read: %q %q %q %q", cfg.S3AccessKey, cfg.S3SecretKey, cfg.DatabaseURL, cfg.AdminToken)
	}

	for _, c := range []struct {
		setting, path, want string
	}{
		{"s3-secret-key-file", write("open", "secret\n", 0o640), "readable by group or others (mode -rw-r-----); chmod 600 it"},
		{"s3-access-key-file", write("world", "secret\n", 0o604), "readable by group or others"},
		{"s3-secret-key-file", write("empty", "\n", 0o600), "is empty"},
		{"s3-secret-key-file", write("lines", "secret\nmore\n", 0o600), "more than one line"},
		{"s3-secret-key-file", filepath.Join(dir, "missing"), "no such file"},
		{"s3-secret-key-file", dir, "not a regular file"},
		{"database-url-file", write("mysql", "mysql://u:s3cr3t-pw@db/x\n", 0o600), `scheme "mysql"`},
		{"database-url-file", write("nohost", "postgres:///x?password=s3cr3t-pw\n", 0o600), "without a host"},
		{"database-url-file", write("unparsable", "postgres://u:s3cr3t-pw@db:port/x\n", 0o600), "does not hold a URL"},
		{"admin-token-file", write("short", "s3cr3t-pw\n", 0o600), "fewer than 16 characters"},
		{"s3-secret-key-file", write("huge", strings.Repeat("x", 17<<10), 0o600), "too large"},
		{"webhook-secret-file", write("whshort", "s3cr3t-pw-15byt\n", 0o600), "fewer than 16 bytes"},
		{"webhook-secret-file", write("whopen", "s3cr3t-pw-of-a-good-length\n", 0o644), "readable by group or others"},
	} {
		cfg, err := loadConfig("serve", []string{"--" + c.setting, c.path}, env(nil), io.Discard)
		if err == nil {
			_, err = cfg.loadSecrets()
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.setting+": ") || !strings.Contains(err.Error(), c.want) ||
			strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s %s: %v; want one line naming the setting, saying %q, without the secret", c.setting, filepath.Base(c.path), err, c.want)
		}
	}
}

// The default retention classes, and a test's short ones under a lowered
// --retention-minimum; classes from the file as a list.
func TestRetentionClassesConfig(t *testing.T) {
	cfg, err := loadConfig("serve", nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.retentionPolicy()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Classes {
		got = append(got, c.Name+"="+c.Period.String())
	}
	if strings.Join(got, ",") != "traffic_stop=180d,no_incident=180d,arrest=3y,complaint=permanent" ||
		p.Unlinked.String() != "180d" || p.Important.String() != "2y" || time.Duration(cfg.RetentionMinimum) != evidence.MinRetention {
		t.Fatalf("default policy: %v, unlinked %s, important %s, minimum %s", got, p.Unlinked, p.Important, cfg.RetentionMinimum.String())
	}
	cfg, err = loadConfig("serve", []string{"--retention-minimum", "1m", "--category", "arrest=5m", "--category", "complaint=permanent",
		"--unlinked-retention", "2m", "--important-retention", "10m"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := cfg.retentionPolicy(); len(p.Classes) != 2 || p.Classes[0].Period.Duration != 5*time.Minute || !p.Classes[1].Period.Permanent ||
		p.Important.Duration != 10*time.Minute {
		t.Fatalf("a test's policy: %+v", p)
	}
	file := filepath.Join(t.TempDir(), "bodycam.yaml")
	os.WriteFile(file, []byte("category:\n  - arrest=5y\n  - complaint=permanent\nimportant-retention: permanent\n"), 0o600)
	cfg, err = loadConfig("serve", []string{"--config", file}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := cfg.retentionPolicy(); len(p.Classes) != 2 || p.Classes[0].Period.Years != 5 || !p.Important.Permanent {
		t.Fatalf("classes from the file: %+v", p)
	}
}
