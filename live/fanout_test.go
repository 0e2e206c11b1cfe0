package live

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/media"
)

// The packet log's H.264 packets are pion's H264Payloader's, byte for
// byte (browsers are tested against those): SPS and PPS in a STAP-A, FU-As
// of the right size, delimiters left out; marker on the last packet.
func TestH264PacketsMatchPion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nal := func(typ byte, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		b[0] = 0x60 | typ
		return b
	}
	units := [][][]byte{
		{{0x09, 0xf0}, sps, pps, nal(5, 9000)}, // AUD, parameter sets, a big IDR
		{nal(1, 300)},
		{nal(1, mtu)},                           // exactly one packet
		{nal(1, mtu+1)},                         // just over: two FU-As
		{nal(1, 700), nal(1, 5000), nal(1, 20)}, // three slices
	}
	var l packetLog
	pay := &codecs.H264Payloader{}
	for i, nalus := range units {
		from := len(l.pkts)
		l.add(h264Track(), media.Unit{PTS: int64(i) * 3000, Keyframe: i == 0, NALUs: nalus}, true)
		var annexB []byte
		for _, n := range nalus {
			annexB = append(append(annexB, 0, 0, 0, 1), n...)
		}
		want := pay.Payload(mtu, annexB)
		got := l.pkts[from:]
		if len(got) != len(want) {
			t.Fatalf("unit %d: %d packets, pion makes %d", i, len(got), len(want))
		}
		for j := range want {
			if !bytes.Equal(got[j].payload, want[j]) {
				t.Fatalf("unit %d packet %d: %x, pion's %x", i, j, got[j].payload[:min(8, len(got[j].payload))], want[j][:min(8, len(want[j]))])
			}
			if len(got[j].payload) > mtu {
				t.Fatalf("unit %d packet %d: %d bytes, over the MTU", i, j, len(got[j].payload))
			}
			first, last := got[j].flags&pktFirst != 0, got[j].flags&pktLast != 0
			if first != (j == 0) || last != (j == len(want)-1) || (got[j].flags&pktKey != 0) != (i == 0) {
				t.Fatalf("unit %d packet %d: flags %b", i, j, got[j].flags)
			}
		}
	}
}

// fakeWriter records what a viewer's track was sent; fail decides which
// writes fail (a transport that takes no more).
type fakeWriter struct {
	mu   sync.Mutex
	pkts []rtp.Packet
	fail func(payload []byte) error
}

func (w *fakeWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.fail != nil {
		if err := w.fail(payload); err != nil {
			return 0, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pkts = append(w.pkts, rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)})
	return len(payload), nil
}

func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *fakeWriter) packets() []rtp.Packet {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]rtp.Packet(nil), w.pkts...)
}

// testStream is a stream of one H.264 track without pion: viewers whose
// tracks write to fakeWriters.
func testStream(t *testing.T) (*Relay, *stream) {
	r := &Relay{m: newMetrics(prometheus.NewRegistry()), log: slog.New(slog.DiscardHandler)}
	s := newStream(r, "cam", "rec", []media.Track{h264Track()})
	t.Cleanup(s.Close)
	return r, s
}

func fakeViewer(s *stream, id string, w webrtc.TrackLocalWriter) *viewer {
	v := &viewer{r: s.r, s: s, id: id, done: make(chan struct{})}
	st := newSendTrack(v, "video", s.video, capFor(media.H264, "42e01f"))
	st.ssrc, st.pt, st.w, st.bound = rand.Uint32(), 102, w, true
	v.sends = []*sendTrack{st}
	return v
}

// unitsOf reassembles a viewer's packets into frame numbers (frame()'s
// NAL units carry theirs), checking that sequence numbers leave no gap
// and that timestamps change only between units.
func unitsOf(t *testing.T, pkts []rtp.Packet) []int {
	t.Helper()
	var got []int
	for i, p := range pkts {
		if i > 0 {
			prev := pkts[i-1]
			if p.SequenceNumber != prev.SequenceNumber+1 {
				t.Fatalf("sequence numbers %d then %d", prev.SequenceNumber, p.SequenceNumber)
			}
			if prev.Marker == (p.Timestamp == prev.Timestamp) {
				t.Fatalf("packet %d: marker %v, timestamp %d then %d", i, prev.Marker, prev.Timestamp, p.Timestamp)
			}
		}
		if p.Marker {
			n := p.Payload // frame()'s NAL units fit one packet
			got = append(got, int(n[1])|int(n[2])<<8)
		}
	}
	return got
}

