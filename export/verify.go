package export

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

type entry struct {
	f      *zip.File
	sha256 string
	size   int64
	err    error
}

type verifier struct {
	rep     *Report
	entries map[string]*entry
	names   []string
	keys    map[string]ed25519.PublicKey
}

func (v *verifier) fail(p, format string, args ...any) {
	v.rep.Failures = append(v.rep.Failures, Failure{Path: p, What: fmt.Sprintf(format, args...)})
}

func (v *verifier) note(format string, args ...any) {
	v.rep.Notes = append(v.rep.Notes, fmt.Sprintf(format, args...))
}

// hashOf hashes an entry once.
func (v *verifier) hashOf(name string) *entry {
	e := v.entries[name]
	if e == nil || e.sha256 != "" || e.err != nil {
		return e
	}
	rc, err := e.f.Open()
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

// read reads a small entry whole; it fails naming the file when it cannot.
func (v *verifier) read(name string, what string) ([]byte, bool) {
	e := v.entries[name]
	if e == nil {
		v.fail(name, "missing: the export has no %s", what)
		return nil, false
	}
	rc, err := e.f.Open()
	if err != nil {
		v.fail(name, "cannot be read: %v", err)
		return nil, false
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSmall+1))
	if err == nil && len(b) > maxSmall {
		err = errors.New("larger than 64 MiB")
	}
	if err != nil {
		v.fail(name, "cannot be read: %v", err)
		return nil, false
	}
	return b, true
}

func (v *verifier) key(id string) ed25519.PublicKey { return v.keys[id] }

