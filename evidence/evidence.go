// Package evidence holds the domain types of bodycam and the rules that do not
// depend on any backend: what a valid device id is, what a recording and a
// segment are. It imports only the standard library; every other package
// points toward it.
package evidence

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// deviceIDPattern is the shape of a device id. Ids go into object keys and RTSP
// paths, so they are restricted to characters that need no escaping anywhere.
var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ErrInvalidID is wrapped by ValidateDeviceID.
var ErrInvalidID = errors.New("invalid id")

// ValidateDeviceID reports whether id may name a device.
func ValidateDeviceID(id string) error {
	if !deviceIDPattern.MatchString(id) {
		return fmt.Errorf("%w %q: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}", ErrInvalidID, id)
	}
	return nil
}

// Device is a registered recorder.
type Device struct {
	ID        string
	Name      string
	OfficerID string
	// SecretHash is the slow (argon2id) hash of the RTSP secret; the secret
	// itself is shown once at registration and never stored.
	SecretHash string
	// SecretSalt (not secret) picks the device's secret among those the
	// server's credential key can derive; see keyring.DeviceSecret.
	SecretSalt string
	Disabled   bool
	CreatedAt  time.Time
}

// RecordingState is the life-cycle state of a recording.
type RecordingState string

const (
	// StateLive: media is arriving now.
	StateLive RecordingState = "live"
	// StateComplete: the publisher stopped and every segment is stored.
	StateComplete RecordingState = "complete"
	// StateInterrupted: the recording ended abnormally (crash, kill, lost
	// media); its gaps are explicit in the record.
	StateInterrupted RecordingState = "interrupted"
)

// SilentEndPrefixes begin the end reasons of a recording that ended because
// its recorder fell silent while recording (ingest's session.endReason): a
// read timeout, a dropped connection, or the device connecting again after
// a time without media. A recording the publisher stopped, or that the
// server ended (shutdown, a node lost), did not. The supervision dashboard
// counts them (catalog.Stats); the prefixes hold no quote, % or _.
var SilentEndPrefixes = []string{"no data for ", "publisher disconnected", "the device connected again"}

