package derive

// Renditions: copies re-encoded from a recording for people to watch. A
// review proxy is the whole recording small (640 wide, ~600 kbit/s H.264
// + AAC) for a slow link; a clip is a window of it, cut exactly at the
// times asked (the first frame at or after from_seconds, the last before
// to_seconds), at the source's size. Both are fragmented MP4, stored
// write-once under derived/ with a signed provenance record, as pictures
// are.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/jobs"
	"github.com/bodycam/bodycam/storage"
)

const (
	// KindProxy is the job (and derived object) kind of a recording's
	// review proxy, played with /media?rendition=proxy.
	KindProxy = "proxy"
	// KindClip is the job (and derived object) kind of a clip.
	KindClip = "clip"
)

// RenderOptions say what a rendition is (transcode.RenderOptions).
type RenderOptions struct {
	// From and To: the window in the stream's presentation time (media
	// time); To 0: to the end.
	From, To time.Duration
	Width    int // 0: the source's
	// VideoBitrate and AudioBitrate in bits per second.
	VideoBitrate, AudioBitrate int
	Preset                     string // x264's
	// Boxes hidden, Mutes silenced, Mark written on every frame.
	Boxes []RenderBox
	Mutes []RenderWindow
	Mark  string
}

// RenderBox is a region hidden over [From, To) (To 0: the end), where its
// keys put it (transcode.Box).
type RenderBox struct {
	From, To time.Duration
	Keys     []RenderKey
	Solid    bool
}

// RenderKey is where a box is at At (fractions of the picture).
type RenderKey struct {
	At         time.Duration
	X, Y, W, H float64
}

// RenderWindow is a span of media time.
type RenderWindow struct{ From, To time.Duration }

// RenderInfo says what was rendered (transcode.RenderInfo).
type RenderInfo struct {
	Width, Height             int
	SourceWidth, SourceHeight int
	SourceVideo, SourceAudio  string
	Audio                     bool
	Frames                    int
	First, Last               time.Duration
	Written                   int64
}

// Renderer decodes objects (read in order as one file), keeps the frames
// of the window, re-encodes them (H.264 + AAC) and writes a fragmented MP4
// to w (transcode.Render). An error another attempt cannot cure is
// jobs.Permanent.
type Renderer func(ctx context.Context, src Store, objects []Object, o RenderOptions, w io.Writer) (RenderInfo, error)

// ProxyParams are a proxy job's parameters.
type ProxyParams struct {
	Width     int `json:"width"`      // even, 160 to 1920
	VideoKbps int `json:"video_kbps"` // 100 to 8000
	AudioKbps int `json:"audio_kbps"` // 32 to 256
}

// DefaultProxy is the review proxy made when one is first asked for.
var DefaultProxy = ProxyParams{Width: 640, VideoKbps: 600, AudioKbps: 96}

// ClipParams are a clip job's parameters: the window in media time (what
// /media's player shows), and the size and bitrate of the clip.
type ClipParams struct {
	FromSeconds float64 `json:"from_seconds"`
	ToSeconds   float64 `json:"to_seconds"`
	Width       int     `json:"width,omitempty"`      // 0: the source's; else even, 160 to 3840
	VideoKbps   int     `json:"video_kbps,omitempty"` // 0: 4000; else 100 to 20000
}

// MaxClip is the longest clip.
const MaxClip = 4 * time.Hour

// Check reports what is wrong with p, as a user is told.
func (p ClipParams) Check() error {
	switch {
	case math.IsNaN(p.FromSeconds) || math.IsNaN(p.ToSeconds) || p.FromSeconds < 0 || p.ToSeconds <= p.FromSeconds:
		return errors.New("a clip needs 0 <= from_seconds < to_seconds")
	case p.ToSeconds-p.FromSeconds > MaxClip.Seconds():
		return fmt.Errorf("a clip is at most %v long", MaxClip)
	case p.Width != 0 && (p.Width < 160 || p.Width > 3840 || p.Width%2 != 0):
		return errors.New("width: even, 160 to 3840, or 0 for the source's")
	case p.VideoKbps != 0 && (p.VideoKbps < 100 || p.VideoKbps > 20000):
		return errors.New("video_kbps: 100 to 20000, or 0 for 4000")
	}
	return nil
}

