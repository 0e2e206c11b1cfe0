package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bodycam/bodycam/internal/benchutil"
	"github.com/bodycam/bodycam/internal/testsvc"
	"github.com/bodycam/bodycam/internal/whep"
	"github.com/bodycam/bodycam/simulate"
)

// bench is one soak: its services, its load, and what it saw.
type bench struct {
	o        options
	dir      string // temporary: the server's data, the logs
	dataDir  string
	spoolDir string
	minio    *testsvc.MinIO
	pg       *testsvc.Database
	srv      *benchutil.Child
	admin    api
	auditor  api
	watch    string // a supervisor's token: the viewers'
	clip     *simulate.Clip
	clipMbps float64
	recs     []*recorder
	viewers  []*whep.Viewer
	watched  []string // the device each viewer watches

	started     time.Time // the soak's start
	loadStart   float64
	samples     []sample
	events      []string // what went wrong while sampling, with when
	interrupted bool     // Ctrl-C (or SIGTERM) before the soak's end
	end         endResult
}

// recorder is one simulated recorder publishing in this process.
type recorder struct {
	id, url    string
	reconnects atomic.Int64 // times its publishing ended while it should go on
	lastErr    atomic.Value // string
	publishing atomic.Int64 // nanoseconds spent publishing, once stopped
}

// soak runs the whole soak and writes its outputs; failed is whether a
// check failed, err whether the soak could not run at all.
func soak(ctx context.Context, o options) (failed bool, err error) {
	b := &bench{o: o}
	if b.dir, err = os.MkdirTemp("", "bench-soak-*"); err != nil {
		return false, err
	}
	b.dataDir, b.spoolDir = filepath.Join(b.dir, "data"), filepath.Join(b.dir, "data", "spool")
	defer func() {
		if o.logs != "" {
			copyLogs(b.dir, o.logs)
		}
		// The footage is big and useless afterwards; the logs explain a
		// failure.
		os.RemoveAll(b.dataDir)
		if err != nil || failed {
			fmt.Fprintf(os.Stderr, "bench-soak: the server's log is kept in %s\n", b.dir)
		} else {
			os.RemoveAll(b.dir)
		}
	}()
	if err := b.loadClip(ctx); err != nil {
		return false, err
	}
	if err := b.checkDisk(); err != nil {
		return false, err
	}
	if b.minio, err = testsvc.StartMinIOIn(o.minioDir); err != nil {
		return false, err
	}
	defer b.minio.Close()
	if o.database == "postgres" {
		if b.pg, err = testsvc.CreateDatabase(ctx, "bodycam_soak_"); err != nil {
			return false, err
		}
		defer func() {
			if err := b.pg.Drop(); err != nil {
				fmt.Fprintf(os.Stderr, "bench-soak: drop database %s: %v\n", b.pg.Name, err)
			}
		}()
	}
	if err := b.startServer(ctx); err != nil {
		return false, err
	}
	defer b.srv.Stop(time.Minute)
	if err := b.setUp(ctx); err != nil {
		return false, err
	}

	pctx, stopRecorders := context.WithCancel(ctx)
	defer stopRecorders()
	published := b.publish(pctx)
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			stopRecorders()
			published.Wait()
		}
	}
	defer stopAll()
	if err := b.waitLive(ctx, time.Minute+o.stagger); err != nil {
		return false, err
	}
	progress("%d recorders live; dialling %d viewers of %d of them", o.recorders, o.viewers, o.viewed)
	if err := b.openViewers(ctx); err != nil {
		return false, err
	}
	hungUp := false
	hangUp := func() int {
		if hungUp {
			return 0
		}
		hungUp = true
		return closeAll(b.viewers, o.parallel)
	}
	defer hangUp()

	progress("soak: %v, a sample every %v, warm-up %v (server pid %d)", o.duration, o.sample, o.warmup, b.srv.Pid())
	if err := b.run(ctx); err != nil {
		if ctx.Err() != nil && len(b.samples) > 0 {
			// Interrupted: keep what was sampled (an hour of a soak is worth
			// its plots).
			b.interrupted = true
			if werr := b.write(b.checks()); werr != nil {
				progress("writing what was sampled: %v", werr)
			}
		}
		return false, err
	}
	b.end.hangupErrors = hangUp()
	stopAll()
	progress("recorders stopped; waiting for every recording to be stored (at most %v)", o.drain)
	if err := b.finish(ctx); err != nil {
		return false, err
	}
	checks := b.checks()
	if err := b.write(checks); err != nil {
		return false, err
	}
	for _, c := range checks {
		if !c.ok {
			failed = true
		}
	}
	return failed, nil
}

