package outbox

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/coord"
)

// RelayCatalog is what the relay needs from the catalog.
type RelayCatalog interface {
	SequenceOutbox(ctx context.Context, limit int, now time.Time) (int, error)
	OutboxEvents(ctx context.Context, after int64, limit int) ([]catalog.OutboxEvent, error)
	OutboxStats(ctx context.Context) (catalog.OutboxStats, error)
	OutboxCursor(ctx context.Context, name string, start int64) (int64, error)
	AdvanceOutboxCursor(ctx context.Context, name string, seq int64) error
	PruneOutbox(ctx context.Context, before time.Time, limit int) (int64, error)
}

// RelayOptions configure a Relay. Zero values mean the defaults.
type RelayOptions struct {
	Catalog RelayCatalog
	// Stream receives every event in delivery order; nil: none (the
	// webhooks still get them).
	Stream     Stream
	StreamName string // default "events"
	// Lease keeps one relay running in a cluster; nil: this one runs.
	Lease     Lease
	LeaseName string // default "outbox"
	LeaseTTL  time.Duration
	Holder    string // this node's id
	// Interval is how often the relay looks for new events (default
	// 250ms): the most an event waits in the outbox when all is well.
	Interval time.Duration
	// Keep is how long events stay in the outbox after they were written
	// (default 7 days): a webhook or the stream down longer than this
	// misses what was pruned (counted and logged).
	Keep     time.Duration
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Relay gives the outbox's committed events their delivery order, publishes
// them to the stream, and prunes old ones.
type Relay struct {
	o RelayOptions
	m relayMetrics
}

type relayMetrics struct {
	sequenced, published, streamErrors, pruned prometheus.Counter
	streamLag, waiting                         prometheus.Gauge
	held                                       prometheus.Gauge
}

// NewRelay makes a Relay.
func NewRelay(o RelayOptions) *Relay {
	if o.StreamName == "" {
		o.StreamName = "events"
	}
	if o.LeaseName == "" {
		o.LeaseName = "outbox"
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Keep <= 0 {
		o.Keep = 7 * 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Log = o.Log.With("component", "outbox")
	r := &Relay{o: o, m: relayMetrics{
		sequenced: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_events_sequenced_total",
			Help: "Events of the outbox given their place in the delivery order (relayed to the stream and the webhooks)."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_events_stream_published_total",
			Help: "Events published to the Redis stream (again after a failure: at least once)."}),
		streamErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_events_stream_errors_total",
			Help: "Failed publications to the Redis stream; the events wait in the outbox and are published again."}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_events_pruned_total",
			Help: "Events deleted from the outbox after --events-keep."}),
		streamLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_events_stream_lag_seconds",
			Help: "Age of the oldest event not yet published to the Redis stream; 0 when it has them all."}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_events_unsequenced",
			Help: "Events written to the outbox and not yet relayed (as last seen by the relay)."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_events_relay_running",
			Help: "1 on the node whose relay runs (holds the lease \"outbox\")."}),
	}}
	register(o.Registry, r.m.sequenced, r.m.published, r.m.streamErrors, r.m.pruned, r.m.streamLag, r.m.waiting, r.m.held)
	return r
}

// Run relays until ctx ends (while it holds the lease, when there is one).
// It returns nil: failures are logged, counted and retried.
func (r *Relay) Run(ctx context.Context) error {
	leased(ctx, r.o.Lease, r.o.LeaseName, r.o.Holder, r.o.LeaseTTL, r.o.Log, r.m.held, r.run)
	return nil
}

func (r *Relay) run(ctx context.Context) {
	var st streamState
	var lastPrune, lastStats time.Time
	failing := false
	for ctx.Err() == nil {
		now := time.Now()
		n, err := r.Sequence(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				r.o.Log.Warn("outbox: events not relayed: the catalog does not answer; retrying", "err", err)
				failing = true
			}
		case err == nil && failing:
			r.o.Log.Info("outbox: relaying again")
			failing = false
		}
		if n > 0 || now.Sub(lastStats) > 5*time.Second {
			if s, err := r.o.Catalog.OutboxStats(ctx); err == nil {
				r.m.waiting.Set(float64(s.Unsequenced))
				lastStats = now
			}
		}
		if r.o.Stream != nil {
			r.publish(ctx, &st)
		}
		if now.Sub(lastPrune) > time.Minute {
			r.prune(ctx, now)
			lastPrune = now
		}
		wait := r.o.Interval
		if !st.retryAt.IsZero() && r.o.Stream != nil {
			wait = minDuration(wait, max(time.Until(st.retryAt), time.Millisecond))
		}
		sleep(ctx, wait)
	}
}

