//go:build !nocgo

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/derive"
	"github.com/bodycam/bodycam/jobs"
	"github.com/bodycam/bodycam/live"
	"github.com/bodycam/bodycam/media"
	"github.com/bodycam/bodycam/transcode"
)

// transcoding says what this build's live relay converts (bodycam version,
// the start-up line).
const transcoding = "FFmpeg (live AAC to Opus, H.265 and B-frame H.264 to H.264)"

// transcoders are the live relay's converters (FFmpeg, through transcode/):
// AAC to Opus, and H.265 or B-frame H.264 to H.264 browsers play.
func transcoders() live.Transcoders {
	return live.Transcoders{
		Audio: func(in media.Track) (live.Transcoder, error) { return transcode.NewAudio(in) },
		Video: func(in media.Track) (live.Transcoder, error) { return transcode.NewVideo(in) },
	}
}

// remuxer makes the playback copies of uploaded video files: a stream copy
// into fragmented MP4, read from the store in ranges (transcode.Remux).
func remuxer(store transcode.Ranges) api.Remuxer { return remux{store} }

type remux struct{ store transcode.Ranges }

func (r remux) Remux(ctx context.Context, key string, size int64, w io.Writer) (int64, error) {
	info, err := transcode.Remux(ctx, r.store, key, size, w)
	if errors.Is(err, transcode.ErrNotPlayable) || errors.Is(err, transcode.ErrUnreadable) {
		err = fmt.Errorf("%w: %v", api.ErrNotPlayable, err)
	}
	return info.Written, err
}

// picturer makes posters and thumbnails (transcode.Picture); a recording
// without video cannot have one (a permanent failure of its job).
func picturer() derive.Picturer {
	return func(ctx context.Context, src derive.Store, objects []derive.Object, at time.Duration, width int) ([]byte, derive.PictureInfo, error) {
		obs := make([]transcode.Object, len(objects))
		for i, o := range objects {
			obs[i] = transcode.Object{Key: o.Key, Size: o.Size}
		}
		b, info, err := transcode.Picture(ctx, src, obs, transcode.PictureOptions{At: at, Width: width})
		if errors.Is(err, transcode.ErrNoVideo) || errors.Is(err, transcode.ErrUnreadable) {
			err = jobs.Permanent(err)
		}
		return b, derive.PictureInfo{Width: info.Width, Height: info.Height, SourceWidth: info.SourceWidth, SourceHeight: info.SourceHeight,
			Codec: info.Codec, FrameAt: info.FrameAt}, err
	}
}

// framer takes the frames of thumbnails and sprites (transcode.Frames);
// a recording without video has none (a permanent failure of its job).
func framer() derive.Framer {
	return func(ctx context.Context, src derive.Store, objects []derive.Object, at []time.Duration, width int) ([]derive.Frame, error) {
		obs := make([]transcode.Object, len(objects))
		for i, o := range objects {
			obs[i] = transcode.Object{Key: o.Key, Size: o.Size}
		}
		frames, err := transcode.Frames(ctx, src, obs, transcode.FramesOptions{At: at, Width: width, Absolute: true})
		if errors.Is(err, transcode.ErrNoVideo) || errors.Is(err, transcode.ErrUnreadable) {
			err = jobs.Permanent(err)
		}
		if err != nil {
			return nil, err
		}
		out := make([]derive.Frame, len(frames))
		for i, f := range frames {
			out[i] = derive.Frame{Image: f.Image, Info: derive.PictureInfo{Width: f.Info.Width, Height: f.Info.Height,
				SourceWidth: f.Info.SourceWidth, SourceHeight: f.Info.SourceHeight, Codec: f.Info.Codec, FrameAt: f.Info.PTS}}
		}
		return out, nil
	}
}

// renderer makes proxies and clips (transcode.Render); a recording
// without video has none (a permanent failure of its job).
func renderer() derive.Renderer {
	return func(ctx context.Context, src derive.Store, objects []derive.Object, o derive.RenderOptions, w io.Writer) (derive.RenderInfo, error) {
		obs := make([]transcode.Object, len(objects))
		for i, ob := range objects {
			obs[i] = transcode.Object{Key: ob.Key, Size: ob.Size}
		}
		ro := transcode.RenderOptions{From: o.From, To: o.To, Width: o.Width,
			VideoBitrate: o.VideoBitrate, AudioBitrate: o.AudioBitrate, Preset: o.Preset, Mark: o.Mark}
		for _, b := range o.Boxes {
			box := transcode.Box{From: b.From, To: b.To, Solid: b.Solid}
			for _, k := range b.Keys {
				box.Keys = append(box.Keys, transcode.BoxKey{At: k.At, X: k.X, Y: k.Y, W: k.W, H: k.H})
			}
			ro.Boxes = append(ro.Boxes, box)
		}
		for _, m := range o.Mutes {
			ro.Mutes = append(ro.Mutes, transcode.Window{From: m.From, To: m.To})
		}
		info, err := transcode.Render(ctx, src, obs, ro, w)
		if errors.Is(err, transcode.ErrNoVideo) || errors.Is(err, transcode.ErrUnreadable) || errors.Is(err, transcode.ErrNothingRendered) {
			err = jobs.Permanent(err)
		}
		return derive.RenderInfo{Width: info.Width, Height: info.Height, SourceWidth: info.SourceWidth, SourceHeight: info.SourceHeight,
			SourceVideo: info.SourceVideo, SourceAudio: info.SourceAudio, Audio: info.Audio, Frames: info.Frames,
			First: info.First, Last: info.Last, Written: info.Written}, err
	}
}

// ffmpegVersion is what provenance records name as FFmpeg.
func ffmpegVersion() string { return transcode.FFmpegVersion() }
