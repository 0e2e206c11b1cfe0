package dock

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// media writes size pseudo-random bytes to dir/name and returns them.
func media(t *testing.T, dir, name string, size int, seed uint64) []byte {
	t.Helper()
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	r.Read(b)
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeText(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runAgent(t *testing.T, ts *testServer, o Options) (error, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	o.Server, o.Token, o.Once = ts.URL, ts.Token, true
	if o.Settle == 0 {
		o.Settle = 20 * time.Millisecond
	}
	if o.Chunk == 0 {
		o.Chunk = 64 << 10
	}
	o.Progress = &out
	o.Timezone = time.UTC
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = a.Run(ctx)
	return err, &out
}

func readReport(t *testing.T, stateDir, camera string) Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "reports", camera+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// uploadedIn is how many files a report on disk counts as uploaded (0
// while it is not there or half written).
func uploadedIn(path string) int {
	var r Report
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &r) != nil {
		return 0
	}
	return r.Counts[StateUploaded]
}

func reportFile(t *testing.T, r Report, path string) FileReport {
	t.Helper()
	for _, f := range r.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("report of %s: no %s in %+v", r.Camera, path, r.Files)
	return FileReport{}
}

// Two docked cameras, several files each: every media file is stored
// byte for byte with the metadata its sidecar, folder and name give;
// hidden, temporary, sidecar and symlinked files are not sent; a chunk the
// server refuses is sent again; receipts are kept and check with the
// server's key; a second pass sends nothing.
func TestUploadTwoCameras(t *testing.T) {
	ts := newTestServer(t)
	ts.corruptChunks.Store(1)
	root, state := t.TempDir(), t.TempDir()
	camA, camB := filepath.Join(root, "camA"), filepath.Join(root, "camB")
	outside := t.TempDir()
	want := map[string][]byte{}
	devices := map[string]string{}
	writeTextDir := func(dir string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTextDir(camA)
	writeTextDir(camB)
	writeText(t, filepath.Join(camA, "device"), "CAM-A\n")
	want["clip1.mp4"], devices["clip1.mp4"] = media(t, camA, "DCIM/clip1.mp4", 300_000, 1), "CAM-A"
	writeText(t, filepath.Join(camA, "DCIM/clip1.mp4.json"), `{"Officer": "o-17", "start_time": "2026-12-01 08:00:00", "end": "2026-12-01T08:05:00Z", "important": true, "gps": [{"lat": 48.1, "lon": 11.5, "time": "2026-12-01T08:00:01Z"}]}`)
	want["memo.wav"], devices["memo.wav"] = media(t, camA, "memo.wav", 70_000, 2), "CAM-X"
	writeText(t, filepath.Join(camA, "memo.xml"), `<?xml version="1.0"?><rec><DeviceID>CAM-X</DeviceID><garbage`) // odd: read what is there
	media(t, camA, ".hidden.mp4", 1000, 3)
	media(t, camA, "partial.mp4.part", 1000, 4)
	media(t, outside, "secret.mp4", 1000, 5)
	if err := os.Symlink(filepath.Join(outside, "secret.mp4"), filepath.Join(camA, "link.mp4")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(camA, "linkdir")); err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{"CAM123_20261201083000_0001.MP4", "!CAM123_20261201090000_0002.MP4", "CAM123_20261201100000_0003_IMP.MOV"} {
		want[n], devices[n] = media(t, camB, n, 150_000+i*1000, uint64(10+i)), "CAM123"
	}
	writeText(t, filepath.Join(camB, "broken.json"), `{not json`)
	want["CAM123_20261201110000_0004.MP4"], devices["CAM123_20261201110000_0004.MP4"] = media(t, camB, "CAM123_20261201110000_0004.MP4", 20_000, 20), "CAM123"
	writeText(t, filepath.Join(camB, "CAM123_20261201110000_0004.json"), `{"officer": "badge-99"}`) // a user the server does not know

	err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{camA, camB}, Parallel: 3})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if ts.chunk460s.Load() != 1 {
		t.Errorf("chunks refused: %d, want the 1 the server refused", ts.chunk460s.Load())
	}
	for name, b := range want {
		if got := ts.storedFor(devices[name], b); !bytes.Equal(got, b) {
			t.Errorf("%s: the server stored %d bytes, want the file's %d", name, len(got), len(b))
		}
	}
	ts.mu.Lock()
	metas := ts.metas
	ts.mu.Unlock()
	if len(metas) != len(want) {
		t.Errorf("uploads created for %d files (%v), want %d", len(metas), keysOf(metas), len(want))
	}
	m := metas["clip1.mp4"]
	if m["device"] != "CAM-A" || m["officer"] != "o-17" || m["important"] != "1" || m["filetype"] != "video/mp4" ||
		m["started_at"] != "2026-12-01T08:00:00Z" || m["ended_at"] != "2026-12-01T08:05:00Z" || !strings.Contains(m["gps"], "48.1") {
		t.Errorf("clip1.mp4 metadata: %v", m)
	}
	if m := metas["memo.wav"]; m["device"] != "CAM-X" || m["filetype"] != "audio/wav" || m["important"] != "" {
		t.Errorf("memo.wav metadata (device from the odd XML sidecar): %v", m)
	}
	if m := metas["CAM123_20261201083000_0001.MP4"]; m["device"] != "CAM123" || m["started_at"] != "2026-12-01T08:30:00Z" || m["important"] != "" {
		t.Errorf("name metadata: %v", m)
	}
	if m := metas["!CAM123_20261201090000_0002.MP4"]; m["device"] != "CAM123" || m["important"] != "1" || m["started_at"] != "2026-12-01T09:00:00Z" {
		t.Errorf("! name metadata: %v", m)
	}
	if m := metas["CAM123_20261201100000_0003_IMP.MOV"]; m["important"] != "1" || m["filetype"] != "video/quicktime" {
		t.Errorf("_IMP name metadata: %v", m)
	}
	// Reports and receipts.
	ra, rb := readReport(t, state, "camA"), readReport(t, state, "camB")
	if m := metas["CAM123_20261201110000_0004.MP4"]; m["officer"] != "" || m["device"] != "CAM123" {
		t.Errorf("metadata the server refused was sent again: %v", m)
	}
	if f := reportFile(t, readReport(t, state, "camB"), "CAM123_20261201110000_0004.MP4"); f.State != StateUploaded || !strings.Contains(f.Reason, "badge-99") {
		t.Errorf("report of a file sent without its refused metadata: %+v", f)
	}
	if ra.Counts[StateUploaded] != 2 || rb.Counts[StateUploaded] != 4 || len(ra.Files) != 2 || len(rb.Files) != 4 {
		t.Fatalf("reports: %+v / %+v", ra, rb)
	}
	pub := ts.priv.Public().(ed25519.PublicKey)
	for _, f := range append(ra.Files, rb.Files...) {
		body, err1 := os.ReadFile(f.Receipt)
		sig, err2 := os.ReadFile(f.Receipt + ".sig")
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: receipt files: %v %v", f.Path, err1, err2)
		}
		r, err := evidence.VerifyReceipt(pub, body, sig)
		if err != nil || r.RecordingID != f.RecordingID || r.SHA256 != f.SHA256 || !f.Verified || f.Released {
			t.Errorf("%s: receipt %+v, %v; report %+v", f.Path, r, err, f)
		}
		if !strings.HasPrefix(f.Receipt, filepath.Join(state, "receipts")) {
			t.Errorf("receipt kept at %s", f.Receipt)
		}
	}
	for _, n := range []string{"clip1.mp4", "memo.wav"} {
		if _, err := os.Stat(filepath.Join(camA, strings.Replace(n, "clip1", "DCIM/clip1", 1))); err != nil {
			t.Errorf("%s deleted without --release: %v", n, err)
		}
	}
	if !strings.Contains(out.String(), "done: files 6/6") {
		t.Errorf("no final summary in:\n%s", out)
	}
	// A second pass has nothing to do.
	creates, patches := ts.creates.Load(), ts.patches.Load()
	if err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{camA, camB}}); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if ts.creates.Load() != creates || ts.patches.Load() != patches {
		t.Errorf("second pass: %d creations, %d PATCHes more", ts.creates.Load()-creates, ts.patches.Load()-patches)
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// --release deletes the camera's copy of each file whose receipt verified
// and tells the server; a receipt whose signature does not verify leaves
// the file on the camera, reported failed.
func TestReleaseOnlyVerified(t *testing.T) {
	ts := newTestServer(t)
	root, state := t.TempDir(), t.TempDir()
	good, bad := filepath.Join(root, "good"), filepath.Join(root, "bad")
	media(t, good, "CAM1_20261201083000_0001.MP4", 100_000, 1)
	media(t, good, "CAM1_20261201083500_0002.MP4", 90_000, 2)
	writeText(t, filepath.Join(good, "CAM1_20261201083000_0001.MP4.json"), `{"officer":"o-1"}`)
	if err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{good}, Release: true}); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	rep := readReport(t, state, "good")
	for _, f := range rep.Files {
		if !f.Released || !f.Verified || f.State != StateUploaded {
			t.Errorf("%+v: want uploaded, verified, released", f)
		}
		if _, err := os.Stat(filepath.Join(good, f.Path)); !os.IsNotExist(err) {
			t.Errorf("%s still on the camera (%v)", f.Path, err)
		}
	}
	if _, err := os.Stat(filepath.Join(good, "CAM1_20261201083000_0001.MP4.json")); err != nil {
		t.Errorf("the sidecar was deleted: %v", err)
	}
	ts.mu.Lock()
	nReleased := len(ts.released)
	ts.mu.Unlock()
	if nReleased != 2 {
		t.Errorf("the server was told of %d releases, want 2", nReleased)
	}

	ts.badSignature.Store(true)
	b := media(t, bad, "CAM2_20261201083000_0001.MP4", 80_000, 3)
	err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{bad}, Release: true})
	if err == nil {
		t.Fatalf("a receipt with a bad signature: the run succeeded\n%s", out)
	}
	if got, _ := os.ReadFile(filepath.Join(bad, "CAM2_20261201083000_0001.MP4")); !bytes.Equal(got, b) {
		t.Fatal("the file whose receipt did not verify was deleted")
	}
	f := reportFile(t, readReport(t, state, "bad"), "CAM2_20261201083000_0001.MP4")
	if f.State != StateFailed || f.Released || f.Verified || !strings.Contains(f.Reason, "signature") {
		t.Errorf("report: %+v", f)
	}
	// Next pass (the server still signs badly): still not released, and
	// the upload is not sent again.
	patches := ts.patches.Load()
	if err, _ := runAgent(t, ts, Options{StateDir: state, Dirs: []string{bad}, Release: true}); err == nil {
		t.Error("second pass with a bad receipt succeeded")
	}
	if _, err := os.Stat(filepath.Join(bad, "CAM2_20261201083000_0001.MP4")); err != nil {
		t.Errorf("deleted on the second pass: %v", err)
	}
	if ts.patches.Load() != patches {
		t.Errorf("%d PATCHes again for a stored file", ts.patches.Load()-patches)
	}
}

