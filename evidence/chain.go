package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// GenesisHash is the "previous hash" of a device's first chain link.
var GenesisHash = strings.Repeat("0", 64)

// Link is what one chain hash covers. Each stored object of a device (init
// segments, media segments, and later tombstones) is one link; links run per
// device across recordings, so a missing recording breaks the chain just as
// a missing segment does.
type Link struct {
	Prev        string // hex chain hash of the device's previous link; GenesisHash for the first
	DeviceID    string
	ChainSeq    int64 // 1, 2, 3, ... per device
	RecordingID string
	Seq         int64  // the object's sequence number within its recording (0 = init)
	SHA256      string // hex hash of the stored bytes
	StartedAt   time.Time
	Duration    time.Duration
}

// ChainHash returns the hex SHA-256 of the link's canonical text:
//
//	bodycam-chain-v1\n<prev>\n<device>\n<chain_seq>\n<recording>\n<seq>\n<sha256>\n<started_at_unix_us>\n<duration_us>\n
//
// so that anyone can recompute it with printf and sha256sum.
func ChainHash(l Link) string {
	h := sha256.Sum256([]byte(ChainText(l)))
	return hex.EncodeToString(h[:])
}

// ChainText is the exact text ChainHash hashes.
func ChainText(l Link) string {
	return fmt.Sprintf("bodycam-chain-v1\n%s\n%s\n%d\n%s\n%d\n%s\n%d\n%d\n",
		l.Prev, l.DeviceID, l.ChainSeq, l.RecordingID, l.Seq, l.SHA256, l.StartedAt.UnixMicro(), l.Duration.Microseconds())
}
