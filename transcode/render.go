package transcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/asticode/go-astiav"
)

// ErrNothingRendered: the window holds no video frame (it is past the
// end). Another attempt cannot change that.
var ErrNothingRendered = errors.New("transcode: render: nothing to render")

// RenderOptions say what a rendition of a stream is: which part, how
// large, at what bitrates.
type RenderOptions struct {
	// From and To are the part to render, in the stream's presentation
	// time (PictureInfo.PTS: a recording's media time): frames at or after
	// From and before To. To 0: to the end. The rendition's own clock
	// is the source's less From.
	From, To time.Duration
	// Width of the video (even); 0 keeps the source's. The height keeps
	// the display aspect ratio, rounded to even. Never larger than the
	// source.
	Width int
	// VideoBitrate and AudioBitrate in bits per second (defaults 600 k and
	// 96 k).
	VideoBitrate, AudioBitrate int
	// Preset is x264's (default "veryfast").
	Preset string
	// Boxes are hidden (pixelated or filled) in every frame they are on,
	// in the source's picture before scaling; Mutes are silenced; Mark,
	// when set, is written on every frame (a redacted copy says so).
	Boxes []Box
	Mutes []Window
	Mark  string
}

// RenderInfo says what was rendered.
type RenderInfo struct {
	Width, Height             int
	SourceWidth, SourceHeight int
	SourceVideo, SourceAudio  string // the source's codecs ("" when it has no audio)
	Audio                     bool   // the rendition has an audio track
	Frames                    int    // video frames encoded
	// First and Last are the source presentation times of the first and
	// the last video frame kept.
	First, Last time.Duration
	Written     int64 // bytes written
}

// Render decodes the video and audio of objects (read in order as one file,
// as Picture reads them), keeps the frames of [From, To), scales the video
// and encodes H.264 (libx264, yuv420p, no B-frames, a keyframe every 2 s) and AAC, and
// writes a fragmented MP4 to w (frag_keyframe+empty_moov+delay_moov+default_base_moof:
// the tracks' starts kept). The cut is exact to the frame: decoding starts at the objects'
// first keyframe, frames before From are decoded and dropped. One thread
// per codec: workers bound their own parallelism. ctx ends it between
// reads.
func Render(ctx context.Context, src Ranges, objects []Object, o RenderOptions, w io.Writer) (RenderInfo, error) {
	Init()
	if o.VideoBitrate <= 0 {
		o.VideoBitrate = 600_000
	}
	if o.AudioBitrate <= 0 {
		o.AudioBitrate = 96_000
	}
	if o.Preset == "" {
		o.Preset = "veryfast"
	}
	o.Width &^= 1
	if err := CheckRedaction(o.Boxes, o.Mutes); err != nil {
		return RenderInfo{}, fmt.Errorf("transcode: render: %w", err)
	}
	o.Boxes = sortKeys(o.Boxes)
	r := &renderer{o: o}
	defer r.free()
	if err := r.open(ctx, src, objects); err != nil {
		return r.info, err
	}
	out := &countWriter{w: w, ctx: ctx}
	err := r.run(out)
	r.info.Written = out.n
	if err == nil {
		err = out.err
	}
	return r.info, err
}

// renderer is one Render: the demuxer, a decoder, filter graph and encoder
// per stream, and the muxer.
type renderer struct {
	o    RenderOptions
	info RenderInfo

	in   *concatReader
	inIO *astiav.IOContext
	ifc  *astiav.FormatContext

	v, a *renderStream

	outIO *astiav.IOContext
	ofc   *astiav.FormatContext
	pkt   *astiav.Packet
	// started: the muxer's header is written (both encoders open).
	started bool
	// pending holds encoded packets that came before the muxer could start
	// (the video encoder opens at the first frame kept, the audio one at
	// its first sample).
	pending []*astiav.Packet
}

// renderStream is one stream's path from the demuxer to the muxer.
type renderStream struct {
	in     *astiav.Stream
	dec    *astiav.CodecContext
	graph  *astiav.FilterGraph
	src    *astiav.FilterContext
	sink   *astiav.FilterContext
	enc    *astiav.CodecContext
	out    *astiav.Stream
	frame  *astiav.Frame
	fframe *astiav.Frame
	epkt   *astiav.Packet
	done   bool // past To: nothing more is decoded
	// shift moves the encoder's packets to start at 0 (set from the first).
	shift    int64
	shiftSet bool
	eof      bool // the decoder is flushed
}

