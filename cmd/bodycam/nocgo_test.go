package main

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/internal/whep"
)

// The build without cgo (CGO_ENABLED=0 -tags nocgo) is a static binary that
// says it has no transcoding, serves, records the real ffmpeg publisher
// (stored and verified), and still shows it live: H.264 without B-frames
// passes through to a viewer, whose AAC audio the server says it cannot
// convert (the viewer gets video only, and the audit says why).
func TestNoCgoBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bodycam-nocgo")
	build := exec.Command("go", "build", "-tags", "nocgo", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build -tags nocgo: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("the nocgo build is dynamically linked (libraries %v)", libs)
		}
	}
	f.Close()
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.Contains(string(out), "live transcoding: none (built with -tags nocgo") {
		t.Fatalf("version: %v %s", err, out)
	}

	s := startWith(t, launch{bin: bin}, t.TempDir(), "--segment-duration", "1s")
	if !strings.Contains(s.log.String(), `transcoding="none (built with -tags nocgo`) {
		t.Fatalf("the start-up line does not say the build has no transcoding:\n%s", s.log)
	}
	admin := s.token()
	pw := s.register(admin, "cam-static")
	sup := s.roleToken(admin, "sup-1", "supervisor")
	aud := s.roleToken(admin, "aud-1", "auditor")
	ff := s.publishFFmpeg("cam-static", pw, 6, "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30", "-c:a", "aac")

	annex := filepath.Join(t.TempDir(), "live.h264")
	out, _ := os.Create(annex)
	v, err := whep.Dial(context.Background(), s.whepURL("cam-static"), whep.Options{Token: sup, Annex: out})
	if err != nil {
		t.Fatalf("a viewer of H.264 and AAC on the nocgo build: %v", err)
	}
	st := waitFrames(t, v, 30)
	out.Close()
	v.Close()
	if video, audio := v.Codecs(); !strings.EqualFold(video, "video/H264") || audio != "" || st.AudioPackets != 0 {
		t.Fatalf("codecs %q %q (%+v), want H.264 and no audio", video, audio, st)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "h264", "-i", annex, "-f", "null", "-").CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("the live video does not decode cleanly: %v %s", err, out)
	}
	if _, body := s.call("GET", "/api/v1/live/views?device=cam-static", sup, ""); !strings.Contains(body, `"video": "H264"`) ||
		!strings.Contains(body, `"audio": "none (AAC needs a transcoder; this server has none)"`) {
		t.Fatalf("the audit does not say what was sent and why: %s", body)
	}

	if err := ff.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	rec := s.waitStored(aud, "cam-static")
	if _, body := s.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, ""); !strings.Contains(body, `"ok": true`) || !strings.Contains(body, `"manifest": "ok"`) {
		t.Fatalf("verify: %s", body)
	}
	s.stop()
}
