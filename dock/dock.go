// Package dock is `bodycam dock`, the workstation agent: it uploads the
// files of docked recorders (one folder per camera) to the server over tus,
// resumes after a crash or a network loss from the server's offset, checks
// the server first so that a stored file is not sent twice, verifies each
// signed receipt, writes a report per camera and, when asked, deletes a
// recorder's file once (and only once) its receipt verified.
//
// It owns its state directory: state/<camera>.json (what it knows of every
// file, written atomically after every step), receipts/<camera>/ (each
// receipt.json and its .sig, checkable with openssl) and
// reports/<camera>.json.
package dock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/bodycam/bodycam/evidence"
)

// Options configure an Agent; zero values mean the defaults.
type Options struct {
	Server   string // base URL of the bodycam API
	Token    string // the dock user's bearer token
	StateDir string
	Dirs     []string // one folder per docked camera
	// Rate bounds the bytes per second sent, all uploads together (0:
	// unlimited).
	Rate     int64
	Parallel int   // files uploaded at once (default 4)
	Chunk    int64 // bytes per PATCH (default 16 MiB)
	Release  bool  // delete a file from the camera once its receipt verified
	Device   string
	Once     bool          // one pass, then return
	Every    time.Duration // rescan period when watching (default 10s)
	// Settle: the time between the first two listings, which tell a
	// finished file from one still being written (default 2s); later
	// listings are Every apart.
	Settle   time.Duration
	Timezone *time.Location // of the times in file names and sidecars (default Local)
	// ProgressEvery: period of the summary line (default 5s).
	ProgressEvery time.Duration
	Progress      io.Writer // where the per-file and summary lines go (default stderr)
	HTTP          *http.Client
	Log           *slog.Logger
}

// Defaults.
const (
	DefaultParallel = 4
	DefaultChunk    = 16 << 20
	maxRefusals     = 3 // whole-file refusals before a file is left refused
	maxChunkRetries = 5 // 460s for one chunk in a row
	maxFailures     = 8 // failures in a row, without progress, before a round gives up on a file
	retryAfter      = time.Minute
)

// Agent is one running dock.
type Agent struct {
	o       Options
	c       *client
	keys    *keyCache
	lim     *rate.Limiter // nil: unlimited
	burst   int
	cameras []*camera
	log     *slog.Logger
	st      stats

	mu       sync.Mutex
	cond     *sync.Cond
	queue    map[*camera][]found
	inflight map[string]bool // camera name + "/" + rel, queued or running
	closed   bool
	rr       int // round-robin position over cameras
	lastAt   time.Time
	lastSent int64
}