// loadClip encodes (once, into the cache) and loads the recorders' clip.
func (b *bench) loadClip(ctx context.Context) error {
	spec := simulate.DefaultClip
	spec.FPS, spec.VideoBitrate, spec.BFrames = b.o.fps, b.o.bitrate, b.o.bframes
	if _, err := fmt.Sscanf(b.o.size, "%dx%d", &spec.Width, &spec.Height); err != nil {
		return fmt.Errorf("-size: want WIDTHxHEIGHT, got %q", b.o.size)
	}
	dir := b.o.clipCache
	if dir == "" {
		dir = filepath.Join(b.dir, "clip")
	}
	path, err := simulate.EnsureClip(ctx, dir, spec)
	if err != nil {
		return err
	}
	if b.clip, err = simulate.LoadClip(path); err != nil {
		return err
	}
	b.clipMbps = float64(b.clip.Bytes*8) / b.clip.Duration.Seconds() / 1e6
	progress("clip: %s %d fps, %.2f Mbit/s, B-frames %d, loops every %v", b.o.size, b.o.fps, b.clipMbps, b.o.bframes, b.clip.Duration)
	return nil
}

// checkDisk refuses a soak whose footage would not fit where MinIO keeps
// it: the store keeps every object (compliance retention) until the bench
// removes it at the end.
func (b *bench) checkDisk() error {
	dir := b.o.minioDir
	if dir == "" {
		dir = os.TempDir()
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("free space of %s: %v", dir, err)
	}
	free := float64(st.Bavail) * float64(st.Bsize)
	need := float64(b.o.recorders) * b.clipMbps * 1e6 / 8 * (b.o.duration + 5*time.Minute).Seconds() * 1.1
	if need > free*0.9 {
		return fmt.Errorf("the footage would take about %.1f GB in %s, which has %.1f GB free: lower -bitrate or -size, or give MinIO another disk (-minio-dir)",
			need/1e9, dir, free/1e9)
	}
	progress("footage: about %.1f GB in %s (%.1f GB free)", need/1e9, dir, free/1e9)
	return nil
}