// A viewer whose transport refuses a write loses that unit and its video
// up to the next keyframe (counted), so its picture is never corrupt;
// another viewer of the same group gets everything, and the writer never
// waits.
func TestSlowViewerSkipsToKeyframe(t *testing.T) {
	_, s := testStream(t)
	fast, slow := &fakeWriter{}, &fakeWriter{fail: func(p []byte) error {
		if n := int(p[1]) | int(p[2])<<8; p[0]&0x1f == 1 && n >= 35 && n < 40 {
			return errors.New("buffer full")
		}
		return nil
	}}
	for n := range 30 { // a GOP before anyone watches: frames 0..29
		s.Write(0, frame(n, 30))
	}
	vf, vs := fakeViewer(s, "fast", fast), fakeViewer(s, "slow", slow)
	for _, v := range []*viewer{vf, vs} {
		if !s.attach(v) {
			t.Fatal("attach refused")
		}
	}
	for n := 30; n < 100; n++ {
		s.Write(0, frame(n, 30))
		time.Sleep(time.Millisecond) // a camera's pace, roughly; nothing depends on it
	}
	waitFor(t, func() bool { u := unitsOf(t, fast.packets()); return len(u) > 0 && u[len(u)-1] == 99 })
	waitFor(t, func() bool { u := unitsOf(t, slow.packets()); return len(u) > 0 && u[len(u)-1] == 99 })
	got := unitsOf(t, fast.packets())
	for i, n := range got {
		if n != i {
			t.Fatalf("fast viewer: unit %d at %d (the kept GOP starts at 0)", n, i)
		}
	}
	// The slow one: 0..34, then nothing until the keyframe 60, with its
	// sequence numbers contiguous (the refused packet took none).
	var want []int
	for n := 0; n < 100; n++ {
		if n < 35 || n >= 60 {
			want = append(want, n)
		}
	}
	if got := unitsOf(t, slow.packets()); !equalInts(got, want) {
		t.Fatalf("slow viewer got units %v, want %v", got, want)
	}
	if d := vs.dropped.Load(); d != 25 {
		t.Fatalf("slow viewer: %d units counted as dropped, want 25 (35..59)", d)
	}
	if d := vf.dropped.Load(); d != 0 {
		t.Fatalf("fast viewer dropped %d", d)
	}
	// The burst's timestamps are one tick apart; then the units' spacing.
	p := fast.packets()
	var ts []uint32
	for _, pk := range p {
		if pk.Marker {
			ts = append(ts, pk.Timestamp)
		}
	}
	if ts[1]-ts[0] != 1 || ts[29]-ts[28] != 1 {
		t.Fatalf("timestamps %v: want the GOP burst one tick apart", ts[:30])
	}
}

// A viewer whose connection has closed is written no more.
func TestClosedViewerIsNotWritten(t *testing.T) {
	_, s := testStream(t)
	var calls int
	var mu sync.Mutex
	w := &fakeWriter{fail: func([]byte) error { mu.Lock(); calls++; mu.Unlock(); return io.ErrClosedPipe }}
	other := &fakeWriter{}
	s.attach(fakeViewer(s, "closed", w))
	s.attach(fakeViewer(s, "other", other))
	for n := 0; n < 60; n++ {
		s.Write(0, frame(n, 30))
	}
	waitFor(t, func() bool { u := unitsOf(t, other.packets()); return len(u) > 0 && u[len(u)-1] == 59 })
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d writes to a closed connection, want 1", calls)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

// BenchmarkGroupWrite is the writer's cost per viewer and unit (a 720p
// P-frame of ~17 KB, 15 packets) without SRTP and sockets: what the
// fan-out itself adds.
func BenchmarkGroupWrite(b *testing.B) {
	r := &Relay{m: newMetrics(prometheus.NewRegistry()), log: slog.New(slog.DiscardHandler)}
	s := newStream(r, "cam", "rec", []media.Track{h264Track()})
	defer s.Close()
	const viewers = 100
	g := &group{s: s, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	close(g.done) // no goroutine: the benchmark calls write itself
	for range viewers {
		if !g.add(fakeViewer(s, "v", discard{})) {
			b.Fatal("add")
		}
	}
	p := make([]byte, 17000)
	p[0] = 0x41
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		key := n%30 == 0
		u := media.Unit{PTS: int64(n) * 3000, Keyframe: key, NALUs: [][]byte{p}, Recv: time.Now()}
		if key {
			u.NALUs = [][]byte{sps, pps, p}
		}
		s.video.write(u)
		g.write()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/viewers, "ns/viewer-unit")
}

type discard struct{}

func (discard) WriteRTP(h *rtp.Header, p []byte) (int, error) { return len(p), nil }
func (discard) Write(b []byte) (int, error)                   { return len(b), nil }

var _ webrtc.TrackLocalWriter = discard{}
