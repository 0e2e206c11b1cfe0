package catalogtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Categories: set as a whole, read back sorted; a change from a set that
// is no longer current is ErrConflict with nothing changed; unknown
// recordings ErrNotFound.
func testRecordingCategories(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	for _, id := range []string{"r1", "r2"} {
		if err := c.CreateRecording(ctx, recording(id, "cam-1", t0)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := c.RecordingCategories(ctx, []string{"r1", "r2"}); err != nil || len(got) != 0 {
		t.Fatalf("categories of new recordings: %v, %v", got, err)
	}
	if err := c.SetRecordingCategories(ctx, "r1", nil, []string{"traffic_stop", "arrest"}, "o-1", t0); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRecordingCategories(ctx, "r1", nil, []string{"complaint"}, "o-1", t0); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("a change from a stale set: %v, want ErrConflict", err)
	}
	if err := c.SetRecordingCategories(ctx, "r2", nil, []string{"no_incident"}, "s-1", t0); err != nil {
		t.Fatal(err)
	}
	got, err := c.RecordingCategories(ctx, []string{"r1", "r2", "nope"})
	if err != nil || !slices.Equal(got["r1"], []string{"arrest", "traffic_stop"}) || !slices.Equal(got["r2"], []string{"no_incident"}) || len(got) != 2 {
		t.Fatalf("categories = %v, %v", got, err)
	}
	if err := c.SetRecordingCategories(ctx, "r1", []string{"traffic_stop", "arrest"}, nil, "s-1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.RecordingCategories(ctx, []string{"r1"}); len(got["r1"]) != 0 {
		t.Fatalf("categories after clearing: %v", got)
	}
	if err := c.SetRecordingCategories(ctx, "nope", nil, []string{"arrest"}, "o-1", t0); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("categories of no recording: %v, want ErrNotFound", err)
	}
}

