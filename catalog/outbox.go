package catalog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
)

// The outbox: events for other systems (a supervising platform), written in
// the same transaction as the change they tell of, so that an event exists
// if and only if its change committed. Package outbox relays them.
//
// Three orders are involved. pos is the order rows were inserted; on
// PostgreSQL a transaction takes its pos before it commits, so a row with a
// smaller pos can become visible after one with a larger pos. seq is the
// delivery order: SequenceOutbox (run by one relay at a time, serialised on
// outbox_head in any case) gives the next seq numbers to the committed rows
// that have none, by pos. An event that happened after another one committed
// (a causal successor) always has a larger pos, and is visible only if its
// predecessor is, so it gets a larger seq: per device (and per case), seq
// follows the order of the catalog's changes. Consumers (the Redis stream,
// each webhook) read by seq, each with a cursor in outbox_cursors, and
// never miss a row: seq is given only to committed rows, always above the
// last one given.

// OutboxEvent is one event for other systems.
type OutboxEvent struct {
	// Seq is the event's place in the delivery order, 0 until the relay
	// gives it one. Dense: a gap means pruned events.
	Seq int64
	// ID is unique and stable (a ULID: 26 characters, sortable by the time
	// it was written): receivers de-duplicate by it.
	ID         string
	Kind       events.Kind
	DeviceID   string // empty for case events
	CaseID     string // the case of case events
	OccurredAt time.Time
	Data       json.RawMessage // the kind's fields (docs/architecture.md)
	CreatedAt  time.Time       // when the catalog wrote it
}

// OrderKey groups the events that are delivered in order: a device's, or a
// case's for events about a case.
func (e OutboxEvent) OrderKey() string {
	if e.DeviceID != "" {
		return "device:" + e.DeviceID
	}
	return "case:" + e.CaseID
}

// eventJSON is an event as other systems get it (webhook body, stream
// payload, the dead-letter API).
type eventJSON struct {
	ID         string          `json:"id"`
	Seq        int64           `json:"seq"`
	Kind       events.Kind     `json:"kind"`
	Device     string          `json:"device"`
	Case       string          `json:"case"`
	OccurredAt time.Time       `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// MarshalJSON gives the event as other systems get it.
func (e OutboxEvent) MarshalJSON() ([]byte, error) {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return json.Marshal(eventJSON{ID: e.ID, Seq: e.Seq, Kind: e.Kind, Device: e.DeviceID, Case: e.CaseID,
		OccurredAt: e.OccurredAt.UTC(), Data: data})
}

// emit writes an event into the outbox within tx, the transaction of the
// change it tells of.
func (c *Catalog) emit(ctx context.Context, tx *sql.Tx, kind events.Kind, device, caseID string, at time.Time, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("catalog: event %s: %w", kind, err)
	}
	now := time.Now()
	if at.IsZero() {
		at = now
	}
	_, err = tx.ExecContext(ctx, c.q(`INSERT INTO outbox (id, kind, device_id, case_id, occurred_us, payload, created_us)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`), NewEventID(now), string(kind), device, caseID, micros(at), string(b), micros(now))
	return translate(err, "outbox event "+string(kind))
}

// crockford is the ULID alphabet.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewEventID makes a ULID: 48 bits of milliseconds and 80 random bits, as
// 26 characters of Crockford base32. IDs of different milliseconds sort by
// time.
func NewEventID(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	rand.Read(b[6:])
	out := make([]byte, 26)
	for i := range out {
		// 26 digits of 5 bits are 130 bits: the first digit has 2 leading zeros.
		v := 0
		for j := 0; j < 5; j++ {
			pos := i*5 - 2 + j
			v <<= 1
			if pos >= 0 {
				v |= int(b[pos/8]>>(7-pos%8)) & 1
			}
		}
		out[i] = crockford[v]
	}
	return string(out)
}

const outboxCols = `seq, id, kind, device_id, case_id, occurred_us, payload, created_us`

func scanOutbox(s scanner) (OutboxEvent, error) {
	var e OutboxEvent
	var seq sql.NullInt64
	var kind, payload string
	var occurred, created int64
	err := s.Scan(&seq, &e.ID, &kind, &e.DeviceID, &e.CaseID, &occurred, &payload, &created)
	e.Seq, e.Kind, e.Data = seq.Int64, events.Kind(kind), json.RawMessage(payload)
	e.OccurredAt, e.CreatedAt = fromMicros(occurred), fromMicros(created)
	return e, err
}

// SequenceOutbox gives the next committed events that have no place in the
// delivery order yet their places (seq), in the order they were written, at
// most limit of them, and reports how many. Concurrent callers wait for each
// other on the head row, so it is safe anywhere; one relay calls it.
func (c *Catalog) SequenceOutbox(ctx context.Context, limit int, now time.Time) (int, error) {
	if limit <= 0 {
		limit = 500
	}
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, translate(err, "outbox")
	}
	defer tx.Rollback()
	var head int64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM outbox_head WHERE id = 1`+c.forUpdate()).Scan(&head); err != nil {
		return 0, translate(err, "outbox head")
	}
	res, err := tx.ExecContext(ctx, c.q(`UPDATE outbox SET seq = $1 + p.rn, sequenced_us = $2
		FROM (SELECT pos, ROW_NUMBER() OVER (ORDER BY pos) AS rn FROM outbox WHERE seq IS NULL ORDER BY pos LIMIT $3) AS p
		WHERE outbox.pos = p.pos`), head, micros(now), limit)
	if err != nil {
		return 0, translate(err, "outbox")
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return 0, translate(err, "outbox")
	}
	if _, err := tx.ExecContext(ctx, c.q(`UPDATE outbox_head SET seq = $1 WHERE id = 1`), head+n); err != nil {
		return 0, translate(err, "outbox head")
	}
	return int(n), translate(tx.Commit(), "outbox")
}

