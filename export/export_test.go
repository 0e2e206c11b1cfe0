package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
)

// memSource is an object store in memory.
type memSource map[string][]byte

func (m memSource) Get(_ context.Context, key string) (io.ReadCloser, error) {
	b, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("no object %s", key)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

type keySigner struct{ priv ed25519.PrivateKey }

func (k keySigner) pub() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }
func (k keySigner) ID() string             { return export.KeyID(k.pub()) }
func (k keySigner) Sign(msg []byte) (string, []byte) {
	return k.ID(), ed25519.Sign(k.priv, msg)
}

func newSigner(seed byte) keySigner {
	return keySigner{ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))}
}

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC)

// fixture builds a case with two recordings of one device (the chain runs
// across them), signed manifests, a removed link, a windowed link, and a
// real custody excerpt with checkpoints.
func fixture(t *testing.T) (memSource, export.CaseData, keySigner) {
	t.Helper()
	signer := newSigner(7)
	src := memSource{}
	rnd := rand.New(rand.NewPCG(1, 2))
	prev := evidence.GenesisHash
	chainSeq := int64(0)
	var recs []export.RecordingData
	start := t0
	for ri, nseg := range []int{5, 3} {
		rec := evidence.Recording{ID: fmt.Sprintf("rec-%d", ri+1), DeviceID: "cam-1", OfficerID: "o-1", State: evidence.StateComplete,
			StartedAt: start, EndReason: "publisher stopped", Codecs: []string{"H264 640x360", "MPEG-4 Audio 48000Hz 1ch"},
			RemoteAddr: "10.0.0.9:5000"}
		var segs []evidence.Segment
		at := start
		for seq := 0; seq < nseg; seq++ {
			kind, name, size, dur := evidence.KindMedia, fmt.Sprintf("%06d.m4s", seq), 20000+rnd.IntN(30000), 2*time.Second
			if seq == 0 {
				kind, name, size, dur = evidence.KindInit, "init.mp4", 700, 0
			}
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			key := "cam-1/" + rec.ID + "/" + name
			src[key] = b
			sum := sha256.Sum256(b)
			chainSeq++
			s := evidence.Segment{RecordingID: rec.ID, DeviceID: "cam-1", Seq: int64(seq), Kind: kind, Key: key, Size: int64(size),
				SHA256: hex.EncodeToString(sum[:]), ChainSeq: chainSeq, PrevChainHash: prev, StartedAt: at, Duration: dur, Keyframe: true}
			s.ChainHash = evidence.ChainHash(s.Link())
			prev = s.ChainHash
			segs = append(segs, s)
			at = at.Add(dur)
		}
		rec.EndedAt, rec.SegmentCount = at, len(segs)
		rec.ManifestKey = "cam-1/" + rec.ID + "/manifest.json"
		var gaps []evidence.Gap
		if ri == 1 {
			gaps = []evidence.Gap{{RecordingID: rec.ID, Kind: evidence.GapLoss, Start: start.Add(3 * time.Second), End: start.Add(4 * time.Second), Detail: "no media for 1.2s"}}
		}
		m := evidence.NewManifest(rec, segs, gaps)
		m.SigningKeyID, m.SignedAt = signer.ID(), at.Add(time.Second)
		body := m.Marshal()
		_, sig := signer.Sign(body)
		src[rec.ManifestKey], src[rec.ManifestKey+".sig"] = body, sig
		recs = append(recs, export.RecordingData{Recording: rec, Segments: segs, Gaps: gaps})
		start = at.Add(time.Minute)
	}
	links := []evidence.EvidenceLink{
		{ID: "link-a", CaseID: "C-1", RecordingID: "rec-1", LinkedBy: "o-1", LinkedAt: t0.Add(time.Hour), Note: "the stop"},
		{ID: "link-b", CaseID: "C-1", RecordingID: "rec-2", From: recs[1].Recording.StartedAt.Add(time.Second),
			To: recs[1].Recording.StartedAt.Add(3 * time.Second), LinkedBy: "o-1", LinkedAt: t0.Add(time.Hour)},
		{ID: "link-c", CaseID: "C-1", RecordingID: "rec-9", LinkedBy: "o-1", LinkedAt: t0.Add(time.Hour),
			UnlinkedBy: "s-1", UnlinkedAt: t0.Add(2 * time.Hour), UnlinkReason: "wrong recording: another incident"},
	}
	// The ledger: 70 events, a checkpoint at 64 and one at the head.
	var all []evidence.CustodyEvent
	var cps []evidence.Checkpoint
	head := evidence.GenesisHash
	for seq := int64(1); seq <= 70; seq++ {
		e := evidence.CustodyEvent{Seq: seq, At: t0.Add(time.Duration(seq) * time.Minute), Actor: "u-" + fmt.Sprint(seq%5),
			Role: "officer", Remote: "10.0.0.1:1", Action: evidence.ActionPlayback, TargetKind: "recording", TargetID: "rec-other", Outcome: evidence.OutcomeOK}
		switch seq {
		case 3:
			e.Action, e.TargetKind, e.TargetID, e.CaseID, e.Detail = evidence.ActionCaseCreate, "case", "C-1", "C-1", "filed"
		case 10, 20:
			e.Action, e.TargetID, e.CaseID, e.Detail = evidence.ActionLink, map[int64]string{10: "rec-1", 20: "rec-2"}[seq], "C-1", "link"
		case 66:
			e.Action, e.TargetID, e.Detail = evidence.ActionPlayback, "rec-1", "media "
		case 70:
			e.Actor, e.Role, e.Action, e.TargetKind, e.TargetID, e.CaseID, e.Detail = "aud-1", "auditor", evidence.ActionExport, "case", "C-1", "C-1", "export"
		}
		e.Digest = evidence.CustodyDigest(e)
		e.Hash = evidence.CustodyHash(seq, head, e.Digest)
		head = e.Hash
		all = append(all, e)
		if seq == 64 || seq == 70 {
			cp := evidence.Checkpoint{Seq: seq, Hash: head, At: e.At}
			cp.KeyID, cp.Signature = signer.Sign(evidence.CheckpointMessage(cp))
			cps = append(cps, cp)
		}
	}
	var mine []evidence.CustodyEvent
	for _, e := range all {
		if e.CaseID == "C-1" || e.TargetID == "rec-1" || e.TargetID == "rec-2" {
			mine = append(mine, e)
		}
	}
	x, err := evidence.BuildExcerpt(mine, cps, func(from, to int64) ([]evidence.CustodyLink, error) {
		var out []evidence.CustodyLink
		for _, e := range all[from-1 : to] {
			out = append(out, evidence.CustodyLink{Seq: e.Seq, Digest: e.Digest})
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	old := newSigner(3) // a rotated-out key: still listed
	c := export.CaseData{
		Case: evidence.Case{ID: "C-1", Title: "Stop on Main St", State: evidence.CaseInvestigating, Officer: "o-1", Unit: "a",
			Members: []string{"o-1"}, CreatedBy: "o-1", CreatedAt: t0, UpdatedAt: t0.Add(time.Hour)},
		Transitions: []evidence.CaseTransition{{CaseID: "C-1", From: evidence.CaseFiled, To: evidence.CaseInvestigating, By: "o-1", Reason: "opened", At: t0.Add(time.Hour)}},
		Links:       links, Recordings: recs, Custody: x,
		Keys:       []export.PublicKey{{ID: signer.ID(), Key: signer.pub()}, {ID: old.ID(), Key: old.pub()}},
		ExportedBy: "aud-1", ExportedAt: t0.Add(3 * time.Hour), Signer: signer,
	}
	return src, c, signer
}

func build(t *testing.T) ([]byte, export.CaseData, keySigner, memSource) {
	t.Helper()
	src, c, signer := fixture(t)
	var buf bytes.Buffer
	if err := export.Write(context.Background(), &buf, src, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), c, signer, src
}

func verify(b []byte, opts export.Options) export.Report {
	return export.Verify(bytes.NewReader(b), int64(len(b)), opts)
}

// files reads a zip into name -> bytes, in order.
func files(t *testing.T, b []byte) ([]string, map[string][]byte, map[string]uint16) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	out, methods := map[string][]byte{}, map[string]uint16{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
		out[f.Name], methods[f.Name] = data, f.Method
	}
	return names, out, methods
}

// rewrite makes a new zip from b: edit returns the new bytes of a file, or
// nil to drop it; add appends files.
func rewrite(t *testing.T, b []byte, edit func(name string, data []byte) []byte, add map[string][]byte) []byte {
	t.Helper()
	names, data, _ := files(t, b)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	put := func(name string, d []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(d)
	}
	for _, n := range names {
		d := data[n]
		if edit != nil {
			d = edit(n, d)
		}
		if d != nil {
			put(n, d)
		}
	}
	keys := make([]string, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		put(k, add[k])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestExportVerifies(t *testing.T) {
	b, c, signer, src := build(t)
	rep := verify(b, export.Options{})
	if !rep.OK {
		t.Fatalf("a good export fails: %+v", rep.Failures)
	}
	if rep.SignedBy == nil || rep.SignedBy.ID != signer.ID() || rep.SignedBy.Fingerprint != export.Fingerprint(signer.pub()) {
		t.Fatalf("signed by %+v", rep.SignedBy)
	}
	want := export.Checked{Recordings: 2, Manifests: 2, Segments: 8, ChainLinks: 8, Derived: 2, CustodyEvents: len(c.Custody.Events)}
	got := rep.Checked
	got.Files, got.Bytes = 0, 0
	if got != want {
		t.Fatalf("checked %+v, want %+v", rep.Checked, want)
	}
	names, data, methods := files(t, b)
	if rep.Checked.Files != len(names)-2 {
		t.Fatalf("%d files checked of %d", rep.Checked.Files, len(names))
	}
	wantNames := []string{"README.txt", "case.json", "custody.json", "keys/" + newSigner(3).ID() + ".pem", "keys/" + signer.ID() + ".pem"}
	for _, r := range []struct {
		id    string
		media int
	}{{"rec-1", 4}, {"rec-2", 2}} {
		d := "recordings/" + r.id + "/"
		wantNames = append(wantNames, d+"init.mp4")
		for i := 1; i <= r.media; i++ {
			wantNames = append(wantNames, fmt.Sprintf("%s%06d.m4s", d, i))
		}
		wantNames = append(wantNames, d+"manifest.json", d+"manifest.json.sig", d+"derived/playable.mp4", d+"recording.json")
	}
	wantNames = append(wantNames, "SHA256SUMS", "SHA256SUMS.sig")
	if !slices.Equal(sorted(names[:len(names)-2]), sorted(wantNames[:len(wantNames)-2])) || !slices.Equal(names[len(names)-2:], wantNames[len(wantNames)-2:]) {
		t.Fatalf("layout:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(wantNames, "\n"))
	}
	// Originals byte for byte, stored uncompressed; the derived copy is
	// their concatenation and says so.
	for _, r := range c.Recordings {
		d := "recordings/" + r.Recording.ID + "/"
		var concat []byte
		for _, s := range r.Segments {
			name := d + filepath.Base(s.Key)
			if !bytes.Equal(data[name], src[s.Key]) || methods[name] != zip.Store {
				t.Fatalf("%s is not the original, stored", name)
			}
			concat = append(concat, src[s.Key]...)
		}
		if !bytes.Equal(data[d+"derived/playable.mp4"], concat) {
			t.Fatalf("%sderived/playable.mp4 is not the concatenation", d)
		}
		var rj struct {
			Derived struct {
				File, SHA256, Note string
				MadeFrom           []string `json:"made_from"`
			}
			Links []struct {
				Window string
			}
		}
		if err := json.Unmarshal(data[d+"recording.json"], &rj); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(concat)
		if rj.Derived.File != "derived/playable.mp4" || rj.Derived.SHA256 != hex.EncodeToString(sum[:]) ||
			rj.Derived.Note != export.DerivedNote || len(rj.Derived.MadeFrom) != len(r.Segments) || rj.Derived.MadeFrom[0] != "init.mp4" {
			t.Fatalf("%srecording.json derived: %+v", d, rj.Derived)
		}
		if r.Recording.ID == "rec-2" && (len(rj.Links) != 1 || !strings.HasPrefix(rj.Links[0].Window, "from 2026-")) {
			t.Fatalf("rec-2's window: %+v", rj.Links)
		}
	}
	readme := string(data["README.txt"])
	for _, want := range []string{"bodycam verify case-C-1.zip", "sha256sum -c SHA256SUMS",
		"openssl pkeyutl -verify -pubin -inkey keys/" + signer.ID() + ".pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig",
		"link link-c of recording rec-9, removed by s-1", "wrong recording: another incident", "its recording is not in this export",
		export.Fingerprint(signer.pub()), "DERIVED copy"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q", want)
		}
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "gap (loss)") {
		t.Errorf("the gap is not noted: %v", rep.Notes)
	}
	// Pinning the right key passes; another key fails.
	if rep := verify(b, export.Options{TrustedKey: signer.pub()}); !rep.OK || !rep.SignedBy.Trusted {
		t.Fatalf("pinned to the signing key: %+v", rep)
	}
	rep = verify(b, export.Options{TrustedKey: newSigner(9).pub()})
	if rep.OK || !hasFailure(rep, "SHA256SUMS.sig", "not by the trusted key") {
		t.Fatalf("pinned to another key: %+v", rep.Failures)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func hasFailure(rep export.Report, path, what string) bool {
	for _, f := range rep.Failures {
		if f.Path == path && strings.Contains(f.What, what) {
			return true
		}
	}
	return false
}

// resign replaces SHA256SUMS with the hashes of the zip's files as they
// are now, keeping the old signature (an attacker has no key) or signing
// with signer.
func resign(t *testing.T, b []byte, signer *keySigner) []byte {
	t.Helper()
	names, data, _ := files(t, b)
	var sums bytes.Buffer
	for _, n := range names {
		if n != "SHA256SUMS" && n != "SHA256SUMS.sig" {
			s := sha256.Sum256(data[n])
			fmt.Fprintf(&sums, "%x  %s\n", s, n)
		}
	}
	return rewrite(t, b, func(name string, d []byte) []byte {
		switch {
		case name == "SHA256SUMS":
			return sums.Bytes()
		case name == "SHA256SUMS.sig" && signer != nil:
			_, sig := signer.Sign(sums.Bytes())
			return sig
		}
		return d
	}, nil)
}

// Every kind of tampering is detected and named.
func TestExportTamper(t *testing.T) {
	b, c, _, _ := build(t)
	seg2 := "recordings/rec-1/000002.m4s"
	seg3 := "recordings/rec-1/000003.m4s"
	man := "recordings/rec-1/manifest.json"
	_, data, _ := files(t, b)
	attacker := newSigner(66)
	type want struct{ path, what string }
	cases := []struct {
		name  string
		zip   func() []byte
		opts  export.Options
		wants []want
	}{
		{"byte flipped in a segment", func() []byte {
			return rewrite(t, b, func(n string, d []byte) []byte {
				if n == seg2 {
					d = slices.Clone(d)
					d[1234] ^= 0x01
				}
				return d
			}, nil)
		}, export.Options{}, []want{{seg2, "does not match SHA256SUMS"}, {seg2, "segment seq 2 does not match its SHA-256 in the manifest"},
			{"recordings/rec-1/derived/playable.mp4", "is not the originals concatenated"}}},
		{"segment removed from the zip", func() []byte {
			return rewrite(t, b, func(n string, d []byte) []byte {
				if n == seg2 {
					return nil
				}
				return d
			}, nil)
		}, export.Options{}, []want{{seg2, "listed in SHA256SUMS but missing"}, {seg2, "segment seq 2, listed in the signed manifest, is missing"}}},
		{"segment removed and SHA256SUMS rewritten without the key", func() []byte {
			return resign(t, rewrite(t, b, func(n string, d []byte) []byte {
				if n == seg2 {
					return nil
				}
				return d
			}, nil), nil)
		}, export.Options{}, []want{{"SHA256SUMS.sig", "does not verify"}, {seg2, "segment seq 2, listed in the signed manifest, is missing"}}},
		{"two segments swapped", func() []byte {
			return rewrite(t, b, func(n string, d []byte) []byte {
				switch n {
				case seg2:
					return data[seg3]
				case seg3:
					return data[seg2]
				}
				return d
			}, nil)
		}, export.Options{}, []want{{seg2, "holds the bytes of seq 3"}, {seg3, "holds the bytes of seq 2"}, {seg2, "does not match SHA256SUMS"}}},
		{"manifest edited", func() []byte {
			return rewrite(t, b, func(n string, d []byte) []byte {
				if n == man {
					return bytes.Replace(d, []byte(`"officer_id": "o-1"`), []byte(`"officer_id": "o-2"`), 1)
				}
				return d
			}, nil)
		}, export.Options{}, []want{{man, "signature does not verify"}, {man, "does not match SHA256SUMS"}}},
		{"manifest hash of a segment edited to match altered bytes", func() []byte {
			flipped := slices.Clone(data[seg2])
			flipped[0] ^= 0xff
			old, _ := json.Marshal(c.Recordings[0].Segments[2].SHA256)
			nsum := sha256.Sum256(flipped)
			nu, _ := json.Marshal(hex.EncodeToString(nsum[:]))
			return resign(t, rewrite(t, b, func(n string, d []byte) []byte {
				switch n {
				case seg2:
					return flipped
				case man:
					return bytes.Replace(d, old, nu, 1)
				}
				return d
			}, nil), nil)
		}, export.Options{}, []want{{"SHA256SUMS.sig", "does not verify"}, {man, "signature does not verify"}, {man, "chain breaks at seq 2"}}},
		{"file added", func() []byte {
			return rewrite(t, b, nil, map[string][]byte{"recordings/rec-1/000099.m4s": []byte("more footage")})
		}, export.Options{}, []want{{"recordings/rec-1/000099.m4s", "not listed in SHA256SUMS"}}},
		{"custody event edited", func() []byte {
			return rewrite(t, b, func(n string, d []byte) []byte {
				if n == "custody.json" {
					var x evidence.Excerpt
					json.Unmarshal(d, &x)
					x.Events[1].Actor = "someone-else"
					out, _ := json.MarshalIndent(x, "", "  ")
					return out
				}
				return d
			}, nil)
		}, export.Options{}, []want{{"custody.json", "was altered"}, {"custody.json", "does not match SHA256SUMS"}}},
		{"derived copy replaced", func() []byte {
			return rewrite(t, b, func(n string, d []byte) []byte {
				if n == "recordings/rec-2/derived/playable.mp4" {
					return append(slices.Clone(d), 0)
				}
				return d
			}, nil)
		}, export.Options{}, []want{{"recordings/rec-2/derived/playable.mp4", "does not match the SHA-256 in recording.json"}}},
		{"repackaged and signed with another key, trusted key pinned", func() []byte {
			pem := export.PublicPEM(attacker.pub())
			return resign(t, rewrite(t, b, func(n string, d []byte) []byte {
				if n == seg2 {
					return data[seg3]
				}
				return d
			}, map[string][]byte{"keys/" + attacker.ID() + ".pem": pem}), &attacker)
		}, export.Options{TrustedKey: c.Signer.(keySigner).pub()}, []want{{"SHA256SUMS.sig", "not by the trusted key"}, {seg2, "holds the bytes of seq 3"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := verify(tc.zip(), tc.opts)
			if rep.OK {
				t.Fatal("tampering not detected")
			}
			for _, w := range tc.wants {
				if !hasFailure(rep, w.path, w.what) {
					t.Errorf("no failure %s: %q among:\n%s", w.path, w.what, failures(rep))
				}
			}
			t.Logf("\n%s", failures(rep))
		})
	}
	// Not a zip at all.
	if rep := verify([]byte("PK nonsense"), export.Options{}); rep.OK || len(rep.Failures) != 1 {
		t.Fatalf("garbage: %+v", rep)
	}
}

func failures(rep export.Report) string {
	var s []string
	for _, f := range rep.Failures {
		s = append(s, "  "+f.String())
	}
	return strings.Join(s, "\n")
}

// Export refuses evidence that does not match its record rather than
// packaging something that would not check out.
func TestExportRefusesBadEvidence(t *testing.T) {
	src, c, _ := fixture(t)
	key := c.Recordings[0].Segments[1].Key
	src[key] = append(slices.Clone(src[key]), 1)
	if err := export.Write(context.Background(), io.Discard, src, c); err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("altered object exported: %v", err)
	}
	src, c, _ = fixture(t)
	mk := c.Recordings[1].Recording.ManifestKey
	src[mk] = bytes.Replace(src[mk], []byte("o-1"), []byte("o-2"), 1)
	if err := export.Write(context.Background(), io.Discard, src, c); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("altered manifest exported: %v", err)
	}
	_, c, _ = fixture(t)
	c.Custody.Events[0].Detail = "changed"
	if err := export.Write(context.Background(), io.Discard, src, c); err == nil || !strings.Contains(err.Error(), "custody") {
		t.Fatalf("altered custody exported: %v", err)
	}
}

// The README's commands for standard tools work on a good export, as
// written, with the machine's openssl, sha256sum and unzip; and they
// catch an altered segment and an altered manifest.
func TestExportStandardToolsVerify(t *testing.T) {
	for _, tool := range []string{"openssl", "sha256sum", "unzip", "bash", "diff", "find", "cut", "tail"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s: %v", tool, err)
		}
	}
	b, c, signer, _ := build(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "case-C-1.zip"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, data, _ := files(t, b)
	readme := string(data["README.txt"])
	// The commands are the indented lines of "HOW TO CHECK IT", part 2.
	part2 := readme[strings.Index(readme, "2. With standard tools"):]
	var cmds []string
	for _, l := range strings.Split(part2, "\n") {
		if cmd, ok := strings.CutPrefix(l, "     "); ok {
			cmd = strings.TrimSpace(cmd)
			for _, p := range []string{"unzip ", "openssl ", "sha256sum ", "diff ", "cat ", "printf "} {
				if strings.HasPrefix(cmd, p) {
					if i := strings.Index(cmd, "    # "); i > 0 {
						cmd = strings.TrimSpace(cmd[:i])
					}
					cmds = append(cmds, cmd)
				}
			}
		}
	}
	run := func(cmd string) (string, error) {
		c := exec.Command("bash", "-o", "pipefail", "-c", cmd)
		c.Dir = dir
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if !strings.HasPrefix(cmds[0], "unzip ") {
		t.Fatalf("the first command is not unzip: %q", cmds)
	}
	if out, err := run(cmds[0]); err != nil {
		t.Fatalf("%s: %v\n%s", cmds[0], err, out)
	}
	dir = filepath.Join(dir, "case-C-1")
	ran := map[string]int{}
	for _, cmd := range cmds[1:] {
		out, err := run(cmd)
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		ran[strings.Fields(cmd)[0]]++
		switch {
		case strings.HasPrefix(cmd, "openssl pkeyutl"):
			if !strings.Contains(out, "Signature Verified Successfully") {
				t.Fatalf("%s: %s", cmd, out)
			}
		case strings.HasPrefix(cmd, "openssl pkey "):
			if !strings.HasPrefix(out, export.Fingerprint(signer.pub())) {
				t.Fatalf("fingerprint by openssl: %s, want %s", out, export.Fingerprint(signer.pub()))
			}
		case strings.HasPrefix(cmd, "sha256sum -c"):
			if strings.Count(out, ": OK") != len(data)-2 {
				t.Fatalf("%s: %s", cmd, out)
			}
		case strings.HasPrefix(cmd, "diff"):
			if out != "" {
				t.Fatalf("diff of listed and present files: %s", out)
			}
		case strings.HasPrefix(cmd, "cat "):
			var rj struct{ Derived struct{ SHA256 string } }
			rec := strings.Split(strings.Fields(cmd)[1], "/")[1]
			json.Unmarshal(data["recordings/"+rec+"/recording.json"], &rj)
			if !strings.HasPrefix(out, rj.Derived.SHA256) {
				t.Fatalf("%s: %s, want %s", cmd, out, rj.Derived.SHA256)
			}
		case strings.HasPrefix(cmd, "printf "):
			found := false
			for _, r := range c.Recordings {
				found = found || strings.HasPrefix(out, r.Segments[0].ChainHash)
			}
			if !found {
				t.Fatalf("%s: %s is no first chain hash", cmd, out)
			}
		}
	}
	if ran["openssl"] != 4 || ran["sha256sum"] != 5 || ran["cat"] != 2 || ran["printf"] != 2 || ran["diff"] != 1 {
		t.Fatalf("commands run: %v", ran)
	}
	// The same tools catch tampering.
	seg := filepath.Join(dir, "recordings", "rec-1", "000002.m4s")
	os.Chmod(seg, 0o644)
	f, _ := os.OpenFile(seg, os.O_WRONLY, 0)
	f.WriteAt([]byte{0xAA}, 100)
	f.Close()
	if out, err := run("sha256sum -c --quiet SHA256SUMS"); err == nil || !strings.Contains(out, "recordings/rec-1/000002.m4s: FAILED") {
		t.Fatalf("sha256sum -c after a flipped byte: %v %s", err, out)
	}
	man := filepath.Join(dir, "recordings", "rec-1", "manifest.json")
	os.Chmod(man, 0o644)
	mb, _ := os.ReadFile(man)
	os.WriteFile(man, bytes.Replace(mb, []byte(`"o-1"`), []byte(`"o-2"`), 1), 0o644)
	cmd := "openssl pkeyutl -verify -pubin -inkey keys/" + signer.ID() + ".pem -rawin -in recordings/rec-1/manifest.json -sigfile recordings/rec-1/manifest.json.sig"
	if out, err := run(cmd); err == nil || !strings.Contains(out, "Signature Verification Failure") {
		t.Fatalf("openssl on an edited manifest: %v %s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "recordings", "rec-1", "000099.m4s"), []byte("added"), 0o644)
	for _, cmd := range cmds {
		if strings.HasPrefix(cmd, "diff ") {
			if out, err := run(cmd); err == nil || !strings.Contains(out, "recordings/rec-1/000099.m4s") {
				t.Fatalf("the README's diff after a file was added: %v %s", err, out)
			}
		}
	}
}

// genSource makes objects of pseudo-random bytes on the fly, so that
// nothing holds them whole.
type genSource struct {
	memSource
	sizes map[string]int64
}

type genReader struct {
	x, left int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), g.left)
	for i := range p[:n] {
		g.x ^= g.x << 13
		g.x ^= g.x >> 7
		g.x ^= g.x << 17
		p[i] = byte(g.x)
	}
	g.left -= n
	return int(n), nil
}

func (s genSource) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if n, ok := s.sizes[key]; ok {
		return io.NopCloser(&genReader{x: int64(len(key)) + 88172645463325252, left: n}), nil
	}
	return s.memSource.Get(ctx, key)
}

// Writing streams: exporting 2 × 16 MiB of footage (and its derived copy)
// allocates far less than the footage.
func TestExportStreams(t *testing.T) {
	src, c, signer := fixture(t)
	gen := genSource{memSource: src, sizes: map[string]int64{}}
	r := &c.Recordings[1]
	prev := c.Recordings[0].Segments[len(c.Recordings[0].Segments)-1].ChainHash
	for i := range r.Segments {
		s := &r.Segments[i]
		if s.Kind == evidence.KindMedia {
			gen.sizes[s.Key] = 16 << 20
			h := sha256.New()
			io.Copy(h, &genReader{x: int64(len(s.Key)) + 88172645463325252, left: 16 << 20})
			s.Size, s.SHA256 = 16<<20, hex.EncodeToString(h.Sum(nil))
		}
		s.PrevChainHash = prev
		s.ChainHash = evidence.ChainHash(s.Link())
		prev = s.ChainHash
	}
	m := evidence.NewManifest(r.Recording, r.Segments, r.Gaps)
	m.SigningKeyID = signer.ID()
	body := m.Marshal()
	_, sig := signer.Sign(body)
	src[r.Recording.ManifestKey], src[r.Recording.ManifestKey+".sig"] = body, sig
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := sha256.New()
	if err := export.Write(context.Background(), h, gen, c); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("exporting 64 MiB (32 MiB of footage and its derived copy) allocated %d MiB", alloc>>20)
	} else {
		t.Logf("exporting 64 MiB allocated %d KiB", alloc>>10)
	}
}
