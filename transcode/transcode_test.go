// Benchmarks (go test -run '^$' -bench . ./transcode) on a 2-vCPU AMD EPYC
// VM, FFmpeg 5.1 from Debian 12, input 720p30 H.264 with B-frames at 4
// Mbit/s, output as configured in video.go (superfast):
//
//	BenchmarkVideo720p  ~9.5 ms wall, ~10.3 ms CPU per frame (decode ~3.7 ms)
//	                    = ~31 % of one core for one 720p30 stream in real time
//	BenchmarkAudio      ~0.3 ms CPU per AAC frame (44.1 kHz stereo → Opus)
//	                    = ~1.4 % of one core in real time
//
// veryfast measured ~13.5 ms CPU per frame (~41 %), ultrafast ~8 ms (~24 %).

package transcode

import (
	"errors"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/asticode/go-astiav"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/bodycam/bodycam/media"
)

// ffmpeg runs the ffmpeg CLI; the tests need it and fail without it.
func ffmpeg(tb testing.TB, args ...string) {
	tb.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		tb.Fatalf("the ffmpeg CLI is needed to make test inputs: %v", err)
	}
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

var recvBase = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// demux reads the first stream of the given type from a file as a track and
// its units, the way ingest hands them over: NAL units without start codes,
// parameter sets from avcC/hvcC, video at 90 kHz, audio at its sample rate,
// and a distinct Recv per unit.
func demux(tb testing.TB, path string, typ astiav.MediaType) (media.Track, []media.Unit) {
	tb.Helper()
	fc := astiav.AllocFormatContext()
	defer fc.Free()
	if err := fc.OpenInput(path, nil, nil); err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	defer fc.CloseInput()
	if err := fc.FindStreamInfo(nil); err != nil {
		tb.Fatal(err)
	}
	var st *astiav.Stream
	for _, s := range fc.Streams() {
		if s.CodecParameters().MediaType() == typ {
			st = s
			break
		}
	}
	if st == nil {
		tb.Fatalf("%s: no %s stream", path, typ)
	}
	cp := st.CodecParameters()
	var tr media.Track
	switch cp.CodecID() {
	case astiav.CodecIDH264:
		tr = media.Track{Codec: media.H264, ClockRate: VideoClockRate, Params: avcCParams(tb, cp.ExtraData())}
	case astiav.CodecIDHevc:
		tr = media.Track{Codec: media.H265, ClockRate: VideoClockRate, Params: hvcCParams(tb, cp.ExtraData())}
	case astiav.CodecIDAac:
		tr = media.Track{Codec: media.AAC, ClockRate: cp.SampleRate(), Channels: cp.ChannelLayout().NbChannels(), Config: cp.ExtraData()}
	default:
		tb.Fatalf("%s: codec %s", path, cp.CodecID())
	}
	tr.Width, tr.Height = cp.Width(), cp.Height()
	from, to := st.TimeBase(), astiav.NewRational(1, tr.ClockRate)

	pkt := astiav.AllocPacket()
	defer pkt.Free()
	var units []media.Unit
	for {
		if err := fc.ReadFrame(pkt); err != nil {
			if errors.Is(err, astiav.ErrEof) {
				break
			}
			tb.Fatal(err)
		}
		if pkt.StreamIndex() == st.Index() {
			u := media.Unit{
				PTS:      astiav.RescaleQ(pkt.Pts(), from, to),
				DTS:      astiav.RescaleQ(pkt.Dts(), from, to),
				Keyframe: pkt.Flags().Has(astiav.PacketFlagKey),
				Recv:     recvBase.Add(time.Duration(len(units)) * time.Millisecond),
			}
			if tr.Codec.Video() {
				var avcc h264.AVCC
				if err := avcc.Unmarshal(pkt.Data()); err != nil {
					tb.Fatal(err)
				}
				u.NALUs = avcc
			} else {
				u.Data = pkt.Data()
			}
			units = append(units, u)
		}
		pkt.Unref()
	}
	if len(units) == 0 {
		tb.Fatalf("%s: no units", path)
	}
	return tr, units
}