// OutboxEvents lists the events after seq in delivery order, at most limit
// (default 100, at most 10000).
func (c *Catalog) OutboxEvents(ctx context.Context, after int64, limit int) ([]OutboxEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := c.query(ctx, `SELECT `+outboxCols+` FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2`, after, min(limit, 10000))
	if err != nil {
		return nil, translate(err, "outbox")
	}
	defer rows.Close()
	out := []OutboxEvent{}
	for rows.Next() {
		e, err := scanOutbox(rows)
		if err != nil {
			return nil, translate(err, "outbox")
		}
		out = append(out, e)
	}
	return out, translate(rows.Err(), "outbox")
}

// OutboxEvent returns one event by id, sequenced or not.
func (c *Catalog) OutboxEvent(ctx context.Context, id string) (OutboxEvent, error) {
	e, err := scanOutbox(c.queryRow(ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = $1`, id))
	return e, translate(err, "event "+id)
}

// OutboxStats says where the outbox stands: the last seq given, and how
// many written events wait for one, the oldest written when.
type OutboxStats struct {
	Head          int64
	Unsequenced   int64
	OldestWaiting time.Time // zero when none waits
}

// OutboxStats reports the outbox's head and what waits for the relay.
func (c *Catalog) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var s OutboxStats
	var oldest sql.NullInt64
	if err := c.queryRow(ctx, `SELECT seq FROM outbox_head WHERE id = 1`).Scan(&s.Head); err != nil {
		return s, translate(err, "outbox head")
	}
	if err := c.queryRow(ctx, `SELECT COUNT(*), MIN(created_us) FROM outbox WHERE seq IS NULL`).Scan(&s.Unsequenced, &oldest); err != nil {
		return s, translate(err, "outbox")
	}
	s.OldestWaiting = fromNullMicros(oldest)
	return s, nil
}

// OutboxCursor returns how far the consumer name has got (every event with
// seq up to it is done), creating the cursor at start when it has none.
func (c *Catalog) OutboxCursor(ctx context.Context, name string, start int64) (int64, error) {
	if _, err := c.exec(ctx, `INSERT INTO outbox_cursors (name, seq, updated_us) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		name, start, micros(time.Now())); err != nil {
		return 0, translate(err, "outbox cursor "+name)
	}
	var seq int64
	err := c.queryRow(ctx, `SELECT seq FROM outbox_cursors WHERE name = $1`, name).Scan(&seq)
	return seq, translate(err, "outbox cursor "+name)
}

// AdvanceOutboxCursor moves the consumer name's cursor forward to seq; a
// cursor already there or beyond stays (a runner that lost its lease cannot
// move it back).
func (c *Catalog) AdvanceOutboxCursor(ctx context.Context, name string, seq int64) error {
	_, err := c.exec(ctx, `UPDATE outbox_cursors SET seq = $1, updated_us = $2 WHERE name = $3 AND seq < $1`,
		seq, micros(time.Now()), name)
	return translate(err, "outbox cursor "+name)
}

// PruneOutbox deletes sequenced events written before before, the oldest
// first, at most limit of them (default 1000: a short hold of the write
// lock, which ingest shares), and reports how many. Events without a seq
// stay whatever their age: nobody has had them yet.
func (c *Catalog) PruneOutbox(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		limit = 1000
	}
	res, err := c.exec(ctx, `DELETE FROM outbox WHERE pos IN (SELECT pos FROM outbox WHERE seq IS NOT NULL AND created_us < $1
		ORDER BY created_us LIMIT $2)`, micros(before), limit)
	if err != nil {
		return 0, translate(err, "outbox")
	}
	return res.RowsAffected()
}

