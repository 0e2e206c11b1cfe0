// Command bench-catalog measures the catalog at a city's scale on
// PostgreSQL: it fills a database of its own with a synthetic city's
// recordings, segments (real chain links), custody ledger (real digests,
// hashes and signed checkpoints), cases and links, in steps (1, 2, 5 and 10
// million segment rows by default), and at each step reports the sustained
// rate of Catalog.AppendSegment from many devices at once, the p99 of the
// reads the API makes most (a device's recordings in a time window, one
// recording with its segments, a case's custody excerpt), of the
// supervision dashboard (Catalog.Stats over 7 and 30 days) and the disk
// bytes per hour of footage. See docs/benchmarks.md ("Catalog at a city's
// scale") and docs/architecture.md (Catalog).
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bodycam/bodycam/catalog"
)

type options struct {
	adminURL      string
	steps         []int64
	city          cityConfig
	appendDevices int
	appendFor     time.Duration
	queries       int
	seed          uint64
	keep          bool
}

func main() {
	var o options
	defAdmin := os.Getenv("BODYCAM_TEST_POSTGRES_URL")
	if defAdmin == "" {
		defAdmin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	flag.StringVar(&o.adminURL, "admin-url", defAdmin, "PostgreSQL URL allowed to create and drop databases (default $BODYCAM_TEST_POSTGRES_URL, else the local server)")
	steps := flag.String("steps", "1M,2M,5M,10M", "segment rows at which to measure, comma-separated (k and M suffixes)")
	flag.IntVar(&o.city.Devices, "devices", 100, "devices in the synthetic city (its per-device history deepens as rows grow)")
	flag.IntVar(&o.city.Units, "units", 10, "units the city's officers belong to (the dashboard reads one of them)")
	flag.IntVar(&o.city.PerDay, "per-day", 8, "recordings per device per day")
	flag.DurationVar(&o.city.Segment, "segment", 4*time.Second, "segment length")
	flag.DurationVar(&o.city.Recording, "recording", 30*time.Minute, "recording length")
	flag.IntVar(&o.city.CaseEvery, "case-every", 25, "one device-day in this many becomes a case linking that day's recordings")
	flag.IntVar(&o.city.Chunk, "chunk", 20000, "segment rows per COPY")
	flag.IntVar(&o.appendDevices, "append-devices", 32, "devices appending at once in the append test")
	flag.DurationVar(&o.appendFor, "append-for", 10*time.Second, "length of the append test at each step")
	flag.IntVar(&o.queries, "queries", 300, "samples of each read at each step")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed of the reads' samples")
	flag.BoolVar(&o.keep, "keep", false, "keep the database at the end (its URL is printed)")
	flag.Parse()
	var err error
	if o.steps, err = parseSteps(*steps); err != nil {
		fmt.Fprintln(os.Stderr, "bench-catalog: steps:", err)
		os.Exit(2)
	}
	o.city.Start = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	if err := o.city.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-catalog:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-catalog:", err)
		os.Exit(1)
	}
}

func parseSteps(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		mul := int64(1)
		switch {
		case strings.HasSuffix(f, "M"):
			mul, f = 1_000_000, strings.TrimSuffix(f, "M")
		case strings.HasSuffix(f, "k"):
			mul, f = 1_000, strings.TrimSuffix(f, "k")
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a row count", f)
		}
		n := int64(v * float64(mul))
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, errors.New("steps must increase")
		}
		out = append(out, n)
	}
	return out, nil
}

// stepResult is one row of the report.
type stepResult struct {
	rows         int64 // segment rows in the catalog
	fill         time.Duration
	fillRows     int64
	vacuum       time.Duration
	app          appendResult
	q            queryResult
	dash         dashboardResult
	size         sizes
	footageHours float64
	load         string
}

func run(ctx context.Context, o options) error {
	db, err := createDatabase(ctx, o.adminURL)
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Fprintln(os.Stderr, "kept:", db.url)
			db.admin.Close(context.Background())
			return
		}
		if err := db.drop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "bench-catalog: drop database:", err)
		}
	}()
	cat, err := catalog.OpenPostgres(ctx, db.url)
	if err != nil {
		return err
	}
	defer cat.Close()
	conn, err := pgx.Connect(ctx, db.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if o.city.HasCount, err = columnExists(ctx, conn, "recordings", "segment_count"); err != nil {
		return err
	}
	if o.city.HasLongest, err = columnExists(ctx, conn, "devices", "longest_recording_us"); err != nil {
		return err
	}
	if err := setupFleet(ctx, conn, o.city, o.appendDevices); err != nil {
		return err
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	signer := benchSigner{priv}
	key := func(id string) ed25519.PublicKey {
		if id == signer.ID() {
			return priv.Public().(ed25519.PublicKey)
		}
		return nil
	}
	c := newCity(o.city, priv, signer.ID())
	rng := rand.New(rand.NewPCG(o.seed, 2))
	fmt.Fprintf(os.Stderr, "database %s; city: %d devices in %d units, %d recordings of %v a day, %v segments; append test: %d devices for %v\n",
		db.name, o.city.Devices, o.city.Units, o.city.PerDay, o.city.Recording, o.city.Segment, o.appendDevices, o.appendFor)

	var results []stepResult
	var appended, appendedMedia int64
	l := &loader{conn}
	for i, target := range o.steps {
		var r stepResult
		cityTarget := target - appended
		t0 := time.Now()
		before := c.rows
		if err := l.fill(ctx, c, cityTarget); err != nil {
			return err
		}
		r.fill, r.fillRows = time.Since(t0), c.rows-before
		fmt.Fprintf(os.Stderr, "step %d: filled %d segment rows in %v (%.0f rows/s)\n", i+1, r.fillRows, r.fill.Round(time.Millisecond),
			float64(r.fillRows)/r.fill.Seconds())
		t0 = time.Now()
		if err := vacuum(ctx, conn); err != nil {
			return err
		}
		r.vacuum = time.Since(t0)
		if r.app, err = appendTest(ctx, cat, i+1, o.appendDevices, o.appendFor, o.city.Segment); err != nil {
			return err
		}
		appended += r.app.segments
		appendedMedia += r.app.media
		fmt.Fprintf(os.Stderr, "step %d: appended %d segments from %d devices in %v: %.0f/s, p99 %v\n", i+1, r.app.segments,
			r.app.devices, r.app.elapsed.Round(time.Millisecond), r.app.rate(), r.app.latency.p99)
		if r.q, err = queries(ctx, cat, c, o.queries, rng, signer, key); err != nil {
			return err
		}
		if r.dash, err = dashboard(ctx, cat, c, o.queries); err != nil {
			return err
		}
		if r.size, err = measureSizes(ctx, conn); err != nil {
			return err
		}
		r.rows = c.rows + appended
		r.footageHours = float64(c.media+appendedMedia) * o.city.Segment.Hours()
		r.load = loadAvg()
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "step %d: %d rows; list p99 %v, recording+segments p99 %v, case excerpt p99 %v; dashboard p99 %v (7 d), %v (30 d), %v (a unit, 30 d); %.0f bytes per hour of footage; load %s\n",
			i+1, r.rows, r.q.list.p99, r.q.recording.p99, r.q.excerpt.p99, r.dash.week.p99, r.dash.month.p99, r.dash.unit.p99,
			float64(r.size.total)/r.footageHours, r.load)
	}
	report(os.Stdout, o, c, results)
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}
