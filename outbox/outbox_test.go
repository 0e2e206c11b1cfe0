package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/testsvc"
	"github.com/bodycam/bodycam/outbox"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var secret = []byte("a webhook secret of 32 bytes....")

// engines runs fn against a SQLite and a PostgreSQL catalog.
func engines(t *testing.T, fn func(t *testing.T, c *catalog.Catalog)) {
	for name, open := range map[string]func(t *testing.T) (*catalog.Catalog, error){
		"sqlite": func(t *testing.T) (*catalog.Catalog, error) {
			return catalog.Open(context.Background(), "", t.TempDir())
		},
		"postgres": func(t *testing.T) (*catalog.Catalog, error) {
			return catalog.Open(context.Background(), testsvc.Postgres(t), "")
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := open(t)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			fn(t, c)
		})
	}
}

// delivery is one request a receiver took in (answered 2xx or not).
type delivery struct {
	id, key string
	seq     int64
	kind    events.Kind
}

// receiver is a webhook receiver on 127.0.0.1 that checks every
// signature. answer decides, per request, whether it takes the event in
// (recorded) and what it answers.
type receiver struct {
	t      *testing.T
	url    string
	addr   string
	mu     sync.Mutex
	answer func(n int, e catalog.OutboxEvent) (record bool, status int)
	got    []delivery
	n      int
	srv    *http.Server
}

// newReceiver reserves a loopback port; nothing listens on it (connections
// are refused) until start.
func newReceiver(t *testing.T) *receiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &receiver{t: t, addr: addr, url: "http://" + addr + "/hooks/bodycam?token=not-for-logs",
		answer: func(int, catalog.OutboxEvent) (bool, int) { return true, 204 }}
	t.Cleanup(func() {
		if r.srv != nil {
			r.srv.Close()
		}
	})
	return r
}

func (r *receiver) start() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("receiver's port taken meanwhile: %v", err)
	}
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(ln)
}

