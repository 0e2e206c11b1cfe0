// Package transcode owns FFmpeg in bodycam: it turns live camera media into
// what browsers play over WebRTC, AAC into Opus (Audio) and H.264/H.265 into
// constrained-baseline H.264 without B-frames (Video), and copies uploaded
// recorder files into fragmented MP4 for playback (Remux). It is the only package
// in the repository that uses cgo, through github.com/asticode/go-astiav
// v0.16.0 bound to the system's FFmpeg 5.1 (Debian 12: libavcodec-dev and
// friends, libx264 and libopus inside libavcodec).
//
// A transcoder is used from one goroutine; several may run at once. Units go
// in with Transcode, the ones still inside come out with Flush at the end of
// the stream, and Close frees the C memory (always call it).
package transcode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/asticode/go-astiav"
)

// ErrNoKeyframe is returned by Video.Transcode for units that arrive before
// the first keyframe: they cannot be decoded and are dropped.
var ErrNoKeyframe = errors.New("transcode: waiting for a keyframe")

var initOnce sync.Once

// Init sets FFmpeg's log level to error and routes its log lines into
// log/slog's default logger (at warn; fatal at error), with an attribute
// "ffmpeg" naming the emitting class, e.g. AVCodecContext.
// NewAudio and NewVideo call it; calling it again does nothing.
func Init() {
	initOnce.Do(func() {
		astiav.SetLogLevel(astiav.LogLevelError)
		astiav.SetLogCallback(func(c astiav.Classer, l astiav.LogLevel, _, msg string) {
			msg = strings.TrimSpace(msg)
			if msg == "" {
				return
			}
			// FFmpeg's errors are mostly about one damaged unit, which the
			// caller also gets as an error: warnings here.
			level := slog.LevelInfo
			switch {
			case l <= astiav.LogLevelFatal:
				level = slog.LevelError
			case l <= astiav.LogLevelError:
				level = slog.LevelWarn
			}
			class := ""
			if c != nil {
				if cl := c.Class(); cl != nil {
					class = cl.Name()
				}
			}
			slog.Log(context.Background(), level, msg, "ffmpeg", class)
		})
	})
}

// packetPadding is FFmpeg's AV_INPUT_BUFFER_PADDING_SIZE: decoders may read
// that far past a packet's end, so the bytes must exist and be zero.
const packetPadding = 64

// fillPacket replaces p's payload with a copy of data, zero-padded as
// decoders need (astiav's Packet.FromData alone does not pad). scratch is
// the caller's reusable buffer.
func fillPacket(p *astiav.Packet, scratch *[]byte, data ...[]byte) error {
	b := (*scratch)[:0]
	for _, d := range data {
		b = append(b, d...)
	}
	n := len(b)
	b = append(b, make([]byte, packetPadding)...)
	*scratch = b
	p.Unref()
	if err := p.FromData(b); err != nil {
		return fmt.Errorf("transcode: packet: %w", err)
	}
	p.SetSize(n)
	return nil
}

// openCodec opens cc with opts and fails when an option was not consumed
// (a misspelt or unsupported option would otherwise be silently ignored).
func openCodec(cc *astiav.CodecContext, c *astiav.Codec, opts map[string]string) error {
	d := astiav.NewDictionary()
	defer d.Free()
	for k, v := range opts {
		if err := d.Set(k, v, 0); err != nil {
			return fmt.Errorf("transcode: option %s: %w", k, err)
		}
	}
	if err := cc.Open(c, d); err != nil {
		return fmt.Errorf("transcode: open %s: %w", c.Name(), err)
	}
	if e := d.Get("", nil, astiav.NewDictionaryFlags(astiav.DictionaryFlagIgnoreSuffix)); e != nil {
		return fmt.Errorf("transcode: %s: unknown option %s=%s", c.Name(), e.Key(), e.Value())
	}
	return nil
}

// again reports whether err only means "no more output for now".
func again(err error) bool {
	return errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof)
}
