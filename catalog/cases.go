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

const caseCols = `id, title, state, officer, unit, created_by, created_us, updated_us`

func scanCase(s scanner) (evidence.Case, error) {
	var c evidence.Case
	var state string
	var created, updated int64
	err := s.Scan(&c.ID, &c.Title, &state, &c.Officer, &c.Unit, &c.CreatedBy, &created, &updated)
	c.State, c.CreatedAt, c.UpdatedAt = evidence.CaseState(state), fromMicros(created), fromMicros(updated)
	return c, err
}

// CreateCase files a case; its officer in charge is a member, as are
// c.Members.
func (c *Catalog) CreateCase(ctx context.Context, k evidence.Case) error {
	if err := evidence.ValidateCaseID(k.ID); err != nil {
		return err
	}
	if k.State == "" {
		k.State = evidence.CaseFiled
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "case "+k.ID)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO cases (`+caseCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`),
		k.ID, k.Title, string(k.State), k.Officer, k.Unit, k.CreatedBy, micros(k.CreatedAt), micros(k.CreatedAt)); err != nil {
		return translate(err, "case "+k.ID)
	}
	members := append([]string{k.Officer}, k.Members...)
	seen := map[string]bool{}
	for _, m := range members {
		if seen[m] {
			continue
		}
		seen[m] = true
		if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO case_members (case_id, user_id) VALUES ($1, $2)`), k.ID, m); err != nil {
			return translate(err, "case member "+m)
		}
	}
	if err := c.emit(ctx, tx, events.CaseStep, "", k.ID, k.CreatedAt,
		caseStepData{CaseID: k.ID, To: k.State, By: k.CreatedBy, At: k.CreatedAt.UTC()}); err != nil {
		return err
	}
	return translate(tx.Commit(), "case "+k.ID)
}

// Case returns one case with its members.
func (c *Catalog) Case(ctx context.Context, id string) (evidence.Case, error) {
	k, err := scanCase(c.queryRow(ctx, `SELECT `+caseCols+` FROM cases WHERE id = $1`, id))
	if err != nil {
		return k, translate(err, "case "+id)
	}
	rows, err := c.query(ctx, `SELECT user_id FROM case_members WHERE case_id = $1 ORDER BY user_id`, id)
	if err != nil {
		return k, translate(err, "case members")
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		rows.Scan(&m)
		k.Members = append(k.Members, m)
	}
	return k, translate(rows.Err(), "case members")
}

// CaseFilter selects cases.
type CaseFilter struct {
	Member string // cases this user is on
	Unit   string
}

// Cases lists cases, newest first.
func (c *Catalog) Cases(ctx context.Context, f CaseFilter) ([]evidence.Case, error) {
	q, args := `SELECT `+caseCols+` FROM cases`, []any{}
	switch {
	case f.Member != "":
		q += ` WHERE id IN (SELECT case_id FROM case_members WHERE user_id = $1)`
		args = append(args, f.Member)
	case f.Unit != "":
		q += ` WHERE unit = $1`
		args = append(args, f.Unit)
	}
	rows, err := c.query(ctx, q+` ORDER BY created_us DESC, id`, args...)
	if err != nil {
		return nil, translate(err, "cases")
	}
	defer rows.Close()
	out := []evidence.Case{}
	for rows.Next() {
		k, err := scanCase(rows)
		if err != nil {
			return nil, translate(err, "cases")
		}
		out = append(out, k)
	}
	return out, translate(rows.Err(), "cases")
}

// AddCaseMember puts a user on a case.
func (c *Catalog) AddCaseMember(ctx context.Context, caseID, userID string) error {
	_, err := c.exec(ctx, `INSERT INTO case_members (case_id, user_id) VALUES ($1, $2)`, caseID, userID)
	return translate(err, "case member "+userID)
}

// TransitionCase moves a case from one state to another and records the
// step. The caller checks the workflow's rules (evidence.CheckTransition);
// the move happens only if the case is still in from (ErrConflict if not).
func (c *Catalog) TransitionCase(ctx context.Context, t evidence.CaseTransition) error {
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "case "+t.CaseID)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, c.q(`UPDATE cases SET state = $1, updated_us = $2 WHERE id = $3 AND state = $4`),
		string(t.To), micros(t.At), t.CaseID, string(t.From))
	if err != nil {
		return translate(err, "case "+t.CaseID)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: case %s is not %s", ErrConflict, t.CaseID, t.From)
	}
	if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO case_transitions (case_id, from_state, to_state, by_user, reason, at_us) VALUES ($1, $2, $3, $4, $5, $6)`),
		t.CaseID, string(t.From), string(t.To), t.By, t.Reason, micros(t.At)); err != nil {
		return translate(err, "case transition")
	}
	if err := c.emit(ctx, tx, events.CaseStep, "", t.CaseID, t.At,
		caseStepData{CaseID: t.CaseID, From: t.From, To: t.To, By: t.By, At: t.At.UTC()}); err != nil {
		return err
	}
	return translate(tx.Commit(), "case "+t.CaseID)
}

