package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/ingest"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/dir"
)

// outageStore is a store that can be made unreachable: Put fails while down.
type outageStore struct {
	storage.Store
	down atomic.Bool
}

func (s *outageStore) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error) {
	if s.down.Load() {
		return storage.Info{}, errors.New("object store unreachable (test outage)")
	}
	return s.Store.Put(ctx, key, r, size, o)
}

// publishFailing publishes for device with the spool failing under it (set
// up by the caller): the server ends the recording and closes the publisher.
func publishFailing(t *testing.T, h *harness, device, secret string) {
	t.Helper()
	out, err := h.publish(stream{"h264-aac", h264, aac}, 6, "tcp", h.url(device, secret, ""))
	t.Logf("the publisher whose recording failed: %v %s", err, strings.TrimSpace(string(out)))
	for deadline := time.Now().Add(10 * time.Second); len(h.srv.Live()) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the failed recording's session is still live")
		}
	}
}

// failedThenNext says what device's failed recording must look like once
// stored: its end reason and the detail of its interrupted gap.
type failedThenNext struct {
	reason, gap string
}

// check checks device's two recordings: the failed one stored as
// interrupted, with its two 1 s segments, the gap from its last durable
// media and a signed manifest that verifies, and the next one stored
// complete after it in the device's chain; and that the spool holds
// nothing of the device, nor the server a descriptor in it.
func (want failedThenNext) check(t *testing.T, h *harness, device string) {
	t.Helper()
	recs := h.waitRecordings(device, 2, 30*time.Second)
	failed, next := recs[0], recs[1]
	if failed.State != evidence.StateInterrupted || !strings.Contains(failed.EndReason, want.reason) || failed.SegmentCount != 3 {
		t.Errorf("the failed recording: %+v; want interrupted (%q), with its init and two segments", failed, want.reason)
	}
	v := h.verify(failed.ID)
	var gap bool
	for _, g := range v.Gaps {
		gap = gap || g.Kind == string(evidence.GapInterrupted) && strings.Contains(g.Detail, want.gap)
	}
	if !v.OK || !gap {
		t.Errorf("the failed recording's verification: %+v; want ok, with an interrupted gap saying %q", v, want.gap)
	}
	if d := h.media(failed.ID); d < 1500*time.Millisecond || d > 3500*time.Millisecond {
		t.Errorf("the failed recording plays %v; want its two 1 s segments", d)
	}
	checkNext(t, h, device, failed, next)
}

// checkNext checks that next, device's recording after failed, is stored
// complete and continues the device's chain, and that nothing of the device
// is left in the spool, nor a descriptor open on it.
func checkNext(t *testing.T, h *harness, device string, failed, next evidence.Recording) {
	t.Helper()
	if next.State != evidence.StateComplete || next.ManifestKey == "" {
		t.Errorf("the device's next recording: %+v", next)
	}
	if v := h.verify(next.ID); !v.OK {
		t.Errorf("the device's next recording's verification: %+v", v)
	}
	a, _ := h.cat.Segments(context.Background(), failed.ID)
	b, _ := h.cat.Segments(context.Background(), next.ID)
	if len(b) == 0 || len(a) > 0 && b[0].PrevChainHash != a[len(a)-1].ChainHash {
		t.Errorf("the next recording does not continue the device's chain after the failed one")
	}
	spool := filepath.Join(h.dataDir, "spool", device)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left, _ := os.ReadDir(spool)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			files, _ := filepath.Glob(filepath.Join(spool, "*", "*"))
			t.Fatalf("left in the spool after both recordings were stored: %q", files)
		}
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); strings.HasPrefix(target, spool) {
			t.Errorf("descriptor %s still open on %s", fd.Name(), target)
		}
	}
}

// What the spool's writer writes when a segment's open fails.
var segmentOpenFailed = failedThenNext{reason: "spool write failed: spool: injected at open-segment", gap: "the spool could not be written"}

