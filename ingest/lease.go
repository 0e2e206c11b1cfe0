package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/bodycam/bodycam/coord"
)

// Leases are the cluster's device leases: one publisher per device across
// every node. coord.Local and coord.Redis satisfy it.
type Leases interface {
	AcquireDevice(ctx context.Context, l coord.DeviceLease) (coord.DeviceLease, error)
	UpdateDevice(ctx context.Context, l coord.DeviceLease) error
	ReleaseDevice(ctx context.Context, device, session string) error
}

// leaseTimeout bounds one call to the coordination backend: a publisher
// waits at most this long for it before it is accepted without a lease.
const leaseTimeout = 2 * time.Second

// errHeld is a publisher refused because another node records the device.
type errHeld struct{ holder coord.DeviceLease }

func (e errHeld) Error() string {
	return "publisher refused: the device is already publishing on node " + e.holder.Node
}

// lease takes the device's lease for a new publisher and sets its fence.
// Coordination that does not answer never refuses a recorder: the session
// is accepted with a fence issued here, marked unleased, and the lease is
// taken when coordination answers again (reassert). A session of the same
// device on another node is refused with errHeld.
func (s *Server) lease(ss *session) error {
	s.mu.Lock() // recordsSession reads it
	ss.leaseID = randHex(8)
	s.mu.Unlock()
	if s.o.Leases == nil {
		ss.fence = s.localFence(ss.device.ID)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	got, err := s.o.Leases.AcquireDevice(ctx, ss.deviceLease())
	if errors.Is(err, coord.ErrHeld) && got.Node == s.o.NodeID && !s.recordsSession(got.Session) {
		// A lease this node failed to give back (coordination did not
		// answer at the session's end): it is this node's to clear.
		if rerr := s.o.Leases.ReleaseDevice(ctx, got.Device, got.Session); rerr == nil {
			got, err = s.o.Leases.AcquireDevice(ctx, ss.deviceLease())
		}
	}
	switch {
	case err == nil:
		ss.fence = got.Fence
		s.noteFence(ss.device.ID, got.Fence)
		return nil
	case errors.Is(err, coord.ErrHeld):
		return errHeld{got}
	}
	s.m.coordErrors.WithLabelValues("acquire").Inc()
	ss.fence = s.localFence(ss.device.ID)
	ss.unleased.Store(true)
	ss.log.Warn("coordination unavailable: publisher accepted without a cluster lease; the device's lease is taken when it answers again",
		"err", err, "fence", ss.fence)
	return nil
}

// recordsSession reports whether a session of this node with that lease id
// is live.
func (s *Server) recordsSession(leaseID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.live {
		if ss.leaseID == leaseID {
			return true
		}
	}
	return false
}

// deviceLease is what this session holds (or asks for).
func (ss *session) deviceLease() coord.DeviceLease {
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	return coord.DeviceLease{Device: ss.device.ID, Node: ss.srv.o.NodeID, Session: ss.leaseID, Fence: ss.fence,
		Recording: ss.recordingID, Since: ss.started, RemoteAddr: ss.remote, Codecs: ss.codecNames()}
}

// localFence issues a fence without the coordination backend: the clock
// in microseconds, above any this node issued or saw for the device.
func (s *Server) localFence(device string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := coord.LocalFence(time.Now(), s.fences[device])
	s.fences[device] = f
	return f
}

func (s *Server) noteFence(device string, f int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f > s.fences[device] {
		s.fences[device] = f
	}
}

// leaseRecording tells the cluster what the session records once it does.
func (s *Server) leaseRecording(ss *session) {
	if s.o.Leases == nil || ss.unleased.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	if err := s.o.Leases.UpdateDevice(ctx, ss.deviceLease()); err != nil {
		s.m.coordErrors.WithLabelValues("update").Inc()
		ss.log.Warn("coordination: the device's lease does not name its recording yet", "err", err)
	}
}

// unlease gives the device's lease back when its session ends.
func (s *Server) unlease(ss *session) {
	if s.o.Leases == nil || ss.leaseID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	if err := s.o.Leases.ReleaseDevice(ctx, ss.device.ID, ss.leaseID); err != nil {
		// It lapses with this node's heartbeat, or at the next publisher
		// of the device here.
		s.m.coordErrors.WithLabelValues("release").Inc()
		ss.log.Warn("coordination: the device's lease was not given back", "err", err)
	}
}

// reassert takes the leases of sessions accepted while coordination did
// not answer, every interval until ctx ends. Two nodes may then both have
// accepted the device: the catalog keeps the timeline of the later grant
// (catalog.ErrStaleFence), so the session whose fence is older is ended
// here, or on the other node when its uploader is refused.
func (s *Server) reassert(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		var todo []*session
		for _, ss := range s.live {
			if ss.unleased.Load() {
				todo = append(todo, ss)
			}
		}
		s.mu.Unlock()
		for _, ss := range todo {
			s.reassertOne(ctx, ss)
		}
	}
}

func (s *Server) reassertOne(ctx context.Context, ss *session) {
	ctx, cancel := context.WithTimeout(ctx, leaseTimeout)
	defer cancel()
	l := ss.deviceLease()
	got, err := s.o.Leases.AcquireDevice(ctx, l)
	switch {
	case err == nil:
		ss.unleased.Store(false)
		s.noteFence(ss.device.ID, got.Fence)
		ss.log.Info("coordination answers again: the device's lease is taken", "fence", got.Fence, "recorded_under", ss.fence)
		s.leaseRecording(ss)
	case errors.Is(err, coord.ErrHeld):
		s.m.refused.WithLabelValues("duplicate").Inc()
		if got.Fence > ss.fence {
			ss.log.Error("two nodes recorded the device while coordination was down; the other's grant is later, so its timeline is kept: ending this one",
				"other_node", got.Node, "other_fence", got.Fence, "fence", ss.fence)
			ss.supersede()
			return
		}
		ss.log.Error("two nodes recorded the device while coordination was down; this one's grant is later, so the catalog keeps its timeline and refuses the other's",
			"other_node", got.Node, "other_fence", got.Fence, "fence", ss.fence)
	default:
		s.m.coordErrors.WithLabelValues("acquire").Inc()
	}
}

// Reassert takes again, within seconds, the leases of every session
// recording here: after an outage the coordination backend may have lost
// them (a restart without persistence).
func (s *Server) Reassert() {
	if s.o.Leases == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.live {
		ss.unleased.Store(true)
	}
}

// Supersede ends the live session recording rec, if this node has one:
// the catalog refused its media because another node took the device.
func (s *Server) supersede(device, rec string) {
	s.mu.Lock()
	ss := s.live[device]
	s.mu.Unlock()
	if ss != nil && ss.recordingID == rec {
		ss.supersede()
	}
}

// errSuperseded ends a session whose device another node was granted.
var errSuperseded = errors.New("superseded: another node was granted the device's lease")

func (ss *session) supersede() {
	ss.superseded.Store(true)
	ss.rtsp.Close()
}
