package ingest

import (
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
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
