// Package custody records the chain of custody: every access to evidence
// and every change to it or its cases goes into the catalog's hash-chained
// ledger (see evidence/custody.go), signed at checkpoints with the server's
// key.
package custody

import (
	"context"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

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
	// What a request brings is bounded before it is kept forever.
	for _, f := range []*string{&e.Actor, &e.Role, &e.Remote, &e.Action, &e.TargetKind, &e.TargetID, &e.CaseID} {
		*f = Clip(*f, maxField)
	}
	e.Detail = Clip(e.Detail, maxDetail)
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

// Bounds of what one event keeps of each field: enough for any id, address
// or reason the server writes, and for a fair part of what a client sent.
const (
	maxField  = 256
	maxDetail = 1024
)

// Clip cuts s to at most n bytes on a UTF-8 boundary, saying so and how long
// it was: a ledger event (kept forever) never holds a request's text of any
// size.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	note := fmt.Sprintf("… [cut: %d bytes in all]", len(s))
	cut := max(n-len(note), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + note
}
