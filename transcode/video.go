package transcode

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asticode/go-astiav"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/bodycam/bodycam/media"
)

// H.264 output settings: libx264, preset superfast, tune zerolatency (no
// look-ahead, no frame threads: one frame in, one packet out), profile
// constrained baseline (no B-frames, no CABAC: what every WebRTC browser
// decodes), average 2.5 Mbit/s capped by a VBV of 2.5 Mbit over one second
// so the stream suits a network link. Rate control assumes the frame rate
// measured between the first two frames (zerolatency's constant-rate mode;
// timestamp-driven rate control would cost a frame of delay). An IDR at
// least every 2 s and on RequestKeyframe, each preceded by SPS and PPS.
//
// The preset, measured on 720p30 at 2.5 Mbit/s (a Mandelbrot zoom, a hard
// source): ultrafast 32.6 dB PSNR for ~5 ms of CPU per frame, superfast
// 34.3 dB for ~6.5 ms, veryfast 34.4 dB for ~10 ms. superfast keeps
// veryfast's picture (ultrafast also drops the deblocking filter) at little
// more than ultrafast's cost.
const (
	VideoClockRate = 90000
	videoBitrate   = 2_500_000
	keyframeEvery  = 2 * time.Second
	nominalFPS     = 30 // when the first two frames do not tell the frame rate
	encoderThreads = 2  // x264 sliced threads, no delay
	x264Preset     = "superfast"
)

var startCode = []byte{0, 0, 0, 1}

// Video decodes H.264 or H.265 and encodes H.264 that browsers play over
// WebRTC: constrained baseline, yuv420p, input size, no B-frames, 90 kHz
// timestamps with PTS == DTS in presentation order.
type Video struct {
	inRate int

	dec, enc   *astiav.CodecContext
	sws        *astiav.SoftwareScaleContext
	pkt, out   *astiav.Packet
	frame, yuv *astiav.Frame
	held       *astiav.Frame // the first frame, until the second gives the frame rate
	holding    bool
	fps        astiav.Rational
	buf        []byte

	width, height int                 // of the open encoder
	recv          map[int64]time.Time // decoder input PTS -> Recv
	gotKeyframe   bool
	sentPTS       bool
	lastPTS       int64 // last PTS given to the encoder (input clock)
	lastKey       int64 // PTS of the last forced or periodic keyframe
	wantKey       atomic.Bool
	flushed       bool
}

