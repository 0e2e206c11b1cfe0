package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/bodycam/bodycam/evidence"
)

// dropper is a TCP proxy between a publisher and the server that reads the
// RTSP stream as it goes (requests as text, media as interleaved frames) and
// drops the RTP packets of the channels drop names while a window is open:
// a recorder whose uplink loses packets, or loses everything for a while.
type dropper struct {
	ln      net.Listener
	drop    atomic.Value // map[byte]bool: interleaved channels dropped now
	dropped atomic.Int64
}

func newDropper(t *testing.T, target string) *dropper {
	d := &dropper{}
	d.drop.Store(map[byte]bool{})
	d.ln = startProxy(t, target, func(c io.Reader, s io.Writer) { d.forward(bufio.NewReader(c), s) })
	return d
}

// forward copies RTSP messages whole and interleaved frames one by one,
// leaving out the RTP frames of the dropped channels.
func (d *dropper) forward(r *bufio.Reader, w io.Writer) {
	for {
		first, err := r.Peek(1)
		if err != nil {
			return
		}
		if first[0] == '$' {
			var hdr [4]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return
			}
			frame := make([]byte, 4+int(binary.BigEndian.Uint16(hdr[2:])))
			copy(frame, hdr[:])
			if _, err := io.ReadFull(r, frame[4:]); err != nil {
				return
			}
			if d.drop.Load().(map[byte]bool)[hdr[1]] {
				d.dropped.Add(1)
				continue
			}
			if _, err := w.Write(frame); err != nil {
				return
			}
			continue
		}
		var msg []byte
		length := 0
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			msg = append(msg, line...)
			if k, v, ok := strings.Cut(string(line), ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if strings.TrimSpace(string(line)) == "" {
				break
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if _, err := w.Write(append(msg, body...)); err != nil {
			return
		}
	}
}

// A recorder on a bad uplink, with ffmpeg as the publisher: video packets
// lost for half a second, then everything for three seconds. The losses are
// counted and recorded as loss gaps; the three seconds are a hole in the
// timeline; no sample is stretched over more than a second; the recording
// still lasts what was published and verifies; nothing is called a
// discontinuity (ffmpeg's timestamps never jumped). Without B-frames the
// frames after a loss are kept (a decoder conceals what they lack); with
// B-frames their order cannot be worked out until the next keyframe, and
// they are an explicit undecodable gap.
func TestLossyUplink(t *testing.T) {
	for _, tc := range []struct {
		name    string
		video   []string
		skipped bool // frames after a loss are not stored
	}{
		{"no B-frames", append(append([]string(nil), h264...), "-bf", "0"), false},
		{"B-frames", h264, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{segmentDuration: 2 * time.Second})
			secret := h.register("cam-lossy")
			d := newDropper(t, h.rtsp)
			url := "rtsp://cam-lossy:" + secret + "@" + d.ln.Addr().String() + "/cam-lossy"
			const seconds = 12
			done := make(chan error, 1)
			go func() {
				out, err := h.publish(stream{"h264-aac", tc.video, aac}, seconds, "tcp", url)
				if err != nil {
					err = &publishError{err, string(out)}
				}
				done <- err
			}()
			// ffmpeg sets up video first (interleaved 0-1), then audio (2-3).
			time.Sleep(3 * time.Second)
			d.drop.Store(map[byte]bool{0: true})
			time.Sleep(500 * time.Millisecond)
			d.drop.Store(map[byte]bool{})
			time.Sleep(2500 * time.Millisecond)
			d.drop.Store(map[byte]bool{0: true, 2: true})
			time.Sleep(3 * time.Second)
			d.drop.Store(map[byte]bool{})
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			rec := h.waitRecordings("cam-lossy", 1, 30*time.Second)[0]
			if v := h.verify(rec.ID); !v.OK {
				t.Fatalf("verify: %+v", v)
			}
			if lost := h.metric("bodycam_ingest_lost_packets_total"); d.dropped.Load() == 0 || strings.Contains(lost, "value:0}") || !strings.Contains(lost, "value:") {
				t.Fatalf("%d packets dropped, lost packets counted: %s", d.dropped.Load(), lost)
			}
			gaps, err := h.cat.Gaps(context.Background(), rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			holes := map[string]bool{}
			var shortVideoLoss, undecodable int
			for _, g := range gaps {
				span := g.End.Sub(g.Start)
				switch {
				case g.Kind == evidence.GapLoss && span > 2500*time.Millisecond && span < 3500*time.Millisecond:
					holes[g.Track] = true
				case g.Kind == evidence.GapLoss && g.Track == "video" && strings.Contains(g.Detail, "video packets lost"):
					shortVideoLoss++
				case g.Kind == evidence.GapUndecodable && g.Track == "video" && strings.Contains(g.Detail, "B-frames"):
					undecodable++
				case g.Kind == evidence.GapDiscontinuity:
					t.Errorf("a discontinuity where packets were lost: %+v", g)
				}
			}
			if !holes["video"] || !holes["audio"] {
				t.Errorf("no loss gap of about 3 s for video and for audio")
			}
			if tc.skipped && undecodable == 0 || !tc.skipped && (undecodable > 0 || shortVideoLoss == 0) {
				t.Errorf("after the half second of lost video: %d short loss gaps, %d undecodable runs", shortVideoLoss, undecodable)
			}
			if t.Failed() {
				t.Fatalf("gaps: %+v", gaps)
			}
			body := h.mediaBytes(rec.ID)
			if max := longestSample(t, body); max > time.Second {
				t.Fatalf("a sample lasts %v: stretched over missing time", max)
			}
			if got, want := probeDuration(t, body), seconds*time.Second; got < want-1500*time.Millisecond || got > want+1500*time.Millisecond {
				t.Fatalf("recording lasts %v, %d s were published", got, seconds)
			}
			t.Logf("dropped %d RTP packets; %d gaps; recording verified", d.dropped.Load(), len(gaps))
		})
	}
}

