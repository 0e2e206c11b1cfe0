package coord

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Local coordinates the nodes of one process: the embedded default, where
// that process is the only node. Its state is in memory under one mutex and
// goes with the process; fences stay increasing across a restart because
// they follow the clock. It starts no goroutine.
type Local struct {
	opt Options

	mu      sync.Mutex
	closed  bool
	wake    chan struct{} // closed, and replaced, when a stream grows or Local closes
	nodes   map[string]*localNode
	devices map[string]DeviceLease // the last grant of each device not released
	fences  map[string]int64       // the last fence of each device, kept after release
	leases  map[string]localLease
	slots   map[string]map[string]time.Time // pool -> id -> expiry
	streams map[string]*localStream
}

type localNode struct {
	info NodeInfo // as last sent, LastSeen set
	left bool
}

type localLease struct {
	holder string
	until  time.Time
}

type localStream struct {
	first   uint64 // position of entries[0] since the stream began
	entries []Message
	lastMs  int64 // the last id given, "<lastMs>-<lastSeq>"
	lastSeq int64
	groups  map[string]*localGroup
}

type localGroup struct {
	next    uint64                  // position of the first entry never delivered
	pending map[string]localPending // by stream id: delivered, not acknowledged
}

type localPending struct {
	pos      uint64
	consumer string
}

// NewLocal returns an empty Local.
func NewLocal(o Options) *Local {
	return &Local{
		opt:     o.withDefaults(),
		wake:    make(chan struct{}),
		nodes:   map[string]*localNode{},
		devices: map[string]DeviceLease{},
		fences:  map[string]int64{},
		leases:  map[string]localLease{},
		slots:   map[string]map[string]time.Time{},
		streams: map[string]*localStream{},
	}
}

// lock takes the mutex unless ctx is done or Local is closed; the caller
// unlocks when it returns nil.
func (l *Local) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("%w: closed", ErrUnavailable)
	}
	return nil
}

// Ping says whether the backend answers: nil until Close.
func (l *Local) Ping(ctx context.Context) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	l.mu.Unlock()
	return nil
}

// Close ends Local: every later call returns ErrUnavailable, and a
// ReadGroup waiting returns at once. Calling it again does nothing.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.wake)
	}
	return nil
}

// up says whether a node is up or draining at now: its last heartbeat is
// at most NodeTTL old and it has not left since.
func (l *Local) up(node string, now time.Time) bool {
	n := l.nodes[node]
	return n != nil && !n.left && now.Sub(n.info.LastSeen) <= l.opt.NodeTTL
}

// dropLeases frees every device a node holds (it left, restarted or was
// forgotten).
func (l *Local) dropLeases(node string) {
	for id, d := range l.devices {
		if d.Node == node {
			delete(l.devices, id)
		}
	}
}

// Heartbeat records n as seen now, with State as sent (NodeUp when empty).
// A heartbeat with another StartedAt than the last one is a new run of the
// node: the leases of its previous run are dropped. Nodes not seen for
// 24 h are forgotten here.
func (l *Local) Heartbeat(ctx context.Context, n NodeInfo) error {
	if n.ID == "" {
		return errEmptyNode
	}
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	now := l.opt.Now()
	if old := l.nodes[n.ID]; old != nil && !old.info.StartedAt.Equal(n.StartedAt) {
		l.dropLeases(n.ID)
	}
	n.LastSeen = now
	if n.State == "" {
		n.State = NodeUp
	}
	l.nodes[n.ID] = &localNode{info: n}
	for id, o := range l.nodes {
		if now.Sub(o.info.LastSeen) > forgetAfter {
			delete(l.nodes, id)
			l.dropLeases(id)
		}
	}
	return nil
}

