// Package jobs runs durable background work on recordings (thumbnails,
// proxies, clips, redaction): jobs the catalog keeps (catalog.Enqueue,
// catalog.Claim), taken by a bounded pool of workers on any node, each
// under a lease it extends while it works, retried with back-off, released
// on shutdown, and taken over by another worker when its own dies. What a
// job does is its kind's Handler; what it made is recorded with its
// completion, in one transaction.
//
// Workers never slow recording: the pool is bounded (Options.Workers, 0 on
// a node that only records), and on Linux each worker's thread runs at a
// lower priority (Options.Nice) so that the scheduler prefers ingest's.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
)

// Catalog is what the runner needs of the catalog.
type Catalog interface {
	Claim(ctx context.Context, owner string, kinds []string, lease time.Duration, now time.Time) (catalog.Job, error)
	ExtendLease(ctx context.Context, l catalog.JobLease, until time.Time) error
	Complete(ctx context.Context, l catalog.JobLease, made []catalog.Derived, now time.Time) error
	Fail(ctx context.Context, l catalog.JobLease, reason string, permanent bool, base, maxWait time.Duration, now time.Time) (catalog.Job, error)
	Release(ctx context.Context, l catalog.JobLease) error
	ExpireLeases(ctx context.Context, prefix string, now time.Time) (int, error)
	JobCounts(ctx context.Context) (map[string]map[catalog.JobState]int, error)
}

// Handler does one job and returns what it stored. It must be idempotent:
// a job may run again after a crash, or after its lease was lost, and
// must then find (not duplicate) what an earlier attempt stored. It stops
// when ctx ends (shutdown, or the lease lost) with ctx's error.
type Handler func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error)

// permanent marks an error that another attempt cannot cure.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that the job fails at once instead of being
// tried again (a recording without video has no poster).
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Options configure a Runner. Zero values mean the defaults.
type Options struct {
	Catalog Catalog
	// Workers is how many jobs this node runs at once; 0: none (the node
	// only keeps the metrics and ends its own old leases).
	Workers int
	// Node is this node's id: workers' lease owners are
	// "<node>/<run>/<worker>", and at start the leases of the node's
	// earlier runs are ended (node ids are unique: cluster.CheckID), so a
	// job a killed process held runs again at once.
	Node string
	// Lease is how long a claimed job stays a worker's without being
	// extended (default 1 min; extended every third of it): a worker
	// that dies is replaced after at most this.
	Lease time.Duration
	// Poll is how often idle workers look for jobs other nodes queued
	// (default 5 s); a job queued here wakes them at once (Wake).
	Poll time.Duration
	// Backoff and MaxBackoff: a failed attempt waits Backoff·2^(attempt-1),
	// at most MaxBackoff (defaults 30 s and 1 h).
	Backoff, MaxBackoff time.Duration
	// Nice is added to the worker threads' nice value on Linux (default
	// 10; -1: left as it is).
	Nice     int
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Runner is the pool of workers. Handle every kind before Run.
type Runner struct {
	o        Options
	run      string // this run's id, in lease owners
	handlers map[string]Handler
	kinds    []string
	wake     chan struct{}
	m        metrics
}

type metrics struct {
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
	jobs     *prometheus.GaugeVec
	workers  prometheus.Gauge
	busy     prometheus.Gauge
}

// Outcomes of an attempt (the metric's label).
const (
	OutcomeDone     = "done"     // completed
	OutcomeRetry    = "retry"    // failed, queued again after a back-off
	OutcomeFailed   = "failed"   // failed for good
	OutcomeReleased = "released" // given back on shutdown
	OutcomeLost     = "lost"     // its lease was lost (taken over)
)

// New makes a Runner.
func New(o Options) *Runner {
	if o.Lease <= 0 {
		o.Lease = time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Backoff <= 0 {
		o.Backoff = 30 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Hour
	}
	if o.Nice == 0 {
		o.Nice = 10
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Node == "" {
		o.Node = "node"
	}
	var b [4]byte
	rand.Read(b[:])
	r := &Runner{o: o, run: hex.EncodeToString(b[:]), handlers: map[string]Handler{}, wake: make(chan struct{}, 1), m: metrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_jobs_finished_total",
			Help: "Job attempts finished on this node, by kind and outcome (done, retry, failed, released, lost)."}, []string{"kind", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bodycam_job_duration_seconds",
			Help:    "How long job attempts ran on this node, by kind.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600, 1800}}, []string{"kind"}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bodycam_jobs",
			Help: "Jobs in the catalog (every node's), by kind and state (queued, running, done, failed)."}, []string{"kind", "state"}),
		workers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_jobs_workers", Help: "Job workers on this node (--workers)."}),
		busy:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_jobs_busy", Help: "Job workers on this node running a job now."}),
	}}
	if o.Registry != nil {
		o.Registry.MustRegister(r.m.finished, r.m.duration, r.m.jobs, r.m.workers, r.m.busy)
	}
	return r
}

