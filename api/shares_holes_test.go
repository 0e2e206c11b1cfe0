package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// grantedShare links rec-1 to C-1 in a fixture with approval required, has
// o-a ask for a copy of the case (granted by s-a) and share it with a
// recipient: the share made.
func grantedShare(t *testing.T, u string) madeShare {
	t.Helper()
	finishSigned(t, "rec-1")
	if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"rec-1"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}
	code, out := call(t, u, "POST", "/api/v1/copy-requests", "tok-o-a", `{"kind":"case","id":"C-1","reason":"share with the DA","uses":1}`)
	var req struct{ ID string }
	if json.Unmarshal([]byte(out), &req); code != 201 || req.ID == "" {
		t.Fatalf("copy request: %d %s", code, out)
	}
	if code, out := call(t, u, "POST", "/api/v1/copy-requests/"+req.ID+"/decision", "tok-s-a", `{"approve":true}`); code != 200 {
		t.Fatalf("approve: %d %s", code, out)
	}
	return makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"charging decision","max_downloads":5,"grant":"`+req.ID+`"}`)
}

// Found in review: with approval before copying, another user who may change the case
// (here supervisor s-a, who holds no grant) issued a new one-time code of
// o-a's share, opened it with that code and downloaded the case's court
// export: a copy left without any grant of theirs (and the ledger says the
// recipient downloaded it). A new code by anyone but the share's maker is
// a copy leaving: it takes a grant of the case, as making a share does.
func TestShareNewCodeByAnotherNeedsGrant(t *testing.T) {
	srv, _ := rolesFixture(t, func(o *api.Options) { o.CopyApproval = api.CopyApproval{Required: true} })
	u := srv.URL
	sh := grantedShare(t, u)
	code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares/"+sh.ID+"/code", "tok-s-a", "")
	if code == 200 {
		var renewed madeShare
		json.Unmarshal([]byte(out), &renewed)
		p := newRecipient(t, u)
		if resp, _ := p.do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":"`+renewed.Code+`"}`); resp.StatusCode == 200 {
			if resp, _ := p.do("GET", "/api/v1/shared/"+sh.ID+"/download", ""); resp.StatusCode == 200 {
				t.Fatalf("s-a, without a grant, took a new code of o-a's share and downloaded the case's export")
			}
		}
		t.Fatalf("a new code by s-a without a grant: %d %s, want 403", code, out)
	}
	if code != 403 || !strings.Contains(out, "copy approval required") {
		t.Fatalf("a new code by s-a without a grant: %d %s, want 403 copy approval required", code, out)
	}
	// The share's maker still renews the code of the share their grant made.
	if code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares/"+sh.ID+"/code", "tok-o-a", ""); code != 200 || !strings.Contains(out, `"code"`) {
		t.Fatalf("a new code by the maker: %d %s, want 200", code, out)
	}
	// s-a with a grant of the case of their own (decided by a duty
	// supervisor) may; the use is in the ledger, naming the share.
	ctx := context.Background()
	if err := lastFixture.cat.CreateUser(ctx, evidence.User{ID: "s-duty", Role: evidence.RoleSupervisor, CertToken: "cert-s-duty"}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("tok-s-duty"))
	if err := lastFixture.cat.CreateAPIToken(ctx, evidence.APIToken{ID: "s-duty", TokenHash: hex.EncodeToString(sum[:]), UserID: "s-duty", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	g := askGranted(t, u, "tok-s-a", "tok-s-duty", "case", "C-1", "the DA lost the code", "ok")
	if code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares/"+sh.ID+"/code?grant="+g, "tok-s-a", ""); code != 200 || !strings.Contains(out, `"code"`) {
		t.Fatalf("a new code by s-a with a grant: %d %s, want 200", code, out)
	}
	if !containsPrefix(caseEvents(t, u), "s-a copy_use copy request "+g+": grant used (0 of 1 uses left): POST /api/v1/cases/C-1/shares/"+sh.ID+"/code?grant="+g+" (share "+sh.ID+")") {
		t.Fatalf("no use of s-a's grant for the new code:\n%s", strings.Join(caseEvents(t, u), "\n"))
	}
}

// raceShares is the catalog's shares, with a hook run just before a
// download is counted (a renewal landing meanwhile).
type raceShares struct {
	*catalog.Catalog
	before func()
}

func (r *raceShares) TakeShareDownload(ctx context.Context, id, session string, at time.Time) (int, error) {
	if r.before != nil {
		r.before()
		r.before = nil
	}
	return r.Catalog.TakeShareDownload(ctx, id, session, at)
}