// startServer starts `bodycam serve` on loopback ports and waits until it
// answers /healthz.
func (b *bench) startServer(ctx context.Context) error {
	if _, err := os.Stat(b.o.bin); err != nil {
		return fmt.Errorf("bodycam binary: %v (run make build, or pass -bodycam)", err)
	}
	httpAddr, rtspAddr, tcpAddr, udpAddr := freeTCP(), freeTCP(), freeTCP(), freeUDP()
	if httpAddr == "" || rtspAddr == "" || tcpAddr == "" || udpAddr == "" {
		return errors.New("no free loopback port")
	}
	adminToken := hex.EncodeToString(randBytes(24))
	b.admin = api{base: "http://" + httpAddr, token: adminToken}
	args := []string{b.o.bin, "serve", "--data-dir", b.dataDir,
		"--http-addr", httpAddr, "--rtsp-addr", rtspAddr, "--rtsp-udp-addr", "",
		"--webrtc-udp-addr", udpAddr, "--webrtc-tcp-addr", tcpAddr,
		"--segment-duration", b.o.segment.String(), "--log-level", b.o.logLevel, "--shutdown-delay", "0",
		"--live-max-sessions", "10000", "--live-max-per-user", "10000", "--admin-token", adminToken,
		"--s3-endpoint", b.minio.Endpoint, "--s3-access-key", b.minio.AccessKey, "--s3-secret-key", b.minio.SecretKey, "--s3-bucket", "soak"}
	if b.pg != nil {
		args = append(args, "--database-url", b.pg.URL)
	}
	var err error
	if b.srv, err = benchutil.StartChild("bodycam serve", filepath.Join(b.dir, "serve.log"), args...); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if b.srv.Exited() {
			return b.srv.Failure()
		}
		if resp, err := client.Get(b.admin.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the server is not healthy within a minute; the end of its log:\n%s", b.srv.Tail(20))
}

// setUp makes the viewers' supervisor and the verifying auditor, and
// registers the recorders.
func (b *bench) setUp(ctx context.Context) error {
	var err error
	// Admins watch and read nothing: a supervisor (without a unit: every
	// unit's footage) watches, an auditor verifies.
	if b.watch, err = userToken(ctx, b.admin, "soak-supervisor", "supervisor"); err != nil {
		return err
	}
	tok, err := userToken(ctx, b.admin, "soak-auditor", "auditor")
	if err != nil {
		return err
	}
	b.auditor = b.admin.as(tok)
	b.auditor.hc = verifyClient
	for i := 1; i <= b.o.recorders; i++ {
		id := deviceID(i)
		u, err := registerDevice(ctx, b.admin, id, fmt.Sprintf("soak-officer-%03d", i))
		if err != nil {
			return err
		}
		b.recs = append(b.recs, &recorder{id: id, url: u})
	}
	return nil
}

// publish starts every recorder, their starts spread over -stagger. A
// recorder whose publishing ends while it should go on (the server closed
// it, a write failed) counts a reconnect and publishes again after a
// second, as a recorder would; the soak fails on any.
func (b *bench) publish(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, r := range b.recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sleep(ctx, time.Duration(i)*b.o.stagger/time.Duration(len(b.recs))) != nil {
				return
			}
			for {
				start := time.Now()
				err := simulate.PublishClip(ctx, r.url, b.clip, true, b.o.loss)
				r.publishing.Add(int64(time.Since(start)))
				if ctx.Err() != nil {
					return
				}
				r.reconnects.Add(1)
				if err == nil {
					err = errors.New("publishing ended")
				}
				r.lastErr.Store(err.Error())
				if sleep(ctx, time.Second) != nil {
					return
				}
			}
		}()
	}
	return &wg
}