func be16(b []byte) int { return int(b[0])<<8 | int(b[1]) }

// avcCParams returns the SPS and PPS of an AVCDecoderConfigurationRecord.
func avcCParams(tb testing.TB, b []byte) (ps [][]byte) {
	tb.Helper()
	defer func() {
		if recover() != nil {
			tb.Fatalf("bad avcC %x", b)
		}
	}()
	pos := 5
	for range 2 { // SPS then PPS
		n := int(b[pos] & 0x1f)
		if len(ps) > 0 {
			n = int(b[pos])
		}
		pos++
		for range n {
			l := be16(b[pos:])
			ps = append(ps, b[pos+2:pos+2+l])
			pos += 2 + l
		}
	}
	return ps
}

// hvcCParams returns the parameter sets of an HEVCDecoderConfigurationRecord.
func hvcCParams(tb testing.TB, b []byte) (ps [][]byte) {
	tb.Helper()
	defer func() {
		if recover() != nil {
			tb.Fatalf("bad hvcC %x", b)
		}
	}()
	arrays, pos := int(b[22]), 23
	for range arrays {
		n := be16(b[pos+1:])
		pos += 3
		for range n {
			l := be16(b[pos:])
			ps = append(ps, b[pos+2:pos+2+l])
			pos += 2 + l
		}
	}
	return ps
}

// decoder is an FFmpeg decoder for checking output.
type decoder struct {
	cc    *astiav.CodecContext
	pkt   *astiav.Packet
	frame *astiav.Frame
	buf   []byte
}

func newDecoder(tb testing.TB, name string, setup func(*astiav.CodecContext)) *decoder {
	tb.Helper()
	c := astiav.FindDecoderByName(name)
	if c == nil {
		tb.Fatalf("no %s decoder", name)
	}
	d := &decoder{cc: astiav.AllocCodecContext(c), pkt: astiav.AllocPacket(), frame: astiav.AllocFrame()}
	tb.Cleanup(func() { d.cc.Free(); d.pkt.Free(); d.frame.Free() })
	if setup != nil {
		setup(d.cc)
	}
	if err := d.cc.Open(c, nil); err != nil {
		tb.Fatal(err)
	}
	return d
}

// decode sends data (nil flushes) and calls got for every frame out.
func (d *decoder) decode(data []byte, got func(*astiav.Frame)) error {
	if data != nil {
		if err := fillPacket(d.pkt, &d.buf, data); err != nil {
			return err
		}
	}
	p := d.pkt
	if data == nil {
		p = nil
	}
	err := d.cc.SendPacket(p)
	d.pkt.Unref()
	if err != nil {
		return err
	}
	for {
		if err := d.cc.ReceiveFrame(d.frame); err != nil {
			if again(err) {
				return nil
			}
			return err
		}
		got(d.frame)
		d.frame.Unref()
	}
}

// firstPlane is an audio frame's first channel as float32 (the opus decoder
// gives planar float); AVFrame begins with its uint8_t *data[8].
func firstPlane(f *astiav.Frame) []float32 {
	if f.SampleFormat() != astiav.SampleFormatFltp {
		panic("opus decoder output is " + f.SampleFormat().Name())
	}
	data := (*[8]*float32)(f.UnsafePointer())
	return append([]float32(nil), unsafe.Slice(data[0], f.NbSamples())...)
}

