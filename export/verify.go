package export

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// Options tune Verify.
type Options struct {
	// TrustedKey, when set, is the only key SHA256SUMS may be signed with
	// (the key the agency publishes); otherwise any key in keys/ is taken
	// and reported, for the reader to compare.
	TrustedKey ed25519.PublicKey
}

// Report is Verify's verdict.
type Report struct {
	OK         bool      `json:"ok"`
	CaseID     string    `json:"case_id,omitempty"`
	ExportedBy string    `json:"exported_by,omitempty"`
	ExportedAt string    `json:"exported_at,omitempty"`
	SignedBy   *KeyRef   `json:"signed_by"` // the key SHA256SUMS verifies with, nil if none
	Keys       []KeyRef  `json:"keys"`
	Checked    Checked   `json:"checked"`
	Failures   []Failure `json:"failures"`
	// Notes are what a reader must know without being failures: gaps in
	// recordings, linked time windows, chain links outside the export.
	Notes []string `json:"notes"`
}

// KeyRef names a key.
type KeyRef struct {
	ID          string `json:"id"`
	File        string `json:"file,omitempty"`
	Fingerprint string `json:"sha256"` // of the raw public key
	Trusted     bool   `json:"trusted,omitempty"`
}

// Checked counts what was checked.
type Checked struct {
	Files         int   `json:"files"`
	Bytes         int64 `json:"bytes"`
	Recordings    int   `json:"recordings"`
	Manifests     int   `json:"manifests"`
	Segments      int   `json:"segments"`
	ChainLinks    int   `json:"chain_links"`
	Derived       int   `json:"derived"`
	Copies        int   `json:"copies"` // derived copies with their provenance checked
	Receipts      int   `json:"receipts"`
	CustodyEvents int   `json:"custody_events"`
}

// Failure is one thing wrong, with the file it concerns.
type Failure struct {
	Path string `json:"path"`
	What string `json:"what"`
}

func (f Failure) String() string {
	if f.Path == "" {
		return f.What
	}
	return f.Path + ": " + f.What
}

// Limits bound what Verify may spend on a zip nobody vouches for yet: a
// small zip must not make it use gigabytes of memory or hash gigabytes
// (issue 10: an 8 KB zip took 2 GB, a 1 MB one hashed 4 GiB). Each is far
// above what a real export needs; what passes them is still checked in
// full. Media are only ever streamed, never held in memory.
type limits struct {
	// entries in the zip. A real export has one per stored object (a
	// segment every 4 s by default) and four more per recording: a million
	// is some 1,100 hours of footage in one case.
	entries int
	// expandRatio and expandSlack: the entries may declare, in all, at
	// most expandRatio times the zip's size plus expandSlack uncompressed.
	// Media are stored as they are (1×, or about 1× when a zip tool
	// deflates them again) and the JSON deflates about 3 to 5×, so a real
	// export stays near 1×; a zip bomb is hundreds of times.
	expandRatio int64
	expandSlack int64
	// json bounds each JSON file (case.json, custody.json, manifests,
	// recording.json). custody.json is the largest: besides the case's
	// events it carries every signed checkpoint from the case's first
	// event to the export, one per 64 ledger events, about 220 bytes each;
	// 64 MiB holds some 300,000 checkpoints, a case whose excerpt spans 19
	// million ledger events. The exporter reads manifests up to the same
	// 64 MiB. Decoding is bounded too (decodeBounded).
	json int64
	// sums bounds SHA256SUMS: a line of about 115 bytes per file, for as
	// many files as entries allows.
	sums int64
	// small bounds a key file (113 bytes) or a signature (64 bytes).
	small int64
	// failures and notes listed; the rest are counted.
	failures, notes int
}

var defaultLimits = limits{
	entries:     1 << 20,
	expandRatio: 4,
	expandSlack: 256 << 20,
	json:        maxSmall, // what the exporter reads a manifest up to
	sums:        128 << 20,
	small:       64 << 10,
	failures:    1000,
	notes:       1000,
}

type entry struct {
	f      *zip.File
	sha256 string
	size   int64
	err    error
}

type verifier struct {
	rep     *Report
	lim     limits
	entries map[string]*entry
	names   []string
	keys    map[string]ed25519.PublicKey
	// unlisted failures and notes beyond the limits
	moreFailures, moreNotes int
}

func (v *verifier) fail(p, format string, args ...any) {
	if len(v.rep.Failures) >= v.lim.failures {
		v.moreFailures++
		return
	}
	v.rep.Failures = append(v.rep.Failures, Failure{Path: p, What: fmt.Sprintf(format, args...)})
}

