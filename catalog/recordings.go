package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
)

var errNoRows = sql.ErrNoRows

const recordingCols = `r.id, r.device_id, r.officer_id, r.case_id, r.state, r.started_us, r.ended_us,
	r.end_reason, r.codecs, r.remote_addr, r.manifest_key, r.segment_count, r.deleted_us,
	r.node_id, r.fence, r.reaped_us, r.kind`

func scanRecording(s scanner) (evidence.Recording, error) {
	var r evidence.Recording
	var started int64
	var ended, deleted, reaped sql.NullInt64
	var codecs string
	err := s.Scan(&r.ID, &r.DeviceID, &r.OfficerID, &r.CaseID, &r.State, &started, &ended,
		&r.EndReason, &codecs, &r.RemoteAddr, &r.ManifestKey, &r.SegmentCount, &deleted,
		&r.NodeID, &r.Fence, &reaped, &r.Kind)
	r.StartedAt, r.EndedAt, r.DeletedAt = fromMicros(started), fromNullMicros(ended), fromNullMicros(deleted)
	r.ReapedAt = fromNullMicros(reaped)
	if codecs != "" {
		r.Codecs = strings.Split(codecs, "\n")
	}
	return r, err
}

// CreateRecording adds a recording for a registered device. In the same
// transaction it raises the device's fence to the recording's (devices.fence
// is the highest seen), taking the device row first, as AppendSegment does:
// from its commit on, AppendSegment refuses segments of older fences
// recorded after this one's grant. Kind "" is KindStream.
func (c *Catalog) CreateRecording(ctx context.Context, r evidence.Recording) error {
	r, err := checkRecording(r)
	if err != nil {
		return err
	}
	what := "recording " + r.ID
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, what)
	}
	defer tx.Rollback()
	if err := c.createRecording(ctx, tx, r); err != nil {
		return err
	}
	// A device is online while it records: from its recording's start to
	// its end (FinishRecording).
	if r.State == evidence.StateLive {
		if err := c.emit(ctx, tx, events.DeviceOnline, r.DeviceID, "", r.StartedAt, deviceData{DeviceID: r.DeviceID, RecordingID: r.ID}); err != nil {
			return err
		}
	}
	return translate(tx.Commit(), what)
}

// checkRecording checks a recording to be created and fills in its
// defaults (state live, kind stream).
func checkRecording(r evidence.Recording) (evidence.Recording, error) {
	if r.ID == "" || r.DeviceID == "" || r.StartedAt.IsZero() {
		return r, fmt.Errorf("catalog: recording needs an id, a device and a start time")
	}
	if r.State == "" {
		r.State = evidence.StateLive
	}
	if !r.State.Valid() {
		return r, fmt.Errorf("catalog: recording state %q", r.State)
	}
	if r.Kind == "" {
		r.Kind = evidence.KindStream
	}
	if !r.Kind.Valid() {
		return r, fmt.Errorf("catalog: recording kind %q", r.Kind)
	}
	if r.Fence < 0 {
		return r, fmt.Errorf("catalog: recording fence %d", r.Fence)
	}
	return r, nil
}

// createRecording inserts a checked recording within tx, with its
// recording.started event, after raising the device's fence and longest
// recording (the device row is taken first).
func (c *Catalog) createRecording(ctx context.Context, tx *sql.Tx, r evidence.Recording) error {
	what := "recording " + r.ID
	if _, err := tx.ExecContext(ctx, c.q(`UPDATE devices SET fence = CASE WHEN fence < $1 THEN $1 ELSE fence END,
		longest_recording_us = CASE WHEN longest_recording_us < $2 THEN $2 ELSE longest_recording_us END WHERE id = $3`),
		r.Fence, lasted(r.StartedAt, r.EndedAt), r.DeviceID); err != nil {
		return translate(err, what)
	}
	_, err := tx.ExecContext(ctx, c.q(`INSERT INTO recordings (id, device_id, officer_id, case_id, state, started_us, ended_us,
		end_reason, codecs, remote_addr, manifest_key, node_id, fence, reaped_us, kind)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`),
		r.ID, r.DeviceID, r.OfficerID, r.CaseID, string(r.State), micros(r.StartedAt), nullMicros(r.EndedAt),
		r.EndReason, strings.Join(r.Codecs, "\n"), r.RemoteAddr, r.ManifestKey, r.NodeID, r.Fence, nullMicros(r.ReapedAt), string(r.Kind))
	if err != nil {
		return translate(err, what)
	}
	return c.emit(ctx, tx, events.RecordingStarted, r.DeviceID, "", r.StartedAt, recordingEvent(r))
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
	Kind     evidence.RecordingKind
	// OfficerIDs: recordings of any of these officers; CaseID: linked to
	// this case now (an active evidence link); Category: having it.
	OfficerIDs []string
	CaseID     string
	Category   string
	Limit      int // default 100, at most 1000
}