func (r *renderer) open(ctx context.Context, src Ranges, objects []Object) error {
	if len(objects) == 0 {
		return errors.New("transcode: render: no objects")
	}
	r.in = &concatReader{ctx: ctx, src: src, objects: objects}
	for _, ob := range objects {
		r.in.size += ob.Size
	}
	var err error
	if r.inIO, err = astiav.AllocIOContext(remuxBuffer, false, r.in.read, r.in.seek, nil); err != nil {
		return fmt.Errorf("transcode: render: %w", err)
	}
	if r.ifc = astiav.AllocFormatContext(); r.ifc == nil {
		return errors.New("transcode: render: cannot allocate a format context")
	}
	r.ifc.SetPb(r.inIO)
	if err := r.ifc.OpenInput("", nil, nil); err != nil {
		r.ifc.Free()
		r.ifc = nil
		return r.in.unreadable(err)
	}
	if err := r.ifc.FindStreamInfo(nil); err != nil {
		return r.in.unreadable(err)
	}
	for _, s := range r.ifc.Streams() {
		switch s.CodecParameters().MediaType() {
		case astiav.MediaTypeVideo:
			if r.v == nil {
				r.v = &renderStream{in: s}
			}
		case astiav.MediaTypeAudio:
			if r.a == nil {
				r.a = &renderStream{in: s}
			}
		}
	}
	if r.v == nil {
		return fmt.Errorf("%w in %s", ErrNoVideo, objects[0].Key)
	}
	r.info.SourceVideo = r.v.in.CodecParameters().CodecID().Name()
	if err := r.v.openDecoder(); err != nil {
		return err
	}
	if r.a != nil {
		r.info.SourceAudio = r.a.in.CodecParameters().CodecID().Name()
		if err := r.a.openDecoder(); err != nil {
			// A track that cannot be decoded is left out, said in the info.
			r.a.freeAll()
			r.a = nil
		}
	}
	r.pkt = astiav.AllocPacket()
	return nil
}

func (s *renderStream) openDecoder() error {
	cp := s.in.CodecParameters()
	codec := astiav.FindDecoder(cp.CodecID())
	if codec == nil {
		return fmt.Errorf("transcode: render: no decoder for %s", cp.CodecID().Name())
	}
	if s.dec = astiav.AllocCodecContext(codec); s.dec == nil {
		return errors.New("transcode: render: cannot allocate a decoder")
	}
	if err := cp.ToCodecContext(s.dec); err != nil {
		return fmt.Errorf("transcode: render: %w", err)
	}
	s.dec.SetThreadCount(1)
	s.dec.SetTimeBase(s.in.TimeBase())
	if err := s.dec.Open(codec, nil); err != nil {
		return fmt.Errorf("transcode: render: open %s decoder: %w", cp.CodecID().Name(), err)
	}
	s.frame, s.fframe, s.epkt = astiav.AllocFrame(), astiav.AllocFrame(), astiav.AllocPacket()
	return nil
}

