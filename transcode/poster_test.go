package transcode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/jpeg"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// splitFragmented writes a fragmented MP4 as a recording is stored: its
// init segment (ftyp, moov) and its media (moof, mdat, ...) as two
// objects, and returns them.
func splitFragmented(t *testing.T, dir, path string) []Object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for off+8 <= len(b) && string(b[off+4:off+8]) != "moof" {
		off += int(binary.BigEndian.Uint32(b[off:]))
	}
	if off == 0 || off >= len(b) {
		t.Fatalf("%s: no moof", path)
	}
	os.WriteFile(filepath.Join(dir, "init.mp4"), b[:off], 0o644)
	os.WriteFile(filepath.Join(dir, "media.m4s"), b[off:], 0o644)
	return []Object{{Key: "init.mp4", Size: int64(off)}, {Key: "media.m4s", Size: int64(len(b) - off)}}
}

// rawFrame is the frame ffmpeg itself decodes at time at, scaled to w×h, as
// RGB.
func rawFrame(t *testing.T, path string, at time.Duration, w, h int) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-ss", at.String(), "-frames:v", "1",
		"-vf", "scale="+itoa(w)+":"+itoa(h)+":flags=bicubic:out_range=full", "-f", "rawvideo", "-pix_fmt", "rgb24", "-").Output()
	if err != nil || len(out) != w*h*3 {
		t.Fatalf("ffmpeg's frame at %v: %v (%d bytes)", at, err, len(out))
	}
	return out
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// psnr of img against ref (RGB24), in dB.
func psnr(img image.Image, ref []byte) float64 {
	bo := img.Bounds()
	var se float64
	i := 0
	for y := bo.Min.Y; y < bo.Max.Y; y++ {
		for x := bo.Min.X; x < bo.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			for _, v := range []uint32{r >> 8, g >> 8, b >> 8} {
				d := float64(v) - float64(ref[i])
				se += d * d
				i++
			}
		}
	}
	mse := se / float64(i)
	if mse == 0 {
		return 100
	}
	return 10 * math.Log10(255*255/mse)
}

// A poster of a recording stored as init + media segments (and of an
// uploaded MP4 as one object): a JPEG of the asked size whose pixels are
// ffmpeg's own decoding of the frame at the asked time (the test pattern's
// moving parts tell frames apart), not of another time; the same input
// gives the same bytes; a file without video is ErrNoVideo.
func TestPicture(t *testing.T) {
	dir := t.TempDir()
	frag := filepath.Join(dir, "rec.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", frag)
	objects := splitFragmented(t, dir, frag)
	src := &fileRanges{dir: dir}
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		objects []Object
		at      time.Duration
	}{
		{"segments, first frame", objects, 0},
		{"segments, at 2.5s", objects, 2500 * time.Millisecond},
		{"one MP4 file", []Object{{Key: "rec.mp4", Size: objects[0].Size + objects[1].Size}}, 1250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, info, err := Picture(ctx, src, tc.objects, PictureOptions{At: tc.at, Width: 640})
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("not a JPEG: %v", err)
			}
			if s := img.Bounds().Size(); s.X != 640 || s.Y != 360 || info.Width != 640 || info.Height != 360 || info.SourceWidth != 1280 || info.Codec != "h264" {
				t.Fatalf("picture %v, info %+v; want 640x360 of 1280x720 h264", s, info)
			}
			if d := info.FrameAt - tc.at; d < 0 || d >= 34*time.Millisecond {
				t.Fatalf("frame at %v, asked %v", info.FrameAt, tc.at)
			}
			same := psnr(img, rawFrame(t, frag, tc.at, 640, 360))
			other := psnr(img, rawFrame(t, frag, tc.at+time.Second, 640, 360))
			if same < 30 || other > same-3 {
				t.Fatalf("PSNR %.1f dB against ffmpeg's frame at %v, %.1f against a second later; want >= 30 and clearly less", same, tc.at, other)
			}
			again, _, err := Picture(ctx, src, tc.objects, PictureOptions{At: tc.at, Width: 640})
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("the same picture again differs (%v)", err)
			}
		})
	}
	wav := filepath.Join(dir, "a.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1", "-c:a", "aac", wav)
	st, _ := os.Stat(wav)
	if _, _, err := Picture(ctx, src, []Object{{Key: "a.mp4", Size: st.Size()}}, PictureOptions{}); !errors.Is(err, ErrNoVideo) {
		t.Fatalf("sound only: %v, want ErrNoVideo", err)
	}
	if _, _, err := Picture(ctx, src, []Object{{Key: "init.mp4", Size: objects[0].Size}}, PictureOptions{}); err == nil {
		t.Fatal("an init segment alone gave a picture")
	}
	if v := FFmpegVersion(); !bytes.Contains([]byte(v), []byte("libavcodec")) {
		t.Fatalf("FFmpegVersion() = %q", v)
	}
}