// Dead-letter states.
const (
	DeadLetterDead      = "dead"      // given up on
	DeadLetterQueued    = "queued"    // an admin asked for another try
	DeadLetterDelivered = "delivered" // delivered after being queued again
)

// DeadLetter is an event a webhook gave up on.
type DeadLetter struct {
	ID           int64
	Webhook      string // the webhook's id (package outbox)
	URL          string // its URL without credentials or query
	Event        OutboxEvent
	Attempts     int
	FirstAttempt time.Time
	LastAttempt  time.Time
	LastError    string
	DeadAt       time.Time
	State        string
	RequeuedBy   string
	RequeuedAt   time.Time
	DeliveredAt  time.Time
}

const deadLetterCols = `id, webhook, url, seq, event_id, kind, device_id, case_id, occurred_us, payload, created_us,
	attempts, first_attempt_us, last_attempt_us, last_error, dead_us, state, requeued_by, requeued_us, delivered_us`

func scanDeadLetter(s scanner) (DeadLetter, error) {
	var d DeadLetter
	var kind, payload string
	var occurred, created, first, last, dead int64
	var requeued, delivered sql.NullInt64
	err := s.Scan(&d.ID, &d.Webhook, &d.URL, &d.Event.Seq, &d.Event.ID, &kind, &d.Event.DeviceID, &d.Event.CaseID, &occurred,
		&payload, &created, &d.Attempts, &first, &last, &d.LastError, &dead, &d.State, &d.RequeuedBy, &requeued, &delivered)
	d.Event.Kind, d.Event.Data = events.Kind(kind), json.RawMessage(payload)
	d.Event.OccurredAt, d.Event.CreatedAt = fromMicros(occurred), fromMicros(created)
	d.FirstAttempt, d.LastAttempt, d.DeadAt = fromMicros(first), fromMicros(last), fromMicros(dead)
	d.RequeuedAt, d.DeliveredAt = fromNullMicros(requeued), fromNullMicros(delivered)
	return d, err
}

// AddDeadLetter files an event a webhook gave up on (state dead) and
// returns it with its id. The same event given up on again by the same
// webhook (a runner that took over tried it anew) updates the one entry,
// unless that entry was delivered since.
func (c *Catalog) AddDeadLetter(ctx context.Context, d DeadLetter) (DeadLetter, error) {
	e := d.Event
	what := "dead letter of " + e.ID
	if d.Webhook == "" || e.ID == "" {
		return d, fmt.Errorf("catalog: a dead letter needs a webhook and an event")
	}
	if d.DeadAt.IsZero() {
		d.DeadAt = time.Now()
	}
	if _, err := c.exec(ctx, `INSERT INTO webhook_dead_letters (webhook, url, seq, event_id, kind, device_id, case_id, occurred_us,
		payload, created_us, attempts, first_attempt_us, last_attempt_us, last_error, dead_us, state)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'dead')
		ON CONFLICT (webhook, event_id) DO UPDATE SET attempts = webhook_dead_letters.attempts + excluded.attempts,
			last_attempt_us = excluded.last_attempt_us, last_error = excluded.last_error, dead_us = excluded.dead_us, state = 'dead'
		WHERE webhook_dead_letters.state <> 'delivered'`,
		d.Webhook, d.URL, e.Seq, e.ID, string(e.Kind), e.DeviceID, e.CaseID, micros(e.OccurredAt), string(e.Data), micros(e.CreatedAt),
		d.Attempts, micros(d.FirstAttempt), micros(d.LastAttempt), d.LastError, micros(d.DeadAt)); err != nil {
		return d, translate(err, what)
	}
	out, err := scanDeadLetter(c.queryRow(ctx, `SELECT `+deadLetterCols+` FROM webhook_dead_letters WHERE webhook = $1 AND event_id = $2`, d.Webhook, e.ID))
	return out, translate(err, what)
}

