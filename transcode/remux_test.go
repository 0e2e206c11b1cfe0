package transcode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fileRanges serves ranged reads of files in a directory, as the object
// store does, and records the reads opened.
type fileRanges struct {
	dir   string
	mu    sync.Mutex
	opens int
}

func (f *fileRanges) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	fh, err := os.Open(filepath.Join(f.dir, key))
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.opens++
	f.mu.Unlock()
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(fh, off, n), fh}, nil
}

// boxWriter reads the top-level MP4 boxes of a stream as it is written,
// keeping only their types (and moov whole, which is small), so that a
// large output costs nothing to check.
type boxWriter struct {
	hdr   []byte
	left  int64 // bytes of the current box still to come
	typ   string
	types []string
	moov  bytes.Buffer
	n     int64
	err   error
}

func (b *boxWriter) Write(p []byte) (int, error) {
	b.n += int64(len(p))
	q := p
	for len(q) > 0 {
		if b.left == 0 {
			need := 8 - len(b.hdr)
			if need > len(q) {
				need = len(q)
			}
			b.hdr = append(b.hdr, q[:need]...)
			q = q[need:]
			if len(b.hdr) < 8 {
				break
			}
			size := int64(binary.BigEndian.Uint32(b.hdr))
			b.typ = string(b.hdr[4:8])
			b.hdr = b.hdr[:0]
			if size < 8 { // 64-bit or to-the-end sizes: not written by the fragmenter
				b.err = errors.New("box " + b.typ + " of size " + strconv.FormatInt(size, 10))
				return len(p), nil
			}
			b.types = append(b.types, b.typ)
			b.left = size - 8
			if b.typ == "moov" {
				var h [8]byte
				binary.BigEndian.PutUint32(h[:], uint32(size))
				copy(h[4:], "moov")
				b.moov.Write(h[:])
			}
			continue
		}
		n := min(int64(len(q)), b.left)
		if b.typ == "moov" {
			b.moov.Write(q[:n])
		}
		b.left -= n
		q = q[n:]
	}
	return len(p), nil
}

// checkFragmented checks that a remuxed stream is a fragmented MP4: ftyp,
// a moov holding mvex (the fragments' defaults) and no samples, then moof
// and mdat pairs.
func checkFragmented(t *testing.T, b *boxWriter) {
	t.Helper()
	if b.err != nil || b.left != 0 || len(b.hdr) != 0 {
		t.Fatalf("not a whole MP4: %v, %d bytes of a box missing", b.err, b.left)
	}
	if len(b.types) < 4 || b.types[0] != "ftyp" || b.types[1] != "moov" {
		t.Fatalf("boxes %v: want ftyp, moov, then fragments", first(b.types, 10))
	}
	if !bytes.Contains(b.moov.Bytes(), []byte("mvex")) || !bytes.Contains(b.moov.Bytes(), []byte("trex")) {
		t.Fatalf("moov without mvex/trex: not fragmented")
	}
	moofs := 0
	for i, typ := range b.types[2:] {
		if typ == "moof" {
			moofs++
			if i+3 >= len(b.types) || b.types[i+3] != "mdat" {
				t.Fatalf("moof not followed by mdat: %v", first(b.types, 20))
			}
		}
	}
	if moofs == 0 {
		t.Fatalf("no moof box: %v", first(b.types, 20))
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// ffprobeStreams lists codec_type:codec_name of a file's streams as
// ffprobe reads them.
func ffprobeStreams(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,codec_tag_string",
		"-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	return strings.TrimSpace(string(out))
}

// countFrames counts the video or audio packets ffprobe reads in a file.
func countPackets(t *testing.T, path, stream string) int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", stream, "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("ffprobe %s: %q", path, out)
	}
	return n
}

