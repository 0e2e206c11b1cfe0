package catalog

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// Signer signs custody checkpoints.
type Signer interface {
	ID() string
	Sign(msg []byte) (keyID string, sig []byte)
}

const custodyCols = `seq, at_us, actor, role, remote, action, target_kind, target_id, case_id, detail, outcome, digest, hash`

func scanCustody(s scanner) (evidence.CustodyEvent, error) {
	var e evidence.CustodyEvent
	var at int64
	err := s.Scan(&e.Seq, &at, &e.Actor, &e.Role, &e.Remote, &e.Action, &e.TargetKind, &e.TargetID, &e.CaseID, &e.Detail,
		&e.Outcome, &e.Digest, &e.Hash)
	e.At = fromMicros(at)
	return e, err
}

// AppendCustody adds an event to the ledger and returns it with its number,
// digest and chain hash. Every evidence.CheckpointEvery events it also
// writes a checkpoint signed by signer, in the same transaction.
func (c *Catalog) AppendCustody(ctx context.Context, e evidence.CustodyEvent, signer Signer) (evidence.CustodyEvent, error) {
	if e.Action == "" || e.Actor == "" {
		return e, fmt.Errorf("catalog: a custody event needs an action and an actor")
	}
	if e.Outcome == "" {
		e.Outcome = evidence.OutcomeOK
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return e, translate(err, "custody")
	}
	defer tx.Rollback()
	var head string
	if err := tx.QueryRowContext(ctx, c.q(`SELECT seq, hash FROM custody_head WHERE id = 1`+c.forUpdate())).Scan(&e.Seq, &head); err != nil {
		return e, translate(err, "custody head")
	}
	e.Seq++
	e.Digest = evidence.CustodyDigest(e)
	e.Hash = evidence.CustodyHash(e.Seq, head, e.Digest)
	if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO custody_events (`+custodyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`),
		e.Seq, micros(e.At), e.Actor, e.Role, e.Remote, e.Action, e.TargetKind, e.TargetID, e.CaseID, e.Detail, e.Outcome, e.Digest, e.Hash); err != nil {
		return e, translate(err, "custody event")
	}
	if _, err := tx.ExecContext(ctx, c.q(`UPDATE custody_head SET seq = $1, hash = $2 WHERE id = 1`), e.Seq, e.Hash); err != nil {
		return e, translate(err, "custody head")
	}
	if e.Seq%evidence.CheckpointEvery == 0 {
		if err := c.insertCheckpoint(ctx, tx, e.Seq, e.Hash, signer); err != nil {
			return e, err
		}
	}
	return e, translate(tx.Commit(), "custody event")
}

func (c *Catalog) forUpdate() string {
	if c.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

func (c *Catalog) insertCheckpoint(ctx context.Context, tx *sql.Tx, seq int64, hash string, signer Signer) error {
	cp := evidence.Checkpoint{Seq: seq, Hash: hash, At: time.Now().UTC().Truncate(time.Microsecond)}
	cp.KeyID, cp.Signature = signer.Sign(evidence.CheckpointMessage(cp))
	_, err := tx.ExecContext(ctx, c.q(`INSERT INTO custody_checkpoints (seq, hash, at_us, key_id, signature) VALUES ($1, $2, $3, $4, $5)`),
		cp.Seq, cp.Hash, micros(cp.At), cp.KeyID, base64.StdEncoding.EncodeToString(cp.Signature))
	return translate(err, "custody checkpoint")
}

// CheckpointNow makes sure a signed checkpoint stands at the ledger's head
// (for an excerpt given out now) and returns the head's number.
func (c *Catalog) CheckpointNow(ctx context.Context, signer Signer) (int64, error) {
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, translate(err, "custody")
	}
	defer tx.Rollback()
	var seq int64
	var hash string
	if err := tx.QueryRowContext(ctx, c.q(`SELECT seq, hash FROM custody_head WHERE id = 1`+c.forUpdate())).Scan(&seq, &hash); err != nil {
		return 0, translate(err, "custody head")
	}
	var n int
	if err := tx.QueryRowContext(ctx, c.q(`SELECT COUNT(*) FROM custody_checkpoints WHERE seq = $1`), seq).Scan(&n); err != nil {
		return 0, translate(err, "custody checkpoint")
	}
	if n == 0 {
		if err := c.insertCheckpoint(ctx, tx, seq, hash, signer); err != nil {
			return 0, err
		}
	}
	return seq, translate(tx.Commit(), "custody checkpoint")
}

// CustodyFilter selects ledger events.
type CustodyFilter struct {
	CaseID    string
	TargetIDs []string // events about any of these objects
	// Narrowing what the two above select (or the whole ledger): events by
	// this actor, at or after Since, before Until, up to seq Through.
	Actor        string
	Since, Until time.Time
	Through      int64
	Limit        int // default and most: 100000
	// Keep, when set, keeps only the selected events it returns true for
	// (an excerpt shows the others only as digests).
	Keep func(evidence.CustodyEvent) bool
}

