package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// procStatus reads a kB field (VmRSS, VmHWM) of /proc/<pid>/status in MiB.
func procStatus(t *testing.T, pid int, field string) float64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// #4 end to end: a flood of anonymous sign-ins, 64 at once from 64
// addresses and kept up for ten seconds, while the real ffmpeg records. The
// recording is stored complete and without gaps, and the server's memory
// stays bounded: password checks run a slot at a time (those that wait too
// long get 503, an address past its burst 429; which of them a run sees
// depends on the machine's speed). Before: 64 argon2id checks of 19 MiB at
// once took the server from 96 MB to 1.07 GB. Measured here: 117 MiB before,
// 151 MiB at most during the flood, about 25 checks a second answered 401.
func TestSignInFloodWhileRecording(t *testing.T) {
	s := start(t, t.TempDir(), "--segment-duration", "2s")
	token := s.token()
	aud := s.roleToken(token, "aud-flood", "auditor")
	pw := s.register(token, "cam-flood")
	pid := s.cmd.Process.Pid
	before := procStatus(t, pid, "VmRSS")
	ff := s.publishFFmpeg("cam-flood", pw, 16, "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const flood = 64
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2, byte(1+i))}}
			c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
			defer c.CloseIdleConnections()
			for n := 0; ctx.Err() == nil; n++ {
				req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/api/v1/session",
					strings.NewReader(fmt.Sprintf(`{"user":"nobody-%d-%d","password":"a guess at a password"}`, i, n)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					continue // the flood's deadline cut it short
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	peak := before
	for ctx.Err() == nil {
		peak = max(peak, procStatus(t, pid, "VmRSS"))
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	hwm := procStatus(t, pid, "VmHWM")
	if err := ff.Wait(); err != nil {
		t.Fatalf("the publisher failed during the flood: %v", err)
	}
	rec := s.waitStored(aud, "cam-flood")
	_, v := s.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, "")
	t.Logf("sign-ins answered during the flood: %v; server RSS %.0f MiB before, %.0f MiB at most during it (VmHWM %.0f MiB); recording %s: %d segments, %s",
		codes, before, peak, hwm, rec.ID, rec.SegmentCount, rec.State)
	if rec.State != "complete" || rec.SegmentCount < 6 || !strings.Contains(v, `"ok": true`) || !strings.Contains(v, `"gaps": []`) {
		t.Fatalf("the recording made during the flood: %+v\n%s", rec, v)
	}
	const bound = 256 // MiB; the unbounded server reached 1,020
	if peak > bound || hwm > bound {
		t.Fatalf("server memory during the flood: %.0f MiB (VmHWM %.0f MiB), want under %d MiB", peak, hwm, bound)
	}
	for code, n := range codes {
		if code != 401 && code != 429 && code != 503 {
			t.Fatalf("answers during the flood: %v; want only 401 (checked), 503 (no slot in time) and 429 (the address's burst spent), got %d x %d", codes, n, code)
		}
	}
	if codes[401] == 0 {
		t.Fatalf("no sign-in was checked during the flood: %v", codes)
	}
}

// #11 end to end: a console session opened with the bootstrap admin token
// makes no API tokens, and a restart with another --admin-token ends it.
// Before: the session minted a token, and its cookie and the token kept
// working after the change.
func TestAdminTokenChangeEndsSessions(t *testing.T) {
	dataDir := t.TempDir()
	const first, second = "the-first-admin-token-0123", "the-second-admin-token-4567"
	s := start(t, dataDir, "--admin-token", first)
	cookieCall := func(s *server, method, path string, cookies []*http.Cookie, body string) int {
		req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
		for _, c := range cookies {
			req.AddCookie(c)
		}
		req.Header.Set("X-Bodycam-Console", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	resp, err := http.Post(s.url+"/api/v1/session", "application/json", strings.NewReader(`{"token":"`+first+`"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("console sign-in with the admin token: %v %v", resp, err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if code := cookieCall(s, "GET", "/api/v1/users", cookies, ""); code != 200 {
		t.Fatalf("the session: %d", code)
	}
	if code := cookieCall(s, "POST", "/api/v1/tokens", cookies, `{"name":"outlives the token"}`); code != 403 {
		t.Fatalf("an API token from the admin token's session: %d, want 403", code)
	}
	s.stop()
	s2 := start(t, dataDir, "--admin-token", second)
	if code := cookieCall(s2, "GET", "/api/v1/users", cookies, ""); code != 401 {
		t.Fatalf("the old token's session after a restart with a new token: %d, want 401", code)
	}
	if code, _ := s2.call("GET", "/api/v1/users", first, ""); code != 401 {
		t.Fatalf("the old token: %d", code)
	}
	s2.stop()
}