func TestRemux(t *testing.T) {
	dir := t.TempDir()
	src := "testsrc2=size=320x240:rate=25:duration=3"
	tone := "sine=frequency=440:sample_rate=48000:duration=3"
	cases := []struct {
		name, file string
		args       []string
		want       string // ffprobe's streams of the output
	}{
		{"h264-aac-mp4", "a.mp4", []string{"-f", "lavfi", "-i", src, "-f", "lavfi", "-i", tone, "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"},
			"h264,video,avc1\naac,audio,mp4a"},
		{"h265-mp4", "b.mp4", []string{"-f", "lavfi", "-i", src, "-f", "lavfi", "-i", tone, "-c:v", "libx265", "-x265-params", "log-level=error:keyint=25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"},
			"hevc,video,hvc1\naac,audio,mp4a"},
		// A MOV as many recorders write it: the index (moov) at the end, so
		// the demuxer seeks there first, and PCM sound an MP4 cannot carry.
		{"mov-pcm", "c.mov", []string{"-f", "lavfi", "-i", src, "-f", "lavfi", "-i", tone, "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-shortest"},
			"h264,video,avc1"},
		{"mov-aac", "d.mov", []string{"-f", "lavfi", "-i", src, "-f", "lavfi", "-i", tone, "-c:v", "libx264", "-bf", "2", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"},
			"h264,video,avc1\naac,audio,mp4a"},
		{"audio-only-m4a", "e.m4a", []string{"-f", "lavfi", "-i", tone, "-c:a", "aac"}, "aac,audio,mp4a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ffmpeg(t, append(c.args, filepath.Join(dir, c.file))...)
			fi, err := os.Stat(filepath.Join(dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			fr := &fileRanges{dir: dir}
			var out bytes.Buffer
			boxes := &boxWriter{}
			info, err := Remux(context.Background(), fr, c.file, fi.Size(), io.MultiWriter(&out, boxes))
			if err != nil {
				t.Fatalf("remux: %v (%+v)", err, info)
			}
			if info.Written != int64(out.Len()) || info.Packets == 0 {
				t.Fatalf("info %+v, %d bytes written", info, out.Len())
			}
			checkFragmented(t, boxes)
			got := filepath.Join(dir, c.name+".fmp4")
			if err := os.WriteFile(got, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if s := ffprobeStreams(t, got); s != c.want {
				t.Fatalf("ffprobe reads streams\n%s\nwant\n%s", s, c.want)
			}
			// Stream copy: every packet of the kept tracks is there.
			for _, st := range []string{"v", "a"} {
				if !strings.Contains(c.want, map[string]string{"v": "video", "a": "audio"}[st]) {
					continue
				}
				if a, b := countPackets(t, filepath.Join(dir, c.file), st), countPackets(t, got, st); a != b {
					t.Fatalf("%s: %d packets in, %d out", st, a, b)
				}
			}
		})
	}
}

func TestRemuxRefuses(t *testing.T) {
	dir := t.TempDir()
	ffmpeg(t, "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "pcm_s16le", filepath.Join(dir, "a.wav"))
	if err := os.WriteFile(filepath.Join(dir, "junk.mp4"), bytes.Repeat([]byte("not a video "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		size int64
		is   error
	}{{"a.wav", -1, ErrNotPlayable}, {"junk.mp4", -1, ErrUnreadable}} {
		fi, _ := os.Stat(filepath.Join(dir, c.file))
		var out bytes.Buffer
		info, err := Remux(context.Background(), &fileRanges{dir: dir}, c.file, fi.Size(), &out)
		if err == nil || out.Len() != 0 || info.Written != 0 {
			t.Fatalf("%s: err %v, %d bytes written; want an error and nothing written", c.file, err, out.Len())
		}
		if !errors.Is(err, c.is) {
			t.Fatalf("%s: %v, want %v", c.file, err, c.is)
		}
	}
	// A stored object shorter than recorded is the store's fault, named.
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=160x120:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "faststart", filepath.Join(dir, "v.mp4"))
	fi, _ := os.Stat(filepath.Join(dir, "v.mp4"))
	_, err := Remux(context.Background(), &fileRanges{dir: dir}, "v.mp4", fi.Size()+1000, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ends at") {
		t.Fatalf("short object: %v", err)
	}
	// A cancelled request stops the remux.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Remux(ctx, &fileRanges{dir: dir}, "v.mp4", fi.Size(), io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// rss is the process's resident set size (Linux).
func rss(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// A large file is remuxed in bounded memory: the process's peak resident
// size (Go heap and FFmpeg's C memory) grows by far less than the file.
func TestRemuxMemory(t *testing.T) {
	dir := t.TempDir()
	// Two seconds of lossless noise (~10 MB/s), looped without re-encoding
	// into a ~300 MB MP4 with sound.
	ffmpeg(t, "-f", "lavfi", "-i", "nullsrc=size=640x360:rate=25:duration=2,geq=lum='random(1)*255':cb=128:cr=128",
		"-f", "lavfi", "-i", "sine=duration=2", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-shortest", filepath.Join(dir, "clip.mp4"))
	ci, _ := os.Stat(filepath.Join(dir, "clip.mp4"))
	loops := int(300<<20/ci.Size()) + 1
	ffmpeg(t, "-stream_loop", strconv.Itoa(loops-1), "-i", filepath.Join(dir, "clip.mp4"), "-c", "copy", filepath.Join(dir, "big.mp4"))
	fi, _ := os.Stat(filepath.Join(dir, "big.mp4"))
	if fi.Size() < 250<<20 {
		t.Fatalf("test file %d bytes, want about 300 MB", fi.Size())
	}
	runtime.GC()
	// Reset the peak resident size to the current one (Linux clear_refs 5).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("cannot reset the peak RSS: %v", err)
	}
	before := rss(t, "VmRSS")
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	boxes := &boxWriter{}
	fr := &fileRanges{dir: dir}
	info, err := Remux(context.Background(), fr, "big.mp4", fi.Size(), boxes)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms1)
	peak := rss(t, "VmHWM")
	checkFragmented(t, boxes)
	if boxes.n < fi.Size()*9/10 {
		t.Fatalf("%d bytes out of a %d-byte file", boxes.n, fi.Size())
	}
	growth := peak - before
	t.Logf("file %d MB, %d packets, %d MB out, %d ranged reads; peak RSS growth %.1f MiB; Go heap %d → %d MiB (%d MiB allocated in all)",
		fi.Size()>>20, info.Packets, boxes.n>>20, fr.opens, float64(growth)/(1<<20), ms0.HeapInuse>>20, ms1.HeapInuse>>20,
		(ms1.TotalAlloc-ms0.TotalAlloc)>>20)
	if growth > 64<<20 {
		t.Fatalf("peak RSS grew %d MiB remuxing a %d MiB file: want at most 64 MiB", growth>>20, fi.Size()>>20)
	}
}