// BenchmarkPoster: a poster (the first frame of a 4 s 720p30 H.264
// recording stored as init + media segments, to 640 wide JPEG) per op.
func BenchmarkPoster(b *testing.B) {
	dir := b.TempDir()
	frag := filepath.Join(dir, "rec.mp4")
	ffmpeg(b, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-g", "120",
		"-b:v", "4M", "-pix_fmt", "yuv420p", "-movflags", "frag_keyframe+empty_moov+default_base_moof", frag)
	objects := splitFragmented(&testing.T{}, dir, frag)
	src := &fileRanges{dir: dir}
	cpu0 := cpuTime(b)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := Picture(context.Background(), src, objects, PictureOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	_ = start
}

// Frames of one pass: the frames at several times (asked out of order,
// one twice, one past the end) are each ffmpeg's own decoding of the frame
// at that time (PSNR against it at 160 wide, 4:2:0 against RGB: >= 22 dB,
// and 6 dB less against a second later), the one past the end is the last
// frame, and one frame is what Picture takes at that time.
func TestFrames(t *testing.T) {
	dir := t.TempDir()
	frag := filepath.Join(dir, "rec.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30", "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
		"-pix_fmt", "yuv420p", "-movflags", "frag_keyframe+empty_moov+default_base_moof", frag)
	objects := splitFragmented(t, dir, frag)
	src := &fileRanges{dir: dir}
	at := []time.Duration{3 * time.Second, 500 * time.Millisecond, 0, 3 * time.Second, 1700 * time.Millisecond, time.Minute}
	frames, err := Frames(context.Background(), src, objects, FramesOptions{At: at, Width: 160})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != len(at) {
		t.Fatalf("%d frames for %d times", len(frames), len(at))
	}
	for i, f := range frames {
		if s := f.Image.Bounds().Size(); s.X != 160 || s.Y != 90 || f.Info.Width != 160 || f.Info.SourceWidth != 1280 {
			t.Fatalf("frame %d: %v, %+v; want 160x90 of 1280x720", i, s, f.Info)
		}
		want := at[i]
		if want > 5*time.Second {
			want = 5*time.Second - 33333*time.Microsecond // the last frame
		}
		if d := f.Info.FrameAt - want; d < -time.Millisecond || d >= 34*time.Millisecond {
			t.Fatalf("frame %d at %v, asked %v", i, f.Info.FrameAt, at[i])
		}
		same := psnr(f.Image, rawFrame(t, frag, f.Info.FrameAt, 160, 90))
		other := psnr(f.Image, rawFrame(t, frag, (f.Info.FrameAt+time.Second)%(5*time.Second), 160, 90))
		if same < 22 || other > same-6 {
			t.Fatalf("frame %d (%v): PSNR %.1f dB against ffmpeg's, %.1f against a second off; want >= 22 and 6 dB less", i, at[i], same, other)
		}
	}
	pic, _, err := Picture(context.Background(), src, objects, PictureOptions{At: 1700 * time.Millisecond, Width: 160})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := EncodeJPEG(frames[4].Image, 85); !bytes.Equal(b, pic) {
		t.Fatal("Frames' frame at 1.7s is not Picture's")
	}

	// Absolute: the same frames asked by their presentation times, from a
	// span that starts at the fourth segment (its keyframe at 3 s).
	b, err := os.ReadFile(frag)
	if err != nil {
		t.Fatal(err)
	}
	off, moofs := 0, 0
	for off+8 <= len(b) {
		if string(b[off+4:off+8]) == "moof" {
			if moofs++; moofs == 4 { // fragments start at keyframes, a second apart
				break
			}
		}
		off += int(binary.BigEndian.Uint32(b[off:]))
	}
	os.WriteFile(filepath.Join(dir, "from3s.m4s"), b[off:], 0o644)
	abs, err := Frames(context.Background(), src, []Object{objects[0], {Key: "from3s.m4s", Size: int64(len(b) - off)}},
		FramesOptions{At: []time.Duration{frames[0].Info.PTS, frames[0].Info.PTS + 500*time.Millisecond}, Width: 160, Absolute: true})
	if err != nil {
		t.Fatal(err)
	}
	if abs[0].Info.PTS != frames[0].Info.PTS || abs[0].Info.FrameAt != 0 || abs[1].Info.PTS < frames[0].Info.PTS+500*time.Millisecond ||
		abs[1].Info.PTS >= frames[0].Info.PTS+534*time.Millisecond {
		t.Fatalf("absolute: %+v and %+v; the frame at 3 s is at %v", abs[0].Info, abs[1].Info, frames[0].Info.PTS)
	}
	if b0, _ := EncodeJPEG(abs[0].Image, 85); !bytes.Equal(b0, mustJPEG(t, frames[0])) {
		t.Fatal("the frame at 3 s decoded from its own segment differs from the one decoded from the start")
	}
}

func mustJPEG(t *testing.T, f Frame) []byte {
	t.Helper()
	b, err := EncodeJPEG(f.Image, 85)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
