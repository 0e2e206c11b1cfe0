package live

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/media"
)

var (
	sps = []byte{0x67, 0x64, 0x00, 0x1f, 0xac}
	pps = []byte{0x68, 0xee, 0x3c, 0x80}
)

func h264Track() media.Track {
	return media.Track{Codec: media.H264, ClockRate: 90000, Params: [][]byte{sps, pps}}
}

// frame n of a stream with a keyframe every gop frames; the IDR carries no
// parameter sets, as recorders that send them only in the SDP do.
func frame(n, gop int) media.Unit {
	key := n%gop == 0
	nal := []byte{0x41, byte(n), byte(n >> 8)}
	if key {
		nal[0] = 0x65
	}
	pts := int64(n) * 3000
	return media.Unit{PTS: pts, DTS: pts, Keyframe: key, NALUs: [][]byte{nal}, Recv: time.Now()}
}

func seq(u media.Unit) int { n := u.NALUs[len(u.NALUs)-1]; return int(n[1]) | int(n[2])<<8 }

// A subscriber that never reads loses units (counted) but slows nobody: the
// writer never waits, another subscriber gets everything, and the slow one
// resumes at a keyframe, so its picture is never corrupt.
func TestSlowSubscriberDoesNotSlowOthers(t *testing.T) {
	o := newOutput(h264Track())
	var slowDrops, fastDrops atomic.Int64
	slow := newSubscriber(8, func(n int) { slowDrops.Add(int64(n)) })
	fast := newSubscriber(2048, func(n int) { fastDrops.Add(int64(n)) }) // room for everything: it keeps up
	o.subscribe(slow)
	o.subscribe(fast)
	for n := 0; n < 1000; n++ {
		o.write(frame(n, 30)) // would hang here if the writer waited for the slow one
	}
	var got []int
	for len(fast.ch) > 0 {
		got = append(got, seq((<-fast.ch).unit))
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("fast subscriber got unit %d at %d: lost or reordered", n, i)
		}
	}
	if fastDrops.Load() != 0 {
		t.Fatalf("fast subscriber lost %d units", fastDrops.Load())
	}
	if slowDrops.Load() < 900 {
		t.Fatalf("slow subscriber lost only %d units of 1000 with room for 8", slowDrops.Load())
	}
	// The slow one catches up: its backlog is what it had room for, then
	// nothing until the next keyframe.
	for len(slow.ch) > 0 {
		<-slow.ch
	}
	for n := 1000; n < 1100; n++ {
		o.write(frame(n, 30))
	}
	first := <-slow.ch
	if !first.unit.Keyframe || seq(first.unit) != 1020 {
		t.Fatalf("after losing units, the slow subscriber resumed at unit %d (keyframe %v), want the keyframe 1020", seq(first.unit), first.unit.Keyframe)
	}
}

// A new subscriber gets the current GOP at once, from its keyframe, with
// the parameter sets in front of it.
func TestSubscribeStartsWithKeptGOP(t *testing.T) {
	o := newOutput(h264Track())
	for n := 0; n < 45; n++ { // keyframes at 0 and 30
		o.write(frame(n, 30))
	}
	s := newSubscriber(64, func(int) { t.Fatal("dropped") })
	o.subscribe(s)
	if len(s.ch) != 15 {
		t.Fatalf("burst of %d units, want the 15 since the last keyframe", len(s.ch))
	}
	first := <-s.ch
	if !first.burst || !first.unit.Keyframe || seq(first.unit) != 30 {
		t.Fatalf("first unit %+v", first)
	}
	if len(first.unit.NALUs) != 3 || !bytes.Equal(first.unit.NALUs[0], sps) || !bytes.Equal(first.unit.NALUs[1], pps) {
		t.Fatalf("keyframe NAL units %x, want SPS, PPS, IDR", first.unit.NALUs)
	}
	for i := 31; i < 45; i++ {
		if it := <-s.ch; seq(it.unit) != i || !it.burst {
			t.Fatalf("burst unit %d: %+v", i, it)
		}
	}
	o.write(frame(45, 30))
	if it := <-s.ch; it.burst || seq(it.unit) != 45 {
		t.Fatalf("live unit after the burst: %+v", it)
	}
}

// In-band parameter sets replace the SDP's for later keyframes.
func TestInBandParamsAreKept(t *testing.T) {
	o := newOutput(h264Track())
	newSPS := []byte{0x67, 0x42, 0xc0, 0x1e}
	u := frame(0, 30)
	u.NALUs = [][]byte{newSPS, pps, u.NALUs[0]}
	o.write(u)
	o.write(frame(30, 30))
	s := newSubscriber(64, func(int) {})
	o.subscribe(s)
	first := <-s.ch
	if !bytes.Equal(first.unit.NALUs[0], newSPS) {
		t.Fatalf("keyframe after an in-band SPS carries %x, want the new SPS", first.unit.NALUs[0])
	}
}

// A stream whose keyframes are too far apart keeps no GOP: a new
// subscriber waits for the next keyframe instead of getting a huge burst.
func TestGOPIsBounded(t *testing.T) {
	o := newOutput(h264Track())
	for n := 0; n < maxGOPUnits+10; n++ {
		o.write(frame(n, 100000))
	}
	s := newSubscriber(1024, func(int) {})
	o.subscribe(s)
	if len(s.ch) != 0 {
		t.Fatalf("burst of %d units from an oversized GOP", len(s.ch))
	}
	o.write(frame(maxGOPUnits+10, 100000)) // not a keyframe: skipped
	k := frame(0, 1)
	o.write(k)
	if it := <-s.ch; !it.unit.Keyframe {
		t.Fatal("first unit after joining without a GOP is not a keyframe")
	}
}

// B-frames are noticed, so viewers get them converted.
func TestReorderDetected(t *testing.T) {
	o := newOutput(h264Track())
	o.write(frame(0, 30))
	if o.hasReorder() {
		t.Fatal("reorder without B-frames")
	}
	u := frame(1, 30)
	u.PTS += 6000
	o.write(u)
	if !o.hasReorder() {
		t.Fatal("B-frames not detected")
	}
}

// BenchmarkFanout is the relay's per-unit cost of passing one unit to 100
// subscribers (their writers are not included).
func BenchmarkFanout(b *testing.B) {
	o := newOutput(h264Track())
	var subs []*subscriber
	for i := 0; i < 100; i++ {
		s := newSubscriber(1024, func(int) {})
		o.subscribe(s)
		subs = append(subs, s)
	}
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		o.write(frame(n, 30))
		for _, s := range subs {
			<-s.ch
		}
	}
}
