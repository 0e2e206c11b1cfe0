package cluster

import (
	"context"
	"errors"
	"log/slog"
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

// Two processes under one node id undo each other (a heartbeat with
// another start time drops the other's device leases; each start ends the
// other's viewing sessions; each stop marks the other down for the
// reaper), so a node does not start while another process heartbeats
// under its id. Its own previous run, stopped abnormally, only delays the
// start until its heartbeat expires; one that left, or none, not at all.
func TestCheckID(t *testing.T) {
	const ttl = 300 * time.Millisecond
	co := coord.NewLocal(coord.Options{NodeTTL: ttl})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	running := New(Options{ID: "a", AdvertiseURL: "http://a:8080", Coord: co, Every: 20 * time.Millisecond, NodeTTL: ttl})
	running.Join(ctx)
	if _, err := co.AcquireDevice(ctx, coord.DeviceLease{Device: "cam-1", Node: "a", Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- running.Run(ctx) }()
	start := time.Now()
	err := CheckID(ctx, co, "a", ttl, 10*time.Millisecond, slog.Default())
	if !errors.Is(err, ErrIDInUse) || !strings.Contains(err.Error(), "--node-id") {
		t.Fatalf("a second process as node a: %v, want ErrIDInUse", err)
	}
	if l, err := co.Device(ctx, "cam-1"); err != nil || l.Session != "s1" {
		t.Fatalf("the running node's lease after the check: %+v %v", l, err)
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))

	// A previous run that stopped heartbeating (kill -9): wait it out.
	crashed := New(Options{ID: "b", Coord: co, Every: time.Hour, NodeTTL: ttl})
	crashed.Join(ctx)
	start = time.Now()
	if err := CheckID(ctx, co, "b", ttl, 10*time.Millisecond, slog.Default()); err != nil {
		t.Fatalf("node b's previous run, silent: %v", err)
	}
	if waited := time.Since(start); waited < ttl/2 || waited > 3*ttl {
		t.Fatalf("waited %v for a silent previous run; want about its TTL (%v)", waited, ttl)
	}
	// Unknown, or left: at once.
	if err := co.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	for _, id := range []string{"a", "nobody"} {
		start = time.Now()
		if err := CheckID(context.Background(), co, id, ttl, 10*time.Millisecond, slog.Default()); err != nil || time.Since(start) > ttl/2 {
			t.Fatalf("%s: %v after %v, want nil at once", id, err, time.Since(start))
		}
	}
	// Coordination that does not answer: the node starts (degraded).
	if err := CheckID(context.Background(), &fakeCoord{down: true}, "a", ttl, 10*time.Millisecond, slog.Default()); err != nil {
		t.Fatal(err)
	}
}