func TestAudio(t *testing.T) {
	t.Parallel() // several transcoders at once, as in the relay
	for _, tc := range []struct{ rate, channels int }{{48000, 2}, {44100, 1}, {44100, 2}, {16000, 1}} {
		t.Run(fmt.Sprintf("%dHz_%dch", tc.rate, tc.channels), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "a.m4a")
			ffmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=%d", tc.rate),
				"-t", "3", "-ac", fmt.Sprint(tc.channels), "-c:a", "aac", "-b:a", "96k", path)
			tr, in := demux(t, path, astiav.MediaTypeAudio)
			if tr.ClockRate != tc.rate || tr.Channels != tc.channels {
				t.Fatalf("input track %+v", tr)
			}

			a, err := NewAudio(tr)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			out := transcodeAll(t, a, in, func(u media.Unit, o []media.Unit) {
				for _, p := range o {
					if p.Recv != u.Recv {
						t.Fatalf("Recv %v, want %v", p.Recv, u.Recv)
					}
				}
			})

			inDur := time.Duration(in[len(in)-1].PTS-in[0].PTS+1024) * time.Second / time.Duration(tc.rate)
			outDur := time.Duration(len(out)*960) * time.Second / OpusRate
			if d := outDur - inDur; d < -40*time.Millisecond || d > 40*time.Millisecond {
				t.Errorf("output lasts %v, input %v", outDur, inDur)
			}
			if want := int64(math.Round(float64(in[0].PTS) * OpusRate / float64(tc.rate))); out[0].PTS != want {
				t.Errorf("first PTS %d, want %d", out[0].PTS, want)
			}
			for i, p := range out {
				if p.DTS != p.PTS || (i > 0 && p.PTS != out[i-1].PTS+960) || len(p.Data) == 0 {
					t.Fatalf("packet %d: PTS %d DTS %d, %d bytes; previous PTS %d", i, p.PTS, p.DTS, len(p.Data), out[max(i-1, 0)].PTS)
				}
			}

			// The Opus packets decode and carry the 440 Hz sine.
			dec := newDecoder(t, "opus", func(cc *astiav.CodecContext) {
				cc.SetSampleRate(OpusRate)
				if tc.channels == 1 {
					cc.SetChannelLayout(astiav.ChannelLayoutMono)
				} else {
					cc.SetChannelLayout(astiav.ChannelLayoutStereo)
				}
			})
			var pcm []float32
			for i, p := range out {
				if err := dec.decode(p.Data, func(f *astiav.Frame) {
					if f.ChannelLayout().NbChannels() != tc.channels {
						t.Fatalf("decoded %d channels", f.ChannelLayout().NbChannels())
					}
					pcm = append(pcm, firstPlane(f)...)
				}); err != nil {
					t.Fatalf("opus packet %d: %v", i, err)
				}
			}
			if len(pcm) != len(out)*960 {
				t.Errorf("decoded %d samples from %d packets", len(pcm), len(out))
			}
			mid := pcm[len(pcm)/4 : 3*len(pcm)/4]
			var sum float64
			crossings := 0
			for i, s := range mid {
				sum += float64(s) * float64(s)
				if i > 0 && (mid[i-1] < 0) != (s < 0) {
					crossings++
				}
			}
			rms := math.Sqrt(sum / float64(len(mid)))
			freq := float64(crossings) / 2 / (float64(len(mid)) / OpusRate)
			t.Logf("%d AAC units -> %d Opus packets (%v for %v), RMS %.3f, %.1f Hz", len(in), len(out), outDur, inDur, rms, freq)
			if rms < 0.05 { // lavfi's sine has amplitude 1/8: RMS 0.088
				t.Errorf("decoded RMS %.4f: silent", rms)
			}
			if math.Abs(freq-440) > 5 {
				t.Errorf("decoded frequency %.1f Hz, want 440", freq)
			}
		})
	}
}

