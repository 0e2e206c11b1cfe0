// Package catalogtest is the conformance suite the catalog passes on every
// engine it supports: SQLite and a real PostgreSQL.
package catalogtest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Opener returns a fresh, empty, migrated catalog.
type Opener func(t *testing.T) *catalog.Catalog

// Run runs every behaviour against catalogs made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, *catalog.Catalog)
	}{
		{"Devices", testDevices},
		{"Stats", testStats},
		{"DeviceIDRules", testDeviceIDRules},
		{"RecordingLifecycle", testRecordingLifecycle},
		{"Segments", testSegments},
		{"RecordingFilters", testRecordingFilters},
		{"RecordingWindows", testRecordingWindows},
		{"SegmentCount", testSegmentCount},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ChainAcrossRecordings", testChain},
		{"GapsAndManifest", testGapsAndManifest},
		{"TimesRoundTrip", testTimes},
		{"LiveViews", testLiveViews},
		{"Users", testUsers},
		{"SessionsAndTokens", testSessionsAndTokens},
		{"SignInAttempts", testSignInAttempts},
		{"SignInAttemptsConcurrent", testSignInAttemptsConcurrent},
		{"PasswordChange", testPasswordChange},
		{"Custody", testCustody},
		{"CasesAndLinks", testCasesAndLinks},
		{"LinksFollowCaseState", testLinksFollowCaseState},
		{"CustodyConcurrent", testCustodyConcurrent},
		{"ExcerptCheckpoints", testExcerptCheckpoints},
		{"NodeAndFenceRoundTrip", testNodeAndFence},
		{"Fencing", testFencing},
		{"FencingOldRecordings", testFencingOldRecordings},
		{"InterruptNode", testInterruptNode},
		{"NodeLiveViews", testNodeLiveViews},
		{"SigningKeys", testSigningKeys},
		{"RetentionNeedsManifest", testRetentionNeedsManifest},
		{"OutboxEvents", testOutboxEvents},
		{"OutboxAtomic", testOutboxAtomic},
		{"OutboxConcurrent", testOutboxConcurrent},
		{"DeadLetters", testDeadLetters},
		{"RecordingKinds", testRecordingKinds},
		{"Uploads", testUploads},
		{"StoreUpload", testStoreUpload},
		{"StoreUploadDuplicate", testStoreUploadDuplicate},
		{"StoreUploadConcurrent", testStoreUploadConcurrent},
		{"UploadFilters", testUploadFilters},
		{"SameEvent", testSameEvent},
		{"UploadsOfRecordings", testUploadsOfRecordings},
		{"Bookmarks", testBookmarks},
		{"CopyRequests", testCopyRequests},
		{"CopyGrantRace", testCopyGrantRace},
		{"JobsEnqueue", testJobsEnqueue},
		{"JobsLifecycle", testJobsLifecycle},
		{"JobsTakeover", testJobsTakeover},
		{"JobsClaimRace", testJobsClaimRace},
		{"RecordingCategories", testRecordingCategories},
		{"RetentionDue", testRetentionDue},
		{"Shares", testShares},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t)
			t.Cleanup(func() { c.Close() })
			if err := c.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			tc.fn(t, c)
		})
	}
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func device(id string) evidence.Device {
	return evidence.Device{ID: id, Name: "Recorder " + id, OfficerID: "officer-7", SecretHash: "$argon2id$fake", SecretSalt: "salt-" + id, CreatedAt: t0}
}

func mustDevice(t *testing.T, c *catalog.Catalog, id string) {
	t.Helper()
	if err := c.CreateDevice(context.Background(), device(id)); err != nil {
		t.Fatal(err)
	}
}

func testDevices(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if ds, err := c.Devices(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("empty catalog: %v, %v", ds, err)
	}
	mustDevice(t, c, "cam-2")
	mustDevice(t, c, "cam-1")
	if err := c.CreateDevice(ctx, device("cam-1")); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate device: %v, want ErrExists", err)
	}
	d, err := c.Device(ctx, "cam-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := device("cam-1"); d != want {
		t.Fatalf("Device = %+v, want %+v", d, want)
	}
	if _, err := c.Device(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("missing device: %v, want ErrNotFound", err)
	}
	ds, err := c.Devices(ctx)
	if err != nil || len(ds) != 2 || ds[0].ID != "cam-1" || ds[1].ID != "cam-2" {
		t.Fatalf("Devices = %+v, %v", ds, err)
	}
	if err := c.DisableDevice(ctx, "cam-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DisableDevice(ctx, "cam-1"); err != nil {
		t.Fatalf("disable twice: %v", err)
	}
	if d, _ := c.Device(ctx, "cam-1"); !d.Disabled {
		t.Fatal("device not disabled")
	}
	if err := c.DisableDevice(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("disable missing: %v, want ErrNotFound", err)
	}
	// A disabled id stays taken.
	if err := c.CreateDevice(ctx, device("cam-1")); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("reuse of a disabled id: %v, want ErrExists", err)
	}
}

func testDeviceIDRules(t *testing.T, c *catalog.Catalog) {
	for _, id := range []string{"", "-lead", ".dot", "a/b", "a b", "é", string(make([]byte, 65))} {
		if err := c.CreateDevice(context.Background(), device(id)); !errors.Is(err, evidence.ErrInvalidID) {
			t.Errorf("CreateDevice(%q): %v, want ErrInvalidID", id, err)
		}
	}
	long := "a"
	for len(long) < 64 {
		long += "b"
	}
	mustDevice(t, c, long)
}

func recording(id, dev string, start time.Time) evidence.Recording {
	return evidence.Recording{ID: id, DeviceID: dev, Kind: evidence.KindStream, OfficerID: "officer-7", CaseID: "case-1", State: evidence.StateLive, StartedAt: start,
		Codecs: []string{"H264 1280x720", "MPEG-4 Audio 48000Hz 2ch"}, RemoteAddr: "127.0.0.1:5000"}
}

