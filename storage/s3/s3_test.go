package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"

	"github.com/bodycam/bodycam/internal/testsvc"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/s3"
	"github.com/bodycam/bodycam/storage/storagetest"
)

var server *testsvc.MinIO

func TestMain(m *testing.M) {
	var err error
	server, err = testsvc.StartMinIO()
	if err != nil {
		fmt.Fprintln(os.Stderr, "storage/s3 tests need a real MinIO server:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Close()
	os.Exit(code)
}

var buckets atomic.Int32

func newBucket() string { return fmt.Sprintf("test-%d-%d", time.Now().UnixNano()%1e6, buckets.Add(1)) }

func open(t *testing.T, bucket string, r storage.Retention) *s3.Store {
	t.Helper()
	return openWith(t, s3.Options{Bucket: bucket, Retention: r})
}

// openWith opens a store on the test server with o's other settings.
func openWith(t *testing.T, o s3.Options) *s3.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.Endpoint, o.AccessKey, o.SecretKey = server.Endpoint, server.AccessKey, server.SecretKey
	s, err := s3.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// MinIO checks the checksums it is sent, so known hashes are left to it.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, r storage.Retention) storage.Store {
		s := open(t, newBucket(), r)
		if !s.ServerChecksHashes() {
			t.Fatal("MinIO refuses a wrong x-amz-checksum-sha256, but the store did not notice")
		}
		return s
	})
}

// Hashing every upload here as well (HashLocally) keeps every behaviour.
func TestConformanceHashingLocally(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, r storage.Retention) storage.Store {
		s := openWith(t, s3.Options{Bucket: newBucket(), Retention: r, HashLocally: true})
		if s.ServerChecksHashes() {
			t.Fatal("HashLocally set, but the store leaves hashes to the server")
		}
		return s
	})
}

// multipartStore opens a store that sends objects above
// storagetest.LargeThreshold as multipart uploads.
func multipartStore(t *testing.T, r storage.Retention) storage.Store {
	s := openWith(t, s3.Options{Bucket: newBucket(), Retention: r,
		MultipartThreshold: storagetest.LargeThreshold, PartSize: storagetest.LargePartSize})
	var _ storagetest.IncompleteUploader = s // the suite checks for parts left behind
	return s
}

// Large objects go up in parts: the large-object suite, and the whole suite
// with the threshold lowered so that its 16 to 64 MiB objects (a stream, a
// bytes.Reader, a known hash) go up in parts too.
func TestConformanceMultipart(t *testing.T) {
	t.Run("Large", func(t *testing.T) { storagetest.RunLarge(t, multipartStore) })
	t.Run("All", func(t *testing.T) { storagetest.Run(t, multipartStore) })
}

// A multipart object's parts each carried an x-amz-checksum-sha256 the
// server checked: the server's checksum of the object is the composite of
// the parts' ("…-9"), while Stat gives the whole file's SHA-256 from the
// object's metadata.
func TestMultipartChecksums(t *testing.T) {
	bucket := newBucket()
	s := openWith(t, s3.Options{Bucket: bucket, MultipartThreshold: storagetest.LargeThreshold, PartSize: storagetest.LargePartSize})
	ctx := context.Background()
	data := make([]byte, storagetest.LargeSize)
	for i := range data {
		data[i] = byte(i * 13 / 7)
	}
	want := sha256.Sum256(data)
	if _, err := s.Put(ctx, "d/r/big.mp4", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: want[:]}); err != nil {
		t.Fatal(err)
	}
	c, _ := minio.New(server.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(server.AccessKey, server.SecretKey, "")})
	oi, err := c.StatObject(ctx, bucket, "d/r/big.mp4", minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(oi.ChecksumSHA256, "-9") {
		t.Fatalf("server checksum %q, want a composite of 9 parts", oi.ChecksumSHA256)
	}
	if got := oi.Metadata.Get("X-Amz-Meta-Bodycam-Sha256"); got != hex.EncodeToString(want[:]) {
		t.Fatalf("x-amz-meta-bodycam-sha256 = %q, want %x", got, want)
	}
	attrs, err := c.GetObjectAttributes(ctx, bucket, "d/r/big.mp4", minio.ObjectAttributesOptions{MaxParts: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(attrs.ObjectParts.Parts); n != 9 {
		t.Fatalf("%d parts, want 9", n)
	}
	for i, p := range attrs.ObjectParts.Parts {
		off := int64(i) * storagetest.LargePartSize
		sum := sha256.Sum256(data[off:min(off+storagetest.LargePartSize, int64(len(data)))])
		if p.ChecksumSHA256 != base64.StdEncoding.EncodeToString(sum[:]) {
			t.Errorf("part %d: checksum %q, want the SHA-256 of its bytes", p.PartNumber, p.ChecksumSHA256)
		}
	}
}

// flipPartByte flips one byte of the data of part 2 of every multipart
// upload on its way to the server (after it was hashed here).
type flipPartByte struct{}

func (flipPartByte) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "2" {
		r = r.Clone(r.Context())
		r.Body = &flipAt{ReadCloser: r.Body, at: 100000}
	}
	return http.DefaultTransport.RoundTrip(r)
}

type flipAt struct {
	io.ReadCloser
	n, at int64
}

func (f *flipAt) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if f.at >= f.n && f.at < f.n+int64(n) {
		p[f.at-f.n] ^= 0x20
	}
	f.n += int64(n)
	return n, err
}

