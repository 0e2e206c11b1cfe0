package export_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/export"
)

// withCopy adds to the fixture a redacted copy of rec-1 and its signed
// provenance record (as package derive writes them: the sources are
// rec-1's objects with their hashes, the output the copy).
func withCopy(t *testing.T, edit func(p map[string]any)) (memSource, export.CaseData, keySigner) {
	t.Helper()
	src, c, signer := fixture(t)
	r := &c.Recordings[0]
	body := []byte("a redacted copy's bytes, for the test")
	sum := sha256.Sum256(body)
	key := "derived/cam-1/rec-1/redaction-0123abcd.mp4"
	src[key] = body
	var sources []map[string]any
	for _, s := range r.Segments {
		sources = append(sources, map[string]any{"key": s.Key, "sha256": s.SHA256, "size": s.Size, "kind": string(s.Kind)})
	}
	p := map[string]any{"version": 1, "kind": "redaction", "recording_id": "rec-1", "device_id": "cam-1", "job_id": "job-1",
		"operation": "boxes hidden", "parameters": map[string]any{"boxes": 1}, "sources": sources,
		"output":   map[string]any{"key": key, "sha256": hex.EncodeToString(sum[:]), "size": len(body), "content_type": "video/mp4"},
		"software": map[string]string{"bodycam": "test"}, "requested_by": "s-1", "signing_key_id": signer.ID()}
	if edit != nil {
		edit(p)
	}
	prov, _ := json.MarshalIndent(p, "", "  ")
	pkey := "derived/cam-1/rec-1/redaction-0123abcd.provenance.json"
	_, sig := signer.Sign(prov)
	src[pkey], src[pkey+".sig"] = prov, sig
	r.Copies = []export.Copy{{Kind: "redaction", Key: key, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body)), ProvenanceKey: pkey, JobID: "job-1"}}
	return src, c, signer
}

// A derived copy chosen for the export is in copies/ with its provenance
// record; verify checks its hash, the record's signature, that the record
// names the copy and, as sources, the recording's objects with their
// hashes; a copy altered, a record altered, or a file slipped into copies/
// are named; an export whose copy's record does not check out is refused.
func TestExportCopies(t *testing.T) {
	src, c, _ := withCopy(t, nil)
	var buf bytes.Buffer
	if err := export.Write(context.Background(), &buf, src, c); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	rep := verify(b, export.Options{})
	if !rep.OK || rep.Checked.Copies != 1 {
		t.Fatalf("verify: ok %v, copies %d: %s", rep.OK, rep.Checked.Copies, failures(rep))
	}
	names, data, _ := files(t, b)
	want := []string{"recordings/rec-1/copies/redaction-0123abcd.mp4", "recordings/rec-1/copies/redaction-0123abcd.provenance.json",
		"recordings/rec-1/copies/redaction-0123abcd.provenance.json.sig"}
	for _, w := range want {
		if data[w] == nil {
			t.Fatalf("%s not in the export: %v", w, names)
		}
	}
	if !strings.Contains(string(data["recordings/rec-1/recording.json"]), `"copies"`) || !strings.Contains(string(data["README.txt"]), "copies/") {
		t.Fatal("recording.json or the README does not tell of the copy")
	}

	// Tampering, each re-listed in SHA256SUMS with the old signature kept
	// (so that the copy's own checks are what fail, besides the sums').
	copyFile, provFile := want[0], want[1]
	for _, tc := range []struct {
		name, path, what string
		edit             func(string, []byte) []byte
		add              map[string][]byte
	}{
		{"copy altered", copyFile, "does not match the SHA-256", func(n string, d []byte) []byte {
			if n == copyFile {
				return append([]byte("X"), d[1:]...)
			}
			return d
		}, nil},
		{"provenance altered", provFile, "does not verify", func(n string, d []byte) []byte {
			if n == provFile {
				return bytes.Replace(d, []byte(`"s-1"`), []byte(`"s-2"`), 1)
			}
			return d
		}, nil},
		{"a file slipped in", "recordings/rec-1/copies/extra.mp4", "not listed", nil, map[string][]byte{"recordings/rec-1/copies/extra.mp4": []byte("x")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edit := tc.edit
			if edit == nil {
				edit = func(_ string, d []byte) []byte { return d }
			}
			rep := verify(resign(t, rewrite(t, b, edit, tc.add), nil), export.Options{})
			if rep.OK || !hasFailure(rep, tc.path, tc.what) {
				t.Fatalf("want %s: %q; got %s", tc.path, tc.what, failures(rep))
			}
		})
	}

	// Refused when writing: a record whose source is not the recording's
	// object, or whose output is another file.
	for name, edit := range map[string]func(p map[string]any){
		"a source's hash": func(p map[string]any) {
			p["sources"].([]map[string]any)[1]["sha256"] = strings.Repeat("0", 64)
		},
		"another output": func(p map[string]any) {
			p["output"].(map[string]any)["sha256"] = strings.Repeat("1", 64)
		},
		"another recording's source": func(p map[string]any) {
			p["sources"].([]map[string]any)[0]["key"] = "cam-1/rec-2/init.mp4"
		},
	} {
		src, c, _ := withCopy(t, edit)
		if err := export.Write(context.Background(), &bytes.Buffer{}, src, c); err == nil || !strings.Contains(err.Error(), "provenance") {
			t.Fatalf("%s: export not refused: %v", name, err)
		}
	}
}