// prune deletes the events written more than Keep before now, in small
// batches: each holds the catalog's write lock briefly.
func (r *Relay) prune(ctx context.Context, now time.Time) {
	const batch = 1000
	for ctx.Err() == nil {
		n, err := r.o.Catalog.PruneOutbox(ctx, now.Add(-r.o.Keep), batch)
		if err != nil {
			r.o.Log.Warn("outbox: old events not pruned", "err", err)
			return
		}
		r.m.pruned.Add(float64(n))
		if n < batch {
			return
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

// Sequence gives every committed event waiting in the outbox its place in
// the delivery order, and reports how many it placed.
func (r *Relay) Sequence(ctx context.Context) (int, error) {
	const batch = 500
	total := 0
	for {
		n, err := r.o.Catalog.SequenceOutbox(ctx, batch, time.Now())
		total += n
		r.m.sequenced.Add(float64(n))
		if err != nil || n < batch {
			return total, err
		}
	}
}

// streamState is where publishing to the stream stands.
type streamState struct {
	loaded   bool
	cursor   int64 // every event up to it is in the stream
	failures int
	retryAt  time.Time
}

// publish sends the events after the stream's cursor, in order, moving the
// cursor after each batch; on a failure it stops and tries again later,
// from the first event not published. A crash between XADD and the
// cursor's move publishes again: readers de-duplicate by event id.
func (r *Relay) publish(ctx context.Context, st *streamState) {
	if time.Now().Before(st.retryAt) {
		return
	}
	name := "stream:" + r.o.StreamName
	fail := func(err error, what string) {
		if ctx.Err() != nil {
			return
		}
		st.failures++
		st.retryAt = time.Now().Add(backoff(st.failures, time.Second, 30*time.Second))
		if st.failures == 1 {
			r.o.Log.Warn("outbox: "+what+"; the events wait in the outbox and are published when it answers", "stream", r.o.StreamName, "err", err)
		}
	}
	if !st.loaded {
		// A new stream starts at the head: what is already delivered
		// elsewhere is not replayed into it.
		s, err := r.o.Catalog.OutboxStats(ctx)
		if err == nil {
			st.cursor, err = r.o.Catalog.OutboxCursor(ctx, name, s.Head)
		}
		if err != nil {
			fail(err, "stream cursor not read")
			return
		}
		st.loaded = true
	}
	for ctx.Err() == nil {
		evs, err := r.o.Catalog.OutboxEvents(ctx, st.cursor, 200)
		if err != nil {
			fail(err, "events not read")
			return
		}
		if len(evs) == 0 {
			r.m.streamLag.Set(0)
			return
		}
		if missed := evs[0].Seq - st.cursor - 1; missed > 0 {
			r.o.Log.Error("outbox: events were pruned before the stream had them", "stream", r.o.StreamName, "missed", missed)
		}
		r.m.streamLag.Set(time.Since(evs[0].CreatedAt).Seconds())
		published := st.cursor
		for _, e := range evs {
			payload, _ := json.Marshal(e)
			if err := r.o.Stream.Publish(ctx, r.o.StreamName, coord.Event{ID: e.ID, Device: e.DeviceID, Kind: string(e.Kind), Payload: payload}); err != nil {
				r.m.streamErrors.Inc()
				fail(err, "stream does not take events")
				break
			}
			r.m.published.Inc()
			published = e.Seq
		}
		if published > st.cursor {
			st.cursor = published
			if err := r.o.Catalog.AdvanceOutboxCursor(ctx, name, published); err != nil {
				fail(err, "stream cursor not saved")
				return
			}
		}
		if published != evs[len(evs)-1].Seq {
			return // a publication failed
		}
		if st.failures > 0 {
			r.o.Log.Info("outbox: the stream takes events again", "stream", r.o.StreamName, "after_failures", st.failures)
			st.failures, st.retryAt = 0, time.Time{}
		}
	}
}
