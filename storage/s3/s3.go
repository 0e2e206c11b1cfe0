// Package s3 is the scale-out object store: an S3 bucket with Object Lock,
// MinIO being the server we test against.
//
// Write-once comes from `If-None-Match: *` on every PUT and on every
// multipart completion. An object up to Options.MultipartThreshold is one
// streamed PUT (so its SHA-256 checksum is of the whole object) that carries
// an x-amz-checksum-sha256 the server verifies and keeps; Stat reads it
// back. When the caller knows the hash, it goes up front and is checked by
// the server alone, once Open has seen the server refuse a wrong one;
// otherwise the bytes are hashed here too, and a wrong object fails before
// its last byte is sent. A larger object is a multipart upload (see
// putMultipart): parts streamed one by one, each with a checksum the server
// checks, the whole hashed here and kept in the object's metadata, and any
// failure aborted. Retention and legal holds are S3 Object Lock, which the
// server enforces even against bodycam itself.
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/bodycam/bodycam/storage"
)

// Options configure a Store.
type Options struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string // empty: us-east-1
	TLS       bool
	Retention storage.Retention
	// Transport, when set, replaces the HTTP transport (tests, custom CAs).
	Transport http.RoundTripper
	// HashLocally hashes every upload here even when the server checks the
	// checksums it is sent.
	HashLocally bool
	// MultipartThreshold: objects larger than this go up as multipart
	// uploads (see putMultipart), smaller ones as one PUT. 0 means
	// DefaultMultipartThreshold; it is at most 5 GiB, S3's largest PUT.
	MultipartThreshold int64
	// PartSize is the size of a multipart upload's parts (the last may be
	// shorter), grown for an object that would need more than 10,000. 0
	// means DefaultPartSize; at least 5 MiB, S3's smallest part.
	PartSize int64
}

// ErrNoObjectLock: the bucket exists but was created without Object Lock, so
// nothing would stop its objects from being deleted or overwritten.
var ErrNoObjectLock = errors.New("bucket exists without Object Lock")

// Store is an S3-backed storage.Store.
type Store struct {
	c         *minio.Client
	bucket    string
	retention storage.Retention
	// serverChecks: the server refused an upload whose x-amz-checksum-sha256
	// did not match its bytes, so a known hash need not be recomputed here.
	serverChecks bool
	threshold    int64 // larger objects go up in parts
	partSize     int64
}

// Open connects, creates the bucket with Object Lock when it is missing, and
// refuses a bucket that exists without it.
func Open(ctx context.Context, o Options) (*Store, error) {
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds:           credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:          o.TLS,
		Region:          region,
		Transport:       o.Transport,
		TrailingHeaders: true,
	})
	if err != nil {
		return nil, fmt.Errorf("s3-endpoint %q: %w", o.Endpoint, err)
	}
	s := &Store{c: c, bucket: o.Bucket, retention: o.Retention, threshold: o.MultipartThreshold, partSize: o.PartSize}
	if s.threshold <= 0 {
		s.threshold = DefaultMultipartThreshold
	}
	s.threshold = min(s.threshold, maxSinglePut)
	if s.partSize <= 0 {
		s.partSize = DefaultPartSize
	}
	s.partSize = min(max(s.partSize, minPartSize), maxPartSize)
	ok, err := c.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3-endpoint %s: %w", o.Endpoint, oneLine(err))
	}
	if !ok {
		err := c.MakeBucket(ctx, o.Bucket, minio.MakeBucketOptions{Region: region, ObjectLocking: true})
		if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return nil, fmt.Errorf("s3-bucket %q: create with Object Lock: %w", o.Bucket, oneLine(err))
		}
	}
	enabled, _, _, _, err := c.GetObjectLockConfig(ctx, o.Bucket)
	if err != nil || enabled != "Enabled" {
		return nil, fmt.Errorf("s3-bucket %q: %w; use a bucket created with Object Lock (bodycam creates one when the bucket does not exist)", o.Bucket, ErrNoObjectLock)
	}
	s.serverChecks = !o.HashLocally && s.checksChecksums(ctx)
	return s, nil
}

// ServerChecksHashes reports whether uploads with a known hash are checked by
// the server alone (see the package comment).
func (s *Store) ServerChecksHashes() bool { return s.serverChecks }

