// Package coordtest is the conformance suite every coord implementation
// runs: the same behaviours, checked the same way, against Local and Redis.
package coordtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/coord"
)

// Backend is what both coord implementations provide.
type Backend interface {
	Ping(ctx context.Context) error
	Heartbeat(ctx context.Context, n coord.NodeInfo) error
	Nodes(ctx context.Context) ([]coord.NodeInfo, error)
	Leave(ctx context.Context, node string) error
	AcquireDevice(ctx context.Context, d coord.DeviceLease) (coord.DeviceLease, error)
	UpdateDevice(ctx context.Context, d coord.DeviceLease) error
	ReleaseDevice(ctx context.Context, device, session string) error
	DeviceLeases(ctx context.Context) ([]coord.DeviceLease, error)
	Device(ctx context.Context, id string) (coord.DeviceLease, error)
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) error
	Release(ctx context.Context, name, holder string) error
	TakeSlot(ctx context.Context, pool, id string, limit int, ttl time.Duration) error
	RenewSlots(ctx context.Context, pool string, ids []string, ttl time.Duration) error
	ReleaseSlot(ctx context.Context, pool, id string) error
	Publish(ctx context.Context, stream string, e coord.Event) error
	ReadGroup(ctx context.Context, stream, group, consumer string, count int, block time.Duration) ([]coord.Message, error)
	Ack(ctx context.Context, stream, group string, ids ...string) error
	Close() error
}

// nodeTTL is short so that a backend with its own clock (Redis) expires
// nodes within the test; one that uses Options.Now (Local) expires them
// when the suite moves its clock.
const nodeTTL = time.Second

// Run runs every behaviour as a subtest, each on a backend of its own that
// open returns for o (a fresh random Prefix, NodeTTL 1 s, Now the suite's
// clock). open closes it, if it wants, in t.Cleanup; the suite also closes
// it, so Close must be safe twice.
func Run(t *testing.T, open func(t *testing.T, o coord.Options) Backend) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"Presence", testPresence},
		{"PresenceExpires", testPresenceExpires},
		{"PresenceForgetsAfterADay", testPresenceForgets},
		{"DeviceExclusive", testDeviceExclusive},
		{"DeviceFence", testDeviceFence},
		{"DeviceFreeWhenHolderExpires", testDeviceHolderExpires},
		{"DeviceHeldWhileHolderBeats", testDeviceHeldWhileBeating},
		{"DeviceFreeWhenHolderLeaves", testDeviceHolderLeaves},
		{"DeviceFreeWhenHolderRestarts", testDeviceHolderRestarts},
		{"DeviceNodeNeverSeen", testDeviceNodeNeverSeen},
		{"DeviceRelease", testDeviceRelease},
		{"DeviceUpdate", testDeviceUpdate},
		{"DeviceLeases", testDeviceLeases},
		{"DeviceRace", testDeviceRace},
		{"NamedLease", testNamedLease},
		{"NamedLeaseExpires", testNamedLeaseExpires},
		{"Slots", testSlots},
		{"SlotsExpire", testSlotsExpire},
		{"SlotsRenew", testSlotsRenew},
		{"SlotsRace", testSlotsRace},
		{"Stream", testStream},
		{"StreamBlock", testStreamBlock},
		{"StreamGroups", testStreamGroups},
		{"CanceledContext", testCanceled},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{}
			o := coord.Options{Prefix: "coordtest:" + randomHex(8) + ":", NodeTTL: nodeTTL, Now: clk.Now}
			e := &env{b: open(t, o), clk: clk, ctx: t.Context(), started: time.Now().Add(-time.Minute).UTC().Truncate(time.Second)}
			t.Cleanup(func() { e.b.Close() })
			tc.run(t, e)
		})
	}
}

type env struct {
	b       Backend
	clk     *clock
	ctx     context.Context
	started time.Time // the nodes' StartedAt
}

// clock is the suite's Options.Now: the real clock plus an offset tests move.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (e *env) node(id string) coord.NodeInfo {
	return coord.NodeInfo{ID: id, AdvertiseURL: "https://" + id + ".example:8443", StartedAt: e.started, State: coord.NodeUp}
}

func (e *env) beat(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := e.b.Heartbeat(e.ctx, e.node(id)); err != nil {
			t.Fatalf("Heartbeat %s: %v", id, err)
		}
	}
}

func lease(device, node, session string) coord.DeviceLease {
	return coord.DeviceLease{Device: device, Node: node, Session: session}
}

func (e *env) acquire(t *testing.T, d coord.DeviceLease) coord.DeviceLease {
	t.Helper()
	got, err := e.b.AcquireDevice(e.ctx, d)
	if err != nil {
		t.Fatalf("AcquireDevice %s by %s/%s: %v", d.Device, d.Node, d.Session, err)
	}
	if got.Device != d.Device || got.Node != d.Node || got.Session != d.Session {
		t.Fatalf("AcquireDevice %s by %s/%s granted %+v", d.Device, d.Node, d.Session, got)
	}
	return got
}

