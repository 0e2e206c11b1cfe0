package derive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/jobs"
)

// Thumbnails (one small picture per segment, at its start) and the
// timeline sprite (one picture: a grid of frames every few seconds, and
// its index of tile → time) are for finding the moment in a recording.

const (
	// KindThumbnails is the job kind of a recording's thumbnails; each
	// is a derived object of kind KindThumbnail.
	KindThumbnails = "thumbnails"
	KindThumbnail  = "thumbnail"
	// KindSprite is the job (and derived object) kind of a recording's
	// timeline sprite; its index is a derived object of kind
	// KindSpriteIndex.
	KindSprite      = "sprite"
	KindSpriteIndex = "sprite_index"
)

// MaxSpriteTiles bounds a sprite: a longer recording's tiles are further
// apart than every_seconds asks (its index says how far).
const MaxSpriteTiles = 1000

// Frame is one picture taken (full-range 4:2:0) and what it is.
type Frame struct {
	Image *image.YCbCr
	Info  PictureInfo
}

// Framer decodes objects (read in order as one file) once and takes the
// first frame at or after each of at (presentation times in the stream's
// own clock, media time; FirstFrame: the first frame decoded; the last
// frame past the end), width wide: one Frame per time, in order, each with
// its presentation time as Info.FrameAt (transcode.Frames, Absolute). An
// error another attempt cannot cure is jobs.Permanent.
type Framer func(ctx context.Context, src Store, objects []Object, at []time.Duration, width int) ([]Frame, error)

// FirstFrame asks a Framer for the first frame it decodes.
const FirstFrame = time.Duration(math.MinInt64)

// ThumbnailParams are a thumbnails job's parameters.
type ThumbnailParams struct {
	Width int `json:"width"` // of each JPEG (even, 16 to 640)
}

// DefaultThumbnails are the thumbnails made of every closed recording.
var DefaultThumbnails = ThumbnailParams{Width: 160}

// SpriteParams are a sprite job's parameters.
type SpriteParams struct {
	EverySeconds float64 `json:"every_seconds"` // between tiles (0.5 to 3600)
	Width        int     `json:"width"`         // of each tile (even, 16 to 640)
	Columns      int     `json:"columns"`       // of the grid (1 to 50)
}

// DefaultSprite is the sprite made of every closed recording.
var DefaultSprite = SpriteParams{EverySeconds: 10, Width: 160, Columns: 10}

// SpriteIndex is a sprite's index, stored beside it as JSON: where each
// tile is and the time of its frame.
type SpriteIndex struct {
	Version      int          `json:"version"` // 1
	RecordingID  string       `json:"recording_id"`
	Sprite       string       `json:"sprite"` // the sprite's key
	SpriteSHA256 string       `json:"sprite_sha256"`
	Width        int          `json:"width"` // of the sprite
	Height       int          `json:"height"`
	TileWidth    int          `json:"tile_width"`
	TileHeight   int          `json:"tile_height"`
	Columns      int          `json:"columns"`
	Rows         int          `json:"rows"`
	EverySeconds float64      `json:"every_seconds"` // as made (more than asked for a long recording)
	Tiles        []SpriteTile `json:"tiles"`
}

// SpriteTile is one tile: its top-left corner in the sprite, the time it
// stands for (a multiple of every_seconds) and the time of its frame (the
// first at or after it), both in media time (what /media's player shows).
type SpriteTile struct {
	X              int     `json:"x"`
	Y              int     `json:"y"`
	AtSeconds      float64 `json:"at_seconds"`
	FrameAtSeconds float64 `json:"frame_at_seconds"`
}

