package export_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
)

// Issue 10, finding 10: `bodycam verify` must check a hostile zip with
// bounded memory and work, refusing it with a failure that names the entry
// and the limit.

// pack zips files in order, deflating those whose method says so (as the
// exporter does: JSON and text deflated, media stored), after replacing
// SHA256SUMS by the hashes of the files as they are and signing it with
// signer: an export someone rebuilt with a key, every check but the one
// under test passing.
func pack(t *testing.T, names []string, data map[string][]byte, methods map[string]uint16, signer *keySigner) []byte {
	t.Helper()
	if signer != nil {
		var sums bytes.Buffer
		for _, n := range names {
			if n != "SHA256SUMS" && n != "SHA256SUMS.sig" {
				fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(data[n]), n)
			}
		}
		data["SHA256SUMS"] = sums.Bytes()
		_, data["SHA256SUMS.sig"] = signer.Sign(sums.Bytes())
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestCompression) })
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: methods[n]})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// allocated is how many bytes fn allocates: an upper bound of how much
// the heap grows while it runs.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// custodyBomb is 8 MiB of `{},` as the custody excerpt's events: a few
// kilobytes deflated, 2 GB once decoded into []evidence.CustodyEvent.
func custodyBomb() []byte {
	return []byte(`{"anchor_seq":0,"anchor_hash":"` + evidence.GenesisHash + `","events":[` +
		strings.Repeat("{},", 8<<20/3) + `{}],"links":[],"checkpoints":[]}`)
}

// The 8 KB zip of the issue (custody.json alone, 8 MiB of `{},`) and the
// same custody.json in an export otherwise in order, signed again: both
// refused, naming custody.json and the limit, while allocating a small
// part of what decoding would.
func TestVerifyRefusesCustodyJSONBomb(t *testing.T) {
	bomb := custodyBomb()
	alone := pack(t, []string{"custody.json"}, map[string][]byte{"custody.json": bomb}, map[string]uint16{"custody.json": zip.Deflate}, nil)
	if len(alone) > 16<<10 {
		t.Fatalf("the bomb zip is %d bytes; the issue's is 8 KB", len(alone))
	}

	b, _, signer, _ := build(t)
	names, data, methods := files(t, b)
	if rep := verify(b, export.Options{}); !rep.OK {
		t.Fatalf("the export before the bomb fails: %s", failures(rep))
	}
	data["custody.json"] = bomb
	inExport := pack(t, names, data, methods, &signer)

	for _, c := range []struct {
		name string
		zip  []byte
	}{{"8 KB zip, custody.json alone", alone}, {"export signed again", inExport}} {
		t.Run(c.name, func(t *testing.T) {
			var rep export.Report
			alloc := allocated(func() { rep = verify(c.zip, export.Options{}) })
			t.Logf("%d-byte zip: verify allocated %d MiB; %s", len(c.zip), alloc>>20, failures(rep))
			if rep.OK {
				t.Fatal("the custody bomb verifies")
			}
			if !hasFailure(rep, "custody.json", fmt.Sprintf("refused: too large once decoded: decoding its %d bytes would take more than", len(bomb))) {
				t.Fatalf("no refusal of custody.json naming the limit: %s", failures(rep))
			}
			// Reading 8 MiB and walking into it until the limit; decoding
			// took 2 GB.
			if alloc > 64<<20 {
				t.Fatalf("verify allocated %d MiB for an %d-byte zip", alloc>>20, len(c.zip))
			}
		})
	}
}

// A 2 KB zip whose custody.json nests arrays millions deep crashed verify
// (stack overflow at 1.1 GB) in the walk that bounds decoding: nesting is
// bounded too.
func TestVerifyRefusesDeepNesting(t *testing.T) {
	const depth = 4 << 20
	nested := append(append([]byte(`{"x":`), bytes.Repeat([]byte("["), depth)...), bytes.Repeat([]byte("]"), depth)...)
	nested = append(nested, '}')
	z := pack(t, []string{"custody.json"}, map[string][]byte{"custody.json": nested}, map[string]uint16{"custody.json": zip.Deflate}, nil)
	var rep export.Report
	alloc := allocated(func() { rep = verify(z, export.Options{}) })
	t.Logf("%d-byte zip: verify allocated %d MiB; %s", len(z), alloc>>20, failures(rep))
	if rep.OK || !hasFailure(rep, "custody.json", "nested more than") {
		t.Fatalf("deep nesting not refused: %s", failures(rep))
	}
	if alloc > 64<<20 {
		t.Fatalf("verify allocated %d MiB for a %d-byte zip", alloc>>20, len(z))
	}
}