// camera is one docked recorder's folder.
type camera struct {
	name     string
	dir      string
	state    *cameraState
	receipts string
	reportMu sync.Mutex
	seen     map[string]found // the last scan's listing (the scanner's own)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// cameraNames names each folder after its last element; when two folders
// end the same, after their whole path. The name keys the state, the
// receipts and the report, so a camera docked at the same mount point
// keeps them.
func cameraNames(dirs []string) []string {
	names := make([]string, len(dirs))
	count := map[string]int{}
	for i, d := range dirs {
		names[i] = unsafeName.ReplaceAllString(filepath.Base(d), "_")
		count[names[i]]++
	}
	for i, d := range dirs {
		if count[names[i]] > 1 || names[i] == "" || names[i] == "." || names[i] == ".." {
			names[i] = strings.Trim(unsafeName.ReplaceAllString(filepath.ToSlash(d), "_"), "_")
		}
	}
	return names
}

// New checks the options, loads the state of every camera and returns an
// Agent to Run.
func New(o Options) (*Agent, error) {
	if o.Server == "" {
		return nil, errors.New("server: required (the bodycam API's URL)")
	}
	base, err := url.Parse(o.Server)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("server: want an http(s) URL, got %q", o.Server)
	}
	if o.StateDir == "" {
		return nil, errors.New("state-dir: required")
	}
	if len(o.Dirs) == 0 {
		return nil, errors.New("no camera folder given (one DIR per docked camera)")
	}
	if o.Rate < 0 {
		return nil, errors.New("rate: must not be negative")
	}
	if o.Device != "" {
		if err := evidence.ValidateDeviceID(o.Device); err != nil {
			return nil, fmt.Errorf("device: %v", err)
		}
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.Chunk <= 0 {
		o.Chunk = DefaultChunk
	}
	if o.Every <= 0 {
		o.Every = 10 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Second
	}
	if o.Timezone == nil {
		o.Timezone = time.Local
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	o.Progress = &lockedWriter{w: o.Progress} // workers, the summary and the log share it
	if o.HTTP == nil {
		o.HTTP = &http.Client{Transport: http.DefaultTransport}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(o.Progress, nil))
	}
	a := &Agent{o: o, log: o.Log.With("component", "dock"), queue: map[*camera][]found{}, inflight: map[string]bool{}}
	a.cond = sync.NewCond(&a.mu)
	a.c = &client{base: base, token: o.Token, http: o.HTTP}
	a.keys = &keyCache{c: a.c}
	if o.Rate > 0 {
		a.burst = int(min(max(o.Rate/20, 4<<10), 1<<20))
		a.lim = rate.NewLimiter(rate.Limit(o.Rate), a.burst)
	}
	for _, sub := range []string{"state", "receipts", "reports"} {
		if err := os.MkdirAll(filepath.Join(o.StateDir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("state-dir: %v", err)
		}
	}
	abs := make([]string, len(o.Dirs))
	for i, d := range o.Dirs {
		if abs[i], err = filepath.Abs(d); err != nil {
			return nil, err
		}
		if fi, err := os.Stat(abs[i]); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("camera folder %s: not a folder", d)
		}
	}
	for i, name := range cameraNames(abs) {
		cs, err := loadCameraState(filepath.Join(o.StateDir, "state", name+".json"), name, abs[i])
		if err != nil {
			return nil, err
		}
		a.cameras = append(a.cameras, &camera{name: name, dir: abs[i], state: cs,
			receipts: filepath.Join(o.StateDir, "receipts", name), seen: map[string]found{}})
	}
	return a, nil
}

// Run uploads until ctx ends (watching: a scan every Options.Every) or,
// with Once, until every file found is done, and returns an error naming
// how many files failed or were refused. Every goroutine it starts has
// returned when it returns; an upload cut short resumes at the next Run.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.st.start = time.Now()
	var wg sync.WaitGroup
	for range a.o.Parallel {
		wg.Go(func() { a.worker(ctx) })
	}
	progressDone := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Go(func() { a.progressLoop(progressDone) })
	stop := context.AfterFunc(ctx, a.closeQueue)
	defer stop()

	// Two listings Settle apart tell finished files from growing ones.
	a.scan(ctx, false)
	select {
	case <-time.After(a.o.Settle):
	case <-ctx.Done():
	}
	a.scan(ctx, true)
	if a.o.Once {
		a.closeQueue()
		wg.Wait()
	} else {
		t := time.NewTicker(a.o.Every)
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
				a.scan(ctx, true)
			}
		}
		t.Stop()
		a.closeQueue()
		wg.Wait()
	}
	close(progressDone)
	pwg.Wait()
	a.summary(true)
	for _, cam := range a.cameras {
		if err := a.writeReport(cam); err != nil {
			a.log.Error("report", "camera", cam.name, "err", err)
		}
	}
	if failed, refused := a.st.failed.Load(), a.st.refused.Load(); failed+refused > 0 {
		return fmt.Errorf("%d file(s) failed and %d were refused this run; see %s", failed, refused,
			filepath.Join(a.o.StateDir, "reports"))
	}
	if a.o.Once {
		return ctx.Err()
	}
	return nil
}

// scan lists every camera's folder; with enqueue, files that did not change
// since the last listing and still have work to do are queued.
func (a *Agent) scan(ctx context.Context, enqueue bool) {
	for _, cam := range a.cameras {
		if ctx.Err() != nil {
			return
		}
		list, err := scanDir(cam.dir)
		if err != nil {
			a.log.Warn("cannot read the camera's folder", "camera", cam.name, "dir", cam.dir, "err", err)
			continue
		}
		prev := cam.seen
		cam.seen = make(map[string]found, len(list))
		for _, f := range list {
			cam.seen[f.Rel] = f
			if !enqueue {
				continue
			}
			if p, ok := prev[f.Rel]; !ok || p.Size != f.Size || !p.ModTime.Equal(f.ModTime) {
				a.log.Debug("still being written (or new); next scan", "camera", cam.name, "file", f.Rel)
				if a.o.Once {
					a.log.Info("skipped: still being written", "camera", cam.name, "file", f.Rel)
				}
				continue
			}
			if e, ok := cam.state.get(f.Rel); ok && e.Size == f.Size && e.ModTime.Equal(f.ModTime) {
				if e.done() && (!a.o.Release || e.Released) {
					continue
				}
				if e.State == StateRefused && e.Attempts >= maxRefusals {
					continue
				}
				if !a.o.Once && (e.State == StateFailed || e.State == StateRefused) && time.Since(e.UpdatedAt) < retryAfter {
					continue // watching: a failed file waits a little before its next try
				}
			}
			a.enqueue(cam, f)
		}
	}
}