// decodeParams reads a job's parameters into v, refusing unknown fields
// (a permanent failure).
func decodeParams(j catalog.Job, v any) error {
	dec := json.NewDecoder(bytes.NewReader(j.Params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jobs.Permanent(fmt.Errorf("%s parameters: %v", j.Kind, err))
	}
	return nil
}

// span is what a picture of one part of a recording is decoded from: the
// objects (an init segment and media segments from a keyframe, or an
// uploaded file) and their sources.
type span struct {
	objects []Object
	sources []Source
}

// recordingSpans loads a recording and its segments and makes their spans
// (segmentSpans).
func (d *Deriver) recordingSpans(ctx context.Context, id string) (evidence.Recording, []span, []evidence.Segment, []time.Duration, error) {
	rec, err := d.o.Catalog.Recording(ctx, id)
	if err != nil {
		return rec, nil, nil, nil, err
	}
	segs, err := d.o.Catalog.Segments(ctx, rec.ID)
	if err != nil {
		return rec, nil, nil, nil, err
	}
	spans, media, starts, err := d.segmentSpans(ctx, rec, segs)
	return rec, spans, media, starts, err
}

// segmentSpans are, for each media segment of a stream recording, the
// span that decodes it: the init segment and the media segments from the
// last one that starts with a keyframe up to it. An uploaded recording is
// one span, its file. Its media segments are returned too, and the
// segments' start times in media time (nil for an uploaded file).
func (d *Deriver) segmentSpans(ctx context.Context, rec evidence.Recording, segs []evidence.Segment) ([]span, []evidence.Segment, []time.Duration, error) {
	var init *evidence.Segment
	var media []evidence.Segment
	for i := range segs {
		s := segs[i]
		switch s.Kind {
		case evidence.KindOriginal:
			return []span{{objects: []Object{{Key: s.Key, Size: s.Size}}, sources: []Source{sourceOf(s)}}}, []evidence.Segment{s}, nil, nil
		case evidence.KindInit:
			if init == nil {
				init = &segs[i]
			}
		case evidence.KindMedia:
			media = append(media, s)
		}
	}
	if init == nil || len(media) == 0 {
		return nil, nil, nil, jobs.Permanent(fmt.Errorf("recording %s has no stored video to take pictures of", rec.ID))
	}
	starts, err := d.mediaStarts(ctx, *init, media)
	if err != nil {
		return nil, nil, nil, err
	}
	spans := make([]span, len(media))
	from := 0
	for i, m := range media {
		if m.Keyframe || i == 0 {
			from = i
		}
		sp := span{objects: []Object{{Key: init.Key, Size: init.Size}}, sources: []Source{sourceOf(*init)}}
		for _, s := range media[from : i+1] {
			sp.objects = append(sp.objects, Object{Key: s.Key, Size: s.Size})
			sp.sources = append(sp.sources, sourceOf(s))
		}
		spans[i] = sp
	}
	return spans, media, starts, nil
}

func sourceOf(s evidence.Segment) Source {
	return Source{Key: s.Key, SHA256: s.SHA256, Size: s.Size, Kind: string(s.Kind)}
}

// allSources are the init segment and media segments (or the file) of a
// recording, once each, in order.
func allSources(spans []span) []Source {
	seen := map[string]bool{}
	var out []Source
	for _, sp := range spans {
		for _, s := range sp.sources {
			if !seen[s.Key] {
				seen[s.Key] = true
				out = append(out, s)
			}
		}
	}
	return out
}

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1e6) / 1e6 }

