package ingest_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/ingest"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/dir"
)

const (
	token        = "ingest-test-admin-token"
	auditorToken = "ingest-test-auditor-token"
)

// harness runs the ingest and API roles in-process against real backends,
// with ffmpeg as the publisher.
type harness struct {
	t       *testing.T
	dataDir string
	cat     *catalog.Catalog
	store   storage.Store
	keys    *keyring.Keyring
	bus     *events.Bus
	srv     *ingest.Server
	api     *httptest.Server
	rtsp    string // host:port
	udp     string
	reg     *prometheus.Registry
	opts    ingest.Options // of srv, for a restart
	minFree uint64         // of its spool
	cancel  context.CancelFunc
	done    chan error
}

type harnessOptions struct {
	store           storage.Store
	tls             *tls.Config
	segmentDuration time.Duration
	minFree         uint64
	readTimeout     time.Duration
	requestTimeout  time.Duration
	maxPending      int
	leases          ingest.Leases
	nodeID          string
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, dataDir: t.TempDir(), bus: events.NewBus(), reg: prometheus.NewRegistry(), minFree: o.minFree}
	var err error
	if h.cat, err = catalog.Open(context.Background(), "", h.dataDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cat.Close() })
	h.store = o.store
	if h.store == nil {
		if h.store, err = dir.Open(filepath.Join(h.dataDir, "objects"), dir.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if h.keys, err = keyring.Open(filepath.Join(h.dataDir, "keys"), keyring.Options{}); err != nil {
		t.Fatal(err)
	}
	if o.segmentDuration == 0 {
		o.segmentDuration = 2 * time.Second
	}
	spool, err := ingest.OpenSpool(filepath.Join(h.dataDir, "spool"), o.minFree)
	if err != nil {
		t.Fatal(err)
	}
	h.udp = freeUDPPair(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.opts = ingest.Options{
		RTSPAddr: "127.0.0.1:0", UDPAddr: h.udp, TLS: o.tls, SegmentDuration: o.segmentDuration, ReadTimeout: o.readTimeout,
		RequestTimeout: o.requestTimeout, MaxPendingPerHost: o.maxPending,
		Spool: spool, Store: h.store, Catalog: h.cat, Keys: h.keys, Signer: h.keys, Events: h.bus,
		Registry: h.reg, Log: log, Leases: o.leases, NodeID: o.nodeID,
	}
	h.start()
	ctx := context.Background()
	// Admins do not read evidence: an auditor reads the recordings.
	if err := h.cat.CreateUser(ctx, evidence.User{ID: "auditor-1", Role: evidence.RoleAuditor, CertToken: "cert-auditor-1"}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(auditorToken))
	if err := h.cat.CreateAPIToken(ctx, evidence.APIToken{ID: "t1", TokenHash: hex.EncodeToString(sum[:]), UserID: "auditor-1", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	a := api.New(api.Options{Catalog: h.cat, Users: h.cat, Store: h.store, Keys: h.keys, Live: h.srv, AdminToken: token,
		RTSPPort: "0", Log: log, Registry: prometheus.NewRegistry()})
	h.api = httptest.NewServer(a.Handler())
	t.Cleanup(func() { h.api.Close(); h.stop() })
	return h
}

// start runs a new ingest role with h.opts.
func (h *harness) start() {
	h.t.Helper()
	h.srv = ingest.New(h.opts)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.srv.Run(ctx) }()
	select {
	case <-h.srv.Ready():
	case err := <-h.done:
		h.t.Fatalf("ingest did not start: %v", err)
	}
	h.rtsp = h.srv.Addr()
}

// restart stops the ingest role and starts it again on the same spool,
// catalog and store, as a restart of the server would (its metrics start
// again from zero).
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	h.reg = prometheus.NewRegistry()
	h.opts.Registry = h.reg
	spool, err := ingest.OpenSpool(filepath.Join(h.dataDir, "spool"), h.minFree) // a new process's
	if err != nil {
		h.t.Fatal(err)
	}
	h.opts.Spool = spool
	h.start()
}

// with returns a view of h whose helpers report to t, for subtests.
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// stop shuts the ingest role down (idempotent).
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("ingest Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Error("ingest did not stop within 30s")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var udpMu sync.Mutex

// freeUDPPair finds an even UDP port whose successor is free too.
func freeUDPPair(t *testing.T) string {
	udpMu.Lock()
	defer udpMu.Unlock()
	for range 200 {
		p := 20000 + 2*rand.IntN(20000)
		a, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		b, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return fmt.Sprintf("127.0.0.1:%d", p)
	}
	t.Fatal("no free UDP port pair")
	return ""
}

// register adds a device through the API and returns its RTSP secret.
func (h *harness) register(id string) string {
	h.t.Helper()
	// A device's secret is hashed with argon2id in a few slots: on a busy
	// machine the server says 503, try again shortly, as a client would.
	code, body := h.call("POST", "/api/v1/devices", fmt.Sprintf(`{"id":%q,"officer_id":"o-%s"}`, id, id))
	for deadline := time.Now().Add(60 * time.Second); code == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		code, body = h.call("POST", "/api/v1/devices", fmt.Sprintf(`{"id":%q,"officer_id":"o-%s"}`, id, id))
	}
	if code != 201 {
		h.t.Fatalf("register %s: %d %s", id, code, body)
	}
	var out struct {
		Password string `json:"rtsp_password"`
	}
	json.Unmarshal(body, &out)
	return out.Password
}

func (h *harness) call(method, path, body string) (int, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.api.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if strings.HasPrefix(path, "/api/v1/recordings") {
		req.Header.Set("Authorization", "Bearer "+auditorToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// publishArgs are ffmpeg arguments for a test stream of seconds length.
type stream struct {
	name  string
	video []string // encoder args; nil for none
	audio []string
}

var (
	h264 = []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p"} // B-frames on (the default)
	h265 = []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=30:log-level=error", "-pix_fmt", "yuv420p"}
	aac  = []string{"-c:a", "aac", "-b:a", "64k", "-ar", "48000"}
	pcmu = []string{"-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1"}
	pcma = []string{"-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1"}
	opus = []string{"-c:a", "libopus", "-ar", "48000", "-b:a", "48k"}
)

// ffmpegArgs builds the command that publishes a test pattern with a clock
// and a tone to url.
func ffmpegArgs(s stream, seconds float64, transport, url string) []string {
	args := []string{"-hide_banner", "-loglevel", "error", "-re"}
	if s.video != nil {
		args = append(args, "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30")
	}
	if s.audio != nil {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	}
	args = append(args, "-t", fmt.Sprint(seconds))
	if s.video != nil {
		args = append(args, s.video...)
	} else {
		args = append(args, "-vn")
	}
	if s.audio != nil {
		args = append(args, s.audio...)
	} else {
		args = append(args, "-an")
	}
	return append(args, "-f", "rtsp", "-rtsp_transport", transport, url)
}

func (h *harness) url(id, secret, query string) string {
	u := fmt.Sprintf("rtsp://%s:%s@%s/%s", id, secret, h.rtsp, id)
	if query != "" {
		u += "?" + query
	}
	return u
}

// publish runs ffmpeg to completion.
func (h *harness) publish(s stream, seconds float64, transport, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds*float64(time.Second))+60*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "ffmpeg", ffmpegArgs(s, seconds, transport, url)...).CombinedOutput()
}

// waitRecordings waits until the device has n finished recordings with
// manifests, and returns them oldest first.
func (h *harness) waitRecordings(device string, n int, within time.Duration) []evidence.Recording {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		recs, err := h.cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: device})
		if err != nil {
			h.t.Fatal(err)
		}
		done := 0
		for _, r := range recs {
			if r.State != evidence.StateLive && r.ManifestKey != "" {
				done++
			}
		}
		if done >= n {
			for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
				recs[i], recs[j] = recs[j], recs[i]
			}
			return recs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("device %s: %d of %d recordings finished after %v: %+v", device, done, n, within, recs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type verifyResult struct {
	OK          bool   `json:"ok"`
	FirstBadSeq *int64 `json:"first_bad_seq"`
	Reason      string `json:"reason"`
	Manifest    string `json:"manifest"`
	Checked     int    `json:"checked"`
	Gaps        []struct {
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
	} `json:"gaps"`
}

func (h *harness) verify(rec string) verifyResult {
	h.t.Helper()
	code, body := h.call("POST", "/api/v1/recordings/"+rec+"/verify", "")
	if code != 200 {
		h.t.Fatalf("verify %s: %d %s", rec, code, body)
	}
	var v verifyResult
	if err := json.Unmarshal(body, &v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

// media downloads /media and checks that ffmpeg decodes it without an
// error; it returns the file's duration.
func (h *harness) media(rec string) time.Duration {
	h.t.Helper()
	code, body := h.call("GET", "/api/v1/recordings/"+rec+"/media", "")
	if code != 200 {
		h.t.Fatalf("media %s: %d %.200s", rec, code, body)
	}
	f := filepath.Join(h.t.TempDir(), rec+".mp4")
	os.WriteFile(f, body, 0o644)
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", f, "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		h.t.Fatalf("ffmpeg decoding /media of %s: %v\n%s", rec, err, out)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f).Output()
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(out)) + "s")
	if err != nil {
		h.t.Fatalf("ffprobe duration %q: %v", out, err)
	}
	return d
}

// value is the value of name's series whose labels include the given
// name/value pairs (a counter or a gauge; summed over the series that
// match), and whether there is one.
func (h *harness) value(name string, labels ...string) (float64, bool) {
	mfs, _ := h.reg.Gather()
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, l := range m.GetLabel() {
					ok = ok || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !ok {
					continue series
				}
			}
			found = true
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum, found
}

func (h *harness) metric(name string) string {
	mfs, _ := h.reg.Gather()
	var b strings.Builder
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				fmt.Fprintln(&b, m.String())
			}
		}
	}
	return b.String()
}