func (v *verifier) note(format string, args ...any) {
	if len(v.rep.Notes) >= v.lim.notes {
		v.moreNotes++
		return
	}
	v.rep.Notes = append(v.rep.Notes, fmt.Sprintf(format, args...))
}

// open opens an entry and checks, while it is read, that it decompresses
// to exactly the size it declares (archive/zip refuses more as well; this
// names the entry and the size).
func (v *verifier) open(e *entry) (io.ReadCloser, error) {
	rc, err := e.f.Open()
	if err != nil {
		return nil, err
	}
	return &declaredReader{rc: rc, left: e.f.UncompressedSize64, declared: e.f.UncompressedSize64}, nil
}

type declaredReader struct {
	rc             io.ReadCloser
	left, declared uint64
}

func (d *declaredReader) Read(p []byte) (int, error) {
	if uint64(len(p)) > d.left+1 {
		p = p[:d.left+1] // one byte more than declared shows a lie
	}
	n, err := d.rc.Read(p)
	if uint64(n) > d.left {
		return 0, fmt.Errorf("decompresses to more than the %d bytes it declares", d.declared)
	}
	d.left -= uint64(n)
	switch {
	case err == io.EOF && d.left > 0:
		return n, fmt.Errorf("decompresses to %d bytes, it declares %d", d.declared-d.left, d.declared)
	case errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrChecksum) || errors.Is(err, io.ErrUnexpectedEOF):
		return n, fmt.Errorf("does not decompress to the %d bytes it declares with their CRC-32 (damaged, or a zip that lies about its sizes): %w", d.declared, err)
	}
	return n, err
}

func (d *declaredReader) Close() error { return d.rc.Close() }

// hashOf hashes an entry once.
func (v *verifier) hashOf(name string) *entry {
	e := v.entries[name]
	if e == nil || e.sha256 != "" || e.err != nil {
		return e
	}
	rc, err := v.open(e)
	if err != nil {
		e.err = err
		return e
	}
	defer rc.Close()
	h := sha256.New()
	e.size, e.err = io.Copy(h, rc)
	if e.err == nil {
		e.sha256 = hex.EncodeToString(h.Sum(nil))
		v.rep.Checked.Bytes += e.size
	}
	return e
}

// read reads a small entry whole, up to limit bytes; it fails naming the
// file when it cannot.
func (v *verifier) read(name, what string, limit int64) ([]byte, bool) {
	e := v.entries[name]
	if e == nil {
		v.fail(name, "missing: the export has no %s", what)
		return nil, false
	}
	if e.f.UncompressedSize64 > uint64(limit) {
		v.fail(name, "refused unread: it declares %d bytes, more than the %s an export's %s may be", e.f.UncompressedSize64, bytesText(limit), what)
		return nil, false
	}
	rc, err := v.open(e)
	if err != nil {
		v.fail(name, "cannot be read: %v", err)
		return nil, false
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		v.fail(name, "cannot be read: %v", err)
		return nil, false
	}
	return b, true
}

// decode decodes a JSON file read with read, within decodeBounded's limit.
func (v *verifier) decode(name string, b []byte, x any) bool {
	if err := decodeBounded(b, x); err != nil {
		if errors.Is(err, errTooBig) {
			v.fail(name, "refused: %v", err)
		} else {
			v.fail(name, "not valid JSON: %v", err)
		}
		return false
	}
	return true
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func (v *verifier) key(id string) ed25519.PublicKey { return v.keys[id] }

// Verify checks an export offline and names every failure. Nothing in it
// is trusted before it is checked: SHA256SUMS by its signature (with
// opts.TrustedKey, or a key in keys/ that the report names for the reader
// to compare), every file against SHA256SUMS, the manifests by their
// signatures, the objects against the manifests, the chain by recomputing
// it, the derived copies by rebuilding them, the custody excerpt by its
// chain and signed checkpoints.
//
// What it may spend is bounded (see limits): a zip whose entries overlap
// or run past its end, that has too many entries or declares too much, is
// refused before any entry is read; a file larger than its kind may be, a
// JSON file that would decode to much more than its size, or an entry that
// decompresses to other than it declares, is a failure naming the file
// and the limit.
func Verify(r io.ReaderAt, size int64, opts Options) Report {
	return verify(r, size, opts, defaultLimits)
}

func verify(r io.ReaderAt, size int64, opts Options, lim limits) Report {
	rep := Report{Keys: []KeyRef{}, Failures: []Failure{}, Notes: []string{}}
	v := &verifier{rep: &rep, lim: lim, entries: map[string]*entry{}, keys: map[string]ed25519.PublicKey{}}
	v.run(r, size, opts)
	v.finish()
	return rep
}

func (v *verifier) run(r io.ReaderAt, size int64, opts Options) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		v.fail("", "not a readable zip file: %v", err)
		return
	}
	if !v.checkLayout(zr.File, size) {
		return
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") && f.UncompressedSize64 == 0 {
			continue // a directory entry (zip tools add them); holds nothing
		}
		if _, dup := v.entries[f.Name]; dup {
			v.fail(f.Name, "appears twice in the zip")
			continue
		}
		if !validPath(f.Name) {
			v.fail(f.Name, "is not a plain relative path")
		}
		v.entries[f.Name] = &entry{f: f}
		v.names = append(v.names, f.Name)
	}
	sort.Strings(v.names)

	v.loadKeys(opts)
	v.checkSums(opts)
	cf := v.checkCase()
	v.checkCustody(cf)
	v.checkRecordings(cf)
}

