package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/evidence"
)

// fakeLeases is a coordination backend with one other node's lease, that
// can be made to not answer.
type fakeLeases struct {
	mu      sync.Mutex
	down    bool
	held    map[string]coord.DeviceLease
	calls   []string
	fence   int64
	updates []coord.DeviceLease
}

func (f *fakeLeases) AcquireDevice(_ context.Context, l coord.DeviceLease) (coord.DeviceLease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "acquire "+l.Device+" "+l.Session)
	if f.down {
		return coord.DeviceLease{}, coord.ErrUnavailable
	}
	if h, ok := f.held[l.Device]; ok && h.Session != l.Session {
		return h, coord.ErrHeld
	}
	f.fence = coord.LocalFence(time.Now(), f.fence)
	l.Fence = f.fence
	f.held[l.Device] = l
	return l, nil
}

func (f *fakeLeases) UpdateDevice(_ context.Context, l coord.DeviceLease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "update "+l.Device+" "+l.Session)
	if f.down {
		return coord.ErrUnavailable
	}
	f.updates = append(f.updates, l)
	return nil
}

func (f *fakeLeases) ReleaseDevice(_ context.Context, device, session string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "release "+device+" "+session)
	if h, ok := f.held[device]; ok && h.Session == session {
		delete(f.held, device)
	}
	return nil
}

func (f *fakeLeases) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeLeases) log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, "\n")
}

// A device whose lease another node holds is refused with 409 and nothing
// is recorded; a device that is free is leased for its session, the lease
// names the recording, the recording carries the node and the lease's
// fence, and the lease is given back at the end.
func TestDeviceLease(t *testing.T) {
	fl := &fakeLeases{held: map[string]coord.DeviceLease{"cam-elsewhere": {Device: "cam-elsewhere", Node: "node-b", Session: "s-b", Fence: 7}}}
	h := newHarness(t, harnessOptions{leases: fl, nodeID: "node-a"})
	secret := h.register("cam-elsewhere")
	out, err := h.publish(stream{video: h264}, 2, "tcp", h.url("cam-elsewhere", secret, ""))
	if err == nil || !strings.Contains(string(out), "409") {
		t.Fatalf("a device leased on another node was accepted: %v %s", err, out)
	}
	if v, _ := h.value("bodycam_ingest_refused_total", "reason", "duplicate"); v != 1 {
		t.Fatalf("refused duplicate: %v", v)
	}

	secret = h.register("cam-free")
	if out, err := h.publish(stream{video: h264}, 3, "tcp", h.url("cam-free", secret, "")); err != nil {
		t.Fatalf("publish: %v %s", err, out)
	}
	rec := h.waitRecordings("cam-free", 1, 30*time.Second)[0]
	fl.mu.Lock()
	updates := append([]coord.DeviceLease(nil), fl.updates...)
	fence := fl.fence
	fl.mu.Unlock()
	if rec.NodeID != "node-a" || rec.Fence != fence || fence == 0 {
		t.Fatalf("recording %+v, want node-a and fence %d", rec, fence)
	}
	if len(updates) != 1 || updates[0].Recording != rec.ID || updates[0].Node != "node-a" || len(updates[0].Codecs) == 0 {
		t.Fatalf("lease updates: %+v", updates)
	}
	if !strings.Contains(fl.log(), "release cam-free "+updates[0].Session) {
		t.Fatalf("lease not given back:\n%s", fl.log())
	}
}

