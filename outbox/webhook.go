package outbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
)

// WebhookCatalog is what webhook delivery needs from the catalog.
type WebhookCatalog interface {
	OutboxEvents(ctx context.Context, after int64, limit int) ([]catalog.OutboxEvent, error)
	OutboxStats(ctx context.Context) (catalog.OutboxStats, error)
	OutboxCursor(ctx context.Context, name string, start int64) (int64, error)
	AdvanceOutboxCursor(ctx context.Context, name string, seq int64) error
	AddDeadLetter(ctx context.Context, d catalog.DeadLetter) (catalog.DeadLetter, error)
	DeadLetter(ctx context.Context, id int64) (catalog.DeadLetter, error)
	DeadLetters(ctx context.Context, f catalog.DeadLetterFilter) ([]catalog.DeadLetter, error)
	RequeueDeadLetter(ctx context.Context, id int64, by string, at time.Time) (catalog.DeadLetter, error)
	QueuedDeadLetters(ctx context.Context, webhook string, limit int) ([]catalog.DeadLetter, error)
	SettleDeadLetter(ctx context.Context, id int64, attempts int, at time.Time, lastError string) error
}

// WebhookOptions configure webhook delivery. Zero values mean the defaults.
type WebhookOptions struct {
	Catalog WebhookCatalog
	URLs    []string // http:// or https://
	// Secret keys every delivery's signature (Signature); at least
	// MinSecret bytes.
	Secret []byte
	// Lease keeps one deliverer running in a cluster; nil: this one runs.
	Lease     Lease
	LeaseName string // default "webhooks"
	LeaseTTL  time.Duration
	Holder    string // this node's id
	// An event is given up on (filed as a dead letter) once RetryFor has
	// passed since its first attempt (default 24h), or after MaxAttempts
	// attempts when that is set.
	RetryFor    time.Duration
	MaxAttempts int
	// Between attempts of an event: MinBackoff (default 1s), doubled each
	// time, at most MaxBackoff (default 5m); longer when the receiver
	// asks so with Retry-After (at most MaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	Timeout                time.Duration // per attempt, default 10s
	// Window is how many events past the first undelivered one a webhook
	// goes on delivering (of other devices) while that one waits (default
	// 1000).
	Window   int
	Interval time.Duration // how often to look for new events, default 250ms
	Client   *http.Client  // default: one that follows no redirect
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Hook is a configured webhook as the API shows it.
type Hook struct {
	ID  string `json:"id"`  // "wh-" and 12 hex digits of the URL's SHA-256: names it in metrics and dead letters
	URL string `json:"url"` // without credentials, query or fragment
}

// Webhooks delivers the outbox's events to the configured webhooks.
type Webhooks struct {
	o     WebhookOptions
	hooks []*hook
	byID  map[string]*hook
	held  prometheus.Gauge
}

type webhookMetrics struct {
	delivered, failed, dead, missed, redelivered *prometheus.CounterVec
	lag                                          *prometheus.GaugeVec
}

// NewWebhooks checks the options and makes the deliverer.
func NewWebhooks(o WebhookOptions) (*Webhooks, error) {
	if len(o.URLs) > 0 && len(o.Secret) < MinSecret {
		return nil, fmt.Errorf("webhook-secret-file: a secret of at least %d bytes is needed to sign webhook deliveries", MinSecret)
	}
	if o.LeaseName == "" {
		o.LeaseName = "webhooks"
	}
	if o.RetryFor <= 0 {
		o.RetryFor = 24 * time.Hour
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 1000
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout,
			// A redirect is an answer like any other that is not 2xx: the
			// receiver's address is what was configured, nothing else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Log = o.Log.With("component", "webhooks")
	m := webhookMetrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_webhook_delivered_total",
			Help: "Events a webhook accepted (2xx)."}, []string{"webhook"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_webhook_failed_attempts_total",
			Help: "Delivery attempts that failed (no answer, or not 2xx); each is retried with back-off."}, []string{"webhook"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_webhook_dead_letters_total",
			Help: "Events a webhook gave up on after --webhook-retry-for, filed as dead letters."}, []string{"webhook"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_webhook_missed_events_total",
			Help: "Events pruned from the outbox (--events-keep) before a webhook had them."}, []string{"webhook"}),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_webhook_requeued_delivered_total",
			Help: "Dead letters queued again by an admin and then delivered."}, []string{"webhook"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bodycam_webhook_lag_seconds",
			Help: "Age of the oldest event a webhook has not had yet; 0 when it has them all."}, []string{"webhook"}),
	}
	w := &Webhooks{o: o, byID: map[string]*hook{}, held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_webhook_running",
		Help: "1 on the node that delivers to the webhooks (holds the lease \"webhooks\")."})}
	register(o.Registry, m.delivered, m.failed, m.dead, m.missed, m.redelivered, m.lag, w.held)
	for _, raw := range o.URLs {
		if err := ValidateURL(raw); err != nil {
			return nil, fmt.Errorf("webhook-url: %w", err)
		}
		sum := sha256.Sum256([]byte(raw))
		id := "wh-" + hex.EncodeToString(sum[:6])
		if w.byID[id] != nil {
			return nil, fmt.Errorf("webhook-url: %s is given twice", redact(raw))
		}
		h := &hook{w: w, id: id, url: raw, display: redact(raw), kick: make(chan struct{}, 1)}
		h.log = o.Log.With("webhook", id)
		h.delivered, h.failed, h.dead = m.delivered.WithLabelValues(id), m.failed.WithLabelValues(id), m.dead.WithLabelValues(id)
		h.missed, h.redelivered, h.lag = m.missed.WithLabelValues(id), m.redelivered.WithLabelValues(id), m.lag.WithLabelValues(id)
		w.hooks = append(w.hooks, h)
		w.byID[id] = h
	}
	return w, nil
}

