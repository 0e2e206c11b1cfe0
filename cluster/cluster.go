// Package cluster keeps this node's place among the others sharing one
// catalog, object store and coordination backend: it announces the node
// with heartbeats (what it records, who watches, what waits for upload),
// says when coordination does not answer (the node goes on alone, degraded),
// and, on one node at a time, ends what a dead node left open: its live
// recordings become interrupted and its viewing sessions end.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/evidence"
)

// Coord is what the node needs from the coordination backend.
type Coord interface {
	Heartbeat(ctx context.Context, n coord.NodeInfo) error
	Leave(ctx context.Context, node string) error
	Nodes(ctx context.Context) ([]coord.NodeInfo, error)
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) error
	Release(ctx context.Context, name, holder string) error
}

// Catalog ends what a dead node left open.
type Catalog interface {
	// InterruptNode ends the node's live recordings as interrupted.
	InterruptNode(ctx context.Context, node string, at time.Time, reason string) ([]evidence.Recording, error)
	// EndNodeLiveViews ends the node's open viewing sessions and returns them.
	EndNodeLiveViews(ctx context.Context, node string, at time.Time, reason string) ([]evidence.LiveView, error)
}

// Custody records what the reaper did to evidence.
type Custody interface {
	Record(ctx context.Context, e evidence.CustodyEvent) error
}

// Stats is what the node reports in each heartbeat.
type Stats struct {
	Publishers    int
	Viewers       int
	SpoolBytes    int64
	UploadBacklog int64
}

// Options configure a Node.
type Options struct {
	ID           string
	AdvertiseURL string
	Coord        Coord
	Catalog      Catalog
	Custody      Custody       // optional
	Stats        func() Stats  // optional
	Every        time.Duration // heartbeat period; default 5s
	// NodeTTL is how long a node without heartbeats counts as up (the
	// backend's, default 15s): the reaper acts only after its own
	// heartbeats have answered for longer, so that a node that could not
	// heartbeat during an outage is not taken for dead when it ends.
	NodeTTL time.Duration
	// Recovered is called when coordination answers again after it did
	// not: what the backend held may be gone (ingest takes its device
	// leases again).
	Recovered func()
	Registry  prometheus.Registerer
	Log       *slog.Logger
}

// Node is this node's presence; Run keeps it.
type Node struct {
	o       Options
	started time.Time

	draining atomic.Bool
	wake     chan struct{}

	mu      sync.Mutex
	lastErr error     // the last heartbeat's error; nil when it answered
	healthy time.Time // since when heartbeats answer (zero: they do not)

	degraded prometheus.Gauge
	beats    *prometheus.CounterVec
	reaped   prometheus.Counter
}

// New makes a Node.
func New(o Options) *Node {
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = 15 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	n := &Node{o: o, started: time.Now().UTC(), wake: make(chan struct{}, 1),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_coord_degraded",
			Help: "1 while the coordination backend does not answer this node's heartbeats (the node records alone)."}),
		beats: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_coord_heartbeats_total",
			Help: "This node's heartbeats, by outcome."}, []string{"outcome"}),
		reaped: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_cluster_reaped_recordings_total",
			Help: "Live recordings of dead nodes ended as interrupted by this node."}),
	}
	n.beats.WithLabelValues("ok")
	n.beats.WithLabelValues("error")
	o.Registry.MustRegister(n.degraded, n.beats, n.reaped)
	return n
}

// ID is this node's id.
func (n *Node) ID() string { return n.o.ID }

