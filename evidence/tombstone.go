package evidence

import (
	"encoding/json"
	"time"
)

// Tombstone is what retention leaves when it deletes a recording's media:
// a signed statement of which objects were deleted, when and why, stored as
// <device>/<recording>/tombstone.json (+ .sig, raw Ed25519 over the JSON)
// and linked into the device's chain as the recording's last segment, so a
// gap in the footage is explained, never silent.
type Tombstone struct {
	Type        string    `json:"type"` // "bodycam-tombstone-v1"
	RecordingID string    `json:"recording_id"`
	DeviceID    string    `json:"device_id"`
	DeletedAt   time.Time `json:"deleted_at"`
	Reason      string    `json:"reason"`
	// Rule, RetainUntil and Categories: which retention rule let the
	// footage go, the time it kept it until, and the recording's
	// categories then (evidence.RetentionPolicy.Decide). Absent from
	// tombstones written before retention classes.
	Rule         string            `json:"rule,omitempty"`
	RetainUntil  time.Time         `json:"retain_until,omitzero"`
	Categories   []string          `json:"categories,omitempty"`
	ManifestKey  string            `json:"manifest_key"` // kept: what the recording was stays provable
	Objects      []TombstoneObject `json:"objects"`
	SigningKeyID string            `json:"signing_key_id"`
}

// TombstoneObject is one deleted object with its place in the chain.
type TombstoneObject struct {
	Seq       int64  `json:"seq"`
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	ChainSeq  int64  `json:"chain_seq"`
	ChainHash string `json:"chain_hash"`
}

// NewTombstone describes deleting segs (init and media) of rec.
func NewTombstone(rec Recording, segs []Segment, at time.Time, reason string) Tombstone {
	t := Tombstone{Type: "bodycam-tombstone-v1", RecordingID: rec.ID, DeviceID: rec.DeviceID, DeletedAt: at.UTC(),
		Reason: reason, ManifestKey: rec.ManifestKey, Objects: []TombstoneObject{}}
	for _, s := range segs {
		if s.Kind == KindTombstone {
			continue
		}
		t.Objects = append(t.Objects, TombstoneObject{Seq: s.Seq, Key: s.Key, Size: s.Size, SHA256: s.SHA256, ChainSeq: s.ChainSeq, ChainHash: s.ChainHash})
	}
	return t
}

// Marshal is the tombstone's canonical bytes (what is signed and hashed).
func (t Tombstone) Marshal() []byte {
	b, _ := json.MarshalIndent(t, "", "  ")
	return append(b, '\n')
}
