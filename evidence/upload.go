package evidence

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// MayUpload reports whether u may upload the files of a device whose
// officer belongs to officerUnit: a dock of no unit for every device, a dock
// of a unit for its unit's devices. Nobody else uploads (recorders publish
// live; people never send evidence files in a recorder's name).
func MayUpload(u User, officerUnit string) bool {
	return u.Role == RoleDock && !u.Disabled && (u.Unit == "" || (officerUnit != "" && officerUnit == u.Unit))
}

// TimeSource says where an uploaded recording's start and end came from.
type TimeSource string

const (
	// TimeFromFile: the file's own header (an MP4/MOV movie header's
	// creation time and length).
	TimeFromFile TimeSource = "file"
	// TimeGiven: the dock said (from the recorder's file name or sidecar);
	// the file's length gives the end when the dock gave none.
	TimeGiven TimeSource = "given"
	// TimeReceived: neither said when; the time the upload began, of the
	// file's length when its header says.
	TimeReceived TimeSource = "received"
)

// GPSPoint is one fix of a track an uploaded file or its sidecar carried.
type GPSPoint struct {
	At  time.Time `json:"at"`
	Lat float64   `json:"lat"`
	Lon float64   `json:"lon"`
}

// Upload is what is known of one uploaded file: what the dock declared and
// what the server found. It is kept beside the recording it became and
// copied into that recording's signed manifest (ManifestOrigin).
type Upload struct {
	// ID is the upload's id (the tus upload's).
	ID          string
	RecordingID string // once stored
	DeviceID    string
	OfficerID   string
	Dock        string // the workstation's user id
	FileName    string // as the recorder named it
	Size        int64
	SHA256      string // hex, declared by the dock and checked by the server
	Important   bool   // the recorder's one-key mark
	StartedAt   time.Time
	EndedAt     time.Time
	TimeSource  TimeSource
	GPS         []GPSPoint
	RemoteAddr  string
}

// MaxFileName bounds an uploaded file's name.
const MaxFileName = 255

// ValidateFileName checks the name a dock gives an uploaded file: a base
// name (no directories), 1 to MaxFileName bytes, no control characters.
func ValidateFileName(name string) error {
	if name == "" || len(name) > MaxFileName {
		return fmt.Errorf("%w: a file name must have 1 to %d bytes", ErrInvalidID, MaxFileName)
	}
	if strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		return fmt.Errorf("%w: file name %q: a base name, without directories", ErrInvalidID, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: file name %q has control characters", ErrInvalidID, name)
		}
	}
	return nil
}

var extPattern = regexp.MustCompile(`^\.[a-z0-9]{1,8}$`)

// OriginalKey is the object key of an uploaded file: <device>/<recording>/
// original plus the file name's extension, lower-cased, when it is 1 to 8
// letters or digits (so that the object says what it is, and keys stay
// portable).
func OriginalKey(device, recording, fileName string) string {
	ext := strings.ToLower(path.Ext(fileName))
	if !extPattern.MatchString(ext) {
		ext = ""
	}
	return device + "/" + recording + "/original" + ext
}

// ManifestOrigin is an upload's entry in its recording's signed manifest.
type ManifestOrigin struct {
	FileName   string     `json:"file_name"`
	Size       int64      `json:"size"`
	SHA256     string     `json:"sha256"`
	Dock       string     `json:"dock"`
	UploadID   string     `json:"upload_id"`
	Important  bool       `json:"important"`
	TimeSource TimeSource `json:"time_source"`
	GPS        []GPSPoint `json:"gps,omitempty"`
}

// NewManifestOrigin is the manifest entry of an upload.
func NewManifestOrigin(u Upload) *ManifestOrigin {
	return &ManifestOrigin{FileName: u.FileName, Size: u.Size, SHA256: u.SHA256, Dock: u.Dock, UploadID: u.ID,
		Important: u.Important, TimeSource: u.TimeSource, GPS: u.GPS}
}

// Receipt is what the server signs when it has stored an uploaded file:
// the workstation keeps it, and only once it checks may the recorder's copy
// be wiped. Like a manifest it is stored as receipt.json (Marshal's bytes)
// and receipt.json.sig (the raw Ed25519 signature of those bytes), and
// anyone with the server's public key checks it with
// `openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in receipt.json -sigfile receipt.json.sig`.
type Receipt struct {
	Version      int       `json:"version"`
	RecordingID  string    `json:"recording_id"`
	DeviceID     string    `json:"device_id"`
	FileName     string    `json:"file_name"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	ObjectKey    string    `json:"object_key"`
	ChainHash    string    `json:"chain_hash"`
	Dock         string    `json:"dock"`
	StoredAt     time.Time `json:"stored_at"`
	SigningKeyID string    `json:"signing_key_id"`
}

// ReceiptKey is the object key of a recording's receipt (its signature is
// at ReceiptKey + ".sig").
func ReceiptKey(device, recording string) string { return device + "/" + recording + "/receipt.json" }

// Marshal encodes the receipt as the bytes that are signed and stored.
func (r Receipt) Marshal() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return append(b, '\n')
}

// VerifyReceipt checks a receipt's raw Ed25519 signature and decodes it.
func VerifyReceipt(pub ed25519.PublicKey, body, sig []byte) (Receipt, error) {
	var r Receipt
	if !VerifyManifest(pub, body, sig) {
		return r, fmt.Errorf("receipt: the signature does not match the key")
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("receipt: %v", err)
	}
	return r, nil
}
