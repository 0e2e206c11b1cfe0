package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/whep"
)

// register adds a device and returns its RTSP password.
func (s *server) register(token, id string) string {
	s.t.Helper()
	code, body := s.call("POST", "/api/v1/devices", token, `{"id":"`+id+`"}`)
	if code != 201 {
		s.t.Fatalf("register %s: %d %s", id, code, body)
	}
	var dev struct {
		Password string `json:"rtsp_password"`
	}
	json.Unmarshal([]byte(body), &dev)
	return dev.Password
}

// publishFFmpeg starts the real ffmpeg publishing a test pattern for the
// given time with the given encoder arguments, and waits until it is live.
func (s *server) publishFFmpeg(id, password string, seconds int, codecArgs ...string) *exec.Cmd {
	s.t.Helper()
	cmd := s.startFFmpeg(id, password, seconds, codecArgs...)
	s.waitLive(id)
	return cmd
}

// startFFmpeg is publishFFmpeg without the wait (which asks the API).
func (s *server) startFFmpeg(id, password string, seconds int, codecArgs ...string) *exec.Cmd {
	s.t.Helper()
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", fmt.Sprint(seconds), "-pix_fmt", "yuv420p"}
	args = append(args, codecArgs...)
	args = append(args, "-f", "rtsp", "-rtsp_transport", "tcp", fmt.Sprintf("rtsp://%s:%s@%s/%s", id, password, s.arg("--rtsp-addr"), id))
	cmd := exec.Command("ffmpeg", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// waitLive waits until the device is listed as live.
func (s *server) waitLive(id string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, body := s.call("GET", "/api/v1/live", s.token(), ""); strings.Contains(body, `"device_id": "`+id+`"`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("%s never went live:\n%s", id, s.log)
}

func (s *server) whepURL(device string) string { return s.url + "/api/v1/live/" + device + "/whep" }

// waitFrames waits until v has received n frames.
func waitFrames(t *testing.T, v *whep.Viewer, n int) whep.Stats {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if st := v.Stats(); st.Frames >= n {
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("only %+v within 15s", v.Stats())
	return whep.Stats{}
}

// A pion WHEP viewer watching the real ffmpeg publisher gets decodable
// H.264 from a keyframe that carries its parameter sets, fast (the GOP is
// kept, and keyframes are 2 s apart here), plus G.711 audio passed through.
// The API refuses without a token (401), for an unknown or offline device
// (404) and past the per-user limit (429); each session is audited.
func TestLiveWHEP(t *testing.T) {
	s := start(t, t.TempDir(), "--live-max-per-user", "2")
	admin := s.token()
	pw := s.register(admin, "cam-live")
	s.register(admin, "cam-off")
	// Admins run the system and watch nothing; a supervisor watches.
	token := s.roleToken(admin, "sup-1", "supervisor")
	ff := s.publishFFmpeg("cam-live", pw, 20, "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "60",
		"-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1")
	ctx := context.Background()

	var se *whep.StatusError
	if _, err := whep.Dial(ctx, s.whepURL("cam-live"), whep.Options{}); !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("no token: %v, want 401", err)
	}
	if _, err := whep.Dial(ctx, s.whepURL("cam-live"), whep.Options{Token: admin}); !errors.As(err, &se) || se.Code != 403 {
		t.Fatalf("the admin: %v, want 403", err)
	}
	// Bad offers get a clear error and change nothing.
	for _, bad := range []struct {
		ctype, body string
		want        int
	}{
		{"text/plain", "v=0", 415},
		{"application/sdp", "not an SDP offer", 400},
		{"application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", 400}, // no media
	} {
		req, _ := http.NewRequest("POST", s.whepURL("cam-live"), strings.NewReader(bad.body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", bad.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != bad.want {
			t.Fatalf("offer %q as %s: %d, want %d", bad.body, bad.ctype, resp.StatusCode, bad.want)
		}
	}
	for _, dev := range []string{"cam-off", "nobody"} {
		if _, err := whep.Dial(ctx, s.whepURL(dev), whep.Options{Token: token}); !errors.As(err, &se) || se.Code != 404 {
			t.Fatalf("%s: %v, want 404", dev, err)
		}
	}

	time.Sleep(1500 * time.Millisecond) // join mid-GOP: the kept GOP must still start the picture at once
	annex := filepath.Join(t.TempDir(), "live.h264")
	f, _ := os.Create(annex)
	v, err := whep.Dial(ctx, s.whepURL("cam-live"), whep.Options{Token: token, Annex: f})
	if err != nil {
		t.Fatal(err)
	}
	st := waitFrames(t, v, 90)
	f.Close()
	t.Logf("viewer: %+v", st)
	if !st.FirstFrameHasParams {
		t.Fatal("the first frame lacks SPS and PPS: a browser could not decode it")
	}
	if st.FirstKeyframe > time.Second {
		t.Fatalf("first keyframe %v after the answer, want under 1 s", st.FirstKeyframe)
	}
	if video, audio := v.Codecs(); !strings.EqualFold(video, "video/H264") || !strings.EqualFold(audio, "audio/PCMU") {
		t.Fatalf("codecs %s %s, want H264 and PCMU", video, audio)
	}
	if st.AudioPackets == 0 {
		t.Fatal("no audio arrived")
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-f", "h264", "-i", annex, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("received video does not decode cleanly: %v %s", err, out)
	}
	probe, _ := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
		"-of", "csv=p=0", annex).Output()
	if got := strings.TrimSpace(string(probe)); got != "640,360" {
		t.Fatalf("received size %q, want 640,360", got)
	}

	// The per-user limit: the second session is allowed, the third is not.
	v2, err := whep.Dial(ctx, s.whepURL("cam-live"), whep.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := whep.Dial(ctx, s.whepURL("cam-live"), whep.Options{Token: token}); !errors.As(err, &se) || se.Code != 429 {
		t.Fatalf("third session: %v, want 429", err)
	}
	if err := v2.Close(); err != nil {
		t.Fatalf("hang-up: %v", err)
	}
	if code, _ := s.call("DELETE", v2.Location().Path, token, ""); code != 404 {
		t.Fatalf("hanging up twice: %d, want 404", code)
	}

	// The publisher stops: the remaining session ends with it.
	ff.Process.Kill()
	ff.Wait()
	deadline := time.Now().Add(20 * time.Second)
	var views struct {
		Items []struct {
			ID, User, Video, Audio, EndReason string
			EndedAt                           *time.Time `json:"ended_at"`
		} `json:"items"`
	}
	for {
		_, body := s.call("GET", "/api/v1/live/views?device=cam-live", token, "")
		views.Items = nil
		json.Unmarshal([]byte(strings.ReplaceAll(body, "end_reason", "EndReason")), &views)
		ended := 0
		for _, it := range views.Items {
			if it.EndedAt != nil {
				ended++
			}
		}
		if len(views.Items) == 2 && ended == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit of viewing sessions: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	reasons := views.Items[0].EndReason + "|" + views.Items[1].EndReason
	if !strings.Contains(reasons, "viewer hung up") || !strings.Contains(reasons, "publisher stopped") {
		t.Fatalf("end reasons %q", reasons)
	}
	for _, it := range views.Items {
		if it.User != "sup-1" || it.Video != "H264" || it.Audio != "PCMU" {
			t.Fatalf("audit entry %+v", it)
		}
	}
	v.Close()
	s.stop()
	// The custody ledger has each session's start and end, with who watched
	// in what capacity.
	cat, err := catalog.Open(context.Background(), "", s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	recs, err := cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: "cam-live"})
	if err != nil || len(recs) == 0 {
		t.Fatalf("recordings: %v %v", recs, err)
	}
	events, err := cat.CustodyEvents(context.Background(), catalog.CustodyFilter{TargetIDs: []string{recs[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	var started, ended int
	for _, e := range events {
		if e.Action != evidence.ActionLiveView {
			continue
		}
		if e.Actor != "sup-1" || e.Role != string(evidence.RoleSupervisor) {
			t.Fatalf("live view event without its viewer's role: %+v", e)
		}
		switch {
		case strings.Contains(e.Detail, "started"):
			started++
		case strings.Contains(e.Detail, "ended"):
			ended++
		}
	}
	if started != 2 || ended != 2 {
		t.Fatalf("custody has %d live view starts and %d ends, want 2 and 2: %+v", started, ended, events)
	}
}

// What browsers cannot play as sent is converted for live viewing only:
// H.264 with B-frames to H.264 without, AAC to Opus; H.265 passes through
// to a viewer that takes it and is converted for one that does not. The
// recording itself is untouched (its own tests check the originals).
func TestLiveTranscoded(t *testing.T) {
	s := start(t, t.TempDir())
	admin := s.token()
	token := s.roleToken(admin, "sup-1", "supervisor")
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		codecArgs []string
		h265      bool   // the viewer offers H.265
		video     string // negotiated
		desc      string // what the server says it sends
	}{
		{"h264-bframes", []string{"-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "30", "-c:a", "aac"}, false, "video/H264", "H264 (transcoded: B-frames removed)"},
		{"h265", []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=30", "-c:a", "aac"}, false, "video/H264", "H264 (transcoded: from H265)"},
		{"h265-viewer", []string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=30", "-c:a", "aac"}, true, "video/H265", "H265"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "cam-" + tc.name
			pw := s.register(admin, id)
			ff := s.publishFFmpeg(id, pw, 15, tc.codecArgs...)
			time.Sleep(2 * time.Second) // B-frames seen, GOP kept
			annex := filepath.Join(t.TempDir(), "live.h264")
			f, _ := os.Create(annex)
			v, err := whep.Dial(ctx, s.whepURL(id), whep.Options{Token: token, H265: tc.h265, Annex: f})
			if err != nil {
				t.Fatal(err)
			}
			st := waitFrames(t, v, 60)
			f.Close()
			t.Logf("viewer: %+v", st)
			video, audio := v.Codecs()
			if !strings.EqualFold(video, tc.video) || !strings.EqualFold(audio, "audio/opus") {
				t.Fatalf("codecs %s %s, want %s and Opus", video, audio, tc.video)
			}
			if st.AudioPackets == 0 {
				t.Fatal("no audio arrived")
			}
			v.Close()
			if tc.video == "video/H264" {
				if !st.FirstFrameHasParams {
					t.Fatal("the first frame lacks SPS and PPS")
				}
				out, err := exec.Command("ffmpeg", "-v", "error", "-f", "h264", "-i", annex, "-f", "null", "-").CombinedOutput()
				if err != nil || len(bytes.TrimSpace(out)) > 0 {
					t.Fatalf("received video does not decode cleanly: %v %s", err, out)
				}
				// No B-frames reach the browser.
				out, _ = exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pict_type",
					"-of", "csv=p=0", annex).Output()
				if strings.Contains(string(out), "B") || !strings.Contains(string(out), "I") {
					t.Fatalf("picture types of the received video: %q", strings.Join(strings.Fields(string(out)), ""))
				}
			}
			_, body := s.call("GET", "/api/v1/live/views?device="+id, token, "")
			if !strings.Contains(body, `"video": "`+tc.desc+`"`) || !strings.Contains(body, `"audio": "Opus (transcoded from AAC)"`) {
				t.Fatalf("audit entry does not say what was sent (%s): %s", tc.desc, body)
			}
			ff.Process.Kill()
			ff.Wait()
		})
	}
	s.stop()
}

// ICE over TCP carries a viewer whose UDP is blocked; configured public IPs
// replace the host's own in the candidates (1:1 NAT).
func TestLiveNetworkOptions(t *testing.T) {
	ctx := context.Background()
	s := start(t, t.TempDir(), "--webrtc-udp-addr", "")
	token := s.roleToken(s.token(), "sup-1", "supervisor")
	pw := s.register(s.token(), "cam-tcp")
	s.publishFFmpeg("cam-tcp", pw, 15, "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30", "-an")
	v, err := whep.Dial(ctx, s.whepURL("cam-tcp"), whep.Options{Token: token, TCPOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.Answer, " tcp ") || strings.Contains(strings.ToLower(v.Answer), " udp ") {
		t.Fatalf("answer of a TCP-only relay:\n%s", v.Answer)
	}
	st := waitFrames(t, v, 30)
	if !st.FirstFrameHasParams {
		t.Fatal("first frame over ICE-TCP lacks its parameter sets")
	}
	v.Close()
	s.stop()

	s2 := start(t, t.TempDir(), "--webrtc-public-ips", "203.0.113.7")
	token = s2.roleToken(s2.token(), "sup-1", "supervisor")
	pw = s2.register(s2.token(), "cam-nat")
	s2.publishFFmpeg("cam-nat", pw, 10, "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30", "-an")
	v, err = whep.Dial(ctx, s2.whepURL("cam-nat"), whep.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if !strings.Contains(v.Answer, " 203.0.113.7 ") {
		t.Fatalf("answer does not announce the public IP:\n%s", v.Answer)
	}
}

// roleToken makes a user with role (through the admin) and returns an API
// token of theirs, obtained as a user would: password sign-in, replacing the
// password the admin set, then a token made in that session.
func (s *server) roleToken(admin, id, role string) string {
	s.t.Helper()
	return s.unitToken(admin, id, role, "")
}

// unitToken is roleToken for a user of a unit.
func (s *server) unitToken(admin, id, role, unit string) string {
	s.t.Helper()
	const pw = "a long enough test password"
	if code, body := s.call("POST", "/api/v1/users", admin, `{"id":"`+id+`","role":"`+role+`","unit":"`+unit+`","password":"`+pw+`"}`); code != 201 {
		s.t.Fatalf("create %s: %d %s", id, code, body)
	}
	resp, err := http.Post(s.url+"/api/v1/session", "application/json", strings.NewReader(`{"user":"`+id+`","password":"`+pw+`"}`))
	if err != nil || resp.StatusCode != 200 {
		s.t.Fatalf("sign in as %s: %v %v", id, resp, err)
	}
	resp.Body.Close()
	// The admin set the password: the user replaces it first, and the
	// session goes on under a new cookie.
	req, _ := http.NewRequest("POST", s.url+"/api/v1/users/"+id+"/password",
		strings.NewReader(`{"current_password":"`+pw+`","password":"`+pw+` of their own"}`))
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	req.Header.Set("X-Bodycam-Console", "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		s.t.Fatalf("new password for %s: %v %v", id, resp, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("POST", s.url+"/api/v1/tokens", strings.NewReader(`{"name":"test"}`))
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	req.Header.Set("X-Bodycam-Console", "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		s.t.Fatalf("API token for %s: %v %v", id, resp, err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token string `json:"token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	return tok.Token
}

// storedRecording is a recording as the list shows it.
type storedRecording struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	CaseID       string `json:"case_id"`
	SegmentCount int    `json:"segment_count"`
	EndReason    string `json:"end_reason"`
	ManifestKey  string `json:"manifest_key"`
}

// waitStored waits until device's one recording is stored with its signed
// manifest, reading as token's user.
func (s *server) waitStored(token, device string) storedRecording {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := s.call("GET", "/api/v1/recordings?device="+device, token, "")
		var list struct {
			Items []storedRecording `json:"items"`
		}
		json.Unmarshal([]byte(body), &list)
		if len(list.Items) == 1 && list.Items[0].ManifestKey != "" {
			return list.Items[0]
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no stored recording: %s\n%s", device, body, s.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
