package catalogtest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// The dashboard's rows (catalog.Stats): each number on seeded data, and
// the scope of a unit and of an officer.
func testStats(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	signer, _ := newSigner()
	for _, u := range []evidence.User{
		{ID: "off-a", Role: evidence.RoleOfficer, Unit: "a"},
		{ID: "off-b", Role: evidence.RoleOfficer, Unit: "b"},
	} {
		u.CertToken, u.CreatedAt = "cert-"+u.ID, t0
		if err := c.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for dev, off := range map[string]string{"cam-a": "off-a", "cam-b": "off-b"} {
		d := device(dev)
		d.OfficerID = off
		if err := c.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(id, dev, off string, start time.Time, length time.Duration, reason string) {
		t.Helper()
		r := recording(id, dev, start)
		r.OfficerID, r.CaseID = off, ""
		if length > 0 {
			r.State, r.EndedAt, r.EndReason = evidence.StateComplete, start.Add(length), reason
			if evidence.EndedSilent(reason) {
				r.State = evidence.StateInterrupted
			}
		}
		if err := c.CreateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	rec("ra1", "cam-a", "off-a", t0, 30*time.Minute, "publisher stopped")
	rec("ra2", "cam-a", "off-a", t0.Add(day), 15*time.Minute, "no data for 10s (read timeout)")
	rec("ra3", "cam-a", "off-a", t0.Add(2*day), 0, "") // live
	rec("rb1", "cam-b", "off-b", t0, 2*time.Hour, "publisher stopped")
	rec("rb0", "cam-b", "off-b", t0.Add(-time.Hour), 10*time.Minute, "publisher disconnected: EOF") // before the period
	// An important upload of off-a's, in no case.
	u := upload("up-1", "dock-1", "cam-a", "important")
	u.OfficerID, u.StartedAt, u.EndedAt = "off-a", t0.Add(3*time.Hour), t0.Add(3*time.Hour+5*time.Minute)
	mustUpload(t, c, u)
	if err := c.SetUploadState(ctx, "up-1", catalog.UploadFinishing, "", u.SHA256); err != nil {
		t.Fatal(err)
	}
	ur, us := uploaded(u, "ru1")
	if _, _, err := c.StoreUpload(ctx, ur, us, "up-1"); err != nil {
		t.Fatal(err)
	}
	pending := upload("up-2", "dock-1", "cam-b", "pending")
	pending.OfficerID = "off-b"
	mustUpload(t, c, pending)
	for _, e := range []evidence.CustodyEvent{
		{At: t0.Add(31 * time.Minute), Actor: "device:cam-a", Action: evidence.ActionIngest, TargetKind: "recording", TargetID: "ra1"},
		{At: t0.Add(day + 3*time.Hour), Actor: "device:cam-b", Action: evidence.ActionIngest, TargetKind: "recording", TargetID: "rb1"}, // late
		{At: t0.Add(time.Hour), Actor: "off-a", Action: evidence.ActionDenied, TargetKind: "request", TargetID: "GET /x", Outcome: evidence.OutcomeDenied},
		{At: t0.Add(time.Hour), Actor: "anonymous", Action: evidence.ActionDenied, TargetKind: "request", TargetID: "GET /y", Outcome: evidence.OutcomeDenied},
		{At: t0.Add(-time.Hour), Actor: "off-b", Action: evidence.ActionDenied, TargetKind: "request", TargetID: "GET /z", Outcome: evidence.OutcomeDenied}, // before
		{At: t0.Add(2 * time.Hour), Actor: "aud", Action: evidence.ActionVerify, TargetKind: "recording", TargetID: "rb1", Outcome: evidence.OutcomeFailed},
		{At: t0.Add(2 * time.Hour), Actor: "aud", Action: evidence.ActionVerify, TargetKind: "recording", TargetID: "ra1"},
	} {
		if _, err := c.AppendCustody(ctx, e, signer); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []evidence.Case{
		{ID: "C-a", Officer: "off-a", Unit: "a", CreatedBy: "off-a", CreatedAt: t0},
		{ID: "C-b", Officer: "off-b", Unit: "b", CreatedBy: "off-b", CreatedAt: t0},
	} {
		if err := c.CreateCase(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.TransitionCase(ctx, evidence.CaseTransition{CaseID: "C-a", From: evidence.CaseFiled, To: evidence.CaseInvestigating, By: "off-a", At: t0.Add(10 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	now := t0.Add(2*day + time.Hour)
	q := catalog.StatsQuery{From: t0, To: t0.Add(7 * day), Now: now, StepStates: []evidence.CaseState{evidence.CaseFiled, evidence.CaseInvestigating}}
	st, err := c.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	d0 := t0.Unix() / 86400
	wantDays := []catalog.StatsDay{
		// ra1 (stored in 1 min), the upload (never stored in the ledger: decided, late), rb1 (stored late)
		{Officer: "off-a", Unit: "a", Day: d0, Recordings: 2, Recorded: 35 * time.Minute, ImportantUnfiled: 1, StoredDecided: 2, StoredWithin: 1},
		{Officer: "off-b", Unit: "b", Day: d0, Recordings: 1, Recorded: 2 * time.Hour, StoredDecided: 1},
		// ra2: silent; ended 24 h 45 min before now, not stored
		{Officer: "off-a", Unit: "a", Day: d0 + 1, Recordings: 1, Recorded: 15 * time.Minute, Silent: 1, StoredDecided: 1},
		// ra3: still recording, an hour so far
		{Officer: "off-a", Unit: "a", Day: d0 + 2, Recordings: 1, Recorded: time.Hour},
	}
	if !reflect.DeepEqual(st.Days, wantDays) {
		t.Errorf("days:\n got %+v\nwant %+v", st.Days, wantDays)
	}
	if want := []catalog.StatsDevice{{Device: "cam-a", Officer: "off-a", Unit: "a"}}; !reflect.DeepEqual(st.Live, want) {
		t.Errorf("live %+v, want %+v", st.Live, want)
	}
	if want := []catalog.StatsDevice{{Device: "cam-a", Officer: "off-a", Unit: "a"}}; !reflect.DeepEqual(st.Silent, want) {
		t.Errorf("silent %+v, want %+v (rb0 is before the period)", st.Silent, want)
	}
	if want := []catalog.StatsCount{{Officer: "off-b", Unit: "b", N: 1}}; !reflect.DeepEqual(st.UploadsPending, want) {
		t.Errorf("pending uploads %+v, want %+v", st.UploadsPending, want)
	}
	if want := []catalog.StatsCount{{N: 1}, {Officer: "off-a", Unit: "a", N: 1}}; !reflect.DeepEqual(st.Refusals, want) {
		t.Errorf("refusals %+v, want %+v", st.Refusals, want)
	}
	if want := []catalog.StatsCount{{Officer: "off-b", Unit: "b", N: 1}}; !reflect.DeepEqual(st.VerifyFailures, want) {
		t.Errorf("verification failures %+v, want %+v", st.VerifyFailures, want)
	}
	wantCases := []catalog.StatsCases{{State: evidence.CaseFiled, Officer: "off-b", Unit: "b", N: 1},
		{State: evidence.CaseInvestigating, Officer: "off-a", Unit: "a", N: 1}}
	if !reflect.DeepEqual(st.Cases, wantCases) {
		t.Errorf("cases %+v, want %+v", st.Cases, wantCases)
	}
	wantOpen := []catalog.StatsOpenCase{{ID: "C-a", State: evidence.CaseInvestigating, Officer: "off-a", Unit: "a", Since: t0.Add(10 * time.Hour)},
		{ID: "C-b", State: evidence.CaseFiled, Officer: "off-b", Unit: "b", Since: t0}}
	if !reflect.DeepEqual(st.Open, wantOpen) {
		t.Errorf("open cases %+v, want %+v", st.Open, wantOpen)
	}
	wantSteps := []catalog.StatsStep{{CaseID: "C-a", State: evidence.CaseFiled, Officer: "off-a", Unit: "a", Entered: t0, Left: t0.Add(10 * time.Hour)}}
	if !reflect.DeepEqual(st.Steps, wantSteps) {
		t.Errorf("steps %+v, want %+v", st.Steps, wantSteps)
	}

	// Unit b only: none of unit a's rows, and no anonymous refusal.
	q.Unit = "b"
	st, err = c.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Days) != 1 || st.Days[0].Officer != "off-b" || len(st.Live) != 0 || len(st.Silent) != 0 || len(st.Refusals) != 0 ||
		len(st.VerifyFailures) != 1 || len(st.UploadsPending) != 1 || len(st.Cases) != 1 || st.Cases[0].Unit != "b" ||
		len(st.Open) != 1 || st.Open[0].ID != "C-b" || len(st.Steps) != 0 {
		t.Errorf("unit b: %+v", st)
	}
	// Officer off-a in unit b: nothing.
	q.Officer = "off-a"
	st, err = c.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Days)+len(st.Live)+len(st.Silent)+len(st.Refusals)+len(st.VerifyFailures)+len(st.UploadsPending)+len(st.Cases)+len(st.Open)+len(st.Steps) != 0 {
		t.Errorf("officer off-a of unit b: %+v, want nothing", st)
	}
	q.Unit = ""
	st, err = c.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Days) != 3 || len(st.Live) != 1 || len(st.Refusals) != 1 || st.Refusals[0].Officer != "off-a" || len(st.VerifyFailures) != 0 ||
		len(st.Steps) != 1 || len(st.Open) != 1 {
		t.Errorf("officer off-a: %+v", st)
	}
}