// Handle sets the handler of a kind. Call it before Run.
func (r *Runner) Handle(kind string, h Handler) {
	r.handlers[kind] = h
	r.kinds = append(r.kinds, kind)
	sort.Strings(r.kinds)
	for _, outcome := range []string{OutcomeDone, OutcomeRetry, OutcomeFailed, OutcomeReleased, OutcomeLost} {
		r.m.finished.WithLabelValues(kind, outcome)
	}
}

// Kinds lists the kinds this runner handles.
func (r *Runner) Kinds() []string { return append([]string(nil), r.kinds...) }

// Wake tells idle workers that a job was queued: they look at once rather
// than at their next poll. It never blocks.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run runs the workers until ctx ends, then gives back the jobs they hold
// (released: queued again, their attempt not counted) and returns when
// every goroutine it started has ended. It returns nil: failures are
// logged, counted and retried.
func (r *Runner) Run(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if n, err := r.o.Catalog.ExpireLeases(sctx, r.o.Node+"/", time.Now()); err != nil {
		r.o.Log.Warn("jobs: the leases of this node's earlier run were not ended; its jobs run again when they expire", "err", err)
	} else if n > 0 {
		r.o.Log.Warn("jobs: jobs this node held when it stopped run again", "jobs", n)
	}
	cancel()
	workers := r.o.Workers
	if len(r.kinds) == 0 {
		workers = 0
	}
	r.m.workers.Set(float64(workers))
	if workers > 0 {
		r.o.Log.Info("jobs: workers running", "workers", workers, "kinds", r.kinds)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.stats(ctx)
	}()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(ctx, r.o.Node+"/"+r.run+"/"+strconv.Itoa(i))
		}()
	}
	wg.Wait()
	r.m.workers.Set(0)
	return nil
}