// Thumbnails is the handler of thumbnails jobs: a JPEG width wide of the
// first frame of every media segment (of an uploaded file: its first
// frame), stored under derived/<device>/<recording>/thumbnails-<params
// hash>/<n>.jpg, all named by one provenance record.
func (d *Deriver) Thumbnails(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
	var p ThumbnailParams
	if err := decodeParams(j, &p); err != nil {
		return nil, err
	}
	if p.Width < 16 || p.Width > 640 || p.Width%2 != 0 {
		return nil, jobs.Permanent(fmt.Errorf("thumbnails parameters: width even, 16 to 640"))
	}
	rec, spans, media, starts, err := d.recordingSpans(ctx, j.Source)
	if err != nil {
		return nil, err
	}
	base := DerivedKey(rec.DeviceID, rec.ID, KindThumbnails, j.ParamsHash, "jpg")
	dir := base[:len(base)-len(".jpg")]
	outs := make([]Output, 0, len(spans))
	var origin time.Duration // the first frame's presentation time
	for i, sp := range spans {
		// The segment's first frame: the span's first, or, decoded from
		// an earlier keyframe, the first at or after the segment's start.
		at := FirstFrame
		if len(sp.objects) > 2 {
			at = starts[i]
		}
		frames, err := d.o.Frames(ctx, d.o.Store, sp.objects, []time.Duration{at}, p.Width)
		if err != nil {
			return nil, fmt.Errorf("thumbnail of %s: %w", media[i].Key, err)
		}
		f := frames[0]
		if i == 0 {
			origin = f.Info.FrameAt
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, f.Image, &jpeg.Options{Quality: 85}); err != nil {
			return nil, err
		}
		out, err := d.putOnce(ctx, fmt.Sprintf("%s/%06d.jpg", dir, i), buf.Bytes(), "image/jpeg")
		if err != nil {
			return nil, err
		}
		t := seconds(f.Info.FrameAt - origin)
		out.Kind, out.Width, out.Height, out.FrameAtSeconds, out.Segment = KindThumbnail, f.Info.Width, f.Info.Height, &t, media[i].Key
		outs = append(outs, out)
	}
	if d.o.Pause != nil {
		d.o.Pause(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return d.finishMany(ctx, j, rec, KindThumbnails, ProvenanceKey(base), outs, false, allSources(spans),
		"one thumbnail per media segment (of an uploaded file: one): the segment's first video frame, decoded with FFmpeg (from the init segment and the segments back to the last that starts with a keyframe) and scaled (bicubic, display aspect kept) to width, written as a baseline JPEG (Go image/jpeg, quality 85)",
		map[string]any{"thumbnails": len(outs)},
		fmt.Sprintf("%d thumbnails %s/ (%d bytes in all)", len(outs), dir, sumSizes(outs)))
}

func sumSizes(outs []Output) int64 {
	var n int64
	for _, o := range outs {
		n += o.Size
	}
	return n
}

// Sprite is the handler of sprite jobs: the first frame at or after every
// every_seconds of the recording (further apart for more than
// MaxSpriteTiles), each width wide, as one JPEG grid of columns, and its
// index (SpriteIndex) as JSON; both named by one provenance record.
func (d *Deriver) Sprite(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
	var p SpriteParams
	if err := decodeParams(j, &p); err != nil {
		return nil, err
	}
	if p.Width < 16 || p.Width > 640 || p.Width%2 != 0 || p.Columns < 1 || p.Columns > 50 ||
		!(p.EverySeconds >= 0.5 && p.EverySeconds <= 3600) {
		return nil, jobs.Permanent(fmt.Errorf("sprite parameters: width even, 16 to 640; columns 1 to 50; every_seconds 0.5 to 3600"))
	}
	rec, spans, media, starts, err := d.recordingSpans(ctx, j.Source)
	if err != nil {
		return nil, err
	}
	// How long: to the end of the last segment (an uploaded file: as
	// recorded, else up to MaxSpriteTiles tiles, those past its end left
	// out).
	var length time.Duration
	upload := media[0].Kind == evidence.KindOriginal
	if upload {
		length = rec.EndedAt.Sub(rec.StartedAt)
		if length <= 0 {
			length = time.Duration(p.EverySeconds*MaxSpriteTiles) * time.Second
		}
	} else {
		last := len(media) - 1
		length = max(starts[last]+media[last].Duration, time.Millisecond)
	}
	// Times count from the first frame, whose presentation time (the
	// stream's own clock) is origin.
	first, err := d.o.Frames(ctx, d.o.Store, spans[0].objects, []time.Duration{FirstFrame}, p.Width)
	if err != nil {
		return nil, fmt.Errorf("sprite: the first frame of %s: %w", media[0].Key, err)
	}
	origin := first[0].Info.FrameAt
	every := time.Duration(p.EverySeconds * float64(time.Second))
	if n := (length + every - 1) / every; n > MaxSpriteTiles {
		every = (length + MaxSpriteTiles - 1) / MaxSpriteTiles
	}
	var times []time.Duration
	for t := time.Duration(0); t < length && len(times) < MaxSpriteTiles; t += every {
		times = append(times, t)
	}
	// Each time from the span of the segment holding it (the last that
	// starts at or before it), one decoding pass per span.
	holding := func(at time.Duration) int {
		k := 0
		for s := range starts {
			if starts[s] <= origin+at {
				k = s
			}
		}
		return k
	}
	frames := make([]Frame, len(times))
	for i := 0; i < len(times); {
		k := holding(times[i])
		n := i + 1
		for n < len(times) && holding(times[n]) == k {
			n++
		}
		ats := make([]time.Duration, 0, n-i)
		for _, t := range times[i:n] {
			ats = append(ats, origin+t)
		}
		got, err := d.o.Frames(ctx, d.o.Store, spans[k].objects, ats, p.Width)
		if err != nil {
			return nil, fmt.Errorf("sprite tiles from %s: %w", media[k].Key, err)
		}
		for x, f := range got {
			f.Info.FrameAt -= origin
			frames[i+x] = f
		}
		i = n
	}
	if upload { // tiles past the file's end (their frame is before them) are left out
		n := len(frames)
		for n > 1 && frames[n-1].Info.FrameAt < times[n-1] {
			n--
		}
		frames, times = frames[:n], times[:n]
	}
	img, index := composeSprite(frames, times, p.Columns)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	key := DerivedKey(rec.DeviceID, rec.ID, KindSprite, j.ParamsHash, "jpg")
	sprite, err := d.putOnce(ctx, key, buf.Bytes(), "image/jpeg")
	if err != nil {
		return nil, err
	}
	sprite.Kind, sprite.Width, sprite.Height = KindSprite, index.Width, index.Height
	index.Version, index.RecordingID, index.Sprite, index.SpriteSHA256, index.EverySeconds = 1, rec.ID, sprite.Key, sprite.SHA256, seconds(every)
	ib, err := json.MarshalIndent(index, "", " ")
	if err != nil {
		return nil, err
	}
	idx, err := d.putOnce(ctx, DerivedKey(rec.DeviceID, rec.ID, KindSprite, j.ParamsHash, "index.json"), append(ib, '\n'), "application/json")
	if err != nil {
		return nil, err
	}
	idx.Kind = KindSpriteIndex
	if d.o.Pause != nil {
		d.o.Pause(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	outs := []Output{sprite, idx}
	return d.finishMany(ctx, j, rec, KindSprite, ProvenanceKey(key), outs, false, allSources(spans),
		"a timeline sprite: the first video frame at or after every every_seconds of the recording (further apart when it would have more than 1000 tiles), each decoded with FFmpeg and scaled (bicubic, display aspect kept) to width, laid out in a grid of columns, left to right, top to bottom, written as a baseline JPEG (Go image/jpeg, quality 85); and its index (JSON: each tile's place, time and frame time)",
		map[string]any{"tiles": len(index.Tiles), "every_seconds": index.EverySeconds, "rows": index.Rows},
		fmt.Sprintf("sprite %s (sha256 %s, %d tiles) and its index %s (sha256 %s)", sprite.Key, sprite.SHA256, len(index.Tiles), idx.Key, idx.SHA256))
}

// composeSprite lays frames out left to right, top to bottom, columns
// wide (fewer when there are fewer frames), in one full-range 4:2:0 image
// (black where no tile is), and indexes them.
func composeSprite(frames []Frame, times []time.Duration, columns int) (*image.YCbCr, SpriteIndex) {
	tw, th := frames[0].Image.Rect.Dx(), frames[0].Image.Rect.Dy()
	cols := min(columns, len(frames))
	rows := (len(frames) + cols - 1) / cols
	img := image.NewYCbCr(image.Rect(0, 0, cols*tw, rows*th), image.YCbCrSubsampleRatio420)
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = 128, 128
	}
	index := SpriteIndex{Width: cols * tw, Height: rows * th, TileWidth: tw, TileHeight: th, Columns: cols, Rows: rows}
	for i, f := range frames {
		x, y := (i%cols)*tw, (i/cols)*th
		src := f.Image
		w, h := min(tw, src.Rect.Dx()), min(th, src.Rect.Dy())
		for r := 0; r < h; r++ {
			copy(img.Y[(y+r)*img.YStride+x:][:w], src.Y[r*src.YStride:][:w])
		}
		for r := 0; r < h/2; r++ {
			copy(img.Cb[(y/2+r)*img.CStride+x/2:][:w/2], src.Cb[r*src.CStride:][:w/2])
			copy(img.Cr[(y/2+r)*img.CStride+x/2:][:w/2], src.Cr[r*src.CStride:][:w/2])
		}
		index.Tiles = append(index.Tiles, SpriteTile{X: x, Y: y, AtSeconds: seconds(times[i]), FrameAtSeconds: seconds(f.Info.FrameAt)})
	}
	return img, index
}
