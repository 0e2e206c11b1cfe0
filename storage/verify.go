package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// VerifyingReader passes exactly size bytes through while hashing them. It
// withholds the final bytes until it has checked that the source ends there
// and, when an expected hash is given, that the hash matches, so a consumer
// (a file write, an HTTP upload) never sees a complete object that is wrong.
// Backends wrap every Put's reader in one.
type VerifyingReader struct {
	r    io.Reader
	h    hash.Hash
	size int64
	n    int64
	want []byte
	err  error
}

// NewVerifyingReader returns a reader over r that expects size bytes and, if
// want is 32 bytes long, that SHA-256.
func NewVerifyingReader(r io.Reader, size int64, want []byte) (*VerifyingReader, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: size %d is negative; the real size is required", ErrSizeMismatch, size)
	}
	if len(want) != 0 && len(want) != sha256.Size {
		return nil, fmt.Errorf("%w: expected hash has %d bytes, want %d", ErrHashMismatch, len(want), sha256.Size)
	}
	return &VerifyingReader{r: r, h: sha256.New(), size: size, want: want}, nil
}

// NewSizeReader returns a reader over r that checks the size only, for a
// backend whose server checks the hash itself; Sum and SumHex are empty.
func NewSizeReader(r io.Reader, size int64) (*VerifyingReader, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: size %d is negative; the real size is required", ErrSizeMismatch, size)
	}
	return &VerifyingReader{r: r, size: size}, nil
}

func (v *VerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if left := v.size - v.n; int64(len(p)) > left {
		p = p[:left]
	}
	if len(p) == 0 {
		v.err = v.finish()
		if v.err == nil {
			v.err = io.EOF
		}
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if v.h != nil {
		v.h.Write(p[:n])
	}
	v.n += int64(n)
	switch {
	case v.n == v.size:
		// Last bytes: check before handing them on.
		if ferr := v.finish(); ferr != nil {
			v.err = ferr
			return 0, ferr
		}
		v.err = io.EOF
		return n, nil
	case err == io.EOF:
		v.err = fmt.Errorf("%w: got %d bytes, declared %d", ErrSizeMismatch, v.n, v.size)
		return 0, v.err
	case err != nil:
		v.err = err
		return n, err
	}
	return n, nil
}

// finish checks that the source has no more bytes and that the hash matches.
func (v *VerifyingReader) finish() error {
	var one [1]byte
	for {
		n, err := v.r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w: more than the declared %d bytes", ErrSizeMismatch, v.size)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if v.want != nil && !bytes.Equal(v.h.Sum(nil), v.want) {
		return fmt.Errorf("%w: got %s, want %s", ErrHashMismatch, hex.EncodeToString(v.h.Sum(nil)), hex.EncodeToString(v.want))
	}
	return nil
}

// Sum returns the SHA-256 of what has been read so far (nil from a
// NewSizeReader).
func (v *VerifyingReader) Sum() []byte {
	if v.h == nil {
		return nil
	}
	return v.h.Sum(nil)
}

// SumHex returns Sum as hex.
func (v *VerifyingReader) SumHex() string { return hex.EncodeToString(v.Sum()) }

// Err returns why reading stopped early (a size or hash mismatch, or the
// source's error), or nil.
func (v *VerifyingReader) Err() error {
	if v.err == io.EOF {
		return nil
	}
	return v.err
}

// Complete reports whether every byte was read and checked.
func (v *VerifyingReader) Complete() bool { return v.n == v.size && v.err == io.EOF }
