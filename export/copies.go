package export

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bodycam/bodycam/evidence"
)

// Copy is a copy a job derived from a recording (a redacted copy, a clip,
// a review proxy) that the export carries, chosen by whoever exports:
// the object and its signed provenance record (which names the original
// objects it was made from, with their SHA-256, and how).
type Copy struct {
	Kind          string
	Key           string
	SHA256        string
	Size          int64
	ProvenanceKey string
	JobID         string
}

// CopiesDir is where a recording's derived copies are, in its directory.
const CopiesDir = "copies"

// CopyNote is what recording.json says of a derived copy.
const CopyNote = "derived copy made by bodycam from the originals in this directory, as its signed provenance record says; the originals are the evidence"

// copyInfo is a derived copy as recording.json lists it.
type copyInfo struct {
	Kind                string `json:"kind"`
	Key                 string `json:"key"` // its object key in the store (the provenance record's output)
	File                string `json:"file"`
	SHA256              string `json:"sha256"`
	Size                int64  `json:"size"`
	Provenance          string `json:"provenance"`
	ProvenanceSignature string `json:"provenance_signature"`
	SigningKeyID        string `json:"signing_key_id"`
	Job                 string `json:"job"`
	Note                string `json:"note"`
}

// provenance is what the export reads of a provenance record (package
// derive writes them).
type provenance struct {
	Kind        string `json:"kind"`
	RecordingID string `json:"recording_id"`
	Sources     []struct {
		Key    string `json:"key"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"sources"`
	Output *struct {
		Key    string `json:"key"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"output"`
	KeyID string `json:"signing_key_id"`
}

// signedCopy is a copy's provenance record as stored, and what it says.
type signedCopy struct {
	Copy
	body, sig []byte
	p         provenance
}

// checkProvenance checks a copy's provenance record: signed by a key of
// keys, of the recording, naming the copy (its key, SHA-256 and size) as
// its output and, as its sources, only objects of the recording with the
// SHA-256 and size the recording's objects have (objects: by key).
func checkProvenance(keys map[string]ed25519.PublicKey, body, sig []byte, recording, copyKey, copySHA256 string, copySize int64,
	objects map[string]evidence.Segment) (provenance, error) {
	var p provenance
	if err := json.Unmarshal(body, &p); err != nil {
		return p, fmt.Errorf("not a provenance record: %v", err)
	}
	pub := keys[p.KeyID]
	switch {
	case pub == nil:
		return p, fmt.Errorf("signed by key %q, which is not among the public keys", p.KeyID)
	case !evidence.VerifyManifest(pub, body, sig):
		return p, fmt.Errorf("its signature does not verify with key %s: it was altered after it was signed", p.KeyID)
	case p.RecordingID != recording:
		return p, fmt.Errorf("it is of recording %q, not %s", p.RecordingID, recording)
	case p.Output == nil || p.Output.Key != copyKey || p.Output.SHA256 != copySHA256 || p.Output.Size != copySize:
		return p, fmt.Errorf("it does not name this copy (%s, sha256 %s, %d bytes) as what it made", copyKey, short(copySHA256), copySize)
	case len(p.Sources) == 0:
		return p, fmt.Errorf("it names no source")
	}
	for _, s := range p.Sources {
		o, ok := objects[s.Key]
		if !ok {
			return p, fmt.Errorf("its source %s is not an object of the recording", s.Key)
		}
		if o.SHA256 != s.SHA256 || o.Size != s.Size {
			return p, fmt.Errorf("its source %s is said to be sha256 %s, %d bytes; the recording's object is %s, %d bytes",
				s.Key, short(s.SHA256), s.Size, short(o.SHA256), o.Size)
		}
	}
	return p, nil
}

// readCopies reads and checks the provenance records of a recording's
// copies before anything is written: an export whose copy would not check
// out is refused.
func readCopies(ctx context.Context, src Source, keys map[string]ed25519.PublicKey, r RecordingData) ([]signedCopy, error) {
	objects := map[string]evidence.Segment{}
	for _, s := range r.Segments {
		objects[s.Key] = s
	}
	out := make([]signedCopy, 0, len(r.Copies))
	seen := map[string]bool{}
	for _, c := range r.Copies {
		for _, name := range []string{ObjectFile(c.Key), ObjectFile(c.ProvenanceKey)} {
			if !safeName.MatchString(name) || seen[name] {
				return nil, fmt.Errorf("export: recording %s: copy %s cannot be named %q in the export", r.Recording.ID, c.Key, name)
			}
			seen[name] = true
		}
		body, err := readSmall(ctx, src, c.ProvenanceKey)
		if err != nil {
			return nil, err
		}
		sig, err := readSmall(ctx, src, c.ProvenanceKey+".sig")
		if err != nil {
			return nil, err
		}
		p, err := checkProvenance(keys, body, sig, r.Recording.ID, c.Key, c.SHA256, c.Size, objects)
		if err != nil {
			return nil, fmt.Errorf("export: the provenance of %s (%s): %v", c.Key, c.ProvenanceKey, err)
		}
		out = append(out, signedCopy{Copy: c, body: body, sig: sig, p: p})
	}
	return out, nil
}

// copies writes a recording's derived copies and their provenance records
// into dir/copies/ and lists them.
func (z *zipWriter) copies(ctx context.Context, src Source, dir string, copies []signedCopy) ([]copyInfo, error) {
	var out []copyInfo
	for _, c := range copies {
		file := CopiesDir + "/" + ObjectFile(c.Key)
		sum, n, err := z.copyObject(ctx, src, c.Key, dir+file, true, nil)
		if err != nil {
			return nil, err
		}
		if sum != c.SHA256 || n != c.Size {
			return nil, fmt.Errorf("export: copy %s does not match its record (recorded %s, %d bytes; stored %s, %d bytes)", c.Key, c.SHA256, c.Size, sum, n)
		}
		prov := CopiesDir + "/" + ObjectFile(c.ProvenanceKey)
		if err := z.put(dir+prov, c.body); err != nil {
			return nil, err
		}
		if err := z.put(dir+prov+".sig", c.sig); err != nil {
			return nil, err
		}
		out = append(out, copyInfo{Kind: c.Kind, Key: c.Key, File: file, SHA256: c.SHA256, Size: c.Size, Provenance: prov, ProvenanceSignature: prov + ".sig",
			SigningKeyID: c.p.KeyID, Job: c.JobID, Note: CopyNote})
	}
	return out, nil
}

// checkCopies checks a recording's derived copies: each listed file
// present with the SHA-256 and size recording.json gives, its provenance
// record signed by a key of the export, naming that file as its output and
// as its sources only objects of the recording (as its signed manifest
// lists them: the objects' own files are checked against it), and nothing
// in copies/ that recording.json does not list.
func (v *verifier) checkCopies(dir string, rf recordingFile, segs []evidence.Segment) {
	objects := map[string]evidence.Segment{}
	for _, s := range segs {
		objects[s.Key] = s
	}
	listed := map[string]bool{}
	p := dir + "recording.json"
	for _, c := range rf.Copies {
		file, prov := strings.TrimPrefix(c.File, CopiesDir+"/"), strings.TrimPrefix(c.Provenance, CopiesDir+"/")
		if file == c.File || prov == c.Provenance || !safeName.MatchString(file) || !safeName.MatchString(prov) ||
			c.ProvenanceSignature != c.Provenance+".sig" || ObjectFile(c.Key) != file {
			v.fail(p, "names a derived copy %q (provenance %q) that cannot be a file of copies/", c.File, c.Provenance)
			continue
		}
		listed[dir+c.File], listed[dir+c.Provenance], listed[dir+c.ProvenanceSignature] = true, true, true
		e := v.hashOf(dir + c.File)
		switch {
		case e == nil:
			v.fail(dir+c.File, "missing: recording.json names this derived copy")
			continue
		case e.err != nil:
			v.fail(dir+c.File, "cannot be read: %v", e.err)
			continue
		case e.sha256 != c.SHA256 || e.size != c.Size:
			v.fail(dir+c.File, "does not match the SHA-256 in recording.json (%s, %d bytes): the file hashes to %s, %d bytes", short(c.SHA256), c.Size, short(e.sha256), e.size)
			continue
		}
		body, ok := v.read(dir+c.Provenance, "provenance record", v.lim.json)
		if !ok {
			continue
		}
		sig, ok := v.read(dir+c.ProvenanceSignature, "provenance signature", v.lim.small)
		if !ok {
			continue
		}
		pr, err := checkProvenance(v.keys, body, sig, rf.Recording.ID, c.Key, e.sha256, e.size, objects)
		if err != nil {
			v.fail(dir+c.Provenance, "%v", err)
			continue
		}
		v.rep.Checked.Copies++
		v.note("%s%s: a %s derived by bodycam (job %s) from %d of the recording's objects, its provenance signed by key %s", dir, c.File, pr.Kind, c.Job, len(pr.Sources), pr.KeyID)
	}
	for name := range v.entries {
		if strings.HasPrefix(name, dir+CopiesDir+"/") && !listed[name] {
			v.fail(name, "in copies/ but not listed in recording.json")
		}
	}
}
