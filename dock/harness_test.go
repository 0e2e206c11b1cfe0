package dock

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	"golang.org/x/exp/slog" // tusd v2.9.1 logs with x/exp/slog

	"github.com/bodycam/bodycam/evidence"
)

// testServer is a harness for the agent: tusd's own handler (filestore in
// a temporary folder) for /api/v1/uploads/, wrapped with what the bodycam
// server adds to tus (bearer token, per-PATCH Upload-Checksum, the
// finishing PATCH's 200 with a signed receipt, 460 on a whole-file
// mismatch), plus real /api/v1/receipts, /uploads/{id}/receipt,
// /uploads/{id}/released and /api/v1/keys handlers signing with a real
// Ed25519 key.
type testServer struct {
	URL   string
	Token string
	srv   *httptest.Server
	priv  ed25519.PrivateKey
	keyID string

	// Knobs.
	badSignature  atomic.Bool  // sign receipts with another key (same key id)
	dropReceipt   atomic.Bool  // the finishing PATCH answers 204 (as if its answer was lost)
	corruptChunks atomic.Int32 // the next N PATCHes are refused as if their checksum failed
	refuseFiles   atomic.Int32 // the next N finished files are refused (460 with both hashes)
	keysFail      atomic.Int32 // the next N GET /api/v1/keys answer 500
	// foreignHost: a creation's Location names this host instead of the
	// one the request came to (a server behind a proxy that rewrites Host).
	foreignHost atomic.Pointer[string]

	// What happened.
	otherHost atomic.Int64 // requests whose Host is not the server's own address
	received  atomic.Int64 // PATCH body bytes read off the wire
	patches   atomic.Int64
	creates   atomic.Int64
	chunk460s atomic.Int64
	deletes   atomic.Int64

	mu       sync.Mutex
	files    map[string][]byte // upload id → stored bytes
	byUpload map[string]receiptBody
	stored   map[string]receiptBody // device/sha256 → receipt of the stored file
	released map[string]bool
	metas    map[string]map[string]string // file name → Upload-Metadata of its last creation
	recN     int
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(pub)
	ts := &testServer{Token: "dock-token-1", priv: priv, keyID: hex.EncodeToString(h[:8]),
		files: map[string][]byte{}, byUpload: map[string]receiptBody{}, stored: map[string]receiptBody{}, released: map[string]bool{},
		metas: map[string]map[string]string{}}

	store := filestore.New(t.TempDir())
	composer := handler.NewStoreComposer()
	store.UseIn(composer)
	memorylocker.New().UseIn(composer)
	tus, err := handler.NewHandler(handler.Config{
		BasePath:      "/api/v1/uploads/",
		StoreComposer: composer,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		PreUploadCreateCallback: func(hook handler.HookEvent) (handler.HTTPResponse, handler.FileInfoChanges, error) {
			ts.creates.Add(1)
			m := hook.Upload.MetaData
			ts.mu.Lock()
			ts.metas[m["filename"]] = m
			ts.mu.Unlock()
			if m["device"] == "" || m["filename"] == "" || len(m["sha256"]) != 64 {
				return handler.HTTPResponse{StatusCode: 400, Body: `{"error":"device, filename and sha256 are required"}`}, handler.FileInfoChanges{}, handler.ErrUploadRejectedByServer
			}
			if o := m["officer"]; o != "" && !strings.HasPrefix(o, "o-") { // as the server: officers are user ids it knows
				return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.NewError("ERR_BODYCAM_REFUSED", `{"error":"Upload-Metadata: officer `+o+`: no such user"}`, 400)
			}
			return handler.HTTPResponse{}, handler.FileInfoChanges{}, nil
		},
		PreFinishResponseCallback: ts.finish,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/keys", ts.keys)
	mux.HandleFunc("GET /api/v1/receipts", ts.auth(ts.receipts))
	mux.HandleFunc("GET /api/v1/uploads/{id}/receipt", ts.auth(ts.uploadReceipt))
	mux.HandleFunc("POST /api/v1/uploads/{id}/released", ts.auth(ts.markReleased))
	mux.Handle("/api/v1/uploads/", ts.auth(ts.checksums(http.StripPrefix("/api/v1/uploads/", tus).ServeHTTP)))
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != strings.TrimPrefix(ts.URL, "http://") {
			ts.otherHost.Add(1)
		}
		if h := ts.foreignHost.Load(); h != nil && r.Method == http.MethodPost {
			w = foreignLocation{w, *h}
		}
		mux.ServeHTTP(w, r)
	}))
	ts.URL = ts.srv.URL
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *testServer) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+ts.Token {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		next(w, r)
	}
}

