package ingest

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/bodycam/bodycam/evidence"
)

// The spool is where received media becomes durable before it reaches the
// object store. One directory per recording, <spool>/<device>/<recording>/:
//
//	recording.json      who, when, codecs (written first)
//	init.mp4            the fMP4 init segment
//	000001.open.json    a segment being written: its start
//	000001.m4s.open     its fragments so far, fsync'd after each
//	000001.json         a closed segment: size, hash, times (then .open is renamed)
//	000001.m4s          a closed segment, waiting for upload
//	gaps.jsonl          explicit holes, one JSON object a line
//	end.json            how and when the recording ended
//
// The uploader removes each file once the store and the catalog have it, and
// the directory once the recording is finished everywhere.

type recordingMeta struct {
	ID         string    `json:"id"`
	DeviceID   string    `json:"device_id"`
	OfficerID  string    `json:"officer_id"`
	CaseID     string    `json:"case_id"`
	StartedAt  time.Time `json:"started_at"`
	Codecs     []string  `json:"codecs"`
	RemoteAddr string    `json:"remote_addr"`
	NodeID     string    `json:"node_id,omitempty"`
	Fence      int64     `json:"fence,omitempty"`
	InitSHA256 string    `json:"init_sha256"`
	InitSize   int64     `json:"init_size"`
	// The track segments are timed by, so recovery can measure a segment
	// cut short from its fragments alone.
	PrimaryTrack     int    `json:"primary_track"`
	PrimaryTimescale uint32 `json:"primary_timescale"`
}

