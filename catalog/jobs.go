package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Durable jobs: work on a recording (thumbnails, proxies, clips, ...) that
// must happen, survive restarts and be done once. Package jobs runs them;
// docs/architecture.md, "Durable jobs and derived media", tells the model.

// JobState is where a job stands.
type JobState string

const (
	JobQueued  JobState = "queued"  // waiting (maybe until NextAt, a back-off)
	JobRunning JobState = "running" // a worker holds its lease
	JobDone    JobState = "done"
	JobFailed  JobState = "failed" // MaxAttempts used up, or a permanent failure
)

// Valid reports whether s is a known state.
func (s JobState) Valid() bool {
	switch s {
	case JobQueued, JobRunning, JobDone, JobFailed:
		return true
	}
	return false
}

// ErrLeaseLost: the job is no longer the caller's (its lease expired and
// another worker took it, or an admin changed it); nothing was written.
var ErrLeaseLost = errors.New("catalog: job lease lost")

// JobRequest asks for work. Params is any JSON object; it is kept in a
// canonical form (keys sorted, no spaces), and (Kind, Source, Params) is
// the job's identity.
type JobRequest struct {
	Kind        string
	Source      string // the recording
	Params      json.RawMessage
	RequestedBy string // a user id, or "system"
	MaxAttempts int    // default 5
}

// Job is one job.
type Job struct {
	ID          string
	Kind        string
	Source      string
	Params      json.RawMessage // canonical
	ParamsHash  string          // hex SHA-256 of Params
	State       JobState
	Attempts    int
	MaxAttempts int
	NextAt      time.Time
	LeaseOwner  string
	LeaseUntil  time.Time // zero when not running
	Error       string    // the last failure
	RequestedBy string
	RerunBy     string // the admin who last ran it again
	CreatedAt   time.Time
	StartedAt   time.Time // the last claim
	FinishedAt  time.Time // done or failed
}

// Lease is a worker's hold on a running job: the owner and the attempt
// it claimed, which Complete, Fail, Release and ExtendLease must name (a
// worker whose lease expired and was taken over can no longer write).
func (j Job) Lease() JobLease { return JobLease{ID: j.ID, Owner: j.LeaseOwner, Attempt: j.Attempts} }

// JobLease names a claimed attempt of a job.
type JobLease struct {
	ID      string
	Owner   string
	Attempt int
}

// Derived is an object a job made from a recording, stored write-once
// outside the device chain, with its signed provenance record beside it.
type Derived struct {
	RecordingID   string
	Kind          string
	Key           string
	SHA256        string
	Size          int64
	ContentType   string
	ProvenanceKey string
	JobID         string
	CreatedAt     time.Time
}

// JobFilter selects jobs; zero fields select all. Newest first; Before
// (a job id) pages on.
type JobFilter struct {
	State  JobState
	Kind   string
	Source string
	Before string
	Limit  int // default 100, at most 1000
}

