// Package export writes a case as a court export, one zip file, and checks
// such a file offline. The zip holds, per piece of evidence, the original
// stored objects exactly as stored, their signed manifests, a playable MP4
// derived from them (marked as derived, with its own hash), the case's part
// of the custody ledger with what is needed to check it, the public keys,
// and a SHA256SUMS file signed with the server's Ed25519 key: everything can
// be checked with `bodycam verify` and with sha256sum and openssl alone.
//
// Layout:
//
//	README.txt                       what this is and how to check it
//	case.json                        the case, its workflow steps, every evidence link (removed ones too), the export
//	custody.json                     the custody excerpt (evidence.Excerpt)
//	keys/<key-id>.pem                public keys (PKIX PEM, what openssl reads)
//	recordings/<id>/init.mp4         the original objects under their object names
//	recordings/<id>/000001.m4s ...
//	recordings/<id>/manifest.json    the signed manifest, and its raw signature
//	recordings/<id>/manifest.json.sig
//	recordings/<id>/recording.json   the catalog's view: segments, chain links, gaps, links with windows, the derived copy
//	recordings/<id>/derived/playable.mp4   init + media segments concatenated: a derived copy for viewing
//	recordings/<id>/original.<ext>   an uploaded recording's one object: the recorder's file, byte for byte
//	recordings/<id>/receipt.json     its signed receipt (what the dock was given), and its raw signature
//	recordings/<id>/receipt.json.sig
//	recordings/<id>/copies/<file>    derived copies chosen for the export (redacted copies, clips), as stored,
//	recordings/<id>/copies/<file>.provenance.json  with their signed provenance records (and .sig)
//	SHA256SUMS                       sha256sum lines of every file above
//	SHA256SUMS.sig                   raw Ed25519 signature of SHA256SUMS
//
// The package imports the standard library and evidence only.
package export

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// Format names the layout, in case.json.
const Format = "bodycam-case-export-v1"

// DerivedNote is what recording.json says of the derived copy.
const DerivedNote = "derived copy for viewing; the originals are the evidence"

// maxSmall bounds the small files (manifests, signatures, JSON) read whole.
const maxSmall = 64 << 20

// Source gives stored objects by key (the object store).
type Source interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// Signer signs with the server's current key (the keyring).
type Signer interface {
	ID() string
	Sign(msg []byte) (keyID string, sig []byte)
}

// PublicKey is a verification key with its id (the first 16 hex digits of
// the SHA-256 of the raw key).
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// RecordingData is one exported recording as the catalog has it.
type RecordingData struct {
	Recording evidence.Recording // its ManifestKey names the signed manifest
	Segments  []evidence.Segment
	Gaps      []evidence.Gap
	// SameEvent are the recordings of the same event (catalog SameEvent):
	// a stream and an uploaded file of it that are both in the export are
	// listed as a pair, the uploaded original the primary copy.
	SameEvent []string
	// Copies are derived copies chosen to go with it (redacted copies,
	// clips), each with its signed provenance record.
	Copies []Copy
}

// ReceiptFile is the file name of an uploaded recording's receipt.
const ReceiptFile = "receipt.json"

// firstSeq is the seq of a recording's first object: a stream's init
// segment is 0, an uploaded file's original 1.
func firstSeq(kind evidence.RecordingKind) int64 {
	if kind == evidence.KindUpload {
		return 1
	}
	return 0
}

// CaseData is everything an export holds besides the objects' bytes.
type CaseData struct {
	Case        evidence.Case
	Transitions []evidence.CaseTransition
	// Links are every link of the case, removed ones included (they are
	// listed, with who removed them and why, but their footage is exported
	// only when another link still holds it).
	Links []evidence.EvidenceLink
	// Recordings are the recordings of the active links.
	Recordings []RecordingData
	Custody    evidence.Excerpt
	Keys       []PublicKey
	ExportedBy string
	ExportedAt time.Time
	Signer     Signer
}

// KeyID derives a key's id as the keyring does.
func KeyID(pub ed25519.PublicKey) string { return Fingerprint(pub)[:16] }

// Fingerprint is the hex SHA-256 of the raw 32-byte public key; the key id
// is its first 16 digits.
func Fingerprint(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:])
}

// PublicPEM encodes a public key as PKIX "PUBLIC KEY" PEM, as keyring does.
func PublicPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicPEM reads a PKIX PEM Ed25519 public key.
func ParsePublicPEM(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key")
	}
	key, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return pub, nil
}

