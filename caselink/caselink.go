// Package caselink owns linking footage to cases: who may link and unlink,
// the link row, the legal hold on every stored object of the recording, and
// the custody events of each, refusals included. The API (a user's request)
// and ingest (a recorder publishing with ?case=) both link through it, so
// the rule is written once.
package caselink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/password"
	"github.com/bodycam/bodycam/storage"
)

// Catalog is what linking needs from the system of record.
type Catalog interface {
	Case(ctx context.Context, id string) (evidence.Case, error)
	Recording(ctx context.Context, id string) (evidence.Recording, error)
	User(ctx context.Context, id string) (evidence.User, error)
	Segments(ctx context.Context, recordingID string) ([]evidence.Segment, error)
	LinkEvidence(ctx context.Context, l evidence.EvidenceLink) error
	UnlinkEvidence(ctx context.Context, id, by, reason string, at time.Time) error
	WithdrawLink(ctx context.Context, id, by, reason string, at time.Time) error
	EvidenceLink(ctx context.Context, id string) (evidence.EvidenceLink, error)
	EvidenceLinks(ctx context.Context, caseID, recordingID string) ([]evidence.EvidenceLink, error)
	SetRecordingCase(ctx context.Context, id, caseID string) error
	// Derived lists what jobs derived from a recording: held and released
	// with it.
	Derived(ctx context.Context, recordingID string) ([]catalog.Derived, error)
}

// Holds places and lifts legal holds on stored objects (the object store).
type Holds interface {
	SetLegalHold(ctx context.Context, key string, on bool) error
}

// Custody records custody events (the ledger).
type Custody interface {
	Record(ctx context.Context, e evidence.CustodyEvent) error
}

// Errors of linking. Each wraps the reason in words.
var (
	ErrNoCase      = errors.New("no such case")
	ErrNoRecording = errors.New("no such recording")
	ErrNoLink      = errors.New("no such link")
	ErrForbidden   = errors.New("not allowed")
	// ErrNotYours: the recording is not footage the user may read; the API
	// answers it as it answers a missing recording.
	ErrNotYours = errors.New("not footage this user may read")
	ErrSettled  = errors.New("the case's evidence is settled")
	ErrUnlinked = errors.New("the link is already removed")
	ErrInvalid  = errors.New("invalid request")
	ErrHold     = errors.New("the footage cannot be put on legal hold now")
)

// Options wire a Linker.
type Options struct {
	Catalog  Catalog
	Holds    Holds   // nil: no legal holds (tests of other parts)
	Custody  Custody // nil: no ledger (tests of other parts)
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Linker links and unlinks footage.
type Linker struct {
	o     Options
	links *prometheus.CounterVec
}

// New returns a Linker.
func New(o Options) *Linker {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	k := &Linker{o: o, links: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bodycam_case_links_total",
		Help: "Requests to link footage to a case or unlink it, by who asked (user or device), operation and outcome (ok, denied, failed).",
	}, []string{"by", "op", "outcome"})}
	if o.Registry != nil {
		o.Registry.MustRegister(k.links)
	}
	return k
}

// Actor is who asks: a signed-in user, or a device acting for its officer.
type Actor struct {
	// User is whose rights apply: the principal, or the device's officer.
	User evidence.User
	// Device is set when a recorder asks (?case=); the ledger then names
	// "device:<id>" as the actor.
	Device string
	Remote string
}

func (a Actor) id() string {
	if a.Device != "" {
		return "device:" + a.Device
	}
	return a.User.ID
}

func (a Actor) role() string {
	if a.Device != "" {
		return "device"
	}
	return string(a.User.Role)
}

func (a Actor) by() string {
	if a.Device != "" {
		return "device"
	}
	return "user"
}

// Request is a link to make: a whole recording, or the window [From, To)
// of one (a zero bound is open).
type Request struct {
	CaseID      string
	RecordingID string
	From, To    time.Time
	Note        string
}

// MayLink reports why u may not link footage of rec to c, or nil: u may
// change the case, and may read the footage itself (its officer's; linking
// does not pass through another case's access). The caller gives the
// footage's officer's unit (for supervisors).
func MayLink(u evidence.User, c evidence.Case, rec evidence.Recording, officerUnit string) error {
	if !evidence.MayChangeCase(u, c) {
		return fmt.Errorf("%w: %s (%s) may not change case %s", ErrForbidden, u.ID, u.Role, c.ID)
	}
	if !evidence.MayReadFootage(u, rec.OfficerID, officerUnit) {
		return fmt.Errorf("%w: recording %s, by %s", ErrNotYours, rec.ID, u.ID)
	}
	return nil
}

