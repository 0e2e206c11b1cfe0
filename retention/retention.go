// Package retention deletes footage that is in no case once its period has
// passed, leaving a signed tombstone linked into the device's chain so that
// the gap is explained, never silent. The period is the recording's
// (evidence.RetentionPolicy: the longest of its categories, at least the
// important minimum, 180 days without a category, never for a permanent
// one), counted from its end or from when it left its last case. Footage
// on legal hold, or still locked by the object store, is left alone until
// it may go. What jobs derived from it (pictures, proxies, clips, redacted
// copies) is deleted with it; their signed provenance records stay.
package retention

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/storage"
)

// Catalog is what retention needs from the system of record.
type Catalog interface {
	// RetentionDue lists recordings the policy may let go at now (a
	// query's coarse choice: each is decided again from RetentionFacts).
	RetentionDue(ctx context.Context, p evidence.RetentionPolicy, now time.Time, limit int) ([]evidence.Recording, error)
	RetentionFacts(ctx context.Context, rec evidence.Recording) (evidence.RetentionFacts, error)
	Segments(ctx context.Context, recordingID string) ([]evidence.Segment, error)
	AppendSegment(ctx context.Context, s evidence.Segment) (evidence.Segment, error)
	MarkDeleted(ctx context.Context, id string, at time.Time) error
	// Derived lists what jobs derived from a recording (posters,
	// thumbnails, proxies, clips, redacted copies); ForgetDerived removes
	// those rows once their objects are deleted.
	Derived(ctx context.Context, recordingID string) ([]catalog.Derived, error)
	ForgetDerived(ctx context.Context, recordingID string) error
}

// Store is the object store as retention uses it.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error)
	Stat(ctx context.Context, key string) (storage.Info, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Delete(ctx context.Context, key string) error
}

// Signer signs tombstones.
type Signer interface {
	ID() string
	Sign(msg []byte) (keyID string, sig []byte)
}

// Custody records deletions in the custody ledger.
type Custody interface {
	Record(ctx context.Context, e evidence.CustodyEvent) error
}

// Lease is a named lease that one holder at a time has (coord's named
// leases): with several nodes, one runs retention.
type Lease interface {
	// Acquire takes the lease, or renews it for holder; an error when
	// another holds it (or it cannot be told).
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) error
	Release(ctx context.Context, name, holder string) error
}

// LeaseName is the lease the job runs under.
const LeaseName = "retention"

// Job is the retention job.
type Job struct {
	// Policy says how long each recording is kept (Validate'd by the
	// caller: at least evidence.MinRetention outside tests).
	Policy   evidence.RetentionPolicy
	Interval time.Duration // between passes
	Catalog  Catalog
	Store    Store
	Signer   Signer
	Custody  Custody
	Log      *slog.Logger
	// Lease, when set, lets one runner at a time pass: the job takes the
	// lease LeaseName as Holder before a pass and renews it before each
	// recording, and a pass stops when it cannot. Nil: every pass runs (one
	// node).
	Lease  Lease
	Holder string

	deleted, skipped prometheus.Counter
}

// Register adds the job's metrics to reg.
func (j *Job) Register(reg prometheus.Registerer) {
	j.deleted = prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_retention_deleted_total",
		Help: "Recordings whose media retention deleted, each leaving a signed tombstone."})
	j.skipped = prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_retention_skipped_total",
		Help: "Recordings due for deletion left alone for now (legal hold, object lock, errors)."})
	reg.MustRegister(j.deleted, j.skipped)
}

