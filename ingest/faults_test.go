package ingest_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/bodycam/bodycam/evidence"
)

// recordOne publishes seconds of H264+AAC for a new device and returns its
// finished recording.
func recordOne(t *testing.T, h *harness, device string, seconds float64) evidence.Recording {
	t.Helper()
	secret := h.register(device)
	if out, err := h.publish(stream{"h264-aac", h264, aac}, seconds, "tcp", h.url(device, secret, "")); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return h.waitRecordings(device, 1, 30*time.Second)[0]
}

func (h *harness) objectPath(key string) string {
	return filepath.Join(h.dataDir, "objects", filepath.FromSlash(key))
}

func (h *harness) segmentKey(rec evidence.Recording, seq int64) string {
	segs, err := h.cat.Segments(context.Background(), rec.ID)
	if err != nil || int(seq) >= len(segs) {
		h.t.Fatalf("segments of %s: %v (%d)", rec.ID, err, len(segs))
	}
	return segs[seq].Key
}

// Tampering with stored evidence is detected and the first bad segment named.
func TestTamperDetected(t *testing.T) {
	h := newHarness(t, harnessOptions{segmentDuration: time.Second})
	tampers := []struct {
		name   string
		tamper func(h *harness, rec evidence.Recording)
		seq    int64
		reason string
	}{
		{"byte flipped", func(h *harness, rec evidence.Recording) {
			p := h.objectPath(h.segmentKey(rec, 2))
			os.Chmod(p, 0o644)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(p, b, 0o444); err != nil {
				h.t.Fatal(err)
			}
		}, 2, "does not match its SHA-256"},
		{"object deleted", func(h *harness, rec evidence.Recording) {
			if err := os.Remove(h.objectPath(h.segmentKey(rec, 2))); err != nil {
				h.t.Fatal(err)
			}
		}, 2, "cannot be read"},
		{"segments swapped", func(h *harness, rec evidence.Recording) {
			a, b := h.objectPath(h.segmentKey(rec, 1)), h.objectPath(h.segmentKey(rec, 2))
			tmp := a + ".swap"
			if err := os.Rename(a, tmp); err == nil {
				os.Rename(b, a)
				os.Rename(tmp, b)
			}
		}, 1, "does not match its SHA-256"},
		{"catalog row deleted", func(h *harness, rec evidence.Recording) {
			db, err := sql.Open("sqlite", filepath.Join(h.dataDir, "catalog.db"))
			if err != nil {
				h.t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`DELETE FROM segments WHERE recording_id = ? AND seq = 2`, rec.ID); err != nil {
				h.t.Fatal(err)
			}
		}, 2, "missing from the record"},
		{"catalog hash rewritten to match a forged object", func(h *harness, rec evidence.Recording) {
			p := h.objectPath(h.segmentKey(rec, 3))
			os.Chmod(p, 0o644)
			os.WriteFile(p, []byte("forged"), 0o444)
			db, _ := sql.Open("sqlite", filepath.Join(h.dataDir, "catalog.db"))
			defer db.Close()
			// sha256("forged"), size 6: the object now matches its row, but
			// the chain does not.
			if _, err := db.Exec(`UPDATE segments SET sha256 = 'ccdd35168ab474fa5764a526cfb83621351e23682c5075b2e18d56bddf96aa30', size = 6 WHERE recording_id = ? AND seq = 3`, rec.ID); err != nil {
				h.t.Fatal(err)
			}
		}, 3, "chain hash"},
	}
	var wg sync.WaitGroup
	recs := make([]evidence.Recording, len(tampers))
	for i := range tampers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i] = recordOne(t, h, fmt.Sprintf("tamper-%d", i), 5)
		}()
	}
	wg.Wait()
	for i, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			if v := h.verify(recs[i].ID); !v.OK {
				t.Fatalf("before tampering: %+v", v)
			}
			tc.tamper(h, recs[i])
			v := h.verify(recs[i].ID)
			if v.OK || v.FirstBadSeq == nil || *v.FirstBadSeq != tc.seq || !strings.Contains(v.Reason, tc.reason) {
				t.Fatalf("after tampering: %+v; want segment %d named with %q", v, tc.seq, tc.reason)
			}
			t.Logf("verify: first_bad_seq=%d reason=%s", *v.FirstBadSeq, v.Reason)
		})
	}
}