// Link links req's recording to req's case for a, after checking that a may
// (MayLink) and that the case takes evidence, then puts every stored object
// of the recording on legal hold. If the hold cannot be placed, the link is
// withdrawn (on record) and ErrHold returned: a link whose footage could
// still be deleted would promise what the store does not keep. Every
// outcome is a custody event.
func (k *Linker) Link(ctx context.Context, a Actor, req Request) (evidence.EvidenceLink, error) {
	l, err := k.link(ctx, a, req)
	k.count(a, "link", err)
	return l, err
}

func (k *Linker) link(ctx context.Context, a Actor, req Request) (evidence.EvidenceLink, error) {
	if !req.From.IsZero() && !req.To.IsZero() && !req.To.After(req.From) {
		return evidence.EvidenceLink{}, fmt.Errorf("%w: to must be after from", ErrInvalid)
	}
	c, err := k.o.Catalog.Case(ctx, req.CaseID)
	if errors.Is(err, catalog.ErrNotFound) {
		k.refused(ctx, a, req, "case "+req.CaseID+" does not exist")
		return evidence.EvidenceLink{}, fmt.Errorf("%w: %s", ErrNoCase, req.CaseID)
	}
	if err != nil {
		return evidence.EvidenceLink{}, err
	}
	rec, err := k.o.Catalog.Recording(ctx, req.RecordingID)
	if errors.Is(err, catalog.ErrNotFound) {
		return evidence.EvidenceLink{}, fmt.Errorf("%w: %s", ErrNoRecording, req.RecordingID)
	}
	if err != nil {
		return evidence.EvidenceLink{}, err
	}
	unit, err := k.unitOf(ctx, rec.OfficerID)
	if err != nil {
		return evidence.EvidenceLink{}, err
	}
	if err := MayLink(a.User, c, rec, unit); err != nil {
		k.refused(ctx, a, req, err.Error())
		return evidence.EvidenceLink{}, err
	}
	if !c.State.TakesEvidence() {
		k.refused(ctx, a, req, "case "+c.ID+" is "+string(c.State))
		return evidence.EvidenceLink{}, fmt.Errorf("%w: case %s is %s and takes no evidence", ErrSettled, c.ID, c.State)
	}
	l := evidence.EvidenceLink{ID: password.NewSecret()[:16], CaseID: c.ID, RecordingID: rec.ID, LinkedBy: a.id(),
		LinkedAt: time.Now().UTC().Truncate(time.Microsecond), Note: req.Note,
		From: req.From.UTC().Truncate(time.Microsecond), To: req.To.UTC().Truncate(time.Microsecond)}
	if req.From.IsZero() {
		l.From = time.Time{}
	}
	if req.To.IsZero() {
		l.To = time.Time{}
	}
	// Link, then hold what is stored: a segment stored meanwhile is either
	// listed here or sees the link when ingest checks after storing it
	// (HoldIfLinked).
	if err := k.o.Catalog.LinkEvidence(ctx, l); err != nil {
		if errors.Is(err, catalog.ErrConflict) { // closed meanwhile
			k.refused(ctx, a, req, err.Error())
			return l, fmt.Errorf("%w: %v", ErrSettled, err)
		}
		return l, err
	}
	window := "the whole recording"
	if !l.From.IsZero() || !l.To.IsZero() {
		window = "window " + fmtTime(l.From) + " to " + fmtTime(l.To)
	}
	if a.Device != "" {
		window += ", from its first byte"
	}
	if err := k.hold(ctx, rec.ID, true); err != nil {
		return l, k.withdraw(ctx, a, l, window, err)
	}
	k.record(ctx, a, evidence.CustodyEvent{Action: evidence.ActionLink, TargetKind: "recording", TargetID: rec.ID, CaseID: c.ID,
		Detail: "link " + l.ID + ": " + window + "; " + l.Note})
	k.record(ctx, a, evidence.CustodyEvent{Action: evidence.ActionHold, TargetKind: "recording", TargetID: rec.ID, CaseID: c.ID,
		Detail: "legal hold placed on every stored object, and on each stored from now on"})
	return l, nil
}

