package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/testsvc"
)

// Two nodes on one catalog, each with its own handle, race for one device:
// node A records r1 (an older grant) and keeps uploading from its spool
// while node B takes the device over (r2, grant at takeover) and uploads
// r2. The device chain stays linear, nothing A recorded at or after the
// takeover is in it, and A's segments recorded before the takeover are all
// accepted, also those uploaded after B's links (a spool coming back late).
func TestFenceRace(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (a, b *catalog.Catalog){
		"postgres": func(t *testing.T) (a, b *catalog.Catalog) {
			u := testsvc.Postgres(t)
			return mustOpen(t, u, ""), mustOpen(t, u, "")
		},
		"sqlite": func(t *testing.T) (a, b *catalog.Catalog) {
			path := filepath.Join(t.TempDir(), "catalog.db")
			ca, err := catalog.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			cb, err := catalog.OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ca.Close(); cb.Close() })
			return ca, cb
		},
	} {
		t.Run(name, func(t *testing.T) { fenceRace(t, open) })
	}
}

func mustOpen(t *testing.T, url, dir string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), url, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func fenceRace(t *testing.T, open func(t *testing.T) (a, b *catalog.Catalog)) {
	ctx := context.Background()
	nodeA, nodeB := open(t)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	takeover := t0.Add(60 * time.Second)
	if err := nodeA.CreateDevice(ctx, evidence.Device{ID: "cam-1", SecretHash: "x", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	seg := func(rec string, seq int64, start time.Time) evidence.Segment {
		kind := evidence.KindMedia
		if seq == 0 {
			kind = evidence.KindInit
		}
		return evidence.Segment{RecordingID: rec, DeviceID: "cam-1", Seq: seq, Kind: kind, Key: fmt.Sprintf("cam-1/%s/%06d", rec, seq),
			Size: 100, SHA256: fmt.Sprintf("%064x", seq), StartedAt: start, Duration: time.Second, Keyframe: true}
	}
	if err := nodeA.CreateRecording(ctx, evidence.Recording{ID: "r1", DeviceID: "cam-1", StartedAt: t0, NodeID: "node-a", Fence: t0.UnixMicro()}); err != nil {
		t.Fatal(err)
	}
	for seq := range int64(10) {
		if _, err := nodeA.AppendSegment(ctx, seg("r1", seq, t0.Add(time.Duration(seq)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	// A has segments up to 120 s (split brain: it records on past the
	// takeover); B takes over at 60 s and records 60 s.
	created, bLinked := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	report := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	wg.Add(2)
	go func() { // node A
		defer wg.Done()
		for seq := int64(10); seq < 120; seq++ {
			switch seq {
			case 35: // the rest of the spool comes back after B has linked
				<-bLinked
			case 60: // and what A recorded after the takeover, after B has it on record
				<-created
			}
			start := t0.Add(time.Duration(seq) * time.Second)
			_, err := nodeA.AppendSegment(ctx, seg("r1", seq, start))
			switch {
			case start.Before(takeover) && err != nil:
				report("r1 seq %d, recorded before the takeover: %v", seq, err)
			case !start.Before(takeover) && !errors.Is(err, catalog.ErrStaleFence):
				report("r1 seq %d, recorded after the takeover: %v, want ErrStaleFence", seq, err)
			}
		}
	}()
	go func() { // node B
		defer wg.Done()
		if err := nodeB.CreateRecording(ctx, evidence.Recording{ID: "r2", DeviceID: "cam-1", StartedAt: takeover, NodeID: "node-b", Fence: takeover.UnixMicro()}); err != nil {
			report("create r2: %v", err)
		}
		close(created)
		for seq := int64(0); seq < 60; seq++ {
			if _, err := nodeB.AppendSegment(ctx, seg("r2", seq, takeover.Add(time.Duration(seq)*time.Second))); err != nil {
				report("r2 seq %d: %v", seq, err)
			}
			if seq == 0 {
				close(bLinked)
			}
		}
	}()
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	links, err := nodeB.ChainLinks(ctx, "cam-1", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 60+60 {
		t.Fatalf("%d links, want 120 (r1's 60 from before the takeover, r2's 60)", len(links))
	}
	prev, r2First, r1Last := evidence.GenesisHash, int64(0), int64(0)
	for i, l := range links {
		if l.ChainSeq != int64(i+1) || l.PrevChainHash != prev || evidence.ChainHash(l.Link()) != l.ChainHash {
			t.Fatalf("the chain is not linear at link %d: %+v", i+1, l)
		}
		prev = l.ChainHash
		switch {
		case l.RecordingID == "r1" && !l.StartedAt.Before(takeover):
			t.Fatalf("r1's seq %d, recorded after the takeover, is in the chain", l.Seq)
		case l.RecordingID == "r1":
			r1Last = l.ChainSeq
		case r2First == 0:
			r2First = l.ChainSeq
		}
	}
	if r1Last < r2First {
		t.Fatalf("r1's links (last %d) and r2's (first %d) did not interleave", r1Last, r2First)
	}
	for rec, want := range map[string]int{"r1": 60, "r2": 60} {
		segs, _ := nodeA.Segments(ctx, rec)
		if len(segs) != want {
			t.Fatalf("%s has %d segments, want %d", rec, len(segs), want)
		}
		for i := 1; i < len(segs); i++ {
			if segs[i].ChainSeq <= segs[i-1].ChainSeq {
				t.Fatalf("%s's chain positions do not increase at seq %d", rec, segs[i].Seq)
			}
		}
	}
}
