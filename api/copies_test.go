package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// testClock is the clock grants are checked against, moved by the test.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// copyFixture is rolesFixture with approval before copying required (a
// grant valid 30 minutes unless decided otherwise), a stream recording
// rec-s1 and rec-s2 and an uploaded file rec-up of officer o-a.
func copyFixture(t *testing.T, exempt ...evidence.Role) (string, *testClock, []byte, []byte) {
	t.Helper()
	clock := &testClock{now: time.Now().UTC()}
	srv, _ := rolesFixture(t, func(o *api.Options) {
		o.CopyApproval = api.CopyApproval{Required: true, Exempt: exempt, GrantTTL: 30 * time.Minute, Now: clock.Now}
	})
	stream := storeRecording(t, "rec-s1", 2, 1000)
	storeRecording(t, "rec-s2", 2, 1000)
	path := filepath.Join(t.TempDir(), "note.wav")
	if err := os.WriteFile(path, []byte("RIFF a stand-in for a sound file"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, orig := storeUploaded(t, "rec-up", "note.wav", path, time.Now().Add(-2*time.Hour).UTC().Truncate(time.Second))
	return srv.URL, clock, stream, orig
}

// fetch GETs url as who, with header h (name: value) when given.
func fetch(t *testing.T, url, who string, h ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer tok-"+who)
	if len(h) == 2 {
		req.Header.Set(h[0], h[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type copyReq struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	UsesLeft  int       `json:"uses_left"`
	DecidedBy string    `json:"decided_by"`
	ExpiresAt time.Time `json:"expires_at"`
	Grant     string    `json:"grant"`
}

func askCopy(t *testing.T, u, who, body string) copyReq {
	t.Helper()
	code, b := call(t, u, "POST", "/api/v1/copy-requests", "tok-"+who, body)
	var c copyReq
	if err := json.Unmarshal([]byte(b), &c); code != 201 || err != nil || c.State != "pending" || c.ID == "" {
		t.Fatalf("copy request by %s: %d %s", who, code, b)
	}
	return c
}

func decide(t *testing.T, u, who, id, body string, want int) copyReq {
	t.Helper()
	code, b := call(t, u, "POST", "/api/v1/copy-requests/"+id+"/decision", "tok-"+who, body)
	if code != want {
		t.Fatalf("decision by %s on %s: %d %s, want %d", who, id, code, b, want)
	}
	var c copyReq
	json.Unmarshal([]byte(b), &c)
	return c
}

// copyEvents lists the custody events of approval before copying about
// target, and the downloads and exports.
func copyEvents(t *testing.T, target string) []evidence.CustodyEvent {
	t.Helper()
	events, err := lastFixture.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{TargetIDs: []string{target}})
	if err != nil {
		t.Fatal(err)
	}
	var out []evidence.CustodyEvent
	for _, e := range events {
		switch e.Action {
		case evidence.ActionCopyRequest, evidence.ActionCopyApprove, evidence.ActionCopyRefuse, evidence.ActionCopyUse,
			evidence.ActionDownload, evidence.ActionExport:
			out = append(out, e)
		}
	}
	return out
}

// has reports whether events hold one with that action, actor and outcome
// whose detail holds every one of details.
func has(events []evidence.CustodyEvent, action, actor, outcome string, details ...string) bool {
	for _, e := range events {
		if e.Action != action || e.Actor != actor || e.Outcome != outcome {
			continue
		}
		ok := true
		for _, d := range details {
			ok = ok && strings.Contains(e.Detail, d)
		}
		if ok {
			return true
		}
	}
	return false
}

// The whole path: without a grant a download is refused (saying how to
// ask) while playback stays allowed; a request approved by another
// supervisor allows its uses, by its requester, of its recording only,
// then is used up; officers do not decide, nobody decides their own, a
// decision is final; every step is in the custody ledger.
func TestCopyApprovalFlow(t *testing.T) {
	u, _, stream, orig := copyFixture(t)
	up, s1 := u+"/api/v1/recordings/rec-up", u+"/api/v1/recordings/rec-s1"

	// No grant: 403 saying how to ask, for every kind of download.
	for _, url := range []string{up + "/original", up + "/media?download=1", s1 + "/media?download=1", u + "/api/v1/cases/C-1/export"} {
		code, b := fetch(t, url, "o-a")
		if code != 403 || !strings.Contains(string(b), "copy approval required") || !strings.Contains(string(b), "POST /api/v1/copy-requests") {
			t.Fatalf("%s without a grant: %d %s", url, code, b)
		}
	}
	// Watching is not copying.
	if code, b := fetch(t, s1+"/media", "o-a"); code != 200 || !bytes.Equal(b, stream) {
		t.Fatalf("playback with approval required: %d", code)
	}
	if code, b := fetch(t, up+"/media", "o-a"); code != 200 || !bytes.Equal(b, orig) {
		t.Fatalf("playback of the uploaded file: %d %s", code, b)
	}

	// Asking: bounded, and only for what one may read (the concealing 404).
	for body, want := range map[string]int{
		`{"kind":"recording","id":"rec-up"}`:                                             400, // no reason
		`{"kind":"recording","id":"rec-up","reason":" "}`:                                400,
		`{"kind":"recording","id":"rec-up","reason":"x","uses":0}`:                       400,
		`{"kind":"recording","id":"rec-up","reason":"x","uses":21}`:                      400,
		`{"kind":"device","id":"cam-a","reason":"x"}`:                                    400,
		`{"kind":"recording","id":"nope","reason":"x"}`:                                  404,
		`{"kind":"recording","id":"rec-up","reason":"` + strings.Repeat("x", 501) + `"}`: 400,
	} {
		if code, b := call(t, u, "POST", "/api/v1/copy-requests", "tok-o-a", body); code != want {
			t.Errorf("ask %s: %d %s, want %d", body, code, b, want)
		}
	}
	if code, b := call(t, u, "POST", "/api/v1/copy-requests", "tok-o-b", `{"kind":"recording","id":"rec-up","reason":"x"}`); code != 404 || !strings.Contains(b, "no recording rec-up") {
		t.Fatalf("another unit's officer asks: %d %s", code, b)
	}
	c := askCopy(t, u, "o-a", `{"kind":"recording","id":"rec-up","reason":"prosecutor's request 2026/118","uses":2}`)

	// Not decided yet: no use.
	if code, b := fetch(t, up+"/original?grant="+c.ID, "o-a"); code != 403 || !strings.Contains(string(b), "not decided yet") {
		t.Fatalf("pending grant used: %d %s", code, b)
	}
	// Officers and auditors do not decide; a supervisor of another unit
	// does not see it; nobody decides their own.
	decide(t, u, "o-a", c.ID, `{"approve":true}`, 403)
	decide(t, u, "aud", c.ID, `{"approve":true}`, 403)
	decide(t, u, "s-b", c.ID, `{"approve":true}`, 404)
	own := askCopy(t, u, "s-a", `{"kind":"recording","id":"rec-up","reason":"my own"}`)
	code, b := call(t, u, "POST", "/api/v1/copy-requests/"+own.ID+"/decision", "tok-s-a", `{"approve":true}`)
	if code != 403 || !strings.Contains(b, "other than its requester") {
		t.Fatalf("own request approved: %d %s", code, b)
	}
	decide(t, u, "s-a", c.ID, `{"approve":true,"valid_for":"169h"}`, 400)
	// Granted by another supervisor; final.
	g := decide(t, u, "s-a", c.ID, `{"approve":true,"note":"for the court file"}`, 200)
	if g.State != "granted" || g.DecidedBy != "s-a" || g.UsesLeft != 2 || g.Grant != "grant="+c.ID {
		t.Fatalf("granted: %+v", g)
	}
	decide(t, u, "s-a", c.ID, `{"approve":false}`, 409)

	// Another user cannot use it (an auditor reads the recording, the
	// grant is not theirs); it opens neither another recording nor a case.
	if code, b := fetch(t, up+"/original?grant="+c.ID, "aud"); code != 403 || !strings.Contains(string(b), "of yours") {
		t.Fatalf("another user's grant: %d %s", code, b)
	}
	if code, b := fetch(t, u+"/api/v1/recordings/rec-s2/media?download=1&grant="+c.ID, "o-a"); code != 403 || !strings.Contains(string(b), "is for recording rec-up") {
		t.Fatalf("grant of rec-up used on rec-s2: %d %s", code, b)
	}
	if code, b := fetch(t, u+"/api/v1/cases/C-1/export?grant="+c.ID, "o-a"); code != 403 || !strings.Contains(string(b), "is for recording rec-up") {
		t.Fatalf("grant of rec-up used for a case export: %d %s", code, b)
	}

	// Its two uses: the query parameter, then the header; then used up.
	if code, b := fetch(t, up+"/original?grant="+c.ID, "o-a"); code != 200 || !bytes.Equal(b, orig) {
		t.Fatalf("first use: %d %s", code, b)
	}
	if code, b := fetch(t, up+"/media?download=1", "o-a", api.GrantHeader, c.ID); code != 200 || !bytes.Equal(b, orig) {
		t.Fatalf("second use: %d %s", code, b)
	}
	if code, b := fetch(t, up+"/original?grant="+c.ID, "o-a"); code != 403 || !strings.Contains(string(b), "used up") {
		t.Fatalf("third use of two: %d %s", code, b)
	}
	code, b = call(t, u, "GET", "/api/v1/copy-requests/"+c.ID, "tok-o-a", "")
	if code != 200 || !strings.Contains(b, `"state": "used"`) || !strings.Contains(b, `"uses_left": 0`) {
		t.Fatalf("used up: %d %s", code, b)
	}

	// Every step in the ledger, with actor, target and outcome.
	events := copyEvents(t, "rec-up")
	for _, w := range []struct{ action, actor, outcome string }{
		{evidence.ActionCopyUse, "o-a", evidence.OutcomeDenied}, // no grant
		{evidence.ActionCopyRequest, "o-a", evidence.OutcomeOK},
		{evidence.ActionCopyApprove, "s-a", evidence.OutcomeDenied}, // own request
		{evidence.ActionCopyApprove, "s-a", evidence.OutcomeOK},
		{evidence.ActionCopyUse, "aud", evidence.OutcomeDenied},
		{evidence.ActionDownload, "o-a", evidence.OutcomeOK},
	} {
		if !has(events, w.action, w.actor, w.outcome) {
			t.Errorf("no %s by %s (%s) in the ledger", w.action, w.actor, w.outcome)
		}
	}
	if !has(events, evidence.ActionCopyRequest, "o-a", evidence.OutcomeOK, c.ID, "prosecutor's request 2026/118", "2 use(s)") ||
		!has(events, evidence.ActionCopyApprove, "s-a", evidence.OutcomeOK, c.ID, "granted to o-a", "for the court file") ||
		!has(events, evidence.ActionCopyUse, "o-a", evidence.OutcomeOK, c.ID, "1 of 2 uses left", "/original") ||
		!has(events, evidence.ActionCopyUse, "o-a", evidence.OutcomeOK, c.ID, "0 of 2 uses left", "/media?download=1") ||
		!has(events, evidence.ActionCopyUse, "o-a", evidence.OutcomeDenied, c.ID, "used up") {
		for _, e := range events {
			t.Logf("%d %s %s %s %s/%s %s", e.Seq, e.Action, e.Actor, e.Outcome, e.TargetKind, e.TargetID, e.Detail)
		}
		t.Fatal("the ledger does not tell every step")
	}
	for _, e := range events {
		if e.TargetKind != "recording" || e.TargetID != "rec-up" {
			t.Errorf("event %d about %s %s", e.Seq, e.TargetKind, e.TargetID)
		}
	}
	if !has(copyEvents(t, "rec-s2"), evidence.ActionCopyUse, "o-a", evidence.OutcomeDenied, c.ID, "is for recording rec-up") {
		t.Error("the grant tried on rec-s2 is not in its ledger")
	}

	// Who sees which: the requester theirs, the supervisor those they may
	// decide, the auditor all, another unit's nothing of it.
	for who, want := range map[string]int{"o-a": 1, "s-a": 2, "aud": 2, "s-b": 0, "o-b": 0} {
		code, b := call(t, u, "GET", "/api/v1/copy-requests", "tok-"+who, "")
		var list struct {
			Items    []copyReq `json:"items"`
			Required bool      `json:"approval_required"`
		}
		if err := json.Unmarshal([]byte(b), &list); code != 200 || err != nil || len(list.Items) != want || !list.Required {
			t.Errorf("list as %s: %d %s, want %d items", who, code, b, want)
		}
	}
	if code, b := call(t, u, "GET", "/api/v1/copy-requests?state=pending", "tok-s-a", ""); code != 200 || !strings.Contains(b, own.ID) || strings.Contains(b, c.ID) {
		t.Errorf("pending as s-a: %d %s", code, b)
	}
	if code, b := call(t, u, "GET", "/api/v1/copy-requests?state=used", "tok-o-a", ""); code != 200 || !strings.Contains(b, c.ID) {
		t.Errorf("used as o-a: %d %s", code, b)
	}
	if code, _ := call(t, u, "GET", "/api/v1/copy-requests/"+c.ID, "tok-s-b", ""); code != 404 {
		t.Errorf("another unit's supervisor reads the request: %d", code)
	}
	if code, b := call(t, u, "GET", "/api/v1/session", "tok-o-a", ""); code != 200 || !strings.Contains(b, `"copy_approval": "required"`) {
		t.Errorf("session: %d %s", code, b)
	}
}

// A grant expires: its default validity (the server's), or the one its
// decision gave; a refused request opens nothing.
func TestCopyGrantExpiry(t *testing.T) {
	u, clock, stream, _ := copyFixture(t)
	s1 := u + "/api/v1/recordings/rec-s1/media?download=1&grant="
	c := askCopy(t, u, "o-a", `{"kind":"recording","id":"rec-s1","reason":"defence disclosure","uses":5}`)
	g := decide(t, u, "s-a", c.ID, `{"approve":true}`, 200)
	if want := clock.Now().Add(30 * time.Minute); g.ExpiresAt.Sub(want).Abs() > time.Millisecond {
		t.Fatalf("expires %s, want %s (the server's 30 minutes)", g.ExpiresAt, want)
	}
	if code, b := fetch(t, s1+c.ID, "o-a"); code != 200 || !bytes.Equal(b, stream) {
		t.Fatalf("use: %d", code)
	}
	clock.add(31 * time.Minute)
	if code, b := fetch(t, s1+c.ID, "o-a"); code != 403 || !strings.Contains(string(b), "expired at") {
		t.Fatalf("expired grant: %d %s", code, b)
	}
	if code, b := call(t, u, "GET", "/api/v1/copy-requests/"+c.ID, "tok-o-a", ""); code != 200 || !strings.Contains(b, `"state": "expired"`) || !strings.Contains(b, `"uses_left": 4`) {
		t.Fatalf("expired: %d %s", code, b)
	}
	// valid_for given by the decision.
	c2 := askCopy(t, u, "o-a", `{"kind":"recording","id":"rec-s1","reason":"again"}`)
	decide(t, u, "s-a", c2.ID, `{"approve":true,"valid_for":"2h"}`, 200)
	clock.add(119 * time.Minute)
	if code, _ := fetch(t, s1+c2.ID, "o-a"); code != 200 {
		t.Fatalf("within its 2h: %d", code)
	}
	c3 := askCopy(t, u, "o-a", `{"kind":"recording","id":"rec-s1","reason":"and again","uses":3}`)
	decide(t, u, "s-a", c3.ID, `{"approve":true,"valid_for":"1h"}`, 200)
	clock.add(61 * time.Minute)
	if code, _ := fetch(t, s1+c3.ID, "o-a"); code != 403 {
		t.Fatalf("past its 1h: %d", code)
	}
	// Refused: nothing.
	c4 := askCopy(t, u, "o-a", `{"kind":"recording","id":"rec-s1","reason":"curiosity"}`)
	if r := decide(t, u, "s-a", c4.ID, `{"approve":false,"note":"no case"}`, 200); r.State != "refused" {
		t.Fatalf("refused: %+v", r)
	}
	if code, b := fetch(t, s1+c4.ID, "o-a"); code != 403 || !strings.Contains(string(b), "was refused by s-a") {
		t.Fatalf("refused grant used: %d %s", code, b)
	}
	if !has(copyEvents(t, "rec-s1"), evidence.ActionCopyRefuse, "s-a", evidence.OutcomeOK, c4.ID, "no case") ||
		!has(copyEvents(t, "rec-s1"), evidence.ActionCopyUse, "o-a", evidence.OutcomeDenied, c.ID, "expired") {
		t.Fatal("refusal or expiry not in the ledger")
	}
}

// A case's export takes a grant of the case; the events carry the case.
func TestCopyCaseExport(t *testing.T) {
	u, _, _, _ := copyFixture(t)
	c := askCopy(t, u, "o-a", `{"kind":"case","id":"C-1","reason":"court bundle"}`)
	decide(t, u, "s-a", c.ID, `{"approve":true}`, 200)
	if code, b := fetch(t, u+"/api/v1/recordings/rec-up/original?grant="+c.ID, "o-a"); code != 403 || !strings.Contains(string(b), "is for case C-1") {
		t.Fatalf("case grant on a recording: %d %s", code, b)
	}
	if code, b := fetch(t, u+"/api/v1/cases/C-1/export?grant="+c.ID, "o-a"); code != 200 || !bytes.HasPrefix(b, []byte("PK")) {
		t.Fatalf("export with a grant: %d %.200s", code, b)
	}
	if code, _ := fetch(t, u+"/api/v1/cases/C-1/export?grant="+c.ID, "o-a"); code != 403 {
		t.Fatalf("second export on one use: %d", code)
	}
	events, err := lastFixture.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{CaseID: "C-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !has(events, evidence.ActionCopyRequest, "o-a", evidence.OutcomeOK, c.ID) || !has(events, evidence.ActionCopyApprove, "s-a", evidence.OutcomeOK, c.ID) ||
		!has(events, evidence.ActionCopyUse, "o-a", evidence.OutcomeOK, c.ID, "/export") || !has(events, evidence.ActionExport, "o-a", evidence.OutcomeOK) ||
		!has(events, evidence.ActionCopyUse, "o-a", evidence.OutcomeDenied, c.ID, "used up") {
		t.Fatal("the case's ledger does not tell the copy's steps")
	}
}

// Many downloads at once on a grant of 2 uses: exactly 2 go out.
func TestCopyGrantConcurrentUses(t *testing.T) {
	u, _, _, _ := copyFixture(t)
	c := askCopy(t, u, "o-a", `{"kind":"recording","id":"rec-up","reason":"race","uses":2}`)
	decide(t, u, "s-a", c.ID, `{"approve":true}`, 200)
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = fetch(t, u+"/api/v1/recordings/rec-up/original?grant="+c.ID, "o-a")
		}()
	}
	wg.Wait()
	ok := 0
	for _, code := range codes {
		if code == 200 {
			ok++
		} else if code != 403 {
			t.Errorf("status %d", code)
		}
	}
	if ok != 2 {
		t.Fatalf("%d downloads on 2 uses: %v", ok, codes)
	}
}

// Exempt roles (auditors here) copy without a grant, each copy still in
// the ledger; others still need one.
func TestCopyApprovalExempt(t *testing.T) {
	u, _, _, orig := copyFixture(t, evidence.RoleAuditor)
	if code, b := fetch(t, u+"/api/v1/recordings/rec-up/original", "aud"); code != 200 || !bytes.Equal(b, orig) {
		t.Fatalf("exempt auditor: %d %s", code, b)
	}
	if code, _ := fetch(t, u+"/api/v1/cases/C-1/export", "aud"); code != 200 {
		t.Fatalf("exempt auditor's export: %d", code)
	}
	if code, _ := fetch(t, u+"/api/v1/recordings/rec-up/original", "o-a"); code != 403 {
		t.Fatalf("officer without a grant: %d", code)
	}
	if !has(copyEvents(t, "rec-up"), evidence.ActionDownload, "aud", evidence.OutcomeOK, "original file") {
		t.Fatal("the exempt download is not in the ledger")
	}
	if code, b := call(t, u, "GET", "/api/v1/session", "tok-aud", ""); code != 200 || !strings.Contains(b, `"copy_approval": "exempt"`) {
		t.Errorf("session: %d %s", code, b)
	}
}

// Approval off (the zero Options): today's behaviour, no grant asked.
func TestCopyApprovalOff(t *testing.T) {
	srv, _ := rolesFixture(t)
	path := filepath.Join(t.TempDir(), "note.wav")
	os.WriteFile(path, []byte("RIFF sound"), 0o600)
	_, orig := storeUploaded(t, "rec-up", "note.wav", path, time.Now().Add(-time.Hour).UTC().Truncate(time.Second))
	if code, b := fetch(t, srv.URL+"/api/v1/recordings/rec-up/original", "o-a"); code != 200 || !bytes.Equal(b, orig) {
		t.Fatalf("off: %d %s", code, b)
	}
	if code, _ := fetch(t, srv.URL+"/api/v1/cases/C-1/export", "o-a"); code != 200 {
		t.Fatalf("off, export: %d", code)
	}
	if code, b := call(t, srv.URL, "GET", "/api/v1/session", "tok-o-a", ""); code != 200 || !strings.Contains(b, `"copy_approval": "off"`) {
		t.Errorf("session: %d %s", code, b)
	}
	for _, e := range copyEvents(t, "rec-up") {
		if e.Action == evidence.ActionCopyUse {
			t.Errorf("a grant event with approval off: %+v", e)
		}
	}
}