type segmentMeta struct {
	Seq        int64     `json:"seq"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	StartedAt  time.Time `json:"started_at"`
	DeviceTime time.Time `json:"device_time,omitzero"`
	DurationUS int64     `json:"duration_us"`
	Keyframe   bool      `json:"keyframe"`
	ClosedAt   time.Time `json:"closed_at"`
	Recovered  bool      `json:"recovered,omitempty"`
}

type endMeta struct {
	State   evidence.RecordingState `json:"state"`
	EndedAt time.Time               `json:"ended_at"`
	Reason  string                  `json:"reason"`
}

// Spool is the local durable buffer.
type Spool struct {
	root    string
	minFree uint64

	mu      sync.Mutex
	writing map[string]bool // recording directories a writer holds
}

// OpenSpool opens (creating) the spool directory.
func OpenSpool(root string, minFree uint64) (*Spool, error) {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &Spool{root: root, minFree: minFree, writing: map[string]bool{}}, nil
}

// Free reports the bytes available to the spool.
func (sp *Spool) Free() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(sp.root, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// CheckSpace refuses new recordings when the disk is nearly full, so that
// media already accepted keeps the room it needs.
func (sp *Spool) CheckSpace() error {
	free, err := sp.Free()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if free < sp.minFree {
		return fmt.Errorf("spool disk nearly full: %d MiB free, %d MiB required for new recordings", free>>20, sp.minFree>>20)
	}
	return nil
}

func (sp *Spool) recDir(device, rec string) string { return filepath.Join(sp.root, device, rec) }

// recWriter writes one recording into the spool; it implements sink.
type recWriter struct {
	sp      *Spool
	dir     string
	dirf    *os.File // dir, held open for its fsyncs (several a segment); nil: opened for each
	meta    recordingMeta
	seg     *os.File
	hash    hash.Hash
	size    int64
	open    segmentMeta
	closed  func(segmentMeta, time.Duration) // told of each closed segment, with how long closing took
	lastEnd time.Time                        // receive time up to which media is durable
	// gaps wait here, one JSON line each, to be written and fsync'd with the
	// next fragment (or the end): as durable as the media around them, at
	// one fsync a fragment however lossy the stream.
	gaps []byte
}

func segName(seq int64) string { return fmt.Sprintf("%06d", seq) }

// create starts a recording in the spool with its init segment.
// The recording is held as being written until the writer releases it.
// A failed create releases it at once: what it left is the uploader's.
func (sp *Spool) create(meta recordingMeta, init []byte) (w *recWriter, err error) {
	dir := sp.recDir(meta.DeviceID, meta.ID)
	sp.hold(dir, true) // before the directory exists: the uploader never sees it unheld
	defer func() {
		if err != nil {
			sp.hold(dir, false)
		}
	}()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sum := sha256.Sum256(init)
	meta.InitSHA256, meta.InitSize = hex.EncodeToString(sum[:]), int64(len(init))
	if err := writeFileSync(filepath.Join(dir, "init.mp4"), init); err != nil {
		return nil, err
	}
	if err := injected("create", meta.DeviceID, 0); err != nil {
		return nil, err
	}
	if err := writeJSONSync(filepath.Join(dir, "recording.json"), meta); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	dirf, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &recWriter{sp: sp, dir: dir, dirf: dirf, meta: meta, lastEnd: meta.StartedAt}, nil
}

// hold marks a recording directory as held by its writer, or not.
func (sp *Spool) hold(dir string, on bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if on {
		sp.writing[dir] = true
	} else {
		delete(sp.writing, dir)
	}
}

// held reports whether a writer holds a recording directory. One that is not
// held and has no end.json was left by a writer that could not end it (the
// spool failed under it): the uploader recovers it as a restart would.
// Release comes after the end is written, so a directory seen unheld shows
// its end.json if it has one.
func (sp *Spool) held(dir string) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.writing[dir]
}

// release says the writer is done with the recording, ended or not.
func (w *recWriter) release() {
	w.closeFile()
	if w.dirf != nil {
		w.dirf.Close()
		w.dirf = nil
	}
	w.sp.hold(w.dir, false)
}

// syncDir makes the recording directory's entries durable.
func (w *recWriter) syncDir() error { return syncDirOf(w.dirf, w.dir) }

func (w *recWriter) path(name string) string { return filepath.Join(w.dir, name) }

func (w *recWriter) openSegment(seq int64, start, deviceTime time.Time, keyframe bool) error {
	w.open = segmentMeta{Seq: seq, StartedAt: start.UTC(), DeviceTime: deviceTime.UTC(), Keyframe: keyframe}
	if deviceTime.IsZero() {
		w.open.DeviceTime = time.Time{}
	}
	if err := writeJSONSyncIn(w.dirf, w.path(segName(seq)+".open.json"), w.open); err != nil {
		return err
	}
	var err error
	if w.seg, err = os.OpenFile(w.path(segName(seq)+".m4s.open"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	w.hash, w.size = sha256.New(), 0
	if err := injected("open-segment", w.meta.DeviceID, seq); err != nil {
		return err
	}
	return w.syncDir()
}

// spoolFault is set by tests only (export_test.go): asked at a few points
// of writing a recording ("create" once init.mp4 is written, "open-segment"
// once the segment's files are made, "fragment" before each fragment's
// write, the start of "end"), it fails there, as a write or a directory
// sync that fails (no descriptor left, a full disk, an I/O error) does, or
// takes its time, as a stalled disk does.
var spoolFault atomic.Pointer[func(op, device string, seq int64) error]

func injected(op, device string, seq int64) error {
	if f := spoolFault.Load(); f != nil {
		if err := (*f)(op, device, seq); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	return nil
}

// writeFragment appends a fragment and makes it durable before returning.
// The fragment itself is the record: recovery finds the last complete one by
// walking the file's boxes.
func (w *recWriter) writeFragment(b []byte, mediaEnd time.Duration) error {
	if err := injected("fragment", w.meta.DeviceID, w.open.Seq); err != nil {
		return err
	}
	if _, err := w.seg.Write(b); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := w.seg.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	w.hash.Write(b)
	w.size += int64(len(b))
	w.lastEnd = w.open.StartedAt.Add(mediaEnd)
	return w.writeGaps()
}

func (w *recWriter) closeSegment(duration time.Duration) error {
	m := w.open
	m.Size, m.SHA256 = w.size, hex.EncodeToString(w.hash.Sum(nil))
	m.DurationUS, m.ClosedAt = duration.Microseconds(), time.Now().UTC()
	w.seg.Close()
	w.seg = nil
	if err := finishSegmentIn(w.dirf, w.dir, m); err != nil {
		return err
	}
	if w.closed != nil {
		w.closed(m, time.Since(m.ClosedAt))
	}
	return nil
}

// finishSegment turns an open segment into a closed one: metadata first,
// then the rename, so a crash in between is finished by recovery.
func finishSegment(dir string, m segmentMeta) error { return finishSegmentIn(nil, dir, m) }

// finishSegmentIn is finishSegment with dir held open as d (nil: opened
// for each fsync).
func finishSegmentIn(d *os.File, dir string, m segmentMeta) error {
	name := segName(m.Seq)
	if err := writeJSONSyncIn(d, filepath.Join(dir, name+".json"), m); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, name+".m4s.open"), filepath.Join(dir, name+".m4s")); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	os.Remove(filepath.Join(dir, name+".open.json"))
	return syncDirOf(d, dir)
}

func (w *recWriter) gap(g evidence.Gap) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	w.gaps = append(append(w.gaps, b...), '\n')
	return nil
}

// writeGaps appends the gaps waiting to gaps.jsonl and fsyncs it.
func (w *recWriter) writeGaps() error {
	if len(w.gaps) == 0 {
		return nil
	}
	f, err := os.OpenFile(w.path("gaps.jsonl"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(w.gaps); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	w.gaps = w.gaps[:0]
	return nil
}

// closeFile closes the file of a segment still open (an error stopped the
// segmenter), leaving the segment on disk as it is: recovery, or the
// uploader once the recording has ended, salvages it.
func (w *recWriter) closeFile() {
	if w.seg != nil {
		w.seg.Close()
		w.seg = nil
	}
}

// end marks the recording finished; the uploader takes it from there.
func (w *recWriter) end(state evidence.RecordingState, at time.Time, reason string) error {
	w.closeFile()
	if err := injected("end", w.meta.DeviceID, 0); err != nil {
		return err
	}
	if err := w.writeGaps(); err != nil {
		return err
	}
	return writeJSONSyncIn(w.dirf, w.path("end.json"), endMeta{State: state, EndedAt: at.UTC(), Reason: reason})
}

// recover finishes what a crash left in the spool: open segments are cut
// back to their last fsync'd fragment and closed, and every recording that
// had not ended is ended as interrupted with an explicit gap. It returns the
// recordings it ended. A recording that has ended is the uploader's, a
// segment left open in it included (salvageOpenSegments).
func (sp *Spool) recover(now time.Time) ([]string, error) {
	var ended []string
	devices, err := os.ReadDir(sp.root)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, d := range devices {
		if !d.IsDir() || evidence.ValidateDeviceID(d.Name()) != nil { // e.g. _superseded
			continue
		}
		recs, err := os.ReadDir(filepath.Join(sp.root, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		for _, r := range recs {
			dir := filepath.Join(sp.root, d.Name(), r.Name())
			if _, err := os.Stat(filepath.Join(dir, "end.json")); err == nil {
				continue
			}
			if err := recoverRecording(dir, now, afterCrash); err != nil {
				return ended, fmt.Errorf("spool: recover %s: %w", dir, err)
			}
			ended = append(ended, r.Name())
		}
	}
	return ended, nil
}

// recovery says why a recording is recovered, in its gap and its end.
type recovery struct{ detail, reason string }

var (
	afterCrash = recovery{
		detail: "bodycam stopped abnormally; media after the last fsync'd fragment was lost; a publisher that reconnected started a new recording",
		reason: "server stopped abnormally; recovered at restart"}
	abandoned = recovery{
		detail: "the spool failed under the recording and its end could not be written; media after the last fsync'd fragment was lost",
		reason: "spool write failed; recovered from the spool"}
)

// recoverRecording ends a recording its writer did not end: its open
// segments salvaged, an interrupted gap from its last durable media to now,
// and end.json. A directory without recording.json held nothing durable and
// is removed.
func recoverRecording(dir string, now time.Time, why recovery) error {
	var meta recordingMeta
	if err := readJSON(filepath.Join(dir, "recording.json"), &meta); errors.Is(err, fs.ErrNotExist) {
		// Nothing durable was started: no init, no segments.
		return os.RemoveAll(dir)
	} else if err != nil {
		return err // unreadable now (out of descriptors?) is not absent
	}
	lastEnd := meta.StartedAt
	if _, err := salvageOpenSegments(dir, meta, now); err != nil {
		return err
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range segs {
		var m segmentMeta
		if strings.HasSuffix(f, ".open.json") || readJSON(f, &m) != nil || m.Seq == 0 {
			continue
		}
		if end := m.StartedAt.Add(time.Duration(m.DurationUS) * time.Microsecond); end.After(lastEnd) {
			lastEnd = end
		}
	}
	w := &recWriter{dir: dir}
	if err := w.gap(evidence.Gap{RecordingID: meta.ID, Kind: evidence.GapInterrupted, Start: lastEnd, End: now.UTC(), Detail: why.detail}); err != nil {
		return err
	}
	return w.end(evidence.StateInterrupted, lastEnd, why.reason)
}

// salvageOpenSegments finishes the segments a recording's writer left open
// (NNNNNN.m4s.open): after a crash (recoverRecording), or after a write
// failed and the writer ended the recording without closing its segment
// (the uploader: once end.json is there, the writer is gone and an open
// segment is a leftover that would hold the device's uploads for ever).
// A segment closed but not yet renamed is renamed; an open one is cut back
// to its last complete fragment and finished as recovered, or removed when
// it holds none. It reports how many it finished or removed.
func salvageOpenSegments(dir string, meta recordingMeta, now time.Time) (int, error) {
	opens, err := filepath.Glob(filepath.Join(dir, "*.m4s.open"))
	if err != nil {
		return 0, err
	}
	for _, open := range opens {
		if err := salvageOpenSegment(dir, open, meta, now); err != nil {
			return 0, fmt.Errorf("spool: %s: %w", filepath.Base(open), err)
		}
	}
	return len(opens), nil
}

func salvageOpenSegment(dir, open string, meta recordingMeta, now time.Time) error {
	name := strings.TrimSuffix(filepath.Base(open), ".m4s.open")
	seq, _ := strconv.ParseInt(name, 10, 64)
	var m segmentMeta
	if err := readJSON(filepath.Join(dir, name+".json"), &m); err == nil {
		return finishSegment(dir, m) // closed, rename pending
	}
	if err := readJSON(filepath.Join(dir, name+".open.json"), &m); err != nil {
		return err
	}
	b, err := os.ReadFile(open)
	if err != nil {
		return err
	}
	size, mediaEnd := durableFragments(b, meta.PrimaryTrack, meta.PrimaryTimescale)
	if size == 0 {
		os.Remove(open)
		os.Remove(filepath.Join(dir, name+".open.json"))
		return syncDir(dir)
	}
	if err := os.Truncate(open, size); err != nil {
		return err
	}
	sum := sha256.Sum256(b[:size])
	m.Seq, m.Size, m.SHA256 = seq, size, hex.EncodeToString(sum[:])
	m.DurationUS, m.ClosedAt, m.Recovered = mediaEnd.Microseconds(), now.UTC(), true
	return finishSegment(dir, m)
}

// durableFragments finds the end of the last complete fragment (a moof
// followed by its whole mdat) in a segment cut short by a crash, and the
// media time that fragment ends at on the primary track.
func durableFragments(b []byte, track int, timescale uint32) (int64, time.Duration) {
	var end, off int64
	moof := false
	for off+8 <= int64(len(b)) {
		size := int64(binary.BigEndian.Uint32(b[off:]))
		typ := string(b[off+4 : off+8])
		if size == 1 && off+16 <= int64(len(b)) {
			size = int64(binary.BigEndian.Uint64(b[off+8:]))
		}
		if size < 8 || off+size > int64(len(b)) {
			break // torn box
		}
		switch typ {
		case "moof":
			moof = true
		case "mdat":
			if moof {
				end = off + size
			}
			moof = false
		}
		off += size
	}
	if end == 0 || timescale == 0 {
		return end, 0
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[:end]); err != nil {
		return end, 0
	}
	var first, last uint64
	seen := false
	for _, p := range parts {
		for _, t := range p.Tracks {
			if t.ID != track {
				continue
			}
			if !seen {
				first, seen = t.BaseTime, true
			}
			last = t.BaseTime
			for _, smp := range t.Samples {
				last += uint64(smp.Duration)
			}
		}
	}
	return end, time.Duration((last - first) * uint64(time.Second) / uint64(timescale))
}

// pending lists the recordings in the spool, per device, oldest first.
func (sp *Spool) pending() (map[string][]string, error) {
	out := map[string][]string{}
	devices, err := os.ReadDir(sp.root)
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		if !d.IsDir() || evidence.ValidateDeviceID(d.Name()) != nil { // e.g. _superseded
			continue
		}
		recs, err := os.ReadDir(filepath.Join(sp.root, d.Name()))
		if err != nil {
			continue
		}
		for _, r := range recs {
			if r.IsDir() {
				out[d.Name()] = append(out[d.Name()], r.Name())
			}
		}
		sort.Strings(out[d.Name()])
	}
	return out, nil
}

// pendingDevice lists one device's recordings in the spool, oldest first.
func (sp *Spool) pendingDevice(device string) ([]string, error) {
	recs, err := os.ReadDir(filepath.Join(sp.root, device))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		if r.IsDir() {
			out = append(out, r.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// hasWork reports whether any of a device's recordings has something for
// the uploader: an init segment, a closed segment, an end, or no writer.
func (sp *Spool) hasWork(device string, recs []string) bool {
	for _, rec := range recs {
		entries, err := os.ReadDir(sp.recDir(device, rec))
		if err != nil {
			return true // let the uploader look and report
		}
		for _, e := range entries {
			n := e.Name()
			if n == "init.mp4" || n == "end.json" || strings.HasSuffix(n, ".m4s") {
				return true
			}
		}
		if !sp.held(sp.recDir(device, rec)) {
			return true // left by a writer that could not end it
		}
	}
	return false
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func writeFileSync(path string, b []byte) error { return writeFileSyncIn(nil, path, b) }

// writeFileSyncIn is writeFileSync with path's directory held open as d
// (nil: opened for its fsync).
func writeFileSyncIn(d *os.File, path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDirOf(d, filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func writeJSONSync(path string, v any) error { return writeJSONSyncIn(nil, path, v) }

func writeJSONSyncIn(d *os.File, path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileSyncIn(d, path, b)
}

func appendJSONLine(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return f.Sync()
}

// appendGapOnce appends g unless the file has it already (a retry after a
// crash between the append and what follows it).
func appendGapOnce(path string, g evidence.Gap) error {
	gaps, err := readGaps(path)
	if err != nil {
		return err
	}
	for _, have := range gaps {
		if have.Kind == g.Kind && have.Start.Equal(g.Start) && have.Detail == g.Detail {
			return nil
		}
	}
	return appendJSONLine(path, g)
}

func readGaps(path string) ([]evidence.Gap, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []evidence.Gap
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var g evidence.Gap
		if json.Unmarshal(sc.Bytes(), &g) == nil { // a torn last line from a crash is skipped
			out = append(out, g)
		}
	}
	return out, nil
}

// syncDirOf fsyncs a directory through d, held open, or when d is nil by
// opening dir.
func syncDirOf(d *os.File, dir string) error {
	if d == nil {
		return syncDir(dir)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
