package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/seal"
	"github.com/bodycam/bodycam/storage"
)

// Store is what ingest needs from the object store.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error)
	Stat(ctx context.Context, key string) (storage.Info, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// filePutter is a Store that can take a file whole (the directory store
// links it instead of copying its bytes); see dir.Store.PutFile. The caller
// must never write to the file again.
type filePutter interface {
	PutFile(ctx context.Context, key string, f *os.File, size int64, o storage.PutOptions) (storage.Info, error)
}

// Catalog is what ingest needs from the system of record.
type Catalog interface {
	Device(ctx context.Context, id string) (evidence.Device, error)
	CreateRecording(ctx context.Context, r evidence.Recording) error
	Recording(ctx context.Context, id string) (evidence.Recording, error)
	AppendSegment(ctx context.Context, s evidence.Segment) (evidence.Segment, error)
	Segments(ctx context.Context, recordingID string) ([]evidence.Segment, error)
	AddGap(ctx context.Context, g evidence.Gap) error
	Gaps(ctx context.Context, recordingID string) ([]evidence.Gap, error)
	FinishRecording(ctx context.Context, id string, state evidence.RecordingState, endedAt time.Time, reason string) error
	SetManifest(ctx context.Context, id, key string) error
}

// Signer signs manifests.
type Signer interface {
	ID() string
	Sign(msg []byte) (keyID string, sig []byte)
}

// Custody records that a recording was stored (the custody ledger).
type Custody interface {
	Record(ctx context.Context, e evidence.CustodyEvent) error
}

// Holds keeps footage linked to a case on legal hold as it is stored, and
// links recordings published with ?case= from their first byte (or, when
// that could not be decided then, before the manifest is signed).
type Holds interface {
	HoldIfLinked(ctx context.Context, recordingID, key string) error
	LinkFromStart(ctx context.Context, r evidence.Recording) error
	EnsureLinked(ctx context.Context, r evidence.Recording) error
}

// Publisher receives ingest's events.
type Publisher interface {
	Publish(events.Event)
}

// ObjectKey names a recording's objects: <device>/<recording>/<name>.
func ObjectKey(device, recording, name string) string { return device + "/" + recording + "/" + name }

// uploader moves closed segments from the spool to the object store and the
// catalog, per device in order (the chain is per device), with retries and
// back-off, and finishes recordings with their signed manifests.
type uploader struct {
	// superseded ends the live session of a recording the catalog refused
	// for a stale fence, if this node has it.
	superseded func(device, rec string)
	spool      *Spool
	store      Store
	cat        Catalog
	signer     Signer
	events     Publisher
	custody    Custody
	holds      Holds
	log        *slog.Logger
	m          *metrics
	workers    int

	notify chan struct{}
	sem    chan struct{}  // upload slots
	wg     sync.WaitGroup // device goroutines
	mu     sync.Mutex
	phase  map[string]phase // what each slot holder is doing, for the log of a long wait
	busy   map[string]bool
	dirty  map[string]bool // a segment closed while the device was busy
	kicked map[string]bool // devices with work since the last pass
	retry  map[string]retryState

	backlogSegs, backlogBytes atomic.Int64 // as last measured

	// cataloged holds the recordings in the spool the catalog is known to
	// have (a recording is never removed from it while its media is in the
	// spool): each segment's pass asks the catalog only once a recording.
	cataloged sync.Map // recording id -> struct{}
}

// phase is what a device's upload goroutine is doing, and since when.
type phase struct {
	what  string
	since time.Time
}

// setPhase notes what device's goroutine does now.
func (u *uploader) setPhase(device, what string) {
	u.mu.Lock()
	if u.phase == nil {
		u.phase = map[string]phase{}
	}
	if what == "" {
		delete(u.phase, device)
	} else {
		u.phase[device] = phase{what, time.Now()}
	}
	u.mu.Unlock()
}

// holders describes the slot holders, for the log of a long wait.
func (u *uploader) holders() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for d, p := range u.phase {
		out = append(out, fmt.Sprintf("%s:%s:%dms", d, p.what, time.Since(p.since).Milliseconds()))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

type retryState struct {
	next     time.Time
	failures int
}

// kickDevice says a segment of device just closed. If the device's upload
// goroutine is running, it goes round again when done instead of leaving
// the segment for a later pass.
func (u *uploader) kickDevice(device string) {
	u.mu.Lock()
	busy := u.busy[device]
	if busy {
		u.dirty[device] = true
	} else {
		u.kicked[device] = true
	}
	u.mu.Unlock()
	if !busy {
		u.kick()
	}
}

func (u *uploader) kick() {
	select {
	case u.notify <- struct{}{}:
	default:
	}
}

// Run uploads until ctx ends. On the way out it makes one last pass so that
// what was closed during shutdown reaches the store if it can.
//
// A segment's close kicks its device: the device's goroutine starts at once
// and lists only its own recordings. A full pass (every second, at start and
// at the end) scans the whole spool for recovered recordings and retries
// after back-off; it runs beside the kicks, never in front of them: on a
// disk busy with fsyncs a directory scan can take long, and closes must not
// wait for it.
func (u *uploader) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	u.sem = make(chan struct{}, u.workers)
	u.mu.Lock()
	if u.kicked == nil {
		u.kicked = map[string]bool{}
	}
	u.mu.Unlock()
	var full sync.Mutex // one full pass at a time
	fullPass := func(ctx context.Context) {
		if !full.TryLock() {
			return // the previous one is still scanning
		}
		defer full.Unlock()
		work, err := u.spool.pending()
		if err != nil {
			u.log.Error("spool unreadable", "err", err)
			u.m.errors.WithLabelValues("spool").Inc()
			return
		}
		u.measureBacklog(work)
		devices := make([]string, 0, len(work))
		for d, recs := range work {
			// Devices with nothing to upload (a live recording between
			// segment closes) are skipped: idle rounds would queue ahead
			// of the devices that have work.
			if u.spool.hasWork(d, recs) {
				devices = append(devices, d)
			}
		}
		sort.Strings(devices)
		for _, d := range devices {
			u.dispatch(ctx, d, false)
		}
	}
	kicked := func(ctx context.Context) {
		u.mu.Lock()
		devices := u.kicked
		u.kicked = map[string]bool{}
		u.mu.Unlock()
		for d := range devices {
			u.dispatch(ctx, d, true)
		}
	}
	var passes sync.WaitGroup
	background := func(ctx context.Context) {
		passes.Add(1)
		go func() { defer passes.Done(); fullPass(ctx) }()
	}
	background(ctx) // what a previous run left, recovered or not yet uploaded
	for {
		select {
		case <-ctx.Done():
			passes.Wait()
			u.wg.Wait()
			final, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			u.mu.Lock()
			u.retry = map[string]retryState{}
			u.mu.Unlock()
			kicked(final)
			fullPass(final)
			u.wg.Wait()
			cancel()
			return nil
		case <-tick.C:
			background(ctx)
		case <-u.notify:
			kicked(ctx)
		}
	}
}

// dispatch starts device's upload goroutine unless it is running (then a
// kick makes it go round again) or backing off after a failure. The
// goroutine lists the device's recordings itself, so dispatching never
// touches the disk.
func (u *uploader) dispatch(ctx context.Context, device string, kick bool) {
	u.mu.Lock()
	r := u.retry[device]
	if u.busy[device] {
		// Its goroutine may have looked before this work came: make it go
		// round again rather than drop the kick.
		if kick {
			u.dirty[device] = true
		}
		u.mu.Unlock()
		return
	}
	if time.Now().Before(r.next) {
		u.mu.Unlock()
		return
	}
	u.busy[device] = true
	u.mu.Unlock()
	u.wg.Add(1)
	queued := time.Now()
	go func() {
		u.sem <- struct{}{} // bounds the uploads in flight
		held := time.Now()
		defer func() {
			u.setPhase(device, "")
			u.m.stepTime.WithLabelValues("hold").Observe(time.Since(held).Seconds())
			<-u.sem
			u.wg.Done()
		}()
		if wait := held.Sub(queued); wait > 300*time.Millisecond {
			u.log.Debug("waited for an upload slot", "device", device, "wait", wait, "holders", u.holders())
		}
		u.setPhase(device, "list")
		u.m.stepTime.WithLabelValues("slot").Observe(time.Since(queued).Seconds())
		var err error
		for {
			var recs []string
			if recs, err = u.spool.pendingDevice(device); err == nil {
				err = u.device(ctx, device, recs)
			}
			if err != nil {
				break
			}
			// Go round again if a segment closed meanwhile; the check and
			// the release happen under one lock, so no kick can fall
			// between them.
			u.mu.Lock()
			if !u.dirty[device] {
				break // still holding the lock
			}
			delete(u.dirty, device)
			u.mu.Unlock()
		}
		if err != nil {
			u.mu.Lock()
		}
		defer u.mu.Unlock()
		delete(u.busy, device)
		delete(u.dirty, device)
		if err == nil {
			if r := u.retry[device]; r.failures > 0 {
				u.log.Info("uploads resumed; the spooled backlog is draining", "device", device, "failed_attempts", r.failures)
			}
			delete(u.retry, device)
			return
		}
		r := u.retry[device]
		r.failures++
		backoff := min(time.Duration(1<<min(r.failures, 7))*100*time.Millisecond, 30*time.Second)
		r.next = time.Now().Add(backoff)
		u.retry[device] = r
		if ctx.Err() == nil && (r.failures == 1 || r.failures%10 == 0) {
			u.log.Warn("upload failed; media stays in the spool and will be retried",
				"device", device, "attempt", r.failures, "retry_in", backoff, "err", err)
		}
	}()
}

func (u *uploader) measureBacklog(work map[string][]string) {
	var n, size int64
	for device, recs := range work {
		for _, rec := range recs {
			files, _ := filepath.Glob(filepath.Join(u.spool.recDir(device, rec), "*.m4s"))
			for _, f := range files {
				if st, err := os.Stat(f); err == nil {
					n++
					size += st.Size()
				}
			}
		}
	}
	u.m.backlogSegs.Set(float64(n))
	u.m.backlogBytes.Set(float64(size))
	u.backlogSegs.Store(n)
	u.backlogBytes.Store(size)
}

// device works through one device's recordings, oldest first, stopping at
// one that is still being recorded.
func (u *uploader) device(ctx context.Context, device string, recs []string) error {
	for _, rec := range recs {
		done, err := u.recording(ctx, device, rec)
		if err != nil {
			kind := "upload"
			if errors.Is(err, errCatalog) {
				kind = "catalog"
			}
			u.m.errors.WithLabelValues(kind).Inc()
			return fmt.Errorf("recording %s: %w", rec, err)
		}
		if !done {
			return nil
		}
	}
	return nil
}

// errCatalog marks the catalog's failures (counted apart from the store's);
// the same sentinel as seal's.
var errCatalog = seal.ErrCatalog

func (u *uploader) recording(ctx context.Context, device, rec string) (bool, error) {
	t0 := time.Now()
	u.setPhase(device, "scan")
	dir := u.spool.recDir(device, rec)
	if !u.spool.held(dir) { // first: a writer lets go only once its end is written
		if _, err := os.Stat(filepath.Join(dir, "end.json")); errors.Is(err, fs.ErrNotExist) {
			// Its writer has gone without ending it (the spool failed under
			// it, the end too): end it now as a restart would, or the
			// device's later recordings wait behind it.
			if err := recoverRecording(dir, time.Now(), abandoned); err != nil {
				u.m.errors.WithLabelValues("spool").Inc()
				return false, fmt.Errorf("spool: recover %s: %w", rec, err)
			}
			if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
				u.log.Warn("removed what a recording whose start failed left in the spool (no media of it was durable)",
					"device", device, "recording", rec)
				return true, nil
			}
			u.m.gaps.WithLabelValues(string(evidence.GapInterrupted)).Inc()
			u.log.Warn("recording left without an end by a failed spool write; ended from the spool as interrupted",
				"device", device, "recording", rec)
		}
	}
	var meta recordingMeta
	if err := readJSON(filepath.Join(dir, "recording.json"), &meta); err != nil {
		return false, nil // being created
	}
	r := evidence.Recording{ID: meta.ID, DeviceID: meta.DeviceID, OfficerID: meta.OfficerID, CaseID: meta.CaseID,
		State: evidence.StateLive, StartedAt: meta.StartedAt, Codecs: meta.Codecs, RemoteAddr: meta.RemoteAddr,
		NodeID: meta.NodeID, Fence: meta.Fence}
	if _, ok := u.cataloged.Load(rec); ok {
		// Known: no query a segment.
	} else if _, err := u.cat.Recording(ctx, rec); errors.Is(err, catalog.ErrNotFound) {
		// The catalog was down when the recording started: create it now,
		// and link it to the case it was published for, as start would have.
		err := u.cat.CreateRecording(ctx, r)
		if err != nil && !errors.Is(err, catalog.ErrExists) {
			return false, fmt.Errorf("%w: %v", errCatalog, err)
		}
		if err == nil && r.CaseID != "" && u.holds != nil {
			if err := u.holds.LinkFromStart(ctx, r); err != nil {
				u.log.Warn("recording not linked to the case it was published for; recording it in no case", "recording", r.ID, "case", r.CaseID, "err", err)
			}
		}
	} else if err != nil {
		return false, fmt.Errorf("%w: %v", errCatalog, err)
	}
	u.cataloged.Store(rec, struct{}{})
	if _, err := os.Stat(filepath.Join(dir, "init.mp4")); err == nil {
		init := segmentMeta{Seq: 0, Size: meta.InitSize, SHA256: meta.InitSHA256, StartedAt: meta.StartedAt, Keyframe: true}
		asFound := func(found segmentMeta) error {
			meta.InitSHA256, meta.InitSize = found.SHA256, found.Size
			return writeJSONSync(filepath.Join(dir, "recording.json"), meta)
		}
		if err := u.put(ctx, r, evidence.KindInit, "init.mp4", filepath.Join(dir, "init.mp4"), init, asFound); errors.Is(err, catalog.ErrStaleFence) {
			return u.supersededRest(ctx, r, dir, init)
		} else if err != nil {
			return false, err
		}
		os.Remove(filepath.Join(dir, "init.mp4"))
	}
	if _, err := os.Stat(filepath.Join(dir, "end.json")); err == nil {
		// The writer has ended the recording, so a segment still open is
		// one it could not close (a write failed at its open): finish it
		// as recovery would, or the device's uploads wait behind it for
		// ever. The writer wrote end.json after closing its file.
		n, err := salvageOpenSegments(dir, meta, time.Now())
		if err != nil {
			u.m.errors.WithLabelValues("spool").Inc()
			return false, err
		}
		if n > 0 {
			u.log.Warn("recording ended by a failed spool write with a segment left open; salvaged (its complete fragments are kept, the rest is in the recording's gap)",
				"device", device, "recording", rec, "segments", n)
		}
	}
	closed, err := closedSegments(dir)
	if err != nil {
		return false, err
	}
	u.m.stepTime.WithLabelValues("scan").Observe(time.Since(t0).Seconds())
	for _, m := range closed {
		wait := time.Since(m.ClosedAt)
		u.m.stepTime.WithLabelValues("wait").Observe(wait.Seconds())
		if wait > 300*time.Millisecond {
			u.log.Debug("segment waited for upload", "device", device, "recording", rec, "seq", m.Seq, "wait", wait)
		}
		name := segName(m.Seq)
		asFound := func(found segmentMeta) error { return writeJSONSync(filepath.Join(dir, name+".json"), found) }
		if err := u.put(ctx, r, evidence.KindMedia, name+".m4s", filepath.Join(dir, name+".m4s"), m, asFound); errors.Is(err, catalog.ErrStaleFence) {
			return u.supersededRest(ctx, r, dir, m)
		} else if err != nil {
			return false, err
		}
		u.m.durable.Observe(time.Since(m.ClosedAt).Seconds())
		os.Remove(filepath.Join(dir, name+".m4s"))
		os.Remove(filepath.Join(dir, name+".json"))
	}
	var end endMeta
	if err := readJSON(filepath.Join(dir, "end.json"), &end); err != nil {
		return false, nil // still recording
	}
	if open, _ := filepath.Glob(filepath.Join(dir, "*.m4s.open")); len(open) > 0 {
		return false, nil // end.json came after the look above: the kick with it brings the next round
	}
	if left, _ := closedSegments(dir); len(left) > 0 {
		return false, nil
	}
	if err := u.finish(ctx, r, end, dir); err != nil {
		return false, err
	}
	u.cataloged.Delete(rec)
	return true, os.RemoveAll(dir)
}

