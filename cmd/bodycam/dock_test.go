package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	byteorder "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/dock"
	"github.com/bodycam/bodycam/export"
)

// The dock upload's "Must show" with the real binaries: `bodycam serve`
// and `bodycam dock` as processes, files made by ffmpeg, the dock's token
// issued by an admin through the API as README "Dock upload" says.

// dockEnv is a server with an officer of unit traffic, the devices given
// (the officer's), an auditor, and a dock of unit traffic whose token an
// admin issued (in a 0600 file).
type dockEnv struct {
	s                *server
	admin, officer   string
	auditor          string
	dockTok, tokFile string
}

func newDockEnv(t *testing.T, s *server, devices ...string) *dockEnv {
	t.Helper()
	e := &dockEnv{s: s, admin: s.token()}
	e.officer = s.unitToken(e.admin, "o-1", "officer", "traffic")
	e.auditor = s.roleToken(e.admin, "aud-1", "auditor")
	for _, d := range devices {
		if code, body := s.call("POST", "/api/v1/devices", e.admin, `{"id":"`+d+`","officer_id":"o-1"}`); code != 201 {
			t.Fatalf("register %s: %d %s", d, code, body)
		}
	}
	if code, body := s.call("POST", "/api/v1/users", e.admin, `{"id":"dock-1","role":"dock","unit":"traffic"}`); code != 201 {
		t.Fatalf("create the dock user: %d %s", code, body)
	}
	code, body := s.call("POST", "/api/v1/users/dock-1/tokens", e.admin, `{"name":"workstation 1"}`)
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &tok); code != 201 || err != nil || tok.Token == "" {
		t.Fatalf("issue the dock's token: %d %s", code, body)
	}
	e.dockTok = tok.Token
	e.tokFile = filepath.Join(t.TempDir(), "dock.token")
	if err := os.WriteFile(e.tokFile, []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// dockCommand is `bodycam dock --once` against server with the env's
// token, state in stateDir, extra flags, and the camera folders.
func (e *dockEnv) dockCommand(ctx context.Context, server, stateDir string, extra []string, dirs ...string) *exec.Cmd {
	args := append([]string{"dock", "--server", server, "--token-file", e.tokFile, "--state-dir", stateDir, "--once",
		"--settle", "10ms", "--timezone", "UTC", "--progress-every", "2s"}, extra...)
	cmd := exec.CommandContext(ctx, binary, append(args, dirs...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runDock runs the agent to its end (within limit) and returns its exit
// code and output.
func (e *dockEnv) runDock(t *testing.T, limit time.Duration, server, stateDir string, extra []string, dirs ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out, err := e.dockCommand(ctx, server, stateDir, extra, dirs...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("bodycam dock did not finish within %v:\n%s\nserver log:\n%s", limit, out, e.s.log)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func readDockReport(t *testing.T, stateDir, camera string) dock.Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "reports", camera+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r dock.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func reportOf(t *testing.T, r dock.Report, path string) dock.FileReport {
	t.Helper()
	for _, f := range r.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("report of %s has no %s: %+v", r.Camera, path, r.Files)
	return dock.FileReport{}
}

// ffmpegTo makes a file with ffmpeg.
func ffmpegTo(t *testing.T, path string, args ...string) []byte {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffmpeg", append(append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...), path)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", filepath.Base(path), err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		t.Fatalf("ffmpeg made no %s: %v", path, err)
	}
	return b
}

var (
	testVideo = []string{"-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:duration=2"}
	testH264  = []string{"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"}
)

// biggerMP4 is an MP4 of some hundred kB (several 64 KiB PATCHes).
var biggerMP4 = []string{"-f", "lavfi", "-i", "testsrc=duration=3:size=640x480:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
	"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-b:v", "2M", "-c:a", "aac", "-shortest", "-movflags", "+faststart", "-f", "mp4"}

func mp4Args(codec ...string) []string {
	return append(append(append([]string{}, testVideo...), codec...), "-movflags", "+faststart")
}

// recorderMP4 writes a file of size bytes at path that a recorder could
// have made: a real MP4 (a 2 s H.264+AAC clip, its movie header first)
// and then a free box over the rest of the size, left sparse, so that a
// file of gigabytes is made at once and is still an MP4 that plays.
func recorderMP4(t *testing.T, path string, size int64) {
	t.Helper()
	head := ffmpegTo(t, path+".head.mp4", mp4Args(testH264...)...)
	os.Remove(path + ".head.mp4")
	rest := size - int64(len(head))
	if rest < 16 {
		t.Fatalf("a file of %d bytes cannot hold the %d-byte clip and a free box", size, len(head))
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	box := make([]byte, 16)
	byteorder.BigEndian.PutUint32(box, 1) // the size is in the 64-bit field
	copy(box[4:], "free")
	byteorder.BigEndian.PutUint64(box[8:], uint64(rest))
	if _, err := f.Write(append(head, box...)); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// get reads a path as token's user into a file, and returns its status,
// content type and SHA-256.
func (s *server) getTo(t *testing.T, path, token, file string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), hex.EncodeToString(h.Sum(nil))
}

// uploadItem is an upload as GET /api/v1/uploads lists it.
type uploadItem struct {
	ID             string `json:"id"`
	FileName       string `json:"file_name"`
	Size           int64  `json:"size"`
	Offset         int64  `json:"offset"`
	SHA256         string `json:"sha256"`
	ReceivedSHA256 string `json:"received_sha256"`
	State          string `json:"state"`
	Reason         string `json:"reason"`
	RecordingID    string `json:"recording_id"`
}

func (e *dockEnv) uploads(t *testing.T, query string) []uploadItem {
	t.Helper()
	code, body := e.s.call("GET", "/api/v1/uploads?"+query, e.admin, "")
	var list struct {
		Items []uploadItem `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("uploads?%s: %d %s", query, code, body)
	}
	return list.Items
}

func (e *dockEnv) verifyRecording(t *testing.T, id string) {
	t.Helper()
	code, body := e.s.call("POST", "/api/v1/recordings/"+id+"/verify", e.auditor, "")
	if code != 200 || !strings.Contains(body, `"ok": true`) {
		t.Fatalf("verify %s: %d %s", id, code, body)
	}
}

func (e *dockEnv) deviceRecordings(t *testing.T, device string) []storedRecording {
	t.Helper()
	_, body := e.s.call("GET", "/api/v1/recordings?device="+device, e.auditor, "")
	var list struct {
		Items []storedRecording `json:"items"`
	}
	json.Unmarshal([]byte(body), &list)
	return list.Items
}

// decodes checks that ffmpeg decodes a media file without a complaint.
func decodes(t *testing.T, file string) {
	t.Helper()
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("%s does not decode cleanly: %v %s", filepath.Base(file), err, out)
	}
}

// Real files made by ffmpeg (MP4 H.264+AAC, MP4 H.265, MOV, WAV, JPEG) in
// a docked camera's folder, uploaded by `bodycam dock` with the token an
// admin issued: each receipt verifies (by the agent, and with openssl and
// the key from GET /api/v1/keys as README "Dock upload" says), each
// recording verifies and serves the file's exact bytes, the videos play
// through /media as fragmented MP4, the recordings are linked to a case
// whose export `bodycam verify` checks offline (the originals byte for
// byte, with their receipts, no derived copies). A file of a device the
// dock may not upload for fails; nothing is deleted without --release,
// and with it exactly the files whose receipts verified.
func TestDockEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	// The auditor downloads and exports without asking (an exempt role):
	// approval before copying is TestCopyApprovalEndToEnd's.
	s := start(t, dataDir, auditorsExempt...)
	e := newDockEnv(t, s, "CAM1")
	cam := filepath.Join(t.TempDir(), "cam1")
	t0 := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	name := func(dev string, min int, n int, ext string) string {
		return fmt.Sprintf("%s_%s_%04d.%s", dev, t0.Add(time.Duration(min)*time.Minute).Format("20060102150405"), n, ext)
	}
	type file struct {
		name  string
		data  []byte
		video bool
	}
	files := []file{
		{name("CAM1", 0, 1, "MP4"), nil, true},
		{name("CAM1", 10, 2, "MP4"), nil, true},
		{name("CAM1", 20, 3, "MOV"), nil, true},
		{name("CAM1", 30, 4, "WAV"), nil, false},
		{name("CAM1", 40, 5, "JPG"), nil, false},
	}
	files[0].data = ffmpegTo(t, filepath.Join(cam, files[0].name), append(mp4Args(testH264...), "-f", "mp4")...)
	files[1].data = ffmpegTo(t, filepath.Join(cam, files[1].name), append(mp4Args("-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "log-level=error", "-tag:v", "hvc1", "-c:a", "aac", "-shortest"), "-f", "mp4")...)
	files[2].data = ffmpegTo(t, filepath.Join(cam, files[2].name), append(append(append([]string{}, testVideo...), testH264...), "-f", "mov")...)
	files[3].data = ffmpegTo(t, filepath.Join(cam, files[3].name), "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "pcm_s16le", "-f", "wav")
	files[4].data = ffmpegTo(t, filepath.Join(cam, files[4].name), "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1", "-f", "image2")
	// A file of a device this dock may not upload for (no such device).
	foreign := name("CAM9", 0, 6, "MP4")
	if err := os.WriteFile(filepath.Join(cam, foreign), files[0].data, 0o644); err != nil {
		t.Fatal(err)
	}

	state := t.TempDir()
	started := time.Now()
	code, out := e.runDock(t, 5*time.Minute, s.url, state, nil, cam)
	t.Logf("bodycam dock (%v):\n%s", time.Since(started).Round(time.Millisecond), out)
	if code != 1 || !strings.Contains(out, foreign+": failed") || !strings.Contains(out, "403") {
		t.Fatalf("first run: exit %d, want 1 with %s failed (403)", code, foreign)
	}
	rep := readDockReport(t, state, "cam1")
	recs := map[string]dock.FileReport{}
	for _, f := range files {
		fr := reportOf(t, rep, f.name)
		if fr.State != dock.StateUploaded || !fr.Verified || fr.Released || fr.RecordingID == "" || fr.Device != "CAM1" || fr.SHA256 != hexSHA(f.data) {
			t.Fatalf("report of %s: %+v", f.name, fr)
		}
		if _, dup := recs[fr.RecordingID]; dup {
			t.Fatalf("%s is recording %s twice", f.name, fr.RecordingID)
		}
		recs[fr.RecordingID] = fr
		if _, err := os.Stat(filepath.Join(cam, f.name)); err != nil {
			t.Fatalf("without --release %s is gone: %v", f.name, err)
		}
	}

	// Each receipt, checked as README "Dock upload" says: the key the
	// receipt names from GET /api/v1/keys, then openssl.
	for _, f := range files {
		fr := reportOf(t, rep, f.name)
		check := exec.Command("bash", "-euo", "pipefail", "-c", `
KEY=$(jq -r .signing_key_id "$X")
curl -s "$SERVER/api/v1/keys" | jq -r --arg k "$KEY" '.items[] | select(.id == $k) | .public_key_pem' > key.pem
openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in "$X" -sigfile "$X.sig"`)
		check.Dir = t.TempDir()
		check.Env = append(os.Environ(), "X="+fr.Receipt, "SERVER="+s.url)
		if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
			t.Fatalf("README's receipt check of %s: %v\n%s", f.name, err, out)
		}
		var rc struct {
			RecordingID string `json:"recording_id"`
			FileName    string `json:"file_name"`
			SHA256      string `json:"sha256"`
			Size        int64  `json:"size"`
			Dock        string `json:"dock"`
		}
		b, _ := os.ReadFile(fr.Receipt)
		if err := json.Unmarshal(b, &rc); err != nil || rc.RecordingID != fr.RecordingID || rc.FileName != f.name || rc.SHA256 != hexSHA(f.data) ||
			rc.Size != int64(len(f.data)) || rc.Dock != "dock-1" {
			t.Fatalf("receipt of %s: %s (%v)", f.name, b, err)
		}
	}

	// Each recording verifies, is the file's bytes, and plays.
	work := t.TempDir()
	for i, f := range files {
		id := reportOf(t, rep, f.name).RecordingID
		e.verifyRecording(t, id)
		if code, _, sum := s.getTo(t, "/api/v1/recordings/"+id+"/original", e.auditor, filepath.Join(work, "original")); code != 200 || sum != hexSHA(f.data) {
			t.Fatalf("original of %s: %d, SHA-256 %s", f.name, code, sum)
		}
		media := filepath.Join(work, fmt.Sprintf("media-%d", i))
		code, ctype, sum := s.getTo(t, "/api/v1/recordings/"+id+"/media", e.auditor, media)
		if code != 200 {
			t.Fatalf("media of %s: %d", f.name, code)
		}
		if !f.video {
			if sum != hexSHA(f.data) {
				t.Fatalf("media of %s is not the file as stored (%s)", f.name, ctype)
			}
			continue
		}
		b, _ := os.ReadFile(media)
		if ctype != "video/mp4" || !bytes.Contains(b, []byte("moof")) || !bytes.Contains(b[:min(len(b), 4096)], []byte("mvex")) {
			t.Fatalf("media of %s is not a fragmented MP4 (%s, %d bytes)", f.name, ctype, len(b))
		}
		decodes(t, media)
	}

	// Linked to a case, exported, verified offline.
	if code, body := s.call("POST", "/api/v1/cases", e.officer, `{"id":"C-DOCK","title":"End of shift upload"}`); code != 201 {
		t.Fatalf("file the case: %d %s", code, body)
	}
	for id := range recs {
		if code, body := s.call("POST", "/api/v1/cases/C-DOCK/evidence", e.officer, `{"recording_id":"`+id+`"}`); code != 201 {
			t.Fatalf("link %s: %d %s", id, code, body)
		}
	}
	zipPath := filepath.Join(work, "case.zip")
	if code, ctype, _ := s.getTo(t, "/api/v1/cases/C-DOCK/export", e.auditor, zipPath); code != 200 || ctype != "application/zip" {
		t.Fatalf("export: %d %s", code, ctype)
	}
	code, out = runBinary(t, "verify", zipPath)
	if code != 0 || !strings.Contains(out, "OK: every check passed") {
		t.Fatalf("bodycam verify of the export: exit %d\n%s", code, out)
	}
	t.Logf("bodycam verify:\n%s", out)
	code, out = runBinary(t, "verify", zipPath, "--json")
	var vr export.Report
	if err := json.Unmarshal([]byte(out), &vr); code != 0 || err != nil || !vr.OK || vr.Checked.Recordings != len(files) ||
		vr.Checked.Receipts != len(files) || vr.Checked.Derived != 0 {
		t.Fatalf("verify --json: exit %d, %v\n%s", code, err, out)
	}
	zb, err := os.ReadFile(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	names, zf := zipFiles(t, zb)
	for _, f := range files {
		fr := reportOf(t, rep, f.name)
		dir := "recordings/" + fr.RecordingID + "/"
		orig := dir + "original." + strings.ToLower(strings.TrimPrefix(filepath.Ext(f.name), "."))
		receipt, _ := os.ReadFile(fr.Receipt)
		if !bytes.Equal(zf[orig], f.data) || !bytes.Equal(zf[dir+"receipt.json"], receipt) || zf[dir+"manifest.json.sig"] == nil {
			t.Fatalf("the export's %s is not the file with its receipt and manifest: %v", dir, names)
		}
		for _, n := range names {
			if strings.HasPrefix(n, dir+"derived/") {
				t.Fatalf("the export has a derived copy of an uploaded recording: %s", n)
			}
		}
		if f.video {
			p := filepath.Join(work, "exported"+filepath.Ext(f.name))
			os.WriteFile(p, zf[orig], 0o644)
			decodes(t, p)
		}
	}

	// --release: the files whose receipts verified are deleted from the
	// camera, the one that failed stays.
	code, out = e.runDock(t, 5*time.Minute, s.url, state, []string{"--release"}, cam)
	t.Logf("bodycam dock --release:\n%s", out)
	if code != 1 || strings.Contains(out, "could not tell the server") {
		t.Fatalf("--release run: exit %d, want 1 (the foreign file still fails)", code)
	}
	rep = readDockReport(t, state, "cam1")
	for _, f := range files {
		if fr := reportOf(t, rep, f.name); !fr.Released {
			t.Fatalf("%s not released: %+v", f.name, fr)
		}
		if _, err := os.Stat(filepath.Join(cam, f.name)); !os.IsNotExist(err) {
			t.Fatalf("%s released but still on the camera: %v", f.name, err)
		}
	}
	if fr := reportOf(t, rep, foreign); fr.Released || fr.Verified || fr.State != dock.StateFailed {
		t.Fatalf("the foreign file: %+v", fr)
	}
	if _, err := os.Stat(filepath.Join(cam, foreign)); err != nil {
		t.Fatalf("a file without a verified receipt was deleted: %v", err)
	}
	code, body := s.call("GET", "/api/v1/cases/C-DOCK/custody", e.auditor, "")
	if code != 200 || strings.Count(body, `"action": "upload_released"`) != len(files) {
		t.Fatalf("the case's custody does not show %d releases: %d %.2000s", len(files), code, body)
	}
	s.stop()
}

// The same file of one device in two docked cameras' folders, uploaded at
// once by one agent: one recording; both files' receipts name it (one
// uploaded, the other a duplicate). Sent once more with tus, the answer is
// 200 with the same recording (duplicate: true), and the receipt lookup
// finds it.
func TestDockSameFileTwice(t *testing.T) {
	s := start(t, t.TempDir())
	e := newDockEnv(t, s, "CAM2")
	root := t.TempDir()
	a, b := filepath.Join(root, "dockA"), filepath.Join(root, "dockB")
	t0 := time.Now().UTC().Add(-time.Hour).Format("20060102150405")
	nameA, nameB := "CAM2_"+t0+"_0001.MP4", "CAM2_"+t0+"_0001_copy.MP4"
	data := ffmpegTo(t, filepath.Join(a, nameA), append(mp4Args(testH264...), "-f", "mp4")...)
	os.MkdirAll(b, 0o755)
	if err := os.WriteFile(filepath.Join(b, nameB), data, 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	code, out := e.runDock(t, 5*time.Minute, s.url, state, []string{"--parallel", "2", "--chunk", "64KiB"}, a, b)
	t.Logf("bodycam dock:\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	fa, fb := reportOf(t, readDockReport(t, state, "dockA"), nameA), reportOf(t, readDockReport(t, state, "dockB"), nameB)
	states := []string{fa.State, fb.State}
	slices.Sort(states)
	if !fa.Verified || !fb.Verified || fa.RecordingID == "" || fa.RecordingID != fb.RecordingID ||
		!slices.Equal(states, []string{dock.StateDuplicate, dock.StateUploaded}) {
		t.Fatalf("reports: %+v\n%+v", fa, fb)
	}
	recs := e.deviceRecordings(t, "CAM2")
	if len(recs) != 1 || recs[0].ID != fa.RecordingID {
		t.Fatalf("the device has %d recordings, want the one %s: %+v", len(recs), fa.RecordingID, recs)
	}
	e.verifyRecording(t, fa.RecordingID)

	// Once more, with tus by hand: 200, the same recording.
	_, code2, body := s.tusSend(e.dockTok, map[string]string{"device": "CAM2", "filename": "again.mp4", "sha256": hexSHA(data)}, data, len(data))
	var ans struct {
		RecordingID string `json:"recording_id"`
		Duplicate   bool   `json:"duplicate"`
	}
	if err := json.Unmarshal([]byte(body), &ans); code2 != 200 || err != nil || ans.RecordingID != fa.RecordingID || !ans.Duplicate {
		t.Fatalf("the same file sent again: %d %s", code2, body)
	}
	code, body = s.call("GET", "/api/v1/receipts?device=CAM2&sha256="+hexSHA(data), e.dockTok, "")
	if code != 200 || !strings.Contains(body, fa.RecordingID) {
		t.Fatalf("receipt lookup: %d %s", code, body)
	}
	for _, u := range e.uploads(t, "device=CAM2") {
		if u.State != "stored" && !(u.State == "abandoned" && strings.HasPrefix(u.Reason, "duplicate")) {
			t.Fatalf("an upload of the same file is %s (%s)", u.State, u.Reason)
		}
	}
	if n := len(e.deviceRecordings(t, "CAM2")); n != 1 {
		t.Fatalf("%d recordings after sending the file again", n)
	}
	s.stop()
}

// dockProxy is an HTTP reverse proxy between a dock and the server that,
// as nginx does by default, sends the server its own Host (so the server's
// upload Locations name the server, not the proxy). It counts the PATCH
// body bytes it forwards and, when told, flips a byte of them, drops their
// Upload-Checksum, or keeps DELETEs from the server.
type dockProxy struct {
	url           string
	forwarded     atomic.Int64 // PATCH body bytes read from the dock and sent on
	flipAt        atomic.Int64 // flip the byte at this offset of those bytes, once (-1: none)
	flipped       atomic.Int64 // where it flipped (-1: not yet)
	stripChecksum atomic.Bool
	blockDelete   atomic.Bool
	responses     sync.Map // status code → *atomic.Int64
}

func newDockProxy(t *testing.T, target string) *dockProxy {
	t.Helper()
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &dockProxy{}
	p.flipAt.Store(-1)
	p.flipped.Store(-1)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(to)
			if r.In.Method == http.MethodPatch {
				if p.stripChecksum.Load() {
					r.Out.Header.Del("Upload-Checksum")
				}
				r.Out.Body = &proxyBody{ReadCloser: r.Out.Body, p: p}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			n, _ := p.responses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			return nil
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && p.blockDelete.Load() {
			http.Error(w, "the proxy keeps this from the server", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *dockProxy) count(status int) int64 {
	if n, ok := p.responses.Load(status); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

type proxyBody struct {
	io.ReadCloser
	p *dockProxy
}

func (b *proxyBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	end := b.p.forwarded.Add(int64(n))
	from := end - int64(n)
	if at := b.p.flipAt.Load(); at >= from && at < end && b.p.flipAt.CompareAndSwap(at, -1) {
		buf[at-from] ^= 0x01
		b.p.flipped.Store(at)
	}
	return n, err
}

// A byte flipped in transit by a proxy between the dock and the server.
// With the chunk's Upload-Checksum going through, the server refuses that
// chunk and the dock sends it again: the file is stored right. With the
// checksum dropped on the way too, only the whole file's hash can tell:
// the server refuses the file with both SHA-256 (declared, received),
// keeps the partial upload (the proxy keeps the dock's DELETE from it),
// stores nothing; the dock reports it refused, keeps the file, and sends
// it again without the proxy: stored.
func TestDockByteFlippedInTransit(t *testing.T) {
	dataDir := t.TempDir()
	s := start(t, dataDir, auditorsExempt...)
	e := newDockEnv(t, s, "CAM3")
	p := newDockProxy(t, s.url)
	cam := filepath.Join(t.TempDir(), "cam3")
	t0 := time.Now().UTC().Add(-time.Hour)
	first := "CAM3_" + t0.Format("20060102150405") + "_0001.MP4"
	firstData := ffmpegTo(t, filepath.Join(cam, first), biggerMP4...)
	if len(firstData) < 200_000 {
		t.Fatalf("the clip is %d bytes: too small for several PATCHes", len(firstData))
	}
	state := t.TempDir()
	chunk := []string{"--chunk", "64KiB"}

	// The chunk's checksum catches it.
	p.flipAt.Store(100_000) // in the second PATCH
	code, out := e.runDock(t, 5*time.Minute, p.url, state, chunk, cam)
	t.Logf("through the proxy, a byte flipped:\n%s", out)
	fr := reportOf(t, readDockReport(t, state, "cam3"), first)
	if code != 0 || fr.State != dock.StateUploaded || !fr.Verified || p.flipped.Load() != 100_000 || p.count(460) != 1 {
		t.Fatalf("exit %d, %+v; flipped at %d, %d answers 460", code, fr, p.flipped.Load(), p.count(460))
	}
	if code, _, sum := s.getTo(t, "/api/v1/recordings/"+fr.RecordingID+"/original", e.auditor, filepath.Join(t.TempDir(), "o")); code != 200 || sum != hexSHA(firstData) {
		t.Fatalf("stored %s: %d %s", first, code, sum)
	}
	if _, metrics := s.call("GET", "/metrics", "", ""); !strings.Contains(metrics, `bodycam_upload_refusals_total{reason="checksum"} 1`) {
		t.Fatalf("the refused chunk is not counted:\n%s", grepLines(metrics, "bodycam_upload_refusals_total"))
	}

	// Without the chunk's checksum, the whole file's hash.
	second := "CAM3_" + t0.Add(10*time.Minute).Format("20060102150405") + "_0002.MP4"
	secondData := ffmpegTo(t, filepath.Join(cam, second), append(slices.Clone(biggerMP4), "-metadata", "title=second")...)
	p.stripChecksum.Store(true)
	p.blockDelete.Store(true)
	base := p.forwarded.Load()
	const at = 150_000
	p.flipAt.Store(base + at)
	code, out = e.runDock(t, 5*time.Minute, p.url, state, chunk, cam)
	t.Logf("through the proxy, a byte flipped, no checksums:\n%s", out)
	flipped := slices.Clone(secondData)
	flipped[at] ^= 0x01
	declared, received := hexSHA(secondData), hexSHA(flipped)
	fr = reportOf(t, readDockReport(t, state, "cam3"), second)
	if code != 1 || fr.State != dock.StateRefused || !strings.Contains(fr.Reason, declared) || !strings.Contains(fr.Reason, received) {
		t.Fatalf("exit %d, report %+v; want refused naming %s and %s", code, fr, declared, received)
	}
	if _, err := os.Stat(filepath.Join(cam, second)); err != nil {
		t.Fatalf("the refused file is gone from the camera: %v", err)
	}
	refused := e.uploads(t, "device=CAM3&state=refused")
	if len(refused) != 1 || refused[0].SHA256 != declared || refused[0].ReceivedSHA256 != received ||
		!strings.Contains(refused[0].Reason, declared) || !strings.Contains(refused[0].Reason, received) || refused[0].RecordingID != "" {
		t.Fatalf("the server's refused upload: %+v", refused)
	}
	partial := filepath.Join(dataDir, "spool", "_uploads", refused[0].ID)
	if st, err := os.Stat(partial); err != nil || st.Size() != int64(len(secondData)) {
		t.Fatalf("the refused partial upload is not kept whole: %v %v", st, err)
	}
	if code, body := s.call("GET", "/api/v1/receipts?device=CAM3&sha256="+declared, e.dockTok, ""); code != 404 {
		t.Fatalf("a refused file has a receipt: %d %s", code, body)
	}
	if n := len(e.deviceRecordings(t, "CAM3")); n != 1 {
		t.Fatalf("%d recordings after the refusal, want 1", n)
	}

	// Straight to the server: sent again, stored.
	code, out = e.runDock(t, 5*time.Minute, s.url, state, chunk, cam)
	t.Logf("without the proxy:\n%s", out)
	fr = reportOf(t, readDockReport(t, state, "cam3"), second)
	if code != 0 || fr.State != dock.StateUploaded || !fr.Verified {
		t.Fatalf("sent again: exit %d, %+v", code, fr)
	}
	if code, _, sum := s.getTo(t, "/api/v1/recordings/"+fr.RecordingID+"/original", e.auditor, filepath.Join(t.TempDir(), "o")); code != 200 || sum != declared {
		t.Fatalf("stored %s: %d %s", second, code, sum)
	}
	e.verifyRecording(t, fr.RecordingID)
	s.stop()
}

// The server killed with SIGKILL in the middle of a dock's upload of a
// file of some hundred MiB (sent at a bounded rate so that the kill comes
// half way), and started again on the same data directory: the dock
// resumes the same upload from the offset the server kept, not from zero
// (all it sent, counted by a proxy in between, is at most 1.1 × the
// file), and the recording verifies.
func TestDockServerKilledMidUpload(t *testing.T) {
	size := int64(256 << 20)
	dataDir := t.TempDir()
	s := start(t, dataDir)
	e := newDockEnv(t, s, "CAM4")
	p := newDockProxy(t, s.url)
	cam := filepath.Join(t.TempDir(), "cam4")
	name := "CAM4_" + time.Now().UTC().Add(-time.Hour).Format("20060102150405") + "_0001.MP4"
	recorderMP4(t, filepath.Join(cam, name), size)
	sum := sha256File(t, filepath.Join(cam, name))
	state := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out syncBuffer
	cmd := e.dockCommand(ctx, p.url, state, []string{"--rate", "32MB/s", "--chunk", "8MiB"}, cam)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(3 * time.Minute)
	for p.forwarded.Load() < size*2/5 {
		select {
		case err := <-done:
			t.Fatalf("the dock ended (%v) before the kill:\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes sent in 3 min:\n%s", p.forwarded.Load(), out.String())
		}
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	killedAt := p.forwarded.Load()
	partials, _ := filepath.Glob(filepath.Join(dataDir, "spool", "_uploads", "*.info"))
	if len(partials) != 1 {
		t.Fatalf("partial uploads after the kill: %v", partials)
	}
	st, err := os.Stat(strings.TrimSuffix(partials[0], ".info"))
	if err != nil {
		t.Fatal(err)
	}
	kept := st.Size()
	port, _ := strconv.Atoi(s.url[strings.LastIndex(s.url, ":")+1:])
	s2 := startWith(t, launch{httpPort: port}, dataDir)
	e.s = s2
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the dock: %v\n%s\nserver log:\n%s", err, out.String(), s2.log)
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("the dock did not finish after the restart:\n%s", out.String())
	}
	total := p.forwarded.Load()
	t.Logf("killed with %d bytes sent, %d in the server's spool; %d bytes sent in all for a %d-byte file (%.3f×)",
		killedAt, kept, total, size, float64(total)/float64(size))
	t.Logf("bodycam dock:\n%s", out.String())
	if kept == 0 || kept >= size || total < size || float64(total) > 1.1*float64(size) {
		t.Fatalf("sent %d bytes in all for a %d-byte file (the server had kept %d): not resumed from its offset", total, size, kept)
	}
	fr := reportOf(t, readDockReport(t, state, "cam4"), name)
	ups := e.uploads(t, "device=CAM4")
	if fr.State != dock.StateUploaded || !fr.Verified || len(ups) != 1 || ups[0].State != "stored" || ups[0].RecordingID != fr.RecordingID {
		t.Fatalf("report %+v; uploads %+v: want the one upload, stored", fr, ups)
	}
	if fr.SHA256 != sum {
		t.Fatalf("the dock hashed %s, the file is %s", fr.SHA256, sum)
	}
	e.verifyRecording(t, fr.RecordingID)
	if left, _ := filepath.Glob(filepath.Join(dataDir, "spool", "_uploads", ".chunks", "*")); len(left) != 0 {
		t.Fatalf("chunks left in the spool: %v", left)
	}
	s2.stop()
}

// largeFileSize is the size of TestDockLargeFile's file: 4 GiB, or
// BODYCAM_TEST_LARGE_FILE (e.g. 256MiB) for a quicker run.
func largeFileSize(t *testing.T) int64 {
	v := os.Getenv("BODYCAM_TEST_LARGE_FILE")
	if v == "" {
		return 4 << 30
	}
	n, err := parseBytes(v)
	if err != nil || n < 1<<20 {
		t.Fatalf("BODYCAM_TEST_LARGE_FILE=%q: want a size of 1MiB or more (e.g. 256MiB): %v", v, err)
	}
	return n
}

// A file of 4 GiB (a recorder's MP4: a real clip and a free box over the
// rest) uploaded by `bodycam dock` to each store (the directory, and MinIO
// over S3 multipart): the server's resident memory grows by at most 64 MiB
// from before the upload to its peak (VmHWM, reset before), whatever the
// size; the recording verifies (every byte read back and hashed).
// BODYCAM_TEST_LARGE_FILE=256MiB makes it quicker.
func TestDockLargeFile(t *testing.T) {
	size := largeFileSize(t)
	for _, store := range []string{"directory", "s3"} {
		t.Run(store, func(t *testing.T) {
			var extra []string
			if store == "s3" {
				m := sharedMinIO(t)
				extra = []string{"--s3-endpoint", m.Endpoint, "--s3-access-key", m.AccessKey, "--s3-secret-key", m.SecretKey,
					"--s3-bucket", "dock-large", "--retention-mode", "off"}
			}
			s := start(t, t.TempDir(), extra...)
			e := newDockEnv(t, s, "CAM5")
			cam := filepath.Join(t.TempDir(), "cam5")
			name := "CAM5_" + time.Now().UTC().Add(-time.Hour).Format("20060102150405") + "_0001.MP4"
			recorderMP4(t, filepath.Join(cam, name), size)
			state := t.TempDir()

			pid := s.cmd.Process.Pid
			time.Sleep(time.Second)               // start-up's work done
			before := procStatus(t, pid, "VmRSS") // MiB
			if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
				t.Fatalf("reset the server's peak RSS (VmHWM): %v", err)
			}
			// VmHWM is the peak; the samples are a second opinion.
			var peakKB atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
						for _, l := range strings.Split(string(b), "\n") {
							if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
								kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
								if kb > peakKB.Load() {
									peakKB.Store(kb)
								}
							}
						}
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			})
			started := time.Now()
			code, out := e.runDock(t, 50*time.Minute, s.url, state, nil, cam)
			took := time.Since(started)
			close(stop)
			wg.Wait()
			peak := max(procStatus(t, pid, "VmHWM"), float64(peakKB.Load())/1024)
			growth := peak - before
			t.Logf("%s store: %d MiB uploaded by bodycam dock in %v (%.0f MB/s, its hashing included); server RSS %.1f MiB before, %.1f MiB at its peak: growth %.1f MiB",
				store, size>>20, took.Round(time.Second), float64(size)/took.Seconds()/1e6, before, peak, growth)
			if code != 0 {
				t.Fatalf("bodycam dock: exit %d\n%s\nthe server's warnings and errors:\n%s", code, out,
					grepLines(s.log.String(), "level=WARN")+grepLines(s.log.String(), "level=ERROR"))
			}
			fr := reportOf(t, readDockReport(t, state, "cam5"), name)
			if fr.State != dock.StateUploaded || !fr.Verified || fr.Size != size {
				t.Fatalf("report: %+v", fr)
			}
			if growth > 64 {
				t.Fatalf("the server's RSS grew by %.1f MiB for a %d MiB file (limit 64 MiB)", growth, size>>20)
			}
			vt := time.Now()
			e.verifyRecording(t, fr.RecordingID)
			t.Logf("verify (every byte read back from the %s store): %v", store, time.Since(vt).Round(time.Second))
			s.stop()
		})
	}
}