// finish lists how many failures and notes were left out, and gives the
// verdict.
func (v *verifier) finish() {
	if v.moreFailures > 0 {
		v.rep.Failures = append(v.rep.Failures, Failure{What: fmt.Sprintf("and %d more failures, not listed (the first %d are)", v.moreFailures, v.lim.failures)})
	}
	if v.moreNotes > 0 {
		v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("and %d more notes, not listed", v.moreNotes))
	}
	v.rep.OK = len(v.rep.Failures) == 0
}

// localHeaderLen is the fixed part of a zip local file header; the name
// follows it, then an extra field.
const localHeaderLen = 30

// checkLayout refuses, before any entry is read, a zip with too many
// entries, entries whose bytes overlap or lie beyond the archive (entries
// sharing one compressed stream make a small zip expand without bound),
// or entries that declare more than the archive could honestly hold.
func (v *verifier) checkLayout(files []*zip.File, size int64) bool {
	if len(files) > v.lim.entries {
		v.fail("", "refused unread: the zip has %d entries, more than the %d an export may hold", len(files), v.lim.entries)
		return false
	}
	type span struct {
		start, end int64
		name       string
	}
	spans := make([]span, 0, len(files))
	ok := true
	var total, largest uint64
	var largestName string
	for _, f := range files {
		off, err := f.DataOffset()
		if err != nil {
			v.fail(f.Name, "refused: its local header cannot be read: %v", err)
			ok = false
			continue
		}
		// From the header's fixed part and name (an extra field only
		// makes it start earlier) to the end of the compressed data.
		start := off - localHeaderLen - int64(len(f.Name))
		if start < 0 {
			v.fail(f.Name, "refused: its local header, %d bytes with its name at least, cannot end at offset %d where its data starts", localHeaderLen+len(f.Name), off)
			ok = false
			continue
		}
		if f.CompressedSize64 > uint64(size) || off > size-int64(f.CompressedSize64) {
			v.fail(f.Name, "refused: its %d bytes at offset %d lie beyond the %d-byte archive", f.CompressedSize64, off, size)
			ok = false
			continue
		}
		spans = append(spans, span{start, off + int64(f.CompressedSize64), f.Name})
		total += min(f.UncompressedSize64, 1<<43) // no overflow for 1<<20 entries
		if f.UncompressedSize64 >= largest {
			largest, largestName = f.UncompressedSize64, f.Name
		}
	}
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i, reach := 1, 0; i < len(spans); i++ {
		// reach: the span seen so far that ends last.
		if s, r := spans[i], spans[reach]; s.start < r.end {
			v.fail(s.name, "refused: its bytes (%d to %d) overlap those of %s (%d to %d); entries that share data are a zip bomb, not an export",
				s.start, s.end, r.name, r.start, r.end)
			ok = false
		}
		if spans[i].end > spans[reach].end {
			reach = i
		}
	}
	if limit := uint64(v.lim.expandRatio*size + v.lim.expandSlack); total > limit {
		v.fail("", "refused unread: the entries declare %d bytes uncompressed in all (the largest, %s, %d), more than the limit of %d for a %d-byte zip (%d times its size plus %s)",
			total, largestName, largest, limit, size, v.lim.expandRatio, bytesText(v.lim.expandSlack))
		ok = false
	}
	return ok
}

