// Package storage defines bodycam's object store: write-once objects whose
// SHA-256 is computed while they are written, with retention and legal holds
// that forbid deletes. Backends live in sub-packages (dir, s3) and all pass the
// same conformance suite, storagetest.Run.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Errors every backend translates its own failures into, so callers test them
// with errors.Is and never import a backend's client library.
var (
	ErrNotFound     = errors.New("storage: object not found")
	ErrExists       = errors.New("storage: object already exists") // objects are write-once
	ErrHashMismatch = errors.New("storage: content does not match the expected SHA-256")
	ErrSizeMismatch = errors.New("storage: content length does not match the declared size")
	ErrRetained     = errors.New("storage: object is under retention or legal hold")
	ErrInvalidKey   = errors.New("storage: invalid object key")
	// ErrInvalidRange: a negative offset or length, or an offset past the
	// object's end (see Store.GetRange).
	ErrInvalidRange = errors.New("storage: invalid byte range")
)

// Mode is an object-lock retention mode.
type Mode string

const (
	// Compliance: nobody, not even an administrator of the store, can delete
	// the object or shorten its retention before it ends.
	Compliance Mode = "compliance"
	// Governance: like compliance, but a store administrator with a special
	// permission could bypass it. bodycam itself never does.
	Governance Mode = "governance"
	// Off: objects are written without retention (still write-once).
	Off Mode = "off"
)

// ParseMode parses a retention mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(s)); m {
	case Compliance, Governance, Off:
		return m, nil
	}
	return "", fmt.Errorf("unknown retention mode %q (want compliance, governance or off)", s)
}

// Retention is the policy a store applies to every object it writes.
type Retention struct {
	Mode   Mode
	Period time.Duration
}

// Until returns when an object written at t may first be deleted, or the zero
// time when the policy sets no retention.
func (r Retention) Until(t time.Time) time.Time {
	if r.Mode == Off || r.Mode == "" || r.Period <= 0 {
		return time.Time{}
	}
	return t.Add(r.Period).UTC()
}

// PutOptions tune one write. The zero value is valid.
type PutOptions struct {
	// SHA256, when set (32 bytes), must equal the hash of the content: on a
	// mismatch Put fails with ErrHashMismatch and stores nothing.
	SHA256 []byte
	// ContentType is recorded where the backend can keep it.
	ContentType string
}

// Info describes a stored object.
type Info struct {
	Key  string
	Size int64
	// SHA256 is the hex SHA-256 of the stored bytes. List leaves it empty.
	SHA256      string
	Modified    time.Time
	RetainUntil time.Time // zero: no retention
	Mode        Mode
	LegalHold   bool
}

// Store is a write-once object store.
//
// Contract, checked by storagetest.Run:
//   - Put streams exactly size bytes from r; memory use does not grow with size.
//     A second Put of an existing key fails with ErrExists and leaves the
//     first object untouched. A Put that fails stores nothing.
//   - Put computes the SHA-256 while writing and returns it in Info.
//   - Reads after a successful Put see the whole object.
//   - GetRange reads only the bytes asked for: the backend seeks (a file) or
//     asks the server for the range (S3), never reading from the start.
//   - Delete fails with ErrRetained while retention or a legal hold forbids it.
//   - Keys are slash-separated; see ValidateKey.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64, o PutOptions) (Info, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange reads the object's bytes [offset, offset+length), cut at the
	// object's end, without reading what comes before offset. In order:
	//   - an invalid key: ErrInvalidKey.
	//   - offset < 0 or length < 0: ErrInvalidRange, and nothing is read.
	//   - a missing object: ErrNotFound (also for an empty range).
	//   - offset > the object's size: ErrInvalidRange (the caller's idea of
	//     the object is wrong).
	//   - offset == size, or length == 0: an empty reader, no error.
	//   - offset+length past the end: the reader ends at the object's end, so
	//     length math.MaxInt64 reads to the end.
	// Errors about the key and the range come from GetRange itself, not from
	// the first Read. The reader yields exactly min(length, size-offset)
	// bytes then io.EOF, or an error; the caller closes it.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Info, error)
	// List calls fn for every object whose key starts with prefix, in key
	// order, until fn returns an error, which List returns.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	Delete(ctx context.Context, key string) error
	SetLegalHold(ctx context.Context, key string, on bool) error
	// Ping checks that the store is reachable and usable.
	Ping(ctx context.Context) error
}

// ValidateKey checks an object key: 1 to 1024 bytes of slash-separated parts,
// each starting with a letter or digit and made of [A-Za-z0-9._-]. That keeps
// keys portable between a file system and S3, and leaves names starting with
// a dot free for a backend's own bookkeeping.
func ValidateKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w %q: length must be 1 to 1024", ErrInvalidKey, key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || !isAlnum(part[0]) {
			return fmt.Errorf("%w %q: each part must start with a letter or digit", ErrInvalidKey, key)
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return fmt.Errorf("%w %q: character %q not allowed", ErrInvalidKey, key, c)
			}
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
