package transcode

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A proxy of a 720p recording stored as init + media segments is H.264 +
// AAC at 640×360 that ffprobe reads, as long as the source; a clip of
// [1 s, 2.5 s) holds 45 frames, its first is the source's first frame at
// or after 1 s and its last the last before 2.5 s (PSNR against ffmpeg's own decoding, and
// clearly less against a neighbour a third of a second away).
func TestRender(t *testing.T) {
	dir := t.TempDir()
	frag := filepath.Join(dir, "rec.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", frag)
	objects := splitFragmented(t, dir, frag)
	src := &fileRanges{dir: dir}
	ctx := context.Background()
	render := func(name string, o RenderOptions) (string, RenderInfo) {
		t.Helper()
		var buf bytes.Buffer
		info, err := Render(ctx, src, objects, o, &buf)
		if err != nil {
			t.Fatalf("%s: %v (%+v)", name, err, info)
		}
		if info.Written != int64(buf.Len()) {
			t.Fatalf("%s: written %d, got %d bytes", name, info.Written, buf.Len())
		}
		path := filepath.Join(dir, name+".mp4")
		os.WriteFile(path, buf.Bytes(), 0o644)
		return path, info
	}

	proxy, info := render("proxy", RenderOptions{Width: 640})
	if s := ffprobeStreams(t, proxy); s != "h264,video,avc1\naac,audio,mp4a" {
		t.Fatalf("proxy streams: %q", s)
	}
	if w, h := probeSize(t, proxy); w != 640 || h != 360 || info.Width != 640 || info.Height != 360 || info.SourceWidth != 1280 {
		t.Fatalf("proxy %dx%d, info %+v; want 640x360 of 1280x720", w, h, info)
	}
	if n := countPackets(t, proxy, "v:0"); n != 120 || info.Frames != 120 {
		t.Fatalf("proxy: %d video packets, %d frames encoded; want 120", n, info.Frames)
	}
	if d := probeDurationOf(t, proxy); d < 3900*time.Millisecond || d > 4200*time.Millisecond {
		t.Fatalf("proxy lasts %v, want 4 s (audio may end an AAC frame or two later)", d)
	}
	if !info.Audio || info.SourceAudio != "aac" {
		t.Fatalf("proxy audio: %+v", info)
	}

	from, to := time.Second, 2500*time.Millisecond
	clip, info := render("clip", RenderOptions{From: from, To: to, Preset: "ultrafast", VideoBitrate: 4_000_000})
	if n := countPackets(t, clip, "v:0"); n != 45 || info.Frames != 45 {
		t.Fatalf("clip: %d video packets, %d frames; want 45", n, info.Frames)
	}
	if info.First < from || info.First >= from+34*time.Millisecond || info.Last < to-34*time.Millisecond || info.Last >= to {
		t.Fatalf("clip frames from %v to %v; want each within a frame of %v and %v", info.First, info.Last, from, to)
	}
	st, _ := os.Stat(clip)
	frames, err := Frames(ctx, &fileRanges{dir: dir}, []Object{{Key: "clip.mp4", Size: st.Size()}},
		FramesOptions{At: []time.Duration{0, to - from - 30*time.Millisecond}, Width: 640})
	if err != nil {
		t.Fatal(err)
	}
	for i, at := range []time.Duration{from, to - 33*time.Millisecond} {
		img := frames[i].Image
		same := psnr(img, rawFrame(t, frag, at, 640, 360))
		other := psnr(img, rawFrame(t, frag, at+333*time.Millisecond*time.Duration(1-2*i), 640, 360))
		if same < 28 || other > same-3 {
			t.Fatalf("clip frame %d: PSNR %.1f dB against the source at %v, %.1f against a third of a second away", i, same, at, other)
		}
	}

	// What cannot be rendered is an error, not an empty file.
	var buf bytes.Buffer
	if _, err := Render(ctx, src, objects, RenderOptions{From: 10 * time.Second}, &buf); err == nil {
		t.Fatal("a window past the end rendered")
	}
	wav := filepath.Join(dir, "a.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1", "-c:a", "aac", wav)
	st, _ = os.Stat(wav)
	if _, err := Render(ctx, src, []Object{{Key: "a.mp4", Size: st.Size()}}, RenderOptions{}, &buf); !errors.Is(err, ErrNoVideo) {
		t.Fatalf("sound only: %v, want ErrNoVideo", err)
	}
}

// BenchmarkRenderProxy: CPU per second of 720p30 H.264 + AAC footage (4
// Mbit/s, stored as init + media segments) made into a 640×360 600 kbit/s
// proxy, one thread per codec as the workers run it.
func BenchmarkRenderProxy(b *testing.B) {
	dir := b.TempDir()
	frag := filepath.Join(dir, "rec.mp4")
	const seconds = 10
	ffmpeg(b, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-b:v", "4M", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", frag)
	objects := splitFragmented(&testing.T{}, dir, frag)
	src := &fileRanges{dir: dir}
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		if _, err := Render(context.Background(), src, objects, RenderOptions{Width: 640}, &buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu := (cpuTime(b) - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(cpu/seconds*3600, "cpu-s/footage-hour")
}

// probeSize is a file's first video stream's size as ffprobe reads it.
func probeSize(t *testing.T, path string) (int, int) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
		"-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	w, h, _ := strings.Cut(strings.TrimSpace(string(out)), ",")
	wi, _ := strconv.Atoi(w)
	hi, _ := strconv.Atoi(h)
	return wi, hi
}

// probeDurationOf is a file's duration as ffprobe reads it.
func probeDurationOf(t *testing.T, path string) time.Duration {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe %s: duration %q", path, out)
	}
	return time.Duration(f * float64(time.Second))
}
