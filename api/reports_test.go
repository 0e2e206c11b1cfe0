package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// Audit reports: a recording's custody history as a PDF lists its events
// (pdftotext reads them), says the ledger state it is of, and its
// signature (in a header and fetched apart for the same through_seq)
// verifies with openssl and the key GET /api/v1/keys gives; made again for
// that state it is the same bytes; making one is itself a custody event.
// A user's report (auditors only) holds what they did in the period and
// nothing of others; a case's holds its filing and links.
func TestAuditReports(t *testing.T) {
	srv, _ := rolesFixture(t)
	type answer struct {
		code   int
		header http.Header
		body   []byte
	}
	get := func(path, who string) answer {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok-"+who)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header, b}
	}
	// The recording marked by two users.
	for _, who := range []string{"o-a", "s-a"} {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/recordings/rec-a/bookmarks", strings.NewReader(`{"offset_seconds": 0.001, "note": "by `+who+`"}`))
		req.Header.Set("Authorization", "Bearer tok-"+who)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("bookmark by %s: %v %v", who, err, resp)
		}
		resp.Body.Close()
	}

	pdf := get("/api/v1/recordings/rec-a/audit?format=pdf", "s-a")
	if pdf.code != 200 || pdf.header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(string(pdf.body), "%PDF-") {
		t.Fatalf("report: %d %s %.100s", pdf.code, pdf.header.Get("Content-Type"), pdf.body)
	}
	through := pdf.header.Get("Bodycam-Report-Through")
	n, err := strconv.Atoi(through)
	if err != nil || n < 2 {
		t.Fatalf("Bodycam-Report-Through %q", through)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "report.pdf")
	os.WriteFile(file, pdf.body, 0o600)
	out, err := exec.Command("pdftotext", "-layout", file, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v %s", err, out)
	}
	text := string(out)
	for _, want := range []string{"Custody history of recording rec-a", "ledger through event " + through, "by o-a (officer)", "by s-a (supervisor)",
		"bookmark (changed, ok)", "by o-a"} {
		if !strings.Contains(text, want) {
			t.Errorf("the report's text lacks %q:\n%s", want, text)
		}
	}

	// The signature: the header's, and the one fetched apart, verify with
	// openssl against the key the server publishes.
	sigURL := "/api/v1/recordings/rec-a/audit?format=pdf&signature=true&through_seq=" + through
	sig := get(sigURL, "s-a")
	fromHeader, _ := base64.StdEncoding.DecodeString(pdf.header.Get("Bodycam-Signature"))
	if sig.code != 200 || len(sig.body) != 64 || string(sig.body) != string(fromHeader) {
		t.Fatalf("signature: %d, %d bytes; header %d bytes", sig.code, len(sig.body), len(fromHeader))
	}
	os.WriteFile(file+".sig", sig.body, 0o600)
	keys := get("/api/v1/keys", "s-a")
	var list struct {
		Items []struct {
			ID           string `json:"id"`
			PublicKeyPEM string `json:"public_key_pem"`
		} `json:"items"`
	}
	json.Unmarshal(keys.body, &list)
	pem := ""
	for _, k := range list.Items {
		if k.ID == pdf.header.Get("Bodycam-Signing-Key-Id") {
			pem = k.PublicKeyPEM
		}
	}
	if pem == "" {
		t.Fatalf("no key %q in %s", pdf.header.Get("Bodycam-Signing-Key-Id"), keys.body)
	}
	os.WriteFile(filepath.Join(dir, "key.pem"), []byte(pem), 0o600)
	verify := func() (string, error) {
		out, err := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(dir, "key.pem"), "-rawin",
			"-in", file, "-sigfile", file+".sig").CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "Signature Verified Successfully") {
		t.Fatalf("openssl: %v %s", err, out)
	}
	// The same ledger state, the same bytes, though the ledger went on
	// (making the report was an event).
	again := get("/api/v1/recordings/rec-a/audit?format=pdf&through_seq="+through, "aud")
	if again.code != 200 || string(again.body) != string(pdf.body) {
		t.Fatalf("made again for event %s: %d, %d bytes against %d", through, again.code, len(again.body), len(pdf.body))
	}
	// A changed byte does not verify.
	pdf.body[len(pdf.body)/2] ^= 1
	os.WriteFile(file, pdf.body, 0o600)
	if out, err := verify(); err == nil {
		t.Fatalf("a changed report verified: %s", out)
	}

	// JSON, of the ledger now: the report made above is in it.
	var rep struct {
		Through int64 `json:"through_seq"`
		Events  []struct {
			Seq      int64  `json:"seq"`
			Actor    string `json:"actor"`
			Action   string `json:"action"`
			Category string `json:"category"`
			Detail   string `json:"detail"`
		} `json:"events"`
	}
	js := get("/api/v1/recordings/rec-a/audit", "o-a")
	if js.code != 200 || json.Unmarshal(js.body, &rep) != nil || rep.Through <= int64(n) {
		t.Fatalf("json: %d %s", js.code, js.body)
	}
	reported := 0
	for _, e := range rep.Events {
		if e.Action == "report" && e.Actor == "s-a" && strings.Contains(e.Detail, "audit report (pdf) of the custody ledger through event "+through) {
			reported++
		}
	}
	if reported != 1 {
		t.Fatalf("the report made is not in the ledger once: %s", js.body)
	}

	// Refusals: out of scope, a ledger state not reached, a signature
	// without the state, bad periods.
	for path, want := range map[string]int{
		"/api/v1/recordings/rec-a/audit?through_seq=999999":                                400,
		"/api/v1/recordings/rec-a/audit?signature=true":                                    400,
		"/api/v1/users/o-a/audit?since=2026-01-01T00:00:00Z":                               400,
		"/api/v1/users/o-a/audit?since=x&until=2027-01-01T00:00:00Z":                       400,
		"/api/v1/users/o-a/audit?since=2027-01-01T00:00:00Z&until=2026-01-01T00:00:00Z":    400,
		"/api/v1/users/nobody/audit?since=2026-01-01T00:00:00Z&until=2099-01-01T00:00:00Z": 404,
	} {
		if a := get(path, "aud"); a.code != want {
			t.Errorf("%s: %d %s, want %d", path, a.code, a.body, want)
		}
	}
	if a := get("/api/v1/recordings/rec-a/audit", "o-b"); a.code != 404 {
		t.Fatalf("another unit's officer: %d", a.code)
	}

	// A user's activity: o-a's bookmark and report, nobody else's.
	var user struct {
		Kind   string `json:"kind"`
		Events []struct {
			Actor    string `json:"actor"`
			Action   string `json:"action"`
			Category string `json:"category"`
		} `json:"events"`
		Counts map[string]int `json:"counts"`
	}
	ua := get("/api/v1/users/o-a/audit?since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z", "aud")
	if ua.code != 200 || json.Unmarshal(ua.body, &user) != nil || user.Kind != "user" || user.Counts["changed"] < 1 || user.Counts["checked"] < 1 {
		t.Fatalf("user report: %d %s", ua.code, ua.body)
	}
	for _, e := range user.Events {
		if e.Actor != "o-a" {
			t.Fatalf("another's event in o-a's report: %+v", e)
		}
	}
	if a := get("/api/v1/users/o-a/audit?since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z", "s-a"); a.code != 403 {
		t.Fatalf("a supervisor reads a user's activity: %d", a.code)
	}

	// A case's: filed and linked.
	cr := get("/api/v1/cases/C-1/audit?format=pdf", "aud")
	os.WriteFile(file, cr.body, 0o600)
	out, err = exec.Command("pdftotext", "-layout", file, "-").CombinedOutput()
	if cr.code != 200 || err != nil || !strings.Contains(string(out), "Custody history of case C-1") {
		t.Fatalf("case report: %d %v %s", cr.code, err, out)
	}
}

