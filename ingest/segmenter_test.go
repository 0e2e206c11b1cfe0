package ingest

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/bodycam/bodycam/evidence"
)

// fakeSink keeps what the segmenter writes.
type fakeSink struct {
	segs []*fakeSegment
	gaps []evidence.Gap
}

type fakeSegment struct {
	seq      int64
	start    time.Time
	keyframe bool
	data     bytes.Buffer
	dur      time.Duration
	closed   bool
}

func (f *fakeSink) openSegment(seq int64, start, _ time.Time, keyframe bool) error {
	f.segs = append(f.segs, &fakeSegment{seq: seq, start: start, keyframe: keyframe})
	return nil
}
func (f *fakeSink) writeFragment(b *[]byte, _ time.Duration) error {
	f.segs[len(f.segs)-1].data.Write(*b)
	fragmentBuffers.Put(b)
	return nil
}
func (f *fakeSink) closeSegment(d time.Duration) error {
	s := f.segs[len(f.segs)-1]
	s.dur, s.closed = d, true
	return nil
}
func (f *fakeSink) gap(g evidence.Gap) error { f.gaps = append(f.gaps, g); return nil }

// parts decodes a segment's fragments.
func (s *fakeSegment) parts(t testing.TB) fmp4.Parts {
	var ps fmp4.Parts
	if err := ps.Unmarshal(s.data.Bytes()); err != nil {
		t.Fatalf("segment %d does not parse: %v", s.seq, err)
	}
	return ps
}

var (
	videoInfo = trackInfo{id: 1, video: true, timescale: 90000, codec: &codecs.H264{SPS: []byte{0x67}, PPS: []byte{0x68}}, name: "H264", nominal: 3000}
	audioInfo = trackInfo{id: 2, timescale: 48000, codec: &codecs.Opus{ChannelCount: 1}, name: "Opus", nominal: 960}
)

