package retention_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/retention"
	"github.com/bodycam/bodycam/storage/dir"
)

// oneLease is a named lease in memory, as coord keeps them: one holder at a
// time; lose hands it to another holder.
type oneLease struct {
	mu       sync.Mutex
	holder   string
	acquires map[string]int
	released []string
}

func (l *oneLease) Acquire(_ context.Context, name, holder string, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if name != retention.LeaseName || ttl <= 0 {
		return errors.New("unexpected lease")
	}
	l.acquires[holder]++
	if l.holder != "" && l.holder != holder {
		return errors.New("held")
	}
	l.holder = holder
	return nil
}

func (l *oneLease) Release(_ context.Context, name, holder string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == holder {
		l.holder = ""
	}
	l.released = append(l.released, holder)
	return nil
}

func (l *oneLease) give(holder string) {
	l.mu.Lock()
	l.holder = holder
	l.mu.Unlock()
}

// Two nodes run the retention job under one lease: only its holder
// deletes; a holder that loses it stops within the pass; Run gives it up
// when it stops. A recording without a signed manifest (its node may still
// be uploading it) is never deleted, however old.
func TestRetentionLeaseAndManifest(t *testing.T) {
	ctx := context.Background()
	d := t.TempDir()
	st, err := dir.Open(d+"/objects", dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(ctx, "", d)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	keys, err := keyring.Open(d+"/keys", keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateDevice(ctx, evidence.Device{ID: "cam-1", SecretHash: "x"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	for i, id := range []string{"rec-1", "rec-2", "rec-3"} {
		storeRecording(t, ctx, cat, st, keys, id, start.Add(time.Duration(i)*time.Minute))
	}
	// Ended long ago, reaped, its node's spool still out: no manifest.
	if err := cat.CreateRecording(ctx, evidence.Recording{ID: "rec-spooled", DeviceID: "cam-1", StartedAt: start, NodeID: "node-b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.InterruptNode(ctx, "node-b", start.Add(time.Second), "node node-b stopped answering"); err != nil {
		t.Fatal(err)
	}

	lease := &oneLease{acquires: map[string]int{}}
	job := func(holder string) *retention.Job {
		return &retention.Job{Policy: evidence.RetentionPolicy{Unlinked: evidence.RetentionPeriod{Duration: time.Minute}}, Interval: time.Hour, Catalog: cat, Store: st, Signer: keys,
			Log: slog.New(slog.DiscardHandler), Lease: lease, Holder: holder}
	}
	a, b := job("node-a"), job("node-b")
	now := time.Now()
	lease.give("node-b")
	if n, err := a.Pass(ctx, now); err != nil || n != 0 {
		t.Fatalf("node-a's pass while node-b holds the lease: %d, %v", n, err)
	}
	if rec, _ := cat.Recording(ctx, "rec-1"); !rec.DeletedAt.IsZero() {
		t.Fatal("deleted without the lease")
	}
	// node-b loses the lease after its first recording.
	lossy := &losingLease{oneLease: lease, after: 1}
	b.Lease = lossy
	if n, err := b.Pass(ctx, now); err != nil || n != 1 {
		t.Fatalf("node-b's pass that loses the lease after one recording: %d, %v", n, err)
	}
	if n, err := a.Pass(ctx, now); err != nil || n != 0 {
		t.Fatalf("node-a's pass while node-c holds the lease: %d, %v", n, err)
	}
	lease.give("") // node-c's lapses
	if n, err := a.Pass(ctx, now); err != nil || n != 2 {
		t.Fatalf("node-a's pass with the lease: %d, %v", n, err)
	}
	for _, id := range []string{"rec-1", "rec-2", "rec-3"} {
		if rec, _ := cat.Recording(ctx, id); rec.DeletedAt.IsZero() {
			t.Fatalf("%s not deleted", id)
		}
	}
	if rec, _ := cat.Recording(ctx, "rec-spooled"); !rec.DeletedAt.IsZero() {
		t.Fatal("a recording without a signed manifest was deleted")
	}
	// Run gives the lease up when it stops.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.Run(runCtx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lease.holder != "" || len(lease.released) == 0 || lease.released[len(lease.released)-1] != "node-a" {
		t.Fatalf("after Run: holder %q, released %v", lease.holder, lease.released)
	}
	// A lease without a holder is a mistake, not a silent no-op.
	if _, err := job("").Pass(ctx, now); err == nil {
		t.Fatal("a lease without a holder accepted")
	}
}

// losingLease hands the lease to another node after some acquires.
type losingLease struct {
	*oneLease
	after int
	n     int
}

func (l *losingLease) Acquire(ctx context.Context, name, holder string, ttl time.Duration) error {
	l.n++
	if l.n > l.after {
		l.give("node-c")
	}
	return l.oneLease.Acquire(ctx, name, holder, ttl)
}