// CanonicalParams is params in the form jobs keep: a JSON object with its
// keys sorted and no spaces (numbers as written), and its hex SHA-256.
// Empty params are {}.
func CanonicalParams(params json.RawMessage) (json.RawMessage, string, error) {
	if len(bytes.TrimSpace(params)) == 0 {
		params = json.RawMessage("{}")
	}
	d := json.NewDecoder(bytes.NewReader(params))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil || v == nil {
		return nil, "", fmt.Errorf("catalog: job parameters must be a JSON object")
	}
	if d.More() {
		return nil, "", fmt.Errorf("catalog: job parameters must be one JSON object")
	}
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil { // maps encode with sorted keys
		return nil, "", fmt.Errorf("catalog: job parameters: %w", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	sum := sha256.Sum256(b)
	return json.RawMessage(b), hex.EncodeToString(sum[:]), nil
}

const jobCols = `id, kind, source, params, params_hash, state, attempts, max_attempts, next_us, lease_owner, lease_until_us,
	error, requested_by, rerun_by, created_us, started_us, finished_us`

func scanJob(s scanner) (Job, error) {
	var j Job
	var params, state string
	var next, leaseUntil, created int64
	var started, finished sql.NullInt64
	err := s.Scan(&j.ID, &j.Kind, &j.Source, &params, &j.ParamsHash, &state, &j.Attempts, &j.MaxAttempts, &next,
		&j.LeaseOwner, &leaseUntil, &j.Error, &j.RequestedBy, &j.RerunBy, &created, &started, &finished)
	j.Params, j.State = json.RawMessage(params), JobState(state)
	j.NextAt, j.CreatedAt = fromMicros(next), fromMicros(created)
	if leaseUntil != 0 {
		j.LeaseUntil = fromMicros(leaseUntil)
	}
	j.StartedAt, j.FinishedAt = fromNullMicros(started), fromNullMicros(finished)
	return j, err
}

// Enqueue asks for a job and returns it, with whether this call made it:
// the same kind, source and parameters again is the job there already
// (whatever its state). An unknown recording is ErrNotFound.
func (c *Catalog) Enqueue(ctx context.Context, r JobRequest, now time.Time) (Job, bool, error) {
	if r.Kind == "" || r.Source == "" || r.RequestedBy == "" {
		return Job{}, false, fmt.Errorf("catalog: a job needs a kind, a source and who asked")
	}
	params, hash, err := CanonicalParams(r.Params)
	if err != nil {
		return Job{}, false, err
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 5
	}
	what := "job " + r.Kind + " of " + r.Source
	id := NewEventID(now)
	res, err := c.exec(ctx, `INSERT INTO jobs (id, kind, source, params, params_hash, state, max_attempts, next_us, requested_by, created_us)
		VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $7)
		ON CONFLICT (kind, source, params_hash) DO NOTHING`,
		id, r.Kind, r.Source, string(params), hash, r.MaxAttempts, micros(now), r.RequestedBy)
	if err != nil {
		return Job{}, false, translate(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Job{}, false, translate(err, what)
	}
	j, err := scanJob(c.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE kind = $1 AND source = $2 AND params_hash = $3`, r.Kind, r.Source, hash))
	return j, n == 1, translate(err, what)
}

// Job returns one job (ErrNotFound).
func (c *Catalog) Job(ctx context.Context, id string) (Job, error) {
	j, err := scanJob(c.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`, id))
	return j, translate(err, "job "+id)
}

// Jobs lists jobs, newest first.
func (c *Catalog) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.State != "" {
		add("state = $%d", string(f.State))
	}
	if f.Kind != "" {
		add("kind = $%d", f.Kind)
	}
	if f.Source != "" {
		add("source = $%d", f.Source)
	}
	if f.Before != "" {
		add("id < $%d", f.Before)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, min(f.Limit, 1000))
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "jobs")
	}
	defer rows.Close()
	out := []Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, translate(err, "jobs")
		}
		out = append(out, j)
	}
	return out, translate(rows.Err(), "jobs")
}

// JobCounts counts jobs by kind and state.
func (c *Catalog) JobCounts(ctx context.Context) (map[string]map[JobState]int, error) {
	rows, err := c.query(ctx, `SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state`)
	if err != nil {
		return nil, translate(err, "jobs")
	}
	defer rows.Close()
	out := map[string]map[JobState]int{}
	for rows.Next() {
		var kind, state string
		var n int
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return nil, translate(err, "jobs")
		}
		if out[kind] == nil {
			out[kind] = map[JobState]int{}
		}
		out[kind][JobState(state)] = n
	}
	return out, translate(rows.Err(), "jobs")
}