// Nodes lists every node seen within 24 h by ID, LastSeen its last
// heartbeat, State NodeDown when it expired or left.
func (l *Local) Nodes(ctx context.Context) ([]NodeInfo, error) {
	if err := l.lock(ctx); err != nil {
		return nil, err
	}
	defer l.mu.Unlock()
	now := l.opt.Now()
	out := make([]NodeInfo, 0, len(l.nodes))
	for id, n := range l.nodes {
		if now.Sub(n.info.LastSeen) > forgetAfter {
			continue
		}
		info := n.info
		if !l.up(id, now) {
			info.State = NodeDown
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// Leave marks a node down at once (a clean stop) and frees its devices.
// Its next Heartbeat brings it up again. Leaving an unknown node is nil.
func (l *Local) Leave(ctx context.Context, node string) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	if n := l.nodes[node]; n != nil {
		n.left = true
	}
	l.dropLeases(node)
	return nil
}

// AcquireDevice grants d.Device to (d.Node, d.Session) with a new Fence,
// keeping d's Recording, Since, RemoteAddr and Codecs, unless another
// session holds it on a node up or draining: then it returns that lease
// and ErrHeld. The same session again gets its lease unchanged. The node
// must heartbeat first: a lease on a node never seen is free at once.
func (l *Local) AcquireDevice(ctx context.Context, d DeviceLease) (DeviceLease, error) {
	if err := checkLease(d); err != nil {
		return DeviceLease{}, err
	}
	if err := l.lock(ctx); err != nil {
		return DeviceLease{}, err
	}
	defer l.mu.Unlock()
	now := l.opt.Now()
	if cur, ok := l.devices[d.Device]; ok {
		if cur.Session == d.Session {
			return cloneLease(cur), nil
		}
		if l.up(cur.Node, now) {
			return cloneLease(cur), ErrHeld
		}
	}
	d = cloneLease(d)
	d.Fence = LocalFence(now, l.fences[d.Device])
	l.fences[d.Device] = d.Fence
	l.devices[d.Device] = d
	return cloneLease(d), nil
}

// UpdateDevice sets Recording, Since, RemoteAddr and Codecs of the lease
// d.Session holds on d.Device; the rest stays. ErrHeld when another session
// holds it, ErrNotHeld when none does.
func (l *Local) UpdateDevice(ctx context.Context, d DeviceLease) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	cur, ok := l.devices[d.Device]
	switch {
	case !ok:
		return ErrNotHeld
	case cur.Session != d.Session:
		if l.up(cur.Node, l.opt.Now()) {
			return ErrHeld
		}
		return ErrNotHeld
	}
	cur.Recording, cur.Since, cur.RemoteAddr = d.Recording, d.Since, d.RemoteAddr
	cur.Codecs = slices.Clone(d.Codecs)
	l.devices[d.Device] = cur
	return nil
}

// ReleaseDevice frees the device if session holds it; otherwise it does
// nothing and returns nil.
func (l *Local) ReleaseDevice(ctx context.Context, device, session string) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	if cur, ok := l.devices[device]; ok && cur.Session == session {
		delete(l.devices, device)
	}
	return nil
}

// DeviceLeases lists the leases held by nodes up or draining, by device.
func (l *Local) DeviceLeases(ctx context.Context) ([]DeviceLease, error) {
	if err := l.lock(ctx); err != nil {
		return nil, err
	}
	defer l.mu.Unlock()
	now := l.opt.Now()
	out := []DeviceLease{}
	for _, d := range l.devices {
		if l.up(d.Node, now) {
			out = append(out, cloneLease(d))
		}
	}
	slices.SortFunc(out, func(a, b DeviceLease) int { return cmp.Compare(a.Device, b.Device) })
	return out, nil
}

// Device returns the lease of a device held by a node up or draining;
// ErrNotHeld when it is free.
func (l *Local) Device(ctx context.Context, id string) (DeviceLease, error) {
	if err := l.lock(ctx); err != nil {
		return DeviceLease{}, err
	}
	defer l.mu.Unlock()
	if d, ok := l.devices[id]; ok && l.up(d.Node, l.opt.Now()) {
		return cloneLease(d), nil
	}
	return DeviceLease{}, ErrNotHeld
}

// Acquire takes the named lease for holder for ttl, or renews it when
// holder has it; ErrHeld while another holder's has not expired.
func (l *Local) Acquire(ctx context.Context, name, holder string, ttl time.Duration) error {
	if ttl <= 0 {
		return errTTL
	}
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	now := l.opt.Now()
	if cur, ok := l.leases[name]; ok && cur.holder != holder && now.Before(cur.until) {
		return ErrHeld
	}
	l.leases[name] = localLease{holder: holder, until: now.Add(ttl)}
	return nil
}

// Release ends the named lease if holder has it; otherwise nil.
func (l *Local) Release(ctx context.Context, name, holder string) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	if cur, ok := l.leases[name]; ok && cur.holder == holder {
		delete(l.leases, name)
	}
	return nil
}

// pool returns a slot pool without its expired members.
func (l *Local) pool(name string, now time.Time) map[string]time.Time {
	p := l.slots[name]
	if p == nil {
		p = map[string]time.Time{}
		l.slots[name] = p
	}
	for id, exp := range p {
		if !now.Before(exp) {
			delete(p, id)
		}
	}
	return p
}

// TakeSlot takes the slot id in pool for ttl; ErrFull when limit slots
// are taken. Taking a slot id already has renews it, even at the limit.
// Expired slots do not count.
func (l *Local) TakeSlot(ctx context.Context, pool, id string, limit int, ttl time.Duration) error {
	if ttl <= 0 {
		return errTTL
	}
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	now := l.opt.Now()
	p := l.pool(pool, now)
	if _, ok := p[id]; !ok && len(p) >= limit {
		return ErrFull
	}
	p[id] = now.Add(ttl)
	return nil
}

