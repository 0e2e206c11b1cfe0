package ingest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
)

// freezer is a TCP proxy that can stop forwarding the publisher's bytes while
// keeping its connection open: a recorder that goes silent.
type freezer struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newFreezer(t *testing.T, target string) *freezer {
	f := &freezer{}
	f.ln = startProxy(t, target, func(c io.Reader, s io.Writer) {
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 && !f.frozen.Load() {
				s.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	})
	return f
}

// startProxy listens on a loopback port and connects each client to target:
// what target sends goes back as it is; what the client sends goes through
// upstream (from the client, to target), which returns when it is done.
func startProxy(t *testing.T, target string, upstream func(from io.Reader, to io.Writer)) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(c, s); c.Close() }()
			go func() { upstream(c, s); s.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// A publisher that goes silent is disconnected after the read timeout and
// its recording closed cleanly, with the reason, and everything received
// before stays verifiable.
func TestReadTimeoutClosesRecording(t *testing.T) {
	h := newHarness(t, harnessOptions{readTimeout: 2 * time.Second, segmentDuration: time.Second})
	secret := h.register("cam-silent")
	fz := newFreezer(t, h.rtsp)
	url := "rtsp://cam-silent:" + secret + "@" + fz.ln.Addr().String() + "/cam-silent"
	go h.publish(stream{"h264-aac", h264, aac}, 30, "tcp", url)
	time.Sleep(4 * time.Second)
	fz.frozen.Store(true)
	rec := h.waitRecordings("cam-silent", 1, 30*time.Second)[0]
	if rec.State != "complete" || !strings.Contains(rec.EndReason, "read timeout") || !evidence.EndedSilent(rec.EndReason) {
		t.Fatalf("recording %+v: want complete with a read timeout (that the dashboard counts as silent)", rec)
	}
	if d := h.media(rec.ID); d < 3*time.Second {
		t.Fatalf("recording lasts %v, about 4 s were sent", d)
	}
	if v := h.verify(rec.ID); !v.OK {
		t.Fatalf("verify: %+v", v)
	}
}

// RTSPS: with a certificate configured the RTSP port speaks TLS, and ffmpeg
// publishes over it.
func TestRTSPS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	h := newHarness(t, harnessOptions{tls: &tls.Config{Certificates: []tls.Certificate{cert}}})
	secret := h.register("cam-tls")
	events, cancel := h.bus.Subscribe(100)
	defer cancel()
	url := "rtsps://cam-tls:" + secret + "@" + h.rtsp + "/cam-tls"
	if out, err := h.publish(stream{"h264-aac", h264, aac}, 3, "tcp", url); err != nil {
		t.Fatalf("ffmpeg over RTSPS: %v\n%s", err, out)
	}
	rec := h.waitRecordings("cam-tls", 1, 30*time.Second)[0]
	if v := h.verify(rec.ID); !v.OK {
		t.Fatalf("verify: %+v", v)
	}
	// Plain RTSP to the TLS port is not accepted.
	if _, err := h.publish(stream{"v", h264, nil}, 1, "tcp", "rtsp://cam-tls:"+secret+"@"+h.rtsp+"/cam-tls"); err == nil {
		t.Fatal("plain RTSP accepted on the RTSPS port")
	}
	checkEvents(t, events, rec.ID, rec.SegmentCount)
}