func key(cam *camera, rel string) string { return cam.name + "/" + rel }

func (a *Agent) enqueue(cam *camera, f found) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.inflight[key(cam, f.Rel)] {
		return
	}
	a.inflight[key(cam, f.Rel)] = true
	a.queue[cam] = append(a.queue[cam], f)
	a.st.files.Add(1)
	a.st.bytes.Add(f.Size)
	a.cond.Signal()
}

func (a *Agent) closeQueue() {
	a.mu.Lock()
	a.closed = true
	a.cond.Broadcast()
	a.mu.Unlock()
}

// next takes a file to upload, taking turns between cameras so that every
// docked camera moves; false when the queue is closed and empty.
func (a *Agent) next() (*camera, found, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		for i := range a.cameras {
			cam := a.cameras[(a.rr+i)%len(a.cameras)]
			if q := a.queue[cam]; len(q) > 0 {
				a.queue[cam] = q[1:]
				a.rr = (a.rr + i + 1) % len(a.cameras)
				return cam, q[0], true
			}
		}
		if a.closed {
			return nil, found{}, false
		}
		a.cond.Wait()
	}
}

func (a *Agent) worker(ctx context.Context) {
	var buf []byte
	for {
		cam, f, ok := a.next()
		if !ok || ctx.Err() != nil {
			return
		}
		e := a.process(ctx, cam, f, &buf)
		a.finish(cam, f, e)
	}
}

// finish counts a file's outcome, prints its line and rewrites the report.
func (a *Agent) finish(cam *camera, f found, e entry) {
	a.mu.Lock()
	delete(a.inflight, key(cam, f.Rel))
	a.mu.Unlock()
	a.st.doneFiles.Add(1)
	line := fmt.Sprintf("%s %s: %s", cam.name, f.Rel, e.State)
	switch e.State {
	case StateUploaded, StateDuplicate:
		line += " recording " + e.Recording
		if e.Released {
			line += ", released"
		}
	case StateRefused:
		a.st.refused.Add(1)
		line += ": " + e.Reason
	case StateFailed:
		a.st.failed.Add(1)
		line += ": " + e.Reason
	case StatePending:
		line += " (interrupted; resumes)"
	}
	if e.Reason != "" && (e.State == StateUploaded || e.State == StateDuplicate) {
		line += " (" + e.Reason + ")"
	}
	fmt.Fprintln(a.o.Progress, line)
	if err := a.writeReport(cam); err != nil {
		a.log.Error("report", "camera", cam.name, "err", err)
	}
}

// process brings one file as far as it goes: hashed, checked against the
// server, uploaded (resuming), receipt verified, released. It returns the
// file's entry as saved.
func (a *Agent) process(ctx context.Context, cam *camera, f found, buf *[]byte) entry {
	log := a.log.With("camera", cam.name, "file", f.Rel)
	e, ok := cam.state.get(f.Rel)
	if !ok || e.Size != f.Size || !e.ModTime.Equal(f.ModTime) {
		if ok && e.UploadURL != "" && !e.done() {
			// The file changed under a partial upload: that upload is of
			// other bytes.
			if err := a.c.terminate(ctx, e.UploadURL); err != nil {
				log.Warn("could not delete the stale upload", "url", e.UploadURL, "err", err)
			}
		}
		e = entry{Path: f.Rel, Size: f.Size, ModTime: f.ModTime, State: StatePending}
	}
	save := func() {
		if err := cam.state.put(e); err != nil {
			log.Error("cannot save the state", "err", err)
		}
	}
	fail := func(state, why string) entry {
		e.State, e.Reason = state, why
		save()
		log.Warn("file "+state, "why", why)
		return e
	}
	full := filepath.Join(cam.dir, filepath.FromSlash(f.Rel))
	if e.SHA256 == "" {
		sum, err := hashFile(ctx, full, f)
		if err != nil {
			if ctx.Err() != nil {
				return e
			}
			return fail(StateFailed, "hashing: "+err.Error())
		}
		e.SHA256 = sum
		save()
	}
	facts := a.facts(cam, f, e.SHA256)
	if facts.Device == "" {
		return fail(StateFailed, "no device id: no sidecar, no `device` file in the folder, no <device>_<time> file name, no --device")
	}
	if e.Device != facts.Device {
		if e.Device != "" && e.UploadURL != "" && !e.done() {
			a.c.terminate(ctx, e.UploadURL)
			e.UploadURL, e.Offset = "", 0
		}
		e.Device = facts.Device
		save()
	}
	if !e.done() {
		if e.State == StateFailed || e.State == StateRefused {
			e.State, e.Reason = StatePending, "" // another try
		}
		if err := a.upload(ctx, cam, &e, facts, buf, save, log); err != nil {
			if ctx.Err() != nil {
				e.State = StatePending
				save()
				return e
			}
			var re *refusedError
			if errors.As(err, &re) {
				e.Attempts++
				return fail(StateRefused, re.Error())
			}
			return fail(StateFailed, err.Error())
		}
	}
	if a.o.Release && e.done() && !e.Released {
		a.release(ctx, full, &e, save, log)
	}
	if a.o.Release && e.Released && !e.ReleaseNoted && e.UploadURL != "" {
		if err := a.c.released(ctx, e.UploadURL); err != nil {
			log.Warn("could not tell the server the camera's copy was deleted (best effort)", "err", err)
		} else {
			e.ReleaseNoted = true
			save()
		}
	}
	return e
}