// The server checks each part's checksum: a byte flipped in transit is
// refused (ErrHashMismatch), and the upload is aborted, leaving nothing.
func TestMultipartPartCorruptedInTransit(t *testing.T) {
	s := openWith(t, s3.Options{Bucket: newBucket(), Transport: flipPartByte{},
		MultipartThreshold: storagetest.LargeThreshold, PartSize: storagetest.LargePartSize})
	ctx := context.Background()
	data := make([]byte, storagetest.LargeSize)
	for i := range data {
		data[i] = byte(i * 11 / 5)
	}
	want := sha256.Sum256(data)
	for _, o := range []storage.PutOptions{{SHA256: want[:]}, {}} {
		_, err := s.Put(ctx, "d/r/flipped.mp4", bytes.NewReader(data), int64(len(data)), o)
		if !errors.Is(err, storage.ErrHashMismatch) {
			t.Fatalf("Put with a byte flipped in part 2: %v, want ErrHashMismatch", err)
		}
		if _, err := s.Stat(ctx, "d/r/flipped.mp4"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after a refused Put, Stat: %v, want ErrNotFound", err)
		}
		if keys, err := s.IncompleteUploads(ctx, ""); err != nil || len(keys) != 0 {
			t.Fatalf("incomplete uploads after a refused Put: %v, %v", keys, err)
		}
	}
}

// stripChecksums is a server that ignores checksums: the header never
// reaches MinIO (the request is signed again without it).
type stripChecksums struct{}

func (stripChecksums) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Checksum-Sha256") == "" {
		return http.DefaultTransport.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Del("X-Amz-Checksum-Sha256")
	r.Header.Del("Authorization")
	return http.DefaultTransport.RoundTrip(signer.SignV4(*r, server.AccessKey, server.SecretKey, "", "us-east-1"))
}

