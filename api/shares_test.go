package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
)

// finishSigned stores a finished recording of cam-a with a signed manifest
// (storeRecording, then the manifest).
func finishSigned(t *testing.T, id string) {
	t.Helper()
	storeRecording(t, id, 2, 3000)
	ctx := context.Background()
	f := lastFixture
	rec, _ := f.cat.Recording(ctx, id)
	if err := f.cat.FinishRecording(ctx, id, evidence.StateComplete, rec.StartedAt.Add(12*time.Second), "stream ended"); err != nil {
		t.Fatal(err)
	}
	segs, _ := f.cat.Segments(ctx, id)
	rec, _ = f.cat.Recording(ctx, id)
	m := evidence.NewManifest(rec, segs, nil)
	m.SigningKeyID, m.SignedAt = f.keys.ID(), time.Now().UTC()
	putSigned(t, "cam-a/"+id+"/manifest.json", m.Marshal())
	if err := f.cat.SetManifest(ctx, id, "cam-a/"+id+"/manifest.json"); err != nil {
		t.Fatal(err)
	}
}

// recipient is a browser of a share's recipient: its own cookies, no
// account.
type recipient struct {
	t   *testing.T
	c   *http.Client
	srv string
}

func newRecipient(t *testing.T, srv string) *recipient {
	jar, _ := cookiejar.New(nil)
	return &recipient{t: t, c: &http.Client{Jar: jar}, srv: srv}
}

func (p *recipient) do(method, path, body string, hdr ...string) (*http.Response, []byte) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.srv+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type madeShare struct {
	ID    string `json:"id"`
	Link  string `json:"link"`
	Code  string `json:"code"`
	State string `json:"state"`
}

func makeShare(t *testing.T, srv, who, body string) madeShare {
	t.Helper()
	code, out := call(t, srv, "POST", "/api/v1/cases/C-1/shares", who, body)
	var sh madeShare
	if err := json.Unmarshal([]byte(out), &sh); code != 201 || err != nil || sh.Code == "" || sh.ID == "" {
		t.Fatalf("share: %d %s", code, out)
	}
	return sh
}