// Drain marks the node draining in its next heartbeat, sent at once.
func (n *Node) Drain() {
	n.draining.Store(true)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Ping says whether coordination answers: nil, or why the node is
// degraded (recording on alone).
func (n *Node) Ping(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lastErr != nil {
		return fmt.Errorf("degraded: %v", n.lastErr)
	}
	return nil
}

// ErrIDInUse: another running process heartbeats under this node's id.
var ErrIDInUse = errors.New("another running node heartbeats under this node id")

// CheckID makes sure no other running process is this node before it
// starts. Two processes under one id would undo each other: each
// heartbeat with another start time is taken for a new run of the node
// and drops the device leases of the other (so a second publisher of its
// devices is let in on another node), each start ends the other's viewing
// sessions, and each stop marks the other down, so the reaper interrupts
// its recordings while it records. A node of this id that is up now is
// either the previous run of this process, stopped abnormally, whose
// heartbeats have stopped, or another process, whose heartbeats go on:
// CheckID waits until it is down (at most ttl, the nodes' TTL) or until
// it heartbeats again (ErrIDInUse), looking every poll, and logs why it
// waits. Coordination that does not answer is no error: the node starts
// degraded.
func CheckID(ctx context.Context, c interface {
	Nodes(ctx context.Context) ([]coord.NodeInfo, error)
}, id string, ttl, poll time.Duration, log *slog.Logger) error {
	first, up, err := nodeUp(ctx, c, id)
	if err != nil || !up {
		return nil
	}
	log.Info("a node with this id was up moments ago: waiting until its heartbeat expires (this node's previous run) or goes on (another process with this id)",
		"node", id, "last_heartbeat", first.LastSeen, "at_most", ttl)
	deadline := time.NewTimer(ttl + poll)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return nil // silent for longer than a node may be: not running
		case <-tick.C:
		}
		now, up, err := nodeUp(ctx, c, id)
		switch {
		case err != nil: // look again
		case !up:
			return nil
		case !now.LastSeen.Equal(first.LastSeen) || !now.StartedAt.Equal(first.StartedAt):
			return fmt.Errorf("%w %q (started %s, heartbeating at %s); give each node its own --node-id",
				ErrIDInUse, id, now.StartedAt.UTC().Format(time.RFC3339), now.AdvertiseURL)
		}
	}
}

// nodeUp is the node id as coordination lists it, when it is up or
// draining.
func nodeUp(ctx context.Context, c interface {
	Nodes(ctx context.Context) ([]coord.NodeInfo, error)
}, id string) (coord.NodeInfo, bool, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return coord.NodeInfo{}, false, err
	}
	for _, n := range nodes {
		if n.ID == id && n.State != coord.NodeDown {
			return n, true, nil
		}
	}
	return coord.NodeInfo{}, false, nil
}

// Join sends the node's first heartbeat: a device lease is only as good
// as its node's heartbeat, so a node joins before it takes publishers.
// Coordination that does not answer is noted (degraded), not an error.
func (n *Node) Join(ctx context.Context) { n.beat(ctx) }

// Nodes lists every node the backend knows, this one included.
func (n *Node) Nodes(ctx context.Context) ([]coord.NodeInfo, error) { return n.o.Coord.Nodes(ctx) }

// Run heartbeats every period and reaps dead nodes when this node holds
// the reaper's lease, until ctx ends; then it leaves the cluster, so its
// device leases lapse at once.
func (n *Node) Run(ctx context.Context) error {
	t := time.NewTicker(n.o.Every)
	defer t.Stop()
	for {
		n.beat(ctx)
		n.reap(ctx)
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			n.o.Coord.Release(stop, "reaper", n.o.ID)
			if err := n.o.Coord.Leave(stop, n.o.ID); err != nil {
				n.o.Log.Warn("coordination: leaving the cluster failed; this node's leases lapse with its heartbeat", "err", err)
			}
			return nil
		case <-t.C:
		case <-n.wake:
		}
	}
}

func (n *Node) info() coord.NodeInfo {
	state := coord.NodeUp
	if n.draining.Load() {
		state = coord.NodeDraining
	}
	var st Stats
	if n.o.Stats != nil {
		st = n.o.Stats()
	}
	return coord.NodeInfo{ID: n.o.ID, AdvertiseURL: n.o.AdvertiseURL, StartedAt: n.started, State: state,
		Publishers: st.Publishers, Viewers: st.Viewers, SpoolBytes: st.SpoolBytes, UploadBacklog: st.UploadBacklog}
}

