package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// inBatches calls f with the ids in batches of at most maxBatch, as the
// placeholders of an IN list ($1, $2, ...) and their arguments.
func inBatches(ids []string, f func(in string, args []any) error) error {
	for len(ids) > 0 {
		n := min(len(ids), maxBatch)
		args := make([]any, n)
		marks := make([]string, n)
		for i, id := range ids[:n] {
			args[i], marks[i] = id, fmt.Sprintf("$%d", i+1)
		}
		ids = ids[n:]
		if err := f(strings.Join(marks, ", "), args); err != nil {
			return err
		}
	}
	return nil
}

// scanAll runs a query and calls each for every row.
func (c *Catalog) scanAll(ctx context.Context, what, q string, args []any, each func(scanner) error) error {
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return translate(err, what)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return translate(err, what)
		}
	}
	return translate(rows.Err(), what)
}

// RecordingCategories returns the categories of each of the given
// recordings that has any, sorted, by recording id.
func (c *Catalog) RecordingCategories(ctx context.Context, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	err := inBatches(ids, func(in string, args []any) error {
		return c.scanAll(ctx, "categories", `SELECT recording_id, category FROM recording_categories
			WHERE recording_id IN (`+in+`) ORDER BY recording_id, category`, args, func(row scanner) error {
			var id, cat string
			err := row.Scan(&id, &cat)
			out[id] = append(out[id], cat)
			return err
		})
	})
	return out, err
}

