package ingest_test

import (
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
	if rec.State != "complete" || !strings.Contains(rec.EndReason, "read timeout") {
		t.Fatalf("recording %+v: want complete with a read timeout", rec)
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
