package ingest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpfragmented"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/pion/rtp"

	"github.com/bodycam/bodycam/media"
)

// errUnsupported: the announced codec cannot be recorded.
var errUnsupported = errors.New("unsupported codec")

// track turns one announced format's RTP packets into samples.
type track struct {
	info trackInfo
	// live describes the track to the live relay.
	live   media.Track
	media  *description.Media
	format format.Format
	// decode returns the samples completed by pkt, whose timestamp is pts in
	// the track's timescale. A sample without media stands for a frame that
	// arrived but cannot be stored (it may come with an error).
	decode func(pkt *rtp.Packet, pts int64) ([]sample, error)
	// ready reports whether the track knows enough to write the init segment
	// (video needs its parameter sets, from the SDP or in-band).
	ready func() bool
	// apply takes in-band parameter sets into the codec. decode keeps its
	// own copies; the codec belongs to the session's writer, which calls
	// apply and ready under the session's lock (on the reader goroutine, or
	// in the session's end).
	apply func(params [][]byte)

	// RTP sequence numbers, on the reader goroutine: where the next packet
	// should be, and packets lost since the last sample (the sample after
	// a loss carries the count; broken tells the video decoder).
	nextSeq uint16
	seqSeen bool
	lost    int
	broken  bool

	// Received since the metrics were last told, on the reader goroutine.
	packets, bytes int
	// out holds what decode returns, reused: the caller is done with a
	// decode's samples before the next decode.
	out []sample
}

// one returns s as decode's result.
func (t *track) one(s sample) []sample {
	t.out = append(t.out[:0], s)
	return t.out
}

// sequence notes pkt's sequence number and counts the packets missing
// before it. A packet from before the expected one (late or repeated) is
// not a loss.
func (t *track) sequence(pkt *rtp.Packet) {
	if t.seqSeen {
		gap := pkt.SequenceNumber - t.nextSeq
		if gap >= 0x8000 {
			return
		}
		if gap > 0 {
			t.lost += int(gap)
			t.broken = true
		}
	}
	t.nextSeq, t.seqSeen = pkt.SequenceNumber+1, true
}

// supportedCodecs is what the error for anything else lists.
const supportedCodecs = "H264, H265, AAC (mpeg4-generic or MP4A-LATM), G711 (PCMA/PCMU), Opus"

// newTrack prepares the recording of one format; it fails with
// errUnsupported naming the codec for anything bodycam cannot record.
func newTrack(id int, medi *description.Media, forma format.Format) (*track, error) {
	t := &track{media: medi, format: forma, ready: func() bool { return true }, apply: func([][]byte) {}}
	t.info.id = id
	switch f := forma.(type) {
	case *format.H264:
		return t, t.h264(f)
	case *format.H265:
		return t, t.h265(f)
	case *format.MPEG4Audio:
		return t, t.aac(f)
	case *format.MPEG4AudioLATM:
		return t, t.latm(f)
	case *format.G711:
		return t, t.g711(f)
	case *format.Opus:
		return t, t.opus(f)
	}
	return nil, fmt.Errorf("%w %q (%s media); bodycam records %s", errUnsupported, forma.Codec(), medi.Type, supportedCodecs)
}

func (t *track) h264(f *format.H264) error {
	dec, err := f.CreateDecoder()
	if err != nil {
		return err
	}
	c := &codecs.H264{SPS: f.SPS, PPS: f.PPS}
	t.info = trackInfo{id: t.info.id, video: true, timescale: 90000, codec: c, name: "H264", nominal: 3000}
	t.live = media.Track{Codec: media.H264, ClockRate: 90000, Params: nonNil(f.SPS, f.PPS)}
	if sps := (h264.SPS{}); f.SPS != nil && sps.Unmarshal(f.SPS) == nil {
		t.info.name = fmt.Sprintf("H264 %dx%d", sps.Width(), sps.Height())
		t.live.Width, t.live.Height = sps.Width(), sps.Height()
	}
	slots := []*[]byte{&c.SPS, &c.PPS}
	t.video(videoCodec{
		params: [][]byte{f.SPS, f.PPS},
		slot: func(nalu []byte) int {
			switch h264.NALUType(nalu[0] & 0x1f) {
			case h264.NALUTypeSPS:
				return 0
			case h264.NALUTypePPS:
				return 1
			}
			return -1
		},
		decode: func(pkt *rtp.Packet) ([][]byte, error) {
			au, err := dec.Decode(pkt)
			if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				return nil, nil
			}
			return au, err
		},
		reset:        func() { dec, _ = f.CreateDecoder() }, // made once above: it does not fail
		randomAccess: h264.IsRandomAccess,
		extractor:    func() func([][]byte, int64) (int64, error) { return h264.NewDTSExtractor().Extract },
	}, slots)
	return nil
}