// SetRecordingCategories replaces a recording's categories with cats, set
// by who at at, if they are still was (in any order): a change made since
// they were read is ErrConflict, nothing changed, so that the custody event
// written before (old and new) tells the truth. An unknown recording is
// ErrNotFound. The caller checks the names (RetentionPolicy.CheckCategories).
func (c *Catalog) SetRecordingCategories(ctx context.Context, id string, was, cats []string, by string, at time.Time) error {
	what := "categories of recording " + id
	if by == "" || at.IsZero() {
		return fmt.Errorf("catalog: setting categories needs who and when")
	}
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, what)
	}
	defer tx.Rollback()
	lock := ""
	if c.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	var rid string
	if err := tx.QueryRowContext(ctx, c.q(`SELECT id FROM recordings WHERE id = $1`+lock), id).Scan(&rid); err != nil {
		return translate(err, "recording "+id)
	}
	rows, err := tx.QueryContext(ctx, c.q(`SELECT category FROM recording_categories WHERE recording_id = $1 ORDER BY category`), id)
	if err != nil {
		return translate(err, what)
	}
	var now []string
	for rows.Next() {
		var cat string
		if err := rows.Scan(&cat); err != nil {
			rows.Close()
			return translate(err, what)
		}
		now = append(now, cat)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return translate(err, what)
	}
	was = slices.Sorted(slices.Values(was))
	if !slices.Equal(now, was) {
		return fmt.Errorf("%w: %s are %v now, not %v", ErrConflict, what, now, was)
	}
	if _, err := tx.ExecContext(ctx, c.q(`DELETE FROM recording_categories WHERE recording_id = $1`), id); err != nil {
		return translate(err, what)
	}
	for _, cat := range cats {
		if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO recording_categories (recording_id, category, set_by, set_us)
			VALUES ($1, $2, $3, $4)`), id, cat, by, micros(at)); err != nil {
			return translate(err, what)
		}
	}
	return translate(tx.Commit(), what)
}

// RetentionFacts returns what a recording's retention depends on: its
// end, categories, important mark (an upload's), whether a case links it
// now, and when it left its last case.
func (c *Catalog) RetentionFacts(ctx context.Context, rec evidence.Recording) (evidence.RetentionFacts, error) {
	m, err := c.RetentionFactsOf(ctx, []evidence.Recording{rec})
	return m[rec.ID], err
}

// RetentionFactsOf is RetentionFacts for a page of recordings, by id, in
// three queries.
func (c *Catalog) RetentionFactsOf(ctx context.Context, recs []evidence.Recording) (map[string]evidence.RetentionFacts, error) {
	out := make(map[string]evidence.RetentionFacts, len(recs))
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		out[r.ID] = evidence.RetentionFacts{Ended: r.EndedAt}
		ids = append(ids, r.ID)
	}
	cats, err := c.RecordingCategories(ctx, ids)
	if err != nil {
		return nil, err
	}
	for id, cs := range cats {
		f := out[id]
		f.Categories = cs
		out[id] = f
	}
	err = inBatches(ids, func(in string, args []any) error {
		err := c.scanAll(ctx, "important uploads", `SELECT recording_id FROM uploads
			WHERE recording_id IN (`+in+`) AND state = 'stored' AND important`, args, func(row scanner) error {
			var id string
			err := row.Scan(&id)
			f := out[id]
			f.Important = true
			out[id] = f
			return err
		})
		if err != nil {
			return err
		}
		return c.scanAll(ctx, "links", `SELECT recording_id, unlinked_us FROM evidence_links WHERE recording_id IN (`+in+`)`, args,
			func(row scanner) error {
				var id string
				var unlinked sql.NullInt64
				err := row.Scan(&id, &unlinked)
				f := out[id]
				if !unlinked.Valid {
					f.Linked = true
				} else if t := fromMicros(unlinked.Int64); t.After(f.LastUnlinked) {
					f.LastUnlinked = t
				}
				out[id] = f
				return err
			})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RetentionDue lists finished recordings with a signed manifest, not yet
// deleted, that policy lets go at now: in no case, and past the period of
// their categories (evidence.RetentionPolicy.Decide) counted from their end
// and from when they left their last case. Oldest first, at most limit.
//
// The periods are the configuration's, so they are given to the query
// (each class's name as a parameter, its period as a number). A year is
// counted as 366 days here (RetentionPeriod.Longest): the query may select
// a recording a day late, never early; the retention job decides each one
// again with Decide before it deletes anything. Recordings kept for ever
// (a permanent category, or one not configured) are never selected.
func (c *Catalog) RetentionDue(ctx context.Context, p evidence.RetentionPolicy, now time.Time, limit int) ([]evidence.Recording, error) {
	if limit <= 0 {
		limit = 100
	}
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	us := func(d time.Duration) string { return fmt.Sprint(d.Microseconds()) }
	// The least any rule keeps footage: nothing that ended since can be due.
	shortest := p.Unlinked.Shortest()
	class := "-1" // a category's period in µs; -1: permanent, or not configured
	var whens []string
	for _, k := range p.Classes {
		if !k.Period.Permanent {
			shortest = min(shortest, k.Period.Shortest())
			whens = append(whens, " WHEN "+arg(k.Name)+" THEN "+us(k.Period.Longest()))
		}
	}
	if len(whens) > 0 {
		class = "CASE c.category" + strings.Join(whens, "") + " ELSE -1 END"
	}
	period := "COALESCE((SELECT MAX(" + class + ") FROM recording_categories c WHERE c.recording_id = r.id), " + us(p.Unlinked.Longest()) + ")"
	important := "EXISTS (SELECT 1 FROM uploads u WHERE u.recording_id = r.id AND u.state = 'stored' AND u.important)"
	keep := ""
	switch {
	case p.Important.Permanent:
		keep = " AND NOT " + important
	case !p.Important.IsZero():
		imp := us(p.Important.Longest())
		period = "CASE WHEN " + period + " < " + imp + " AND " + important + " THEN " + imp + " ELSE " + period + " END"
	}
	nowArg, cutoff := arg(micros(now)), arg(micros(now.Add(-shortest)))
	return c.recordings(ctx, `SELECT `+recordingCols+` FROM recordings r
		WHERE r.state <> 'live' AND r.ended_us < `+cutoff+` AND r.deleted_us IS NULL AND r.manifest_key <> ''
		AND NOT EXISTS (SELECT 1 FROM recording_categories c WHERE c.recording_id = r.id AND `+class+` < 0)`+keep+`
		AND r.ended_us + `+period+` < `+nowArg+`
		AND NOT EXISTS (SELECT 1 FROM evidence_links l WHERE l.recording_id = r.id
			AND (l.unlinked_us IS NULL OR l.unlinked_us + `+period+` >= `+nowArg+`))
		ORDER BY r.ended_us LIMIT `+arg(limit), args...)
}