// withdraw takes back link l, whose legal hold failed with cause, on
// record, and lifts what holds were placed when no other case holds the
// recording. If the link cannot be taken back either, it stands, and the
// record says that its footage may not all be held (ingest holds what it
// stores from now on; linking again retries the rest).
func (k *Linker) withdraw(ctx context.Context, a Actor, l evidence.EvidenceLink, window string, cause error) error {
	k.o.Log.Error("legal hold failed; the link is withdrawn", "recording", l.RecordingID, "case", l.CaseID, "err", cause)
	e := evidence.CustodyEvent{Action: evidence.ActionLink, TargetKind: "recording", TargetID: l.RecordingID, CaseID: l.CaseID,
		Outcome: evidence.OutcomeFailed}
	if err := k.o.Catalog.WithdrawLink(ctx, l.ID, a.id(), withdrawnForHold+cause.Error(), time.Now().UTC()); err != nil {
		k.o.Log.Error("a link whose legal hold failed could not be withdrawn; it stands, its footage perhaps not all held",
			"recording", l.RecordingID, "case", l.CaseID, "link", l.ID, "err", err)
		e.Detail = "link " + l.ID + " (" + window + ") stands, but the legal hold could not be placed on every object (" + cause.Error() +
			") nor the link withdrawn (" + err.Error() + ")"
		k.record(ctx, a, e)
		return fmt.Errorf("%w: %v; the link could not be withdrawn: %v", ErrHold, cause, err)
	}
	e.Detail = "link " + l.ID + " (" + window + ") withdrawn: the legal hold could not be placed: " + cause.Error()
	k.record(ctx, a, e)
	k.release(ctx, a, l)
	return fmt.Errorf("%w: %v", ErrHold, cause)
}

// withdrawnForHold begins the reason of a link withdrawn because its hold
// failed.
const withdrawnForHold = "legal hold could not be placed: "

// release lifts the legal hold on a recording that link l no longer holds,
// unless another active link does (when unsure, it stays held).
func (k *Linker) release(ctx context.Context, a Actor, l evidence.EvidenceLink) {
	links, err := k.o.Catalog.EvidenceLinks(ctx, "", l.RecordingID)
	held := err != nil
	for _, other := range links {
		held = held || (other.Active() && other.ID != l.ID)
	}
	if held {
		return
	}
	if err := k.hold(ctx, l.RecordingID, false); err != nil {
		k.o.Log.Error("legal hold not lifted; the footage stays held", "recording", l.RecordingID, "err", err)
		return
	}
	k.record(ctx, a, evidence.CustodyEvent{Action: evidence.ActionHold, TargetKind: "recording", TargetID: l.RecordingID, CaseID: l.CaseID,
		Detail: "legal hold lifted: in no case any more"})
}

// refused records a refused link. It names the case only in its detail:
// a refused attempt is not part of that case's record, and its excerpt
// shows only its own events.
func (k *Linker) refused(ctx context.Context, a Actor, req Request, why string) {
	detail := "link to case " + req.CaseID + " refused: " + why
	if a.Device != "" {
		detail = "published with ?case=" + req.CaseID + ": recorded, not linked: " + why
	}
	k.o.Log.Warn("link refused", "actor", a.id(), "case", req.CaseID, "recording", req.RecordingID, "why", why)
	k.record(ctx, a, evidence.CustodyEvent{Action: evidence.ActionLink, TargetKind: "recording", TargetID: req.RecordingID,
		Detail: detail, Outcome: evidence.OutcomeDenied})
}

// Unlink removes link linkID from case caseID for a, with a reason kept
// forever, and lifts the legal hold when no other case holds the recording.
// A case whose evidence is settled (decided or later) keeps its links.
func (k *Linker) Unlink(ctx context.Context, a Actor, caseID, linkID, reason string) (evidence.EvidenceLink, error) {
	l, err := k.unlink(ctx, a, caseID, linkID, reason)
	k.count(a, "unlink", err)
	return l, err
}