// supersededDir is where the spool keeps what the catalog refused for a
// stale fence, by device and recording: not a device id, so never scanned
// for upload, and never deleted by bodycam.
const supersededDir = "_superseded"

// supersededRest handles a recording whose media from `from` on the
// catalog refused: another node was granted the device's lease before it
// was recorded (two nodes took the device while coordination was down, or
// this node lost its lease). The record keeps the other node's timeline;
// what this node recorded after the takeover is kept in the spool's
// _superseded directory, never deleted, and the recording ends there as
// interrupted with a gap saying so. Its session, if still live, is ended
// first.
func (u *uploader) supersededRest(ctx context.Context, r evidence.Recording, dir string, from segmentMeta) (bool, error) {
	u.m.errors.WithLabelValues("superseded").Inc()
	if u.spool.held(dir) {
		u.log.Error("the catalog refused a segment: another node was granted the device after this recording's lease; ending its session",
			"device", r.DeviceID, "recording", r.ID, "seq", from.Seq, "fence", r.Fence)
		if u.superseded != nil {
			u.superseded(r.DeviceID, r.ID)
		}
		return false, nil // its end kicks the next round
	}
	keep := filepath.Join(u.spool.root, supersededDir, r.DeviceID, r.ID)
	if err := os.MkdirAll(keep, 0o700); err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	moved := 0
	for _, e := range entries {
		n := e.Name()
		if n == "recording.json" || n == "end.json" || n == "gaps.jsonl" || e.IsDir() {
			continue
		}
		if err := os.Rename(filepath.Join(dir, n), filepath.Join(keep, n)); err != nil {
			return false, fmt.Errorf("spool: %w", err)
		}
		moved++
	}
	var end endMeta
	if err := readJSON(filepath.Join(dir, "end.json"), &end); err != nil {
		end = endMeta{EndedAt: time.Now().UTC()}
	}
	detail := fmt.Sprintf("superseded: another node was granted the device's lease after this recording's (fence %d); "+
		"what was recorded here from then on is kept apart in the spool (%s), not in the record", r.Fence, keep)
	g := evidence.Gap{RecordingID: r.ID, Kind: evidence.GapInterrupted, Start: from.StartedAt, End: end.EndedAt, Detail: detail}
	if g.End.Before(g.Start) {
		g.End = g.Start
	}
	if err := appendGapOnce(filepath.Join(dir, "gaps.jsonl"), g); err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	end.State, end.Reason = evidence.StateInterrupted, detail
	if err := writeJSONSync(filepath.Join(dir, "end.json"), end); err != nil {
		return false, fmt.Errorf("spool: %w", err)
	}
	u.m.gaps.WithLabelValues(string(evidence.GapInterrupted)).Inc()
	u.log.Error("recording superseded: the catalog keeps another node's timeline of the device; the rest of this one is kept apart in the spool",
		"device", r.DeviceID, "recording", r.ID, "from_seq", from.Seq, "files", moved, "kept_in", keep)
	return u.recording(ctx, r.DeviceID, r.ID)
}