// validPath reports whether name is a relative slash path without . or .. parts.
func validPath(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
		return false
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

func (v *verifier) loadKeys(opts Options) {
	for _, name := range v.names {
		if !strings.HasPrefix(name, "keys/") {
			continue
		}
		b, ok := v.read(name, "key", v.lim.small)
		if !ok {
			continue
		}
		pub, err := ParsePublicPEM(b)
		if err != nil {
			v.fail(name, "not an Ed25519 public key: %v", err)
			continue
		}
		id := KeyID(pub)
		if name != "keys/"+id+".pem" {
			v.fail(name, "holds key %s, not the key its name says", id)
			continue
		}
		v.keys[id] = pub
		v.rep.Keys = append(v.rep.Keys, KeyRef{ID: id, File: name, Fingerprint: Fingerprint(pub),
			Trusted: opts.TrustedKey != nil && bytes.Equal(opts.TrustedKey, pub)})
	}
	if len(v.keys) == 0 {
		v.fail("keys/", "no public key in the export")
	}
}

// checkSums checks SHA256SUMS's signature, then every file against it.
func (v *verifier) checkSums(opts Options) {
	listed := map[string]string{}
	sums, ok := v.read("SHA256SUMS", "list of files and their hashes", v.lim.sums)
	if !ok {
		return
	}
	if sig, ok := v.read("SHA256SUMS.sig", "signature of SHA256SUMS", v.lim.small); ok {
		v.checkSumsSignature(sums, sig, opts)
	}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	line := 0
	for sc.Scan() {
		line++
		if line > len(v.names)+v.lim.failures {
			// Each line past the files there are names a missing one;
			// this many more is not an export to read to the end.
			v.fail("SHA256SUMS", "lists more than %d files, %d more than the export holds; the rest is not read", line-1, line-1-len(v.names))
			break
		}
		l := sc.Text()
		sum, name, ok := strings.Cut(l, "  ")
		if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" || name == "" {
			v.fail("SHA256SUMS", "line %d is not \"<sha256>  <file>\": %q", line, l)
			continue
		}
		if _, dup := listed[name]; dup {
			v.fail("SHA256SUMS", "lists %s twice", name)
		}
		listed[name] = sum
	}
	names := make([]string, 0, len(listed))
	for n := range listed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		e := v.hashOf(name)
		switch {
		case e == nil:
			v.fail(name, "listed in SHA256SUMS but missing from the export (removed)")
		case e.err != nil:
			v.fail(name, "cannot be read: %v", e.err)
		case e.sha256 != listed[name]:
			v.fail(name, "content does not match SHA256SUMS (altered): listed %s, the file hashes to %s", short(listed[name]), short(e.sha256))
		default:
			v.rep.Checked.Files++
		}
	}
	for _, name := range v.names {
		if _, ok := listed[name]; !ok && name != "SHA256SUMS" && name != "SHA256SUMS.sig" {
			v.fail(name, "not listed in SHA256SUMS: added to the export after it was made")
		}
	}
}

func (v *verifier) checkSumsSignature(sums, sig []byte, opts Options) {
	if opts.TrustedKey != nil {
		id := KeyID(opts.TrustedKey)
		if ed25519.Verify(opts.TrustedKey, sums, sig) {
			v.rep.SignedBy = &KeyRef{ID: id, File: "", Fingerprint: Fingerprint(opts.TrustedKey), Trusted: true}
			if v.keys[id] != nil {
				v.rep.SignedBy.File = "keys/" + id + ".pem"
			}
			return
		}
		for kid, k := range v.keys {
			if ed25519.Verify(k, sums, sig) {
				v.fail("SHA256SUMS.sig", "signed by key %s (SHA-256 %s), not by the trusted key %s", kid, Fingerprint(k), id)
				return
			}
		}
		v.fail("SHA256SUMS.sig", "does not verify with the trusted key %s: SHA256SUMS was changed after it was signed, or another key signed it", id)
		return
	}
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if ed25519.Verify(v.keys[id], sums, sig) {
			v.rep.SignedBy = &KeyRef{ID: id, File: "keys/" + id + ".pem", Fingerprint: Fingerprint(v.keys[id])}
			return
		}
	}
	v.fail("SHA256SUMS.sig", "does not verify with any key in keys/: SHA256SUMS was changed after it was signed")
}

