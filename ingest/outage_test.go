package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/internal/testsvc"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/s3"
)

// The object store goes away mid-recording: recording goes on into the
// spool, the backlog shows, and everything drains when the store is back.
// Nothing is dropped: the recording lasts as long as what was published.
func TestStorageOutage(t *testing.T) {
	m, err := testsvc.StartMinIO()
	if err != nil {
		t.Fatalf("this test needs a real MinIO server: %v", err)
	}
	defer m.Close()
	store, err := s3.Open(context.Background(), s3.Options{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		Bucket: "outage", Retention: storage.Retention{Mode: storage.Compliance, Period: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{store: store, segmentDuration: time.Second})
	secret := h.register("cam-outage")
	const seconds = 16.0
	done := make(chan error, 1)
	go func() {
		_, err := h.publish(stream{"h264-aac", h264, aac}, seconds, "tcp", h.url("cam-outage", secret, ""))
		done <- err
	}()
	time.Sleep(3 * time.Second)
	m.Stop()
	t.Log("MinIO stopped")
	time.Sleep(8 * time.Second)
	backlog := h.metric("bodycam_spool_backlog_segments")
	errs := h.metric("bodycam_ingest_errors_total")
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Log("MinIO back")
	if err := <-done; err != nil {
		t.Fatalf("publisher failed during the outage: %v", err)
	}
	if !strings.Contains(backlog, "value:") || strings.Contains(backlog, "value:0}") {
		t.Fatalf("no backlog during the outage: %s", backlog)
	}
	if !strings.Contains(errs, `value:"upload"`) {
		t.Fatalf("upload errors not counted during the outage: %s", errs)
	}
	t.Logf("during the outage: backlog %s", strings.TrimSpace(backlog))
	rec := h.waitRecordings("cam-outage", 1, 90*time.Second)[0]
	if rec.State != "complete" {
		t.Fatalf("recording %+v", rec)
	}
	if d := h.media(rec.ID); d < time.Duration((seconds-1.5)*float64(time.Second)) {
		t.Fatalf("recording lasts %v of %vs published: media was dropped", d, seconds)
	}
	if v := h.verify(rec.ID); !v.OK || len(v.Gaps) != 0 {
		t.Fatalf("verify after the outage: %+v", v)
	}
	deadline := time.Now().Add(5 * time.Second) // the gauge is refreshed every pass
	for !strings.Contains(h.metric("bodycam_spool_backlog_segments"), "value:0") {
		if time.Now().After(deadline) {
			t.Fatalf("backlog not drained: %s", h.metric("bodycam_spool_backlog_segments"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