// run reads the objects to the end (or past To on every stream), then
// drains decoders, filters and encoders, and ends the file.
func (r *renderer) run(out *countWriter) error {
	var err error
	if r.outIO, err = astiav.AllocIOContext(remuxBuffer, true, nil, nil, out.write); err != nil {
		return fmt.Errorf("transcode: render: %w", err)
	}
	if r.ofc, err = astiav.AllocOutputFormatContext(nil, "mp4", ""); err != nil {
		return fmt.Errorf("transcode: render: %w", err)
	}
	r.ofc.SetPb(r.outIO)
	for !(r.v.done && (r.a == nil || r.a.done)) {
		if err := r.ifc.ReadFrame(r.pkt); err != nil {
			if errors.Is(err, astiav.ErrEof) && r.in.err == nil {
				break
			}
			return fmt.Errorf("transcode: render: %w", r.in.cause(err))
		}
		var s *renderStream
		switch r.pkt.StreamIndex() {
		case r.v.in.Index():
			s = r.v
		default:
			if r.a != nil && r.pkt.StreamIndex() == r.a.in.Index() {
				s = r.a
			}
		}
		if s == nil || s.done {
			r.pkt.Unref()
			continue
		}
		err := s.dec.SendPacket(r.pkt)
		r.pkt.Unref()
		if err != nil && !errors.Is(err, astiav.ErrEagain) {
			continue // a damaged packet: the next keyframe may decode
		}
		if err := r.decoded(s); err != nil {
			return err
		}
		if err := out.err; err != nil {
			return err
		}
	}
	for _, s := range []*renderStream{r.v, r.a} {
		if s == nil {
			continue
		}
		if !s.done {
			if err := s.dec.SendPacket(nil); err == nil {
				if err := r.decoded(s); err != nil {
					return err
				}
			}
		}
		if err := r.flush(s); err != nil {
			return err
		}
	}
	if r.info.Frames == 0 {
		return fmt.Errorf("%w: no video frame in [%v, %v)", ErrNothingRendered, r.o.From, r.o.To)
	}
	if !r.started {
		if err := r.start(); err != nil {
			return err
		}
	}
	if err := r.ofc.WriteTrailer(); err != nil {
		return fmt.Errorf("transcode: render: %w", out.cause(err))
	}
	r.outIO.Flush()
	return nil
}

// decoded moves the frames the decoder of s has through the cut, the
// filter graph and the encoder.
func (r *renderer) decoded(s *renderStream) error {
	for {
		if err := s.dec.ReceiveFrame(s.frame); err != nil {
			if again(err) {
				return nil
			}
			return fmt.Errorf("transcode: render: decode: %w", err)
		}
		err := r.frame(s)
		s.frame.Unref()
		if err != nil {
			return err
		}
	}
}

// frame cuts one decoded frame: before From it is dropped, at or after To
// the stream is done.
func (r *renderer) frame(s *renderStream) error {
	pts := s.frame.Pts()
	if pts == astiav.NoPtsValue {
		pts = s.frame.PktDts()
	}
	if pts == astiav.NoPtsValue {
		return nil
	}
	tb := s.in.TimeBase()
	at := time.Duration(float64(pts) * tb.Float64() * float64(time.Second))
	if r.o.To > 0 && at >= r.o.To {
		s.done = true
		return nil
	}
	if at < r.o.From { // audio too: it starts at most a frame (~21 ms) after the video
		return nil
	}
	if s.graph == nil {
		if err := r.setup(s); err != nil {
			return err
		}
	}
	// The rendition's clock: 0 at From.
	rel := pts - int64(r.o.From.Seconds()/tb.Float64())
	if s == r.v {
		if r.info.Frames == 0 {
			r.info.First = at
		}
		r.info.Last = at
		r.info.Frames++
		s.frame.SetPts(max(rel, 0))
	} else {
		s.frame.SetPts(astiav.RescaleQ(rel, tb, astiav.NewRational(1, s.frame.SampleRate())))
	}
	if s == r.v && len(r.o.Boxes) > 0 {
		if err := redactFrame(s.frame, r.o.Boxes, at); err != nil {
			return err
		}
	}
	s.frame.SetPictureType(astiav.PictureTypeNone)
	if err := s.src.BuffersrcAddFrame(s.frame, astiav.NewBuffersrcFlags(astiav.BuffersrcFlagKeepRef)); err != nil {
		return fmt.Errorf("transcode: render: filter: %w", err)
	}
	return r.filtered(s)
}

// filtered encodes what the filter graph of s has ready.
func (r *renderer) filtered(s *renderStream) error {
	for {
		s.fframe.Unref()
		if err := s.sink.BuffersinkGetFrame(s.fframe, astiav.NewBuffersinkFlags()); err != nil {
			if again(err) {
				return nil
			}
			return fmt.Errorf("transcode: render: filter: %w", err)
		}
		if s == r.a && len(r.o.Mutes) > 0 {
			rate := s.enc.SampleRate()
			t := r.o.From + time.Duration(s.fframe.Pts())*time.Second/time.Duration(rate)
			if err := muteFrame(s.fframe, r.o.Mutes, t, rate); err != nil {
				return err
			}
		}
		err := s.enc.SendFrame(s.fframe)
		s.fframe.Unref()
		if err != nil {
			return fmt.Errorf("transcode: render: encode: %w", err)
		}
		if err := r.packets(s); err != nil {
			return err
		}
	}
}