// facts gathers the metadata of a file: a sidecar first, then the folder's
// `device` file, the file's name, --device.
func (a *Agent) facts(cam *camera, f found, sum string) fileFacts {
	name := baseName(f.Rel)
	full := filepath.Join(cam.dir, filepath.FromSlash(f.Rel))
	ff := fileFacts{Name: name, Size: f.Size, SHA256: sum, FileType: fileType(name), Important: importantName(name)}
	var sc sidecar
	for _, p := range sidecarPaths(full) {
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if s, ok := readSidecar(p, a.o.Timezone); ok {
			sc = s
			break
		}
	}
	nameDevice, nameStart := fromName(name, a.o.Timezone)
	for _, c := range []struct{ id, from string }{
		{sc.Device, "sidecar"}, {deviceFile(cam.dir), "device-file"}, {nameDevice, "file-name"}, {a.o.Device, "flag"},
	} {
		if c.id != "" && evidence.ValidateDeviceID(c.id) == nil {
			ff.Device, ff.DeviceFrom = c.id, c.from
			break
		}
	}
	ff.Officer = sc.Officer
	ff.StartedAt, ff.EndedAt = sc.Start, sc.End
	if ff.StartedAt.IsZero() {
		ff.StartedAt = nameStart
	}
	if !ff.EndedAt.IsZero() && ff.EndedAt.Before(ff.StartedAt) {
		ff.EndedAt = time.Time{}
	}
	if sc.Important != nil {
		ff.Important = ff.Important || *sc.Important
	}
	ff.GPS = sc.GPS
	return ff
}

// deviceFile is the first line of the folder's `device` file, if any.
func deviceFile(dir string) string {
	p := filepath.Join(dir, "device")
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() || fi.Size() > 4096 {
		return ""
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// hashFile is the SHA-256 of the file, which must still be the one listed.
func hashFile(ctx context.Context, p string, f found) (string, error) {
	fh, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, fh}); err != nil {
		return "", err
	}
	fi, err := fh.Stat()
	if err != nil {
		return "", err
	}
	if fi.Size() != f.Size || !fi.ModTime().Equal(f.ModTime) {
		return "", errors.New("the file changed while it was hashed")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// release deletes the camera's copy of a file whose receipt verified, if
// it is still the regular file that was hashed.
func (a *Agent) release(ctx context.Context, full string, e *entry, save func(), log *slog.Logger) {
	fi, err := os.Lstat(full)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != e.Size || !fi.ModTime().Equal(e.ModTime) {
		log.Warn("not released: the file is not the one the receipt is for any more")
		return
	}
	if err := os.Remove(full); err != nil {
		log.Error("release: could not delete the camera's copy", "err", err)
		return
	}
	e.Released = true
	e.ReleaseNoted = e.UploadURL == "" // a duplicate: no upload of ours to tell about
	save()
	log.Info("released: deleted the camera's copy", "recording", e.Recording, "receipt", e.Receipt)
}

// lockedWriter serializes writes to the progress output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
