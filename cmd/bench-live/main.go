// Command bench-live measures the live relay (package live) under load: one
// simulated recorder (`bodycam simulate --mode clip`: a pre-encoded 1280x720
// 30 fps ~4 Mbit/s H.264 + AAC clip looped in real time over RTSP/TCP)
// publishes to `bodycam serve`, and N WHEP viewers in this process
// (internal/whep, pion) watch it over loopback. For each N it reports the
// server's CPU and resident memory per viewer, the relay's added latency
// from ingest receive to the send to a viewer (p50/p99, from the server's
// histogram), the time to the first keyframe at each viewer (p50/p99/max,
// with its ICE and DTLS parts), what each viewer really received, and on
// request the server's CPU and heap profiles over each window.
//
//	make build
//	go run ./cmd/bench-live -n 40,80 -warmup 5s -measure 30s
//	go run ./cmd/bench-live -bodycam /tmp/bodycam-old -n 40,80   # another build, the same way
//
// Everything shares the machine: the server, the simulator and the viewers'
// receiving (this process), so the table shows each one's CPU and the rest
// of the machine's.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bodycam/bodycam/internal/benchutil"
	"github.com/bodycam/bodycam/internal/whep"
)

// device is the simulator's first (and only) recorder.
const device = "sim-1"

// client makes the benchmark's own API calls: a server that stops answering
// fails the run instead of hanging it. (The viewers' WHEP requests are
// internal/whep's.)
var client = &http.Client{Timeout: 10 * time.Second}

// slowFPS: a viewer receiving fewer complete frames per second than this
// (of the clip's 30) is flagged as not really getting the stream.
const slowFPS = 25

type config struct {
	bin              string
	counts           []int
	warmup, measure  time.Duration
	baseline         time.Duration // window of the 0- and 1-viewer phases
	bframes          int
	parallel         int
	clipCache        string
	firstFrameWithin time.Duration
	liveWithin       time.Duration
	cpuProfile       string // the server's CPU profile over each window of N viewers, to <path>.<N>
	memProfile       string // the server's heap profile at the end of each window of N viewers, to <path>.<N>
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bodycam", "./bin/bodycam", "bodycam binary (make build)")
	counts := flag.String("n", "10,50,100", "numbers of viewers, comma-separated, each at least 2")
	flag.DurationVar(&c.warmup, "warmup", 5*time.Second, "time from the last viewer's first frame to the start of the window")
	flag.DurationVar(&c.measure, "measure", 30*time.Second, "measurement window per number of viewers")
	flag.DurationVar(&c.baseline, "baseline", 10*time.Second, "measurement window with 0 and with 1 viewer (the references for CPU per viewer)")
	flag.IntVar(&c.bframes, "bframes", 0, "the simulator's --bframes: 0 no B-frames (video passes through the relay); -1 the encoder's default, with B-frames (the relay transcodes video for viewers)")
	flag.IntVar(&c.parallel, "parallel", 10, "viewers dialled at the same time")
	flag.StringVar(&c.clipCache, "clip-cache", defaultClipCache(), "directory keeping the simulator's encoded clip between runs (empty: encode it in the temp dir each run)")
	flag.DurationVar(&c.firstFrameWithin, "first-frame-timeout", 10*time.Second, "how long viewers may take to show a first frame before they are counted as having none")
	flag.DurationVar(&c.liveWithin, "live-timeout", 2*time.Minute, "how long the simulated recorder may take to go live (the first run encodes its clip)")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write the server's CPU profile over each window of N viewers to this file, with .N suffixed (go tool pprof reads it)")
	flag.StringVar(&c.memProfile, "memprofile", "", "write the server's heap profile at the end of each window of N viewers to this file, with .N suffixed")
	flag.Parse()
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			// N = 1 is a reference phase of its own; CPU per viewer needs N > 1.
			fmt.Fprintf(os.Stderr, "bench-live: -n: %q is not a number of viewers of at least 2\n", s)
			os.Exit(2)
		}
		c.counts = append(c.counts, n)
	}
	if c.parallel < 1 {
		c.parallel = 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once (the children die with us: Pdeathsig)
	}()
	results, err := run(ctx, c)
	report(c, results)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench-live:", err)
		os.Exit(1)
	}
}

func defaultClipCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "bodycam-bench-live")
}

