package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bodycam/bodycam/dock"
)

const dockUsage = `Usage: bodycam dock --server URL --token-file F --state-dir D [flags] DIR...

The workstation agent: uploads the files of docked recorders (one DIR per
camera: the mounted recorder's folder) to a bodycam server over tus, resumes
after a crash or network loss, skips what the server already stored,
verifies every signed receipt, writes <state-dir>/reports/<camera>.json and,
with --release, deletes a file from the camera only once its receipt
verified. See "Dock upload" in README.md.

Each flag can also be set as BODYCAM_<NAME> (e.g. BODYCAM_STATE_DIR).

`

// dockCmd runs `bodycam dock`.
func dockCmd(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("dock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", "", "bodycam API URL (e.g. https://bodycam.example:8443)")
	tokenFile := fs.String("token-file", "", "file holding the dock user's bearer token")
	stateDir := fs.String("state-dir", "", "where the agent keeps its state, receipts and reports")
	rateFlag := fs.String("rate", "0", "upload bandwidth, all cameras together, in bytes/s (50MB/s, 400Mbit/s, 10MiB/s; 0: unlimited)")
	parallel := fs.Int("parallel", dock.DefaultParallel, "files (from any cameras) uploaded at once")
	release := fs.Bool("release", false, "delete each file from the camera once its signed receipt verified")
	device := fs.String("device", "", "device id when neither a sidecar, the folder's device file nor the file name gives one")
	chunkFlag := fs.String("chunk", "16MiB", "bytes per PATCH request (each one checksummed)")
	once := fs.Bool("once", false, "upload what is there, then exit (exit 1 if a file failed or was refused)")
	every := fs.Duration("scan-every", 10*time.Second, "when watching: how often the folders are listed again")
	settle := fs.Duration("settle", 2*time.Second, "the pause between the first two listings, which tell a finished file from one still being written")
	tzName := fs.String("timezone", "Local", "time zone of the times in file names and sidecars (IANA name, UTC or Local)")
	progressEvery := fs.Duration("progress-every", 5*time.Second, "how often the summary line is printed")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	printUsage := func() {
		fmt.Fprint(stderr, dockUsage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	var dirs []string
	for { // flags may come before or after the folders
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage()
				return 0, err
			}
			return exitUsage, flagError(err)
		}
		if fs.NArg() == 0 {
			break
		}
		dirs, args = append(dirs, fs.Arg(0)), fs.Args()[1:]
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && !explicit[f.Name] && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s (from %s): %v", f.Name, envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return exitUsage, envErr
	}
	rate, err := parseRate(*rateFlag)
	if err != nil {
		return exitUsage, fmt.Errorf("rate: %v", err)
	}
	chunk, err := parseBytes(*chunkFlag)
	if err != nil || chunk < 64<<10 || chunk > 1<<30 {
		return exitUsage, fmt.Errorf("chunk: want 64KiB to 1GiB, got %q", *chunkFlag)
	}
	if *parallel < 1 || *parallel > 64 {
		return exitUsage, errors.New("parallel: 1 to 64")
	}
	if *every <= 0 || *progressEvery <= 0 || *settle < 0 {
		return exitUsage, errors.New("scan-every and progress-every must be positive, settle not negative")
	}
	tz, err := time.LoadLocation(*tzName)
	if err != nil {
		return exitUsage, fmt.Errorf("timezone: %v", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return exitUsage, fmt.Errorf("log-level: %v", err)
	}
	if *tokenFile == "" {
		return exitUsage, errors.New("token-file: required (the dock user's bearer token)")
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return exitUsage, fmt.Errorf("token-file: %v", err)
	}
	token := strings.TrimSpace(string(tok))
	if token == "" {
		return exitUsage, fmt.Errorf("token-file: %s is empty", *tokenFile)
	}
	a, err := dock.New(dock.Options{Server: *server, Token: token, StateDir: *stateDir, Dirs: dirs, Rate: rate,
		Parallel: *parallel, Chunk: chunk, Release: *release, Device: *device, Once: *once, Every: *every,
		Settle: max(*settle, time.Millisecond), Timezone: tz, ProgressEvery: *progressEvery, Progress: stderr,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		return exitUsage, err
	}
	if err := a.Run(ctx); err != nil {
		return 1, err
	}
	return 0, nil
}

var sizePattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)$`)

// parseBytes reads 16MiB, 50MB, 1.5GB, 4096 (SI units are powers of 1000,
// binary ones of 1024; bit units are divided by 8).
func parseBytes(s string) (int64, error) {
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("want a number and a unit (e.g. 50MB), got %q", s)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	mult := map[string]float64{"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
		"bit": 1.0 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8}
	f, ok := mult[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q in %q", m[2], s)
	}
	return int64(n * f), nil
}

// parseRate is parseBytes with an optional "/s" (0 means unlimited).
func parseRate(s string) (int64, error) {
	return parseBytes(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
}