// Against a server that does not check checksums, Open notices (its probe
// is stored, then removed) and every upload is hashed here: a wrong hash
// fails and leaves nothing behind.
func TestServerThatIgnoresChecksums(t *testing.T) {
	bucket := newBucket()
	s := openWith(t, s3.Options{Bucket: bucket, Transport: stripChecksums{}})
	if s.ServerChecksHashes() {
		t.Fatal("the server ignores checksums, but the store leaves hashes to it")
	}
	c, err := minio.New(server.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(server.AccessKey, server.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		t.Errorf("left in the bucket: %s %v", o.Key, o.Err)
	}
	body := []byte("segment bytes")
	wrong := sha256.Sum256([]byte("other bytes"))
	_, err = s.Put(context.Background(), "d/r/1.m4s", bytes.NewReader(body), int64(len(body)), storage.PutOptions{SHA256: wrong[:]})
	if !errors.Is(err, storage.ErrHashMismatch) {
		t.Fatalf("Put with a wrong hash: %v, want ErrHashMismatch", err)
	}
	if _, err := s.Stat(context.Background(), "d/r/1.m4s"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a refused Put: %v, want ErrNotFound", err)
	}
	right := sha256.Sum256(body)
	info, err := s.Put(context.Background(), "d/r/1.m4s", bytes.NewReader(body), int64(len(body)), storage.PutOptions{SHA256: right[:]})
	if err != nil || info.SHA256 != hex.EncodeToString(right[:]) {
		t.Fatalf("Put with the right hash: %+v, %v", info, err)
	}
}

// A bucket made without Object Lock is refused with an error naming the setting.
func TestRefusesBucketWithoutObjectLock(t *testing.T) {
	c, err := minio.New(server.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(server.AccessKey, server.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	bucket := newBucket()
	if err := c.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = s3.Open(context.Background(), s3.Options{
		Endpoint: server.Endpoint, AccessKey: server.AccessKey, SecretKey: server.SecretKey, Bucket: bucket,
	})
	if !errors.Is(err, s3.ErrNoObjectLock) || !strings.Contains(err.Error(), "s3-bucket") {
		t.Fatalf("Open on a bucket without Object Lock: %v", err)
	}
}

// Open creates a missing bucket with Object Lock on.
func TestCreatesBucketWithObjectLock(t *testing.T) {
	bucket := newBucket()
	open(t, bucket, storage.Retention{})
	c, _ := minio.New(server.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(server.AccessKey, server.SecretKey, "")})
	enabled, _, _, _, err := c.GetObjectLockConfig(context.Background(), bucket)
	if err != nil || enabled != "Enabled" {
		t.Fatalf("object lock = %q, %v", enabled, err)
	}
}

// The server itself, not only bodycam, refuses to delete or overwrite an
// object under compliance retention: go around the Store with a raw client.
func TestComplianceEnforcedByServer(t *testing.T) {
	bucket := newBucket()
	s := open(t, bucket, storage.Retention{Mode: storage.Compliance, Period: time.Hour})
	ctx := context.Background()
	data := "evidence under compliance retention"
	if _, err := s.Put(ctx, "dev/rec/1.m4s", strings.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ := minio.New(server.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(server.AccessKey, server.SecretKey, "")})
	oi, err := c.StatObject(ctx, bucket, "dev/rec/1.m4s", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.RemoveObject(ctx, bucket, "dev/rec/1.m4s", minio.RemoveObjectOptions{VersionID: oi.VersionID, GovernanceBypass: true})
	if err == nil {
		t.Fatal("root credentials deleted a compliance-retained object version")
	}
	if err := c.PutObjectRetention(ctx, bucket, "dev/rec/1.m4s", minio.PutObjectRetentionOptions{
		VersionID: oi.VersionID, Mode: ptr(minio.Compliance), RetainUntilDate: ptr(time.Now().Add(time.Minute)), GovernanceBypass: true,
	}); err == nil {
		t.Fatal("compliance retention was shortened")
	}
	if err := s.Delete(ctx, "dev/rec/1.m4s"); !errors.Is(err, storage.ErrRetained) {
		t.Fatalf("Store.Delete: %v, want ErrRetained", err)
	}
	rc, err := s.Get(ctx, "dev/rec/1.m4s")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 100)
	n, _ := rc.Read(buf)
	if string(buf[:n]) != data[:n] {
		t.Fatalf("content changed: %q", buf[:n])
	}
}

func ptr[T any](v T) *T { return &v }

// countingTransport counts the bytes of every answer's body that cross it.
type countingTransport struct{ body atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.body}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// The server sends only the range: 1,000 ranged reads of 14 bytes at
// 3 MiB into a 4 MiB object (the shape of the multi-range attack of issue
// 10, one small range repeated) bring 14,000 bytes of bodies over the
// wire, not the 3 GiB that reading each from the start would.
func TestGetRangeSendsOnlyTheRange(t *testing.T) {
	ct := &countingTransport{}
	s := openWith(t, s3.Options{Bucket: newBucket(), Transport: ct})
	ctx := context.Background()
	const size, off, n, times = 4 << 20, 3 << 20, 14, 1000
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	if _, err := s.Put(ctx, "d/r/000001.m4s", bytes.NewReader(data), size, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	before := ct.body.Load()
	for range times {
		rc, err := s.GetRange(ctx, "d/r/000001.m4s", off, n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data[off:off+n]) {
			t.Fatalf("GetRange: %q, %v", got, err)
		}
	}
	if got := ct.body.Load() - before; got != times*n {
		t.Fatalf("%d ranged reads of %d bytes brought %d bytes of answers over the wire, want %d", times, n, got, times*n)
	}
}

// ignoreRange is a server that ignores Range headers and answers with the
// whole object (the header never reaches MinIO; the request is signed
// again without it).
type ignoreRange struct{}

func (ignoreRange) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Range") == "" {
		return http.DefaultTransport.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Del("Range")
	r.Header.Del("Authorization")
	return http.DefaultTransport.RoundTrip(signer.SignV4(*r, server.AccessKey, server.SecretKey, "", "us-east-1"))
}

// Against a server that ignores Range, a range from an offset is an error
// (never the object's first bytes passed off as the range); a range from 0
// is the first bytes of the whole answer, cut to the length.
func TestGetRangeServerIgnoresRange(t *testing.T) {
	s := openWith(t, s3.Options{Bucket: newBucket(), Transport: ignoreRange{}})
	ctx := context.Background()
	data := []byte("0123456789abcdef")
	if _, err := s.Put(ctx, "d/r/1.m4s", bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if rc, err := s.GetRange(ctx, "d/r/1.m4s", 4, 4); err == nil || !strings.Contains(err.Error(), "Content-Range") {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("a range from 4, answered whole: %v", err)
	}
	rc, err := s.GetRange(ctx, "d/r/1.m4s", 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "0123" {
		t.Fatalf("a range from 0, answered whole: %q, %v", got, err)
	}
}
