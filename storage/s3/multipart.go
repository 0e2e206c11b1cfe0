package s3

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bodycam/bodycam/storage"
)

// Sizes of multipart uploads (see Options.MultipartThreshold).
const (
	DefaultMultipartThreshold = 64 << 20
	DefaultPartSize           = 16 << 20
	minPartSize               = 5 << 20 // S3's smallest part but the last
	maxPartSize               = 5 << 30 // S3's largest part
	maxParts                  = 10000   // S3's most parts per upload
	maxSinglePut              = 5 << 30 // S3's largest single PUT
	// metaSHA256 is the user metadata (x-amz-meta-bodycam-sha256) holding a
	// multipart object's whole SHA-256: its server checksum is one of part
	// checksums ("…-N"), not the file's hash.
	metaSHA256 = "Bodycam-Sha256"
	// stagingPrefix holds the upload of a stream whose hash is only known at
	// its end (see putStaged). Keys never start with a dot (ValidateKey),
	// so these never collide with an object's and List leaves them out.
	stagingPrefix = ".bodycam-staging/"
)

// partSizeFor returns the part size for an object of size bytes: the
// configured size, grown to whole MiB when size would need more than
// 10,000 parts.
func (s *Store) partSizeFor(size int64) int64 {
	p := s.partSize
	if need := (size + maxParts - 1) / maxParts; need > p {
		p = (need + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return p
}

// putMultipart stores an object above the multipart threshold. Its whole
// SHA-256 goes in the object's metadata when the upload starts, so it must
// be known by then: given by the caller, hashed here first from a reader
// that can be read twice (a file), or else the bytes go through a staging
// upload (putStaged). In every case the bytes sent are hashed here as they
// stream (the server checks each part, not the whole), and the last part
// fails, aborting the upload, if the whole hash is not the one announced.
func (s *Store) putMultipart(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error) {
	if len(o.SHA256) != 0 && len(o.SHA256) != sha256.Size {
		_, err := storage.NewVerifyingReader(r, size, o.SHA256)
		return storage.Info{}, err
	}
	// A 4 GiB upload that could only be refused at its end is refused now;
	// If-None-Match on the completion is what guarantees write-once.
	if _, err := s.stat(ctx, key); err == nil {
		return storage.Info{}, fmt.Errorf("%w: %s", storage.ErrExists, key)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return storage.Info{}, err
	}
	want := o.SHA256
	if len(want) == 0 {
		sum, ok, err := hashAt(ctx, r, size)
		if err != nil {
			return storage.Info{}, err
		}
		if !ok {
			return s.putStaged(ctx, key, r, size, o)
		}
		want = sum
	}
	vr, err := storage.NewVerifyingReader(r, size, want)
	if err != nil {
		return storage.Info{}, err
	}
	now := time.Now().UTC()
	opts := s.objectOptions(o, hex.EncodeToString(want), now)
	if _, err := s.multipart(ctx, key, vr, size, opts, true); err != nil {
		if rerr := vr.Err(); rerr != nil {
			return storage.Info{}, rerr
		}
		return storage.Info{}, translate(key, err)
	}
	if !vr.Complete() {
		return storage.Info{}, fmt.Errorf("storage: %s: upload completed before every byte was checked", key)
	}
	return s.info(key, size, vr.SumHex(), now, opts), nil
}

// objectOptions are the options of the upload that makes the object: its
// content type, whole SHA-256 and retention.
func (s *Store) objectOptions(o storage.PutOptions, sumHex string, now time.Time) minio.PutObjectOptions {
	opts := minio.PutObjectOptions{
		ContentType:  o.ContentType,
		UserMetadata: map[string]string{metaSHA256: sumHex},
	}
	if until := s.retention.Until(now); !until.IsZero() {
		opts.Mode = lockMode(s.retention.Mode)
		opts.RetainUntilDate = until
	}
	return opts
}

func (s *Store) info(key string, size int64, sum string, now time.Time, opts minio.PutObjectOptions) storage.Info {
	info := storage.Info{Key: key, Size: size, SHA256: sum, Modified: now}
	if !opts.RetainUntilDate.IsZero() {
		info.Mode, info.RetainUntil = s.retention.Mode, opts.RetainUntilDate
	}
	return info
}

// hashAt hashes size bytes of r from its current offset when r can be read
// again from there (an *os.File, a bytes.Reader): ok is false otherwise. The
// read leaves r's offset where it was.
func hashAt(ctx context.Context, r io.Reader, size int64) (sum []byte, ok bool, err error) {
	ra, isAt := r.(io.ReaderAt)
	sk, isSeeker := r.(io.Seeker)
	if !isAt || !isSeeker {
		return nil, false, nil
	}
	pos, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false, nil // a pipe or socket: not readable twice
	}
	vr, err := storage.NewVerifyingReader(ctxReader{ctx, io.NewSectionReader(ra, pos, size+1)}, size, nil)
	if err != nil {
		return nil, false, err
	}
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return nil, false, err
	}
	if err := vr.Err(); err != nil {
		return nil, false, err
	}
	return vr.Sum(), true, nil
}