// stats keeps the jobs gauge.
func (r *Runner) stats(ctx context.Context) {
	t := time.NewTicker(max(r.o.Poll, 5*time.Second))
	defer t.Stop()
	seen := map[[2]string]bool{}
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		counts, err := r.o.Catalog.JobCounts(qctx)
		cancel()
		if err == nil {
			now := map[[2]string]bool{}
			for kind, byState := range counts {
				for _, st := range []catalog.JobState{catalog.JobQueued, catalog.JobRunning, catalog.JobDone, catalog.JobFailed} {
					r.m.jobs.WithLabelValues(kind, string(st)).Set(float64(byState[st]))
					now[[2]string{kind, string(st)}] = true
				}
			}
			for k := range seen {
				if !now[k] {
					r.m.jobs.WithLabelValues(k[0], k[1]).Set(0)
				}
			}
			seen = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// worker claims and runs jobs until ctx ends.
func (r *Runner) worker(ctx context.Context, owner string) {
	lowerPriority(r.o.Nice, r.o.Log)
	failing := false
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		j, err := r.o.Catalog.Claim(qctx, owner, r.kinds, r.o.Lease, time.Now())
		cancel()
		if err != nil {
			if !errors.Is(err, catalog.ErrNotFound) && ctx.Err() == nil {
				if !failing {
					r.o.Log.Warn("jobs: no job claimed: the catalog does not answer; retrying", "err", err)
					failing = true
				}
			}
			r.idle(ctx)
			continue
		}
		failing = false
		r.Wake() // another idle worker may find the next one
		r.m.busy.Inc()
		r.runJob(ctx, j)
		r.m.busy.Dec()
	}
}

// idle waits for a wake-up, the poll interval or the end.
func (r *Runner) idle(ctx context.Context) {
	t := time.NewTimer(r.o.Poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-r.wake:
	case <-t.C:
	}
}

// runJob runs one claimed job under its lease, extended while it runs,
// and records how it ended.
func (r *Runner) runJob(ctx context.Context, j catalog.Job) {
	log := r.o.Log.With("job", j.ID, "kind", j.Kind, "recording", j.Source, "attempt", j.Attempts)
	lease := j.Lease()
	jctx, cancel := context.WithCancel(ctx)
	lost := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.keepLease(jctx, lease, lost, cancel, log)
	}()
	start := time.Now()
	made, err := r.call(jctx, j)
	took := time.Since(start)
	cancel()
	wg.Wait()
	r.m.duration.WithLabelValues(j.Kind).Observe(took.Seconds())
	// The outcome is written even while stopping.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()
	outcome := ""
	select {
	case <-lost:
		outcome = OutcomeLost
		log.Warn("jobs: the job's lease was lost (taken over, or changed by an admin); its result is not recorded here", "took", took)
	default:
		switch {
		case err == nil:
			cerr := r.o.Catalog.Complete(wctx, lease, made, time.Now())
			switch {
			case cerr == nil:
				outcome = OutcomeDone
				log.Info("jobs: done", "took", took.Round(time.Millisecond), "derived", len(made))
			case errors.Is(cerr, catalog.ErrLeaseLost):
				outcome = OutcomeLost
				log.Warn("jobs: done, but the lease was lost meanwhile", "took", took)
			default:
				// The job stays leased until the lease expires, then runs
				// again and finds what this attempt stored.
				outcome = OutcomeRetry
				log.Error("jobs: done, but the completion was not recorded; it runs again when its lease expires", "err", cerr)
			}
		case ctx.Err() != nil:
			outcome = OutcomeReleased
			if rerr := r.o.Catalog.Release(wctx, lease); rerr != nil && !errors.Is(rerr, catalog.ErrLeaseLost) {
				log.Warn("jobs: the stopped job was not released; it runs again when its lease expires", "err", rerr)
			} else {
				log.Info("jobs: stopped mid-job: queued again", "took", took)
			}
		default:
			fj, ferr := r.o.Catalog.Fail(wctx, lease, err.Error(), IsPermanent(err), r.o.Backoff, r.o.MaxBackoff, time.Now())
			switch {
			case ferr != nil:
				outcome = OutcomeRetry
				log.Error("jobs: failed, and the failure was not recorded; it runs again when its lease expires", "err", err, "catalog_err", ferr)
			case fj.State == catalog.JobFailed:
				outcome = OutcomeFailed
				log.Error("jobs: failed for good", "err", err, "attempts", fj.Attempts, "permanent", IsPermanent(err))
			default:
				outcome = OutcomeRetry
				log.Warn("jobs: failed; tried again later", "err", err, "next_at", fj.NextAt)
			}
		}
	}
	r.m.finished.WithLabelValues(j.Kind, outcome).Inc()
}

// call runs the kind's handler; a panic is the attempt's failure.
func (r *Runner) call(ctx context.Context, j catalog.Job) (made []catalog.Derived, err error) {
	h := r.handlers[j.Kind]
	if h == nil {
		return nil, Permanent(fmt.Errorf("no handler of kind %q", j.Kind))
	}
	defer func() {
		if p := recover(); p != nil {
			r.o.Log.Error("jobs: handler panicked", "job", j.ID, "kind", j.Kind, "panic", p, "stack", string(debug.Stack()))
			made, err = nil, fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h(ctx, j)
}

// keepLease extends the lease every third of it until ctx ends; when the
// lease is lost it closes lost and cancels the job.
func (r *Runner) keepLease(ctx context.Context, l catalog.JobLease, lost chan struct{}, cancel context.CancelFunc, log *slog.Logger) {
	t := time.NewTicker(r.o.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, qcancel := context.WithTimeout(ctx, r.o.Lease/3)
		err := r.o.Catalog.ExtendLease(qctx, l, time.Now().Add(r.o.Lease))
		qcancel()
		switch {
		case errors.Is(err, catalog.ErrLeaseLost):
			close(lost)
			cancel()
			return
		case err != nil && ctx.Err() == nil:
			log.Warn("jobs: lease not extended; trying again", "err", err)
		}
	}
}
