package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// The review proxy and a clip of a recording published over RTSP (testsrc,
// 1 s segments): the proxy, made for every closed recording, plays from
// /media?rendition=proxy as 640×360 H.264 + AAC with every frame of the original; a
// clip asked for [1 s, 3 s) of media time holds 60 frames, its first and
// last are the original's frames at those times (ffmpeg's decoding of
// /media, by PSNR), asking again is the same job, bad windows are refused;
// a redacted copy (a solid box, a muted second) is black in the box, the
// original elsewhere, and silent in the muted second; the requests, the
// making and the viewings are custody events; a court export carries the
// redacted copy and the clip, and bodycam verify checks their provenance.
func TestProxyAndClip(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, append([]string{"--segment-duration", "1s"}, auditorsExempt...)...)
	token := s.token()
	pw := s.register(token, "cam-r")
	aud := s.roleToken(token, "aud-r", "auditor")
	sup := s.roleToken(token, "sup-r", "supervisor")
	if err := s.publishFFmpeg("cam-r", pw, 5, "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac").Wait(); err != nil {
		t.Fatal(err)
	}
	rec := s.waitStored(aud, "cam-r")
	dir := t.TempDir()
	get := func(path, name string) string {
		t.Helper()
		code, body := s.call("GET", path, aud, "")
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		file := filepath.Join(dir, name)
		os.WriteFile(file, []byte(body), 0o600)
		return file
	}
	original := get("/api/v1/recordings/"+rec.ID+"/media", "original.mp4")

	if code, body := s.call("GET", "/api/v1/recordings/"+rec.ID+"/media?rendition=proxy", aud, ""); code != 404 && code != 200 {
		t.Fatalf("proxy before its job: %d %s", code, body)
	}
	s.jobDone(token, rec.ID, "proxy")
	proxy := get("/api/v1/recordings/"+rec.ID+"/media?rendition=proxy", "proxy.mp4")
	if got := ffprobeOf(t, proxy, "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height"); got != "h264,640,360" {
		t.Fatalf("proxy video: %q", got)
	}
	if got := ffprobeOf(t, proxy, "-select_streams", "a:0", "-show_entries", "stream=codec_name"); got != "aac" {
		t.Fatalf("proxy audio: %q", got)
	}
	// Every frame of the original is in the proxy.
	pf := ffprobeOf(t, proxy, "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets")
	of := ffprobeOf(t, original, "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets")
	if pf != of {
		t.Fatalf("proxy: %s video frames, the original %s", pf, of)
	}

	// A clip, in the time /media's player shows.
	code, body := s.call("POST", "/api/v1/recordings/"+rec.ID+"/clips", sup, `{"from_seconds":1,"to_seconds":3}`)
	var clip struct {
		JobID string `json:"job_id"`
		State string `json:"state"`
		Clip  *struct {
			URL    string `json:"url"`
			SHA256 string `json:"sha256"`
		} `json:"made"`
	}
	if code != 202 || json.Unmarshal([]byte(body), &clip) != nil || clip.JobID == "" {
		t.Fatalf("clip: %d %s", code, body)
	}
	if code, body := s.call("POST", "/api/v1/recordings/"+rec.ID+"/clips", sup, `{"from_seconds":1,"to_seconds":3}`); code != 200 || !strings.Contains(body, clip.JobID) {
		t.Fatalf("the same clip again: %d %s", code, body)
	}
	for _, bad := range []string{`{"from_seconds":3,"to_seconds":1}`, `{"from_seconds":-1,"to_seconds":1}`, `{"from_seconds":0,"to_seconds":1,"width":7}`, `{"from":1}`} {
		if code, body := s.call("POST", "/api/v1/recordings/"+rec.ID+"/clips", sup, bad); code != 400 {
			t.Fatalf("clip %s: %d %s", bad, code, body)
		}
	}
	if code, _ := s.call("POST", "/api/v1/recordings/"+rec.ID+"/clips", aud, `{"from_seconds":1,"to_seconds":3}`); code != 403 {
		t.Fatalf("an auditor asked for a clip: %d", code)
	}
	s.jobDone(token, rec.ID, "clip")
	code, body = s.call("GET", "/api/v1/recordings/"+rec.ID+"/clips", aud, "")
	var list struct {
		Items []struct {
			JobID string `json:"job_id"`
			State string `json:"state"`
			Clip  *struct {
				URL string `json:"url"`
			} `json:"made"`
		} `json:"items"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Items) != 1 || list.Items[0].Clip == nil {
		t.Fatalf("clips: %d %s", code, body)
	}
	clipFile := get(list.Items[0].Clip.URL, "clip.mp4")
	if n := ffprobeOf(t, clipFile, "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets"); n != "60" {
		t.Fatalf("clip of 2 s: %s video frames, want 60", n)
	}
	// Times in the original: /media's own clock less its start, as ffmpeg
	// seeks.
	origin := time.Duration(probeSeconds(t, original, "format=start_time") * float64(time.Second))
	for _, c := range []struct {
		name  string
		frame string // ffmpeg's select of the clip's frame
		at    time.Duration
		other time.Duration // a time whose frame differs
	}{{"first", "eq(n\\,0)", time.Second, 1500 * time.Millisecond}, {"last", "eq(n\\,59)", 3*time.Second - time.Second/30, 2500 * time.Millisecond}} {
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", clipFile, "-vf", "select="+c.frame+",scale=320:180",
			"-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "-q:v", "2", "-").Output()
		if err != nil {
			t.Fatalf("the clip's %s frame: %v", c.name, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		same, when := bestPSNR(t, original, img, c.at-origin)
		other, _ := bestPSNR(t, original, img, c.other-origin)
		t.Logf("clip's %s frame: PSNR %.1f dB at %v of the original (asked %v), %.1f half a second off", c.name, same, when, c.at-origin, other)
		if d := when - (c.at - origin); same < 25 || other > same-3 || d < -time.Second/30 || d > time.Second/30 {
			t.Fatalf("clip's %s frame: best PSNR %.1f dB at %v, asked %v (%.1f half a second off)", c.name, same, when, c.at-origin, other)
		}
	}
	if code, _ := s.call("GET", "/api/v1/recordings/"+rec.ID+"/clips/nope", aud, ""); code != 404 {
		t.Fatalf("a clip no job made: %d", code)
	}

	// A redacted copy: the top-left quarter black from 1 s to the end, the
	// sound muted from 1 s to 2 s, the mark at the bottom left.
	const redaction = `{"boxes":[{"from_seconds":1,"style":"solid","keys":[{"at_seconds":1,"x":0,"y":0,"w":0.5,"h":0.5}]}],` +
		`"mutes":[{"from_seconds":1,"to_seconds":2}]}`
	if code, body := s.call("POST", "/api/v1/recordings/"+rec.ID+"/redactions", sup, redaction); code != 202 {
		t.Fatalf("redaction: %d %s", code, body)
	}
	for _, bad := range []string{`{}`, `{"boxes":[{"style":"blur","keys":[{"x":0,"y":0,"w":1,"h":1}]}]}`,
		`{"boxes":[{"style":"solid","keys":[{"x":0.8,"y":0,"w":0.5,"h":1}]}]}`, `{"mutes":[{"from_seconds":2,"to_seconds":1}]}`} {
		if code, body := s.call("POST", "/api/v1/recordings/"+rec.ID+"/redactions", sup, bad); code != 400 {
			t.Fatalf("redaction %s: %d %s", bad, code, body)
		}
	}
	s.jobDone(token, rec.ID, "redaction")
	code, body = s.call("GET", "/api/v1/recordings/"+rec.ID+"/redactions", aud, "")
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Items) != 1 || list.Items[0].Clip == nil {
		t.Fatalf("redactions: %d %s", code, body)
	}
	redacted := get(list.Items[0].Clip.URL, "redacted.mp4")
	frame := func(file string, at time.Duration) []byte {
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", file, "-ss", fmt.Sprintf("%.3f", at.Seconds()),
			"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-").Output()
		if err != nil || len(out) != 640*360 {
			t.Fatalf("a frame of %s at %v: %v (%d bytes)", file, at, err, len(out))
		}
		return out
	}
	at := 2*time.Second - origin
	red, orig := frame(redacted, at), frame(original, at)
	var dark, same, n, m float64
	for y := 0; y < 360; y++ {
		for x := 0; x < 640; x++ {
			switch {
			case x < 310 && y < 170: // inside the box
				dark += float64(red[y*640+x])
				n++
			case x > 330 && y < 300: // away from the box and the mark
				d := float64(red[y*640+x]) - float64(orig[y*640+x])
				same += d * d
				m++
			}
		}
	}
	if dark/n > 30 || 10*math.Log10(255*255/(same/m+1e-9)) < 28 {
		t.Fatalf("redacted frame at 2 s: mean %.0f inside the box (want black), PSNR %.1f dB outside it (want >= 28)", dark/n, 10*math.Log10(255*255/(same/m+1e-9)))
	}
	pcm, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", redacted, "-vn", "-f", "f32le", "-ac", "1", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	// The decoded sound starts at the audio stream's first time.
	audioStart := time.Duration(probeSeconds(t, redacted, "stream=start_time", "-select_streams", "a:0") * float64(time.Second))
	rms := func(from, to time.Duration) float64 {
		a, b := int((from-audioStart).Seconds()*48000), int((to-audioStart).Seconds()*48000)
		var sum float64
		for i := a; i < b && (i+1)*4 <= len(pcm); i++ {
			v := float64(math.Float32frombits(uint32(pcm[i*4]) | uint32(pcm[i*4+1])<<8 | uint32(pcm[i*4+2])<<16 | uint32(pcm[i*4+3])<<24))
			sum += v * v
		}
		return math.Sqrt(sum / float64(b-a))
	}
	if in, after := rms(1100*time.Millisecond, 1900*time.Millisecond), rms(2200*time.Millisecond, 3500*time.Millisecond); in > 1e-3 || after < 0.03 {
		t.Fatalf("redacted sound (from %v): RMS %.4f in the muted second, %.4f after it", audioStart, in, after)
	}

	// A court export with the redacted copy and the clip: bodycam verify
	// checks each copy's provenance offline.
	s.roleToken(token, "off-r", "officer")
	if code, body := s.call("POST", "/api/v1/cases", sup, `{"id":"C-R","title":"Release","officer":"off-r"}`); code != 201 {
		t.Fatalf("file case: %d %s", code, body)
	}
	if code, body := s.call("POST", "/api/v1/cases/C-R/evidence", sup, `{"recording_id":"`+rec.ID+`"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}
	if code, body := s.call("GET", "/api/v1/cases/C-R/export?copies=nope-job", aud, ""); code != 400 {
		t.Fatalf("export with a job that made no copy: %d %s", code, body)
	}
	code, zipBody := s.call("GET", "/api/v1/cases/C-R/export?copies=redaction,"+clip.JobID, aud, "")
	if code != 200 {
		t.Fatalf("export: %d %.300s", code, zipBody)
	}
	zipPath := filepath.Join(dir, "case.zip")
	os.WriteFile(zipPath, []byte(zipBody), 0o600)
	vcode, out := runBinary(t, "verify", zipPath, "--json")
	var rep struct {
		OK      bool `json:"ok"`
		Checked struct {
			Copies int `json:"copies"`
		} `json:"checked"`
	}
	if err := json.Unmarshal([]byte(out), &rep); vcode != 0 || err != nil || !rep.OK || rep.Checked.Copies != 2 {
		t.Fatalf("bodycam verify of the export with 2 copies: exit %d, %v\n%s", vcode, err, out)
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
		case e.Action == evidence.ActionDeriveRequest && e.Actor == "sup-r" && strings.HasPrefix(e.Detail, "clip "):
			count["asked"]++
		case e.Action == evidence.ActionDeriveRequest && e.Actor == "sup-r" && strings.HasPrefix(e.Detail, "redacted copy "):
			count["asked redaction"]++
		case e.Action == evidence.ActionDerived && e.Actor == "sup-r" && strings.HasPrefix(e.Detail, "redaction "):
			count["made redaction"]++
		case e.Action == evidence.ActionDerived && e.Actor == "sup-r" && strings.HasPrefix(e.Detail, "clip "):
			count["made clip"]++
		case e.Action == evidence.ActionDerived && e.Actor == "aud-r" && strings.HasPrefix(e.Detail, "proxy "): // made when aud-r first asked for it
			count["made proxy"]++
		case e.Action == evidence.ActionPlayback && e.Actor == "aud-r" && strings.HasPrefix(e.Detail, "clip "):
			count["viewed clip"]++
		case e.Action == evidence.ActionPlayback && e.Actor == "aud-r" && strings.HasPrefix(e.Detail, "review proxy "):
			count["viewed proxy"]++
		}
	}
	// Asked twice: the second is the same clip, but the ask is on record.
	if count["asked"] != 2 || count["asked redaction"] != 1 || count["made redaction"] != 1 || count["made clip"] != 1 || count["made proxy"] != 1 || count["viewed clip"] != 1 || count["viewed proxy"] != 1 {
		t.Fatalf("custody: %v", count)
	}
}

// ffprobeOf is what ffprobe says of a file, as csv without keys.
func ffprobeOf(t *testing.T, file string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", append(append([]string{"-v", "error"}, args...), "-of", "csv=p=0", file)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", file, err, out)
	}
	return strings.TrimSpace(string(out))
}

// probeSeconds is a number of seconds ffprobe gives of a file.
func probeSeconds(t *testing.T, file, entry string, more ...string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(ffprobeOf(t, file, append(more, "-show_entries", entry)...), 64)
	if err != nil {
		t.Fatalf("ffprobe %s %s: %v", file, entry, err)
	}
	return v
}