// Proxy is the handler of proxy jobs: the whole recording re-encoded small.
func (d *Deriver) Proxy(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
	var p ProxyParams
	if err := decodeParams(j, &p); err != nil {
		return nil, err
	}
	if p.Width < 160 || p.Width > 1920 || p.Width%2 != 0 || p.VideoKbps < 100 || p.VideoKbps > 8000 || p.AudioKbps < 32 || p.AudioKbps > 256 {
		return nil, jobs.Permanent(errors.New("proxy parameters: width even 160 to 1920, video_kbps 100 to 8000, audio_kbps 32 to 256"))
	}
	rec, spans, _, _, err := d.recordingSpans(ctx, j.Source)
	if err != nil {
		return nil, err
	}
	objects, sources := wholeRecording(spans)
	o := RenderOptions{Width: p.Width, VideoBitrate: p.VideoKbps * 1000, AudioBitrate: p.AudioKbps * 1000, Preset: "veryfast"}
	return d.render(ctx, j, rec, KindProxy, objects, sources, o,
		fmt.Sprintf("the whole recording decoded with FFmpeg and re-encoded for review: H.264 (libx264 %s, yuv420p, a keyframe every 2 s) at %d kbit/s, scaled (bicubic, display aspect kept) to %d wide, and AAC at %d kbit/s, as fragmented MP4; the originals are the evidence",
			o.Preset, p.VideoKbps, p.Width, p.AudioKbps))
}