// rawZip writes a zip by hand, so that central directory entries can
// point where a zip writer never would.
type rawZip struct {
	buf     bytes.Buffer
	entries []rawEntry
}

type rawEntry struct {
	name         string
	method       uint16
	crc          uint32
	csize, usize uint32
	offset       uint32 // of the local header
}

// local writes a local header and the (already compressed) data.
func (z *rawZip) local(name string, method uint16, data []byte, usize, crc uint32) rawEntry {
	e := rawEntry{name: name, method: method, crc: crc, csize: uint32(len(data)), usize: usize, offset: uint32(z.buf.Len())}
	h := []any{uint32(0x04034b50), uint16(20), uint16(0), method, uint16(0), uint16(0x5a21), crc, e.csize, usize, uint16(len(name)), uint16(0)}
	for _, v := range h {
		binary.Write(&z.buf, binary.LittleEndian, v)
	}
	z.buf.WriteString(name)
	z.buf.Write(data)
	return e
}

// finish writes the central directory of entries and the end record.
func (z *rawZip) finish(entries []rawEntry) []byte {
	start := z.buf.Len()
	for _, e := range entries {
		h := []any{uint32(0x02014b50), uint16(20), uint16(20), uint16(0), e.method, uint16(0), uint16(0x5a21), e.crc, e.csize, e.usize,
			uint16(len(e.name)), uint16(0), uint16(0), uint16(0), uint16(0), uint32(0), e.offset}
		for _, v := range h {
			binary.Write(&z.buf, binary.LittleEndian, v)
		}
		z.buf.WriteString(e.name)
	}
	end := []any{uint32(0x06054b50), uint16(0), uint16(0), uint16(len(entries)), uint16(len(entries)), uint32(z.buf.Len() - start), uint32(start), uint16(0)}
	for _, v := range end {
		binary.Write(&z.buf, binary.LittleEndian, v)
	}
	return z.buf.Bytes()
}

func deflate(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// The other bomb of the issue: 64 central directory entries, each a
// segment listed in SHA256SUMS, all pointing at one deflated stream of 64
// MiB. A zip of some 100 KB that hashed 4 GiB: refused before any entry is
// read, each shared entry named.
func TestVerifyRefusesSharedStreamBomb(t *testing.T) {
	const each, n = 64 << 20, 64
	zeros := make([]byte, each)
	sum := sha256.Sum256(zeros)
	var sums strings.Builder
	for i := range n {
		fmt.Fprintf(&sums, "%x  recordings/r/%06d.m4s\n", sum, i)
	}
	var z rawZip
	entries := []rawEntry{z.local("SHA256SUMS", zip.Store, []byte(sums.String()), uint32(sums.Len()), crc32.ChecksumIEEE([]byte(sums.String())))}
	shared := z.local("recordings/r/000000.m4s", zip.Deflate, deflate(t, zeros), each, crc32.ChecksumIEEE(zeros))
	zeros = nil
	for i := range n {
		e := shared
		e.name = fmt.Sprintf("recordings/r/%06d.m4s", i)
		entries = append(entries, e)
	}
	b := z.finish(entries)
	if zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b))); err != nil || len(zr.File) != n+1 {
		t.Fatalf("the bomb is not a zip of %d entries: %v", n+1, err)
	}

	var rep export.Report
	alloc := allocated(func() { rep = verify(b, export.Options{}) })
	t.Logf("%d-byte zip declaring %d GiB: verify allocated %d KiB, hashed %d bytes; %d failures, first %v", len(b), n*each>>30, alloc>>10, rep.Checked.Bytes, len(rep.Failures), rep.Failures[0])
	if rep.OK {
		t.Fatal("the shared-stream bomb verifies")
	}
	if rep.Checked.Bytes != 0 {
		t.Fatalf("verify hashed %d bytes of the bomb; it must refuse it unread", rep.Checked.Bytes)
	}
	overlaps := 0
	for i := 1; i < n; i++ {
		if hasFailure(rep, fmt.Sprintf("recordings/r/%06d.m4s", i), "refused: its bytes") &&
			hasFailure(rep, fmt.Sprintf("recordings/r/%06d.m4s", i), "overlap those of recordings/r/") {
			overlaps++
		}
	}
	if overlaps != n-1 {
		t.Fatalf("%d of the %d entries sharing one stream named as overlapping: %s", overlaps, n-1, failures(rep))
	}
	if !hasFailure(rep, "", fmt.Sprintf("refused unread: the entries declare %d bytes uncompressed in all", n*each+sums.Len())) {
		t.Fatalf("no refusal of the declared total naming the limit: %s", failures(rep))
	}
	if alloc > 16<<20 {
		t.Fatalf("verify allocated %d MiB for a %d-byte zip", alloc>>20, len(b))
	}
}