// damaged handles a spooled object the store refused because its bytes do
// not match the hash or size taken when it was written. If they still do,
// the refusal was the transfer's and the upload is retried. If the file has
// changed (a disk fault, or someone on the host), waiting will not bring the
// bytes back, and holding the object back would hold the device's chain and
// every later recording with it: the object is stored as found, and a gap
// of the kind "damaged" with both hashes says so in the record. It returns
// the object's metadata as found.
func (u *uploader) damaged(r evidence.Recording, kind evidence.SegmentKind, path string, m segmentMeta, refused error) (segmentMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return m, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return m, fmt.Errorf("spool: %w", err)
	}
	found := m
	found.SHA256, found.Size = hex.EncodeToString(h.Sum(nil)), size
	if found.SHA256 == m.SHA256 && size == m.Size {
		return m, refused
	}
	what := fmt.Sprintf("segment %d", m.Seq)
	if kind == evidence.KindInit {
		what = "the init segment (codec setup, needed to play the whole recording)"
	}
	g := evidence.Gap{RecordingID: r.ID, Kind: evidence.GapDamaged, Start: m.StartedAt,
		End: m.StartedAt.Add(time.Duration(m.DurationUS) * time.Microsecond),
		Detail: fmt.Sprintf("%s changed in the server's spool after it was written (SHA-256 %s, %d bytes when written; %s, %d bytes when stored); it is stored as found",
			what, m.SHA256, m.Size, found.SHA256, size)}
	if err := appendGapOnce(filepath.Join(filepath.Dir(path), "gaps.jsonl"), g); err != nil {
		return m, err
	}
	u.m.errors.WithLabelValues("spool_damaged").Inc()
	u.m.gaps.WithLabelValues(string(g.Kind)).Inc()
	u.log.Error("spooled object changed after it was written; storing it as found, with a gap in the record",
		"device", r.DeviceID, "recording", r.ID, "seq", m.Seq, "written_sha256", m.SHA256, "found_sha256", found.SHA256,
		"written_size", m.Size, "found_size", size, "refused", refused)
	return found, nil
}

