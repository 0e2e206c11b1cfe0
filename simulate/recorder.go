package simulate

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
)

// PublishClip publishes the clip to url in real time, looping, until ctx
// ends. tcp picks the transport (else UDP). loss is the share of RTP
// packets the recorder drops at random (its sequence numbers go on), as a
// bad uplink would.
func PublishClip(ctx context.Context, url string, c *Clip, tcp bool, loss float64) error {
	vmedia := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{c.Video}}
	desc := &description.Session{Medias: []*description.Media{vmedia}}
	var amedia *description.Media
	if c.Audio != nil {
		amedia = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{c.Audio}}
		desc.Medias = append(desc.Medias, amedia)
	}
	proto := gortsplib.ProtocolUDP
	if tcp {
		proto = gortsplib.ProtocolTCP
	}
	client := &gortsplib.Client{Protocol: &proto}
	if err := client.StartRecording(url, desc); err != nil {
		return err
	}
	defer client.Close()

	vbase, abase := randUint32(), randUint32()
	vseq, aseq := uint16(randUint32()), uint16(randUint32())
	audioRate := uint32(0)
	if c.Audio != nil {
		audioRate = uint32(c.Audio.Config.SampleRate)
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for loop := 0; ; loop++ {
		offset := time.Duration(loop) * c.Duration
		vi, ai := 0, 0
		for vi < len(c.video) || ai < len(c.audio) {
			var u unit
			var medi *description.Media
			var ts uint32
			var seq *uint16
			if ai >= len(c.audio) || (vi < len(c.video) && c.video[vi].at <= c.audio[ai].at) {
				u, medi, seq = c.video[vi], vmedia, &vseq
				ts = vbase + uint32(int64(offset)*90000/int64(time.Second)) + u.ts
				vi++
			} else {
				u, medi, seq = c.audio[ai], amedia, &aseq
				ts = abase + uint32(int64(offset)*int64(audioRate)/int64(time.Second)) + u.ts
				ai++
			}
			if wait := time.Until(start.Add(offset + u.at)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			} else if ctx.Err() != nil {
				return nil
			}
			for _, p := range u.packets {
				pkt := *p // the clip's packets are shared; the header is ours
				// Packets of one unit may carry later frames (several AAC
				// frames in one PES): keep the encoder's offsets.
				pkt.Timestamp = ts + (p.Timestamp - u.packets[0].Timestamp)
				pkt.SequenceNumber = *seq
				*seq++
				if loss > 0 && mrand.Float64() < loss {
					continue
				}
				if err := client.WritePacketRTP(medi, &pkt); err != nil {
					return fmt.Errorf("publish: %w", err)
				}
			}
		}
	}
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// PublishLive runs ffmpeg to publish a live test pattern with the wall clock
// burned in and a 440 Hz tone, until ctx ends.
func PublishLive(ctx context.Context, url string, s ClipSpec, tcp bool) error {
	transport := "udp"
	if tcp {
		transport = "tcp"
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", s.Width, s.Height, s.FPS),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-vf", "drawtext=text='bodycam simulated recorder  %{localtime\\:%Y-%m-%d %H\\\\\\:%M\\\\\\:%S}':fontsize=36:fontcolor=white:box=1:boxcolor=black@0.6:x=20:y=20",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-b:v", s.VideoBitrate, "-g", fmt.Sprint(s.FPS),
		"-c:a", "aac", "-b:a", "64k", "-ac", "1",
		"-f", "rtsp", "-rtsp_transport", transport, url}
	cmd := ffmpegCmd(ctx, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ffmpeg: %v: %s", err, out)
	}
	return nil
}