// checksChecksums sends the server an object whose x-amz-checksum-sha256 is
// not that of its bytes: a server that checks refuses it, and nothing is
// stored. One that stores it does not check, and the stray probe is removed
// if its retention allows.
func (s *Store) checksChecksums(ctx context.Context) bool {
	body := []byte("bodycam checksum probe")
	wrong := sha256.Sum256([]byte("not the probe"))
	key := "bodycam-probe/checksum-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	opts := minio.PutObjectOptions{
		DisableMultipart:     true,
		DisableContentSha256: true,
		UserMetadata:         map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(wrong[:])},
	}
	opts.SetMatchETagExcept("*")
	_, err := s.c.PutObject(ctx, s.bucket, key, bytes.NewReader(body), int64(len(body)), opts)
	if err == nil {
		s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
		return false
	}
	return errors.Is(translate(key, err), storage.ErrHashMismatch)
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	if size > s.threshold {
		return s.putMultipart(ctx, key, r, size, o)
	}
	known := len(o.SHA256) == sha256.Size
	var vr *storage.VerifyingReader
	var err error
	if known && s.serverChecks {
		vr, err = storage.NewSizeReader(r, size)
	} else {
		vr, err = storage.NewVerifyingReader(r, size, o.SHA256)
	}
	if err != nil {
		return storage.Info{}, err
	}
	opts := minio.PutObjectOptions{
		ContentType:      o.ContentType,
		DisableMultipart: true,
	}
	if known {
		// The hash is known: send it up front for the server to check and
		// keep, with an unsigned payload, so the bytes are hashed by the
		// server (and here only when it does not check) rather than three
		// times.
		opts.UserMetadata = map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(o.SHA256)}
		opts.DisableContentSha256 = true
	} else {
		// Otherwise minio-go hashes as it streams and sends the checksum as
		// a trailer for the server to check and keep.
		opts.Checksum = minio.ChecksumSHA256
	}
	opts.SetMatchETagExcept("*")
	now := time.Now().UTC()
	if until := s.retention.Until(now); !until.IsZero() {
		opts.Mode = lockMode(s.retention.Mode)
		opts.RetainUntilDate = until
	}
	up, err := s.c.PutObject(ctx, s.bucket, key, vr, size, opts)
	if err != nil {
		// The reader's own verdict (size, hash) is the more precise one.
		if rerr := vr.Err(); rerr != nil {
			return storage.Info{}, rerr
		}
		return storage.Info{}, translate(key, err)
	}
	sum := vr.SumHex()
	got := b64hex(up.ChecksumSHA256)
	if vr.Sum() == nil {
		sum = hex.EncodeToString(o.SHA256)
		if got == "" {
			return storage.Info{}, fmt.Errorf("storage: %s: the server did not confirm the checksum it was sent", key)
		}
	}
	if got != "" && got != sum {
		return storage.Info{}, fmt.Errorf("%w: server stored %s, sent %s", storage.ErrHashMismatch, got, sum)
	}
	info := storage.Info{Key: key, Size: size, SHA256: sum, Modified: now}
	if !opts.RetainUntilDate.IsZero() {
		info.Mode, info.RetainUntil = s.retention.Mode, opts.RetainUntilDate
	}
	return info, nil
}

func lockMode(m storage.Mode) minio.RetentionMode {
	if m == storage.Governance {
		return minio.Governance
	}
	return minio.Compliance
}

// Get implements storage.Store.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, translate(key, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, translate(key, err)
	}
	return obj, nil
}

// GetRange implements storage.Store with one GET carrying a Range header,
// so the server sends only the range. From an offset past 0 the answer's
// Content-Range must be the range: a server that ignored the header and
// sent the whole object is an error, not a wrong range. A 416 (offset at or
// past the end) is told apart with a HEAD: offset == size is an empty range.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("%w: offset %d, length %d of %s", storage.ErrInvalidRange, offset, length, key)
	}
	if length == 0 {
		// No range to ask for ("bytes=N-(N-1)" is not one): the object
		// must be there and offset within it.
		return s.emptyRange(ctx, key, offset)
	}
	var opts minio.GetObjectOptions
	end := int64(0) // SetRange(offset, 0): to the end
	if length <= math.MaxInt64-offset {
		end = offset + length - 1
	}
	if offset > 0 || end > 0 {
		if err := opts.SetRange(offset, end); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", storage.ErrInvalidRange, key, err)
		}
	}
	body, oi, h, err := minio.Core{Client: s.c}.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			// 416: offset is at or past the end (or the object is empty).
			return s.emptyRange(ctx, key, offset)
		}
		return nil, translate(key, err)
	}
	if oi.Size < 0 {
		body.Close()
		return nil, fmt.Errorf("storage: %s: the server's answer has no Content-Length", key)
	}
	want := min(length, oi.Size) // oi.Size: the answer's Content-Length
	if cr := h.Get("Content-Range"); cr != "" || offset > 0 {
		// A range from 0 may come back whole (an empty object, a server
		// that ignores Range): its first bytes are the range. From
		// anywhere else the answer must be the range asked for.
		start, stop, size, ok := parseContentRange(cr)
		if !ok || start != offset || stop < start || stop >= size || stop-start+1 != oi.Size {
			body.Close()
			return nil, fmt.Errorf("storage: %s: asked for %s, the server answered Content-Range %q", key, opts.Header().Get("Range"), cr)
		}
	}
	return &exactReader{rc: body, left: want}, nil
}

