package transcode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
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

// A redacted render: a pixelated box for the whole stream and a solid one
// moving between two keys over [1 s, 3 s), a muted second of sound and the
// mark. In a frame at 2 s, the pixelated box has lost its detail (within
// its blocks under a tenth of the original's, PSNR low), the solid box
// sits where the keys put it half way and is black, the picture outside the
// boxes and the mark matches the original (PSNR >= 30 dB); at 0.5 s the
// moving box is not there yet; the muted second is silent and the rest is
// not.
func TestRenderRedaction(t *testing.T) {
	dir := t.TempDir()
	frag := filepath.Join(dir, "rec.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-b:v", "8M", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", frag)
	objects := splitFragmented(t, dir, frag)
	src := &fileRanges{dir: dir}
	o := RenderOptions{Preset: "ultrafast", VideoBitrate: 12_000_000, AudioBitrate: 128_000, Mark: "REDACTED COPY of rec-1 0123abcd",
		Boxes: []Box{
			{Keys: []BoxKey{{X: 0.1, Y: 0.1, W: 0.3, H: 0.3}}},
			{From: time.Second, To: 3 * time.Second, Solid: true,
				Keys: []BoxKey{{At: 3 * time.Second, X: 0.7, Y: 0.5, W: 0.2, H: 0.2}, {At: time.Second, X: 0.5, Y: 0.5, W: 0.2, H: 0.2}}}},
		Mutes: []Window{{From: time.Second, To: 2 * time.Second}}}
	var buf bytes.Buffer
	info, err := Render(context.Background(), src, objects, o, &buf)
	if err != nil {
		t.Fatalf("%v (%+v)", err, info)
	}
	out := filepath.Join(dir, "redacted.mp4")
	os.WriteFile(out, buf.Bytes(), 0o644)
	const w, h = 1280, 720
	region := func(img []byte, x0, y0, x1, y1 float64) (pix []byte, rw, rh int) {
		ax, ay, bx, by := int(x0*w), int(y0*h), int(x1*w), int(y1*h)
		for y := ay; y < by; y++ {
			pix = append(pix, img[(y*w+ax)*3:(y*w+bx)*3]...)
		}
		return pix, bx - ax, by - ay
	}
	psnrOf := func(a, b []byte) float64 {
		var se float64
		for i := range a {
			d := float64(a[i]) - float64(b[i])
			se += d * d
		}
		if se == 0 {
			return 100
		}
		return 10 * math.Log10(255*255/(se/float64(len(a))))
	}
	mean := func(p []byte) float64 {
		var s float64
		for _, v := range p {
			s += float64(v)
		}
		return s / float64(len(p))
	}
	at := 2 * time.Second
	red, orig := rawFrame(t, out, at, w, h), rawFrame(t, frag, at, w, h)

	// The pixelated box: blocks of a sixth of its smaller side (216 px: 36
	// px) from its corner (128, 72). Within a block nothing is left of the
	// picture's detail: the differences between neighbours in one block
	// (the encoder's noise) against the original's there.
	const bx0, by0, block = 128, 72, 36
	var er, eo float64
	for y := by0; y < by0+5*block; y++ {
		for x := bx0; x < bx0+10*block; x++ {
			if (x-bx0)%block == block-1 || (y-by0)%block == block-1 {
				continue // the next pixel is in another block
			}
			for c := 0; c < 3; c++ {
				i, right, down := (y*w+x)*3+c, (y*w+x+1)*3+c, ((y+1)*w+x)*3+c
				for _, n := range []int{right, down} {
					dr, do := float64(red[i])-float64(red[n]), float64(orig[i])-float64(orig[n])
					er, eo = er+dr*dr, eo+do*do
				}
			}
		}
	}
	rp, _, _ := region(red, 0.12, 0.14, 0.38, 0.36)
	op, _, _ := region(orig, 0.12, 0.14, 0.38, 0.36)
	if p := psnrOf(rp, op); er > eo/10 || p > 25 {
		t.Fatalf("pixelated box: detail within its blocks %.0f against the original's %.0f, PSNR %.1f dB; want under a tenth and under 25 dB", er, eo, p)
	}
	// The solid box half way between its keys: x from 0.6 to 0.8.
	sp, _, _ := region(red, 0.62, 0.52, 0.78, 0.68)
	if m := mean(sp); m > 30 {
		t.Fatalf("solid box at 2 s: mean %.0f, want black", m)
	}
	// Where the moving box was at 1 s and is no longer at 2 s (x 0.5 to
	// 0.58), and elsewhere away from boxes and the mark: the original.
	for _, r := range [][4]float64{{0.45, 0.05, 0.95, 0.4}, {0.5, 0.52, 0.58, 0.68}, {0.05, 0.45, 0.45, 0.8}} {
		a, _, _ := region(red, r[0], r[1], r[2], r[3])
		b, _, _ := region(orig, r[0], r[1], r[2], r[3])
		if p := psnrOf(a, b); p < 30 {
			t.Fatalf("outside the boxes %v at 2 s: PSNR %.1f dB, want >= 30", r, p)
		}
	}
	// The mark: the bottom-left band differs from the original.
	mp, _, _ := region(red, 0.0, 0.93, 0.3, 1.0)
	mo, _, _ := region(orig, 0.0, 0.93, 0.3, 1.0)
	if p := psnrOf(mp, mo); p > 20 {
		t.Fatalf("no mark at the bottom left: PSNR %.1f dB against the original", p)
	}
	// At 0.5 s the solid box is not there yet.
	red, orig = rawFrame(t, out, 500*time.Millisecond, w, h), rawFrame(t, frag, 500*time.Millisecond, w, h)
	a, _, _ := region(red, 0.5, 0.5, 0.7, 0.7)
	b, _, _ := region(orig, 0.5, 0.5, 0.7, 0.7)
	if p := psnrOf(a, b); p < 30 {
		t.Fatalf("the solid box before its span: PSNR %.1f dB, want the original", p)
	}

	// Sound: silent in the muted second, the sine elsewhere.
	pcm, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", out, "-vn", "-f", "f32le", "-ac", "1", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	rms := func(from, to time.Duration) float64 {
		a, b := int(from.Seconds()*48000), int(to.Seconds()*48000)
		var s float64
		for i := a; i < b && (i+1)*4 <= len(pcm); i++ {
			v := float64(math.Float32frombits(binary.LittleEndian.Uint32(pcm[i*4:])))
			s += v * v
		}
		return math.Sqrt(s / float64(b-a))
	}
	if in, out := rms(1050*time.Millisecond, 1950*time.Millisecond), rms(2200*time.Millisecond, 3500*time.Millisecond); in > 1e-3 || out < 0.03 {
		t.Fatalf("RMS %.4f in the muted second, %.4f after it; want silence, then the sine", in, out)
	}

	for _, bad := range []RenderOptions{
		{Boxes: []Box{{}}},
		{Boxes: []Box{{Keys: []BoxKey{{X: 0.9, Y: 0, W: 0.2, H: 0.1}}}}},
		{Mutes: []Window{{From: 2 * time.Second, To: time.Second}}},
	} {
		if _, err := Render(context.Background(), src, objects, bad, &bytes.Buffer{}); err == nil {
			t.Fatalf("%+v rendered", bad)
		}
	}
}

