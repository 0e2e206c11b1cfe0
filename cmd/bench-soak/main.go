// Command bench-soak runs `bodycam serve` under a steady load for hours and
// checks that nothing grows and nothing is lost: N simulated recorders
// (simulate.PublishClip, a pre-encoded clip looped in real time over
// RTSP/TCP, in this process) record into a MinIO store, and M WHEP viewers
// (internal/whep, pion, in this process) watch some of them. Every sample
// interval it records the server's RSS, goroutines, open files, the spool's
// size on disk, its CPU, the segments stored and every viewer's frames per
// second; at the end it stops the recorders, waits until every recording is
// stored, verifies each one as an auditor, and writes a CSV, one SVG plot
// per metric and a summary. It exits 1 if a check fails. See
// docs/benchmarks.md ("Soak").
//
//	make build
//	go run ./cmd/bench-soak -recorders 50 -viewers 50 -duration 2h -sample 1m -out docs/soak
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	bin                string
	recorders, viewers int
	viewed             int
	duration, sample   time.Duration
	warmup             time.Duration
	out                string
	size, bitrate      string
	fps, bframes       int
	segment, stagger   time.Duration
	loss               float64
	database           string
	tol                float64
	by                 flatBy
	minFPS             float64
	parallel           int
	drain              time.Duration
	clipCache          string
	minioDir           string
	logs               string
	logLevel           string
	profiles           bool
	args               []string // the command line, for the summary
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bodycam", "./bin/bodycam", "bodycam binary (make build); the same bench runs an old and a new binary alike")
	flag.IntVar(&o.recorders, "recorders", 50, "simulated recorders publishing for the whole soak")
	flag.IntVar(&o.viewers, "viewers", 50, "WHEP viewers watching for the whole soak")
	flag.IntVar(&o.viewed, "viewed", 5, "recorders the viewers watch: viewer i watches recorder ((i-1) mod viewed)+1")
	flag.DurationVar(&o.duration, "duration", 2*time.Hour, "soak length, from the moment every recorder is live and every viewer has a picture")
	flag.DurationVar(&o.sample, "sample", time.Minute, "sampling interval")
	flag.DurationVar(&o.warmup, "warmup", 10*time.Minute, "the first part of the soak, sampled and plotted but left out of the flatness checks")
	flag.StringVar(&o.out, "out", "docs/soak", "directory for samples.csv, viewers.csv, the SVG plots and summary.md")
	flag.StringVar(&o.size, "size", "640x360", "the recorders' picture size (the clip: H.264 High + AAC, keyframe every second)")
	flag.IntVar(&o.fps, "fps", 30, "the recorders' frames per second")
	flag.StringVar(&o.bitrate, "bitrate", "500k", "the recorders' video bitrate (50 × 4 Mbit/s for 2 h is ~190 GB of footage; see docs/benchmarks.md)")
	flag.IntVar(&o.bframes, "bframes", 0, "the clip's B-frames: 0 none (the relay passes video through to viewers); -1 the encoder's default (the relay transcodes video for each watched recorder)")
	flag.DurationVar(&o.segment, "segment-duration", 4*time.Second, "the server's --segment-duration")
	flag.DurationVar(&o.stagger, "stagger", 4*time.Second, "spread the recorders' starts over this long")
	flag.Float64Var(&o.loss, "loss", 0, "share of RTP packets each recorder drops (a bad uplink); the gaps it causes are allowed, no others")
	flag.StringVar(&o.database, "database", "sqlite", "the catalog: sqlite (in the server's data directory) or postgres (a database of the bench's own on $BODYCAM_TEST_POSTGRES_URL or the local server)")
	flag.Float64Var(&o.tol, "flat", 0.10, "tolerance of the flatness checks (0.10: 10 %)")
	by := flag.String("flat-by", "drift", "how flatness is judged: drift (a least-squares line's rise over the steady part, against its mean), range (max/min − 1), or both")
	flag.Float64Var(&o.minFPS, "min-fps", 20, "a viewer receiving fewer complete video frames per second than this over a sample interval has stopped receiving (a failure)")
	flag.IntVar(&o.parallel, "parallel", 10, "viewers dialled at the same time")
	flag.DurationVar(&o.drain, "drain", 5*time.Minute, "how long the recordings may take to be stored once the recorders stop")
	flag.StringVar(&o.clipCache, "clip-cache", defaultClipCache(), "directory keeping the encoded clip between runs (empty: encode it in the temporary directory)")
	flag.StringVar(&o.minioDir, "minio-dir", "", "where MinIO keeps its data (default: the temporary directory)")
	flag.StringVar(&o.logs, "logs", "", "copy the server's log into this directory at the end")
	flag.StringVar(&o.logLevel, "log-level", "warn", "the server's --log-level")
	flag.BoolVar(&o.profiles, "profiles", false, "save the server's heap profile at the warm-up's end and at the end, and its goroutines at the end, into -out (to find what grew)")
	flag.Parse()
	o.by, o.args = flatBy(*by), os.Args
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-soak:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once (the children die with us: Pdeathsig)
	}()
	failed, err := soak(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench-soak:", err)
		os.Exit(2)
	}
	if failed {
		fmt.Fprintln(os.Stderr, "bench-soak: FAILED (see the summary)")
		os.Exit(1)
	}
}

func (o *options) validate() error {
	switch {
	case o.recorders < 1:
		return errors.New("-recorders: at least 1")
	case o.viewers < 0:
		return errors.New("-viewers: not negative")
	case o.viewed < 1:
		return errors.New("-viewed: at least 1")
	case o.sample <= 0 || o.duration < o.sample:
		return errors.New("-sample: positive, and -duration at least one -sample")
	case o.warmup < 0 || o.warmup >= o.duration:
		return errors.New("-warmup: from 0 to below -duration")
	case o.duration-o.warmup < minSteady*o.sample:
		return fmt.Errorf("-duration: leaves fewer than %d samples after the warm-up", minSteady)
	case o.loss < 0 || o.loss >= 1:
		return errors.New("-loss: a share from 0 to below 1")
	case o.database != "sqlite" && o.database != "postgres":
		return errors.New("-database: sqlite or postgres")
	case o.tol <= 0:
		return errors.New("-flat: positive")
	case !o.by.valid():
		return errors.New("-flat-by: drift, range or both")
	case o.out == "":
		return errors.New("-out: a directory")
	}
	o.viewed = min(o.viewed, o.recorders, max(o.viewers, 1))
	o.parallel = max(o.parallel, 1)
	return nil
}

func defaultClipCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "bodycam-bench-soak")
}

// progress writes a time-stamped line to stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
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

// deviceID is recorder i's device (from 1).
func deviceID(i int) string { return fmt.Sprintf("soak-%03d", i) }

// joinNonEmpty joins the non-empty strings.
func joinNonEmpty(sep string, s ...string) string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return strings.Join(out, sep)
}
