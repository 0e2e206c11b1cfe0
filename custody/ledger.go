// Package custody records the chain of custody: every access to evidence
// and every change to it or its cases goes into the catalog's hash-chained
// ledger (see evidence/custody.go), signed at checkpoints with the server's
// key.
package custody

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/evidence"
)

// Ledger appends custody events.
type Ledger struct {
	store  appender
	log    *slog.Logger
	errs   prometheus.Counter
	events *prometheus.CounterVec
	anon   anonymous
}

// appender is the catalog's AppendCustody with its own Signer type.
type appender func(ctx context.Context, e evidence.CustodyEvent) (evidence.CustodyEvent, error)

// New returns a ledger that appends with append (the catalog's
// AppendCustody bound to the signer, see cmd/bodycam).
func New(append func(ctx context.Context, e evidence.CustodyEvent) (evidence.CustodyEvent, error), log *slog.Logger, reg prometheus.Registerer) *Ledger {
	l := &Ledger{store: append, log: log, anon: anonymous{hosts: map[string]*tally{}},
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bodycam_custody_errors_total", Help: "Custody events that could not be recorded.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bodycam_custody_events_total", Help: "Custody events recorded, by action and outcome.",
		}, []string{"action", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(l.errs, l.events)
	}
	return l
}

// Record appends e. A failure is logged and counted and returned: callers
// that give access to evidence refuse it when it cannot be recorded.
func (l *Ledger) Record(ctx context.Context, e evidence.CustodyEvent) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if e.Outcome == "" {
		e.Outcome = evidence.OutcomeOK
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := l.store(ctx, e); err != nil {
		l.errs.Inc()
		l.log.Error("custody event not recorded", "action", e.Action, "target", e.TargetID, "actor", e.Actor, "err", err)
		return err
	}
	l.events.WithLabelValues(e.Action, e.Outcome).Inc()
	return nil
}
