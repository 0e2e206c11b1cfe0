package ingest_test

import (
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// A recorder whose connection is reset gets its recording ended with a
// reason that says so and names no address: the reason goes into
// the catalog and out to other systems (device.offline, recording.closed),
// and a recorder's address (an officer's phone on a carrier or a home
// network) is not theirs to have.
func TestResetReasonNamesNoAddress(t *testing.T) {
	h := newHarness(t, harnessOptions{readTimeout: 10 * time.Second, segmentDuration: time.Second})
	secret := h.register("cam-reset")
	var reset atomic.Bool
	ln := startProxy(t, h.rtsp, func(from io.Reader, to io.Writer) {
		buf := make([]byte, 32<<10)
		for {
			n, err := from.Read(buf)
			if reset.Load() {
				c := to.(*net.TCPConn)
				c.SetLinger(0) // close with RST
				c.Close()
				return
			}
			if n > 0 {
				to.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	})
	url := "rtsp://cam-reset:" + secret + "@" + ln.Addr().String() + "/cam-reset"
	go h.publish(stream{"h264-aac", h264, aac}, 30, "tcp", url)
	time.Sleep(3 * time.Second)
	reset.Store(true)
	rec := h.waitRecordings("cam-reset", 1, 30*time.Second)[0]
	if strings.Contains(rec.EndReason, "127.0.0.1") || !strings.Contains(rec.EndReason, "connection reset") || !evidence.EndedSilent(rec.EndReason) {
		t.Fatalf("recording %s ended %s: %q; want the reset said, no address", rec.ID, rec.State, rec.EndReason)
	}
}
