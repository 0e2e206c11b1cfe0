// Command bench-ingest measures the ingest role under load: N simulated
// recorders (a pre-encoded 720p30 ~4 Mbit/s H.264 + AAC clip, looped in real
// time) publish over TCP loopback to `bodycam serve` with a real MinIO
// backend. It reports the server's CPU per stream (% of one core), RSS per
// stream, and the time from segment close to durable (p50/p99, from the
// server's histogram). See docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bodycam/bodycam/internal/benchutil"
	"github.com/bodycam/bodycam/internal/testsvc"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bodycam", "./bin/bodycam", "bodycam binary")
	counts := flag.String("n", "10,50,100", "numbers of recorders, comma-separated")
	flag.DurationVar(&o.warmup, "warmup", 15*time.Second, "time before measuring")
	flag.DurationVar(&o.measure, "measure", 60*time.Second, "measurement window")
	flag.DurationVar(&o.segment, "segment-duration", 4*time.Second, "the server's --segment-duration")
	flag.DurationVar(&o.stagger, "stagger", 4*time.Second, "the simulator's --stagger: recorders' starts spread over this long")
	flag.StringVar(&o.logLevel, "log-level", "warn", "the server's --log-level (debug logs waits for upload slots with what the holders do)")
	flag.StringVar(&o.serveLog, "serve-log", "", "copy the server's log here at the end")
	flag.StringVar(&o.minioDir, "minio-dir", "", "where MinIO keeps its data (default: the temporary directory, the spool's disk); a diagnostic to give MinIO a disk of its own")
	flag.Float64Var(&o.loss, "loss", 0, "the simulator's --loss: share of RTP packets each recorder drops (a bad uplink)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the server's CPU profile over the window to this file, with -n suffixed (go tool pprof reads it)")
	flag.StringVar(&o.memProfile, "memprofile", "", "write the server's heap profile at the end of the window (in use and allocated since start) to this file, with -n suffixed")
	flag.StringVar(&o.store, "store", "minio", "the object store: minio (a MinIO server on a loopback port) or dir (the embedded default, a directory on the spool's disk)")
	flag.IntVar(&o.workerLoad, "worker-load", 0, "run the server with this many job workers (--workers) kept busy: before the recorders start, 4 recorders publish 90 s each whose closed recordings queue their posters, thumbnails and sprites (review proxies are made on demand since 2026-12-02: the documented run, at 1bfd4a8, also had their 4 proxies); the window must still lose nothing (0: --workers 0, no jobs)")
	flag.Parse()
	if o.store != "minio" && o.store != "dir" {
		fail(fmt.Errorf("-store: want minio or dir, got %q", o.store))
	}
	fmt.Printf("%s, store %s\n\n", o.bin, o.store)
	fmt.Printf("| recorders | received | server CPU (%% of one core) | CPU per stream | RSS | RSS per stream | close→durable p50 | p99 | machine CPU (of 200%%) | MinIO CPU | simulator CPU | goroutines | reads per packet | segments | gaps | lost packets | load average |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fail(err)
		}
		r, err := run(o, n)
		if err != nil {
			fail(err)
		}
		minio := "—"
		if o.store == "minio" {
			minio = fmt.Sprintf("%.0f%%", r.minio)
		}
		fmt.Printf("| %d | %.0f Mbit/s | %.1f | %.2f | %.0f MiB | %.2f MiB | %s | %s | %.0f%% | %s | %.0f%% | %d | %.2f | %d | %d | %d | %s |\n", n, r.mbps, r.cpu, r.cpu/float64(n),
			r.rss/(1<<20), (r.rss-r.baseRSS)/(1<<20)/float64(n), r.p50, r.p99, r.machine, minio, r.sim, r.goroutines, r.readsPerPacket, r.segments, r.gaps, r.lost, r.load)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-ingest:", err)
	os.Exit(1)
}

type result struct {
	cpu, rss, baseRSS float64
	mbps              float64 // RTP payload received during the window
	machine, minio    float64 // % of one core
	sim               float64
	p50, p99          benchutil.Quant
	segments          int
	gaps, lost        int
	goroutines        int     // the server's, at the end of the window
	readsPerPacket    float64 // the server's read system calls (all of them) per RTP packet received, in the window
	load              string  // the machine's 1, 5 and 15 minute load averages at the end of the window
}

// options are the command's flags.
type options struct {
	bin                          string
	warmup, measure              time.Duration
	segment, stagger             time.Duration
	minioDir, logLevel, serveLog string
	cpuProfile, memProfile       string
	store                        string // minio or dir
	loss                         float64
	workerLoad                   int
}

