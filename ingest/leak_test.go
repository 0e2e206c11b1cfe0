package ingest_test

import (
	"bytes"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

// checkGoroutines is pion's leak check (test.CheckRoutines) in count form:
// it counts the goroutines now and, when the test ends (after every cleanup
// registered after it, so after the server has stopped), waits for the
// count to come back down, failing with the goroutines left if it does not.
// The test must not run in parallel with others.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		for range 100 { // settle: goroutines told to stop may still be unwinding
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		var b bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("%d goroutines before, %d after the server stopped; left:\n%s", before, now, b.String())
	})
}

// A server that recorded publishers over TCP and over UDP (whose packets
// come on a shared listener goroutine), then stopped, leaves no goroutine
// behind: none per session, per connection or per recording.
func TestNoGoroutineLeak(t *testing.T) {
	checkGoroutines(t)
	h := newHarness(t, harnessOptions{segmentDuration: time.Second})
	for _, transport := range []string{"tcp", "udp"} {
		name := "leak-" + transport
		secret := h.register(name)
		if out, err := h.publish(stream{name: name, video: h264, audio: aac}, 3, transport, h.url(name, secret, "")); err != nil {
			t.Fatalf("ffmpeg over %s: %v\n%s", transport, err, out)
		}
		recs := h.waitRecordings(name, 1, 30*time.Second)
		if recs[0].State != "complete" || recs[0].SegmentCount < 2 {
			t.Fatalf("%s: recording %+v", transport, recs[0])
		}
	}
	// A publisher cut off mid-stream (its connection dropped, no TEARDOWN)
	// leaves nothing either.
	secret := h.register("leak-killed")
	cmdDone := make(chan struct{})
	go func() {
		defer close(cmdDone)
		h.publish(stream{name: "killed", video: h264, audio: aac}, 60, "tcp", h.url("leak-killed", secret, ""))
	}()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if len(h.srv.Live()) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the publisher never started recording")
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.stop() // the server stops under the live publisher
	<-cmdDone
}
