package catalog

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// UploadState is where an upload (one file a dock sends) stands.
type UploadState string

const (
	// UploadReceiving: bytes are coming in (or may again: a refused or
	// interrupted upload resumes here).
	UploadReceiving UploadState = "receiving"
	// UploadFinishing: every byte is in; the file is being hashed and
	// stored.
	UploadFinishing UploadState = "finishing"
	// UploadStored: the file is a recording (RecordingID); final.
	UploadStored UploadState = "stored"
	// UploadRefused: the file was refused (Reason: a hash mismatch...); the
	// partial upload is kept until the dock deletes it or it is swept.
	UploadRefused UploadState = "refused"
	// UploadAbandoned: no byte came for too long; its partial file is gone.
	UploadAbandoned UploadState = "abandoned"
)

// Valid reports whether s is a known state.
func (s UploadState) Valid() bool {
	switch s {
	case UploadReceiving, UploadFinishing, UploadStored, UploadRefused, UploadAbandoned:
		return true
	}
	return false
}

// UploadRecord is an upload as the catalog keeps it.
type UploadRecord struct {
	evidence.Upload
	State          UploadState
	Reason         string // why it was refused or abandoned
	ReceivedSHA256 string // what the server hashed, once it has
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// UploadFilter selects uploads. Zero fields do not filter.
type UploadFilter struct {
	Dock     string
	DeviceID string
	// Unit: uploads of devices whose officer (the device's) belongs to the
	// unit, for supervisors.
	Unit  string
	State UploadState
	Limit int // default 100, at most 1000
}

const uploadCols = `u.id, u.dock, u.device_id, u.officer_id, u.file_name, u.size, u.sha256, u.received_sha256,
	u.important, u.started_us, u.ended_us, u.time_source, u.gps, u.state, u.reason, u.recording_id, u.remote_addr,
	u.created_us, u.updated_us`

func scanUpload(s scanner) (UploadRecord, error) {
	var u UploadRecord
	var started, ended sql.NullInt64
	var rec sql.NullString
	var gps string
	var created, updated int64
	err := s.Scan(&u.ID, &u.Dock, &u.DeviceID, &u.OfficerID, &u.FileName, &u.Size, &u.SHA256, &u.ReceivedSHA256,
		&u.Important, &started, &ended, &u.TimeSource, &gps, &u.State, &u.Reason, &rec, &u.RemoteAddr,
		&created, &updated)
	if err != nil {
		return u, err
	}
	u.StartedAt, u.EndedAt = fromNullMicros(started), fromNullMicros(ended)
	u.RecordingID = rec.String
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	if gps != "" {
		if err := json.Unmarshal([]byte(gps), &u.GPS); err != nil {
			return u, fmt.Errorf("upload %s: gps: %w", u.ID, err)
		}
	}
	return u, nil
}

// validSHA256 says whether h is a SHA-256 in lower-case hex.
func validSHA256(h string) bool {
	if len(h) != 64 || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// CreateUpload records a new upload, receiving. A known id is ErrExists;
// an unknown device ErrNotFound. RecordingID is ignored: StoreUpload sets it.
func (c *Catalog) CreateUpload(ctx context.Context, u evidence.Upload) error {
	if u.ID == "" || u.Dock == "" || u.DeviceID == "" {
		return fmt.Errorf("catalog: an upload needs an id, a dock and a device")
	}
	if err := evidence.ValidateFileName(u.FileName); err != nil {
		return err
	}
	if u.Size < 0 || !validSHA256(u.SHA256) {
		return fmt.Errorf("catalog: upload %s: size %d, sha256 %q (want 64 lower-case hex digits)", u.ID, u.Size, u.SHA256)
	}
	var gps []byte
	if len(u.GPS) > 0 {
		var err error
		if gps, err = json.Marshal(u.GPS); err != nil {
			return fmt.Errorf("catalog: upload %s: gps: %w", u.ID, err)
		}
	}
	now := micros(time.Now())
	_, err := c.exec(ctx, `INSERT INTO uploads (id, dock, device_id, officer_id, file_name, size, sha256, important,
		started_us, ended_us, time_source, gps, state, remote_addr, created_us, updated_us)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)`,
		u.ID, u.Dock, u.DeviceID, u.OfficerID, u.FileName, u.Size, u.SHA256, u.Important,
		nullMicros(u.StartedAt), nullMicros(u.EndedAt), string(u.TimeSource), string(gps), string(UploadReceiving),
		u.RemoteAddr, now)
	return translate(err, "upload "+u.ID)
}

// Upload returns one upload (ErrNotFound).
func (c *Catalog) Upload(ctx context.Context, id string) (UploadRecord, error) {
	u, err := scanUpload(c.queryRow(ctx, `SELECT `+uploadCols+` FROM uploads u WHERE u.id = $1`, id))
	return u, translate(err, "upload "+id)
}

// StoredUpload returns the stored upload of a file (by its SHA-256) of a
// device: the one recording those bytes are (ErrNotFound).
func (c *Catalog) StoredUpload(ctx context.Context, deviceID, sha256 string) (UploadRecord, error) {
	u, err := scanUpload(c.queryRow(ctx, `SELECT `+uploadCols+` FROM uploads u
		WHERE u.device_id = $1 AND u.sha256 = $2 AND u.state = 'stored'`, deviceID, sha256))
	return u, translate(err, "stored upload of "+deviceID+" "+sha256)
}

// Uploads lists uploads, newest first.
func (c *Catalog) Uploads(ctx context.Context, f UploadFilter) ([]UploadRecord, error) {
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	var where []string
	if f.Dock != "" {
		where = append(where, "u.dock = "+arg(f.Dock))
	}
	if f.DeviceID != "" {
		where = append(where, "u.device_id = "+arg(f.DeviceID))
	}
	if f.Unit != "" {
		where = append(where, `u.device_id IN (SELECT d.id FROM devices d JOIN users o ON o.id = d.officer_id WHERE o.unit = `+arg(f.Unit)+`)`)
	}
	if f.State != "" {
		where = append(where, "u.state = "+arg(string(f.State)))
	}
	q := `SELECT ` + uploadCols + ` FROM uploads u`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := c.query(ctx, q+" ORDER BY u.created_us DESC, u.id DESC LIMIT "+arg(f.Limit), args...)
	if err != nil {
		return nil, translate(err, "uploads")
	}
	defer rows.Close()
	out := []UploadRecord{}
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, translate(err, "uploads")
		}
		out = append(out, u)
	}
	return out, translate(rows.Err(), "uploads")
}