// Recordings lists recordings, newest first.
//
// Without From, the newest recordings that started before To are the
// first ones an index scan of started_us meets, and the LIMIT ends it. With
// From, a recording that ended long before From still started before To,
// so that scan would run back through the whole history for a quiet
// window. It is bounded instead: a finished recording overlapping the
// window started at or after From - the longest any finished recording of
// the device (of any device, without DeviceID) lasted
// (devices.longest_recording_us); open ones (no end yet) that started
// before that bound come from a partial index of open recordings.
func (c *Catalog) Recordings(ctx context.Context, f RecordingFilter) ([]evidence.Recording, error) {
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	var where []string
	if f.DeviceID != "" {
		where = append(where, "device_id = "+arg(f.DeviceID))
	}
	if !f.To.IsZero() {
		where = append(where, "started_us < "+arg(micros(f.To)))
	}
	if f.State != "" {
		where = append(where, "state = "+arg(string(f.State)))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(string(f.Kind)))
	}
	if len(f.OfficerIDs) > 0 {
		var in []string
		for _, o := range f.OfficerIDs {
			in = append(in, arg(o))
		}
		where = append(where, "officer_id IN ("+strings.Join(in, ", ")+")")
	}
	if f.CaseID != "" {
		where = append(where, "id IN (SELECT recording_id FROM evidence_links WHERE case_id = "+arg(f.CaseID)+" AND unlinked_us IS NULL)")
	}
	if f.Category != "" {
		where = append(where, "id IN (SELECT recording_id FROM recording_categories WHERE category = "+arg(f.Category)+")")
	}
	limit := arg(f.Limit)
	if f.From.IsZero() {
		q := `SELECT ` + recordingCols + ` FROM recordings r`
		if len(where) > 0 {
			q += " WHERE r." + strings.Join(where, " AND r.")
		}
		return c.recordings(ctx, q+" ORDER BY r.started_us DESC, r.id DESC LIMIT "+limit, args...)
	}
	from := arg(micros(f.From))
	longest := "(SELECT COALESCE(MAX(longest_recording_us), 0) FROM devices)"
	if f.DeviceID != "" {
		longest = "(SELECT longest_recording_us FROM devices WHERE id = $1)"
	}
	bound := from + " - " + longest
	and := ""
	if len(where) > 0 {
		and = " AND " + strings.Join(where, " AND ")
	}
	q := `SELECT ` + recordingCols + ` FROM (
			SELECT id FROM (SELECT id FROM recordings WHERE started_us >= ` + bound + and + `
				AND (ended_us IS NULL OR ended_us >= ` + from + `) ORDER BY started_us DESC, id DESC LIMIT ` + limit + `) AS recent
			UNION ALL
			SELECT id FROM recordings WHERE ended_us IS NULL AND started_us < ` + bound + and + `
		) AS w JOIN recordings r ON r.id = w.id
		ORDER BY r.started_us DESC, r.id DESC LIMIT ` + limit
	return c.recordings(ctx, q, args...)
}

// lasted is how long a finished recording lasted in µs, for
// devices.longest_recording_us (0 while it has no end).
func lasted(started, ended time.Time) int64 {
	if ended.IsZero() || !ended.After(started) {
		return 0
	}
	return micros(ended) - micros(started)
}