// bench is the running set-up: one server, one simulated recorder.
type bench struct {
	c          config
	api, token string
	viewToken  string // a supervisor's API token: the viewers sign in as one
	srv, sim   *benchutil.Child
}

// run starts the server and the simulator, measures every phase and stops
// them again, whatever happens. It returns the phases measured so far even
// on an error.
func run(ctx context.Context, c config) (results []result, err error) {
	if _, err := os.Stat(c.bin); err != nil {
		return nil, fmt.Errorf("bodycam binary: %v (run make build, or pass -bodycam)", err)
	}
	dir, err := os.MkdirTemp("", "bench-live-*")
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	defer func() {
		// The recording is big and useless; the logs explain a failure.
		os.RemoveAll(dataDir)
		if err != nil {
			err = fmt.Errorf("%w\n(the server's and the simulator's logs are kept in %s)", err, dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	httpAddr, rtspAddr, tcpAddr := freeTCP(), freeTCP(), freeTCP()
	udpAddr := freeUDP()
	if httpAddr == "" || rtspAddr == "" || tcpAddr == "" || udpAddr == "" {
		return nil, errors.New("no free loopback port")
	}
	b := &bench{c: c, api: "http://" + httpAddr}
	b.srv, err = benchutil.StartChild("bodycam serve", filepath.Join(dir, "serve.log"), c.bin, "serve", "--data-dir", dataDir,
		"--http-addr", httpAddr, "--rtsp-addr", rtspAddr, "--rtsp-udp-addr", "",
		"--webrtc-udp-addr", udpAddr, "--webrtc-tcp-addr", tcpAddr,
		"--live-max-sessions", "1000", "--live-max-per-user", "1000", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer b.srv.Stop(20 * time.Second)
	if err := b.waitHealthy(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		return nil, fmt.Errorf("admin token: %v", err)
	}
	b.token = strings.TrimSpace(string(tok))
	// Admins watch nothing: the viewers are a supervisor's sessions.
	if b.viewToken, err = supervisorToken(ctx, b.api, b.token); err != nil {
		return nil, fmt.Errorf("a supervisor's token for the viewers: %v", err)
	}

	// The simulator encodes its clip with ffmpeg into <data-dir>/sim once;
	// pointing that at a lasting directory saves the encoding (and its CPU)
	// on later runs.
	if c.clipCache != "" {
		if err := os.MkdirAll(c.clipCache, 0o750); err != nil {
			return nil, fmt.Errorf("clip-cache: %v", err)
		}
		if err := os.Symlink(c.clipCache, filepath.Join(dataDir, "sim")); err != nil {
			return nil, fmt.Errorf("clip-cache: %v", err)
		}
	}
	// The simulator stops by itself after twice the planned run (should the
	// benchmark vanish without stopping it); normally it is stopped below.
	planned := 2*(c.warmup+c.baseline) + 2*time.Minute
	for range c.counts {
		planned += c.warmup + c.measure + c.firstFrameWithin + time.Minute
	}
	b.sim, err = benchutil.StartChild("bodycam simulate", filepath.Join(dir, "simulate.log"), c.bin, "simulate", "--api", b.api,
		"--data-dir", dataDir, "--devices", "1", "--mode", "clip", "--bframes", strconv.Itoa(c.bframes),
		"--duration", (2 * planned).String())
	if err != nil {
		return nil, err
	}
	defer b.sim.Stop(10 * time.Second)
	codecs, err := b.waitLive(ctx, c.liveWithin)
	if err != nil {
		return nil, err
	}
	progress("%s is live (%s); server pid %d, simulator pid %d", device, strings.Join(codecs, " + "), b.srv.Pid(), b.sim.Pid())
	// Let the relay see a few GOPs: it keeps the current one for fast
	// start, and decides on transcoding video once it has seen B-frames.
	if err := sleep(ctx, 3*time.Second); err != nil {
		return nil, err
	}

	// 0 and 1 viewer first: the references of CPU per viewer.
	counts := append([]int{0, 1}, c.counts...)
	for i, n := range counts {
		window := c.measure
		if i < 2 {
			window = c.baseline
		}
		r, err := b.phase(ctx, n, window)
		if err != nil {
			return results, fmt.Errorf("%d viewers: %w", n, err)
		}
		results = append(results, r)
		if r.viewers == 0 {
			progress("0 viewers: server CPU %.1f %%", r.serverCPU)
			continue
		}
		progress("%d viewers: server CPU %.1f %%, added latency p50 %s, received %.2f Mbit/s %.1f fps (min %.1f)",
			r.viewers, r.serverCPU, r.video.p50, r.mbps, r.fpsMean, r.fpsMin)
	}
	return results, nil
}

// result is one phase: what N viewers cost and got, over its window.
type result struct {
	viewers int
	window  float64 // seconds

	// CPU in % of one core over the window.
	serverCPU, simCPU, benchCPU, machineCPU, otherCPU float64
	cpus                                              int
	rss                                               float64 // the server's peak, bytes
	rssEnd                                            float64 // the server's at the end of the window, bytes
	goroutines                                        float64 // the server's go_goroutines at the end of the window

	// The server's histograms and counters, window deltas. delay is of
	// every unit sent live (video and audio); video of video units only,
	// if the server's histogram has a kind label (byKind), else the same.
	sends             float64 // units sent to viewers live (the delay histogram's count)
	delay, video      latency
	audio             latency // if byKind
	byKind            bool
	videoUnitsPerView float64 // video units sent per viewer per second
	dropped           float64 // lost by slow viewers
	droppedBefore     float64 // the same while the viewers connected and warmed up
	udpDrops          float64 // the machine's UDP receive-buffer drops
	udpViewers        float64 // of those, on the viewers' sockets
	udpServer         float64 // on the server's
	viewersDropping   int     // sessions with dropped units since they started
	droppedTranscoder float64
	errors            map[string]float64 // relay errors by kind, from the first dial to the window's end
	transcoders       float64            // gauge at the end of the window
	serverFirstP50    benchutil.Quant    // bodycam_live_first_frame_seconds while the viewers connected
	serverFirstP99    benchutil.Quant
	serverFirstCount  float64

	// What the viewers (this process) got.
	firstP50, firstMax   time.Duration // answer → first complete keyframe
	firstP99             time.Duration
	iceP50, iceP99       time.Duration // answer → ICE connected
	connP50, connP99     time.Duration // answer → DTLS up too
	firstHist            [4]int        // viewers by first frame: < 100 ms, < 500 ms, < 1 s, later
	noPicture            int           // viewers without a keyframe within -first-frame-timeout
	mbps                 float64       // mean per viewer, video
	fpsMean, fpsMin      float64
	slow                 int    // viewers under slowFPS
	connected            int    // sessions the server lists as connected
	sentVideo, sentAudio string // what the server says it sends
	hangupErrors         int
}

// phase opens n viewers, waits for their first frames and the warm-up,
// measures over window, and hangs them up again.
func (b *bench) phase(ctx context.Context, n int, window time.Duration) (r result, err error) {
	r.viewers = n
	atOpen, err := benchutil.Scrape(b.api + "/metrics")
	if err != nil {
		return r, err
	}
	var viewers []*whep.Viewer
	if n > 0 {
		progress("%d viewers: dialling (%d at a time)", n, b.c.parallel)
		viewers, err = b.open(ctx, n)
		if err != nil {
			return r, err
		}
		defer func() {
			r.hangupErrors = closeAll(viewers, b.c.parallel)
			if err == nil {
				err = b.waitNoViewers(ctx)
			}
		}()
		b.waitFirstFrames(ctx, viewers)
	}
	if err := b.sleepAlive(ctx, b.c.warmup); err != nil {
		return r, err
	}

	start, err := b.snapshot(viewers)
	if err != nil {
		return r, err
	}
	var profiled chan error
	if b.c.cpuProfile != "" && n > 1 {
		profiled = make(chan error, 1)
		go func() {
			profiled <- b.profile(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(window.Seconds())),
				fmt.Sprintf("%s.%d", b.c.cpuProfile, n))
		}()
	}
	for time.Since(start.at) < window {
		if err := b.sleepAlive(ctx, time.Second); err != nil {
			return r, err
		}
		r.rss = math.Max(r.rss, benchutil.RSS(b.srv.Pid()))
	}
	end, err := b.snapshot(viewers)
	if err != nil {
		return r, err
	}
	r.rssEnd = benchutil.RSS(b.srv.Pid())
	r.rss = math.Max(r.rss, r.rssEnd)
	if profiled != nil {
		if err := <-profiled; err != nil {
			return r, fmt.Errorf("CPU profile: %w", err)
		}
	}
	if b.c.memProfile != "" && n > 1 {
		if err := b.profile(ctx, "/debug/pprof/heap", fmt.Sprintf("%s.%d", b.c.memProfile, n)); err != nil {
			return r, fmt.Errorf("heap profile: %w", err)
		}
	}
	var listed []viewerInfo
	if err := b.getJSON(ctx, "/api/v1/live/viewers", &struct {
		Items *[]viewerInfo `json:"items"`
	}{&listed}); err != nil {
		return r, err
	}

	// CPU over the window.
	r.window = end.at.Sub(start.at).Seconds()
	pct := func(a, b float64) float64 { return (b - a) / r.window * 100 }
	r.serverCPU, r.simCPU, r.benchCPU = pct(start.server, end.server), pct(start.sim, end.sim), pct(start.self, end.self)
	r.cpus = end.cpus
	r.machineCPU = (end.busy - start.busy) / (end.total - start.total) * float64(end.cpus) * 100
	r.otherCPU = r.machineCPU - r.serverCPU - r.simCPU - r.benchCPU

	// The server's view of the window.
	d := benchutil.Delta(end.metrics, start.metrics)
	const delay = "bodycam_live_send_delay_seconds"
	r.delay = latencyOf(benchutil.Hist(d, delay, nil))
	r.sends = benchutil.Hist(d, delay, nil).Count()
	r.video, r.byKind = r.delay, benchutil.HasLabel(d, delay, "kind")
	if r.byKind {
		r.video = latencyOf(benchutil.Hist(d, delay, map[string]string{"kind": "video"}))
		r.audio = latencyOf(benchutil.Hist(d, delay, map[string]string{"kind": "audio"}))
	}
	r.dropped = d[`bodycam_live_dropped_units_total{who="viewer"}`]
	r.udpDrops = end.udpDrops - start.udpDrops
	r.udpViewers, r.udpServer = end.udpViewers-start.udpViewers, end.udpServer-start.udpServer
	r.droppedTranscoder = d[`bodycam_live_dropped_units_total{who="transcoder"}`]
	r.errors = map[string]float64{}
	for k, v := range benchutil.Delta(end.metrics, atOpen) {
		if strings.HasPrefix(k, "bodycam_live_errors_total") && v > 0 {
			r.errors[k] = v
		}
	}
	r.transcoders = end.metrics["bodycam_live_transcoders"]
	r.goroutines = end.metrics["go_goroutines"]
	if n > 0 {
		r.videoUnitsPerView = d[`bodycam_live_sent_units_total{kind="video"}`] / r.window / float64(n)
		// First frames happened while the viewers connected, before the
		// window: count them from before the first dial.
		f := benchutil.Delta(start.metrics, atOpen)
		const first = "bodycam_live_first_frame_seconds"
		h := benchutil.Hist(f, first, nil)
		r.serverFirstP50, r.serverFirstP99, r.serverFirstCount = h.Quantile(0.5), h.Quantile(0.99), h.Count()
		r.droppedBefore = f[`bodycam_live_dropped_units_total{who="viewer"}`]
	}

	// The viewers' view.
	var firsts, ices, conns []time.Duration
	var mbpsSum, fpsSum float64
	r.fpsMin = math.MaxFloat64 // shown only with viewers
	for i, v := range viewers {
		st := v.Stats()
		if st.ICEConnected > 0 {
			ices = append(ices, st.ICEConnected)
		}
		if st.Connected > 0 {
			conns = append(conns, st.Connected)
		}
		if st.FirstKeyframe > 0 {
			firsts = append(firsts, st.FirstKeyframe)
			switch {
			case st.FirstKeyframe < 100*time.Millisecond:
				r.firstHist[0]++
			case st.FirstKeyframe < 500*time.Millisecond:
				r.firstHist[1]++
			case st.FirstKeyframe < time.Second:
				r.firstHist[2]++
			default:
				r.firstHist[3]++
			}
		}
		fps := float64(end.frames[i]-start.frames[i]) / r.window
		mbpsSum += float64(end.bytes[i]-start.bytes[i]) * 8 / r.window / 1e6
		fpsSum += fps
		r.fpsMin = min(r.fpsMin, fps)
		if fps < slowFPS {
			r.slow++
		}
	}
	r.noPicture = n - len(firsts)
	if len(firsts) > 0 {
		slices.Sort(firsts)
		r.firstP50, r.firstP99, r.firstMax = quantile(firsts, 0.5), quantile(firsts, 0.99), firsts[len(firsts)-1]
	}
	if len(ices) > 0 {
		slices.Sort(ices)
		r.iceP50, r.iceP99 = quantile(ices, 0.5), quantile(ices, 0.99)
	}
	if len(conns) > 0 {
		slices.Sort(conns)
		r.connP50, r.connP99 = quantile(conns, 0.5), quantile(conns, 0.99)
	}
	if n > 0 {
		r.mbps, r.fpsMean = mbpsSum/float64(n), fpsSum/float64(n)
	}
	var videos, audios []string
	for _, v := range listed {
		if v.Connected {
			r.connected++
		}
		if v.Dropped > 0 {
			r.viewersDropping++
		}
		if !slices.Contains(videos, v.Video) {
			videos = append(videos, v.Video)
		}
		if !slices.Contains(audios, v.Audio) {
			audios = append(audios, v.Audio)
		}
	}
	r.sentVideo, r.sentAudio = strings.Join(videos, ", "), strings.Join(audios, ", ")
	return r, nil
}

type viewerInfo struct {
	Video     string `json:"video"`
	Audio     string `json:"audio"`
	Connected bool   `json:"connected"`
	Dropped   uint64 `json:"dropped_units"`
}

// latency is what the send-delay histogram says: p50, p99 and the share
// within the 50 ms target (exact: 50 ms is a bucket bound).
type latency struct {
	p50, p99 benchutil.Quant
	within50 float64
}

func latencyOf(h benchutil.Histogram) latency {
	return latency{p50: h.Quantile(0.5), p99: h.Quantile(0.99), within50: h.Within(targetDelayP50)}
}

// snapshot is the state at one end of a window.
type snapshot struct {
	at                time.Time
	server, sim, self float64 // CPU seconds
	busy, total       float64 // machine CPU ticks
	cpus              int
	udpDrops          float64 // the machine's
	udpViewers        float64 // this process's sockets
	udpServer         float64
	metrics           map[string]float64
	frames, bytes     []int // per viewer
}

func (b *bench) snapshot(viewers []*whep.Viewer) (snapshot, error) {
	m, err := benchutil.Scrape(b.api + "/metrics")
	if err != nil {
		return snapshot{}, err
	}
	s := snapshot{at: time.Now(), metrics: m, server: benchutil.CPUSeconds(b.srv.Pid()), sim: benchutil.CPUSeconds(b.sim.Pid()),
		self: benchutil.CPUSeconds(os.Getpid())}
	s.busy, s.total, s.cpus = benchutil.MachineBusy()
	s.udpDrops = udpErrors()
	s.udpViewers, s.udpServer = udpSocketDrops(os.Getpid()), udpSocketDrops(b.srv.Pid())
	for _, v := range viewers {
		st := v.Stats()
		s.frames, s.bytes = append(s.frames, st.Frames), append(s.bytes, st.VideoBytes)
	}
	return s, nil
}

// open dials n viewers, parallel at a time (as supervisors opening a
// stream at once would, but without a storm that only measures ICE
// set-up). On an error it hangs up those it opened.
func (b *bench) open(ctx context.Context, n int) ([]*whep.Viewer, error) {
	url := b.api + "/api/v1/live/" + device + "/whep"
	viewers := make([]*whep.Viewer, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, b.c.parallel)
	for i := range viewers {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			v, err := whep.Dial(dctx, url, whep.Options{Token: b.viewToken})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("viewer %d: %w", i+1, err)
			}
			viewers[i] = v
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		closeAll(viewers, b.c.parallel)
		return nil, firstErr
	}
	return viewers, nil
}

// waitFirstFrames waits until every viewer has a complete keyframe, or for
// -first-frame-timeout; the phase counts those still without one.
func (b *bench) waitFirstFrames(ctx context.Context, viewers []*whep.Viewer) {
	deadline := time.Now().Add(b.c.firstFrameWithin)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		missing := 0
		for _, v := range viewers {
			if v.Stats().FirstKeyframe == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// closeAll hangs up every viewer (WHEP DELETE) and returns how many
// hang-ups failed.
func closeAll(viewers []*whep.Viewer, parallel int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
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
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

// waitNoViewers checks that the server lists no viewing session any more,
// so that the next phase measures only its own viewers.
func (b *bench) waitNoViewers(ctx context.Context) error {
	var items []json.RawMessage
	for range 50 {
		items = nil
		if err := b.getJSON(ctx, "/api/v1/live/viewers", &struct {
			Items *[]json.RawMessage `json:"items"`
		}{&items}); err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%d viewing sessions still listed 10 s after every viewer hung up", len(items))
}

func (b *bench) waitHealthy(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b.srv.Exited() {
			return b.srv.Failure()
		}
		if resp, err := client.Get(b.api + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the server is not healthy (%s/healthz) within %v; the end of its log:\n%s", b.api, within, b.srv.Tail(20))
}

// waitLive waits until the server lists the device as live and returns its
// codecs.
func (b *bench) waitLive(ctx context.Context, within time.Duration) ([]string, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b.sim.Exited() {
			return nil, b.sim.Failure()
		}
		var live []struct {
			DeviceID string   `json:"device_id"`
			Codecs   []string `json:"codecs"`
		}
		if err := b.getJSON(ctx, "/api/v1/live", &struct {
			Items *[]struct {
				DeviceID string   `json:"device_id"`
				Codecs   []string `json:"codecs"`
			} `json:"items"`
		}{&live}); err != nil {
			return nil, err
		}
		for _, l := range live {
			if l.DeviceID == device {
				return l.Codecs, nil
			}
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s never went live within %v (the simulator encodes its clip with ffmpeg first); the end of its log:\n%s\nthe server's:\n%s",
		device, within, b.sim.Tail(20), b.srv.Tail(20))
}

// quantile of sorted durations: the nearest rank (the smallest value with
// at least q of them at or below it), so p99 of 80 viewers is the 80th.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// profile saves one of the server's pprof endpoints (admin only) to path.
// A CPU profile answers when its seconds are over.
func (b *bench) profile(ctx context.Context, endpoint, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", b.api+endpoint, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultClient.Do(req) // no timeout: a profile takes the window
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", endpoint, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (b *bench) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", b.api+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// sleepAlive sleeps, failing early if the server or the simulator exits
// (a measurement without them would be meaningless).
func (b *bench) sleepAlive(ctx context.Context, d time.Duration) error {
	end := time.Now().Add(d)
	for {
		for _, c := range []*benchutil.Child{b.srv, b.sim} {
			if c.Exited() {
				return c.Failure()
			}
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		if err := sleep(ctx, min(left, 500*time.Millisecond)); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
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

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// supervisorToken makes a supervisor (with the admin token) and returns an
// API token of theirs, made as a user makes one: password sign-in (the first
// time replacing the password the admin set), then a token in that session.
func supervisorToken(ctx context.Context, api, admin string) (string, error) {
	const user, initial, pw = "bench-supervisor", "bench supervisor password", "bench supervisor's own password"
	do := func(method, path, body string, prep func(*http.Request)) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, api+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		prep(req)
		return client.Do(req)
	}
	resp, err := do("POST", "/api/v1/users", `{"id":"`+user+`","role":"supervisor","password":"`+initial+`"}`,
		func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+admin) })
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	created := resp.StatusCode == http.StatusCreated
	if !created && resp.StatusCode != http.StatusConflict {
		return "", fmt.Errorf("create %s: %s", user, resp.Status)
	}
	signIn := pw // an earlier run replaced the admin's password
	if created {
		signIn = initial
	}
	resp, err = do("POST", "/api/v1/session", `{"user":"`+user+`","password":"`+signIn+`"}`, func(*http.Request) {})
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("sign in as %s: %s", user, resp.Status)
	}
	if created {
		// The password the admin set is replaced before anything else; the
		// session goes on under a new cookie.
		first := resp.Cookies()
		resp, err = do("POST", "/api/v1/users/"+user+"/password", `{"current_password":"`+initial+`","password":"`+pw+`"}`, func(r *http.Request) {
			for _, c := range first {
				r.AddCookie(c)
			}
			r.Header.Set("X-Bodycam-Console", "1")
		})
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return "", fmt.Errorf("new password for %s: %s", user, resp.Status)
		}
	}
	cookies := resp.Cookies()
	resp, err = do("POST", "/api/v1/tokens", `{"name":"bench-live"}`, func(r *http.Request) {
		for _, c := range cookies {
			r.AddCookie(c)
		}
		r.Header.Set("X-Bodycam-Console", "1")
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil || out.Token == "" {
		return "", fmt.Errorf("API token for %s: %s", user, resp.Status)
	}
	return out.Token, nil
}