// safeName is what may name a recording directory or an object file.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ObjectFile is the file name of an object in its recording's directory.
func ObjectFile(key string) string { return path.Base(key) }

// The JSON files.

type caseFile struct {
	Format      string                      `json:"format"`
	Case        evidence.CaseRecord         `json:"case"`
	Transitions []evidence.TransitionRecord `json:"transitions"`
	Links       []linkInfo                  `json:"evidence_links"`
	Recordings  []string                    `json:"recordings"`
	// SameEvent pairs the recordings of one event in this export: the
	// recorder's own uploaded file (primary) and its live stream.
	SameEvent []eventPair `json:"same_event,omitempty"`
	Export    exportInfo  `json:"export"`
}

// eventPair is one event recorded twice: Primary is the uploaded
// original, the recorder's own file; Stream the copy that came in live.
type eventPair struct {
	Primary string `json:"primary"`
	Stream  string `json:"stream"`
}

// pairs lists the same-event pairs of the export: an uploaded recording
// and a stream recording, both in it, linked as one event.
func pairs(c CaseData) []eventPair {
	kind := map[string]evidence.RecordingKind{}
	for _, r := range c.Recordings {
		kind[r.Recording.ID] = r.Recording.Kind
	}
	var out []eventPair
	for _, r := range c.Recordings {
		if r.Recording.Kind != evidence.KindUpload {
			continue
		}
		for _, other := range r.SameEvent {
			if k, ok := kind[other]; ok && k != evidence.KindUpload {
				out = append(out, eventPair{Primary: r.Recording.ID, Stream: other})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Primary < out[j].Primary || out[i].Primary == out[j].Primary && out[i].Stream < out[j].Stream
	})
	return out
}

// linkInfo is an evidence link with its window in words.
type linkInfo struct {
	evidence.LinkRecord
	Window string `json:"window"`
}

type exportInfo struct {
	ExportedBy       string    `json:"exported_by"`
	ExportedAt       time.Time `json:"exported_at"`
	SigningKeyID     string    `json:"signing_key_id"`
	SigningKeySHA256 string    `json:"signing_key_sha256"`
	Keys             []keyInfo `json:"keys"`
}

type keyInfo struct {
	ID     string `json:"id"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"` // of the raw public key
}

type recordingFile struct {
	Recording recordingInfo          `json:"recording"`
	Manifest  manifestInfo           `json:"manifest"`
	Segments  []segmentInfo          `json:"segments"`
	Gaps      []evidence.ManifestGap `json:"gaps"`
	Links     []linkInfo             `json:"links"`
	Derived   *derivedInfo           `json:"derived"`
	// Copies are the derived copies chosen for the export, in copies/.
	Copies []copyInfo `json:"copies,omitempty"`
	// For an uploaded file: its origin (as the signed manifest has it),
	// its signed receipt, and whether it is the primary copy of an event
	// a stream recording in this export also holds (SameEvent: those).
	Kind      string                   `json:"kind,omitempty"`
	Origin    *evidence.ManifestOrigin `json:"origin,omitempty"`
	Receipt   *receiptInfo             `json:"receipt,omitempty"`
	Primary   bool                     `json:"primary,omitempty"`
	SameEvent []string                 `json:"same_event,omitempty"`
}

type receiptInfo struct {
	File         string `json:"file"`
	Signature    string `json:"signature"`
	SigningKeyID string `json:"signing_key_id"`
}

type recordingInfo struct {
	ID           string     `json:"id"`
	DeviceID     string     `json:"device_id"`
	OfficerID    string     `json:"officer_id"`
	CaseID       string     `json:"case_id"`
	State        string     `json:"state"`
	StartedAt    time.Time  `json:"started_at"`
	EndedAt      *time.Time `json:"ended_at"`
	EndReason    string     `json:"end_reason"`
	Codecs       []string   `json:"codecs"`
	SegmentCount int        `json:"segment_count"`
	ManifestKey  string     `json:"manifest_key"`
}

type manifestInfo struct {
	File         string `json:"file"`
	Signature    string `json:"signature"`
	SigningKeyID string `json:"signing_key_id"`
}

// segmentInfo is a segment as recording.json lists it: the manifest's entry
// and the file in the zip that holds its bytes.
type segmentInfo struct {
	evidence.ManifestSegment
	File string `json:"file"`
}

type derivedInfo struct {
	File     string   `json:"file"`
	SHA256   string   `json:"sha256"`
	Size     int64    `json:"size"`
	MadeFrom []string `json:"made_from"`
	Note     string   `json:"note"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func window(l evidence.EvidenceLink) string {
	if l.From.IsZero() && l.To.IsZero() {
		return "the whole recording"
	}
	f := func(t time.Time) string {
		if t.IsZero() {
			return "(open)"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return "from " + f(l.From) + " to " + f(l.To)
}

func toLinkInfo(l evidence.EvidenceLink) linkInfo {
	return linkInfo{LinkRecord: evidence.NewLinkRecord(l), Window: window(l)}
}

func toSegmentInfo(s evidence.Segment) segmentInfo {
	return segmentInfo{ManifestSegment: evidence.NewManifestSegment(s), File: ObjectFile(s.Key)}
}

// zipWriter writes entries and remembers their hashes for SHA256SUMS.
type zipWriter struct {
	zw   *zip.Writer
	at   time.Time
	sums bytes.Buffer
}

// create starts an entry; media is stored as it is (already compressed).
func (z *zipWriter) create(name string, store bool) (io.Writer, error) {
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: z.at}
	if store {
		h.Method = zip.Store
	}
	h.SetMode(0o444)
	return z.zw.CreateHeader(h)
}

// put writes a whole small file, listed in SHA256SUMS.
func (z *zipWriter) put(name string, b []byte) error {
	w, err := z.create(name, false)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	z.list(name, sha256.Sum256(b))
	return nil
}

func (z *zipWriter) list(name string, sum [32]byte) {
	fmt.Fprintf(&z.sums, "%s  %s\n", hex.EncodeToString(sum[:]), name)
}

// copyObject streams an object into an entry and returns its hash and size;
// extra also receives the bytes.
func (z *zipWriter) copyObject(ctx context.Context, src Source, key, name string, store bool, extra io.Writer) (string, int64, error) {
	rc, err := src.Get(ctx, key)
	if err != nil {
		return "", 0, fmt.Errorf("export: object %s: %w", key, err)
	}
	defer rc.Close()
	w, err := z.create(name, store)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	dst := io.MultiWriter(w, h)
	if extra != nil {
		dst = io.MultiWriter(w, h, extra)
	}
	n, err := io.Copy(dst, contextReader{ctx, rc})
	if err != nil {
		return "", n, fmt.Errorf("export: object %s: %w", key, err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	z.list(name, sum)
	return hex.EncodeToString(sum[:]), n, nil
}

// contextReader stops a long copy when the request ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func readSmall(ctx context.Context, src Source, key string) ([]byte, error) {
	rc, err := src.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("export: object %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSmall+1))
	if err == nil && len(b) > maxSmall {
		err = errors.New("too large")
	}
	if err != nil {
		return nil, fmt.Errorf("export: object %s: %w", key, err)
	}
	return b, nil
}

func jsonBytes(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return append(b, '\n')
}

// check refuses data that would make an export that cannot be checked.
func (c *CaseData) check() (map[string]ed25519.PublicKey, error) {
	if c.Signer == nil {
		return nil, errors.New("export: no signer")
	}
	if err := evidence.ValidateCaseID(c.Case.ID); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range c.Keys {
		if len(k.Key) != ed25519.PublicKeySize || KeyID(k.Key) != k.ID {
			return nil, fmt.Errorf("export: public key %q is not an Ed25519 key with that id", k.ID)
		}
		keys[k.ID] = k.Key
	}
	if keys[c.Signer.ID()] == nil {
		return nil, fmt.Errorf("export: the signing key %s is not among the public keys", c.Signer.ID())
	}
	seen := map[string]bool{}
	for _, r := range c.Recordings {
		id := r.Recording.ID
		if !safeName.MatchString(id) || seen[id] {
			return nil, fmt.Errorf("export: recording id %q is not usable as a directory name, or given twice", id)
		}
		seen[id] = true
		if r.Recording.ManifestKey == "" {
			return nil, fmt.Errorf("export: recording %s has no signed manifest yet (still recording?)", id)
		}
		files := map[string]bool{"recording.json": true, "derived": true, CopiesDir: true, ReceiptFile: true, ReceiptFile + ".sig": true,
			ObjectFile(r.Recording.ManifestKey): true, ObjectFile(r.Recording.ManifestKey) + ".sig": true}
		base := firstSeq(r.Recording.Kind)
		for i, s := range r.Segments {
			name := ObjectFile(s.Key)
			if !safeName.MatchString(name) || files[name] {
				return nil, fmt.Errorf("export: recording %s: object %q cannot be named %q in the export", id, s.Key, name)
			}
			files[name] = true
			if want := base + int64(i); s.Seq != want {
				return nil, fmt.Errorf("export: recording %s: segment %d is missing from the catalog (next is %d)", id, want, s.Seq)
			}
		}
	}
	err := evidence.VerifyExcerpt(c.Custody, func(id string) ed25519.PublicKey { return keys[id] })
	if err != nil {
		return nil, fmt.Errorf("export: the custody excerpt does not verify: %w", err)
	}
	return keys, nil
}

// Write writes the export of a case to w as a zip, streaming: objects are
// copied from src as they are read, and SHA256SUMS, computed on the way,
// comes last. It refuses (with an error, possibly after part of the zip
// was written) objects whose bytes do not match the catalog and manifests
// whose signature does not verify: such an export would not check out.
func Write(ctx context.Context, w io.Writer, src Source, c CaseData) error {
	keys, err := c.check()
	if err != nil {
		return err
	}
	if c.ExportedAt.IsZero() {
		c.ExportedAt = time.Now()
	}
	c.ExportedAt = c.ExportedAt.UTC()
	keyIDs := make([]string, 0, len(keys))
	for id := range keys {
		keyIDs = append(keyIDs, id)
	}
	sort.Strings(keyIDs)
	signer := c.Signer.ID()

	// Manifests first (small): their key ids go into the README.
	manifests := make([][]byte, len(c.Recordings))
	sigs := make([][]byte, len(c.Recordings))
	mkeys := make([]string, len(c.Recordings))
	origins := make([]*evidence.ManifestOrigin, len(c.Recordings))
	receipts := make([]signedReceipt, len(c.Recordings))
	copies := make([][]signedCopy, len(c.Recordings))
	for i, r := range c.Recordings {
		if copies[i], err = readCopies(ctx, src, keys, r); err != nil {
			return err
		}
		if manifests[i], err = readSmall(ctx, src, r.Recording.ManifestKey); err != nil {
			return err
		}
		if sigs[i], err = readSmall(ctx, src, r.Recording.ManifestKey+".sig"); err != nil {
			return err
		}
		var m evidence.Manifest
		if err := json.Unmarshal(manifests[i], &m); err != nil {
			return fmt.Errorf("export: manifest of %s: %w", r.Recording.ID, err)
		}
		pub := keys[m.SigningKeyID]
		if pub == nil {
			return fmt.Errorf("export: manifest of %s is signed by key %q, which is not among the public keys", r.Recording.ID, m.SigningKeyID)
		}
		if !evidence.VerifyManifest(pub, manifests[i], sigs[i]) {
			return fmt.Errorf("export: the manifest of %s does not verify: it was altered; run verify on the recording", r.Recording.ID)
		}
		same := m.RecordingID == r.Recording.ID && len(m.Segments) == len(r.Segments)
		for j := 0; same && j < len(m.Segments); j++ {
			ms, cs := m.Segments[j], r.Segments[j]
			same = ms.Seq == cs.Seq && ms.Key == cs.Key && ms.SHA256 == cs.SHA256 && ms.Size == cs.Size && ms.ChainHash == cs.ChainHash
		}
		if !same {
			return fmt.Errorf("export: the manifest of %s does not list what the catalog does; run verify on the recording", r.Recording.ID)
		}
		mkeys[i] = m.SigningKeyID
		if r.Recording.Kind == evidence.KindUpload {
			if err := evidence.CheckOrigin(m, r.Segments); err != nil {
				return fmt.Errorf("export: the manifest of %s: %v; run verify on the recording", r.Recording.ID, err)
			}
			origins[i] = m.Origin
			if receipts[i], err = readReceipt(ctx, src, keys, r, m.Origin); err != nil {
				return err
			}
		}
	}

	z := &zipWriter{zw: zip.NewWriter(w), at: c.ExportedAt}
	if err := z.put("README.txt", readme(c, keyIDs, mkeys, origins, receipts)); err != nil {
		return err
	}
	cf := caseFile{Format: Format, Case: evidence.NewCaseRecord(c.Case),
		Transitions: []evidence.TransitionRecord{}, Links: []linkInfo{}, Recordings: []string{},
		Export: exportInfo{ExportedBy: c.ExportedBy, ExportedAt: c.ExportedAt, SigningKeyID: signer,
			SigningKeySHA256: Fingerprint(keys[signer]), Keys: []keyInfo{}}}
	for _, t := range c.Transitions {
		cf.Transitions = append(cf.Transitions, evidence.NewTransitionRecord(t))
	}
	for _, l := range c.Links {
		cf.Links = append(cf.Links, toLinkInfo(l))
	}
	for _, r := range c.Recordings {
		cf.Recordings = append(cf.Recordings, r.Recording.ID)
	}
	cf.SameEvent = pairs(c)
	for _, id := range keyIDs {
		cf.Export.Keys = append(cf.Export.Keys, keyInfo{ID: id, File: "keys/" + id + ".pem", SHA256: Fingerprint(keys[id])})
	}
	if err := z.put("case.json", jsonBytes(cf)); err != nil {
		return err
	}
	if err := z.put("custody.json", jsonBytes(c.Custody)); err != nil {
		return err
	}
	for _, id := range keyIDs {
		if err := z.put("keys/"+id+".pem", PublicPEM(keys[id])); err != nil {
			return err
		}
	}
	for i, r := range c.Recordings {
		if err := z.recording(ctx, src, c, r, manifests[i], sigs[i], mkeys[i], origins[i], receipts[i], copies[i]); err != nil {
			return err
		}
	}
	sums := z.sums.Bytes()
	keyID, sig := c.Signer.Sign(sums)
	if keyID != signer || !ed25519.Verify(keys[signer], sums, sig) {
		return fmt.Errorf("export: the signer's signature does not verify with key %s", signer)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"SHA256SUMS", sums}, {"SHA256SUMS.sig", sig}} {
		w, err := z.create(f.name, false)
		if err != nil {
			return err
		}
		if _, err := w.Write(f.b); err != nil {
			return err
		}
	}
	return z.zw.Close()
}

// recording writes one recording's directory.
func (z *zipWriter) recording(ctx context.Context, src Source, c CaseData, r RecordingData, manifest, sig []byte, manifestKeyID string,
	origin *evidence.ManifestOrigin, receipt signedReceipt, copies []signedCopy) error {
	dir := "recordings/" + r.Recording.ID + "/"
	concat := sha256.New()
	var madeFrom []string
	playable := len(r.Segments) > 1 && r.Segments[0].Kind == evidence.KindInit
	for _, s := range r.Segments {
		name := ObjectFile(s.Key)
		var extra io.Writer
		if playable {
			extra = concat
			madeFrom = append(madeFrom, name)
		}
		sum, n, err := z.copyObject(ctx, src, s.Key, dir+name, true, extra)
		if err != nil {
			return err
		}
		if sum != s.SHA256 || n != s.Size {
			return fmt.Errorf("export: object %s does not match its record (recorded %s, %d bytes; stored %s, %d bytes): run verify on recording %s",
				s.Key, s.SHA256, s.Size, sum, n, r.Recording.ID)
		}
	}
	mname := ObjectFile(r.Recording.ManifestKey)
	if err := z.put(dir+mname, manifest); err != nil {
		return err
	}
	if err := z.put(dir+mname+".sig", sig); err != nil {
		return err
	}
	rf := recordingFile{
		Recording: recordingInfo{ID: r.Recording.ID, DeviceID: r.Recording.DeviceID, OfficerID: r.Recording.OfficerID,
			CaseID: r.Recording.CaseID, State: string(r.Recording.State), StartedAt: r.Recording.StartedAt,
			EndedAt: timePtr(r.Recording.EndedAt), EndReason: r.Recording.EndReason, Codecs: append([]string{}, r.Recording.Codecs...),
			SegmentCount: r.Recording.SegmentCount, ManifestKey: r.Recording.ManifestKey},
		Manifest: manifestInfo{File: mname, Signature: mname + ".sig", SigningKeyID: manifestKeyID},
		Segments: []segmentInfo{}, Gaps: []evidence.ManifestGap{}, Links: []linkInfo{},
	}
	for _, s := range r.Segments {
		rf.Segments = append(rf.Segments, toSegmentInfo(s))
	}
	for _, g := range r.Gaps {
		rf.Gaps = append(rf.Gaps, evidence.NewManifestGap(g))
	}
	for _, l := range c.Links {
		if l.RecordingID == r.Recording.ID && l.Active() {
			rf.Links = append(rf.Links, toLinkInfo(l))
		}
	}
	if r.Recording.Kind == evidence.KindUpload {
		if err := z.put(dir+ReceiptFile, receipt.body); err != nil {
			return err
		}
		if err := z.put(dir+ReceiptFile+".sig", receipt.sig); err != nil {
			return err
		}
		rf.Kind, rf.Origin = string(evidence.KindUpload), origin
		rf.Receipt = &receiptInfo{File: ReceiptFile, Signature: ReceiptFile + ".sig", SigningKeyID: receipt.keyID}
	}
	for _, p := range pairs(c) {
		switch r.Recording.ID {
		case p.Primary:
			rf.Primary = true
			rf.SameEvent = append(rf.SameEvent, p.Stream)
		case p.Stream:
			rf.SameEvent = append(rf.SameEvent, p.Primary)
		}
	}
	if playable {
		// The derived copy: the same objects read again, in order.
		want := hex.EncodeToString(concat.Sum(nil))
		w, err := z.create(dir+"derived/playable.mp4", true)
		if err != nil {
			return err
		}
		h := sha256.New()
		var size int64
		for _, s := range r.Segments {
			rc, err := src.Get(ctx, s.Key)
			if err != nil {
				return fmt.Errorf("export: object %s: %w", s.Key, err)
			}
			n, err := io.Copy(io.MultiWriter(w, h), contextReader{ctx, rc})
			rc.Close()
			if err != nil {
				return fmt.Errorf("export: object %s: %w", s.Key, err)
			}
			size += n
		}
		var sum [32]byte
		h.Sum(sum[:0])
		if got := hex.EncodeToString(sum[:]); got != want {
			return fmt.Errorf("export: recording %s: the objects read differently the second time", r.Recording.ID)
		}
		z.list(dir+"derived/playable.mp4", sum)
		rf.Derived = &derivedInfo{File: "derived/playable.mp4", SHA256: want, Size: size, MadeFrom: madeFrom, Note: DerivedNote}
	}
	var err error
	if rf.Copies, err = z.copies(ctx, src, dir, copies); err != nil {
		return err
	}
	return z.put(dir+"recording.json", jsonBytes(rf))
}

// signedReceipt is an uploaded file's receipt as stored.
type signedReceipt struct {
	body, sig []byte
	keyID     string
}

// readReceipt reads an uploaded recording's receipt and checks it: signed
// by a key of the export, naming the original on record and the manifest's
// origin. An export whose receipt would not check out is refused.
func readReceipt(ctx context.Context, src Source, keys map[string]ed25519.PublicKey, r RecordingData, o *evidence.ManifestOrigin) (signedReceipt, error) {
	key := evidence.ReceiptKey(r.Recording.DeviceID, r.Recording.ID)
	body, err := readSmall(ctx, src, key)
	if err != nil {
		return signedReceipt{}, err
	}
	sig, err := readSmall(ctx, src, key+".sig")
	if err != nil {
		return signedReceipt{}, err
	}
	var rc evidence.Receipt
	if err := json.Unmarshal(body, &rc); err != nil {
		return signedReceipt{}, fmt.Errorf("export: receipt of %s: %w", r.Recording.ID, err)
	}
	pub := keys[rc.SigningKeyID]
	if pub == nil {
		return signedReceipt{}, fmt.Errorf("export: the receipt of %s is signed by key %q, which is not among the public keys", r.Recording.ID, rc.SigningKeyID)
	}
	if _, err := evidence.VerifyReceipt(pub, body, sig); err != nil {
		return signedReceipt{}, fmt.Errorf("export: the receipt of %s does not verify: it was altered; run verify on the recording", r.Recording.ID)
	}
	if err := evidence.CheckReceipt(rc, r.Segments[0], o); err != nil {
		return signedReceipt{}, fmt.Errorf("export: the receipt of %s: %v; run verify on the recording", r.Recording.ID, err)
	}
	return signedReceipt{body: body, sig: sig, keyID: rc.SigningKeyID}, nil
}

// activeWindows lists the windows of a recording's active links.
func activeWindows(c CaseData, recID string) []string {
	var out []string
	for _, l := range c.Links {
		if l.RecordingID == recID && l.Active() {
			if w := window(l); !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}