// raiseLongest keeps devices.longest_recording_us at least as long as a
// recording that just got its end. It writes only when the recording is
// the device's longest yet, so it rarely waits for the device row, which
// AppendSegment holds.
func (c *Catalog) raiseLongest(ctx context.Context, tx *sql.Tx, device string, started, ended time.Time) error {
	d := lasted(started, ended)
	if d == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, c.q(`UPDATE devices SET longest_recording_us = $1 WHERE id = $2 AND longest_recording_us < $1`), d, device)
	return translate(err, "device "+device)
}

// recordings runs a query for recordingCols and scans what it returns.
func (c *Catalog) recordings(ctx context.Context, q string, args ...any) ([]evidence.Recording, error) {
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
// One exception: a recording the reaper ended (InterruptNode; ReapedAt set)
// and that has no manifest yet takes the end its owning node gives now,
// which knows when its media ended; that clears ReapedAt, so a second
// finish is ErrConflict again.
func (c *Catalog) FinishRecording(ctx context.Context, id string, state evidence.RecordingState, endedAt time.Time, reason string) error {
	if state != evidence.StateComplete && state != evidence.StateInterrupted {
		return fmt.Errorf("catalog: a recording cannot finish as %q", state)
	}
	ended, err := c.finishRecording(ctx, id, state, endedAt, reason)
	if err != nil {
		return err
	}
	if !ended {
		if _, err := c.Recording(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: recording %s is not live", ErrConflict, id)
	}
	return nil
}

// finishRecording ends a live recording, with the device's offline event,
// and reports whether it was live.
func (c *Catalog) finishRecording(ctx context.Context, id string, state evidence.RecordingState, endedAt time.Time, reason string) (bool, error) {
	what := "recording " + id
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return false, translate(err, what)
	}
	defer tx.Rollback()
	// A recording the reaper ended has had its offline event: its owner's
	// end replaces the reaper's, with no second one.
	var was string
	err = tx.QueryRowContext(ctx, c.q(`SELECT state FROM recordings WHERE id = $1`), id).Scan(&was)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, translate(err, what)
	}
	var device string
	var started int64
	err = tx.QueryRowContext(ctx, c.q(`UPDATE recordings SET state = $1, ended_us = $2, end_reason = $3, reaped_us = NULL
		WHERE id = $4 AND (state = 'live' OR (reaped_us IS NOT NULL AND manifest_key = ''))
		RETURNING device_id, started_us`), string(state), micros(endedAt), reason, id).Scan(&device, &started)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translate(err, what)
	}
	if err := c.raiseLongest(ctx, tx, device, fromMicros(started), endedAt); err != nil {
		return false, err
	}
	if was != string(evidence.StateLive) {
		return true, translate(tx.Commit(), what)
	}
	if err := c.emit(ctx, tx, events.DeviceOffline, device, "", endedAt,
		deviceData{DeviceID: device, RecordingID: id, State: state, Reason: reason}); err != nil {
		return false, err
	}
	return true, translate(tx.Commit(), what)
}

