package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/outbox"
)

// Webhooks is webhook delivery as admins see it (package outbox): the
// configured webhooks and the events they gave up on.
type Webhooks interface {
	Hooks() []outbox.Hook
	DeadLetters(ctx context.Context, f catalog.DeadLetterFilter) ([]catalog.DeadLetter, error)
	// RetryDeadLetter queues a dead letter again: catalog.ErrNotFound,
	// or catalog.ErrConflict when it is not dead or its webhook is not
	// configured now.
	RetryDeadLetter(ctx context.Context, id int64, by string) (catalog.DeadLetter, error)
}

type deadLetterJSON struct {
	ID             int64         `json:"id"`
	Webhook        string        `json:"webhook"`
	URL            string        `json:"url"`
	Event          deadEventJSON `json:"event"`
	Attempts       int           `json:"attempts"`
	FirstAttemptAt time.Time     `json:"first_attempt_at"`
	LastAttemptAt  time.Time     `json:"last_attempt_at"`
	LastError      string        `json:"last_error"`
	DeadAt         time.Time     `json:"dead_at"`
	State          string        `json:"state"`
	RequeuedBy     string        `json:"requeued_by,omitempty"`
	RequeuedAt     *time.Time    `json:"requeued_at,omitempty"`
	DeliveredAt    *time.Time    `json:"delivered_at,omitempty"`
}

// deadEventJSON is a dead letter's event as admins see it: its envelope
// without its data, which tells of footage and cases (a case step's
// reason, which recording a case holds, a recording's officer) that
// admins do not read. A retry sends the whole event.
type deadEventJSON struct {
	ID         string      `json:"id"`
	Seq        int64       `json:"seq"`
	Kind       events.Kind `json:"kind"`
	Device     string      `json:"device"`
	Case       string      `json:"case"`
	OccurredAt time.Time   `json:"occurred_at"`
}

func toDeadLetterJSON(d catalog.DeadLetter) deadLetterJSON {
	e := deadEventJSON{ID: d.Event.ID, Seq: d.Event.Seq, Kind: d.Event.Kind, Device: d.Event.DeviceID, Case: d.Event.CaseID,
		OccurredAt: d.Event.OccurredAt.UTC()}
	return deadLetterJSON{ID: d.ID, Webhook: d.Webhook, URL: d.URL, Event: e, Attempts: d.Attempts, FirstAttemptAt: d.FirstAttempt,
		LastAttemptAt: d.LastAttempt, LastError: d.LastError, DeadAt: d.DeadAt, State: d.State, RequeuedBy: d.RequeuedBy,
		RequeuedAt: timePtr(d.RequeuedAt), DeliveredAt: timePtr(d.DeliveredAt)}
}

// webhooksOn answers 503 itself when webhook delivery is not configured.
func (s *Server) webhooksOn(w http.ResponseWriter) bool {
	if s.o.Webhooks == nil {
		writeError(w, http.StatusServiceUnavailable, "webhook delivery is not configured (--webhook-url)")
		return false
	}
	return true
}

// listDeadLetters lists the events webhooks gave up on, newest first, with
// the webhooks configured now.
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w) {
		return
	}
	q := r.URL.Query()
	f := catalog.DeadLetterFilter{Webhook: q.Get("webhook"), State: q.Get("state")}
	switch f.State {
	case "", catalog.DeadLetterDead, catalog.DeadLetterQueued, catalog.DeadLetterDelivered:
	default:
		writeError(w, http.StatusBadRequest, "state: want dead, queued or delivered")
		return
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "before: want a dead letter's number")
			return
		}
		f.Before = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: want 1 to 1000")
			return
		}
		f.Limit = n
	}
	list, err := s.o.Webhooks.DeadLetters(r.Context(), f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]deadLetterJSON, 0, len(list))
	for _, d := range list {
		items = append(items, toDeadLetterJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "webhooks": s.o.Webhooks.Hooks()})
}

// retryDeadLetter queues a dead letter for delivery again, on record in the
// custody ledger: it sends what the event tells (about footage, a case, a
// viewing) out of the system once more.
func (s *Server) retryDeadLetter(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, "id: want a dead letter's number")
		return
	}
	p := principalOf(r)
	d, err := s.o.Webhooks.RetryDeadLetter(r.Context(), id, p.ID)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", id))
		return
	case errors.Is(err, catalog.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		s.internal(w, r, err)
		return
	}
	s.o.Log.Info("dead letter queued again", "dead_letter", d.ID, "event", d.Event.ID, "webhook", d.Webhook, "by", p.ID)
	s.record(r, evidence.CustodyEvent{Action: evidence.ActionWebhook, TargetKind: "event", TargetID: d.Event.ID,
		Detail: fmt.Sprintf("dead letter %d (%s, device %q, case %q) queued again for webhook %s (%s)",
			d.ID, d.Event.Kind, d.Event.DeviceID, d.Event.CaseID, d.Webhook, d.URL)})
	writeJSON(w, http.StatusOK, toDeadLetterJSON(d))
}