func run(o options, n int) (result, error) {
	var r result
	bin, warmup, measure, segment, stagger, logLevel, serveLog := o.bin, o.warmup, o.measure, o.segment, o.stagger, o.logLevel, o.serveLog
	dir, _ := os.MkdirTemp("", "bench-ingest-*")
	defer os.RemoveAll(dir)
	httpPort, _ := testsvc.FreePort()
	rtspPort, _ := testsvc.FreePort()
	api := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	serve := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--rtsp-addr", fmt.Sprintf("127.0.0.1:%d", rtspPort),
		"--rtsp-udp-addr", "", "--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0", "--segment-duration", segment.String(), "--log-level", logLevel,
		"--workers", strconv.Itoa(o.workerLoad))
	minioPid := func() int { return 0 }
	if o.store == "minio" {
		m, err := testsvc.StartMinIOIn(o.minioDir)
		if err != nil {
			return r, err
		}
		defer m.Close()
		minioPid = m.Pid
		serve.Args = append(serve.Args, "--s3-endpoint", m.Endpoint, "--s3-access-key", m.AccessKey, "--s3-secret-key", m.SecretKey, "--s3-bucket", "bench")
	}
	logf, _ := os.Create(filepath.Join(dir, "serve.log"))
	if serveLog != "" {
		defer func() {
			if b, err := os.ReadFile(filepath.Join(dir, "serve.log")); err == nil {
				os.WriteFile(serveLog, b, 0o644)
			}
		}()
	}
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		return r, err
	}
	defer func() { serve.Process.Signal(os.Interrupt); serve.Wait() }()
	for i := 0; ; i++ {
		if resp, err := http.Get(api + "/healthz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if i > 200 {
			return r, fmt.Errorf("server not healthy")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if o.workerLoad > 0 {
		// Footage for the workers: 4 recordings of 90 s, closed before the
		// measured recorders start, whose jobs run through the window.
		load := exec.Command(bin, "simulate", "--api", api, "--data-dir", filepath.Join(dir, "data"), "--prefix", "load-",
			"--devices", "4", "--mode", "clip", "--duration", "90s", "--stagger", "1s")
		load.Stdout, load.Stderr = io.Discard, logf
		if err := load.Run(); err != nil {
			return r, fmt.Errorf("worker load: %w", err)
		}
		time.Sleep(2*segment + 3*time.Second) // the recordings closed and stored: their jobs queued
	}
	r.baseRSS = benchutil.RSS(serve.Process.Pid)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The recorders run well past the window: when they stop, every
	// recording's last segment closes at once and its manifest is written,
	// a burst that is not the steady state the window measures.
	sim := exec.CommandContext(ctx, bin, "simulate", "--api", api, "--data-dir", filepath.Join(dir, "data"),
		"--devices", strconv.Itoa(n), "--mode", "clip", "--duration", (warmup + measure + 60*time.Second).String(),
		"--stagger", stagger.String())
	if o.loss > 0 {
		sim.Args = append(sim.Args, "--loss", strconv.FormatFloat(o.loss, 'f', -1, 64))
	}
	sim.Stdout, sim.Stderr = io.Discard, logf
	if err := sim.Start(); err != nil {
		return r, err
	}
	time.Sleep(warmup)
	before, err := benchutil.Scrape(api + "/metrics")
	if err != nil {
		return r, err
	}
	m0 := minioPid()
	c0, t0 := benchutil.CPUSeconds(serve.Process.Pid), time.Now()
	var mc0 float64
	if m0 != 0 {
		mc0 = benchutil.CPUSeconds(m0)
	}
	sc0 := benchutil.CPUSeconds(sim.Process.Pid)
	r0 := readCalls(serve.Process.Pid)
	busy0, total0, _ := benchutil.MachineBusy()
	profiled := make(chan error, 1)
	if o.cpuProfile != "" {
		go func() {
			profiled <- profile(api, filepath.Join(dir, "data", "admin-token"), measure, fmt.Sprintf("%s.%d", o.cpuProfile, n))
		}()
	} else {
		profiled <- nil
	}
	var rssMax float64
	for time.Since(t0) < measure {
		time.Sleep(time.Second)
		rssMax = math.Max(rssMax, benchutil.RSS(serve.Process.Pid))
	}
	window := time.Since(t0).Seconds()
	r.cpu = (benchutil.CPUSeconds(serve.Process.Pid) - c0) / window * 100
	if m0 != 0 {
		r.minio = (benchutil.CPUSeconds(m0) - mc0) / window * 100
	}
	r.sim = (benchutil.CPUSeconds(sim.Process.Pid) - sc0) / window * 100
	reads := readCalls(serve.Process.Pid) - r0
	busy1, total1, cpus := benchutil.MachineBusy()
	r.machine = (busy1 - busy0) / (total1 - total0) * float64(cpus) * 100
	r.rss = rssMax
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			r.load = strings.Join(f[:3], " ")
		}
	}
	if err := <-profiled; err != nil {
		return r, fmt.Errorf("cpu profile: %w", err)
	}
	if o.memProfile != "" {
		if err := fetch(api, filepath.Join(dir, "data", "admin-token"), "/debug/pprof/heap", fmt.Sprintf("%s.%d", o.memProfile, n)); err != nil {
			return r, fmt.Errorf("heap profile: %w", err)
		}
	}
	after, err := benchutil.Scrape(api + "/metrics")
	if err != nil {
		return r, err
	}
	r.goroutines = int(after["go_goroutines"])
	if pkts := after["bodycam_ingest_received_packets_total"] - before["bodycam_ingest_received_packets_total"]; pkts > 0 {
		r.readsPerPacket = reads / pkts
	}
	r.mbps = (after["bodycam_ingest_received_bytes_total"] - before["bodycam_ingest_received_bytes_total"]) * 8 / window / 1e6
	// The quantiles are the window's alone: what the histograms gained
	// between the two scrapes. Not the warm-up's connection storm, and not
	// the burst at the end, when every recorder stops at once and every
	// recording's last segment and manifest are stored together (reported
	// apart below).
	windowed := benchutil.Delta(after, before)
	if o.workerLoad > 0 {
		var done, busy float64
		for k, v := range windowed {
			if strings.HasPrefix(k, "bodycam_jobs_finished_total") && strings.Contains(k, `outcome="done"`) {
				done += v
			}
		}
		busy = after["bodycam_jobs_busy"]
		var queued float64
		for k, v := range after {
			if strings.HasPrefix(k, "bodycam_jobs{") && strings.Contains(k, `state="queued"`) {
				queued += v
			}
		}
		fmt.Fprintf(os.Stderr, "n=%d worker load: %.0f jobs done in the window, %.0f workers busy and %.0f jobs queued at its end\n", n, done, busy, queued)
	}
	durable := benchutil.Hist(windowed, "bodycam_segment_durable_seconds", nil)
	r.p50, r.p99 = durable.Quantile(0.5), durable.Quantile(0.99)
	for k, v := range windowed {
		if strings.HasPrefix(k, "bodycam_ingest_errors_total") || strings.HasPrefix(k, "bodycam_ingest_backpressure_total") {
			fmt.Fprintf(os.Stderr, "n=%d in the window: %s %v\n", n, k, v)
		}
	}
	for _, step := range []string{"spool_close", "wait", "slot", "hold", "scan", "put", "catalog"} {
		h := benchutil.Hist(windowed, "bodycam_upload_step_seconds", map[string]string{"step": step})
		fmt.Fprintf(os.Stderr, "n=%d upload step %s: p50 %s p99 %s\n", n, step, h.Quantile(0.5), h.Quantile(0.99))
	}
	// Stop the recorders and let the last segments drain: every segment
	// must be stored, and the stop burst is worth knowing too.
	cancel()
	sim.Wait()
	time.Sleep(2*segment + 3*time.Second)
	metrics, err := benchutil.Scrape(api + "/metrics")
	if err != nil {
		return r, err
	}
	burst := benchutil.Hist(benchutil.Delta(metrics, after), "bodycam_segment_durable_seconds", nil)
	fmt.Fprintf(os.Stderr, "n=%d when all %d recorders stop at once: close->durable p50 %s p99 %s\n", n, n,
		burst.Quantile(0.5), burst.Quantile(0.99))
	r.segments = int(metrics["bodycam_segments_stored_total"])
	r.lost = int(metrics["bodycam_ingest_lost_packets_total"])
	for k, v := range metrics {
		if strings.HasPrefix(k, "bodycam_recording_gaps_total") {
			r.gaps += int(v)
		}
	}
	return r, nil
}

// readCalls is how many read system calls a process has made (syscr in
// /proc/<pid>/io: every read, recv and pread, those that found nothing
// included).
func readCalls(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr:"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n
		}
	}
	return 0
}

// profile saves the server's CPU profile over d.
func profile(api, tokenFile string, d time.Duration, path string) error {
	return fetch(api, tokenFile, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())), path)
}

// fetch saves what the server's admin-only endpoint answers to path.
func fetch(api, tokenFile, endpoint, path string) error {
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest("GET", api+endpoint, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
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