// A file the server already stored (GET /api/v1/receipts answers 200) is
// not sent; its receipt is verified and kept, and --release may delete it.
func TestSkipStored(t *testing.T) {
	ts := newTestServer(t)
	cam, state := t.TempDir(), t.TempDir()
	b := media(t, cam, "CAM9_20261201083000_0001.MP4", 200_000, 1)
	rb := ts.preload("CAM9", "CAM9_20261201083000_0001.MP4", b)
	if err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{cam}, Release: true}); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if ts.creates.Load() != 0 || ts.patches.Load() != 0 {
		t.Errorf("%d creations, %d PATCHes for a stored file", ts.creates.Load(), ts.patches.Load())
	}
	f := reportFile(t, readReport(t, state, filepath.Base(cam)), "CAM9_20261201083000_0001.MP4")
	if f.State != StateDuplicate || f.RecordingID != rb.RecordingID || !f.Verified || !f.Released {
		t.Errorf("report: %+v", f)
	}
	if _, err := os.Stat(f.Receipt); err != nil {
		t.Errorf("receipt: %v", err)
	}
}

// When the finishing PATCH's answer is lost, the receipt is fetched from
// GET /api/v1/uploads/{id}/receipt.
func TestReceiptFetchedWhenAnswerLost(t *testing.T) {
	ts := newTestServer(t)
	ts.dropReceipt.Store(true)
	cam, state := t.TempDir(), t.TempDir()
	media(t, cam, "CAM5_20261201083000_0001.MP4", 100_000, 1)
	if err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{cam}}); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	f := reportFile(t, readReport(t, state, filepath.Base(cam)), "CAM5_20261201083000_0001.MP4")
	if f.State != StateUploaded || !f.Verified || f.RecordingID == "" {
		t.Errorf("report: %+v", f)
	}
}

