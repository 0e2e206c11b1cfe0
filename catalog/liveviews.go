package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

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
	_, err := c.exec(ctx, `INSERT INTO live_views (`+liveViewCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		v.ID, v.DeviceID, v.RecordingID, v.User, v.RemoteAddr, v.UserAgent, v.Video, v.Audio,
		micros(v.StartedAt), nullMicros(v.EndedAt), v.EndReason, v.NodeID)
	return translate(err, "live view "+v.ID)
}

// EndLiveView records the end of a live viewing session. Ending one that
// has already ended is ErrConflict: its end is on record.
func (c *Catalog) EndLiveView(ctx context.Context, id string, endedAt time.Time, reason string) error {
	res, err := c.exec(ctx, `UPDATE live_views SET ended_us = $1, end_reason = $2 WHERE id = $3 AND ended_us IS NULL`,
		micros(endedAt), reason, id)
	if err != nil {
		return translate(err, "live view "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
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
// several nodes on one catalog, EndNodeLiveViews ends only one node's.
func (c *Catalog) EndOpenLiveViews(ctx context.Context, endedAt time.Time, reason string) (int64, error) {
	res, err := c.exec(ctx, `UPDATE live_views SET ended_us = $1, end_reason = $2 WHERE ended_us IS NULL`, micros(endedAt), reason)
	if err != nil {
		return 0, translate(err, "live views")
	}
	return res.RowsAffected()
}
