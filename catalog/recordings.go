package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

var errNoRows = sql.ErrNoRows

const recordingCols = `r.id, r.device_id, r.officer_id, r.case_id, r.state, r.started_us, r.ended_us,
	(SELECT COUNT(*) FROM segments s WHERE s.recording_id = r.id)`

func scanRecording(s scanner) (evidence.Recording, error) {
	var r evidence.Recording
	var started int64
	var ended sql.NullInt64
	err := s.Scan(&r.ID, &r.DeviceID, &r.OfficerID, &r.CaseID, &r.State, &started, &ended, &r.SegmentCount)
	r.StartedAt, r.EndedAt = fromMicros(started), fromNullMicros(ended)
	return r, err
}

// CreateRecording adds a recording for a registered device.
func (c *Catalog) CreateRecording(ctx context.Context, r evidence.Recording) error {
	if r.ID == "" || r.DeviceID == "" || r.StartedAt.IsZero() {
		return fmt.Errorf("catalog: recording needs an id, a device and a start time")
	}
	if r.State == "" {
		r.State = evidence.StateLive
	}
	if !r.State.Valid() {
		return fmt.Errorf("catalog: recording state %q", r.State)
	}
	_, err := c.exec(ctx, `INSERT INTO recordings (id, device_id, officer_id, case_id, state, started_us, ended_us)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		r.ID, r.DeviceID, r.OfficerID, r.CaseID, string(r.State), micros(r.StartedAt), nullMicros(r.EndedAt))
	return translate(err, "recording "+r.ID)
}

// Recording returns one recording with its segment count.
func (c *Catalog) Recording(ctx context.Context, id string) (evidence.Recording, error) {
	r, err := scanRecording(c.queryRow(ctx, `SELECT `+recordingCols+` FROM recordings r WHERE r.id = $1`, id))
	return r, translate(err, "recording "+id)
}

// RecordingFilter selects recordings. Zero fields do not filter.
type RecordingFilter struct {
	DeviceID string
	// From and To select recordings that overlap [From, To): a live
	// recording overlaps everything after its start.
	From, To time.Time
	State    evidence.RecordingState
	Limit    int // default 100, at most 1000
}

// Recordings lists recordings, newest first.
func (c *Catalog) Recordings(ctx context.Context, f RecordingFilter) ([]evidence.Recording, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.DeviceID != "" {
		where = append(where, "r.device_id = "+arg(f.DeviceID))
	}
	if !f.To.IsZero() {
		where = append(where, "r.started_us < "+arg(micros(f.To)))
	}
	if !f.From.IsZero() {
		where = append(where, "(r.ended_us IS NULL OR r.ended_us >= "+arg(micros(f.From))+")")
	}
	if f.State != "" {
		where = append(where, "r.state = "+arg(string(f.State)))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	q := `SELECT ` + recordingCols + ` FROM recordings r`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY r.started_us DESC, r.id DESC LIMIT " + arg(f.Limit)
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "recordings")
	}
	defer rows.Close()
	out := []evidence.Recording{}
	for rows.Next() {
		r, err := scanRecording(rows)
		if err != nil {
			return nil, translate(err, "recordings")
		}
		out = append(out, r)
	}
	return out, translate(rows.Err(), "recordings")
}

// FinishRecording moves a live recording to complete or interrupted. A
// recording that is not live is ErrConflict: its end is already on record.
func (c *Catalog) FinishRecording(ctx context.Context, id string, state evidence.RecordingState, endedAt time.Time) error {
	if state != evidence.StateComplete && state != evidence.StateInterrupted {
		return fmt.Errorf("catalog: a recording cannot finish as %q", state)
	}
	res, err := c.exec(ctx, `UPDATE recordings SET state = $1, ended_us = $2 WHERE id = $3 AND state = 'live'`,
		string(state), micros(endedAt), id)
	if err != nil {
		return translate(err, "recording "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := c.Recording(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: recording %s is not live", ErrConflict, id)
	}
	return nil
}

const segmentCols = `recording_id, seq, kind, object_key, size, sha256, chain_hash, started_us, duration_us`

// AddSegment records a stored segment. Its (recording, seq) and its key are
// unique: a second record of either is ErrExists.
func (c *Catalog) AddSegment(ctx context.Context, s evidence.Segment) error {
	if s.Kind != evidence.KindInit && s.Kind != evidence.KindMedia {
		return fmt.Errorf("catalog: segment kind %q", s.Kind)
	}
	_, err := c.exec(ctx, `INSERT INTO segments (`+segmentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		s.RecordingID, s.Seq, string(s.Kind), s.Key, s.Size, s.SHA256, s.ChainHash,
		micros(s.StartedAt), s.Duration.Microseconds())
	return translate(err, fmt.Sprintf("segment %s/%d", s.RecordingID, s.Seq))
}

// Segments lists a recording's segments by sequence number.
func (c *Catalog) Segments(ctx context.Context, recordingID string) ([]evidence.Segment, error) {
	rows, err := c.query(ctx, `SELECT `+segmentCols+` FROM segments WHERE recording_id = $1 ORDER BY seq`, recordingID)
	if err != nil {
		return nil, translate(err, "segments of "+recordingID)
	}
	defer rows.Close()
	out := []evidence.Segment{}
	for rows.Next() {
		var s evidence.Segment
		var started, dur int64
		if err := rows.Scan(&s.RecordingID, &s.Seq, &s.Kind, &s.Key, &s.Size, &s.SHA256, &s.ChainHash, &started, &dur); err != nil {
			return nil, translate(err, "segments of "+recordingID)
		}
		s.StartedAt, s.Duration = fromMicros(started), time.Duration(dur)*time.Microsecond
		out = append(out, s)
	}
	return out, translate(rows.Err(), "segments of "+recordingID)
}