// emptyRange answers a range that holds no bytes: an empty reader when the
// object exists and offset is at most its size.
func (s *Store) emptyRange(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	oi, err := s.stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset > oi.Size {
		return nil, fmt.Errorf("%w: offset %d is past the end of %s (%d bytes)", storage.ErrInvalidRange, offset, key, oi.Size)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// parseContentRange parses "bytes start-stop/size".
func parseContentRange(v string) (start, stop, size int64, ok bool) {
	r, found := strings.CutPrefix(v, "bytes ")
	span, total, found2 := strings.Cut(r, "/")
	a, b, found3 := strings.Cut(span, "-")
	if !found || !found2 || !found3 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	stop, err2 = strconv.ParseInt(b, 10, 64)
	size, err3 = strconv.ParseInt(total, 10, 64)
	return start, stop, size, err1 == nil && err2 == nil && err3 == nil
}

// exactReader passes exactly left bytes through, then io.EOF; a body that
// ends early is io.ErrUnexpectedEOF, never a short range.
type exactReader struct {
	rc   io.ReadCloser
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.rc.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (e *exactReader) Close() error { return e.rc.Close() }

// Stat implements storage.Store.
func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	oi, err := s.stat(ctx, key)
	if err != nil {
		return storage.Info{}, err
	}
	info := storage.Info{Key: key, Size: oi.Size, SHA256: b64hex(oi.ChecksumSHA256), Modified: oi.LastModified.UTC()}
	h := oi.Metadata
	if sum := h.Get("X-Amz-Meta-" + metaSHA256); sum != "" {
		// A multipart object: the server's checksum is of its parts.
		info.SHA256 = sum
	}
	if t, err := time.Parse(time.RFC3339, h.Get("X-Amz-Object-Lock-Retain-Until-Date")); err == nil {
		info.RetainUntil = t.UTC()
		info.Mode = storage.Mode(strings.ToLower(h.Get("X-Amz-Object-Lock-Mode")))
	}
	info.LegalHold = strings.EqualFold(h.Get("X-Amz-Object-Lock-Legal-Hold"), "ON")
	return info, nil
}

func (s *Store) stat(ctx context.Context, key string) (minio.ObjectInfo, error) {
	oi, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return oi, translate(key, err)
	}
	if oi.IsDeleteMarker {
		return oi, fmt.Errorf("%w: %s", storage.ErrNotFound, key)
	}
	return oi, nil
}

// List implements storage.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn ends it early
	for oi := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("storage: list %q: %w", prefix, oneLine(oi.Err))
		}
		if isStaging(oi.Key) {
			continue
		}
		if err := fn(storage.Info{Key: oi.Key, Size: oi.Size, Modified: oi.LastModified.UTC()}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete implements storage.Store. It removes the object's only version, so
// the bytes are really gone (a plain DELETE on a versioned bucket would only
// hide them behind a delete marker); Object Lock makes the server refuse
// while retention or a legal hold lasts.
func (s *Store) Delete(ctx context.Context, key string) error {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return err
	}
	if info.LegalHold {
		return fmt.Errorf("%w: %s has a legal hold", storage.ErrRetained, key)
	}
	if !info.RetainUntil.IsZero() && time.Now().Before(info.RetainUntil) {
		return fmt.Errorf("%w: %s is retained until %s", storage.ErrRetained, key, info.RetainUntil.Format(time.RFC3339))
	}
	oi, err := s.stat(ctx, key)
	if err != nil {
		return err
	}
	err = s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: oi.VersionID})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "AccessDenied" {
			return fmt.Errorf("%w: %s: %v", storage.ErrRetained, key, oneLine(err))
		}
		return translate(key, err)
	}
	return nil
}

// SetLegalHold implements storage.Store.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	if _, err := s.stat(ctx, key); err != nil {
		return err
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	if err := s.c.PutObjectLegalHold(ctx, s.bucket, key, minio.PutObjectLegalHoldOptions{Status: &status}); err != nil {
		return translate(key, err)
	}
	return nil
}

// Ping implements storage.Store.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("storage: %w", oneLine(err))
	}
	if !ok {
		return fmt.Errorf("storage: bucket %q is gone", s.bucket)
	}
	return nil
}

func translate(key string, err error) error {
	if err == nil {
		return nil
	}
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchVersion", "NotFound":
		return fmt.Errorf("%w: %s", storage.ErrNotFound, key)
	case "PreconditionFailed":
		return fmt.Errorf("%w: %s", storage.ErrExists, key)
	case "XAmzContentChecksumMismatch", "BadDigest", "InvalidChecksum":
		return fmt.Errorf("%w: %s: %v", storage.ErrHashMismatch, key, oneLine(err))
	}
	return fmt.Errorf("storage: %s: %w", key, oneLine(err))
}

// b64hex turns an S3 base64 checksum into hex; "" stays "".
func b64hex(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return ""
	}
	return hex.EncodeToString(b)
}

// oneLine keeps an error to one line for logs and start-up failures.
func oneLine(err error) error {
	msg := err.Error()
	if !strings.ContainsAny(msg, "\r\n") {
		return err
	}
	return errors.New(strings.Join(strings.Fields(msg), " "))
}