func (e *env) nodes(t *testing.T) map[string]coord.NodeInfo {
	t.Helper()
	list, err := e.b.Nodes(e.ctx)
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	m := map[string]coord.NodeInfo{}
	for _, n := range list {
		m[n.ID] = n
	}
	return m
}

func (e *env) state(t *testing.T, id string) string {
	t.Helper()
	n, ok := e.nodes(t)[id]
	if !ok {
		return "absent"
	}
	return n.State
}

// eventually polls cond until it returns nil, for a backend keeping its own
// clock; a backend on the suite's clock usually passes at once, because
// cond moves that clock.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 10 s", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expired moves the suite's clock past d and polls cond: a backend on its
// own clock gets there in real time.
func (e *env) expired(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	e.clk.Advance(d + time.Millisecond)
	eventually(t, what, cond)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testPresence(t *testing.T, e *env) {
	before := time.Now()
	a := e.node("node-b") // listed after node-a
	a.Publishers, a.Viewers, a.SpoolBytes, a.UploadBacklog = 3, 7, 1<<40+3, 1<<33+5
	if err := e.b.Heartbeat(e.ctx, a); err != nil {
		t.Fatal(err)
	}
	draining := e.node("node-a")
	draining.State = coord.NodeDraining
	if err := e.b.Heartbeat(e.ctx, draining); err != nil {
		t.Fatal(err)
	}
	list, err := e.b.Nodes(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "node-a" || list[1].ID != "node-b" {
		t.Fatalf("Nodes = %+v, want node-a then node-b", list)
	}
	if list[0].State != coord.NodeDraining || list[1].State != coord.NodeUp {
		t.Fatalf("states %q %q, want draining, up", list[0].State, list[1].State)
	}
	got := list[1]
	if got.AdvertiseURL != a.AdvertiseURL || !got.StartedAt.Equal(a.StartedAt) || got.Publishers != 3 || got.Viewers != 7 ||
		got.SpoolBytes != a.SpoolBytes || got.UploadBacklog != a.UploadBacklog {
		t.Fatalf("node-b read back as %+v, sent %+v", got, a)
	}
	// LastSeen is the backend's clock: the suite's for Local, the server's
	// (this host's) for Redis.
	if got.LastSeen.Before(before.Add(-time.Second)) || got.LastSeen.After(e.clk.Now().Add(time.Second)) {
		t.Fatalf("LastSeen %v, heartbeat sent at %v", got.LastSeen, before)
	}

	if err := e.b.Leave(e.ctx, "node-b"); err != nil {
		t.Fatal(err)
	}
	if s := e.state(t, "node-b"); s != coord.NodeDown {
		t.Fatalf("node-b after Leave: %s, want down", s)
	}
	if s := e.state(t, "node-a"); s != coord.NodeDraining {
		t.Fatalf("node-a after node-b left: %s, want draining", s)
	}
	e.beat(t, "node-b")
	if s := e.state(t, "node-b"); s != coord.NodeUp {
		t.Fatalf("node-b heartbeating after Leave: %s, want up", s)
	}
	if err := e.b.Leave(e.ctx, "never-seen"); err != nil {
		t.Fatalf("Leave of an unknown node: %v", err)
	}
	if s := e.state(t, "never-seen"); s != "absent" {
		t.Fatalf("unknown node after Leave: %s, want absent", s)
	}
	if err := e.b.Heartbeat(e.ctx, coord.NodeInfo{}); err == nil {
		t.Fatal("Heartbeat without an ID: no error")
	}
	if err := e.b.Heartbeat(e.ctx, coord.NodeInfo{ID: "no-state"}); err != nil {
		t.Fatal(err)
	}
	if s := e.state(t, "no-state"); s != coord.NodeUp {
		t.Fatalf("heartbeat without a state: %s, want up", s)
	}
}

func testPresenceExpires(t *testing.T, e *env) {
	e.beat(t, "a", "b")
	e.expired(t, nodeTTL, "a down after its TTL", func() error {
		e.beat(t, "b")
		if s := e.state(t, "a"); s != coord.NodeDown {
			return fmt.Errorf("a %s", s)
		}
		return nil
	})
	if s := e.state(t, "b"); s != coord.NodeUp {
		t.Fatalf("b, heartbeating: %s, want up", s)
	}
	e.beat(t, "a")
	if s := e.state(t, "a"); s != coord.NodeUp {
		t.Fatalf("a heartbeating again: %s, want up", s)
	}
}

// testPresenceForgets needs a backend on the suite's clock: a day does not
// pass in a test otherwise (coord's own tests check Redis by its keys).
func testPresenceForgets(t *testing.T, e *env) {
	e.clk.Advance(time.Hour)
	e.beat(t, "old")
	if n := e.nodes(t)["old"]; n.LastSeen.Before(e.clk.Now().Add(-time.Minute)) {
		t.Skip("the backend keeps its own clock")
	}
	e.acquire(t, lease("cam-1", "old", "s1"))
	e.clk.Advance(23 * time.Hour)
	e.beat(t, "new")
	if s := e.state(t, "old"); s != coord.NodeDown {
		t.Fatalf("old after 23 h: %s, want down (still listed)", s)
	}
	e.clk.Advance(2 * time.Hour)
	if s := e.state(t, "old"); s != "absent" {
		t.Fatalf("old after 25 h: %s, want absent", s)
	}
	e.beat(t, "new") // forgets old, and its lease with it
	e.beat(t, "old")
	if _, err := e.b.Device(e.ctx, "cam-1"); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("lease of a forgotten node back with it: %v", err)
	}
}

func testDeviceExclusive(t *testing.T, e *env) {
	e.beat(t, "a", "b")
	before := time.Now()
	l := lease("cam-1", "a", "s1")
	l.RemoteAddr, l.Codecs, l.Since = "10.0.0.5:4000", []string{"H264", "OPUS"}, before.UTC().Truncate(time.Microsecond)
	got := e.acquire(t, l)
	if got.RemoteAddr != l.RemoteAddr || !slices.Equal(got.Codecs, l.Codecs) || !got.Since.Equal(l.Since) {
		t.Fatalf("granted %+v, asked %+v", got, l)
	}

	other, err := e.b.AcquireDevice(e.ctx, lease("cam-1", "b", "s2"))
	wantErr(t, "another node's session", err, coord.ErrHeld)
	if other.Node != "a" || other.Session != "s1" || other.Fence != got.Fence {
		t.Fatalf("ErrHeld came with %+v, want a's lease %+v", other, got)
	}
	_, err = e.b.AcquireDevice(e.ctx, lease("cam-1", "a", "s3"))
	wantErr(t, "another session on the same node", err, coord.ErrHeld)

	again := e.acquire(t, lease("cam-1", "a", "s1"))
	if again.Fence != got.Fence || again.RemoteAddr != l.RemoteAddr || !slices.Equal(again.Codecs, l.Codecs) {
		t.Fatalf("same session again: %+v, want unchanged %+v", again, got)
	}
	e.acquire(t, lease("cam-2", "b", "s2")) // another device is another lease
	cur, err := e.b.Device(e.ctx, "cam-1")
	if err != nil || cur.Session != "s1" || cur.Fence != got.Fence {
		t.Fatalf("Device(cam-1) = %+v, %v", cur, err)
	}
	if _, err := e.b.Device(e.ctx, "cam-none"); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Device of a free device: %v, want ErrNotHeld", err)
	}
	if _, err := e.b.AcquireDevice(e.ctx, lease("cam-3", "a", "")); err == nil {
		t.Fatal("AcquireDevice without a session: no error")
	}
}