// ValidateURL checks a webhook's URL: http:// or https:// with a host. Its
// error never quotes credentials or the query.
func ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return errors.New("a value is not an http:// or https:// URL with a host")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s: scheme %q is not an http:// or https:// URL", redact(raw), u.Scheme)
	}
	return nil
}

// redact drops a URL's credentials, query and fragment, which may hold
// secrets, for logs, metrics and the API.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(not a URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// Hooks lists the configured webhooks.
func (w *Webhooks) Hooks() []Hook {
	out := []Hook{}
	for _, h := range w.hooks {
		out = append(out, Hook{ID: h.id, URL: h.display})
	}
	return out
}

// Run delivers until ctx ends (while it holds the lease, when there is
// one). It returns nil: failures are logged, counted and retried.
func (w *Webhooks) Run(ctx context.Context) error {
	if len(w.hooks) == 0 {
		<-ctx.Done()
		return nil
	}
	for _, h := range w.hooks {
		h.log.Info("webhook configured", "url", h.display)
	}
	leased(ctx, w.o.Lease, w.o.LeaseName, w.o.Holder, w.o.LeaseTTL, w.o.Log, w.held, func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, h := range w.hooks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.run(ctx)
			}()
		}
		wg.Wait()
	})
	return nil
}

// DeadLetters lists the dead letters (the API's).
func (w *Webhooks) DeadLetters(ctx context.Context, f catalog.DeadLetterFilter) ([]catalog.DeadLetter, error) {
	return w.o.Catalog.DeadLetters(ctx, f)
}