// ctxReader ends a read loop that has no request to carry the context.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// putStaged stores a stream above the threshold whose hash nobody knows
// before its last byte: it is uploaded (parts checked as always, hashed
// here) to a staging key, then copied by the server, part by part, into the
// object, whose metadata now carries the hash; the staging upload is then
// removed. A crash between the two leaves a staging object without
// retention under .bodycam-staging/, which an operator may delete.
func (s *Store) putStaged(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error) {
	vr, err := storage.NewVerifyingReader(r, size, nil)
	if err != nil {
		return storage.Info{}, err
	}
	var rnd [12]byte
	rand.Read(rnd[:])
	stage := stagingPrefix + hex.EncodeToString(rnd[:])
	up, err := s.multipart(ctx, stage, vr, size, minio.PutObjectOptions{ContentType: "application/octet-stream"}, true)
	if err != nil {
		if rerr := vr.Err(); rerr != nil {
			return storage.Info{}, rerr
		}
		return storage.Info{}, translate(key, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		s.c.RemoveObject(rctx, s.bucket, stage, minio.RemoveObjectOptions{VersionID: up.VersionID})
	}()
	if !vr.Complete() {
		return storage.Info{}, fmt.Errorf("storage: %s: upload completed before every byte was checked", key)
	}
	now := time.Now().UTC()
	opts := s.objectOptions(o, vr.SumHex(), now)
	if err := s.copyParts(ctx, stage, key, size, opts); err != nil {
		return storage.Info{}, translate(key, err)
	}
	return s.info(key, size, vr.SumHex(), now, opts), nil
}

// copyParts makes key from the staged object src with a server-side
// multipart copy, completed only if key does not exist.
func (s *Store) copyParts(ctx context.Context, src, key string, size int64, opts minio.PutObjectOptions) (err error) {
	core := minio.Core{Client: s.c}
	id, err := core.NewMultipartUpload(ctx, s.bucket, key, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.abort(ctx, key, id)
		}
	}()
	psize := s.partSizeFor(size)
	var parts []minio.CompletePart
	for n, off := 1, int64(0); off < size; n, off = n+1, off+psize {
		p, err := core.CopyObjectPart(ctx, s.bucket, src, s.bucket, key, id, n, off, min(psize, size-off), nil)
		if err != nil {
			return err
		}
		parts = append(parts, p)
	}
	var done minio.PutObjectOptions
	done.SetMatchETagExcept("*")
	_, err = core.CompleteMultipartUpload(ctx, s.bucket, key, id, parts, done)
	return err
}