// checkCase reads case.json.
func (v *verifier) checkCase() *caseFile {
	b, ok := v.read("case.json", "case description", v.lim.json)
	if !ok {
		return nil
	}
	var cf caseFile
	if !v.decode("case.json", b, &cf) {
		return nil
	}
	if cf.Format != Format {
		v.fail("case.json", "format %q, this verifier knows %q", cf.Format, Format)
	}
	v.rep.CaseID, v.rep.ExportedBy = cf.Case.ID, cf.Export.ExportedBy
	if !cf.Export.ExportedAt.IsZero() {
		v.rep.ExportedAt = cf.Export.ExportedAt.UTC().Format(time.RFC3339Nano)
	}
	if s := v.rep.SignedBy; s != nil && cf.Export.SigningKeyID != "" && s.ID != cf.Export.SigningKeyID {
		v.fail("case.json", "names signing key %s, but SHA256SUMS is signed by %s", cf.Export.SigningKeyID, s.ID)
	}
	for _, l := range cf.Links {
		if !l.Active {
			v.note("case.json: link %s of recording %s was removed by %s: %q", l.ID, l.RecordingID, l.UnlinkedBy, l.UnlinkReason)
		}
	}
	return &cf
}

// checkCustody verifies the custody excerpt and looks for the export in it.
func (v *verifier) checkCustody(cf *caseFile) {
	b, ok := v.read("custody.json", "custody ledger excerpt", v.lim.json)
	if !ok {
		return
	}
	var x evidence.Excerpt
	if !v.decode("custody.json", b, &x) {
		return
	}
	if err := evidence.VerifyExcerpt(x, v.key); err != nil {
		v.fail("custody.json", "%v", err)
		return
	}
	v.rep.Checked.CustodyEvents = len(x.Events)
	if cf == nil {
		return
	}
	for _, e := range x.Events {
		if e.Action == evidence.ActionExport && e.TargetID == cf.Case.ID && e.Actor == cf.Export.ExportedBy && e.Outcome == evidence.OutcomeOK {
			return
		}
	}
	v.fail("custody.json", "does not record this export (an \"export\" event of case %s by %s)", cf.Case.ID, cf.Export.ExportedBy)
}

// checkRecordings checks every recording directory and the recordings
// case.json names.
func (v *verifier) checkRecordings(cf *caseFile) {
	var ids []string
	inZip := map[string]bool{}
	for _, name := range v.names {
		if rest, ok := strings.CutPrefix(name, "recordings/"); ok {
			if id, _, ok := strings.Cut(rest, "/"); ok && !inZip[id] {
				inZip[id] = true
				ids = append(ids, id)
			}
		}
	}
	if cf != nil {
		listed := map[string]bool{}
		for _, id := range cf.Recordings {
			listed[id] = true
			if !inZip[id] {
				v.fail("recordings/"+id+"/", "recording %s, listed in case.json, is missing from the export", id)
			}
		}
		for _, id := range ids {
			if !listed[id] {
				v.fail("recordings/"+id+"/", "recording %s is not one case.json lists", id)
			}
		}
	}
	links := map[string]map[int64]linkRef{} // device -> chain_seq -> link, from the manifests
	var joins []join
	for _, id := range ids {
		joins = append(joins, v.checkRecording(id, links)...)
	}
	if cf != nil {
		for _, p := range cf.SameEvent {
			if !inZip[p.Primary] || !inZip[p.Stream] {
				v.fail("case.json", "pairs recordings %s and %s as one event, but not both are in the export", p.Primary, p.Stream)
				continue
			}
			v.note("recordings/%s/: the uploaded original, the recorder's own file, is the primary copy of the event that recordings/%s/ holds as streamed live",
				p.Primary, p.Stream)
		}
	}
	// Where a recording's chain comes from outside its own links (before
	// its first, or where its chain_seq jumps because its node uploaded it
	// interleaved with another recording), the link it names must be that
	// link when the export holds it.
	for _, j := range joins {
		if j.chainSeq <= 1 {
			continue
		}
		prev, ok := links[j.device][j.chainSeq-1]
		switch {
		case ok && prev.recording == j.recording:
			v.fail(j.path, "chain breaks at seq %d: chain link %d of device %s, before it, is this recording's own (seq %d) but out of order", j.seq, j.chainSeq-1, j.device, prev.seq)
		case ok && prev.hash != j.prev && j.seq == 0:
			v.fail(j.path, "chain breaks before seq 0: it links to %s, but chain link %d of device %s (in this export) is %s",
				short(j.prev), j.chainSeq-1, j.device, short(prev.hash))
		case ok && prev.hash != j.prev:
			v.fail(j.path, "chain breaks at seq %d: it links to %s, but chain link %d of device %s (recording %s seq %d, in this export) is %s",
				j.seq, short(j.prev), j.chainSeq-1, j.device, prev.recording, prev.seq, short(prev.hash))
		case j.seq == 0 && !ok:
			v.note("%s: the chain link before it (device %s, chain_seq %d) is not in this export; the signed manifest vouches for its prev_chain_hash", j.path, j.device, j.chainSeq-1)
		case j.seq > 0:
			var in []string
			missing := 0
			for cs := j.after + 1; cs < j.chainSeq; cs++ {
				l, ok := links[j.device][cs]
				switch {
				case !ok:
					missing++
				case l.recording == j.recording:
					v.fail(j.path, "chain link %d of device %s, between seq %d and %d, is this recording's own (seq %d) but out of order", cs, j.device, j.seq-1, j.seq, l.seq)
				case !slices.Contains(in, l.recording):
					in = append(in, l.recording)
				}
			}
			what := fmt.Sprintf("%s: chain links %d to %d of device %s, between seq %d and %d, are of other recordings of the device (uploaded interleaved with this one)",
				j.path, j.after+1, j.chainSeq-1, j.device, j.seq-1, j.seq)
			if len(in) > 0 {
				what += "; in this export: " + strings.Join(in, ", ")
			}
			if missing > 0 {
				what += fmt.Sprintf("; %d not in this export, for which the signed manifest vouches for seq %d's prev_chain_hash", missing, j.seq)
			} else {
				what += "; they chain through"
			}
			v.note("%s", what)
		}
	}
}