// Sharing: an officer shares one recording of a case with a prosecutor; the
// recipient, without an account, opens it with the one-time code (once),
// sees and downloads only that recording's court export (which verifies
// offline), as many times as allowed, each with a signed receipt of the
// bytes; the share's cookie opens nothing else; wrong codes revoke it;
// revocation, expiry and a new code end it; every step is in the ledger.
func TestShares(t *testing.T) {
	srv, _ := rolesFixture(t)
	u := srv.URL
	finishSigned(t, "rec-1")
	finishSigned(t, "rec-2")
	for _, id := range []string{"rec-1", "rec-2"} {
		if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"`+id+`"}`); code != 201 {
			t.Fatalf("link %s: %d %s", id, code, body)
		}
	}
	// What may not be shared.
	for body, want := range map[string]string{
		`{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-a"]}`:                         "not linked",
		`{"recipient":{"name":"","organisation":"DA"},"purpose":"p","recordings":["rec-1"]}`:                          "recipient.name",
		`{"recipient":{"name":"P","organisation":"DA"},"purpose":"","recordings":["rec-1"]}`:                          "purpose",
		`{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-1"],"expires_in":"2400h"}`:    "expires_in",
		`{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-1"],"max_downloads":0}`:       "max_downloads",
		`{"recipient":{"name":"P","organisation":"DA","email":"no"},"purpose":"p","recordings":["rec-1"]}`:            "email",
		`{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-1"],"copies":"../x"}`:         "copies",
		`{"recipient":{"name":"P\u0007","organisation":"DA"},"purpose":"p","recordings":["rec-1"]}`:                   "control",
		`{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-1"],"expires_in":"tomorrow"}`: "expires_in",
	} {
		if code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares", "tok-o-a", body); code != 400 || !strings.Contains(out, want) {
			t.Errorf("share %s: %d %s, want 400 naming %s", body, code, out, want)
		}
	}
	if code, _ := call(t, u, "POST", "/api/v1/cases/C-1/shares", "tok-o-b",
		`{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-1"]}`); code != 404 {
		t.Fatalf("an officer of another unit shares the case: %d, want 404", code)
	}
	if n := shareCount(t); n != 0 {
		t.Fatalf("%d shares kept after refusals, want 0", n)
	}

	sh := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"A. Prosecutor","organisation":"District Attorney","email":"ap@da.example"},
		"purpose":"charging decision","recordings":["rec-1"],"max_downloads":2,"expires_in":"1h"}`)
	if sh.Link != u+"/share/"+sh.ID || sh.State != "active" || len(strings.ReplaceAll(sh.Code, "-", "")) != 12 {
		t.Fatalf("share made: %+v", sh)
	}
	if code, out := call(t, u, "GET", "/api/v1/cases/C-1/shares", "tok-s-a", ""); code != 200 || strings.Contains(out, sh.Code) || !strings.Contains(out, sh.ID) {
		t.Fatalf("shares listed: %d, with the code or without the share: %s", code, out)
	}
	base := "/api/v1/shared/" + sh.ID

	// The page is served to anyone; the share's API wants the code first.
	p := newRecipient(t, u)
	if resp, body := p.do("GET", "/share/"+sh.ID, ""); resp.StatusCode != 200 || !strings.Contains(string(body), "share.js") {
		t.Fatalf("share page: %d %s", resp.StatusCode, body)
	}
	if resp, _ := p.do("GET", base, ""); resp.StatusCode != 401 {
		t.Fatalf("the share without its code: %d, want 401", resp.StatusCode)
	}
	if resp, body := p.do("POST", base+"/open", `{"code":"`+sh.Code+`"}`, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 403 {
		t.Fatalf("opened from another site's page: %d %s, want 403", resp.StatusCode, body)
	}
	if resp, body := p.do("POST", base+"/open", `{"code":"AAAA-AAAA-AAAA"}`); resp.StatusCode != 403 || !strings.Contains(string(body), "wrong code (1 of 5") {
		t.Fatalf("a wrong code: %d %s", resp.StatusCode, body)
	}
	resp, body := p.do("POST", base+"/open", `{"code":"`+strings.ToLower(sh.Code)+`"}`) // typed in lower case
	if resp.StatusCode != 200 {
		t.Fatalf("open: %d %s", resp.StatusCode, body)
	}
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "bodycam_share" {
			ck = c
		}
	}
	if ck == nil || ck.Path != base || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("share cookie: %+v", ck)
	}
	other := newRecipient(t, u)
	if resp, body := other.do("POST", base+"/open", `{"code":"`+sh.Code+`"}`); resp.StatusCode != 403 || !strings.Contains(string(body), "used already") {
		t.Fatalf("the code a second time: %d %s, want 403", resp.StatusCode, body)
	}
	var seen struct {
		Recordings []struct{ ID string } `json:"recordings"`
		Download   string                `json:"download"`
		Recipient  evidence.Recipient    `json:"recipient"`
	}
	resp, body = p.do("GET", base, "")
	if err := json.Unmarshal(body, &seen); resp.StatusCode != 200 || err != nil || len(seen.Recordings) != 1 || seen.Recordings[0].ID != "rec-1" ||
		seen.Recipient.Name != "A. Prosecutor" || strings.Contains(string(body), "rec-2") {
		t.Fatalf("what the recipient sees: %d %s", resp.StatusCode, body)
	}
	// The share's cookie is nobody's session: nothing else opens with it.
	for _, path := range []string{"/api/v1/recordings", "/api/v1/recordings/rec-2", "/api/v1/cases/C-1", "/api/v1/cases/C-1/export", "/api/v1/session"} {
		req, _ := http.NewRequest("GET", u+path, nil)
		req.AddCookie(&http.Cookie{Name: "bodycam_share", Value: ck.Value})
		req.AddCookie(&http.Cookie{Name: "bodycam_session", Value: ck.Value})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s with the share's cookie: %d, want 401", path, resp.StatusCode)
		}
	}

	if resp, _ := p.do("HEAD", seen.Download, ""); resp.StatusCode != 405 {
		t.Fatalf("HEAD of the download: %d, want 405 (it would take a download)", resp.StatusCode)
	}
	// Downloads: the court export of rec-1 only, with a signed receipt.
	trusted := export.Options{TrustedKey: lastFixture.keys.Public()[0].Key}
	for n := 1; n <= 2; n++ {
		resp, zipBytes := p.do("GET", seen.Download, "")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
			t.Fatalf("download %d: %d %s", n, resp.StatusCode, zipBytes)
		}
		rep := export.Verify(bytes.NewReader(zipBytes), int64(len(zipBytes)), trusted)
		if !rep.OK || rep.Checked.Recordings != 1 || rep.ExportedBy != "share:"+sh.ID {
			t.Fatalf("the shared export does not verify, or holds more: %+v", rep)
		}
		zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
		if err != nil {
			t.Fatal(err)
		}
		for _, zf := range zr.File {
			rc, _ := zf.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			if strings.Contains(zf.Name, "rec-2") || bytes.Contains(b, []byte("rec-2")) {
				t.Fatalf("the shared export tells of the recording not shared: %s", zf.Name)
			}
		}
		rcPath := resp.Header.Get("X-Bodycam-Receipt")
		resp, body := p.do("GET", rcPath, "")
		var rj struct {
			ReceiptB64, SignatureB64, SigningKeyID, PublicKeyPEM string
		}
		json.Unmarshal(body, &struct {
			R *string `json:"receipt_b64"`
			S *string `json:"signature_b64"`
			K *string `json:"signing_key_id"`
			P *string `json:"public_key_pem"`
		}{&rj.ReceiptB64, &rj.SignatureB64, &rj.SigningKeyID, &rj.PublicKeyPEM})
		rb, _ := base64.StdEncoding.DecodeString(rj.ReceiptB64)
		sig, _ := base64.StdEncoding.DecodeString(rj.SignatureB64)
		if resp.StatusCode != 200 || rj.SigningKeyID != lastFixture.keys.ID() || !strings.Contains(rj.PublicKeyPEM, "PUBLIC KEY") {
			t.Fatalf("receipt %s: %d %s", rcPath, resp.StatusCode, body)
		}
		rc, err := evidence.VerifyShareReceipt(lastFixture.keys.Public()[0].Key, rb, sig)
		sum := sha256.Sum256(zipBytes)
		if err != nil || rc.SHA256 != hex.EncodeToString(sum[:]) || rc.Size != int64(len(zipBytes)) || rc.Download != n || rc.MaxDownloads != 2 ||
			rc.ShareID != sh.ID || rc.CaseID != "C-1" || rc.Recipient.Name != "A. Prosecutor" || len(rc.Recordings) != 1 ||
			rc.Recordings[0].ID != "rec-1" || rc.Recordings[0].ChainHead == "" || rc.SharedBy != "o-a" {
			t.Fatalf("receipt %d: %v %+v", n, err, rc)
		}
		tampered := bytes.Replace(rb, []byte("A. Prosecutor"), []byte("B. Prosecutor"), 1)
		if _, err := evidence.VerifyShareReceipt(lastFixture.keys.Public()[0].Key, tampered, sig); err == nil {
			t.Fatal("a changed receipt verifies")
		}
	}
	if resp, body := p.do("GET", seen.Download, ""); resp.StatusCode != 410 || !strings.Contains(string(body), "downloads were used") {
		t.Fatalf("a third download of two: %d %s, want 410", resp.StatusCode, body)
	}
	if resp, body := p.do("GET", base, ""); resp.StatusCode != 200 || !strings.Contains(string(body), `"downloads": 2`) {
		t.Fatalf("the used-up share (its receipts are still shown): %d %s", resp.StatusCode, body)
	}

	// The ledger tells every step, the wrong code too.
	events := caseEvents(t, u)
	for _, want := range []string{
		"o-a share share " + sh.ID + " made for A. Prosecutor (District Attorney, ap@da.example): recordings rec-1;",
		"share:" + sh.ID + " share_open share " + sh.ID + " for A. Prosecutor (District Attorney, ap@da.example): a wrong code (1 of 5) denied",
		"share:" + sh.ID + " share_open share " + sh.ID + " for A. Prosecutor (District Attorney, ap@da.example): opened with its one-time code ok",
		"share:" + sh.ID + " share_open share " + sh.ID + " for A. Prosecutor (District Attorney, ap@da.example): a code given once the share's code was used denied",
		"share:" + sh.ID + " export court export case-C-1-" + sh.ID + ".zip: 1 recording(s) rec-1; for share " + sh.ID + ", download 1 of 2",
		"share:" + sh.ID + " share_download share " + sh.ID + " for A. Prosecutor (District Attorney, ap@da.example): download 2 of 2, case-C-1-" + sh.ID + ".zip (",
	} {
		if !containsPrefix(events, want) {
			t.Errorf("no custody event %q in:\n%s", want, strings.Join(events, "\n"))
		}
	}

	// Revoked: the open session ends; the code no longer opens it.
	sh2 := makeShare(t, u, "tok-s-a", `{"recipient":{"name":"D. Counsel","organisation":"Public Defender"},"purpose":"disclosure","max_downloads":5}`)
	p2 := newRecipient(t, u)
	if resp, body := p2.do("POST", "/api/v1/shared/"+sh2.ID+"/open", `{"code":"`+sh2.Code+`"}`); resp.StatusCode != 200 || !strings.Contains(string(body), "rec-2") {
		t.Fatalf("open share 2 (all recordings): %d %s", resp.StatusCode, body)
	}
	// One share's cookie does not open another share.
	if resp, _ := p.do("GET", "/api/v1/shared/"+sh2.ID, "", "Cookie", "bodycam_share="+ck.Value); resp.StatusCode != 401 {
		t.Fatalf("share 1's cookie on share 2: %d, want 401", resp.StatusCode)
	}
	if code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares/"+sh2.ID+"/revoke", "tok-s-a", `{"reason":"sent to the wrong office"}`); code != 200 || !strings.Contains(out, `"state": "revoked"`) {
		t.Fatalf("revoke: %d %s", code, out)
	}
	if code, _ := call(t, u, "POST", "/api/v1/cases/C-1/shares/"+sh2.ID+"/revoke", "tok-s-a", `{"reason":"again"}`); code != 409 {
		t.Fatalf("revoked twice: %d, want 409", code)
	}
	if resp, _ := p2.do("GET", "/api/v1/shared/"+sh2.ID+"/download", ""); resp.StatusCode != 410 {
		t.Fatalf("download of a revoked share: %d", resp.StatusCode)
	}

	// A new code ends the old session; the new code opens it once.
	sh3 := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-2"]}`)
	p3 := newRecipient(t, u)
	if resp, _ := p3.do("POST", "/api/v1/shared/"+sh3.ID+"/open", `{"code":"`+sh3.Code+`"}`); resp.StatusCode != 200 {
		t.Fatal("open share 3")
	}
	code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares/"+sh3.ID+"/code", "tok-o-a", "")
	var renewed madeShare
	if json.Unmarshal([]byte(out), &renewed); code != 200 || renewed.Code == "" || renewed.Code == sh3.Code {
		t.Fatalf("new code: %d %s", code, out)
	}
	if resp, _ := p3.do("GET", "/api/v1/shared/"+sh3.ID, ""); resp.StatusCode != 401 {
		t.Fatalf("the session after a new code: %d, want 401", resp.StatusCode)
	}
	if resp, _ := p3.do("POST", "/api/v1/shared/"+sh3.ID+"/open", `{"code":"`+sh3.Code+`"}`); resp.StatusCode != 403 {
		t.Fatalf("the old code: %d, want 403", resp.StatusCode)
	}
	// Five wrong codes (the old one was the first) revoke it.
	for i := 2; i <= evidence.ShareMaxFailedCodes; i++ {
		resp, body := newRecipient(t, u).do("POST", "/api/v1/shared/"+sh3.ID+"/open", `{"code":"BBBB-BBBB-BBB`+string(rune('A'+i))+`"}`)
		want := 403
		if i == evidence.ShareMaxFailedCodes {
			want = 410
		}
		if resp.StatusCode != want {
			t.Fatalf("wrong code %d: %d %s, want %d", i, resp.StatusCode, body, want)
		}
	}
	if resp, _ := p3.do("POST", "/api/v1/shared/"+sh3.ID+"/open", `{"code":"`+renewed.Code+`"}`); resp.StatusCode != 410 {
		t.Fatalf("the right code of a share revoked for wrong codes: %d, want 410", resp.StatusCode)
	}
	// Once a share is open, codes are refused and not counted: nobody with
	// only the link revokes it.
	sh5 := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-2"]}`)
	p5 := newRecipient(t, u)
	if resp, _ := p5.do("POST", "/api/v1/shared/"+sh5.ID+"/open", `{"code":"`+sh5.Code+`"}`); resp.StatusCode != 200 {
		t.Fatal("open share 5")
	}
	for i := 0; i < 2*evidence.ShareMaxFailedCodes; i++ {
		if resp, body := newRecipient(t, u).do("POST", "/api/v1/shared/"+sh5.ID+"/open", `{"code":"CCCC-CCCC-CCCC"}`); resp.StatusCode != 403 || !strings.Contains(string(body), "used already") {
			t.Fatalf("a wrong code for an open share: %d %s, want 403", resp.StatusCode, body)
		}
	}
	if resp, _ := p5.do("GET", "/api/v1/shared/"+sh5.ID, ""); resp.StatusCode != 200 {
		t.Fatalf("the open share after wrong codes: %d, want 200 (not revoked)", resp.StatusCode)
	}
	if got, _ := lastFixture.cat.Share(context.Background(), sh5.ID); got.FailedCodes != 0 || got.Revoked() {
		t.Fatalf("wrong codes for an open share were counted: %+v", got)
	}
	if !containsPrefix(caseEvents(t, u), "server share_revoke share "+sh3.ID+" for P (DA) revoked by the server: 5 wrong codes") &&
		!containsPrefix(caseEvents(t, u), "share:"+sh3.ID+" share_revoke share "+sh3.ID+" for P (DA) revoked by the server: 5 wrong codes") {
		t.Fatalf("no revocation by the server in the ledger:\n%s", strings.Join(caseEvents(t, u), "\n"))
	}

	// Expired: refused, however opened.
	sh4 := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","recordings":["rec-1"],"expires_in":"5s"}`)
	p4 := newRecipient(t, u)
	if resp, _ := p4.do("POST", "/api/v1/shared/"+sh4.ID+"/open", `{"code":"`+sh4.Code+`"}`); resp.StatusCode != 200 {
		t.Fatal("open share 4")
	}
	kept := cookieOf(t, p4, u, sh4.ID)
	time.Sleep(5100 * time.Millisecond)
	if resp, body := newRecipient(t, u).do("GET", "/api/v1/shared/"+sh4.ID+"/download", "", "Cookie", "bodycam_share="+kept); resp.StatusCode != 410 {
		t.Fatalf("download of an expired share: %d %s", resp.StatusCode, body)
	}
}

