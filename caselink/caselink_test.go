package caselink_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/caselink"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/dir"
)

// ledger keeps the events it is given.
type ledger struct{ events []evidence.CustodyEvent }

func (l *ledger) Record(_ context.Context, e evidence.CustodyEvent) error {
	l.events = append(l.events, e)
	return nil
}

// brokenHolds cannot place legal holds.
type brokenHolds struct{}

func (brokenHolds) SetLegalHold(context.Context, string, bool) error {
	return errors.New("object store down")
}

type fixture struct {
	cat    *catalog.Catalog
	store  *dir.Store
	ledger *ledger
	links  *caselink.Linker
}

// newFixture: units a and b, each with an officer (o-a, o-b) and a device
// (cam-a, cam-b); o-x is a disabled officer of unit a with device cam-x;
// cam-n has no officer. Cases A-1 (o-a's) and B-1 (o-b's).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	d := t.TempDir()
	cat, err := catalog.Open(ctx, "", d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	store, err := dir.Open(d+"/objects", dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []evidence.User{
		{ID: "o-a", Role: evidence.RoleOfficer, Unit: "a"}, {ID: "o-b", Role: evidence.RoleOfficer, Unit: "b"},
		{ID: "o-x", Role: evidence.RoleOfficer, Unit: "a", Disabled: true}, {ID: "aud", Role: evidence.RoleAuditor},
	} {
		u.CertToken = "cert-" + u.ID
		if err := cat.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for dev, officer := range map[string]string{"cam-a": "o-a", "cam-b": "o-b", "cam-x": "o-x", "cam-n": ""} {
		if err := cat.CreateDevice(ctx, evidence.Device{ID: dev, OfficerID: officer, SecretHash: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for id, officer := range map[string]string{"A-1": "o-a", "B-1": "o-b"} {
		unit := officer[2:]
		if err := cat.CreateCase(ctx, evidence.Case{ID: id, Officer: officer, Unit: unit, CreatedBy: officer}); err != nil {
			t.Fatal(err)
		}
	}
	l := &ledger{}
	return &fixture{cat: cat, store: store, ledger: l,
		links: caselink.New(caselink.Options{Catalog: cat, Holds: store, Custody: l, Log: slog.New(slog.DiscardHandler)})}
}

// published adds a recording of dev published for caseID, with one stored
// object.
func (f *fixture) published(t *testing.T, id, dev, officer, caseID string) evidence.Recording {
	t.Helper()
	ctx := context.Background()
	rec := evidence.Recording{ID: id, DeviceID: dev, OfficerID: officer, CaseID: caseID, StartedAt: time.Now(), RemoteAddr: "10.0.0.7:5000"}
	if err := f.cat.CreateRecording(ctx, rec); err != nil {
		t.Fatal(err)
	}
	key := dev + "/" + id + "/init.mp4"
	info, err := f.store.Put(ctx, key, bytes.NewReader([]byte("init")), 4, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cat.AppendSegment(ctx, evidence.Segment{RecordingID: id, Kind: evidence.KindInit, Key: key, Size: 4, SHA256: info.SHA256, StartedAt: rec.StartedAt}); err != nil {
		t.Fatal(err)
	}
	return rec
}

func (f *fixture) held(t *testing.T, rec evidence.Recording) bool {
	t.Helper()
	st, err := f.store.Stat(context.Background(), rec.DeviceID+"/"+rec.ID+"/init.mp4")
	if err != nil {
		t.Fatal(err)
	}
	return st.LegalHold
}

// A recorder publishing for a case is held to its officer's rights: linked
// to its own officer's case; refused, recorded in no case and on record,
// for another unit's case, a missing case, a disabled officer or none.
func TestLinkFromStart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, c := range []struct {
		dev, officer, caseID string
		err                  error
		why                  string
	}{
		{"cam-a", "o-a", "A-1", nil, ""},
		{"cam-a", "o-a", "B-1", caselink.ErrForbidden, "o-a (officer) may not change case B-1"},
		{"cam-b", "o-b", "A-1", caselink.ErrForbidden, "o-b (officer) may not change case A-1"},
		{"cam-a", "o-a", "NOPE-1", caselink.ErrNoCase, "case NOPE-1 does not exist"},
		{"cam-x", "o-x", "A-1", caselink.ErrForbidden, "the device's officer o-x is disabled"},
		{"cam-n", "", "A-1", caselink.ErrForbidden, "device cam-n has no officer"},
	} {
		id := "r-" + c.dev + "-" + c.caseID
		rec := f.published(t, id, c.dev, c.officer, c.caseID)
		f.ledger.events = nil
		err := f.links.LinkFromStart(ctx, rec)
		if !errors.Is(err, c.err) && !(c.err == nil && err == nil) {
			t.Fatalf("%s: %v, want %v", id, err, c.err)
		}
		got, _ := f.cat.Recording(ctx, id)
		links, _ := f.cat.EvidenceLinks(ctx, "", id)
		if c.err == nil {
			if got.CaseID != c.caseID || len(links) != 1 || links[0].LinkedBy != "device:"+c.dev || !f.held(t, rec) {
				t.Fatalf("%s: %+v, links %+v; want it linked and held", id, got, links)
			}
			if len(f.ledger.events) != 2 || f.ledger.events[0].Action != evidence.ActionLink || f.ledger.events[0].CaseID != c.caseID {
				t.Fatalf("%s: events %+v", id, f.ledger.events)
			}
			continue
		}
		if got.CaseID != "" || len(links) != 0 || f.held(t, rec) {
			t.Fatalf("%s: %+v, links %+v, held %v; want it in no case", id, got, links, f.held(t, rec))
		}
		if len(f.ledger.events) != 1 {
			t.Fatalf("%s: events %+v, want the refusal", id, f.ledger.events)
		}
		e := f.ledger.events[0]
		if e.Actor != "device:"+c.dev || e.Role != "device" || e.Remote != rec.RemoteAddr || e.Outcome != evidence.OutcomeDenied ||
			e.CaseID != "" || !strings.Contains(e.Detail, c.why) || !strings.Contains(e.Detail, "recorded, not linked") {
			t.Fatalf("%s: refusal %+v, want it to say %q", id, e, c.why)
		}
	}
}

// A user links footage they may read to a case they may change; a link
// whose hold cannot be placed is withdrawn, on record.
func TestLink(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	recA := f.published(t, "ra", "cam-a", "o-a", "")
	recB := f.published(t, "rb", "cam-b", "o-b", "")
	oa, _ := f.cat.User(ctx, "o-a")
	aud, _ := f.cat.User(ctx, "aud")
	as := func(u evidence.User) caselink.Actor { return caselink.Actor{User: u, Remote: "10.0.0.1:1"} }
	if _, err := f.links.Link(ctx, as(oa), caselink.Request{CaseID: "A-1", RecordingID: recB.ID}); !errors.Is(err, caselink.ErrNotYours) {
		t.Fatalf("o-a links o-b's footage: %v", err)
	}
	if _, err := f.links.Link(ctx, as(oa), caselink.Request{CaseID: "B-1", RecordingID: recA.ID}); !errors.Is(err, caselink.ErrForbidden) {
		t.Fatalf("o-a links into o-b's case: %v", err)
	}
	if _, err := f.links.Link(ctx, as(aud), caselink.Request{CaseID: "A-1", RecordingID: recA.ID}); !errors.Is(err, caselink.ErrForbidden) {
		t.Fatalf("an auditor links: %v", err)
	}
	from := time.Now()
	if _, err := f.links.Link(ctx, as(oa), caselink.Request{CaseID: "A-1", RecordingID: recA.ID, From: from, To: from.Add(-time.Second)}); !errors.Is(err, caselink.ErrInvalid) {
		t.Fatalf("an empty window: %v", err)
	}
	broken := caselink.New(caselink.Options{Catalog: f.cat, Holds: brokenHolds{}, Custody: f.ledger, Log: slog.New(slog.DiscardHandler)})
	f.ledger.events = nil
	l, err := broken.Link(ctx, as(oa), caselink.Request{CaseID: "A-1", RecordingID: recA.ID})
	if !errors.Is(err, caselink.ErrHold) {
		t.Fatalf("link without a hold: %v", err)
	}
	if got, _ := f.cat.EvidenceLink(ctx, l.ID); got.Active() {
		t.Fatalf("a link without its hold stays: %+v", got)
	}
	if len(f.ledger.events) != 1 || f.ledger.events[0].Outcome != evidence.OutcomeFailed {
		t.Fatalf("events %+v, want the withdrawn link", f.ledger.events)
	}
	// Also once the case is decided (its links can no longer be removed by
	// anyone), a link without its hold is withdrawn.
	if err := f.cat.CreateCase(ctx, evidence.Case{ID: "A-2", Officer: "o-a", Unit: "a", CreatedBy: "o-a"}); err != nil {
		t.Fatal(err)
	}
	states := evidence.CaseStates()
	for i, to := range states[1:4] {
		if err := f.cat.TransitionCase(ctx, evidence.CaseTransition{CaseID: "A-2", From: states[i], To: to, By: "s", Reason: "r", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	l, err = broken.Link(ctx, as(oa), caselink.Request{CaseID: "A-2", RecordingID: recA.ID})
	if got, _ := f.cat.EvidenceLink(ctx, l.ID); !errors.Is(err, caselink.ErrHold) || got.Active() {
		t.Fatalf("link to a decided case without a hold: %v, %+v", err, got)
	}
	// A proxy made of it before the link (as a job stores one): held and
	// released with it.
	proxy := "derived/cam-a/ra/proxy-01234567.mp4"
	if _, err := f.store.Put(ctx, proxy, bytes.NewReader([]byte("p")), 1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.cat.Enqueue(ctx, catalog.JobRequest{Kind: "proxy", Source: recA.ID, RequestedBy: "system"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pj, err := f.cat.Claim(ctx, "w", []string{"proxy"}, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cat.Complete(ctx, pj.Lease(), []catalog.Derived{{RecordingID: recA.ID, Kind: "proxy", Key: proxy, SHA256: strings.Repeat("0", 64),
		Size: 1, ContentType: "video/mp4", ProvenanceKey: "derived/cam-a/ra/proxy-01234567.provenance.json", JobID: pj.ID}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	proxyHeld := func() bool {
		st, err := f.store.Stat(ctx, proxy)
		if err != nil {
			t.Fatal(err)
		}
		return st.LegalHold
	}
	l, err = f.links.Link(ctx, as(oa), caselink.Request{CaseID: "A-1", RecordingID: recA.ID, Note: "the stop"})
	if err != nil || !f.held(t, recA) || !proxyHeld() {
		t.Fatalf("link: %+v %v, held %v, its proxy held %v", l, err, f.held(t, recA), proxyHeld())
	}
	if _, err := f.links.Unlink(ctx, as(oa), "B-1", l.ID, "wrong"); !errors.Is(err, caselink.ErrNoCase) && !errors.Is(err, caselink.ErrNoLink) {
		t.Fatalf("unlink through another case: %v", err)
	}
	if _, err := f.links.Unlink(ctx, as(oa), "A-1", l.ID, "wrong stop"); err != nil || f.held(t, recA) || proxyHeld() {
		t.Fatalf("unlink: %v, held %v, its proxy held %v", err, f.held(t, recA), proxyHeld())
	}
}

// flaky is the catalog failing User lookups while down is set.
type flaky struct {
	*catalog.Catalog
	down bool
}

func (f *flaky) User(ctx context.Context, id string) (evidence.User, error) {
	if f.down {
		return evidence.User{}, errors.New("catalog: connection refused")
	}
	return f.Catalog.User(ctx, id)
}

// A link asked for with ?case= that could not be decided (the catalog
// failing) keeps its claim, is on record as failed, and is made before the
// manifest is signed (EnsureLinked); one made or refused is left alone.
func TestEnsureLinked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cat := &flaky{Catalog: f.cat, down: true}
	links := caselink.New(caselink.Options{Catalog: cat, Holds: f.store, Custody: f.ledger, Log: slog.New(slog.DiscardHandler)})
	rec := f.published(t, "r1", "cam-a", "o-a", "A-1")
	f.ledger.events = nil
	if err := links.LinkFromStart(ctx, rec); err == nil || caselink.Refused(err) {
		t.Fatalf("link with the catalog down: %v", err)
	}
	if got, _ := f.cat.Recording(ctx, "r1"); got.CaseID != "A-1" {
		t.Fatalf("the claim was dropped on a failure: %+v", got)
	}
	if len(f.ledger.events) != 1 || f.ledger.events[0].Outcome != evidence.OutcomeFailed {
		t.Fatalf("events %+v, want the failed link", f.ledger.events)
	}
	cat.down = false
	for i := 0; i < 2; i++ { // the second finds the link made
		if err := links.EnsureLinked(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if l, _ := f.cat.EvidenceLinks(ctx, "A-1", ""); len(l) != 1 || !l[0].Active() || !f.held(t, rec) {
		t.Fatalf("links of A-1: %+v, held %v", l, f.held(t, rec))
	}
	// Refused: nothing to settle later.
	other := f.published(t, "r2", "cam-a", "o-a", "B-1")
	if err := links.LinkFromStart(ctx, other); !caselink.Refused(err) {
		t.Fatalf("link into another unit's case: %v", err)
	}
	other, _ = f.cat.Recording(ctx, "r2")
	if err := links.EnsureLinked(ctx, other); err != nil || other.CaseID != "" {
		t.Fatalf("after a refusal: %v, %+v", err, other)
	}
}