// Claim takes, for owner, the oldest due job of one of kinds: a queued one
// whose NextAt has come, or a running one whose lease expired (its worker
// died or lost the catalog: taken over). It is running then, leased to
// owner until now+lease, its attempt counted. A running job with an expired
// lease that used up its attempts becomes failed instead. Several claimers
// at once (any node) never take the same job. No job due: ErrNotFound.
func (c *Catalog) Claim(ctx context.Context, owner string, kinds []string, lease time.Duration, now time.Time) (Job, error) {
	if owner == "" || len(kinds) == 0 || lease <= 0 {
		return Job{}, fmt.Errorf("catalog: a claim needs an owner, kinds and a lease")
	}
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return Job{}, translate(err, "jobs")
	}
	defer tx.Rollback()
	args := []any{micros(now)}
	var in []string
	for _, k := range kinds {
		args = append(args, k)
		in = append(in, fmt.Sprintf("$%d", len(args)))
	}
	kindIn := `kind IN (` + strings.Join(in, ", ") + `)`
	// Expired leases of jobs out of attempts: failed, with why.
	if _, err := tx.ExecContext(ctx, c.q(`UPDATE jobs SET state = 'failed', finished_us = $1, lease_owner = '', lease_until_us = 0,
		error = 'its worker stopped (lease expired) on every attempt' || CASE WHEN error = '' THEN '' ELSE '; last failure: ' || error END
		WHERE state = 'running' AND lease_until_us < $1 AND attempts >= max_attempts AND `+kindIn), args...); err != nil {
		return Job{}, translate(err, "jobs")
	}
	skip := ""
	if c.dialect == Postgres {
		skip = " FOR UPDATE SKIP LOCKED"
	}
	var id string
	err = tx.QueryRowContext(ctx, c.q(`SELECT id FROM jobs
		WHERE ((state = 'queued' AND next_us <= $1) OR (state = 'running' AND lease_until_us < $1)) AND `+kindIn+`
		ORDER BY next_us, id LIMIT 1`+skip), args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		if err := tx.Commit(); err != nil {
			return Job{}, translate(err, "jobs")
		}
		return Job{}, fmt.Errorf("%w: no job due", ErrNotFound)
	}
	if err != nil {
		return Job{}, translate(err, "jobs")
	}
	// The state is checked again: on PostgreSQL another claimer may have
	// committed between the snapshot and the lock.
	res, err := tx.ExecContext(ctx, c.q(`UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $2,
		lease_until_us = $3, started_us = $1
		WHERE id = $4 AND ((state = 'queued' AND next_us <= $1) OR (state = 'running' AND lease_until_us < $1))`),
		micros(now), owner, micros(now.Add(lease)), id)
	if err != nil {
		return Job{}, translate(err, "job "+id)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if err == nil {
			err = sql.ErrNoRows
		}
		return Job{}, translate(err, "job "+id)
	}
	j, err := scanJob(tx.QueryRowContext(ctx, c.q(`SELECT `+jobCols+` FROM jobs WHERE id = $1`), id))
	if err != nil {
		return Job{}, translate(err, "job "+id)
	}
	return j, translate(tx.Commit(), "job "+id)
}

// leased is the condition that the job is still l's.
const leased = `id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3`

// ExtendLease keeps a running job leased to its worker until until.
// ErrLeaseLost when it is no longer the worker's.
func (c *Catalog) ExtendLease(ctx context.Context, l JobLease, until time.Time) error {
	res, err := c.exec(ctx, `UPDATE jobs SET lease_until_us = $4 WHERE `+leased, l.ID, l.Owner, l.Attempt, micros(until))
	return c.leaseResult(res, err, l)
}

func (c *Catalog) leaseResult(res sql.Result, err error, l JobLease) error {
	if err != nil {
		return translate(err, "job "+l.ID)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		if err != nil {
			return translate(err, "job "+l.ID)
		}
		return fmt.Errorf("%w: job %s (attempt %d of %s)", ErrLeaseLost, l.ID, l.Attempt, l.Owner)
	}
	return nil
}

