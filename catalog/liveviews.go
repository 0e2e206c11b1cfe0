package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
)

const liveViewCols = `id, device_id, recording_id, username, remote_addr, user_agent, video, audio, started_us, ended_us, end_reason, node_id`

func scanLiveView(s scanner) (evidence.LiveView, error) {
	var v evidence.LiveView
	var started int64
	var ended = nullMicros(time.Time{})
	err := s.Scan(&v.ID, &v.DeviceID, &v.RecordingID, &v.User, &v.RemoteAddr, &v.UserAgent, &v.Video, &v.Audio,
		&started, &ended, &v.EndReason, &v.NodeID)
	v.StartedAt, v.EndedAt = fromMicros(started), fromNullMicros(ended)
	return v, err
}

// StartLiveView records that a live viewing session began.
func (c *Catalog) StartLiveView(ctx context.Context, v evidence.LiveView) error {
	if v.ID == "" || v.DeviceID == "" || v.User == "" || v.StartedAt.IsZero() {
		return fmt.Errorf("catalog: a live view needs an id, a device, a user and a start time")
	}
	what := "live view " + v.ID
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, what)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, c.q(`INSERT INTO live_views (`+liveViewCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`),
		v.ID, v.DeviceID, v.RecordingID, v.User, v.RemoteAddr, v.UserAgent, v.Video, v.Audio,
		micros(v.StartedAt), nullMicros(v.EndedAt), v.EndReason, v.NodeID)
	if err != nil {
		return translate(err, what)
	}
	if err := c.emit(ctx, tx, events.LiveViewStarted, v.DeviceID, "", v.StartedAt, liveViewEvent(v)); err != nil {
		return err
	}
	return translate(tx.Commit(), what)
}

// liveViewEvent is what other systems learn of a live view: who watched
// which device, when; not from where.
func liveViewEvent(v evidence.LiveView) liveViewData {
	return liveViewData{ViewID: v.ID, DeviceID: v.DeviceID, RecordingID: v.RecordingID, User: v.User, Video: v.Video, Audio: v.Audio,
		StartedAt: v.StartedAt.UTC(), EndedAt: optTime(v.EndedAt), EndReason: v.EndReason}
}

// endLiveViews ends the open sessions where cond (SQL on live_views, with
// args from $3) holds, with an event each, and returns those it ended.
func (c *Catalog) endLiveViews(ctx context.Context, endedAt time.Time, reason, cond string, args ...any) ([]evidence.LiveView, error) {
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, translate(err, "live views")
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, c.q(`UPDATE live_views SET ended_us = $1, end_reason = $2 WHERE ended_us IS NULL`+cond+`
		RETURNING `+liveViewCols), append([]any{micros(endedAt), reason}, args...)...)
	if err != nil {
		return nil, translate(err, "live views")
	}
	var ended []evidence.LiveView
	for rows.Next() {
		v, err := scanLiveView(rows)
		if err != nil {
			rows.Close()
			return nil, translate(err, "live views")
		}
		ended = append(ended, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err, "live views")
	}
	for _, v := range ended {
		if err := c.emit(ctx, tx, events.LiveViewEnded, v.DeviceID, "", endedAt, liveViewEvent(v)); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, translate(err, "live views")
	}
	return ended, nil
}

// EndLiveView records the end of a live viewing session. Ending one that
// has already ended is ErrConflict: its end is on record.
func (c *Catalog) EndLiveView(ctx context.Context, id string, endedAt time.Time, reason string) error {
	ended, err := c.endLiveViews(ctx, endedAt, reason, " AND id = $3", id)
	if err != nil {
		return err
	}
	if len(ended) == 0 {
		if _, err := c.LiveView(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: live view %s has already ended", ErrConflict, id)
	}
	return nil
}

// LiveView returns one live viewing session.
func (c *Catalog) LiveView(ctx context.Context, id string) (evidence.LiveView, error) {
	v, err := scanLiveView(c.queryRow(ctx, `SELECT `+liveViewCols+` FROM live_views WHERE id = $1`, id))
	return v, translate(err, "live view "+id)
}

// LiveViewFilter selects live viewing sessions.
type LiveViewFilter struct {
	DeviceID string
	User     string
	// From and To select sessions that overlap [From, To).
	From, To time.Time
	Limit    int // default 100, at most 1000
}

// LiveViews lists live viewing sessions, newest first.
func (c *Catalog) LiveViews(ctx context.Context, f LiveViewFilter) ([]evidence.LiveView, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.DeviceID != "" {
		where = append(where, "device_id = "+arg(f.DeviceID))
	}
	if f.User != "" {
		where = append(where, "username = "+arg(f.User))
	}
	if !f.To.IsZero() {
		where = append(where, "started_us < "+arg(micros(f.To)))
	}
	if !f.From.IsZero() {
		where = append(where, "(ended_us IS NULL OR ended_us >= "+arg(micros(f.From))+")")
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT ` + liveViewCols + ` FROM live_views`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY started_us DESC, id DESC LIMIT " + arg(min(f.Limit, 1000))
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "live views")
	}
	defer rows.Close()
	out := []evidence.LiveView{}
	for rows.Next() {
		v, err := scanLiveView(rows)
		if err != nil {
			return nil, translate(err, "live views")
		}
		out = append(out, v)
	}
	return out, translate(rows.Err(), "live views")
}

// EndOpenLiveViews ends every session still open, for a start after an
// abnormal stop: nobody is watching a server that was not running. With
// several nodes on one catalog, EndNodeLiveViews ends only one node's. It
// returns the sessions it ended, for the custody ledger.
func (c *Catalog) EndOpenLiveViews(ctx context.Context, endedAt time.Time, reason string) ([]evidence.LiveView, error) {
	return c.endLiveViews(ctx, endedAt, reason, "")
}
