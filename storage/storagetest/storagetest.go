// Package storagetest is the conformance suite every storage.Store backend
// runs: the directory backend and a real MinIO server alike.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/storage"
)

// Opener returns a fresh, empty store that applies retention r to what it
// writes. Each call must be independent of the others.
type Opener func(t *testing.T, r storage.Retention) storage.Store

// Run runs every behaviour of the storage contract against the backend.
func Run(t *testing.T, open Opener) {
	none := storage.Retention{Mode: storage.Off}
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
		ret  storage.Retention
	}{
		{"RoundTrip", testRoundTrip, none},
		{"EmptyObject", testEmptyObject, none},
		{"NotFound", testNotFound, none},
		{"InvalidKey", testInvalidKey, none},
		{"WriteOnce", testWriteOnce, none},
		{"WriteOnceRace", testWriteOnceRace, none},
		{"HashMismatch", testHashMismatch, none},
		{"SizeMismatch", testSizeMismatch, none},
		{"CanceledPut", testCanceledPut, none},
		{"ListPrefix", testListPrefix, none},
		{"LegalHoldForbidsDelete", testLegalHold, none},
		{"ConcurrentWriters", testConcurrentWriters, none},
		{"LargeObjectBoundedMemory", testLargeObject, none},
		{"RangeEdges", testRangeEdges, none},
		{"RangeExact", testRangeExact, none},
		{"RangeReadsOnlyTheRange", testRangeReadsOnlyTheRange, none},
		{"RetentionForbidsDelete", testRetention, storage.Retention{Mode: storage.Compliance, Period: 3 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t, tc.ret))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func put(t *testing.T, s storage.Store, key string, data []byte) storage.Info {
	t.Helper()
	info, err := s.Put(ctx(t), key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{})
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	return info
}

func get(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func testRoundTrip(t *testing.T, s storage.Store) {
	data := []byte("segment bytes \x00\x01\x02 exactly as received")
	info := put(t, s, "dev-1/rec-1/000001.m4s", data)
	if info.Size != int64(len(data)) || info.SHA256 != sum(data) || info.Key != "dev-1/rec-1/000001.m4s" {
		t.Fatalf("Put info = %+v, want size %d sha %s", info, len(data), sum(data))
	}
	if got := get(t, s, "dev-1/rec-1/000001.m4s"); !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, want %q", got, data)
	}
	st, err := s.Stat(ctx(t), "dev-1/rec-1/000001.m4s")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != info.Size || st.SHA256 != info.SHA256 {
		t.Fatalf("Stat = %+v, want size %d sha %s", st, info.Size, info.SHA256)
	}
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testEmptyObject(t *testing.T, s storage.Store) {
	info := put(t, s, "empty", nil)
	if info.Size != 0 || info.SHA256 != sum(nil) {
		t.Fatalf("info = %+v", info)
	}
	if got := get(t, s, "empty"); len(got) != 0 {
		t.Fatalf("Get = %q", got)
	}
}

func testNotFound(t *testing.T, s storage.Store) {
	if _, err := s.Get(ctx(t), "no/such/key"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx(t), "no/such/key"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx(t), "no/such/key"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete: %v, want ErrNotFound", err)
	}
	if err := s.SetLegalHold(ctx(t), "no/such/key", true); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetLegalHold: %v, want ErrNotFound", err)
	}
}

func testInvalidKey(t *testing.T, s storage.Store) {
	for _, key := range []string{"", "/abs", "a//b", "../escape", "a/../b", ".hidden", "a/.b", "sp ace", "a/"} {
		_, err := s.Put(ctx(t), key, bytes.NewReader([]byte("x")), 1, storage.PutOptions{})
		if !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Get(ctx(t), key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Get(%q): %v, want ErrInvalidKey", key, err)
		}
	}
}

func testWriteOnce(t *testing.T, s storage.Store) {
	first := []byte("the original evidence")
	put(t, s, "k/once", first)
	_, err := s.Put(ctx(t), "k/once", bytes.NewReader([]byte("a forgery")), 9, storage.PutOptions{})
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Put: %v, want ErrExists", err)
	}
	if got := get(t, s, "k/once"); !bytes.Equal(got, first) {
		t.Fatalf("after second Put, Get = %q, want the first %q", got, first)
	}
	if st, err := s.Stat(ctx(t), "k/once"); err != nil || st.SHA256 != sum(first) {
		t.Fatalf("Stat after second Put = %+v, %v", st, err)
	}
}