// Run makes a pass every Interval until ctx ends, and then gives the
// lease up (when it has one).
func (j *Job) Run(ctx context.Context) error {
	t := time.NewTicker(j.Interval)
	defer t.Stop()
	if j.Lease != nil {
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			j.Lease.Release(rctx, LeaseName, j.Holder)
		}()
	}
	for {
		if _, err := j.Pass(ctx, time.Now()); err != nil && ctx.Err() == nil {
			j.Log.Error("retention pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// leaseTTL outlasts the time between passes, so that the runner keeps the
// lease from one pass to the next, and lapses soon after it stops.
func (j *Job) leaseTTL() time.Duration { return max(2*j.Interval, time.Minute) }

// hold takes or renews the lease; false when another runner has it.
func (j *Job) hold(ctx context.Context) bool {
	if j.Lease == nil {
		return true
	}
	if err := j.Lease.Acquire(ctx, LeaseName, j.Holder, j.leaseTTL()); err != nil {
		j.Log.Debug("retention: not this node's turn", "holder", j.Holder, "why", err)
		return false
	}
	return true
}

// Pass deletes what is due at now and reports how many recordings it
// deleted. With a Lease it does nothing while another holds it, and stops
// when it loses it.
//
// Only recordings with a signed manifest are candidates
// (Catalog.RetentionDue): one without may still be being uploaded by its
// node, from its spool after an outage. Each candidate is decided again
// from its facts (Policy.Decide) just before anything is written: a
// category set or a case linked since the query is honoured.
func (j *Job) Pass(ctx context.Context, now time.Time) (int, error) {
	if j.Lease != nil && j.Holder == "" {
		return 0, errors.New("retention: a lease needs a holder")
	}
	if j.Policy.Unlinked.IsZero() {
		return 0, errors.New("retention: no policy")
	}
	if !j.hold(ctx) {
		return 0, nil
	}
	recs, err := j.Catalog.RetentionDue(ctx, j.Policy, now, 100)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, rec := range recs {
		if i > 0 && !j.hold(ctx) {
			return n, nil
		}
		if err := j.delete(ctx, rec, now); err != nil {
			if errors.Is(err, errNotDue) {
				j.Log.Debug("retention: recording not due after all", "recording", rec.ID, "why", err)
				continue
			}
			if j.skipped != nil {
				j.skipped.Inc()
			}
			j.Log.Warn("retention: recording kept for now", "recording", rec.ID, "device", rec.DeviceID, "why", err)
			continue
		}
		n++
		if j.deleted != nil {
			j.deleted.Inc()
		}
	}
	return n, nil
}

var errHeld = errors.New("held")

// errNotDue: the query chose a recording its policy keeps (a category
// set, a case linked since, a year of 365 days).
var errNotDue = errors.New("not due")

func (j *Job) delete(ctx context.Context, rec evidence.Recording, now time.Time) error {
	facts, err := j.Catalog.RetentionFacts(ctx, rec)
	if err != nil {
		return err
	}
	decision := j.Policy.Decide(facts)
	if !decision.Due(now) {
		return fmt.Errorf("%w: %s (held %v, permanent %v, until %s)", errNotDue, decision.Rule, decision.Held, decision.Permanent,
			decision.Until.Format(time.RFC3339))
	}
	segs, err := j.Catalog.Segments(ctx, rec.ID)
	if err != nil {
		return err
	}
	var media []evidence.Segment
	var tomb *evidence.Segment
	for i, s := range segs {
		if s.Kind == evidence.KindTombstone {
			tomb = &segs[i]
		} else {
			media = append(media, s)
		}
	}
	// Nothing is written or deleted unless every object may go now: a
	// tombstone must never stand for footage that is still there.
	if tomb == nil {
		for _, s := range media {
			st, err := j.Store.Stat(ctx, s.Key)
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("object %s is missing: a gap for verification, not for retention", s.Key)
			}
			if err != nil {
				return err
			}
			if st.LegalHold {
				return fmt.Errorf("%w: %s is on legal hold", errHeld, s.Key)
			}
			if now.Before(st.RetainUntil) {
				return fmt.Errorf("%w: %s is locked until %s", errHeld, s.Key, st.RetainUntil.Format(time.RFC3339))
			}
		}
		reason := fmt.Sprintf("retention: in no case, kept until %s by the rule: %s", decision.Until.UTC().Format(time.RFC3339), decision.Rule)
		t := evidence.NewTombstone(rec, media, now, reason)
		t.Rule, t.RetainUntil, t.Categories = decision.Rule, decision.Until.UTC(), facts.Categories
		t.SigningKeyID = j.Signer.ID()
		key := rec.DeviceID + "/" + rec.ID + "/tombstone.json"
		body, err := j.putOnce(ctx, key, t.Marshal())
		if err != nil {
			return err
		}
		_, sig := j.Signer.Sign(body)
		if _, err := j.putOnce(ctx, key+".sig", sig); err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		last := int64(-1)
		for _, s := range media {
			last = max(last, s.Seq)
		}
		seg, err := j.Catalog.AppendSegment(ctx, evidence.Segment{RecordingID: rec.ID, DeviceID: rec.DeviceID, Seq: last + 1,
			Kind: evidence.KindTombstone, Key: key, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), StartedAt: now})
		if err != nil && !errors.Is(err, catalog.ErrExists) {
			return err
		}
		tomb = &seg
	}
	for _, s := range media {
		if err := j.Store.Delete(ctx, s.Key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	// What was derived from the footage goes with it: pictures and copies
	// of it are footage too. Their provenance records (what was made and
	// how, no picture or sound) stay, as the custody ledger names them.
	derived, err := j.Catalog.Derived(ctx, rec.ID)
	if err != nil {
		return err
	}
	for _, d := range derived {
		if err := j.Store.Delete(ctx, d.Key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("derived %s: %w", d.Key, err)
		}
	}
	if err := j.Catalog.ForgetDerived(ctx, rec.ID); err != nil {
		return err
	}
	if err := j.Catalog.MarkDeleted(ctx, rec.ID, now); err != nil {
		return err
	}
	j.Log.Info("retention deleted a recording's media; its tombstone is in the device's chain", "recording", rec.ID,
		"device", rec.DeviceID, "objects", len(media), "derived", len(derived), "tombstone", tomb.Key)
	if j.Custody != nil {
		j.Custody.Record(ctx, evidence.CustodyEvent{At: now, Actor: "retention", Role: "system", Action: evidence.ActionRetention,
			TargetKind: "recording", TargetID: rec.ID, Detail: fmt.Sprintf("%d objects and %d derived objects deleted; tombstone %s (chain link %d); kept until %s by the rule: %s",
				len(media), len(derived), tomb.Key, tomb.ChainSeq, decision.Until.UTC().Format(time.RFC3339), decision.Rule)})
	}
	return nil
}

// putOnce stores a small object, or keeps the one an interrupted pass
// stored under key (a tombstone is written once), and returns what is stored.
func (j *Job) putOnce(ctx context.Context, key string, body []byte) ([]byte, error) {
	sum := sha256.Sum256(body)
	_, err := j.Store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), storage.PutOptions{SHA256: sum[:], ContentType: "application/json"})
	if !errors.Is(err, storage.ErrExists) {
		return body, err
	}
	rc, err := j.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 16<<20))
}