// A file the server refuses whole (its bytes did not hash to the declared
// SHA-256) is reported refused with both hashes, its partial upload
// deleted, and sent again on the next pass.
func TestRefusedFileSentAgain(t *testing.T) {
	ts := newTestServer(t)
	ts.refuseFiles.Store(1)
	cam, state := t.TempDir(), t.TempDir()
	b := media(t, cam, "CAM3_20261201083000_0001.MP4", 150_000, 1)
	err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{cam}, Release: true})
	if err == nil || !strings.Contains(err.Error(), "1 were refused") {
		t.Fatalf("run: %v\n%s", err, out)
	}
	f := reportFile(t, readReport(t, state, filepath.Base(cam)), "CAM3_20261201083000_0001.MP4")
	if f.State != StateRefused || !strings.Contains(f.Reason, "declared sha256 "+f.SHA256) || f.Released {
		t.Errorf("report: %+v", f)
	}
	if ts.deletes.Load() != 1 {
		t.Errorf("%d DELETEs of the refused upload, want 1", ts.deletes.Load())
	}
	if _, err := os.Stat(filepath.Join(cam, f.Path)); err != nil {
		t.Fatalf("a refused file was deleted: %v", err)
	}
	if err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{cam}}); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if got := ts.storedFor("CAM3", b); !bytes.Equal(got, b) {
		t.Error("not stored on the second pass")
	}
}

