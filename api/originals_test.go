package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/transcode"
)

// remuxer is what bodycam serve wires: transcode.Remux over the store.
type remuxer struct{ store transcode.Ranges }

func (r remuxer) Remux(ctx context.Context, key string, size int64, w io.Writer) (int64, error) {
	info, err := transcode.Remux(ctx, r.store, key, size, w)
	if errors.Is(err, transcode.ErrNotPlayable) || errors.Is(err, transcode.ErrUnreadable) {
		err = fmt.Errorf("%w: %v", api.ErrNotPlayable, err)
	}
	return info.Written, err
}

func withRemux(o *api.Options) { o.Remux = remuxer{o.Store.(transcode.Ranges)} }

func runFFmpeg(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// recorderFiles makes the files recorders store, small: MP4 H.264+AAC,
// MP4 H.265+AAC, MOV (index at the end), WAV, JPEG.
func recorderFiles(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	v := "testsrc2=size=320x240:rate=25:duration=2"
	a := "sine=frequency=440:sample_rate=48000:duration=2"
	files := map[string][]string{
		"CAM1_20261125100000.MP4": {"-f", "lavfi", "-i", v, "-f", "lavfi", "-i", a, "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"},
		"CAM1_20261125100500.mp4": {"-f", "lavfi", "-i", v, "-f", "lavfi", "-i", a, "-c:v", "libx265", "-x265-params", "log-level=error:keyint=25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"},
		`CAM1 "night" 2026.MOV`:   {"-f", "lavfi", "-i", v, "-f", "lavfi", "-i", a, "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-f", "mov"},
		"CAM1_20261125101500.WAV": {"-f", "lavfi", "-i", a, "-c:a", "pcm_s16le"},
		"CAM1_20261125102000.JPG": {"-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1"},
	}
	out := map[string]string{}
	for name, args := range files {
		p := filepath.Join(dir, strings.NewReplacer(" ", "_", `"`, "").Replace(name))
		if strings.HasSuffix(name, ".MOV") {
			p = filepath.Join(dir, "night.mov")
		}
		if strings.HasSuffix(name, ".JPG") {
			p = filepath.Join(dir, "photo.jpg")
		}
		runFFmpeg(t, append(args, p)...)
		out[name] = p
	}
	return out
}

// storeUploaded stores a file as an uploaded recording of cam-a, as the
// upload server does: the object, StoreUpload, the signed manifest with its
// origin, the signed receipt. It returns the recording's original segment.
func storeUploaded(t *testing.T, id, fileName, path string, started time.Time) (evidence.Segment, []byte) {
	t.Helper()
	ctx := context.Background()
	f := lastFixture
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	u := evidence.Upload{ID: "up-" + id, DeviceID: "cam-a", OfficerID: "o-a", Dock: "dock-1", FileName: fileName, Size: int64(len(body)),
		SHA256: hash, Important: true, StartedAt: started, EndedAt: started.Add(2 * time.Second), TimeSource: evidence.TimeGiven}
	if err := f.cat.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	key := evidence.OriginalKey("cam-a", id, fileName)
	if _, err := f.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), storage.PutOptions{SHA256: sum[:]}); err != nil {
		t.Fatal(err)
	}
	rec := evidence.Recording{ID: id, Kind: evidence.KindUpload, DeviceID: "cam-a", OfficerID: "o-a", State: evidence.StateComplete,
		StartedAt: started, EndedAt: u.EndedAt, EndReason: "uploaded by dock dock-1: " + fileName}
	seg := evidence.Segment{RecordingID: id, DeviceID: "cam-a", Seq: 1, Kind: evidence.KindOriginal, Key: key, Size: u.Size, SHA256: hash,
		StartedAt: started, Duration: 2 * time.Second}
	rec, seg, err = f.cat.StoreUpload(ctx, rec, seg, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := evidence.NewManifest(rec, []evidence.Segment{seg}, nil)
	m.Kind, m.Origin = evidence.KindUpload, evidence.NewManifestOrigin(u)
	m.SigningKeyID, m.SignedAt = f.keys.ID(), time.Now().UTC()
	putSigned(t, "cam-a/"+id+"/manifest.json", m.Marshal())
	if err := f.cat.SetManifest(ctx, id, "cam-a/"+id+"/manifest.json"); err != nil {
		t.Fatal(err)
	}
	r := evidence.Receipt{Version: 1, RecordingID: id, DeviceID: "cam-a", FileName: fileName, Size: u.Size, SHA256: hash, ObjectKey: key,
		ChainHash: seg.ChainHash, Dock: "dock-1", StoredAt: time.Now().UTC(), SigningKeyID: f.keys.ID()}
	putSigned(t, evidence.ReceiptKey("cam-a", id), r.Marshal())
	return seg, body
}

