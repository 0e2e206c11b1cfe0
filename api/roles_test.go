package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	imagepng "image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/caselink"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/custody"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/storage/dir"
)

// deniedLog records refusals, as the custody ledger does.
type deniedLog struct {
	mu       sync.Mutex
	list     []string
	signedIn int
}

func (d *deniedLog) Denied(_ context.Context, user, what, remote, why string, signedIn bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.list = append(d.list, user+" "+what)
	if signedIn {
		d.signedIn++
	}
}

// count is how many refusals were audited, and how many of them of a
// signed-in principal.
func (d *deniedLog) count() (all, signedIn int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.list), d.signedIn
}

// rolesFixture: two units (a, b); officer o-a owns device cam-a and its
// recording rec-a; every role has an API token named after it. opts change
// the server's options.
func rolesFixture(t *testing.T, opts ...func(*api.Options)) (*httptest.Server, *deniedLog) {
	t.Helper()
	ctx := context.Background()
	dataDir := t.TempDir()
	cat, err := catalog.Open(ctx, "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	store, _ := dir.Open(dataDir+"/objects", dir.Options{})
	keys, _ := keyring.Open(dataDir+"/keys", keyring.Options{})
	for _, u := range []evidence.User{
		{ID: "o-a", Role: evidence.RoleOfficer, Unit: "a"},
		{ID: "o-b", Role: evidence.RoleOfficer, Unit: "b"},
		{ID: "s-a", Role: evidence.RoleSupervisor, Unit: "a"},
		{ID: "s-b", Role: evidence.RoleSupervisor, Unit: "b"},
		{ID: "aud", Role: evidence.RoleAuditor},
		{ID: "adm", Role: evidence.RoleAdmin},
		{ID: "gone", Role: evidence.RoleAuditor, Disabled: true},
		{ID: "dk", Role: evidence.RoleDock, Unit: "a"}, // a dock of unit a: uploads, and nothing else
	} {
		u.CertToken = "cert-" + u.ID
		if err := cat.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte("tok-" + u.ID))
		if err := cat.CreateAPIToken(ctx, evidence.APIToken{ID: u.ID, TokenHash: hex.EncodeToString(sum[:]), UserID: u.ID, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.CreateDevice(ctx, evidence.Device{ID: "cam-a", OfficerID: "o-a", SecretHash: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateRecording(ctx, evidence.Recording{ID: "rec-a", DeviceID: "cam-a", OfficerID: "o-a", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-a", Unit: "a", CreatedBy: "o-a"}); err != nil {
		t.Fatal(err)
	}
	denied := &deniedLog{}
	ledger := custody.New(func(ctx context.Context, e evidence.CustodyEvent) (evidence.CustodyEvent, error) {
		return cat.AppendCustody(ctx, e, keys)
	}, quiet, nil)
	o := api.Options{Catalog: cat, Users: cat, Cases: cat, Custody: ledger, Bookmarks: cat, Shares: cat, Jobs: cat, Stats: cat, Copies: cat, Signer: keys, Store: store, Keys: keys,
		Retention:  &api.Retention{Policy: testPolicy, Minimum: evidence.MinRetention, Catalog: cat},
		Links:      caselink.New(caselink.Options{Catalog: cat, Holds: store, Custody: ledger, Log: quiet}),
		AdminToken: token, Audit: denied, Registry: prometheus.NewRegistry(), Log: quiet}
	for _, opt := range opts {
		opt(&o)
	}
	srv := httptest.NewServer(api.New(o).Handler())
	t.Cleanup(srv.Close)
	lastFixture = fixtureParts{cat: cat, keys: keys, ledger: ledger, store: store, root: dataDir + "/objects"}
	return srv, denied
}

// testPolicy is the retention policy of the fixture: the default classes.
var testPolicy = evidence.RetentionPolicy{
	Unlinked:  evidence.RetentionPeriod{Duration: evidence.MinRetention},
	Important: evidence.RetentionPeriod{Years: 2},
	Classes: []evidence.RetentionClass{
		{Name: "traffic_stop", Period: evidence.RetentionPeriod{Duration: evidence.MinRetention}},
		{Name: "no_incident", Period: evidence.RetentionPeriod{Duration: evidence.MinRetention}},
		{Name: "arrest", Period: evidence.RetentionPeriod{Years: 3}},
		{Name: "complaint", Period: evidence.RetentionPeriod{Permanent: true}},
	},
}

type fixtureParts struct {
	cat    *catalog.Catalog
	keys   *keyring.Keyring
	store  *dir.Store
	ledger *custody.Ledger
	root   string // the store's directory
}

// lastFixture gives tests the catalog and keys under the last rolesFixture.
var lastFixture fixtureParts

// hid in the table: the principal may not see that case, recording or
// device, and gets the very 404 a missing one gets (ids cannot be probed);
// the refusal is audited all the same.
const hid = -404

var rolePrincipals = []string{"none", "o-a", "o-b", "s-a", "s-b", "aud", "adm", "admin-token", "gone", "dk"}

type roleRow struct {
	method, path, body string
	want               []int // in the order of rolePrincipals
}

// roleTable is every endpoint with the status each principal must get.
// 401: no valid credential; 403: the role may not; hid: its scope may not.
// Other codes show the request got past authorization (400: the empty body
// was then refused; 503: live viewing is not enabled in this fixture).
func roleTable() []roleRow {
	return []roleRow{
		//                                                       none o-a  o-b  s-a  s-b  aud  adm  boot gone dk
		// A dock signed in to the console sees who it is (and its uploads).
		{"GET", "/api/v1/session", "", []int{401, 200, 200, 200, 200, 200, 200, 200, 401, 200}},
		{"GET", "/api/v1/tokens", "", []int{401, 200, 200, 200, 200, 200, 200, 200, 401, 403}},
		{"GET", "/api/v1/devices", "", []int{401, 403, 403, 200, 200, 200, 200, 200, 401, 403}},
		{"POST", "/api/v1/devices", "{}", []int{401, 403, 403, 403, 403, 403, 400, 400, 401, 403}},
		{"DELETE", "/api/v1/devices/nope", "", []int{401, 403, 403, 403, 403, 403, 404, 404, 401, 403}},
		{"GET", "/api/v1/devices/cam-a", "", []int{401, 403, 403, 200, 200, 200, 200, 200, 401, 403}},
		{"GET", "/api/v1/users", "", []int{401, 403, 403, 403, 403, 403, 200, 200, 401, 403}},
		{"GET", "/api/v1/users/o-a", "", []int{401, 403, 403, 403, 403, 403, 200, 200, 401, 403}},
		{"DELETE", "/api/v1/users/nope", "", []int{401, 403, 403, 403, 403, 403, 404, 404, 401, 403}},
		{"DELETE", "/api/v1/tokens/nope", "", []int{401, 404, 404, 404, 404, 404, 404, 404, 401, 403}},
		{"GET", "/api/v1/officers", "", []int{401, 403, 403, 200, 200, 200, 403, 403, 401, 403}},
		{"POST", "/api/v1/users", "{}", []int{401, 403, 403, 403, 403, 403, 400, 400, 401, 403}},
		{"POST", "/api/v1/users/o-a/password", `{"password":"short"}`, []int{401, 400, 403, 403, 403, 403, 400, 400, 401, 403}},
		// An admin issues a dock's tokens, and nobody else's.
		{"POST", "/api/v1/users/dk/tokens", `{"name":"t"}`, []int{401, 403, 403, 403, 403, 403, 201, 201, 401, 403}},
		{"POST", "/api/v1/users/o-a/tokens", `{"name":"t"}`, []int{401, 403, 403, 403, 403, 403, 403, 403, 401, 403}},
		{"GET", "/api/v1/users/dk/tokens", "", []int{401, 403, 403, 403, 403, 403, 200, 200, 401, 403}},
		{"DELETE", "/api/v1/users/dk/tokens/nope", "", []int{401, 403, 403, 403, 403, 403, 404, 404, 401, 403}},
		{"POST", "/api/v1/users/o-a/certificate", `{"revoked":false}`, []int{401, 403, 403, 403, 403, 403, 200, 200, 401, 403}},
		{"GET", "/api/v1/recordings", "", []int{401, 200, 200, 200, 200, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/media", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/original", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		{"POST", "/api/v1/recordings/rec-a/verify", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		// Bookmarks: the recording's readers list them; officers and
		// supervisors who may read it set and remove them.
		{"GET", "/api/v1/recordings/rec-a/bookmarks", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"POST", "/api/v1/recordings/rec-a/bookmarks", "{}", []int{401, 400, hid, 400, hid, 403, 403, 403, 401, 403}},
		{"POST", "/api/v1/recordings/rec-a/bookmarks/nope/remove", `{"reason":"r"}`, []int{401, 404, hid, 404, hid, 403, 403, 403, 401, 403}},
		// Jobs: admins, auditors and supervisors (their footage's) watch
		// them; admins run them again. Derived media: the recording's readers.
		{"GET", "/api/v1/jobs", "", []int{401, 403, 403, 200, 200, 200, 200, 200, 401, 403}},
		{"GET", "/api/v1/jobs?state=bad", "", []int{401, 403, 403, 400, 400, 400, 400, 400, 401, 403}},
		{"GET", "/api/v1/jobs/nope", "", []int{401, 403, 403, 404, 404, 404, 404, 404, 401, 403}},
		{"POST", "/api/v1/jobs/nope/rerun", "", []int{401, 403, 403, 403, 403, 403, 404, 404, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/derived", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/poster", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		// Retention classes: every user but a dock reads them; officers and
		// supervisors who may read a recording set its categories (who may
		// shorten its retention: TestCategories).
		{"GET", "/api/v1/categories", "", []int{401, 200, 200, 200, 200, 200, 200, 200, 401, 403}},
		{"PUT", "/api/v1/recordings/rec-a/categories", "{}", []int{401, 400, hid, 400, hid, 403, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/thumbnails", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/thumbnails/0", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/sprite", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/sprite/index", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		// Renditions: the readers play the proxy and the clips; officers and
		// supervisors who may read a recording ask for clips.
		{"GET", "/api/v1/recordings/rec-a/media?rendition=proxy", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/media?rendition=bad", "", []int{401, 400, hid, 400, hid, 400, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/clips", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"POST", "/api/v1/recordings/rec-a/clips", "{}", []int{401, 400, hid, 400, hid, 403, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/clips/nope", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/redactions", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"POST", "/api/v1/recordings/rec-a/redactions", "{}", []int{401, 400, hid, 400, hid, 403, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/redactions/nope", "", []int{401, 404, hid, 404, hid, 404, 403, 403, 401, 403}},
		{"GET", "/api/v1/live", "", []int{401, 403, 403, 200, 200, 200, 200, 200, 401, 403}},
		{"POST", "/api/v1/live/cam-a/whep", "v=0", []int{401, 403, 403, 503, hid, 503, 403, 403, 401, 403}},
		// Hanging up a session that is not one's own (here: none) is 404 for
		// every watcher, as for one that does not exist, locally or on
		// another node (cluster_test.go).
		{"DELETE", "/api/v1/live/cam-a/whep/nope", "", []int{401, 403, 403, 404, 404, 404, 403, 403, 401, 403}},
		{"DELETE", "/api/v1/live/cam-a/whep/nope@node-b", "", []int{401, 403, 403, 404, 404, 404, 403, 403, 401, 403}},
		{"GET", "/api/v1/live/viewers", "", []int{401, 403, 403, 200, 200, 200, 200, 200, 401, 403}},
		{"GET", "/api/v1/live/views", "", []int{401, 403, 403, 200, 200, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/nodes", "", []int{401, 403, 403, 403, 403, 200, 200, 200, 401, 403}},
		// The supervision dashboard: supervisors (their unit's: TestStatsScope)
		// and auditors; a bad period is refused past the role.
		{"GET", "/api/v1/stats?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", "", []int{401, 403, 403, 200, 200, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/stats?from=2026-01-01T00:00:00Z", "", []int{401, 403, 403, 400, 400, 400, 403, 403, 401, 403}},
		{"GET", "/api/v1/stats?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&unit=b", "", []int{401, 403, 403, hid, 200, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/stats.csv?table=units&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", "", []int{401, 403, 403, 200, 200, 200, 403, 403, 401, 403}},
		{"GET", "/debug/pprof/", "", []int{401, 403, 403, 403, 403, 403, 200, 200, 401, 403}},
		{"GET", "/api/v1/cases", "", []int{401, 200, 200, 200, 200, 200, 403, 403, 401, 403}},
		{"POST", "/api/v1/cases", "{}", []int{401, 400, 400, 400, 400, 403, 403, 403, 401, 403}},
		{"GET", "/api/v1/cases/C-1", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"POST", "/api/v1/cases/C-1/transition", `{"to":"investigating"}`, []int{401, 400, hid, 400, hid, 403, 403, 403, 401, 403}},
		{"POST", "/api/v1/cases/C-1/evidence", `{"recording_id":"nope"}`, []int{401, 400, hid, 400, hid, 403, 403, 403, 401, 403}},
		{"POST", "/api/v1/cases/C-1/evidence/nope/unlink", `{"reason":"r"}`, []int{401, 404, hid, 404, hid, 403, 403, 403, 401, 403}},
		{"GET", "/api/v1/cases/C-1/custody", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		// Audit reports: a recording's and a case's for their readers; a
		// user's for auditors only. A bad format is refused before the scope.
		{"GET", "/api/v1/cases/C-1/audit", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/audit?format=pdf", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/recordings/rec-a/audit?format=xml", "", []int{401, 400, 400, 400, 400, 400, 403, 403, 401, 403}},
		{"GET", "/api/v1/users/o-a/audit?since=2026-01-01T00:00:00Z&until=2027-01-01T00:00:00Z", "", []int{401, 403, 403, 403, 403, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/cases/C-1/export", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		// Sharing: the case's readers list its shares; officers and
		// supervisors who may change it share, revoke and renew codes.
		{"POST", "/api/v1/cases/C-1/shares", "{}", []int{401, 400, hid, 400, hid, 403, 403, 403, 401, 403}},
		{"GET", "/api/v1/cases/C-1/shares", "", []int{401, 200, hid, 200, hid, 200, 403, 403, 401, 403}},
		{"POST", "/api/v1/cases/C-1/shares/nope/revoke", `{"reason":"r"}`, []int{401, 404, hid, 404, hid, 403, 403, 403, 401, 403}},
		{"POST", "/api/v1/cases/C-1/shares/nope/code", "", []int{401, 404, hid, 404, hid, 403, 403, 403, 401, 403}},
		// A share's recipient has no account: no user's credential opens a
		// share (here: none, so 404 for all), nor does a share's cookie open
		// anything else (TestShares).
		{"POST", "/api/v1/shared/nope/open", `{"code":"x"}`, []int{404, 404, 404, 404, 404, 404, 404, 404, 404, 404}},
		{"GET", "/api/v1/shared/nope", "", []int{404, 404, 404, 404, 404, 404, 404, 404, 404, 404}},
		{"GET", "/api/v1/shared/nope/download", "", []int{404, 404, 404, 404, 404, 404, 404, 404, 404, 404}},
		{"GET", "/api/v1/shared/nope/receipts/nope", "", []int{404, 404, 404, 404, 404, 404, 404, 404, 404, 404}},
		{"POST", "/api/v1/custody/verify", "", []int{401, 403, 403, 403, 403, 200, 403, 403, 401, 403}},
		// Approval before copying (off in this fixture: the requests are
		// kept all the same). Officers, supervisors and auditors who may
		// read the thing ask; supervisors decide.
		{"POST", "/api/v1/copy-requests", `{"kind":"recording","id":"rec-a","reason":"court"}`, []int{401, 201, hid, 201, hid, 201, 403, 403, 401, 403}},
		{"POST", "/api/v1/copy-requests", `{"kind":"case","id":"C-1","reason":"court"}`, []int{401, 201, hid, 201, hid, 201, 403, 403, 401, 403}},
		{"GET", "/api/v1/copy-requests", "", []int{401, 200, 200, 200, 200, 200, 403, 403, 401, 403}},
		{"GET", "/api/v1/copy-requests/nope", "", []int{401, hid, hid, hid, hid, hid, 403, 403, 401, 403}},
		{"POST", "/api/v1/copy-requests/nope/decision", `{"approve":true}`, []int{401, 403, 403, hid, hid, 403, 403, 403, 401, 403}},
		// No webhook is configured in this fixture: 503 past authorization.
		{"GET", "/api/v1/webhooks/dead-letters", "", []int{401, 403, 403, 403, 403, 403, 503, 503, 401, 403}},
		{"POST", "/api/v1/webhooks/dead-letters/1/retry", "", []int{401, 403, 403, 403, 403, 403, 503, 503, 401, 403}},
		// The bootstrap admin token makes no API tokens (they would outlive a change of it).
		{"POST", "/api/v1/tokens", `{"name":"t"}`, []int{401, 201, 201, 201, 201, 201, 201, 403, 401, 403}},
		// Changing one's own password takes the current one (o-a has none, so
		// it is wrong); an admin's reset takes none.
		{"POST", "/api/v1/users/o-a/password", `{"current_password":"not the password","password":"a long enough password"}`,
			[]int{401, 403, 403, 403, 403, 403, 400, 400, 401, 403}},
		// Dock upload: docks upload, and nothing else; nobody else uploads.
		// No upload server in this fixture: 503 past authorization.
		{"POST", "/api/v1/uploads/", "", []int{401, 403, 403, 403, 403, 403, 403, 403, 401, 503}},
		{"POST", "/api/v1/uploads", "", []int{401, 403, 403, 403, 403, 403, 403, 403, 401, 503}},
		{"HEAD", "/api/v1/uploads/u1", "", []int{401, 403, 403, 403, 403, 403, 403, 403, 401, 503}},
		{"PATCH", "/api/v1/uploads/u1", "", []int{401, 403, 403, 403, 403, 403, 403, 403, 401, 503}},
		{"DELETE", "/api/v1/uploads/u1", "", []int{401, 403, 403, 403, 403, 403, 403, 403, 401, 503}},
		{"POST", "/api/v1/uploads/u1/released", "", []int{401, 403, 403, 403, 403, 403, 403, 403, 401, 503}},
		{"GET", "/api/v1/uploads", "", []int{401, 403, 403, 503, 503, 503, 503, 503, 401, 503}},
		{"GET", "/api/v1/uploads/u1/receipt", "", []int{401, 403, 403, 403, 403, 503, 503, 503, 401, 503}},
		{"GET", "/api/v1/receipts?device=cam-a&sha256=00", "", []int{401, 403, 403, 403, 403, 503, 503, 503, 401, 503}},
	}
}

// Every role against every endpoint (roleTable), with the status each must
// get, and every refusal audited.
func TestRolesByEndpoint(t *testing.T) {
	srv, denied := rolesFixture(t)
	principals := rolePrincipals
	table := roleTable()
	wantDenied, wantForbidden := 0, 0
	for _, row := range table {
		for i, who := range principals {
			req, _ := http.NewRequest(row.method, srv.URL+row.path, strings.NewReader(row.body))
			switch who {
			case "none":
			case "admin-token":
				req.Header.Set("Authorization", "Bearer "+token)
			default:
				req.Header.Set("Authorization", "Bearer tok-"+who)
			}
			if strings.HasSuffix(row.path, "/whep") {
				req.Header.Set("Content-Type", "application/sdp")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := row.want[i]
			if want == hid {
				want = 404
				wantDenied++
				wantForbidden++
			}
			if resp.StatusCode != want {
				t.Errorf("%s %s as %s: %d, want %d", row.method, row.path, who, resp.StatusCode, want)
			}
			if row.want[i] == 401 || row.want[i] == 403 {
				wantDenied++
			}
			if row.want[i] == 403 {
				wantForbidden++
			}
		}
	}
	if got, signedIn := denied.count(); got != wantDenied || signedIn != wantForbidden {
		t.Errorf("%d refusals audited, %d of them signed in; want %d (one per 401/403) and %d (the 403s)", got, signedIn, wantDenied, wantForbidden)
	}
}

// The table has a row for every route the server serves but the public
// ones, so that a route added without its roles checked fails here. (The
// internal endpoints, which take no user's credentials at all, are
// TestInternalEndpointsRefuseUnvouched's.)
func TestRoleTableCoversEveryRoute(t *testing.T) {
	public := map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true, "GET /api/v1/openapi.yaml": true,
		"GET /api/v1/keys": true, "POST /api/v1/session": true, "DELETE /api/v1/session": true,
		"OPTIONS /api/v1/uploads/": true, "OPTIONS /api/v1/uploads": true} // tus discovery, CORS preflights
	mux := http.NewServeMux()
	for _, p := range api.New(api.Options{AdminToken: token, Log: quiet}).Routes() {
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	covered := map[string]bool{}
	for _, row := range roleTable() {
		_, pattern := mux.Handler(httptest.NewRequest(row.method, row.path, nil))
		covered[pattern] = true
	}
	for _, p := range api.New(api.Options{AdminToken: token, Log: quiet}).Routes() {
		if !covered[p] && !public[p] {
			t.Errorf("route %s has no row in roleTable", p)
		}
	}
}

// Listing is scoped too: an officer sees only their own recordings, a
// supervisor their unit's.
func TestRecordingListScope(t *testing.T) {
	srv, _ := rolesFixture(t)
	for who, want := range map[string]int{"o-a": 1, "o-b": 0, "s-a": 1, "s-b": 0, "aud": 1} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/recordings", nil)
		req.Header.Set("Authorization", "Bearer tok-"+who)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list.Items) != want {
			t.Errorf("%s sees %d recordings, want %d", who, len(list.Items), want)
		}
	}
}

// Officers are listed for a supervisor by unit and for an auditor in full,
// without disabled accounts or anything about signing in.
func TestOfficerListScope(t *testing.T) {
	srv, _ := rolesFixture(t)
	if err := lastFixture.cat.CreateUser(context.Background(), evidence.User{ID: "o-a-gone", Role: evidence.RoleOfficer, Unit: "a",
		Disabled: true, CertToken: "cert-o-a-gone"}); err != nil {
		t.Fatal(err)
	}
	for who, want := range map[string]string{"s-a": "o-a", "s-b": "o-b", "aud": "o-a,o-b"} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/officers", nil)
		req.Header.Set("Authorization", "Bearer tok-"+who)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		raw.ReadFrom(resp.Body)
		resp.Body.Close()
		var list struct {
			Items []struct{ ID, Unit string } `json:"items"`
		}
		json.Unmarshal(raw.Bytes(), &list)
		var ids []string
		for _, it := range list.Items {
			ids = append(ids, it.ID)
		}
		if got := strings.Join(ids, ","); got != want {
			t.Errorf("%s lists officers %q, want %q", who, got, want)
		}
		if strings.Contains(raw.String(), "cert") || strings.Contains(raw.String(), "locked") {
			t.Errorf("%s: the officer list tells how they sign in: %s", who, raw.String())
		}
	}
}

// Password sign-in: a session cookie that works, the console header for
// changes, lock-out after five failures in a row, sign-out.
func TestPasswordSignIn(t *testing.T) {
	srv, _ := rolesFixture(t)
	post := func(path, body string, cookie *http.Cookie, console bool) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if console {
			req.Header.Set("X-Bodycam-Console", "1")
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// s-a's own password (an admin's would have to be replaced first).
	setOwnPassword(t, "s-a", "correct horse battery")
	resp := post("/api/v1/session", `{"user":"s-a","password":"correct horse battery"}`, nil, false)
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "bodycam_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || strings.Contains(cookie.Value, "correct") {
		t.Fatalf("session cookie %+v", cookie)
	}
	get, _ := http.NewRequest("GET", srv.URL+"/api/v1/recordings/rec-a", nil)
	get.AddCookie(cookie)
	if resp, _ := http.DefaultClient.Do(get); resp.StatusCode != 200 {
		t.Fatalf("reading with the session: %d", resp.StatusCode)
	}
	if resp := post("/api/v1/tokens", `{"name":"x"}`, cookie, false); resp.StatusCode != 403 {
		t.Fatalf("a change by cookie without the console header: %d, want 403", resp.StatusCode)
	}
	if resp := post("/api/v1/tokens", `{"name":"x"}`, cookie, true); resp.StatusCode != 201 {
		t.Fatalf("a change by cookie with the console header: %d, want 201", resp.StatusCode)
	}
	// Five wrong passwords lock the user out, even with the right one.
	for i := 0; i < 5; i++ {
		if resp := post("/api/v1/session", `{"user":"s-a","password":"wrong wrong wrong"}`, nil, false); resp.StatusCode != 401 {
			t.Fatalf("wrong password %d: %d", i, resp.StatusCode)
		}
	}
	if resp := post("/api/v1/session", `{"user":"s-a","password":"correct horse battery"}`, nil, false); resp.StatusCode != 429 {
		t.Fatalf("sign-in while locked out: %d, want 429", resp.StatusCode)
	}
	if resp := post("/api/v1/session", `{"user":"nobody","password":"correct horse battery"}`, nil, false); resp.StatusCode != 401 {
		t.Fatalf("unknown user: %d", resp.StatusCode)
	}
	// Sign-out ends the session on the server, not only in the browser.
	out, _ := http.NewRequest("DELETE", srv.URL+"/api/v1/session", nil)
	out.AddCookie(cookie)
	http.DefaultClient.Do(out)
	if resp, _ := http.DefaultClient.Do(get); resp.StatusCode != 401 {
		t.Fatalf("the old cookie after sign-out: %d, want 401", resp.StatusCode)
	}
}

// The officer's certificate page is public and says whether the
// certificate is valid; its QR code is a PNG of the page's URL.
func TestOfficerCertificatePage(t *testing.T) {
	srv, _ := rolesFixture(t)
	admin := func(path, body string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	until := time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	code, body := admin("/api/v1/users", `{"id":"o-17","name":"Ana Ruiz","role":"officer","unit":"a","badge_number":"4711",
		"agency":"City Enforcement","cert_valid_until":"`+until+`"}`)
	if code != 201 {
		t.Fatalf("create officer: %d %s", code, body)
	}
	var u struct {
		CertURL string `json:"cert_url"`
	}
	json.Unmarshal([]byte(body), &u)
	get := func(path string) (int, string, []byte) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	code, _, page := get(u.CertURL)
	if code != 200 || !strings.Contains(string(page), "Valid certificate") || !strings.Contains(string(page), "Ana Ruiz") ||
		!strings.Contains(string(page), "4711") {
		t.Fatalf("certificate page: %d %s", code, page)
	}
	code, ctype, png := get(u.CertURL + "/qr.png")
	if code != 200 || ctype != "image/png" {
		t.Fatalf("QR code: %d %s", code, ctype)
	}
	if img, err := imagepng.Decode(bytes.NewReader(png)); err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("QR code is not a usable PNG: %v", err)
	}
	if code, _ := admin("/api/v1/users/o-17/certificate", `{"valid_until":"`+until+`","revoked":true}`); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if _, _, page := get(u.CertURL); !strings.Contains(string(page), "REVOKED") {
		t.Fatalf("revoked certificate page: %s", page)
	}
	if code, _, _ := get("/verify/officer/0123456789abcdef0123"); code != 404 {
		t.Fatalf("unknown certificate: %d", code)
	}
}

// Signing in with the bootstrap admin token makes a server-side session: the
// cookie never carries the token, and sign-out ends the session.
func TestAdminTokenSignIn(t *testing.T) {
	srv, _ := rolesFixture(t)
	resp, err := http.Post(srv.URL+"/api/v1/session", "application/json", strings.NewReader(`{"token":"`+token+`"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sign-in with the admin token: %v %v", resp, err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "bodycam_session" {
			cookie = c
		}
	}
	if cookie == nil || strings.Contains(cookie.Value, token) {
		t.Fatalf("session cookie %+v carries the admin token", cookie)
	}
	get := func() int {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/users", nil)
		req.AddCookie(cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != 200 {
		t.Fatalf("admin by session: %d", code)
	}
	out, _ := http.NewRequest("DELETE", srv.URL+"/api/v1/session", nil)
	out.AddCookie(cookie)
	http.DefaultClient.Do(out)
	if code := get(); code != 401 {
		t.Fatalf("after sign-out: %d, want 401", code)
	}
}

// An admin issues a dock's token (the workstation agent's --token-file):
// shown once, it signs the dock in, it is listed without its secret, and
// once revoked it opens nothing; a disabled dock gets none, and an officer's
// tokens are the officer's alone.
func TestDockTokens(t *testing.T) {
	srv, _ := rolesFixture(t)
	call := func(method, path, bearer, body string) (int, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, body := call("POST", "/api/v1/users/dk/tokens", "tok-adm", `{"name":"workstation 3"}`)
	var issued struct{ ID, Name, Token string }
	if code != 201 || json.Unmarshal(body, &issued) != nil || !strings.HasPrefix(issued.Token, "bct_") || issued.Name != "workstation 3" {
		t.Fatalf("issue: %d %s", code, body)
	}
	if code, body := call("GET", "/api/v1/session", issued.Token, ""); code != 200 || !strings.Contains(string(body), `"dk"`) {
		t.Fatalf("the dock's token signs it in: %d %s", code, body)
	}
	if code, body := call("GET", "/api/v1/users/dk/tokens", "tok-adm", ""); code != 200 || !strings.Contains(string(body), issued.ID) || strings.Contains(string(body), issued.Token) {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, _ := call("DELETE", "/api/v1/users/o-a/tokens/"+issued.ID, "tok-adm", ""); code != 403 {
		t.Fatalf("revoking through another user: %d", code)
	}
	if code, _ := call("DELETE", "/api/v1/users/dk/tokens/"+issued.ID, "tok-adm", ""); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if code, _ := call("GET", "/api/v1/session", issued.Token, ""); code != 401 {
		t.Fatalf("a revoked token: %d, want 401", code)
	}
	if code, _ := call("DELETE", "/api/v1/users/dk", "tok-adm", ""); code != 204 {
		t.Fatalf("disable the dock: %d", code)
	}
	if code, _ := call("POST", "/api/v1/users/dk/tokens", "tok-adm", `{"name":"x"}`); code != 409 {
		t.Fatalf("a token for a disabled dock: %d, want 409", code)
	}
	if code, _ := call("POST", "/api/v1/users/nobody/tokens", "tok-adm", `{"name":"x"}`); code != 404 {
		t.Fatalf("a token for nobody: %d, want 404", code)
	}
}
