package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/storage"
)

// Jobs and derived media through the API: a supervisor sees the jobs of
// their unit's footage only (another's is a 404, audited); an admin runs
// a failed job again (a custody event), not a queued one; the recording's
// readers list what was derived, with its provenance and signature, and
// see the poster, each viewing in the custody ledger.
func TestJobsAPI(t *testing.T) {
	var woken int
	srv, _ := rolesFixture(t, func(o *api.Options) { o.JobQueued = func() { woken++ } })
	ctx := context.Background()
	cat, store := lastFixture.cat, lastFixture.store
	if err := cat.CreateDevice(ctx, evidence.Device{ID: "cam-b", OfficerID: "o-b", SecretHash: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateRecording(ctx, evidence.Recording{ID: "rec-b", DeviceID: "cam-b", OfficerID: "o-b", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ja, _, _ := cat.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "rec-a", RequestedBy: "system"}, now)
	jb, _, _ := cat.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "rec-b", RequestedBy: "system", MaxAttempts: 1}, now.Add(time.Millisecond))
	call := func(method, path, who string) (int, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok-"+who)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	list := func(who, query string) []string {
		code, body := call("GET", "/api/v1/jobs"+query, who)
		var out struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if code != 200 || json.Unmarshal(body, &out) != nil {
			t.Fatalf("jobs as %s: %d %s", who, code, body)
		}
		var ids []string
		for _, j := range out.Items {
			ids = append(ids, j.ID)
		}
		return ids
	}
	if got := list("aud", ""); len(got) != 2 || got[0] != jb.ID {
		t.Fatalf("auditor's jobs: %v, want both, newest first", got)
	}
	if got := list("s-a", ""); len(got) != 1 || got[0] != ja.ID {
		t.Fatalf("unit a's supervisor's jobs: %v, want rec-a's only", got)
	}
	if got := list("adm", "?recording=rec-b&state=queued"); len(got) != 1 || got[0] != jb.ID {
		t.Fatalf("filtered: %v", got)
	}
	if code, _ := call("GET", "/api/v1/jobs/"+jb.ID, "s-a"); code != 404 {
		t.Fatalf("another unit's job: %d, want 404", code)
	}
	if code, body := call("GET", "/api/v1/jobs/"+ja.ID, "s-a"); code != 200 || !strings.Contains(string(body), `"state": "queued"`) {
		t.Fatalf("own unit's job: %d %s", code, body)
	}
	// rec-b's job fails for good; rec-a's is done with a poster.
	cb, err := cat.Claim(ctx, "w", []string{"poster"}, time.Minute, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := cat.Claim(ctx, "w", []string{"poster"}, time.Minute, now.Add(time.Second))
	if cb.ID == ja.ID {
		cb, ca = ca, cb
	}
	cat.Fail(ctx, cb.Lease(), "no video track", true, time.Second, time.Second, now)
	jpeg := []byte("\xff\xd8 not really a JPEG \xff\xd9")
	info, err := store.Put(ctx, "derived/cam-a/rec-a/poster-1.jpg", bytes.NewReader(jpeg), int64(len(jpeg)), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prov := []byte(`{"kind":"poster"}`)
	store.Put(ctx, "derived/cam-a/rec-a/poster-1.provenance.json", bytes.NewReader(prov), int64(len(prov)), storage.PutOptions{})
	store.Put(ctx, "derived/cam-a/rec-a/poster-1.provenance.json.sig", strings.NewReader("sig"), 3, storage.PutOptions{})
	if err := cat.Complete(ctx, ca.Lease(), []catalog.Derived{{RecordingID: "rec-a", Kind: "poster", Key: info.Key, SHA256: info.SHA256,
		Size: info.Size, ContentType: "image/jpeg", ProvenanceKey: "derived/cam-a/rec-a/poster-1.provenance.json"}}, now); err != nil {
		t.Fatal(err)
	}
	if code, _ := call("POST", "/api/v1/jobs/"+ja.ID+"/rerun", "aud"); code != 403 {
		t.Fatalf("an auditor reruns: %d", code)
	}
	if code, body := call("POST", "/api/v1/jobs/"+jb.ID+"/rerun", "adm"); code != 200 || !strings.Contains(string(body), `"rerun_by": "adm"`) || woken != 1 {
		t.Fatalf("rerun of the failed job: %d %s (woken %d)", code, body, woken)
	}
	if code, _ := call("POST", "/api/v1/jobs/"+jb.ID+"/rerun", "adm"); code != 409 {
		t.Fatalf("rerun of a queued job: %d, want 409", code)
	}
	code, body := call("GET", "/api/v1/recordings/rec-a/derived", "o-a")
	var derived struct {
		Items []struct {
			Key        string          `json:"key"`
			SHA256     string          `json:"sha256"`
			Provenance json.RawMessage `json:"provenance"`
			Signature  []byte          `json:"provenance_signature"`
		} `json:"items"`
	}
	if code != 200 || json.Unmarshal(body, &derived) != nil || len(derived.Items) != 1 || derived.Items[0].SHA256 != info.SHA256 ||
		strings.Join(strings.Fields(string(derived.Items[0].Provenance)), "") != string(prov) || string(derived.Items[0].Signature) != "sig" {
		t.Fatalf("derived: %d %s", code, body)
	}
	for i := 0; i < 2; i++ { // twice: one viewing
		code, body = call("GET", "/api/v1/recordings/rec-a/poster", "s-a")
		if code != 200 || !bytes.Equal(body, jpeg) {
			t.Fatalf("poster: %d %q", code, body)
		}
	}
	if code, _ := call("GET", "/api/v1/recordings/rec-b/poster", "o-b"); code != 404 {
		t.Fatalf("no poster: %d, want 404", code)
	}
	events, err := cat.CustodyEvents(ctx, catalog.CustodyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	views, reruns := 0, 0
	for _, e := range events {
		if e.Action == evidence.ActionPlayback && e.TargetID == "rec-a" && e.Actor == "s-a" && strings.Contains(e.Detail, "poster derived/cam-a/rec-a/poster-1.jpg") {
			views++
		}
		if e.Action == evidence.ActionJobRerun && e.TargetID == jb.ID && e.Actor == "adm" && strings.Contains(e.Detail, "no video track") {
			reruns++
		}
	}
	if views != 1 || reruns != 1 {
		t.Fatalf("custody: %d poster viewings, %d reruns; want 1 and 1", views, reruns)
	}
}