// CustodyEvents lists events in seq order: those of the case, or about one
// of the targets (either matches when both are given), narrowed by actor,
// time and seq.
func (c *Catalog) CustodyEvents(ctx context.Context, f CustodyFilter) ([]evidence.CustodyEvent, error) {
	var which, where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.CaseID != "" {
		which = append(which, "case_id = "+arg(f.CaseID))
	}
	if len(f.TargetIDs) > 0 {
		var in []string
		for _, t := range f.TargetIDs {
			in = append(in, arg(t))
		}
		which = append(which, "target_id IN ("+strings.Join(in, ", ")+")")
	}
	if len(which) > 0 {
		where = append(where, "("+strings.Join(which, " OR ")+")")
	}
	if f.Actor != "" {
		where = append(where, "actor = "+arg(f.Actor))
	}
	if !f.Since.IsZero() {
		where = append(where, "at_us >= "+arg(f.Since.UnixMicro()))
	}
	if !f.Until.IsZero() {
		where = append(where, "at_us < "+arg(f.Until.UnixMicro()))
	}
	if f.Through > 0 {
		where = append(where, "seq <= "+arg(f.Through))
	}
	if f.Limit <= 0 || f.Limit > 100000 {
		f.Limit = 100000
	}
	q := `SELECT ` + custodyCols + ` FROM custody_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq LIMIT " + arg(f.Limit)
	return c.custody(ctx, q, args...)
}

func (c *Catalog) custody(ctx context.Context, q string, args ...any) ([]evidence.CustodyEvent, error) {
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "custody")
	}
	defer rows.Close()
	out := []evidence.CustodyEvent{}
	for rows.Next() {
		e, err := scanCustody(rows)
		if err != nil {
			return nil, translate(err, "custody")
		}
		out = append(out, e)
	}
	return out, translate(rows.Err(), "custody")
}

// CustodyHead is the ledger's last event: its seq and chain hash (0 and
// the genesis hash when it is empty).
func (c *Catalog) CustodyHead(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := c.queryRow(ctx, `SELECT seq, hash FROM custody_head WHERE id = 1`).Scan(&seq, &hash)
	return seq, hash, translate(err, "custody head")
}

// CustodyEvent is event seq, with the ledger's chain hash after it
// (ErrNotFound when there is no such event).
func (c *Catalog) CustodyEvent(ctx context.Context, seq int64) (evidence.CustodyEvent, error) {
	e, err := scanCustody(c.queryRow(ctx, `SELECT `+custodyCols+` FROM custody_events WHERE seq = $1`, seq))
	return e, translate(err, "custody event")
}

// CustodyLinks returns the digests of events from..to (included).
func (c *Catalog) CustodyLinks(ctx context.Context, from, to int64) ([]evidence.CustodyLink, error) {
	rows, err := c.query(ctx, `SELECT seq, digest FROM custody_events WHERE seq >= $1 AND seq <= $2 ORDER BY seq`, from, to)
	if err != nil {
		return nil, translate(err, "custody")
	}
	defer rows.Close()
	var out []evidence.CustodyLink
	for rows.Next() {
		var l evidence.CustodyLink
		if err := rows.Scan(&l.Seq, &l.Digest); err != nil {
			return nil, translate(err, "custody")
		}
		out = append(out, l)
	}
	return out, translate(rows.Err(), "custody")
}

// Checkpoints lists every checkpoint in seq order.
func (c *Catalog) Checkpoints(ctx context.Context) ([]evidence.Checkpoint, error) {
	return c.custodyCheckpoints(ctx, `ORDER BY seq`)
}

func (c *Catalog) custodyCheckpoints(ctx context.Context, where string, args ...any) ([]evidence.Checkpoint, error) {
	rows, err := c.query(ctx, `SELECT seq, hash, at_us, key_id, signature FROM custody_checkpoints `+where, args...)
	if err != nil {
		return nil, translate(err, "custody checkpoints")
	}
	defer rows.Close()
	var out []evidence.Checkpoint
	for rows.Next() {
		var cp evidence.Checkpoint
		var at int64
		var sig string
		if err := rows.Scan(&cp.Seq, &cp.Hash, &at, &cp.KeyID, &sig); err != nil {
			return nil, translate(err, "custody checkpoints")
		}
		cp.At = fromMicros(at)
		cp.Signature, _ = base64.StdEncoding.DecodeString(sig)
		out = append(out, cp)
	}
	return out, translate(rows.Err(), "custody checkpoints")
}

// CustodyExcerpt is the part of the ledger of a case (or of some objects)
// with what is needed to check it offline, ending at a checkpoint made now.
// It holds the checkpoints its events need (see excerptCheckpoints), not
// every checkpoint of the ledger: a city's ledger gains thousands a day.
func (c *Catalog) CustodyExcerpt(ctx context.Context, f CustodyFilter, signer Signer) (evidence.Excerpt, error) {
	if _, err := c.CheckpointNow(ctx, signer); err != nil {
		return evidence.Excerpt{}, err
	}
	events, err := c.CustodyEvents(ctx, f)
	if err != nil {
		return evidence.Excerpt{}, err
	}
	if f.Keep != nil {
		events = slices.DeleteFunc(events, func(e evidence.CustodyEvent) bool { return !f.Keep(e) })
	}
	cps, err := c.excerptCheckpoints(ctx, events)
	if err != nil {
		return evidence.Excerpt{}, err
	}
	return evidence.BuildExcerpt(events, cps, func(from, to int64) ([]evidence.CustodyLink, error) {
		return c.CustodyLinks(ctx, from, to)
	})
}

// excerptCheckpoints returns, in seq order, the checkpoints an excerpt of
// events (in seq order) is checked against: for each checkpoint interval
// holding an event, the checkpoint that opens it (none before the first:
// genesis) and the one that closes it, and the ledger's last checkpoint.
// Between two of them a verifier jumps from one signed checkpoint to the
// next given (evidence.VerifyExcerpt), so the checkpoints between add
// nothing. One query per interval, as reading the interval's digests is.
func (c *Catalog) excerptCheckpoints(ctx context.Context, events []evidence.CustodyEvent) ([]evidence.Checkpoint, error) {
	var out []evidence.Checkpoint
	add := func(cp evidence.Checkpoint) {
		if len(out) == 0 || out[len(out)-1].Seq < cp.Seq {
			out = append(out, cp)
		}
	}
	closed := int64(0) // the last interval's closing checkpoint
	for _, e := range events {
		if e.Seq <= closed {
			continue
		}
		// The checkpoint before e, if any, and the next one or two: the
		// first at or after e closes its interval.
		cps, err := c.custodyCheckpoints(ctx, `WHERE seq >= (SELECT COALESCE(MAX(seq), 0) FROM custody_checkpoints WHERE seq < $1)
			ORDER BY seq LIMIT 2`, e.Seq)
		if err != nil {
			return nil, err
		}
		closed = -1
		for _, cp := range cps {
			if cp.Seq < e.Seq || closed < 0 {
				add(cp)
			}
			if cp.Seq >= e.Seq && closed < 0 {
				closed = cp.Seq
			}
		}
		if closed < 0 { // after the last checkpoint: BuildExcerpt says so
			break
		}
	}
	last, err := c.custodyCheckpoints(ctx, `ORDER BY seq DESC LIMIT 1`)
	if err != nil {
		return nil, err
	}
	if len(last) > 0 {
		add(last[0])
	}
	return out, nil
}

// VerifyLedger re-checks the whole ledger as stored: every event's digest
// against its content, the chain, and every checkpoint's signature. It
// names the first event or checkpoint that does not check out: a row edited
// or removed in the database is found here.
func (c *Catalog) VerifyLedger(ctx context.Context, key func(id string) ed25519.PublicKey) (int64, error) {
	cps, err := c.Checkpoints(ctx)
	if err != nil {
		return 0, err
	}
	byseq := map[int64]evidence.Checkpoint{}
	for _, cp := range cps {
		k := key(cp.KeyID)
		if k == nil || !ed25519.Verify(k, evidence.CheckpointMessage(cp), cp.Signature) {
			return 0, fmt.Errorf("%w: checkpoint %d: signature does not verify", evidence.ErrLedger, cp.Seq)
		}
		byseq[cp.Seq] = cp
	}
	hash, seq := evidence.GenesisHash, int64(0)
	const page = 5000
	for {
		events, err := c.custody(ctx, `SELECT `+custodyCols+` FROM custody_events WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, page)
		if err != nil {
			return seq, err
		}
		for _, e := range events {
			if e.Seq != seq+1 {
				return seq, fmt.Errorf("%w: event %d is missing", evidence.ErrLedger, seq+1)
			}
			if evidence.CustodyDigest(e) != e.Digest {
				return seq, fmt.Errorf("%w: event %d (%s %s by %s) was altered: its content does not match its digest", evidence.ErrLedger, e.Seq, e.Action, e.TargetID, e.Actor)
			}
			hash = evidence.CustodyHash(e.Seq, hash, e.Digest)
			if hash != e.Hash {
				return seq, fmt.Errorf("%w: event %d: chain hash does not match (an event up to it was altered, removed or reordered)", evidence.ErrLedger, e.Seq)
			}
			if cp, ok := byseq[e.Seq]; ok && cp.Hash != hash {
				return seq, fmt.Errorf("%w: checkpoint %d does not match the chain", evidence.ErrLedger, e.Seq)
			}
			seq = e.Seq
		}
		if len(events) < page {
			break
		}
	}
	var headSeq int64
	var headHash string
	if err := c.queryRow(ctx, `SELECT seq, hash FROM custody_head WHERE id = 1`).Scan(&headSeq, &headHash); err != nil {
		return seq, translate(err, "custody head")
	}
	if headSeq != seq || headHash != hash {
		return seq, fmt.Errorf("%w: the ledger ends at event %d but its head says %d (events were removed from the end)", evidence.ErrLedger, seq, headSeq)
	}
	return seq, nil
}