func (t *track) h265(f *format.H265) error {
	dec, err := f.CreateDecoder()
	if err != nil {
		return err
	}
	c := &codecs.H265{VPS: f.VPS, SPS: f.SPS, PPS: f.PPS}
	t.info = trackInfo{id: t.info.id, video: true, timescale: 90000, codec: c, name: "H265", nominal: 3000}
	t.live = media.Track{Codec: media.H265, ClockRate: 90000, Params: nonNil(f.VPS, f.SPS, f.PPS)}
	if sps := (h265.SPS{}); f.SPS != nil && sps.Unmarshal(f.SPS) == nil {
		t.info.name = fmt.Sprintf("H265 %dx%d", sps.Width(), sps.Height())
		t.live.Width, t.live.Height = sps.Width(), sps.Height()
	}
	slots := []*[]byte{&c.VPS, &c.SPS, &c.PPS}
	t.video(videoCodec{
		params: [][]byte{f.VPS, f.SPS, f.PPS},
		slot: func(nalu []byte) int {
			switch h265.NALUType((nalu[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				return 0
			case h265.NALUType_SPS_NUT:
				return 1
			case h265.NALUType_PPS_NUT:
				return 2
			}
			return -1
		},
		decode: func(pkt *rtp.Packet) ([][]byte, error) {
			au, err := dec.Decode(pkt)
			if errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
				return nil, nil
			}
			return au, err
		},
		reset:        func() { dec, _ = f.CreateDecoder() }, // made once above: it does not fail
		randomAccess: h265.IsRandomAccess,
		extractor:    func() func([][]byte, int64) (int64, error) { return h265.NewDTSExtractor().Extract },
	}, slots)
	return nil
}

// videoCodec is what differs between H.264 and H.265 for recording.
type videoCodec struct {
	params       [][]byte                            // parameter sets from the SDP (may be nil)
	slot         func(nalu []byte) int               // which parameter set a NALU is, or -1
	decode       func(*rtp.Packet) ([][]byte, error) // an access unit, or nil while more packets are needed
	reset        func()                              // drops what the depacketizer holds
	randomAccess func([][]byte) bool
	extractor    func() func(au [][]byte, pts int64) (int64, error) // a DTS extractor, made at the first keyframe
}

// video sets up decode, ready and apply for an H.264 or H.265 track. The
// reader goroutine keeps its own copies of the parameter sets (for the DTS
// extractor, which reads them in-band) and passes changes along with the
// sample; apply, by the session's writer, puts them into the codec (slots).
func (t *track) video(vc videoCodec, slots []*[]byte) {
	t.ready = func() bool {
		for _, s := range slots {
			if *s == nil {
				return false
			}
		}
		return true
	}
	t.apply = func(params [][]byte) {
		for _, p := range params {
			if i := vc.slot(p); i >= 0 {
				*slots[i] = p
			}
		}
	}
	own := append([][]byte(nil), vc.params...)
	var extract func([][]byte, int64) (int64, error)
	// After lost packets the DTS extractor, which counts pictures, loses its
	// place (it takes the missing ones for reordered frames); it starts
	// again at the next keyframe. Until then, in a stream without B-frames
	// (decode order is display order) a frame's DTS is its PTS, and the
	// frame is kept as received: a decoder shows it with what it lacks
	// concealed. With B-frames the order cannot be worked out, and frames
	// go on without media: the segmenter records them as undecodable.
	var estimating, reordered bool
	var lastDTS int64
	// The access unit begun (packets given, none out since): its RTP
	// timestamp and PTS. The depacketizer also ends an access unit when a
	// packet of another timestamp comes (for cameras that set no marker),
	// and then hands out the earlier one, which keeps its own PTS. When
	// packets were lost since the last access unit came out, the one begun
	// lost its end (at least its marker): it is dropped there, its loss told
	// with the next sample, rather than handed out late with the next one's
	// time, which would leave the depacketizer an access unit behind.
	var open bool
	var openTS uint32
	var openPTS int64
	t.decode = func(pkt *rtp.Packet, pts int64) ([]sample, error) {
		if open && pkt.Timestamp != openTS && t.broken {
			vc.reset()
			open = false
		}
		late := open && pkt.Timestamp != openTS
		au, err := vc.decode(pkt)
		switch {
		case au != nil && late:
			pts, openTS, openPTS = openPTS, pkt.Timestamp, pts
		case au != nil:
			open = false
		case err == nil:
			open, openTS, openPTS = true, pkt.Timestamp, pts
		}
		if err != nil || au == nil {
			return nil, err
		}
		var changed [][]byte
		for _, nalu := range au {
			if len(nalu) == 0 {
				continue
			}
			if i := vc.slot(nalu); i >= 0 && !bytes.Equal(own[i], nalu) {
				own[i] = append([]byte(nil), nalu...)
				changed = append(changed, own[i])
			}
		}
		sync := vc.randomAccess(au)
		if t.broken && extract != nil {
			estimating = true
		}
		t.broken = false
		if sync && (extract == nil || estimating) {
			extract, estimating = vc.extractor(), false
		}
		if extract == nil {
			return t.one(sample{pts: pts, dts: pts, params: changed, undecodable: "no keyframe had come yet"}), nil
		}
		var dtsErr error
		if !estimating {
			d, err := extract(withParams(au, sync, own...), pts)
			if err == nil {
				reordered = reordered || d != pts
				lastDTS = d
				// The NAL units are the depacketizer's own, never reused: the
				// segmenter stores them length-prefixed and the live relay
				// shares them.
				return t.one(sample{pts: pts, dts: d, sync: sync, nalus: au, params: changed}), nil
			}
			dtsErr = fmt.Errorf("%w (until the next keyframe)", err)
			estimating = true
		}
		if reordered {
			return t.one(sample{pts: pts, dts: pts, params: changed,
				undecodable: "packets were lost, and with B-frames the frames' order cannot be worked out without them"}), dtsErr
		}
		lastDTS = max(pts, lastDTS+1)
		return t.one(sample{pts: pts, dts: lastDTS, sync: sync, nalus: au, params: changed}), dtsErr
	}
}

func (t *track) aac(f *format.MPEG4Audio) error {
	if f.Config == nil {
		return fmt.Errorf("%w: AAC without an AudioSpecificConfig", errUnsupported)
	}
	dec, err := f.CreateDecoder()
	if err != nil {
		return err
	}
	rate := f.Config.SampleRate
	t.info = trackInfo{id: t.info.id, timescale: uint32(rate), codec: &codecs.MPEG4Audio{Config: *f.Config},
		name: fmt.Sprintf("AAC %dHz %dch", rate, f.Config.ChannelCount), nominal: mpeg4audio.SamplesPerAccessUnit}
	t.live = aacLive(f.Config)
	t.decode = func(pkt *rtp.Packet, pts int64) ([]sample, error) {
		aus, err := dec.Decode(pkt)
		if err != nil {
			return nil, err
		}
		out := t.out[:0]
		for i, au := range aus {
			p := pts + int64(i)*mpeg4audio.SamplesPerAccessUnit
			out = append(out, sample{pts: p, dts: p, sync: true, payload: au})
		}
		t.out = out
		return out, nil
	}
	return nil
}

// latm records AAC sent as MP4A-LATM (GStreamer's rtpmp4apay): each
// AudioMuxElement carries one AAC frame per subframe.
func (t *track) latm(f *format.MPEG4AudioLATM) error {
	smc := f.StreamMuxConfig
	if smc == nil || len(smc.Programs) == 0 || len(smc.Programs[0].Layers) == 0 || smc.Programs[0].Layers[0].AudioSpecificConfig == nil {
		return fmt.Errorf("%w: MP4A-LATM without a StreamMuxConfig in the SDP", errUnsupported)
	}
	if f.CPresent {
		return fmt.Errorf("%w: MP4A-LATM with in-band configuration (cpresent=1)", errUnsupported)
	}
	cfg := smc.Programs[0].Layers[0].AudioSpecificConfig
	dec, err := f.CreateDecoder()
	if err != nil {
		return err
	}
	rate := cfg.SampleRate
	t.info = trackInfo{id: t.info.id, timescale: uint32(rate), codec: &codecs.MPEG4Audio{Config: *cfg},
		name: fmt.Sprintf("AAC %dHz %dch (LATM)", rate, cfg.ChannelCount), nominal: mpeg4audio.SamplesPerAccessUnit}
	t.live = aacLive(cfg)
	t.decode = func(pkt *rtp.Packet, pts int64) ([]sample, error) {
		buf, err := dec.Decode(pkt)
		if err != nil {
			if errors.Is(err, rtpfragmented.ErrMorePacketsNeeded) {
				return nil, nil
			}
			return nil, err
		}
		ame := mpeg4audio.AudioMuxElement{StreamMuxConfig: smc}
		if err := ame.Unmarshal(buf); err != nil {
			return nil, err
		}
		out := t.out[:0]
		for i, sub := range ame.Payloads {
			if len(sub) == 0 || len(sub[0]) == 0 {
				continue
			}
			p := pts + int64(i)*mpeg4audio.SamplesPerAccessUnit
			out = append(out, sample{pts: p, dts: p, sync: true, payload: sub[0][0]})
		}
		t.out = out
		return out, nil
	}
	return nil
}

// g711 records G.711 as 16-bit linear PCM: ISO BMFF has no G.711 sample
// entry, and the expansion is exact (every G.711 byte maps to one 16-bit
// value and back), so nothing the recorder sent is lost.
func (t *track) g711(f *format.G711) error {
	dec, err := f.CreateDecoder()
	if err != nil {
		return err
	}
	law := "PCMA"
	if f.MULaw {
		law = "PCMU"
	}
	ch := max(f.ChannelCount, 1)
	t.info = trackInfo{id: t.info.id, timescale: uint32(f.SampleRate),
		codec: &codecs.LPCM{BitDepth: 16, SampleRate: f.SampleRate, ChannelCount: ch},
		name:  fmt.Sprintf("G711 %s %dHz (stored as 16-bit PCM)", law, f.SampleRate), nominal: int64(f.SampleRate / 50)}
	t.live = media.Track{Codec: media.Codec(law), ClockRate: f.SampleRate, Channels: ch}
	t.decode = func(pkt *rtp.Packet, pts int64) ([]sample, error) {
		enc, err := dec.Decode(pkt)
		if err != nil {
			return nil, err
		}
		var pcm []byte
		if f.MULaw {
			var m g711.Mulaw
			m.Unmarshal(enc)
			pcm = m
		} else {
			var a g711.Alaw
			a.Unmarshal(enc)
			pcm = a
		}
		return t.one(sample{pts: pts, dts: pts, sync: true, payload: pcm, raw: enc}), nil
	}
	return nil
}

func (t *track) opus(f *format.Opus) error {
	dec, err := f.CreateDecoder()
	if err != nil {
		return err
	}
	t.info = trackInfo{id: t.info.id, timescale: 48000, codec: &codecs.Opus{ChannelCount: max(f.ChannelCount, 1)},
		name: fmt.Sprintf("Opus %dch", max(f.ChannelCount, 1)), nominal: 960}
	t.live = media.Track{Codec: media.Opus, ClockRate: 48000, Channels: max(f.ChannelCount, 1)}
	t.decode = func(pkt *rtp.Packet, pts int64) ([]sample, error) {
		p, err := dec.Decode(pkt)
		if err != nil {
			return nil, err
		}
		return t.one(sample{pts: pts, dts: pts, sync: true, payload: p}), nil
	}
	return nil
}

// clockRate is the RTP clock of a track; PacketPTS is in these units.
func (t *track) clockRate() int { return t.format.ClockRate() }

// withParams puts the parameter sets in front of a keyframe for the DTS
// extractor, which reads them in-band; recorders that send them only in the
// SDP (ffmpeg) would otherwise have no DTS. The stored sample stays as sent.
func withParams(au [][]byte, sync bool, params ...[]byte) [][]byte {
	if !sync {
		return au
	}
	out := make([][]byte, 0, len(params)+len(au))
	for _, p := range params {
		if p != nil {
			out = append(out, p)
		}
	}
	return append(out, au...)
}

func aacLive(cfg *mpeg4audio.AudioSpecificConfig) media.Track {
	asc, _ := cfg.Marshal()
	return media.Track{Codec: media.AAC, ClockRate: cfg.SampleRate, Channels: cfg.ChannelCount, Config: asc}
}

func nonNil(params ...[]byte) [][]byte {
	var out [][]byte
	for _, p := range params {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// liveUnit is a sample as the live relay takes it. The relay may keep it
// (the current GOP), so it shares nothing the reader goroutine reuses: video
// NAL units are the depacketizer's, never reused (the relay and the
// segmenter only read them); audio is copied.
func (t *track) liveUnit(s sample) media.Unit {
	u := media.Unit{PTS: s.pts, DTS: s.dts, Keyframe: s.sync, Recv: s.recv}
	switch {
	case s.nalus != nil:
		u.NALUs = s.nalus[:len(s.nalus):len(s.nalus)]
	case s.raw != nil:
		u.Data = append([]byte(nil), s.raw...)
	default:
		u.Data = append([]byte(nil), s.payload...)
	}
	return u
}
