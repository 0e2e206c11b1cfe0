package upload_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/dir"
	"github.com/bodycam/bodycam/upload"
)

// server is an API with an upload server of its own (over store and a
// spool of its own) on the fixture's catalog: its URL, the upload server
// and the spool.
func (f *fixture) server(t *testing.T, store upload.Store) (string, *upload.Server, string) {
	t.Helper()
	spool := filepath.Join(t.TempDir(), "_uploads")
	h, up := f.apiWith(t, store, spool)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, up, spool
}

// spooled creates an upload of file for cam-a (dock dk-a) and puts its
// bytes in the spool as a PATCH writes them, without finishing it: the
// moment between the last byte's write and the finishing.
func (f *fixture) spooled(t *testing.T, url, spool, name string, file []byte) string {
	t.Helper()
	resp, body := f.call(t, "POST", url+"/api/v1/uploads/", "dk-a", nil, "Tus-Resumable", "1.0.0",
		"Upload-Length", strconv.Itoa(len(file)), "Upload-Metadata", metadata(map[string]string{"device": "cam-a", "filename": name, "sha256": sha(file)}))
	if resp.StatusCode != 201 {
		t.Fatalf("create %s: %d %s", name, resp.StatusCode, body)
	}
	id := filepath.Base(resp.Header.Get("Location"))
	if err := os.WriteFile(filepath.Join(spool, id), file, 0o600); err != nil {
		t.Fatal(err)
	}
	return id
}

// answer is a finishing request's answer with a receipt.
type answer struct {
	RecordingID string `json:"recording_id"`
	ReceiptB64  []byte `json:"receipt_b64"`
	Signature   []byte `json:"signature"`
	Duplicate   bool   `json:"duplicate"`
}

func finishNow(t *testing.T, up *upload.Server, id string) (int, answer, string) {
	t.Helper()
	code, body, err := up.FinishRequest(context.Background(), id)
	if err != nil {
		t.Errorf("finishing %s: %v", id, err)
	}
	var a answer
	json.Unmarshal([]byte(body), &a)
	return code, a, body
}

func (f *fixture) custodyOf(t *testing.T, target, action string) int {
	t.Helper()
	evs, err := f.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{TargetIDs: []string{target}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Action == action {
			n++
		}
	}
	return n
}

// Run's sweep and the request that brought an upload's last byte can both
// reach a complete upload, and what one of them read before it took the
// upload's finish lock may be out of date once it has it. Here the sweep
// reads a complete upload of a file the device already has; the request
// then closes it as a duplicate; then the sweep goes on. It must finish
// from what is so now: before, it took the closed upload back to
// "finishing" (the catalog only guards a stored one), where it stayed with
// its partial gone, its receipt answered 202 for ever.
func TestUploadSweepAfterTheRequestFinished(t *testing.T) {
	f := newFixture(t)
	url, up, spool := f.server(t, f.store)
	file := clip(t, "a.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "pcm_s16le")
	first := f.spooled(t, url, spool, "a.wav", file)
	code, a1, body := finishNow(t, up, first)
	if code != 200 || a1.RecordingID == "" {
		t.Fatalf("first upload: %d %s", code, body)
	}
	second := f.spooled(t, url, spool, "a-again.wav", file)

	arrived, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	upload.SetTestHookLook(func(id string) {
		if id == second {
			once.Do(func() { close(arrived); <-proceed })
		}
	})
	t.Cleanup(func() { upload.SetTestHookLook(nil) })
	swept := make(chan struct{})
	go func() { up.Pass(context.Background()); close(swept) }()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the sweep did not reach the complete upload")
	}
	code, a2, body := finishNow(t, up, second)
	if code != 200 || !a2.Duplicate || a2.RecordingID != a1.RecordingID {
		t.Fatalf("the request's answer: %d %s", code, body)
	}
	close(proceed)
	<-swept

	u, err := f.cat.Upload(context.Background(), second)
	if err != nil || u.State != catalog.UploadAbandoned || !strings.HasPrefix(u.Reason, "duplicate") {
		t.Fatalf("after the sweep the second upload is %s (%q), %v; want abandoned as a duplicate", u.State, u.Reason, err)
	}
	if resp, body := f.call(t, "GET", url+"/api/v1/uploads/"+second+"/receipt", "dk-a", nil); resp.StatusCode != 200 || !strings.Contains(string(body), a1.RecordingID) {
		t.Fatalf("its receipt: %d %s", resp.StatusCode, body)
	}
	if n := f.custodyOf(t, second, upload.ActionAbandoned); n != 1 {
		t.Fatalf("%d custody events closing the duplicate, want 1", n)
	}
}

// gatedStore holds the first manifest written until released.
type gatedStore struct {
	*dir.Store
	armed   atomic.Bool
	held    chan struct{}
	release chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error) {
	if strings.HasSuffix(key, "/manifest.json") && g.armed.CompareAndSwap(true, false) {
		close(g.held)
		<-g.release
	}
	return g.Store.Put(ctx, key, r, size, o)
}

