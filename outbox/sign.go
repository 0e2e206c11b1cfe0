package outbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook delivery.
const (
	HeaderEventID   = "X-Bodycam-Event-Id"
	HeaderEventKind = "X-Bodycam-Event-Kind"
	HeaderTimestamp = "X-Bodycam-Timestamp" // Unix seconds when the attempt was signed
	HeaderSignature = "X-Bodycam-Signature" // "sha256=" + hex HMAC-SHA256
)

// MinSecret is the shortest webhook secret taken, in bytes.
const MinSecret = 16

// Signature is the X-Bodycam-Signature of a delivery: "sha256=" and the hex
// HMAC-SHA256, keyed with the secret, of the timestamp (the decimal Unix
// seconds of X-Bodycam-Timestamp), a full stop, and the body's bytes as
// sent:
//
//	sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))
//
// The timestamp is signed so that a captured delivery cannot be replayed
// later than the receiver's tolerance.
func Signature(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("outbox: signature does not match")
	ErrStale        = errors.New("outbox: timestamp outside the tolerance")
)

// Verify checks a delivery as a receiver should: the signature over the
// timestamp and the body, and that the timestamp is within tolerance of now
// (either way). Receivers then drop an event id they have had already.
func Verify(secret []byte, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	got, ok := strings.CutPrefix(signature, "sha256=")
	want := Signature(secret, timestamp, body)[len("sha256="):]
	if !ok || !hmac.Equal([]byte(got), []byte(want)) {
		return ErrBadSignature
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrStale
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