func (r *receiver) setAnswer(f func(n int, e catalog.OutboxEvent) (bool, int)) {
	r.mu.Lock()
	r.answer = f
	r.mu.Unlock()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := outbox.Verify(secret, req.Header.Get(outbox.HeaderSignature), req.Header.Get(outbox.HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
		r.t.Errorf("delivery with a bad signature: %v", err)
		w.WriteHeader(401)
		return
	}
	var e catalog.OutboxEvent
	var env struct {
		ID         string          `json:"id"`
		Seq        int64           `json:"seq"`
		Kind       events.Kind     `json:"kind"`
		Device     string          `json:"device"`
		Case       string          `json:"case"`
		OccurredAt time.Time       `json:"occurred_at"`
		Data       json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		r.t.Errorf("delivery body %s: %v", body, err)
		w.WriteHeader(400)
		return
	}
	e = catalog.OutboxEvent{ID: env.ID, Seq: env.Seq, Kind: env.Kind, DeviceID: env.Device, CaseID: env.Case, OccurredAt: env.OccurredAt, Data: env.Data}
	if req.Header.Get(outbox.HeaderEventID) != e.ID || req.Header.Get(outbox.HeaderEventKind) != string(e.Kind) ||
		req.Header.Get("Content-Type") != "application/json" || req.Method != "POST" || req.URL.Query().Get("token") != "not-for-logs" {
		r.t.Errorf("delivery headers %v for %s", req.Header, body)
	}
	r.mu.Lock()
	r.n++
	record, status := r.answer(r.n, e)
	if record {
		r.got = append(r.got, delivery{id: e.ID, key: e.OrderKey(), seq: e.Seq, kind: e.Kind})
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

// firstSeen is what the receiver got after de-duplication by event id, in
// the order it first got each, and how many duplicates it dropped.
func (r *receiver) firstSeen() ([]delivery, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []delivery
	dups := 0
	for _, d := range r.got {
		if seen[d.id] {
			dups++
			continue
		}
		seen[d.id] = true
		out = append(out, d)
	}
	return out, dups
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// allEvents waits for the relay to sequence everything written and returns
// the outbox's events.
func allEvents(t *testing.T, c *catalog.Catalog) []catalog.OutboxEvent {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "the relay to sequence every event", 10*time.Second, func() bool {
		s, err := c.OutboxStats(ctx)
		return err == nil && s.Unsequenced == 0
	})
	evs, err := c.OutboxEvents(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// checkExactlyOnceInOrder: after de-duplication by id the receiver has
// every event of want once and nothing else, and each order key's events
// in delivery (seq) order.
func checkExactlyOnceInOrder(t *testing.T, got []delivery, want []catalog.OutboxEvent) {
	t.Helper()
	ids := map[string]bool{}
	for _, e := range want {
		ids[e.ID] = true
	}
	if len(got) != len(want) {
		t.Errorf("receiver has %d distinct events, want %d", len(got), len(want))
	}
	last := map[string]int64{}
	for _, d := range got {
		if !ids[d.id] {
			t.Errorf("receiver got an event not in the outbox: %+v", d)
		}
		if d.seq <= last[d.key] {
			t.Errorf("%s: event seq %d (%s) after %d", d.key, d.seq, d.kind, last[d.key])
		}
		last[d.key] = d.seq
	}
}

// activity writes a device's recording (start, segments, end, manifest),
// with pauses so that it spans the receiver's phases.
func activity(ctx context.Context, c *catalog.Catalog, dev string, segs int, pause time.Duration) error {
	start := time.Now().UTC()
	rec := evidence.Recording{ID: dev + "-r1", DeviceID: dev, StartedAt: start}
	if err := c.CreateRecording(ctx, rec); err != nil {
		return err
	}
	for seq := int64(0); seq < int64(segs); seq++ {
		kind := evidence.KindMedia
		if seq == 0 {
			kind = evidence.KindInit
		}
		if _, err := c.AppendSegment(ctx, evidence.Segment{RecordingID: rec.ID, Seq: seq, Kind: kind, Key: fmt.Sprintf("%s/%d", rec.ID, seq),
			SHA256: fmt.Sprintf("%064x", seq), StartedAt: start.Add(time.Duration(seq) * time.Second), Duration: time.Second, Keyframe: true}); err != nil {
			return err
		}
		time.Sleep(pause)
	}
	if err := c.FinishRecording(ctx, rec.ID, evidence.StateComplete, time.Now(), "publisher stopped"); err != nil {
		return err
	}
	return c.SetManifest(ctx, rec.ID, rec.ID+"/manifest.json")
}

func setup(t *testing.T, c *catalog.Catalog, devices ...string) {
	ctx := context.Background()
	for _, d := range devices {
		if err := c.CreateDevice(ctx, evidence.Device{ID: d, SecretHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateUser(ctx, evidence.User{ID: "o-1", Role: evidence.RoleOfficer, CertToken: "cert-o-1"}); err != nil {
		t.Fatal(err)
	}
}

// runParts starts the relay and the webhooks until the test ends.
func runParts(t *testing.T, parts ...interface{ Run(context.Context) error }) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(ctx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return cancel
}

// The webhook test: a receiver that is down for a while (refusing
// connections, then answering 503, then losing some answers after taking
// the event in) gets every event exactly once after de-duplication by
// event id, in order per device (per case), every signature checked.
func TestWebhookReceiverDown(t *testing.T) {
	engines(t, func(t *testing.T, c *catalog.Catalog) {
		ctx := context.Background()
		devices := []string{"cam-1", "cam-2", "cam-3"}
		setup(t, c, devices...)
		rcv := newReceiver(t)
		reg := prometheus.NewRegistry()
		relay := outbox.NewRelay(outbox.RelayOptions{Catalog: c, Interval: 5 * time.Millisecond, Log: quiet, Registry: reg})
		hooks, err := outbox.NewWebhooks(outbox.WebhookOptions{Catalog: c, URLs: []string{rcv.url}, Secret: secret,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Interval: 5 * time.Millisecond, Log: quiet, Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		hook := hooks.Hooks()[0]
		if strings.Contains(hook.URL, "token") || !strings.HasSuffix(hook.URL, "/hooks/bodycam") {
			t.Fatalf("hook URL shown as %q", hook.URL)
		}
		// The webhook was configured before any event: it gets them all.
		if _, err := c.OutboxCursor(ctx, "webhook:"+hook.ID, 0); err != nil {
			t.Fatal(err)
		}
		runParts(t, relay, hooks)

		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for _, d := range devices {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := activity(ctx, c, d, 12, 40*time.Millisecond); err != nil {
					errs <- err
				}
			}()
		}
		wg.Add(1)
		go func() { // a case's steps and links, and live views, meanwhile
			defer wg.Done()
			errs <- func() error {
				if err := c.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1"}); err != nil {
					return err
				}
				time.Sleep(150 * time.Millisecond)
				if err := c.TransitionCase(ctx, evidence.CaseTransition{CaseID: "C-1", From: evidence.CaseFiled, To: evidence.CaseInvestigating,
					By: "o-1", At: time.Now()}); err != nil {
					return err
				}
				if err := c.StartLiveView(ctx, evidence.LiveView{ID: "v1", DeviceID: "cam-2", User: "sup", StartedAt: time.Now()}); err != nil {
					return err
				}
				time.Sleep(200 * time.Millisecond)
				// The recording is cam-1's activity's first: on a busy
				// machine it may not be there yet.
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					if _, err := c.Recording(ctx, "cam-1-r1"); err == nil || time.Now().After(deadline) {
						break
					}
				}
				if err := c.LinkEvidence(ctx, evidence.EvidenceLink{ID: "L1", CaseID: "C-1", RecordingID: "cam-1-r1", LinkedBy: "o-1"}); err != nil {
					return err
				}
				return c.EndLiveView(ctx, "v1", time.Now(), "viewer left")
			}()
		}()

		// Down: connections refused, then 503s, then answers lost (the
		// receiver took the event in and answered 500) or refused; then up.
		time.Sleep(250 * time.Millisecond)
		rcv.setAnswer(func(int, catalog.OutboxEvent) (bool, int) { return false, 503 })
		rcv.start()
		time.Sleep(200 * time.Millisecond)
		var lost atomic.Int32
		rcv.setAnswer(func(n int, _ catalog.OutboxEvent) (bool, int) {
			switch n % 4 {
			case 0:
				lost.Add(1)
				return true, 500 // taken in, but the answer says otherwise: delivered again
			case 1:
				return false, 502
			default:
				return true, 200
			}
		})
		// At least 250 ms of it, and until answers were lost (a busy
		// machine may attempt little in 250 ms).
		time.Sleep(250 * time.Millisecond)
		waitFor(t, "an answer lost", 20*time.Second, func() bool { return lost.Load() >= 2 })
		rcv.setAnswer(func(int, catalog.OutboxEvent) (bool, int) { return true, 204 })
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		want := allEvents(t, c)
		if len(want) != 3*16+5 {
			t.Fatalf("%d events in the outbox, want %d", len(want), 3*16+5)
		}
		waitFor(t, "the receiver to have every event", 20*time.Second, func() bool {
			got, _ := rcv.firstSeen()
			return len(got) >= len(want)
		})
		got, dups := rcv.firstSeen()
		checkExactlyOnceInOrder(t, got, want)
		if dups == 0 {
			t.Error("no event was delivered twice: the lost answers were not retried")
		}
		if f := metric(t, reg, "bodycam_webhook_failed_attempts_total"); f == 0 {
			t.Error("no failed attempt counted")
		}
		if d := metric(t, reg, "bodycam_webhook_dead_letters_total"); d != 0 {
			t.Errorf("%v dead letters", d)
		}
		waitFor(t, "the cursor to reach the head", 5*time.Second, func() bool {
			cur, err := c.OutboxCursor(ctx, "webhook:"+hook.ID, 0)
			return err == nil && cur == want[len(want)-1].Seq
		})
	})
}

// metric sums the series of a metric family of reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return v
}

// An event the receiver refuses (400) holds back its device's later
// events, not other devices'; after MaxAttempts it becomes a dead letter,
// the device's events go on, and an admin's retry delivers it once the
// receiver takes it.
func TestWebhookDeadLetter(t *testing.T) {
	engines(t, func(t *testing.T, c *catalog.Catalog) {
		ctx := context.Background()
		setup(t, c, "cam-1", "cam-2")
		rcv := newReceiver(t)
		rcv.start()
		poison := func(e catalog.OutboxEvent) bool { return e.Kind == events.LiveViewStarted && e.DeviceID == "cam-1" }
		var sawCam2WhilePoisoned bool
		rcv.setAnswer(func(_ int, e catalog.OutboxEvent) (bool, int) {
			if poison(e) {
				return false, 400
			}
			return true, 200
		})
		reg := prometheus.NewRegistry()
		relay := outbox.NewRelay(outbox.RelayOptions{Catalog: c, Interval: 5 * time.Millisecond, Log: quiet})
		hooks, err := outbox.NewWebhooks(outbox.WebhookOptions{Catalog: c, URLs: []string{rcv.url}, Secret: secret, MaxAttempts: 4,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Interval: 5 * time.Millisecond, Log: quiet, Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		hook := hooks.Hooks()[0]
		if _, err := c.OutboxCursor(ctx, "webhook:"+hook.ID, 0); err != nil {
			t.Fatal(err)
		}
		runParts(t, relay, hooks)
		if err := c.CreateRecording(ctx, evidence.Recording{ID: "r1", DeviceID: "cam-1", StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := c.StartLiveView(ctx, evidence.LiveView{ID: "v1", DeviceID: "cam-1", User: "sup", StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := c.EndLiveView(ctx, "v1", time.Now(), "left"); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateRecording(ctx, evidence.Recording{ID: "r2", DeviceID: "cam-2", StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		// cam-2 is not held back by cam-1's refused event.
		waitFor(t, "cam-2's events while cam-1's is refused", 5*time.Second, func() bool {
			got, _ := rcv.firstSeen()
			n2, ended := 0, false
			for _, d := range got {
				if d.key == "device:cam-2" {
					n2++
				}
				if d.kind == events.LiveViewEnded {
					ended = true
				}
			}
			if n2 == 2 && !ended {
				sawCam2WhilePoisoned = true
			}
			return n2 == 2
		})
		if !sawCam2WhilePoisoned {
			t.Error("cam-1's event after the refused one was delivered before cam-2's: it was not held back")
		}
		waitFor(t, "the dead letter and the rest of cam-1", 5*time.Second, func() bool {
			got, _ := rcv.firstSeen()
			return len(got) == 5 // r1 started, online; v1 ended; r2 started, online
		})
		list, err := hooks.DeadLetters(ctx, catalog.DeadLetterFilter{})
		if err != nil || len(list) != 1 {
			t.Fatalf("dead letters: %+v, %v", list, err)
		}
		d := list[0]
		if d.Webhook != hook.ID || d.URL != hook.URL || d.Event.Kind != events.LiveViewStarted || d.Attempts != 4 ||
			d.LastError != "answered 400 Bad Request" || d.State != catalog.DeadLetterDead {
			t.Fatalf("dead letter %+v", d)
		}
		if v := metric(t, reg, "bodycam_webhook_dead_letters_total"); v != 1 {
			t.Errorf("dead letters counted: %v", v)
		}
		got, _ := rcv.firstSeen()
		checkExactlyOnceInOrder(t, got, without(allEvents(t, c), d.Event.ID))

		// Fixed receiver, an admin's retry.
		rcv.setAnswer(func(int, catalog.OutboxEvent) (bool, int) { return true, 200 })
		if _, err := hooks.RetryDeadLetter(ctx, 9999, "adm"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("retry of a missing dead letter: %v", err)
		}
		q, err := hooks.RetryDeadLetter(ctx, d.ID, "adm")
		if err != nil || q.State != catalog.DeadLetterQueued || q.RequeuedBy != "adm" {
			t.Fatalf("RetryDeadLetter = %+v, %v", q, err)
		}
		if _, err := hooks.RetryDeadLetter(ctx, d.ID, "adm"); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("retry of a queued dead letter: %v", err)
		}
		waitFor(t, "the dead letter delivered", 5*time.Second, func() bool {
			got, err := c.DeadLetter(ctx, d.ID)
			return err == nil && got.State == catalog.DeadLetterDelivered
		})
		got, _ = rcv.firstSeen()
		if len(got) != 6 || got[5].id != d.Event.ID {
			t.Fatalf("after the retry the receiver has %+v", got)
		}

		// A dead letter of a webhook no longer configured cannot be queued.
		other, _ := c.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: "wh-gone", URL: "https://old.example/hook", Event: d.Event, Attempts: 1,
			FirstAttempt: time.Now(), LastAttempt: time.Now()})
		if _, err := hooks.RetryDeadLetter(ctx, other.ID, "adm"); !errors.Is(err, catalog.ErrConflict) || !strings.Contains(err.Error(), "not configured") {
			t.Fatalf("retry for an unconfigured webhook: %v", err)
		}
	})
}

func without(evs []catalog.OutboxEvent, id string) []catalog.OutboxEvent {
	var out []catalog.OutboxEvent
	for _, e := range evs {
		if e.ID != id {
			out = append(out, e)
		}
	}
	return out
}

// fakeStream is a stream that can be down.
type fakeStream struct {
	mu   sync.Mutex
	down bool
	got  []coord.Event
	errs int
}

func (s *fakeStream) Publish(ctx context.Context, stream string, e coord.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stream != "events" {
		return fmt.Errorf("stream %q", stream)
	}
	if s.down {
		s.errs++
		return coord.ErrUnavailable
	}
	s.got = append(s.got, e)
	return nil
}

func (s *fakeStream) setDown(v bool) {
	s.mu.Lock()
	s.down = v
	s.mu.Unlock()
}

// The relay publishes every event to the stream in delivery order; while
// the stream is down the events wait in the outbox, and none is lost.
func TestRelayStreamDown(t *testing.T) {
	engines(t, func(t *testing.T, c *catalog.Catalog) {
		ctx := context.Background()
		setup(t, c, "cam-1", "cam-2")
		stream := &fakeStream{}
		reg := prometheus.NewRegistry()
		relay := outbox.NewRelay(outbox.RelayOptions{Catalog: c, Stream: stream, Interval: 5 * time.Millisecond, Log: quiet, Registry: reg})
		// The stream was configured before any event: it gets them all.
		if _, err := c.OutboxCursor(ctx, "stream:events", 0); err != nil {
			t.Fatal(err)
		}
		runParts(t, relay)
		if err := activity(ctx, c, "cam-1", 3, 0); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the first events in the stream", 5*time.Second, func() bool {
			stream.mu.Lock()
			defer stream.mu.Unlock()
			return len(stream.got) == 7
		})
		stream.setDown(true)
		if err := activity(ctx, c, "cam-2", 3, 0); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a failed publication", 5*time.Second, func() bool {
			stream.mu.Lock()
			defer stream.mu.Unlock()
			return stream.errs > 0
		})
		if v := metric(t, reg, "bodycam_events_stream_errors_total"); v == 0 {
			t.Error("stream errors not counted")
		}
		stream.setDown(false)
		want := allEvents(t, c)
		waitFor(t, "every event in the stream", 10*time.Second, func() bool {
			stream.mu.Lock()
			defer stream.mu.Unlock()
			return len(stream.got) >= len(want)
		})
		stream.mu.Lock()
		defer stream.mu.Unlock()
		if len(stream.got) != len(want) {
			t.Fatalf("%d in the stream, want %d", len(stream.got), len(want))
		}
		for i, e := range stream.got {
			var env map[string]any
			json.Unmarshal(e.Payload, &env)
			if e.ID != want[i].ID || e.Kind != string(want[i].Kind) || e.Device != want[i].DeviceID || env["seq"] != float64(want[i].Seq) {
				t.Fatalf("stream entry %d: %+v %s, want %+v", i, e, e.Payload, want[i])
			}
		}
	})
}

// lease is a named lease in memory with expiry, like coord's.
type lease struct {
	mu     sync.Mutex
	holder map[string]string
	until  map[string]time.Time
}

func (l *lease) Acquire(ctx context.Context, name, holder string, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.holder[name]; h != "" && h != holder && time.Now().Before(l.until[name]) {
		return coord.ErrHeld
	}
	l.holder[name], l.until[name] = holder, time.Now().Add(ttl)
	return nil
}

func (l *lease) Release(ctx context.Context, name, holder string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder[name] == holder {
		delete(l.holder, name)
	}
	return nil
}

// Two nodes: one delivers at a time; when it stops, the other takes the
// lease and goes on from the cursor; the receiver has every event once
// after de-duplication, in order.
func TestWebhookLeaseHandover(t *testing.T) {
	c, err := catalog.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	setup(t, c, "cam-1", "cam-2")
	rcv := newReceiver(t)
	rcv.start()
	l := &lease{holder: map[string]string{}, until: map[string]time.Time{}}
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	var cancels []context.CancelFunc
	for i, node := range []string{"node-a", "node-b"} {
		relay := outbox.NewRelay(outbox.RelayOptions{Catalog: c, Lease: l, Holder: node, LeaseTTL: 60 * time.Millisecond,
			Interval: 5 * time.Millisecond, Log: quiet, Registry: regs[i]})
		hooks, err := outbox.NewWebhooks(outbox.WebhookOptions{Catalog: c, URLs: []string{rcv.url}, Secret: secret, Lease: l, Holder: node,
			LeaseTTL: 60 * time.Millisecond, MinBackoff: 5 * time.Millisecond, Interval: 5 * time.Millisecond, Log: quiet, Registry: regs[i]})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := c.OutboxCursor(ctx, "webhook:"+hooks.Hooks()[0].ID, 0); err != nil {
				t.Fatal(err)
			}
		}
		cancels = append(cancels, runParts(t, relay, hooks))
		if i == 0 {
			waitFor(t, "node-a to take the leases", 5*time.Second, func() bool {
				return metric(t, regs[0], "bodycam_webhook_running") == 1 &&
					metric(t, regs[0], "bodycam_events_relay_running") == 1
			})
		}
	}
	if err := activity(ctx, c, "cam-1", 5, 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node-a's deliveries", 5*time.Second, func() bool {
		got, _ := rcv.firstSeen()
		return len(got) == 9
	})
	if v := metric(t, regs[1], "bodycam_webhook_delivered_total"); v != 0 {
		t.Fatalf("node-b delivered %v events while node-a held the lease", v)
	}
	cancels[0]() // node-a stops (and releases)
	if err := activity(ctx, c, "cam-2", 5, 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	want := allEvents(t, c)
	waitFor(t, "node-b's deliveries", 5*time.Second, func() bool {
		got, _ := rcv.firstSeen()
		return len(got) == len(want)
	})
	got, _ := rcv.firstSeen()
	checkExactlyOnceInOrder(t, got, want)
	if v := metric(t, regs[1], "bodycam_webhook_delivered_total"); v == 0 {
		t.Fatal("node-b delivered nothing after node-a stopped")
	}
}

func TestSignature(t *testing.T) {
	body := []byte(`{"id":"01J"}`)
	now := time.Unix(1_800_000_000, 0)
	ts := "1800000000"
	sig := outbox.Signature(secret, ts, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
	// What the documentation says is signed: timestamp "." body.
	if outbox.Signature(secret, "", []byte(ts+"."+string(body))) == sig {
		t.Fatal("signature does not separate timestamp and body")
	}
	for _, c := range []struct {
		name         string
		sig, ts      string
		body         []byte
		secret       []byte
		now          time.Time
		want         error
		wantAccepted bool
	}{
		{"good", sig, ts, body, secret, now, nil, true},
		{"a minute late", sig, ts, body, secret, now.Add(time.Minute), nil, true},
		{"body changed", sig, ts, []byte(`{"id":"01K"}`), secret, now, outbox.ErrBadSignature, false},
		{"timestamp changed", sig, "1800000001", body, secret, now, outbox.ErrBadSignature, false},
		{"other secret", sig, ts, body, []byte("another secret of 32 bytes......"), now, outbox.ErrBadSignature, false},
		{"no prefix", strings.TrimPrefix(sig, "sha256="), ts, body, secret, now, outbox.ErrBadSignature, false},
		{"replayed later", sig, ts, body, secret, now.Add(time.Hour), outbox.ErrStale, false},
	} {
		err := outbox.Verify(c.secret, c.sig, c.ts, c.body, c.now, 5*time.Minute)
		if (err == nil) != c.wantAccepted || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestWebhookOptions(t *testing.T) {
	for _, c := range []struct {
		urls   []string
		secret []byte
		want   string
	}{
		{[]string{"https://a.example/h"}, []byte("short"), "at least 16 bytes"},
		{[]string{"ftp://a.example/h"}, secret, `scheme "ftp"`},
		{[]string{"https://user:pw@a.example/h?k=v", "https://user:pw@a.example/h?k=v"}, secret, "given twice"},
		{[]string{"a.example/h"}, secret, "not an http"},
	} {
		_, err := outbox.NewWebhooks(outbox.WebhookOptions{URLs: c.urls, Secret: c.secret, Log: quiet})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "pw") {
			t.Errorf("%v: %v, want %q (and no credentials)", c.urls, err, c.want)
		}
	}
	w, err := outbox.NewWebhooks(outbox.WebhookOptions{URLs: []string{"https://user:pw@a.example/h?k=v", "http://b.example:8080/x"}, Secret: secret, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hooks := w.Hooks()
	sort.Slice(hooks, func(i, j int) bool { return hooks[i].URL < hooks[j].URL })
	if len(hooks) != 2 || hooks[0].URL != "http://b.example:8080/x" || hooks[1].URL != "https://a.example/h" ||
		!strings.HasPrefix(hooks[0].ID, "wh-") || len(hooks[0].ID) != 15 {
		t.Fatalf("hooks %+v", hooks)
	}
	if _, err := outbox.NewWebhooks(outbox.WebhookOptions{Log: quiet}); err != nil {
		t.Fatalf("no webhooks and no secret: %v", err)
	}
}

// downLease is a lease whose backend can stop answering.
type downLease struct {
	lease
	mu   sync.Mutex
	down bool
}

func (l *downLease) Acquire(ctx context.Context, name, holder string, ttl time.Duration) error {
	l.mu.Lock()
	down := l.down
	l.mu.Unlock()
	if down {
		return coord.ErrUnavailable
	}
	return l.lease.Acquire(ctx, name, holder, ttl)
}

// Coordination down: the node holding the lease goes on relaying; a node
// that does not hold it does not start.
func TestRelayWhileCoordinationDown(t *testing.T) {
	c, err := catalog.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	setup(t, c, "cam-1")
	l := &downLease{lease: lease{holder: map[string]string{}, until: map[string]time.Time{}}}
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	runParts(t, outbox.NewRelay(outbox.RelayOptions{Catalog: c, Lease: l, Holder: "node-a", LeaseTTL: 30 * time.Millisecond,
		Interval: 5 * time.Millisecond, Log: quiet, Registry: regA}))
	waitFor(t, "node-a to run", 5*time.Second, func() bool { return metric(t, regA, "bodycam_events_relay_running") == 1 })
	l.mu.Lock()
	l.down = true
	l.mu.Unlock()
	runParts(t, outbox.NewRelay(outbox.RelayOptions{Catalog: c, Lease: l, Holder: "node-b", LeaseTTL: 30 * time.Millisecond,
		Interval: 5 * time.Millisecond, Log: quiet, Registry: regB}))
	if err := activity(ctx, c, "cam-1", 2, 0); err != nil {
		t.Fatal(err)
	}
	if evs := allEvents(t, c); len(evs) != 6 {
		t.Fatalf("%d events relayed while coordination is down", len(evs))
	}
	time.Sleep(100 * time.Millisecond) // several renewals failed meanwhile
	if a, b := metric(t, regA, "bodycam_events_relay_running"), metric(t, regB, "bodycam_events_relay_running"); a != 1 || b != 0 {
		t.Fatalf("running: node-a %v, node-b %v; want 1 and 0", a, b)
	}
}