// While coordination does not answer, a publisher is accepted all the
// same (never refuse evidence), its recording gets a fence issued here, it
// is counted, and its lease is taken when coordination answers again,
// while it still records.
func TestDeviceLeaseWhileCoordinationDown(t *testing.T) {
	fl := &fakeLeases{held: map[string]coord.DeviceLease{}, down: true}
	h := newHarness(t, harnessOptions{leases: fl, nodeID: "node-a"})
	secret := h.register("cam-alone")
	done := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = h.publish(stream{video: h264}, 9, "tcp", h.url("cam-alone", secret, ""))
		done <- err
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(fl.log(), "acquire cam-alone") {
		if time.Now().After(deadline) {
			t.Fatal("no lease asked for")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if v, _ := h.value("bodycam_ingest_coord_errors_total", "op", "acquire"); v < 1 {
		t.Fatalf("coordination errors not counted: %v", v)
	}
	fl.setDown(false)
	for {
		fl.mu.Lock()
		_, held := fl.held["cam-alone"]
		fl.mu.Unlock()
		if held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease was not taken when coordination answered again:\n%s", fl.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("publish: %v %s", err, out)
	}
	rec := h.waitRecordings("cam-alone", 1, 30*time.Second)[0]
	if rec.Fence == 0 || rec.Fence > time.Now().UnixMicro() || rec.State != "complete" {
		t.Fatalf("recording made without coordination: %+v", rec)
	}
}

// Two nodes took one device while coordination was down: another node's
// recording of it, under a later grant, reaches the catalog while this one
// records. The catalog refuses this one's segments recorded from then on;
// this node ends the session (the publisher is disconnected), keeps what it
// recorded after the takeover apart in the spool's _superseded directory,
// and ends the recording interrupted with a gap that says so. It is signed
// and verifies; nothing of the device is left waiting in the spool.
func TestSupersededByAnotherNode(t *testing.T) {
	fl := &fakeLeases{held: map[string]coord.DeviceLease{}, down: true}
	h := newHarness(t, harnessOptions{leases: fl, nodeID: "node-a", segmentDuration: time.Second})
	secret := h.register("cam-twice")
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		_, err := h.publish(stream{video: h264}, 20, "tcp", h.url("cam-twice", secret, ""))
		done <- err
	}()
	// Some of it stored, then node B's grant.
	deadline := time.Now().Add(20 * time.Second)
	var mine evidence.Recording
	for {
		recs, _ := h.cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: "cam-twice"})
		if len(recs) == 1 && recs[0].SegmentCount >= 3 {
			mine = recs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recording: %+v", recs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	takeover := time.Now().UTC()
	other := evidence.Recording{ID: "20990101T000000Z-0000b0b0", DeviceID: "cam-twice", OfficerID: "o-cam-twice", State: evidence.StateLive,
		StartedAt: takeover, NodeID: "node-b", Fence: takeover.UnixMicro()}
	if err := h.cat.CreateRecording(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done: // ffmpeg is disconnected
	case <-time.After(15 * time.Second):
		t.Fatal("the publisher of a superseded recording was not disconnected")
	}
	if time.Since(started) > 18*time.Second {
		t.Fatal("the publisher ran to its end: it was not disconnected")
	}
	rec := h.waitRecordings("cam-twice", 1, 30*time.Second)
	var got evidence.Recording
	for _, r := range rec {
		if r.ID == mine.ID {
			got = r
		}
	}
	if got.State != evidence.StateInterrupted || !strings.Contains(got.EndReason, "superseded") || got.ManifestKey == "" {
		t.Fatalf("superseded recording: %+v", got)
	}
	segs, err := h.cat.Segments(context.Background(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if !s.StartedAt.Before(takeover) {
			t.Fatalf("segment %d started at %v, after the takeover at %v, is in the record", s.Seq, s.StartedAt, takeover)
		}
	}
	v := h.verify(got.ID)
	found := false
	for _, g := range v.Gaps {
		found = found || (g.Kind == "interrupted" && strings.Contains(g.Detail, "superseded"))
	}
	if !v.OK || !found {
		t.Fatalf("verify: %+v", v)
	}
	kept, _ := filepath.Glob(filepath.Join(h.dataDir, "spool", "_superseded", "cam-twice", got.ID, "*.m4s"))
	if len(kept) == 0 {
		t.Fatal("nothing kept apart in the spool's _superseded directory")
	}
	if left, _ := os.ReadDir(filepath.Join(h.dataDir, "spool", "cam-twice")); len(left) != 0 {
		t.Fatalf("left waiting in the spool: %v", left)
	}
	if v, _ := h.value("bodycam_ingest_errors_total", "kind", "superseded"); v < 1 {
		t.Fatalf("superseded not counted: %v", v)
	}
}
