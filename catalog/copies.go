package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// Copy requests (approval before copying): asked for, decided once, and a
// grant's uses taken one at a time, each by a conditional UPDATE, so that
// no two downloads take the same last use and none takes an expired one.

const copyCols = `id, kind, target_id, reason, uses, uses_left, requested_by, requested_us, state,
	decided_by, decided_us, decision_note, expires_us, last_used_us`

func scanCopy(s scanner) (evidence.CopyRequest, error) {
	var c evidence.CopyRequest
	var req, dec, exp, used int64
	err := s.Scan(&c.ID, &c.Kind, &c.TargetID, &c.Reason, &c.Uses, &c.UsesLeft, &c.RequestedBy, &req, &c.State,
		&c.DecidedBy, &dec, &c.DecisionNote, &exp, &used)
	c.RequestedAt = fromMicros(req)
	for _, t := range []struct {
		us int64
		to *time.Time
	}{{dec, &c.DecidedAt}, {exp, &c.ExpiresAt}, {used, &c.LastUsedAt}} {
		if t.us != 0 {
			*t.to = fromMicros(t.us)
		}
	}
	return c, err
}

// CreateCopyRequest keeps a new, pending request (its UsesLeft is its
// Uses). A known id is ErrExists. The caller checks what it names and its
// reason.
func (c *Catalog) CreateCopyRequest(ctx context.Context, r evidence.CopyRequest) error {
	if r.ID == "" || r.Kind == "" || r.TargetID == "" || r.RequestedBy == "" || r.RequestedAt.IsZero() || r.Uses < 1 {
		return fmt.Errorf("catalog: a copy request needs an id, what it copies, who asks, when, and at least one use")
	}
	_, err := c.exec(ctx, `INSERT INTO copy_requests (id, kind, target_id, reason, uses, uses_left, requested_by, requested_us, state)
		VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)`,
		r.ID, r.Kind, r.TargetID, r.Reason, r.Uses, r.RequestedBy, micros(r.RequestedAt), evidence.CopyPending)
	return translate(err, "copy request "+r.ID)
}

// CopyRequest returns one request (ErrNotFound).
func (c *Catalog) CopyRequest(ctx context.Context, id string) (evidence.CopyRequest, error) {
	r, err := scanCopy(c.queryRow(ctx, `SELECT `+copyCols+` FROM copy_requests WHERE id = $1`, id))
	return r, translate(err, "copy request "+id)
}

// CopyRequestFilter selects copy requests: one requester's ("" all),
// with stored state State ("" any), the newest Limit (0: 1000).
type CopyRequestFilter struct {
	RequestedBy string
	State       string
	Limit       int
}

// CopyRequests lists requests, newest first.
func (c *Catalog) CopyRequests(ctx context.Context, f CopyRequestFilter) ([]evidence.CopyRequest, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := c.query(ctx, `SELECT `+copyCols+` FROM copy_requests
		WHERE ($1 = '' OR requested_by = $1) AND ($2 = '' OR state = $2)
		ORDER BY requested_us DESC, id DESC LIMIT $3`, f.RequestedBy, f.State, f.Limit)
	if err != nil {
		return nil, translate(err, "copy requests")
	}
	defer rows.Close()
	out := []evidence.CopyRequest{}
	for rows.Next() {
		r, err := scanCopy(rows)
		if err != nil {
			return nil, translate(err, "copy requests")
		}
		out = append(out, r)
	}
	return out, translate(rows.Err(), "copy requests")
}

// DecideCopyRequest grants (until expires) or refuses a pending request,
// once: a decided one is ErrConflict, an unknown one ErrNotFound. It
// returns the request as decided.
func (c *Catalog) DecideCopyRequest(ctx context.Context, id, by, note string, approve bool, at, expires time.Time) (evidence.CopyRequest, error) {
	if by == "" || at.IsZero() || (approve && !expires.After(at)) {
		return evidence.CopyRequest{}, fmt.Errorf("catalog: a decision needs who, when, and for a grant an end after it")
	}
	state, exp := evidence.CopyRefused, int64(0)
	if approve {
		state, exp = evidence.CopyGranted, micros(expires)
	}
	res, err := c.exec(ctx, `UPDATE copy_requests SET state = $1, decided_by = $2, decided_us = $3, decision_note = $4, expires_us = $5
		WHERE id = $6 AND state = $7`, state, by, micros(at), note, exp, id, evidence.CopyPending)
	if err != nil {
		return evidence.CopyRequest{}, translate(err, "copy request "+id)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return evidence.CopyRequest{}, translate(err, "copy request "+id)
	}
	r, err := c.CopyRequest(ctx, id)
	if err != nil {
		return r, err
	}
	if n != 1 {
		return r, fmt.Errorf("copy request %s was %s already by %s: %w", id, r.State, r.DecidedBy, ErrConflict)
	}
	return r, nil
}

// UseCopyGrant takes one use of grant id for user, copying kind target,
// at: only a granted request of that user, for that thing, before it
// expires, with a use left. Otherwise ErrConflict (ErrNotFound: no such
// request); the caller says why from the request. It returns the request
// with the use taken.
func (c *Catalog) UseCopyGrant(ctx context.Context, id, user, kind, target string, at time.Time) (evidence.CopyRequest, error) {
	res, err := c.exec(ctx, `UPDATE copy_requests SET uses_left = uses_left - 1, last_used_us = $1
		WHERE id = $2 AND state = $3 AND requested_by = $4 AND kind = $5 AND target_id = $6
		AND uses_left > 0 AND expires_us > $1`, micros(at), id, evidence.CopyGranted, user, kind, target)
	if err != nil {
		return evidence.CopyRequest{}, translate(err, "copy grant "+id)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return evidence.CopyRequest{}, translate(err, "copy grant "+id)
	}
	r, err := c.CopyRequest(ctx, id)
	if err != nil {
		return r, err
	}
	if n != 1 {
		return r, fmt.Errorf("copy grant %s cannot be used (%s, %d uses left): %w", id, r.StateAt(at), r.UsesLeft, ErrConflict)
	}
	return r, nil
}