// testWriteOnceRace: many writers of one key at once; exactly one wins.
func testWriteOnceRace(t *testing.T, s storage.Store) {
	const n = 8
	var wins, exists atomic.Int32
	var wg sync.WaitGroup
	var winner atomic.Value
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte('a' + i)}, 4096)
			_, err := s.Put(ctx(t), "race/key", bytes.NewReader(data), int64(len(data)), storage.PutOptions{})
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(data)
			case errors.Is(err, storage.ErrExists):
				exists.Add(1)
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || exists.Load() != n-1 {
		t.Fatalf("wins=%d exists=%d, want 1 and %d", wins.Load(), exists.Load(), n-1)
	}
	if got := get(t, s, "race/key"); !bytes.Equal(got, winner.Load().([]byte)) {
		t.Fatalf("stored content is not the winner's")
	}
}

func testHashMismatch(t *testing.T, s storage.Store) {
	data := []byte("what the recorder sent")
	wrong := sha256.Sum256([]byte("something else"))
	_, err := s.Put(ctx(t), "h/bad", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: wrong[:]})
	if !errors.Is(err, storage.ErrHashMismatch) {
		t.Fatalf("Put with wrong hash: %v, want ErrHashMismatch", err)
	}
	if _, err := s.Stat(ctx(t), "h/bad"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a rejected Put, Stat: %v, want ErrNotFound", err)
	}
	right := sha256.Sum256(data)
	info, err := s.Put(ctx(t), "h/bad", bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: right[:]})
	if err != nil || info.SHA256 != sum(data) {
		t.Fatalf("Put with right hash: %+v, %v", info, err)
	}
	if st, err := s.Stat(ctx(t), "h/bad"); err != nil || st.SHA256 != sum(data) || st.Size != int64(len(data)) {
		t.Fatalf("Stat after a Put with an expected hash: %+v, %v", st, err)
	}
}

func testSizeMismatch(t *testing.T, s storage.Store) {
	data := []byte("twelve bytes")
	for _, size := range []int64{int64(len(data)) + 5, int64(len(data)) - 5} {
		key := fmt.Sprintf("size/%d", size)
		_, err := s.Put(ctx(t), key, bytes.NewReader(data), size, storage.PutOptions{})
		if err == nil {
			t.Fatalf("Put with size %d of %d bytes succeeded", size, len(data))
		}
		if _, err := s.Stat(ctx(t), key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after a rejected Put, Stat: %v, want ErrNotFound", err)
		}
	}
	if _, err := s.Put(ctx(t), "size/neg", bytes.NewReader(data), -1, storage.PutOptions{}); err == nil {
		t.Fatal("Put with size -1 succeeded; the real size is required")
	}
}

// testCanceledPut: a writer whose context ends mid-stream stores nothing.
func testCanceledPut(t *testing.T, s storage.Store) {
	c, cancel := context.WithCancel(ctx(t))
	r := &cancelAfter{r: newStream(1, 8<<20), n: 1 << 20, cancel: cancel}
	_, err := s.Put(c, "cancel/me", r, 8<<20, storage.PutOptions{})
	if err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	if _, err := s.Stat(ctx(t), "cancel/me"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a canceled Put, Stat: %v, want ErrNotFound", err)
	}
}

