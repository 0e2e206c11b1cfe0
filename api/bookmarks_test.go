package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Bookmarks: an officer marks a moment of their recording, by offset or by
// time, within it, with a note; others who may read it see it, others
// don't; a supervisor removes it with a reason, once; both steps are in the
// custody ledger.
func TestBookmarks(t *testing.T) {
	srv, _ := rolesFixture(t)
	call := func(method, path, who, body string) (int, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok-"+who)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	const base = "/api/v1/recordings/rec-a/bookmarks"
	for _, bad := range []string{
		`{"offset_seconds": 3600, "note": "after the end (it is live: now)"}`,
		`{"offset_seconds": -1, "note": "before the start"}`,
		`{"at": "2001-01-01T00:00:00Z", "note": "before the start"}`,
		`{"note": "no moment"}`,
		`{"offset_seconds": 0, "at": "2001-01-01T00:00:00Z", "note": "two moments"}`,
		`{"offset_seconds": 0, "note": "` + strings.Repeat("x", 501) + `"}`,
		`{"offset_seconds": 0, "note": "a bell \u0007"}`,
		`{"offset_seconds": 0, "note": "x", "color": "red"}`,
	} {
		if code, body := call("POST", base, "o-a", bad); code != 400 {
			t.Errorf("%s: %d %s, want 400", bad, code, body)
		}
	}
	code, body := call("POST", base, "o-a", `{"offset_seconds": 0.001, "note": "the plate\nline two"}`)
	var made struct {
		evidence.Bookmark
		OffsetSeconds float64 `json:"offset_seconds"`
	}
	if code != 201 || json.Unmarshal(body, &made) != nil || made.CreatedBy != "o-a" || made.Note != "the plate\nline two" || made.OffsetSeconds != 0.001 {
		t.Fatalf("set: %d %s", code, body)
	}
	if code, body := call("GET", base, "o-b", ""); code != 404 {
		t.Fatalf("another unit's officer lists them: %d %s", code, body)
	}
	if code, body := call("GET", base, "aud", ""); code != 200 || !strings.Contains(string(body), made.ID) {
		t.Fatalf("an auditor lists them: %d %s", code, body)
	}
	rm := base + "/" + made.ID + "/remove"
	if code, _ := call("POST", rm, "s-a", `{"reason": " "}`); code != 400 {
		t.Fatalf("removed without a reason: %d", code)
	}
	if code, _ := call("POST", "/api/v1/recordings/nope/bookmarks/"+made.ID+"/remove", "s-a", `{"reason": "x"}`); code != 404 {
		t.Fatalf("removed through another recording: %d", code)
	}
	if code, body := call("POST", rm, "s-a", `{"reason": "wrong moment"}`); code != 200 || !strings.Contains(string(body), `"removed_by": "s-a"`) {
		t.Fatalf("remove: %d %s", code, body)
	}
	if code, _ := call("POST", rm, "o-a", `{"reason": "again"}`); code != 409 {
		t.Fatalf("removed twice: %d, want 409", code)
	}
	if code, body := call("GET", base, "o-a", ""); code != 200 || !strings.Contains(string(body), `"removed_reason": "wrong moment"`) {
		t.Fatalf("the removed bookmark is listed as removed: %d %s", code, body)
	}
	events, err := lastFixture.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var set, removed bool
	for _, e := range events {
		set = set || e.Action == evidence.ActionBookmark && e.Actor == "o-a" && e.TargetID == "rec-a" && strings.Contains(e.Detail, made.ID) && strings.Contains(e.Detail, "the plate line two")
		removed = removed || e.Action == evidence.ActionBookmarkRemoved && e.Actor == "s-a" && strings.Contains(e.Detail, "wrong moment")
	}
	if !set || !removed {
		t.Fatalf("custody ledger: set %v, removed %v", set, removed)
	}
}