// waitLive waits until the server lists every recorder as live.
func (b *bench) waitLive(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if b.srv.Exited() {
			return b.srv.Failure()
		}
		live, err := liveDevices(ctx, b.admin)
		if err == nil && len(live) >= b.o.recorders {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d recorders live after %v (%v); the end of the server's log:\n%s", len(live), b.o.recorders, within, err, b.srv.Tail(20))
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// openViewers dials every viewer, -parallel at a time, and waits until each
// has a complete keyframe.
func (b *bench) openViewers(ctx context.Context) error {
	b.viewers, b.watched = make([]*whep.Viewer, b.o.viewers), make([]string, b.o.viewers)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, b.o.parallel)
	for i := range b.viewers {
		b.watched[i] = deviceID(i%b.o.viewed + 1)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			v, err := whep.Dial(dctx, b.admin.base+"/api/v1/live/"+b.watched[i]+"/whep", whep.Options{Token: b.watch})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("viewer %d of %s: %w", i+1, b.watched[i], err)
			}
			b.viewers[i] = v
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		var missing []string
		for i, v := range b.viewers {
			if v.Stats().FirstKeyframe == 0 {
				missing = append(missing, strconv.Itoa(i+1))
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("viewers without a picture 30 s after their answer: %s", strings.Join(missing, ", "))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// closeAll hangs up every viewer (WHEP DELETE) and returns how many
// hang-ups failed.
func closeAll(viewers []*whep.Viewer, parallel int) int {
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, parallel)
	for _, v := range viewers {
		if v == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := v.Close(); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(failed.Load())
}

func (b *bench) viewerStats() []viewerStats {
	out := make([]viewerStats, len(b.viewers))
	for i, v := range b.viewers {
		st := v.Stats()
		out[i] = viewerStats{frames: st.Frames, audio: st.AudioPackets}
	}
	return out
}

// run samples every -sample for -duration. A server that exits ends the
// soak early (and fails it); everything else that goes wrong is noted and
// the soak goes on, so that the samples show what followed.
func (b *bench) run(ctx context.Context) error {
	b.started, b.loadStart = time.Now(), loadAvg()
	m, err := benchutil.Scrape(b.admin.base + "/metrics")
	if err != nil {
		return err
	}
	prev := readCounters(b.srv.Pid(), b.minio.Pid(), m["bodycam_segments_stored_total"], b.viewerStats())
	profiled := false
	for j := 1; time.Duration(j)*b.o.sample <= b.o.duration; j++ {
		at := time.Duration(j) * b.o.sample
		// The spool is read every second and averaged over the interval:
		// each recorder's open segment grows from nothing to a segment's
		// size and starts again, and one instant would catch the recorders
		// wherever they happen to be in their segments.
		var spool spoolReading
		for time.Since(b.started) < at {
			if b.srv.Exited() {
				b.note(time.Since(b.started), "the server exited: %v", b.srv.Err())
				return nil
			}
			spool.read(b.spoolDir)
			if err := sleep(ctx, min(time.Second, at-time.Since(b.started))); err != nil {
				return err
			}
		}
		s, cur := b.take(ctx, prev)
		s.spoolBytes, s.spoolMax, s.spoolFiles = spool.mean(), spool.maxBytes, spool.maxFiles
		prev = cur
		b.samples = append(b.samples, s)
		b.judgeSample(s)
		b.logSample(s)
		if b.o.profiles && !profiled && s.at >= b.o.warmup {
			profiled = true
			b.saveProfile(ctx, "heap", "heap-warm.pprof")
		}
	}
	if b.o.profiles {
		b.saveProfile(ctx, "heap", "heap-end.pprof")
		b.saveProfile(ctx, "goroutine?debug=1", "goroutines-end.txt")
	}
	return nil
}

// take reads one sample.
func (b *bench) take(ctx context.Context, prev counters) (sample, counters) {
	s := sample{at: time.Since(b.started).Round(time.Second)}
	pid := b.srv.Pid()
	m, err := benchutil.Scrape(b.admin.base + "/metrics")
	if err != nil {
		b.note(s.at, "GET /metrics: %v", err)
		m = map[string]float64{}
		for _, k := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "bodycam_ingest_publishers"} {
			m[k] = math.NaN()
		}
		m["bodycam_segments_stored_total"] = prev.segments
	}
	cur := readCounters(pid, b.minio.Pid(), m["bodycam_segments_stored_total"], b.viewerStats())
	s.rates(prev, cur)
	s.rss, s.heap, s.goroutines = benchutil.RSS(pid), m["go_memstats_heap_inuse_bytes"], m["go_goroutines"]
	s.openFiles = openFiles(pid)
	s.segments, s.publishers = m["bodycam_segments_stored_total"], m["bodycam_ingest_publishers"]
	s.load1 = loadAvg()
	if b.pg != nil {
		s.catalog = b.pg.Size(ctx)
	} else {
		s.catalog = sqliteBytes(b.dataDir)
	}
	if s.listed, s.connected, err = liveViewers(ctx, b.admin); err != nil {
		b.note(s.at, "GET /api/v1/live/viewers: %v", err)
	}
	return s, cur
}

// judgeSample notes what one sample shows wrong at once: recorders not
// publishing, viewers not receiving.
func (b *bench) judgeSample(s sample) {
	if s.publishers != float64(b.o.recorders) {
		b.note(s.at, "%v of %d recorders publishing", s.publishers, b.o.recorders)
	}
	if s.connected != b.o.viewers {
		b.note(s.at, "the server lists %d viewing sessions, %d connected, of %d viewers", s.listed, s.connected, b.o.viewers)
	}
	var stalled []string
	for i := range s.fps {
		if s.fps[i] < b.o.minFPS || s.audio[i] <= 0 {
			stalled = append(stalled, fmt.Sprintf("%d (%s: %.1f fps, %.0f audio packets/s)", i+1, b.watched[i], s.fps[i], s.audio[i]))
		}
	}
	if len(stalled) > 0 {
		b.note(s.at, "viewers below %.0f fps or without audio: %s", b.o.minFPS, strings.Join(stalled, ", "))
	}
}

func (b *bench) note(at time.Duration, format string, args ...any) {
	e := fmt.Sprintf("at %v: ", at.Round(time.Second)) + fmt.Sprintf(format, args...)
	b.events = append(b.events, e)
	progress("%s", e)
}

func (b *bench) logSample(s sample) {
	lo, mean := fpsStats(s.fps)
	progress("%v: RSS %.0f MiB, goroutines %.0f, open files %.0f, spool %.1f MiB (at most %.0f files), CPU %.1f %%, segments %.0f (%.0f/min), publishers %.0f, viewers %d connected, fps min %.1f mean %.1f, machine %.0f %% load %.2f",
		s.at, s.rss/(1<<20), s.goroutines, s.openFiles, s.spoolBytes/(1<<20), s.spoolFiles, s.cpu, s.segments, s.segRate,
		s.publishers, s.connected, lo, mean, s.machine, s.load1)
}

// fpsStats is the lowest and the mean of per-viewer rates (NaN without viewers).
func fpsStats(v []float64) (lo, mean float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	lo = math.Inf(1)
	for _, x := range v {
		lo, mean = math.Min(lo, x), mean+x
	}
	return lo, mean / float64(len(v))
}

// saveProfile saves one of the server's pprof profiles into -out.
func (b *bench) saveProfile(ctx context.Context, name, file string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", b.admin.base+"/debug/pprof/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+b.admin.token)
	resp, err := client.Do(req)
	if err != nil {
		progress("profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		progress("profile %s: %s", name, resp.Status)
		return
	}
	os.MkdirAll(b.o.out, 0o755)
	f, err := os.Create(filepath.Join(b.o.out, file))
	if err != nil {
		progress("profile %s: %v", name, err)
		return
	}
	io.Copy(f, resp.Body)
	f.Close()
}

// endResult is what the end of the soak showed: the recordings stored and
// verified, and the server's counters.
type endResult struct {
	hangupErrors   int
	viewersLeft    int // sessions the server still listed after the hang-ups
	drained        bool
	drainTime      time.Duration
	notStored      []string // recordings not complete with a manifest when the drain gave up
	spoolLeft      float64  // files
	recordings     []recording
	perDevice      map[string]int
	verified       int
	verifyFailed   []string
	verifyTime     time.Duration
	gaps           map[string]int // by kind, from the verifications
	gapNotes       []string
	metricGaps     map[string]float64 // bodycam_recording_gaps_total by kind
	lost           float64            // bodycam_ingest_lost_packets_total
	counters       map[string]float64 // nonzero error-like counters
	segments       int                // media segments in the catalog
	mediaSeconds   float64            // their durations summed
	spanSeconds    float64            // the recordings' ended − started, summed
	worstMissing   float64            // the largest span − media of one recording, seconds
	worstRecording string
	published      float64 // seconds the recorders published, summed
	reconnects     int64
}

// finish waits until every recording is stored, verifies each one and
// reads the server's counters.
func (b *bench) finish(ctx context.Context) error {
	e := &b.end
	for _, r := range b.recs {
		e.reconnects += r.reconnects.Load()
		e.published += time.Duration(r.publishing.Load()).Seconds()
	}
	// The server ends a session at its WHEP DELETE; give it a few seconds.
	for i := 0; i < 50; i++ {
		listed, _, err := liveViewers(ctx, b.admin)
		if err != nil {
			return err
		}
		if e.viewersLeft = listed; listed == 0 {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	start := time.Now()
	for {
		if b.srv.Exited() {
			return b.srv.Failure()
		}
		e.recordings, e.notStored = nil, nil
		for _, r := range b.recs {
			recs, err := recordingsOf(ctx, b.auditor, r.id)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				e.recordings = append(e.recordings, rec)
				if rec.State == "live" || rec.ManifestKey == "" {
					e.notStored = append(e.notStored, rec.ID+" ("+rec.DeviceID+", "+rec.State+")")
				}
			}
		}
		_, e.spoolLeft = du(b.spoolDir)
		if len(e.notStored) == 0 && e.spoolLeft == 0 {
			e.drained, e.drainTime = true, time.Since(start)
			break
		}
		if time.Since(start) > b.o.drain {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	progress("stored: %d recordings in %v (drained: %v); verifying each as an auditor", len(e.recordings), e.drainTime.Round(time.Millisecond), e.drained)

	e.perDevice, e.gaps = map[string]int{}, map[string]int{}
	vstart := time.Now()
	for _, rec := range e.recordings {
		e.perDevice[rec.DeviceID]++
		var v verification
		if err := b.auditor.do(ctx, "POST", "/api/v1/recordings/"+rec.ID+"/verify", "", http.StatusOK, &v); err != nil {
			e.verifyFailed = append(e.verifyFailed, rec.ID+": "+err.Error())
			continue
		}
		if !v.OK {
			e.verifyFailed = append(e.verifyFailed, rec.ID+": "+v.Reason)
			continue
		}
		e.verified++
		for _, g := range v.Gaps {
			k := g.kind()
			e.gaps[k]++
			if e.gaps[k] <= 2 { // two examples of each kind
				e.gapNotes = append(e.gapNotes, fmt.Sprintf("%s %s %s: %s", rec.DeviceID, k, g.Track, g.Detail))
			}
		}
		var full recording
		if err := b.auditor.do(ctx, "GET", "/api/v1/recordings/"+rec.ID, "", http.StatusOK, &full); err != nil {
			return err
		}
		var media float64
		for _, sg := range full.Segments {
			if sg.Kind == "media" {
				e.segments++
				media += sg.DurationMS / 1000
			}
		}
		e.mediaSeconds += media
		if full.EndedAt != nil {
			span := full.EndedAt.Sub(full.StartedAt).Seconds()
			e.spanSeconds += span
			if span-media > e.worstMissing || e.worstRecording == "" {
				e.worstMissing, e.worstRecording = span-media, rec.ID+" ("+rec.DeviceID+")"
			}
		}
	}
	e.verifyTime = time.Since(vstart)
	progress("verified %d of %d recordings in %v", e.verified, len(e.recordings), e.verifyTime.Round(time.Millisecond))

	m, err := benchutil.Scrape(b.admin.base + "/metrics")
	if err != nil {
		return err
	}
	e.lost = m["bodycam_ingest_lost_packets_total"]
	e.metricGaps, e.counters = map[string]float64{}, map[string]float64{}
	for k, v := range m {
		if kind, ok := strings.CutPrefix(k, `bodycam_recording_gaps_total{kind="`); ok && v > 0 {
			e.metricGaps[strings.TrimSuffix(kind, `"}`)] = v
		}
		for _, p := range []string{"bodycam_ingest_errors_total", "bodycam_ingest_refused_total", "bodycam_ingest_backpressure_total",
			"bodycam_live_dropped_units_total", "bodycam_live_errors_total"} {
			if strings.HasPrefix(k, p) && v > 0 {
				e.counters[k] = v
			}
		}
	}
	return nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// copyLogs copies the server's log into dir.
func copyLogs(from, dir string) {
	os.MkdirAll(dir, 0o750)
	if b, err := os.ReadFile(filepath.Join(from, "serve.log")); err == nil {
		os.WriteFile(filepath.Join(dir, "serve.log"), b, 0o644)
	}
}

// freeTCP and freeUDP return a loopback address with a port free now.
func freeTCP() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	return l.Addr().String()
}

func freeUDP() string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer c.Close()
	return c.LocalAddr().String()
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
