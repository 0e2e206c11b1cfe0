package ingest_test

import (
	"strings"
	"testing"
	"time"
)

// Real ffmpeg publishers over TCP and UDP, for each codec mix: after the
// publisher stops, /media decodes without an error and lasts as long as what
// was published (within one segment), and verify is ok.
func TestFFmpegPublishers(t *testing.T) {
	h := newHarness(t, harnessOptions{segmentDuration: 2 * time.Second})
	const seconds = 6.0
	streams := []stream{
		{"h264-aac", h264, aac},
		{"h265-aac", h265, aac},
		{"h264-pcmu", h264, pcmu},
		{"h264-pcma", h264, pcma},
		{"h264-opus", h264, opus},
		{"video-only", h264, nil},
		{"audio-only", nil, aac},
	}
	for _, transport := range []string{"tcp", "udp"} {
		for _, s := range streams {
			name := s.name + "-" + transport
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				h := h.with(t)
				secret := h.register(name)
				if out, err := h.publish(s, seconds, transport, h.url(name, secret, "")); err != nil {
					t.Fatalf("ffmpeg: %v\n%s", err, out)
				}
				recs := h.waitRecordings(name, 1, 30*time.Second)
				rec := recs[0]
				if rec.State != "complete" || rec.SegmentCount < 3 {
					t.Fatalf("recording %+v", rec)
				}
				got := h.media(rec.ID)
				if diff := got - time.Duration(seconds*float64(time.Second)); diff < -2*time.Second || diff > 2*time.Second {
					t.Errorf("/media lasts %v, published %vs", got, seconds)
				}
				v := h.verify(rec.ID)
				if !v.OK || v.Manifest != "ok" || v.Checked != rec.SegmentCount {
					t.Errorf("verify: %+v", v)
				}
				t.Logf("%s: %d objects, %v, codecs %s", name, rec.SegmentCount, got, strings.Join(rec.Codecs, ", "))
			})
		}
	}
}

// A codec bodycam cannot record is refused with a clear error, and a log line
// names it.
func TestUnsupportedCodecRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	secret := h.register("cam-mjpeg")
	out, err := h.publish(stream{name: "mjpeg", video: []string{"-c:v", "mjpeg", "-pix_fmt", "yuvj420p"}}, 2, "tcp", h.url("cam-mjpeg", secret, ""))
	if err == nil {
		t.Fatal("an MJPEG publisher was accepted")
	}
	if !strings.Contains(string(out), "415") && !strings.Contains(strings.ToLower(string(out)), "unsupported") {
		t.Logf("ffmpeg said: %s", out)
	}
	if m := h.metric("bodycam_ingest_refused_total"); !strings.Contains(m, `value:"codec"`) {
		t.Fatalf("refusal not counted as codec: %s", m)
	}
	if code, body := h.call("GET", "/api/v1/recordings?device=cam-mjpeg", ""); code != 200 || strings.Contains(string(body), `"id"`) {
		t.Fatalf("something was recorded: %s", body)
	}
}