func testDeviceFence(t *testing.T, e *env) {
	e.beat(t, "a")
	var last int64
	for i := range 30 {
		before := e.clk.Now().UnixMicro()
		session := fmt.Sprint("s", i)
		got := e.acquire(t, lease("cam-1", "a", session))
		if got.Fence <= last {
			t.Fatalf("grant %d: fence %d after %d", i, got.Fence, last)
		}
		if got.Fence < before {
			t.Fatalf("grant %d: fence %d below the clock %d µs", i, got.Fence, before)
		}
		last = got.Fence
		if err := e.b.ReleaseDevice(e.ctx, "cam-1", session); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			// A clock set back (Local) must not set fences back.
			e.clk.Advance(-time.Hour)
		}
	}
	// Another device has its own fences, still from the clock.
	before := e.clk.Now().UnixMicro()
	if got := e.acquire(t, lease("cam-2", "a", "x")); got.Fence < before {
		t.Fatalf("cam-2 fence %d below the clock %d", got.Fence, before)
	}
}

func testDeviceHolderExpires(t *testing.T, e *env) {
	e.beat(t, "a", "b")
	first := e.acquire(t, lease("cam-1", "a", "s1"))
	var got coord.DeviceLease
	e.expired(t, nodeTTL, "cam-1 free after a's heartbeat expired", func() error {
		e.beat(t, "b")
		var err error
		got, err = e.b.AcquireDevice(e.ctx, lease("cam-1", "b", "s2"))
		return err
	})
	if got.Fence <= first.Fence {
		t.Fatalf("fence %d after a's %d", got.Fence, first.Fence)
	}
	// a is back: the lease stays b's.
	e.beat(t, "a", "b")
	_, err := e.b.AcquireDevice(e.ctx, lease("cam-1", "a", "s1"))
	wantErr(t, "a's old session, back", err, coord.ErrHeld)
}

func testDeviceHeldWhileBeating(t *testing.T, e *env) {
	e.beat(t, "a", "b")
	e.acquire(t, lease("cam-1", "a", "s1"))
	// Over 1.5 TTL of the backend's clock, a beats every quarter TTL.
	for end := time.Now().Add(nodeTTL * 3 / 2); time.Now().Before(end); {
		e.clk.Advance(nodeTTL / 4)
		e.beat(t, "a", "b")
		_, err := e.b.AcquireDevice(e.ctx, lease("cam-1", "b", "s2"))
		wantErr(t, "while a beats", err, coord.ErrHeld)
		time.Sleep(nodeTTL / 8)
	}
}

