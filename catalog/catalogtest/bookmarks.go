package catalogtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Bookmarks: set, listed by time, never edited; removed once (with who,
// when and why, kept), not twice; unknown ones and recordings refused.
func testBookmarks(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	late := evidence.Bookmark{ID: "b2", RecordingID: "r1", At: t0.Add(90 * time.Second), Note: "second", CreatedBy: "o-1", CreatedAt: now}
	early := evidence.Bookmark{ID: "b1", RecordingID: "r1", At: t0.Add(30*time.Second + 250*time.Millisecond), Note: "a plate, line 2\nand ünïcode", CreatedBy: "s-1", CreatedAt: now}
	for _, b := range []evidence.Bookmark{late, early} {
		if err := c.CreateBookmark(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateBookmark(ctx, early); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("the same id again: %v, want ErrExists", err)
	}
	if err := c.CreateBookmark(ctx, evidence.Bookmark{ID: "b3", RecordingID: "nope", At: t0, Note: "x", CreatedBy: "o-1", CreatedAt: now}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("a bookmark of no recording: %v, want ErrNotFound", err)
	}
	list, err := c.Bookmarks(ctx, "r1")
	if err != nil || len(list) != 2 || list[0].ID != "b1" || list[1].ID != "b2" {
		t.Fatalf("bookmarks = %+v, %v; want b1, b2 by time", list, err)
	}
	if got := list[0]; !got.At.Equal(early.At) || got.Note != early.Note || got.CreatedBy != "s-1" || !got.CreatedAt.Equal(now) || got.Removed() {
		t.Fatalf("b1 = %+v, want %+v", got, early)
	}
	gone := now.Add(time.Minute)
	if err := c.RemoveBookmark(ctx, "b2", "s-1", "wrong moment", gone); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveBookmark(ctx, "b2", "s-1", "again", gone); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("removed twice: %v, want ErrConflict", err)
	}
	if err := c.RemoveBookmark(ctx, "nope", "s-1", "x", gone); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("removing no bookmark: %v, want ErrNotFound", err)
	}
	b, err := c.Bookmark(ctx, "b2")
	if err != nil || !b.Removed() || b.RemovedBy != "s-1" || b.RemovedReason != "wrong moment" || !b.RemovedAt.Equal(gone) || b.Note != "second" {
		t.Fatalf("removed b2 = %+v, %v", b, err)
	}
	if list, err := c.Bookmarks(ctx, "r1"); err != nil || len(list) != 2 {
		t.Fatalf("a removed bookmark is still listed (as removed): %+v, %v", list, err)
	}
}