func (k *Linker) unlink(ctx context.Context, a Actor, caseID, linkID, reason string) (evidence.EvidenceLink, error) {
	c, err := k.o.Catalog.Case(ctx, caseID)
	if errors.Is(err, catalog.ErrNotFound) {
		return evidence.EvidenceLink{}, fmt.Errorf("%w: %s", ErrNoCase, caseID)
	}
	if err != nil {
		return evidence.EvidenceLink{}, err
	}
	l, err := k.o.Catalog.EvidenceLink(ctx, linkID)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && l.CaseID != c.ID) {
		return evidence.EvidenceLink{}, fmt.Errorf("%w: %s in case %s", ErrNoLink, linkID, c.ID)
	}
	if err != nil {
		return l, err
	}
	deny := func(why string) {
		k.o.Log.Warn("unlink refused", "actor", a.id(), "case", c.ID, "link", l.ID, "why", why)
		k.record(ctx, a, evidence.CustodyEvent{Action: evidence.ActionUnlink, TargetKind: "recording", TargetID: l.RecordingID, CaseID: c.ID,
			Detail: "removing link " + l.ID + " refused: " + why, Outcome: evidence.OutcomeDenied})
	}
	if !evidence.MayChangeCase(a.User, c) {
		why := a.User.ID + " may not change case " + c.ID
		deny(why)
		return l, fmt.Errorf("%w: %s", ErrForbidden, why)
	}
	if c.State.EvidenceSettled() {
		why := "case " + c.ID + " is " + string(c.State) + ": its evidence is settled"
		deny(why)
		return l, fmt.Errorf("%w: %s", ErrSettled, why)
	}
	if err := k.o.Catalog.UnlinkEvidence(ctx, l.ID, a.id(), reason, time.Now().UTC()); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			if l2, _ := k.o.Catalog.EvidenceLink(ctx, l.ID); !l2.Active() {
				return l2, fmt.Errorf("%w: %s", ErrUnlinked, l.ID)
			}
			deny(err.Error()) // the case was decided meanwhile
			return l, fmt.Errorf("%w: %v", ErrSettled, err)
		}
		return l, err
	}
	k.record(ctx, a, evidence.CustodyEvent{Action: evidence.ActionUnlink, TargetKind: "recording", TargetID: l.RecordingID, CaseID: c.ID,
		Detail: "link " + l.ID + " removed: " + reason})
	k.release(ctx, a, l)
	return k.o.Catalog.EvidenceLink(ctx, l.ID)
}

// LinkFromStart links a recording published with ?case= to that case from
// its first byte, for the device's officer: the same rule as a user's link
// (the officer must be an active user who may change the case). A refused
// link leaves the recording recorded (evidence is never refused) but in no
// case, and clears the case it names, so that neither the recording nor
// its signed manifest claims a case it is not in; the refusal is a custody
// event, a log line and a metric. A link that could not be decided (the
// catalog or the store failing) is a "failed" event and leaves the claim:
// EnsureLinked, before the manifest is signed, tries again. Ingest calls it
// once the recording is in the catalog.
func (k *Linker) LinkFromStart(ctx context.Context, rec evidence.Recording) error {
	a := Actor{Device: rec.DeviceID, Remote: rec.RemoteAddr}
	officer, err := k.o.Catalog.User(ctx, rec.OfficerID)
	switch {
	case rec.OfficerID == "" || errors.Is(err, catalog.ErrNotFound):
		err = fmt.Errorf("%w: device %s has no officer who could link it", ErrForbidden, rec.DeviceID)
	case err == nil && officer.Disabled:
		err = fmt.Errorf("%w: the device's officer %s is disabled", ErrForbidden, officer.ID)
	}
	if err == nil {
		a.User = officer
		_, err = k.Link(ctx, a, Request{CaseID: rec.CaseID, RecordingID: rec.ID, Note: "published with ?case=" + rec.CaseID})
		if err == nil {
			return nil
		}
	} else if errors.Is(err, ErrForbidden) {
		k.refused(ctx, a, Request{CaseID: rec.CaseID, RecordingID: rec.ID}, err.Error())
		k.count(a, "link", err)
	}
	if Refused(err) {
		k.unclaim(ctx, rec)
		return err
	}
	k.o.Log.Error("a recording published for a case could not be linked yet; tried again before its manifest is signed",
		"recording", rec.ID, "case", rec.CaseID, "err", err)
	if !errors.Is(err, ErrHold) { // a failed hold is on record already
		k.record(ctx, a, evidence.CustodyEvent{Action: evidence.ActionLink, TargetKind: "recording", TargetID: rec.ID,
			Detail:  "published with ?case=" + rec.CaseID + ": not linked yet (tried again before the manifest is signed): " + err.Error(),
			Outcome: evidence.OutcomeFailed})
	}
	return err
}

