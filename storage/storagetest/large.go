package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/storage"
)

// Sizes for RunLarge. A backend that writes large objects in parts (S3
// multipart) opens its stores for RunLarge so that objects above
// LargeThreshold go up in parts of LargePartSize: LargeSize is then nine
// parts, the last one short, and the suite stays fast.
const (
	LargeThreshold = 8 << 20
	LargePartSize  = 5 << 20 // S3's smallest part
	LargeSize      = 8*LargePartSize + 1234
	// BoundedSize is the object of the memory test.
	BoundedSize = 512 << 20
)

// IncompleteUploader is a backend whose writes can leave partial uploads
// behind (S3 multipart). After every refused or failed large write the
// suite checks that none is left.
type IncompleteUploader interface {
	IncompleteUploads(ctx context.Context, prefix string) ([]string, error)
}

// RunLarge runs the large-object behaviours: objects above the backend's
// single-write size (see LargeThreshold) from every kind of reader, with the
// same contract as small ones.
func RunLarge(t *testing.T, open Opener) {
	none := storage.Retention{Mode: storage.Off}
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
		ret  storage.Retention
	}{
		{"KnownHash", testLargeKnownHash, none},
		{"FromFile", testLargeFromFile, none},
		{"FromStream", testLargeFromStream, none},
		{"HashMismatch", testLargeHashMismatch, none},
		{"ShortAndCanceled", testLargeShortAndCanceled, none},
		{"WriteOnce", testLargeWriteOnce, none},
		{"WriteOnceRace", testLargeWriteOnceRace, none},
		{"Retention", testLargeRetention, storage.Retention{Mode: storage.Compliance, Period: time.Hour}},
		{"BoundedMemory", testLargeBoundedMemory, none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t, tc.ret))
		})
	}
}

func streamSum(t *testing.T, seed byte, n int64) []byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, newStream(seed, n)); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

