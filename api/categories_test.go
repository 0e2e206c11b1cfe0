package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Retention classes through the API: the configured classes are listed;
// an officer categorizes their recording, which then shows its categories
// and the time it is kept until (the longest class; held while a case
// links it; permanent); an officer may not shorten it, a supervisor may,
// but never of their own footage; unknown categories, a missing reason and
// a deleted recording are refused; every change is a custody event naming
// the old and new categories, who and why.
func TestCategories(t *testing.T) {
	srv, denied := rolesFixture(t)
	ctx := context.Background()
	cat := lastFixture.cat
	end := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	for id, officer := range map[string]string{"rec-done": "o-a", "rec-s": "s-a", "rec-gone": "o-a"} {
		if err := cat.CreateRecording(ctx, evidence.Recording{ID: id, DeviceID: "cam-a", OfficerID: officer, StartedAt: end.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := cat.FinishRecording(ctx, id, evidence.StateComplete, end, "publisher stopped"); err != nil {
			t.Fatal(err)
		}
	}
	call := func(method, path, who, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok-"+who)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	type retention struct {
		Categories  []string `json:"categories"`
		RetainUntil *string  `json:"retain_until"`
		Rule        string   `json:"retention_rule"`
	}
	shown := func(id, who string) retention {
		t.Helper()
		code, body := call("GET", "/api/v1/recordings/"+id, who, "")
		var r retention
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Categories == nil {
			t.Fatalf("GET %s as %s: %d %s", id, who, code, body)
		}
		return r
	}
	until := func(r retention) string {
		if r.RetainUntil == nil {
			return "null"
		}
		return *r.RetainUntil
	}
	put := func(id, who, body string) (int, string) {
		return call("PUT", "/api/v1/recordings/"+id+"/categories", who, body)
	}

	code, body := call("GET", "/api/v1/categories", "o-a", "")
	if code != 200 || !strings.Contains(body, `"name": "arrest"`) || !strings.Contains(body, `"period": "3y"`) ||
		!strings.Contains(body, `"important_retention": "2y"`) || !strings.Contains(body, `"unlinked_retention": "180d"`) || !strings.Contains(body, `"retention_minimum": "180d"`) {
		t.Fatalf("GET /api/v1/categories: %d %s", code, body)
	}
	// No category: the unlinked period from its end.
	if r := shown("rec-done", "o-a"); len(r.Categories) != 0 || until(r) != "2027-05-30T10:30:00Z" || !strings.Contains(r.Rule, "no category") {
		t.Fatalf("before: %+v (%s)", r, until(r))
	}
	for _, bad := range []string{
		`{"categories": ["arrest"]}`,
		`{"categories": ["arrest"], "reason": "  "}`,
		`{"categories": ["burglary"], "reason": "x"}`,
		`{"categories": ["arrest", "arrest"], "reason": "x"}`,
		`{"reason": "no set"}`,
	} {
		if code, body := put("rec-done", "o-a", bad); code != 400 {
			t.Errorf("%s: %d %s, want 400", bad, code, body)
		}
	}
	// The officer adds the longest class: kept 3 years from its end.
	code, body = put("rec-done", "o-a", `{"categories": ["traffic_stop", "arrest"], "reason": "arrest at the stop"}`)
	if code != 200 || !strings.Contains(body, `"retain_until": "2029-12-01T10:30:00Z"`) || !strings.Contains(body, "category arrest (3y)") {
		t.Fatalf("officer adds arrest: %d %s", code, body)
	}
	if r := shown("rec-done", "aud"); strings.Join(r.Categories, ",") != "arrest,traffic_stop" || until(r) != "2029-12-01T10:30:00Z" {
		t.Fatalf("after: %+v (%s)", r, until(r))
	}
	if code, body := call("GET", "/api/v1/recordings?device=cam-a", "s-a", ""); code != 200 || !strings.Contains(body, `"retain_until": "2029-12-01T10:30:00Z"`) {
		t.Fatalf("the list shows retention: %d %s", code, body)
	}
	// Removing it would shorten the retention: not the officer's.
	before, _ := denied.count()
	if code, body := put("rec-done", "o-a", `{"categories": ["traffic_stop"], "reason": "not an arrest after all"}`); code != 403 {
		t.Fatalf("officer shortens: %d %s, want 403", code, body)
	}
	if after, _ := denied.count(); after != before+1 {
		t.Fatal("the refusal was not audited")
	}
	if code, body := put("rec-done", "o-b", `{"categories": [], "reason": "x"}`); code != 404 {
		t.Fatalf("another unit's officer: %d %s, want 404", code, body)
	}
	if code, body := put("rec-done", "aud", `{"categories": [], "reason": "x"}`); code != 403 {
		t.Fatalf("an auditor: %d %s, want 403", code, body)
	}
	// The unit's supervisor may.
	code, body = put("rec-done", "s-a", `{"categories": ["traffic_stop"], "reason": "not an arrest after all"}`)
	if code != 200 || !strings.Contains(body, `"retain_until": "2027-05-30T10:30:00Z"`) {
		t.Fatalf("supervisor shortens: %d %s", code, body)
	}
	// A case links it: held, whatever its class says.
	if err := cat.LinkEvidence(ctx, evidence.EvidenceLink{ID: "l-1", CaseID: "C-1", RecordingID: "rec-done", LinkedBy: "o-a"}); err != nil {
		t.Fatal(err)
	}
	if r := shown("rec-done", "o-a"); until(r) != "held by case" || !strings.Contains(r.Rule, "traffic_stop") {
		t.Fatalf("linked: %+v (%s)", r, until(r))
	}
	// A permanent class.
	if code, body := put("rec-done", "o-a", `{"categories": ["traffic_stop", "complaint"], "reason": "complaint filed"}`); code != 200 || !strings.Contains(body, `"retain_until": "permanent"`) {
		t.Fatalf("complaint: %d %s", code, body)
	}
	// A supervisor shortens no retention of their own footage.
	if code, body := put("rec-s", "s-a", `{"categories": ["arrest"], "reason": "arrest"}`); code != 200 {
		t.Fatalf("supervisor lengthens their own: %d %s", code, body)
	}
	if code, body := put("rec-s", "s-a", `{"categories": [], "reason": "oops"}`); code != 403 {
		t.Fatalf("supervisor shortens their own: %d %s, want 403", code, body)
	}
	// Deleted footage keeps the categories its tombstone names.
	if err := cat.MarkDeleted(ctx, "rec-gone", end.Add(200*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if code, body := put("rec-gone", "o-a", `{"categories": ["arrest"], "reason": "late"}`); code != 409 {
		t.Fatalf("a deleted recording: %d %s, want 409", code, body)
	}
	events, err := cat.CustodyEvents(ctx, catalog.CustodyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, e := range events {
		if e.Action == evidence.ActionCategories && e.TargetID == "rec-done" {
			changes = append(changes, e.Actor+": "+e.Detail)
		}
	}
	want := []string{
		"o-a: categories [none] -> [arrest traffic_stop] (retention until 2027-05-30T10:30:00Z by no category: unlinked retention (180d) from its end -> until 2029-12-01T10:30:00Z by category arrest (3y) from its end): arrest at the stop",
		"s-a: categories [arrest traffic_stop] -> [traffic_stop]",
		"o-a: categories [traffic_stop] -> [complaint traffic_stop] (retention until 2027-05-30T10:30:00Z by category traffic_stop (180d) from its end -> permanent): complaint filed",
	}
	if len(changes) != len(want) {
		t.Fatalf("custody events of the changes: %q", changes)
	}
	for i := range want {
		if !strings.HasPrefix(changes[i], want[i]) {
			t.Errorf("custody event %d: %q, want %q", i, changes[i], want[i])
		}
	}
}