func putSigned(t *testing.T, key string, body []byte) {
	t.Helper()
	ctx := context.Background()
	_, sig := lastFixture.keys.Sign(body)
	for k, b := range map[string][]byte{key: body, key + ".sig": sig} {
		if _, err := lastFixture.store.Put(ctx, k, bytes.NewReader(b), int64(len(b)), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// flipByte changes one byte of a stored object in place (what a disk
// fault or a tamperer would do) and returns a function that restores it.
func flipByte(t *testing.T, root, key string, at int64) func() {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(key))
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte{b[0] ^ 0x01}, at); err != nil {
		t.Fatal(err)
	}
	return func() {
		fh, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if _, err := fh.WriteAt(b, at); err != nil {
			t.Fatal(err)
		}
	}
}

// topBoxes lists an MP4's top-level boxes, and returns the moov box.
func topBoxes(t *testing.T, b []byte) ([]string, []byte) {
	t.Helper()
	var types []string
	var moov []byte
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			t.Fatalf("%d stray bytes at the end", len(b)-off)
		}
		size := int(binary.BigEndian.Uint32(b[off:]))
		typ := string(b[off+4 : off+8])
		if size < 8 || off+size > len(b) {
			t.Fatalf("box %s at %d: size %d in a %d-byte file", typ, off, size, len(b))
		}
		if typ == "moov" {
			moov = b[off : off+size]
		}
		types = append(types, typ)
		off += size
	}
	return types, moov
}