func testRecordingLifecycle(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if err := c.CreateRecording(ctx, recording("r1", "ghost", t0)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("recording of an unknown device: %v, want ErrNotFound", err)
	}
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate recording: %v", err)
	}
	r, err := c.Recording(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if want := recording("r1", "cam-1", t0); !reflect.DeepEqual(r, want) {
		t.Fatalf("Recording = %+v, want %+v", r, want)
	}
	end := t0.Add(90 * time.Second)
	if err := c.FinishRecording(ctx, "r1", evidence.StateComplete, end, "publisher stopped"); err != nil {
		t.Fatal(err)
	}
	r, _ = c.Recording(ctx, "r1")
	if r.State != evidence.StateComplete || !r.EndedAt.Equal(end) || r.EndReason != "publisher stopped" {
		t.Fatalf("after finish: %+v", r)
	}
	if err := c.FinishRecording(ctx, "r1", evidence.StateInterrupted, end, "x"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("finishing twice: %v, want ErrConflict", err)
	}
	if err := c.FinishRecording(ctx, "nope", evidence.StateComplete, end, "x"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("finishing a missing recording: %v", err)
	}
	if err := c.FinishRecording(ctx, "r1", evidence.StateLive, end, "x"); err == nil {
		t.Fatal("finish as live accepted")
	}
}

func segment(rec string, seq int64) evidence.Segment {
	kind := evidence.KindMedia
	if seq == 0 {
		kind = evidence.KindInit
	}
	return evidence.Segment{
		RecordingID: rec, DeviceID: "cam-1", Seq: seq, Kind: kind,
		Key:  fmt.Sprintf("cam-1/%s/%06d.m4s", rec, seq),
		Size: 1000 + seq, SHA256: fmt.Sprintf("%064x", seq),
		StartedAt: t0.Add(time.Duration(seq) * 4 * time.Second), Duration: 4*time.Second + 17*time.Microsecond,
		DeviceTime: t0.Add(time.Duration(seq)*4*time.Second - 1500*time.Millisecond), Keyframe: seq != 2,
	}
}

func testSegments(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, segment("nope", 0)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("segment of a missing recording: %v", err)
	}
	var appended []evidence.Segment
	for seq := int64(0); seq < 4; seq++ {
		got, err := c.AppendSegment(ctx, segment("r1", seq))
		if err != nil {
			t.Fatal(err)
		}
		appended = append(appended, got)
	}
	again, err := c.AppendSegment(ctx, segment("r1", 2))
	if !errors.Is(err, catalog.ErrExists) || again != appended[2] {
		t.Fatalf("duplicate seq: %v, %+v; want ErrExists and the recorded segment", err, again)
	}
	dupKey := segment("r1", 9)
	dupKey.Key = segment("r1", 1).Key
	if _, err := c.AppendSegment(ctx, dupKey); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate key: %v", err)
	}
	segs, err := c.Segments(ctx, "r1")
	if err != nil || len(segs) != 4 {
		t.Fatalf("Segments = %v, %v", segs, err)
	}
	for i, s := range segs {
		want := segment("r1", int64(i))
		want.ChainSeq, want.PrevChainHash, want.ChainHash = appended[i].ChainSeq, appended[i].PrevChainHash, appended[i].ChainHash
		if s != want || s != appended[i] {
			t.Errorf("segment %d = %+v, want %+v", i, s, want)
		}
	}
	if r, _ := c.Recording(ctx, "r1"); r.SegmentCount != 4 {
		t.Fatalf("SegmentCount = %d", r.SegmentCount)
	}
	if segs, err := c.Segments(ctx, "none"); err != nil || len(segs) != 0 {
		t.Fatalf("segments of a missing recording: %v, %v", segs, err)
	}
}