// Found in review (TOCTOU): a download's session was checked when the request began,
// and counted later only if "a session exists": a session ended meanwhile
// (a new code issued and opened by the recipient, after the old cookie
// leaked) still took a download. The count must be taken for the session
// the request carries.
func TestShareDownloadSessionEndedMeanwhile(t *testing.T) {
	rs := &raceShares{}
	srv, _ := rolesFixture(t, func(o *api.Options) {
		rs.Catalog = o.Shares.(*catalog.Catalog)
		o.Shares = rs
	})
	u := srv.URL
	finishSigned(t, "rec-1")
	if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"rec-1"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}
	sh := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"p","max_downloads":5}`)
	old := newRecipient(t, u)
	if resp, body := old.do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":"`+sh.Code+`"}`); resp.StatusCode != 200 {
		t.Fatalf("open: %d %s", resp.StatusCode, body)
	}
	// While the old session's download is being prepared, the sender issues
	// a new code and the recipient opens the share with it.
	fresh := newRecipient(t, u)
	rs.before = func() {
		code, out := call(t, u, "POST", "/api/v1/cases/C-1/shares/"+sh.ID+"/code", "tok-o-a", "")
		var renewed madeShare
		if json.Unmarshal([]byte(out), &renewed); code != 200 {
			t.Errorf("new code: %d %s", code, out)
			return
		}
		if resp, body := fresh.do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":"`+renewed.Code+`"}`); resp.StatusCode != 200 {
			t.Errorf("open with the new code: %d %s", resp.StatusCode, body)
		}
	}
	if resp, _ := old.do("GET", "/api/v1/shared/"+sh.ID+"/download", ""); resp.StatusCode == 200 {
		t.Fatalf("a session ended by a new code still downloaded the share")
	}
	rec, err := rs.Catalog.Share(context.Background(), sh.ID)
	if err != nil || rec.Downloads != 0 {
		t.Fatalf("downloads counted: %d %v, want 0", rec.Downloads, err)
	}
}

// askGranted has who ask for a copy of kind id with reason, approved by
// decider: the grant's id.
func askGranted(t *testing.T, u, who, decider, kind, id, reason, note string) string {
	t.Helper()
	code, out := call(t, u, "POST", "/api/v1/copy-requests", who, `{"kind":"`+kind+`","id":"`+id+`","reason":"`+reason+`","uses":1}`)
	var req struct{ ID string }
	if json.Unmarshal([]byte(out), &req); code != 201 || req.ID == "" {
		t.Fatalf("copy request: %d %s", code, out)
	}
	if code, out := call(t, u, "POST", "/api/v1/copy-requests/"+req.ID+"/decision", decider, `{"approve":true,"note":"`+note+`"}`); code != 200 {
		t.Fatalf("approve: %d %s", code, out)
	}
	return req.ID
}

// Found in review: a share's custody excerpt leaves out other exports and other
// shares (they tell whom copies went to), but kept the copy requests,
// decisions and uses behind them: a recipient read why and for whom every
// other copy of the case was asked for and granted (reasons, notes, that
// other shares were made). A share's excerpt keeps of them only its own
// grant's use.
func TestShareExcerptLeavesOtherCopiesOut(t *testing.T) {
	srv, _ := rolesFixture(t, func(o *api.Options) { o.CopyApproval = api.CopyApproval{Required: true} })
	u := srv.URL
	finishSigned(t, "rec-1")
	if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"rec-1"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}
	// Another copy: the case exported for the defence, and the recording
	// downloaded for an expert.
	g := askGranted(t, u, "tok-o-a", "tok-s-a", "case", "C-1", "disclosure to defence counsel Smith", "fine for Smith")
	if code, _ := fetch(t, u+"/api/v1/cases/C-1/export?grant="+g, "o-a"); code != 200 {
		t.Fatalf("export: %d", code)
	}
	g = askGranted(t, u, "tok-o-a", "tok-s-a", "recording", "rec-1", "for the defence expert Jones", "Jones only")
	if code, _ := fetch(t, u+"/api/v1/recordings/rec-1/media?download=1&grant="+g, "o-a"); code != 200 {
		t.Fatalf("download: %d", code)
	}
	// Another share, for the defence.
	g = askGranted(t, u, "tok-o-a", "tok-s-a", "case", "C-1", "share with the defence", "defence share ok")
	makeShare(t, u, "tok-o-a", `{"recipient":{"name":"D. Counsel","organisation":"Public Defender"},"purpose":"disclosure","grant":"`+g+`"}`)
	// The share for the prosecutor.
	g = askGranted(t, u, "tok-o-a", "tok-s-a", "case", "C-1", "share with the DA", "ok")
	sh := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"charging decision","grant":"`+g+`"}`)
	p := newRecipient(t, u)
	if resp, body := p.do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":"`+sh.Code+`"}`); resp.StatusCode != 200 {
		t.Fatalf("open: %d %s", resp.StatusCode, body)
	}
	resp, zipBytes := p.do("GET", "/api/v1/shared/"+sh.ID+"/download", "")
	if resp.StatusCode != 200 {
		t.Fatalf("download: %d %s", resp.StatusCode, zipBytes)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatal(err)
	}
	ownUse := false
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		for _, secret := range []string{"Smith", "Jones", "defence", "/api/v1/cases/C-1/export", "download=1"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the share's zip (%s) tells of another copy: %q", zf.Name, secret)
			}
		}
		if zf.Name == "custody.json" && bytes.Contains(b, []byte("copy request "+g+": grant used")) {
			ownUse = true
		}
	}
	if !ownUse {
		t.Errorf("the share's zip does not hold the use of its own grant %s", g)
	}
}

