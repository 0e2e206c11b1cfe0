package export

import (
	"io"

	"github.com/bodycam/bodycam/evidence"
)

// Hooks for the external tests (package export_test).

// VerifyMaxEntries is Verify with the limit on entries set to n, so that
// the limit can be shown without a zip of a million entries.
func VerifyMaxEntries(r io.ReaderAt, size int64, opts Options, n int) Report {
	lim := defaultLimits
	lim.entries = n
	return verify(r, size, opts, lim)
}

// DecodeCost is what decodeBounded estimates decoding b into v takes.
func DecodeCost(b []byte, v any) (int64, error) { return decodeCost(b, v) }

// DecodeTargets are the values Verify decodes each JSON file of an export
// into, by file name.
func DecodeTargets() map[string]func() any {
	return map[string]func() any{
		"case.json":      func() any { return new(caseFile) },
		"custody.json":   func() any { return new(evidence.Excerpt) },
		"manifest.json":  func() any { return new(evidence.Manifest) },
		"recording.json": func() any { return new(recordingFile) },
	}
}
