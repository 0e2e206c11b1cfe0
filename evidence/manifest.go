package evidence

import (
	"crypto/ed25519"
	"encoding/json"
	"time"
)

// Manifest is the signed summary of a finished recording, stored write-once
// beside its segments as manifest.json, with manifest.json.sig holding the raw
// 64-byte Ed25519 signature of manifest.json's exact bytes. Anyone with the
// server's public key can check it, e.g. with
// `openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in manifest.json -sigfile manifest.json.sig`.
type Manifest struct {
	Version     int               `json:"version"`
	RecordingID string            `json:"recording_id"`
	DeviceID    string            `json:"device_id"`
	OfficerID   string            `json:"officer_id"`
	CaseID      string            `json:"case_id"`
	State       RecordingState    `json:"state"`
	StartedAt   time.Time         `json:"started_at"`
	EndedAt     time.Time         `json:"ended_at"`
	EndReason   string            `json:"end_reason"`
	Codecs      []string          `json:"codecs"`
	Segments    []ManifestSegment `json:"segments"`
	Gaps        []ManifestGap     `json:"gaps"`
	// Kind and Origin are set for uploaded files only (KindUpload), so a
	// stream's manifest is what it always was.
	Kind         RecordingKind   `json:"kind,omitempty"`
	Origin       *ManifestOrigin `json:"origin,omitempty"`
	ChainHead    string          `json:"chain_head"`
	SigningKeyID string          `json:"signing_key_id"`
	SignedAt     time.Time       `json:"signed_at"`
}

// ManifestSegment is one stored object in a manifest.
type ManifestSegment struct {
	Seq           int64       `json:"seq"`
	Kind          SegmentKind `json:"kind"`
	Key           string      `json:"key"`
	Size          int64       `json:"size"`
	SHA256        string      `json:"sha256"`
	ChainSeq      int64       `json:"chain_seq"`
	PrevChainHash string      `json:"prev_chain_hash"`
	ChainHash     string      `json:"chain_hash"`
	StartedAt     time.Time   `json:"started_at"`
	DeviceTime    *time.Time  `json:"device_time,omitempty"`
	DurationUS    int64       `json:"duration_us"`
	Keyframe      bool        `json:"keyframe"`
}

// ManifestGap is one explicit hole in a manifest.
type ManifestGap struct {
	Kind   GapKind    `json:"kind"`
	Start  time.Time  `json:"start"`
	End    *time.Time `json:"end,omitempty"`
	Track  string     `json:"track,omitempty"`
	Detail string     `json:"detail"`
}

// NewManifest builds the manifest of a finished recording.
func NewManifest(r Recording, segs []Segment, gaps []Gap) Manifest {
	m := Manifest{
		Version: 1, RecordingID: r.ID, DeviceID: r.DeviceID, OfficerID: r.OfficerID, CaseID: r.CaseID,
		State: r.State, StartedAt: r.StartedAt, EndedAt: r.EndedAt, EndReason: r.EndReason,
		Codecs: append([]string{}, r.Codecs...), Segments: []ManifestSegment{}, Gaps: []ManifestGap{},
	}
	for _, s := range segs {
		m.Segments = append(m.Segments, NewManifestSegment(s))
		m.ChainHead = s.ChainHash
	}
	for _, g := range gaps {
		m.Gaps = append(m.Gaps, NewManifestGap(g))
	}
	return m
}

// NewManifestSegment is a segment as manifests (and exports) list it.
func NewManifestSegment(s Segment) ManifestSegment {
	ms := ManifestSegment{Seq: s.Seq, Kind: s.Kind, Key: s.Key, Size: s.Size, SHA256: s.SHA256,
		ChainSeq: s.ChainSeq, PrevChainHash: s.PrevChainHash, ChainHash: s.ChainHash,
		StartedAt: s.StartedAt, DurationUS: s.Duration.Microseconds(), Keyframe: s.Keyframe}
	if !s.DeviceTime.IsZero() {
		t := s.DeviceTime
		ms.DeviceTime = &t
	}
	return ms
}

// NewManifestGap is a gap as manifests (and exports) list it.
func NewManifestGap(g Gap) ManifestGap {
	mg := ManifestGap{Kind: g.Kind, Start: g.Start, Track: g.Track, Detail: g.Detail}
	if !g.End.IsZero() {
		t := g.End
		mg.End = &t
	}
	return mg
}

// Segment returns the manifest entry as a Segment of the recording.
func (m Manifest) Segment(i int) Segment { return m.Segments[i].Segment(m.RecordingID, m.DeviceID) }

// Segment is the entry as a Segment of the recording it belongs to.
func (ms ManifestSegment) Segment(recordingID, deviceID string) Segment {
	s := Segment{RecordingID: recordingID, DeviceID: deviceID, Seq: ms.Seq, Kind: ms.Kind, Key: ms.Key,
		Size: ms.Size, SHA256: ms.SHA256, ChainSeq: ms.ChainSeq, PrevChainHash: ms.PrevChainHash,
		ChainHash: ms.ChainHash, StartedAt: ms.StartedAt, Duration: time.Duration(ms.DurationUS) * time.Microsecond,
		Keyframe: ms.Keyframe}
	if ms.DeviceTime != nil {
		s.DeviceTime = *ms.DeviceTime
	}
	return s
}

// Marshal encodes the manifest as the bytes that are signed and stored.
func (m Manifest) Marshal() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// VerifyManifest checks a raw Ed25519 signature over manifest bytes.
func VerifyManifest(pub ed25519.PublicKey, manifest, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, manifest, sig)
}
