package derive_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/derive"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/jobs"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/dir"
	"github.com/bodycam/bodycam/transcode"
)

// fakeCatalog is one recording and its segments.
type fakeCatalog struct {
	rec  evidence.Recording
	segs []evidence.Segment
}

func (c *fakeCatalog) Recording(ctx context.Context, id string) (evidence.Recording, error) {
	if id != c.rec.ID {
		return evidence.Recording{}, catalog.ErrNotFound
	}
	return c.rec, nil
}

func (c *fakeCatalog) Segments(ctx context.Context, id string) ([]evidence.Segment, error) {
	return c.segs, nil
}

type signer struct{ key ed25519.PrivateKey }

func (s signer) ID() string                       { return "k1" }
func (s signer) Sign(msg []byte) (string, []byte) { return "k1", ed25519.Sign(s.key, msg) }

type custody struct{ events []evidence.CustodyEvent }

func (c *custody) Record(ctx context.Context, e evidence.CustodyEvent) error {
	c.events = append(c.events, e)
	return nil
}

// framer is serve's (cmd/bodycam): transcode.Frames.
func framer(ctx context.Context, src derive.Store, objects []derive.Object, at []time.Duration, width int) ([]derive.Frame, error) {
	obs := make([]transcode.Object, len(objects))
	for i, o := range objects {
		obs[i] = transcode.Object{Key: o.Key, Size: o.Size}
	}
	frames, err := transcode.Frames(ctx, src, obs, transcode.FramesOptions{At: at, Width: width, Absolute: true})
	if errors.Is(err, transcode.ErrNoVideo) {
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

func ffmpeg(tb testing.TB, args ...string) {
	tb.Helper()
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// fixture is a recording of seconds of testsrc (size, 30 fps, a keyframe
// every second) stored as a stream recording is: an init segment and a
// media segment per second, in a directory store; and the whole file, for
// ffmpeg's own frames.
type fixture struct {
	file  string
	store *dir.Store
	cat   *fakeCatalog
	d     *derive.Deriver
	pub   ed25519.PublicKey
	cust  *custody
	root  string
}

func newFixture(tb testing.TB, size string, seconds int) *fixture {
	return newFixtureGOP(tb, size, seconds, 30, "testsrc")
}

// lag is how late the server received media segment n (its catalog start
// against its media time): a publisher that fell behind and caught up, as
// on a busy machine. Pictures go by media time, whatever the receive times.
func lag(n int) time.Duration {
	if n%2 == 1 {
		return 700 * time.Millisecond
	}
	return 0
}

// newFixtureGOP is newFixture of source (a lavfi video source) with a
// keyframe, and so a media segment, every gop frames.
func newFixtureGOP(tb testing.TB, size string, seconds, gop int, source string) *fixture {
	tb.Helper()
	tmp := tb.TempDir()
	file := filepath.Join(tmp, "rec.mp4")
	ffmpeg(tb, "-f", "lavfi", "-i", source+"=size="+size+":rate=30", "-t", fmt.Sprint(seconds), "-c:v", "libx264", "-preset", "veryfast",
		"-g", fmt.Sprint(gop), "-keyint_min", fmt.Sprint(gop), "-sc_threshold", "0", "-b:v", "4M", "-pix_fmt", "yuv420p",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", file)
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	root := filepath.Join(tmp, "objects")
	store, err := dir.Open(root, dir.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := evidence.Recording{ID: "rec-1", DeviceID: "cam-1", StartedAt: start, EndedAt: start.Add(time.Duration(seconds) * time.Second),
		State: evidence.StateComplete}
	var segs []evidence.Segment
	put := func(kind evidence.SegmentKind, body []byte) {
		key := fmt.Sprintf("cam-1/rec-1/%06d.%s", len(segs), map[bool]string{true: "mp4", false: "m4s"}[kind == evidence.KindInit])
		sum := sha256.Sum256(body)
		if _, err := store.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), storage.PutOptions{SHA256: sum[:]}); err != nil {
			tb.Fatal(err)
		}
		n := len(segs) - 1 // media segments from 0
		segs = append(segs, evidence.Segment{RecordingID: rec.ID, DeviceID: rec.DeviceID, Seq: int64(len(segs)), Kind: kind, Key: key,
			Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), StartedAt: start.Add(time.Duration(max(0, n)*gop)*time.Second/30 + lag(n)),
			Duration: time.Duration(gop) * time.Second / 30, Keyframe: true})
	}
	// The boxes: ftyp and moov the init segment, each moof and its mdat a
	// media segment.
	off, cut := 0, -1
	for off+8 <= len(b) {
		size := int(binary.BigEndian.Uint32(b[off:]))
		typ := string(b[off+4 : off+8])
		if typ == "moof" {
			if cut < 0 {
				put(evidence.KindInit, b[:off])
			} else {
				put(evidence.KindMedia, b[cut:off])
			}
			cut = off
		}
		off += size
	}
	put(evidence.KindMedia, b[cut:])
	key := make([]byte, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(key)
	cust := &custody{}
	cat := &fakeCatalog{rec: rec, segs: segs}
	d := derive.New(derive.Options{Catalog: cat, Store: store, Signer: signer{priv}, Custody: cust, Frames: framer,
		Version: "test", FFmpeg: transcode.FFmpegVersion()})
	return &fixture{file: file, store: store, cat: cat, d: d, pub: priv.Public().(ed25519.PublicKey), cust: cust, root: root}
}

func (f *fixture) job(tb testing.TB, kind string, params string) catalog.Job {
	p, hash, err := catalog.CanonicalParams(json.RawMessage(params))
	if err != nil {
		tb.Fatal(err)
	}
	return catalog.Job{ID: "job-" + kind, Kind: kind, Source: "rec-1", Params: p, ParamsHash: hash, RequestedBy: "system"}
}

func (f *fixture) read(tb testing.TB, key string) []byte {
	tb.Helper()
	rc, err := f.store.Get(context.Background(), key)
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

// provenance reads, verifies (signature, outputs' SHA-256 against the
// stored objects, sources against the catalog) and returns a record.
func (f *fixture) provenance(t *testing.T, key string) derive.Provenance {
	t.Helper()
	body := f.read(t, key)
	if !ed25519.Verify(f.pub, body, f.read(t, key+".sig")) {
		t.Fatalf("%s: the signature does not verify", key)
	}
	var p derive.Provenance
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	for _, o := range p.Outputs {
		if sum := sha256.Sum256(f.read(t, o.Key)); hex.EncodeToString(sum[:]) != o.SHA256 {
			t.Fatalf("%s: output %s's SHA-256 is not the stored object's", key, o.Key)
		}
	}
	want := map[string]string{}
	for _, s := range f.cat.segs {
		want[s.Key] = s.SHA256
	}
	if len(p.Sources) != len(f.cat.segs) {
		t.Fatalf("%s: %d sources, want the recording's %d objects", key, len(p.Sources), len(f.cat.segs))
	}
	for _, s := range p.Sources {
		if want[s.Key] != s.SHA256 {
			t.Fatalf("%s: source %s %s is not the recording's", key, s.Key, s.SHA256)
		}
	}
	if p.Software["ffmpeg"] == "" || p.RecordingID != "rec-1" || p.KeyID != "k1" {
		t.Fatalf("%s: %+v", key, p)
	}
	return p
}

// rawFrame is ffmpeg's own decoding of file's frame at at, scaled to w×h,
// as RGB.
func rawFrame(t *testing.T, file string, at time.Duration, w, h int) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", file, "-ss", fmt.Sprintf("%.3f", at.Seconds()),
		"-frames:v", "1", "-vf", fmt.Sprintf("scale=%d:%d:flags=bicubic:out_range=full", w, h), "-f", "rawvideo", "-pix_fmt", "rgb24", "-").Output()
	if err != nil || len(out) != w*h*3 {
		t.Fatalf("ffmpeg's frame at %v: %v (%d bytes)", at, err, len(out))
	}
	return out
}

// psnr of img's rectangle r against ref (RGB24 of r's size), in dB.
func psnr(img image.Image, r image.Rectangle, ref []byte) float64 {
	var se float64
	i := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			for _, v := range []uint32{cr >> 8, cg >> 8, cb >> 8} {
				d := float64(v) - float64(ref[i])
				se += d * d
				i++
			}
		}
	}
	if se == 0 {
		return 100
	}
	return 10 * math.Log10(255*255/(se/float64(i)))
}

