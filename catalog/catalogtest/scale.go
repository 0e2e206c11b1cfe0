package catalogtest

// What keeps reads bounded at a city's scale (migration 0012): the count of
// a recording's segments kept with the recording, time windows answered
// from a bounded range whatever the device's history, and custody excerpts
// that carry only the checkpoints they need.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// A window's recordings are every one that overlaps it, however long ago
// it started: a long recording, one still open from long before, one the
// reaper ended, one the owning node ended later still, one created ended.
func testRecordingWindows(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	for _, d := range []string{"cam-w", "cam-x", "cam-y"} {
		mustDevice(t, c, d)
	}
	create := func(r evidence.Recording) {
		t.Helper()
		if err := c.CreateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	finish := func(id string, end time.Time) {
		t.Helper()
		if err := c.FinishRecording(ctx, id, evidence.StateComplete, end, "publisher stopped"); err != nil {
			t.Fatal(err)
		}
	}
	// cam-w: one left open two days ago, one of 10 h, then ten of 10 min,
	// one an hour from t0+11h.
	create(recording("stale", "cam-w", t0.Add(-48*time.Hour)))
	create(recording("long", "cam-w", t0))
	finish("long", t0.Add(10*time.Hour))
	for k := range 10 {
		id := fmt.Sprintf("s%02d", k)
		start := t0.Add(11*time.Hour + time.Duration(k)*time.Hour)
		create(recording(id, "cam-w", start))
		finish(id, start.Add(10*time.Minute))
	}
	// cam-x: live on node n1 from t0-30h until the reaper ends it at t0+20h.
	rx := recording("rx", "cam-x", t0.Add(-30*time.Hour))
	rx.NodeID = "n1"
	create(rx)
	if got, err := c.InterruptNode(ctx, "n1", t0.Add(20*time.Hour), "node n1 stopped answering"); err != nil || len(got) != 1 {
		t.Fatalf("InterruptNode = %v, %v", got, err)
	}
	// cam-y: created already ended (an import), 105 h long.
	imported := recording("imported", "cam-y", t0.Add(-100*time.Hour))
	imported.State, imported.EndedAt = evidence.StateComplete, t0.Add(5*time.Hour)
	create(imported)

	ids := func(f catalog.RecordingFilter) string {
		t.Helper()
		rs, err := c.Recordings(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		s := []string{}
		for _, r := range rs {
			s = append(s, r.ID)
		}
		return fmt.Sprint(s)
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	check := func(f catalog.RecordingFilter, want string) {
		t.Helper()
		if got := ids(f); got != want {
			t.Errorf("Recordings(device %q, from %v, to %v, state %q, limit %d) = %s, want %s",
				f.DeviceID, f.From.Sub(t0), f.To.Sub(t0), f.State, f.Limit, got, want)
		}
	}
	check(catalog.RecordingFilter{DeviceID: "cam-w", From: at(9*time.Hour + 30*time.Minute), To: at(9*time.Hour + 40*time.Minute)}, "[long stale]")
	check(catalog.RecordingFilter{DeviceID: "cam-w", From: at(15*time.Hour + 5*time.Minute), To: at(15*time.Hour + 6*time.Minute)}, "[s04 stale]")
	check(catalog.RecordingFilter{DeviceID: "cam-w", From: at(15*time.Hour + 30*time.Minute), To: at(15*time.Hour + 40*time.Minute)}, "[stale]")
	check(catalog.RecordingFilter{From: at(19 * time.Hour), To: at(19*time.Hour + 5*time.Minute)}, "[s08 rx stale]")
	check(catalog.RecordingFilter{DeviceID: "cam-y", From: at(4 * time.Hour), To: at(4*time.Hour + time.Minute)}, "[imported]")
	check(catalog.RecordingFilter{DeviceID: "cam-y", From: at(6 * time.Hour), To: at(7 * time.Hour)}, "[]")
	check(catalog.RecordingFilter{DeviceID: "cam-x", From: at(19*time.Hour + 59*time.Minute)}, "[rx]")
	check(catalog.RecordingFilter{DeviceID: "cam-x", From: at(20*time.Hour + time.Minute)}, "[]")
	check(catalog.RecordingFilter{DeviceID: "cam-w", From: at(9*time.Hour + 30*time.Minute), State: evidence.StateLive}, "[stale]")
	check(catalog.RecordingFilter{DeviceID: "cam-w", From: at(-1000 * time.Hour), Limit: 3}, "[s09 s08 s07]")
	check(catalog.RecordingFilter{From: at(-1000 * time.Hour), To: at(12 * time.Hour), Limit: 4}, "[s00 long rx stale]")
	check(catalog.RecordingFilter{DeviceID: "cam-none", From: at(0)}, "[]")
	// The node's spool comes back: its own end, later than the reaper's,
	// replaces it, and the window follows.
	if err := c.FinishRecording(ctx, "rx", evidence.StateInterrupted, at(25*time.Hour), "server restarted"); err != nil {
		t.Fatal(err)
	}
	check(catalog.RecordingFilter{DeviceID: "cam-x", From: at(24 * time.Hour), To: at(24*time.Hour + time.Minute)}, "[rx]")
	check(catalog.RecordingFilter{From: at(24 * time.Hour), To: at(24*time.Hour + time.Minute)}, "[rx stale]")
}

// The count of a recording's segments is kept as they are appended, the
// init segment counted and a tombstone not, and reads agree with the rows.
func testSegmentCount(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	count := func(want int) {
		t.Helper()
		r, err := c.Recording(ctx, "r1")
		if err != nil || r.SegmentCount != want {
			t.Fatalf("Recording: %d segments, %v; want %d", r.SegmentCount, err, want)
		}
		rs, err := c.Recordings(ctx, catalog.RecordingFilter{DeviceID: "cam-1", From: t0, To: t0.Add(30 * time.Minute)})
		if err != nil || len(rs) != 1 || rs[0].SegmentCount != want {
			t.Fatalf("Recordings: %+v, %v; want %d segments", rs, err, want)
		}
	}
	count(0)
	for seq := range int64(4) {
		if _, err := c.AppendSegment(ctx, segment("r1", seq)); err != nil {
			t.Fatal(err)
		}
	}
	count(4)
	// A retry of a stored segment changes nothing.
	if _, err := c.AppendSegment(ctx, segment("r1", 2)); err == nil {
		t.Fatal("duplicate segment accepted")
	}
	// Refused for its fence: nothing written, nothing counted.
	newer := recording("r2", "cam-1", t0.Add(time.Hour))
	newer.Fence = t0.Add(time.Hour).UnixMicro()
	if err := c.CreateRecording(ctx, newer); err != nil {
		t.Fatal(err)
	}
	late := segment("r1", 4)
	late.StartedAt = t0.Add(2 * time.Hour)
	if _, err := c.AppendSegment(ctx, late); err == nil {
		t.Fatal("segment recorded after a newer grant accepted")
	}
	count(4)
	if err := c.FinishRecording(ctx, "r1", evidence.StateComplete, t0.Add(16*time.Second), ""); err != nil {
		t.Fatal(err)
	}
	tomb := segment("r1", 4)
	tomb.Kind, tomb.Key = evidence.KindTombstone, "cam-1/r1/tombstone.json"
	if _, err := c.AppendSegment(ctx, tomb); err != nil {
		t.Fatal(err)
	}
	count(4)
	if segs, err := c.Segments(ctx, "r1"); err != nil || len(segs) != 5 {
		t.Fatalf("Segments: %d, %v; want 4 and the tombstone", len(segs), err)
	}
}

// An excerpt from a long ledger holds the checkpoints around its events
// and the last one, not every checkpoint, and verifies.
func testExcerptCheckpoints(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	signer, key := newSigner()
	inCase := map[int]string{5: "case-a", 70: "case-b", 100: "case-b", 400: "case-b", 401: "case-b", 448: "case-c", 449: "case-c"}
	for i := 1; i <= 10*evidence.CheckpointEvery; i++ {
		e := evidence.CustodyEvent{At: t0.Add(time.Duration(i) * time.Second), Actor: "s-1", Action: evidence.ActionPlayback,
			TargetKind: "recording", TargetID: fmt.Sprintf("rec-%d", i%13), CaseID: inCase[i]}
		if _, err := c.AppendCustody(ctx, e, signer); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		f           catalog.CustodyFilter
		events      int
		anchor      int64
		checkpoints []int64
	}{
		{catalog.CustodyFilter{CaseID: "case-a"}, 1, 0, []int64{64, 640}},
		{catalog.CustodyFilter{CaseID: "case-b"}, 4, 64, []int64{64, 128, 384, 448, 640}},
		{catalog.CustodyFilter{CaseID: "case-c"}, 2, 384, []int64{384, 448, 512, 640}},
		{catalog.CustodyFilter{CaseID: "case-none"}, 0, 640, []int64{640}},
	} {
		x, err := c.CustodyExcerpt(ctx, tc.f, signer)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, cp := range x.Checkpoints {
			seqs = append(seqs, cp.Seq)
		}
		if len(x.Events) != tc.events || x.AnchorSeq != tc.anchor || !slices.Equal(seqs, tc.checkpoints) {
			t.Errorf("%s: %d events, anchor %d, checkpoints %v; want %d, %d, %v", tc.f.CaseID, len(x.Events), x.AnchorSeq, seqs,
				tc.events, tc.anchor, tc.checkpoints)
		}
		if err := evidence.VerifyExcerpt(x, key); err != nil {
			t.Errorf("%s: %v", tc.f.CaseID, err)
		}
	}
	// An event after the last checkpoint gets one made at the head.
	if _, err := c.AppendCustody(ctx, evidence.CustodyEvent{Actor: "s-1", Action: evidence.ActionExport, CaseID: "case-b"}, signer); err != nil {
		t.Fatal(err)
	}
	x, err := c.CustodyExcerpt(ctx, catalog.CustodyFilter{CaseID: "case-b"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(x.Checkpoints); n != 6 || x.Checkpoints[n-1].Seq != 641 {
		t.Fatalf("checkpoints %+v, want 64 128 384 448 640 641", x.Checkpoints)
	}
	if err := evidence.VerifyExcerpt(x, key); err != nil {
		t.Fatal(err)
	}
}