// flush drains the filter graph and the encoder of s.
func (r *renderer) flush(s *renderStream) error {
	if s.graph == nil || s.eof {
		return nil
	}
	s.eof = true
	if err := s.src.BuffersrcAddFrame(nil, astiav.NewBuffersrcFlags()); err != nil {
		return fmt.Errorf("transcode: render: filter: %w", err)
	}
	if err := r.filtered(s); err != nil {
		return err
	}
	if err := s.enc.SendFrame(nil); err != nil {
		return fmt.Errorf("transcode: render: encode: %w", err)
	}
	return r.packets(s)
}

// packets hands what the encoder of s made to the muxer.
func (r *renderer) packets(s *renderStream) error {
	for {
		if err := s.enc.ReceivePacket(s.epkt); err != nil {
			if again(err) {
				return nil
			}
			return fmt.Errorf("transcode: render: encode: %w", err)
		}
		p := s.epkt.Clone()
		s.epkt.Unref()
		// An encoder's priming (AAC's 1024 samples) comes out before 0:
		// shifted to start at 0, or the muxer would move every stream
		// later to keep timestamps from going negative, and the video's
		// times would no longer be the source's less From.
		if !s.shiftSet {
			s.shiftSet = true
			if p.Dts() != astiav.NoPtsValue && p.Dts() < 0 {
				s.shift = -p.Dts()
			}
		}
		if s.shift != 0 {
			p.SetPts(p.Pts() + s.shift)
			p.SetDts(p.Dts() + s.shift)
		}
		p.SetStreamIndex(s.out.Index())
		p.RescaleTs(s.enc.TimeBase(), s.out.TimeBase())
		if !r.started {
			r.pending = append(r.pending, p)
			if !r.ready() && len(r.pending) < maxPending {
				continue
			}
			for _, o := range []*renderStream{r.v, r.a} {
				if o != nil && o.enc == nil {
					o.done = true // no frame of it within maxPending packets of the other: left out
				}
			}
			if err := r.start(); err != nil {
				return err
			}
			continue
		}
		err := r.ofc.WriteInterleavedFrame(p)
		p.Free()
		if err != nil {
			return fmt.Errorf("transcode: render: mux: %w", err)
		}
	}
}

// maxPending bounds the packets held for a stream whose first frame has
// not come (about 10 s of video).
const maxPending = 300

// ready: every stream's encoder is open (or its stream has ended without a
// frame kept), so the muxer can write its header.
func (r *renderer) ready() bool {
	for _, s := range []*renderStream{r.v, r.a} {
		if s != nil && s.enc == nil && !s.done {
			return false
		}
	}
	return true
}

// start writes the muxer's header and the packets that waited for it.
func (r *renderer) start() error {
	if r.a != nil && r.a.enc == nil && r.a.out != nil {
		return errors.New("transcode: render: audio stream without an encoder")
	}
	opts := astiav.NewDictionary()
	defer opts.Free()
	// delay_moov: the moov is written with the first fragment, so that it
	// carries each track's start (an edit list): without it a track that
	// starts later than another (a recorder's sound 0.1 s after its
	// picture) would be moved to 0 and play out of sync.
	if err := opts.Set("movflags", "frag_keyframe+empty_moov+delay_moov+default_base_moof", 0); err != nil {
		return fmt.Errorf("transcode: render: %w", err)
	}
	// Streams were added as their encoders opened; the time bases the
	// packets waiting were rescaled to may change with the header.
	tbs := map[int]astiav.Rational{}
	for _, s := range r.ofc.Streams() {
		tbs[s.Index()] = s.TimeBase()
	}
	if err := r.ofc.WriteHeader(opts); err != nil {
		return fmt.Errorf("transcode: render: header: %w", err)
	}
	r.started = true
	for _, p := range r.pending {
		s := r.ofc.Streams()[p.StreamIndex()]
		p.RescaleTs(tbs[s.Index()], s.TimeBase())
		err := r.ofc.WriteInterleavedFrame(p)
		p.Free()
		if err != nil {
			return fmt.Errorf("transcode: render: mux: %w", err)
		}
	}
	r.pending = nil
	return nil
}