// SetUploadState moves an upload that is not stored to another state
// (receiving, finishing, refused or abandoned), with a reason (kept as
// given, "" clears it) and, when not "", the SHA-256 the server received.
// Only StoreUpload stores; a stored upload stays stored (ErrConflict).
func (c *Catalog) SetUploadState(ctx context.Context, id string, state UploadState, reason, receivedSHA256 string) error {
	if !state.Valid() || state == UploadStored {
		return fmt.Errorf("catalog: upload %s: cannot be set %q (StoreUpload stores)", id, state)
	}
	if receivedSHA256 != "" && !validSHA256(receivedSHA256) {
		return fmt.Errorf("catalog: upload %s: received sha256 %q", id, receivedSHA256)
	}
	res, err := c.exec(ctx, `UPDATE uploads SET state = $1, reason = $2,
		received_sha256 = CASE WHEN $3 = '' THEN received_sha256 ELSE $3 END, updated_us = $4
		WHERE id = $5 AND state <> 'stored'`, string(state), reason, receivedSHA256, micros(time.Now()), id)
	if err != nil {
		return translate(err, "upload "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := c.Upload(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: upload %s is stored", ErrConflict, id)
	}
	return nil
}

// SetUploadTimes records when an upload's file was recorded and where that
// came from (the file's own header, the dock, or the receive time), as the
// server found it while finishing; a stored upload keeps its times
// (ErrConflict).
func (c *Catalog) SetUploadTimes(ctx context.Context, id string, started, ended time.Time, source evidence.TimeSource) error {
	switch source {
	case evidence.TimeFromFile, evidence.TimeGiven, evidence.TimeReceived:
	default:
		return fmt.Errorf("catalog: upload %s: time source %q", id, source)
	}
	if !ended.IsZero() && ended.Before(started) {
		return fmt.Errorf("catalog: upload %s: ends before it starts", id)
	}
	res, err := c.exec(ctx, `UPDATE uploads SET started_us = $1, ended_us = $2, time_source = $3, updated_us = $4
		WHERE id = $5 AND state <> 'stored'`, nullMicros(started), nullMicros(ended), string(source), micros(time.Now()), id)
	if err != nil {
		return translate(err, "upload "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := c.Upload(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: upload %s is stored", ErrConflict, id)
	}
	return nil
}

// StoreUpload makes an upload a recording, in one transaction: it creates
// rec (kind upload, state complete; StartedAt and EndedAt as given), links
// seg (kind original, seq 1: the file's exact bytes, SHA256 the upload's)
// into the device's chain, and sets the upload stored with the recording's
// id, emitting the events a recording's start and segment emit
// (recording.started, segment.stored; no device.online: it is not live).
// It returns the recording and segment as recorded.
//
// If the device already has a stored upload of the same SHA-256 (this one,
// stored before a crash, or another), nothing is written: it returns that
// upload's recording and segment with an error wrapping ErrExists. An
// unknown upload is ErrNotFound; an abandoned one ErrConflict.
func (c *Catalog) StoreUpload(ctx context.Context, rec evidence.Recording, seg evidence.Segment, uploadID string) (evidence.Recording, evidence.Segment, error) {
	if rec.Kind == "" {
		rec.Kind = evidence.KindUpload
	}
	if rec.State == "" {
		rec.State = evidence.StateComplete
	}
	if seg.Kind == "" {
		seg.Kind = evidence.KindOriginal
	}
	if seg.RecordingID == "" {
		seg.RecordingID = rec.ID
	}
	if seg.DeviceID == "" {
		seg.DeviceID = rec.DeviceID
	}
	rec, err := checkRecording(rec)
	if err != nil {
		return rec, seg, err
	}
	switch {
	case rec.Kind != evidence.KindUpload || rec.State != evidence.StateComplete:
		return rec, seg, fmt.Errorf("catalog: an upload's recording is of kind upload and complete, not %s %s", rec.Kind, rec.State)
	case seg.Kind != evidence.KindOriginal || seg.Seq != 1:
		return rec, seg, fmt.Errorf("catalog: an upload's segment is the original, seq 1, not %s %d", seg.Kind, seg.Seq)
	case seg.RecordingID != rec.ID || seg.DeviceID != rec.DeviceID:
		return rec, seg, fmt.Errorf("catalog: segment of %s/%s stored with recording %s/%s", seg.DeviceID, seg.RecordingID, rec.DeviceID, rec.ID)
	}
	what := "upload " + uploadID
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return rec, seg, translate(err, what)
	}
	defer tx.Rollback()
	// The device row first, as CreateRecording and AppendSegment take it:
	// two stores of one device's files queue here, so the second sees the
	// first's stored upload.
	var one int
	if err := tx.QueryRowContext(ctx, c.q(`SELECT 1 FROM devices WHERE id = $1`+c.forUpdate()), rec.DeviceID).Scan(&one); err != nil {
		return rec, seg, translate(err, "device "+rec.DeviceID)
	}
	u, err := scanUpload(tx.QueryRowContext(ctx, c.q(`SELECT `+uploadCols+` FROM uploads u WHERE u.id = $1`+c.forUpdate()), uploadID))
	if err != nil {
		return rec, seg, translate(err, what)
	}
	if u.DeviceID != rec.DeviceID || u.SHA256 != seg.SHA256 {
		return rec, seg, fmt.Errorf("catalog: %s is of device %s, sha256 %s; not %s, %s", what, u.DeviceID, u.SHA256, rec.DeviceID, seg.SHA256)
	}
	var stored sql.NullString
	err = tx.QueryRowContext(ctx, c.q(`SELECT recording_id FROM uploads WHERE device_id = $1 AND sha256 = $2 AND state = 'stored'`),
		rec.DeviceID, seg.SHA256).Scan(&stored)
	if err == nil {
		r, err := scanRecording(tx.QueryRowContext(ctx, c.q(`SELECT `+recordingCols+` FROM recordings r WHERE r.id = $1`), stored.String))
		if err != nil {
			return rec, seg, translate(err, "recording "+stored.String)
		}
		s, err := scanSegment(tx.QueryRowContext(ctx, c.q(`SELECT `+segmentCols+` FROM segments WHERE recording_id = $1 AND seq = 1`), r.ID))
		if err != nil {
			return r, seg, translate(err, "segment "+r.ID+"/1")
		}
		return r, s, fmt.Errorf("%w: device %s has stored file %s as recording %s", ErrExists, rec.DeviceID, seg.SHA256, r.ID)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return rec, seg, translate(err, what)
	}
	if u.State == UploadAbandoned {
		return rec, seg, fmt.Errorf("%w: %s was abandoned", ErrConflict, what)
	}
	if err := c.createRecording(ctx, tx, rec); err != nil {
		return rec, seg, err
	}
	if seg, err = c.appendSegment(ctx, tx, seg); err != nil {
		return rec, seg, err
	}
	res, err := tx.ExecContext(ctx, c.q(`UPDATE uploads SET state = 'stored', reason = '', recording_id = $1,
		received_sha256 = $2, updated_us = $3 WHERE id = $4 AND state <> 'stored'`), rec.ID, seg.SHA256, micros(time.Now()), uploadID)
	if err != nil {
		return rec, seg, translate(err, what)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return rec, seg, fmt.Errorf("%w: %s changed while it was stored", ErrConflict, what)
	}
	rec, err = scanRecording(tx.QueryRowContext(ctx, c.q(`SELECT `+recordingCols+` FROM recordings r WHERE r.id = $1`), rec.ID))
	if err != nil {
		return rec, seg, translate(err, "recording "+rec.ID)
	}
	return rec, seg, translate(tx.Commit(), what)
}

// The kinds of recording_links.
const linkSameEvent = "same_event"

// LinkSameEvent records that two recordings are of one event (a device's
// live stream and its own file of the same span). Linking again, either
// way round, changes nothing. Unknown recordings are ErrNotFound.
func (c *Catalog) LinkSameEvent(ctx context.Context, a, b string) error {
	if a == b || a == "" || b == "" {
		return fmt.Errorf("catalog: same event: two recordings, not %q and %q", a, b)
	}
	if b < a {
		a, b = b, a
	}
	_, err := c.exec(ctx, `INSERT INTO recording_links (a, b, kind, created_us) VALUES ($1, $2, $3, $4)
		ON CONFLICT (a, b, kind) DO NOTHING`, a, b, linkSameEvent, micros(time.Now()))
	return translate(err, "link of "+a+" and "+b)
}

// SameEvent lists the recordings linked to id as of the same event, by id.
func (c *Catalog) SameEvent(ctx context.Context, id string) ([]string, error) {
	rows, err := c.query(ctx, `SELECT b FROM recording_links WHERE a = $1 AND kind = $2
		UNION SELECT a FROM recording_links WHERE b = $1 AND kind = $2 ORDER BY 1`, id, linkSameEvent)
	if err != nil {
		return nil, translate(err, "same event as "+id)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var other string
		if err := rows.Scan(&other); err != nil {
			return nil, translate(err, "same event as "+id)
		}
		out = append(out, other)
	}
	return out, translate(rows.Err(), "same event as "+id)
}
