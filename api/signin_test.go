package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/password"
)

// countingPasswords is the real argon2id, counting the checks: how many,
// and how many ran at once. A closed gate holds every check until it opens.
type countingPasswords struct {
	verifies, inFlight, maxInFlight atomic.Int64
	gate                            chan struct{}
}

func (c *countingPasswords) Hash(secret string) string { return password.Hash(secret) }

func (c *countingPasswords) Verify(hash, secret string) (bool, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if c.gate != nil {
		<-c.gate
	}
	c.verifies.Add(1)
	return password.Verify(hash, secret)
}

// setOwnPassword gives user a password as if they had set it themselves
// long ago: no change pending, and (beneath the catalog, which would revoke
// them) the user's API tokens kept.
func setOwnPassword(t *testing.T, user, pw string) {
	t.Helper()
	if _, err := lastFixture.cat.DB().Exec(`UPDATE users SET password_hash = ? WHERE id = ?`, password.Hash(pw), user); err != nil {
		t.Fatal(err)
	}
}

// from is an HTTP client whose connections come from ip (any 127.0.0.0/8
// address on Linux's loopback): many clients, as a botnet's would be.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

type answer struct {
	code  int
	body  string
	hdr   http.Header
	jar   []*http.Cookie
	retry string
}

// send makes one request; hdr is pairs of header names and values.
func send(t *testing.T, c *http.Client, method, url, body string, hdr ...string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, body: string(b), hdr: resp.Header, jar: resp.Cookies(), retry: resp.Header.Get("Retry-After")}
}

// signInAs posts a JSON sign-in.
func signInAs(t *testing.T, c *http.Client, srvURL, user, pw string, hdr ...string) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "password": pw})
	return send(t, c, "POST", srvURL+"/api/v1/session", string(body), append([]string{"Content-Type", "application/json"}, hdr...)...)
}

func (a answer) cookie() *http.Cookie {
	for _, c := range a.jar {
		if c.Name == "bodycam_session" && c.Value != "" {
			return c
		}
	}
	return nil
}

// withCookie is send with the session cookie and the console's header.
func withCookie(t *testing.T, method, url string, c *http.Cookie, body string, hdr ...string) answer {
	t.Helper()
	return send(t, http.DefaultClient, method, url, body, append([]string{"Cookie", c.Name + "=" + c.Value, "X-Bodycam-Console", "1",
		"Content-Type", "application/json"}, hdr...)...)
}

