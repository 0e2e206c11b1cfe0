// Package simulate stands in for body cameras: it publishes over RTSP like
// a recorder does, either a live test pattern encoded by ffmpeg (a burned-in
// clock and a tone) or, cheaply and at scale, a pre-encoded clip that many
// simulated recorders loop in real time.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	"github.com/pion/rtp"
)

// ClipSpec describes the clip to encode.
type ClipSpec struct {
	Width, Height int
	FPS           int
	VideoBitrate  string // e.g. "4M"
	Seconds       int
	// BFrames is the most consecutive B-frames; -1 leaves it to the
	// encoder (x264's High profile uses them, as many cameras do).
	BFrames int
}

// DefaultClip is 720p30 at about 4 Mbit/s with AAC, 10 s, keyframe every second.
var DefaultClip = ClipSpec{Width: 1280, Height: 720, FPS: 30, VideoBitrate: "4M", Seconds: 10, BFrames: -1}

// EnsureClip encodes the clip with ffmpeg into dir once and returns its path.
func EnsureClip(ctx context.Context, dir string, s ClipSpec) (string, error) {
	bf := ""
	if s.BFrames >= 0 {
		bf = fmt.Sprintf("-bf%d", s.BFrames)
	}
	path := filepath.Join(dir, fmt.Sprintf("sim-clip-%dx%d-%d-%s-%ds%s.ts", s.Width, s.Height, s.FPS, s.VideoBitrate, s.Seconds, bf))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	tmp := path + ".tmp.ts"
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", s.Width, s.Height, s.FPS),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", fmt.Sprint(s.Seconds),
		"-vf", "drawtext=text='bodycam simulated recorder  clip %{pts\\:hms}':fontsize=36:fontcolor=white:box=1:boxcolor=black@0.6:x=20:y=20",
		"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
		"-b:v", s.VideoBitrate, "-maxrate", s.VideoBitrate, "-bufsize", s.VideoBitrate,
		"-g", fmt.Sprint(s.FPS), "-keyint_min", fmt.Sprint(s.FPS), "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "64k", "-ac", "1",
		"-f", "mpegts", tmp}
	if s.BFrames >= 0 {
		args = append(args[:len(args)-3], append([]string{"-bf", fmt.Sprint(s.BFrames)}, args[len(args)-3:]...)...)
	}
	if out, err := ffmpegCmd(ctx, args...).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("encode clip with ffmpeg: %v: %s", err, out)
	}
	return path, os.Rename(tmp, path)
}

// unit is one access unit's RTP packets at a media time.
type unit struct {
	at      time.Duration // presentation time from the clip's start
	dur     time.Duration // how long its media lasts (audio)
	ts      uint32        // RTP timestamp offset (clock units)
	packets []*rtp.Packet
}

// Clip is a pre-packetized clip, shared read-only by every recorder.
type Clip struct {
	Video    *format.H264
	Audio    *format.MPEG4Audio
	video    []unit
	audio    []unit
	Duration time.Duration
	Bytes    int64
}

// LoadClip reads an MPEG-TS clip (H.264 and AAC) and packetizes it once.
func LoadClip(path string) (*Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &mpegts.Reader{R: f}
	if err := r.Initialize(); err != nil {
		return nil, fmt.Errorf("clip %s: %w", path, err)
	}
	c := &Clip{}
	var vtrack, atrack *mpegts.Track
	for _, t := range r.Tracks() {
		switch codec := t.Codec.(type) {
		case *tscodecs.H264:
			vtrack = t
		case *tscodecs.MPEG4Audio:
			atrack = t
			cfg := mpeg4audio.AudioSpecificConfig(codec.Config)
			c.Audio = &format.MPEG4Audio{PayloadTyp: 97, Config: &cfg, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
		}
	}
	if vtrack == nil {
		return nil, fmt.Errorf("clip %s has no H.264 track", path)
	}
	c.Video = &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	venc, err := c.Video.CreateEncoder()
	if err != nil {
		return nil, err
	}
	var td mpegts.TimeDecoder
	td.Initialize()
	var v0, a0 *int64
	r.OnDataH264(vtrack, func(pts, dts int64, au [][]byte) error {
		pts = td.Decode(pts)
		if v0 == nil {
			v0 = &pts
		}
		for _, n := range au {
			switch n[0] & 0x1f {
			case 7:
				c.Video.SPS = append([]byte(nil), n...)
			case 8:
				c.Video.PPS = append([]byte(nil), n...)
			}
		}
		pkts, err := venc.Encode(au)
		if err != nil {
			return err
		}
		rel := pts - *v0
		c.video = append(c.video, unit{at: time.Duration(rel) * time.Second / 90000, ts: uint32(rel), packets: pkts})
		for _, p := range pkts {
			c.Bytes += int64(len(p.Payload))
		}
		return nil
	})
	if atrack != nil {
		aenc, err := c.Audio.CreateEncoder()
		if err != nil {
			return nil, err
		}
		rate := int64(c.Audio.Config.SampleRate)
		r.OnDataMPEG4Audio(atrack, func(pts int64, aus [][]byte) error {
			pts = td.Decode(pts)
			if a0 == nil {
				a0 = &pts
			}
			pkts, err := aenc.Encode(aus)
			if err != nil {
				return err
			}
			rel := (pts - *a0) * rate / 90000
			c.audio = append(c.audio, unit{at: time.Duration(pts-*a0) * time.Second / 90000, ts: uint32(rel), packets: pkts,
				dur: time.Duration(len(aus)*mpeg4audio.SamplesPerAccessUnit) * time.Second / time.Duration(rate)})
			for _, p := range pkts {
				c.Bytes += int64(len(p.Payload))
			}
			return nil
		})
	}
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, os.ErrClosed) || err.Error() == "EOF" {
				break
			}
			if len(c.video) > 0 {
				break
			}
			return nil, fmt.Errorf("clip %s: %w", path, err)
		}
	}
	if len(c.video) < 2 || c.Video.SPS == nil {
		return nil, fmt.Errorf("clip %s: no usable H.264", path)
	}
	// One loop lasts until the last frame (and the last audio) ends, so the
	// next loop's timestamps never go back.
	last := c.video[len(c.video)-1].at
	c.Duration = last + last/time.Duration(len(c.video)-1)
	if n := len(c.audio); n > 0 {
		c.Duration = max(c.Duration, c.audio[n-1].at+c.audio[n-1].dur)
	}
	return c, nil
}