// Entries whose data runs past the end of the archive, and a total that
// no real export declares for its size, are refused unread.
func TestVerifyRefusesImpossibleLayout(t *testing.T) {
	var z rawZip
	body := deflate(t, []byte("{}"))
	e := z.local("recordings/r/000001.m4s", zip.Deflate, body, 2, crc32.ChecksumIEEE([]byte("{}")))
	past := e
	past.name, past.csize = "case.json", 1<<20 // 1 MiB of data in a zip of 100 bytes
	huge := e
	huge.name, huge.usize = "custody.json", 1<<30 // 1 GiB from a few bytes
	b := z.finish([]rawEntry{e, past, huge})
	rep := verify(b, export.Options{})
	if rep.OK || rep.Checked.Bytes != 0 ||
		!hasFailure(rep, "case.json", "refused: its 1048576 bytes at offset 53 lie beyond the") ||
		!hasFailure(rep, "", "the entries declare 1073741826 bytes uncompressed in all (the largest, custody.json, 1073741824), more than the limit of") {
		t.Fatalf("an impossible layout: %s", failures(rep))
	}
}

// A zip that lies about an entry's uncompressed size is refused when the
// bytes read differ from the size it declares, in either direction.
func TestVerifyRefusesLyingSizes(t *testing.T) {
	b, _, signer, _ := build(t)
	names, data, methods := files(t, b)
	good := pack(t, names, data, methods, &signer)
	if rep := verify(good, export.Options{}); !rep.OK {
		t.Fatalf("the export packed again fails: %s", failures(rep))
	}
	custody := data["custody.json"]
	for _, declared := range []uint64{100, uint64(len(custody)) + 5000} {
		var out bytes.Buffer
		zw := zip.NewWriter(&out)
		for _, n := range names {
			if n != "custody.json" {
				w, _ := zw.CreateHeader(&zip.FileHeader{Name: n, Method: methods[n]})
				w.Write(data[n])
				continue
			}
			body := deflate(t, custody)
			w, err := zw.CreateRaw(&zip.FileHeader{Name: n, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(custody),
				CompressedSize64: uint64(len(body)), UncompressedSize64: declared})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(body)
		}
		zw.Close()
		rep := verify(out.Bytes(), export.Options{})
		if rep.OK || !hasFailure(rep, "custody.json", fmt.Sprintf("the %d bytes it declares", declared)) {
			t.Fatalf("custody.json of %d bytes declared as %d: %s", len(custody), declared, failures(rep))
		}
	}
}

// A file larger than its kind may be is refused unread, by its declared
// size: custody.json over 64 MiB, a key file over 64 KiB.
func TestVerifyRefusesOversizedFiles(t *testing.T) {
	b, _, signer, _ := build(t)
	names, data, methods := files(t, b)
	var keyFile string
	for _, n := range names {
		if strings.HasPrefix(n, "keys/") {
			keyFile = n
		}
	}
	data["custody.json"] = append(bytes.Repeat([]byte(" "), 64<<20), data["custody.json"]...)
	data[keyFile] = append(bytes.Repeat([]byte("\n"), 64<<10), data[keyFile]...)
	var rep export.Report
	alloc := allocated(func() { rep = verify(pack(t, names, data, methods, &signer), export.Options{}) })
	if rep.OK ||
		!hasFailure(rep, "custody.json", "refused unread: it declares 67") ||
		!hasFailure(rep, "custody.json", "more than the 64 MiB an export's custody ledger excerpt may be") ||
		!hasFailure(rep, keyFile, "more than the 64 KiB an export's key may be") {
		t.Fatalf("oversized files: %s", failures(rep))
	}
	t.Logf("allocated %d MiB (packing included)", alloc>>20)
}