// Complete marks the leased job done and records what it made, in one
// transaction. A derived object already recorded (the same key: an
// earlier attempt's, or the same work asked again) stays as it is.
func (c *Catalog) Complete(ctx context.Context, l JobLease, made []Derived, now time.Time) error {
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return translate(err, "job "+l.ID)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, c.q(`UPDATE jobs SET state = 'done', finished_us = $4, lease_owner = '', lease_until_us = 0, error = ''
		WHERE `+leased), l.ID, l.Owner, l.Attempt, micros(now))
	if err := c.leaseResult(res, err, l); err != nil {
		return err
	}
	for _, d := range made {
		if d.Key == "" || d.RecordingID == "" || d.SHA256 == "" || d.ProvenanceKey == "" {
			return fmt.Errorf("catalog: a derived object needs a key, a recording, a SHA-256 and a provenance record")
		}
		at := d.CreatedAt
		if at.IsZero() {
			at = now
		}
		if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO derived (object_key, recording_id, kind, sha256, size, content_type, provenance_key, job_id, created_us)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (object_key) DO NOTHING`),
			d.Key, d.RecordingID, d.Kind, d.SHA256, d.Size, d.ContentType, d.ProvenanceKey, l.ID, micros(at)); err != nil {
			return translate(err, "derived "+d.Key)
		}
	}
	return translate(tx.Commit(), "job "+l.ID)
}

// Fail records a failed attempt of the leased job. It is queued again
// after a back-off, base·2^(attempts-1) capped at maxWait, unless it used
// up its attempts or permanent is set: then it is failed.
func (c *Catalog) Fail(ctx context.Context, l JobLease, reason string, permanent bool, base, maxWait time.Duration, now time.Time) (Job, error) {
	reason = clipText(reason, 1000)
	wait := base
	for i := 1; i < l.Attempt && wait < maxWait; i++ {
		wait *= 2
	}
	wait = min(wait, maxWait)
	res, err := c.exec(ctx, `UPDATE jobs SET error = $4, lease_owner = '', lease_until_us = 0,
		state = CASE WHEN $5 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
		finished_us = CASE WHEN $5 OR attempts >= max_attempts THEN $6 ELSE finished_us END,
		next_us = CASE WHEN $5 OR attempts >= max_attempts THEN next_us ELSE $7 END
		WHERE `+leased, l.ID, l.Owner, l.Attempt, reason, permanent, micros(now), micros(now.Add(wait)))
	if err := c.leaseResult(res, err, l); err != nil {
		return Job{}, err
	}
	return c.Job(ctx, l.ID)
}

// Release gives a leased job back unfinished (its worker stops): queued
// again at once, in its place, the attempt not counted.
func (c *Catalog) Release(ctx context.Context, l JobLease) error {
	res, err := c.exec(ctx, `UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = '', lease_until_us = 0
		WHERE `+leased, l.ID, l.Owner, l.Attempt)
	return c.leaseResult(res, err, l)
}

// ExpireLeases ends the leases of the running jobs whose owner starts with
// prefix (a node's, when it starts again after an abnormal stop: nothing of
// its own can still be running), so they are claimed at once, and reports
// how many. Their attempts stay counted.
func (c *Catalog) ExpireLeases(ctx context.Context, prefix string, now time.Time) (int, error) {
	if prefix == "" {
		return 0, fmt.Errorf("catalog: expiring leases needs an owner prefix")
	}
	res, err := c.exec(ctx, `UPDATE jobs SET lease_until_us = $1 - 1 WHERE state = 'running' AND lease_until_us >= $1
		AND SUBSTR(lease_owner, 1, $2) = $3`, micros(now), len(prefix), prefix)
	if err != nil {
		return 0, translate(err, "jobs")
	}
	n, err := res.RowsAffected()
	return int(n), translate(err, "jobs")
}

// Rerun queues a done or failed job again (an admin's request): its
// attempts start over. A queued or running job: ErrConflict.
func (c *Catalog) Rerun(ctx context.Context, id, by string, now time.Time) (Job, error) {
	if by == "" {
		return Job{}, fmt.Errorf("catalog: a rerun needs who asked")
	}
	res, err := c.exec(ctx, `UPDATE jobs SET state = 'queued', attempts = 0, next_us = $2, rerun_by = $3, finished_us = NULL
		WHERE id = $1 AND state IN ('done', 'failed')`, id, micros(now), by)
	if err != nil {
		return Job{}, translate(err, "job "+id)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Job{}, translate(err, "job "+id)
	}
	j, err := c.Job(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if n != 1 {
		return j, fmt.Errorf("%w: job %s is %s", ErrConflict, id, j.State)
	}
	return j, nil
}

const derivedCols = `object_key, recording_id, kind, sha256, size, content_type, provenance_key, job_id, created_us`

// Derived lists what jobs made from a recording, oldest first.
func (c *Catalog) Derived(ctx context.Context, recordingID string) ([]Derived, error) {
	rows, err := c.query(ctx, `SELECT `+derivedCols+` FROM derived WHERE recording_id = $1 ORDER BY created_us, object_key`, recordingID)
	if err != nil {
		return nil, translate(err, "derived of "+recordingID)
	}
	defer rows.Close()
	out := []Derived{}
	for rows.Next() {
		var d Derived
		var created int64
		if err := rows.Scan(&d.Key, &d.RecordingID, &d.Kind, &d.SHA256, &d.Size, &d.ContentType, &d.ProvenanceKey, &d.JobID, &created); err != nil {
			return nil, translate(err, "derived of "+recordingID)
		}
		d.CreatedAt = fromMicros(created)
		out = append(out, d)
	}
	return out, translate(rows.Err(), "derived of "+recordingID)
}

// ForgetDerived removes a recording's derived rows once retention has
// deleted their objects (the jobs that made them stay, as history).
func (c *Catalog) ForgetDerived(ctx context.Context, recordingID string) error {
	_, err := c.exec(ctx, `DELETE FROM derived WHERE recording_id = $1`, recordingID)
	return translate(err, "derived of "+recordingID)
}

// clipText cuts s to at most n bytes on a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n] + "…"
}
