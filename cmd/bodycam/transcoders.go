//go:build !nocgo

package main

import (
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