// closedSegments lists the closed, not yet uploaded segments of a recording
// directory by sequence number.
func closedSegments(dir string) ([]segmentMeta, error) {
	files, err := filepath.Glob(filepath.Join(dir, "[0-9]*.json"))
	if err != nil {
		return nil, err
	}
	var out []segmentMeta
	for _, f := range files {
		if strings.HasSuffix(f, ".open.json") {
			continue
		}
		var m segmentMeta
		if err := readJSON(f, &m); err != nil {
			return nil, fmt.Errorf("spool: %s: %w", f, err)
		}
		if _, err := os.Stat(filepath.Join(dir, segName(m.Seq)+".m4s")); err != nil {
			continue // closing in progress
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// put stores one spooled object and appends it to the catalog and the chain.
// Both steps are idempotent, so a retry after a crash completes the work.
// If the spooled bytes no longer match the hash taken when they were
// written, they are stored as found (see damaged), with asFound keeping
// their new hash and size in the spool first; nil asFound leaves that to
// a later pass.
func (u *uploader) put(ctx context.Context, r evidence.Recording, kind evidence.SegmentKind, name, path string, m segmentMeta, asFound func(segmentMeta) error) error {
	key := ObjectKey(r.DeviceID, r.ID, name)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	want, _ := hex.DecodeString(m.SHA256)
	u.setPhase(r.DeviceID, "put")
	t0 := time.Now()
	opts := storage.PutOptions{SHA256: want, ContentType: "video/mp4"}
	if fs, ok := u.store.(filePutter); ok {
		// The spool never writes a closed segment again: the store may
		// take the file itself.
		_, err = fs.PutFile(ctx, key, f, m.Size, opts)
	} else {
		_, err = u.store.Put(ctx, key, f, m.Size, opts)
	}
	u.m.stepTime.WithLabelValues("put").Observe(time.Since(t0).Seconds())
	switch {
	case errors.Is(err, storage.ErrExists):
		// An earlier attempt stored it; it must be the same bytes.
		st, serr := u.store.Stat(ctx, key)
		if serr != nil {
			return serr
		}
		if st.SHA256 != m.SHA256 {
			u.log.Error("object key already holds other content; the spooled segment is kept", "key", key, "stored", st.SHA256, "spooled", m.SHA256)
			u.m.errors.WithLabelValues("conflict").Inc()
			return fmt.Errorf("%s exists with other content", key)
		}
	case asFound != nil && (errors.Is(err, storage.ErrHashMismatch) || errors.Is(err, storage.ErrSizeMismatch)):
		found, derr := u.damaged(r, kind, path, m, err)
		if derr != nil {
			return derr
		}
		if err := asFound(found); err != nil {
			return err
		}
		// Once: a file that changes again is left to the next pass.
		return u.put(ctx, r, kind, name, path, found, nil)
	case err != nil:
		return err
	}
	seg := evidence.Segment{RecordingID: r.ID, DeviceID: r.DeviceID, Seq: m.Seq, Kind: kind, Key: key, Size: m.Size,
		SHA256: m.SHA256, StartedAt: m.StartedAt, DeviceTime: m.DeviceTime,
		Duration: time.Duration(m.DurationUS) * time.Microsecond, Keyframe: m.Keyframe}
	u.setPhase(r.DeviceID, "catalog")
	t0 = time.Now()
	stored, err := u.cat.AppendSegment(ctx, seg)
	u.m.stepTime.WithLabelValues("catalog").Observe(time.Since(t0).Seconds())
	if errors.Is(err, catalog.ErrStaleFence) {
		return fmt.Errorf("%w: %w", errCatalog, err)
	}
	retried := errors.Is(err, catalog.ErrExists)
	if retried && stored.SHA256 != m.SHA256 {
		u.m.errors.WithLabelValues("conflict").Inc()
		return fmt.Errorf("%w: segment %s/%d recorded with another hash", errCatalog, r.ID, m.Seq)
	}
	if err != nil && !retried {
		return fmt.Errorf("%w: %v", errCatalog, err)
	}
	u.setPhase(r.DeviceID, "legal-hold")
	if u.holds != nil {
		// Footage linked to a case is held as it arrives. A failure is
		// retried with the segment, which stays in the spool until then.
		if err := u.holds.HoldIfLinked(ctx, r.ID, key); err != nil {
			u.m.errors.WithLabelValues("legal_hold").Inc()
			return fmt.Errorf("legal hold on %s: %w", key, err)
		}
	}
	if !retried {
		u.m.segments.Inc()
		u.events.Publish(events.Event{Kind: events.SegmentStored, At: time.Now(), Recording: r, Segment: stored})
	}
	return nil
}

// finish records gaps and the end, then writes the signed manifest.
func (u *uploader) finish(ctx context.Context, r evidence.Recording, end endMeta, dir string) error {
	u.setPhase(r.DeviceID, "finish")
	gaps, err := readGaps(filepath.Join(dir, "gaps.jsonl"))
	if err != nil {
		return err
	}
	for _, g := range gaps {
		g.RecordingID = r.ID
		if err := u.cat.AddGap(ctx, g); err != nil && !errors.Is(err, catalog.ErrExists) {
			return fmt.Errorf("%w: %v", errCatalog, err)
		}
	}
	err = u.cat.FinishRecording(ctx, r.ID, end.State, end.EndedAt, end.Reason)
	if err != nil && !errors.Is(err, catalog.ErrConflict) {
		return fmt.Errorf("%w: %v", errCatalog, err)
	}
	rec, err := u.cat.Recording(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("%w: %v", errCatalog, err)
	}
	if rec.ManifestKey == "" {
		if rec.CaseID != "" && u.holds != nil {
			// The signed manifest names the case only if the recording is
			// in it: the link asked for with ?case= is settled first.
			if err := u.holds.EnsureLinked(ctx, rec); err != nil {
				return fmt.Errorf("%w: link to case %s: %v", errCatalog, rec.CaseID, err)
			}
			if rec, err = u.cat.Recording(ctx, r.ID); err != nil {
				return fmt.Errorf("%w: %v", errCatalog, err)
			}
		}
		if err := u.writeManifest(ctx, rec); err != nil {
			return err
		}
		rec, _ = u.cat.Recording(ctx, r.ID)
		if u.custody != nil { // a failure is logged and counted by the ledger
			u.custody.Record(ctx, evidence.CustodyEvent{Actor: "device:" + rec.DeviceID, Role: "device", Remote: rec.RemoteAddr,
				Action: evidence.ActionIngest, TargetKind: "recording", TargetID: rec.ID,
				Detail: fmt.Sprintf("%s recording stored: %d segments, manifest %s; %s", rec.State, rec.SegmentCount, rec.ManifestKey, rec.EndReason)})
		}
	}
	u.events.Publish(events.Event{Kind: events.RecordingClosed, At: time.Now(), Recording: rec})
	u.log.Info("recording stored", "device", rec.DeviceID, "recording", rec.ID, "state", rec.State,
		"segments", rec.SegmentCount, "reason", rec.EndReason)
	return nil
}

// writeManifest writes rec's signed manifest (seal.WriteManifest: the
// same rules as an uploaded file's).
func (u *uploader) writeManifest(ctx context.Context, rec evidence.Recording) error {
	var holds seal.Holds
	if u.holds != nil { // not a typed nil
		holds = u.holds
	}
	return seal.WriteManifest(ctx, u.store, u.cat, u.signer, holds, rec, nil)
}