// SetRecordingCase sets the case a recording was published for (empty: none):
// ingest clears it when the link the recorder asked for was refused, so that
// neither the recording nor its signed manifest names a case it is not in.
// A recording whose manifest is signed keeps what it says.
func (c *Catalog) SetRecordingCase(ctx context.Context, id, caseID string) error {
	res, err := c.exec(ctx, `UPDATE recordings SET case_id = $1 WHERE id = $2 AND manifest_key = ''`, caseID, id)
	if err != nil {
		return translate(err, "recording "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := c.Recording(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: recording %s has a signed manifest", ErrConflict, id)
	}
	return nil
}

// SetManifest records where a finished recording's signed manifest is.
func (c *Catalog) SetManifest(ctx context.Context, id, key string) error {
	set, err := c.setManifest(ctx, id, key)
	if err != nil {
		return err
	}
	if !set {
		r, err := c.Recording(ctx, id)
		if err != nil {
			return err
		}
		if r.ManifestKey != key {
			return fmt.Errorf("%w: recording %s already has manifest %s", ErrConflict, id, r.ManifestKey)
		}
	}
	return nil
}

// setManifest sets a recording's manifest, with the event that the
// recording is closed (complete, signed, its links all stored), and reports
// whether it had none.
func (c *Catalog) setManifest(ctx context.Context, id, key string) (bool, error) {
	what := "recording " + id
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return false, translate(err, what)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, c.q(`UPDATE recordings SET manifest_key = $1 WHERE id = $2 AND manifest_key = ''`), key, id)
	if err != nil {
		return false, translate(err, what)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	r, err := scanRecording(tx.QueryRowContext(ctx, c.q(`SELECT `+recordingCols+` FROM recordings r WHERE r.id = $1`), id))
	if err != nil {
		return false, translate(err, what)
	}
	data := recordingEvent(r)
	data.Segments, data.ManifestKey, data.Codecs = &r.SegmentCount, r.ManifestKey, nil
	if err := c.emit(ctx, tx, events.RecordingClosed, r.DeviceID, "", time.Time{}, data); err != nil {
		return false, err
	}
	return true, translate(tx.Commit(), what)
}

const segmentCols = `recording_id, device_id, seq, kind, object_key, size, sha256, chain_seq, prev_chain_hash, chain_hash,
	started_us, device_time_us, duration_us, keyframe`

func scanSegment(s scanner) (evidence.Segment, error) {
	var seg evidence.Segment
	var started, dur int64
	var devTime sql.NullInt64
	err := s.Scan(&seg.RecordingID, &seg.DeviceID, &seg.Seq, &seg.Kind, &seg.Key, &seg.Size, &seg.SHA256,
		&seg.ChainSeq, &seg.PrevChainHash, &seg.ChainHash, &started, &devTime, &dur, &seg.Keyframe)
	seg.StartedAt, seg.DeviceTime = fromMicros(started), fromNullMicros(devTime)
	seg.Duration = time.Duration(dur) * time.Microsecond
	return seg, err
}

// AppendSegment records a stored object of a recording as the next link of
// its device's chain: it fills in ChainSeq, PrevChainHash and ChainHash from
// the device's chain head, in one transaction with moving the head, and
// returns the segment as recorded. Times are kept to the microsecond, and
// the hash is computed over the stored values.
//
// If the recording already has a segment with that seq, nothing changes and
// the recorded segment is returned with ErrExists, so an upload retried
// after a crash can check that it is the same object.
//
// A media or init segment of a recording with fence f is refused with
// ErrStaleFence, nothing written, when the device has a recording with a
// fence above f (the smallest such f2) and the segment started at or after
// f2 read as Unix µs: its node recorded it after another node took the
// device. Segments that started before f2 (a dead node's spool uploaded
// late) are accepted. Recordings from before clusters have fence 0 and
// follow the same rule. Tombstones and originals (an uploaded file, recorded
// in the past, not live) are not fenced.
func (c *Catalog) AppendSegment(ctx context.Context, s evidence.Segment) (evidence.Segment, error) {
	switch s.Kind {
	case evidence.KindInit, evidence.KindMedia, evidence.KindTombstone, evidence.KindOriginal:
	default:
		return s, fmt.Errorf("catalog: segment kind %q", s.Kind)
	}
	what := fmt.Sprintf("segment %s/%d", s.RecordingID, s.Seq)
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return s, translate(err, what)
	}
	defer tx.Rollback()
	s, err = c.appendSegment(ctx, tx, s)
	if err != nil {
		return s, err
	}
	return s, translate(tx.Commit(), what)
}

// appendSegment links a segment into its device's chain within tx, with
// its segment.stored event (AppendSegment).
func (c *Catalog) appendSegment(ctx context.Context, tx *sql.Tx, s evidence.Segment) (evidence.Segment, error) {
	s.StartedAt = s.StartedAt.Truncate(time.Microsecond).UTC()
	if !s.DeviceTime.IsZero() {
		s.DeviceTime = s.DeviceTime.Truncate(time.Microsecond).UTC()
	}
	s.Duration = s.Duration.Truncate(time.Microsecond)
	what := fmt.Sprintf("segment %s/%d", s.RecordingID, s.Seq)
	lock := ""
	if c.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	var seq, fence int64
	var head, recDevice string
	err := tx.QueryRowContext(ctx, c.q(`SELECT d.chain_seq, d.chain_head, r.device_id, r.fence FROM recordings r
		JOIN devices d ON d.id = r.device_id WHERE r.id = $1`+lock), s.RecordingID).Scan(&seq, &head, &recDevice, &fence)
	if err != nil {
		return s, translate(err, "recording "+s.RecordingID)
	}
	if s.DeviceID == "" {
		s.DeviceID = recDevice
	}
	if s.DeviceID != recDevice {
		return s, fmt.Errorf("catalog: %s belongs to device %s, not %s", what, recDevice, s.DeviceID)
	}
	existing, err := scanSegment(tx.QueryRowContext(ctx, c.q(`SELECT `+segmentCols+` FROM segments WHERE recording_id = $1 AND seq = $2`), s.RecordingID, s.Seq))
	if err == nil {
		return existing, fmt.Errorf("%w: %s", ErrExists, what)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return s, translate(err, what)
	}
	// Fencing: a segment recorded at or after a newer grant of the device
	// (the smallest fence above this recording's) was recorded after
	// another node took the device, and would fork its timeline. The device
	// row is locked, and CreateRecording takes it too, so a newer recording
	// is either on record here or created after this link. A tombstone is
	// not recorded media: retention links it whenever it runs. An original
	// was recorded on the device, not live through a node.
	if s.Kind != evidence.KindTombstone && s.Kind != evidence.KindOriginal {
		var newer sql.NullInt64
		if err := tx.QueryRowContext(ctx, c.q(`SELECT MIN(fence) FROM recordings WHERE device_id = $1 AND fence > $2`),
			recDevice, fence).Scan(&newer); err != nil {
			return s, translate(err, what)
		}
		if newer.Valid && micros(s.StartedAt) >= newer.Int64 {
			return s, fmt.Errorf("%w: %s (fence %d) started at %s, after device %s was granted again at %s (fence %d)",
				ErrStaleFence, what, fence, s.StartedAt.Format(time.RFC3339Nano), recDevice,
				fromMicros(newer.Int64).Format(time.RFC3339Nano), newer.Int64)
		}
	}
	if head == "" {
		head = evidence.GenesisHash
	}
	s.ChainSeq, s.PrevChainHash = seq+1, head
	s.ChainHash = evidence.ChainHash(s.Link())
	_, err = tx.ExecContext(ctx, c.q(`INSERT INTO segments (`+segmentCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`),
		s.RecordingID, s.DeviceID, s.Seq, string(s.Kind), s.Key, s.Size, s.SHA256, s.ChainSeq, s.PrevChainHash, s.ChainHash,
		micros(s.StartedAt), nullMicros(s.DeviceTime), s.Duration.Microseconds(), s.Keyframe)
	if err != nil {
		return s, translate(err, what)
	}
	// The recording's row is locked above too: its count is kept here so
	// that reads never count segments. On PostgreSQL both rows move in one
	// statement, so that keeping the count costs no round trip.
	counted := 1
	if s.Kind == evidence.KindTombstone {
		counted = 0
	}
	if c.dialect == Postgres {
		_, err = tx.ExecContext(ctx, `WITH head AS (UPDATE devices SET chain_seq = $1, chain_head = $2 WHERE id = $3)
			UPDATE recordings SET segment_count = segment_count + $4 WHERE id = $5`,
			s.ChainSeq, s.ChainHash, s.DeviceID, counted, s.RecordingID)
	} else if _, err = tx.ExecContext(ctx, c.q(`UPDATE devices SET chain_seq = $1, chain_head = $2 WHERE id = $3`),
		s.ChainSeq, s.ChainHash, s.DeviceID); err == nil {
		_, err = tx.ExecContext(ctx, c.q(`UPDATE recordings SET segment_count = segment_count + $1 WHERE id = $2`), counted, s.RecordingID)
	}
	if err != nil {
		return s, translate(err, what)
	}
	if err := c.emit(ctx, tx, events.SegmentStored, s.DeviceID, "", time.Time{}, segmentEvent(s)); err != nil {
		return s, err
	}
	return s, nil
}

// Segments lists a recording's segments by sequence number.
func (c *Catalog) Segments(ctx context.Context, recordingID string) ([]evidence.Segment, error) {
	return c.segments(ctx, `WHERE recording_id = $1 ORDER BY seq`, recordingID)
}

// ChainLinks lists a device's chain links with chain_seq in [from, to], in
// order; to <= 0 means to the head.
func (c *Catalog) ChainLinks(ctx context.Context, deviceID string, from, to int64) ([]evidence.Segment, error) {
	if to <= 0 {
		to = 1 << 62
	}
	return c.segments(ctx, `WHERE device_id = $1 AND chain_seq >= $2 AND chain_seq <= $3 ORDER BY chain_seq`, deviceID, from, to)
}

// ChainHead returns a device's chain head: the number and hash of its last
// link (0 and GenesisHash for a device with none).
func (c *Catalog) ChainHead(ctx context.Context, deviceID string) (int64, string, error) {
	var seq int64
	var head string
	err := c.queryRow(ctx, `SELECT chain_seq, chain_head FROM devices WHERE id = $1`, deviceID).Scan(&seq, &head)
	if head == "" {
		head = evidence.GenesisHash
	}
	return seq, head, translate(err, "device "+deviceID)
}

func (c *Catalog) segments(ctx context.Context, where string, args ...any) ([]evidence.Segment, error) {
	rows, err := c.query(ctx, `SELECT `+segmentCols+` FROM segments `+where, args...)
	if err != nil {
		return nil, translate(err, "segments")
	}
	defer rows.Close()
	out := []evidence.Segment{}
	for rows.Next() {
		s, err := scanSegment(rows)
		if err != nil {
			return nil, translate(err, "segments")
		}
		out = append(out, s)
	}
	return out, translate(rows.Err(), "segments")
}

// AddGap records an explicit hole in a recording.
func (c *Catalog) AddGap(ctx context.Context, g evidence.Gap) error {
	_, err := c.exec(ctx, `INSERT INTO gaps (recording_id, kind, start_us, end_us, track, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		g.RecordingID, string(g.Kind), micros(g.Start), nullMicros(g.End), g.Track, g.Detail)
	return translate(err, "gap of "+g.RecordingID)
}

// Gaps lists a recording's gaps by start time.
func (c *Catalog) Gaps(ctx context.Context, recordingID string) ([]evidence.Gap, error) {
	rows, err := c.query(ctx, `SELECT recording_id, kind, start_us, end_us, track, detail FROM gaps
		WHERE recording_id = $1 ORDER BY start_us, kind`, recordingID)
	if err != nil {
		return nil, translate(err, "gaps")
	}
	defer rows.Close()
	out := []evidence.Gap{}
	for rows.Next() {
		var g evidence.Gap
		var start int64
		var end sql.NullInt64
		if err := rows.Scan(&g.RecordingID, &g.Kind, &start, &end, &g.Track, &g.Detail); err != nil {
			return nil, translate(err, "gaps")
		}
		g.Start, g.End = fromMicros(start), fromNullMicros(end)
		out = append(out, g)
	}
	return out, translate(rows.Err(), "gaps")
}

// MarkDeleted records that retention deleted a recording's media.
func (c *Catalog) MarkDeleted(ctx context.Context, id string, at time.Time) error {
	_, err := c.exec(ctx, `UPDATE recordings SET deleted_us = $1 WHERE id = $2 AND deleted_us IS NULL`, micros(at), id)
	return translate(err, "recording "+id)
}
