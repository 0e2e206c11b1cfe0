package ingest

import (
	"testing"
	"time"
)

// A segment cut short by a crash is measured from its own boxes: the last
// complete fragment and the media time it ends at.
func TestDurableFragments(t *testing.T) {
	f := &fakeSink{}
	s := newSegmenter("r", []trackInfo{videoInfo}, time.Minute, f)
	feed(t, s, 90, 30, 0, t0) // 3 s in one segment, fragments of about 0.9 s
	s.close()
	b := f.segs[0].data.Bytes()
	size, end := durableFragments(b, 1, 90000)
	if size != int64(len(b)) || end != 3*time.Second {
		t.Fatalf("whole segment: %d of %d bytes, %v", size, len(b), end)
	}
	prevSize, prevEnd := size, end
	for cut := len(b) - 1; cut > 0; cut -= 97 {
		size, end := durableFragments(b[:cut], 1, 90000)
		if size > int64(cut) || size > prevSize || end > prevEnd {
			t.Fatalf("cut at %d: %d bytes, %v (after %d, %v)", cut, size, end, prevSize, prevEnd)
		}
		if size > 0 {
			if again, _ := durableFragments(b[:size], 1, 90000); again != size {
				t.Fatalf("cut at %d: %d is not a fragment boundary", cut, size)
			}
		}
		prevSize, prevEnd = size, end
	}
	if size, _ := durableFragments(b[:50], 1, 90000); size != 0 {
		t.Fatalf("a torn first fragment counts as %d bytes", size)
	}
}
