package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"sort"
	"time"

	"github.com/asticode/go-astiav"
)

// Pictures of recordings (posters, thumbnails): a frame decoded from the
// stored objects and written as a JPEG. The objects are read in ranges, as
// Remux reads them; nothing is changed.

// ErrNoVideo is returned for objects that hold no video track: there is
// no picture to take. Another attempt cannot change that.
var ErrNoVideo = errors.New("transcode: no video track")

// Object is a stored object, by key and size.
type Object struct {
	Key  string
	Size int64
}

// PictureOptions say which frame and how large.
type PictureOptions struct {
	// At is how far into the stream (from its first frame) the picture is
	// taken: the first frame whose time is at or after it, or the last
	// frame when the stream ends before.
	At time.Duration
	// Width of the picture (even; default 640); the height keeps the
	// frame's display aspect ratio, rounded to even. Never larger than
	// the frame.
	Width int
	// Quality of the JPEG, 1-100 (default 85).
	Quality int
}

// PictureInfo says what was taken.
type PictureInfo struct {
	Width, Height             int           // the JPEG's
	SourceWidth, SourceHeight int           // the decoded frame's
	Codec                     string        // the video codec
	FrameAt                   time.Duration // the frame's time from the stream's first
	PTS                       time.Duration // the frame's presentation time in the stream (its own clock: a recording's media time)
	Frames                    int           // frames decoded to reach it
}

// Picture decodes the video of objects, read in order as one file (a
// recording's fMP4 init segment then media segments, or an uploaded
// file), to the frame PictureOptions.At names, and returns it scaled to
// PictureOptions.Width as a JPEG (baseline, 4:2:0, full range, as
// image/jpeg writes it: the same frame gives the same bytes). One decoder
// thread: workers bound their own parallelism.
func Picture(ctx context.Context, src Ranges, objects []Object, o PictureOptions) ([]byte, PictureInfo, error) {
	if o.Quality <= 0 || o.Quality > 100 {
		o.Quality = 85
	}
	frames, err := Frames(ctx, src, objects, FramesOptions{At: []time.Duration{o.At}, Width: o.Width})
	if err != nil {
		var info PictureInfo
		if len(frames) > 0 {
			info = frames[0].Info
		}
		return nil, info, err
	}
	b, err := EncodeJPEG(frames[0].Image, o.Quality)
	return b, frames[0].Info, err
}

// EncodeJPEG writes img as a baseline JPEG (quality 1-100) with Go's
// image/jpeg: the same image gives the same bytes.
func EncodeJPEG(img image.Image, quality int) ([]byte, error) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("transcode: picture: jpeg: %w", err)
	}
	return buf.Bytes(), nil
}

// FramesOptions say which frames and how large.
type FramesOptions struct {
	// At are the times (from the stream's first frame) to take frames
	// at, each the first frame at or after it (the last frame when the
	// stream ends before); in any order, repeats allowed.
	At []time.Duration
	// Width of every picture (even; default 640), as PictureOptions'.
	Width int
	// Absolute: At are presentation times in the stream (PictureInfo.PTS)
	// rather than times from its first frame: a span of a recording's
	// segments decoded from a keyframe before the moment asked for.
	Absolute bool
}

// Frame is one picture taken: full-range 4:2:0 (JPEG's), Width×Height.
type Frame struct {
	Image *image.YCbCr
	Info  PictureInfo
}