// raceOpen is the catalog's shares, with a hook run just before a code is
// spent (another browser spending it first).
type raceOpen struct {
	*catalog.Catalog
	before func()
}

func (r *raceOpen) UseShareCode(ctx context.Context, id, codeHash, sessionHash string, at time.Time) error {
	if f := r.before; f != nil {
		r.before = nil
		f()
	}
	return r.Catalog.UseShareCode(ctx, id, codeHash, sessionHash, at)
}

// Found in review (ledger): opening a share was recorded as done ("opened with its
// one-time code", ok) before the code was spent; when another browser
// spent it meanwhile, the loser was refused but the ledger kept two
// openings and no refusal. The refusal is recorded too.
func TestShareOpenRaceRecorded(t *testing.T) {
	ro := &raceOpen{}
	srv, _ := rolesFixture(t, func(o *api.Options) {
		ro.Catalog = o.Shares.(*catalog.Catalog)
		o.Shares = ro
	})
	u := srv.URL
	finishSigned(t, "rec-1")
	if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"rec-1"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}
	sh := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"p"}`)
	ro.before = func() {
		if resp, body := newRecipient(t, u).do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":"`+sh.Code+`"}`); resp.StatusCode != 200 {
			t.Errorf("the first browser: %d %s", resp.StatusCode, body)
		}
	}
	if resp, _ := newRecipient(t, u).do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":"`+sh.Code+`"}`); resp.StatusCode != 403 {
		t.Fatalf("the second browser: %d, want 403", resp.StatusCode)
	}
	var opened, refused int
	for _, e := range caseEvents(t, u) {
		if strings.Contains(e, " share_open ") && strings.HasSuffix(e, " ok") {
			opened++
		}
		if strings.Contains(e, " share_open ") && strings.HasSuffix(e, " denied") {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("share_open: %d ok, %d denied; want the loser's refusal recorded:\n%s", opened, refused, strings.Join(caseEvents(t, u), "\n"))
	}
}

// Found in review: a recording shared and then unlinked from the case (footage linked
// by mistake) is no longer in the share's download, but the recipient's
// page still listed it (its id, device and times). What the recipient sees
// is what the download holds.
func TestSharedUnlinkedRecordingNotListed(t *testing.T) {
	srv, _ := rolesFixture(t)
	u := srv.URL
	finishSigned(t, "rec-1")
	finishSigned(t, "rec-2")
	var link2 string
	for _, id := range []string{"rec-1", "rec-2"} {
		code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"`+id+`"}`)
		var l struct{ ID string }
		if json.Unmarshal([]byte(body), &l); code != 201 {
			t.Fatalf("link %s: %d %s", id, code, body)
		}
		link2 = l.ID
	}
	sh := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"p"}`)
	if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence/"+link2+"/unlink", "tok-s-a", `{"reason":"another incident, linked by mistake"}`); code != 200 {
		t.Fatalf("unlink: %d %s", code, body)
	}
	p := newRecipient(t, u)
	resp, body := p.do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":"`+sh.Code+`"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "rec-1") {
		t.Fatalf("open: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "rec-2") {
		t.Fatalf("the recipient's page lists rec-2, unlinked from the case since: %s", body)
	}
	if resp, body := p.do("GET", "/api/v1/shared/"+sh.ID, ""); resp.StatusCode != 200 || strings.Contains(string(body), "rec-2") {
		t.Fatalf("the share, after rec-2 was unlinked: %d %s", resp.StatusCode, body)
	}
}

// Found in review: a share's one-time code (60 bits) was kept as an unkeyed, unsalted
// SHA-256 of the code: whoever reads the catalog (a database dump, a
// backup) could guess codes offline, one pass for every share at once,
// and open a share not yet opened to download its evidence. The bootstrap
// admin token's print is keyed for this reason; a code's hash is too, and
// salted with its share.
func TestShareCodeHashNotGuessableOffline(t *testing.T) {
	srv, _ := rolesFixture(t)
	u := srv.URL
	finishSigned(t, "rec-1")
	if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"rec-1"}`); code != 201 {
		t.Fatalf("link: %d %s", code, body)
	}
	sh := makeShare(t, u, "tok-o-a", `{"recipient":{"name":"P","organisation":"DA"},"purpose":"p"}`)
	rec, err := lastFixture.cat.Share(context.Background(), sh.ID)
	if err != nil {
		t.Fatal(err)
	}
	typed := strings.ReplaceAll(sh.Code, "-", "")
	for _, guess := range []string{"share-code:" + typed, typed, sh.Code, "share-code:" + sh.ID + typed} {
		sum := sha256.Sum256([]byte(guess))
		if rec.CodeHash == hex.EncodeToString(sum[:]) {
			t.Fatalf("the kept code hash is SHA-256(%q): a catalog dump checks guesses offline", guess)
		}
	}
	// The code still opens the share, typed as people type it.
	p := newRecipient(t, u)
	if resp, body := p.do("POST", "/api/v1/shared/"+sh.ID+"/open", `{"code":" `+strings.ToLower(typed)+`"}`); resp.StatusCode != 200 {
		t.Fatalf("open: %d %s", resp.StatusCode, body)
	}
}