// RenewSlots extends the slots ids hold in pool to ttl from now. An id
// whose slot expired or was released is not taken again: ErrNotHeld when
// there was one, after renewing the others.
func (l *Local) RenewSlots(ctx context.Context, pool string, ids []string, ttl time.Duration) error {
	if ttl <= 0 {
		return errTTL
	}
	if len(ids) == 0 {
		return nil
	}
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	now := l.opt.Now()
	p := l.pool(pool, now)
	missing := 0
	for _, id := range ids {
		if _, ok := p[id]; ok {
			p[id] = now.Add(ttl)
		} else {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%w: %d of %d slots", ErrNotHeld, missing, len(ids))
	}
	return nil
}

// ReleaseSlot frees id's slot in pool; nil when it has none.
func (l *Local) ReleaseSlot(ctx context.Context, pool, id string) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	if p := l.slots[pool]; p != nil {
		delete(p, id)
		if len(p) == 0 {
			delete(l.slots, pool)
		}
	}
	return nil
}

// Publish appends e to stream, dropping the oldest entries beyond
// 1,000,000. Stream ids are "<Unix ms>-<seq>", increasing.
func (l *Local) Publish(ctx context.Context, stream string, e Event) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	s := l.stream(stream)
	ms, seq := l.opt.Now().UnixMilli(), int64(0)
	if ms <= s.lastMs {
		ms, seq = s.lastMs, s.lastSeq+1
	}
	s.lastMs, s.lastSeq = ms, seq
	e.Payload = slices.Clone(e.Payload)
	s.entries = append(s.entries, Message{StreamID: strconv.FormatInt(ms, 10) + "-" + strconv.FormatInt(seq, 10), Event: e})
	if n := len(s.entries) - streamMaxLen; n > 0 {
		s.entries = s.entries[n:]
		s.first += uint64(n)
	}
	close(l.wake)
	l.wake = make(chan struct{})
	return nil
}

func (l *Local) stream(name string) *localStream {
	s := l.streams[name]
	if s == nil {
		s = &localStream{groups: map[string]*localGroup{}}
		l.streams[name] = s
	}
	return s
}

// ReadGroup reads stream as consumer of group (created at the stream's
// start when missing). It returns first the consumer's messages delivered
// before and not acknowledged, so a consumer that restarts gets them again;
// when it has none, up to count new messages (count <= 0: all), waiting up
// to block for one when there is none (block <= 0: not waiting). No
// message and no error when block passes. Messages pending on a consumer
// that never comes back stay pending: nobody claims them.
func (l *Local) ReadGroup(ctx context.Context, stream, group, consumer string, count int, block time.Duration) ([]Message, error) {
	deadline := time.Now().Add(block)
	for {
		if err := l.lock(ctx); err != nil {
			return nil, err
		}
		msgs := l.readGroup(stream, group, consumer, count)
		wake := l.wake
		l.mu.Unlock()
		wait := time.Until(deadline)
		if len(msgs) > 0 || wait <= 0 {
			return msgs, nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

func (l *Local) readGroup(stream, group, consumer string, count int) []Message {
	s := l.stream(stream)
	g := s.groups[group]
	if g == nil {
		g = &localGroup{next: s.first, pending: map[string]localPending{}}
		s.groups[group] = g
	}
	var mine []localPending
	for id, p := range g.pending {
		switch {
		case p.pos < s.first: // trimmed: it cannot be delivered again
			delete(g.pending, id)
		case p.consumer == consumer:
			mine = append(mine, p)
		}
	}
	var out []Message
	if len(mine) > 0 {
		slices.SortFunc(mine, func(a, b localPending) int { return cmp.Compare(a.pos, b.pos) })
		for _, p := range mine {
			if count > 0 && len(out) == count {
				break
			}
			out = append(out, s.entries[p.pos-s.first])
		}
		return out
	}
	if g.next < s.first {
		g.next = s.first
	}
	for ; g.next < s.first+uint64(len(s.entries)); g.next++ {
		if count > 0 && len(out) == count {
			break
		}
		m := s.entries[g.next-s.first]
		g.pending[m.StreamID] = localPending{pos: g.next, consumer: consumer}
		out = append(out, m)
	}
	return out
}

// Ack marks messages of group as processed: they are not delivered again.
// Unknown ids are ignored.
func (l *Local) Ack(ctx context.Context, stream, group string, ids ...string) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.mu.Unlock()
	if s := l.streams[stream]; s != nil {
		if g := s.groups[group]; g != nil {
			for _, id := range ids {
				delete(g.pending, id)
			}
		}
	}
	return nil
}

var (
	errEmptyNode = errors.New("coord: empty node id")
	errTTL       = errors.New("coord: ttl must be positive")
)

func checkLease(d DeviceLease) error {
	if d.Device == "" || d.Node == "" || d.Session == "" {
		return fmt.Errorf("coord: device lease needs a device, a node and a session (got %q, %q, %q)", d.Device, d.Node, d.Session)
	}
	return nil
}

func cloneLease(d DeviceLease) DeviceLease {
	d.Codecs = slices.Clone(d.Codecs)
	return d
}
