package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/benchutil"
	"github.com/bodycam/bodycam/internal/testsvc"
	"github.com/bodycam/bodycam/simulate"
)

// benchEnv is what the runs share: the services, the recorders (registered
// once, so every run publishes the same devices) and the clip.
type benchEnv struct {
	o     options
	s     shared
	minio *testsvc.MinIO
	redis *testsvc.Redis
	pg    *database
	clip  *simulate.Clip
	recs  []recorder
	cat   *catalog.Catalog
}

func (e *benchEnv) closeCatalog() {
	if e.cat != nil {
		e.cat.Close()
	}
}

// result is one run's measurements.
type result struct {
	spec     runSpec
	n        int
	window   float64 // seconds
	cpu      float64 // every node together, % of one core
	perNode  []float64
	minio    float64
	postgres float64
	redisCPU float64
	bench    float64 // the recorders (this process)
	machine  float64 // % of one core, of 100 × cores
	cores    int
	load     [2]float64 // 1-minute load average at the window's start and end
	redisOps float64    // commands per second, the bench's own left out
	topCmds  string
	p50, p99 benchutil.Quant
	segments int
	mbps     float64
	gaps     int
	lost     int
	spread   map[string]int // publishers per node at the start of the window
	failover *failover
}

// failover is what the kill -9 of one node showed.
type failover struct {
	victim       string
	devices      int           // publishing on it when it was killed
	seenDown     time.Duration // GET /api/v1/nodes on a survivor says down
	firstMoved   time.Duration // one of its devices listed on another node
	allMoved     time.Duration // every one of them
	interrupted  time.Duration // every recording it held is interrupted in the catalog
	liveAfter    int           // publishers listed at the end, of n
	pollInterval time.Duration
}

// steady is how long after their start the nodes' Redis traffic is steady:
// cluster.Options' NodeTTL (15 s) and heartbeat period (5 s), and 5 s more.
const steady = 25 * time.Second

// run starts spec.nodes nodes, publishes every recorder to them, measures
// the window, then (several nodes) kills one and times the failover.
func (e *benchEnv) run(ctx context.Context, spec runSpec, index int) (result, error) {
	r := result{spec: spec, n: e.o.n}
	tag := fmt.Sprintf("run%d-", index+1)
	var nodes []*node
	defer func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); n.stop() }()
		}
		wg.Wait()
	}()
	started := time.Now()
	for i := 0; i < spec.nodes; i++ {
		n, err := startNode(ctx, e.s, tag+string(rune('a'+i)), spec.local)
		if err != nil {
			return r, err
		}
		nodes = append(nodes, n)
	}
	if e.recs == nil {
		for i := 1; i <= e.o.n; i++ {
			id := fmt.Sprintf("bench-%03d", i)
			pw, err := register(ctx, nodes[0], e.s.admin, id)
			if err != nil {
				return r, err
			}
			e.recs = append(e.recs, recorder{id: id, password: pw})
		}
	}
	recs := make([]recorder, len(e.recs))
	for i, rec := range e.recs {
		rec.home = i % len(nodes)
		recs[i] = rec
	}
	pctx, stopRecorders := context.WithCancel(ctx)
	wg := publishAll(pctx, recs, nodes, e.clip, e.o.stagger, e.o.retry)
	defer wg.Wait()
	defer stopRecorders()

	where, err := e.waitLive(ctx, nodes[0], e.o.n, 60*time.Second+e.o.stagger, func(map[string]publisher) bool { return true })
	if err != nil {
		return r, err
	}
	r.spread = map[string]int{}
	for _, p := range where {
		r.spread[p.Node]++
	}
	fmt.Fprintf(os.Stderr, "%s node(s): every recorder live %v; warming up %v\n", spec, r.spread, e.o.warmup)
	if err := sleep(ctx, e.o.warmup); err != nil {
		return r, err
	}
	// A node reaps dead nodes only once its own heartbeats have answered
	// for a node's TTL and a period (15 s + 5 s): the window starts after
	// that, so that it holds the reaper's steady Redis traffic.
	if wait := time.Until(started.Add(steady)); wait > 0 && !spec.local {
		fmt.Fprintf(os.Stderr, "%s node(s): %v more, until the nodes have been up %v\n", spec, wait.Round(time.Second), steady)
		if err := sleep(ctx, wait); err != nil {
			return r, err
		}
	}
	if err := e.measure(ctx, nodes, &r); err != nil {
		return r, err
	}
	if spec.nodes > 1 && e.o.kill {
		f, err := e.killOne(ctx, nodes)
		if err != nil {
			return r, err
		}
		r.failover = f
	}
	return r, nil
}