func (n *Node) beat(ctx context.Context) {
	bctx, cancel := context.WithTimeout(ctx, n.o.Every)
	defer cancel()
	err := n.o.Coord.Heartbeat(bctx, n.info())
	if ctx.Err() != nil {
		return
	}
	n.mu.Lock()
	was := n.lastErr
	n.lastErr = err
	switch {
	case err == nil && was != nil:
		n.healthy = time.Now()
		n.o.Log.Info("coordination answers again; this node is back in the cluster", "node", n.o.ID)
		if n.o.Recovered != nil {
			defer n.o.Recovered() // outside n.mu
		}
	case err == nil && n.healthy.IsZero():
		n.healthy = time.Now()
	case err != nil && was == nil:
		n.healthy = time.Time{}
		n.o.Log.Error("coordination does not answer; recording goes on alone (publishers accepted without cluster leases, limits local) until it does",
			"node", n.o.ID, "err", err)
	}
	n.mu.Unlock()
	if err != nil {
		n.degraded.Set(1)
		n.beats.WithLabelValues("error").Inc()
	} else {
		n.degraded.Set(0)
		n.beats.WithLabelValues("ok").Inc()
	}
}

// reap ends what dead nodes left open, on one node at a time (the
// "reaper" lease), and only once this node's own heartbeats have answered
// for longer than a node's TTL: after an outage of the backend every live
// node has had time to heartbeat again, so none is taken for dead.
func (n *Node) reap(ctx context.Context) {
	n.mu.Lock()
	since := n.healthy
	n.mu.Unlock()
	if since.IsZero() || time.Since(since) < n.o.NodeTTL+n.o.Every || n.o.Catalog == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, n.o.Every)
	defer cancel()
	if err := n.o.Coord.Acquire(rctx, "reaper", n.o.ID, 3*n.o.Every); err != nil {
		if !errors.Is(err, coord.ErrHeld) {
			n.o.Log.Debug("reaper lease not taken", "err", err)
		}
		return
	}
	nodes, err := n.o.Coord.Nodes(rctx)
	if err != nil {
		return
	}
	for _, d := range nodes {
		if d.State != coord.NodeDown || d.ID == n.o.ID {
			continue
		}
		n.reapNode(rctx, d)
	}
}

func (n *Node) reapNode(ctx context.Context, d coord.NodeInfo) {
	now := time.Now().UTC()
	reason := fmt.Sprintf("node %s stopped answering (last heartbeat %s); its spool completes the recording if it comes back",
		d.ID, d.LastSeen.UTC().Format(time.RFC3339))
	recs, err := n.o.Catalog.InterruptNode(ctx, d.ID, now, reason)
	if err != nil {
		n.o.Log.Error("reaper: the dead node's live recordings could not be ended", "dead_node", d.ID, "err", err)
		return
	}
	views, err := n.o.Catalog.EndNodeLiveViews(ctx, d.ID, now, "node "+d.ID+" stopped answering")
	if err != nil {
		n.o.Log.Error("reaper: the dead node's viewing sessions could not be ended", "dead_node", d.ID, "err", err)
	}
	for _, v := range views {
		if n.o.Custody != nil { // the ledger has each viewing's end, as when the viewer hangs up
			n.o.Custody.Record(ctx, LiveViewEnded(v, now, "node "+d.ID+" stopped answering"))
		}
	}
	for _, r := range recs {
		n.reaped.Inc()
		n.o.Log.Warn("recording of a dead node marked interrupted", "dead_node", d.ID, "device", r.DeviceID, "recording", r.ID)
		if n.o.Custody != nil {
			n.o.Custody.Record(ctx, evidence.CustodyEvent{Actor: "node:" + n.o.ID, Role: "system", Action: evidence.ActionIngest,
				TargetKind: "recording", TargetID: r.ID, CaseID: r.CaseID,
				Detail: "recording marked interrupted: " + reason})
		}
	}
	if len(recs) > 0 || len(views) > 0 {
		n.o.Log.Warn("reaped a dead node", "dead_node", d.ID, "recordings", len(recs), "viewing_sessions", len(views))
	}
}

// LiveViewEnded is the custody event of a viewing session ended for the
// viewer (its node stopped): who watched what, and why it ended.
func LiveViewEnded(v evidence.LiveView, at time.Time, reason string) evidence.CustodyEvent {
	return evidence.CustodyEvent{At: at, Actor: v.User, Remote: v.RemoteAddr, Action: evidence.ActionLiveView,
		TargetKind: "recording", TargetID: v.RecordingID, Detail: "live view " + v.ID + " of " + v.DeviceID + " ended: " + reason}
}
