package ingest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// GStreamer's rtspclientsink is the other common publisher (it authenticates
// with digest when offered): H.264 + AAC and H.264 + G.711, over TCP and UDP.
func TestGStreamerPublisher(t *testing.T) {
	h := newHarness(t, harnessOptions{segmentDuration: 2 * time.Second})
	const frames = 150 // 5 s at 30 fps
	video := fmt.Sprintf("videotestsrc num-buffers=%d is-live=true ! video/x-raw,width=640,height=360,framerate=30/1 ! "+
		"x264enc tune=zerolatency key-int-max=30 speed-preset=veryfast ! h264parse ! s.", frames)
	cases := map[string]string{
		"h264-aac":  video + " audiotestsrc is-live=true num-buffers=235 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=1 ! avenc_aac ! aacparse ! s.",
		"h264-pcmu": video + " audiotestsrc is-live=true num-buffers=250 samplesperbuffer=160 ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! s.",
	}
	for name, pipeline := range cases {
		for _, proto := range []string{"tcp", "udp"} {
			t.Run(name+"-"+proto, func(t *testing.T) {
				t.Parallel()
				h := h.with(t)
				dev := "gst-" + name + "-" + proto
				secret := h.register(dev)
				sink := fmt.Sprintf("rtspclientsink name=s location=rtsp://%s/%s user-id=%s user-pw=%s protocols=%s ", h.rtsp, dev, dev, secret, proto)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				args := append([]string{"-q", "-e"}, strings.Fields(sink+pipeline)...)
				cmd := exec.CommandContext(ctx, "gst-launch-1.0", args...)
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				// GStreamer can take seconds to start on a busy machine:
				// the 5 s of media count from the recording's start. The
				// pipeline ends by itself after them (num-buffers, -e).
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					if _, body := h.call("GET", "/api/v1/live", ""); strings.Contains(string(body), `"`+dev+`"`) {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				select {
				case <-done:
				case <-time.After(8 * time.Second):
					cmd.Process.Signal(os.Interrupt)
					select {
					case <-done:
					case <-time.After(10 * time.Second):
						cmd.Process.Kill() // GStreamer sometimes hangs on EOS; the recording is what counts
						<-done
					}
				}
				if strings.Contains(out.String(), "ERROR") {
					// rtspclientsink can report the server closing the
					// connection after its TEARDOWN; what it recorded is checked below.
					t.Logf("gst-launch: %s", out.String())
				}
				rec := h.waitRecordings(dev, 1, 30*time.Second)[0]
				if d := h.media(rec.ID); d < 4*time.Second || d > 7*time.Second {
					t.Errorf("/media lasts %v, published 5 s; its streams: %s", d, h.probeStreams(rec.ID))
				}
				if v := h.verify(rec.ID); !v.OK {
					t.Errorf("verify: %+v", v)
				}
				t.Logf("%s: %d objects, codecs %v", dev, rec.SegmentCount, rec.Codecs)
			})
		}
	}
}
