package catalogtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Copy requests: kept pending, decided once (a second decision is
// ErrConflict), listed by requester and state; a grant's uses are taken
// only by its requester, for its thing, before it expires, one at a time.
func testCopyRequests(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	a := evidence.CopyRequest{ID: "cr-a", Kind: evidence.CopyOfRecording, TargetID: "r1", Reason: "court, line 2\nünïcode", Uses: 2,
		RequestedBy: "o-1", RequestedAt: now}
	b := evidence.CopyRequest{ID: "cr-b", Kind: evidence.CopyOfCase, TargetID: "case-1", Reason: "prosecutor", Uses: 1,
		RequestedBy: "s-2", RequestedAt: now.Add(time.Second)}
	for _, r := range []evidence.CopyRequest{a, b} {
		if err := c.CreateCopyRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateCopyRequest(ctx, a); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("the same id again: %v", err)
	}
	got, err := c.CopyRequest(ctx, "cr-a")
	if err != nil || got.State != evidence.CopyPending || got.UsesLeft != 2 || got.Reason != a.Reason || !got.RequestedAt.Equal(now) || !got.DecidedAt.IsZero() {
		t.Fatalf("CopyRequest = %+v, %v", got, err)
	}
	if _, err := c.CopyRequest(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if list, err := c.CopyRequests(ctx, catalog.CopyRequestFilter{}); err != nil || len(list) != 2 || list[0].ID != "cr-b" {
		t.Fatalf("all, newest first: %+v, %v", list, err)
	}
	if list, err := c.CopyRequests(ctx, catalog.CopyRequestFilter{RequestedBy: "o-1", State: evidence.CopyPending}); err != nil || len(list) != 1 || list[0].ID != "cr-a" {
		t.Fatalf("o-1's pending: %+v, %v", list, err)
	}
	// Not granted yet: no use.
	if _, err := c.UseCopyGrant(ctx, "cr-a", "o-1", evidence.CopyOfRecording, "r1", now); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("pending used: %v", err)
	}
	dec := now.Add(time.Minute)
	granted, err := c.DecideCopyRequest(ctx, "cr-a", "s-1", "ok", true, dec, dec.Add(time.Hour))
	if err != nil || granted.State != evidence.CopyGranted || granted.DecidedBy != "s-1" || !granted.ExpiresAt.Equal(dec.Add(time.Hour)) {
		t.Fatalf("grant: %+v, %v", granted, err)
	}
	if _, err := c.DecideCopyRequest(ctx, "cr-a", "s-3", "no", false, dec, time.Time{}); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("second decision: %v", err)
	}
	if _, err := c.DecideCopyRequest(ctx, "nope", "s-3", "", false, dec, time.Time{}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown decided: %v", err)
	}
	if r, err := c.DecideCopyRequest(ctx, "cr-b", "s-1", "not needed", false, dec, time.Time{}); err != nil || r.State != evidence.CopyRefused {
		t.Fatalf("refuse: %+v, %v", r, err)
	}
	if _, err := c.UseCopyGrant(ctx, "cr-b", "s-2", evidence.CopyOfCase, "case-1", dec); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("refused used: %v", err)
	}
	// Someone else, another thing, another kind: no use.
	for _, w := range []struct{ user, kind, target string }{{"o-2", "recording", "r1"}, {"o-1", "recording", "r2"}, {"o-1", "case", "r1"}} {
		if _, err := c.UseCopyGrant(ctx, "cr-a", w.user, w.kind, w.target, dec); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("%+v used the grant: %v", w, err)
		}
	}
	// After it expires: no use.
	if _, err := c.UseCopyGrant(ctx, "cr-a", "o-1", "recording", "r1", dec.Add(time.Hour)); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("expired used: %v", err)
	}
	r, err := c.UseCopyGrant(ctx, "cr-a", "o-1", "recording", "r1", dec.Add(time.Second))
	if err != nil || r.UsesLeft != 1 || !r.LastUsedAt.Equal(dec.Add(time.Second)) || r.StateAt(dec.Add(time.Second)) != evidence.CopyGranted {
		t.Fatalf("first use: %+v, %v", r, err)
	}
	if r, err = c.UseCopyGrant(ctx, "cr-a", "o-1", "recording", "r1", dec.Add(2*time.Second)); err != nil || r.UsesLeft != 0 || r.StateAt(dec) != evidence.CopyUsed {
		t.Fatalf("second use: %+v, %v", r, err)
	}
	if _, err := c.UseCopyGrant(ctx, "cr-a", "o-1", "recording", "r1", dec.Add(3*time.Second)); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("third use of two: %v", err)
	}
}

// Many downloads at once take exactly the grant's uses, never more.
func testCopyGrantRace(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	const uses, tries = 3, 24
	if err := c.CreateCopyRequest(ctx, evidence.CopyRequest{ID: "cr-race", Kind: "recording", TargetID: "r1", Reason: "x", Uses: uses,
		RequestedBy: "o-1", RequestedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecideCopyRequest(ctx, "cr-race", "s-1", "", true, now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.UseCopyGrant(ctx, "cr-race", "o-1", "recording", "r1", now.Add(time.Minute))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, catalog.ErrConflict):
				refused.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != uses || refused.Load() != tries-uses {
		t.Fatalf("%d uses taken, %d refused; want %d and %d", ok.Load(), refused.Load(), uses, tries-uses)
	}
	if r, err := c.CopyRequest(ctx, "cr-race"); err != nil || r.UsesLeft != 0 {
		t.Fatalf("after the race: %+v, %v", r, err)
	}
}
