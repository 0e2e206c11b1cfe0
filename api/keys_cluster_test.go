package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/storage"
)

// signer is what signs a manifest: a node's keyring.
type signer interface {
	ID() string
	Sign(msg []byte) (string, []byte)
}

// storeInterleaved stores two recordings of cam-a whose links interleave
// in the device's chain: rec-x, recorded by node-b until node-a took the
// device over, uploaded late from node-b's spool while node-a recorded and
// uploaded rec-y. Each is signed by its own node's key.
func storeInterleaved(t *testing.T, keysA, keysB signer) {
	t.Helper()
	ctx := context.Background()
	cat := lastFixture.cat
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	takeover := start.Add(time.Minute)
	recs := map[string]evidence.Recording{
		"rec-x": {ID: "rec-x", DeviceID: "cam-a", OfficerID: "o-a", StartedAt: start, NodeID: "node-b", Fence: start.UnixMicro()},
		"rec-y": {ID: "rec-y", DeviceID: "cam-a", OfficerID: "o-a", StartedAt: takeover, NodeID: "node-a", Fence: takeover.UnixMicro()},
	}
	for _, id := range []string{"rec-x", "rec-y"} {
		if err := cat.CreateRecording(ctx, recs[id]); err != nil {
			t.Fatal(err)
		}
	}
	next := map[string]int64{}
	for _, id := range []string{"rec-x", "rec-x", "rec-y", "rec-y", "rec-x", "rec-y", "rec-x"} {
		seq := next[id]
		next[id]++
		body := []byte(fmt.Sprintf("%s object %d", id, seq))
		key, kind := fmt.Sprintf("cam-a/%s/%06d.m4s", id, seq), evidence.KindMedia
		if seq == 0 {
			key, kind = "cam-a/"+id+"/init.mp4", evidence.KindInit
		}
		info, err := lastFixture.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), storage.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cat.AppendSegment(ctx, evidence.Segment{RecordingID: id, Seq: seq, Kind: kind, Key: key, Size: info.Size,
			SHA256: info.SHA256, StartedAt: recs[id].StartedAt.Add(time.Duration(seq) * 4 * time.Second), Duration: 4 * time.Second, Keyframe: true}); err != nil {
			t.Fatal(err)
		}
	}
	for id, k := range map[string]signer{"rec-x": keysB, "rec-y": keysA} {
		if err := cat.FinishRecording(ctx, id, evidence.StateComplete, recs[id].StartedAt.Add(time.Duration(next[id])*4*time.Second), "publisher stopped"); err != nil {
			t.Fatal(err)
		}
		rec, _ := cat.Recording(ctx, id)
		segs, _ := cat.Segments(ctx, id)
		m := evidence.NewManifest(rec, segs, nil)
		m.SigningKeyID, m.SignedAt = k.ID(), time.Now().UTC()
		body := m.Marshal()
		_, sig := k.Sign(body)
		key := "cam-a/" + id + "/manifest.json"
		for name, b := range map[string][]byte{key: body, key + ".sig": sig} {
			if _, err := lastFixture.store.Put(ctx, name, bytes.NewReader(b), int64(len(b)), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := cat.SetManifest(ctx, id, key); err != nil {
			t.Fatal(err)
		}
	}
}

// A cluster: node-b's key is in the catalog, not in this node's keyring.
// What node-b signed verifies here, GET /keys lists both nodes' keys, and
// a recording whose chain links interleave with another's verifies through
// the API and in a court export; a link between them altered in the
// catalog fails both recordings.
func TestClusterKeysAndInterleavedChains(t *testing.T) {
	keysB, err := keyring.Open(t.TempDir(), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := rolesFixture(t, func(o *api.Options) {
		cat := o.Catalog.(*catalog.Catalog)
		local := o.Keys.(*keyring.Keyring)
		for node, k := range map[string]*keyring.Keyring{"node-a": local, "node-b": keysB} {
			if err := k.Publish(context.Background(), cat, node); err != nil {
				t.Fatal(err)
			}
			if err := k.Publish(context.Background(), cat, node); err != nil {
				t.Fatalf("publishing again: %v", err)
			}
		}
		o.Keys = keyring.WithCatalog(local, cat)
	})
	storeInterleaved(t, lastFixture.keys, keysB)
	u := srv.URL

	code, body := call(t, u, "GET", "/api/v1/keys", "", "")
	if code != 200 || !strings.Contains(body, lastFixture.keys.ID()) || !strings.Contains(body, keysB.ID()) || !strings.Contains(body, `"node_id": "node-b"`) {
		t.Fatalf("keys: %d %s; want both nodes' keys", code, body)
	}
	code, body = call(t, u, "GET", "/api/v1/recordings/rec-x", "tok-aud", "")
	if code != 200 || !strings.Contains(body, `"node_id": "node-b"`) || !strings.Contains(body, `"fence":`) || !strings.Contains(body, `"kind": "stream"`) {
		t.Fatalf("recording: %d %s", code, body)
	}
	type verdict struct {
		OK       bool     `json:"ok"`
		Reason   string   `json:"reason"`
		Manifest string   `json:"manifest"`
		Checked  int      `json:"checked"`
		Notes    []string `json:"notes"`
	}
	verifyRec := func(id string) verdict {
		t.Helper()
		code, body := call(t, u, "POST", "/api/v1/recordings/"+id+"/verify", "tok-aud", "")
		var v verdict
		if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
			t.Fatalf("verify %s: %d %s", id, code, body)
		}
		return v
	}
	x := verifyRec("rec-x")
	if !x.OK || x.Manifest != "ok" || x.Checked != 4 || len(x.Notes) != 2 || !strings.Contains(x.Notes[0], "rec-y") {
		t.Fatalf("rec-x, signed by node-b, interleaved with rec-y: %+v", x)
	}
	if y := verifyRec("rec-y"); !y.OK || y.Checked != 3 || len(y.Notes) != 1 {
		t.Fatalf("rec-y: %+v", y)
	}

	// The court export of both verifies offline, with node-b's key in it.
	for _, id := range []string{"rec-x", "rec-y"} {
		if code, body := call(t, u, "POST", "/api/v1/cases/C-1/evidence", "tok-o-a", `{"recording_id":"`+id+`"}`); code != 201 {
			t.Fatalf("link %s: %d %s", id, code, body)
		}
	}
	req, _ := http.NewRequest("GET", u+"/api/v1/cases/C-1/export", nil)
	req.Header.Set("Authorization", "Bearer tok-aud")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var zip bytes.Buffer
	zip.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("export: %d %s", resp.StatusCode, zip.String())
	}
	rep := export.Verify(bytes.NewReader(zip.Bytes()), int64(zip.Len()), export.Options{})
	if !rep.OK || rep.Checked.Manifests != 2 || !strings.Contains(strings.Join(rep.Notes, "\n"), "other recordings") {
		t.Fatalf("the export of interleaved recordings: %+v", rep)
	}

	// A link of rec-y, between rec-x's, rewritten in the catalog.
	if _, err := lastFixture.cat.DB().Exec(`UPDATE segments SET chain_hash = 'ab' || substr(chain_hash, 3) WHERE recording_id = 'rec-y' AND seq = 1`); err != nil {
		t.Fatal(err)
	}
	if x := verifyRec("rec-x"); x.OK || !strings.Contains(x.Reason, "chain") {
		t.Fatalf("rec-x with a link between its segments altered: %+v", x)
	}
	if y := verifyRec("rec-y"); y.OK {
		t.Fatalf("rec-y with its own link altered: %+v", y)
	}
	// ... or removed.
	if _, err := lastFixture.cat.DB().Exec(`DELETE FROM segments WHERE recording_id = 'rec-y' AND seq = 1`); err != nil {
		t.Fatal(err)
	}
	if x := verifyRec("rec-x"); x.OK || !strings.Contains(x.Reason, "is missing") {
		t.Fatalf("rec-x with a link between its segments removed: %+v", x)
	}
}
