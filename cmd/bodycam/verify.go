package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/bodycam/bodycam/export"
)

const verifyUsage = `Usage: bodycam verify <export.zip> [--json] [--key trusted.pem]

Checks a court export (GET /api/v1/cases/{id}/export) offline: the signature
of SHA256SUMS, every file's hash, that no file was added or removed, each
manifest's signature, each object against its manifest and the chain, the
derived playable copies, and the custody excerpt. Exit 0 only if everything
checks out; otherwise each failure is printed (file: what is wrong) and the
exit code is 1. A zip that could not be an export (entries that overlap or
lie about their sizes, files larger than their kind may be: see "Court
export" in docs/architecture.md) is refused with bounded memory and work.

  --json        print the report as JSON
  --key FILE    PEM public key SHA256SUMS must be signed with (the key the
                agency publishes); without it any key in the export's keys/ is
                accepted and its fingerprint printed, to compare
`

// verifyCmd runs `bodycam verify`; it needs no server and no network.
func verifyCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage) }
	asJSON := fs.Bool("json", false, "print the report as JSON")
	keyFile := fs.String("key", "", "trusted PEM public key")
	var files []string
	for { // flags may come before or after the file
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "bodycam verify: %v\n", flagError(err))
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		files, args = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	if len(files) != 1 {
		fmt.Fprint(stderr, verifyUsage)
		return exitUsage
	}
	var opts export.Options
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err == nil {
			opts.TrustedKey, err = export.ParsePublicPEM(b)
		}
		if err != nil {
			fmt.Fprintf(stderr, "bodycam verify: key: %s: %v\n", *keyFile, err)
			return exitUsage
		}
	}
	rep := verifyFile(files[0], opts)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printReport(stdout, files[0], rep)
	}
	if rep.OK {
		return 0
	}
	return 1
}

func verifyFile(name string, opts export.Options) export.Report {
	f, err := os.Open(name)
	if err == nil {
		defer f.Close()
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			return export.Verify(f, st.Size(), opts)
		}
	}
	return export.Report{Keys: []export.KeyRef{}, Notes: []string{}, Failures: []export.Failure{{Path: name, What: err.Error()}}}
}

func printReport(w io.Writer, name string, rep export.Report) {
	if rep.CaseID != "" {
		fmt.Fprintf(w, "%s: case %s, exported by %s at %s\n", name, rep.CaseID, rep.ExportedBy, rep.ExportedAt)
	}
	if k := rep.SignedBy; k != nil {
		if k.Trusted {
			fmt.Fprintf(w, "SHA256SUMS signed by the trusted key %s (SHA-256 %s)\n", k.ID, k.Fingerprint)
		} else {
			fmt.Fprintf(w, "SHA256SUMS signed by key %s, SHA-256 fingerprint %s:\n  compare it with the key the agency publishes, or pin that key with --key\n", k.ID, k.Fingerprint)
		}
	}
	c := rep.Checked
	receipts := ""
	if c.Receipts > 0 {
		receipts = fmt.Sprintf(", %d upload receipts", c.Receipts)
	}
	fmt.Fprintf(w, "checked: %d files (%d bytes), %d recordings, %d manifests, %d segments, %d chain links, %d derived copies%s, %d custody events\n",
		c.Files, c.Bytes, c.Recordings, c.Manifests, c.Segments, c.ChainLinks, c.Derived, receipts, c.CustodyEvents)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if rep.OK {
		fmt.Fprintln(w, "OK: every check passed")
		return
	}
	fmt.Fprintf(w, "FAILED: %d problem(s)\n", len(rep.Failures))
	for _, f := range rep.Failures {
		fmt.Fprintf(w, "  %s\n", f)
	}
}