// DeadLetter returns one dead letter.
func (c *Catalog) DeadLetter(ctx context.Context, id int64) (DeadLetter, error) {
	d, err := scanDeadLetter(c.queryRow(ctx, `SELECT `+deadLetterCols+` FROM webhook_dead_letters WHERE id = $1`, id))
	return d, translate(err, fmt.Sprintf("dead letter %d", id))
}

// DeadLetterFilter selects dead letters. Zero fields do not filter.
type DeadLetterFilter struct {
	Webhook string
	State   string
	Before  int64 // ids below this (paging, newest first)
	Limit   int   // default 100, at most 1000
}

// DeadLetters lists dead letters, newest first.
func (c *Catalog) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	q := `SELECT ` + deadLetterCols + ` FROM webhook_dead_letters WHERE ($1 = '' OR webhook = $1) AND ($2 = '' OR state = $2)
		AND ($3 = 0 OR id < $3) ORDER BY id DESC LIMIT $4`
	if f.Limit <= 0 {
		f.Limit = 100
	}
	return c.deadLetters(ctx, q, f.Webhook, f.State, f.Before, min(f.Limit, 1000))
}

// QueuedDeadLetters lists a webhook's dead letters queued again, oldest
// first.
func (c *Catalog) QueuedDeadLetters(ctx context.Context, webhook string, limit int) ([]DeadLetter, error) {
	return c.deadLetters(ctx, `SELECT `+deadLetterCols+` FROM webhook_dead_letters WHERE webhook = $1 AND state = 'queued'
		ORDER BY requeued_us, id LIMIT $2`, webhook, max(limit, 1))
}

func (c *Catalog) deadLetters(ctx context.Context, q string, args ...any) ([]DeadLetter, error) {
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "dead letters")
	}
	defer rows.Close()
	out := []DeadLetter{}
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return nil, translate(err, "dead letters")
		}
		out = append(out, d)
	}
	return out, translate(rows.Err(), "dead letters")
}

// RequeueDeadLetter queues a dead letter for another try, noting who asked.
// One that is not dead (queued already, or delivered) is ErrConflict.
func (c *Catalog) RequeueDeadLetter(ctx context.Context, id int64, by string, at time.Time) (DeadLetter, error) {
	res, err := c.exec(ctx, `UPDATE webhook_dead_letters SET state = 'queued', requeued_by = $1, requeued_us = $2 WHERE id = $3 AND state = 'dead'`,
		by, micros(at), id)
	if err != nil {
		return DeadLetter{}, translate(err, fmt.Sprintf("dead letter %d", id))
	}
	n, _ := res.RowsAffected()
	d, err := c.DeadLetter(ctx, id)
	if err != nil {
		return d, err
	}
	if n == 0 {
		return d, fmt.Errorf("%w: dead letter %d is %s", ErrConflict, id, d.State)
	}
	return d, nil
}

// SettleDeadLetter records the outcome of another try of a queued dead
// letter: delivered, or (err not empty) dead again with the attempts added.
func (c *Catalog) SettleDeadLetter(ctx context.Context, id int64, attempts int, at time.Time, lastError string) error {
	var res sql.Result
	var err error
	if lastError == "" {
		res, err = c.exec(ctx, `UPDATE webhook_dead_letters SET state = 'delivered', delivered_us = $1,
			attempts = attempts + $2, last_attempt_us = $1 WHERE id = $3 AND state = 'queued'`, micros(at), attempts, id)
	} else {
		res, err = c.exec(ctx, `UPDATE webhook_dead_letters SET state = 'dead', dead_us = $1, attempts = attempts + $2,
			last_attempt_us = $1, last_error = $3 WHERE id = $4 AND state = 'queued'`, micros(at), attempts, lastError, id)
	}
	if err != nil {
		return translate(err, fmt.Sprintf("dead letter %d", id))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: dead letter %d is not queued", ErrConflict, id)
	}
	return nil
}

