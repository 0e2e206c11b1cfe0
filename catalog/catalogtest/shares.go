package catalogtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Shares: made with a code's hash; the code opens the share once; wrong
// codes are counted and the fifth revokes it; downloads are counted and,
// raced, never exceed the limit; nothing is downloaded before the code was
// used, after expiry or revocation; a new code ends the session; receipts
// are kept byte for byte.
func testShares(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if err := c.CreateUser(ctx, user("o-1", evidence.RoleOfficer)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	s := evidence.Share{ID: "sh-1", CaseID: "C-1", Recipient: evidence.Recipient{Name: "A. Prosecutor", Organisation: "District attorney"},
		Purpose: "charging decision", Recordings: []string{"r1", "r2"}, Copies: "redaction", MaxDownloads: 3, CreatedBy: "o-1",
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := c.CreateShare(ctx, s, "code-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateShare(ctx, s, "code-1"); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("the same id again: %v, want ErrExists", err)
	}
	if err := c.CreateShare(ctx, evidence.Share{ID: "sh-x", CaseID: "nope", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, "c"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("a share of no case: %v, want ErrNotFound", err)
	}
	got, err := c.Share(ctx, "sh-1")
	if err != nil || got.Recipient != s.Recipient || len(got.Recordings) != 2 || got.Recordings[1] != "r2" || got.Copies != "redaction" ||
		got.CodeHash != "code-1" || got.SessionHash != "" || !got.ExpiresAt.Equal(s.ExpiresAt) || got.Downloads != 0 {
		t.Fatalf("Share = %+v, %v", got, err)
	}
	now := t0.Add(time.Minute)
	if _, err := c.TakeShareDownload(ctx, "sh-1", "sess-1", now); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("a download before the code was used: %v, want ErrConflict", err)
	}
	if err := c.UseShareCode(ctx, "sh-1", "wrong", "sess", now); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("another code: %v, want ErrConflict", err)
	}
	if err := c.UseShareCode(ctx, "sh-1", "code-1", "sess-1", now); err != nil {
		t.Fatal(err)
	}
	if err := c.UseShareCode(ctx, "sh-1", "code-1", "sess-2", now); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("the code twice: %v, want ErrConflict", err)
	}
	if got, _ := c.Share(ctx, "sh-1"); got.SessionHash != "sess-1" || !got.CodeUsedAt.Equal(now) {
		t.Fatalf("after the code: %+v", got)
	}
	if _, err := c.TakeShareDownload(ctx, "sh-1", "sess-2", now); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("a download by another session than the share's: %v, want ErrConflict", err)
	}
	// Ten downloads at once for a limit of three: three get a number.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var took []int
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := c.TakeShareDownload(ctx, "sh-1", "sess-1", now)
			if err == nil {
				mu.Lock()
				took = append(took, n)
				mu.Unlock()
			} else if !errors.Is(err, catalog.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(took) != 3 {
		t.Fatalf("downloads taken = %v, want 3 of a limit of 3", took)
	}
	seen := map[int]bool{}
	for _, n := range took {
		seen[n] = true
	}
	if !seen[1] || !seen[2] || !seen[3] {
		t.Fatalf("download numbers = %v, want 1, 2, 3", took)
	}
	if err := c.AddShareReceipt(ctx, catalog.ShareReceiptRecord{ID: "rc-1", ShareID: "sh-1", Download: 1, At: now,
		Body: []byte("{\"a\": 1}\n"), Signature: []byte{0, 1, 2, 255}}); err != nil {
		t.Fatal(err)
	}
	rcs, err := c.ShareReceipts(ctx, "sh-1")
	if err != nil || len(rcs) != 1 || string(rcs[0].Body) != "{\"a\": 1}\n" || string(rcs[0].Signature) != string([]byte{0, 1, 2, 255}) {
		t.Fatalf("receipts = %+v, %v", rcs, err)
	}

	// A second share: expiry, a new code, wrong codes.
	s2 := s
	s2.ID, s2.MaxDownloads, s2.CreatedAt = "sh-2", 5, t0.Add(time.Second)
	if err := c.CreateShare(ctx, s2, "code-2"); err != nil {
		t.Fatal(err)
	}
	if err := c.UseShareCode(ctx, "sh-2", "code-2", "sess", s2.ExpiresAt); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("the code once expired: %v, want ErrConflict", err)
	}
	if err := c.UseShareCode(ctx, "sh-2", "code-2", "sess", now); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TakeShareDownload(ctx, "sh-2", "sess", s2.ExpiresAt); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("a download once expired: %v, want ErrConflict", err)
	}
	if err := c.NewShareCode(ctx, "sh-2", "code-3"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Share(ctx, "sh-2"); got.SessionHash != "" || !got.CodeUsedAt.IsZero() || got.CodeHash != "code-3" {
		t.Fatalf("a new code keeps the old session: %+v", got)
	}
	if _, err := c.TakeShareDownload(ctx, "sh-2", "sess", now); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("a download with the session a new code ended: %v, want ErrConflict", err)
	}
	for i := 1; i <= evidence.ShareMaxFailedCodes; i++ {
		n, revoked, err := c.FailShareCode(ctx, "sh-2", evidence.ShareMaxFailedCodes, now)
		if err != nil || n != i || revoked != (i == evidence.ShareMaxFailedCodes) {
			t.Fatalf("wrong code %d: %d, %v, %v", i, n, revoked, err)
		}
	}
	got, _ = c.Share(ctx, "sh-2")
	if !got.Revoked() || got.RevokedBy != "server" || got.Usable(now) == "" {
		t.Fatalf("after %d wrong codes: %+v", evidence.ShareMaxFailedCodes, got)
	}
	if err := c.UseShareCode(ctx, "sh-2", "code-3", "sess", now); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("the right code once revoked: %v, want ErrConflict", err)
	}
	if err := c.RevokeShare(ctx, "sh-2", "o-1", "again", now); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("revoked twice: %v, want ErrConflict", err)
	}
	if err := c.NewShareCode(ctx, "sh-2", "code-4"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("a new code for a revoked share: %v, want ErrConflict", err)
	}
	if err := c.RevokeShare(ctx, "sh-1", "o-1", "sent by mistake", now); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TakeShareDownload(ctx, "sh-9", "sess", now); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("no share: %v, want ErrNotFound", err)
	}
	list, err := c.Shares(ctx, "C-1")
	if err != nil || len(list) != 2 || list[0].ID != "sh-2" || list[1].RevokedReason != "sent by mistake" {
		t.Fatalf("Shares = %+v, %v", list, err)
	}
}
