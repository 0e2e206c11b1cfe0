// Package outbox delivers the catalog's outbox (events for other systems:
// segment stored, recording started and closed, device online and offline,
// case steps, evidence linked and unlinked, live views) to where they go:
// the Redis stream "events" (Relay) and the configured webhooks (Webhooks).
//
// The catalog writes each event in the transaction of the change it tells
// of; the Relay gives committed events their place in the delivery order
// (seq) and publishes them to the stream; each webhook follows that order
// with a durable cursor in the catalog. Delivery is at least once: a
// receiver de-duplicates by the event id, and then has every event exactly
// once, in order per device (per case for case events). Nothing is lost
// while the stream or a receiver is down: events wait in the outbox, which
// keeps them for Keep (7 days by default) after their sequencing; a webhook
// gives up on an event only after RetryFor (24 h by default), filing it as a
// dead letter that an admin can queue again.
//
// Each part runs in one place at a time in a cluster, under a named lease
// (declared here as Lease; coord satisfies it).
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/coord"
)

// Lease is a named lease: one holder at a time cluster-wide (coord.Local,
// coord.Redis). Acquire takes or renews it (coord.ErrHeld when another has
// it); Release gives it up.
type Lease interface {
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) error
	Release(ctx context.Context, name, holder string) error
}

// Stream is the cluster's event stream (XADD on Redis).
type Stream interface {
	Publish(ctx context.Context, stream string, e coord.Event) error
}

// defaultLeaseTTL is how long a runner holds its lease without renewing it:
// a runner that dies is replaced after at most this.
const defaultLeaseTTL = 15 * time.Second

// leased runs fn while holder holds the lease name, with a context that
// ends when the lease is lost to another holder or ctx ends; it returns when
// ctx ends. Without a Lease fn runs at once, alone.
//
// A holder that cannot renew because coordination does not answer goes on:
// while the backend is down nobody else can take the lease, and if another
// node takes it meanwhile (a partition), both deliver for a while, which
// costs duplicates, which receivers drop by event id, and never order: a
// runner delivers an event of a device only after the receiver accepted
// the ones before it. A node that cannot take the lease at all does not run:
// events wait in the outbox.
func leased(ctx context.Context, l Lease, name, holder string, ttl time.Duration, log *slog.Logger, held prometheus.Gauge,
	fn func(ctx context.Context)) {
	if l == nil {
		held.Set(1)
		fn(ctx)
		held.Set(0)
		return
	}
	if ttl <= 0 {
		ttl = defaultLeaseTTL
	}
	every := ttl / 3
	warned := false
	for ctx.Err() == nil {
		if err := l.Acquire(ctx, name, holder, ttl); err != nil {
			if !errors.Is(err, coord.ErrHeld) && !warned && ctx.Err() == nil {
				log.Warn("lease not taken: coordination does not answer; events wait in the outbox", "lease", name, "err", err)
				warned = true
			}
			sleep(ctx, every)
			continue
		}
		warned = false
		log.Info("lease taken: this node delivers", "lease", name)
		held.Set(1)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			fn(runCtx)
		}()
		t := time.NewTicker(every)
		renewing := true
		for renewing {
			select {
			case <-ctx.Done():
				renewing = false
			case <-done:
				renewing = false
			case <-t.C:
				err := l.Acquire(ctx, name, holder, ttl)
				switch {
				case err == nil:
					if warned {
						log.Info("lease renewed again", "lease", name)
						warned = false
					}
				case errors.Is(err, coord.ErrHeld):
					log.Warn("lease taken by another node: stopping here", "lease", name)
					renewing = false
				case !warned && ctx.Err() == nil:
					log.Warn("lease not renewed: coordination does not answer; going on", "lease", name, "err", err)
					warned = true
				}
			}
		}
		t.Stop()
		cancel()
		<-done
		held.Set(0)
		if ctx.Err() != nil {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			l.Release(rctx, name, holder)
			rcancel()
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// backoff is min doubled per attempt after the first, at most max.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	return minDuration(d, max)
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		reg.MustRegister(c)
	}
}