// EndedSilent reports whether a recording with this end reason ended
// because its recorder fell silent.
func EndedSilent(reason string) bool {
	for _, p := range SilentEndPrefixes {
		if strings.HasPrefix(reason, p) {
			return true
		}
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s RecordingState) Valid() bool {
	switch s {
	case StateLive, StateComplete, StateInterrupted:
		return true
	}
	return false
}

// RecordingKind says how a recording came in.
type RecordingKind string

const (
	// KindStream: published live over RTSP and cut into fMP4 segments.
	KindStream RecordingKind = "stream"
	// KindUpload: a recorder's own file, uploaded whole through a dock; its
	// one segment (KindOriginal) is the file's exact bytes.
	KindUpload RecordingKind = "upload"
)

// Valid reports whether k is a known kind ("" is not).
func (k RecordingKind) Valid() bool { return k == KindStream || k == KindUpload }

// Recording is one continuous publish session of a device, or one file a
// device recorded on its own and a dock uploaded (Kind).
type Recording struct {
	ID string
	// Kind is KindStream or KindUpload; "" is read as KindStream.
	Kind      RecordingKind
	DeviceID  string
	OfficerID string
	CaseID    string
	State     RecordingState
	StartedAt time.Time
	EndedAt   time.Time // zero while live
	// EndReason says why the recording ended ("publisher stopped", "read
	// timeout", "server restarted", ...).
	EndReason string
	// Codecs lists the recorded tracks, e.g. ["H264 1280x720", "MPEG-4 Audio 48000Hz 2ch"].
	Codecs     []string
	RemoteAddr string
	// ManifestKey is the object key of the signed manifest, once written.
	ManifestKey string
	// SegmentCount counts stored segments, the init segment included.
	SegmentCount int
	// DeletedAt is when retention deleted the recording's media (zero while
	// kept); its tombstone is then the last link of the recording.
	DeletedAt time.Time
	// NodeID names the node that records it ("" before clusters).
	NodeID string
	// Fence is the fence of the device lease its node held when it began
	// (coord.DeviceLease.Fence, Unix µs of the grant; 0 before clusters).
	// The catalog refuses its segments recorded after a newer grant.
	Fence int64
	// ReapedAt is when the cluster's reaper ended it as interrupted because
	// its node stopped answering; zero otherwise, and zero again once the
	// owning node has finished it itself (Catalog.FinishRecording).
	ReapedAt time.Time
}

// SegmentKind tells an init segment from a media segment.
type SegmentKind string

const (
	KindInit  SegmentKind = "init"
	KindMedia SegmentKind = "media"
	// KindTombstone is the signed record, linked into the device's chain,
	// that retention deleted a recording's media and which objects they were.
	KindTombstone SegmentKind = "tombstone"
	// KindOriginal is an uploaded file, stored exactly as the recorder
	// wrote it (never remuxed): the one segment (Seq 1) of a KindUpload
	// recording, linked into its device's chain like any segment.
	KindOriginal SegmentKind = "original"
)

// Segment is one stored object of a recording: the fMP4 init segment (Seq 0)
// or a media segment (Seq 1, 2, ...).
type Segment struct {
	RecordingID string
	DeviceID    string
	Seq         int64
	Kind        SegmentKind
	Key         string // object key in the store
	Size        int64
	SHA256      string // hex of the exact stored bytes
	// The segment's link in its device's chain (see ChainHash).
	ChainSeq      int64
	PrevChainHash string
	ChainHash     string
	// StartedAt is the server's receive time of the segment's first sample:
	// authoritative for order. DeviceTime is the recorder's own clock for the
	// same sample, from RTCP sender reports; zero when it sent none.
	StartedAt  time.Time
	DeviceTime time.Time
	// Duration comes from media timestamps, checked against the receive clock.
	Duration time.Duration
	// Keyframe is false only for a segment cut by the hard cap while the
	// recorder sent no keyframe: it needs the segments before it to decode.
	Keyframe bool
}

// Link returns the segment's chain link.
func (s Segment) Link() Link {
	return Link{Prev: s.PrevChainHash, DeviceID: s.DeviceID, ChainSeq: s.ChainSeq, RecordingID: s.RecordingID,
		Seq: s.Seq, SHA256: s.SHA256, StartedAt: s.StartedAt, Duration: s.Duration}
}

// GapKind says why part of a recording is missing.
type GapKind string

const (
	// GapLoss: the recorder's media stopped arriving (network loss) while
	// the session stayed up.
	GapLoss GapKind = "loss"
	// GapDiscontinuity: the recorder's timestamps jumped (reset, wrap, clock
	// change); the timeline follows the receive clock across the jump.
	GapDiscontinuity GapKind = "discontinuity"
	// GapInterrupted: the server stopped abnormally (crash, kill -9, power);
	// media after the last durable point is missing.
	GapInterrupted GapKind = "interrupted"
	// GapUndecodable: media that arrived but could not be decoded, so was
	// not stored: before the first keyframe, or after lost packets of a
	// video stream with B-frames until the next keyframe.
	GapUndecodable GapKind = "undecodable"
	// GapDamaged: a segment's bytes changed in the server's spool between
	// being written and being stored (a disk fault, or tampering on the
	// host). It is stored as found; the detail gives both hashes.
	GapDamaged GapKind = "damaged"
)

// Gap is an explicit hole in a recording.
type Gap struct {
	RecordingID string
	Kind        GapKind
	Start       time.Time // server clock
	End         time.Time // zero when unknown
	Track       string    // "video", "audio", or "" for all
	Detail      string
}

// LiveView is one supervisor's live viewing session of a device: who
// watched, what, from where, and for how long. The custody ledger of a case
// can show who saw footage as it happened.
type LiveView struct {
	ID          string
	DeviceID    string
	RecordingID string
	User        string
	RemoteAddr  string
	UserAgent   string
	// Video and Audio say what the viewer got: "H264", "H264 (transcoded
	// from H265)", "Opus (transcoded from AAC)", or empty.
	Video, Audio string
	StartedAt    time.Time
	EndedAt      time.Time // zero while watching
	EndReason    string
	// NodeID names the node that serves the session ("" before clusters).
	NodeID string
}

// SigningKey is a node's public signing key as the catalog keeps it, so
// that what one node signed verifies on every other.
type SigningKey struct {
	ID           string // keyring.KeyID of the key
	PublicKeyPEM string // PKIX PEM
	NodeID       string // the node that first published it
	CreatedAt    time.Time
}