type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
		time.Sleep(10 * time.Millisecond)
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func testListPrefix(t *testing.T, s storage.Store) {
	objs := map[string]int{"a/1": 1, "a/2": 22, "ab/3": 333, "b/1": 4, "a/sub/x": 5}
	for k, n := range objs {
		put(t, s, k, bytes.Repeat([]byte("x"), n))
	}
	list := func(prefix string) []string {
		var keys []string
		err := s.List(ctx(t), prefix, func(i storage.Info) error {
			if i.Size != int64(objs[i.Key]) {
				t.Errorf("List size of %s = %d, want %d", i.Key, i.Size, objs[i.Key])
			}
			keys = append(keys, i.Key)
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		return keys
	}
	cases := map[string][]string{
		"a/":  {"a/1", "a/2", "a/sub/x"},
		"a":   {"a/1", "a/2", "a/sub/x", "ab/3"},
		"":    {"a/1", "a/2", "a/sub/x", "ab/3", "b/1"},
		"zzz": nil,
	}
	for prefix, want := range cases {
		got := list(prefix)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("List(%q) = %v, want %v", prefix, got, want)
		}
		if !sort.StringsAreSorted(got) {
			t.Errorf("List(%q) not in key order: %v", prefix, got)
		}
	}
	stop := errors.New("stop")
	var n int
	if err := s.List(ctx(t), "", func(storage.Info) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("List did not stop at the callback's error: n=%d err=%v", n, err)
	}
}

func testLegalHold(t *testing.T, s storage.Store) {
	put(t, s, "hold/me", []byte("held evidence"))
	if err := s.SetLegalHold(ctx(t), "hold/me", true); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(ctx(t), "hold/me"); err != nil || !st.LegalHold {
		t.Fatalf("Stat after hold = %+v, %v; want LegalHold", st, err)
	}
	if err := s.Delete(ctx(t), "hold/me"); !errors.Is(err, storage.ErrRetained) {
		t.Fatalf("Delete under hold: %v, want ErrRetained", err)
	}
	if got := get(t, s, "hold/me"); string(got) != "held evidence" {
		t.Fatalf("after refused Delete, Get = %q", got)
	}
	if err := s.SetLegalHold(ctx(t), "hold/me", false); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(ctx(t), "hold/me"); err != nil || st.LegalHold {
		t.Fatalf("Stat after release = %+v, %v", st, err)
	}
	if err := s.Delete(ctx(t), "hold/me"); err != nil {
		t.Fatalf("Delete after release: %v", err)
	}
	if _, err := s.Stat(ctx(t), "hold/me"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after Delete, Stat: %v, want ErrNotFound", err)
	}
}

func testRetention(t *testing.T, s storage.Store) {
	data := []byte("compliance-retained evidence")
	info := put(t, s, "ret/obj", data)
	st, err := s.Stat(ctx(t), "ret/obj")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != storage.Compliance || st.RetainUntil.IsZero() || !st.RetainUntil.After(time.Now()) {
		t.Fatalf("Stat = %+v, want compliance retention into the future", st)
	}
	if err := s.Delete(ctx(t), "ret/obj"); !errors.Is(err, storage.ErrRetained) {
		t.Fatalf("Delete under retention: %v, want ErrRetained", err)
	}
	if _, err := s.Put(ctx(t), "ret/obj", bytes.NewReader([]byte("overwrite")), 9, storage.PutOptions{}); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("overwrite under retention: %v, want ErrExists", err)
	}
	if got := get(t, s, "ret/obj"); !bytes.Equal(got, data) {
		t.Fatalf("after refused Delete and overwrite, Get = %q", got)
	}
	if st, _ := s.Stat(ctx(t), "ret/obj"); st.SHA256 != info.SHA256 {
		t.Fatalf("hash changed: %s != %s", st.SHA256, info.SHA256)
	}
	// Once the period is over the object may go.
	time.Sleep(time.Until(st.RetainUntil) + 1500*time.Millisecond)
	if err := s.Delete(ctx(t), "ret/obj"); err != nil {
		t.Fatalf("Delete after retention ended: %v", err)
	}
	if _, err := s.Get(ctx(t), "ret/obj"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after Delete, Get: %v, want ErrNotFound", err)
	}
}

func testConcurrentWriters(t *testing.T, s storage.Store) {
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte(fmt.Sprintf("writer %02d;", i)), 1000+i*100)
			info, err := s.Put(ctx(t), fmt.Sprintf("conc/%02d", i), bytes.NewReader(data), int64(len(data)), storage.PutOptions{})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
				return
			}
			if info.SHA256 != sum(data) {
				t.Errorf("writer %d: sha %s, want %s", i, info.SHA256, sum(data))
			}
		}()
	}
	wg.Wait()
	for i := range n {
		want := bytes.Repeat([]byte(fmt.Sprintf("writer %02d;", i)), 1000+i*100)
		if got := get(t, s, fmt.Sprintf("conc/%02d", i)); !bytes.Equal(got, want) {
			t.Errorf("conc/%02d: %d bytes, want %d", i, len(got), len(want))
		}
	}
}