// RetentionDue selects exactly what RetentionPolicy.Decide says is due,
// given the recording's RetentionFacts: the longest category, the
// important minimum, permanent and unconfigured categories never, links
// holding footage and the period counted from the last unlink.
func testRetentionDue(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	min := time.Minute
	p := evidence.RetentionPolicy{
		Unlinked:  evidence.RetentionPeriod{Duration: 10 * min},
		Important: evidence.RetentionPeriod{Duration: 30 * min},
		Classes: []evidence.RetentionClass{
			{Name: "traffic_stop", Period: evidence.RetentionPeriod{Duration: 10 * min}},
			{Name: "arrest", Period: evidence.RetentionPeriod{Duration: 20 * min}},
			{Name: "complaint", Period: evidence.RetentionPeriod{Permanent: true}},
			{Name: "old", Period: evidence.RetentionPeriod{Years: 1}},
		},
	}
	end := t0.Add(time.Minute)
	cats := map[string][]string{
		"none": nil, "traffic": {"traffic_stop"}, "longest": {"traffic_stop", "arrest"}, "permanent": {"arrest", "complaint"},
		"unknown": {"gone"}, "held": {"traffic_stop"}, "unlinked": {"traffic_stop"}, "year": {"old"},
	}
	for id, cs := range cats {
		if err := c.CreateRecording(ctx, recording(id, "cam-1", t0)); err != nil {
			t.Fatal(err)
		}
		if err := c.FinishRecording(ctx, id, evidence.StateComplete, end, "publisher stopped"); err != nil {
			t.Fatal(err)
		}
		if err := c.SetManifest(ctx, id, "cam-1/"+id+"/manifest.json"); err != nil {
			t.Fatal(err)
		}
		if cs != nil {
			if err := c.SetRecordingCategories(ctx, id, nil, cs, "o-1", t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An uploaded file marked important, with the shortest category.
	u := upload("up-1", "dock-1", "cam-1", "IMPORTANT")
	u.StartedAt, u.EndedAt = t0, end
	mustUpload(t, c, u)
	if err := c.SetUploadState(ctx, "up-1", catalog.UploadFinishing, "", ""); err != nil {
		t.Fatal(err)
	}
	rec, seg := uploaded(u, "important")
	if _, _, err := c.StoreUpload(ctx, rec, seg, "up-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetManifest(ctx, "important", "cam-1/important/manifest.json"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRecordingCategories(ctx, "important", nil, []string{"traffic_stop"}, "o-1", t0); err != nil {
		t.Fatal(err)
	}
	cats["important"] = []string{"traffic_stop"}
	if err := c.CreateUser(ctx, user("o-1", evidence.RoleOfficer)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"held", "unlinked"} {
		if err := c.LinkEvidence(ctx, evidence.EvidenceLink{ID: "l-" + id, CaseID: "C-1", RecordingID: id, LinkedBy: "o-1", LinkedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.UnlinkEvidence(ctx, "l-unlinked", "s-1", "not evidence", end.Add(15*min)); err != nil {
		t.Fatal(err)
	}
	// What is due when, as Decide sees it from the facts the catalog gives.
	want := map[time.Duration][]string{
		5 * min:             {},
		11 * min:            {"none", "traffic"},
		21 * min:            {"longest", "none", "traffic"},
		26 * min:            {"longest", "none", "traffic", "unlinked"},
		31 * min:            {"important", "longest", "none", "traffic", "unlinked"},
		400 * 24 * 60 * min: {"important", "longest", "none", "traffic", "unlinked", "year"},
	}
	for after, ids := range want {
		now := end.Add(after)
		got, err := c.RetentionDue(ctx, p, now, 100)
		if err != nil {
			t.Fatal(err)
		}
		var gotIDs []string
		for _, r := range got {
			gotIDs = append(gotIDs, r.ID)
		}
		slices.Sort(gotIDs)
		if !slices.Equal(gotIDs, ids) && !(len(ids) == 0 && len(gotIDs) == 0) {
			t.Errorf("due %v after the end: %v, want %v", after, gotIDs, ids)
		}
		for id := range cats {
			rec, err := c.Recording(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			f, err := c.RetentionFacts(ctx, rec)
			if err != nil {
				t.Fatal(err)
			}
			if d := p.Decide(f); d.Due(now) != slices.Contains(ids, id) {
				t.Errorf("%s at %v: Decide(%+v) = %+v, due %v; the catalog says %v", id, after, f, d, d.Due(now), slices.Contains(ids, id))
			}
		}
	}
	// The facts themselves.
	rec, _ = c.Recording(ctx, "held")
	if f, _ := c.RetentionFacts(ctx, rec); !f.Linked || f.Important || !slices.Equal(f.Categories, []string{"traffic_stop"}) || !f.Ended.Equal(end) {
		t.Fatalf("facts of a linked recording: %+v", f)
	}
	rec, _ = c.Recording(ctx, "unlinked")
	if f, _ := c.RetentionFacts(ctx, rec); f.Linked || !f.LastUnlinked.Equal(end.Add(15*min)) {
		t.Fatalf("facts of an unlinked recording: %+v", f)
	}
	rec, _ = c.Recording(ctx, "important")
	if f, _ := c.RetentionFacts(ctx, rec); !f.Important {
		t.Fatalf("facts of an important upload: %+v", f)
	}
	// Without an important minimum the upload goes with its category; with
	// a permanent one, never.
	q := p
	q.Important = evidence.RetentionPeriod{}
	if got, _ := c.RetentionDue(ctx, q, end.Add(11*min), 100); len(got) != 3 {
		t.Errorf("no important minimum: %d due, want 3 (none, traffic, important)", len(got))
	}
	q.Important = evidence.RetentionPeriod{Permanent: true}
	for _, r := range must(c.RetentionDue(ctx, q, end.Add(400*24*time.Hour), 100)) {
		if r.ID == "important" {
			t.Error("a permanent important minimum: the important upload selected")
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