// setup opens the filter graph and encoder of s for its first frame kept.
func (r *renderer) setup(s *renderStream) error {
	if r.started {
		return errors.New("transcode: render: a stream began after the file's header was written")
	}
	f := s.frame
	s.graph = astiav.AllocFilterGraph()
	s.graph.SetThreadCount(1)
	var desc string
	var err error
	if s == r.v {
		desc, err = r.videoSetup(s, f)
	} else {
		desc, err = r.audioSetup(s, f)
	}
	if err != nil {
		return err
	}
	sink := "buffersink"
	if s == r.a {
		sink = "abuffersink"
	}
	s.sink, err = s.graph.NewFilterContext(astiav.FindFilterByName(sink), "out", nil)
	if err != nil {
		return fmt.Errorf("transcode: render: sink: %w", err)
	}
	outputs, inputs := astiav.AllocFilterInOut(), astiav.AllocFilterInOut()
	defer outputs.Free()
	defer inputs.Free()
	outputs.SetName("in")
	outputs.SetFilterContext(s.src)
	outputs.SetPadIdx(0)
	outputs.SetNext(nil)
	inputs.SetName("out")
	inputs.SetFilterContext(s.sink)
	inputs.SetPadIdx(0)
	inputs.SetNext(nil)
	if err := s.graph.Parse(desc, inputs, outputs); err != nil {
		return fmt.Errorf("transcode: render: filter %q: %w", desc, err)
	}
	if err := s.graph.Configure(); err != nil {
		return fmt.Errorf("transcode: render: filter %q: %w", desc, err)
	}
	if s.out = r.ofc.NewStream(nil); s.out == nil {
		return errors.New("transcode: render: cannot add a stream")
	}
	if err := s.out.CodecParameters().FromCodecContext(s.enc); err != nil {
		return fmt.Errorf("transcode: render: %w", err)
	}
	s.out.SetTimeBase(s.enc.TimeBase())
	return nil
}

