// Command bodycam is the body-camera evidence pipeline: `bodycam serve` runs
// every role in one process. This package only reads configuration and wires
// the parts together; each part lives in its own package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/bodycam/bodycam/keyring"
)

const usageText = `bodycam: body-camera evidence pipeline

Usage:
  bodycam serve [flags]        run every role (ingest, API, storage) in one process
  bodycam simulate [flags]     publish simulated recorders (test pattern, or a clip for load)
  bodycam keys list [flags]    list the signing keys in the data directory
  bodycam keys rotate [flags]  make a new signing key; old public keys are kept
  bodycam backup [flags] <dir> back up the catalog (SQLite), keys and admin token into <dir>,
                               beside a running server (serve's flags, file and environment)
  bodycam dock [flags] DIR...  the workstation agent: upload docked recorders' files
                               (one DIR per camera), resumable, receipts verified
  bodycam verify <export.zip> [--json] [--key trusted.pem]
                               check a court export offline (exit 0 only if it all checks out)
  bodycam version              print the version

Run 'bodycam serve --help' for the settings.
`

// exitUsage is the exit code for bad flags and configuration.
const exitUsage = 2

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "bodycam %s: %v\n", args[0], err)
		return code
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig("serve", args[1:], getenv, stdout)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err == nil {
			cfg, err = cfg.loadSecrets()
		}
		if err != nil {
			return fail(exitUsage, err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		go func() { <-ctx.Done(); stop() }() // a second signal kills at once
		if err := serve(ctx, cfg, newLogger(cfg, stderr)); err != nil {
			return fail(1, err)
		}
		return 0
	case "simulate":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if err := simulateCmd(ctx, args[1:], getenv, stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return fail(1, err)
		}
		return 0
	case "keys":
		if err := keys(args[1:], getenv, stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return fail(exitUsage, err)
		}
		return 0
	case "verify":
		return verifyCmd(args[1:], stdout, stderr)
	case "dock":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		code, err := dockCmd(ctx, args[1:], getenv, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			return fail(code, err)
		}
		return 0
	case "backup":
		code, err := backupCmd(context.Background(), args[1:], getenv, stdout)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			return fail(code, err)
		}
		return 0
	case "version":
		fmt.Fprintln(stdout, "bodycam", version())
		fmt.Fprintln(stdout, "live transcoding:", transcoding)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return 0
	}
	fmt.Fprintf(stderr, "bodycam: unknown command %q\n\n%s", args[0], usageText)
	return exitUsage
}

// buildVersion is the version with the commit it was built from, when the
// build says (what provenance records name as bodycam).
func buildVersion() string {
	v := version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if rev != "" {
			v += " " + rev + dirty
		}
	}
	return v
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// keys lists or rotates the signing keys of a data directory.
func keys(args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "rotate") {
		return errors.New("want `keys list` or `keys rotate`")
	}
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	fs.SetOutput(stdout)
	dataDir := fs.String("data-dir", "./data", "data directory (or BODYCAM_DATA_DIR)")
	if v := getenv("BODYCAM_DATA_DIR"); v != "" {
		*dataDir = v
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return flagError(err)
	}
	dir := filepath.Join(*dataDir, "keys")
	if args[0] == "rotate" {
		id, err := keyring.Rotate(dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new signing key %s; restart bodycam serve to use it\n", id)
	}
	k, err := keyring.Open(dir, keyring.Options{})
	if err != nil {
		return err
	}
	for _, p := range k.Public() {
		cur := ""
		if p.Current {
			cur = " (current)"
		}
		fmt.Fprintf(stdout, "%s  Ed25519  created %s%s\n", p.ID, p.Created.Format("2006-01-02T15:04:05Z"), cur)
	}
	return nil
}