// Refused reports whether err is a link refused by the rules (as opposed to
// one that could not be made: a failing catalog or store).
func Refused(err error) bool {
	for _, r := range []error{ErrForbidden, ErrNotYours, ErrNoCase, ErrNoRecording, ErrSettled, ErrInvalid} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// EnsureLinked settles, before a recording's manifest is signed, the link
// its recorder asked for with ?case= (rec.CaseID): nothing to do when the
// device's link was made (whatever became of it since) or refused (then
// the recording names no case); otherwise LinkFromStart again. It returns
// an error only when that still cannot be decided, so the caller tries
// again later.
func (k *Linker) EnsureLinked(ctx context.Context, rec evidence.Recording) error {
	if rec.CaseID == "" {
		return nil
	}
	links, err := k.o.Catalog.EvidenceLinks(ctx, "", rec.ID)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.CaseID == rec.CaseID && l.LinkedBy == "device:"+rec.DeviceID && !strings.HasPrefix(l.UnlinkReason, withdrawnForHold) {
			return nil
		}
	}
	if err := k.LinkFromStart(ctx, rec); err != nil && !Refused(err) {
		return err
	}
	return nil
}

// unclaim clears the case a recording names when it is not linked to it.
func (k *Linker) unclaim(ctx context.Context, rec evidence.Recording) {
	if err := k.o.Catalog.SetRecordingCase(ctx, rec.ID, ""); err != nil {
		k.o.Log.Error("recording still names a case it is not linked to", "recording", rec.ID, "case", rec.CaseID, "err", err)
	}
}

// HoldIfLinked puts a newly stored object of a recording on legal hold if
// the recording is linked to a case (ingest, after each object it stores).
func (k *Linker) HoldIfLinked(ctx context.Context, recordingID, key string) error {
	if k.o.Holds == nil {
		return nil
	}
	links, err := k.o.Catalog.EvidenceLinks(ctx, "", recordingID)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Active() {
			return k.o.Holds.SetLegalHold(ctx, key, true)
		}
	}
	return nil
}

// hold places or lifts the legal hold on every stored object of a
// recording: its segments, its manifest and the manifest's signature, and
// what jobs derived from it (pictures, proxies, clips, redacted copies,
// their provenance records and signatures).
func (k *Linker) hold(ctx context.Context, recordingID string, on bool) error {
	if k.o.Holds == nil {
		return nil
	}
	segs, err := k.o.Catalog.Segments(ctx, recordingID)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		if err := k.o.Holds.SetLegalHold(ctx, sg.Key, on); err != nil {
			return err
		}
	}
	rec, err := k.o.Catalog.Recording(ctx, recordingID)
	if err != nil {
		return err
	}
	if rec.ManifestKey != "" {
		for _, key := range []string{rec.ManifestKey, rec.ManifestKey + ".sig"} {
			if err := k.o.Holds.SetLegalHold(ctx, key, on); err != nil {
				return err
			}
		}
	}
	derived, err := k.o.Catalog.Derived(ctx, recordingID)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range derived {
		for _, key := range []string{d.Key, d.ProvenanceKey, d.ProvenanceKey + ".sig"} {
			if key == "" || key == ".sig" || seen[key] {
				continue
			}
			seen[key] = true
			if err := k.o.Holds.SetLegalHold(ctx, key, on); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// unitOf is the unit of the officer who recorded footage ("" when unknown).
func (k *Linker) unitOf(ctx context.Context, officer string) (string, error) {
	if officer == "" {
		return "", nil
	}
	u, err := k.o.Catalog.User(ctx, officer)
	if errors.Is(err, catalog.ErrNotFound) {
		return "", nil
	}
	return u.Unit, err
}

func (k *Linker) record(ctx context.Context, a Actor, e evidence.CustodyEvent) {
	if k.o.Custody == nil {
		return
	}
	e.Actor, e.Role, e.Remote = a.id(), a.role(), a.Remote
	k.o.Custody.Record(ctx, e) // a failure is logged and counted by the ledger
}

func (k *Linker) count(a Actor, op string, err error) {
	outcome := evidence.OutcomeOK
	switch {
	case Refused(err):
		outcome = evidence.OutcomeDenied
	case err != nil:
		outcome = evidence.OutcomeFailed
	}
	k.links.WithLabelValues(a.by(), op, outcome).Inc()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(open)"
	}
	return t.Format(time.RFC3339Nano)
}