// What each kind of event carries (its "data"). Times are UTC; ids are the
// catalog's. Nothing secret: no credentials, no addresses of viewers.

type segmentData struct {
	RecordingID string               `json:"recording_id"`
	DeviceID    string               `json:"device_id"`
	Seq         int64                `json:"seq"`
	Kind        evidence.SegmentKind `json:"kind"`
	ObjectKey   string               `json:"object_key"`
	Size        int64                `json:"size"`
	SHA256      string               `json:"sha256"`
	ChainSeq    int64                `json:"chain_seq"`
	ChainHash   string               `json:"chain_hash"`
	StartedAt   time.Time            `json:"started_at"`
	DurationUS  int64                `json:"duration_us"`
	Keyframe    bool                 `json:"keyframe"`
}

func segmentEvent(s evidence.Segment) segmentData {
	return segmentData{RecordingID: s.RecordingID, DeviceID: s.DeviceID, Seq: s.Seq, Kind: s.Kind, ObjectKey: s.Key, Size: s.Size,
		SHA256: s.SHA256, ChainSeq: s.ChainSeq, ChainHash: s.ChainHash, StartedAt: s.StartedAt.UTC(),
		DurationUS: s.Duration.Microseconds(), Keyframe: s.Keyframe}
}

type recordingData struct {
	RecordingID string                  `json:"recording_id"`
	DeviceID    string                  `json:"device_id"`
	OfficerID   string                  `json:"officer_id"`
	CaseID      string                  `json:"case_id"`
	State       evidence.RecordingState `json:"state"`
	Kind        evidence.RecordingKind  `json:"kind"` // stream or upload
	StartedAt   time.Time               `json:"started_at"`
	EndedAt     *time.Time              `json:"ended_at,omitempty"`
	EndReason   string                  `json:"end_reason,omitempty"`
	Codecs      []string                `json:"codecs,omitempty"`
	Segments    *int                    `json:"segments,omitempty"`
	ManifestKey string                  `json:"manifest_key,omitempty"`
}

func recordingEvent(r evidence.Recording) recordingData {
	kind := r.Kind
	if kind == "" {
		kind = evidence.KindStream
	}
	return recordingData{RecordingID: r.ID, DeviceID: r.DeviceID, OfficerID: r.OfficerID, CaseID: r.CaseID, State: r.State,
		Kind: kind, StartedAt: r.StartedAt.UTC(), EndedAt: optTime(r.EndedAt), EndReason: r.EndReason, Codecs: r.Codecs}
}

type deviceData struct {
	DeviceID    string                  `json:"device_id"`
	RecordingID string                  `json:"recording_id"`
	State       evidence.RecordingState `json:"state,omitempty"`  // offline: how its recording ended
	Reason      string                  `json:"reason,omitempty"` // offline: why
}

type caseStepData struct {
	CaseID string             `json:"case_id"`
	From   evidence.CaseState `json:"from"` // empty when the case was filed
	To     evidence.CaseState `json:"to"`
	By     string             `json:"by"`
	At     time.Time          `json:"at"`
}

type linkData struct {
	LinkID      string     `json:"link_id"`
	CaseID      string     `json:"case_id"`
	RecordingID string     `json:"recording_id"`
	From        *time.Time `json:"from,omitempty"` // the window linked; absent: the whole recording
	To          *time.Time `json:"to,omitempty"`
	By          string     `json:"by"`
	At          time.Time  `json:"at"`
	Withdrawn   bool       `json:"withdrawn,omitempty"` // unlinked: taken back because its legal hold failed
}

type liveViewData struct {
	ViewID      string     `json:"view_id"`
	DeviceID    string     `json:"device_id"`
	RecordingID string     `json:"recording_id"`
	User        string     `json:"user"`
	Video       string     `json:"video,omitempty"`
	Audio       string     `json:"audio,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	EndReason   string     `json:"end_reason,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
