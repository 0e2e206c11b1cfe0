package transcode

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/asticode/go-astiav"

	"github.com/bodycam/bodycam/media"
)

// Opus output: 48 kHz, 20 ms packets, about 64 kbit/s.
const (
	OpusRate      = 48000
	opusFrameSize = 960 // samples per channel in 20 ms at 48 kHz
	opusBitrate   = 64000
)

// Audio decodes AAC and encodes Opus at 48 kHz, 20 ms per packet, mono or
// stereo following the input (more than two channels are downmixed to
// stereo). Resampling, the sample format conversion and the re-framing into
// 960-sample frames are one libavfilter graph
// (aresample → aformat → asetnsamples): go-astiav v0.16.0 has neither
// SoftwareResampleContext nor AudioFifo, and aresample is libswresample.
type Audio struct {
	inRate int

	dec, enc         *astiav.CodecContext
	graph            *astiav.FilterGraph
	src, sink        *astiav.FilterContext
	pkt, out         *astiav.Packet
	frame, filtered  *astiav.Frame
	graphFmt         string // decoder output the graph was built for
	inSamples        int64  // decoded samples so far, the filter's timestamps
	started, flushed bool
	next             int64 // PTS of the next Opus packet, 48 kHz
	recv             time.Time
	buf              []byte
}