// videoSetup opens the H.264 encoder and the video filter's source for the
// first video frame kept, and returns the filter chain.
func (r *renderer) videoSetup(s *renderStream, f *astiav.Frame) (string, error) {
	sw, sh := f.Width(), f.Height()
	if sw <= 0 || sh <= 0 {
		return "", fmt.Errorf("transcode: render: decoded frame of %dx%d", sw, sh)
	}
	r.info.SourceWidth, r.info.SourceHeight = sw, sh
	sar := f.SampleAspectRatio()
	if sar.Num() <= 0 || sar.Den() <= 0 {
		sar = astiav.NewRational(1, 1)
	}
	dw := float64(sw) * sar.Float64() // the display width
	w := r.o.Width
	if w <= 0 || float64(w) > dw {
		w = int(dw)
	}
	w &^= 1
	h := int(float64(w)*float64(sh)/dw+0.5) &^ 1
	r.info.Width, r.info.Height = w, h
	tb := s.in.TimeBase()
	var err error
	s.src, err = s.graph.NewFilterContext(astiav.FindFilterByName("buffer"), "in", astiav.FilterArgs{
		"video_size":   fmt.Sprintf("%dx%d", sw, sh),
		"pix_fmt":      strconv.Itoa(int(f.PixelFormat())),
		"time_base":    fmt.Sprintf("%d/%d", tb.Num(), tb.Den()),
		"pixel_aspect": fmt.Sprintf("%d/%d", sar.Num(), sar.Den()),
	})
	if err != nil {
		return "", fmt.Errorf("transcode: render: buffer: %w", err)
	}
	fps := s.in.AvgFrameRate()
	if fps.Num() <= 0 || fps.Den() <= 0 {
		fps = astiav.NewRational(nominalFPS, 1)
	}
	codec := astiav.FindEncoderByName("libx264")
	if codec == nil {
		return "", errors.New("transcode: render: this FFmpeg has no libx264")
	}
	enc := astiav.AllocCodecContext(codec)
	s.enc = enc
	enc.SetWidth(w)
	enc.SetHeight(h)
	enc.SetPixelFormat(astiav.PixelFormatYuv420P)
	enc.SetSampleAspectRatio(astiav.NewRational(1, 1))
	enc.SetTimeBase(tb)
	enc.SetFramerate(fps)
	enc.SetBitRate(int64(r.o.VideoBitrate))
	enc.SetGopSize(max(1, int(2*fps.Float64())))
	enc.SetThreadCount(1)
	enc.SetFlags(enc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	if err := openCodec(enc, codec, map[string]string{
		"preset":  r.o.Preset,
		"profile": "high",
		// No B-frames: every frame's decode time is its presentation
		// time, never before 0, so that the muxer keeps the times as
		// given (a rendition's clock is the source's less From, to the
		// frame), at ~10 % more bits.
		"bf":      "0",
		"maxrate": strconv.Itoa(r.o.VideoBitrate * 3 / 2),
		"bufsize": strconv.Itoa(r.o.VideoBitrate * 2),
	}); err != nil {
		return "", err
	}
	desc := fmt.Sprintf("scale=%d:%d:flags=bicubic,setsar=1,format=yuv420p", w, h)
	if r.o.Mark != "" {
		desc += "," + markFilter(r.o.Mark, h)
	}
	return desc, nil
}

// audioSetup opens the AAC encoder and the audio filter's source for the
// first audio frame kept, and returns the filter chain.
func (r *renderer) audioSetup(s *renderStream, f *astiav.Frame) (string, error) {
	layout := f.ChannelLayout()
	rate := f.SampleRate()
	if rate <= 0 {
		return "", fmt.Errorf("transcode: render: audio at %d Hz", rate)
	}
	var err error
	s.src, err = s.graph.NewFilterContext(astiav.FindFilterByName("abuffer"), "in", astiav.FilterArgs{
		"channel_layout": layout.String(),
		"sample_fmt":     f.SampleFormat().Name(),
		"sample_rate":    strconv.Itoa(rate),
		"time_base":      "1/" + strconv.Itoa(rate),
	})
	if err != nil {
		return "", fmt.Errorf("transcode: render: abuffer: %w", err)
	}
	outLayout, outName := astiav.ChannelLayoutStereo, "stereo"
	if layout.NbChannels() == 1 {
		outLayout, outName = astiav.ChannelLayoutMono, "mono"
	}
	codec := astiav.FindEncoderByName("aac")
	enc := astiav.AllocCodecContext(codec)
	s.enc = enc
	enc.SetSampleRate(rate)
	enc.SetSampleFormat(astiav.SampleFormatFltp)
	enc.SetChannelLayout(outLayout)
	enc.SetChannels(outLayout.NbChannels())
	enc.SetBitRate(int64(r.o.AudioBitrate))
	enc.SetTimeBase(astiav.NewRational(1, rate))
	enc.SetThreadCount(1)
	enc.SetFlags(enc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	if err := openCodec(enc, codec, nil); err != nil {
		return "", err
	}
	r.info.Audio = true
	return fmt.Sprintf("aformat=sample_fmts=fltp:channel_layouts=%s,asetnsamples=n=%d:p=0", outName, enc.FrameSize()), nil
}

func (s *renderStream) freeAll() {
	if s == nil {
		return
	}
	for _, fc := range []*astiav.FilterContext{s.src, s.sink} {
		if fc != nil {
			fc.Free()
		}
	}
	if s.graph != nil {
		s.graph.Free()
	}
	for _, cc := range []*astiav.CodecContext{s.dec, s.enc} {
		if cc != nil {
			cc.Free()
		}
	}
	for _, f := range []*astiav.Frame{s.frame, s.fframe} {
		if f != nil {
			f.Free()
		}
	}
	if s.epkt != nil {
		s.epkt.Free()
	}
}

func (r *renderer) free() {
	for _, p := range r.pending {
		p.Free()
	}
	r.v.freeAll()
	r.a.freeAll()
	if r.pkt != nil {
		r.pkt.Free()
	}
	if r.ofc != nil {
		r.ofc.Free()
	}
	if r.outIO != nil {
		r.outIO.Free()
	}
	if r.ifc != nil {
		r.ifc.CloseInput()
		r.ifc.Free()
	}
	if r.inIO != nil {
		r.inIO.Free()
	}
	if r.in != nil {
		r.in.close()
	}
}