// Unknown devices, wrong secrets, another device's path and disabled
// devices are refused, and nothing is recorded.
func TestPublisherAuthRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	secret := h.register("cam-a")
	otherSecret := h.register("cam-b")
	h.register("cam-off")
	if code, _ := h.call("DELETE", "/api/v1/devices/cam-off", ""); code != 204 {
		t.Fatal("disable failed")
	}
	offSecret := h.keys.DeviceSecret("cam-off", mustDevice(t, h, "cam-off").SecretSalt)
	cases := []struct {
		name, url string
	}{
		{"wrong secret", fmt.Sprintf("rtsp://cam-a:%s@%s/cam-a", strings.Repeat("x", 32), h.rtsp)},
		{"no credentials", fmt.Sprintf("rtsp://%s/cam-a", h.rtsp)},
		{"unknown device", fmt.Sprintf("rtsp://ghost:%s@%s/ghost", secret, h.rtsp)},
		{"another device's path", fmt.Sprintf("rtsp://cam-b:%s@%s/cam-a", otherSecret, h.rtsp)},
		{"own credentials, other path", fmt.Sprintf("rtsp://cam-a:%s@%s/cam-b", secret, h.rtsp)},
		{"disabled device", fmt.Sprintf("rtsp://cam-off:%s@%s/cam-off", offSecret, h.rtsp)},
	}
	for _, tc := range cases {
		out, err := h.publish(stream{"v", h264, nil}, 2, "tcp", tc.url)
		if err == nil {
			t.Errorf("%s: publisher accepted", tc.name)
		}
		t.Logf("%s: ffmpeg: %s", tc.name, strings.TrimSpace(string(out)))
	}
	for _, dev := range []string{"cam-a", "cam-b", "cam-off", "ghost"} {
		if code, body := h.call("GET", "/api/v1/recordings?device="+dev, ""); code != 200 || strings.Contains(string(body), `"id"`) {
			t.Errorf("%s: something was recorded: %s", dev, body)
		}
	}
	m := h.metric("bodycam_ingest_refused_total")
	if !strings.Contains(m, `value:"auth"`) || !strings.Contains(m, `value:"disabled"`) {
		t.Fatalf("refusals not counted: %s", m)
	}
	// The right secret works.
	if out, err := h.publish(stream{"v", h264, nil}, 2, "tcp", h.url("cam-a", secret, "")); err != nil {
		t.Fatalf("right secret refused: %v %s", err, out)
	}
}

func mustDevice(t *testing.T, h *harness, id string) evidence.Device {
	d, err := h.cat.Device(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A second publisher for a live device is refused and the first goes on
// undisturbed; a reconnect afterwards starts a new recording that continues
// the device's chain.
func TestDuplicatePublisherRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	secret := h.register("cam-dup")
	first := make(chan error, 1)
	go func() {
		out, err := h.publish(stream{"h264-aac", h264, aac}, 8, "tcp", h.url("cam-dup", secret, "case=CASE-2026-17"))
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		first <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(h.srv.Live()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(h.srv.Live()) != 1 {
		t.Fatal("first publisher never went live")
	}
	if code, body := h.call("GET", "/api/v1/live", ""); code != 200 || !strings.Contains(string(body), "cam-dup") {
		t.Fatalf("/api/v1/live: %d %s", code, body)
	}
	out, err := h.publish(stream{"h264-aac", h264, aac}, 2, "udp", h.url("cam-dup", secret, ""))
	if err == nil {
		t.Fatal("a second publisher for a live device was accepted")
	}
	t.Logf("second publisher: %s", strings.TrimSpace(string(out)))
	if err := <-first; err != nil {
		t.Fatalf("the first publisher was disturbed: %v", err)
	}
	// Reconnect: a new recording, chained after the first.
	if out, err := h.publish(stream{"h264-aac", h264, aac}, 3, "tcp", h.url("cam-dup", secret, "")); err != nil {
		t.Fatalf("reconnect: %v %s", err, out)
	}
	recs := h.waitRecordings("cam-dup", 2, 30*time.Second)
	if len(recs) != 2 {
		t.Fatalf("want 2 recordings, got %+v", recs)
	}
	if recs[0].CaseID != "CASE-2026-17" || recs[1].CaseID != "" {
		t.Fatalf("case ids: %q %q", recs[0].CaseID, recs[1].CaseID)
	}
	if d := h.media(recs[0].ID); d < 7*time.Second {
		t.Fatalf("first recording lasts %v of 8s published", d)
	}
	a, _ := h.cat.Segments(context.Background(), recs[0].ID)
	b, _ := h.cat.Segments(context.Background(), recs[1].ID)
	if b[0].ChainSeq != a[len(a)-1].ChainSeq+1 || b[0].PrevChainHash != a[len(a)-1].ChainHash {
		t.Fatalf("second recording does not continue the chain: %d/%s after %d/%s",
			b[0].ChainSeq, b[0].PrevChainHash, a[len(a)-1].ChainSeq, a[len(a)-1].ChainHash)
	}
	for _, r := range recs {
		if v := h.verify(r.ID); !v.OK {
			t.Fatalf("verify %s: %+v", r.ID, v)
		}
	}
	if m := h.metric("bodycam_ingest_refused_total"); !strings.Contains(m, `value:"duplicate"`) {
		t.Fatalf("duplicate not counted: %s", m)
	}
}

// With the spool disk nearly full, new publishers are refused with a clear
// error.
func TestSpoolFullRefusesPublishers(t *testing.T) {
	h := newHarness(t, harnessOptions{minFree: 1 << 62})
	secret := h.register("cam-full")
	if _, err := h.publish(stream{"v", h264, nil}, 2, "tcp", h.url("cam-full", secret, "")); err == nil {
		t.Fatal("publisher accepted with the spool full")
	}
	if m := h.metric("bodycam_ingest_refused_total"); !strings.Contains(m, `value:"spool_full"`) {
		t.Fatalf("not counted: %s", m)
	}
}