// NewVideo returns a transcoder for the H.264 or H.265 track in. Parameter
// sets in in.Params are given to the decoder up front; in-band ones work too.
func NewVideo(in media.Track) (*Video, error) {
	Init()
	var id astiav.CodecID
	switch in.Codec {
	case media.H264:
		id = astiav.CodecIDH264
	case media.H265:
		id = astiav.CodecIDHevc
	default:
		return nil, fmt.Errorf("transcode: video codec %q, want H264 or H265", in.Codec)
	}
	if in.ClockRate <= 0 {
		return nil, errors.New("transcode: video track without clock rate")
	}
	if astiav.FindEncoderByName("libx264") == nil {
		return nil, errors.New("transcode: FFmpeg has no libx264 encoder")
	}
	codec := astiav.FindDecoder(id)
	if codec == nil {
		return nil, fmt.Errorf("transcode: FFmpeg has no %s decoder", in.Codec)
	}
	v := &Video{
		inRate: in.ClockRate,
		dec:    astiav.AllocCodecContext(codec),
		pkt:    astiav.AllocPacket(),
		out:    astiav.AllocPacket(),
		frame:  astiav.AllocFrame(),
		yuv:    astiav.AllocFrame(),
		held:   astiav.AllocFrame(),
		recv:   make(map[int64]time.Time),
	}
	if len(in.Params) > 0 {
		var extra []byte
		for _, p := range in.Params {
			extra = append(append(extra, startCode...), p...)
		}
		if err := v.dec.SetExtraData(extra); err != nil {
			v.Close()
			return nil, fmt.Errorf("transcode: decoder parameter sets: %w", err)
		}
	}
	// One thread: frame threading would hold back a frame per thread.
	v.dec.SetThreadCount(1)
	v.dec.SetFlags(v.dec.Flags().Add(astiav.CodecContextFlagLowDelay))
	if err := openCodec(v.dec, codec, nil); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// RequestKeyframe makes the next encoded frame an IDR (with SPS and PPS),
// e.g. when a viewer joins or reports loss (PLI). Unlike the other methods
// it may be called from any goroutine.
func (v *Video) RequestKeyframe() { v.wantKey.Store(true) }

// Transcode decodes one access unit given in decode order (u.NALUs, u.PTS
// and u.DTS in the input clock rate) and returns the H.264 frames that are
// ready, in presentation order: 90 kHz PTS == DTS, Keyframe set on IDRs,
// one NAL unit per NALUs element, Recv of the input frame. Units before the
// first keyframe give ErrNoKeyframe; a unit the decoder rejects gives an
// error, and decoding resumes (at the latest) with the next keyframe. Units
// returned along with an error are valid.
func (v *Video) Transcode(u media.Unit) ([]media.Unit, error) {
	if v.flushed {
		return nil, errors.New("transcode: video used after Flush")
	}
	if !v.gotKeyframe {
		if !u.Keyframe {
			return nil, ErrNoKeyframe
		}
		v.gotKeyframe = true
	}
	if len(u.NALUs) == 0 {
		return nil, nil
	}
	parts := make([][]byte, 0, 2*len(u.NALUs))
	for _, n := range u.NALUs {
		parts = append(parts, startCode, n)
	}
	if err := fillPacket(v.pkt, &v.buf, parts...); err != nil {
		return nil, err
	}
	v.pkt.SetPts(u.PTS)
	v.pkt.SetDts(u.DTS)
	if u.Keyframe {
		v.pkt.SetFlags(astiav.NewPacketFlags(astiav.PacketFlagKey))
	}
	if len(v.recv) > 256 { // frames the decoder dropped never come back
		clear(v.recv)
	}
	v.recv[u.PTS] = u.Recv
	err := v.dec.SendPacket(v.pkt)
	v.pkt.Unref()
	if err != nil {
		return nil, fmt.Errorf("transcode: %s decode: %w", v.dec.CodecID(), err)
	}
	return v.decoded(nil)
}

// Flush drains the decoder and the encoder; the Video only accepts Close
// afterwards.
func (v *Video) Flush() ([]media.Unit, error) {
	if v.flushed {
		return nil, nil
	}
	v.flushed = true
	if err := v.dec.SendPacket(nil); err != nil {
		return nil, fmt.Errorf("transcode: decoder flush: %w", err)
	}
	out, err := v.decoded(nil)
	if err != nil {
		return out, err
	}
	if v.holding { // a single frame: no frame rate to measure
		v.fps = astiav.NewRational(nominalFPS, 1)
		if out, err = v.encodeHeld(out); err != nil {
			return out, err
		}
	}
	if v.enc == nil {
		return out, nil
	}
	if err := v.enc.SendFrame(nil); err != nil {
		return out, fmt.Errorf("transcode: x264 flush: %w", err)
	}
	return v.packets(out)
}

// decoded encodes every frame the decoder has ready.
func (v *Video) decoded(out []media.Unit) ([]media.Unit, error) {
	for {
		if err := v.dec.ReceiveFrame(v.frame); err != nil {
			if again(err) {
				return out, nil
			}
			return out, fmt.Errorf("transcode: %s decode: %w", v.dec.CodecID(), err)
		}
		var err error
		out, err = v.encode(v.frame, out)
		v.frame.Unref()
		if err != nil {
			return out, err
		}
	}
}

// encode gives one decoded frame to the encoder. Frames without a timestamp
// or not after the previous one are dropped: the output's PTS must
// increase. The first frame waits for the second, whose distance gives the
// frame rate x264's rate control works with.
func (v *Video) encode(f *astiav.Frame, out []media.Unit) ([]media.Unit, error) {
	pts := f.Pts()
	if pts == astiav.NoPtsValue || (v.sentPTS && pts <= v.lastPTS) {
		return out, nil
	}
	if v.fps.Num() == 0 {
		if !v.holding {
			if err := v.held.Ref(f); err != nil {
				return out, fmt.Errorf("transcode: frame: %w", err)
			}
			v.holding = true
			return out, nil
		}
		if pts <= v.held.Pts() {
			return out, nil
		}
		v.fps = frameRate(v.inRate, pts-v.held.Pts())
		var err error
		out, err = v.encodeHeld(out)
		if err != nil {
			return out, err
		}
	}
	return v.encodeFrame(f, out)
}

// encodeHeld encodes the frame held back for the frame rate, if any.
func (v *Video) encodeHeld(out []media.Unit) ([]media.Unit, error) {
	if !v.holding {
		return out, nil
	}
	v.holding = false
	out, err := v.encodeFrame(v.held, out)
	v.held.Unref()
	return out, err
}

// frameRate is clockRate/delta, reduced, or nominalFPS when out of
// 1..240 frames/s.
func frameRate(clockRate int, delta int64) astiav.Rational {
	if delta <= 0 || float64(clockRate)/float64(delta) < 1 || float64(clockRate)/float64(delta) > 240 {
		return astiav.NewRational(nominalFPS, 1)
	}
	a, b := int64(clockRate), delta
	for b != 0 {
		a, b = b, a%b
	}
	return astiav.NewRational(int(int64(clockRate)/a), int(delta/a))
}

// encodeFrame gives f to the encoder and collects its output.
func (v *Video) encodeFrame(f *astiav.Frame, out []media.Unit) ([]media.Unit, error) {
	pts := f.Pts()
	if err := v.setup(f); err != nil {
		return out, err
	}
	if f.PixelFormat() != astiav.PixelFormatYuv420P {
		v.yuv.Unref()
		v.yuv.SetWidth(v.width)
		v.yuv.SetHeight(v.height)
		v.yuv.SetPixelFormat(astiav.PixelFormatYuv420P)
		if err := v.sws.ScaleFrame(f, v.yuv); err != nil {
			return out, fmt.Errorf("transcode: pixel format conversion: %w", err)
		}
		v.yuv.SetPts(pts)
		f = v.yuv
	}
	// The decoder's picture type would make x264 copy the input's
	// I-frames; keyframes are ours to place.
	f.SetPictureType(astiav.PictureTypeNone)
	if v.wantKey.Swap(false) || !v.sentPTS || pts-v.lastKey >= int64(keyframeEvery.Seconds()*float64(v.inRate)) {
		f.SetPictureType(astiav.PictureTypeI)
		v.lastKey = pts
	}
	v.sentPTS, v.lastPTS = true, pts
	err := v.enc.SendFrame(f)
	v.yuv.Unref()
	if err != nil {
		return out, fmt.Errorf("transcode: x264 encode: %w", err)
	}
	return v.packets(out)
}

// packets collects the encoder's output.
func (v *Video) packets(out []media.Unit) ([]media.Unit, error) {
	for {
		if err := v.enc.ReceivePacket(v.out); err != nil {
			if again(err) {
				return out, nil
			}
			return out, fmt.Errorf("transcode: x264 encode: %w", err)
		}
		var nalus h264.AnnexB
		err := nalus.Unmarshal(v.out.Data())
		pts := v.out.Pts()
		key := v.out.Flags().Has(astiav.PacketFlagKey)
		v.out.Unref()
		if err != nil {
			return out, fmt.Errorf("transcode: x264 output: %w", err)
		}
		recv := v.recv[pts]
		for p := range v.recv {
			if p <= pts {
				delete(v.recv, p)
			}
		}
		ts := astiav.RescaleQ(pts, astiav.NewRational(1, v.inRate), astiav.NewRational(1, VideoClockRate))
		out = append(out, media.Unit{PTS: ts, DTS: ts, Keyframe: key, NALUs: nalus, Recv: recv})
	}
}

// setup opens the encoder (and the pixel format converter) for the size of
// f, again if the size changes mid-stream.
func (v *Video) setup(f *astiav.Frame) error {
	w, h := f.Width(), f.Height()
	if v.enc != nil && w == v.width && h == v.height &&
		(f.PixelFormat() == astiav.PixelFormatYuv420P || v.sws != nil && v.sws.SourcePixelFormat() == f.PixelFormat()) {
		return nil
	}
	if w <= 0 || h <= 0 {
		return fmt.Errorf("transcode: decoded frame of %dx%d", w, h)
	}
	v.freeEncoder()
	codec := astiav.FindEncoderByName("libx264")
	enc := astiav.AllocCodecContext(codec)
	v.enc = enc
	enc.SetWidth(w)
	enc.SetHeight(h)
	enc.SetPixelFormat(astiav.PixelFormatYuv420P)
	enc.SetSampleAspectRatio(f.SampleAspectRatio())
	enc.SetTimeBase(astiav.NewRational(1, v.inRate))
	enc.SetFramerate(v.fps)
	enc.SetBitRate(videoBitrate)
	enc.SetGopSize(max(1, int(keyframeEvery.Seconds()*v.fps.Float64())))
	enc.SetThreadCount(encoderThreads)
	// No GLOBAL_HEADER flag: x264 then repeats SPS and PPS before every IDR.
	if err := openCodec(enc, codec, map[string]string{
		"preset":     x264Preset,
		"tune":       "zerolatency",
		"profile":    "baseline",
		"bf":         "0",
		"maxrate":    strconv.Itoa(videoBitrate),
		"bufsize":    strconv.Itoa(videoBitrate),
		"forced-idr": "1",
	}); err != nil {
		return err
	}
	if f.PixelFormat() != astiav.PixelFormatYuv420P {
		sws, err := astiav.CreateSoftwareScaleContext(w, h, f.PixelFormat(), w, h, astiav.PixelFormatYuv420P,
			astiav.NewSoftwareScaleContextFlags(astiav.SoftwareScaleContextFlagBilinear))
		if err != nil {
			return fmt.Errorf("transcode: pixel format conversion from %s: %w", f.PixelFormat(), err)
		}
		v.sws = sws
	}
	v.width, v.height = w, h
	v.wantKey.Store(true)
	return nil
}

func (v *Video) freeEncoder() {
	if v.enc != nil {
		v.enc.Free()
		v.enc = nil
	}
	if v.sws != nil {
		v.sws.Free()
		v.sws = nil
	}
	v.width, v.height = 0, 0
}

// Close frees the decoder, encoder, packets and frames.
func (v *Video) Close() {
	v.freeEncoder()
	if v.dec != nil {
		v.dec.Free()
		v.dec = nil
	}
	for _, p := range []*astiav.Packet{v.pkt, v.out} {
		if p != nil {
			p.Free()
		}
	}
	v.pkt, v.out = nil, nil
	for _, f := range []*astiav.Frame{v.frame, v.yuv, v.held} {
		if f != nil {
			f.Free()
		}
	}
	v.frame, v.yuv, v.held = nil, nil, nil
}
