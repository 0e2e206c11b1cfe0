package ingest_test

import (
	"testing"
	"time"

	"github.com/bodycam/bodycam/ingest"
)

// A spool that stalls (a disk that stops answering for seconds) holds the
// publisher back rather than losing media: once the spool goroutine's
// queue is full the reader waits (bodycam_ingest_backpressure_total), TCP
// pushes back on the recorder, and when the disk answers again everything
// received is recorded: the whole duration, no loss, a verified chain.
func TestBackPressureKeepsMedia(t *testing.T) {
	h := newHarness(t, harnessOptions{segmentDuration: time.Second})
	const device, seconds = "slow-disk", 20.0
	release := ingest.StallSpool(t, "fragment", device)
	secret := h.register(device)
	type result struct {
		out []byte
		err error
	}
	published := make(chan result, 1)
	go func() {
		out, err := h.publish(stream{"h264-aac", h264, aac}, seconds, "tcp", h.url(device, secret, ""))
		published <- result{out, err}
	}()
	for deadline := time.Now().Add(40 * time.Second); ; {
		if v, _ := h.value("bodycam_ingest_backpressure_total"); v > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader never waited for the stalled spool")
		}
		time.Sleep(100 * time.Millisecond)
	}
	release()
	if r := <-published; r.err != nil {
		t.Fatalf("ffmpeg: %v\n%s", r.err, r.out)
	}
	rec := h.waitRecordings(device, 1, 60*time.Second)[0]
	if rec.State != "complete" {
		t.Fatalf("recording %+v", rec)
	}
	v := h.verify(rec.ID)
	if !v.OK || v.Checked != rec.SegmentCount {
		t.Fatalf("verify: %+v", v)
	}
	for _, g := range v.Gaps {
		if g.Kind != "undecodable" { // audio before the first keyframe may be
			t.Errorf("gap %s: %s", g.Kind, g.Detail)
		}
	}
	if got := h.media(rec.ID); got < time.Duration((seconds-1.5)*float64(time.Second)) {
		t.Errorf("/media lasts %v of the %vs published", got, seconds)
	}
}
