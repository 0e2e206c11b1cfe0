package live

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/coord"
)

// A session's place in the cluster-wide limits (Options.Slots): a slot in
// PoolAll and one in its user's pool, named by the session id, taken at
// the offer, renewed by Run, released when the session ends. A slot the
// backend could not take (it did not answer) is taken again by Run once it
// answers, so sessions admitted alone count again; one that finds its pool
// full then stays admitted, and is only not counted.

type slotPool struct {
	name   string
	limit  int
	reason string // the refused metric's label
}

func (r *Relay) pools(user string) []slotPool {
	return []slotPool{{PoolAll, r.o.MaxSessions, "limit"}, {PoolUser(user), r.o.MaxPerUser, "user_limit"}}
}

// takeSlots takes v's slots, refusing (ErrLimit) when a pool is full; a
// backend that does not answer refuses nothing.
func (r *Relay) takeSlots(ctx context.Context, v *viewer) error {
	if r.o.Slots == nil {
		return nil
	}
	for _, p := range r.pools(v.user) {
		sctx, cancel := context.WithTimeout(ctx, slotTimeout)
		err := r.o.Slots.TakeSlot(sctx, p.name, v.id, p.limit, r.o.SlotTTL)
		cancel()
		switch {
		case err == nil:
			r.mu.Lock()
			v.held[p.name] = true
			r.mu.Unlock()
		case errors.Is(err, coord.ErrFull):
			r.m.refused.WithLabelValues(p.reason).Inc()
			if p.name == PoolAll {
				return fmt.Errorf("%w: %d in all across the cluster, the most it takes", ErrLimit, p.limit)
			}
			return fmt.Errorf("%w: %s already has %d across the cluster, the most one user may", ErrLimit, v.user, p.limit)
		default:
			r.slotsDown("take", err)
		}
	}
	return nil
}

// releaseSlots gives back the slots v holds.
func (r *Relay) releaseSlots(v *viewer) {
	if r.o.Slots == nil {
		return
	}
	r.mu.Lock()
	var held []string
	for p := range v.held {
		held = append(held, p)
	}
	clear(v.held)
	r.mu.Unlock()
	for _, p := range held {
		ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
		if err := r.o.Slots.ReleaseSlot(ctx, p, v.id); err != nil {
			r.slotsDown("release", err) // it lapses after SlotTTL
		}
		cancel()
	}
}

// renewSlots extends the slots of every session in one call per pool, and
// takes again those the backend did not take (or lost).
func (r *Relay) renewSlots(ctx context.Context) {
	r.mu.Lock()
	ids := map[string][]string{}
	var retake []*viewer
	for _, v := range r.sessions {
		missing := false
		for _, p := range r.pools(v.user) {
			if v.held[p.name] {
				ids[p.name] = append(ids[p.name], v.id)
			} else {
				missing = true
			}
		}
		if missing && v.audited.Load() { // not one whose offer is still taking them
			retake = append(retake, v)
		}
	}
	r.mu.Unlock()
	for pool, list := range ids {
		sctx, cancel := context.WithTimeout(ctx, slotTimeout)
		err := r.o.Slots.RenewSlots(sctx, pool, list, r.o.SlotTTL)
		cancel()
		if err != nil {
			r.slotsDown("renew", err)
			// They may have lapsed: taken again (idempotent) next time.
			r.mu.Lock()
			for _, id := range list {
				if v := r.sessions[id]; v != nil {
					delete(v.held, pool)
				}
			}
			r.mu.Unlock()
		}
	}
	for _, v := range retake {
		for _, p := range r.pools(v.user) {
			r.mu.Lock()
			held, current := v.held[p.name], r.sessions[v.id] == v
			r.mu.Unlock()
			if held || !current {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, slotTimeout)
			err := r.o.Slots.TakeSlot(sctx, p.name, v.id, p.limit, r.o.SlotTTL)
			cancel()
			switch {
			case err == nil:
				r.mu.Lock()
				current = r.sessions[v.id] == v
				if current {
					v.held[p.name] = true
				}
				r.mu.Unlock()
				if !current { // ended meanwhile
					sctx, cancel := context.WithTimeout(ctx, slotTimeout)
					r.o.Slots.ReleaseSlot(sctx, p.name, v.id)
					cancel()
				}
			case errors.Is(err, coord.ErrFull):
				// Admitted while the backend was down, over the limit now:
				// it goes on, uncounted, until it ends.
			default:
				r.slotsDown("take", err)
				return
			}
		}
	}
}

// slotsDown notes that the slots did not answer: a metric each time, a
// warning at most every 30 s.
func (r *Relay) slotsDown(op string, err error) {
	r.m.slotsDown.WithLabelValues(op).Inc()
	now := time.Now().UnixNano()
	if last := r.slotsWarned.Load(); now-last < int64(30*time.Second) || !r.slotsWarned.CompareAndSwap(last, now) {
		return
	}
	r.log.Warn("live: the cluster-wide viewing limits do not answer; this node's own limits hold meanwhile", "op", op, "err", err)
}
