package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

func testTracks(t testing.TB) []*track {
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60}
	formats := []format.Format{
		&format.H264{PayloadTyp: 96, SPS: sps, PPS: []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}, PacketizationMode: 1},
		&format.H265{PayloadTyp: 96},
		&format.MPEG4Audio{PayloadTyp: 97, Config: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelCount: 2}, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3},
		&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1},
		&format.G711{PayloadTyp: 8, MULaw: false, SampleRate: 8000, ChannelCount: 1},
		&format.Opus{PayloadTyp: 111, ChannelCount: 2},
	}
	var out []*track
	for i, f := range formats {
		tr, err := newTrack(i+1, &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}, f)
		if err != nil {
			t.Fatalf("%T: %v", f, err)
		}
		out = append(out, tr)
	}
	return out
}

func TestUnsupportedCodecNamed(t *testing.T) {
	f := &format.MJPEG{}
	_, err := newTrack(1, &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}, f)
	if err == nil || !strings.Contains(err.Error(), "M-JPEG") || !strings.Contains(err.Error(), "H264") {
		t.Fatalf("error %v: want the codec named and the supported ones listed", err)
	}
}

// FuzzTrackDecode feeds arbitrary RTP payloads, as a recorder on the network
// could send them, to every codec's depacketizer: errors are fine, panics
// are not, and every sample that comes out has a payload unless it is the
// marker of media before the first keyframe.
func FuzzTrackDecode(f *testing.F) {
	f.Add(uint8(0), true, []byte{0x65, 0x88, 0x84, 0x00})
	f.Add(uint8(0), true, []byte{0x7c, 0x85, 0x88, 0x84})
	f.Add(uint8(1), true, []byte{0x26, 0x01, 0xaf, 0x00})
	f.Add(uint8(2), true, []byte{0x00, 0x10, 0x00, 0x20, 0x21, 0x22, 0x23, 0x24})
	f.Add(uint8(3), true, []byte{0xff, 0x7f, 0x00})
	f.Add(uint8(5), true, []byte{0xfc, 0xff, 0xfe})
	f.Fuzz(func(t *testing.T, which uint8, marker bool, payload []byte) {
		tracks := testTracks(t)
		tr := tracks[int(which)%len(tracks)]
		for i := 0; i < 3; i++ {
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: marker, SequenceNumber: uint16(i), Timestamp: uint32(i * 3000)}, Payload: payload}
			samples, err := tr.decode(pkt, int64(i*3000))
			if err != nil {
				continue
			}
			for _, s := range samples {
				if !s.hasMedia() && s.sync {
					t.Fatalf("%s: keyframe sample without payload", tr.info.name)
				}
			}
		}
	})
}

// A lost packet that ended an access unit (its marker) leaves that access
// unit without its end: it is dropped (the loss is told with the next
// sample), and every later access unit comes out whole, on its own last
// packet, with its own time. (gortsplib's depacketizer, left alone, hands
// the broken one out when the next one's first NAL unit completes, with
// that packet's time, and from then on runs an access unit behind: at the
// next keyframe two samples had one time, a discontinuity of no time in the
// record where a packet was lost.)
func TestLostMarkerKeepsTimestamps(t *testing.T) {
	tr := testTracks(t)[0] // H264, no B-frames below
	h := tr.format.(*format.H264)
	idr := append([]byte{0x65, 0x88}, make([]byte, 3000)...)
	slice := append([]byte{0x41, 0x9a}, make([]byte, 3000)...)
	enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1, PayloadMaxSize: 1200}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	var seq uint16
	var got []int64
	for i := 0; i < 8; i++ {
		au := [][]byte{{0x09, 0xf0}, slice} // an access unit delimiter, a slice
		if i == 0 || i == 5 {
			au = [][]byte{h.SPS, h.PPS, idr}
		}
		pkts, err := enc.Encode(au)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkts) < 3 {
			t.Fatalf("%d packets an access unit; want several", len(pkts))
		}
		pts := int64(i * 3000)
		for j, pkt := range pkts {
			pkt.SequenceNumber, pkt.Timestamp = seq, uint32(pts)
			seq++
			if i == 2 && j == len(pkts)-1 {
				continue // the marker of the third access unit is lost
			}
			tr.sequence(pkt)
			samples, _ := tr.decode(pkt, pts)
			for _, s := range samples {
				if !pkt.Marker || s.pts != pts {
					t.Fatalf("access unit %d, packet %d of %d: a sample of %d came out", i, j+1, len(pkts), s.pts)
				}
				got = append(got, s.pts)
			}
		}
	}
	want := []int64{0, 3000, 9000, 12000, 15000, 18000, 21000}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("samples at %v, want %v", got, want)
	}
	if tr.lost != 1 {
		t.Fatalf("%d packets counted lost, want 1", tr.lost)
	}
}