// Verify checks an export offline and names every failure. Nothing in it
// is trusted before it is checked: SHA256SUMS by its signature (with
// opts.TrustedKey, or a key in keys/ that the report names for the reader
// to compare), every file against SHA256SUMS, the manifests by their
// signatures, the objects against the manifests, the chain by recomputing
// it, the derived copies by rebuilding them, the custody excerpt by its
// chain and signed checkpoints.
func Verify(r io.ReaderAt, size int64, opts Options) Report {
	rep := Report{Keys: []KeyRef{}, Failures: []Failure{}, Notes: []string{}}
	v := &verifier{rep: &rep, entries: map[string]*entry{}, keys: map[string]ed25519.PublicKey{}}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		v.fail("", "not a readable zip file: %v", err)
		return rep
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

	rep.OK = len(rep.Failures) == 0
	return rep
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
		b, ok := v.read(name, "key")
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
	sums, ok := v.read("SHA256SUMS", "list of files and their hashes")
	if !ok {
		return
	}
	if sig, ok := v.read("SHA256SUMS.sig", "signature of SHA256SUMS"); ok {
		v.checkSumsSignature(sums, sig, opts)
	}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	line := 0
	for sc.Scan() {
		line++
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
	b, ok := v.read("case.json", "case description")
	if !ok {
		return nil
	}
	var cf caseFile
	if err := json.Unmarshal(b, &cf); err != nil {
		v.fail("case.json", "not valid JSON: %v", err)
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
	b, ok := v.read("custody.json", "custody ledger excerpt")
	if !ok {
		return
	}
	var x evidence.Excerpt
	if err := json.Unmarshal(b, &x); err != nil {
		v.fail("custody.json", "not valid JSON: %v", err)
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
	for _, name := range v.names {
		if rest, ok := strings.CutPrefix(name, "recordings/"); ok {
			if id, _, ok := strings.Cut(rest, "/"); ok && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if cf != nil {
		for _, id := range cf.Recordings {
			if !slices.Contains(ids, id) {
				v.fail("recordings/"+id+"/", "recording %s, listed in case.json, is missing from the export", id)
			}
		}
		for _, id := range ids {
			if !slices.Contains(cf.Recordings, id) {
				v.fail("recordings/"+id+"/", "recording %s is not one case.json lists", id)
			}
		}
	}
	lastLink := map[string]map[int64]string{} // device -> chain_seq -> chain_hash, from verified manifests
	var firsts []firstLink
	for _, id := range ids {
		if f, ok := v.checkRecording(id, lastLink); ok {
			firsts = append(firsts, f)
		}
	}
	// Recordings of one device in this export must chain into each other.
	for _, f := range firsts {
		if f.chainSeq <= 1 {
			continue
		}
		if prev, ok := lastLink[f.device][f.chainSeq-1]; ok {
			if prev != f.prev {
				v.fail(f.path, "chain breaks before seq 0: it links to %s, but chain link %d of device %s (in this export) is %s",
					short(f.prev), f.chainSeq-1, f.device, short(prev))
			}
		} else {
			v.note("%s: the chain link before it (device %s, chain_seq %d) is not in this export; the signed manifest vouches for its prev_chain_hash", f.path, f.device, f.chainSeq-1)
		}
	}
}

type firstLink struct {
	path     string
	device   string
	chainSeq int64
	prev     string
}

func (v *verifier) checkRecording(id string, chain map[string]map[int64]string) (firstLink, bool) {
	dir := "recordings/" + id + "/"
	v.rep.Checked.Recordings++
	var rf recordingFile
	rfOK := false
	if b, ok := v.read(dir+"recording.json", "recording description"); ok {
		if err := json.Unmarshal(b, &rf); err != nil {
			v.fail(dir+"recording.json", "not valid JSON: %v", err)
		} else {
			rfOK = true
		}
	}
	mname := "manifest.json"
	if rfOK && rf.Manifest.File != "" && safeName.MatchString(rf.Manifest.File) {
		mname = rf.Manifest.File
	}
	mpath := dir + mname
	var m evidence.Manifest
	mOK := false
	if body, ok := v.read(mpath, "signed manifest"); ok {
		if err := json.Unmarshal(body, &m); err != nil {
			v.fail(mpath, "not valid JSON: %v", err)
		} else {
			mOK = true
			if sig, ok := v.read(mpath+".sig", "manifest signature"); ok {
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
		return firstLink{}, false
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
	for _, s := range segs {
		file := ObjectFile(s.Key)
		p := dir + file
		if !safeName.MatchString(file) {
			v.fail(mpath, "seq %d names object %q, which cannot be a file of the export", s.Seq, s.Key)
			continue
		}
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
	// The chain, recomputed link by link.
	var first firstLink
	for i, s := range segs {
		if s.Seq != int64(i) {
			v.fail(mpath, "seq %d is missing: the list goes from %d to %d", i, i-1, s.Seq)
			break
		}
		if i > 0 {
			prev := segs[i-1]
			if s.ChainSeq != prev.ChainSeq+1 || s.PrevChainHash != prev.ChainHash {
				v.fail(mpath, "chain breaks at seq %d: it does not link to seq %d", s.Seq, prev.Seq)
				continue
			}
		}
		if got := evidence.ChainHash(s.Link()); got != s.ChainHash {
			v.fail(mpath, "chain breaks at seq %d: its chain_hash is %s, its link computes to %s", s.Seq, short(s.ChainHash), short(got))
			continue
		}
		v.rep.Checked.ChainLinks++
		if chain[s.DeviceID] == nil {
			chain[s.DeviceID] = map[int64]string{}
		}
		chain[s.DeviceID][s.ChainSeq] = s.ChainHash
	}
	if mOK && len(segs) > 0 && m.ChainHead != segs[len(segs)-1].ChainHash {
		v.fail(mpath, "chain_head %s is not the last object's chain hash", short(m.ChainHead))
	}
	if len(segs) > 0 {
		first = firstLink{path: dir + ObjectFile(segs[0].Key), device: segs[0].DeviceID, chainSeq: segs[0].ChainSeq, prev: segs[0].PrevChainHash}
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
	}
	return first, len(segs) > 0
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
		rc, err := o.f.Open()
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