// #3: 39 wrong passwords at once, then the right one. Each attempt is
// counted before its password is checked, so only five are ever checked,
// the rest get 429, and so does the right password after them. (Before: 39
// checks, 39 x 401, and the right one 200.) The guesses come from 39
// addresses, so the per-address limit plays no part.
func TestSignInLockOutRace(t *testing.T) {
	pw := &countingPasswords{}
	srv, _ := rolesFixture(t, func(o *api.Options) { o.Passwords = pw; o.SignIn.Wait = time.Minute })
	setOwnPassword(t, "s-a", "correct horse battery")
	const wrong = 39
	codes := make([]int, wrong)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range wrong {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = signInAs(t, from(fmt.Sprintf("127.0.0.%d", 2+i)), srv.URL, "s-a", fmt.Sprintf("wrong guess %d", i)).code
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[401] != 5 || count[429] != wrong-5 || pw.verifies.Load() != 5 {
		t.Fatalf("%d concurrent wrong sign-ins: %v, %d passwords checked; want 5 x 401, %d x 429, 5 checked", wrong, count, pw.verifies.Load(), wrong-5)
	}
	right := signInAs(t, from("127.0.0.99"), srv.URL, "s-a", "correct horse battery")
	if right.code != 429 || right.retry == "" || pw.verifies.Load() != 5 {
		t.Fatalf("the right password after the lock-out: %d (Retry-After %q), %d checked; want 429 unchecked", right.code, right.retry, pw.verifies.Load())
	}
}

// #13: an unknown name, an invalid one, a disabled user, a user without a
// password and a wrong password: the same answers in the same order (five
// 401 "wrong user or password", then 429 whose wording differs only in its
// time), and the same work, one argon2id check each until the lock-out.
// (Before: a disabled user cost no check, an unknown name never got 429.)
func TestSignInSameForEveryAccount(t *testing.T) {
	pw := &countingPasswords{}
	srv, _ := rolesFixture(t, func(o *api.Options) { o.Passwords = pw; o.SignIn.Burst = 1000 })
	setOwnPassword(t, "s-a", "correct horse battery")
	setOwnPassword(t, "gone", "correct horse battery") // disabled
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:]+Z`)
	type step struct {
		code     int
		body     string
		verifies int64
	}
	var want []step
	for _, name := range []string{"s-a", "nobody", "Not A User!", "gone", "o-b"} {
		var got []step
		for i := 0; i < 6; i++ {
			guess := "correct horse battery?"
			if name == "gone" && i == 0 {
				guess = "correct horse battery" // the disabled user's right password is refused the same way
			}
			before := pw.verifies.Load()
			a := signInAs(t, http.DefaultClient, srv.URL, name, guess)
			got = append(got, step{a.code, stamp.ReplaceAllString(a.body, "T"), pw.verifies.Load() - before})
		}
		if want == nil {
			want = got
			for i, s := range got {
				if wantCode, wantChecks := map[bool]int{true: 401, false: 429}[i < 5], map[bool]int64{true: 1, false: 0}[i < 5]; s.code != wantCode || s.verifies != wantChecks {
					t.Fatalf("%s attempt %d: %d with %d checks; want %d with %d", name, i+1, s.code, s.verifies, wantCode, wantChecks)
				}
			}
			if !strings.Contains(got[0].body, "wrong user or password") {
				t.Fatalf("the answer: %s", got[0].body)
			}
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%q attempt %d: %+v; for s-a it was %+v", name, i+1, got[i], want[i])
			}
		}
	}
}

// #4: at most a few argon2id checks run at once, whatever the flood: 64
// concurrent unknown-user sign-ins from 64 addresses get two checks at a
// time; the others wait their bounded time and get 503 with Retry-After.
// (Before: 64 checks of 19 MiB each at once, 1 GB.)
func TestSignInHashingBounded(t *testing.T) {
	pw := &countingPasswords{gate: make(chan struct{})}
	srv, _ := rolesFixture(t, func(o *api.Options) {
		o.Passwords = pw
		o.SignIn = api.SignInLimits{Hashing: 2, Wait: 200 * time.Millisecond}
	})
	const flood = 64
	answers := make(chan answer, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers <- signInAs(t, from(fmt.Sprintf("127.0.1.%d", 1+i)), srv.URL, fmt.Sprintf("nobody-%d", i), "a guess at a password")
		}()
	}
	// The two checks hold their slots until the others have given up.
	count := map[int]int{}
	for range flood - 2 {
		a := <-answers
		count[a.code]++
		if a.code != 503 || a.retry == "" {
			t.Errorf("a sign-in waiting for a slot: %d %q (Retry-After %q); want 503 with Retry-After", a.code, a.body, a.retry)
		}
	}
	close(pw.gate)
	wg.Wait()
	close(answers)
	for a := range answers {
		count[a.code]++
	}
	if count[401] != 2 || count[503] != flood-2 || pw.maxInFlight.Load() != 2 {
		t.Fatalf("%d concurrent sign-ins: %v, at most %d checks at once; want 2 x 401, %d x 503, 2 at once", flood, count, pw.maxInFlight.Load(), flood-2)
	}
}

// #4: one address gets a burst of sign-ins (here ten) and then a few a second (here
// one a hundred seconds, so that the test does not race the refill): the
// eleventh in a row gets 429 with Retry-After, unchecked and audited as the
// other anonymous refusals are; another address is not held back.
func TestSignInPerAddress(t *testing.T) {
	pw := &countingPasswords{}
	srv, denied := rolesFixture(t, func(o *api.Options) { o.Passwords = pw; o.SignIn.Burst, o.SignIn.PerSecond = 10, 0.01 })
	c := from("127.0.0.7")
	for i := 0; i < 10; i++ {
		if a := signInAs(t, c, srv.URL, fmt.Sprintf("guess-%d", i), "a guess at a password"); a.code != 401 {
			t.Fatalf("sign-in %d: %d %s", i+1, a.code, a.body)
		}
	}
	before, _ := denied.count()
	a := signInAs(t, c, srv.URL, "guess-11", "a guess at a password")
	if a.code != 429 || a.retry == "" || !strings.Contains(a.body, "from this address") || pw.verifies.Load() != 10 {
		t.Fatalf("the 11th sign-in from one address: %d %s (Retry-After %q), %d checks", a.code, a.body, a.retry, pw.verifies.Load())
	}
	if after, signedIn := denied.count(); after != before+1 || signedIn != 0 {
		t.Fatalf("the refusal was not audited as an anonymous one: %d -> %d (%d signed in)", before, after, signedIn)
	}
	if a := signInAs(t, from("127.0.0.8"), srv.URL, "guess-12", "a guess at a password"); a.code != 401 {
		t.Fatalf("another address: %d", a.code)
	}
}

// #16: sign-in takes only JSON and only from the console's own origin; the
// cookie works only for requests from the console's own pages (or typed
// URLs); bearer tokens are not affected. Each refusal is audited.
func TestSignInCSRF(t *testing.T) {
	srv, denied := rolesFixture(t)
	setOwnPassword(t, "s-a", "correct horse battery")
	creds := `{"user":"s-a","password":"correct horse battery"}`
	post := func(hdr ...string) answer {
		return send(t, http.DefaultClient, "POST", srv.URL+"/api/v1/session", creds, hdr...)
	}
	ct := "application/json"
	for _, tc := range []struct {
		name string
		hdr  []string
		code int
	}{
		{"a form's text/plain (login CSRF)", []string{"Content-Type", "text/plain"}, 415},
		{"a form's urlencoded", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"no type", nil, 415},
		{"another origin", []string{"Content-Type", ct, "Origin", "http://evil.example"}, 403},
		{"origin null", []string{"Content-Type", ct, "Origin", "null"}, 403},
		{"cross-site", []string{"Content-Type", ct, "Sec-Fetch-Site", "cross-site"}, 403},
		{"same-site", []string{"Content-Type", ct, "Sec-Fetch-Site", "same-site"}, 403},
	} {
		before, _ := denied.count()
		if a := post(tc.hdr...); a.code != tc.code || a.cookie() != nil {
			t.Errorf("sign-in with %s: %d %s (cookie %v); want %d and no cookie", tc.name, a.code, a.body, a.cookie(), tc.code)
		}
		if after, _ := denied.count(); after != before+1 {
			t.Errorf("sign-in with %s: not audited", tc.name)
		}
	}
	a := post("Content-Type", "application/json; charset=utf-8", "Origin", srv.URL, "Sec-Fetch-Site", "same-origin")
	cookie := a.cookie()
	if a.code != 200 || cookie == nil {
		t.Fatalf("sign-in from the console's own page: %d %s", a.code, a.body)
	}
	// The cookie, by where the request comes from.
	get := func(hdr ...string) int {
		return withCookie(t, "GET", srv.URL+"/api/v1/recordings", cookie, "", hdr...).code
	}
	for _, tc := range []struct {
		name string
		hdr  []string
		code int
	}{
		{"another site's page", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"a sibling site's page", []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"another origin", []string{"Origin", "http://evil.example"}, 403},
		{"a typed URL", []string{"Sec-Fetch-Site", "none"}, 200},
		{"the console", []string{"Sec-Fetch-Site", "same-origin", "Origin", srv.URL}, 200},
		{"a client that sends neither", nil, 200},
	} {
		before, signedIn := denied.count()
		if code := get(tc.hdr...); code != tc.code {
			t.Errorf("the cookie from %s: %d, want %d", tc.name, code, tc.code)
		}
		if after, signedInAfter := denied.count(); tc.code == 403 && (after != before+1 || signedInAfter != signedIn+1) {
			t.Errorf("the cookie from %s: refusal not audited as the user's", tc.name)
		}
	}
	if code := withCookie(t, "POST", srv.URL+"/api/v1/tokens", cookie, `{"name":"x"}`, "Sec-Fetch-Site", "cross-site").code; code != 403 {
		t.Errorf("a cross-site change riding on the cookie: %d", code)
	}
	// Sign-out from another site's page is refused; the session goes on.
	if code := withCookie(t, "DELETE", srv.URL+"/api/v1/session", cookie, "", "Sec-Fetch-Site", "cross-site").code; code != 403 {
		t.Errorf("cross-site sign-out: %d", code)
	}
	if code := get(); code != 200 {
		t.Errorf("the session after a refused cross-site sign-out: %d", code)
	}
	// Bearer tokens are no cookie: not affected.
	if a := send(t, http.DefaultClient, "GET", srv.URL+"/api/v1/recordings", "", "Authorization", "Bearer tok-s-a",
		"Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example"); a.code != 200 {
		t.Errorf("a bearer token from another origin: %d", a.code)
	}
}

// #11: a console session opened with the bootstrap admin token makes no API
// tokens, and ends when the token changes: a second server on the same
// catalog with another token refuses it, and the first token, too.
// (Before: the session minted tokens, and worked on after the change.)
func TestBootstrapAdminSessions(t *testing.T) {
	srv, _ := rolesFixture(t)
	tokenJSON := func(tok string) string { return `{"token":"` + tok + `"}` }
	a := send(t, http.DefaultClient, "POST", srv.URL+"/api/v1/session", tokenJSON(token), "Content-Type", "application/json")
	cookie := a.cookie()
	if a.code != 200 || cookie == nil {
		t.Fatalf("sign-in with the admin token: %d %s", a.code, a.body)
	}
	if a := withCookie(t, "POST", srv.URL+"/api/v1/tokens", cookie, `{"name":"outlives the token"}`); a.code != 403 {
		t.Fatalf("an API token made by a session of the admin token: %d %s", a.code, a.body)
	}
	if a := withCookie(t, "GET", srv.URL+"/api/v1/session", cookie, ""); a.code != 200 || !strings.Contains(a.body, `"credential": "admin-token"`) {
		t.Fatalf("who am I: %d %s", a.code, a.body)
	}
	// Its user was made then, on record like any account.
	events, err := lastFixture.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{TargetIDs: []string{"admin"}})
	if err != nil || len(events) != 1 || events[0].Action != evidence.ActionAccount || events[0].Actor != "admin-token" {
		t.Fatalf("the bootstrap user's creation in the ledger: %+v %v", events, err)
	}
	// The same catalog and keys, the token changed (a restart with a new one).
	const newToken = "the-new-admin-token-9876543210"
	f := lastFixture
	changed := httptest.NewServer(api.New(api.Options{Catalog: f.cat, Users: f.cat, Cases: f.cat, Custody: f.ledger, Store: f.store, Keys: f.keys,
		AdminToken: newToken, Registry: prometheus.NewRegistry(), Log: quiet}).Handler())
	defer changed.Close()
	if a := withCookie(t, "GET", changed.URL+"/api/v1/users", cookie, ""); a.code != 401 {
		t.Fatalf("the old token's session after the change: %d %s", a.code, a.body)
	}
	if a := send(t, http.DefaultClient, "POST", changed.URL+"/api/v1/session", tokenJSON(token), "Content-Type", "application/json"); a.code != 401 {
		t.Fatalf("sign-in with the old token after the change: %d", a.code)
	}
	a = send(t, http.DefaultClient, "POST", changed.URL+"/api/v1/session", tokenJSON(newToken), "Content-Type", "application/json")
	if a.code != 200 || withCookie(t, "GET", changed.URL+"/api/v1/users", a.cookie(), "").code != 200 {
		t.Fatalf("sign-in with the new token: %d", a.code)
	}
	// And a server still on the old token does not take the new one's.
	if code := withCookie(t, "GET", srv.URL+"/api/v1/users", a.cookie(), "").code; code != 401 {
		t.Fatalf("the new token's session on a server with the old token: %d", code)
	}
}

// #12: changing one's own password takes the current one, an API token
// alone cannot; a change revokes every API token of the user and ends every
// session but the console's that made it, which goes on under a new cookie.
// The current password is guarded like a sign-in. (Before: the token alone
// changed it, and every token and the other sessions went on.)
func TestOwnPasswordChange(t *testing.T) {
	srv, denied := rolesFixture(t)
	url := srv.URL + "/api/v1/users/s-a/password"
	setOwnPassword(t, "s-a", "correct horse battery")
	bearer := func(tok string) []string {
		return []string{"Authorization", "Bearer " + tok, "Content-Type", "application/json"}
	}
	if a := send(t, http.DefaultClient, "POST", url, `{"password":"taken over by a token"}`, bearer("tok-s-a")...); a.code != 400 ||
		!strings.Contains(a.body, "current_password") {
		t.Fatalf("a new password with a token alone: %d %s", a.code, a.body)
	}
	before, signedIn := denied.count()
	if a := send(t, http.DefaultClient, "POST", url, `{"current_password":"a guess","password":"taken over by a token"}`, bearer("tok-s-a")...); a.code != 403 {
		t.Fatalf("a wrong current password: %d %s", a.code, a.body)
	}
	if after, signedInAfter := denied.count(); after != before+1 || signedInAfter != signedIn+1 {
		t.Fatal("a wrong current password is not audited")
	}
	one := signInAs(t, http.DefaultClient, srv.URL, "s-a", "correct horse battery").cookie()
	two := signInAs(t, http.DefaultClient, srv.URL, "s-a", "correct horse battery").cookie()
	var made struct{ Token string }
	json.Unmarshal([]byte(withCookie(t, "POST", srv.URL+"/api/v1/tokens", one, `{"name":"script"}`).body), &made)
	if one == nil || two == nil || made.Token == "" {
		t.Fatal("sessions and a token for the test")
	}
	a := withCookie(t, "POST", url, one, `{"current_password":"correct horse battery","password":"a brand new passphrase"}`)
	renewed := a.cookie()
	if a.code != 204 || renewed == nil || renewed.Value == one.Value {
		t.Fatalf("the change from the console: %d %s, cookie %v", a.code, a.body, renewed)
	}
	for name, code := range map[string]int{
		"the fixture's token": send(t, http.DefaultClient, "GET", srv.URL+"/api/v1/session", "", bearer("tok-s-a")...).code,
		"the token made":      send(t, http.DefaultClient, "GET", srv.URL+"/api/v1/session", "", bearer(made.Token)...).code,
		"the other session":   withCookie(t, "GET", srv.URL+"/api/v1/session", two, "").code,
		"the old cookie":      withCookie(t, "GET", srv.URL+"/api/v1/session", one, "").code,
	} {
		if code != 401 {
			t.Errorf("%s after the change: %d, want 401", name, code)
		}
	}
	if code := withCookie(t, "GET", srv.URL+"/api/v1/recordings", renewed, "").code; code != 200 {
		t.Fatalf("the renewed session: %d", code)
	}
	if code := signInAs(t, http.DefaultClient, srv.URL, "s-a", "correct horse battery").code; code != 401 {
		t.Fatalf("the old password: %d", code)
	}
	// With a token and the current password: the token itself is revoked.
	json.Unmarshal([]byte(withCookie(t, "POST", srv.URL+"/api/v1/tokens", renewed, `{"name":"script"}`).body), &made)
	if a := send(t, http.DefaultClient, "POST", url, `{"current_password":"a brand new passphrase","password":"and another passphrase"}`,
		bearer(made.Token)...); a.code != 204 || a.cookie() != nil {
		t.Fatalf("the change with a token: %d %s", a.code, a.body)
	}
	if code := send(t, http.DefaultClient, "GET", srv.URL+"/api/v1/session", "", bearer(made.Token)...).code; code != 401 {
		t.Fatalf("the token that made the change: %d", code)
	}
	if code := withCookie(t, "GET", srv.URL+"/api/v1/session", renewed, "").code; code != 401 {
		t.Fatalf("the console session after a change elsewhere: %d", code)
	}
	// Guessing the current password is a sign-in attempt: five, then 429.
	cookie := signInAs(t, http.DefaultClient, srv.URL, "s-a", "and another passphrase").cookie()
	for i := 1; i <= 6; i++ {
		want := map[bool]int{true: 403, false: 429}[i <= 5]
		if a := withCookie(t, "POST", url, cookie, fmt.Sprintf(`{"current_password":"guess %d","password":"a brand new passphrase"}`, i)); a.code != want {
			t.Fatalf("guess %d at the current password: %d %s, want %d", i, a.code, a.body, want)
		}
	}
}

// #8, #12: an admin's reset must be replaced
// at the next sign-in: until then the sign-in may only see who it is (which
// says who reset it and when), change its password and sign out. The reset
// revokes the user's tokens and sessions.
func TestAdminResetForcesNewPassword(t *testing.T) {
	srv, denied := rolesFixture(t)
	adm := []string{"Authorization", "Bearer tok-adm", "Content-Type", "application/json"}
	setOwnPassword(t, "o-a", "the officer's own password")
	officer := signInAs(t, http.DefaultClient, srv.URL, "o-a", "the officer's own password").cookie()
	resetAt := time.Now().UTC()
	if a := send(t, http.DefaultClient, "POST", srv.URL+"/api/v1/users/o-a/password", `{"password":"chosen by the admin"}`, adm...); a.code != 204 {
		t.Fatalf("the reset: %d %s", a.code, a.body)
	}
	for name, code := range map[string]int{
		"the officer's token":   send(t, http.DefaultClient, "GET", srv.URL+"/api/v1/session", "", "Authorization", "Bearer tok-o-a").code,
		"the officer's session": withCookie(t, "GET", srv.URL+"/api/v1/session", officer, "").code,
		"the old password":      signInAs(t, http.DefaultClient, srv.URL, "o-a", "the officer's own password").code,
	} {
		if code != 401 {
			t.Errorf("%s after the reset: %d, want 401", name, code)
		}
	}
	// The admin signs in as the officer with the password it chose.
	a := signInAs(t, http.DefaultClient, srv.URL, "o-a", "chosen by the admin")
	pending := a.cookie()
	if a.code != 200 || !strings.Contains(a.body, `"must_change_password": true`) {
		t.Fatalf("sign-in with the reset password: %d %s", a.code, a.body)
	}
	before, _ := denied.count()
	for _, req := range [][2]string{{"GET", "/api/v1/recordings"}, {"GET", "/api/v1/recordings/rec-a/media"}, {"GET", "/api/v1/cases/C-1"},
		{"POST", "/api/v1/tokens"}, {"GET", "/api/v1/tokens"}} {
		if a := withCookie(t, req[0], srv.URL+req[1], pending, `{"name":"x"}`); a.code != 403 || !strings.Contains(a.body, "set a new password first") {
			t.Errorf("%s %s before a new password: %d %s", req[0], req[1], a.code, a.body)
		}
	}
	if after, _ := denied.count(); after != before+5 {
		t.Errorf("refusals before a new password: %d audited, want 5", after-before)
	}
	var who struct {
		MustChange bool      `json:"must_change_password"`
		ResetAt    time.Time `json:"password_reset_at"`
		ResetBy    string    `json:"password_reset_by"`
	}
	a = withCookie(t, "GET", srv.URL+"/api/v1/session", pending, "")
	json.Unmarshal([]byte(a.body), &who)
	if a.code != 200 || !who.MustChange || who.ResetBy != "adm" || who.ResetAt.Sub(resetAt).Abs() > time.Minute {
		t.Fatalf("who am I before a new password: %d %s", a.code, a.body)
	}
	// Another user's password: not for a pending sign-in.
	if a := withCookie(t, "POST", srv.URL+"/api/v1/users/o-b/password", pending, `{"password":"chosen by the officer"}`); a.code != 403 {
		t.Fatalf("another user's password from a pending sign-in: %d", a.code)
	}
	a = withCookie(t, "POST", srv.URL+"/api/v1/users/o-a/password", pending, `{"current_password":"chosen by the admin","password":"chosen by the officer"}`)
	renewed := a.cookie()
	if a.code != 204 || renewed == nil {
		t.Fatalf("the officer's new password: %d %s", a.code, a.body)
	}
	if code := withCookie(t, "GET", srv.URL+"/api/v1/recordings", renewed, "").code; code != 200 {
		t.Fatalf("after the new password: %d", code)
	}
	a = withCookie(t, "GET", srv.URL+"/api/v1/session", renewed, "")
	json.Unmarshal([]byte(a.body), &who)
	if who.MustChange || who.ResetBy != "adm" {
		t.Fatalf("who am I after the new password (the reset stays on show): %s", a.body)
	}
	// A new account's first password is the admin's to give: it works at
	// once, and the account shows who set it.
	if a := send(t, http.DefaultClient, "POST", srv.URL+"/api/v1/users", `{"id":"aud-2","role":"auditor","password":"chosen by the admin"}`, adm...); a.code != 201 {
		t.Fatalf("create: %d %s", a.code, a.body)
	}
	a = signInAs(t, http.DefaultClient, srv.URL, "aud-2", "chosen by the admin")
	if a.code != 200 || withCookie(t, "GET", srv.URL+"/api/v1/recordings", a.cookie(), "").code != 200 {
		t.Fatalf("a new auditor with its first password: %d %s", a.code, a.body)
	}
	a = withCookie(t, "GET", srv.URL+"/api/v1/session", a.cookie(), "")
	if json.Unmarshal([]byte(a.body), &who); who.MustChange || who.ResetBy != "adm" {
		t.Fatalf("who am I with a first password: %s", a.body)
	}
}

// #8: every account change is a custody event naming who made it: users
// created, passwords reset and changed, certificates, disabled users, API
// tokens made and revoked, devices registered and retired.
func TestAccountChangesInLedger(t *testing.T) {
	srv, _ := rolesFixture(t)
	adm := []string{"Authorization", "Bearer tok-adm", "Content-Type", "application/json"}
	steps := []struct {
		method, path, body string
		auth               []string
		code               int
	}{
		{"POST", "/api/v1/users", `{"id":"aud-x","role":"auditor","unit":"a","password":"chosen by the admin"}`, adm, 201},
		{"POST", "/api/v1/users/o-a/password", `{"password":"chosen by the admin"}`, adm, 204},
		{"POST", "/api/v1/users/o-b/certificate", `{"valid_until":"2030-01-01T00:00:00Z"}`, adm, 200},
		{"POST", "/api/v1/users/o-b/certificate", `{"valid_until":"2030-01-01T00:00:00Z","revoked":true}`, adm, 200},
		{"DELETE", "/api/v1/users/aud-x", "", adm, 204},
		{"POST", "/api/v1/devices", `{"id":"cam-x","officer_id":"o-b"}`, adm, 201},
		{"DELETE", "/api/v1/devices/cam-x", "", adm, 204},
		{"POST", "/api/v1/tokens", `{"name":"nightly"}`, []string{"Authorization", "Bearer tok-aud", "Content-Type", "application/json"}, 201},
	}
	var tokenID string
	for _, s := range steps {
		a := send(t, http.DefaultClient, s.method, srv.URL+s.path, s.body, s.auth...)
		if a.code != s.code {
			t.Fatalf("%s %s: %d %s", s.method, s.path, a.code, a.body)
		}
		if s.path == "/api/v1/tokens" {
			var tok struct{ ID string }
			json.Unmarshal([]byte(a.body), &tok)
			tokenID = tok.ID
		}
	}
	if a := send(t, http.DefaultClient, "DELETE", srv.URL+"/api/v1/tokens/"+tokenID, "", "Authorization", "Bearer tok-aud"); a.code != 204 {
		t.Fatalf("revoke: %d", a.code)
	}
	setOwnPassword(t, "s-a", "correct horse battery")
	if a := send(t, http.DefaultClient, "POST", srv.URL+"/api/v1/users/s-a/password", `{"current_password":"correct horse battery","password":"a brand new passphrase"}`,
		"Authorization", "Bearer tok-s-a", "Content-Type", "application/json"); a.code != 204 {
		t.Fatalf("own password: %d", a.code)
	}
	events, err := lastFixture.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{TargetIDs: []string{"aud-x", "o-a", "o-b", "cam-x", tokenID, "s-a"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.Action != evidence.ActionAccount || e.Outcome != evidence.OutcomeOK {
			continue
		}
		got = append(got, e.Actor+"/"+e.Role+" "+e.TargetKind+" "+e.TargetID+": "+e.Detail)
	}
	want := []string{
		`adm/admin user aud-x: user created: role auditor, unit "a"`,
		`adm/admin user o-a: password reset by adm: the user must set a new one at the next sign-in; 1 API token(s) revoked`,
		`adm/admin user o-b: certificate valid until 2030-01-01T00:00:00Z`,
		`adm/admin user o-b: certificate valid until 2030-01-01T00:00:00Z; revoked`,
		`adm/admin user aud-x: user disabled`,
		`adm/admin device cam-x: device registered: "cam-x", assigned to officer o-b`,
		`adm/admin device cam-x: device retired`,
		`aud/auditor token ` + tokenID + `: API token "nightly" of aud created`,
		`aud/auditor token ` + tokenID + `: API token "nightly" of aud revoked`,
		`s-a/supervisor user s-a: password changed by the user; 1 API token(s) revoked`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d account events, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d:\n got  %s\n want %s…", i, got[i], want[i])
		}
	}
	if !strings.Contains(got[0], "a first password set by adm") {
		t.Errorf("the creation does not say who set the password: %s", got[0])
	}
}

// The role table again, signed in by cookie: from the console's own pages
// the cookie gets what the user's bearer token gets; from another site's
// page, or another origin, every endpoint is refused (#16); before a user
// replaces a password an admin set, every endpoint but who am I is refused
// (#8). Each refusal is audited as the user's.
func TestRolesByEndpointCookie(t *testing.T) {
	srv, denied := rolesFixture(t)
	setOwnPassword(t, "s-a", "correct horse battery")
	if err := lastFixture.cat.CreateUser(context.Background(), evidence.User{ID: "pend", Role: evidence.RoleOfficer, Unit: "a", CertToken: "cert-pend",
		PasswordHash: password.Hash("chosen by the admin"), MustChangePassword: true, PasswordResetBy: "adm", PasswordResetAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	sa := signInAs(t, http.DefaultClient, srv.URL, "s-a", "correct horse battery").cookie()
	pend := signInAs(t, http.DefaultClient, srv.URL, "pend", "chosen by the admin").cookie()
	if sa == nil || pend == nil {
		t.Fatal("sign-in")
	}
	col := slices.Index(rolePrincipals, "s-a")
	principals := []struct {
		name   string
		cookie *http.Cookie
		hdr    []string
		want   func(row roleRow) int
	}{
		{"s-a from the console", sa, []string{"Sec-Fetch-Site", "same-origin", "Origin", srv.URL}, func(row roleRow) int { return row.want[col] }},
		{"s-a from another site", sa, []string{"Sec-Fetch-Site", "cross-site"}, func(roleRow) int { return 403 }},
		{"s-a from another origin", sa, []string{"Origin", "https://evil.example"}, func(roleRow) int { return 403 }},
		{"pend before a new password", pend, []string{"Sec-Fetch-Site", "same-origin"}, func(row roleRow) int {
			if row.method == "GET" && row.path == "/api/v1/session" {
				return 200
			}
			return 403
		}},
	}
	wantDenied := 0
	for _, row := range roleTable() {
		if strings.HasPrefix(row.path, "/api/v1/shared/") {
			continue // no user's credentials: a share's own cookie (TestShares)
		}
		for _, p := range principals {
			hdr := p.hdr
			if strings.HasSuffix(row.path, "/whep") {
				hdr = append(hdr, "Content-Type", "application/sdp")
			}
			want := p.want(row)
			if want == 401 || want == 403 || want == hid {
				wantDenied++
			}
			if want == hid {
				want = 404
			}
			if got := withCookie(t, row.method, srv.URL+row.path, p.cookie, row.body, hdr...).code; got != want {
				t.Errorf("%s %s as %s: %d, want %d", row.method, row.path, p.name, got, want)
			}
		}
	}
	if got, signedIn := denied.count(); got != wantDenied || signedIn != wantDenied {
		t.Errorf("%d refusals audited, %d of them signed in; want %d, all signed in", got, signedIn, wantDenied)
	}
}