// RetryDeadLetter queues a dead letter for delivery again, noting who asked.
// It is delivered out of order (later events of its device went on), with
// the same rules as a new event. A dead letter of a webhook no longer
// configured, or one not dead (queued already, delivered), is
// catalog.ErrConflict; a missing one catalog.ErrNotFound.
func (w *Webhooks) RetryDeadLetter(ctx context.Context, id int64, by string) (catalog.DeadLetter, error) {
	d, err := w.o.Catalog.DeadLetter(ctx, id)
	if err != nil {
		return d, err
	}
	h := w.byID[d.Webhook]
	if h == nil {
		return d, fmt.Errorf("%w: webhook %s (%s) is not configured now", catalog.ErrConflict, d.Webhook, d.URL)
	}
	if d, err = w.o.Catalog.RequeueDeadLetter(ctx, id, by, time.Now()); err != nil {
		return d, err
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
	return d, nil
}

// hook delivers to one webhook. The fields after kick belong to run.
type hook struct {
	w                       *Webhooks
	id, url, display        string
	log                     *slog.Logger
	kick                    chan struct{}
	delivered, failed, dead prometheus.Counter
	missed, redelivered     prometheus.Counter
	lag                     prometheus.Gauge
	loaded                  bool
	cursor, saved, fetched  int64
	window                  []catalog.OutboxEvent // events after cursor, in order, up to fetched
	done                    map[int64]bool        // events of the window delivered or dead-lettered
	failing                 map[string]*attempt   // by order key: its first event not done, once tried
	pausedUntil             time.Time             // the receiver is down: nothing is tried before
	requeued                map[int64]*attempt    // queued dead letters by id, once tried
	lastQueued              time.Time
	troubled                bool // the catalog failed: logged once
}

// attempt is where the delivery of one event stands.
type attempt struct {
	seq     int64
	n       int
	first   time.Time
	next    time.Time
	lastErr string
}

func (h *hook) cursorName() string { return "webhook:" + h.id }

// run delivers until ctx ends. A new run (this node took the lease again)
// starts from the cursor in the catalog: what was delivered past it is
// delivered again, and de-duplicated by the receiver.
func (h *hook) run(ctx context.Context) {
	h.loaded, h.window, h.done, h.failing, h.requeued = false, nil, map[int64]bool{}, map[string]*attempt{}, map[int64]*attempt{}
	h.pausedUntil, h.lastQueued = time.Time{}, time.Time{}
	for ctx.Err() == nil {
		if !h.loaded {
			if err := h.load(ctx); err != nil {
				h.trouble("cursor not read", err)
				sleep(ctx, h.w.o.Interval*4)
				continue
			}
		}
		if h.round(ctx) {
			continue
		}
		t := time.NewTimer(h.w.o.Interval)
		select {
		case <-ctx.Done():
		case <-h.kick:
			h.lastQueued = time.Time{}
		case <-t.C:
		}
		t.Stop()
	}
}

// load reads the cursor; a webhook seen for the first time starts at the
// head: it gets the events from when it was configured.
func (h *hook) load(ctx context.Context) error {
	s, err := h.w.o.Catalog.OutboxStats(ctx)
	if err != nil {
		return err
	}
	if h.cursor, err = h.w.o.Catalog.OutboxCursor(ctx, h.cursorName(), s.Head); err != nil {
		return err
	}
	h.saved, h.fetched, h.loaded = h.cursor, h.cursor, true
	return nil
}

func (h *hook) trouble(what string, err error) {
	if !h.troubled {
		h.log.Warn("webhooks: "+what+"; retrying", "err", err)
		h.troubled = true
	}
}

// round tries what may be tried now and reports whether it got anywhere.
//
// Events of one order key (a device, or a case) go in order: the first one
// not delivered holds back the key's later ones, never other keys' (up to
// Window events). When the receiver itself seems down (no answer, 5xx, 408,
// 429), the whole webhook waits for the back-off, and the event that failed
// is the first tried again.
func (h *hook) round(ctx context.Context) bool {
	o := h.w.o
	if err := h.fill(ctx); err != nil {
		h.trouble("events not read", err)
	}
	progress := false
	blocked := map[string]bool{}
	for _, e := range h.window {
		now := time.Now()
		if ctx.Err() != nil || now.Before(h.pausedUntil) {
			break
		}
		if h.done[e.Seq] {
			continue
		}
		k := e.OrderKey()
		if blocked[k] {
			continue
		}
		blocked[k] = true
		a := h.failing[k]
		if a != nil && a.seq == e.Seq && now.Before(a.next) {
			continue
		}
		res := h.post(ctx, e)
		if ctx.Err() != nil {
			break
		}
		now = time.Now()
		if res.err == nil {
			h.delivered.Inc()
			h.done[e.Seq], progress = true, true
			delete(h.failing, k)
			delete(blocked, k)
			continue
		}
		h.failed.Inc()
		if a == nil || a.seq != e.Seq {
			a = &attempt{seq: e.Seq, first: now}
			h.failing[k] = a
			h.log.Warn("webhook delivery failed; retrying with back-off", "event", e.ID, "kind", e.Kind, "key", k, "err", res.err)
		}
		a.n++
		a.lastErr = res.err.Error()
		if (o.MaxAttempts > 0 && a.n >= o.MaxAttempts) || now.Sub(a.first) >= o.RetryFor {
			if h.bury(ctx, e, a, now) {
				h.done[e.Seq], progress = true, true
				delete(h.failing, k)
				delete(blocked, k)
				continue
			}
		}
		wait := backoff(a.n, o.MinBackoff, o.MaxBackoff)
		if res.retryAfter > wait {
			wait = minDuration(res.retryAfter, o.MaxBackoff)
		}
		a.next = now.Add(wait)
		if res.unavailable {
			h.pausedUntil = a.next
		}
	}
	h.advance(ctx)
	if h.requeue(ctx) {
		progress = true
	}
	return progress
}

// fill reads the events after those the window holds, up to Window.
func (h *hook) fill(ctx context.Context) error {
	for len(h.window) < h.w.o.Window {
		want := h.w.o.Window - len(h.window)
		evs, err := h.w.o.Catalog.OutboxEvents(ctx, h.fetched, want)
		if err != nil {
			return err
		}
		if h.troubled {
			h.log.Info("webhooks: the catalog answers again")
			h.troubled = false
		}
		if len(evs) == 0 {
			return nil
		}
		if missed := evs[0].Seq - h.fetched - 1; missed > 0 {
			h.missed.Add(float64(missed))
			h.log.Error("webhooks: events were pruned from the outbox before this webhook had them (--events-keep)",
				"missed", missed, "from_seq", h.fetched+1)
		}
		h.window = append(h.window, evs...)
		h.fetched = evs[len(evs)-1].Seq
		if len(evs) < want {
			return nil
		}
	}
	return nil
}

// advance moves the cursor past the events done at the window's start and
// saves it.
func (h *hook) advance(ctx context.Context) {
	i := 0
	for i < len(h.window) && h.done[h.window[i].Seq] {
		delete(h.done, h.window[i].Seq)
		h.cursor = h.window[i].Seq
		i++
	}
	if i > 0 {
		h.window = append(h.window[:0:0], h.window[i:]...)
	}
	if len(h.window) == 0 {
		h.cursor = max(h.cursor, h.fetched)
		h.lag.Set(0)
	} else {
		h.lag.Set(time.Since(h.window[0].CreatedAt).Seconds())
	}
	if h.cursor > h.saved {
		// Saved also when the runner is stopping: what it delivered is
		// then not delivered again by the next one.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := h.w.o.Catalog.AdvanceOutboxCursor(sctx, h.cursorName(), h.cursor); err != nil {
			h.trouble("cursor not saved", err)
			return
		}
		h.saved = h.cursor
	}
}

