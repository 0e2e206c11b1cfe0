package ingest

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

func randomPart(r *rand.Rand) fmp4.Part {
	p := fmp4.Part{SequenceNumber: r.Uint32()}
	for id := 1; id <= 1+r.IntN(3); id++ {
		t := &fmp4.PartTrack{ID: id, BaseTime: r.Uint64() >> r.IntN(64)}
		for n := r.IntN(60); n > 0; n-- {
			s := &fmp4.Sample{Duration: r.Uint32() >> r.IntN(32), Payload: make([]byte, r.IntN(3000))}
			if r.IntN(3) == 0 {
				s.IsNonSyncSample = true
			}
			if r.IntN(4) == 0 {
				s.PTSOffset = int32(r.Uint32()) >> r.IntN(31)
			}
			for i := range s.Payload {
				s.Payload[i] = byte(r.Uint32())
			}
			t.Samples = append(t.Samples, s)
		}
		p.Tracks = append(p.Tracks, t)
	}
	return p
}

// The hand-written fragment is byte for byte what mediacommon writes, for
// any mix of tracks, sync and non-sync samples, and composition offsets.
func TestMarshalPartMatchesMediacommon(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		p := randomPart(r)
		var buf seekablebuffer.Buffer
		if err := p.Marshal(&buf); err != nil {
			t.Fatal(err)
		}
		if got := marshalPart(p); !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("part %d differs: %d bytes, mediacommon %d bytes", i, len(got), len(buf.Bytes()))
		}
	}
}

func BenchmarkMarshalPart(b *testing.B) {
	p := randomPart(rand.New(rand.NewPCG(3, 4)))
	b.Run("handwritten", func(b *testing.B) {
		for b.Loop() {
			marshalPart(p)
		}
	})
	b.Run("mediacommon", func(b *testing.B) {
		for b.Loop() {
			var buf seekablebuffer.Buffer
			p.Marshal(&buf)
		}
	})
}