// cookieOf is the share cookie a recipient's jar holds (kept past its
// expiry, as a client may, it still gets nothing then).
func cookieOf(t *testing.T, p *recipient, u, id string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", u+"/api/v1/shared/"+id, nil)
	for _, c := range p.c.Jar.Cookies(req.URL) {
		if c.Name == "bodycam_share" {
			return c.Value
		}
	}
	return "none"
}

func shareCount(t *testing.T) int {
	t.Helper()
	list, err := lastFixture.cat.Shares(context.Background(), "C-1")
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// caseEvents lists the ledger's events as "actor action detail outcome".
func caseEvents(t *testing.T, u string) []string {
	t.Helper()
	events, err := lastFixture.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{CaseID: "C-1"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out = append(out, e.Actor+" "+e.Action+" "+e.Detail+" "+e.Outcome)
	}
	return out
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// With approval before copying, a share lets a copy leave: it takes a use of
// a granted copy request of the case (by its maker, decided by another
// supervisor); the recipient's downloads are the share's own.
func TestShareNeedsApproval(t *testing.T) {
	srv, _ := rolesFixture(t, func(o *api.Options) { o.CopyApproval = api.CopyApproval{Required: true} })
	u := srv.URL
	finishSigned(t, "rec-1")
	if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"rec-1"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}
	share := `{"recipient":{"name":"P","organisation":"DA"},"purpose":"charging decision"`
	if code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares", "tok-o-a", share+`}`); code != 403 || !strings.Contains(out, "copy approval required") {
		t.Fatalf("a share without a grant: %d %s, want 403", code, out)
	}
	code, out := call(t, u, "POST", "/api/v1/copy-requests", "tok-o-a", `{"kind":"case","id":"C-1","reason":"share with the DA","uses":1}`)
	var req struct{ ID string }
	if json.Unmarshal([]byte(out), &req); code != 201 || req.ID == "" {
		t.Fatalf("copy request: %d %s", code, out)
	}
	if code, out := call(t, u, "POST", "/api/v1/copy-requests/"+req.ID+"/decision", "tok-s-a", `{"approve":true,"note":"ok"}`); code != 200 {
		t.Fatalf("approve: %d %s", code, out)
	}
	if code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares", "tok-s-a", share+`,"grant":"`+req.ID+`"}`); code != 403 {
		t.Fatalf("a share with another user's grant: %d %s, want 403", code, out)
	}
	sh := makeShare(t, u, "tok-o-a", share+`,"grant":"`+req.ID+`"}`)
	if code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares", "tok-o-a", share+`,"grant":"`+req.ID+`"}`); code != 403 || !strings.Contains(out, "used") {
		t.Fatalf("a second share on a grant of one use: %d %s, want 403", code, out)
	}
	if n := shareCount(t); n != 1 {
		t.Fatalf("%d shares kept, want 1", n)
	}
	p := newRecipient(t, u)
	if resp, body := p.do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":"`+sh.Code+`"}`); resp.StatusCode != 200 {
		t.Fatalf("open: %d %s", resp.StatusCode, body)
	}
	if resp, body := p.do("GET", "/api/v1/shared/"+sh.ID+"/download", ""); resp.StatusCode != 200 {
		t.Fatalf("the recipient's download: %d %s", resp.StatusCode, body)
	}
	if !containsPrefix(caseEvents(t, u), "o-a copy_use grant "+req.ID) {
		t.Fatalf("the share's use of the grant is not in the ledger:\n%s", strings.Join(caseEvents(t, u), "\n"))
	}
}
