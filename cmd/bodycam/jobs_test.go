package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// jobOf is a job as the API lists it.
type jobOf struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	State       string `json:"state"`
	Attempts    int    `json:"attempts"`
	LeaseOwner  string `json:"lease_owner"`
	Error       string `json:"error"`
	RequestedBy string `json:"requested_by"`
}

// posterJob is the recording's poster job, once there is one.
func (s *server) posterJob(token, recording string) (jobOf, bool) {
	s.t.Helper()
	code, body := s.call("GET", "/api/v1/jobs?kind=poster&recording="+recording, token, "")
	var list struct {
		Items []jobOf `json:"items"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		s.t.Fatalf("jobs: %d %s", code, body)
	}
	if len(list.Items) == 0 {
		return jobOf{}, false
	}
	return list.Items[0], true
}

// filesUnder lists the files below dir, relative to it.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// The kill -9 mid-job: a recording is closed, its poster job
// stores the poster and is killed with the server (kill -9) before it
// finishes; after a restart the job runs again (the node ends its own old
// lease at start) and finishes, and exactly one poster (with one signed
// provenance record) exists in the store: the second attempt found the
// first one's object. The poster is a JPEG of the recording's size, its
// provenance names the recording's objects with their catalog hashes and
// verifies with the server's key, and its making and viewing are custody
// events.
func TestKill9MidJob(t *testing.T) {
	dataDir := t.TempDir()
	t.Setenv("BODYCAM_TEST_DERIVE_PAUSE", "10m")
	s := start(t, dataDir, "--segment-duration", "1s")
	token := s.token()
	pw := s.register(token, "cam-j")
	aud := s.roleToken(token, "aud-j", "auditor")
	if err := s.publishFFmpeg("cam-j", pw, 3, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac").Wait(); err != nil {
		t.Fatal(err)
	}
	rec := s.waitStored(aud, "cam-j")
	waitUntil(t, 30*time.Second, "the poster job paused mid-job", func() bool {
		j, ok := s.posterJob(token, rec.ID)
		return ok && j.State == "running" && strings.Contains(s.log.String(), "pausing mid-job")
	})
	derived := filepath.Join(dataDir, "objects", "derived")
	if files := filesUnder(t, derived); len(files) != 1 || !strings.Contains(files[0], "/poster-") || !strings.HasSuffix(files[0], ".jpg") {
		t.Fatalf("before the kill: %v, want the poster stored and nothing else", files)
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done

	t.Setenv("BODYCAM_TEST_DERIVE_PAUSE", "")
	s2 := start(t, dataDir, "--segment-duration", "1s")
	var job jobOf
	waitUntil(t, 60*time.Second, "the poster job done after the restart", func() bool {
		var ok bool
		job, ok = s2.posterJob(token, rec.ID)
		return ok && job.State == "done"
	})
	if job.Attempts != 2 || job.RequestedBy != "system" || !strings.Contains(s2.log.String(), "jobs this node held when it stopped run again") {
		t.Fatalf("job after the restart: %+v", job)
	}
	// The poster's files (the recording's thumbnails and sprite, jobs of
	// their own, are TestThumbnailsAndSprite's).
	var files []string
	for _, f := range filesUnder(t, derived) {
		if strings.HasPrefix(filepath.Base(f), "poster-") {
			files = append(files, f)
		}
	}
	var jpgs, provs, sigs int
	for _, f := range files {
		switch {
		case strings.HasSuffix(f, ".jpg"):
			jpgs++
		case strings.HasSuffix(f, ".provenance.json"):
			provs++
		case strings.HasSuffix(f, ".provenance.json.sig"):
			sigs++
		}
	}
	if jpgs != 1 || provs != 1 || sigs != 1 || len(files) != 3 {
		t.Fatalf("derived objects after the restart: %v; want exactly one poster, its provenance and signature", files)
	}

	// The derived list, with the provenance and its signature.
	code, body := s2.call("GET", "/api/v1/recordings/"+rec.ID+"/derived", aud, "")
	var list struct {
		Items []struct {
			Kind          string `json:"kind"`
			Key           string `json:"key"`
			SHA256        string `json:"sha256"`
			JobID         string `json:"job_id"`
			ProvenanceKey string `json:"provenance_key"`
			Signature     []byte `json:"provenance_signature"`
		} `json:"items"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("derived: %d %s", code, body)
	}
	var posters []int
	for i, it := range list.Items {
		if it.Kind == "poster" {
			posters = append(posters, i)
		}
	}
	if len(posters) != 1 || list.Items[posters[0]].JobID != job.ID {
		t.Fatalf("derived: %d %s; want one poster, of job %s", code, body, job.ID)
	}
	d := list.Items[posters[0]]
	provBytes, err := os.ReadFile(filepath.Join(dataDir, "objects", d.ProvenanceKey))
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		KeyID   string `json:"signing_key_id"`
		JobID   string `json:"job_id"`
		Sources []struct {
			Key, SHA256 string
		} `json:"sources"`
		Output struct {
			Key, SHA256 string
		} `json:"output"`
		Software map[string]string `json:"software"`
	}
	if err := json.Unmarshal(provBytes, &prov); err != nil {
		t.Fatal(err)
	}
	_, body = s2.call("GET", "/api/v1/keys", "", "")
	var keys struct {
		Items []struct {
			ID        string `json:"id"`
			PublicKey []byte `json:"public_key"`
		} `json:"items"`
	}
	json.Unmarshal([]byte(body), &keys)
	verified := false
	for _, k := range keys.Items {
		if k.ID == prov.KeyID && ed25519.Verify(k.PublicKey, provBytes, d.Signature) {
			verified = true
		}
	}
	if !verified {
		t.Fatalf("the provenance signature does not verify with key %s: %s", prov.KeyID, provBytes)
	}
	_, recBody := s2.call("GET", "/api/v1/recordings/"+rec.ID, aud, "")
	if prov.Output.Key != d.Key || prov.Output.SHA256 != d.SHA256 || len(prov.Sources) != 2 || prov.JobID != job.ID ||
		!strings.Contains(prov.Software["ffmpeg"], "libavcodec") || prov.Software["bodycam"] == "" {
		t.Fatalf("provenance: %s", provBytes)
	}
	for _, src := range prov.Sources {
		if !strings.Contains(recBody, src.Key) || !strings.Contains(recBody, src.SHA256) {
			t.Fatalf("provenance source %s %s is not the recording's object: %s", src.Key, src.SHA256, recBody)
		}
	}
	// The poster: a JPEG of the recording's picture size, not blank.
	code, body = s2.call("GET", "/api/v1/recordings/"+rec.ID+"/poster", aud, "")
	if code != 200 {
		t.Fatalf("poster: %d %s", code, body)
	}
	img, err := jpeg.Decode(bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatalf("poster is not a JPEG: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X != 640 || sz.Y != 360 {
		t.Fatalf("poster %v, want 640x360", sz)
	}
	colours := map[uint32]bool{}
	for y := 0; y < 360; y += 20 {
		for x := 0; x < 640; x += 20 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[(r>>13)<<6|(g>>13)<<3|b>>13] = true
		}
	}
	if len(colours) < 6 {
		t.Fatalf("the poster has %d colours: not the test pattern", len(colours))
	}
	code, body = s2.call("POST", "/api/v1/custody/verify", aud, "")
	if code != 200 || !strings.Contains(body, `"ok": true`) {
		t.Fatalf("custody verify: %d %s", code, body)
	}
	s2.stop()
	cat, err := catalog.Open(context.Background(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	events, err := cat.CustodyEvents(context.Background(), catalog.CustodyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	made, viewed := 0, 0
	for _, e := range events {
		if e.TargetID != rec.ID {
			continue
		}
		if e.Action == evidence.ActionDerived && e.Actor == "jobs" && strings.Contains(e.Detail, d.Key) && strings.Contains(e.Detail, d.SHA256) {
			made++
		}
		if e.Action == evidence.ActionPlayback && e.Actor == "aud-j" && strings.Contains(e.Detail, "poster "+d.Key) {
			viewed++
		}
	}
	if made != 1 || viewed != 1 {
		t.Fatalf("custody: %d derived events, %d poster viewings; want 1 and 1", made, viewed)
	}
}

// jobDone waits until the recording's job of kind is done.
func (s *server) jobDone(token, recording, kind string) jobOf {
	s.t.Helper()
	var j jobOf
	waitUntil(s.t, 60*time.Second, "the "+kind+" job done", func() bool {
		code, body := s.call("GET", "/api/v1/jobs?kind="+kind+"&recording="+recording, token, "")
		var list struct {
			Items []jobOf `json:"items"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
			s.t.Fatalf("jobs: %d %s", code, body)
		}
		if len(list.Items) == 1 && list.Items[0].State == "failed" {
			s.t.Fatalf("%s job failed: %+v", kind, list.Items[0])
		}
		if len(list.Items) == 1 {
			j = list.Items[0]
		}
		return j.State == "done"
	})
	return j
}

// bestPSNR is the best PSNR of img against ffmpeg's frames of file within
// a few frames of at, and that frame's time.
func bestPSNR(t *testing.T, file string, img image.Image, at time.Duration) (float64, time.Duration) {
	t.Helper()
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	best, when := -1.0, time.Duration(0)
	for d := -3; d <= 3; d++ {
		ts := at + time.Duration(d)*time.Second/30
		if ts < 0 {
			continue
		}
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", file, "-ss", fmt.Sprintf("%.3f", ts.Seconds()),
			"-frames:v", "1", "-vf", fmt.Sprintf("scale=%d:%d:flags=bicubic:out_range=full", w, h), "-f", "rawvideo", "-pix_fmt", "rgb24", "-").Output()
		if err != nil || len(out) != w*h*3 {
			continue // past the end
		}
		var se float64
		i := 0
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, b, _ := img.At(img.Bounds().Min.X+x, img.Bounds().Min.Y+y).RGBA()
				for _, v := range []uint32{r >> 8, g >> 8, b >> 8} {
					e := float64(v) - float64(out[i])
					se += e * e
					i++
				}
			}
		}
		p := 100.0
		if se > 0 {
			p = 10 * math.Log10(255*255/(se/float64(i)))
		}
		if p > best {
			best, when = p, ts
		}
	}
	return best, when
}

// Thumbnails and the timeline sprite of a recording published over RTSP
// (testsrc, 1 s segments): the jobs the closed recording caused are done;
// GET /thumbnails lists one per segment in time order, each a 160x90 JPEG
// that is the recording's frame at its time (ffmpeg's decoding of /media
// there, by PSNR, against a second later); GET /sprite and /sprite/index
// (JSON and WebVTT) give the grid and its tile, which is the frame at its
// index time; the thumbnails' provenance verifies with the server's key;
// making each is one custody event, and the viewings are one per set.
func TestThumbnailsAndSprite(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, "--segment-duration", "1s")
	token := s.token()
	pw := s.register(token, "cam-t")
	aud := s.roleToken(token, "aud-t", "auditor")
	if err := s.publishFFmpeg("cam-t", pw, 5, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac").Wait(); err != nil {
		t.Fatal(err)
	}
	rec := s.waitStored(aud, "cam-t")
	s.jobDone(token, rec.ID, "thumbnails")
	s.jobDone(token, rec.ID, "sprite")

	code, media := s.call("GET", "/api/v1/recordings/"+rec.ID+"/media", aud, "")
	if code != 200 {
		t.Fatalf("media: %d", code)
	}
	file := filepath.Join(t.TempDir(), "rec.mp4")
	os.WriteFile(file, []byte(media), 0o600)

	code, body := s.call("GET", "/api/v1/recordings/"+rec.ID+"/thumbnails", aud, "")
	var thumbs struct {
		ProvenanceKey string `json:"provenance_key"`
		Items         []struct {
			AtSeconds     float64 `json:"at_seconds"`
			URL           string  `json:"url"`
			Width, Height int
			SHA256        string `json:"sha256"`
		} `json:"items"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &thumbs) != nil || len(thumbs.Items) < 4 || thumbs.Items[0].AtSeconds > 2 {
		t.Fatalf("thumbnails: %d %s", code, body)
	}
	for i, th := range thumbs.Items {
		if i > 0 && th.AtSeconds <= thumbs.Items[i-1].AtSeconds {
			t.Fatalf("thumbnails out of order: %s", body)
		}
		code, pic := s.call("GET", th.URL, aud, "")
		if code != 200 {
			t.Fatalf("%s: %d", th.URL, code)
		}
		if sum := sha256.Sum256([]byte(pic)); hex.EncodeToString(sum[:]) != th.SHA256 {
			t.Fatalf("%s: not the listed bytes", th.URL)
		}
		img, err := jpeg.Decode(bytes.NewReader([]byte(pic)))
		if err != nil || img.Bounds().Dx() != 160 || img.Bounds().Dy() != 90 || th.Width != 160 || th.Height != 90 {
			t.Fatalf("%s: %v %v", th.URL, err, img.Bounds())
		}
		// Times are from the recording's start (as bookmarks' offsets);
		// /media's from its first frame, the first segment's, which the
		// first thumbnail shows.
		at := time.Duration((th.AtSeconds - thumbs.Items[0].AtSeconds) * float64(time.Second))
		same, when := bestPSNR(t, file, img, at)
		other, _ := bestPSNR(t, file, img, at+time.Second)
		if i == len(thumbs.Items)-1 {
			other, _ = bestPSNR(t, file, img, at-time.Second)
		}
		t.Logf("thumbnail %d at %.3fs: PSNR %.1f dB (ffmpeg's frame at %v), %.1f a second off", i, th.AtSeconds, same, when, other)
		if same < 22 || other > same-3 {
			t.Fatalf("thumbnail %d (%.3fs): PSNR %.1f dB against the recording's frame there, %.1f a second off", i, th.AtSeconds, same, other)
		}
	}
	if code, _ := s.call("GET", "/api/v1/recordings/"+rec.ID+"/thumbnails/99", aud, ""); code != 404 {
		t.Fatalf("thumbnail 99: %d", code)
	}

	code, body = s.call("GET", "/api/v1/recordings/"+rec.ID+"/sprite/index", aud, "")
	var index struct {
		Sprite       string `json:"sprite"`
		SpriteSHA256 string `json:"sprite_sha256"`
		TileWidth    int    `json:"tile_width"`
		TileHeight   int    `json:"tile_height"`
		Tiles        []struct {
			X, Y           int
			AtSeconds      float64 `json:"at_seconds"`
			FrameAtSeconds float64 `json:"frame_at_seconds"`
		} `json:"tiles"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &index) != nil || len(index.Tiles) != 1 || index.TileWidth != 160 || index.TileHeight != 90 {
		t.Fatalf("sprite index: %d %s", code, body)
	}
	code, vtt := s.call("GET", "/api/v1/recordings/"+rec.ID+"/sprite/index?format=vtt", aud, "")
	if code != 200 || !strings.HasPrefix(vtt, "WEBVTT\n") || !strings.Contains(vtt, "00:00:00.000 --> 00:00:10.000\nsprite#xywh=0,0,160,90") {
		t.Fatalf("sprite vtt: %d %q", code, vtt)
	}
	code, spriteBody := s.call("GET", "/api/v1/recordings/"+rec.ID+"/sprite", aud, "")
	if sum := sha256.Sum256([]byte(spriteBody)); code != 200 || hex.EncodeToString(sum[:]) != index.SpriteSHA256 {
		t.Fatalf("sprite: %d, not the bytes its index names", code)
	}
	sprite, err := jpeg.Decode(bytes.NewReader([]byte(spriteBody)))
	if err != nil || sprite.Bounds().Dx() != 160 || sprite.Bounds().Dy() != 90 {
		t.Fatalf("sprite: %v", err)
	}
	tile := index.Tiles[0]
	if tile.AtSeconds != 0 || tile.FrameAtSeconds != thumbs.Items[0].AtSeconds { // the first frame at or after 0: the first segment's
		t.Fatalf("tile: %+v", tile)
	}
	if same, _ := bestPSNR(t, file, sprite, time.Duration((tile.FrameAtSeconds-thumbs.Items[0].AtSeconds)*float64(time.Second))); same < 22 {
		t.Fatalf("the sprite's tile: PSNR %.1f dB against the recording's frame at its time", same)
	}

	// The thumbnails' provenance verifies with the server's key.
	provBytes, err := os.ReadFile(filepath.Join(dataDir, "objects", thumbs.ProvenanceKey))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := os.ReadFile(filepath.Join(dataDir, "objects", thumbs.ProvenanceKey+".sig"))
	_, body = s.call("GET", "/api/v1/keys", "", "")
	var keys struct {
		Items []struct {
			PublicKey []byte `json:"public_key"`
		} `json:"items"`
	}
	json.Unmarshal([]byte(body), &keys)
	verified := false
	for _, k := range keys.Items {
		verified = verified || ed25519.Verify(k.PublicKey, provBytes, sig)
	}
	var prov struct {
		Outputs []struct {
			Key, SHA256 string
		} `json:"outputs"`
	}
	if json.Unmarshal(provBytes, &prov) != nil || !verified || len(prov.Outputs) != len(thumbs.Items) || prov.Outputs[0].SHA256 != thumbs.Items[0].SHA256 {
		t.Fatalf("thumbnails provenance (verified %v): %s", verified, provBytes)
	}

	s.stop()
	cat, err := catalog.Open(context.Background(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	events, err := cat.CustodyEvents(context.Background(), catalog.CustodyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range events {
		if e.TargetID != rec.ID {
			continue
		}
		switch {
		case e.Action == evidence.ActionDerived && strings.Contains(e.Detail, "thumbnails"):
			count["made thumbnails"]++
		case e.Action == evidence.ActionDerived && strings.Contains(e.Detail, index.Sprite):
			count["made sprite"]++
		case e.Action == evidence.ActionPlayback && e.Actor == "aud-t" && strings.HasPrefix(e.Detail, "thumbnails "):
			count["viewed thumbnails"]++
		case e.Action == evidence.ActionPlayback && e.Actor == "aud-t" && strings.HasPrefix(e.Detail, "sprite "):
			count["viewed sprite"]++
		}
	}
	for _, k := range []string{"made thumbnails", "made sprite", "viewed thumbnails", "viewed sprite"} {
		if count[k] != 1 {
			t.Fatalf("custody: %v; want one of each", count)
		}
	}
}
