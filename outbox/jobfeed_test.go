package outbox_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/outbox"
)

// posterRule: a poster job per closed recording.
func posterRule(e catalog.OutboxEvent) []catalog.JobRequest {
	if e.Kind != events.RecordingClosed {
		return nil
	}
	var d struct {
		RecordingID string `json:"recording_id"`
	}
	json.Unmarshal(e.Data, &d)
	return []catalog.JobRequest{{Kind: "poster", Source: d.RecordingID, RequestedBy: "system"}}
}

// Every closed recording becomes one poster job through the outbox: the
// feed started late catches up from the outbox's beginning, a crash
// before the cursor moved (the feed run again from an old cursor) makes
// no second job, and the runner is woken.
func TestJobFeed(t *testing.T) {
	engines(t, func(t *testing.T, c *catalog.Catalog) {
		ctx := context.Background()
		setup(t, c, "cam-1", "cam-2")
		for _, dev := range []string{"cam-1", "cam-2"} {
			if err := activity(ctx, c, dev, 3, 0); err != nil {
				t.Fatal(err)
			}
		}
		relay := outbox.NewRelay(outbox.RelayOptions{Catalog: c, Log: quiet})
		if _, err := relay.Sequence(ctx); err != nil {
			t.Fatal(err)
		}
		var woken atomic.Int32
		feed := outbox.NewJobFeed(outbox.JobFeedOptions{Catalog: c, Rules: posterRule, Queued: func() { woken.Add(1) }, Log: quiet})
		if err := feed.Feed(ctx); err != nil {
			t.Fatal(err)
		}
		list, err := c.Jobs(ctx, catalog.JobFilter{Kind: "poster"})
		if err != nil || len(list) != 2 || woken.Load() != 1 {
			t.Fatalf("jobs after the feed: %+v %v (woken %d); want a poster job per closed recording", list, err, woken.Load())
		}
		// A crash after the jobs were made, before the cursor moved.
		if _, err := c.DB().ExecContext(ctx, `UPDATE outbox_cursors SET seq = 0 WHERE name = '`+outbox.JobFeedCursor+`'`); err != nil {
			t.Fatal(err)
		}
		if err := feed.Feed(ctx); err != nil {
			t.Fatal(err)
		}
		if list, _ := c.Jobs(ctx, catalog.JobFilter{}); len(list) != 2 || woken.Load() != 1 {
			t.Fatalf("jobs after the feed ran again: %d (woken %d), want the same 2", len(list), woken.Load())
		}
		// A later recording, with the feed running.
		cancel := runParts(t, feed)
		defer cancel()
		rec := "cam-1-r2"
		if err := c.CreateRecording(ctx, evidence.Recording{ID: rec, DeviceID: "cam-1", StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		c.FinishRecording(ctx, rec, evidence.StateComplete, time.Now(), "publisher stopped")
		if err := c.SetManifest(ctx, rec, rec+"/manifest.json"); err != nil {
			t.Fatal(err)
		}
		relay.Sequence(ctx)
		waitFor(t, "the third poster job", 10*time.Second, func() bool {
			l, _ := c.Jobs(ctx, catalog.JobFilter{Source: rec})
			return len(l) == 1
		})
	})
}