// An upload's Location that names another host (the server saw the Host
// a proxy or tunnel gave it) is followed on the agent's own --server: every
// request reaches the server the agent was pointed at, and the state keeps
// the upload's URL on it.
func TestLocationOfAnotherHost(t *testing.T) {
	ts := newTestServer(t)
	elsewhere := "127.0.0.1:1" // nothing listens there
	ts.foreignHost.Store(&elsewhere)
	cam, state := t.TempDir(), t.TempDir()
	const name = "CAM4_20261201083000_0001.MP4"
	b := media(t, cam, name, 300_000, 4)
	if err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{cam}}); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if got := ts.storedFor("CAM4", b); !bytes.Equal(got, b) {
		t.Fatal("not stored")
	}
	if ts.patches.Load() < 5 || ts.otherHost.Load() != 0 {
		t.Errorf("%d PATCHes reached the server, %d requests with another Host", ts.patches.Load(), ts.otherHost.Load())
	}
	cs, err := loadCameraState(filepath.Join(state, "state", filepath.Base(cam)+".json"), filepath.Base(cam), cam)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := cs.get(name); !strings.HasPrefix(e.UploadURL, ts.URL+"/api/v1/uploads/") {
		t.Errorf("upload URL kept as %q, want one on %s", e.UploadURL, ts.URL)
	}
}

// The server's keys cannot be fetched for a while (500) when a receipt
// comes: the check waits and is done again, and the file, which the
// server stored, is not reported failed.
func TestKeysUnavailableForAWhile(t *testing.T) {
	ts := newTestServer(t)
	ts.keysFail.Store(2)
	cam, state := t.TempDir(), t.TempDir()
	const name = "CAM6_20261201083000_0001.MP4"
	media(t, cam, name, 100_000, 6)
	if err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{cam}, Release: true}); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	f := reportFile(t, readReport(t, state, filepath.Base(cam)), name)
	if f.State != StateUploaded || !f.Verified || !f.Released || ts.keysFail.Load() >= 0 {
		t.Errorf("report: %+v (key failures left: %d)", f, ts.keysFail.Load())
	}
}

