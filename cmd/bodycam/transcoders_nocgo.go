//go:build nocgo

package main

import (
	"context"
	"io"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/derive"
	"github.com/bodycam/bodycam/live"
)

// A build with -tags nocgo (CGO_ENABLED=0, a static binary) leaves out
// transcode/, the only package with cgo (FFmpeg): it records, stores,
// verifies and serves everything, and the live relay passes through what
// browsers play as sent (H.264, H.265 to viewers that offer it, Opus,
// G.711) and says per viewer what it cannot convert.
const transcoding = "none (built with -tags nocgo: no live AAC to Opus, H.265 or B-frame H.264 to H.264)"

func transcoders() live.Transcoders { return live.Transcoders{} }

// remuxer is nil without FFmpeg: uploaded video files are served by
// /original only (/media answers 501 for them).
func remuxer(interface {
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}) api.Remuxer {
	return nil
}

// picturer is nil without FFmpeg: poster jobs wait for a node built with
// it.
func picturer() derive.Picturer { return nil }

// framer is nil without FFmpeg: thumbnails and sprite jobs wait for a
// node built with it.
func framer() derive.Framer { return nil }

// renderer is nil without FFmpeg: proxy and clip jobs wait for a node
// built with it.
func renderer() derive.Renderer { return nil }

func ffmpegVersion() string { return "none" }