// CaseTransitions lists a case's steps in order.
func (c *Catalog) CaseTransitions(ctx context.Context, caseID string) ([]evidence.CaseTransition, error) {
	rows, err := c.query(ctx, `SELECT case_id, from_state, to_state, by_user, reason, at_us FROM case_transitions WHERE case_id = $1 ORDER BY at_us`, caseID)
	if err != nil {
		return nil, translate(err, "case transitions")
	}
	defer rows.Close()
	out := []evidence.CaseTransition{}
	for rows.Next() {
		var t evidence.CaseTransition
		var from, to string
		var at int64
		if err := rows.Scan(&t.CaseID, &from, &to, &t.By, &t.Reason, &at); err != nil {
			return nil, translate(err, "case transitions")
		}
		t.From, t.To, t.At = evidence.CaseState(from), evidence.CaseState(to), fromMicros(at)
		out = append(out, t)
	}
	return out, translate(rows.Err(), "case transitions")
}

const linkCols = `id, case_id, recording_id, from_us, to_us, linked_by, linked_us, note, unlinked_by, unlinked_us, unlink_reason`

func scanLink(s scanner) (evidence.EvidenceLink, error) {
	var l evidence.EvidenceLink
	var from, to, unlinked sql.NullInt64
	var linked int64
	err := s.Scan(&l.ID, &l.CaseID, &l.RecordingID, &from, &to, &l.LinkedBy, &linked, &l.Note, &l.UnlinkedBy, &unlinked, &l.UnlinkReason)
	l.From, l.To, l.LinkedAt, l.UnlinkedAt = fromNullMicros(from), fromNullMicros(to), fromMicros(linked), fromNullMicros(unlinked)
	return l, err
}

// statesWhere lists, for SQL, the case states for which keep is true.
func statesWhere(keep func(evidence.CaseState) bool) string {
	var in []string
	for _, s := range evidence.CaseStates() {
		if keep(s) {
			in = append(in, "'"+string(s)+"'")
		}
	}
	return "(" + strings.Join(in, ", ") + ")"
}

// LinkEvidence links a recording, or a window of one, to a case. The case
// must take evidence (evidence.CaseState.TakesEvidence) when the row is
// written, checked in the same statement: a case closed meanwhile is
// ErrConflict.
func (c *Catalog) LinkEvidence(ctx context.Context, l evidence.EvidenceLink) error {
	if l.ID == "" || l.CaseID == "" || l.RecordingID == "" || l.LinkedBy == "" {
		return fmt.Errorf("catalog: a link needs an id, a case, a recording and who linked it")
	}
	if l.LinkedAt.IsZero() {
		l.LinkedAt = time.Now()
	}
	linked, err := c.linkEvidence(ctx, l)
	if err != nil {
		return err
	}
	if !linked {
		k, err := c.Case(ctx, l.CaseID)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: case %s is %s and takes no evidence", ErrConflict, k.ID, k.State)
	}
	return nil
}

