package ingest_test

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The metrics the deployment's alerts read (deploy/prometheus/alerts.yml):
// the spool's free space and its refusal threshold, the upload error kinds
// from the start, and per device the last packet and the last stop by the
// recorder itself, which tell a recorder that dropped off (its connection
// lost: the last packet is newer than the last stop) from one its officer
// stopped.
func TestOperationsMetrics(t *testing.T) {
	const minFree = 3 << 20
	h := newHarness(t, harnessOptions{minFree: minFree})

	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Join(h.dataDir, "spool"), &st); err != nil {
		t.Fatal(err)
	}
	statfs := float64(st.Bavail * uint64(st.Bsize))
	free, ok := h.value("bodycam_spool_free_bytes")
	// The disk is shared with the other tests: within 1 GiB of statfs.
	if !ok || free <= 0 || math.Abs(free-statfs) > 1<<30 {
		t.Fatalf("bodycam_spool_free_bytes %v (exported: %v), statfs says %v", free, ok, statfs)
	}
	if v, ok := h.value("bodycam_spool_min_free_bytes"); !ok || v != minFree {
		t.Fatalf("bodycam_spool_min_free_bytes %v (exported: %v), want %d", v, ok, minFree)
	}
	for _, kind := range []string{"upload", "catalog", "spool_damaged"} {
		if v, ok := h.value("bodycam_ingest_errors_total", "kind", kind); !ok || v != 0 {
			t.Fatalf("bodycam_ingest_errors_total{kind=%q} at start: %v (exported: %v), want 0", kind, v, ok)
		}
	}
	if _, ok := h.value("bodycam_ingest_device_last_publish_timestamp_seconds", "device", "cam-m"); ok {
		t.Fatal("a device has a last publish before it published")
	}

	// A recording its recorder ends (ffmpeg's TEARDOWN): both times set,
	// the stop after the last packet.
	secret := h.register("cam-m")
	before := float64(time.Now().UnixNano()) / 1e9
	if out, err := h.publish(stream{video: h264}, 2, "tcp", h.url("cam-m", secret, "")); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	h.waitRecordings("cam-m", 1, 30*time.Second)
	after := float64(time.Now().UnixNano()) / 1e9
	last, ok := h.value("bodycam_ingest_device_last_publish_timestamp_seconds", "device", "cam-m")
	if !ok || last < before+1 || last > after { // two seconds of packets: the last a second after the start at least
		t.Fatalf("last publish %v, want within [%v, %v]", last, before+1, after)
	}
	stop, ok := h.value("bodycam_ingest_device_last_stop_timestamp_seconds", "device", "cam-m")
	if !ok || stop < last || stop > after {
		t.Fatalf("last stop %v (exported: %v), want within [%v, %v]", stop, ok, last, after)
	}

	// A recorder that drops off (killed: no TEARDOWN): the last packet
	// moves on while it publishes, the last stop does not.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ff := exec.CommandContext(ctx, "ffmpeg", ffmpegArgs(stream{video: h264}, 60, "tcp", h.url("cam-m", secret, ""))...)
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	defer ff.Wait()
	var first float64
	for deadline := time.Now().Add(30 * time.Second); ; {
		v, _ := h.value("bodycam_ingest_device_last_publish_timestamp_seconds", "device", "cam-m")
		if first == 0 && v > last {
			first = v // the new recording's first
		} else if first != 0 && v > first {
			break // and a later packet
		}
		if time.Now().After(deadline) {
			t.Fatalf("last publish did not move while publishing: %v after %v", v, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ff.Process.Kill()
	h.waitRecordings("cam-m", 2, 30*time.Second)
	if v, _ := h.value("bodycam_ingest_device_last_stop_timestamp_seconds", "device", "cam-m"); v != stop {
		t.Fatalf("a lost connection moved the last stop: %v, was %v", v, stop)
	}
	if v, _ := h.value("bodycam_ingest_device_last_publish_timestamp_seconds", "device", "cam-m"); v <= first || v <= stop {
		t.Fatalf("last publish %v after the drop, want after %v and the last stop %v", v, first, stop)
	}
}
