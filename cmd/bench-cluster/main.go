// Command bench-cluster measures what running several bodycam nodes costs:
// the same simulated recorders publish to one node, then to three (all on
// this machine, sharing one PostgreSQL database, one MinIO and one Redis of
// the bench's own), and it reports the nodes' total CPU, Redis commands per
// second per stream, close→durable latency, and, with three nodes, the time
// from a node's kill -9 to its devices publishing on the others and to its
// recordings being marked interrupted. See docs/benchmarks.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/bodycam/bodycam/internal/benchutil"
	"github.com/bodycam/bodycam/internal/testsvc"
	"github.com/bodycam/bodycam/simulate"
)

// options are the command's flags.
type options struct {
	bin             string
	n               int
	runs            []runSpec
	warmup, measure time.Duration
	segment         time.Duration
	stagger, retry  time.Duration
	size, bitrate   string
	kill            bool
	logLevel        string
	keep            string
}

// runSpec is one entry of -nodes: how many nodes, and whether they use the
// bench's Redis ("1-local": one node coordinating in-process, the embedded
// default's coordination, as a baseline without Redis).
type runSpec struct {
	nodes int
	local bool
}

func (r runSpec) String() string {
	if r.local {
		return fmt.Sprintf("%d (no Redis)", r.nodes)
	}
	return strconv.Itoa(r.nodes)
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bodycam", "./bin/bodycam", "bodycam binary")
	flag.IntVar(&o.n, "n", 30, "simulated recorders (the same in every run)")
	nodes := flag.String("nodes", "1,3", `node counts to compare, comma-separated; "1-local" is one node without Redis`)
	flag.DurationVar(&o.warmup, "warmup", 15*time.Second, "time after every recorder is live before measuring")
	flag.DurationVar(&o.measure, "measure", 45*time.Second, "measurement window")
	flag.DurationVar(&o.segment, "segment-duration", 4*time.Second, "the nodes' --segment-duration")
	flag.DurationVar(&o.stagger, "stagger", 4*time.Second, "recorders' starts spread over this long")
	flag.DurationVar(&o.retry, "retry", time.Second, "a recorder whose connection fails waits this long, then tries the next node")
	flag.StringVar(&o.size, "size", "1280x720", "the recorders' picture size (the clip is H.264 High with B-frames + AAC, 30 fps)")
	flag.StringVar(&o.bitrate, "bitrate", "4M", "the recorders' video bitrate")
	flag.BoolVar(&o.kill, "kill", true, "with several nodes, kill -9 one after the window and time the failover")
	flag.StringVar(&o.logLevel, "log-level", "warn", "the nodes' --log-level")
	flag.StringVar(&o.keep, "logs", "", "copy the nodes' logs into this directory at the end")
	flag.Parse()
	for _, s := range strings.Split(*nodes, ",") {
		s = strings.TrimSpace(s)
		local := strings.HasSuffix(s, "-local")
		k, err := strconv.Atoi(strings.TrimSuffix(s, "-local"))
		if err != nil || k < 1 || (local && k != 1) {
			fail(fmt.Errorf("-nodes: %q is not a node count (or 1-local)", s))
		}
		o.runs = append(o.runs, runSpec{k, local})
	}
	if o.n < 1 {
		fail(errors.New("-n: at least 1"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	results, err := bench(ctx, o)
	if err != nil {
		fail(err)
	}
	report(o, results)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-cluster:", err)
	os.Exit(1)
}

// bench starts the shared services, runs every -nodes entry in turn with
// the same recorders, and cleans up after itself.
func bench(ctx context.Context, o options) ([]result, error) {
	dir, err := os.MkdirTemp("", "bench-cluster-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if o.keep != "" {
		defer copyLogs(filepath.Join(dir, "logs"), o.keep)
	}
	s := shared{bin: o.bin, dir: dir, segment: o.segment, logLevel: o.logLevel, logDir: filepath.Join(dir, "logs"), admin: randHex(16)}
	if err := os.MkdirAll(s.logDir, 0o750); err != nil {
		return nil, err
	}
	s.credKey = filepath.Join(dir, "credential.key")
	if err := os.WriteFile(s.credKey, []byte(randHex(32)+"\n"), 0o600); err != nil {
		return nil, err
	}
	m, err := testsvc.StartMinIO()
	if err != nil {
		return nil, err
	}
	defer m.Close()
	s.s3Endpoint, s.s3Access, s.s3Key = m.Endpoint, m.AccessKey, m.SecretKey
	rd, err := testsvc.StartRedis()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	s.redisURL = rd.URL
	pg, err := createDatabase(ctx)
	if err != nil {
		return nil, err
	}
	defer pg.drop()
	s.dbURL = pg.URL

	spec := simulate.DefaultClip
	spec.VideoBitrate = o.bitrate
	if _, err := fmt.Sscanf(o.size, "%dx%d", &spec.Width, &spec.Height); err != nil {
		return nil, fmt.Errorf("-size: want WIDTHxHEIGHT, got %q", o.size)
	}
	clipPath, err := simulate.EnsureClip(ctx, filepath.Join(dir, "sim"), spec)
	if err != nil {
		return nil, err
	}
	clip, err := simulate.LoadClip(clipPath)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "clip: %dx%d %d fps, %.1f Mbit/s, loops every %v\n", spec.Width, spec.Height, spec.FPS,
		float64(clip.Bytes*8)/clip.Duration.Seconds()/1e6, clip.Duration)

	env := &benchEnv{o: o, s: s, minio: m, redis: rd, pg: pg, clip: clip}
	defer env.closeCatalog()
	var results []result
	for i, spec := range o.runs {
		r, err := env.run(ctx, spec, i)
		if err != nil {
			return results, fmt.Errorf("%s node(s): %w", spec, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// copyLogs copies the nodes' logs out of the temporary directory.
func copyLogs(from, to string) {
	os.MkdirAll(to, 0o750)
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(from, e.Name())); err == nil {
			os.WriteFile(filepath.Join(to, e.Name()), b, 0o644)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// database is the bench's own PostgreSQL database, dropped at the end.
type database struct{ *testsvc.Database }

// createDatabase creates bodycam_bench_<random> on the machine's PostgreSQL
// (testsvc.PostgresAdminURL: $BODYCAM_TEST_POSTGRES_URL or the local one).
func createDatabase(ctx context.Context) (*database, error) {
	d, err := testsvc.CreateDatabase(ctx, "bodycam_bench_")
	if err != nil {
		return nil, err
	}
	return &database{d}, nil
}

func (d *database) drop() {
	if err := d.Drop(); err != nil {
		fmt.Fprintf(os.Stderr, "bench-cluster: drop database %s: %v\n", d.Name, err)
	}
}

// backendPIDs are the PostgreSQL processes serving the bench's database.
func (d *database) backendPIDs(ctx context.Context) map[int]float64 {
	out := map[int]float64{}
	rows, err := d.Admin().QueryContext(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1", d.Name)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			out[pid] = benchutil.CPUSeconds(pid)
		}
	}
	return out
}

// loadAvg is the machine's 1-minute load average.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return math.NaN()
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// recorder is one simulated recorder: it publishes to its home node and,
// when that fails, to the next node, as a recorder given a list of servers
// (or behind a load balancer) reconnects.
type recorder struct {
	id, password string
	home         int
}

// publishAll runs the recorders against nodes until ctx ends.
func publishAll(ctx context.Context, recs []recorder, nodes []*node, clip *simulate.Clip, stagger, retry time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sleep(ctx, time.Duration(i)*stagger/time.Duration(len(recs))) != nil {
				return
			}
			for k := 0; ctx.Err() == nil; k++ {
				n := nodes[(r.home+k)%len(nodes)]
				simulate.PublishClip(ctx, publishURL(n, r.id, r.password), clip, true, 0)
				if sleep(ctx, retry) != nil {
					return
				}
			}
		}()
	}
	return &wg
}