// NewAudio returns a transcoder for the AAC track in (in.Config is the
// AudioSpecificConfig; in.ClockRate the sample rate in which unit PTS run).
func NewAudio(in media.Track) (*Audio, error) {
	Init()
	if in.Codec != media.AAC {
		return nil, fmt.Errorf("transcode: audio codec %q, want AAC", in.Codec)
	}
	if in.ClockRate <= 0 || len(in.Config) == 0 {
		return nil, errors.New("transcode: AAC track without clock rate or AudioSpecificConfig")
	}
	if astiav.FindEncoderByName("libopus") == nil {
		return nil, errors.New("transcode: FFmpeg has no libopus encoder")
	}
	codec := astiav.FindDecoder(astiav.CodecIDAac)
	if codec == nil {
		return nil, errors.New("transcode: FFmpeg has no AAC decoder")
	}
	a := &Audio{
		inRate:   in.ClockRate,
		dec:      astiav.AllocCodecContext(codec),
		pkt:      astiav.AllocPacket(),
		out:      astiav.AllocPacket(),
		frame:    astiav.AllocFrame(),
		filtered: astiav.AllocFrame(),
	}
	if err := a.dec.SetExtraData(in.Config); err != nil {
		a.Close()
		return nil, fmt.Errorf("transcode: AAC config: %w", err)
	}
	if err := openCodec(a.dec, codec, nil); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Transcode decodes one AAC access unit (u.Data, u.PTS in the input clock
// rate) and returns the Opus packets completed so far: PTS == DTS in
// 48 kHz units, starting at the first unit's PTS rescaled and advancing by
// 960 per packet whatever gaps the input has; Recv is u.Recv. A unit the
// decoder rejects gives an error and the stream goes on with the next; units
// returned along with an error are valid.
func (a *Audio) Transcode(u media.Unit) ([]media.Unit, error) {
	if a.flushed {
		return nil, errors.New("transcode: audio used after Flush")
	}
	if !a.started {
		a.started = true
		a.next = astiav.RescaleQ(u.PTS, astiav.NewRational(1, a.inRate), astiav.NewRational(1, OpusRate))
	}
	a.recv = u.Recv
	if len(u.Data) == 0 {
		return nil, nil
	}
	if err := fillPacket(a.pkt, &a.buf, u.Data); err != nil {
		return nil, err
	}
	err := a.dec.SendPacket(a.pkt)
	a.pkt.Unref()
	if err != nil {
		return nil, fmt.Errorf("transcode: AAC decode: %w", err)
	}
	return a.decoded(nil)
}

// Flush drains the decoder, the filter (padding the last frame with
// silence) and the encoder; the Audio only accepts Close afterwards.
func (a *Audio) Flush() ([]media.Unit, error) {
	if a.flushed {
		return nil, nil
	}
	a.flushed = true
	if err := a.dec.SendPacket(nil); err != nil {
		return nil, fmt.Errorf("transcode: AAC flush: %w", err)
	}
	out, err := a.decoded(nil)
	if err != nil || a.src == nil {
		return out, err
	}
	if err := a.src.BuffersrcAddFrame(nil, astiav.NewBuffersrcFlags()); err != nil {
		return out, fmt.Errorf("transcode: audio filter flush: %w", err)
	}
	if out, err = a.filteredFrames(out); err != nil {
		return out, err
	}
	if err := a.enc.SendFrame(nil); err != nil {
		return out, fmt.Errorf("transcode: Opus flush: %w", err)
	}
	return a.packets(out)
}

// decoded moves every frame the decoder has through the filter graph and
// the encoder.
func (a *Audio) decoded(out []media.Unit) ([]media.Unit, error) {
	for {
		if err := a.dec.ReceiveFrame(a.frame); err != nil {
			if again(err) {
				return out, nil
			}
			return out, fmt.Errorf("transcode: AAC decode: %w", err)
		}
		if err := a.setup(a.frame); err != nil {
			return out, err
		}
		a.frame.SetPts(a.inSamples)
		a.inSamples += int64(a.frame.NbSamples())
		err := a.src.BuffersrcAddFrame(a.frame, astiav.NewBuffersrcFlags())
		a.frame.Unref()
		if err != nil {
			return out, fmt.Errorf("transcode: audio filter: %w", err)
		}
		var err2 error
		if out, err2 = a.filteredFrames(out); err2 != nil {
			return out, err2
		}
	}
}

// filteredFrames encodes every frame the filter graph has ready.
func (a *Audio) filteredFrames(out []media.Unit) ([]media.Unit, error) {
	for {
		a.filtered.Unref()
		if err := a.sink.BuffersinkGetFrame(a.filtered, astiav.NewBuffersinkFlags()); err != nil {
			if again(err) {
				return out, nil
			}
			return out, fmt.Errorf("transcode: audio filter: %w", err)
		}
		err := a.enc.SendFrame(a.filtered)
		a.filtered.Unref()
		if err != nil {
			return out, fmt.Errorf("transcode: Opus encode: %w", err)
		}
		if out, err = a.packets(out); err != nil {
			return out, err
		}
	}
}

// packets collects the encoder's output.
func (a *Audio) packets(out []media.Unit) ([]media.Unit, error) {
	for {
		if err := a.enc.ReceivePacket(a.out); err != nil {
			if again(err) {
				return out, nil
			}
			return out, fmt.Errorf("transcode: Opus encode: %w", err)
		}
		out = append(out, media.Unit{PTS: a.next, DTS: a.next, Data: a.out.Data(), Recv: a.recv})
		a.next += opusFrameSize
		a.out.Unref()
	}
}

// setup builds the encoder and the filter graph for the decoder's actual
// output (known from the first frame: SBR or a wrong track header may make
// it differ from the track), and rejects a later change of format.
func (a *Audio) setup(f *astiav.Frame) error {
	layout := f.ChannelLayout()
	format := fmt.Sprintf("%s/%d/%s", f.SampleFormat().Name(), f.SampleRate(), layout.String())
	switch {
	case a.src != nil && format == a.graphFmt:
		return nil
	case a.src != nil:
		return fmt.Errorf("transcode: AAC output changed from %s to %s", a.graphFmt, format)
	case a.enc != nil:
		return errors.New("transcode: audio encoder setup failed before")
	}

	outLayout, outName := astiav.ChannelLayoutStereo, "stereo"
	if layout.NbChannels() == 1 {
		outLayout, outName = astiav.ChannelLayoutMono, "mono"
	}
	codec := astiav.FindEncoderByName("libopus")
	enc := astiav.AllocCodecContext(codec)
	enc.SetSampleRate(OpusRate)
	enc.SetSampleFormat(astiav.SampleFormatFlt)
	enc.SetChannelLayout(outLayout)
	enc.SetChannels(outLayout.NbChannels())
	enc.SetBitRate(opusBitrate)
	enc.SetTimeBase(astiav.NewRational(1, OpusRate))
	a.enc = enc // freed by Close even if what follows fails
	if err := openCodec(enc, codec, map[string]string{
		"application":    "lowdelay", // CELT only: 2.5 ms look-ahead instead of 6.5
		"frame_duration": "20",
	}); err != nil {
		return err
	}
	if n := enc.FrameSize(); n != opusFrameSize {
		return fmt.Errorf("transcode: libopus frame size %d, want %d", n, opusFrameSize)
	}

	graph := astiav.AllocFilterGraph()
	a.graph = graph
	graph.SetThreadCount(1)
	src, err := graph.NewFilterContext(astiav.FindFilterByName("abuffer"), "in", astiav.FilterArgs{
		"channel_layout": layout.String(),
		"sample_fmt":     f.SampleFormat().Name(),
		"sample_rate":    strconv.Itoa(f.SampleRate()),
		"time_base":      "1/" + strconv.Itoa(f.SampleRate()),
	})
	if err != nil {
		return fmt.Errorf("transcode: abuffer: %w", err)
	}
	sink, err := graph.NewFilterContext(astiav.FindFilterByName("abuffersink"), "out", nil)
	if err != nil {
		return fmt.Errorf("transcode: abuffersink: %w", err)
	}
	outputs, inputs := astiav.AllocFilterInOut(), astiav.AllocFilterInOut()
	defer outputs.Free()
	defer inputs.Free()
	outputs.SetName("in")
	outputs.SetFilterContext(src)
	outputs.SetPadIdx(0)
	outputs.SetNext(nil)
	inputs.SetName("out")
	inputs.SetFilterContext(sink)
	inputs.SetPadIdx(0)
	inputs.SetNext(nil)
	desc := fmt.Sprintf("aresample=%d,aformat=sample_fmts=flt:channel_layouts=%s,asetnsamples=n=%d:p=1",
		OpusRate, outName, opusFrameSize)
	if err := graph.Parse(desc, inputs, outputs); err != nil {
		return fmt.Errorf("transcode: audio filter %q: %w", desc, err)
	}
	if err := graph.Configure(); err != nil {
		return fmt.Errorf("transcode: audio filter %q: %w", desc, err)
	}
	a.src, a.sink, a.graphFmt = src, sink, format
	return nil
}

// Close frees the decoder, encoder, filter graph, packets and frames.
func (a *Audio) Close() {
	for _, fc := range []*astiav.FilterContext{a.src, a.sink} {
		if fc != nil {
			fc.Free() // also unregisters it from astiav's log class table
		}
	}
	a.src, a.sink = nil, nil
	if a.graph != nil {
		a.graph.Free()
		a.graph = nil
	}
	for _, cc := range []*astiav.CodecContext{a.dec, a.enc} {
		if cc != nil {
			cc.Free()
		}
	}
	a.dec, a.enc = nil, nil
	for _, p := range []*astiav.Packet{a.pkt, a.out} {
		if p != nil {
			p.Free()
		}
	}
	a.pkt, a.out = nil, nil
	for _, f := range []*astiav.Frame{a.frame, a.filtered} {
		if f != nil {
			f.Free()
		}
	}
	a.frame, a.filtered = nil, nil
}
