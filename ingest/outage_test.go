package ingest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
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
	uploadErrs, _ := h.value("bodycam_ingest_errors_total", "kind", "upload")
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
	if uploadErrs == 0 { // every kind is exported from the start, at 0
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

// Spooled segments whose bytes change before they reach the store (a flipped
// byte, a file cut short) are stored as found with a "damaged" gap each: the
// server refuses the first upload, and neither the recording nor the
// device's chain waits for bytes that will not come back.
func TestSpoolDamage(t *testing.T) {
	m, err := testsvc.StartMinIO()
	if err != nil {
		t.Fatalf("this test needs a real MinIO server: %v", err)
	}
	defer m.Close()
	store, err := s3.Open(context.Background(), s3.Options{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey,
		Bucket: "damage", Retention: storage.Retention{Mode: storage.Compliance, Period: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{store: store, segmentDuration: time.Second})
	secret := h.register("cam-damage")
	m.Stop() // everything stays in the spool until the damage is done
	if out, err := h.publish(stream{"h264-aac", h264, aac}, 6, "tcp", h.url("cam-damage", secret, "")); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	var dir string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ends, _ := filepath.Glob(filepath.Join(h.dataDir, "spool", "cam-damage", "*", "end.json"))
		if len(ends) == 1 {
			dir = filepath.Dir(ends[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the recording did not end in the spool")
		}
	}
	flipped := filepath.Join(dir, "000002.m4s")
	b, err := os.ReadFile(flipped)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-10] ^= 0xff
	if err := os.WriteFile(flipped, b, 0o640); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "000004.m4s")
	st, err := os.Stat(cut)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(cut, st.Size()-100); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	rec := h.waitRecordings("cam-damage", 1, 90*time.Second)[0]
	v := h.verify(rec.ID)
	if !v.OK {
		t.Fatalf("verify: %+v", v)
	}
	var damaged []string
	for _, g := range v.Gaps {
		if g.Kind == "damaged" {
			damaged = append(damaged, g.Detail)
		}
	}
	if len(damaged) != 2 || !strings.Contains(damaged[0], "segment 2 changed") || !strings.Contains(damaged[1], "segment 4 changed") ||
		!strings.Contains(damaged[1], fmt.Sprintf("%d bytes when written", st.Size())) {
		t.Fatalf("damaged gaps: %q (all gaps %+v)", damaged, v.Gaps)
	}
	segs, err := h.cat.Segments(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	for _, s := range segs {
		if s.Seq == 2 && s.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("segment 2 recorded as %s, not as found (%x)", s.SHA256, sum)
		}
	}
	if n, _ := h.value("bodycam_ingest_errors_total", "kind", "spool_damaged"); n == 0 {
		t.Fatalf("damage not counted: %s", h.metric("bodycam_ingest_errors_total"))
	}
}
