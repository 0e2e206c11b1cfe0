package live

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/coord"
)

// memSlots are coord's slots in memory (without expiry: the test moves no
// clock), able to fail as a backend that does not answer.
type memSlots struct {
	mu    sync.Mutex
	pools map[string]map[string]bool
	down  bool
}

func (m *memSlots) TakeSlot(_ context.Context, pool, id string, limit int, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return coord.ErrUnavailable
	}
	if m.pools[pool] == nil {
		m.pools[pool] = map[string]bool{}
	}
	if !m.pools[pool][id] && len(m.pools[pool]) >= limit {
		return coord.ErrFull
	}
	m.pools[pool][id] = true
	return nil
}

func (m *memSlots) RenewSlots(_ context.Context, pool string, ids []string, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return coord.ErrUnavailable
	}
	return nil
}

func (m *memSlots) ReleaseSlot(_ context.Context, pool, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return coord.ErrUnavailable
	}
	delete(m.pools[pool], id)
	return nil
}

func (m *memSlots) members(pool string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id := range m.pools[pool] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Sessions admitted while the slots did not answer count again once they
// do (Run takes their slots), even after the backend lost every slot; one
// that finds its pool full then goes on uncounted; a failed renewal is
// followed by taking the slots again.
func TestSlotsTakenAgainAfterAnOutage(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := &memSlots{pools: map[string]map[string]bool{}}
	r := &Relay{o: Options{Slots: m, MaxSessions: 2, MaxPerUser: 5, SlotTTL: time.Minute}, m: newMetrics(reg),
		log: slog.New(slog.DiscardHandler), sessions: map[string]*viewer{}, perUser: map[string]int{}}
	add := func(id string) *viewer {
		v := &viewer{r: r, id: id, user: "u", held: map[string]bool{}}
		v.audited.Store(true)
		r.sessions[id] = v
		return v
	}
	ctx := context.Background()
	v1 := add("v1")
	if err := r.takeSlots(ctx, v1); err != nil {
		t.Fatal(err)
	}
	m.down = true
	v2 := add("v2")
	if err := r.takeSlots(ctx, v2); err != nil { // admitted on local counters
		t.Fatalf("slots down: %v, want admitted", err)
	}
	if got := m.members(PoolAll); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("pool %v during the outage", got)
	}
	r.renewSlots(ctx) // still down: renewal fails, nothing held any more
	// v2's two takes, v1's two renewals, and one take again of v2 (the
	// first failure ends the attempt).
	if n, sum := series(t, reg, "bodycam_live_slots_unavailable_total"); n != 3 || sum != 5 {
		t.Fatalf("unavailable calls: %d series, %v in all; want 5", n, sum)
	}
	m.down = false
	m.pools = map[string]map[string]bool{} // the backend came back empty
	r.renewSlots(ctx)
	for _, pool := range []string{PoolAll, PoolUser("u")} {
		if got := m.members(pool); !slices.Equal(got, []string{"v1", "v2"}) {
			t.Fatalf("%s after the outage: %v, want v1 and v2", pool, got)
		}
	}
	// A third admitted alone while the pool of 2 is full: it goes on,
	// uncounted, and is asked again next time.
	v3 := add("v3")
	r.renewSlots(ctx)
	if got := m.members(PoolAll); !slices.Equal(got, []string{"v1", "v2"}) {
		t.Fatalf("pool %v with v3 over the limit", got)
	}
	if v3.held[PoolAll] || !v3.held[PoolUser("u")] {
		t.Fatalf("v3 holds %v, want its user's slot only", v3.held)
	}
	r.release(v1)
	r.releaseSlots(v1)
	r.renewSlots(ctx)
	if got := m.members(PoolAll); !slices.Equal(got, []string{"v2", "v3"}) {
		t.Fatalf("after v1 ended: %v, want v2 and v3", got)
	}
}
