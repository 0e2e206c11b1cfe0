package ingest

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// randomPart is a fragment with one to three tracks of random samples, some
// of them as NAL units; p is the same fragment as mediacommon takes it.
func randomPart(r *rand.Rand) (seq uint32, tracks []fragTrack, p fmp4.Part) {
	seq = r.Uint32()
	p = fmp4.Part{SequenceNumber: seq}
	bytesOf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for id := 1; id <= 1+r.IntN(3); id++ {
		t := fragTrack{id: id, base: r.Uint64() >> r.IntN(64)}
		pt := &fmp4.PartTrack{ID: id, BaseTime: t.base}
		for n := r.IntN(60); n > 0; n-- {
			s := fragSample{duration: r.Uint32() >> r.IntN(32), nonSync: r.IntN(3) == 0}
			if r.IntN(4) == 0 {
				s.ptsOffset = int32(r.Uint32()) >> r.IntN(31)
			}
			if r.IntN(2) == 0 {
				s.payload = bytesOf(r.IntN(3000))
			} else {
				s.nalus = [][]byte{}
				for k := r.IntN(4); k >= 0; k-- {
					s.nalus = append(s.nalus, bytesOf(r.IntN(1500)))
				}
			}
			payload := s.payload
			if s.nalus != nil {
				payload, _ = h264.AVCC(s.nalus).Marshal()
			}
			t.samples = append(t.samples, s)
			pt.Samples = append(pt.Samples, &fmp4.Sample{Duration: s.duration, PTSOffset: s.ptsOffset, IsNonSyncSample: s.nonSync, Payload: payload})
		}
		tracks = append(tracks, t)
		p.Tracks = append(p.Tracks, pt)
	}
	return seq, tracks, p
}

// The hand-written fragment is byte for byte what mediacommon writes, for
// any mix of tracks, sync and non-sync samples, composition offsets, and
// samples given as NAL units; appending keeps what the buffer held.
func TestAppendFragmentMatchesMediacommon(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		seq, tracks, p := randomPart(r)
		var buf seekablebuffer.Buffer
		if err := p.Marshal(&buf); err != nil {
			t.Fatal(err)
		}
		prefix := []byte("kept")
		got := appendFragment(append(make([]byte, 0, r.IntN(64)), prefix...), seq, tracks)
		if !bytes.HasPrefix(got, prefix) {
			t.Fatalf("part %d: what the buffer held was overwritten", i)
		}
		if got := got[len(prefix):]; !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("part %d differs: %d bytes, mediacommon %d bytes", i, len(got), len(buf.Bytes()))
		}
	}
}

func BenchmarkAppendFragment(b *testing.B) {
	seq, tracks, p := randomPart(rand.New(rand.NewPCG(3, 4)))
	b.Run("handwritten", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendFragment(buf[:0], seq, tracks)
		}
	})
	b.Run("mediacommon", func(b *testing.B) {
		for b.Loop() {
			var buf seekablebuffer.Buffer
			p.Marshal(&buf)
		}
	})
}