// TestAudioErrors: a damaged AAC unit is an error, not a crash, and the
// stream goes on with continuous timestamps.
func TestAudioErrors(t *testing.T) {
	t.Parallel() // several transcoders at once, as in the relay
	path := filepath.Join(t.TempDir(), "a.m4a")
	ffmpeg(t, "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "1", "-c:a", "aac", path)
	tr, in := demux(t, path, astiav.MediaTypeAudio)
	a, err := NewAudio(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var out []media.Unit
	errs := 0
	for i, u := range in {
		if i == 20 {
			u.Data = []byte{0xff, 0xf1, 0x50, 0x80, 0x01, 0x7f, 0xfc, 0x21, 0x00, 0x49, 0x90}
		}
		o, err := a.Transcode(u)
		if err != nil {
			errs++
		}
		out = append(out, o...)
	}
	if errs != 1 {
		t.Errorf("%d errors for one damaged unit", errs)
	}
	if len(out) < 45 {
		t.Errorf("%d Opus packets for %d AAC units", len(out), len(in))
	}
	for i := 1; i < len(out); i++ {
		if out[i].PTS != out[i-1].PTS+960 {
			t.Fatalf("PTS %d after %d", out[i].PTS, out[i-1].PTS)
		}
	}
}

// NAL unit types and slice type of H.264.
const (
	naluSlice = 1
	naluIDR   = 5
	naluSPS   = 7
	naluPPS   = 8
)

// sliceType reads slice_type from a slice NAL unit's header (two
// Exp-Golomb numbers after the NAL header: first_mb_in_slice, slice_type).
func sliceType(nalu []byte) (uint, error) {
	b := h264.EmulationPreventionRemove(nalu[1:])
	pos := 0
	bit := func() (uint, error) {
		if pos >= 8*len(b) {
			return 0, errors.New("short slice header")
		}
		v := uint(b[pos/8]>>(7-pos%8)) & 1
		pos++
		return v, nil
	}
	ue := func() (uint, error) {
		zeros := 0
		for {
			v, err := bit()
			if err != nil {
				return 0, err
			}
			if v == 1 {
				break
			}
			zeros++
		}
		var v uint
		for range zeros {
			x, err := bit()
			if err != nil {
				return 0, err
			}
			v = v<<1 | x
		}
		return 1<<zeros - 1 + v, nil
	}
	if _, err := ue(); err != nil {
		return 0, err
	}
	return ue()
}

func TestVideo(t *testing.T) {
	t.Parallel() // several transcoders at once, as in the relay
	for _, tc := range []struct {
		name   string
		codec  []string
		inBand bool // parameter sets in the keyframes instead of Track.Params
	}{
		{"H264", []string{"-pix_fmt", "yuv420p", "-c:v", "libx264", "-bf", "2", "-g", "30"}, false},
		{"H265_in_band", []string{"-pix_fmt", "yuv420p", "-c:v", "libx265", "-x265-params", "log-level=error:bframes=2:keyint=30"}, true},
		// full range in: converted to yuv420p before x264
		{"H264_yuvj420p", []string{"-pix_fmt", "yuvj420p", "-c:v", "libx264", "-bf", "2", "-g", "30"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "v.mp4")
			args := append([]string{"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "3"}, tc.codec...)
			ffmpeg(t, append(args, path)...)
			tr, in := demux(t, path, astiav.MediaTypeVideo)
			reordered := false
			for _, u := range in {
				reordered = reordered || u.PTS != u.DTS
			}
			if !reordered || len(in) != 90 || !in[0].Keyframe || len(tr.Params) < 2 {
				t.Fatalf("input: %d units, reordered %v, first keyframe %v, %d parameter sets", len(in), reordered, in[0].Keyframe, len(tr.Params))
			}
			if tc.inBand {
				for i := range in {
					if in[i].Keyframe {
						in[i].NALUs = append(append([][]byte(nil), tr.Params...), in[i].NALUs...)
					}
				}
				tr.Params = nil
			}

			v, err := NewVideo(tr)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			recvs := map[int64]time.Time{}
			for _, u := range in {
				recvs[u.PTS] = u.Recv
			}
			out := transcodeAll(t, v, in, nil)
			if converted := v.sws != nil; converted != (tc.name == "H264_yuvj420p") {
				t.Errorf("pixel format converter in use: %v", converted)
			}
			checkH264(t, out, len(in), 1280, 720)
			for _, u := range out {
				if r, ok := recvs[u.PTS]; !ok || r != u.Recv {
					t.Fatalf("output PTS %d: Recv %v, input had %v (%v)", u.PTS, u.Recv, r, ok)
				}
			}
		})
	}
}

// checkH264 asserts what browsers need from the output: PTS == DTS
// increasing, a first keyframe with SPS, PPS and IDR, SPS and PPS before
// every IDR, a keyframe at least every 2 s, constrained baseline, no
// B-slices, and frames that decode at the expected size.
func checkH264(t *testing.T, out []media.Unit, frames, width, height int) {
	t.Helper()
	if len(out) != frames {
		t.Errorf("%d frames out, %d in", len(out), frames)
	}
	if len(out) == 0 || !out[0].Keyframe {
		t.Fatal("first output is not a keyframe")
	}
	bytes, lastKey := 0, out[0].PTS
	dec := newDecoder(t, "h264", nil)
	decoded := 0
	for i, u := range out {
		if u.PTS != u.DTS || (i > 0 && u.PTS <= out[i-1].PTS) {
			t.Fatalf("unit %d: PTS %d DTS %d after PTS %d", i, u.PTS, u.DTS, out[max(i-1, 0)].PTS)
		}
		types := map[byte]bool{}
		var annexB []byte
		for _, n := range u.NALUs {
			if len(n) == 0 || n[0]&0x80 != 0 {
				t.Fatalf("unit %d: bad NAL unit %x", i, n)
			}
			typ := n[0] & 0x1f
			types[typ] = true
			switch typ {
			case naluSPS:
				if n[1] != 66 || n[2]&0x40 == 0 {
					t.Fatalf("SPS profile_idc %d constraint flags %08b: not constrained baseline", n[1], n[2])
				}
			case naluSlice, naluIDR:
				st, err := sliceType(n)
				if err != nil || st%5 == 1 {
					t.Fatalf("unit %d: slice_type %d (%v)", i, st, err)
				}
			}
			annexB = append(append(annexB, 0, 0, 0, 1), n...)
			bytes += len(n)
		}
		if u.Keyframe != types[naluIDR] {
			t.Fatalf("unit %d: keyframe %v, NAL types %v", i, u.Keyframe, types)
		}
		if u.Keyframe {
			if !types[naluSPS] || !types[naluPPS] {
				t.Fatalf("keyframe %d without SPS and PPS: NAL types %v", i, types)
			}
			if u.PTS-lastKey > 2*VideoClockRate {
				t.Errorf("keyframes %v apart", time.Duration(u.PTS-lastKey)*time.Second/VideoClockRate)
			}
			lastKey = u.PTS
		}
		if err := dec.decode(annexB, func(f *astiav.Frame) {
			decoded++
			if f.Width() != width || f.Height() != height || f.PictureType() == astiav.PictureTypeB {
				t.Fatalf("decoded %dx%d %s frame", f.Width(), f.Height(), f.PictureType())
			}
		}); err != nil {
			t.Fatalf("decoding output unit %d: %v", i, err)
		}
	}
	if last := out[len(out)-1].PTS; last-lastKey > 2*VideoClockRate {
		t.Errorf("no keyframe in the last %v", time.Duration(last-lastKey)*time.Second/VideoClockRate)
	}
	if err := dec.decode(nil, func(*astiav.Frame) { decoded++ }); err != nil {
		t.Fatal(err)
	}
	if decoded != len(out) {
		t.Errorf("%d of %d output frames decode", decoded, len(out))
	}
	if n := len(out); n > 1 {
		secs := float64(out[n-1].PTS-out[0].PTS) / VideoClockRate * float64(n) / float64(n-1)
		rate := float64(bytes) * 8 / secs / 1e6
		t.Logf("%d frames, %.2f Mbit/s", n, rate)
		if rate < 1.5 || rate > 3.5 {
			t.Errorf("%.2f Mbit/s, want about 2.5", rate)
		}
	}
}

// TestVideoErrors: units before the first keyframe are refused, garbage is
// an error or concealed but never a crash, and the next keyframe recovers.
func TestVideoErrors(t *testing.T) {
	t.Parallel() // several transcoders at once, as in the relay
	path := filepath.Join(t.TempDir(), "v.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "3", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-bf", "2", "-g", "30", path)
	tr, in := demux(t, path, astiav.MediaTypeVideo)
	params := tr.Params
	tr.Params = nil // and the stream has none in-band: the first keyframe cannot decode

	v, err := NewVideo(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Transcode(in[1]); !errors.Is(err, ErrNoKeyframe) {
		t.Fatalf("unit before the first keyframe: %v", err)
	}
	if o, err := v.Transcode(in[0]); err == nil && len(o) > 0 {
		t.Fatalf("keyframe without parameter sets gave %d frames", len(o))
	}
	var out []media.Unit
	errs := 0
	for i, u := range in[1:] {
		switch {
		case u.Keyframe: // from now on with parameter sets
			u.NALUs = append(append([][]byte(nil), params...), u.NALUs...)
		case i == 45: // garbage slice
			u.NALUs = [][]byte{{0x41, 0xff, 0x00, 0x00, 0x03, 0x12, 0x34, 0x56, 0x78, 0x9a}}
		case i == 50: // truncated slice
			u.NALUs = [][]byte{u.NALUs[len(u.NALUs)-1][:len(u.NALUs[len(u.NALUs)-1])/3]}
		}
		o, err := v.Transcode(u)
		if err != nil {
			errs++
		}
		if i == 45 && err == nil {
			t.Error("garbage slice: no error")
		}
		out = append(out, o...)
	}
	o, err := v.Flush()
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, o...)
	// Units 1..29 are lost (no parameter sets yet); from the keyframe at
	// 30 the stream decodes, damaged units concealed or dropped, and from
	// the keyframe at 60 every frame comes out.
	got := map[int64]bool{}
	for _, u := range out {
		got[u.PTS] = true
	}
	t.Logf("%d frames out of %d units, %d errors", len(out), len(in), errs)
	if len(out) < 55 || !out[0].Keyframe || out[0].PTS != in[30].PTS {
		t.Errorf("%d frames out, first keyframe %v at PTS %d (input keyframe at %d)", len(out), out[0].Keyframe, out[0].PTS, in[30].PTS)
	}
	for _, u := range in[60:] {
		if !got[u.PTS] {
			t.Errorf("frame at PTS %d, after the keyframe at 60, missing", u.PTS)
		}
	}
}

// TestVideoLatency: without B-frames in, every unit gives its frame out at
// once (decoder low delay, x264 zerolatency), but for the first, held back
// until the second tells the frame rate; the bitrate follows that rate (25
// frames/s here); RequestKeyframe works at once.
func TestVideoLatency(t *testing.T) {
	t.Parallel() // several transcoders at once, as in the relay
	path := filepath.Join(t.TempDir(), "v.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-profile:v", "main", "-bf", "0", "-g", "25", path)
	tr, in := demux(t, path, astiav.MediaTypeVideo)
	v, err := NewVideo(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var out []media.Unit
	for i, u := range in {
		if i == 10 {
			v.RequestKeyframe()
		}
		o, err := v.Transcode(u)
		if err != nil {
			t.Fatal(err)
		}
		if i == 10 && (len(o) != 1 || !o[0].Keyframe) {
			t.Fatal("RequestKeyframe: no keyframe")
		}
		want := []media.Unit{u}
		switch i {
		case 0:
			want = nil
		case 1:
			want = in[:2]
		}
		if len(o) != len(want) {
			t.Fatalf("unit %d (PTS %d) gave %d frames: %+v", i, u.PTS, len(o), o)
		}
		for j := range o {
			if o[j].PTS != want[j].PTS || o[j].Recv != want[j].Recv {
				t.Fatalf("unit %d gave PTS %d Recv %v, want %d %v", i, o[j].PTS, o[j].Recv, want[j].PTS, want[j].Recv)
			}
		}
		out = append(out, o...)
	}
	if o, err := v.Flush(); err != nil || len(o) != 0 {
		t.Fatalf("flush: %d frames, %v", len(o), err)
	}
	checkH264(t, out, len(in), 640, 360)
}

// TestVideoSizeChange: a new size mid-stream reopens the encoder, starting
// with a keyframe at the new size.
func TestVideoSizeChange(t *testing.T) {
	t.Parallel() // several transcoders at once, as in the relay
	var tr media.Track
	var in []media.Unit
	for _, size := range []string{"640x360", "320x240"} {
		path := filepath.Join(t.TempDir(), "v.mp4")
		ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30", "-t", "1", "-pix_fmt", "yuv420p",
			"-c:v", "libx264", "-bf", "0", path)
		var units []media.Unit
		tr, units = demux(t, path, astiav.MediaTypeVideo)
		for _, u := range units {
			if u.Keyframe {
				u.NALUs = append(append([][]byte(nil), tr.Params...), u.NALUs...)
			}
			if len(in) > 0 {
				shift := in[len(in)-1].PTS + 3000
				u.PTS += shift
				u.DTS += shift
			}
			in = append(in, u)
		}
	}
	tr.Params = nil
	v, err := NewVideo(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	out := transcodeAll(t, v, in, nil)
	if len(out) != len(in) {
		t.Fatalf("%d frames out, %d in", len(out), len(in))
	}
	dec := newDecoder(t, "h264", nil)
	var sizes []string
	for i, u := range out {
		var b []byte
		for _, n := range u.NALUs {
			b = append(append(b, 0, 0, 0, 1), n...)
		}
		if err := dec.decode(b, func(f *astiav.Frame) {
			sizes = append(sizes, fmt.Sprintf("%dx%d", f.Width(), f.Height()))
		}); err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
		if i == 30 && !u.Keyframe {
			t.Error("no keyframe at the size change")
		}
	}
	if len(sizes) != len(out) || sizes[29] != "640x360" || sizes[30] != "320x240" {
		t.Errorf("decoded sizes %v", sizes)
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRealtime reports wall and CPU time per unit, and the share of one
// core that transcoding unitsPerSecond in real time takes.
func reportRealtime(b *testing.B, n int, wall, cpu time.Duration, unitsPerSecond float64, unit string) {
	b.ReportMetric(float64(wall.Nanoseconds())/float64(n), "ns/"+unit)
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/"+unit)
	b.ReportMetric(float64(n)/wall.Seconds(), unit+"s/s")
	b.ReportMetric(100*cpu.Seconds()/float64(n)*unitsPerSecond, "%core-realtime")
}

func BenchmarkVideo720p(b *testing.B) {
	path := filepath.Join(b.TempDir(), "v.mp4")
	ffmpeg(b, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "4", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-bf", "2", "-g", "30", "-b:v", "4M", path)
	tr, in := demux(b, path, astiav.MediaTypeVideo)
	period := in[len(in)-1].DTS - in[0].DTS + VideoClockRate/30
	v, err := NewVideo(tr)
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	for i := range b.N {
		u := in[i%len(in)]
		shift := int64(i/len(in)) * period // loop the clip with increasing timestamps
		u.PTS += shift
		u.DTS += shift
		if _, err := v.Transcode(u); err != nil {
			b.Fatal(err)
		}
	}
	reportRealtime(b, b.N, time.Since(start), cpuTime(b)-cpu0, 30, "frame")
}

func BenchmarkAudio(b *testing.B) {
	path := filepath.Join(b.TempDir(), "a.m4a")
	ffmpeg(b, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "10", "-ac", "2", "-c:a", "aac", path)
	tr, in := demux(b, path, astiav.MediaTypeAudio)
	period := in[len(in)-1].PTS - in[0].PTS + 1024
	a, err := NewAudio(tr)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime(b)
	for i := range b.N {
		u := in[i%len(in)]
		u.PTS += int64(i/len(in)) * period
		if _, err := a.Transcode(u); err != nil {
			b.Fatal(err)
		}
	}
	reportRealtime(b, b.N, time.Since(start), cpuTime(b)-cpu0, float64(tr.ClockRate)/1024, "unit")
}

// transcoder is an Audio or a Video as the tests drive them.
type transcoder interface {
	Transcode(media.Unit) ([]media.Unit, error)
	Flush() ([]media.Unit, error)
}

// transcodeAll feeds in to tr, then flushes it, failing on any error, and
// returns everything that came out; each (if not nil) sees every input
// with what it gave.
func transcodeAll(t *testing.T, tr transcoder, in []media.Unit, each func(u media.Unit, out []media.Unit)) []media.Unit {
	t.Helper()
	var out []media.Unit
	for _, u := range in {
		o, err := tr.Transcode(u)
		if err != nil {
			t.Fatal(err)
		}
		if each != nil {
			each(u, o)
		}
		out = append(out, o...)
	}
	o, err := tr.Flush()
	if err != nil {
		t.Fatal(err)
	}
	return append(out, o...)
}