func testDeviceHolderLeaves(t *testing.T, e *env) {
	e.beat(t, "a", "b")
	e.acquire(t, lease("cam-1", "a", "s1"))
	e.acquire(t, lease("cam-2", "a", "s2"))
	if err := e.b.Leave(e.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if l, err := e.b.DeviceLeases(e.ctx); err != nil || len(l) != 0 {
		t.Fatalf("DeviceLeases after a left: %+v, %v", l, err)
	}
	e.acquire(t, lease("cam-1", "b", "s3"))
	// a's next run heartbeats with the same StartedAt: cam-2 stays free.
	e.beat(t, "a")
	if _, err := e.b.Device(e.ctx, "cam-2"); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("cam-2 after a left and came back: %v, want ErrNotHeld", err)
	}
}

func testDeviceHolderRestarts(t *testing.T, e *env) {
	e.beat(t, "a")
	e.acquire(t, lease("cam-1", "a", "s1"))
	restarted := e.node("a")
	restarted.StartedAt = e.started.Add(time.Minute)
	if err := e.b.Heartbeat(e.ctx, restarted); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Device(e.ctx, "cam-1"); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("lease of a's previous run: %v, want ErrNotHeld", err)
	}
	e.acquire(t, lease("cam-1", "a", "s2"))
	if err := e.b.Heartbeat(e.ctx, restarted); err != nil {
		t.Fatal(err)
	}
	if d, err := e.b.Device(e.ctx, "cam-1"); err != nil || d.Session != "s2" {
		t.Fatalf("lease after the same run's heartbeat: %+v, %v", d, err)
	}
}

func testDeviceNodeNeverSeen(t *testing.T, e *env) {
	e.acquire(t, lease("cam-1", "ghost", "s1"))
	if _, err := e.b.Device(e.ctx, "cam-1"); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("lease of a node never seen: %v, want ErrNotHeld", err)
	}
	e.beat(t, "b")
	e.acquire(t, lease("cam-1", "b", "s2"))
}

func testDeviceRelease(t *testing.T, e *env) {
	e.beat(t, "a", "b")
	first := e.acquire(t, lease("cam-1", "a", "s1"))
	if err := e.b.ReleaseDevice(e.ctx, "cam-1", "s2"); err != nil {
		t.Fatalf("release by another session: %v, want nil", err)
	}
	if d, err := e.b.Device(e.ctx, "cam-1"); err != nil || d.Session != "s1" {
		t.Fatalf("after another session's release: %+v, %v", d, err)
	}
	if err := e.b.ReleaseDevice(e.ctx, "cam-1", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Device(e.ctx, "cam-1"); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("after the holder's release: %v, want ErrNotHeld", err)
	}
	if err := e.b.ReleaseDevice(e.ctx, "cam-1", "s1"); err != nil {
		t.Fatalf("release of a free device: %v", err)
	}
	if got := e.acquire(t, lease("cam-1", "b", "s2")); got.Fence <= first.Fence {
		t.Fatalf("fence %d after %d", got.Fence, first.Fence)
	}
}