// linkEvidence writes the link with its event, if the case takes evidence.
func (c *Catalog) linkEvidence(ctx context.Context, l evidence.EvidenceLink) (bool, error) {
	what := "link of " + l.RecordingID + " to " + l.CaseID
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return false, translate(err, what)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, c.q(`INSERT INTO evidence_links (`+linkCols+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM cases WHERE id = $12 AND state IN `+statesWhere(evidence.CaseState.TakesEvidence)),
		l.ID, l.CaseID, l.RecordingID, nullMicros(l.From), nullMicros(l.To), l.LinkedBy, micros(l.LinkedAt), l.Note, "", nil, "", l.CaseID)
	if err != nil {
		return false, translate(err, what)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if err := c.emit(ctx, tx, events.EvidenceLinked, "", l.CaseID, l.LinkedAt, linkData{LinkID: l.ID, CaseID: l.CaseID,
		RecordingID: l.RecordingID, From: optTime(l.From), To: optTime(l.To), By: l.LinkedBy, At: l.LinkedAt.UTC()}); err != nil {
		return false, err
	}
	return true, translate(tx.Commit(), what)
}

// unlink marks a link removed where cond (SQL, on evidence_links) holds,
// with its event, and reports whether it did.
func (c *Catalog) unlink(ctx context.Context, id, by, reason string, at time.Time, cond string, withdrawn bool) (bool, error) {
	what := "link " + id
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return false, translate(err, what)
	}
	defer tx.Rollback()
	var from, to sql.NullInt64
	d := linkData{LinkID: id, By: by, At: at.UTC(), Withdrawn: withdrawn}
	err = tx.QueryRowContext(ctx, c.q(`UPDATE evidence_links SET unlinked_by = $1, unlinked_us = $2, unlink_reason = $3
		WHERE id = $4 AND unlinked_us IS NULL`+cond+` RETURNING case_id, recording_id, from_us, to_us`),
		by, micros(at), reason, id).Scan(&d.CaseID, &d.RecordingID, &from, &to)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, translate(err, what)
	}
	d.From, d.To = optTime(fromNullMicros(from)), optTime(fromNullMicros(to))
	if err := c.emit(ctx, tx, events.EvidenceUnlinked, "", d.CaseID, at, d); err != nil {
		return false, err
	}
	return true, translate(tx.Commit(), what)
}

// UnlinkEvidence removes a link, keeping it on record with who and why. A
// link of a case whose evidence is settled (evidence.CaseState.
// EvidenceSettled: decided or later) is not removed, checked in the same
// statement: ErrConflict.
func (c *Catalog) UnlinkEvidence(ctx context.Context, id, by, reason string, at time.Time) error {
	done, err := c.unlink(ctx, id, by, reason, at, ` AND NOT EXISTS (
			SELECT 1 FROM cases k WHERE k.id = evidence_links.case_id AND k.state IN `+statesWhere(evidence.CaseState.EvidenceSettled)+`)`, false)
	if err != nil {
		return err
	}
	if !done {
		l, err := c.EvidenceLink(ctx, id)
		if err != nil {
			return err
		}
		if !l.Active() {
			return fmt.Errorf("%w: link %s is already removed", ErrConflict, id)
		}
		k, err := c.Case(ctx, l.CaseID)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: case %s is %s: its evidence is settled", ErrConflict, k.ID, k.State)
	}
	return nil
}

// WithdrawLink takes back a link that could not be made whole (its legal
// hold failed), whatever the case's state: unlike UnlinkEvidence it is not
// a user's change of a case's evidence, but the link's own failure, kept on
// record with why. ErrConflict when it is already removed.
func (c *Catalog) WithdrawLink(ctx context.Context, id, by, reason string, at time.Time) error {
	done, err := c.unlink(ctx, id, by, reason, at, "", true)
	if err != nil {
		return err
	}
	if !done {
		if _, err := c.EvidenceLink(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: link %s is already removed", ErrConflict, id)
	}
	return nil
}

// EvidenceLink returns one link.
func (c *Catalog) EvidenceLink(ctx context.Context, id string) (evidence.EvidenceLink, error) {
	l, err := scanLink(c.queryRow(ctx, `SELECT `+linkCols+` FROM evidence_links WHERE id = $1`, id))
	return l, translate(err, "link "+id)
}

// EvidenceLinks lists the links of a case (caseID) or of a recording
// (recordingID), removed ones included, oldest first.
func (c *Catalog) EvidenceLinks(ctx context.Context, caseID, recordingID string) ([]evidence.EvidenceLink, error) {
	q, arg := `SELECT `+linkCols+` FROM evidence_links WHERE case_id = $1 ORDER BY linked_us, id`, caseID
	if caseID == "" {
		q, arg = `SELECT `+linkCols+` FROM evidence_links WHERE recording_id = $1 ORDER BY linked_us, id`, recordingID
	}
	rows, err := c.query(ctx, q, arg)
	if err != nil {
		return nil, translate(err, "links")
	}
	defer rows.Close()
	out := []evidence.EvidenceLink{}
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, translate(err, "links")
		}
		out = append(out, l)
	}
	return out, translate(rows.Err(), "links")
}
