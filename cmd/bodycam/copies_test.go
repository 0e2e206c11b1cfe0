package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// auditorsExempt starts a server whose auditors download and export
// without a grant, for tests about something else.
var auditorsExempt = []string{"--copy-approval-exempt", "auditor"}

// grantCopy asks, as requester, for the copy body names, has approver
// grant it, and returns the grant's id.
func (s *server) grantCopy(requester, approver, body string) string {
	s.t.Helper()
	code, b := s.call("POST", "/api/v1/copy-requests", requester, body)
	var c struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(b), &c); code != 201 || err != nil || c.ID == "" {
		s.t.Fatalf("copy request: %d %s", code, b)
	}
	if code, b := s.call("POST", "/api/v1/copy-requests/"+c.ID+"/decision", approver, `{"approve":true,"note":"granted in the test"}`); code != 200 || !strings.Contains(b, `"state": "granted"`) {
		s.t.Fatalf("grant: %d %s", code, b)
	}
	return c.ID
}

// bodycam serve requires approval before copying by default: an export
// without a grant is refused saying how to ask; one granted by a
// supervisor goes out once; the requester's own supervisor role does not
// let them grant it; every step is in the case's custody record.
func TestCopyApprovalEndToEnd(t *testing.T) {
	s := start(t, t.TempDir())
	admin := s.token()
	officer := s.roleToken(admin, "o-1", "officer")
	sup := s.roleToken(admin, "s-1", "supervisor")
	sup2 := s.roleToken(admin, "s-2", "supervisor")
	if code, body := s.call("POST", "/api/v1/cases", officer, `{"id":"C-1","title":"Shoplifting"}`); code != 201 {
		t.Fatalf("file case: %d %s", code, body)
	}
	if code, body := s.call("GET", "/api/v1/session", officer, ""); code != 200 || !strings.Contains(body, `"copy_approval": "required"`) {
		t.Fatalf("session: %d %s", code, body)
	}
	if code, body := s.call("GET", "/api/v1/cases/C-1/export", officer, ""); code != 403 || !strings.Contains(body, "copy approval required") ||
		!strings.Contains(body, "POST /api/v1/copy-requests") {
		t.Fatalf("export without a grant: %d %s", code, body)
	}
	// A supervisor's own request waits for another supervisor.
	code, body := s.call("POST", "/api/v1/copy-requests", sup, `{"kind":"case","id":"C-1","reason":"review"}`)
	var own struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(body), &own)
	if code != 201 {
		t.Fatalf("supervisor's request: %d %s", code, body)
	}
	if code, body := s.call("POST", "/api/v1/copy-requests/"+own.ID+"/decision", sup, `{"approve":true}`); code != 403 {
		t.Fatalf("own request granted: %d %s", code, body)
	}
	grant := s.grantCopy(officer, sup2, `{"kind":"case","id":"C-1","reason":"prosecutor asked for the file"}`)
	if code, body := s.call("GET", "/api/v1/cases/C-1/export?grant="+grant, officer, ""); code != 200 || !strings.HasPrefix(body, "PK") {
		t.Fatalf("export with the grant: %d %.200s", code, body)
	}
	if code, body := s.call("GET", "/api/v1/cases/C-1/export?grant="+grant, officer, ""); code != 403 || !strings.Contains(body, "used up") {
		t.Fatalf("second export on one use: %d %s", code, body)
	}
	code, body = s.call("GET", "/api/v1/cases/C-1/custody", officer, "")
	if code != 200 {
		t.Fatalf("custody: %d %s", code, body)
	}
	for _, want := range []string{`"action": "copy_request"`, `"action": "copy_approve"`, `"action": "copy_use"`, `"action": "export"`, grant} {
		if !strings.Contains(body, want) {
			t.Errorf("the case's custody record lacks %s", want)
		}
	}
}