func testDeviceUpdate(t *testing.T, e *env) {
	e.beat(t, "a", "b")
	first := e.acquire(t, lease("cam-1", "a", "s1"))
	since := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	upd := lease("cam-1", "a", "s1")
	upd.Recording, upd.Since, upd.RemoteAddr, upd.Codecs = "rec-1", since, "10.1.2.3:5000", []string{"H264"}
	if err := e.b.UpdateDevice(e.ctx, upd); err != nil {
		t.Fatal(err)
	}
	d, err := e.b.Device(e.ctx, "cam-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Recording != "rec-1" || !d.Since.Equal(since) || d.RemoteAddr != upd.RemoteAddr || !slices.Equal(d.Codecs, upd.Codecs) ||
		d.Fence != first.Fence || d.Node != "a" || d.Session != "s1" {
		t.Fatalf("after update: %+v", d)
	}
	again := e.acquire(t, lease("cam-1", "a", "s1"))
	if again.Recording != "rec-1" || again.Fence != first.Fence {
		t.Fatalf("same session again after update: %+v", again)
	}
	if l, err := e.b.DeviceLeases(e.ctx); err != nil || len(l) != 1 || l[0].Recording != "rec-1" {
		t.Fatalf("DeviceLeases after update: %+v, %v", l, err)
	}

	other := lease("cam-1", "b", "s2")
	other.Recording = "rec-2"
	wantErr(t, "update by another session", e.b.UpdateDevice(e.ctx, other), coord.ErrHeld)
	wantErr(t, "update of a free device", e.b.UpdateDevice(e.ctx, lease("cam-9", "a", "s1")), coord.ErrNotHeld)
	if err := e.b.ReleaseDevice(e.ctx, "cam-1", "s1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "update after release", e.b.UpdateDevice(e.ctx, upd), coord.ErrNotHeld)
	// A grant starts from what the new holder says, not the last holder's.
	if got := e.acquire(t, lease("cam-1", "b", "s2")); got.Recording != "" || len(got.Codecs) != 0 {
		t.Fatalf("new grant kept the old holder's fields: %+v", got)
	}

	// A holder whose node expired holds nothing: ErrNotHeld for others.
	e.acquire(t, lease("cam-5", "a", "s5"))
	e.expired(t, nodeTTL, "a's lease lapsed", func() error {
		e.beat(t, "b")
		if err := e.b.UpdateDevice(e.ctx, lease("cam-5", "b", "s6")); !errors.Is(err, coord.ErrNotHeld) {
			return fmt.Errorf("update by b: %v", err)
		}
		return nil
	})
}

func testDeviceLeases(t *testing.T, e *env) {
	e.beat(t, "a", "b", "c")
	e.acquire(t, lease("cam-3", "a", "s3"))
	e.acquire(t, lease("cam-1", "b", "s1"))
	e.acquire(t, lease("cam-2", "c", "s2"))
	drain := e.node("c")
	drain.State = coord.NodeDraining
	if err := e.b.Heartbeat(e.ctx, drain); err != nil {
		t.Fatal(err)
	}
	devices := func() []string {
		l, err := e.b.DeviceLeases(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range l {
			ids = append(ids, d.Device+"@"+d.Node)
		}
		return ids
	}
	if got, want := devices(), []string{"cam-1@b", "cam-2@c", "cam-3@a"}; !slices.Equal(got, want) {
		t.Fatalf("DeviceLeases %v, want %v (by device, draining included)", got, want)
	}
	e.expired(t, nodeTTL, "a's lease gone from DeviceLeases", func() error {
		e.beat(t, "b")
		if err := e.b.Heartbeat(e.ctx, drain); err != nil {
			t.Fatal(err)
		}
		if got, want := devices(), []string{"cam-1@b", "cam-2@c"}; !slices.Equal(got, want) {
			return fmt.Errorf("DeviceLeases %v, want %v", got, want)
		}
		return nil
	})
}

// testDeviceRace: nodes racing for one device, one wins; all losers see
// the winner's lease.
func testDeviceRace(t *testing.T, e *env) {
	const n = 20
	for i := range n {
		e.beat(t, fmt.Sprint("node-", i))
	}
	var wg sync.WaitGroup
	got := make([]coord.DeviceLease, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = e.b.AcquireDevice(e.ctx, lease("cam-1", fmt.Sprint("node-", i), fmt.Sprint("s", i)))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two winners: %d and %d", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, coord.ErrHeld):
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no winner")
	}
	for i, l := range got {
		if l.Session != got[winner].Session || l.Fence != got[winner].Fence {
			t.Fatalf("racer %d saw %+v, winner %+v", i, l, got[winner])
		}
	}
}

func testNamedLease(t *testing.T, e *env) {
	const ttl = time.Minute
	if err := e.b.Acquire(e.ctx, "reaper", "a", ttl); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "another holder", e.b.Acquire(e.ctx, "reaper", "b", ttl), coord.ErrHeld)
	if err := e.b.Acquire(e.ctx, "reaper", "a", ttl); err != nil {
		t.Fatalf("renew by the holder: %v", err)
	}
	if err := e.b.Acquire(e.ctx, "retention", "b", ttl); err != nil {
		t.Fatalf("another name: %v", err)
	}
	if err := e.b.Release(e.ctx, "reaper", "b"); err != nil {
		t.Fatalf("release by another: %v", err)
	}
	wantErr(t, "after another's release", e.b.Acquire(e.ctx, "reaper", "b", ttl), coord.ErrHeld)
	if err := e.b.Release(e.ctx, "reaper", "a"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Acquire(e.ctx, "reaper", "b", ttl); err != nil {
		t.Fatalf("after the holder's release: %v", err)
	}
	if err := e.b.Release(e.ctx, "nothing", "a"); err != nil {
		t.Fatalf("release of a lease nobody holds: %v", err)
	}
	if err := e.b.Acquire(e.ctx, "x", "a", 0); err == nil {
		t.Fatal("Acquire with ttl 0: no error")
	}
}

func testNamedLeaseExpires(t *testing.T, e *env) {
	const ttl = 300 * time.Millisecond
	if err := e.b.Acquire(e.ctx, "reaper", "a", ttl); err != nil {
		t.Fatal(err)
	}
	// Renewed, a keeps it past its first ttl.
	for end := time.Now().Add(ttl * 2); time.Now().Before(end); {
		e.clk.Advance(ttl / 3)
		if err := e.b.Acquire(e.ctx, "reaper", "a", ttl); err != nil {
			t.Fatalf("renew: %v", err)
		}
		wantErr(t, "b while a renews", e.b.Acquire(e.ctx, "reaper", "b", ttl), coord.ErrHeld)
		time.Sleep(ttl / 6)
	}
	e.expired(t, ttl, "reaper free after its ttl", func() error {
		return e.b.Acquire(e.ctx, "reaper", "b", time.Minute)
	})
	wantErr(t, "a after b took it", e.b.Acquire(e.ctx, "reaper", "a", ttl), coord.ErrHeld)
}

func testSlots(t *testing.T, e *env) {
	const ttl = time.Minute
	for _, id := range []string{"v1", "v2", "v3"} {
		if err := e.b.TakeSlot(e.ctx, "view:all", id, 3, ttl); err != nil {
			t.Fatalf("take %s: %v", id, err)
		}
	}
	wantErr(t, "fourth of three", e.b.TakeSlot(e.ctx, "view:all", "v4", 3, ttl), coord.ErrFull)
	if err := e.b.TakeSlot(e.ctx, "view:all", "v2", 3, ttl); err != nil {
		t.Fatalf("same id again at the limit: %v", err)
	}
	if err := e.b.TakeSlot(e.ctx, "view:user:1", "v4", 1, ttl); err != nil {
		t.Fatalf("another pool: %v", err)
	}
	if err := e.b.ReleaseSlot(e.ctx, "view:all", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.ReleaseSlot(e.ctx, "view:all", "v2"); err != nil {
		t.Fatalf("release twice: %v", err)
	}
	if err := e.b.TakeSlot(e.ctx, "view:all", "v4", 3, ttl); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	wantErr(t, "full again", e.b.TakeSlot(e.ctx, "view:all", "v5", 3, ttl), coord.ErrFull)
	// A smaller limit (changed configuration) counts the slots taken.
	wantErr(t, "limit below those taken", e.b.TakeSlot(e.ctx, "view:all", "v5", 2, ttl), coord.ErrFull)
	wantErr(t, "limit 0", e.b.TakeSlot(e.ctx, "view:none", "v1", 0, ttl), coord.ErrFull)
	if err := e.b.TakeSlot(e.ctx, "view:all", "v1", 3, 0); err == nil {
		t.Fatal("TakeSlot with ttl 0: no error")
	}

	if err := e.b.RenewSlots(e.ctx, "view:all", []string{"v1", "v3", "v4"}, ttl); err != nil {
		t.Fatalf("renew: %v", err)
	}
	wantErr(t, "renew with one released", e.b.RenewSlots(e.ctx, "view:all", []string{"v1", "v2"}, ttl), coord.ErrNotHeld)
	if err := e.b.RenewSlots(e.ctx, "view:all", nil, ttl); err != nil {
		t.Fatalf("renew nothing: %v", err)
	}
	wantErr(t, "renew did not take v2 again", e.b.TakeSlot(e.ctx, "view:all", "v5", 3, ttl), coord.ErrFull)
}

func testSlotsExpire(t *testing.T, e *env) {
	const ttl = 300 * time.Millisecond
	for _, id := range []string{"v1", "v2"} {
		if err := e.b.TakeSlot(e.ctx, "p", id, 2, ttl); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "full", e.b.TakeSlot(e.ctx, "p", "v3", 2, time.Minute), coord.ErrFull)
	e.expired(t, ttl, "expired slots do not count", func() error {
		return e.b.TakeSlot(e.ctx, "p", "v3", 2, time.Minute)
	})
	if err := e.b.TakeSlot(e.ctx, "p", "v4", 2, time.Minute); err != nil {
		t.Fatalf("second of two after both expired: %v", err)
	}
	wantErr(t, "renew of an expired slot", e.b.RenewSlots(e.ctx, "p", []string{"v1"}, time.Minute), coord.ErrNotHeld)
}

func testSlotsRenew(t *testing.T, e *env) {
	const ttl = 400 * time.Millisecond
	for _, id := range []string{"kept", "lapsing"} {
		if err := e.b.TakeSlot(e.ctx, "p", id, 2, ttl); err != nil {
			t.Fatal(err)
		}
	}
	// "kept" is renewed; "lapsing" is not, and its place frees.
	eventually(t, "the unrenewed slot lapsed", func() error {
		e.clk.Advance(ttl / 4)
		if err := e.b.RenewSlots(e.ctx, "p", []string{"kept"}, ttl); err != nil {
			t.Fatalf("renew: %v", err)
		}
		return e.b.TakeSlot(e.ctx, "p", "new", 2, time.Minute)
	})
	wantErr(t, "kept and new hold both slots", e.b.TakeSlot(e.ctx, "p", "other", 2, time.Minute), coord.ErrFull)
}

func testSlotsRace(t *testing.T, e *env) {
	const n, limit = 20, 5
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = e.b.TakeSlot(e.ctx, "p", fmt.Sprint("v", i), limit, time.Minute) })
	}
	wg.Wait()
	taken := 0
	for i, err := range errs {
		switch {
		case err == nil:
			taken++
		case !errors.Is(err, coord.ErrFull):
			t.Fatalf("taker %d: %v", i, err)
		}
	}
	if taken != limit {
		t.Fatalf("%d slots taken, limit %d", taken, limit)
	}
}

func event(i int) coord.Event {
	return coord.Event{ID: fmt.Sprint("ev-", i), Device: "cam-1", Kind: "recording.started", Payload: fmt.Appendf(nil, `{"n":%d}`, i)}
}

func ids(msgs []coord.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

func (e *env) read(t *testing.T, group, consumer string, count int) []coord.Message {
	t.Helper()
	msgs, err := e.b.ReadGroup(e.ctx, "events", group, consumer, count, 0)
	if err != nil {
		t.Fatalf("ReadGroup %s/%s: %v", group, consumer, err)
	}
	return msgs
}

func testStream(t *testing.T, e *env) {
	if msgs := e.read(t, "g", "c1", 10); len(msgs) != 0 {
		t.Fatalf("empty stream read %v", ids(msgs))
	}
	for i := range 3 {
		if err := e.b.Publish(e.ctx, "events", event(i)); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.read(t, "g", "c1", 10)
	if got := ids(msgs); !slices.Equal(got, []string{"ev-0", "ev-1", "ev-2"}) {
		t.Fatalf("read %v", got)
	}
	want := event(1)
	if m := msgs[1]; m.Device != want.Device || m.Kind != want.Kind || string(m.Payload) != string(want.Payload) || m.StreamID == "" {
		t.Fatalf("message %+v, published %+v", m, want)
	}
	if msgs[0].StreamID == msgs[1].StreamID || msgs[1].StreamID == msgs[2].StreamID {
		t.Fatalf("stream ids not distinct: %s %s %s", msgs[0].StreamID, msgs[1].StreamID, msgs[2].StreamID)
	}
	// Not acknowledged: c1 gets them again, before anything new.
	if err := e.b.Publish(e.ctx, "events", event(3)); err != nil {
		t.Fatal(err)
	}
	if got := ids(e.read(t, "g", "c1", 2)); !slices.Equal(got, []string{"ev-0", "ev-1"}) {
		t.Fatalf("redelivery read %v, want ev-0 ev-1", got)
	}
	if err := e.b.Ack(e.ctx, "events", "g", msgs[0].StreamID, msgs[2].StreamID); err != nil {
		t.Fatal(err)
	}
	if got := ids(e.read(t, "g", "c1", 10)); !slices.Equal(got, []string{"ev-1"}) {
		t.Fatalf("after acking ev-0 and ev-2: %v, want ev-1", got)
	}
	if err := e.b.Ack(e.ctx, "events", "g", msgs[1].StreamID); err != nil {
		t.Fatal(err)
	}
	next := e.read(t, "g", "c1", 10)
	if got := ids(next); !slices.Equal(got, []string{"ev-3"}) {
		t.Fatalf("after acking all: %v, want ev-3", got)
	}
	if err := e.b.Ack(e.ctx, "events", "g", next[0].StreamID, next[0].StreamID); err != nil {
		t.Fatal(err)
	}
	if got := ids(e.read(t, "g", "c1", 10)); len(got) != 0 {
		t.Fatalf("all acknowledged, read %v", got)
	}
	if err := e.b.Ack(e.ctx, "events", "g"); err != nil {
		t.Fatalf("Ack of nothing: %v", err)
	}
	if err := e.b.Ack(e.ctx, "other", "none", next[0].StreamID); err != nil {
		t.Fatalf("Ack on an unknown stream: %v", err)
	}
}

func testStreamBlock(t *testing.T, e *env) {
	start := time.Now()
	msgs, err := e.b.ReadGroup(e.ctx, "events", "g", "c1", 10, 300*time.Millisecond)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("blocking read of an empty stream: %v, %v", ids(msgs), err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("blocked %v for 300 ms", d)
	}

	go func() {
		time.Sleep(100 * time.Millisecond)
		e.b.Publish(context.Background(), "events", event(7))
	}()
	start = time.Now()
	msgs, err = e.b.ReadGroup(e.ctx, "events", "g", "c1", 10, 5*time.Second)
	if err != nil || !slices.Equal(ids(msgs), []string{"ev-7"}) {
		t.Fatalf("blocked read with a publish: %v, %v", ids(msgs), err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the publish woke the reader after %v", d)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	// c2 has nothing pending and nothing new: it waits until cancelled.
	_, err = e.b.ReadGroup(ctx, "events", "g", "c2", 10, 10*time.Second)
	wantErr(t, "cancelled while blocked", err, context.Canceled)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel ended the read after %v", d)
	}
}

func testStreamGroups(t *testing.T, e *env) {
	for i := range 4 {
		if err := e.b.Publish(e.ctx, "events", event(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A group begins at the stream's start; consumers of one group share.
	if got := ids(e.read(t, "g1", "c1", 2)); !slices.Equal(got, []string{"ev-0", "ev-1"}) {
		t.Fatalf("g1/c1 read %v", got)
	}
	if got := ids(e.read(t, "g1", "c2", 10)); !slices.Equal(got, []string{"ev-2", "ev-3"}) {
		t.Fatalf("g1/c2 read %v, want what c1 did not get", got)
	}
	if got := ids(e.read(t, "g2", "c1", 10)); !slices.Equal(got, []string{"ev-0", "ev-1", "ev-2", "ev-3"}) {
		t.Fatalf("g2 read %v, want everything", got)
	}
	// Streams are apart.
	if got := ids(e.read(t, "g1", "c1", 10)); !slices.Equal(got, []string{"ev-0", "ev-1"}) {
		t.Fatalf("g1/c1 pending %v", got)
	}
	msgs, err := e.b.ReadGroup(e.ctx, "other", "g1", "c1", 10, 0)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("other stream: %v, %v", ids(msgs), err)
	}
}

// testCanceled: a cancelled context comes back as context.Canceled.
func testCanceled(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	for name, call := range calls(lease("cam-1", "a", "s1")) {
		wantErr(t, name, call(ctx, e.b), context.Canceled)
	}
}

// calls is one call of every method, for checks that hold for all.
func calls(d coord.DeviceLease) map[string]func(context.Context, Backend) error {
	return map[string]func(context.Context, Backend) error{
		"Ping":      func(ctx context.Context, b Backend) error { return b.Ping(ctx) },
		"Heartbeat": func(ctx context.Context, b Backend) error { return b.Heartbeat(ctx, coord.NodeInfo{ID: d.Node}) },
		"Nodes":     func(ctx context.Context, b Backend) error { _, err := b.Nodes(ctx); return err },
		"Leave":     func(ctx context.Context, b Backend) error { return b.Leave(ctx, d.Node) },
		"AcquireDevice": func(ctx context.Context, b Backend) error {
			_, err := b.AcquireDevice(ctx, d)
			return err
		},
		"UpdateDevice":  func(ctx context.Context, b Backend) error { return b.UpdateDevice(ctx, d) },
		"ReleaseDevice": func(ctx context.Context, b Backend) error { return b.ReleaseDevice(ctx, d.Device, d.Session) },
		"DeviceLeases":  func(ctx context.Context, b Backend) error { _, err := b.DeviceLeases(ctx); return err },
		"Device":        func(ctx context.Context, b Backend) error { _, err := b.Device(ctx, d.Device); return err },
		"Acquire":       func(ctx context.Context, b Backend) error { return b.Acquire(ctx, "job", d.Node, time.Minute) },
		"Release":       func(ctx context.Context, b Backend) error { return b.Release(ctx, "job", d.Node) },
		"TakeSlot":      func(ctx context.Context, b Backend) error { return b.TakeSlot(ctx, "p", d.Session, 1, time.Minute) },
		"RenewSlots": func(ctx context.Context, b Backend) error {
			return b.RenewSlots(ctx, "p", []string{d.Session}, time.Minute)
		},
		"ReleaseSlot": func(ctx context.Context, b Backend) error { return b.ReleaseSlot(ctx, "p", d.Session) },
		"Publish":     func(ctx context.Context, b Backend) error { return b.Publish(ctx, "events", event(0)) },
		"ReadGroup": func(ctx context.Context, b Backend) error {
			_, err := b.ReadGroup(ctx, "events", "g", "c", 10, 0)
			return err
		},
		"Ack": func(ctx context.Context, b Backend) error { return b.Ack(ctx, "events", "g", "1-0") },
	}
}

// Calls lists one call of every Backend method, by name, for a backend's
// own tests of what holds for all methods (such as ErrUnavailable).
func Calls() map[string]func(context.Context, Backend) error {
	return calls(lease("cam-1", "a", "s1"))
}

func testClose(t *testing.T, e *env) {
	e.beat(t, "a")
	e.acquire(t, lease("cam-1", "a", "s1"))
	// A reader waiting when the backend closes returns ErrUnavailable.
	done := make(chan error, 1)
	go func() {
		_, err := e.b.ReadGroup(e.ctx, "events", "g", "c", 10, 10*time.Second)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it wait; a read that starts after Close fails the same way
	start := time.Now()
	if err := e.b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	e.b.Close() // twice: no panic
	wantErr(t, "ReadGroup waiting at Close", <-done, coord.ErrUnavailable)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the waiting reader returned %v after Close", d)
	}
	for name, call := range calls(lease("cam-1", "a", "s1")) {
		wantErr(t, name+" after Close", call(e.ctx, e.b), coord.ErrUnavailable)
	}
}

// Leaks checks, loosely, that a backend leaves no goroutine behind: open
// one, use it, close it, and the count comes back within 5 s.
func Leaks(t *testing.T, open func(t *testing.T, o coord.Options) Backend) {
	t.Helper()
	base := runtime.NumGoroutine()
	b := open(t, coord.Options{Prefix: "coordtest:" + randomHex(8) + ":", NodeTTL: nodeTTL})
	ctx := t.Context()
	for name, call := range calls(lease("cam-1", "a", "s1")) {
		if err := call(ctx, b); err != nil && !errors.Is(err, coord.ErrHeld) && !errors.Is(err, coord.ErrNotHeld) && !errors.Is(err, coord.ErrFull) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := b.ReadGroup(ctx, "events", "g", "c", 10, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before open:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