// bury files e as a dead letter and reports whether it is filed.
func (h *hook) bury(ctx context.Context, e catalog.OutboxEvent, a *attempt, now time.Time) bool {
	_, err := h.w.o.Catalog.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: h.id, URL: h.display, Event: e, Attempts: a.n,
		FirstAttempt: a.first, LastAttempt: now, LastError: a.lastErr, DeadAt: now})
	if err != nil {
		h.trouble("dead letter not filed", err)
		return false
	}
	h.dead.Inc()
	h.log.Error("webhook gave up on an event: filed as a dead letter (an admin can queue it again)", "event", e.ID, "kind", e.Kind,
		"key", e.OrderKey(), "attempts", a.n, "err", a.lastErr)
	return true
}

// requeue tries the dead letters an admin queued again, looked for every
// few seconds or at once when queued on this node.
func (h *hook) requeue(ctx context.Context) bool {
	o := h.w.o
	now := time.Now()
	if now.Sub(h.lastQueued) < 5*time.Second || now.Before(h.pausedUntil) {
		return false
	}
	h.lastQueued = now
	list, err := o.Catalog.QueuedDeadLetters(ctx, h.id, 20)
	if err != nil {
		h.trouble("queued dead letters not read", err)
		return false
	}
	progress := false
	for _, d := range list {
		a := h.requeued[d.ID]
		if a == nil {
			a = &attempt{first: now}
			h.requeued[d.ID] = a
		}
		if now.Before(a.next) {
			continue
		}
		res := h.post(ctx, d.Event)
		if ctx.Err() != nil {
			return progress
		}
		now = time.Now()
		a.n++
		if res.err == nil {
			if err := o.Catalog.SettleDeadLetter(ctx, d.ID, a.n, now, ""); err != nil {
				h.trouble("dead letter not settled", err)
				continue
			}
			h.delivered.Inc()
			h.redelivered.Inc()
			delete(h.requeued, d.ID)
			progress = true
			h.log.Info("webhook delivered a dead letter queued again", "dead_letter", d.ID, "event", d.Event.ID)
			continue
		}
		h.failed.Inc()
		if (o.MaxAttempts > 0 && a.n >= o.MaxAttempts) || now.Sub(a.first) >= o.RetryFor {
			if err := o.Catalog.SettleDeadLetter(ctx, d.ID, a.n, now, res.err.Error()); err != nil {
				h.trouble("dead letter not settled", err)
				continue
			}
			h.dead.Inc()
			delete(h.requeued, d.ID)
			h.log.Error("webhook gave up again on a dead letter queued again", "dead_letter", d.ID, "event", d.Event.ID, "err", res.err)
			continue
		}
		a.next = now.Add(backoff(a.n, o.MinBackoff, o.MaxBackoff))
		if res.unavailable {
			h.pausedUntil = a.next
			return progress
		}
	}
	return progress
}

// result is how one delivery attempt went.
type result struct {
	err         error
	unavailable bool          // the receiver, not the event: no answer, 5xx, 408, 429
	retryAfter  time.Duration // what the receiver asked for
}

// post delivers e once, signed.
func (h *hook) post(ctx context.Context, e catalog.OutboxEvent) result {
	body, err := json.Marshal(e)
	if err != nil {
		return result{err: err}
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return result{err: errors.New("request not made")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bodycam-webhook/1")
	req.Header.Set(HeaderEventID, e.ID)
	req.Header.Set(HeaderEventKind, string(e.Kind))
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Signature(h.w.o.Secret, ts, body))
	resp, err := h.w.o.Client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return result{err: fmt.Errorf("no answer: %w", err), unavailable: true}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return result{}
	}
	code := resp.StatusCode
	return result{err: fmt.Errorf("answered %s", resp.Status), unavailable: code == 408 || code == 429 || code >= 500,
		retryAfter: retryAfter(resp.Header.Get("Retry-After"))}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
