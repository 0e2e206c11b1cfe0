package ingest_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// closeTimes holds n connections from the loopback address from (another
// client host than the recorders on 127.0.0.1), with a prefix written on
// each, and reports for each how long the server took to close it.
func closeTimes(t *testing.T, from, addr string, n int, prefix string) <-chan time.Duration {
	t.Helper()
	out := make(chan time.Duration, n)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if prefix != "" {
			io.WriteString(c, prefix)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			io.Copy(io.Discard, c) // answers, then EOF or a reset when the server closes
			out <- time.Since(start)
		}()
	}
	return out
}

// Connections that never complete a request (silent, or silent after one
// request, or dribbling a request that never ends) are closed at the request
// timeout, and one address holds only its cap of them; recorders on another
// address, over TCP and UDP, record for longer than the timeout undisturbed.
func TestIdleConnectionsClosed(t *testing.T) {
	const timeout = 2 * time.Second
	h := newHarness(t, harnessOptions{requestTimeout: timeout, maxPending: 8, segmentDuration: time.Second})
	var pubs sync.WaitGroup
	errs := make(chan string, 2)
	for _, transport := range []string{"tcp", "udp"} {
		dev := "cam-idle-" + transport
		secret := h.register(dev)
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			if out, err := h.publish(stream{"h264-aac", h264, aac}, 3*timeout.Seconds(), transport, h.url(dev, secret, "")); err != nil {
				errs <- transport + ": " + err.Error() + ": " + string(out)
			}
		}()
	}
	silent := closeTimes(t, "127.0.0.2", h.rtsp, 20, "")
	options := closeTimes(t, "127.0.0.3", h.rtsp, 1, "OPTIONS rtsp://"+h.rtsp+"/x RTSP/1.0\r\nCSeq: 1\r\n\r\n")
	dribble := closeTimes(t, "127.0.0.4", h.rtsp, 1, "ANNOUNCE rtsp://"+h.rtsp+"/x RTSP/1.0\r\nCSeq: 1\r\n")

	at, refused := 0, 0
	for range 20 {
		switch d := <-silent; {
		case d < timeout/2:
			refused++
		case d < timeout+3*time.Second:
			at++
		default:
			t.Errorf("an idle connection was held %v", d)
		}
	}
	if refused != 12 || at != 8 {
		t.Errorf("20 idle connections from one address: %d closed at once, %d at the timeout; want 12 and 8 (the cap)", refused, at)
	}
	for name, ch := range map[string]<-chan time.Duration{"silent after OPTIONS": options, "unfinished request": dribble} {
		if d := <-ch; d < timeout-200*time.Millisecond || d > timeout+3*time.Second {
			t.Errorf("%s: closed after %v, want the request timeout (%v)", name, d, timeout)
		}
	}
	pubs.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("publisher: %s", e)
	}
	for _, transport := range []string{"tcp", "udp"} {
		rec := h.waitRecordings("cam-idle-"+transport, 1, 30*time.Second)[0]
		if rec.State != "complete" {
			t.Errorf("%s: %+v", transport, rec)
		}
		if d := h.media(rec.ID); d < 3*timeout-time.Second {
			t.Errorf("%s: recording lasts %v, published %v", transport, d, 3*timeout)
		}
	}
	if m := h.metric("bodycam_rtsp_connections_refused_total"); !strings.Contains(m, "value:12") {
		t.Errorf("refused: %s", m)
	}
	if m := h.metric("bodycam_rtsp_connections_timed_out_total"); !strings.Contains(m, "value:10") {
		t.Errorf("timed out: %s", m)
	}
}

// RTSP tunneled over HTTP or WebSocket (gortsplib's client publishing G.711)
// records past the request timeout too: once recording, its connections are
// out of the limits like any other publisher's.
func TestTunneledPublishers(t *testing.T) {
	// Long enough for the whole handshake (the device's secret is checked
	// with argon2id; over HTTP the tunnel's GET connection waits, not yet
	// recording, until RECORD) under -race beside other packages' tests: 2 s
	// was once too short in CI (EOF); the recording must outlive it.
	const timeout = 4 * time.Second
	h := newHarness(t, harnessOptions{requestTimeout: timeout, segmentDuration: time.Second})
	for name, tunnel := range map[string]gortsplib.Tunnel{"http": gortsplib.TunnelHTTP, "websocket": gortsplib.TunnelWebSocket} {
		t.Run(name, func(t *testing.T) {
			h := h.with(t)
			dev := "cam-tunnel-" + name
			secret := h.register(dev)
			desc := &description.Session{Medias: []*description.Media{{Type: description.MediaTypeAudio,
				Formats: []format.Format{&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}}}}}
			c := gortsplib.Client{Tunnel: tunnel}
			if err := c.StartRecording(h.url(dev, secret, ""), desc); err != nil {
				t.Fatalf("publish over %s: %v", name, err)
			}
			payload := make([]byte, 160)
			for i := range payload {
				payload[i] = 0xff
			}
			start := time.Now()
			for i := 0; time.Since(start) < 4*timeout; i++ { // 20 ms packets, in real time
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 1},
					Payload: payload}
				if err := c.WritePacketRTP(desc.Medias[0], pkt); err != nil {
					t.Fatalf("after %v: %v", time.Since(start), err)
				}
				time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
			}
			c.Close()
			rec := h.waitRecordings(dev, 1, 30*time.Second)[0]
			if d := h.media(rec.ID); d < 4*timeout-500*time.Millisecond {
				t.Fatalf("recording lasts %v, published %v (ended: %s)", d, 4*timeout, rec.EndReason)
			}
		})
	}
	if m := h.metric("bodycam_rtsp_connections_timed_out_total"); !strings.Contains(m, "value:0") {
		t.Errorf("a tunneled publisher's connection timed out: %s", m)
	}
}