// The recordings list across devices: by officer, unit, case and
// category, each user seeing only what they may read, the list filled
// past what they may not (paging on), newest first.
func TestRecordingsAcrossDevices(t *testing.T) {
	srv, _ := rolesFixture(t)
	ctx := context.Background()
	cat := lastFixture.cat
	if err := cat.CreateDevice(ctx, evidence.Device{ID: "cam-b", OfficerID: "o-b", SecretHash: "x"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	// Five of unit b's recordings, newer than one more of unit a's: a unit
	// a supervisor asking for two gets a's two, past b's.
	if err := cat.CreateRecording(ctx, evidence.Recording{ID: "rec-a2", DeviceID: "cam-a", OfficerID: "o-a", StartedAt: start}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		id := fmt.Sprintf("rec-b%d", i)
		if err := cat.CreateRecording(ctx, evidence.Recording{ID: id, DeviceID: "cam-b", OfficerID: "o-b", StartedAt: start.Add(time.Duration(i+1) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.LinkEvidence(ctx, evidence.EvidenceLink{ID: "l-x", CaseID: "C-1", RecordingID: "rec-a2", LinkedBy: "o-a", LinkedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := cat.SetRecordingCategories(ctx, "rec-b3", nil, []string{"arrest"}, "s-b", time.Now()); err != nil {
		t.Fatal(err)
	}
	list := func(query, who string) string {
		t.Helper()
		code, body := call(t, srv.URL, "GET", "/api/v1/recordings"+query, "tok-"+who, "")
		var out struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("%s as %s: %d %s", query, who, code, body)
		}
		var ids []string
		for _, it := range out.Items {
			ids = append(ids, it.ID)
		}
		return strings.Join(ids, " ")
	}
	for _, tc := range []struct{ query, who, want string }{
		{"?limit=2", "s-a", "rec-a rec-a2"}, // past five of unit b's
		{"?limit=2", "s-b", "rec-b4 rec-b3"},
		{"?officer=o-b", "aud", "rec-b4 rec-b3 rec-b2 rec-b1 rec-b0"},
		{"?unit=a", "aud", "rec-a rec-a2"},
		{"?unit=b&officer=o-a", "aud", ""},
		{"?unit=nope", "aud", ""},
		{"?case=C-1", "aud", "rec-a2"},
		{"?case=C-1", "s-b", ""},
		{"?category=arrest", "aud", "rec-b3"},
		{"?category=arrest", "o-a", ""},
		{"?officer=o-b", "o-a", ""},
	} {
		if got := list(tc.query, tc.who); got != tc.want {
			t.Errorf("%s as %s: %q, want %q", tc.query, tc.who, got, tc.want)
		}
	}
	if code, _ := call(t, srv.URL, "GET", "/api/v1/recordings?case="+strings.Repeat("x", 201), "tok-aud", ""); code != 400 {
		t.Fatalf("a 201-character case id: %d", code)
	}
}
