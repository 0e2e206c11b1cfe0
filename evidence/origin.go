package evidence

import (
	"errors"
	"fmt"
	"strings"
)

// CheckOrigin checks an uploaded file's signed manifest against its
// objects: the manifest says upload and carries an origin, the recording is
// one object, the original (seq 1), and the origin gives that object's size
// and SHA-256. The server, `bodycam verify` and the export check the same.
func CheckOrigin(m Manifest, segs []Segment) error {
	if m.Kind != KindUpload || m.Origin == nil {
		return errors.New("the recording is an uploaded file, but its manifest has no origin")
	}
	if len(segs) != 1 || segs[0].Kind != KindOriginal || segs[0].Seq != 1 {
		return fmt.Errorf("an uploaded file is one object, the original (seq 1); %d objects are listed", len(segs))
	}
	s, o := segs[0], m.Origin
	if o.SHA256 != s.SHA256 || o.Size != s.Size {
		return fmt.Errorf("its origin says the file %s is %d bytes with SHA-256 %s; the original is %d bytes, %s",
			o.FileName, o.Size, o.SHA256, s.Size, s.SHA256)
	}
	if err := ValidateFileName(o.FileName); err != nil {
		return fmt.Errorf("its origin: %w", err)
	}
	return nil
}

// CheckReceipt checks that a receipt names the original s (recording,
// device, object key, size, SHA-256, chain link) and, when o is given, the
// file and dock of the manifest's origin. Its signature is checked apart
// (VerifyReceipt).
func CheckReceipt(r Receipt, s Segment, o *ManifestOrigin) error {
	var diff []string
	check := func(field, got, want string) {
		if got != want {
			diff = append(diff, fmt.Sprintf("%s %q (the record: %q)", field, got, want))
		}
	}
	check("recording_id", r.RecordingID, s.RecordingID)
	check("device_id", r.DeviceID, s.DeviceID)
	check("object_key", r.ObjectKey, s.Key)
	check("sha256", r.SHA256, s.SHA256)
	check("size", fmt.Sprint(r.Size), fmt.Sprint(s.Size))
	check("chain_hash", r.ChainHash, s.ChainHash)
	if o != nil {
		check("file_name", r.FileName, o.FileName)
		check("dock", r.Dock, o.Dock)
	}
	if len(diff) > 0 {
		return errors.New("it differs from the record: " + strings.Join(diff, ", "))
	}
	return nil
}
