package transcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/asticode/go-astiav"
)

// Remuxing: an uploaded recorder file (MP4, MOV and what else FFmpeg
// demuxes) is copied, packet for packet, into a fragmented MP4 that a
// browser's <video> plays while it downloads. Nothing is decoded or
// encoded: the pictures and sound are the original's, only the container
// changes. The stored file is never changed; this is for playback only.

// ErrNotPlayable is returned by Remux for a file that holds no video or
// audio track an MP4 can carry; nothing was written.
var ErrNotPlayable = errors.New("transcode: no track an MP4 can carry")

// ErrUnreadable is returned by Remux for bytes FFmpeg cannot read as a
// media file (damaged, or not a container it knows); nothing was written.
var ErrUnreadable = errors.New("transcode: not a media file FFmpeg reads")

// Ranges reads byte ranges of stored objects (storage.Store's GetRange).
type Ranges interface {
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// remuxBuffer is the size of FFmpeg's read and write buffers: what a
// remux holds of the file at a time besides the demuxer's index.
const remuxBuffer = 64 << 10

// fragMax bounds a fragment's media bytes: the muxer holds a fragment in
// memory until it is complete, and a keyframe interval of a high-rate
// file could otherwise be tens of megabytes. A fragment starts at every
// keyframe, and within a long interval every fragMax bytes.
const fragMax = 4 << 20

// The codecs copied into the fragmented MP4 (what FFmpeg's mp4 muxer
// takes and browsers play); other tracks (PCM sound in a MOV, timecode,
// GPS data) are left out of the playback copy.
var remuxCodecs = map[astiav.CodecID]bool{
	astiav.CodecIDH264: true, astiav.CodecIDHevc: true, astiav.CodecIDVp9: true,
	astiav.CodecIDMpeg4: true,
	astiav.CodecIDAac:   true, astiav.CodecIDMp3: true, astiav.CodecIDOpus: true, astiav.CodecIDAc3: true,
	astiav.CodecIDEac3: true, astiav.CodecIDFlac: true, astiav.CodecIDAlac: true,
}

// hvc1 is the sample entry Safari needs for H.265 (FFmpeg writes hev1 by
// default, which only some players take).
const hvc1 = astiav.CodecTag('h' | 'v'<<8 | 'c'<<16 | '1'<<24)

// RemuxInfo says what Remux copied.
type RemuxInfo struct {
	Streams []string // codec names, in output order
	Dropped []string // tracks left out (codec names)
	Packets int64
	Written int64 // bytes written to w
}

// Remux reads the stored object key (size bytes) through src, never more
// than FFmpeg's buffers of it at a time and each read from where the
// demuxer is (a ranged read: an MP4 whose index is at its end costs a
// seek, not the whole file), and writes to w a fragmented MP4
// (frag_keyframe+empty_moov+default_base_moof: ftyp and a moov without
// samples, then a moof and mdat per keyframe) with the video and audio
// tracks copied as they are. Memory does not grow with the file's size
// beyond the demuxer's sample index (tens of bytes per frame).
//
// When it fails before writing (not a file FFmpeg reads, ErrNotPlayable),
// RemuxInfo.Written is 0 and the caller may still answer with an error.
// ctx ends a remux between reads.
func Remux(ctx context.Context, src Ranges, key string, size int64, w io.Writer) (RemuxInfo, error) {
	Init()
	var info RemuxInfo
	in := &rangeReader{ctx: ctx, src: src, key: key, size: size}
	defer in.close()
	inIO, err := astiav.AllocIOContext(remuxBuffer, false, in.read, in.seek, nil)
	if err != nil {
		return info, fmt.Errorf("transcode: remux: %w", err)
	}
	defer inIO.Free()
	ifc := astiav.AllocFormatContext()
	if ifc == nil {
		return info, errors.New("transcode: remux: cannot allocate a format context")
	}
	defer ifc.Free()
	ifc.SetPb(inIO)
	if err := ifc.OpenInput("", nil, nil); err != nil {
		return info, in.unreadable(err)
	}
	defer ifc.CloseInput()
	if err := ifc.FindStreamInfo(nil); err != nil {
		return info, in.unreadable(err)
	}

	out := &countWriter{w: w, ctx: ctx}
	outIO, err := astiav.AllocIOContext(remuxBuffer, true, nil, nil, out.write)
	if err != nil {
		return info, fmt.Errorf("transcode: remux: %w", err)
	}
	defer outIO.Free()
	ofc, err := astiav.AllocOutputFormatContext(nil, "mp4", "")
	if err != nil {
		return info, fmt.Errorf("transcode: remux: %w", err)
	}
	defer ofc.Free()
	ofc.SetPb(outIO)

	type pair struct{ in, out *astiav.Stream }
	streams := map[int]pair{}
	for _, is := range ifc.Streams() {
		cp := is.CodecParameters()
		mt := cp.MediaType()
		if mt != astiav.MediaTypeVideo && mt != astiav.MediaTypeAudio {
			continue
		}
		// (A cover picture, MJPEG, is a video stream too: left out.)
		if !remuxCodecs[cp.CodecID()] {
			info.Dropped = append(info.Dropped, cp.CodecID().Name())
			continue
		}
		os := ofc.NewStream(nil)
		if os == nil {
			return info, errors.New("transcode: remux: cannot add a stream")
		}
		if err := cp.Copy(os.CodecParameters()); err != nil {
			return info, fmt.Errorf("transcode: remux: %w", err)
		}
		os.CodecParameters().SetCodecTag(0)
		if cp.CodecID() == astiav.CodecIDHevc {
			os.CodecParameters().SetCodecTag(hvc1)
		}
		os.SetTimeBase(is.TimeBase())
		streams[is.Index()] = pair{is, os}
		info.Streams = append(info.Streams, cp.CodecID().Name())
	}
	if len(streams) == 0 {
		return info, fmt.Errorf("%w: %s has none (tracks: %v)", ErrNotPlayable, key, info.Dropped)
	}
	opts := astiav.NewDictionary()
	defer opts.Free()
	for k, v := range map[string]string{"movflags": "frag_keyframe+empty_moov+default_base_moof",
		"frag_size": strconv.Itoa(fragMax)} {
		if err := opts.Set(k, v, 0); err != nil {
			return info, fmt.Errorf("transcode: remux: %w", err)
		}
	}
	if err := ofc.WriteHeader(opts); err != nil {
		return info, fmt.Errorf("transcode: remux: %s: %w", key, out.cause(err))
	}
	if e := opts.Get("", nil, astiav.NewDictionaryFlags(astiav.DictionaryFlagIgnoreSuffix)); e != nil {
		return info, fmt.Errorf("transcode: remux: unknown option %s=%s", e.Key(), e.Value())
	}
	pkt := astiav.AllocPacket()
	defer pkt.Free()
	for {
		if err := ifc.ReadFrame(pkt); err != nil {
			if errors.Is(err, astiav.ErrEof) && in.err == nil {
				break
			}
			info.Written = out.n
			return info, fmt.Errorf("transcode: remux: %s: %w", key, in.cause(err))
		}
		p, ok := streams[pkt.StreamIndex()]
		if !ok {
			pkt.Unref()
			continue
		}
		pkt.SetStreamIndex(p.out.Index())
		pkt.RescaleTs(p.in.TimeBase(), p.out.TimeBase())
		pkt.SetPos(-1)
		if err := ofc.WriteInterleavedFrame(pkt); err != nil {
			info.Written = out.n
			return info, fmt.Errorf("transcode: remux: %s: %w", key, out.cause(err))
		}
		info.Packets++
		if out.err != nil {
			info.Written = out.n
			return info, out.err
		}
	}
	if err := ofc.WriteTrailer(); err != nil {
		info.Written = out.n
		return info, fmt.Errorf("transcode: remux: %s: %w", key, out.cause(err))
	}
	outIO.Flush()
	info.Written = out.n
	return info, out.err
}

// rangeReader is a stored object as FFmpeg's read and seek callbacks see
// it: one ranged read open from the current offset to the object's end,
// reopened where the demuxer seeks.
type rangeReader struct {
	ctx  context.Context
	src  Ranges
	key  string
	size int64
	off  int64
	cur  io.ReadCloser
	err  error // the first failure, which FFmpeg only sees as a code
}

// FFmpeg's seek whence flags (libavformat/avio.h).
const (
	avseekSize  = 0x10000
	avseekForce = 0x20000
)

func (r *rangeReader) read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		r.fail(err)
		return 0, astiav.ErrExit
	}
	if r.off >= r.size {
		return 0, astiav.ErrEof
	}
	if r.cur == nil {
		rc, err := r.src.GetRange(r.ctx, r.key, r.off, math.MaxInt64)
		if err != nil {
			r.fail(err)
			return 0, astiav.ErrEio
		}
		r.cur = rc
	}
	n, err := r.cur.Read(b)
	r.off += int64(n)
	if n > 0 {
		return n, nil
	}
	if err == io.EOF || err == nil {
		if r.off < r.size {
			r.fail(fmt.Errorf("object %s ends at %d bytes, %d recorded", r.key, r.off, r.size))
			return 0, astiav.ErrEio
		}
		return 0, astiav.ErrEof
	}
	r.fail(err)
	return 0, astiav.ErrEio
}

func (r *rangeReader) seek(offset int64, whence int) (int64, error) {
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

func (r *rangeReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// cause is the reader's own failure when there is one (FFmpeg reports it
// as an I/O error), else err.
func (r *rangeReader) cause(err error) error {
	if r.err != nil {
		return r.err
	}
	return err
}

// unreadable is the error of a file that could not be opened: the
// store's failure, or ErrUnreadable.
func (r *rangeReader) unreadable(err error) error {
	if r.err != nil {
		return fmt.Errorf("transcode: remux: %s: %w", r.key, r.err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnreadable, r.key, err)
}

func (r *rangeReader) close() {
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
}

// countWriter is w as FFmpeg's write callback sees it.
type countWriter struct {
	ctx context.Context
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) write(b []byte) (int, error) {
	if c.err != nil {
		return 0, astiav.ErrEio
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, astiav.ErrExit
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	if err != nil {
		c.err = err
		return n, astiav.ErrEio
	}
	return n, nil
}

func (c *countWriter) cause(err error) error {
	if c.err != nil {
		return c.err
	}
	return err
}