// More entries than an export may hold: refused unread, naming the limit
// (lowered here: a zip of a million entries is 100 MB).
func TestVerifyRefusesTooManyEntries(t *testing.T) {
	b, _, _, _ := build(t)
	names, _, _ := files(t, b)
	rep := export.VerifyMaxEntries(bytes.NewReader(b), int64(len(b)), export.Options{}, len(names)-1)
	if rep.OK || rep.Checked.Bytes != 0 || !hasFailure(rep, "", fmt.Sprintf("the zip has %d entries, more than the %d an export may hold", len(names), len(names)-1)) {
		t.Fatalf("too many entries: %s", failures(rep))
	}
	if rep := export.VerifyMaxEntries(bytes.NewReader(b), int64(len(b)), export.Options{}, len(names)); !rep.OK {
		t.Fatalf("as many entries as the limit: %s", failures(rep))
	}
}

// A signed manifest that names one object over and over: each repeat is
// a failure, and the derived copy is not rebuilt from it (that would read
// the object once per repeat).
func TestVerifyRefusesRepeatedObjects(t *testing.T) {
	b, _, signer, _ := build(t)
	names, data, methods := files(t, b)
	const man = "recordings/rec-1/manifest.json"
	var m evidence.Manifest
	if err := json.Unmarshal(data[man], &m); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		m.Segments = append(m.Segments, m.Segments[1])
	}
	data[man] = m.Marshal()
	_, data[man+".sig"] = signer.Sign(data[man])
	rep := verify(pack(t, names, data, methods, &signer), export.Options{})
	if rep.OK || !hasFailure(rep, man, "seq 1 names object 000001.m4s, which seq 1 names already") ||
		!hasFailure(rep, "recordings/rec-1/derived/playable.mp4", "not rebuilt: the objects name recordings/rec-1/000001.m4s more than once") {
		t.Fatalf("repeated objects: %s", failures(rep))
	}
}

// SHA256SUMS listing far more files than the zip holds is read only so
// far, and the failures are listed up to a limit and counted beyond it.
func TestVerifyBoundsSumsAndFailures(t *testing.T) {
	b, _, signer, _ := build(t)
	names, data, methods := files(t, b)
	data = clone(data)
	pack(t, names, data, methods, &signer) // fills in SHA256SUMS
	var sums bytes.Buffer
	sums.Write(data["SHA256SUMS"])
	for i := range 100000 {
		fmt.Fprintf(&sums, "%x  recordings/rec-1/%06d.m4s\n", sha256.Sum256(nil), 100+i)
	}
	data["SHA256SUMS"] = sums.Bytes()
	_, data["SHA256SUMS.sig"] = signer.Sign(sums.Bytes())
	var rep export.Report
	alloc := allocated(func() { rep = verify(pack(t, names, data, methods, nil), export.Options{}) })
	n := len(rep.Failures)
	t.Logf("%d failures, %d KiB allocated; last: %v", n, alloc>>10, rep.Failures[n-1])
	if rep.OK || n != 1001 || !strings.Contains(rep.Failures[n-1].What, "more failures, not listed (the first 1000 are)") ||
		!hasFailure(rep, "SHA256SUMS", "lists more than") {
		t.Fatalf("100,000 files listed that are not there: %d failures", n)
	}
}

func clone(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// JSON as bodycam writes it decodes to less than its own size, so the
// decoding limit (twice the size) never refuses a real export.
func TestVerifyDecodeLimitPassesRealJSON(t *testing.T) {
	b, _, _, _ := build(t)
	names, data, _ := files(t, b)
	targets := export.DecodeTargets()
	checked := 0
	for _, n := range names {
		base := n[strings.LastIndex(n, "/")+1:]
		target, ok := targets[base]
		if !ok {
			continue
		}
		cost, err := export.DecodeCost(data[n], target())
		t.Logf("%s: %d bytes of JSON, about %d decoded", n, len(data[n]), cost)
		if err != nil || cost >= int64(len(data[n])) {
			t.Errorf("%s: %d bytes of JSON decode to about %d: %v", n, len(data[n]), cost, err)
		}
		checked++
	}
	if checked != 6 {
		t.Fatalf("%d JSON files checked, want 6 (case, custody, 2 manifests, 2 recording.json)", checked)
	}
	// The bomb is refused by the same measure.
	var x evidence.Excerpt
	if _, err := export.DecodeCost(custodyBomb(), &x); err == nil {
		t.Fatal("the custody bomb passes the decoding limit")
	}
}