func TestUploadedRecordingPlaybackAndVerify(t *testing.T) {
	srv, _ := rolesFixture(t, withRemux)
	files := recorderFiles(t)
	start := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	i := 0
	for name, path := range files {
		i++
		id := fmt.Sprintf("rec-up-%d", i)
		t.Run(filepath.Ext(name)+"-"+id, func(t *testing.T) {
			seg, orig := storeUploaded(t, id, name, path, start.Add(time.Duration(i)*time.Minute))
			base := srv.URL + "/api/v1/recordings/" + id

			// /media: video remuxed to fragmented MP4 that ffprobe reads;
			// sound and pictures as stored.
			resp, body := getMedia(t, base+"/media", "tok-o-a", "")
			if resp.StatusCode != 200 {
				t.Fatalf("media: %d %s", resp.StatusCode, body)
			}
			switch ext := strings.ToLower(filepath.Ext(name)); ext {
			case ".mp4", ".mov":
				if ct := resp.Header.Get("Content-Type"); ct != "video/mp4" {
					t.Fatalf("media Content-Type %q", ct)
				}
				types, moov := topBoxes(t, body)
				if len(types) < 4 || types[0] != "ftyp" || types[1] != "moov" || !bytes.Contains(moov, []byte("mvex")) || !strings.Contains(strings.Join(types, " "), "moof mdat") {
					t.Fatalf("not a fragmented MP4: boxes %v", types[:min(8, len(types))])
				}
				if bytes.Equal(body, orig) {
					t.Fatal("media served the original, not a remuxed copy")
				}
				out := filepath.Join(t.TempDir(), "play.mp4")
				os.WriteFile(out, body, 0o644)
				probe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", out).CombinedOutput()
				want := "h264,video\naac,audio"
				if strings.HasSuffix(name, ".mp4") {
					want = "hevc,video\naac,audio"
				}
				if err != nil || strings.TrimSpace(string(probe)) != want {
					t.Fatalf("ffprobe of /media: %v %q, want %q", err, probe, want)
				}
			case ".wav", ".jpg":
				want := map[string]string{".wav": "audio/wav", ".jpg": "image/jpeg"}[ext]
				if ct := resp.Header.Get("Content-Type"); ct != want || !bytes.Equal(body, orig) {
					t.Fatalf("media: %q, %d bytes; want %s, the original's %d bytes", ct, len(body), want, len(orig))
				}
				if resp, part := getMedia(t, base+"/media", "tok-o-a", "bytes=4-11"); resp.StatusCode != 206 || !bytes.Equal(part, orig[4:12]) {
					t.Fatalf("media Range: %d %q", resp.StatusCode, part)
				}
			default:
				t.Fatalf("extension %s", ext)
			}

			// /original: the exact bytes, ranges, the recorder's name.
			resp, body = getMedia(t, base+"/original", "tok-aud", "")
			if resp.StatusCode != 200 || !bytes.Equal(body, orig) {
				t.Fatalf("original: %d, %d bytes, want the %d stored", resp.StatusCode, len(body), len(orig))
			}
			cd := resp.Header.Get("Content-Disposition")
			if !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, "CAM1") {
				t.Fatalf("Content-Disposition %q", cd)
			}
			if strings.Contains(name, `"`) && !strings.Contains(cd, `filename="CAM1 \"night\" 2026.MOV"`) {
				t.Fatalf("Content-Disposition %q: the quotes of the name are not escaped", cd)
			}
			n := int64(len(orig))
			resp, body = getMedia(t, base+"/original", "tok-aud", fmt.Sprintf("bytes=100-199,%d-", n-10))
			if resp.StatusCode != 206 || !bytes.Contains(body, orig[100:200]) || !bytes.Contains(body, orig[n-10:]) {
				t.Fatalf("original multi-range: %d", resp.StatusCode)
			}
			resp, body = getMedia(t, base+"/original", "tok-aud", "bytes=-16")
			if resp.StatusCode != 206 || !bytes.Equal(body, orig[n-16:]) {
				t.Fatalf("original suffix range: %d", resp.StatusCode)
			}

			// Each viewing is in the ledger: o-a's playback, aud's download.
			var play, down bool
			for _, e := range playbacks(t, id) {
				play = play || (e.Action == evidence.ActionPlayback && e.Actor == "o-a")
				down = down || (e.Action == evidence.ActionDownload && e.Actor == "aud" && strings.Contains(e.Detail, "original"))
			}
			if !play || !down {
				t.Fatalf("custody: playback %v, download %v: %+v", play, down, playbacks(t, id))
			}

			// The recording's JSON says where it came from.
			code, js := call(t, srv.URL, "GET", "/api/v1/recordings/"+id, "tok-o-a", "")
			var rj struct {
				Kind   string `json:"kind"`
				Origin *struct {
					FileName   string `json:"file_name"`
					SHA256     string `json:"sha256"`
					Size       int64  `json:"size"`
					Dock       string `json:"dock"`
					Important  bool   `json:"important"`
					TimeSource string `json:"time_source"`
				} `json:"origin"`
				SameEvent []string `json:"same_event"`
			}
			if err := json.Unmarshal([]byte(js), &rj); code != 200 || err != nil || rj.Kind != "upload" || rj.Origin == nil ||
				rj.Origin.FileName != name || rj.Origin.SHA256 != seg.SHA256 || rj.Origin.Size != n || rj.Origin.Dock != "dock-1" ||
				!rj.Origin.Important || rj.Origin.TimeSource != "given" || rj.SameEvent == nil {
				t.Fatalf("recording JSON: %d %s", code, js)
			}

			// Verification: ok; with one byte of the file changed, it names
			// the object.
			verifyRec := func() map[string]any {
				code, vb := call(t, srv.URL, "POST", "/api/v1/recordings/"+id+"/verify", "tok-aud", "")
				var v map[string]any
				if err := json.Unmarshal([]byte(vb), &v); code != 200 || err != nil {
					t.Fatalf("verify: %d %s", code, vb)
				}
				return v
			}
			if v := verifyRec(); v["ok"] != true || v["manifest"] != "ok" || v["receipt"] != "ok" || v["checked"] != 1.0 {
				t.Fatalf("verify: %v", v)
			}
			restore := flipByte(t, lastFixture.root, seg.Key, n/2)
			v := verifyRec()
			restore()
			if v["ok"] != false || v["first_bad_seq"] != 1.0 || !strings.Contains(fmt.Sprint(v["reason"]), seg.Key) {
				t.Fatalf("verify with a flipped byte: %v", v)
			}
		})
	}

	// Listing by kind, and a stream recording linked as the same event.
	code, js := call(t, srv.URL, "GET", "/api/v1/recordings?kind=upload", "tok-aud", "")
	var list struct {
		Items []struct {
			ID, Kind  string
			SameEvent []string `json:"same_event"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(js), &list); code != 200 || err != nil || len(list.Items) != len(files) {
		t.Fatalf("?kind=upload: %d %s", code, js)
	}
	for _, it := range list.Items {
		if it.Kind != "upload" {
			t.Fatalf("?kind=upload lists %s of kind %s", it.ID, it.Kind)
		}
	}
	if code, js := call(t, srv.URL, "GET", "/api/v1/recordings?kind=stream", "tok-aud", ""); code != 200 || strings.Contains(js, `"upload"`) || !strings.Contains(js, "rec-a") {
		t.Fatalf("?kind=stream: %d %s", code, js)
	}
	if code, _ := call(t, srv.URL, "GET", "/api/v1/recordings?kind=file", "tok-aud", ""); code != 400 {
		t.Fatalf("?kind=file: %d, want 400", code)
	}
	if err := lastFixture.cat.LinkSameEvent(context.Background(), "rec-a", "rec-up-1"); err != nil {
		t.Fatal(err)
	}
	if code, js := call(t, srv.URL, "GET", "/api/v1/recordings/rec-a", "tok-aud", ""); code != 200 || !strings.Contains(js, `"same_event": [
    "rec-up-1"
  ]`) {
		t.Fatalf("stream recording JSON: %d %s", code, js)
	}
	// A stream recording has no original.
	if code, _ := call(t, srv.URL, "GET", "/api/v1/recordings/rec-a/original", "tok-aud", ""); code != 404 {
		t.Fatalf("original of a stream recording: %d", code)
	}
}

// Without FFmpeg (a nocgo build) an uploaded video is served by /original
// only; /media says so.
func TestUploadedVideoWithoutRemuxer(t *testing.T) {
	srv, _ := rolesFixture(t)
	files := recorderFiles(t)
	name := "CAM1_20261125100000.MP4"
	storeUploaded(t, "rec-up", name, files[name], time.Now().Add(-time.Hour).UTC().Truncate(time.Second))
	resp, body := getMedia(t, srv.URL+"/api/v1/recordings/rec-up/media", "tok-o-a", "")
	if resp.StatusCode != 501 || !strings.Contains(string(body), "/original") {
		t.Fatalf("media without a remuxer: %d %s", resp.StatusCode, body)
	}
}

// A case export carries an uploaded recording (original, manifest,
// receipt), pairs it with the stream recording of the same event, the
// uploaded original primary, and verifies offline; a changed byte of the
// original fails, naming the file.
func TestCaseExportWithUpload(t *testing.T) {
	srv, _ := rolesFixture(t, withRemux)
	files := recorderFiles(t)
	name := "CAM1_20261125100000.MP4"
	start := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	seg, orig := storeUploaded(t, "rec-up", name, files[name], start)
	// The live stream of the same event, finished and signed.
	storeRecording(t, "rec-live", 2, 3000)
	ctx := context.Background()
	f := lastFixture
	live, _ := f.cat.Recording(ctx, "rec-live")
	live.State, live.EndedAt = evidence.StateComplete, live.StartedAt.Add(12*time.Second)
	if err := f.cat.FinishRecording(ctx, live.ID, live.State, live.EndedAt, "stream ended"); err != nil {
		t.Fatal(err)
	}
	segs, _ := f.cat.Segments(ctx, "rec-live")
	live, _ = f.cat.Recording(ctx, "rec-live")
	m := evidence.NewManifest(live, segs, nil)
	m.SigningKeyID, m.SignedAt = f.keys.ID(), time.Now().UTC()
	putSigned(t, "cam-a/rec-live/manifest.json", m.Marshal())
	if err := f.cat.SetManifest(ctx, "rec-live", "cam-a/rec-live/manifest.json"); err != nil {
		t.Fatal(err)
	}
	if err := f.cat.LinkSameEvent(ctx, "rec-live", "rec-up"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"rec-up", "rec-live"} {
		if code, body := call(t, srv.URL, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"`+id+`"}`); code != 201 {
			t.Fatalf("link %s: %d %s", id, code, body)
		}
	}
	resp, zipBytes := getMedia(t, srv.URL+"/api/v1/cases/C-1/export", "tok-aud", "")
	if resp.StatusCode != 200 {
		t.Fatalf("export: %d %s", resp.StatusCode, zipBytes)
	}
	trusted := export.Options{TrustedKey: f.keys.Public()[0].Key}
	rep := export.Verify(bytes.NewReader(zipBytes), int64(len(zipBytes)), trusted)
	if !rep.OK || rep.Checked.Receipts != 1 || rep.Checked.Recordings != 2 {
		t.Fatalf("the export does not verify: %+v", rep)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "recordings/rec-up/: the uploaded original, the recorder's own file, is the primary copy") {
		t.Fatalf("no note of the pair: %v", rep.Notes)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string][]byte{}
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		entries[zf.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	if !bytes.Equal(entries["recordings/rec-up/original.mp4"], orig) || entries["recordings/rec-up/receipt.json"] == nil ||
		entries["recordings/rec-up/receipt.json.sig"] == nil || entries["recordings/rec-up/manifest.json.sig"] == nil {
		t.Fatalf("upload files missing from the export: %v", keysOf(entries))
	}
	readme := string(entries["README.txt"])
	if !strings.Contains(readme, "primary rec-up  <->  live stream rec-live") || !strings.Contains(readme, "PRIMARY COPY") ||
		!strings.Contains(readme, `UPLOADED FILE "`+name+`"`) {
		t.Fatalf("README does not mark the primary copy:\n%s", readme)
	}
	if cj := string(entries["case.json"]); !strings.Contains(cj, `"primary": "rec-up"`) || !strings.Contains(cj, `"stream": "rec-live"`) {
		t.Fatalf("case.json has no pair: %s", cj)
	}
	var rf struct {
		Kind    string `json:"kind"`
		Primary bool   `json:"primary"`
		Origin  *evidence.ManifestOrigin
		Receipt *struct{ File string }
	}
	if err := json.Unmarshal(entries["recordings/rec-up/recording.json"], &rf); err != nil || rf.Kind != "upload" || !rf.Primary ||
		rf.Origin == nil || rf.Origin.SHA256 != seg.SHA256 || rf.Receipt == nil || rf.Receipt.File != "receipt.json" {
		t.Fatalf("recording.json: %v %s", err, entries["recordings/rec-up/recording.json"])
	}

	// A flipped byte in the exported original: named, exit 1 (bodycam
	// verify fails on any failure).
	bad := rewriteEntry(t, zipBytes, "recordings/rec-up/original.mp4", func(b []byte) { b[len(b)/2] ^= 1 })
	rep = export.Verify(bytes.NewReader(bad), int64(len(bad)), trusted)
	if rep.OK || !hasFailure(rep, "recordings/rec-up/original.mp4", "does not match its SHA-256") {
		t.Fatalf("a changed original: %+v", rep.Failures)
	}
	// A receipt changed after signing.
	bad = rewriteEntry(t, zipBytes, "recordings/rec-up/receipt.json", func(b []byte) { copy(b[bytes.Index(b, []byte("dock-1")):], "dock-2") })
	rep = export.Verify(bytes.NewReader(bad), int64(len(bad)), trusted)
	if rep.OK || !hasFailure(rep, "recordings/rec-up/receipt.json", "altered") {
		t.Fatalf("a changed receipt: %+v", rep.Failures)
	}
	// A changed stored original: the export is refused before it is made.
	restore := flipByte(t, f.root, seg.Key, int64(len(orig)/2))
	defer restore()
	if resp, body := getMedia(t, srv.URL+"/api/v1/cases/C-1/export", "tok-aud", ""); resp.StatusCode == 200 {
		if rep := export.Verify(bytes.NewReader(body), int64(len(body)), trusted); rep.OK {
			t.Fatal("an export of a changed original verifies")
		}
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func hasFailure(rep export.Report, path, what string) bool {
	for _, f := range rep.Failures {
		if f.Path == path && strings.Contains(f.What, what) {
			return true
		}
	}
	return false
}

// rewriteEntry copies a zip, changing one entry's bytes (and nothing
// else: SHA256SUMS still lists the old hash).
func rewriteEntry(t *testing.T, zipBytes []byte, name string, change func([]byte)) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		if zf.Name == name {
			change(b)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: zf.Name, Method: zf.Method, Modified: zf.Modified})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	zw.Close()
	return out.Bytes()
}