// testLargeObject writes 64 MiB from a generator (never held in memory) and
// checks that the heap did not grow anywhere near the object's size.
func testLargeObject(t *testing.T, s storage.Store) {
	const size = 64 << 20
	const budget = 24 << 20
	want := sha256.New()
	if _, err := io.Copy(want, newStream(7, size)); err != nil {
		t.Fatal(err)
	}
	wantSum := want.Sum(nil)

	runtime.GC()
	base := heapBytes()
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
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
	info, err := s.Put(ctx(t), "big/object", newStream(7, size), size, storage.PutOptions{SHA256: wantSum})
	close(done)
	if err != nil {
		t.Fatalf("Put 64 MiB: %v", err)
	}
	if info.SHA256 != hex.EncodeToString(wantSum) || info.Size != size {
		t.Fatalf("info = %+v", info)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("64 MiB Put: heap grew by at most %.1f MiB", float64(grew)/(1<<20))
	if grew > budget {
		t.Fatalf("heap grew by %d MiB during a 64 MiB Put; the upload is buffered, not streamed", grew>>20)
	}
	rc, err := s.Get(ctx(t), "big/object")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if n, err := io.Copy(h, rc); err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), wantSum) {
		t.Fatal("read-back hash differs")
	}
}

// getRange reads a range whole.
func getRange(t *testing.T, s storage.Store, key string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := s.GetRange(ctx(t), key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("GetRange(%s, %d, %d): read: %v", key, off, n, err)
	}
	return b, nil
}

// testRangeEdges: the contract of GetRange at the ends of an object, for
// negative values, empty and missing objects.
func testRangeEdges(t *testing.T, s storage.Store) {
	data := []byte(strings.Repeat("0123456789", 100)) // 1000 bytes
	put(t, s, "r/small", data)
	put(t, s, "r/empty", nil)
	const size = 1000
	cases := []struct {
		key    string
		off, n int64
		want   []byte // nil with err
		err    error
	}{
		{"r/small", 0, size, data, nil},
		{"r/small", 0, math.MaxInt64, data, nil},
		{"r/small", 0, 1, data[:1], nil},
		{"r/small", 0, 0, []byte{}, nil},
		{"r/small", 10, 5, data[10:15], nil},
		{"r/small", 10, math.MaxInt64, data[10:], nil},
		{"r/small", size - 1, 1, data[size-1:], nil},
		{"r/small", size - 1, 10, data[size-1:], nil}, // cut at the end
		{"r/small", 990, size, data[990:], nil},
		{"r/small", size, 0, []byte{}, nil}, // offset == size: empty
		{"r/small", size, 5, []byte{}, nil},
		{"r/small", size, math.MaxInt64, []byte{}, nil},
		{"r/small", size + 1, 1, nil, storage.ErrInvalidRange},
		{"r/small", size + 1, 0, nil, storage.ErrInvalidRange},
		{"r/small", 1 << 40, 10, nil, storage.ErrInvalidRange},
		{"r/small", math.MaxInt64, 1, nil, storage.ErrInvalidRange},
		{"r/small", -1, 5, nil, storage.ErrInvalidRange},
		{"r/small", 0, -1, nil, storage.ErrInvalidRange},
		{"r/small", math.MinInt64, math.MinInt64, nil, storage.ErrInvalidRange},
		{"r/empty", 0, 0, []byte{}, nil},
		{"r/empty", 0, 10, []byte{}, nil},
		{"r/empty", 0, math.MaxInt64, []byte{}, nil},
		{"r/empty", 1, 0, nil, storage.ErrInvalidRange},
		{"r/empty", 1, 1, nil, storage.ErrInvalidRange},
		{"r/missing", 0, 10, nil, storage.ErrNotFound},
		{"r/missing", 0, 0, nil, storage.ErrNotFound},
		{"r/missing", 5, 0, nil, storage.ErrNotFound},
		{"r/small/below", 0, 1, nil, storage.ErrNotFound}, // a key under an object's key
		{"../escape", 0, 1, nil, storage.ErrInvalidKey},
		{"", 0, 1, nil, storage.ErrInvalidKey},
	}
	for _, c := range cases {
		got, err := getRange(t, s, c.key, c.off, c.n)
		switch {
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("GetRange(%q, %d, %d): %v, want %v", c.key, c.off, c.n, err, c.err)
		case c.err == nil && err != nil:
			t.Errorf("GetRange(%q, %d, %d): %v", c.key, c.off, c.n, err)
		case c.err == nil && !bytes.Equal(got, c.want):
			t.Errorf("GetRange(%q, %d, %d) = %d bytes %.20q, want %d bytes %.20q", c.key, c.off, c.n, len(got), got, len(c.want), c.want)
		}
	}
	// The object is unchanged and a plain Get still reads it whole.
	if got := get(t, s, "r/small"); !bytes.Equal(got, data) {
		t.Fatal("the object changed after ranged reads")
	}
}