// Two uploads of one file finishing at once (the same file in two docked
// cameras' folders, or sent twice): the second finds the first stored
// while the first is still being sealed (manifest, receipt). It must wait
// for that seal and answer its receipt; before, it sealed the same
// recording itself, and the two manifests (signed at different times)
// could not both be stored write-once: one of the two requests failed.
func TestUploadSameFileFinishedAtOnce(t *testing.T) {
	f := newFixture(t)
	g := &gatedStore{Store: f.store, held: make(chan struct{}), release: make(chan struct{})}
	g.armed.Store(true)
	url, up, spool := f.server(t, g)
	file := clip(t, "b.wav", "-f", "lavfi", "-i", "sine=frequency=330:duration=1", "-c:a", "pcm_s16le")
	first := f.spooled(t, url, spool, "CAM_A_1.wav", file)
	second := f.spooled(t, url, spool, "CAM_B_1.wav", file)

	type out struct {
		code int
		a    answer
		body string
	}
	done1, done2 := make(chan out, 1), make(chan out, 1)
	go func() { c, a, b := finishNow(t, up, first); done1 <- out{c, a, b} }()
	select {
	case <-g.held: // stored in the catalog, its manifest not yet
	case r := <-done1:
		t.Fatalf("the first upload finished without writing a manifest: %d %s", r.code, r.body)
	case <-time.After(30 * time.Second):
		t.Fatal("the first upload did not get to its manifest")
	}
	go func() { c, a, b := finishNow(t, up, second); done2 <- out{c, a, b} }()
	var r2 out
	early := false
	select {
	case r2 = <-done2: // it did not wait for the seal
		early = true
	case <-time.After(2 * time.Second):
	}
	close(g.release)
	r1 := <-done1
	if !early {
		r2 = <-done2
	}
	if r1.code != 200 || r2.code != 200 {
		t.Fatalf("answers: first %d %s, second %d %s", r1.code, r1.body, r2.code, r2.body)
	}
	if r1.a.Duplicate || !r2.a.Duplicate || r1.a.RecordingID != r2.a.RecordingID ||
		string(r1.a.ReceiptB64) != string(r2.a.ReceiptB64) || string(r1.a.Signature) != string(r2.a.Signature) {
		t.Fatalf("receipts differ: first %s\nsecond %s", r1.body, r2.body)
	}
	if n := f.custodyOf(t, r1.a.RecordingID, "ingest"); n != 1 {
		t.Fatalf("%d ingest events for the recording, want 1", n)
	}
	for _, id := range []string{first, second} {
		if _, err := os.Stat(filepath.Join(spool, id)); !os.IsNotExist(err) {
			t.Errorf("partial %s still in the spool: %v", id, err)
		}
	}
}

// slowStore takes its time to store an original (as S3 does gigabytes).
type slowStore struct {
	*dir.Store
	delay time.Duration
}

func (s slowStore) PutFile(ctx context.Context, key string, f *os.File, size int64, o storage.PutOptions) (storage.Info, error) {
	time.Sleep(s.delay)
	return s.Store.PutFile(ctx, key, f, size, o)
}

// A finishing that takes longer than tusd's network timeout for the body
// (storing gigabytes on S3 takes minutes) leaves the dock's keep-alive
// connection good for its next requests. Before, the read deadline tusd
// had set for the body passed while the file was stored, net/http then
// cancelled the connection's context (golang/go#70834), and every later
// request on that connection was answered 500 "context canceled": the dock
// could not fetch the keys to check the receipt it had just been given.
func TestUploadSlowFinishKeepsTheConnection(t *testing.T) {
	f := newFixture(t)
	f.tweak = func(o *upload.Options) { o.NetworkTimeout = 200 * time.Millisecond }
	url, _, _ := f.server(t, slowStore{Store: f.store, delay: time.Second})
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	var reused atomic.Int32
	do := func(method, path string, body []byte, headers ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, bytes.NewReader(body))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused.Add(1)
				}
			}}))
		req.Header.Set("Authorization", "Bearer tok-dk-a")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	file := clip(t, "c.wav", "-f", "lavfi", "-i", "sine=frequency=550:duration=1", "-c:a", "pcm_s16le")
	resp, body := do("POST", "/api/v1/uploads/", nil, "Tus-Resumable", "1.0.0", "Upload-Length", strconv.Itoa(len(file)),
		"Upload-Metadata", metadata(map[string]string{"device": "cam-a", "filename": "c.wav", "sha256": sha(file)}))
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	id := filepath.Base(resp.Header.Get("Location"))
	resp, body = do("PATCH", "/api/v1/uploads/"+id, file, "Tus-Resumable", "1.0.0", "Upload-Offset", "0",
		"Content-Type", "application/offset+octet-stream")
	if resp.StatusCode != 200 {
		t.Fatalf("the finishing PATCH: %d %s", resp.StatusCode, body)
	}
	before := reused.Load()
	for _, path := range []string{"/api/v1/uploads/" + id + "/receipt", "/api/v1/receipts?device=cam-a&sha256=" + sha(file)} {
		if resp, body := do("GET", path, nil); resp.StatusCode != 200 {
			t.Fatalf("GET %s on the same connection after a slow finishing: %d %s", path, resp.StatusCode, body)
		}
	}
	if reused.Load() != before+2 {
		t.Fatalf("the GETs did not reuse the PATCH's connection (%d of 2)", reused.Load()-before)
	}
}