// feed pushes n video frames at 30 fps with a keyframe every gop frames,
// starting at dts/recv, and returns where it stopped.
func feed(t testing.TB, s *segmenter, n, gop int, dts int64, recv time.Time) (int64, time.Time) {
	for i := 0; i < n; i++ {
		if err := s.push(0, sample{dts: dts, pts: dts, sync: i%gop == 0, payload: []byte{1, 2, 3}, recv: recv}); err != nil {
			t.Fatal(err)
		}
		dts += 3000
		recv = recv.Add(time.Second / 30)
	}
	return dts, recv
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func maxSampleDuration(t testing.TB, f *fakeSink) (uint32, time.Duration) {
	var max uint32
	var total int64
	for _, seg := range f.segs {
		for _, p := range seg.parts(t) {
			for _, tr := range p.Tracks {
				if tr.ID != 1 {
					continue
				}
				for _, smp := range tr.Samples {
					if smp.Duration > max {
						max = smp.Duration
					}
					total += int64(smp.Duration)
				}
			}
		}
	}
	return max, dur(total, 90000)
}

func TestSegmentsCutAtKeyframes(t *testing.T) {
	f := &fakeSink{}
	s := newSegmenter("r", []trackInfo{videoInfo}, 2*time.Second, f)
	feed(t, s, 300, 30, 90000, t0) // 10 s, keyframe every second
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if len(f.segs) != 5 {
		t.Fatalf("%d segments, want 5 of 2 s", len(f.segs))
	}
	for _, seg := range f.segs {
		ps := seg.parts(t)
		first := ps[0].Tracks[0].Samples[0]
		if !seg.closed || !seg.keyframe || first.IsNonSyncSample {
			t.Fatalf("segment %d does not start with a keyframe", seg.seq)
		}
		if seg.dur != 2*time.Second {
			t.Errorf("segment %d lasts %v", seg.seq, seg.dur)
		}
	}
	if max, total := maxSampleDuration(t, f); max != 3000 || total != 10*time.Second {
		t.Fatalf("max sample %d ticks, total %v", max, total)
	}
}

// Media that stops arriving for 3 s (receive clock agrees) is a loss gap and
// a hole in the timeline, not a 3-second frame.
func TestLossNeverInflatesDuration(t *testing.T) {
	f := &fakeSink{}
	s := newSegmenter("r", []trackInfo{videoInfo}, 2*time.Second, f)
	dts, recv := feed(t, s, 60, 30, 0, t0)
	dts, recv = dts+3*90000, recv.Add(3*time.Second) // 3 s missing
	feed(t, s, 60, 30, dts, recv)
	s.close()
	if len(f.gaps) != 1 || f.gaps[0].Kind != evidence.GapLoss || f.gaps[0].End.Sub(f.gaps[0].Start) < 2900*time.Millisecond {
		t.Fatalf("gaps %+v", f.gaps)
	}
	max, total := maxSampleDuration(t, f)
	if max != 3000 {
		t.Fatalf("a sample lasts %d ticks: the loss was smoothed over", max)
	}
	if total != 4*time.Second {
		t.Fatalf("samples last %v in all, want the 4 s received", total)
	}
	// The hole stays in the timeline: the fragment after it starts 3 s late.
	var bases []uint64
	for _, seg := range f.segs {
		for _, p := range seg.parts(t) {
			bases = append(bases, p.Tracks[0].BaseTime)
		}
	}
	if last := bases[len(bases)-1]; last < 5*90000 {
		t.Fatalf("fragment base times %v do not keep the hole", bases)
	}
}

// RTP timestamps jumping an hour ahead (a recorder reset) while 33 ms pass
// are a discontinuity; the timeline follows the receive clock.
func TestTimestampJumpIsADiscontinuity(t *testing.T) {
	for name, jump := range map[string]int64{"forward": 3600 * 90000, "backward": -50 * 90000} {
		t.Run(name, func(t *testing.T) {
			f := &fakeSink{}
			s := newSegmenter("r", []trackInfo{videoInfo}, 2*time.Second, f)
			dts, recv := feed(t, s, 90, 30, 100*90000, t0)
			feed(t, s, 90, 30, dts+jump, recv)
			s.close()
			if len(f.gaps) != 1 || f.gaps[0].Kind != evidence.GapDiscontinuity {
				t.Fatalf("gaps %+v", f.gaps)
			}
			max, total := maxSampleDuration(t, f)
			if max > 3000 || total != 6*time.Second {
				t.Fatalf("max sample %d ticks, total %v: the jump leaked into durations", max, total)
			}
			var sum time.Duration
			for _, seg := range f.segs {
				sum += seg.dur
			}
			if sum < 5900*time.Millisecond || sum > 6100*time.Millisecond {
				t.Fatalf("segments last %v in all, want about 6 s", sum)
			}
		})
	}
}

// A publisher (or its network) that stalled and then sends what it held
// in a burst: media timestamps run ahead of the receive clock only by what
// the stall put them behind, which is not a jump, even when the burst also
// lost packets (one step over more than a second of media then).
func TestCatchUpAfterStallIsNotAJump(t *testing.T) {
	f := &fakeSink{}
	s := newSegmenter("r", []trackInfo{videoInfo}, 2*time.Second, f)
	dts, recv := feed(t, s, 90, 30, 0, t0)
	recv = recv.Add(2500 * time.Millisecond) // nothing arrives for 2.5 s
	push := func(n int, step time.Duration) {
		for range n {
			if err := s.push(0, sample{dts: dts, pts: dts, sync: dts%90000 == 0, payload: []byte{1}, recv: recv}); err != nil {
				t.Fatal(err)
			}
			dts += 3000
			recv = recv.Add(step)
		}
	}
	push(30, 5*time.Millisecond) // the held second, in 150 ms
	dts += 45 * 3000             // 1.5 s of it lost on the way
	recv = recv.Add(100 * time.Millisecond)
	push(60, time.Second/30)
	s.close()
	for _, g := range f.gaps {
		if g.Kind == evidence.GapDiscontinuity {
			t.Fatalf("a catch-up burst taken for a jump: %+v", g)
		}
	}
	// The timeline follows the media's own timestamps: it ends after the
	// 7.5 s published, the lost 1.5 s a hole in it (the receive clock,
	// followed across a jump, would have left it at about 6 s).
	var end uint64
	for _, seg := range f.segs {
		for _, p := range seg.parts(t) {
			end = p.Tracks[0].BaseTime
			for _, smp := range p.Tracks[0].Samples {
				end += uint64(smp.Duration)
			}
		}
	}
	if end != 7*90000+45000 {
		t.Fatalf("the timeline ends at %v, want 7.5 s", dur(int64(end), 90000))
	}

	// A jump beyond what a stall explains is still one.
	f = &fakeSink{}
	s = newSegmenter("r", []trackInfo{videoInfo}, 2*time.Second, f)
	dts, recv = feed(t, s, 90, 30, 0, t0)
	recv = recv.Add(2500 * time.Millisecond)
	feed(t, s, 30, 30, dts+10*90000, recv)
	s.close()
	if len(f.gaps) != 1 || f.gaps[0].Kind != evidence.GapDiscontinuity {
		t.Fatalf("a 10 s jump after a 2.5 s stall: gaps %+v", f.gaps)
	}
}

// Keyframes that stop coming: segments are cut at the hard cap and say they
// need the previous segment to decode.
func TestHardCapWithoutKeyframes(t *testing.T) {
	f := &fakeSink{}
	s := newSegmenter("r", []trackInfo{videoInfo}, time.Second, f)
	feed(t, s, 30*25, 100000, 0, t0) // one keyframe, then 25 s without
	s.close()
	if len(f.segs) < 2 || f.segs[1].keyframe || f.segs[1].dur > 11*time.Second {
		t.Fatalf("segments: %d, second keyframe=%v dur=%v", len(f.segs), f.segs[1].keyframe, f.segs[1].dur)
	}
	for _, seg := range f.segs[:len(f.segs)-1] {
		if seg.dur > s.hardCap {
			t.Fatalf("segment %d lasts %v, cap %v", seg.seq, seg.dur, s.hardCap)
		}
	}
}

// Audio and video interleave into the same fragments; media before the first
// keyframe is an explicit undecodable gap.
func TestAudioVideoAndPreKeyframeGap(t *testing.T) {
	f := &fakeSink{}
	s := newSegmenter("r", []trackInfo{videoInfo, audioInfo}, 2*time.Second, f)
	recv := t0
	vdts, adts := int64(0), int64(0)
	for i := 0; i < 300; i++ {
		// the first 10 frames come before any keyframe
		s.push(0, sample{dts: vdts, pts: vdts, sync: i == 10 || (i > 10 && (i-10)%30 == 0), payload: []byte{1}, recv: recv})
		vdts += 3000
		for adts*90000 < vdts*48000 {
			s.push(1, sample{dts: adts, pts: adts, sync: true, payload: []byte{2}, recv: recv})
			adts += 960
		}
		recv = recv.Add(time.Second / 30)
	}
	s.close()
	if len(f.gaps) == 0 || f.gaps[0].Kind != evidence.GapUndecodable {
		t.Fatalf("gaps %+v", f.gaps)
	}
	audio := 0
	for _, seg := range f.segs {
		for _, p := range seg.parts(t) {
			for _, tr := range p.Tracks {
				if tr.ID == 2 {
					audio += len(tr.Samples)
				}
			}
		}
	}
	if audio < 400 { // about 9.6 s of 20 ms frames after the first keyframe
		t.Fatalf("only %d audio samples stored", audio)
	}
}

// FuzzSegmenter feeds arbitrary timing from the network: whatever the
// recorder's timestamps do, no sample is ever longer than maxSampleGap, the
// output parses, and nothing panics.
func FuzzSegmenter(f *testing.F) {
	f.Add([]byte{0, 10, 0, 10, 1, 0, 200, 0, 10, 0, 0, 10, 0, 10, 1})
	f.Add(bytes.Repeat([]byte{1, 0xff, 0xff, 0x7f, 0}, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		sink := &fakeSink{}
		s := newSegmenter("r", []trackInfo{videoInfo, audioInfo}, time.Second, sink)
		dts := [2]int64{}
		recv := t0
		for len(data) >= 5 {
			tr := int(data[0] & 1)
			step := int64(int16(binary.BigEndian.Uint16(data[1:3]))) * 100
			adv := time.Duration(data[3]) * time.Millisecond * 4
			sync := data[4]&1 == 1
			data = data[5:]
			dts[tr] += step
			recv = recv.Add(adv)
			if err := s.push(tr, sample{dts: dts[tr], pts: dts[tr], sync: sync, payload: []byte{9}, recv: recv}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
		limit := map[int]uint32{1: uint32(ticks(maxSampleGap, 90000)), 2: uint32(ticks(maxSampleGap, 48000))}
		for _, seg := range sink.segs {
			for _, p := range seg.parts(t) {
				for _, tr := range p.Tracks {
					for _, smp := range tr.Samples {
						if smp.Duration > limit[tr.ID] {
							t.Fatalf("track %d sample lasts %d ticks", tr.ID, smp.Duration)
						}
					}
				}
			}
			if seg.dur < 0 {
				t.Fatalf("segment %d has negative duration", seg.seq)
			}
		}
	})
}

// Frames that arrive but cannot be decoded (after lost packets, until the
// next keyframe) come without media: they are not stored, no frame is
// stretched over them, and an undecodable gap covers the time from the last
// stored frame to the keyframe; a silence before them longer than a second
// is a loss gap of its own.
func TestUndecodableRunAfterLoss(t *testing.T) {
	f := &fakeSink{}
	s := newSegmenter("r", []trackInfo{videoInfo}, 2*time.Second, f)
	dts, recv := feed(t, s, 45, 30, 90000, t0) // 1.5 s; the next keyframe would be frame 60
	// 0.3 s of packets lost, then 5 frames that refer to what was lost.
	dts, recv = dts+9*3000, recv.Add(9*time.Second/30)
	for i := 0; i < 5; i++ {
		if err := s.push(0, sample{dts: dts, pts: dts, recv: recv}); err != nil {
			t.Fatal(err)
		}
		dts, recv = dts+3000, recv.Add(time.Second/30)
	}
	keyAt := recv
	dts, recv = feed(t, s, 30, 30, dts, recv) // resumes at a keyframe
	// 2 s of silence, then 3 more frames without media, then a keyframe.
	silentFrom := recv
	dts, recv = dts+60*3000, recv.Add(2*time.Second)
	for i := 0; i < 3; i++ {
		if err := s.push(0, sample{dts: dts, pts: dts, recv: recv}); err != nil {
			t.Fatal(err)
		}
		dts, recv = dts+3000, recv.Add(time.Second/30)
	}
	feed(t, s, 30, 30, dts, recv)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if len(f.gaps) != 3 {
		t.Fatalf("gaps %+v, want undecodable, loss, undecodable", f.gaps)
	}
	first, loss, second := f.gaps[0], f.gaps[1], f.gaps[2]
	near := func(a, b time.Time) bool { return a.Sub(b).Abs() < time.Millisecond }
	if first.Kind != evidence.GapUndecodable || !near(first.Start, t0.Add(45*time.Second/30)) || !first.End.Equal(keyAt) {
		t.Errorf("first run %+v: want undecodable from the last stored frame's end (%v) to the keyframe (%v)", first, t0.Add(45*time.Second/30), keyAt)
	}
	if loss.Kind != evidence.GapLoss || loss.End.Sub(loss.Start) < 1900*time.Millisecond || loss.Start.Before(silentFrom) {
		t.Errorf("silence %+v: want a loss gap of about 2 s", loss)
	}
	if second.Kind != evidence.GapUndecodable || second.Start.Before(loss.End) {
		t.Errorf("second run %+v", second)
	}
	if max, _ := maxSampleDuration(t, f); max != 3000 {
		t.Fatalf("a frame lasts %d ticks: stretched over what was not stored", max)
	}
}
