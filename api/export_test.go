package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
)

// The export endpoint: who may, what it answers, and that the export is
// in the ledger and in the zip's own custody excerpt. (The full export of
// real footage is tested end to end in cmd/bodycam.)
func TestCaseExportAPI(t *testing.T) {
	srv, _ := rolesFixture(t)
	get := func(who string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/cases/C-1/export", nil)
		if who != "" {
			req.Header.Set("Authorization", "Bearer tok-"+who)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for who, want := range map[string]int{"": 401, "o-b": 404, "s-b": 404, "adm": 403} {
		if resp, body := get(who); resp.StatusCode != want {
			t.Errorf("export as %q: %d %s, want %d", who, resp.StatusCode, body, want)
		}
	}
	if code, _ := call(t, srv.URL, "HEAD", "/api/v1/cases/C-1/export", "tok-aud", ""); code != 405 {
		t.Errorf("HEAD of the export: %d, want 405 (it would record an export that never left)", code)
	}
	// A case without footage exports (and verifies) as such.
	resp, body := get("aud")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="case-C-1.zip"` {
		t.Fatalf("export: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	rep := export.Verify(bytes.NewReader(body), int64(len(body)), export.Options{TrustedKey: lastFixture.keys.Public()[0].Key})
	if !rep.OK || rep.CaseID != "C-1" || rep.ExportedBy != "aud" {
		t.Fatalf("the export does not verify: %+v", rep)
	}
	// The ledger has it.
	code, cust := call(t, srv.URL, "GET", "/api/v1/cases/C-1/custody", "tok-s-a", "")
	var x evidence.Excerpt
	if err := json.Unmarshal([]byte(cust), &x); code != 200 || err != nil {
		t.Fatalf("custody: %d %v", code, err)
	}
	found := false
	for _, e := range x.Events {
		found = found || (e.Action == evidence.ActionExport && e.Actor == "aud" && e.TargetID == "C-1" && strings.Contains(e.Detail, "case-C-1.zip"))
	}
	if !found {
		t.Fatalf("no export event in the ledger: %s", cust)
	}
	// Footage still being recorded (no signed manifest yet) is not exported.
	if code, body := call(t, srv.URL, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"rec-a"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}
	if resp, body := get("o-a"); resp.StatusCode != 409 || !strings.Contains(string(body), "rec-a") {
		t.Fatalf("export with a live recording: %d %s", resp.StatusCode, body)
	}
}