// testRangeExact reads many ranges of a 16 MiB object, in random order,
// and compares each byte for byte.
func testRangeExact(t *testing.T, s storage.Store) {
	const size = 16 << 20
	data, err := io.ReadAll(newStream(9, size))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx(t), "r/big", bytes.NewReader(data), size, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(4, 2))
	for i := range 300 {
		off := rnd.Int64N(size + 1)
		n := rnd.Int64N(256 << 10)
		switch i % 10 {
		case 0:
			off = size - rnd.Int64N(4096) // crosses the end
		case 1:
			n = rnd.Int64N(3) // 0 to 2 bytes
		case 2:
			off = rnd.Int64N(4096) // near the start
		}
		got, err := getRange(t, s, "r/big", off, n)
		if err != nil {
			t.Fatalf("GetRange(r/big, %d, %d): %v", off, n, err)
		}
		want := data[off:min(off+n, size)]
		if !bytes.Equal(got, want) {
			t.Fatalf("GetRange(r/big, %d, %d): %d bytes (sha %s), want %d bytes (sha %s)", off, n, len(got), sum(got)[:12], len(want), sum(want)[:12])
		}
	}
	// A reader closed half way leaves the store usable.
	rc, err := s.GetRange(ctx(t), "r/big", 1<<20, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(rc, buf); err != nil || !bytes.Equal(buf, data[1<<20:1<<20+1000]) {
		t.Fatalf("first bytes of a range: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close half way: %v", err)
	}
	if got, err := getRange(t, s, "r/big", size-10, 10); err != nil || !bytes.Equal(got, data[size-10:]) {
		t.Fatalf("after a half-read range: %v", err)
	}
}

// testRangeReadsOnlyTheRange: a ranged read far into a 32 MiB object makes
// this process read about the range, not the object up to it. It counts
// what the process read from files and sockets (rchar in /proc/self/io),
// so it holds for a file and for an HTTP answer alike: 200 reads of 4 KiB
// at 24 MiB, the shape of a multi-range request of one small range
// repeated, read 800 KiB plus headers, where reading from the start would
// read 4.8 GiB.
func testRangeReadsOnlyTheRange(t *testing.T, s storage.Store) {
	const size = 32 << 20
	const off, n, times = 24 << 20, 4096, 200
	if _, err := s.Put(ctx(t), "r/far", newStream(5, size), size, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(io.LimitReader(newStream(5, size), off+n))
	if err != nil {
		t.Fatal(err)
	}
	want = want[off:]
	before := readBytes(t)
	for range times {
		got, err := getRange(t, s, "r/far", off, n)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("GetRange(r/far, %d, %d): %d bytes, %v", off, n, len(got), err)
		}
	}
	read := readBytes(t) - before
	// Per read: the range and, over HTTP, the answer's headers (well under
	// 16 KiB); reading from the start would be 24 MiB each.
	const budget = times * (n + 16<<10)
	t.Logf("%d ranged reads of %d bytes at %d MiB: the process read %d KiB", times, n, off>>20, read>>10)
	if read > budget {
		t.Fatalf("%d ranged reads of %d bytes made the process read %d MiB (budget %d KiB): the backend reads the object from its start", times, n, read>>20, budget>>10)
	}
	if read < times*n {
		t.Fatalf("the process read %d bytes for %d ranges of %d bytes: rchar does not count this backend's reads", read, times, n)
	}
}

// readBytes is what this process has read through read(2) and pread(2),
// files and sockets alike (Linux: rchar in /proc/self/io).
func readBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("the read counter of this process: %v (the suite runs on Linux)", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("/proc/self/io: %q", line)
			}
			return n
		}
	}
	t.Fatalf("/proc/self/io has no rchar: %q", b)
	return 0
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// stream is a deterministic pseudo-random byte source of a given length.
type stream struct {
	rng  *rand.ChaCha8
	left int64
}

func newStream(seed byte, n int64) io.Reader {
	var s [32]byte
	s[0] = seed
	return &stream{rng: rand.NewChaCha8(s), left: n}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, _ := s.rng.Read(p)
	s.left -= int64(n)
	return n, nil
}