// Frames decodes the video of objects (as Picture) once, from the start,
// and takes the frames FramesOptions.At names, scaled to its width: one
// Frame per time, in the order asked. Decoding stops at the last frame
// asked for. One decoder thread.
func Frames(ctx context.Context, src Ranges, objects []Object, o FramesOptions) ([]Frame, error) {
	Init()
	var info PictureInfo
	if len(objects) == 0 {
		return nil, errors.New("transcode: picture: no objects")
	}
	if len(o.At) == 0 {
		return nil, errors.New("transcode: picture: no times")
	}
	if o.Width <= 0 {
		o.Width = 640
	}
	o.Width &^= 1
	// The times in order, and where each goes.
	order := make([]int, len(o.At))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return o.At[order[a]] < o.At[order[b]] })
	out := make([]Frame, len(o.At))
	next := 0 // in order: the next time to take a frame at
	in := &concatReader{ctx: ctx, src: src, objects: objects}
	for _, ob := range objects {
		in.size += ob.Size
	}
	defer in.close()
	inIO, err := astiav.AllocIOContext(remuxBuffer, false, in.read, in.seek, nil)
	if err != nil {
		return nil, fmt.Errorf("transcode: picture: %w", err)
	}
	defer inIO.Free()
	ifc := astiav.AllocFormatContext()
	if ifc == nil {
		return nil, errors.New("transcode: picture: cannot allocate a format context")
	}
	defer ifc.Free()
	ifc.SetPb(inIO)
	if err := ifc.OpenInput("", nil, nil); err != nil {
		return nil, in.unreadable(err)
	}
	defer ifc.CloseInput()
	if err := ifc.FindStreamInfo(nil); err != nil {
		return nil, in.unreadable(err)
	}
	var vs *astiav.Stream
	for _, s := range ifc.Streams() {
		if s.CodecParameters().MediaType() == astiav.MediaTypeVideo {
			vs = s
			break
		}
	}
	if vs == nil {
		return nil, fmt.Errorf("%w in %s", ErrNoVideo, objects[0].Key)
	}
	info.Codec = vs.CodecParameters().CodecID().Name()
	codec := astiav.FindDecoder(vs.CodecParameters().CodecID())
	if codec == nil {
		return nil, fmt.Errorf("transcode: picture: no decoder for %s", info.Codec)
	}
	dec := astiav.AllocCodecContext(codec)
	if dec == nil {
		return nil, errors.New("transcode: picture: cannot allocate a decoder")
	}
	defer dec.Free()
	if err := vs.CodecParameters().ToCodecContext(dec); err != nil {
		return nil, fmt.Errorf("transcode: picture: %w", err)
	}
	dec.SetThreadCount(1)
	dec.SetTimeBase(vs.TimeBase())
	if err := dec.Open(codec, nil); err != nil {
		return nil, fmt.Errorf("transcode: picture: open %s decoder: %w", info.Codec, err)
	}
	pkt := astiav.AllocPacket()
	defer pkt.Free()
	frame := astiav.AllocFrame()
	defer frame.Free()
	last := astiav.AllocFrame() // the newest frame decoded
	defer last.Free()
	have := false
	var lastInfo PictureInfo
	sc := &scaler{width: o.Width}
	defer sc.free()
	tb := vs.TimeBase()
	first := int64(astiav.NoPtsValue)
	// take keeps the frame just decoded and takes it for the times it is
	// the first frame at or after; it reports whether all are taken.
	take := func() (bool, error) {
		pts := frame.Pts()
		if pts == astiav.NoPtsValue {
			pts = frame.PktDts()
		}
		if first == astiav.NoPtsValue && pts != astiav.NoPtsValue {
			first = pts
		}
		last.Unref()
		last.Ref(frame)
		have = true
		info.Frames++
		at := time.Duration(0)
		if pts != astiav.NoPtsValue {
			at = time.Duration(float64(pts-first) * tb.Float64() * float64(time.Second))
			info.PTS = time.Duration(float64(pts) * tb.Float64() * float64(time.Second))
		}
		info.FrameAt = at
		lastInfo = info
		if o.Absolute {
			at = info.PTS
		}
		if next < len(order) && at >= o.At[order[next]] {
			img, err := sc.scale(frame, &info)
			if err != nil {
				return false, err
			}
			for ; next < len(order) && at >= o.At[order[next]]; next++ {
				out[order[next]] = Frame{Image: img, Info: info}
			}
		}
		return next == len(order), nil
	}
	receive := func() (bool, error) {
		for {
			if err := dec.ReceiveFrame(frame); err != nil {
				if again(err) {
					return false, nil
				}
				return false, fmt.Errorf("transcode: picture: %s decode: %w", info.Codec, err)
			}
			done, err := take()
			frame.Unref()
			if done || err != nil {
				return done, err
			}
		}
	}
	found := false
	for !found {
		if err := ifc.ReadFrame(pkt); err != nil {
			if errors.Is(err, astiav.ErrEof) && in.err == nil {
				break
			}
			return nil, fmt.Errorf("transcode: picture: %w", in.cause(err))
		}
		if pkt.StreamIndex() != vs.Index() {
			pkt.Unref()
			continue
		}
		err := dec.SendPacket(pkt)
		pkt.Unref()
		if err != nil && !errors.Is(err, astiav.ErrEagain) {
			// A damaged packet: the next keyframe may decode.
			continue
		}
		if found, err = receive(); err != nil {
			return nil, err
		}
	}
	if !found {
		if err := dec.SendPacket(nil); err == nil {
			if _, err := receive(); err != nil {
				return nil, err
			}
		}
	}
	if !have {
		return []Frame{{Info: info}}, fmt.Errorf("transcode: picture: no frame of %s decoded", info.Codec)
	}
	if next < len(order) { // the stream ended before: its last frame
		img, err := sc.scale(last, &lastInfo)
		if err != nil {
			return nil, err
		}
		for ; next < len(order); next++ {
			out[order[next]] = Frame{Image: img, Info: lastInfo}
		}
	}
	return out, nil
}

// scaler scales decoded frames to a width (display aspect kept) in full
// range 4:2:0, one software scaler for frames of one size.
type scaler struct {
	width        int
	sws          *astiav.SoftwareScaleContext
	sw, sh, w, h int
	pf           astiav.PixelFormat
	out          *astiav.Frame
}

func (s *scaler) free() {
	if s.sws != nil {
		s.sws.Free()
		s.sws = nil
	}
	if s.out != nil {
		s.out.Free()
		s.out = nil
	}
}