// linkRef is a chain link as a verified manifest gives it.
type linkRef struct {
	hash, recording string
	seq             int64
}

// join is where a recording's chain comes from a link not its own: before
// its first object, or where its chain_seq jumps past other recordings'
// links (after is the chain_seq of its own link before the jump).
type join struct {
	path, recording, device string
	seq, chainSeq, after    int64
	prev                    string
}

func (v *verifier) checkRecording(id string, chain map[string]map[int64]linkRef) []join {
	dir := "recordings/" + id + "/"
	v.rep.Checked.Recordings++
	var rf recordingFile
	rfOK := false
	if b, ok := v.read(dir+"recording.json", "recording description", v.lim.json); ok {
		rfOK = v.decode(dir+"recording.json", b, &rf)
	}
	mname := "manifest.json"
	if rfOK && rf.Manifest.File != "" && safeName.MatchString(rf.Manifest.File) {
		mname = rf.Manifest.File
	}
	mpath := dir + mname
	var m evidence.Manifest
	mOK := false
	if body, ok := v.read(mpath, "signed manifest", v.lim.json); ok {
		if v.decode(mpath, body, &m) {
			mOK = true
			if sig, ok := v.read(mpath+".sig", "manifest signature", v.lim.small); ok {
				pub := v.keys[m.SigningKeyID]
				switch {
				case pub == nil:
					v.fail(mpath+".sig", "signed by key %q, which is not in keys/", m.SigningKeyID)
				case !evidence.VerifyManifest(pub, body, sig):
					v.fail(mpath, "signature does not verify with key %s: the manifest was altered after it was signed", m.SigningKeyID)
				default:
					v.rep.Checked.Manifests++
				}
			}
			if m.RecordingID != id {
				v.fail(mpath, "describes recording %q, not %s", m.RecordingID, id)
			}
		}
	}
	if !mOK && !rfOK {
		return nil
	}
	// What the objects must be: the signed manifest, else recording.json.
	var segs []evidence.Segment
	if mOK {
		for i := range m.Segments {
			segs = append(segs, m.Segment(i))
		}
	} else {
		for _, s := range rf.Segments {
			segs = append(segs, s.Segment(rf.Recording.ID, rf.Recording.DeviceID))
		}
	}
	if rfOK && mOK {
		v.compareRecordingJSON(dir, rf, segs)
	}
	// Each object: present, with the hash and size the manifest gives.
	byHash := map[string]int64{}
	for _, s := range segs {
		byHash[s.SHA256] = s.Seq
	}
	named := map[string]int64{} // file -> the seq that names it
	for _, s := range segs {
		file := ObjectFile(s.Key)
		p := dir + file
		if !safeName.MatchString(file) {
			v.fail(mpath, "seq %d names object %q, which cannot be a file of the export", s.Seq, s.Key)
			continue
		}
		if other, dup := named[file]; dup {
			// Each object is stored once; a list that names one again
			// would also have the derived copy rebuilt from it again
			// and again.
			v.fail(mpath, "seq %d names object %s, which seq %d names already", s.Seq, file, other)
			continue
		}
		named[file] = s.Seq
		e := v.hashOf(p)
		switch {
		case e == nil:
			v.fail(p, "segment seq %d, listed in the signed manifest, is missing from the export", s.Seq)
		case e.err != nil:
			v.fail(p, "segment seq %d cannot be read: %v", s.Seq, e.err)
		case e.sha256 == s.SHA256 && e.size == s.Size:
			v.rep.Checked.Segments++
		default:
			if other, ok := byHash[e.sha256]; ok && other != s.Seq {
				v.fail(p, "holds the bytes of seq %d, not of seq %d: segments were swapped or reordered", other, s.Seq)
			} else {
				v.fail(p, "segment seq %d does not match its SHA-256 in the manifest (altered): manifest %s, %d bytes; the file %s, %d bytes",
					s.Seq, short(s.SHA256), s.Size, short(e.sha256), e.size)
			}
		}
	}
	// The chain, recomputed link by link. A recording's links are a
	// subsequence of its device's chain: consecutive when its node uploads
	// it as it records, with other recordings' links between where its
	// node's spool came back late.
	// An uploaded file is one object, the original, seq 1; a stream's
	// objects count from its init segment, 0.
	upload := mOK && m.Kind == evidence.KindUpload
	if upload {
		v.checkUpload(dir, mpath, m, segs)
	} else if rfOK && rf.Kind == string(evidence.KindUpload) {
		v.fail(dir+"recording.json", "says the recording is an uploaded file; its signed manifest does not")
	}
	base := firstSeq(m.Kind)
	var joins []join
	for i, s := range segs {
		if want := base + int64(i); s.Seq != want {
			v.fail(mpath, "seq %d is missing: the list goes from %d to %d", want, want-1, s.Seq)
			break
		}
		if i == 0 {
			joins = append(joins, join{path: dir + ObjectFile(s.Key), recording: id, device: s.DeviceID, chainSeq: s.ChainSeq, prev: s.PrevChainHash})
		} else {
			prev := segs[i-1]
			switch {
			case s.ChainSeq <= prev.ChainSeq:
				v.fail(mpath, "chain breaks at seq %d: its chain_seq %d does not follow seq %d's %d", s.Seq, s.ChainSeq, prev.Seq, prev.ChainSeq)
				continue
			case s.ChainSeq == prev.ChainSeq+1 && s.PrevChainHash != prev.ChainHash:
				v.fail(mpath, "chain breaks at seq %d: it does not link to seq %d", s.Seq, prev.Seq)
				continue
			case s.ChainSeq > prev.ChainSeq+1:
				joins = append(joins, join{path: mpath, recording: id, device: s.DeviceID, seq: s.Seq, chainSeq: s.ChainSeq,
					after: prev.ChainSeq, prev: s.PrevChainHash})
			}
		}
		if got := evidence.ChainHash(s.Link()); got != s.ChainHash {
			v.fail(mpath, "chain breaks at seq %d: its chain_hash is %s, its link computes to %s", s.Seq, short(s.ChainHash), short(got))
			continue
		}
		v.rep.Checked.ChainLinks++
		if chain[s.DeviceID] == nil {
			chain[s.DeviceID] = map[int64]linkRef{}
		}
		chain[s.DeviceID][s.ChainSeq] = linkRef{hash: s.ChainHash, recording: id, seq: s.Seq}
	}
	if mOK && len(segs) > 0 && m.ChainHead != segs[len(segs)-1].ChainHash {
		v.fail(mpath, "chain_head %s is not the last object's chain hash", short(m.ChainHead))
	}
	if mOK {
		for _, g := range m.Gaps {
			end := "(unknown)"
			if g.End != nil {
				end = g.End.UTC().Format(time.RFC3339Nano)
			}
			v.note("%s: gap (%s) from %s to %s: %s", dir, g.Kind, g.Start.UTC().Format(time.RFC3339Nano), end, g.Detail)
		}
	}
	if rfOK {
		for _, l := range rf.Links {
			if l.Window != "the whole recording" {
				v.note("%s: linked to the case for a window only, %s; the whole recording is included", dir, l.Window)
			}
		}
		v.checkDerived(dir, rf, segs)
		v.checkCopies(dir, rf, segs)
	}
	return joins
}