// The spool fails under a recording, and neither the recording nor the
// device's later ones wait for a restart:
//   - a segment's open fails after its files are made (as a directory sync
//     does when the descriptors run out): the recording is ended as
//     interrupted and the segment left open is salvaged (here it holds no
//     fragment, so it goes). Before, the uploader took it for a segment
//     still being written, for ever: the recording stayed live without a
//     manifest, and every later recording of the device waited behind it.
//   - the end fails too: the recording is left without end.json; once its
//     writer has gone, the uploader ends it from the spool as a restart
//     would. Before, it waited for a restart.
//   - the start fails (init.mp4 written, recording.json not): the catalog's
//     recording is ended, and what was written is removed. Before, the
//     recording stayed live and the device's later ones waited for a
//     restart behind its directory.
//
// Each time the device's next recording is stored complete after it.
func TestSpoolFailureHoldsNothing(t *testing.T) {
	h := newHarness(t, harnessOptions{segmentDuration: time.Second})
	cases := []struct {
		name  string
		fail  func(t *testing.T, device string)
		check func(t *testing.T, h *harness, device string)
	}{
		{"segment open", func(t *testing.T, device string) {
			ingest.FailSpool(t, "open-segment", device, 3)
		}, segmentOpenFailed.check},
		{"segment open and the end", func(t *testing.T, device string) {
			ingest.FailSpool(t, "open-segment", device, 3)
			ingest.FailSpool(t, "end", device, 0)
		}, failedThenNext{reason: "spool write failed; recovered from the spool", gap: "its end could not be written"}.check},
		{"start", func(t *testing.T, device string) {
			ingest.FailSpool(t, "create", device, 0)
		}, func(t *testing.T, h *harness, device string) {
			recs := h.waitRecordings(device, 1, 30*time.Second)
			if len(recs) != 2 {
				t.Fatalf("want the failed recording and the next, got %+v", recs)
			}
			failed := recs[0]
			if failed.State != evidence.StateInterrupted || !strings.Contains(failed.EndReason, "before any media was stored") {
				t.Errorf("the recording whose start failed: %+v; want ended as interrupted", failed)
			}
			checkNext(t, h, device, failed, recs[1])
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			device := fmt.Sprintf("cam-fail-%d", i)
			secret := h.register(device)
			tc.fail(t, device)
			publishFailing(t, h, device, secret)
			if out, err := h.publish(stream{"h264-aac", h264, aac}, 3, "tcp", h.url(device, secret, "")); err != nil {
				t.Fatalf("the device's next publisher: %v\n%s", err, out)
			}
			tc.check(t, h, device)
		})
	}
}

// A segment's open fails while the object store is down, then the server
// restarts: the ended recording's directory still holds the segment left
// open next to end.json (recovery passes over recordings that have ended).
// After the restart it is salvaged and the recording stored, and the
// device's next recording after it.
func TestSegmentLeftOpenAtRestart(t *testing.T) {
	base, err := dir.Open(filepath.Join(t.TempDir(), "objects"), dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &outageStore{Store: base}
	store.down.Store(true)
	h := newHarness(t, harnessOptions{store: store, segmentDuration: time.Second})
	secret := h.register("cam-left")
	ingest.FailSpool(t, "open-segment", "cam-left", 3)
	publishFailing(t, h, "cam-left", secret)
	var ended string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ends, _ := filepath.Glob(filepath.Join(h.dataDir, "spool", "cam-left", "*", "end.json"))
		if len(ends) == 1 {
			ended = filepath.Dir(ends[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed recording did not end in the spool")
		}
	}
	h.stop()
	if open, _ := filepath.Glob(filepath.Join(ended, "*.m4s.open")); len(open) != 1 {
		files, _ := filepath.Glob(filepath.Join(ended, "*"))
		t.Fatalf("no segment left open next to end.json at the restart: %q", files)
	}
	store.down.Store(false)
	h.restart()
	if out, err := h.publish(stream{"h264-aac", h264, aac}, 3, "tcp", h.url("cam-left", secret, "")); err != nil {
		t.Fatalf("the device's next publisher: %v\n%s", err, out)
	}
	segmentOpenFailed.check(t, h, "cam-left")
}
