package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// testSigner signs the ledger's checkpoints of the events this test writes
// beside the server (no test here verifies the ledger).
type testSigner struct{}

func (testSigner) ID() string                   { return "test" }
func (testSigner) Sign([]byte) (string, []byte) { return "test", make([]byte, 64) }

// The supervision dashboard in a real browser (test/browser/console-dashboard.mjs):
// a week of work is seeded for two units, a supervisor of one of them opens
// the Dashboard page, and the numbers shown are what was seeded for their
// unit (none of the other's), a chart of the days is drawn with its bars,
// and narrowing the period to today shows nothing recorded.
func TestConsoleDashboard(t *testing.T) {
	node, dir, chromium := browserEnv(t)
	s := start(t, t.TempDir())
	token := s.token()
	const user, password = "sup-dash", "a supervisor's long password"
	if code, body := s.call("POST", "/api/v1/users", token,
		`{"id":"`+user+`","name":"Sgt. Dash","role":"supervisor","unit":"north","password":"`+password+`"}`); code != 201 {
		t.Fatalf("create the supervisor: %d %s", code, body)
	}
	offN := s.unitToken(token, "off-n1", "officer", "north")
	s.unitToken(token, "off-s1", "officer", "south")
	for dev, off := range map[string]string{"cam-n1": "off-n1", "cam-s1": "off-s1"} {
		if code, body := s.call("POST", "/api/v1/devices", token, `{"id":"`+dev+`","officer_id":"`+off+`"}`); code != 201 {
			t.Fatalf("register %s: %d %s", dev, code, body)
		}
	}
	// A refusal of off-n1's, through the API (the ledger records it).
	if code, _ := s.call("GET", "/api/v1/nodes", offN, ""); code != 403 {
		t.Fatalf("an officer asking for the nodes: %d, want 403", code)
	}

	// The rest beside the running server, in its catalog, at known times.
	ctx := context.Background()
	cat, err := catalog.Open(ctx, "", s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	now := time.Now().UTC().Truncate(time.Second)
	d := 24 * time.Hour
	rec := func(id, dev, off string, start time.Time, length time.Duration, reason string) {
		t.Helper()
		state := evidence.StateComplete
		if evidence.EndedSilent(reason) {
			state = evidence.StateInterrupted
		}
		if err := cat.CreateRecording(ctx, evidence.Recording{ID: id, DeviceID: dev, OfficerID: off, State: state,
			StartedAt: start, EndedAt: start.Add(length), EndReason: reason}); err != nil {
			t.Fatal(err)
		}
	}
	rec("n1a", "cam-n1", "off-n1", now.Add(-2*d), 90*time.Minute, "publisher stopped")
	// Ended more than 24 h ago and never stored: late.
	rec("n1b", "cam-n1", "off-n1", now.Add(-d-time.Hour), 45*time.Minute, "no data for 10s (read timeout)")
	rec("s1a", "cam-s1", "off-s1", now.Add(-d), 2*time.Hour, "no data for 10s (read timeout)") // the other unit's
	up := evidence.Upload{ID: "up-n1", DeviceID: "cam-n1", OfficerID: "off-n1", Dock: "dock-1", FileName: "A.MP4", Size: 10,
		SHA256: strings.Repeat("ab", 32), Important: true, StartedAt: now.Add(-4 * d), EndedAt: now.Add(-4*d + 15*time.Minute), TimeSource: evidence.TimeGiven}
	if err := cat.CreateUpload(ctx, up); err != nil {
		t.Fatal(err)
	}
	if err := cat.SetUploadState(ctx, up.ID, catalog.UploadFinishing, "", up.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cat.StoreUpload(ctx, evidence.Recording{ID: "n1u", DeviceID: "cam-n1", OfficerID: "off-n1", Kind: evidence.KindUpload,
		State: evidence.StateComplete, StartedAt: up.StartedAt, EndedAt: up.EndedAt, EndReason: "uploaded"},
		evidence.Segment{RecordingID: "n1u", DeviceID: "cam-n1", Seq: 1, Kind: evidence.KindOriginal, Key: evidence.OriginalKey("cam-n1", "n1u", "A.MP4"),
			Size: 10, SHA256: up.SHA256, StartedAt: up.StartedAt, Duration: 15 * time.Minute, Keyframe: true}, up.ID); err != nil {
		t.Fatal(err)
	}
	for _, e := range []evidence.CustodyEvent{
		{At: now.Add(-2*d + 91*time.Minute), Actor: "device:cam-n1", Action: evidence.ActionIngest, TargetKind: "recording", TargetID: "n1a"},
		{At: now.Add(-d + 3*time.Hour), Actor: "device:cam-s1", Action: evidence.ActionIngest, TargetKind: "recording", TargetID: "s1a"},
		{At: now.Add(-d), Actor: "aud", Action: evidence.ActionVerify, TargetKind: "recording", TargetID: "n1a", Outcome: evidence.OutcomeFailed},
		{At: now.Add(-d), Actor: "aud", Action: evidence.ActionVerify, TargetKind: "recording", TargetID: "s1a", Outcome: evidence.OutcomeFailed},
	} {
		if _, err := cat.AppendCustody(ctx, e, testSigner{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []evidence.Case{
		{ID: "C-N1", Officer: "off-n1", Unit: "north", CreatedBy: "off-n1", CreatedAt: now.Add(-5 * d)}, // filed 5 days: overdue (72 h)
		{ID: "C-N2", Officer: "off-n1", Unit: "north", CreatedBy: "off-n1", CreatedAt: now.Add(-3 * d)},
		{ID: "C-S1", Officer: "off-s1", Unit: "south", CreatedBy: "off-s1", CreatedAt: now.Add(-6 * d)},
	} {
		if err := cat.CreateCase(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.TransitionCase(ctx, evidence.CaseTransition{CaseID: "C-N2", From: evidence.CaseFiled, To: evidence.CaseInvestigating,
		By: "off-n1", At: now.Add(-2 * d)}); err != nil {
		t.Fatal(err)
	}

	// What unit north recorded, as the page must show it.
	type tally struct {
		n int
		h time.Duration
	}
	byDay := map[string]tally{}
	for _, r := range []struct {
		at     time.Time
		length time.Duration
	}{{now.Add(-4 * d), 15 * time.Minute}, {now.Add(-2 * d), 90 * time.Minute}, {now.Add(-d - time.Hour), 45 * time.Minute}} {
		day := r.at.Format(time.DateOnly)
		byDay[day] = tally{byDay[day].n + 1, byDay[day].h + r.length}
	}
	days := map[string]string{} // UTC day: recordings/hours
	for day, c := range byDay {
		days[day] = fmt.Sprintf("%d/%v", c.n, c.h.Hours())
	}
	expect, _ := json.Marshal(map[string]any{
		"cards": map[string]string{"recordings": "3", "hours": "2.5", "live": "0", "silent": "1", "pending": "0", "stored": "33.3 %",
			"important": "1", "refusals": "1", "verify": "1", "overdue": "1"},
		"officers": []string{"off-n1"}, "units": []string{"north"}, "overdue": []string{"C-N1"},
		"filed": map[string]string{"left": "1", "mean": "24", "open": "1", "overdue": "1"},
		"days":  days,
	})
	ctxB, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctxB, node, "console-dashboard.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BODYCAM_URL="+s.url, "BODYCAM_USER="+user, "BODYCAM_PASSWORD="+password,
		"BODYCAM_EXPECT="+string(expect), "BODYCAM_CHROMIUM="+chromium)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser test failed (%v, after %v):\n%s\nserver log:\n%s", err, time.Since(started).Round(time.Millisecond), out, s.log)
	}
	t.Logf("browser test passed in %v:\n%s", time.Since(started).Round(time.Millisecond), out)
	s.stop()
}