// checkUpload checks an uploaded file's signed manifest origin against its
// object, and its signed receipt: signed by a key of the export, naming
// the original, its chain link, the file and the dock.
func (v *verifier) checkUpload(dir, mpath string, m evidence.Manifest, segs []evidence.Segment) {
	if err := evidence.CheckOrigin(m, segs); err != nil {
		v.fail(mpath, "%v", err)
		return
	}
	p := dir + ReceiptFile
	body, ok := v.read(p, "receipt of the uploaded file", v.lim.json)
	if !ok {
		return
	}
	var r evidence.Receipt
	if !v.decode(p, body, &r) {
		return
	}
	sig, ok := v.read(p+".sig", "receipt signature", v.lim.small)
	if !ok {
		return
	}
	pub := v.keys[r.SigningKeyID]
	switch {
	case pub == nil:
		v.fail(p+".sig", "signed by key %q, which is not in keys/", r.SigningKeyID)
		return
	case !evidence.VerifyManifest(pub, body, sig):
		v.fail(p, "signature does not verify with key %s: the receipt was altered after it was signed", r.SigningKeyID)
		return
	}
	if err := evidence.CheckReceipt(r, segs[0], m.Origin); err != nil {
		v.fail(p, "%v", err)
		return
	}
	v.rep.Checked.Receipts++
}