type publishError struct {
	err error
	out string
}

func (e *publishError) Error() string { return "publisher: " + e.err.Error() + "\n" + e.out }

// mediaBytes downloads a recording's /media.
func (h *harness) mediaBytes(rec string) []byte {
	h.t.Helper()
	code, body := h.call("GET", "/api/v1/recordings/"+rec+"/media", "")
	if code != 200 {
		h.t.Fatalf("media %s: %d %.200s", rec, code, body)
	}
	return body
}

// longestSample is the longest sample duration in a fragmented MP4, in any
// track (timescales from the init segment's mdhd boxes).
func longestSample(t *testing.T, b []byte) time.Duration {
	t.Helper()
	var init fmp4.Init
	off := 0
	for off+8 <= len(b) {
		size := int(binary.BigEndian.Uint32(b[off:]))
		if string(b[off+4:off+8]) == "moof" {
			break
		}
		off += size
	}
	if err := init.Unmarshal(bytes.NewReader(b[:off])); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	scale := map[int]uint32{}
	for _, tr := range init.Tracks {
		scale[tr.ID] = tr.TimeScale
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[off:]); err != nil {
		t.Fatalf("fragments: %v", err)
	}
	var longest time.Duration
	for _, p := range parts {
		for _, tr := range p.Tracks {
			for _, s := range tr.Samples {
				if d := time.Duration(s.Duration) * time.Second / time.Duration(scale[tr.ID]); d > longest {
					longest = d
				}
			}
		}
	}
	return longest
}

// probeDuration is ffprobe's duration of a file's bytes.
// probeStreams says where each stream of a recording's /media starts and
// how long it lasts, and the recording's gaps (to tell what made it longer
// or shorter than published).
func (h *harness) probeStreams(rec string) string {
	h.t.Helper()
	f := filepath.Join(h.t.TempDir(), "streams.mp4")
	if err := os.WriteFile(f, h.mediaBytes(rec), 0o644); err != nil {
		h.t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,start_time,duration,nb_frames", "-of", "compact", f).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("ffprobe: %v %s", err, out)
	}
	gaps, _ := h.cat.Gaps(context.Background(), rec)
	return fmt.Sprintf("%s; gaps %+v", strings.TrimSpace(string(out)), gaps)
}

func probeDuration(t *testing.T, b []byte) time.Duration {
	t.Helper()
	f := filepath.Join(t.TempDir(), "media.mp4")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f).Output()
	if err != nil {
		t.Fatal(err)
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(out)) + "s")
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", out, err)
	}
	return d
}