// scale returns f scaled, as a Go image of its own memory, and fills in
// the sizes of info.
func (s *scaler) scale(f *astiav.Frame, info *PictureInfo) (*image.YCbCr, error) {
	sw, sh := f.Width(), f.Height()
	info.SourceWidth, info.SourceHeight = sw, sh
	if sw <= 0 || sh <= 0 {
		return nil, fmt.Errorf("transcode: picture: decoded frame of %dx%d", sw, sh)
	}
	if s.sws == nil || sw != s.sw || sh != s.sh || f.PixelFormat() != s.pf {
		s.free()
		sar := f.SampleAspectRatio()
		aspect := float64(sw) / float64(sh)
		if sar.Num() > 0 && sar.Den() > 0 {
			aspect *= float64(sar.Num()) / float64(sar.Den())
		}
		w := min(s.width, sw&^1)
		h := max(2, int(math.Round(float64(w)/aspect/2))*2)
		sws, err := astiav.CreateSoftwareScaleContext(sw, sh, f.PixelFormat(), w, h, astiav.PixelFormatYuvj420P,
			astiav.NewSoftwareScaleContextFlags(astiav.SoftwareScaleContextFlagBicubic))
		if err != nil {
			return nil, fmt.Errorf("transcode: picture: scaler from %s: %w", f.PixelFormat(), err)
		}
		s.sws, s.sw, s.sh, s.w, s.h, s.pf = sws, sw, sh, w, h, f.PixelFormat()
		s.out = astiav.AllocFrame()
		s.out.SetWidth(w)
		s.out.SetHeight(h)
		s.out.SetPixelFormat(astiav.PixelFormatYuvj420P)
		if err := s.out.AllocBuffer(0); err != nil {
			return nil, fmt.Errorf("transcode: picture: %w", err)
		}
	}
	w, h := s.w, s.h
	if err := s.sws.ScaleFrame(f, s.out); err != nil {
		return nil, fmt.Errorf("transcode: picture: scale: %w", err)
	}
	// The planes, packed (align 1): Y w×h, then Cb and Cr (w/2)×(h/2).
	// (astiav's FrameData.ToImage reads past the chroma planes of 4:2:0.)
	planes, err := s.out.Data().Bytes(1)
	if err != nil || len(planes) != w*h*3/2 {
		return nil, fmt.Errorf("transcode: picture: frame planes: %d bytes, %v", len(planes), err)
	}
	cw := w / 2
	info.Width, info.Height = w, h
	return &image.YCbCr{Y: planes[:w*h], Cb: planes[w*h : w*h+cw*h/2], Cr: planes[w*h+cw*h/2:], YStride: w, CStride: cw,
		SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: image.Rect(0, 0, w, h)}, nil
}

// concatReader is stored objects, one after another, as FFmpeg's read
// and seek callbacks see one file: a ranged read of the object at the
// current offset, reopened where the demuxer seeks.
type concatReader struct {
	ctx     context.Context
	src     Ranges
	objects []Object
	size    int64
	off     int64
	cur     io.ReadCloser
	curEnd  int64 // where the current reader's object ends
	err     error
}

func (r *concatReader) read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		r.fail(err)
		return 0, astiav.ErrExit
	}
	for {
		if r.off >= r.size {
			return 0, astiav.ErrEof
		}
		if r.cur == nil {
			start := int64(0)
			i := 0
			for ; i < len(r.objects) && start+r.objects[i].Size <= r.off; i++ {
				start += r.objects[i].Size
			}
			ob := r.objects[i]
			rc, err := r.src.GetRange(r.ctx, ob.Key, r.off-start, ob.Size-(r.off-start))
			if err != nil {
				r.fail(err)
				return 0, astiav.ErrEio
			}
			r.cur, r.curEnd = rc, start+ob.Size
		}
		n, err := r.cur.Read(b[:min(int64(len(b)), r.curEnd-r.off)])
		r.off += int64(n)
		if n > 0 {
			if r.off >= r.curEnd {
				r.close()
			}
			return n, nil
		}
		if err == io.EOF || err == nil {
			if r.off < r.curEnd {
				r.fail(fmt.Errorf("an object ends %d bytes before its recorded size", r.curEnd-r.off))
				return 0, astiav.ErrEio
			}
			r.close()
			continue
		}
		r.fail(err)
		return 0, astiav.ErrEio
	}
}

func (r *concatReader) seek(offset int64, whence int) (int64, error) {
	if whence&avseekSize != 0 {
		return r.size, nil
	}
	switch whence &^ avseekForce {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, astiav.ErrEio
	}
	if offset < 0 || offset > r.size {
		return 0, astiav.ErrEio
	}
	if offset != r.off {
		r.close()
		r.off = offset
	}
	return offset, nil
}

func (r *concatReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *concatReader) cause(err error) error {
	if r.err != nil {
		return r.err
	}
	return err
}

func (r *concatReader) unreadable(err error) error {
	if r.err != nil {
		return fmt.Errorf("transcode: picture: %s: %w", r.objects[0].Key, r.err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnreadable, r.objects[0].Key, err)
}

func (r *concatReader) close() {
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}
