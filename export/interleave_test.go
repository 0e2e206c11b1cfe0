package export_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
)

// interleaved is the fixture's case with rec-1 and rec-2 of cam-1 whose
// links interleave in the device's chain (rec-1's node uploaded its spool
// late while rec-2 was stored), each signed. order lists (recording, seq)
// in chain order; edit may change a segment before its manifest is signed.
func interleaved(t *testing.T, order []string, edit func(rec string, s *evidence.Segment)) ([]byte, export.CaseData) {
	t.Helper()
	src, c, signer := fixture(t)
	starts := map[string]time.Time{"rec-1": t0, "rec-2": t0.Add(time.Minute)}
	segs := map[string][]evidence.Segment{}
	prev := evidence.GenesisHash
	for i, id := range order {
		seq := int64(len(segs[id]))
		kind, name := evidence.KindMedia, fmt.Sprintf("%06d.m4s", seq)
		if seq == 0 {
			kind, name = evidence.KindInit, "init.mp4"
		}
		body := []byte(fmt.Sprintf("%s object %d", id, seq))
		key := "cam-1/" + id + "/" + name
		src[key] = body
		sum := sha256.Sum256(body)
		s := evidence.Segment{RecordingID: id, DeviceID: "cam-1", Seq: seq, Kind: kind, Key: key, Size: int64(len(body)),
			SHA256: hex.EncodeToString(sum[:]), ChainSeq: int64(i + 1), PrevChainHash: prev,
			StartedAt: starts[id].Add(time.Duration(seq) * 2 * time.Second), Duration: 2 * time.Second, Keyframe: true}
		if edit != nil {
			edit(id, &s)
		}
		s.ChainHash = evidence.ChainHash(s.Link())
		prev = s.ChainHash
		segs[id] = append(segs[id], s)
	}
	for i := range c.Recordings {
		r := &c.Recordings[i]
		id := r.Recording.ID
		r.Segments, r.Gaps = segs[id], nil
		r.Recording.SegmentCount = len(segs[id])
		m := evidence.NewManifest(r.Recording, r.Segments, nil)
		m.SigningKeyID, m.SignedAt = signer.ID(), t0.Add(time.Hour)
		body := m.Marshal()
		_, sig := signer.Sign(body)
		src[r.Recording.ManifestKey], src[r.Recording.ManifestKey+".sig"] = body, sig
	}
	var buf bytes.Buffer
	if err := export.Write(context.Background(), &buf, src, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), c
}

var interleavedOrder = []string{"rec-1", "rec-1", "rec-2", "rec-1", "rec-2", "rec-2", "rec-1"}

func TestExportInterleavedChains(t *testing.T) {
	b, _ := interleaved(t, interleavedOrder, nil)
	rep := verify(b, export.Options{})
	if !rep.OK {
		t.Fatalf("interleaved recordings fail:\n%s", failures(rep))
	}
	if rep.Checked.ChainLinks != 7 {
		t.Fatalf("checked %+v", rep.Checked)
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, want := range []string{
		"recordings/rec-1/manifest.json: chain links 3 to 3 of device cam-1, between seq 1 and 2, are of other recordings of the device (uploaded interleaved with this one); in this export: rec-2; they chain through",
		"recordings/rec-1/manifest.json: chain links 5 to 6 of device cam-1, between seq 2 and 3",
		"recordings/rec-2/manifest.json: chain links 4 to 4 of device cam-1, between seq 0 and 1",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("no note %q in:\n%s", want, notes)
		}
	}

	// Only rec-1 in the export: the links between are noted as outside it.
	only := rewrite(t, b, func(name string, d []byte) []byte {
		if strings.HasPrefix(name, "recordings/rec-2/") {
			return nil
		}
		return d
	}, nil)
	rep = verify(only, export.Options{})
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "1 not in this export, for which the signed manifest vouches for seq 2's prev_chain_hash") {
		t.Fatalf("rec-1 alone: notes %v", rep.Notes)
	}
	for _, f := range rep.Failures {
		if !strings.Contains(f.Path, "rec-2") && f.Path != "SHA256SUMS" {
			t.Fatalf("rec-1 alone fails for more than rec-2's removal: %s", f)
		}
	}
}

// Interleaving is no cover for a broken chain, even in manifests signed
// with the server's key.
func TestExportInterleavedTamper(t *testing.T) {
	for _, tc := range []struct {
		name, path, what string
		edit             func(rec string, s *evidence.Segment)
	}{
		{"a jumped link names another prev", "recordings/rec-1/manifest.json", "chain breaks at seq 2: it links to",
			func(rec string, s *evidence.Segment) {
				if rec == "rec-1" && s.Seq == 2 {
					s.PrevChainHash = strings.Repeat("ab", 32)
				}
			}},
		{"chain_seq goes back", "recordings/rec-1/manifest.json", "chain breaks at seq 3: its chain_seq 2 does not follow seq 2's 4",
			func(rec string, s *evidence.Segment) {
				if rec == "rec-1" && s.Seq == 3 {
					s.ChainSeq = 2
				}
			}},
		{"the other recording's first link names another prev", "recordings/rec-2/init.mp4", "chain breaks before seq 0: it links to",
			func(rec string, s *evidence.Segment) {
				if rec == "rec-2" && s.Seq == 0 {
					s.PrevChainHash = strings.Repeat("cd", 32)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := interleaved(t, interleavedOrder, tc.edit)
			rep := verify(b, export.Options{})
			if rep.OK || !hasFailure(rep, tc.path, tc.what) {
				t.Fatalf("no failure %s: %q among:\n%s", tc.path, tc.what, failures(rep))
			}
		})
	}
}
