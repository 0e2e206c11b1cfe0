package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// fenced is a recording of cam-1 by node with fence at (Unix µs).
func fenced(id, node string, start time.Time, fence time.Time) evidence.Recording {
	r := recording(id, "cam-1", start)
	r.NodeID = node
	if !fence.IsZero() {
		r.Fence = fence.UnixMicro()
	}
	return r
}

// at is a media segment of rec that started at start.
func at(rec string, seq int64, start time.Time) evidence.Segment {
	s := segment(rec, seq)
	s.StartedAt, s.DeviceTime = start, time.Time{}
	return s
}

// chainOK checks the device's whole chain is linear: chain_seq 1..n, each
// link covering the one before, each hash recomputing.
func chainOK(t *testing.T, c *catalog.Catalog, dev string) []evidence.Segment {
	t.Helper()
	links, err := c.ChainLinks(context.Background(), dev, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := evidence.GenesisHash
	for i, l := range links {
		if l.ChainSeq != int64(i+1) || l.PrevChainHash != prev || evidence.ChainHash(l.Link()) != l.ChainHash {
			t.Fatalf("chain of %s is not linear at link %d: %+v", dev, i+1, l)
		}
		prev = l.ChainHash
	}
	if n, head, _ := c.ChainHead(context.Background(), dev); n != int64(len(links)) || head != prev {
		t.Fatalf("chain head %d %s, links end at %d %s", n, head, len(links), prev)
	}
	return links
}

func testNodeAndFence(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if f, err := c.DeviceFence(ctx, "cam-1"); err != nil || f != 0 {
		t.Fatalf("new device's fence = %d, %v", f, err)
	}
	r := fenced("r1", "node-a", t0, t0.Add(-time.Second))
	if err := c.CreateRecording(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := c.Recording(ctx, "r1")
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("Recording = %+v, %v; want %+v", got, err, r)
	}
	if f, _ := c.DeviceFence(ctx, "cam-1"); f != r.Fence {
		t.Fatalf("device fence %d, want %d", f, r.Fence)
	}
	// A lower fence does not lower the device's.
	if err := c.CreateRecording(ctx, fenced("r0", "node-b", t0, t0.Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	if f, _ := c.DeviceFence(ctx, "cam-1"); f != r.Fence {
		t.Fatalf("device fence %d after a lower one, want %d", f, r.Fence)
	}
	if _, err := c.DeviceFence(ctx, "ghost"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("fence of a missing device: %v", err)
	}
	bad := fenced("r9", "node-a", t0, time.Time{})
	bad.Fence = -1
	if err := c.CreateRecording(ctx, bad); err == nil {
		t.Fatal("a negative fence was accepted")
	}
	// The device row is not left changed by a recording that failed.
	if err := c.CreateRecording(ctx, fenced("r1", "node-a", t0, t0.Add(time.Hour))); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if f, _ := c.DeviceFence(ctx, "cam-1"); f != r.Fence {
		t.Fatalf("device fence %d after a refused recording, want %d", f, r.Fence)
	}
}

// testFencing: a segment of an older fence recorded at or after a newer
// grant is refused and nothing is written; one recorded before it is
// accepted, also after the newer recording's links; the smallest newer
// grant is the boundary; tombstones are not fenced.
func testFencing(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	f1, f2, f3 := t0, t0.Add(time.Minute), t0.Add(2*time.Minute)
	if err := c.CreateRecording(ctx, fenced("r1", "node-a", t0, f1)); err != nil {
		t.Fatal(err)
	}
	for seq := range int64(3) {
		if _, err := c.AppendSegment(ctx, at("r1", seq, t0.Add(time.Duration(seq)*4*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	// Before any newer grant, r1 may record past f2.
	if _, err := c.AppendSegment(ctx, at("r1", 3, f2.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateRecording(ctx, fenced("r2", "node-b", f2, f2)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, at("r2", 0, f2)); err != nil {
		t.Fatal(err)
	}
	n, head, _ := c.ChainHead(ctx, "cam-1")
	for _, start := range []time.Time{f2, f2.Add(time.Microsecond), f3.Add(time.Hour)} {
		_, err := c.AppendSegment(ctx, at("r1", 4, start))
		if !errors.Is(err, catalog.ErrStaleFence) {
			t.Fatalf("r1 segment started at %v after r2's grant %v: %v, want ErrStaleFence", start, f2, err)
		}
	}
	if n2, head2, _ := c.ChainHead(ctx, "cam-1"); n2 != n || head2 != head {
		t.Fatal("a refused segment moved the chain head")
	}
	if segs, _ := c.Segments(ctx, "r1"); len(segs) != 4 {
		t.Fatalf("r1 has %d segments after refusals, want 4", len(segs))
	}
	// Late, but recorded before the takeover: accepted after r2's link.
	late, err := c.AppendSegment(ctx, at("r1", 4, f2.Add(-time.Microsecond)))
	if err != nil || late.ChainSeq != n+1 {
		t.Fatalf("late segment from before the takeover: %+v, %v", late, err)
	}
	// r2 itself records until the next grant, f3.
	if err := c.CreateRecording(ctx, fenced("r3", "node-a", f3, f3)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, at("r2", 1, f3.Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, at("r2", 2, f3)); !errors.Is(err, catalog.ErrStaleFence) {
		t.Fatalf("r2 past r3's grant: %v", err)
	}
	// r1's boundary is r2's grant (the smallest newer), not r3's.
	if _, err := c.AppendSegment(ctx, at("r1", 5, f2.Add(30*time.Second))); !errors.Is(err, catalog.ErrStaleFence) {
		t.Fatalf("r1 between r2's and r3's grants: %v", err)
	}
	// A segment already on record is still answered ErrExists, fenced or not.
	if _, err := c.AppendSegment(ctx, at("r1", 3, f2.Add(time.Second))); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("a recorded segment again: %v, want ErrExists", err)
	}
	// Retention's tombstone is linked whenever it runs.
	tomb := evidence.Segment{RecordingID: "r1", DeviceID: "cam-1", Seq: 6, Kind: evidence.KindTombstone,
		Key: "cam-1/r1/tombstone.json", Size: 10, SHA256: fmt.Sprintf("%064x", 6), StartedAt: f3.Add(24 * time.Hour)}
	if _, err := c.AppendSegment(ctx, tomb); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	chainOK(t, c, "cam-1")
}

// testFencingOldRecordings: recordings from before clusters (fence 0)
// follow the same rule against the first fenced one.
func testFencingOldRecordings(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("old", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, at("old", 0, t0)); err != nil {
		t.Fatal(err)
	}
	grant := t0.Add(time.Minute)
	if err := c.CreateRecording(ctx, fenced("new", "node-a", grant, grant)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, at("old", 1, grant.Add(time.Second))); !errors.Is(err, catalog.ErrStaleFence) {
		t.Fatalf("fence-0 segment after a grant: %v", err)
	}
	if _, err := c.AppendSegment(ctx, at("old", 1, grant.Add(-time.Second))); err != nil {
		t.Fatalf("fence-0 segment before the grant: %v", err)
	}
	// Two recordings of fence 0 do not fence each other.
	if err := c.CreateRecording(ctx, recording("old2", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, at("old", 2, t0.Add(10*time.Second))); err != nil {
		t.Fatal(err)
	}
	chainOK(t, c, "cam-1")
}

func testInterruptNode(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	mustDevice(t, c, "cam-2")
	for _, r := range []evidence.Recording{fenced("a1", "node-a", t0, t0), fenced("a2", "node-a", t0.Add(time.Minute), time.Time{}),
		fenced("a3", "node-a", t0, time.Time{}), fenced("b1", "node-b", t0, time.Time{})} {
		if r.ID == "a2" || r.ID == "b1" {
			r.DeviceID = "cam-2"
		}
		if err := c.CreateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.FinishRecording(ctx, "a3", evidence.StateComplete, t0.Add(time.Second), "publisher stopped"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InterruptNode(ctx, "", t0, "x"); err == nil {
		t.Fatal("InterruptNode without a node accepted")
	}
	reapedAt := t0.Add(5 * time.Minute)
	const why = "node node-a stopped answering"
	got, err := c.InterruptNode(ctx, "node-a", reapedAt, why)
	if err != nil || len(got) != 2 || got[0].ID != "a1" || got[1].ID != "a2" {
		t.Fatalf("InterruptNode = %+v, %v; want a1 and a2", got, err)
	}
	for _, r := range got {
		if r.State != evidence.StateInterrupted || !r.EndedAt.Equal(reapedAt) || r.EndReason != why || !r.ReapedAt.Equal(reapedAt) {
			t.Fatalf("reaped %+v", r)
		}
	}
	for id, want := range map[string]evidence.RecordingState{"a3": evidence.StateComplete, "b1": evidence.StateLive} {
		if r, _ := c.Recording(ctx, id); r.State != want || !r.ReapedAt.IsZero() {
			t.Fatalf("%s after reaping node-a: %+v", id, r)
		}
	}
	if again, err := c.InterruptNode(ctx, "node-a", reapedAt, why); err != nil || len(again) != 0 {
		t.Fatalf("reaping twice: %+v, %v", again, err)
	}
	// The owner comes back and finishes a1 with what it knows.
	ownEnd := t0.Add(2 * time.Minute)
	if err := c.FinishRecording(ctx, "a1", evidence.StateInterrupted, ownEnd, "server restarted"); err != nil {
		t.Fatalf("owner's finish after the reaper: %v", err)
	}
	r, _ := c.Recording(ctx, "a1")
	if r.State != evidence.StateInterrupted || !r.EndedAt.Equal(ownEnd) || r.EndReason != "server restarted" || !r.ReapedAt.IsZero() {
		t.Fatalf("a1 after its owner finished it: %+v", r)
	}
	if err := c.FinishRecording(ctx, "a1", evidence.StateComplete, ownEnd, "again"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("finishing twice: %v, want ErrConflict", err)
	}
	// A reaped recording whose manifest is signed keeps its end.
	if err := c.SetManifest(ctx, "a2", "cam-2/a2/manifest.json"); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishRecording(ctx, "a2", evidence.StateComplete, ownEnd, "late"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("finishing a reaped recording with a manifest: %v, want ErrConflict", err)
	}
	// A finished recording never reaped: as before.
	if err := c.FinishRecording(ctx, "a3", evidence.StateInterrupted, ownEnd, "x"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("finishing a3 again: %v", err)
	}
	// The reaper's recordings still take their late segments.
	b1 := func(seq int64) evidence.Segment {
		s := at("b1", seq, t0.Add(time.Duration(seq)*4*time.Second))
		s.DeviceID, s.Key = "cam-2", fmt.Sprintf("cam-2/b1/%d", seq)
		return s
	}
	if _, err := c.AppendSegment(ctx, b1(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InterruptNode(ctx, "node-b", reapedAt, why); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, b1(1)); err != nil {
		t.Fatalf("segment of a reaped recording from its spool: %v", err)
	}
}

func testNodeLiveViews(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	for i, node := range []string{"node-a", "node-a", "node-b", ""} {
		v := evidence.LiveView{ID: fmt.Sprintf("v%d", i), DeviceID: "cam-1", User: "sup-1", StartedAt: t0, NodeID: node}
		if err := c.StartLiveView(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := c.LiveView(ctx, "v2"); v.NodeID != "node-b" {
		t.Fatalf("node of v2: %+v", v)
	}
	if err := c.EndLiveView(ctx, "v1", t0.Add(time.Second), "viewer left"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EndNodeLiveViews(ctx, "", t0, "x"); err == nil {
		t.Fatal("EndNodeLiveViews without a node accepted")
	}
	ended, err := c.EndNodeLiveViews(ctx, "node-a", t0.Add(time.Minute), "node node-a stopped answering")
	n := len(ended)
	if err != nil || n != 1 {
		t.Fatalf("EndNodeLiveViews = %d, %v; want 1", n, err)
	}
	want := map[string]string{"v0": "node node-a stopped answering", "v1": "viewer left", "v2": "", "v3": ""}
	for id, reason := range want {
		v, _ := c.LiveView(ctx, id)
		if v.EndReason != reason || (reason == "") != v.EndedAt.IsZero() {
			t.Fatalf("%s: %+v", id, v)
		}
	}
}

func testSigningKeys(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if ks, err := c.SigningKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("empty: %+v, %v", ks, err)
	}
	k1 := evidence.SigningKey{ID: "k1", PublicKeyPEM: "-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----\n", NodeID: "node-a", CreatedAt: t0}
	k2 := evidence.SigningKey{ID: "k2", PublicKeyPEM: "-----BEGIN PUBLIC KEY-----\nBBB\n-----END PUBLIC KEY-----\n", NodeID: "node-b", CreatedAt: t0.Add(time.Hour)}
	for _, k := range []evidence.SigningKey{k2, k1} {
		if err := c.AddSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// Idempotent; the first node to publish a shared key stays named.
	again := k1
	again.NodeID, again.CreatedAt = "node-c", t0.Add(2*time.Hour)
	if err := c.AddSigningKey(ctx, again); err != nil {
		t.Fatalf("same key again: %v", err)
	}
	other := k1
	other.PublicKeyPEM = k2.PublicKeyPEM
	if err := c.AddSigningKey(ctx, other); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("another key under k1's id: %v, want ErrConflict", err)
	}
	if err := c.AddSigningKey(ctx, evidence.SigningKey{ID: "k3"}); err == nil {
		t.Fatal("a key without PEM accepted")
	}
	ks, err := c.SigningKeys(ctx)
	if err != nil || !reflect.DeepEqual(ks, []evidence.SigningKey{k1, k2}) {
		t.Fatalf("SigningKeys = %+v, %v", ks, err)
	}
}

// testRetentionNeedsManifest: retention never takes a recording without a
// signed manifest (its node may still be uploading it), reaped or not.
func testRetentionNeedsManifest(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	for _, id := range []string{"signed", "unsigned", "reaped", "live"} {
		r := fenced(id, "node-a", t0, time.Time{})
		if id == "reaped" {
			r.NodeID = "node-b"
		}
		if err := c.CreateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"signed", "unsigned"} {
		if err := c.FinishRecording(ctx, id, evidence.StateComplete, t0.Add(time.Minute), "publisher stopped"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.InterruptNode(ctx, "node-b", t0.Add(time.Minute), "node node-b stopped answering"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetManifest(ctx, "signed", "cam-1/signed/manifest.json"); err != nil {
		t.Fatal(err)
	}
	policy := evidence.RetentionPolicy{Unlinked: evidence.RetentionPeriod{Duration: time.Minute}}
	got, err := c.RetentionDue(ctx, policy, t0.Add(time.Hour), 10)
	if err != nil || len(got) != 1 || got[0].ID != "signed" {
		t.Fatalf("RetentionDue = %+v, %v; want only the signed recording", got, err)
	}
}