// shows fails unless picture's rectangle r is ffmpeg's frame of the
// recording at at (PSNR >= 22 dB at thumbnail size, 4:2:0 against RGB),
// and not the frame off later or earlier (3 dB less): the test pattern's
// moving parts and burned-in counter tell them apart.
func (f *fixture) shows(t *testing.T, what string, picture image.Image, r image.Rectangle, at, off time.Duration) {
	t.Helper()
	same := psnr(picture, r, rawFrame(t, f.file, at, r.Dx(), r.Dy()))
	other := psnr(picture, r, rawFrame(t, f.file, off, r.Dx(), r.Dy()))
	if same < 22 || other > same-3 {
		t.Fatalf("%s: PSNR %.1f dB against ffmpeg's frame at %v, %.1f against %v; want >= 22 and 3 dB less", what, same, at, other, off)
	}
}

// Thumbnails of a 6 s recording stored as an init segment and 1 s media
// segments: one per segment, 160x90 JPEGs, each the frame at its
// segment's start (its time in the record and ffmpeg's own frame there),
// one signed provenance record naming them all with their SHA-256 and the
// recording's objects with theirs, one custody event; a second run (a
// retry after a crash) keeps every object: no second copy.
func TestThumbnails(t *testing.T) {
	f := newFixture(t, "640x360", 6)
	ctx := context.Background()
	j := f.job(t, derive.KindThumbnails, `{"width":160}`)
	rows, err := f.d.Thumbnails(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 {
		t.Fatalf("%d thumbnails of 6 segments", len(rows))
	}
	p := f.provenance(t, rows[0].ProvenanceKey)
	if len(p.Outputs) != 6 || p.Output != nil || p.Kind != derive.KindThumbnails {
		t.Fatalf("provenance outputs: %+v", p)
	}
	for i, o := range p.Outputs {
		if rows[i].Key != o.Key || rows[i].Kind != derive.KindThumbnail || rows[i].SHA256 != o.SHA256 || rows[i].ProvenanceKey != rows[0].ProvenanceKey {
			t.Fatalf("row %d %+v, output %+v", i, rows[i], o)
		}
		if o.FrameAtSeconds == nil || math.Abs(*o.FrameAtSeconds-float64(i)) > 0.001 || o.Segment != f.cat.segs[i+1].Key {
			t.Fatalf("thumbnail %d: %+v; want the frame at %ds of %s", i, o, i, f.cat.segs[i+1].Key)
		}
		img, err := jpeg.Decode(bytes.NewReader(f.read(t, o.Key)))
		if err != nil {
			t.Fatalf("thumbnail %d: %v", i, err)
		}
		if s := img.Bounds().Size(); s.X != 160 || s.Y != 90 || o.Width != 160 || o.Height != 90 {
			t.Fatalf("thumbnail %d: %v", i, s)
		}
		at := time.Duration(i) * time.Second
		f.shows(t, fmt.Sprintf("thumbnail %d", i), img, img.Bounds(), at, (at+time.Second)%(6*time.Second))
	}
	if len(f.cust.events) != 1 || f.cust.events[0].Action != evidence.ActionDerived || !strings.Contains(f.cust.events[0].Detail, "6 thumbnails") {
		t.Fatalf("custody: %+v", f.cust.events)
	}
	before := countFiles(t, f.root)
	again, err := f.d.Thumbnails(ctx, j)
	if err != nil || len(again) != 6 || again[3].Key != rows[3].Key || again[3].SHA256 != rows[3].SHA256 {
		t.Fatalf("again: %v %+v", err, again)
	}
	if after := countFiles(t, f.root); after != before {
		t.Fatalf("a second run stored %d more files", after-before)
	}
}

// A sprite of the same recording, a tile every 0.5 s, 4 to a row: 12
// tiles in 3 rows of one JPEG, whose index says where each is and when;
// each tile is ffmpeg's frame at its index time (the first at or after its
// place on the timeline), not the frame half a second off; the index names
// the sprite and its SHA-256; both are named by one signed provenance
// record.
func TestSprite(t *testing.T) {
	f := newFixture(t, "640x360", 6)
	ctx := context.Background()
	j := f.job(t, derive.KindSprite, `{"every_seconds":0.5,"width":160,"columns":4}`)
	rows, err := f.d.Sprite(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Kind != derive.KindSprite || rows[1].Kind != derive.KindSpriteIndex || rows[1].ContentType != "application/json" {
		t.Fatalf("rows: %+v", rows)
	}
	p := f.provenance(t, rows[0].ProvenanceKey)
	if len(p.Outputs) != 2 || p.Outputs[0].Key != rows[0].Key || p.Outputs[1].Key != rows[1].Key {
		t.Fatalf("provenance outputs: %+v", p.Outputs)
	}
	var index derive.SpriteIndex
	if err := json.Unmarshal(f.read(t, rows[1].Key), &index); err != nil {
		t.Fatal(err)
	}
	if index.Sprite != rows[0].Key || index.SpriteSHA256 != rows[0].SHA256 || len(index.Tiles) != 12 || index.Columns != 4 || index.Rows != 3 ||
		index.TileWidth != 160 || index.TileHeight != 90 || index.Width != 640 || index.Height != 270 || index.EverySeconds != 0.5 {
		t.Fatalf("index: %+v", index)
	}
	img, err := jpeg.Decode(bytes.NewReader(f.read(t, rows[0].Key)))
	if err != nil {
		t.Fatal(err)
	}
	if s := img.Bounds().Size(); s.X != 640 || s.Y != 270 {
		t.Fatalf("sprite %v, want 640x270", s)
	}
	for i, tile := range index.Tiles {
		if tile.X != i%4*160 || tile.Y != i/4*90 || tile.AtSeconds != float64(i)*0.5 ||
			tile.FrameAtSeconds < tile.AtSeconds || tile.FrameAtSeconds >= tile.AtSeconds+0.034 {
			t.Fatalf("tile %d: %+v", i, tile)
		}
		at := time.Duration(tile.FrameAtSeconds * float64(time.Second))
		off := at + 500*time.Millisecond
		if off >= 6*time.Second {
			off = at - 500*time.Millisecond
		}
		f.shows(t, fmt.Sprintf("tile %d", i), img, image.Rect(tile.X, tile.Y, tile.X+160, tile.Y+90), at, off)
	}
	if len(f.cust.events) != 1 || !strings.Contains(f.cust.events[0].Detail, "12 tiles") {
		t.Fatalf("custody: %+v", f.cust.events)
	}
	// Parameters out of range fail for good.
	bad := f.job(t, derive.KindSprite, `{"every_seconds":0,"width":160,"columns":4}`)
	if _, err := f.d.Sprite(ctx, bad); !jobs.IsPermanent(err) {
		t.Fatalf("every_seconds 0: %v, want a permanent failure", err)
	}
}

func countFiles(t *testing.T, root string) int {
	n := 0
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// BenchmarkThumbnailsSprite: the thumbnails (160 wide, one per segment)
// and the sprite (a tile every 10 s) of a minute of 720p30 H.264
// (testsrc2, 4 Mbit/s) stored as bodycam stores it by default: 4 s media
// segments, each from a keyframe. Reported as CPU seconds (the process's,
// GC included) per hour of footage.
func BenchmarkThumbnailsSprite(b *testing.B) {
	const seconds = 60
	f := newFixtureGOP(b, "1280x720", seconds, 120, "testsrc2")
	ctx := context.Background()
	var cpuThumbs, cpuSprite time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// New parameters each time: new objects, as a first run makes.
		c0 := cpuTime(b)
		if _, err := f.d.Thumbnails(ctx, f.job(b, derive.KindThumbnails, fmt.Sprintf(`{"width":%d}`, 160-2*(i%20)))); err != nil {
			b.Fatal(err)
		}
		c1 := cpuTime(b)
		if _, err := f.d.Sprite(ctx, f.job(b, derive.KindSprite, fmt.Sprintf(`{"every_seconds":10,"width":160,"columns":%d}`, 10+i%40))); err != nil {
			b.Fatal(err)
		}
		c2 := cpuTime(b)
		cpuThumbs, cpuSprite = cpuThumbs+c1-c0, cpuSprite+c2-c1
	}
	b.StopTimer()
	perHour := 3600.0 / seconds / float64(b.N)
	b.ReportMetric(cpuThumbs.Seconds()*perHour, "thumbs-cpu-s/h")
	b.ReportMetric(cpuSprite.Seconds()*perHour, "sprite-cpu-s/h")
	b.ReportMetric((cpuThumbs+cpuSprite).Seconds()*perHour, "cpu-s/h")
}

func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
