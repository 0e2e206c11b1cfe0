package outbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
)

// JobFeed turns events of the outbox into durable jobs: for each event,
// in delivery order, it enqueues the jobs Rules asks for (a poster when a
// recording is closed), then moves its own cursor ("jobs") past it. The
// event is written in the transaction of the change that causes the work
// (catalog.setManifest writes recording.closed with the manifest), and the
// cursor moves only after the jobs are in the catalog, so no closed
// recording is missed, whatever crashes; a crash between the two enqueues
// again, which finds the jobs already there (catalog.Enqueue is
// idempotent). One node at a time runs it (the lease "jobs-feed").
type JobFeed struct {
	o  JobFeedOptions
	m  jobFeedMetrics
	in chan struct{}
}

// JobFeedCatalog is what the feed needs from the catalog.
type JobFeedCatalog interface {
	OutboxEvents(ctx context.Context, after int64, limit int) ([]catalog.OutboxEvent, error)
	OutboxCursor(ctx context.Context, name string, start int64) (int64, error)
	AdvanceOutboxCursor(ctx context.Context, name string, seq int64) error
	Enqueue(ctx context.Context, r catalog.JobRequest, now time.Time) (catalog.Job, bool, error)
}

// JobFeedOptions configure a JobFeed. Zero values mean the defaults.
type JobFeedOptions struct {
	Catalog JobFeedCatalog
	// Rules says which jobs an event causes (none for most).
	Rules func(e catalog.OutboxEvent) []catalog.JobRequest
	// Queued is called after jobs were made (the runner's Wake); nil: none.
	Queued    func()
	Lease     Lease // nil: this one runs
	LeaseName string
	LeaseTTL  time.Duration
	Holder    string
	// Interval is how often it looks for new events (default 250ms).
	Interval time.Duration
	Log      *slog.Logger
	Registry prometheus.Registerer
}

type jobFeedMetrics struct {
	enqueued, errors prometheus.Counter
	held             prometheus.Gauge
}

// JobFeedCursor is the name of the feed's outbox cursor.
const JobFeedCursor = "jobs"

// NewJobFeed makes a JobFeed.
func NewJobFeed(o JobFeedOptions) *JobFeed {
	if o.LeaseName == "" {
		o.LeaseName = "jobs-feed"
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	f := &JobFeed{o: o, m: jobFeedMetrics{
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_jobs_enqueued_from_events_total",
			Help: "Jobs made from events of the outbox (a poster per closed recording, ...)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_jobs_feed_errors_total",
			Help: "Failures to turn events into jobs; the events are taken again."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_jobs_feed_running",
			Help: "1 on the node that turns events into jobs (holds the lease \"jobs-feed\")."}),
	}}
	register(o.Registry, f.m.enqueued, f.m.errors, f.m.held)
	return f
}

// Run feeds until ctx ends. It returns nil: failures are logged, counted
// and retried.
func (f *JobFeed) Run(ctx context.Context) error {
	leased(ctx, f.o.Lease, f.o.LeaseName, f.o.Holder, f.o.LeaseTTL, f.o.Log, f.m.held, f.run)
	return nil
}

func (f *JobFeed) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		err := f.Feed(ctx)
		wait := f.o.Interval
		if err != nil && ctx.Err() == nil {
			failures++
			f.m.errors.Inc()
			if failures == 1 {
				f.o.Log.Warn("jobs feed: events not turned into jobs; retrying", "err", err)
			}
			wait = backoff(failures, f.o.Interval, 30*time.Second)
		} else if err == nil && failures > 0 {
			f.o.Log.Info("jobs feed: going on", "after_failures", failures)
			failures = 0
		}
		sleep(ctx, wait)
	}
}

// Feed takes every event after the cursor (a new cursor starts at the
// outbox's beginning: the closed recordings still in it get their jobs),
// enqueues what they cause, and moves the cursor after each batch.
func (f *JobFeed) Feed(ctx context.Context) error {
	cursor, err := f.o.Catalog.OutboxCursor(ctx, JobFeedCursor, 0)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		evs, err := f.o.Catalog.OutboxEvents(ctx, cursor, 200)
		if err != nil || len(evs) == 0 {
			return err
		}
		if missed := evs[0].Seq - cursor - 1; missed > 0 && cursor > 0 {
			f.o.Log.Error("jobs feed: events were pruned before they were turned into jobs", "missed", missed)
		}
		made := 0
		for _, e := range evs {
			for _, r := range f.o.Rules(e) {
				_, fresh, err := f.o.Catalog.Enqueue(ctx, r, time.Now())
				switch {
				case errors.Is(err, catalog.ErrNotFound):
					f.o.Log.Warn("jobs feed: no job for a recording the catalog does not have", "kind", r.Kind, "recording", r.Source, "event", e.ID)
				case err != nil:
					return err
				case fresh:
					made++
				}
			}
		}
		if made > 0 {
			f.m.enqueued.Add(float64(made))
			if f.o.Queued != nil {
				f.o.Queued()
			}
		}
		cursor = evs[len(evs)-1].Seq
		if err := f.o.Catalog.AdvanceOutboxCursor(ctx, JobFeedCursor, cursor); err != nil {
			return err
		}
	}
	return ctx.Err()
}