// Clip is the handler of clip jobs: a window of the recording, cut at its
// frames.
func (d *Deriver) Clip(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
	var p ClipParams
	if err := decodeParams(j, &p); err != nil {
		return nil, err
	}
	if err := p.Check(); err != nil {
		return nil, jobs.Permanent(fmt.Errorf("clip parameters: %w", err))
	}
	rec, spans, _, starts, err := d.recordingSpans(ctx, j.Source)
	if err != nil {
		return nil, err
	}
	from := time.Duration(p.FromSeconds * float64(time.Second))
	to := time.Duration(p.ToSeconds * float64(time.Second))
	objects, sources := windowOf(spans, starts, from, to)
	kbps := cmpOr(p.VideoKbps, 4000)
	o := RenderOptions{From: from, To: to, Width: p.Width, VideoBitrate: kbps * 1000, AudioBitrate: 128_000, Preset: "veryfast"}
	size := "at the source's size"
	if p.Width > 0 {
		size = fmt.Sprintf("scaled (bicubic, display aspect kept) to %d wide", p.Width)
	}
	return d.render(ctx, j, rec, KindClip, objects, sources, o,
		fmt.Sprintf("the frames from from_seconds (the first at or after it) to to_seconds (the last before it) in the recording's media time, decoded with FFmpeg from the keyframe before and re-encoded: H.264 (libx264 %s, yuv420p) at %d kbit/s %s, and AAC at 128 kbit/s, as fragmented MP4; the originals are the evidence",
			o.Preset, kbps, size))
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// wholeRecording is every object of a recording once, in order.
func wholeRecording(spans []span) ([]Object, []Source) {
	seen := map[string]bool{}
	var objects []Object
	var sources []Source
	for _, sp := range spans {
		for i, ob := range sp.objects {
			if !seen[ob.Key] {
				seen[ob.Key] = true
				objects = append(objects, ob)
				sources = append(sources, sp.sources[i])
			}
		}
	}
	return objects, sources
}

// windowOf is what decodes [from, to) of a recording: the span of the last
// media segment starting at or before from (the init segment and the
// segments back to a keyframe), then the segments up to the last starting
// before to. An uploaded file is its one span.
func windowOf(spans []span, starts []time.Duration, from, to time.Duration) ([]Object, []Source) {
	if starts == nil {
		return wholeRecording(spans)
	}
	first := 0
	for i, s := range starts {
		if s <= from {
			first = i
		}
	}
	objects := append([]Object(nil), spans[first].objects...)
	sources := append([]Source(nil), spans[first].sources...)
	for i := first + 1; i < len(spans) && starts[i] < to; i++ {
		last := len(spans[i].objects) - 1 // a span ends with its own segment
		objects = append(objects, spans[i].objects[last])
		sources = append(sources, spans[i].sources[last])
	}
	return objects, sources
}

// render makes a rendition into a temporary file, stores it once, and
// finishes the job with its provenance.
func (d *Deriver) render(ctx context.Context, j catalog.Job, rec evidence.Recording, kind string, objects []Object, sources []Source,
	o RenderOptions, operation string) ([]catalog.Derived, error) {
	f, err := os.CreateTemp(d.o.TempDir, "bodycam-"+kind+"-*.mp4")
	if err != nil {
		return nil, fmt.Errorf("%s: temporary file: %w", kind, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	info, err := d.o.Render(ctx, d.o.Store, objects, o, io.MultiWriter(f, h))
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", kind, rec.ID, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	key := DerivedKey(rec.DeviceID, rec.ID, kind, j.ParamsHash, "mp4")
	out, err := d.putFileOnce(ctx, key, f, info.Written, h.Sum(nil), "video/mp4")
	if err != nil {
		return nil, err
	}
	out.Width, out.Height = info.Width, info.Height
	if d.o.Pause != nil {
		d.o.Pause(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	details := map[string]any{"frames": info.Frames, "first_frame_seconds": seconds(info.First), "last_frame_seconds": seconds(info.Last),
		"source_video": info.SourceVideo, "source_width": info.SourceWidth, "source_height": info.SourceHeight, "audio": info.Audio}
	if info.SourceAudio != "" {
		details["source_audio"] = info.SourceAudio
	}
	return d.finish(ctx, j, rec, kind, out, sources, operation, details)
}

// putFileOnce stores size bytes of f, whose SHA-256 is sum, at key unless
// an earlier attempt did: then the stored object is kept (one derived
// object, never two), and described.
func (d *Deriver) putFileOnce(ctx context.Context, key string, f io.Reader, size int64, sum []byte, contentType string) (Output, error) {
	info, err := d.o.Store.Put(ctx, key, f, size, storage.PutOptions{SHA256: sum, ContentType: contentType})
	if errors.Is(err, storage.ErrExists) {
		if info, err = d.o.Store.Stat(ctx, key); err != nil {
			return Output{}, err
		}
		if info.SHA256 == "" {
			if info.SHA256, info.Size, err = hashObject(ctx, d.o.Store, key); err != nil {
				return Output{}, err
			}
		}
		if info.SHA256 != hex.EncodeToString(sum) {
			// An encoder may not make the same bytes twice: the stored
			// object is the derived one, described as stored.
			d.o.Log.Warn("derive: an earlier attempt stored other bytes; kept", "key", key, "stored_sha256", info.SHA256)
		}
	} else if err != nil {
		return Output{}, err
	}
	return Output{Key: key, SHA256: info.SHA256, Size: info.Size, ContentType: contentType}, nil
}

// KindRedaction is the job (and derived object) kind of a redacted copy.
const KindRedaction = "redaction"

// RedactionParams are a redaction job's parameters: what to hide, in the
// recording's media time (what /media's player shows).
type RedactionParams struct {
	Boxes     []RedactBox  `json:"boxes,omitempty"`
	Mutes     []MuteWindow `json:"mutes,omitempty"`
	Width     int          `json:"width,omitempty"`      // 0: the source's; else even, 160 to 3840
	VideoKbps int          `json:"video_kbps,omitempty"` // 0: 4000; else 100 to 20000
}

// RedactBox is a region hidden from from_seconds to to_seconds (0: the
// end): where it is at chosen times (keys), moved linearly between them.
type RedactBox struct {
	FromSeconds float64     `json:"from_seconds"`
	ToSeconds   float64     `json:"to_seconds,omitempty"`
	Style       string      `json:"style"` // pixelate or solid
	Keys        []RedactKey `json:"keys"`
}

// RedactKey is where a box is at at_seconds: its top-left corner and size,
// fractions (0 to 1) of the picture's width and height.
type RedactKey struct {
	AtSeconds float64 `json:"at_seconds"`
	X         float64 `json:"x"`
	Y         float64 `json:"y"`
	W         float64 `json:"w"`
	H         float64 `json:"h"`
}

// MuteWindow is a span of sound silenced.
type MuteWindow struct {
	FromSeconds float64 `json:"from_seconds"`
	ToSeconds   float64 `json:"to_seconds"`
}

// Bounds of a redaction's parameters.
const (
	MaxBoxes   = 100
	MaxBoxKeys = 2000
	MaxMutes   = 500
)

// Check reports what is wrong with p, as a user is told.
func (p RedactionParams) Check() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case len(p.Boxes) == 0 && len(p.Mutes) == 0:
		return errors.New("a redaction needs boxes to hide or sound to mute")
	case len(p.Boxes) > MaxBoxes || len(p.Mutes) > MaxMutes:
		return fmt.Errorf("at most %d boxes and %d muted spans", MaxBoxes, MaxMutes)
	case p.Width != 0 && (p.Width < 160 || p.Width > 3840 || p.Width%2 != 0):
		return errors.New("width: even, 160 to 3840, or 0 for the source's")
	case p.VideoKbps != 0 && (p.VideoKbps < 100 || p.VideoKbps > 20000):
		return errors.New("video_kbps: 100 to 20000, or 0 for 4000")
	}
	for i, b := range p.Boxes {
		switch {
		case b.Style != "pixelate" && b.Style != "solid":
			return fmt.Errorf("box %d: style pixelate or solid", i+1)
		case len(b.Keys) == 0 || len(b.Keys) > MaxBoxKeys:
			return fmt.Errorf("box %d: 1 to %d positions (keys)", i+1, MaxBoxKeys)
		case !finite(b.FromSeconds) || !finite(b.ToSeconds) || b.FromSeconds < 0 || b.ToSeconds != 0 && b.ToSeconds <= b.FromSeconds:
			return fmt.Errorf("box %d: 0 <= from_seconds < to_seconds (to_seconds 0: to the end)", i+1)
		}
		for _, k := range b.Keys {
			if !finite(k.AtSeconds) || k.AtSeconds < 0 {
				return fmt.Errorf("box %d: a key's at_seconds from 0", i+1)
			}
			for _, v := range []float64{k.X, k.Y, k.W, k.H} {
				if !finite(v) || v < 0 || v > 1 {
					return fmt.Errorf("box %d: x, y, w and h are fractions of the picture, 0 to 1", i+1)
				}
			}
			if k.W <= 0 || k.H <= 0 || k.X+k.W > 1.0001 || k.Y+k.H > 1.0001 {
				return fmt.Errorf("box %d: a position must lie inside the picture and not be empty", i+1)
			}
		}
	}
	for i, m := range p.Mutes {
		if !finite(m.FromSeconds) || !finite(m.ToSeconds) || m.FromSeconds < 0 || m.ToSeconds <= m.FromSeconds {
			return fmt.Errorf("mute %d: 0 <= from_seconds < to_seconds", i+1)
		}
	}
	return nil
}

func secs(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// Redaction is the handler of redaction jobs: the whole recording with the
// boxes hidden, the spans muted, and a visible mark on every frame
// ("REDACTED COPY of <recording> <its chain head, short>").
func (d *Deriver) Redaction(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
	var p RedactionParams
	if err := decodeParams(j, &p); err != nil {
		return nil, err
	}
	if err := p.Check(); err != nil {
		return nil, jobs.Permanent(fmt.Errorf("redaction parameters: %w", err))
	}
	rec, spans, media, _, err := d.recordingSpans(ctx, j.Source)
	if err != nil {
		return nil, err
	}
	objects, sources := wholeRecording(spans)
	head := media[len(media)-1].ChainHash
	mark := fmt.Sprintf("REDACTED COPY of %s %s", rec.ID, head[:min(8, len(head))])
	kbps := cmpOr(p.VideoKbps, 4000)
	o := RenderOptions{Width: p.Width, VideoBitrate: kbps * 1000, AudioBitrate: 128_000, Preset: "veryfast", Mark: mark}
	for _, b := range p.Boxes {
		box := RenderBox{From: secs(b.FromSeconds), To: secs(b.ToSeconds), Solid: b.Style == "solid"}
		for _, k := range b.Keys {
			box.Keys = append(box.Keys, RenderKey{At: secs(k.AtSeconds), X: k.X, Y: k.Y, W: k.W, H: k.H})
		}
		o.Boxes = append(o.Boxes, box)
	}
	for _, m := range p.Mutes {
		o.Mutes = append(o.Mutes, RenderWindow{From: secs(m.FromSeconds), To: secs(m.ToSeconds)})
	}
	return d.render(ctx, j, rec, KindRedaction, objects, sources, o,
		fmt.Sprintf("the whole recording decoded with FFmpeg; in each frame (media time) the boxes on it hidden in the source picture before scaling: pixelated (blocks of a sixth of the box's smaller side, at least 16 pixels, each its average) or filled black, a box's position linear between its keys; the sound in the muted spans set to silence; %q written at the bottom left of every frame; re-encoded as H.264 (libx264 %s, yuv420p) at %d kbit/s and AAC at 128 kbit/s, as fragmented MP4; the originals are the evidence",
			mark, o.Preset, kbps))
}