// checkEvents: one recording.started, a segment.stored per object, then one
// recording.closed.
func checkEvents(t *testing.T, ch <-chan events.Event, rec string, objects int) {
	t.Helper()
	var started, stored, closed int
	for {
		select {
		case e := <-ch:
			if e.Recording.ID != rec {
				continue
			}
			switch e.Kind {
			case events.RecordingStarted:
				started++
			case events.SegmentStored:
				stored++
			case events.RecordingClosed:
				closed++
			}
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	if started != 1 || stored != objects || closed != 1 {
		t.Fatalf("events for %s: started %d, stored %d of %d, closed %d", rec, started, stored, objects, closed)
	}
}

// A recorder that reconnects while its old connection is silent, before the
// read timeout has ended it, takes the device's session over instead of
// being refused until then; its new recording starts with the hole between
// the two declared as a gap naming the old recording. A recorder that
// reconnects after the read timeout gets the same gap.
func TestReconnectTakesOverSilentSession(t *testing.T) {
	h := newHarness(t, harnessOptions{readTimeout: 30 * time.Second, segmentDuration: time.Second})
	secret := h.register("cam-back")
	fz := newFreezer(t, h.rtsp)
	go h.publish(stream{"h264-aac", h264, aac}, 60, "tcp", "rtsp://cam-back:"+secret+"@"+fz.ln.Addr().String()+"/cam-back")
	deadline := time.Now().Add(15 * time.Second)
	for len(h.srv.Live()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(h.srv.Live()) != 1 {
		t.Fatal("the first connection never went live")
	}
	time.Sleep(3 * time.Second)
	fz.frozen.Store(true) // its network is gone; the server has not noticed
	frozen := time.Now()
	time.Sleep(3 * time.Second)
	if out, err := h.publish(stream{"h264-aac", h264, aac}, 3, "tcp", h.url("cam-back", secret, "")); err != nil {
		t.Fatalf("the reconnecting recorder was refused: %v %s", err, out)
	}
	back := time.Now()
	recs := h.waitRecordings("cam-back", 2, 30*time.Second)
	if len(recs) != 2 {
		t.Fatalf("want 2 recordings, got %+v", recs)
	}
	old, next := recs[0], recs[1]
	if !strings.Contains(old.EndReason, "connected again") || !evidence.EndedSilent(old.EndReason) || old.EndedAt.After(back) {
		t.Fatalf("the silent session's recording: %+v; want it ended by the reconnect, before %v", old, back)
	}
	gaps, err := h.cat.Gaps(context.Background(), next.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 {
		t.Fatalf("the new recording's gaps: %+v; want the hole before it", gaps)
	}
	g := gaps[0]
	if g.Kind != evidence.GapLoss || !strings.Contains(g.Detail, old.ID) || !g.End.Equal(next.StartedAt) ||
		g.Start.After(frozen) || g.Start.Before(frozen.Add(-2*time.Second)) {
		t.Fatalf("hole %+v: want a loss from the old connection's last media (frozen at %v) to %v naming %s", g, frozen, next.StartedAt, old.ID)
	}
	for _, r := range recs {
		if v := h.verify(r.ID); !v.OK {
			t.Fatalf("verify %s: %+v", r.ID, v)
		}
	}
	if v, _ := h.value("bodycam_ingest_takeovers_total"); v != 1 {
		t.Fatalf("takeovers: %v", v)
	}
	if v, _ := h.value("bodycam_ingest_refused_total", "reason", "duplicate"); v != 0 {
		t.Fatalf("refused as a duplicate %v times", v)
	}

	// Gone for longer than the read timeout: the next recording declares the
	// hole all the same.
	h2 := newHarness(t, harnessOptions{readTimeout: 2 * time.Second, segmentDuration: time.Second})
	secret = h2.register("cam-late")
	fz = newFreezer(t, h2.rtsp)
	go h2.publish(stream{"h264-aac", h264, aac}, 30, "tcp", "rtsp://cam-late:"+secret+"@"+fz.ln.Addr().String()+"/cam-late")
	time.Sleep(4 * time.Second)
	fz.frozen.Store(true)
	first := h2.waitRecordings("cam-late", 1, 30*time.Second)[0]
	if out, err := h2.publish(stream{"h264-aac", h264, aac}, 2, "tcp", h2.url("cam-late", secret, "")); err != nil {
		t.Fatalf("reconnect: %v %s", err, out)
	}
	recs = h2.waitRecordings("cam-late", 2, 30*time.Second)
	gaps, err = h2.cat.Gaps(context.Background(), recs[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 || gaps[0].Kind != evidence.GapLoss || !strings.Contains(gaps[0].Detail, first.ID) || !strings.Contains(gaps[0].Detail, "read timeout") {
		t.Fatalf("after a read timeout, the next recording's gaps: %+v", gaps)
	}
	// A recorder that stops its recording itself leaves no hole.
	if out, err := h2.publish(stream{"h264-aac", h264, aac}, 2, "tcp", h2.url("cam-late", secret, "")); err != nil {
		t.Fatalf("third: %v %s", err, out)
	}
	recs = h2.waitRecordings("cam-late", 3, 30*time.Second)
	if gaps, _ := h2.cat.Gaps(context.Background(), recs[2].ID); len(gaps) != 0 {
		t.Fatalf("after a clean stop, the next recording declares %+v", gaps)
	}
}
