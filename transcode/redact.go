package transcode

/*
#cgo pkg-config: libavutil
#include <libavutil/frame.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/asticode/go-astiav"
)

// Box is a region of the picture to hide over a span of the stream: where
// it is at chosen times (its keys), and between them where linear
// interpolation puts it; before its first key and after its last it stays
// where those put it.
type Box struct {
	// From and To: when it hides (source presentation time); To 0: to
	// the end.
	From, To time.Duration
	Keys     []BoxKey
	// Solid fills it black; otherwise it is pixelated (blocks of a sixth
	// of its smaller side, at least 16 pixels, each its average).
	Solid bool
}

// BoxKey is where a box is at a time: its top-left corner and size as
// fractions (0 to 1) of the picture's width and height.
type BoxKey struct {
	At         time.Duration
	X, Y, W, H float64
}

// Window is a span of the stream (source presentation time).
type Window struct{ From, To time.Duration }

// CheckRedaction reports what is wrong with boxes and mutes.
func CheckRedaction(boxes []Box, mutes []Window) error {
	for i, b := range boxes {
		if len(b.Keys) == 0 {
			return fmt.Errorf("box %d has no position", i+1)
		}
		if b.To != 0 && b.To <= b.From || b.From < 0 {
			return fmt.Errorf("box %d: from must be before to", i+1)
		}
		for _, k := range b.Keys {
			for _, v := range []float64{k.X, k.Y, k.W, k.H} {
				if math.IsNaN(v) || v < 0 || v > 1 {
					return fmt.Errorf("box %d: x, y, w and h are fractions of the picture, 0 to 1", i+1)
				}
			}
			if k.W <= 0 || k.H <= 0 || k.X+k.W > 1.0001 || k.Y+k.H > 1.0001 {
				return fmt.Errorf("box %d: a position must lie inside the picture and not be empty", i+1)
			}
		}
	}
	for i, m := range mutes {
		if m.From < 0 || m.To <= m.From {
			return fmt.Errorf("mute %d: from must be before to", i+1)
		}
	}
	return nil
}

// at is where b is at t, and whether it hides then.
func (b Box) at(t time.Duration) (BoxKey, bool) {
	if t < b.From || b.To != 0 && t >= b.To || len(b.Keys) == 0 {
		return BoxKey{}, false
	}
	keys := b.Keys
	i := sort.Search(len(keys), func(i int) bool { return keys[i].At > t })
	switch {
	case i == 0:
		return keys[0], true
	case i == len(keys):
		return keys[len(keys)-1], true
	}
	a, c := keys[i-1], keys[i]
	f := float64(t-a.At) / float64(c.At-a.At)
	lerp := func(x, y float64) float64 { return x + (y-x)*f }
	return BoxKey{At: t, X: lerp(a.X, c.X), Y: lerp(a.Y, c.Y), W: lerp(a.W, c.W), H: lerp(a.H, c.H)}, true
}

// sortKeys orders every box's keys by time.
func sortKeys(boxes []Box) []Box {
	out := make([]Box, len(boxes))
	for i, b := range boxes {
		b.Keys = append([]BoxKey(nil), b.Keys...)
		sort.SliceStable(b.Keys, func(x, y int) bool { return b.Keys[x].At < b.Keys[y].At })
		out[i] = b
	}
	return out
}

// errNotPlanar420: redaction works on 8-bit planar 4:2:0 pictures, what
// H.264 and H.265 recorders make.
var errNotPlanar420 = errors.New("transcode: redaction needs 8-bit 4:2:0 video")

// redactFrame hides the boxes that are on f at t, in place (the frame is
// made writable first: the decoder keeps references to its pictures).
func redactFrame(f *astiav.Frame, boxes []Box, t time.Duration) error {
	var on []BoxKey
	var solid []bool
	for _, b := range boxes {
		if k, ok := b.at(t); ok {
			on, solid = append(on, k), append(solid, b.Solid)
		}
	}
	if len(on) == 0 {
		return nil
	}
	if pf := f.PixelFormat(); pf != astiav.PixelFormatYuv420P && pf != astiav.PixelFormatYuvj420P {
		return fmt.Errorf("%w (the decoder gives %s)", errNotPlanar420, pf)
	}
	cf := (*C.AVFrame)(unsafe.Pointer(f.UnsafePointer()))
	if ret := C.av_frame_make_writable(cf); ret < 0 {
		return fmt.Errorf("transcode: redaction: no writable picture (error %d)", int(ret))
	}
	w, h := f.Width(), f.Height()
	planes := [3][]byte{}
	strides := [3]int{}
	for i := range planes {
		rows := h
		if i > 0 {
			rows = (h + 1) / 2
		}
		strides[i] = int(cf.linesize[i])
		planes[i] = unsafe.Slice((*byte)(unsafe.Pointer(cf.data[i])), strides[i]*rows)
	}
	for n, k := range on {
		x0, y0 := int(k.X*float64(w))&^1, int(k.Y*float64(h))&^1
		x1, y1 := min(w, (int(math.Ceil((k.X+k.W)*float64(w)))+1)&^1), min(h, (int(math.Ceil((k.Y+k.H)*float64(h)))+1)&^1)
		if x1 <= x0 || y1 <= y0 {
			continue
		}
		if solid[n] {
			fill(planes[0], strides[0], x0, y0, x1, y1, 16)
			fill(planes[1], strides[1], x0/2, y0/2, x1/2, y1/2, 128)
			fill(planes[2], strides[2], x0/2, y0/2, x1/2, y1/2, 128)
			continue
		}
		block := max(16, min(x1-x0, y1-y0)/6) &^ 1
		pixelate(planes[0], strides[0], x0, y0, x1, y1, block)
		pixelate(planes[1], strides[1], x0/2, y0/2, x1/2, y1/2, block/2)
		pixelate(planes[2], strides[2], x0/2, y0/2, x1/2, y1/2, block/2)
	}
	return nil
}

func fill(p []byte, stride, x0, y0, x1, y1 int, v byte) {
	for y := y0; y < y1; y++ {
		row := p[y*stride+x0 : y*stride+x1]
		for i := range row {
			row[i] = v
		}
	}
}

// pixelate replaces each block×block square of the rectangle with its
// average.
func pixelate(p []byte, stride, x0, y0, x1, y1, block int) {
	for by := y0; by < y1; by += block {
		ey := min(by+block, y1)
		for bx := x0; bx < x1; bx += block {
			ex := min(bx+block, x1)
			sum, n := 0, 0
			for y := by; y < ey; y++ {
				for _, v := range p[y*stride+bx : y*stride+ex] {
					sum += int(v)
				}
				n += ex - bx
			}
			avg := byte((sum + n/2) / n)
			fill(p, stride, bx, by, ex, ey, avg)
		}
	}
}

// muteFrame silences the samples of f (planar float, starting at t, rate
// samples a second) that fall in a window, in place.
func muteFrame(f *astiav.Frame, windows []Window, t time.Duration, rate int) error {
	n := f.NbSamples()
	if n == 0 || len(windows) == 0 {
		return nil
	}
	end := t + time.Duration(n)*time.Second/time.Duration(rate)
	var hit []Window
	for _, w := range windows {
		if w.From < end && w.To > t {
			hit = append(hit, w)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	if f.SampleFormat() != astiav.SampleFormatFltp {
		return fmt.Errorf("transcode: muting needs planar float samples, not %s", f.SampleFormat().Name())
	}
	cf := (*C.AVFrame)(unsafe.Pointer(f.UnsafePointer()))
	if ret := C.av_frame_make_writable(cf); ret < 0 {
		return fmt.Errorf("transcode: muting: no writable frame (error %d)", int(ret))
	}
	channels := f.ChannelLayout().NbChannels()
	ptrs := unsafe.Slice((**C.uint8_t)(unsafe.Pointer(cf.extended_data)), channels)
	for ch := 0; ch < channels; ch++ {
		samples := unsafe.Slice((*float32)(unsafe.Pointer(ptrs[ch])), n)
		for _, w := range hit {
			from := max(0, int(float64(w.From-t)*float64(rate)/float64(time.Second)))
			to := min(n, int(math.Ceil(float64(w.To-t)*float64(rate)/float64(time.Second))))
			for i := from; i < to; i++ {
				samples[i] = 0
			}
		}
	}
	return nil
}

// markFilter is the drawtext filter writing mark at the picture's bottom
// left, white on a dark band, sized to the picture's height. The mark is
// kept to letters, digits, spaces and . _ - # (anything else becomes _):
// nothing in it is then special to drawtext or to the filter graph.
func markFilter(mark string, height int) string {
	esc := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" ._-#", r):
			return r
		}
		return '_'
	}, mark)
	size := max(12, height/28)
	return fmt.Sprintf("drawtext=fontfile=%s:text='%s':fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=%d:x=%d:y=h-th-%d",
		markFont, esc, size, size/3, size/2, size/2)
}

// markFont is the font of the mark (Debian's fonts-dejavu-core).
const markFont = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