// waitLive polls GET /api/v1/live on n until at least want publishers are
// listed (and ok accepts them).
func (e *benchEnv) waitLive(ctx context.Context, n *node, want int, within time.Duration, ok func(map[string]publisher) bool) (map[string]publisher, error) {
	deadline := time.Now().Add(within)
	for {
		now, err := live(ctx, n, e.s.admin)
		if err == nil && len(now) >= want && ok(now) {
			return now, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d recorders live after %v (%v)", len(now), want, within, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// measure fills r with what the window shows. Nothing in the window asks
// the nodes' API (which would cost Redis commands): the metrics are read
// just outside the Redis samples, which bracket the CPU samples.
func (e *benchEnv) measure(ctx context.Context, nodes []*node, r *result) error {
	before := make([]map[string]float64, len(nodes))
	for i, n := range nodes {
		m, err := benchutil.Scrape(n.url + "/metrics")
		if err != nil {
			return err
		}
		before[i] = m
	}
	info0, err := redisInfo(e.redis.Addr)
	if err != nil {
		return err
	}
	pg0 := e.pg.backendPIDs(ctx)
	cpu0 := make([]float64, len(nodes))
	for i, n := range nodes {
		cpu0[i] = benchutil.CPUSeconds(n.pid())
	}
	mc0, bc0 := benchutil.CPUSeconds(e.minio.Pid()), benchutil.CPUSeconds(os.Getpid())
	busy0, total0, _ := benchutil.MachineBusy()
	r.load[0] = loadAvg()
	t0 := time.Now()

	if err := sleep(ctx, e.o.measure); err != nil {
		return err
	}

	r.window = time.Since(t0).Seconds()
	pct := func(c1, c0 float64) float64 { return (c1 - c0) / r.window * 100 }
	for i, n := range nodes {
		c := pct(benchutil.CPUSeconds(n.pid()), cpu0[i])
		r.perNode = append(r.perNode, c)
		r.cpu += c
	}
	r.minio = pct(benchutil.CPUSeconds(e.minio.Pid()), mc0)
	r.bench = pct(benchutil.CPUSeconds(os.Getpid()), bc0)
	busy1, total1, cores := benchutil.MachineBusy()
	r.machine, r.cores = (busy1-busy0)/(total1-total0)*float64(cores)*100, cores
	r.load[1] = loadAvg()
	// A backend that ended inside the window takes its time with it; the
	// pools keep theirs, so this is close.
	pg1 := e.pg.backendPIDs(ctx)
	for pid, c1 := range pg1 {
		r.postgres += pct(c1, pg0[pid])
	}
	fmt.Fprintf(os.Stderr, "%s node(s): %d PostgreSQL backends at the window's start, %d at its end\n", r.spec, len(pg0), len(pg1))
	info1, err := redisInfo(e.redis.Addr)
	if err != nil {
		return err
	}
	// The delta counts the first sample's INFO (a command is counted once
	// it has run), and nothing else of the bench's.
	r.redisOps = (infoFloat(info1, "total_commands_processed") - infoFloat(info0, "total_commands_processed") - 1) / r.window
	r.redisCPU = pct(infoFloat(info1, "used_cpu_sys")+infoFloat(info1, "used_cpu_user"), infoFloat(info0, "used_cpu_sys")+infoFloat(info0, "used_cpu_user"))
	r.topCmds = topCommands(info0, info1, r.window, 8)

	window := map[string]float64{}
	for i, n := range nodes {
		after, err := benchutil.Scrape(n.url + "/metrics")
		if err != nil {
			return err
		}
		for k, v := range benchutil.Delta(after, before[i]) {
			window[k] += v
		}
	}
	durable := benchutil.Hist(window, "bodycam_segment_durable_seconds", nil)
	r.p50, r.p99 = durable.Quantile(0.5), durable.Quantile(0.99)
	r.segments = int(window["bodycam_segments_stored_total"])
	r.mbps = window["bodycam_ingest_received_bytes_total"] * 8 / r.window / 1e6
	r.lost = int(window["bodycam_ingest_lost_packets_total"])
	for k, v := range window {
		if strings.HasPrefix(k, "bodycam_recording_gaps_total") {
			r.gaps += int(v)
		}
		if strings.HasPrefix(k, "bodycam_ingest_errors_total") && v > 0 {
			fmt.Fprintf(os.Stderr, "%s node(s), in the window: %s %v\n", r.spec, k, v)
		}
	}
	fmt.Fprintf(os.Stderr, "%s node(s): Redis commands in the window: %s\n", r.spec, r.topCmds)
	return nil
}

// killOne kills the second node with SIGKILL and polls a survivor every
// 100 ms: when the survivor lists the dead node as down, when its devices
// are listed on other nodes (they reconnect by themselves: publishAll),
// and when the catalog has every recording it held interrupted.
func (e *benchEnv) killOne(ctx context.Context, nodes []*node) (*failover, error) {
	victim, survivor := nodes[1], nodes[0]
	f := &failover{victim: victim.id, pollInterval: 100 * time.Millisecond}
	if e.cat == nil {
		cat, err := catalog.OpenPostgres(ctx, e.s.dbURL)
		if err != nil {
			return nil, err
		}
		e.cat = cat
	}
	before, err := live(ctx, survivor, e.s.admin)
	if err != nil {
		return nil, err
	}
	var devices, recordings []string
	for _, p := range before {
		if p.Node == victim.id {
			devices, recordings = append(devices, p.Device), append(recordings, p.Recording)
		}
	}
	f.devices = len(devices)
	if f.devices == 0 {
		return nil, fmt.Errorf("no device publishes on %s", victim.id)
	}
	killed := time.Now()
	victim.kill()
	fmt.Fprintf(os.Stderr, "killed %s (kill -9) with %d publishers\n", victim.id, f.devices)
	const limit = 120 * time.Second
	tick := time.NewTicker(f.pollInterval)
	defer tick.Stop()
	for f.seenDown == 0 || f.allMoved == 0 || f.interrupted == 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		since := time.Since(killed)
		if since > limit {
			return nil, fmt.Errorf("after %v: %s down %v, its devices elsewhere %v, its recordings interrupted %v (0: not yet)",
				limit, victim.id, f.seenDown, f.allMoved, f.interrupted)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if f.seenDown == 0 {
			if states, err := nodeStates(pctx, survivor, e.s.admin); err == nil && states[victim.id] == "down" {
				f.seenDown = since
			}
		}
		if f.allMoved == 0 {
			if now, err := live(pctx, survivor, e.s.admin); err == nil {
				moved := 0
				for _, d := range devices {
					if p, ok := now[d]; ok && p.Node != victim.id {
						moved++
					}
				}
				if moved > 0 && f.firstMoved == 0 {
					f.firstMoved = since
				}
				if moved == len(devices) {
					f.allMoved = since
				}
			}
		}
		if f.interrupted == 0 {
			done := 0
			for _, id := range recordings {
				if rec, err := e.cat.Recording(pctx, id); err == nil && rec.State == evidence.StateInterrupted {
					done++
				}
			}
			if done == len(recordings) {
				f.interrupted = since
			}
		}
		cancel()
	}
	now, err := e.waitLive(ctx, survivor, e.o.n, 30*time.Second, func(map[string]publisher) bool { return true })
	if err != nil {
		return nil, fmt.Errorf("after the failover: %w", err)
	}
	f.liveAfter = len(now)
	fmt.Fprintf(os.Stderr, "failover of %s: seen down %v, first device elsewhere %v, all %d %v, recordings interrupted %v; %d of %d live after\n",
		victim.id, f.seenDown.Round(100*time.Millisecond), f.firstMoved.Round(100*time.Millisecond), f.devices,
		f.allMoved.Round(100*time.Millisecond), f.interrupted.Round(100*time.Millisecond), f.liveAfter, e.o.n)
	return f, nil
}

// report prints the table and the one-line summary.
func report(o options, results []result) {
	fmt.Printf("| nodes | recorders | received | bodycam CPU (%% of one core, all nodes) | per node | CPU per stream | Redis commands/s | per stream | close→durable p50 | p99 | segments | MinIO CPU | PostgreSQL CPU | Redis CPU | recorders' CPU | machine CPU (of %d%%) | load (1 min) | node kill → its devices live elsewhere (first / all) | → its recordings interrupted |\n",
		100*max(1, coresOf(results)))
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		per := make([]string, len(r.perNode))
		for i, c := range r.perNode {
			per[i] = fmt.Sprintf("%.1f", c)
		}
		moved, interrupted := "—", "—"
		if f := r.failover; f != nil {
			moved = fmt.Sprintf("%s / %s (%d devices)", secs(f.firstMoved), secs(f.allMoved), f.devices)
			interrupted = secs(f.interrupted)
		}
		fmt.Printf("| %s | %d | %.0f Mbit/s | %.1f | %s | %.2f | %.1f | %.3f | %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.0f%% | %.2f → %.2f | %s | %s |\n",
			r.spec, r.n, r.mbps, r.cpu, strings.Join(per, " / "), r.cpu/float64(r.n), r.redisOps, r.redisOps/float64(r.n),
			r.p50, r.p99, r.segments, r.minio, r.postgres, r.redisCPU, r.bench, r.machine, r.load[0], r.load[1], moved, interrupted)
	}
	for _, r := range results {
		if r.gaps > 0 || r.lost > 0 {
			fmt.Printf("%s node(s): %d gaps, %d lost packets in the window\n", r.spec, r.gaps, r.lost)
		}
		if f := r.failover; f != nil {
			fmt.Printf("%s node(s): %s killed; a survivor listed it down after %s; %d of %d recorders live afterwards\n",
				r.spec, f.victim, secs(f.seenDown), f.liveAfter, r.n)
		}
	}
	fmt.Println(summary(results))
}

// summary compares each run of several nodes with the one-node run on
// Redis, against the targets.
func summary(results []result) string {
	var base *result
	for i := range results {
		if results[i].spec.nodes == 1 && !results[i].spec.local {
			base = &results[i]
			break
		}
	}
	var parts []string
	for _, r := range results {
		if r.spec.nodes == 1 {
			continue
		}
		s := fmt.Sprintf("%d nodes", r.spec.nodes)
		if base != nil {
			s += fmt.Sprintf(" vs 1: bodycam CPU %.1f vs %.1f %% of a core (%+.0f %%), close→durable p99 %s vs %s (%+.0f ms; target ≤ +20 ms: %s)",
				r.cpu, base.cpu, (r.cpu/base.cpu-1)*100, r.p99, base.p99, (r.p99.V-base.p99.V)*1000, met((r.p99.V-base.p99.V)*1000 <= 20))
		}
		s += fmt.Sprintf(", Redis %.3f commands/s per stream (target ≤ 1: %s)", r.redisOps/float64(r.n), met(r.redisOps/float64(r.n) <= 1))
		if f := r.failover; f != nil {
			s += fmt.Sprintf(", node kill → its %d devices live elsewhere %s, its recordings interrupted %s", f.devices, secs(f.allMoved), secs(f.interrupted))
		}
		parts = append(parts, s)
	}
	for _, r := range results {
		if r.spec.local && base != nil {
			parts = append(parts, fmt.Sprintf("1 node on Redis vs without: bodycam CPU %.1f vs %.1f %% of a core, close→durable p99 %s vs %s",
				base.cpu, r.cpu, base.p99, r.p99))
		}
	}
	if len(parts) == 0 && base != nil {
		parts = append(parts, fmt.Sprintf("1 node: Redis %.3f commands/s per stream, close→durable p99 %s", base.redisOps/float64(base.n), base.p99))
	}
	return fmt.Sprintf("summary (%d recorders): %s", firstN(results), strings.Join(parts, "; "))
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func secs(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func coresOf(results []result) int {
	for _, r := range results {
		return r.cores
	}
	return 0
}

func firstN(results []result) int {
	for _, r := range results {
		return r.n
	}
	return 0
}