// BenchmarkRenderRedaction: a redacted copy of 10 s of 720p30 H.264 + AAC
// (4 Mbit/s) at the source's size, 4000 kbit/s, x264 veryfast, with a moving
// pixelated box, a solid one and a muted second, as the redaction job
// makes it: reported as the speed against real time (×) and CPU seconds per
// hour of footage.
func BenchmarkRenderRedaction(b *testing.B) {
	dir := b.TempDir()
	frag := filepath.Join(dir, "rec.mp4")
	const seconds = 10
	ffmpeg(b, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-b:v", "4M", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", frag)
	objects := splitFragmented(&testing.T{}, dir, frag)
	src := &fileRanges{dir: dir}
	o := RenderOptions{Preset: "veryfast", VideoBitrate: 4_000_000, AudioBitrate: 128_000, Mark: "REDACTED COPY of rec-1 0123abcd",
		Boxes: []Box{
			{Keys: []BoxKey{{At: 0, X: 0.1, Y: 0.1, W: 0.2, H: 0.3}, {At: 10 * time.Second, X: 0.6, Y: 0.2, W: 0.2, H: 0.3}}},
			{From: 2 * time.Second, To: 6 * time.Second, Solid: true, Keys: []BoxKey{{X: 0.4, Y: 0.5, W: 0.2, H: 0.2}}}},
		Mutes: []Window{{From: 3 * time.Second, To: 4 * time.Second}}}
	cpu0 := cpuTime(b)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		if _, err := Render(context.Background(), src, objects, o, &buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	wall := time.Since(start).Seconds() / float64(b.N)
	cpu := (cpuTime(b) - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(seconds/wall, "x-realtime")
	b.ReportMetric(cpu/seconds*3600, "cpu-s/footage-hour")
}
