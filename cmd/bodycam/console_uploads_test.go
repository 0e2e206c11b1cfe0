package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// browserEnv finds Node (with the npm packages of test/browser) and
// Chromium for a real-browser test, or fails saying how to get them.
func browserEnv(t *testing.T) (node, dir, chromium string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(root, "test", "browser")
	if node, err = exec.LookPath("node"); err != nil {
		t.Fatal("the console test needs Node.js 20 or later (apt-get install nodejs npm), then: npm ci --prefix test/browser")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("the console test needs its npm packages: run `npm ci --prefix test/browser` in %s (%v)", root, err)
	}
	if chromium = os.Getenv("BODYCAM_CHROMIUM"); chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("the console test needs Chromium at %s: apt-get install chromium (never a downloaded browser) (%v)", chromium, err)
	}
	return node, dir, chromium
}

// dockToken gives a dock user an API token, written into the catalog as
// upload/upload_test.go does (the API makes no token for a dock: docks
// may do nothing but upload).
func dockToken(t *testing.T, dataDir, user string) string {
	t.Helper()
	cat, err := catalog.Open(context.Background(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	secret := "bct_test_" + user
	sum := sha256.Sum256([]byte(secret))
	if err := cat.CreateAPIToken(context.Background(), evidence.APIToken{ID: "tok-" + user, TokenHash: hex.EncodeToString(sum[:]),
		UserID: user, Name: "console test", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// tusSend creates a tus upload of data with the given metadata and sends
// its first upTo bytes in one PATCH: the upload's URL and the PATCH's
// status and body.
func (s *server) tusSend(token string, meta map[string]string, data []byte, upTo int) (string, int, string) {
	s.t.Helper()
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pairs []string
	for _, k := range keys {
		pairs = append(pairs, k+" "+base64.StdEncoding.EncodeToString([]byte(meta[k])))
	}
	do := func(method, url string, body []byte, headers ...string) (*http.Response, string) {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := s.client.Do(req)
		if err != nil {
			s.t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := do("POST", s.url+"/api/v1/uploads/", nil, "Upload-Length", strconv.Itoa(len(data)), "Upload-Metadata", strings.Join(pairs, ","))
	if resp.StatusCode != 201 {
		s.t.Fatalf("create the upload of %s: %d %s", meta["filename"], resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = s.url + loc
	}
	resp, body = do("PATCH", loc, data[:upTo], "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	return loc, resp.StatusCode, body
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// The console's Uploads view and uploaded recordings, in a real browser
// (test/browser/console-uploads.mjs): two docks upload through the real
// tus endpoint (an ffmpeg-made MP4 marked important, of the span the
// device also streamed live, a WAV, a file whose declared SHA-256 is
// wrong, and a file half sent). The admin token and an auditor see every upload per
// workstation and device (stored with its recording, refused with both
// hashes, the half-sent one's progress, and its rate once more bytes
// come), filter them, open the stored recording from there, and find it
// in Recordings marked uploaded with its origin, playing, linked with the
// streamed recording of the same event, and filter by kind. A dock
// signing in sees its own uploads and no other view.
func TestConsoleUploads(t *testing.T) {
	node, dir, chromium := browserEnv(t)
	// The console's downloads are plain links here; its copy requests
	// (approval before copying) are TestConsoleCopyApproval's.
	s := start(t, t.TempDir(), "--copy-approval", "off")
	admin := s.token()
	const device, device2 = "cam-upload-1", "cam-upload-2"
	pw := s.register(admin, device)
	s.register(admin, device2)
	const auditor, audPassword = "aud-uploads", "an auditor's long password"
	const dock, dock2, dockPassword = "dock-station-1", "dock-station-2", "a workstation's long password"
	for _, u := range []string{
		`{"id":"` + auditor + `","name":"Aud. Uploads","role":"auditor","password":"` + audPassword + `"}`,
		`{"id":"` + dock + `","name":"Station 1","role":"dock","password":"` + dockPassword + `"}`,
		`{"id":"` + dock2 + `","name":"Station 2","role":"dock"}`,
	} {
		if code, body := s.call("POST", "/api/v1/users", admin, u); code != 201 {
			t.Fatalf("create user %s: %d %s", u, code, body)
		}
	}
	tok1, tok2 := dockToken(t, s.dataDir, dock), dockToken(t, s.dataDir, dock2)

	// The device also streamed, the span its uploaded file says it
	// recorded: the two are linked as one event.
	t0 := time.Now().UTC().Truncate(time.Second)
	ff := s.publishFFmpeg(device, pw, 3, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "30", "-an")
	ff.Wait()

	work := t.TempDir()
	clip := filepath.Join(work, "clip.mp4")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, out)
	}
	mp4, err := os.ReadFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	storedName := device + "_" + t0.Format("20060102150405") + "_IMP.MP4"
	if _, code, body := s.tusSend(tok1, map[string]string{"device": device, "filename": storedName, "sha256": hexSHA(mp4),
		"started_at": t0.Format(time.RFC3339), "ended_at": t0.Add(10 * time.Second).Format(time.RFC3339), "important": "1", "filetype": "video/mp4"}, mp4, len(mp4)); code != 200 {
		t.Fatalf("upload %s: %d %s", storedName, code, body)
	}
	// A file whose declared SHA-256 is not its own: refused with both.
	wrong := append([]byte("RIFF"), bytes.Repeat([]byte{7}, 4096)...)
	declared := hexSHA([]byte("what the dock thought it sent"))
	if _, code, body := s.tusSend(tok1, map[string]string{"device": device, "filename": "wrong-hash.wav", "sha256": declared}, wrong, len(wrong)); code != 460 {
		t.Fatalf("upload with a wrong sha256: %d %s, want 460", code, body)
	}
	// A large file half sent: in progress; the browser test sends more.
	big := make([]byte, 4<<20)
	rand.Read(big)
	partial, code, body := s.tusSend(tok1, map[string]string{"device": device, "filename": device + "_20261201090000.MP4", "sha256": hexSHA(big)}, big, 1<<20)
	if code != 204 {
		t.Fatalf("first MiB of the large file: %d %s", code, body)
	}
	rest := filepath.Join(work, "rest.bin")
	if err := os.WriteFile(rest, big[1<<20:2<<20], 0o600); err != nil {
		t.Fatal(err)
	}
	// Another workstation's upload, of another device.
	wav := append([]byte("RIFF"), bytes.Repeat([]byte{1, 2, 3}, 3000)...)
	if _, code, body := s.tusSend(tok2, map[string]string{"device": device2, "filename": "station2.wav", "sha256": hexSHA(wav)}, wav, len(wav)); code != 200 {
		t.Fatalf("dock 2's upload: %d %s", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console-uploads.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BODYCAM_URL="+s.url, "BODYCAM_TOKEN="+admin, "BODYCAM_CHROMIUM="+chromium,
		"BODYCAM_USER="+auditor, "BODYCAM_PASSWORD="+audPassword, "BODYCAM_DOCK="+dock, "BODYCAM_DOCK_PASSWORD="+dockPassword,
		"BODYCAM_DOCK2="+dock2, "BODYCAM_DOCK_TOKEN="+tok1, "BODYCAM_DEVICE="+device, "BODYCAM_DEVICE2="+device2,
		"BODYCAM_STORED_NAME="+storedName, "BODYCAM_DECLARED_SHA256="+declared, "BODYCAM_RECEIVED_SHA256="+hexSHA(wrong),
		"BODYCAM_PARTIAL_URL="+partial, "BODYCAM_PARTIAL_REST="+rest, fmt.Sprintf("BODYCAM_PARTIAL_OFFSET=%d", 1<<20),
		fmt.Sprintf("BODYCAM_PARTIAL_SIZE=%d", len(big)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser test failed (%v, after %v):\n%s\nserver log:\n%s", err, time.Since(started).Round(time.Millisecond), out, s.log)
	}
	t.Logf("browser test passed in %v:\n%s", time.Since(started).Round(time.Millisecond), out)
	s.stop()
}
