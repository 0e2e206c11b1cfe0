// Package verify re-checks stored evidence from first principles: it re-reads
// every object, recomputes every SHA-256 and chain link, and checks the
// signed manifest, naming the first thing that does not hold.
package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// Catalog is what verification reads from the system of record.
type Catalog interface {
	Recording(ctx context.Context, id string) (evidence.Recording, error)
	Segments(ctx context.Context, recordingID string) ([]evidence.Segment, error)
	Gaps(ctx context.Context, recordingID string) ([]evidence.Gap, error)
	ChainLinks(ctx context.Context, deviceID string, from, to int64) ([]evidence.Segment, error)
}

// Store is what verification reads objects from.
type Store interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// KeyLookup returns the public key with an id, or nil.
type KeyLookup func(keyID string) ed25519.PublicKey

// Result is a verification's verdict.
type Result struct {
	OK          bool   `json:"ok"`
	FirstBadSeq *int64 `json:"first_bad_seq,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Checked counts the objects re-read and re-hashed.
	Checked   int    `json:"checked"`
	ChainHead string `json:"chain_head,omitempty"`
	Manifest  string `json:"manifest"` // "ok", "not yet written (recording live)", or the problem
	// Receipt is, for an uploaded file, what its signed receipt shows: "ok"
	// or the problem (empty for a stream recording).
	Receipt string `json:"receipt,omitempty"`
	// Deleted says, for a recording whose media retention deleted, what its
	// tombstone shows; the chain is then checked from the record alone.
	Deleted string `json:"deleted,omitempty"`
	// Gaps are the recording's explicit holes: not failures, but part of
	// what a reader of the evidence must know.
	Gaps []evidence.Gap `json:"gaps"`
	// Notes are other things a reader must know without being failures:
	// chain links between this recording's that are other recordings'
	// (its node uploaded it late, interleaved with a newer recording).
	Notes []string `json:"notes,omitempty"`
}

func bad(seq int64, format string, args ...any) Result {
	return Result{OK: false, FirstBadSeq: &seq, Reason: fmt.Sprintf(format, args...)}
}

// Recording verifies one recording.
func Recording(ctx context.Context, cat Catalog, store Store, keys KeyLookup, id string) (Result, error) {
	rec, err := cat.Recording(ctx, id)
	if err != nil {
		return Result{}, err
	}
	segs, err := cat.Segments(ctx, id)
	if err != nil {
		return Result{}, err
	}
	gaps, err := cat.Gaps(ctx, id)
	if err != nil {
		return Result{}, err
	}
	res := check(ctx, cat, store, keys, rec, segs)
	res.Gaps = gaps
	if res.Gaps == nil {
		res.Gaps = []evidence.Gap{}
	}
	return res, nil
}

func check(ctx context.Context, cat Catalog, store Store, keys KeyLookup, rec evidence.Recording, segs []evidence.Segment) Result {
	var res Result
	if len(segs) == 0 {
		if rec.State == evidence.StateLive {
			return Result{OK: true, Manifest: "not yet written (recording live)"}
		}
		return Result{OK: false, Reason: "the recording has no stored objects"}
	}
	var tomb *evidence.Segment
	if last := segs[len(segs)-1]; last.Kind == evidence.KindTombstone {
		tomb, segs = &last, segs[:len(segs)-1]
	}
	// The chain link before this recording's first must be on record
	// (unless this is the device's first link): a removed recording or
	// segment before it shows here.
	first := segs[0]
	prev := evidence.GenesisHash
	if first.ChainSeq > 1 {
		links, err := cat.ChainLinks(ctx, rec.DeviceID, first.ChainSeq-1, first.ChainSeq-1)
		if err != nil {
			return Result{OK: false, Reason: "catalog: " + err.Error()}
		}
		if len(links) != 1 {
			return bad(first.Seq, "chain link %d of device %s (before this recording) is missing: an earlier recording or segment was removed", first.ChainSeq-1, rec.DeviceID)
		}
		prev = links[0].ChainHash
	}
	// A stream's objects are numbered from its init segment (0); an
	// uploaded file is one object, the original, numbered 1.
	base := int64(0)
	if rec.Kind == evidence.KindUpload {
		base = 1
	}
	for i, s := range segs {
		if want := base + int64(i); s.Seq != want {
			return bad(want, "segment %d is missing from the record (next on record is %d)", want, s.Seq)
		}
		if i > 0 {
			// A recording's links are a subsequence of its device's chain:
			// consecutive when one node uploads it as it records, with
			// other recordings' links between when its node's spool came
			// back late. Those must be on record and chain through.
			p := segs[i-1]
			if s.ChainSeq <= p.ChainSeq {
				return bad(s.Seq, "segment %d: chain position %d does not follow %d", s.Seq, s.ChainSeq, p.ChainSeq)
			}
			if s.ChainSeq > p.ChainSeq+1 {
				head, note, r := between(ctx, cat, rec, p, s)
				if !r.OK {
					return r
				}
				prev = head
				res.Notes = append(res.Notes, note)
			}
		}
		if s.PrevChainHash != prev {
			return bad(s.Seq, "segment %d: chain broken: it links to %s, the link before it is %s", s.Seq, short(s.PrevChainHash), short(prev))
		}
		if got := evidence.ChainHash(s.Link()); got != s.ChainHash {
			return bad(s.Seq, "segment %d: chain hash does not match its record (recorded %s, computed %s)", s.Seq, short(s.ChainHash), short(got))
		}
		prev = s.ChainHash
		if tomb != nil {
			continue // deleted by retention: the tombstone vouches for the objects
		}
		sum, size, err := hashObject(ctx, store, s.Key)
		if err != nil {
			return bad(s.Seq, "segment %d: object %s cannot be read: %v", s.Seq, s.Key, err)
		}
		res.Checked++
		if size != s.Size || sum != s.SHA256 {
			return bad(s.Seq, "segment %d: object %s does not match its SHA-256 (recorded %s, %d bytes; stored bytes hash to %s, %d bytes)",
				s.Seq, s.Key, short(s.SHA256), s.Size, short(sum), size)
		}
	}
	res.ChainHead = prev
	res.OK = true
	if tomb != nil {
		if r := checkTombstone(ctx, cat, store, keys, rec, segs, *tomb); !r.OK {
			return r
		} else {
			res.Deleted, res.ChainHead = r.Deleted, tomb.ChainHash
			res.Checked++
		}
	}
	var origin *evidence.ManifestOrigin
	res.Manifest, origin = checkManifest(ctx, store, keys, rec, segs)
	if res.Manifest != "ok" && rec.State != evidence.StateLive {
		res.OK = false
		res.Reason = "manifest: " + res.Manifest
		return res
	}
	if rec.Kind == evidence.KindUpload && tomb == nil {
		res.Receipt = checkReceipt(ctx, store, keys, rec, segs, origin)
		if res.Receipt != "ok" {
			res.OK = false
			res.Reason = "receipt: " + res.Receipt
		}
	}
	return res
}

// checkReceipt checks an uploaded file's signed receipt: its signature,
// and that it names the very object on record (recording, device, key,
// size, SHA-256, chain link) and the file and dock the manifest's origin
// does.
func checkReceipt(ctx context.Context, store Store, keys KeyLookup, rec evidence.Recording, segs []evidence.Segment, o *evidence.ManifestOrigin) string {
	key := evidence.ReceiptKey(rec.DeviceID, rec.ID)
	body, err := read(ctx, store, key)
	if err != nil {
		return fmt.Sprintf("cannot read %s: %v", key, err)
	}
	sig, err := read(ctx, store, key+".sig")
	if err != nil {
		return fmt.Sprintf("cannot read the signature %s.sig: %v", key, err)
	}
	var r evidence.Receipt
	if err := json.Unmarshal(body, &r); err != nil {
		return "not valid JSON: " + err.Error()
	}
	pub := keys(r.SigningKeyID)
	if pub == nil {
		return fmt.Sprintf("signed with unknown key %q", r.SigningKeyID)
	}
	if _, err := evidence.VerifyReceipt(pub, body, sig); err != nil {
		return "signature does not verify: the receipt was altered or not signed by this server"
	}
	if err := evidence.CheckReceipt(r, segs[0], o); err != nil {
		return err.Error()
	}
	return "ok"
}

// between checks the device's chain links between two consecutive segments
// of rec, p and s, whose chain positions jump: each must be on record, of
// another recording, link to the one before (the first to p) and hash to
// what it records. It returns the last one's hash, for s to link to, and a
// note naming the recordings they belong to.
func between(ctx context.Context, cat Catalog, rec evidence.Recording, p, s evidence.Segment) (string, string, Result) {
	links, err := cat.ChainLinks(ctx, rec.DeviceID, p.ChainSeq+1, s.ChainSeq-1)
	if err != nil {
		return "", "", Result{OK: false, Reason: "catalog: " + err.Error()}
	}
	prev := p.ChainHash
	var others []string
	for i, want := 0, p.ChainSeq+1; want < s.ChainSeq; i, want = i+1, want+1 {
		if i >= len(links) || links[i].ChainSeq != want {
			return "", "", bad(s.Seq, "chain link %d of device %s (between segments %d and %d) is missing: a recording or segment was removed", want, rec.DeviceID, p.Seq, s.Seq)
		}
		l := links[i]
		if l.RecordingID == rec.ID {
			return "", "", bad(s.Seq, "chain link %d of device %s is of this recording (seq %d) but not between its segments %d and %d", want, rec.DeviceID, l.Seq, p.Seq, s.Seq)
		}
		if l.PrevChainHash != prev {
			return "", "", bad(s.Seq, "chain broken at link %d of device %s (recording %s seq %d, between segments %d and %d): it links to %s, the link before it is %s",
				want, rec.DeviceID, l.RecordingID, l.Seq, p.Seq, s.Seq, short(l.PrevChainHash), short(prev))
		}
		if got := evidence.ChainHash(l.Link()); got != l.ChainHash {
			return "", "", bad(s.Seq, "chain link %d of device %s (recording %s seq %d, between segments %d and %d): chain hash does not match its record",
				want, rec.DeviceID, l.RecordingID, l.Seq, p.Seq, s.Seq)
		}
		prev = l.ChainHash
		if len(others) == 0 || others[len(others)-1] != l.RecordingID {
			others = append(others, l.RecordingID)
		}
	}
	return prev, fmt.Sprintf("chain links %d to %d of device %s, between segments %d and %d, are of other recordings (%s): this one was uploaded interleaved with them; they chain through",
		p.ChainSeq+1, s.ChainSeq-1, rec.DeviceID, p.Seq, s.Seq, strings.Join(dedupe(others), ", ")), Result{OK: true}
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// checkTombstone checks a deleted recording's tombstone: its object's hash,
// its signature, that it lists exactly the recording's objects as on record,
// and its own link in the device's chain.
func checkTombstone(ctx context.Context, cat Catalog, store Store, keys KeyLookup, rec evidence.Recording, segs []evidence.Segment, tomb evidence.Segment) Result {
	body, err := read(ctx, store, tomb.Key)
	if err != nil {
		return bad(tomb.Seq, "tombstone %s cannot be read: %v", tomb.Key, err)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != tomb.SHA256 || int64(len(body)) != tomb.Size {
		return bad(tomb.Seq, "tombstone %s does not match its SHA-256", tomb.Key)
	}
	sig, err := read(ctx, store, tomb.Key+".sig")
	if err != nil {
		return bad(tomb.Seq, "tombstone signature %s.sig cannot be read: %v", tomb.Key, err)
	}
	var t evidence.Tombstone
	if err := json.Unmarshal(body, &t); err != nil {
		return bad(tomb.Seq, "tombstone is not valid JSON: %v", err)
	}
	if pub := keys(t.SigningKeyID); pub == nil || !ed25519.Verify(pub, body, sig) {
		return bad(tomb.Seq, "tombstone signature does not verify (key %q)", t.SigningKeyID)
	}
	if t.RecordingID != rec.ID || len(t.Objects) != len(segs) {
		return bad(tomb.Seq, "tombstone lists %d objects of %s; the record has %d of %s", len(t.Objects), t.RecordingID, len(segs), rec.ID)
	}
	for i, o := range t.Objects {
		if s := segs[i]; o.Seq != s.Seq || o.Key != s.Key || o.SHA256 != s.SHA256 || o.ChainHash != s.ChainHash {
			return bad(s.Seq, "tombstone differs from the record at segment %d", s.Seq)
		}
	}
	links, err := cat.ChainLinks(ctx, rec.DeviceID, tomb.ChainSeq-1, tomb.ChainSeq-1)
	if err != nil || len(links) != 1 || links[0].ChainHash != tomb.PrevChainHash {
		return bad(tomb.Seq, "tombstone: chain broken before its link %d", tomb.ChainSeq)
	}
	if evidence.ChainHash(tomb.Link()) != tomb.ChainHash {
		return bad(tomb.Seq, "tombstone: chain hash does not match its record")
	}
	return Result{OK: true, Deleted: fmt.Sprintf("%d objects deleted %s (%s); signed tombstone ok", len(t.Objects),
		t.DeletedAt.Format(time.RFC3339), t.Reason)}
}

func checkManifest(ctx context.Context, store Store, keys KeyLookup, rec evidence.Recording, segs []evidence.Segment) (string, *evidence.ManifestOrigin) {
	if rec.ManifestKey == "" {
		if rec.State == evidence.StateLive {
			return "not yet written (recording live)", nil
		}
		return "missing: the recording ended but has no signed manifest", nil
	}
	r, m := manifestOf(ctx, store, keys, rec, segs)
	if r == "ok" && rec.Kind == evidence.KindUpload {
		if err := evidence.CheckOrigin(m, segs); err != nil {
			r = err.Error()
		}
	}
	return r, m.Origin
}

func manifestOf(ctx context.Context, store Store, keys KeyLookup, rec evidence.Recording, segs []evidence.Segment) (string, evidence.Manifest) {
	var m evidence.Manifest
	body, err := read(ctx, store, rec.ManifestKey)
	if err != nil {
		return fmt.Sprintf("cannot read %s: %v", rec.ManifestKey, err), m
	}
	sig, err := read(ctx, store, rec.ManifestKey+".sig")
	if err != nil {
		return fmt.Sprintf("cannot read the signature %s.sig: %v", rec.ManifestKey, err), m
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return "not valid JSON: " + err.Error(), evidence.Manifest{}
	}
	pub := keys(m.SigningKeyID)
	if pub == nil {
		return fmt.Sprintf("signed with unknown key %q", m.SigningKeyID), m
	}
	if !evidence.VerifyManifest(pub, body, sig) {
		return "signature does not verify: the manifest was altered or not signed by this server", m
	}
	if m.RecordingID != rec.ID || m.DeviceID != rec.DeviceID {
		return "describes another recording", m
	}
	if len(m.Segments) != len(segs) {
		return fmt.Sprintf("lists %d objects, the record has %d", len(m.Segments), len(segs)), m
	}
	for i := range segs {
		if ms := m.Segment(i); ms.Seq != segs[i].Seq || ms.SHA256 != segs[i].SHA256 || ms.ChainHash != segs[i].ChainHash || ms.Key != segs[i].Key {
			return fmt.Sprintf("differs from the record at segment %d", segs[i].Seq), m
		}
	}
	return "ok", m
}

func read(ctx context.Context, store Store, key string) ([]byte, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	_, err = io.Copy(&b, io.LimitReader(rc, 64<<20))
	return b.Bytes(), err
}

func hashObject(ctx context.Context, store Store, key string) (string, int64, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