func testRecordingFilters(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	mustDevice(t, c, "cam-2")
	// cam-1: r1 [0,10m) complete, r2 [20m, live); cam-2: r3 [5m, 6m) interrupted
	for _, r := range []evidence.Recording{recording("r1", "cam-1", t0), recording("r2", "cam-1", t0.Add(20*time.Minute)), recording("r3", "cam-2", t0.Add(5*time.Minute))} {
		if err := c.CreateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	c.FinishRecording(ctx, "r1", evidence.StateComplete, t0.Add(10*time.Minute), "")
	c.FinishRecording(ctx, "r3", evidence.StateInterrupted, t0.Add(6*time.Minute), "")
	ids := func(f catalog.RecordingFilter) string {
		rs, err := c.Recordings(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range rs {
			s = append(s, r.ID)
		}
		return fmt.Sprint(s)
	}
	cases := []struct {
		f    catalog.RecordingFilter
		want string
	}{
		{catalog.RecordingFilter{}, "[r2 r3 r1]"},
		{catalog.RecordingFilter{DeviceID: "cam-1"}, "[r2 r1]"},
		{catalog.RecordingFilter{DeviceID: "cam-3"}, "[]"},
		{catalog.RecordingFilter{From: t0.Add(7 * time.Minute)}, "[r2 r1]"},
		{catalog.RecordingFilter{From: t0.Add(11 * time.Minute)}, "[r2]"},
		{catalog.RecordingFilter{To: t0.Add(5 * time.Minute)}, "[r1]"},
		{catalog.RecordingFilter{From: t0.Add(5 * time.Minute), To: t0.Add(21 * time.Minute)}, "[r2 r3 r1]"},
		{catalog.RecordingFilter{State: evidence.StateLive}, "[r2]"},
		{catalog.RecordingFilter{Limit: 1}, "[r2]"},
	}
	for _, tc := range cases {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("Recordings(%+v) = %s, want %s", tc.f, got, tc.want)
		}
	}
	// By officer, by case (linked now) and by category, alone and with a
	// window: r4 is another officer's; r3 is in case F-1, r1 was (unlinked);
	// r1 is an arrest.
	r4 := recording("r4", "cam-2", t0.Add(30*time.Minute))
	r4.OfficerID = "officer-9"
	if err := c.CreateRecording(ctx, r4); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateUser(ctx, user("officer-7", evidence.RoleOfficer)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCase(ctx, evidence.Case{ID: "F-1", Title: "t", Officer: "officer-7", Unit: "unit-3", CreatedBy: "officer-7", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []evidence.EvidenceLink{{ID: "lf-1", CaseID: "F-1", RecordingID: "r3", LinkedBy: "officer-7", LinkedAt: t0},
		{ID: "lf-2", CaseID: "F-1", RecordingID: "r1", LinkedBy: "officer-7", LinkedAt: t0}} {
		if err := c.LinkEvidence(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.UnlinkEvidence(ctx, "lf-2", "officer-7", "wrong recording", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRecordingCategories(ctx, "r1", nil, []string{"arrest"}, "officer-7", t0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    catalog.RecordingFilter
		want string
	}{
		{catalog.RecordingFilter{OfficerIDs: []string{"officer-9"}}, "[r4]"},
		{catalog.RecordingFilter{OfficerIDs: []string{"officer-7", "officer-9"}}, "[r4 r2 r3 r1]"},
		{catalog.RecordingFilter{OfficerIDs: []string{"officer-9"}, From: t0, To: t0.Add(29 * time.Minute)}, "[]"},
		{catalog.RecordingFilter{CaseID: "F-1"}, "[r3]"},
		{catalog.RecordingFilter{CaseID: "F-1", From: t0.Add(5 * time.Minute)}, "[r3]"},
		{catalog.RecordingFilter{CaseID: "nope"}, "[]"},
		{catalog.RecordingFilter{Category: "arrest"}, "[r1]"},
		{catalog.RecordingFilter{Category: "arrest", DeviceID: "cam-1", From: t0}, "[r1]"},
		{catalog.RecordingFilter{Category: "arrest", OfficerIDs: []string{"officer-9"}}, "[]"},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("Recordings(%+v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}

func testConcurrentWriters(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	const recs, segs = 8, 20
	var wg sync.WaitGroup
	for i := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("r%d", i)
			if err := c.CreateRecording(ctx, recording(id, "cam-1", t0.Add(time.Duration(i)*time.Second))); err != nil {
				t.Error(err)
				return
			}
			for seq := range int64(segs) {
				if _, err := c.AppendSegment(ctx, segment(id, seq)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rs, err := c.Recordings(ctx, catalog.RecordingFilter{DeviceID: "cam-1"})
	if err != nil || len(rs) != recs {
		t.Fatalf("Recordings: %d, %v", len(rs), err)
	}
	for _, r := range rs {
		if r.SegmentCount != segs {
			t.Errorf("%s has %d segments, want %d", r.ID, r.SegmentCount, segs)
		}
	}
}

// Times keep microsecond precision and come back in UTC whatever zone they
// went in with.
func testTimes(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	zone := time.FixedZone("UTC+8", 8*3600)
	start := time.Date(2026, 1, 2, 3, 4, 5, 123456789, zone)
	d := device("cam-t")
	d.CreatedAt = start
	if err := c.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, _ := c.Device(ctx, "cam-t")
	if want := start.Truncate(time.Microsecond).UTC(); !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt = %v, want %v", got.CreatedAt, want)
	}
}

// testChain: links run per device across recordings, each covering the one
// before; the head moves with every append.
func testChain(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	mustDevice(t, c, "cam-2")
	if n, head, err := c.ChainHead(ctx, "cam-1"); err != nil || n != 0 || head != evidence.GenesisHash {
		t.Fatalf("empty chain head = %d %s %v", n, head, err)
	}
	for _, r := range []evidence.Recording{recording("r1", "cam-1", t0), recording("r2", "cam-1", t0.Add(time.Hour)), recording("x", "cam-2", t0)} {
		if err := c.CreateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var all []evidence.Segment
	for _, rec := range []string{"r1", "r2"} {
		for seq := range int64(3) {
			s, err := c.AppendSegment(ctx, segment(rec, seq))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, s)
		}
	}
	other := segment("x", 0)
	other.DeviceID = "cam-2"
	other.Key = "cam-2/x/init"
	if s, err := c.AppendSegment(ctx, other); err != nil || s.ChainSeq != 1 || s.PrevChainHash != evidence.GenesisHash {
		t.Fatalf("cam-2's first link = %+v, %v; devices must not share a chain", s, err)
	}
	wrong := segment("x", 1)
	wrong.Key = "cam-2/x/1"
	if _, err := c.AppendSegment(ctx, wrong); err == nil {
		t.Fatal("a segment claiming the wrong device was accepted")
	}
	prev := evidence.GenesisHash
	for i, s := range all {
		if s.ChainSeq != int64(i+1) || s.PrevChainHash != prev || s.ChainHash != evidence.ChainHash(s.Link()) {
			t.Fatalf("link %d = %+v (prev want %s)", i, s, prev)
		}
		prev = s.ChainHash
	}
	if n, head, _ := c.ChainHead(ctx, "cam-1"); n != 6 || head != prev {
		t.Fatalf("head = %d %s, want 6 %s", n, head, prev)
	}
	links, err := c.ChainLinks(ctx, "cam-1", 2, 4)
	if err != nil || len(links) != 3 || links[0] != all[1] || links[2] != all[3] {
		t.Fatalf("ChainLinks(2,4) = %+v, %v", links, err)
	}
	if links, _ := c.ChainLinks(ctx, "cam-1", 1, 0); len(links) != 6 {
		t.Fatalf("ChainLinks to head: %d", len(links))
	}
}

func testGapsAndManifest(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	gaps := []evidence.Gap{
		{RecordingID: "r1", Kind: evidence.GapInterrupted, Start: t0.Add(time.Minute), Detail: "server restarted"},
		{RecordingID: "r1", Kind: evidence.GapLoss, Start: t0.Add(10 * time.Second), End: t0.Add(13 * time.Second), Track: "video", Detail: "no media for 3s"},
		{RecordingID: "r1", Kind: evidence.GapDamaged, Start: t0.Add(20 * time.Second), End: t0.Add(24 * time.Second), Detail: "segment 6 changed in the spool"},
	}
	for _, g := range gaps {
		if err := c.AddGap(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Gaps(ctx, "r1")
	if err != nil || len(got) != 3 || got[0] != gaps[1] || got[1] != gaps[2] || got[2] != gaps[0] {
		t.Fatalf("Gaps = %+v, %v", got, err)
	}
	if err := c.AddGap(ctx, evidence.Gap{RecordingID: "r1", Kind: "made-up", Start: t0}); err == nil {
		t.Fatal("unknown gap kind accepted")
	}
	if err := c.SetManifest(ctx, "r1", "cam-1/r1/manifest.json"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetManifest(ctx, "r1", "cam-1/r1/manifest.json"); err != nil {
		t.Fatalf("same manifest twice: %v", err)
	}
	if err := c.SetManifest(ctx, "r1", "other"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("second manifest: %v, want ErrConflict", err)
	}
	if r, _ := c.Recording(ctx, "r1"); r.ManifestKey != "cam-1/r1/manifest.json" {
		t.Fatalf("ManifestKey = %q", r.ManifestKey)
	}
}

func testLiveViews(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	view := func(id, dev, user string, start time.Time) evidence.LiveView {
		return evidence.LiveView{ID: id, DeviceID: dev, RecordingID: "r1", User: user, RemoteAddr: "10.0.0.5:50000",
			UserAgent: "Chromium", Video: "H264", Audio: "Opus (transcoded from AAC)", StartedAt: start}
	}
	if err := c.StartLiveView(ctx, view("v1", "ghost", "admin", t0)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("live view of an unknown device: %v, want ErrNotFound", err)
	}
	mustDevice(t, c, "cam-1")
	mustDevice(t, c, "cam-2")
	if err := c.StartLiveView(ctx, view("v1", "cam-1", "", t0)); err == nil {
		t.Fatal("live view without a user accepted")
	}
	for _, v := range []evidence.LiveView{view("v1", "cam-1", "admin", t0), view("v2", "cam-2", "sup-1", t0.Add(time.Minute)),
		view("v3", "cam-1", "sup-1", t0.Add(2*time.Minute))} {
		if err := c.StartLiveView(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.StartLiveView(ctx, view("v1", "cam-1", "admin", t0)); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate live view: %v", err)
	}
	got, err := c.LiveView(ctx, "v1")
	if want := view("v1", "cam-1", "admin", t0); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("LiveView = %+v, %v; want %+v", got, err, want)
	}
	end := t0.Add(30 * time.Second)
	if err := c.EndLiveView(ctx, "v1", end, "viewer hung up"); err != nil {
		t.Fatal(err)
	}
	if err := c.EndLiveView(ctx, "v1", end, "again"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("ending twice: %v, want ErrConflict", err)
	}
	if err := c.EndLiveView(ctx, "nope", end, "x"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("ending a missing view: %v, want ErrNotFound", err)
	}
	got, _ = c.LiveView(ctx, "v1")
	if !got.EndedAt.Equal(end) || got.EndReason != "viewer hung up" {
		t.Fatalf("after end: %+v", got)
	}
	ids := func(vs []evidence.LiveView, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range vs {
			out = append(out, v.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		f    catalog.LiveViewFilter
		want string
	}{
		{catalog.LiveViewFilter{}, "v3,v2,v1"},
		{catalog.LiveViewFilter{DeviceID: "cam-1"}, "v3,v1"},
		{catalog.LiveViewFilter{User: "sup-1"}, "v3,v2"},
		{catalog.LiveViewFilter{From: t0.Add(45 * time.Second)}, "v3,v2"}, // v1 ended before
		{catalog.LiveViewFilter{To: t0.Add(90 * time.Second)}, "v2,v1"},
		{catalog.LiveViewFilter{Limit: 1}, "v3"},
	} {
		if got := ids(c.LiveViews(ctx, tc.f)); got != tc.want {
			t.Errorf("LiveViews(%+v) = %s, want %s", tc.f, got, tc.want)
		}
	}
	ended, err := c.EndOpenLiveViews(ctx, t0.Add(time.Hour), "server restarted")
	n := len(ended)
	if err != nil || n != 2 {
		t.Fatalf("EndOpenLiveViews = %d, %v; want 2", n, err)
	}
	if got, _ := c.LiveView(ctx, "v2"); got.EndReason != "server restarted" || got.EndedAt.IsZero() {
		t.Fatalf("v2 after EndOpenLiveViews: %+v", got)
	}
}

func user(id string, role evidence.Role) evidence.User {
	return evidence.User{ID: id, Name: "Name " + id, Role: role, Unit: "unit-3", BadgeNumber: "B-" + id, Agency: "City Enforcement",
		CertToken: "cert-" + id, CertValidUntil: t0.Add(365 * 24 * time.Hour), PasswordHash: "hash-" + id, CreatedAt: t0}
}

func testUsers(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if err := c.CreateUser(ctx, user("Bad Id", evidence.RoleOfficer)); !errors.Is(err, evidence.ErrInvalidID) {
		t.Fatalf("bad id: %v", err)
	}
	if err := c.CreateUser(ctx, user("x", "janitor")); err == nil {
		t.Fatal("unknown role accepted")
	}
	for _, u := range []evidence.User{user("o-1", evidence.RoleOfficer), user("s-1", evidence.RoleSupervisor), user("a-1", evidence.RoleAuditor)} {
		if err := c.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateUser(ctx, user("o-1", evidence.RoleOfficer)); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate user: %v", err)
	}
	dupCert := user("o-2", evidence.RoleOfficer)
	dupCert.CertToken = "cert-o-1"
	if err := c.CreateUser(ctx, dupCert); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate certificate token: %v", err)
	}
	got, err := c.User(ctx, "o-1")
	if want := user("o-1", evidence.RoleOfficer); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("User = %+v, %v; want %+v", got, err, want)
	}
	if got, err := c.UserByCertToken(ctx, "cert-s-1"); err != nil || got.ID != "s-1" {
		t.Fatalf("UserByCertToken = %+v, %v", got, err)
	}
	if _, err := c.UserByCertToken(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown certificate: %v", err)
	}
	all, err := c.Users(ctx)
	if err != nil || len(all) != 3 || all[0].ID != "a-1" {
		t.Fatalf("Users = %+v, %v", all, err)
	}
	// A new password set by an admin: a reset, to be changed at the next
	// sign-in; a lock-out of the name is lifted.
	c.SignInAttempt(ctx, "o-1", t0, 1, 15*time.Minute)
	if u, _ := c.User(ctx, "o-1"); !u.LockedUntil.Equal(t0.Add(15 * time.Minute)) {
		t.Fatalf("lock-out not shown with the user: %v", u.LockedUntil)
	}
	if _, err := c.SetPassword(ctx, catalog.PasswordChange{UserID: "o-1", Hash: "new-hash", By: "adm", At: t0, MustChange: true}); err != nil {
		t.Fatal(err)
	}
	if u, _ := c.User(ctx, "o-1"); u.PasswordHash != "new-hash" || !u.LockedUntil.IsZero() || !u.MustChangePassword ||
		u.PasswordResetBy != "adm" || !u.PasswordResetAt.Equal(t0) {
		t.Fatalf("after a reset: %+v", u)
	}
	// The user's own: the flag goes, the last reset stays on record.
	if _, err := c.SetPassword(ctx, catalog.PasswordChange{UserID: "o-1", Hash: "own-hash", By: "o-1", At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if u, _ := c.User(ctx, "o-1"); u.PasswordHash != "own-hash" || u.MustChangePassword || u.PasswordResetBy != "adm" || !u.PasswordResetAt.Equal(t0) {
		t.Fatalf("after the user's own change: %+v", u)
	}
	if err := c.SetCertificate(ctx, "o-1", t0.Add(time.Hour), true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetUserDisabled(ctx, "o-1", true); err != nil {
		t.Fatal(err)
	}
	if u, _ := c.User(ctx, "o-1"); !u.CertRevoked || !u.CertValidUntil.Equal(t0.Add(time.Hour)) || !u.Disabled {
		t.Fatalf("certificate and disable: %+v", u)
	}
	if _, err := c.SetPassword(ctx, catalog.PasswordChange{UserID: "ghost", Hash: "x", By: "adm"}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("password of a missing user: %v", err)
	}
}

// Sign-in attempts are counted per claimed name, user or not: the max-th in
// a row starts a lock-out, later ones are numbered past max until it ends; a
// success ends the run; a quiet spell or an ended lock-out starts a new one.
func testSignInAttempts(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	const max, lock = 5, 15 * time.Minute
	if err := c.CreateUser(ctx, user("o-1", evidence.RoleOfficer)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"o-1", "nobody", "Not A User Id!", strings.Repeat("x", 5000)} {
		for i := 1; i <= max+2; i++ {
			at := t0.Add(time.Duration(i) * time.Second)
			n, until, err := c.SignInAttempt(ctx, name, at, max, lock)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case n != i:
				t.Fatalf("%.20s: attempt %d numbered %d", name, i, n)
			case i < max && !until.IsZero():
				t.Fatalf("%.20s: locked after %d attempts", name, i)
			case i >= max && !until.Equal(t0.Add(max*time.Second+lock)):
				t.Fatalf("%.20s: attempt %d: locked until %v, want %v", name, i, until, t0.Add(max*time.Second+lock))
			}
		}
	}
	if u, _ := c.User(ctx, "o-1"); !u.LockedUntil.Equal(t0.Add(max*time.Second + lock)) {
		t.Fatalf("the user's lock-out: %v", u.LockedUntil)
	}
	// The lock-out ends: a new run.
	if n, until, _ := c.SignInAttempt(ctx, "o-1", t0.Add(max*time.Second+lock), max, lock); n != 1 || !until.IsZero() {
		t.Fatalf("after the lock-out: attempt %d, locked until %v", n, until)
	}
	// A success ends the run.
	if err := c.SignInSucceeded(ctx, "o-1"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := c.SignInAttempt(ctx, "o-1", t0.Add(max*time.Second+lock+time.Second), max, lock); n != 1 {
		t.Fatalf("after a success: attempt %d", n)
	}
	// A quiet spell of lockFor without a lock-out ends the run too.
	if n, _, _ := c.SignInAttempt(ctx, "o-1", t0.Add(max*time.Second+2*lock+time.Second), max, lock); n != 1 {
		t.Fatalf("after a quiet spell: attempt %d", n)
	}
	// The sweep forgets runs that are over, not lock-outs still on.
	later := t0.Add(max*time.Second + lock/2)
	if n, err := c.SweepSignInFailures(ctx, later, lock); err != nil || n != 0 {
		t.Fatalf("sweep during the lock-outs: %d, %v", n, err)
	}
	if n, err := c.SweepSignInFailures(ctx, t0.Add(10*lock), lock); err != nil || n != 4 {
		t.Fatalf("sweep after: %d, %v (want the 4 names)", n, err)
	}
}

// Concurrent attempts under one name each get their own number: however
// many arrive at once, exactly max of them are numbered up to max.
func testSignInAttemptsConcurrent(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	const max, attempts = 5, 40
	var wg sync.WaitGroup
	numbers := make(chan int, attempts)
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, _, err := c.SignInAttempt(ctx, "o-1", t0, max, 15*time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			numbers <- n
		}()
	}
	wg.Wait()
	close(numbers)
	seen := map[int]bool{}
	checked := 0
	for n := range numbers {
		if seen[n] {
			t.Errorf("attempt number %d given twice", n)
		}
		seen[n] = true
		if n <= max {
			checked++
		}
	}
	if len(seen) != attempts || checked != max {
		t.Fatalf("%d numbers, %d of them to be checked; want %d and %d", len(seen), checked, attempts, max)
	}
}

// A password change revokes the user's API tokens and ends their sessions
// in the same step, and may renew the session that made it.
func testPasswordChange(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	for _, id := range []string{"s-1", "s-2"} {
		if err := c.CreateUser(ctx, user(id, evidence.RoleSupervisor)); err != nil {
			t.Fatal(err)
		}
		for i, tok := range []string{"a", "b"} {
			if err := c.CreateAPIToken(ctx, evidence.APIToken{ID: id + tok, TokenHash: "th-" + id + tok, UserID: id, CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			if err := c.CreateSession(ctx, evidence.Session{TokenHash: fmt.Sprintf("h-%s-%d", id, i), UserID: id, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.RevokeAPIToken(ctx, "s-1b", t0)
	renew := evidence.Session{TokenHash: "h-new", UserID: "s-1", RemoteAddr: "10.0.0.1:1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	got, err := c.SetPassword(ctx, catalog.PasswordChange{UserID: "s-1", Hash: "h", By: "s-1", At: t0.Add(time.Minute), Renew: &renew})
	if err != nil || got.TokensRevoked != 1 || got.SessionsEnded != 2 {
		t.Fatalf("SetPassword = %+v, %v; want 1 token revoked (one was already), 2 sessions ended", got, err)
	}
	for _, h := range []string{"h-s-1-0", "h-s-1-1"} {
		if _, err := c.Session(ctx, h); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("session %s after the change: %v", h, err)
		}
	}
	if s, err := c.Session(ctx, "h-new"); err != nil || !reflect.DeepEqual(s, renew) {
		t.Fatalf("renewed session = %+v, %v", s, err)
	}
	if tok, _ := c.APITokenByHash(ctx, "th-s-1a"); !tok.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("token after the change: %+v", tok)
	}
	// The other user's are untouched.
	if tok, _ := c.APITokenByHash(ctx, "th-s-2a"); !tok.RevokedAt.IsZero() {
		t.Fatalf("another user's token revoked: %+v", tok)
	}
	if _, err := c.Session(ctx, "h-s-2-0"); err != nil {
		t.Fatalf("another user's session: %v", err)
	}
	// A renewed session of someone else is refused, and nothing changes.
	other := evidence.Session{TokenHash: "h-x", UserID: "s-2", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if _, err := c.SetPassword(ctx, catalog.PasswordChange{UserID: "s-1", Hash: "h2", By: "s-1", Renew: &other}); err == nil {
		t.Fatal("a renewed session of another user was accepted")
	}
	if u, _ := c.User(ctx, "s-1"); u.PasswordHash != "h" {
		t.Fatalf("a refused change changed the password: %q", u.PasswordHash)
	}
	if _, err := c.Session(ctx, "h-new"); err != nil {
		t.Fatalf("a refused change ended a session: %v", err)
	}
}

func testSessionsAndTokens(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if err := c.CreateUser(ctx, user("s-1", evidence.RoleSupervisor)); err != nil {
		t.Fatal(err)
	}
	sess := evidence.Session{TokenHash: "h1", UserID: "s-1", RemoteAddr: "10.0.0.9:1234", CreatedAt: t0, ExpiresAt: t0.Add(12 * time.Hour), OpenedBy: "fingerprint"}
	if err := c.CreateSession(ctx, evidence.Session{TokenHash: "h0", UserID: "ghost", CreatedAt: t0, ExpiresAt: t0}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("session of a missing user: %v", err)
	}
	if err := c.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	c.CreateSession(ctx, evidence.Session{TokenHash: "h2", UserID: "s-1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
	if got, err := c.Session(ctx, "h1"); err != nil || !reflect.DeepEqual(got, sess) {
		t.Fatalf("Session = %+v, %v", got, err)
	}
	if err := c.DeleteSession(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Session(ctx, "h1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if n, err := c.DeleteUserSessions(ctx, "s-1"); err != nil || n != 1 {
		t.Fatalf("DeleteUserSessions = %d, %v", n, err)
	}
	if _, err := c.Session(ctx, "h2"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("session after DeleteUserSessions: %v", err)
	}
	tok := evidence.APIToken{ID: "t1", TokenHash: "th1", UserID: "s-1", Name: "nightly export", CreatedAt: t0}
	if err := c.CreateAPIToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateAPIToken(ctx, evidence.APIToken{ID: "t2", TokenHash: "th1", UserID: "s-1", CreatedAt: t0}); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate token hash: %v", err)
	}
	if got, err := c.APITokenByHash(ctx, "th1"); err != nil || !reflect.DeepEqual(got, tok) {
		t.Fatalf("APITokenByHash = %+v, %v", got, err)
	}
	if err := c.RevokeAPIToken(ctx, "t1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeAPIToken(ctx, "t1", t0.Add(time.Hour)); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("revoking twice: %v", err)
	}
	if err := c.RevokeAPIToken(ctx, "nope", t0); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("revoking a missing token: %v", err)
	}
	list, err := c.APITokens(ctx, "s-1")
	if err != nil || len(list) != 1 || !list[0].RevokedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("APITokens = %+v, %v", list, err)
	}
}

type testSigner struct{ priv ed25519.PrivateKey }

func (s testSigner) ID() string { return "k1" }
func (s testSigner) Sign(msg []byte) (string, []byte) {
	return "k1", ed25519.Sign(s.priv, msg)
}

func newSigner() (testSigner, func(string) ed25519.PublicKey) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	return testSigner{priv}, func(id string) ed25519.PublicKey {
		if id == "k1" {
			return pub
		}
		return nil
	}
}

func testCustody(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	signer, key := newSigner()
	for i := 1; i <= 130; i++ {
		e := evidence.CustodyEvent{At: t0.Add(time.Duration(i) * time.Second), Actor: "s-1", Role: "supervisor", Remote: "10.0.0.1:5",
			Action: evidence.ActionPlayback, TargetKind: "recording", TargetID: fmt.Sprintf("rec-%d", i%7), Detail: "line one\nline two"}
		if i%5 == 0 {
			e.CaseID = "case-1"
		}
		got, err := c.AppendCustody(ctx, e, signer)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != int64(i) || got.Digest != evidence.CustodyDigest(got) {
			t.Fatalf("event %d: %+v", i, got)
		}
	}
	if _, err := c.AppendCustody(ctx, evidence.CustodyEvent{Action: "x"}, signer); err == nil {
		t.Fatal("event without an actor accepted")
	}
	cps, err := c.Checkpoints(ctx)
	if err != nil || len(cps) != 2 || cps[0].Seq != 64 || cps[1].Seq != 128 {
		t.Fatalf("checkpoints %+v, %v", cps, err)
	}
	x, err := c.CustodyExcerpt(ctx, catalog.CustodyFilter{CaseID: "case-1"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Events) != 26 {
		t.Fatalf("%d events of case-1", len(x.Events))
	}
	if err := evidence.VerifyExcerpt(x, key); err != nil {
		t.Fatal(err)
	}
	byTarget, _ := c.CustodyEvents(ctx, catalog.CustodyFilter{TargetIDs: []string{"rec-1", "rec-2"}})
	if len(byTarget) != 38 {
		t.Fatalf("%d events about rec-1 and rec-2", len(byTarget))
	}
	// Narrowed: by seq, by actor and time (an audit report's selections).
	if through, _ := c.CustodyEvents(ctx, catalog.CustodyFilter{TargetIDs: []string{"rec-1", "rec-2"}, CaseID: "case-1", Through: 64}); len(through) != 28 ||
		through[len(through)-1].Seq != 64 {
		t.Fatalf("%d events about rec-1, rec-2 or case-1 through 64", len(through))
	}
	if by, _ := c.CustodyEvents(ctx, catalog.CustodyFilter{Actor: "s-1", Since: t0.Add(10 * time.Second), Until: t0.Add(20 * time.Second)}); len(by) != 10 ||
		by[0].Seq != 10 || by[9].Seq != 19 {
		t.Fatalf("s-1's events from 10 s to 20 s: %d", len(by))
	}
	if by, _ := c.CustodyEvents(ctx, catalog.CustodyFilter{Actor: "nobody"}); len(by) != 0 {
		t.Fatalf("nobody's events: %d", len(by))
	}
	headSeq, headHash, err := c.CustodyHead(ctx)
	last, _ := c.CustodyEvents(ctx, catalog.CustodyFilter{Through: 130, Since: t0.Add(130 * time.Second)})
	if err != nil || headSeq != 130 || len(last) != 1 || last[0].Hash != headHash {
		t.Fatalf("CustodyHead = %d %s, %v; event 130: %+v", headSeq, headHash, err, last)
	}
	if e, err := c.CustodyEvent(ctx, 130); err != nil || e.Hash != headHash || e.Seq != 130 || !e.At.Equal(t0.Add(130*time.Second)) || e.Detail != "line one\nline two" {
		t.Fatalf("CustodyEvent(130) = %+v, %v", e, err)
	}
	if _, err := c.CustodyEvent(ctx, 131); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("CustodyEvent(131): %v", err)
	}
	if n, err := c.VerifyLedger(ctx, key); err != nil || n != 130 {
		t.Fatalf("VerifyLedger = %d, %v", n, err)
	}
	// An intruder with database access edits a row: found, and named.
	if _, err := c.DB().ExecContext(ctx, `UPDATE custody_events SET actor = 'nobody' WHERE seq = 77`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyLedger(ctx, key); err == nil || !strings.Contains(err.Error(), "event 77") {
		t.Fatalf("edited row: %v", err)
	}
	// ... or rewrites its digest and hash too: the chain after it breaks.
	e77, _ := c.CustodyEvents(ctx, catalog.CustodyFilter{TargetIDs: []string{"rec-0"}})
	for _, e := range e77 {
		if e.Seq == 77 {
			d := evidence.CustodyDigest(e)
			if _, err := c.DB().ExecContext(ctx, fmt.Sprintf(`UPDATE custody_events SET digest = '%s' WHERE seq = 77`, d)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := c.VerifyLedger(ctx, key); err == nil || !strings.Contains(err.Error(), "77") {
		t.Fatalf("edited row with a new digest: %v", err)
	}
}

func testCustodyConcurrent(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	signer, key := newSigner()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := c.AppendCustody(ctx, evidence.CustodyEvent{Actor: fmt.Sprintf("w%d", w), Action: evidence.ActionVerify}, signer); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, err := c.VerifyLedger(ctx, key); err != nil || n != 100 {
		t.Fatalf("after concurrent appends: %d, %v", n, err)
	}
}

func testCasesAndLinks(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	for _, u := range []evidence.User{user("o-1", evidence.RoleOfficer), user("o-2", evidence.RoleOfficer), user("s-1", evidence.RoleSupervisor)} {
		if err := c.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	k := evidence.Case{ID: "C-17", Title: "Unlicensed street vending", Officer: "o-1", Unit: "unit-3", Members: []string{"o-2"}, CreatedBy: "o-1", CreatedAt: t0}
	if err := c.CreateCase(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCase(ctx, k); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate case: %v", err)
	}
	if err := c.CreateCase(ctx, evidence.Case{ID: "bad id", Officer: "o-1"}); !errors.Is(err, evidence.ErrInvalidID) {
		t.Fatalf("bad case id: %v", err)
	}
	if err := c.CreateCase(ctx, evidence.Case{ID: "C-18", Officer: "ghost", CreatedBy: "x"}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("case of an unknown officer: %v", err)
	}
	got, err := c.Case(ctx, "C-17")
	if err != nil || got.State != evidence.CaseFiled || strings.Join(got.Members, ",") != "o-1,o-2" || got.Title != k.Title {
		t.Fatalf("Case = %+v, %v", got, err)
	}
	if list, _ := c.Cases(ctx, catalog.CaseFilter{Member: "o-2"}); len(list) != 1 {
		t.Fatalf("cases of o-2: %+v", list)
	}
	if list, _ := c.Cases(ctx, catalog.CaseFilter{Member: "s-1"}); len(list) != 0 {
		t.Fatalf("cases of s-1: %+v", list)
	}
	if list, _ := c.Cases(ctx, catalog.CaseFilter{Unit: "unit-3"}); len(list) != 1 {
		t.Fatalf("cases of unit-3: %+v", list)
	}
	step := evidence.CaseTransition{CaseID: "C-17", From: evidence.CaseFiled, To: evidence.CaseInvestigating, By: "o-1", Reason: "started", At: t0.Add(time.Hour)}
	if err := c.TransitionCase(ctx, step); err != nil {
		t.Fatal(err)
	}
	if err := c.TransitionCase(ctx, step); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("the same step twice: %v", err)
	}
	steps, _ := c.CaseTransitions(ctx, "C-17")
	if len(steps) != 1 || steps[0].To != evidence.CaseInvestigating || steps[0].Reason != "started" {
		t.Fatalf("transitions %+v", steps)
	}
	if got, _ := c.Case(ctx, "C-17"); got.State != evidence.CaseInvestigating {
		t.Fatalf("state after the step: %s", got.State)
	}
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	l := evidence.EvidenceLink{ID: "l1", CaseID: "C-17", RecordingID: "r1", From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute),
		LinkedBy: "o-1", LinkedAt: t0.Add(time.Hour), Note: "the vendor's refusal"}
	if err := c.LinkEvidence(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := c.LinkEvidence(ctx, evidence.EvidenceLink{ID: "l2", CaseID: "C-17", RecordingID: "nope", LinkedBy: "o-1"}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("link of a missing recording: %v", err)
	}
	if got, err := c.EvidenceLink(ctx, "l1"); err != nil || !reflect.DeepEqual(got, l) {
		t.Fatalf("EvidenceLink = %+v, %v; want %+v", got, err, l)
	}
	if err := c.UnlinkEvidence(ctx, "l1", "s-1", "wrong recording", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.UnlinkEvidence(ctx, "l1", "s-1", "again", t0.Add(2*time.Hour)); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("unlinking twice: %v", err)
	}
	links, _ := c.EvidenceLinks(ctx, "", "r1")
	if len(links) != 1 || links[0].Active() || links[0].UnlinkReason != "wrong recording" || links[0].UnlinkedBy != "s-1" {
		t.Fatalf("links of r1 after unlinking: %+v", links)
	}
}

// The case's state is checked in the statement that links or unlinks: a
// closed case takes no link, a decided one keeps its links (whatever step
// is taken between a caller's check and its change). A recording's case can
// be cleared until its manifest is signed.
func testLinksFollowCaseState(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if err := c.CreateUser(ctx, user("o-1", evidence.RoleOfficer)); err != nil {
		t.Fatal(err)
	}
	mustDevice(t, c, "cam-1")
	rec := recording("r1", "cam-1", t0)
	rec.CaseID = "C-1"
	if err := c.CreateRecording(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	link := func(id string) error {
		return c.LinkEvidence(ctx, evidence.EvidenceLink{ID: id, CaseID: "C-1", RecordingID: "r1", LinkedBy: "o-1", LinkedAt: t0})
	}
	if err := link("l0"); err != nil {
		t.Fatal(err)
	}
	states := evidence.CaseStates()
	for i, to := range states[1:] {
		if err := c.TransitionCase(ctx, evidence.CaseTransition{CaseID: "C-1", From: states[i], To: to, By: "o-1", Reason: "next", At: t0}); err != nil {
			t.Fatal(err)
		}
		id := "l-" + string(to)
		err := link(id)
		if to.TakesEvidence() != (err == nil) || (err != nil && !errors.Is(err, catalog.ErrConflict)) {
			t.Fatalf("link to a case %s: %v", to, err)
		}
		if !to.EvidenceSettled() {
			if err := c.UnlinkEvidence(ctx, id, "o-1", "wrong", t0); err != nil {
				t.Fatalf("unlink while %s: %v", to, err)
			}
			continue
		}
		if err := c.UnlinkEvidence(ctx, "l0", "o-1", "why not", t0); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("unlink from a case %s: %v", to, err)
		}
	}
	if l, _ := c.EvidenceLink(ctx, "l0"); !l.Active() {
		t.Fatalf("a decided case's link was removed: %+v", l)
	}
	// A link whose hold failed is withdrawn whatever the state.
	if err := c.WithdrawLink(ctx, "l0", "o-1", "legal hold could not be placed", t0); err != nil {
		t.Fatal(err)
	}
	if err := c.WithdrawLink(ctx, "l0", "o-1", "again", t0); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("withdrawing twice: %v", err)
	}
	if err := c.SetRecordingCase(ctx, "r1", ""); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Recording(ctx, "r1"); r.CaseID != "" {
		t.Fatalf("case of r1 %q after clearing", r.CaseID)
	}
	if err := c.SetManifest(ctx, "r1", "cam-1/r1/manifest.json"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRecordingCase(ctx, "r1", "C-2"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("case of a recording with a signed manifest changed: %v", err)
	}
	if err := c.SetRecordingCase(ctx, "nope", ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("case of a missing recording: %v", err)
	}
}