// compareRecordingJSON checks recording.json agrees with the manifest.
func (v *verifier) compareRecordingJSON(dir string, rf recordingFile, segs []evidence.Segment) {
	p := dir + "recording.json"
	if rf.Recording.ID+"/" != strings.TrimPrefix(dir, "recordings/") {
		v.fail(p, "describes recording %q", rf.Recording.ID)
	}
	if len(rf.Segments) != len(segs) {
		v.fail(p, "lists %d objects, the signed manifest %d", len(rf.Segments), len(segs))
		return
	}
	for i, s := range segs {
		j := rf.Segments[i]
		if j.Seq != s.Seq || j.Key != s.Key || j.SHA256 != s.SHA256 || j.Size != s.Size || j.ChainSeq != s.ChainSeq ||
			j.PrevChainHash != s.PrevChainHash || j.ChainHash != s.ChainHash || !j.StartedAt.Equal(s.StartedAt) ||
			j.DurationUS != s.Duration.Microseconds() || j.File != ObjectFile(s.Key) {
			v.fail(p, "differs from the signed manifest at seq %d", s.Seq)
		}
	}
}

// checkDerived checks derived/playable.mp4 against recording.json and
// rebuilds it from the originals.
func (v *verifier) checkDerived(dir string, rf recordingFile, segs []evidence.Segment) {
	d := rf.Derived
	p := dir + "derived/playable.mp4"
	if d == nil {
		if v.entries[p] != nil {
			v.fail(p, "recording.json names no derived copy, but the file is there")
		}
		return
	}
	if d.File != "derived/playable.mp4" {
		v.fail(dir+"recording.json", "names the derived copy %q", d.File)
		return
	}
	var want []string
	for _, s := range segs {
		want = append(want, ObjectFile(s.Key))
	}
	if !slices.Equal(d.MadeFrom, want) {
		v.fail(dir+"recording.json", "the derived copy is said to be made from %v, not every object in order (%v)", d.MadeFrom, want)
	}
	seen := make(map[string]bool, len(want))
	for _, name := range want {
		if seen[name] {
			v.fail(p, "not rebuilt: the objects name %s more than once", dir+name)
			return
		}
		seen[name] = true
	}
	e := v.hashOf(p)
	switch {
	case e == nil:
		v.fail(p, "missing: recording.json names this derived copy")
		return
	case e.err != nil:
		v.fail(p, "cannot be read: %v", e.err)
		return
	case e.sha256 != d.SHA256 || e.size != d.Size:
		v.fail(p, "does not match the SHA-256 in recording.json (%s, %d bytes): the file hashes to %s, %d bytes", short(d.SHA256), d.Size, short(e.sha256), e.size)
	}
	// Rebuild: the originals concatenated in the manifest's order.
	h := sha256.New()
	var n int64
	for _, name := range want {
		o := v.entries[dir+name]
		if o == nil {
			v.fail(p, "cannot be rebuilt: %s is missing", dir+name)
			return
		}
		rc, err := v.open(o)
		if err != nil {
			v.fail(p, "cannot be rebuilt: %s: %v", dir+name, err)
			return
		}
		c, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			v.fail(p, "cannot be rebuilt: %s: %v", dir+name, err)
			return
		}
		n += c
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.sha256 || n != e.size {
		v.fail(p, "is not the originals concatenated in order (the originals give %s, %d bytes; the file is %s, %d bytes)", short(got), n, short(e.sha256), e.size)
		return
	}
	v.rep.Checked.Derived++
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