// --rate bounds all uploads together (coarse: over a run of 2 s or more).
func TestRateLimit(t *testing.T) {
	ts := newTestServer(t)
	root, state := t.TempDir(), t.TempDir()
	total := 0
	for i, cam := range []string{"c1", "c2", "c3"} {
		total += len(media(t, filepath.Join(root, cam), "CAM"+cam+"_20261201083000_0001.MP4", 400_000, uint64(i)))
	}
	const limit = 500_000
	start := time.Now()
	err, out := runAgent(t, ts, Options{StateDir: state, Dirs: []string{filepath.Join(root, "c1"), filepath.Join(root, "c2"), filepath.Join(root, "c3")},
		Rate: limit, Parallel: 3})
	elapsed := time.Since(start) - 20*time.Millisecond // the settle pause
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	got := float64(ts.received.Load()) / elapsed.Seconds()
	t.Logf("%d bytes in %v: %.0f B/s (limit %d)", ts.received.Load(), elapsed, got, limit)
	if elapsed < 2*time.Second || got > limit*1.2 {
		t.Errorf("%d bytes in %v: %.0f B/s, limit %d", ts.received.Load(), elapsed, got, limit)
	}
	if ts.received.Load() < int64(total) {
		t.Errorf("received %d of %d bytes", ts.received.Load(), total)
	}
}

func TestFileNames(t *testing.T) {
	for _, c := range []struct {
		name, device, start string
		important           bool
	}{
		{"CAM123_20261201083000_0001.MP4", "CAM123", "2026-12-01T08:30:00Z", false},
		{"!CAM123_20261201083000_0001.MP4", "CAM123", "2026-12-01T08:30:00Z", true},
		{"DSJ-A9_20250102030405_IMP.mov", "DSJ-A9", "2025-01-02T03:04:05Z", true},
		{"clip_IMPORTANT.mp4", "", "", false},
		{"IMG_0001.JPG", "", "", false},
		{"CAM1_2026120108300.MP4", "", "", false}, // 13 digits
	} {
		dev, start := fromName(c.name, time.UTC)
		s := ""
		if !start.IsZero() {
			s = start.Format(time.RFC3339)
		}
		if dev != c.device || s != c.start || importantName(c.name) != c.important {
			t.Errorf("%s: device %q start %q important %v", c.name, dev, s, importantName(c.name))
		}
	}
}

func TestSidecars(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		file, body, device, officer string
		ok                          bool
	}{
		{"a.json", `{"DeviceID":"D1","PoliceID":"p9","StartTime":"20261201083000"}`, "D1", "p9", true},
		{"b.xml", `<Record><Device serial="D2"/><Officer>o2</Officer><Important>1</Important></Record>`, "D2", "o2", true},
		{"c.json", `[1,2,3]`, "", "", false},
		{"d.xml", "\x00\x01garbage", "", "", false},
		{"e.json", ``, "", "", false},
	} {
		p := filepath.Join(dir, c.file)
		writeText(t, p, c.body)
		s, ok := readSidecar(p, time.UTC)
		if ok != c.ok || s.Device != c.device || s.Officer != c.officer {
			t.Errorf("%s: %+v %v", c.file, s, ok)
		}
	}
	if s, _ := readSidecar(filepath.Join(dir, "b.xml"), time.UTC); s.Important == nil || !*s.Important {
		t.Errorf("b.xml important: %+v", s)
	}
	if _, ok := readSidecar(filepath.Join(dir, "missing.json"), time.UTC); ok {
		t.Error("a missing sidecar read")
	}
}

// Watching (no --once): a file that appears while the agent runs is
// uploaded at a later scan; cancelling Run returns once everything it
// started has stopped.
func TestWatch(t *testing.T) {
	ts := newTestServer(t)
	cam, state := t.TempDir(), t.TempDir()
	media(t, cam, "CAM4_20261201083000_0001.MP4", 50_000, 1)
	var out bytes.Buffer
	a, err := New(Options{Server: ts.URL, Token: ts.Token, StateDir: state, Dirs: []string{cam}, Every: 50 * time.Millisecond,
		Settle: 20 * time.Millisecond, Progress: &out, Chunk: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	late := media(t, cam, "CAM4_20261201084000_0002.MP4", 70_000, 2)
	// Done when the server stored the late file and the agent has its
	// receipt (the server may store a file a moment before the agent reads
	// the answer; stopped then, the agent would rightly still count it as
	// pending and upload it again on its next run).
	reportPath := filepath.Join(state, "reports", filepath.Base(cam)+".json")
	deadline := time.Now().Add(30 * time.Second)
	for ts.storedFor("CAM4", late) == nil || uploadedIn(reportPath) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the file that appeared later was not uploaded:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if r := readReport(t, state, filepath.Base(cam)); r.Counts[StateUploaded] != 2 {
		t.Errorf("report: %+v", r)
	}
}