// checksums reads each PATCH body (counting what arrives, even a body cut
// short by a killed client), checks its Upload-Checksum and refuses it with
// 460 on a mismatch, as the tus checksum extension says: nothing of a
// refused chunk is written.
func (ts *testServer) checksums(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			ts.deletes.Add(1)
		}
		if r.Method != http.MethodPatch {
			next(w, r)
			return
		}
		ts.patches.Add(1)
		var buf bytes.Buffer
		_, err := io.Copy(&buf, countingReader{r.Body, &ts.received})
		if err != nil {
			return // the client went away: nothing is written
		}
		algo, sum, _ := strings.Cut(r.Header.Get("Upload-Checksum"), " ")
		got := sha256.Sum256(buf.Bytes())
		want, _ := base64.StdEncoding.DecodeString(sum)
		if algo != "sha256" || !bytes.Equal(got[:], want) || ts.corruptChunks.Add(-1) >= 0 {
			ts.chunk460s.Add(1)
			w.WriteHeader(460)
			io.WriteString(w, "checksum mismatch")
			return
		}
		r.Body = io.NopCloser(&buf)
		next(w, r)
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// finish hashes the complete upload, refuses it on a mismatch (460 with
// both hashes) or stores it and answers 200 with the signed receipt.
func (ts *testServer) finish(hook handler.HookEvent) (handler.HTTPResponse, error) {
	info := hook.Upload
	b, err := os.ReadFile(info.Storage["Path"])
	if err != nil {
		return handler.HTTPResponse{}, err
	}
	got := sha256.Sum256(b)
	dev, declared := info.MetaData["device"], info.MetaData["sha256"]
	if ts.refuseFiles.Add(-1) >= 0 {
		got[0] ^= 1 // as if a byte had flipped on the way
	}
	if hex.EncodeToString(got[:]) != declared {
		body, _ := json.Marshal(map[string]string{"error": "the file's bytes do not match its declared sha256",
			"declared_sha256": declared, "received_sha256": hex.EncodeToString(got[:])})
		return handler.HTTPResponse{StatusCode: 460, Body: string(body), Header: handler.HTTPHeader{"Content-Type": "application/json"}}, nil
	}
	ts.mu.Lock()
	rb, dup := ts.stored[dev+"/"+declared]
	if !dup {
		ts.recN++
		id := fmt.Sprintf("rec-%d", ts.recN)
		rb = ts.sign(evidence.Receipt{Version: 1, RecordingID: id, DeviceID: dev, FileName: info.MetaData["filename"],
			Size: info.Size, SHA256: declared, ObjectKey: evidence.OriginalKey(dev, id, info.MetaData["filename"]),
			Dock: "dock-1", StoredAt: time.Now().UTC()})
		ts.stored[dev+"/"+declared] = rb
		ts.files[info.ID] = b
	}
	rb.Duplicate = dup
	ts.byUpload[info.ID] = rb
	ts.mu.Unlock()
	if ts.dropReceipt.Load() {
		return handler.HTTPResponse{}, nil
	}
	body, _ := json.Marshal(rb)
	return handler.HTTPResponse{StatusCode: 200, Body: string(body),
		Header: handler.HTTPHeader{"Content-Type": "application/json", "Bodycam-Recording": rb.RecordingID}}, nil
}

func (ts *testServer) sign(r evidence.Receipt) receiptBody {
	r.SigningKeyID = ts.keyID
	body := r.Marshal()
	key := ts.priv
	if ts.badSignature.Load() {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	raw, _ := json.Marshal(r)
	return receiptBody{RecordingID: r.RecordingID, Receipt: raw, ReceiptB64: base64.StdEncoding.EncodeToString(body),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))}
}

func (ts *testServer) keys(w http.ResponseWriter, r *http.Request) {
	if ts.keysFail.Add(-1) >= 0 {
		writeTestJSON(w, 500, map[string]string{"error": "internal error; see the server log"})
		return
	}
	writeTestJSON(w, 200, map[string]any{"items": []map[string]any{{"id": ts.keyID, "algorithm": "Ed25519",
		"public_key": []byte(ts.priv.Public().(ed25519.PublicKey)), "current": true}}})
}

func (ts *testServer) receipts(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	rb, ok := ts.stored[r.URL.Query().Get("device")+"/"+r.URL.Query().Get("sha256")]
	ts.mu.Unlock()
	if !ok {
		writeTestJSON(w, 404, map[string]string{"error": "not stored"})
		return
	}
	rb.Duplicate = true
	writeTestJSON(w, 200, rb)
}

func (ts *testServer) uploadReceipt(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	rb, ok := ts.byUpload[r.PathValue("id")]
	ts.mu.Unlock()
	if !ok {
		writeTestJSON(w, 404, map[string]string{"error": "unknown upload"})
		return
	}
	writeTestJSON(w, 200, rb)
}

func (ts *testServer) markReleased(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.released[r.PathValue("id")] = true
	ts.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// preload stores a file as if an earlier upload had (for the duplicate
// check).
func (ts *testServer) preload(device, name string, b []byte) receiptBody {
	sum := sha256.Sum256(b)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.recN++
	id := fmt.Sprintf("rec-%d", ts.recN)
	rb := ts.sign(evidence.Receipt{Version: 1, RecordingID: id, DeviceID: device, FileName: name, Size: int64(len(b)),
		SHA256: hex.EncodeToString(sum[:]), ObjectKey: evidence.OriginalKey(device, id, name), Dock: "dock-0", StoredAt: time.Now().UTC()})
	ts.stored[device+"/"+hex.EncodeToString(sum[:])] = rb
	return rb
}

// storedBytes returns the bytes the server stored for (device, sha256 of
// want), nil if none.
func (ts *testServer) storedFor(device string, want []byte) []byte {
	sum := sha256.Sum256(want)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	rb, ok := ts.stored[device+"/"+hex.EncodeToString(sum[:])]
	if !ok {
		return nil
	}
	for id, u := range ts.byUpload {
		if u.RecordingID == rb.RecordingID && ts.files[id] != nil {
			return ts.files[id]
		}
	}
	return nil
}

func writeTestJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// foreignLocation rewrites the host of a Location header, as a server
// that builds it from a Host header a proxy changed would give it.
type foreignLocation struct {
	http.ResponseWriter
	host string
}

func (f foreignLocation) WriteHeader(code int) {
	if loc := f.Header().Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil && u.Host != "" {
			u.Host = f.host
			f.Header().Set("Location", u.String())
		}
	}
	f.ResponseWriter.WriteHeader(code)
}
