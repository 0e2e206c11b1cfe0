// Command bench-dock measures dock upload as a collection workstation
// drives it: N docked cameras (one folder each, holding files of a given
// size: a real MP4 made by ffmpeg, padded to the size with a `free` box of
// random bytes) uploaded at once by one real `bodycam dock` process to a
// real `bodycam serve` on loopback, storing into a directory or a MinIO
// server it starts. Before the upload it writes the same bytes to the same
// disk with fdatasync (a dd of its own), the rate the disk allows. It
// reports the aggregate and per-camera rates, the CPU of the server, the
// dock and MinIO (seconds per GB and % of a core, from /proc), the server's
// RSS, the disk's write throughput and busy time, and which one limited the
// rate; optionally where the server's CPU went (its pprof endpoint). Every
// file must end with a signed receipt that verifies and a recording that
// verifies (as an auditor): the bench exits 1 otherwise. See
// docs/benchmarks.md ("Dock upload").
//
//	make build
//	go run ./cmd/bench-dock -cameras 8 -size 1GiB -store dir -out /tmp/dock-dir.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	bin        string
	cameras    int
	files      int   // per camera
	size       int64 // bytes per file
	store      string
	parallel   int
	chunk      string
	dir        string
	minioDir   string
	raw        bool
	cpuProfile string
	out        string
	logLevel   string
	keep       bool
	args       []string // the command line, for the summary
}

func main() {
	var o options
	size := flag.String("size", "1GiB", "bytes per file (1GiB, 64MiB, 500MB)")
	flag.StringVar(&o.bin, "bodycam", "./bin/bodycam", "bodycam binary (make build): it runs both the server and the dock")
	flag.IntVar(&o.cameras, "cameras", 8, "cameras docked at once (one folder each, one dock process for all)")
	flag.IntVar(&o.files, "files", 1, "files per camera")
	flag.StringVar(&o.store, "store", "dir", "the object store: dir (the embedded default, on the spool's disk) or s3 (a MinIO server on a loopback port)")
	flag.IntVar(&o.parallel, "parallel", 0, "the dock's --parallel (files uploaded at once); 0: one per camera, every camera at once")
	flag.StringVar(&o.chunk, "chunk", "16MiB", "the dock's --chunk (bytes per PATCH, each checksummed)")
	flag.StringVar(&o.dir, "dir", "", "where the cameras' folders, the server's data (spool and objects) and MinIO's data go, and the raw write is measured (default: the temporary directory); one disk for all, as on a workstation that is also the server")
	flag.StringVar(&o.minioDir, "minio-dir", "", "with -store s3: where MinIO keeps its data (default: under -dir)")
	flag.BoolVar(&o.raw, "raw", true, "first measure a raw write of the same bytes to the same disk (N writers, fdatasync): the rate the disk allows")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the server's CPU profile over the upload to this file (from its /debug/pprof; merged with `go tool pprof` when Go is installed) and say where its CPU went")
	flag.StringVar(&o.out, "out", "", "write the summary (markdown) to this file too")
	flag.StringVar(&o.logLevel, "log-level", "warn", "the server's --log-level")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (cameras' files, the server's data, the logs) at the end")
	flag.Parse()
	o.args = os.Args
	var err error
	if o.size, err = parseBytes(*size); err != nil {
		fmt.Fprintln(os.Stderr, "bench-dock: -size:", err)
		os.Exit(2)
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-dock:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once (the children die with us: Pdeathsig)
	}()
	failed, err := bench(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench-dock:", err)
		os.Exit(2)
	}
	if failed {
		fmt.Fprintln(os.Stderr, "bench-dock: FAILED (see the summary)")
		os.Exit(1)
	}
}

func (o *options) validate() error {
	switch {
	case o.cameras < 1 || o.cameras > 64:
		return errors.New("-cameras: 1 to 64")
	case o.files < 1:
		return errors.New("-files: at least 1")
	case o.size < minSize:
		return fmt.Errorf("-size: at least %d bytes (the MP4 and its padding box)", minSize)
	case o.size > 64<<30:
		return errors.New("-size: at most 64GiB (the server's --upload-max-size)")
	case o.store != "dir" && o.store != "s3":
		return fmt.Errorf("-store: dir or s3, got %q", o.store)
	case o.parallel < 0 || o.parallel > 64:
		return errors.New("-parallel: 0 to 64")
	}
	if _, err := parseBytes(o.chunk); err != nil {
		return fmt.Errorf("-chunk: %v", err)
	}
	if o.parallel == 0 {
		o.parallel = o.cameras
	}
	if o.dir == "" {
		o.dir = os.TempDir()
	}
	return nil
}

// total is the bytes of every file of every camera.
func (o options) total() int64 { return o.size * int64(o.files*o.cameras) }

var sizePattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)$`)

// parseBytes reads 1GiB, 64MiB, 500MB, 4096 as `bodycam dock` does (SI
// units are powers of 1000, binary ones of 1024).
func parseBytes(s string) (int64, error) {
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("want a number and a unit (e.g. 1GiB), got %q", s)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	mult, ok := map[string]float64{"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q in %q", m[2], s)
	}
	return int64(n * mult), nil
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

// humanBytes prints a byte count in binary units, as the flags give them.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}