// checkLarge reads key back whole and across a part boundary and checks
// Stat against the stream it was written from.
func checkLarge(t *testing.T, s storage.Store, key string, seed byte, size int64, want []byte) {
	t.Helper()
	st, err := s.Stat(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.SHA256 != hex.EncodeToString(want) {
		t.Fatalf("Stat(%s) = size %d sha %s, want %d %x (the whole object's SHA-256)", key, st.Size, st.SHA256, size, want)
	}
	rc, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if n, err := io.Copy(h, rc); err != nil || n != size {
		t.Fatalf("Get(%s): %d bytes, %v", key, n, err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("Get(%s): the bytes read back are not the bytes written", key)
	}
	off := int64(LargePartSize - 100)
	all, err := io.ReadAll(io.LimitReader(newStream(seed, size), off+200))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := getRange(t, s, key, off, 200); err != nil || !bytes.Equal(got, all[off:]) {
		t.Fatalf("GetRange across the first part boundary: %v", err)
	}
}

// noIncomplete fails when the backend left a partial upload under prefix.
func noIncomplete(t *testing.T, s storage.Store, prefix string) {
	t.Helper()
	iu, ok := s.(IncompleteUploader)
	if !ok {
		return
	}
	keys, err := iu.IncompleteUploads(ctx(t), prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Fatalf("incomplete uploads left behind: %v", keys)
	}
}

// listed returns every key List shows.
func listed(t *testing.T, s storage.Store) []string {
	t.Helper()
	var keys []string
	if err := s.List(ctx(t), "", func(i storage.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// The hash is given: the object streams from a reader read once.
func testLargeKnownHash(t *testing.T, s storage.Store) {
	want := streamSum(t, 11, LargeSize)
	info, err := s.Put(ctx(t), "big/known", newStream(11, LargeSize), LargeSize, storage.PutOptions{SHA256: want, ContentType: "video/mp4"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != LargeSize || info.SHA256 != hex.EncodeToString(want) {
		t.Fatalf("Put info = %+v, want sha %x", info, want)
	}
	checkLarge(t, s, "big/known", 11, LargeSize, want)
	noIncomplete(t, s, "")
}

// The hash is not given and the reader is a file, positioned past its
// start: its bytes from there are the object.
func testLargeFromFile(t *testing.T, s storage.Store) {
	f, err := os.Create(filepath.Join(t.TempDir(), "recording.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("not part of the object"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, newStream(12, LargeSize)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(int64(len("not part of the object")), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	want := streamSum(t, 12, LargeSize)
	info, err := s.Put(ctx(t), "big/file", f, LargeSize, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != hex.EncodeToString(want) {
		t.Fatalf("Put info = %+v, want sha %x", info, want)
	}
	checkLarge(t, s, "big/file", 12, LargeSize, want)
	noIncomplete(t, s, "")
}

// The hash is not given and the reader can be read only once: the hash is
// still the whole object's, and nothing but the object is listed.
func testLargeFromStream(t *testing.T, s storage.Store) {
	want := streamSum(t, 13, LargeSize)
	info, err := s.Put(ctx(t), "big/stream", io.MultiReader(newStream(13, LargeSize)), LargeSize, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != hex.EncodeToString(want) {
		t.Fatalf("Put info = %+v, want sha %x", info, want)
	}
	checkLarge(t, s, "big/stream", 13, LargeSize, want)
	if keys := listed(t, s); len(keys) != 1 || keys[0] != "big/stream" {
		t.Fatalf("List = %v, want only big/stream", keys)
	}
	noIncomplete(t, s, "")
}

// A wrong expected hash: ErrHashMismatch, nothing stored, no parts left;
// the right one then stores the object.
func testLargeHashMismatch(t *testing.T, s storage.Store) {
	wrong := streamSum(t, 15, LargeSize)
	_, err := s.Put(ctx(t), "big/bad", newStream(14, LargeSize), LargeSize, storage.PutOptions{SHA256: wrong})
	if !errors.Is(err, storage.ErrHashMismatch) {
		t.Fatalf("Put with a wrong hash: %v, want ErrHashMismatch", err)
	}
	if _, err := s.Stat(ctx(t), "big/bad"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a refused Put, Stat: %v, want ErrNotFound", err)
	}
	if keys := listed(t, s); len(keys) != 0 {
		t.Fatalf("after a refused Put, List = %v", keys)
	}
	noIncomplete(t, s, "")
	right := streamSum(t, 14, LargeSize)
	if _, err := s.Put(ctx(t), "big/bad", newStream(14, LargeSize), LargeSize, storage.PutOptions{SHA256: right}); err != nil {
		t.Fatalf("Put with the right hash after a refused one: %v", err)
	}
	checkLarge(t, s, "big/bad", 14, LargeSize, right)
}

// A source shorter than declared, and a context canceled after the first
// parts: an error, nothing stored, no parts left.
func testLargeShortAndCanceled(t *testing.T, s storage.Store) {
	_, err := s.Put(ctx(t), "big/short", newStream(16, LargeSize-1), LargeSize, storage.PutOptions{})
	if !errors.Is(err, storage.ErrSizeMismatch) {
		t.Fatalf("Put of a short source: %v, want ErrSizeMismatch", err)
	}
	c, cancel := context.WithCancel(ctx(t))
	r := &cancelAfter{r: newStream(17, LargeSize), n: 2*LargePartSize + 1, cancel: cancel}
	if _, err := s.Put(c, "big/canceled", r, LargeSize, storage.PutOptions{}); err == nil {
		t.Fatal("Put with a context canceled mid-upload succeeded")
	}
	for _, key := range []string{"big/short", "big/canceled"} {
		if _, err := s.Stat(ctx(t), key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after a failed Put, Stat(%s): %v, want ErrNotFound", key, err)
		}
	}
	noIncomplete(t, s, "")
}

// A second large Put of a key, from a stream or with a known hash: ErrExists,
// and the first object as it was.
func testLargeWriteOnce(t *testing.T, s storage.Store) {
	want := streamSum(t, 18, LargeSize)
	if _, err := s.Put(ctx(t), "big/once", newStream(18, LargeSize), LargeSize, storage.PutOptions{SHA256: want}); err != nil {
		t.Fatal(err)
	}
	other := streamSum(t, 19, LargeSize)
	for _, o := range []storage.PutOptions{{SHA256: other}, {}} {
		_, err := s.Put(ctx(t), "big/once", newStream(19, LargeSize), LargeSize, o)
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second Put: %v, want ErrExists", err)
		}
	}
	// Small over large too.
	if _, err := s.Put(ctx(t), "big/once", bytes.NewReader([]byte("forgery")), 7, storage.PutOptions{}); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("small Put over a large object: %v, want ErrExists", err)
	}
	checkLarge(t, s, "big/once", 18, LargeSize, want)
	noIncomplete(t, s, "")
}

// Writers of one large key at once all find it free when they start; still
// exactly one wins, the others get ErrExists, and no parts are left.
func testLargeWriteOnceRace(t *testing.T, s storage.Store) {
	const n = 3
	var wins, exists atomic.Int32
	var winner atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			seed := byte(30 + i)
			_, err := s.Put(ctx(t), "big/race", newStream(seed, LargeSize), LargeSize, storage.PutOptions{})
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(int32(seed))
			case errors.Is(err, storage.ErrExists):
				exists.Add(1)
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || exists.Load() != n-1 {
		t.Fatalf("wins=%d exists=%d, want 1 and %d", wins.Load(), exists.Load(), n-1)
	}
	seed := byte(winner.Load())
	checkLarge(t, s, "big/race", seed, LargeSize, streamSum(t, seed, LargeSize))
	noIncomplete(t, s, "")
}

// Retention applies to a large object as to a small one.
func testLargeRetention(t *testing.T, s storage.Store) {
	want := streamSum(t, 20, LargeSize)
	info, err := s.Put(ctx(t), "big/kept", newStream(20, LargeSize), LargeSize, storage.PutOptions{SHA256: want})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(ctx(t), "big/kept")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != storage.Compliance || !st.RetainUntil.After(time.Now().Add(50*time.Minute)) {
		t.Fatalf("Stat = %+v, want compliance retention for the hour", st)
	}
	if info.Mode != storage.Compliance || info.RetainUntil.IsZero() {
		t.Fatalf("Put info = %+v, want the retention", info)
	}
	if err := s.Delete(ctx(t), "big/kept"); !errors.Is(err, storage.ErrRetained) {
		t.Fatalf("Delete under retention: %v, want ErrRetained", err)
	}
	checkLarge(t, s, "big/kept", 20, LargeSize, want)
}

// testLargeBoundedMemory writes BoundedSize bytes from a generator (never
// held in memory) and samples the heap while it does: it must not grow by
// more than a few parts, whatever the object's size.
func testLargeBoundedMemory(t *testing.T, s storage.Store) {
	const budget = 32 << 20
	want := streamSum(t, 21, BoundedSize)
	runtime.GC()
	base := heapBytes()
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapBytes(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	info, err := s.Put(ctx(t), "big/bounded", newStream(21, BoundedSize), BoundedSize, storage.PutOptions{SHA256: want})
	runtime.ReadMemStats(&ms1)
	close(done)
	<-sampled
	if err != nil {
		t.Fatalf("Put %d MiB: %v", BoundedSize>>20, err)
	}
	if info.SHA256 != hex.EncodeToString(want) {
		t.Fatalf("info = %+v", info)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("%d MiB Put: heap grew by at most %.1f MiB; %.1f MiB allocated in all", BoundedSize>>20, float64(grew)/(1<<20), float64(ms1.TotalAlloc-ms0.TotalAlloc)/(1<<20))
	if grew > budget {
		t.Fatalf("heap grew by %d MiB during a %d MiB Put (budget %d MiB): the upload is buffered, not streamed", grew>>20, BoundedSize>>20, budget>>20)
	}
	st, err := s.Stat(ctx(t), "big/bounded")
	if err != nil || st.SHA256 != hex.EncodeToString(want) || st.Size != BoundedSize {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
}
