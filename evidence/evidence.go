// Package evidence holds the domain types of bodycam and the rules that do not
// depend on any backend: what a valid device id is, what a recording and a
// segment are. It imports only the standard library; every other package
// points toward it.
package evidence

import (
	"errors"
	"fmt"
	"regexp"
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

// Valid reports whether s is one of the known states.
func (s RecordingState) Valid() bool {
	switch s {
	case StateLive, StateComplete, StateInterrupted:
		return true
	}
	return false
}

// Recording is one continuous publish session of a device.
type Recording struct {
	ID        string
	DeviceID  string
	OfficerID string
	CaseID    string
	State     RecordingState
	StartedAt time.Time
	EndedAt   time.Time // zero while live
	// SegmentCount counts stored segments, the init segment included.
	SegmentCount int
}

// SegmentKind tells an init segment from a media segment.
type SegmentKind string

const (
	KindInit  SegmentKind = "init"
	KindMedia SegmentKind = "media"
)

// Segment is one stored object of a recording: the fMP4 init segment (Seq 0)
// or a media segment (Seq 1, 2, ...).
type Segment struct {
	RecordingID string
	Seq         int64
	Kind        SegmentKind
	Key         string // object key in the store
	Size        int64
	SHA256      string // hex of the exact stored bytes
	ChainHash   string // hex; see the chain rules
	StartedAt   time.Time
	Duration    time.Duration
}
