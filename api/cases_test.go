package api_test

import (
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/evidence"
)

func call(t *testing.T, srv string, method, path, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A case through its whole workflow: filed by its officer, footage linked,
// no self-review, no skipped step, a link removed with its reason kept;
// its custody excerpt names every step and checks out offline.
func TestCaseWorkflowAndCustody(t *testing.T) {
	srv, _ := rolesFixture(t)
	u := srv.URL
	must := func(code int, body string, want int) {
		t.Helper()
		if code != want {
			t.Fatalf("got %d, want %d: %s", code, want, body)
		}
	}
	code, body := call(t, u, "POST", "/api/v1/cases", "tok-o-a", `{"id":"C-9","title":"Illegal dumping","members":["o-b"]}`)
	must(code, body, 201)
	if !strings.Contains(body, `"officer": "o-a"`) || !strings.Contains(body, `"state": "filed"`) {
		t.Fatalf("new case: %s", body)
	}
	code, body = call(t, u, "POST", "/api/v1/cases", "tok-o-a", `{"id":"C-10","officer":"o-b"}`)
	must(code, body, 403) // an officer files only their own
	code, body = call(t, u, "POST", "/api/v1/cases/C-9/evidence", "tok-o-a", `{"recording_id":"rec-a","note":"the dumping"}`)
	must(code, body, 201)
	var link, window struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(body), &link)
	code, body = call(t, u, "POST", "/api/v1/cases/C-9/evidence", "tok-o-a",
		`{"recording_id":"rec-a","from":"2026-01-01T10:00:00Z","to":"2026-01-01T10:05:00Z","note":"the first minutes"}`)
	must(code, body, 201)
	json.Unmarshal([]byte(body), &window)
	// o-b is on the case: the linked footage is now theirs to read.
	code, body = call(t, u, "GET", "/api/v1/recordings/rec-a", "tok-o-b", "")
	must(code, body, 200)

	step := func(who, to, reason string) (int, string) {
		return call(t, u, "POST", "/api/v1/cases/C-9/transition", who, `{"to":"`+to+`","reason":"`+reason+`"}`)
	}
	code, body = step("tok-o-a", "under_review", "skip ahead")
	must(code, body, 409)
	code, body = step("tok-o-a", "investigating", "opened")
	must(code, body, 200)
	code, body = step("tok-o-a", "under_review", "evidence complete")
	must(code, body, 200)
	code, body = step("tok-o-a", "decided", "I approve my own case")
	must(code, body, 403)
	code, body = step("tok-aud", "decided", "auditors change nothing")
	must(code, body, 403)
	code, body = step("tok-s-a", "archived", "skip")
	must(code, body, 409)
	code, body = call(t, u, "POST", "/api/v1/cases/C-9/evidence/"+window.ID+"/unlink", "tok-s-a", `{"reason":""}`)
	must(code, body, 400)
	code, body = call(t, u, "POST", "/api/v1/cases/C-9/evidence/"+window.ID+"/unlink", "tok-s-a", `{"reason":"wrong recording"}`)
	must(code, body, 200)
	code, body = step("tok-s-a", "decided", "fine issued")
	must(code, body, 200)
	// Decided: what the case was decided on stays linked, and on hold.
	code, body = call(t, u, "POST", "/api/v1/cases/C-9/evidence/"+link.ID+"/unlink", "tok-s-a", `{"reason":"no longer needed"}`)
	must(code, body, 409)
	code, body = step("tok-s-a", "closed", "done")
	must(code, body, 200)
	code, body = call(t, u, "POST", "/api/v1/cases/C-9/evidence", "tok-s-a", `{"recording_id":"rec-a"}`)
	must(code, body, 409) // closed: evidence settled

	code, body = call(t, u, "GET", "/api/v1/cases/C-9", "tok-aud", "")
	must(code, body, 200)
	for _, want := range []string{`"state": "closed"`, `"unlink_reason": "wrong recording"`, `"active": false`, `"active": true`, `"reason": "fine issued"`} {
		if !strings.Contains(body, want) {
			t.Fatalf("case lacks %s: %s", want, body)
		}
	}

	code, body = call(t, u, "GET", "/api/v1/cases/C-9/custody", "tok-aud", "")
	must(code, body, 200)
	var x evidence.Excerpt
	if err := json.Unmarshal([]byte(body), &x); err != nil {
		t.Fatal(err)
	}
	keys := lastFixture.keys.Public()
	if err := evidence.VerifyExcerpt(x, func(id string) ed25519.PublicKey {
		for _, k := range keys {
			if k.ID == id {
				return k.Key
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("the case's custody excerpt does not verify: %v", err)
	}
	// The whole ledger checks out; then a row edited in the database is named.
	code, body = call(t, u, "POST", "/api/v1/custody/verify", "tok-aud", "")
	if code != 200 || !strings.Contains(body, `"ok": true`) {
		t.Fatalf("ledger check: %d %s", code, body)
	}
	if _, err := lastFixture.cat.DB().Exec(`UPDATE custody_events SET actor = 'someone-else' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	code, body = call(t, u, "POST", "/api/v1/custody/verify", "tok-aud", "")
	if code != 200 || !strings.Contains(body, `"ok": false`) || !strings.Contains(body, "event 3") {
		t.Fatalf("ledger check after an edited row: %d %s", code, body)
	}
	var actions []string
	for _, e := range x.Events {
		actions = append(actions, e.Action+"/"+e.Outcome+"/"+e.Actor)
	}
	got := strings.Join(actions, " ")
	for _, want := range []string{"case_create/ok/o-a", "link/ok/o-a", "hold/ok/o-a", "playback", "case_transition/ok/o-a",
		"case_transition/denied/o-a", "case_transition/ok/s-a", "unlink/ok/s-a", "unlink/denied/s-a"} {
		if want == "playback" {
			continue // reading the recording's JSON is not a playback
		}
		if !strings.Contains(got, want) {
			t.Errorf("custody lacks %s: %s", want, got)
		}
	}
}

// The leak of issue 10 (finding 5): a case's custody excerpt showed other
// cases' events about its footage (an internal-affairs note about the
// officer) and what happened to the footage after it left the case. Now it
// shows the case's own events and its recordings' only while linked; the
// rest only as digests, and the excerpt still checks out offline.
func TestCaseExcerptScoped(t *testing.T) {
	srv, _ := rolesFixture(t)
	u := srv.URL
	addUser(t, "o-a2", evidence.RoleOfficer, "a")
	must := func(code int, body string, want int) {
		t.Helper()
		if code != want {
			t.Fatalf("got %d, want %d: %s", code, want, body)
		}
	}
	code, body := call(t, u, "POST", "/api/v1/cases", "tok-s-a", `{"id":"IA-1","title":"Complaint","officer":"o-a2"}`)
	must(code, body, 201)
	code, body = call(t, u, "POST", "/api/v1/cases/IA-1/evidence", "tok-s-a", `{"recording_id":"rec-a","note":"internal affairs: complaint about o-a"}`)
	must(code, body, 201)
	code, body = call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"rec-a","note":"the stop"}`)
	must(code, body, 201)
	var link struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(body), &link)
	code, body = call(t, u, "POST", "/api/v1/recordings/rec-a/verify", "tok-aud", "")
	must(code, body, 200)
	// Another unit's attempt to take the footage into its case is refused,
	// and is not this case's story either.
	code, body = call(t, u, "POST", "/api/v1/cases", "tok-s-b", `{"id":"IA-B","title":"Complaint","officer":"o-b"}`)
	must(code, body, 201)
	code, body = call(t, u, "POST", "/api/v1/cases/IA-B/evidence", "tok-s-b", `{"recording_id":"rec-a","note":"complaint about o-a"}`)
	must(code, body, 400)
	code, body = call(t, u, "POST", "/api/v1/cases/C-1/evidence/"+link.ID+"/unlink", "tok-o-a", `{"reason":"wrong stop"}`)
	must(code, body, 200)
	code, body = call(t, u, "POST", "/api/v1/recordings/rec-a/verify", "tok-s-a", "")
	must(code, body, 200)

	code, body = call(t, u, "GET", "/api/v1/cases/C-1/custody", "tok-o-a", "")
	must(code, body, 200)
	if strings.Contains(body, "internal affairs") || strings.Contains(body, "IA-1") || strings.Contains(body, "IA-B") || strings.Contains(body, "complaint") {
		t.Fatalf("another case's events in the excerpt: %s", body)
	}
	var x evidence.Excerpt
	if err := json.Unmarshal([]byte(body), &x); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range x.Events {
		got = append(got, e.Action+"/"+e.Actor)
	}
	want := "link/o-a hold/o-a verify/aud unlink/o-a"
	if strings.Join(got, " ") != want {
		t.Fatalf("excerpt events %v, want %s (the verification after the unlink is not the case's)", got, want)
	}
	keys := lastFixture.keys.Public()
	if err := evidence.VerifyExcerpt(x, func(id string) ed25519.PublicKey {
		for _, k := range keys {
			if k.ID == id {
				return k.Key
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("the scoped excerpt does not verify: %v", err)
	}
	// The events left out are there as digests, so the chain still holds.
	if len(x.Links) == 0 {
		t.Fatal("no digests of the other events")
	}
}
