package cluster

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/evidence"
)

// fakeCoord answers like coord with nodes set by the test, or fails.
type fakeCoord struct {
	mu     sync.Mutex
	down   bool
	beats  []coord.NodeInfo
	nodes  []coord.NodeInfo
	holder string
	left   []string
}

func (f *fakeCoord) Heartbeat(_ context.Context, n coord.NodeInfo) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return coord.ErrUnavailable
	}
	f.beats = append(f.beats, n)
	return nil
}
func (f *fakeCoord) Leave(_ context.Context, node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left = append(f.left, node)
	return nil
}
func (f *fakeCoord) Nodes(context.Context) ([]coord.NodeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, coord.ErrUnavailable
	}
	return append([]coord.NodeInfo(nil), f.nodes...), nil
}
func (f *fakeCoord) Acquire(_ context.Context, name, holder string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return coord.ErrUnavailable
	}
	if f.holder != "" && f.holder != holder {
		return coord.ErrHeld
	}
	f.holder = holder
	return nil
}
func (f *fakeCoord) Release(context.Context, string, string) error { return nil }

type fakeCatalog struct {
	mu          sync.Mutex
	interrupted map[string]int
	live        map[string][]evidence.Recording
	views       map[string][]evidence.LiveView
}

func (c *fakeCatalog) InterruptNode(_ context.Context, node string, at time.Time, reason string) ([]evidence.Recording, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.interrupted[node]++
	recs := c.live[node]
	delete(c.live, node)
	return recs, nil
}
func (c *fakeCatalog) EndNodeLiveViews(_ context.Context, node string, _ time.Time, _ string) ([]evidence.LiveView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	views := c.views[node]
	delete(c.views, node)
	return views, nil
}

func (c *fakeCatalog) count(node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interrupted[node]
}

// The reaper ends a down node's recordings only while this node holds the
// reaper's lease, and only after its own heartbeats have answered for
// longer than a node's TTL (after an outage every live node must have had
// time to heartbeat before any is taken for dead); it never reaps itself
// or a node that is up or draining.
func TestReaper(t *testing.T) {
	fc := &fakeCoord{nodes: []coord.NodeInfo{
		{ID: "a", State: coord.NodeUp}, {ID: "b", State: coord.NodeDown}, {ID: "c", State: coord.NodeDraining},
	}}
	cat := &fakeCatalog{interrupted: map[string]int{}, live: map[string][]evidence.Recording{"b": {{ID: "r1", DeviceID: "cam-1"}}},
		views: map[string][]evidence.LiveView{"b": {{ID: "v1", DeviceID: "cam-1", RecordingID: "r1", User: "sup-1"}}}}
	var recorded []evidence.CustodyEvent
	n := New(Options{ID: "a", Coord: fc, Catalog: cat, Every: 10 * time.Millisecond, NodeTTL: 50 * time.Millisecond,
		Custody: custodyFunc(func(e evidence.CustodyEvent) { recorded = append(recorded, e) })})
	ctx := context.Background()
	n.beat(ctx)
	n.reap(ctx)
	if cat.count("b") != 0 {
		t.Fatal("reaped before this node's heartbeats had answered for a TTL")
	}
	time.Sleep(70 * time.Millisecond)
	n.beat(ctx)
	n.reap(ctx)
	if cat.count("b") != 1 || cat.count("a") != 0 || cat.count("c") != 0 {
		t.Fatalf("reaped: %v", cat.interrupted)
	}
	byActor := map[string]evidence.CustodyEvent{}
	for _, e := range recorded {
		byActor[e.Actor] = e
	}
	if rec, view := byActor["node:a"], byActor["sup-1"]; len(recorded) != 2 || rec.TargetID != "r1" || rec.Action != evidence.ActionIngest ||
		view.Action != evidence.ActionLiveView || view.TargetID != "r1" || !strings.Contains(view.Detail, "live view v1") {
		t.Fatalf("custody: %+v", recorded)
	}
	// Another node holds the lease: nothing here.
	fc.holder = "c"
	n.reap(ctx)
	if cat.count("b") != 1 {
		t.Fatal("reaped without the reaper's lease")
	}
	// An outage resets the wait.
	fc.holder = ""
	fc.down = true
	n.beat(ctx)
	if err := n.Ping(ctx); err == nil {
		t.Fatal("Ping says healthy while heartbeats fail")
	}
	fc.down = false
	n.beat(ctx)
	n.reap(ctx)
	if cat.count("b") != 1 {
		t.Fatal("reaped right after an outage")
	}
	if err := n.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

type custodyFunc func(evidence.CustodyEvent)

func (f custodyFunc) Record(_ context.Context, e evidence.CustodyEvent) error { f(e); return nil }

// Run heartbeats at once, reports draining when told, and leaves the
// cluster when it stops, so the node's device leases lapse at once.
func TestRunHeartbeatsDrainsAndLeaves(t *testing.T) {
	fc := &fakeCoord{}
	n := New(Options{ID: "a", AdvertiseURL: "http://a:8080", Coord: fc, Every: time.Hour,
		Stats: func() Stats { return Stats{Publishers: 3, Viewers: 2, SpoolBytes: 10, UploadBacklog: 1} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	waitFor(t, func() bool { fc.mu.Lock(); defer fc.mu.Unlock(); return len(fc.beats) == 1 })
	n.Drain()
	waitFor(t, func() bool { fc.mu.Lock(); defer fc.mu.Unlock(); return len(fc.beats) == 2 })
	fc.mu.Lock()
	first, second := fc.beats[0], fc.beats[1]
	fc.mu.Unlock()
	if first.State != coord.NodeUp || first.Publishers != 3 || first.Viewers != 2 || first.AdvertiseURL != "http://a:8080" || first.StartedAt.IsZero() {
		t.Fatalf("first heartbeat: %+v", first)
	}
	if second.State != coord.NodeDraining {
		t.Fatalf("after Drain: %+v", second)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(fc.left) != 1 || fc.left[0] != "a" {
		t.Fatalf("left: %v", fc.left)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}
