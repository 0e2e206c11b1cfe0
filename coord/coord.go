// Package coord holds what bodycam nodes must agree on when several share
// one catalog, object store and Redis: which nodes are up, which node
// records each device (a lease with a fencing token), named leases for jobs
// that must run once (retention, the reaper, the outbox relay), cluster-wide
// counting slots (viewing limits), and an append-only event stream.
//
// Two implementations share one contract, checked by one conformance suite
// (coord/coordtest): Local, for one process (the embedded default), and
// Redis, for many nodes. Consumers declare the small interfaces they need
// where they use them; both types satisfy them. Nothing outside this
// package imports go-redis: its errors are mapped to the sentinels below.
package coord

import (
	"errors"
	"time"
)

// Options configure either implementation; zero values mean the defaults.
type Options struct {
	// Prefix begins every Redis key ("bodycam:"), so that clusters, or
	// tests, can share one Redis. Local ignores it.
	Prefix string
	// NodeTTL: a node whose last heartbeat is older is down, and its device
	// leases lapse with it (15 s). Every node of a cluster must use the same.
	NodeTTL time.Duration
	// Now is Local's clock (time.Now), for tests that move time. Redis
	// ignores it: it uses its server's clock, which every node shares, so
	// the nodes' own clocks need not agree.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "bodycam:"
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = DefaultNodeTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// DefaultNodeTTL is Options.NodeTTL's default.
const DefaultNodeTTL = 15 * time.Second

// forgetAfter: Nodes lists a node this long after its last heartbeat, then
// it is forgotten (and whatever it still held with it).
const forgetAfter = 24 * time.Hour

// streamMaxLen bounds a stream: Publish trims its oldest entries beyond it.
const streamMaxLen = 1_000_000

var (
	// ErrHeld: another holder has the lease (a device publishing on another
	// node, a job running elsewhere).
	ErrHeld = errors.New("coord: held by another holder")
	// ErrFull: a slot pool is at its limit.
	ErrFull = errors.New("coord: no free slot")
	// ErrUnavailable: the coordination backend does not answer. Callers
	// never refuse or lose evidence for it: they go on alone and say so.
	ErrUnavailable = errors.New("coord: coordination unavailable")
)

// Node states as GET /api/v1/nodes reports them.
const (
	NodeUp       = "up"
	NodeDraining = "draining"
	NodeDown     = "down" // its heartbeat expired
)

// NodeInfo is one node's presence, as its last heartbeat said.
type NodeInfo struct {
	ID            string    `json:"id"`
	AdvertiseURL  string    `json:"advertise_url"`
	StartedAt     time.Time `json:"started_at"`
	LastSeen      time.Time `json:"last_seen"` // set by the backend at each heartbeat
	State         string    `json:"state"`     // NodeUp or NodeDraining as sent; NodeDown when read after the TTL
	Publishers    int       `json:"publishers"`
	Viewers       int       `json:"viewers"`
	SpoolBytes    int64     `json:"spool_bytes"`
	UploadBacklog int64     `json:"upload_backlog"`
}

// DeviceLease says which node records a device. It lasts while its node's
// heartbeat does (a dead node's leases lapse with it) or until released.
type DeviceLease struct {
	Device  string `json:"device"`
	Node    string `json:"node"`
	Session string `json:"session"` // the holder's publish session
	// Fence orders every grant of a device's lease: strictly increasing per
	// device, and at least the backend's clock in Unix microseconds when it
	// was granted, so it stays increasing across a restart of the backend
	// that loses its data, and it tells when the grant happened.
	Fence int64 `json:"fence"`
	// What the holder publishes (set by Update once recording).
	Recording  string    `json:"recording,omitempty"`
	Since      time.Time `json:"since"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
	Codecs     []string  `json:"codecs,omitempty"`
}

// Event is one entry of the cluster's event stream.
type Event struct {
	ID      string // the producer's id, for de-duplication by readers
	Device  string
	Kind    string
	Payload []byte // JSON
}

// LocalFence is the fence a node issues by itself when the backend does
// not answer: the clock in Unix microseconds, strictly above last.
func LocalFence(now time.Time, last int64) int64 {
	f := now.UnixMicro()
	if f <= last {
		f = last + 1
	}
	return f
}

// ErrNotHeld: nobody holds the lease asked about.
var ErrNotHeld = errors.New("coord: not held")

// Message is an event as read from the stream, with the stream's own id.
type Message struct {
	StreamID string
	Event
}