// multipart uploads size bytes of body to key in parts read one after the
// other straight from body (nothing is buffered): each part carries an
// x-amz-checksum-sha256, computed as it streams and sent as a trailer,
// that the server checks before it keeps the part. The upload is completed
// with If-None-Match: * when writeOnce, so it never replaces an object;
// any failure, a cancelled ctx included, aborts it, so no parts are left.
func (s *Store) multipart(ctx context.Context, key string, body io.Reader, size int64, opts minio.PutObjectOptions, writeOnce bool) (up minio.UploadInfo, err error) {
	core := minio.Core{Client: s.c}
	init := opts
	init.UserMetadata = map[string]string{"x-amz-checksum-algorithm": "SHA256"}
	for k, v := range opts.UserMetadata {
		init.UserMetadata[k] = v
	}
	id, err := core.NewMultipartUpload(ctx, s.bucket, key, init)
	if err != nil {
		return up, err
	}
	defer func() {
		if err != nil {
			s.abort(ctx, key, id)
		}
	}()
	psize := s.partSizeFor(size)
	if (size+psize-1)/psize > maxParts || psize > maxPartSize {
		return up, fmt.Errorf("storage: %s: %d bytes is more than S3 takes in one object", key, size)
	}
	var parts []minio.CompletePart
	var sums []byte // the parts' SHA-256s, for the composite checksum
	for n, off := 1, int64(0); off < size; n, off = n+1, off+psize {
		length := min(psize, size-off)
		ph := &partHasher{r: io.LimitReader(body, length), h: sha256.New(), trailer: http.Header{}}
		ph.trailer.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(ph.h.Sum(nil)))
		p, err := core.PutObjectPart(ctx, s.bucket, key, id, n, ph, length, minio.PutObjectPartOptions{
			Trailer:              ph.trailer,
			DisableContentSha256: true,
		})
		if err != nil {
			return up, err
		}
		if !ph.done || ph.n != length {
			return up, fmt.Errorf("storage: %s: part %d sent %d of %d bytes", key, n, ph.n, length)
		}
		if got, sent := p.ChecksumSHA256, ph.trailer.Get("X-Amz-Checksum-Sha256"); got != sent {
			return up, fmt.Errorf("%w: %s: part %d: server has checksum %q, sent %q", storage.ErrHashMismatch, key, n, got, sent)
		}
		sums = append(sums, ph.sum...)
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag, ChecksumSHA256: p.ChecksumSHA256})
	}
	var done minio.PutObjectOptions
	if writeOnce {
		done.SetMatchETagExcept("*")
	}
	up, err = core.CompleteMultipartUpload(ctx, s.bucket, key, id, parts, done)
	if err != nil {
		return up, err
	}
	// The server's checksum of the whole is the SHA-256 of the parts'.
	comp := sha256.Sum256(sums)
	want := fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(comp[:]), len(parts))
	if got := up.ChecksumSHA256; got != "" && got != want {
		return up, fmt.Errorf("%w: %s: the server's checksum of the parts is %s, want %s", storage.ErrHashMismatch, key, got, want)
	}
	return up, nil
}

// abort ends an upload that will not be completed, so its parts do not
// linger (also when ctx is what ended it).
func (s *Store) abort(ctx context.Context, key, id string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	minio.Core{Client: s.c}.AbortMultipartUpload(actx, s.bucket, key, id)
}

// IncompleteUploads lists the keys of multipart uploads under prefix that
// were neither completed nor aborted (a crash mid-upload). Put aborts
// every upload it does not complete, so there should be none.
func (s *Store) IncompleteUploads(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, prefix, true) {
		if u.Err != nil {
			return nil, fmt.Errorf("storage: incomplete uploads under %q: %w", prefix, oneLine(u.Err))
		}
		keys = append(keys, u.Key)
	}
	return keys, nil
}

// partHasher passes a part through, hashing it, and sets the part's
// checksum trailer when it ends (minio-go sends trailers after the body).
type partHasher struct {
	r       io.Reader
	h       hash.Hash
	n       int64
	sum     []byte
	done    bool
	trailer http.Header
}

func (p *partHasher) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.h.Write(b[:n])
	p.n += int64(n)
	if err == io.EOF && !p.done {
		p.done = true
		p.sum = p.h.Sum(nil)
		p.trailer.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(p.sum))
	}
	return n, err
}

// isStaging reports a key of this package's own bookkeeping.
func isStaging(key string) bool { return strings.HasPrefix(key, ".") }
