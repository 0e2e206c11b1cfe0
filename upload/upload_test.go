package upload_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
	"github.com/bodycam/bodycam/upload"
)

const adminToken = "test-admin-token-0123456789"

var quiet = slog.New(slog.DiscardHandler)

// fixture: the real API with the real upload server, the SQLite catalog,
// the directory store, the keyring and the custody ledger. Unit a has
// officer o-a with device cam-a, and dock dk-a; unit b has dock dk-b.
// Every user has an API token "tok-<id>".
type fixture struct {
	url   string
	cat   *catalog.Catalog
	store *dir.Store
	keys  *keyring.Keyring
	dir   string // the upload spool
	data  string
	// tweak, when set, changes the options of the upload servers made
	// after it is.
	tweak func(*upload.Options)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	cat, err := catalog.Open(ctx, "", data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	store, err := dir.Open(filepath.Join(data, "objects"), dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Open(filepath.Join(data, "keys"), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []evidence.User{
		{ID: "o-a", Role: evidence.RoleOfficer, Unit: "a"},
		{ID: "dk-a", Role: evidence.RoleDock, Unit: "a"},
		{ID: "dk-b", Role: evidence.RoleDock, Unit: "b"},
		{ID: "o-b", Role: evidence.RoleOfficer, Unit: "b"},
		{ID: "sup-a", Role: evidence.RoleSupervisor, Unit: "a"},
		{ID: "aud", Role: evidence.RoleAuditor},
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
	f := &fixture{cat: cat, store: store, keys: keys, dir: filepath.Join(data, "spool", "_uploads"), data: data}
	srv := httptest.NewServer(f.api(t))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// api is an API with a new upload server over the fixture's spool.
func (f *fixture) api(t *testing.T) http.Handler {
	h, _ := f.apiWith(t, f.store, f.dir)
	return h
}

// apiWith is an API with a new upload server over the given store and
// spool, and that server.
func (f *fixture) apiWith(t *testing.T, store upload.Store, spool string) (http.Handler, *upload.Server) {
	ledger := custody.New(func(ctx context.Context, e evidence.CustodyEvent) (evidence.CustodyEvent, error) {
		return f.cat.AppendCustody(ctx, e, f.keys)
	}, quiet, nil)
	links := caselink.New(caselink.Options{Catalog: f.cat, Holds: f.store, Custody: ledger, Log: quiet})
	o := upload.Options{Dir: spool, Catalog: f.cat, Store: store, Signer: f.keys, Custody: ledger,
		Holds: links, Registry: prometheus.NewRegistry(), Log: quiet}
	if f.tweak != nil {
		f.tweak(&o)
	}
	up, err := upload.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return api.New(api.Options{Catalog: f.cat, Users: f.cat, Cases: f.cat, Custody: ledger, Signer: f.keys, Store: f.store,
		Keys: f.keys, Links: links, Uploads: up, AdminToken: adminToken, Registry: prometheus.NewRegistry(), Log: quiet}).Handler(), up
}

// call makes one request; headers alternate name, value.
func (f *fixture) call(t *testing.T, method, path, who string, body []byte, headers ...string) (*http.Response, []byte) {
	t.Helper()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = f.url + path
	}
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	switch who {
	case "":
	case "admin":
		req.Header.Set("Authorization", "Bearer "+adminToken)
	default:
		req.Header.Set("Authorization", "Bearer tok-"+who)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// A minimal tus 1.0 client: create, patch, head.

func metadata(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+" "+base64.StdEncoding.EncodeToString([]byte(m[k])))
	}
	return strings.Join(parts, ",")
}

func (f *fixture) create(t *testing.T, who string, size int, meta map[string]string) (*http.Response, []byte) {
	t.Helper()
	return f.call(t, "POST", "/api/v1/uploads/", who, nil, "Tus-Resumable", "1.0.0",
		"Upload-Length", strconv.Itoa(size), "Upload-Metadata", metadata(meta))
}

func (f *fixture) patch(t *testing.T, who, location string, offset int, chunk []byte, headers ...string) (*http.Response, []byte) {
	t.Helper()
	h := append([]string{"Tus-Resumable", "1.0.0", "Upload-Offset", strconv.Itoa(offset), "Content-Type", "application/offset+octet-stream"}, headers...)
	return f.call(t, "PATCH", location, who, chunk, h...)
}

func (f *fixture) offset(t *testing.T, who, location string) int {
	t.Helper()
	resp, _ := f.call(t, "HEAD", location, who, nil, "Tus-Resumable", "1.0.0")
	if resp.StatusCode != 200 {
		t.Fatalf("HEAD %s: %d", location, resp.StatusCode)
	}
	n, _ := strconv.Atoi(resp.Header.Get("Upload-Offset"))
	return n
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// clip makes a small file with ffmpeg.
func clip(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("ffmpeg", append(append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...), out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) == 0 {
		t.Fatalf("ffmpeg made no %s: %v", name, err)
	}
	return b
}

var (
	video = []string{"-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:duration=2"}
	h264  = []string{"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"}
)

type receiptBody struct {
	RecordingID string           `json:"recording_id"`
	Receipt     evidence.Receipt `json:"receipt"`
	ReceiptB64  []byte           `json:"receipt_b64"`
	Signature   []byte           `json:"signature"`
	Duplicate   bool             `json:"duplicate"`
}

// checkReceipt decodes a receipt answer and checks its signature with the
// public key /api/v1/keys gives.
func (f *fixture) checkReceipt(t *testing.T, body []byte, file []byte, name string) receiptBody {
	t.Helper()
	var r receiptBody
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("receipt answer %s: %v", body, err)
	}
	_, kb := f.call(t, "GET", "/api/v1/keys", "", nil)
	var keys struct {
		Items []struct {
			ID        string `json:"id"`
			PublicKey []byte `json:"public_key"`
		} `json:"items"`
	}
	json.Unmarshal(kb, &keys)
	var pub ed25519.PublicKey
	for _, k := range keys.Items {
		if k.ID == r.Receipt.SigningKeyID {
			pub = k.PublicKey
		}
	}
	rc, err := evidence.VerifyReceipt(pub, r.ReceiptB64, r.Signature)
	if err != nil {
		t.Fatalf("receipt of %s: %v", name, err)
	}
	if rc.SHA256 != sha(file) || rc.Size != int64(len(file)) || rc.FileName != name || rc.DeviceID != "cam-a" ||
		rc.RecordingID != r.RecordingID || rc.Dock != "dk-a" || rc.ObjectKey == "" || rc.ChainHash == "" {
		t.Fatalf("receipt of %s says %+v", name, rc)
	}
	return r
}

// Real files (MP4 H.264+AAC, MP4 H.265, MOV, WAV, JPEG) uploaded by a dock:
// each becomes a recording of kind upload with one original segment, the
// file's exact bytes, that verifies; the signed receipt checks with the
// server's public key. The MP4 goes in two PATCHes with a HEAD between
// (resume); the others with creation-with-upload or one PATCH with an
// Upload-Checksum. Then the same file again is the same recording
// (duplicate), and the receipts can be asked for again.
func TestUploadRealFiles(t *testing.T) {
	f := newFixture(t)
	// The device also streamed: one recording covers the first file's
	// time (same event), one is an hour later (not).
	for _, st := range []struct {
		id       string
		from, to time.Time
	}{
		{"stream-same", time.Date(2026, 1, 1, 11, 59, 0, 0, time.UTC), time.Date(2026, 1, 1, 12, 1, 0, 0, time.UTC)},
		{"stream-later", time.Date(2026, 1, 1, 13, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 13, 5, 0, 0, time.UTC)},
	} {
		if err := f.cat.CreateRecording(context.Background(), evidence.Recording{ID: st.id, Kind: evidence.KindStream, DeviceID: "cam-a",
			OfficerID: "o-a", State: evidence.StateComplete, StartedAt: st.from, EndedAt: st.to}); err != nil {
			t.Fatal(err)
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{"cam-a_20260101120000.mp4", clip(t, "a.mp4", append(append([]string{}, video...), h264...)...)},
		{"cam-a_20260101120500.MP4", clip(t, "b.mp4", append(append([]string{}, video...), "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-c:a", "aac", "-shortest")...)},
		{"clip.mov", clip(t, "c.mov", append(append([]string{}, video...), h264...)...)},
		{"audio.wav", clip(t, "d.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "pcm_s16le")},
		{"photo.jpg", clip(t, "e.jpg", "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1")},
	}
	recs := map[string]string{}
	for i, file := range files {
		meta := map[string]string{"device": "cam-a", "filename": file.name, "sha256": sha(file.data)}
		if i == 0 {
			meta["started_at"] = "2026-01-01T12:00:00Z"
			meta["ended_at"] = "2026-01-01T12:00:02Z"
			meta["important"] = "1"
			meta["gps"] = `[{"at":"2026-01-01T12:00:01Z","lat":48.137,"lon":11.575}]`
		}
		var resp *http.Response
		var body []byte
		switch i {
		case 0: // two PATCHes, HEAD between
			resp, body = f.create(t, "dk-a", len(file.data), meta)
			if resp.StatusCode != 201 {
				t.Fatalf("create %s: %d %s", file.name, resp.StatusCode, body)
			}
			loc := resp.Header.Get("Location")
			half := len(file.data) / 2
			if resp, body := f.patch(t, "dk-a", loc, 0, file.data[:half]); resp.StatusCode != 204 {
				t.Fatalf("first half: %d %s", resp.StatusCode, body)
			}
			if got := f.offset(t, "dk-a", loc); got != half {
				t.Fatalf("HEAD after the first half: offset %d, want %d", got, half)
			}
			resp, body = f.patch(t, "dk-a", loc, half, file.data[half:])
		case 1, 2: // creation-with-upload
			resp, body = f.call(t, "POST", "/api/v1/uploads/", "dk-a", file.data, "Tus-Resumable", "1.0.0",
				"Upload-Length", strconv.Itoa(len(file.data)), "Upload-Metadata", metadata(meta), "Content-Type", "application/offset+octet-stream")
		default: // one PATCH with a per-PATCH checksum
			resp, body = f.create(t, "dk-a", len(file.data), meta)
			s1 := sha1.Sum(file.data)
			resp, body = f.patch(t, "dk-a", resp.Header.Get("Location"), 0, file.data, "Upload-Checksum", "sha1 "+base64.StdEncoding.EncodeToString(s1[:]))
		}
		if resp.StatusCode != 200 && resp.StatusCode != 201 {
			t.Fatalf("%s: last byte answered %d %s", file.name, resp.StatusCode, body)
		}
		r := f.checkReceipt(t, body, file.data, file.name)
		if r.Duplicate || resp.Header.Get("Bodycam-Recording") != r.RecordingID {
			t.Fatalf("%s: duplicate %v, header %q", file.name, r.Duplicate, resp.Header.Get("Bodycam-Recording"))
		}
		recs[file.name] = r.RecordingID
		// The recording: kind upload, one original segment of the exact bytes, verifies.
		rec, err := f.cat.Recording(context.Background(), r.RecordingID)
		if err != nil || rec.Kind != evidence.KindUpload || rec.State != evidence.StateComplete || rec.ManifestKey == "" {
			t.Fatalf("%s: recording %+v, %v", file.name, rec, err)
		}
		segs, _ := f.cat.Segments(context.Background(), r.RecordingID)
		if len(segs) != 1 || segs[0].Kind != evidence.KindOriginal || segs[0].Seq != 1 || segs[0].SHA256 != sha(file.data) {
			t.Fatalf("%s: segments %+v", file.name, segs)
		}
		obj, err := f.store.Get(context.Background(), segs[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(obj)
		obj.Close()
		if !bytes.Equal(stored, file.data) {
			t.Fatalf("%s: the stored object is not the file's bytes", file.name)
		}
		if i == 0 && (!rec.StartedAt.Equal(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) || rec.EndedAt.Sub(rec.StartedAt) != 2*time.Second) {
			t.Fatalf("recorded times %v..%v, want the given ones", rec.StartedAt, rec.EndedAt)
		}
		if same, err := f.cat.SameEvent(context.Background(), r.RecordingID); err != nil || (i == 0) != (len(same) == 1 && same[0] == "stream-same") || (i > 0 && len(same) != 0) {
			t.Fatalf("%s: same_event %v, %v", file.name, same, err)
		}
		if i == 0 {
			// The signed manifest carries the origin: name, hash, dock, mark, track.
			mb, err := f.store.Get(context.Background(), rec.ManifestKey)
			if err != nil {
				t.Fatal(err)
			}
			var m evidence.Manifest
			err = json.NewDecoder(mb).Decode(&m)
			mb.Close()
			if err != nil || m.Kind != evidence.KindUpload || m.Origin == nil || m.Origin.FileName != file.name ||
				m.Origin.SHA256 != sha(file.data) || m.Origin.Dock != "dk-a" || !m.Origin.Important ||
				m.Origin.TimeSource != evidence.TimeGiven || len(m.Origin.GPS) != 1 || m.Origin.GPS[0].Lat != 48.137 {
				t.Fatalf("manifest origin %+v (kind %q), %v", m.Origin, m.Kind, err)
			}
		}
		resp, body = f.call(t, "POST", "/api/v1/recordings/"+r.RecordingID+"/verify", "aud", nil)
		var v struct {
			OK       bool   `json:"ok"`
			Reason   string `json:"reason"`
			Manifest string `json:"manifest"`
			Checked  int    `json:"checked"`
		}
		json.Unmarshal(body, &v)
		if resp.StatusCode != 200 || !v.OK || v.Manifest != "ok" || v.Checked != 1 {
			t.Fatalf("%s: verify %d %s", file.name, resp.StatusCode, body)
		}
		resp, body = f.call(t, "GET", "/api/v1/recordings/"+r.RecordingID, "aud", nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"kind": "upload"`) {
			t.Fatalf("%s: recording JSON %d %s", file.name, resp.StatusCode, body)
		}
	}
	// Nothing left in the spool.
	if left, _ := filepath.Glob(filepath.Join(f.dir, "[^.]*")); len(left) != 0 {
		t.Fatalf("the spool keeps %v", left)
	}

	// The same file again: the same recording, 200, duplicate.
	first := files[0]
	meta := map[string]string{"device": "cam-a", "name": first.name, "sha256": sha(first.data)}
	resp, body := f.create(t, "dk-a", len(first.data), meta)
	loc := resp.Header.Get("Location")
	resp, body = f.patch(t, "dk-a", loc, 0, first.data)
	if resp.StatusCode != 200 {
		t.Fatalf("duplicate: %d %s", resp.StatusCode, body)
	}
	if r := f.checkReceipt(t, body, first.data, first.name); !r.Duplicate || r.RecordingID != recs[first.name] {
		t.Fatalf("duplicate answered %+v, want recording %s, duplicate", r, recs[first.name])
	}
	if n, _ := f.cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: "cam-a", Kind: evidence.KindUpload}); len(n) != len(files) {
		t.Fatalf("%d recordings after a duplicate, want %d", len(n), len(files))
	}
	// Its receipt, asked for by upload and by device and hash.
	id := filepath.Base(loc)
	if resp, body := f.call(t, "GET", "/api/v1/uploads/"+id+"/receipt", "dk-a", nil); resp.StatusCode != 200 || !f.checkReceipt(t, body, first.data, first.name).Duplicate {
		t.Fatalf("receipt of the duplicate: %d %s", resp.StatusCode, body)
	}
	if resp, body := f.call(t, "GET", "/api/v1/receipts?device=cam-a&sha256="+sha(first.data), "dk-a", nil); resp.StatusCode != 200 ||
		f.checkReceipt(t, body, first.data, first.name).RecordingID != recs[first.name] {
		t.Fatalf("receipt by hash: %d %s", resp.StatusCode, body)
	}
	if resp, _ := f.call(t, "GET", "/api/v1/receipts?device=cam-a&sha256="+sha([]byte("other")), "dk-a", nil); resp.StatusCode != 404 {
		t.Fatalf("receipt of a file never stored: %d", resp.StatusCode)
	}
	// Another dock sees neither the upload nor its receipt.
	if resp, _ := f.call(t, "GET", "/api/v1/uploads/"+id+"/receipt", "dk-b", nil); resp.StatusCode != 404 {
		t.Fatalf("another dock's receipt: %d", resp.StatusCode)
	}
	// The dock released the recorder's copy.
	_, list := f.call(t, "GET", "/api/v1/uploads?state=stored", "dk-a", nil)
	var l struct {
		Items []struct{ ID, State, RecordingID string } `json:"items"`
	}
	json.Unmarshal(list, &l)
	if len(l.Items) != len(files) {
		t.Fatalf("stored uploads listed: %s", list)
	}
	if resp, body := f.call(t, "POST", "/api/v1/uploads/"+l.Items[0].ID+"/released", "dk-a", nil); resp.StatusCode != 200 {
		t.Fatalf("released: %d %s", resp.StatusCode, body)
	}
	ev, err := f.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, e := range ev {
		actions[e.Action]++
	}
	if actions[upload.ActionStarted] != len(files)+1 || actions[evidence.ActionIngest] != len(files) || actions[upload.ActionReleased] != 1 || actions[upload.ActionAbandoned] != 1 {
		t.Fatalf("custody actions %v", actions)
	}
}

// A byte changed in transit is refused with both hashes, and the partial
// upload is kept until the dock deletes it. A PATCH whose Upload-Checksum
// does not match is refused (460) and none of it kept.
func TestUploadRefusesChangedBytes(t *testing.T) {
	f := newFixture(t)
	file := clip(t, "a.mp4", append(append([]string{}, video...), h264...)...)
	resp, _ := f.create(t, "dk-a", len(file), map[string]string{"device": "cam-a", "filename": "a.mp4", "sha256": sha(file)})
	loc := resp.Header.Get("Location")
	half := len(file) / 2
	// A chunk with a wrong checksum: 460, nothing kept.
	bad := sha256.Sum256([]byte("not these bytes"))
	if resp, body := f.patch(t, "dk-a", loc, 0, file[:half], "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(bad[:])); resp.StatusCode != 460 {
		t.Fatalf("chunk with a wrong checksum: %d %s", resp.StatusCode, body)
	}
	if got := f.offset(t, "dk-a", loc); got != 0 {
		t.Fatalf("offset after a refused chunk: %d", got)
	}
	if resp, _ := f.patch(t, "dk-a", loc, 0, file[:half], "Upload-Checksum", "crc32 AAAA"); resp.StatusCode != 400 {
		t.Fatalf("unsupported checksum algorithm: %d", resp.StatusCode)
	}
	if resp, _ := f.call(t, "OPTIONS", "/api/v1/uploads/", "", nil); resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Tus-Extension"), "checksum") ||
		resp.Header.Get("Tus-Checksum-Algorithm") != "sha1,md5,sha256" || !strings.Contains(resp.Header.Get("Tus-Extension"), "termination") {
		t.Fatalf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}
	flipped := append([]byte{}, file...)
	flipped[len(flipped)/3] ^= 0x01
	if resp, _ := f.patch(t, "dk-a", loc, 0, flipped[:half]); resp.StatusCode != 204 {
		t.Fatalf("first half: %d", resp.StatusCode)
	}
	resp, body := f.patch(t, "dk-a", loc, half, flipped[half:])
	var e struct {
		Error    string `json:"error"`
		Declared string `json:"declared_sha256"`
		Received string `json:"received_sha256"`
	}
	json.Unmarshal(body, &e)
	if resp.StatusCode != 460 || e.Declared != sha(file) || e.Received != sha(flipped) || e.Error == "" {
		t.Fatalf("flipped byte: %d %s", resp.StatusCode, body)
	}
	id := filepath.Base(loc)
	u, err := f.cat.Upload(context.Background(), id)
	if err != nil || u.State != catalog.UploadRefused || u.ReceivedSHA256 != sha(flipped) || !strings.Contains(u.Reason, sha(file)) {
		t.Fatalf("refused upload: %+v %v", u, err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, id)); err != nil {
		t.Fatalf("the refused partial upload is not kept: %v", err)
	}
	if resp, body := f.call(t, "GET", "/api/v1/uploads/"+id+"/receipt", "dk-a", nil); resp.StatusCode != 409 || !strings.Contains(string(body), sha(flipped)) {
		t.Fatalf("receipt of a refused upload: %d %s", resp.StatusCode, body)
	}
	if n, _ := f.cat.Recordings(context.Background(), catalog.RecordingFilter{}); len(n) != 0 {
		t.Fatalf("a refused file became %d recordings", len(n))
	}
	// The dock deletes it; then it is gone.
	if resp, body := f.call(t, "DELETE", loc, "dk-a", nil, "Tus-Resumable", "1.0.0"); resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(f.dir, id)); !os.IsNotExist(err) {
		t.Fatalf("deleted partial upload still there: %v", err)
	}
	if u, _ := f.cat.Upload(context.Background(), id); u.State != catalog.UploadAbandoned {
		t.Fatalf("deleted upload is %s", u.State)
	}
}

// Who may upload what, and metadata that is refused before anything is
// created.
func TestUploadRefusals(t *testing.T) {
	f := newFixture(t)
	good := map[string]string{"device": "cam-a", "filename": "a.mp4", "sha256": sha([]byte("x"))}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name, who string
		meta      map[string]string
		size      int
		want      int
	}{
		{"an officer", "o-a", good, 1, 403},
		{"the admin token", "admin", good, 1, 403},
		{"an auditor", "aud", good, 1, 403},
		{"no token", "", good, 1, 401},
		{"a dock of another unit", "dk-b", good, 1, 403},
		{"an unknown device", "dk-a", with("device", "cam-zz"), 1, 403},
		{"no device", "dk-a", with("device", ""), 1, 400},
		{"no file name", "dk-a", with("filename", ""), 1, 400},
		{"a path as file name", "dk-a", with("filename", "../a.mp4"), 1, 400},
		{"no sha256", "dk-a", with("sha256", ""), 1, 400},
		{"a short sha256", "dk-a", with("sha256", "abcd"), 1, 400},
		{"a bad start", "dk-a", with("started_at", "yesterday"), 1, 400},
		{"an end before the start", "dk-a", with("ended_at", "2020-01-01T00:00:00Z"), 1, 400},
		{"a bad important", "dk-a", with("important", "very"), 1, 400},
		{"an unknown officer", "dk-a", with("officer", "nobody"), 1, 400},
		{"an officer of another unit", "dk-a", with("officer", "o-b"), 1, 403},
		{"a supervisor as officer", "dk-a", with("officer", "sup-a"), 1, 400},
		{"a gps track that is not JSON", "dk-a", with("gps", "48.1,11.5"), 1, 400},
		{"a gps point out of range", "dk-a", with("gps", `[{"at":"2026-12-01T08:00:00Z","lat":123,"lon":11}]`), 1, 400},
		{"a gps track too long", "dk-a", with("gps", "["+strings.Repeat(`{"lat":1,"lon":1},`, 2000)+`{"lat":1,"lon":1}]`), 1, 400},
		{"an empty file", "dk-a", good, 0, 400},
	} {
		if c.name == "an end before the start" {
			c.meta["started_at"] = "2021-01-01T00:00:00Z"
		}
		resp, body := f.create(t, c.who, c.size, c.meta)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.want)
		}
	}
	if ups, _ := f.cat.Uploads(context.Background(), catalog.UploadFilter{}); len(ups) != 0 {
		t.Fatalf("refused creations left %d uploads", len(ups))
	}
	if left, _ := filepath.Glob(filepath.Join(f.dir, "[^.]*")); len(left) != 0 {
		t.Fatalf("refused creations left %v in the spool", left)
	}
	// Another dock may not touch an upload: as if it did not exist.
	resp, _ := f.create(t, "dk-a", 10, good)
	loc := resp.Header.Get("Location")
	if resp, _ := f.call(t, "HEAD", loc, "dk-b", nil, "Tus-Resumable", "1.0.0"); resp.StatusCode != 404 {
		t.Fatalf("another dock's HEAD: %d", resp.StatusCode)
	}
	if resp, _ := f.patch(t, "dk-b", loc, 0, []byte("0123456789")); resp.StatusCode != 404 {
		t.Fatalf("another dock's PATCH: %d", resp.StatusCode)
	}
	if resp, _ := f.call(t, "POST", "/api/v1/uploads/"+filepath.Base(loc)+"/released", "dk-a", nil); resp.StatusCode != 409 {
		t.Fatalf("released before stored: %d", resp.StatusCode)
	}
}

// A server killed after the last byte reached the spool but before the
// file was stored finishes it when it starts again (Run).
func TestUploadFinishesAfterRestart(t *testing.T) {
	f := newFixture(t)
	file := clip(t, "a.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "pcm_s16le")
	resp, body := f.create(t, "dk-a", len(file), map[string]string{"device": "cam-a", "filename": "a.wav", "sha256": sha(file)})
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	id := filepath.Base(resp.Header.Get("Location"))
	// The bytes reach the spool as a PATCH writes them; the process dies
	// before the finishing hook runs.
	if err := os.WriteFile(filepath.Join(f.dir, id), file, 0o600); err != nil {
		t.Fatal(err)
	}
	up, err := upload.New(upload.Options{Dir: f.dir, Catalog: f.cat, Store: f.store, Signer: f.keys, Registry: prometheus.NewRegistry(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	var u catalog.UploadRecord
	for time.Now().Before(deadline) {
		// Stored, sealed (the receipt's signature is written last) and
		// the partial deleted.
		u, _ = f.cat.Upload(context.Background(), id)
		_, err := f.store.Stat(context.Background(), evidence.ReceiptKey("cam-a", u.RecordingID)+".sig")
		if _, serr := os.Stat(filepath.Join(f.dir, id)); err == nil && os.IsNotExist(serr) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if u.State != catalog.UploadStored {
		t.Fatalf("after a restart the upload is %s (%s)", u.State, u.Reason)
	}
	if resp, body := f.call(t, "GET", "/api/v1/uploads/"+id+"/receipt", "dk-a", nil); resp.StatusCode != 200 {
		t.Fatalf("receipt after the restart: %d %s", resp.StatusCode, body)
	} else {
		f.checkReceipt(t, body, file, "a.wav")
	}
	// A HEAD now says it is whole; a PATCH gets the receipt again.
	if got := f.offset(t, "dk-a", "/api/v1/uploads/"+id); got != len(file) {
		t.Fatalf("HEAD of a stored upload: %d", got)
	}
	if resp, body := f.patch(t, "dk-a", "/api/v1/uploads/"+id, len(file), nil); resp.StatusCode != 200 {
		t.Fatalf("PATCH of a stored upload: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(f.dir, id)); !os.IsNotExist(err) {
		t.Fatalf("the partial is still in the spool: %v", err)
	}

}

// The uploads list, as the console's Uploads view reads it: filtered by
// dock, device and state (an unknown state is 400), each with its offset,
// the hash the server received and why it was refused, the recorded time
// and where it came from; a dock sees only its own, a supervisor only the
// uploads of the devices of the unit's officers.
func TestUploadList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.cat.CreateDevice(ctx, evidence.Device{ID: "cam-b", OfficerID: "o-b", SecretHash: "x"}); err != nil {
		t.Fatal(err)
	}
	send := func(who string, file []byte, meta map[string]string, upTo int) (string, int) {
		t.Helper()
		resp, body := f.create(t, who, len(file), meta)
		if resp.StatusCode != 201 {
			t.Fatalf("create %v: %d %s", meta, resp.StatusCode, body)
		}
		loc := resp.Header.Get("Location")
		resp, _ = f.patch(t, who, loc, 0, file[:upTo])
		return filepath.Base(loc), resp.StatusCode
	}
	stored, wrong, partial, other := []byte("a stored file"), []byte("a file whose declared hash is wrong"), []byte("a file half sent"), []byte("dock b's file")
	storedID, code := send("dk-a", stored, map[string]string{"device": "cam-a", "filename": "cam-a_20260101120000.mp4", "sha256": sha(stored),
		"started_at": "2026-01-01T12:00:00Z", "ended_at": "2026-01-01T12:00:30Z", "important": "1"}, len(stored))
	if code != 200 {
		t.Fatalf("stored upload: %d", code)
	}
	wrongID, code := send("dk-a", wrong, map[string]string{"device": "cam-a", "filename": "wrong.mp4", "sha256": sha([]byte("other bytes"))}, len(wrong))
	if code != 460 {
		t.Fatalf("upload with a wrong sha256: %d", code)
	}
	partialID, _ := send("dk-a", partial, map[string]string{"device": "cam-a", "filename": "half.mp4", "sha256": sha(partial)}, 5)
	if _, code := send("dk-b", other, map[string]string{"device": "cam-b", "filename": "b.wav", "sha256": sha(other)}, len(other)); code != 200 {
		t.Fatalf("dock b's upload: %d", code)
	}

	type item struct {
		ID, Dock, State, Reason string
		DeviceID                string     `json:"device_id"`
		FileName                string     `json:"file_name"`
		Size                    int64      `json:"size"`
		Offset                  int64      `json:"offset"`
		SHA256                  string     `json:"sha256"`
		Received                string     `json:"received_sha256"`
		RecordingID             string     `json:"recording_id"`
		Important               bool       `json:"important"`
		StartedAt               *time.Time `json:"started_at"`
		EndedAt                 *time.Time `json:"ended_at"`
		TimeSource              string     `json:"time_source"`
	}
	list := func(who, query string) []item {
		t.Helper()
		resp, body := f.call(t, "GET", "/api/v1/uploads"+query, who, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /api/v1/uploads%s as %s: %d %s", query, who, resp.StatusCode, body)
		}
		var l struct{ Items []item }
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	ids := func(items []item) string {
		var s []string
		for _, i := range items {
			s = append(s, i.ID)
		}
		sort.Strings(s)
		return strings.Join(s, ",")
	}
	sorted := func(v ...string) string { sort.Strings(v); return strings.Join(v, ",") }
	all := list("aud", "")
	if len(all) != 4 {
		t.Fatalf("an auditor lists %d uploads, want 4: %+v", len(all), all)
	}
	for _, c := range []struct{ who, query, want string }{
		{"aud", "?dock=dk-a", sorted(storedID, wrongID, partialID)},
		{"aud", "?device=cam-a&state=refused", wrongID},
		{"admin", "?dock=dk-a&state=receiving", partialID},
		{"aud", "?dock=dk-b&device=cam-a", ""},
		{"dk-a", "", sorted(storedID, wrongID, partialID)},
		{"dk-a", "?dock=dk-b", ""}, // another dock's: none
		{"dk-b", "?state=stored", ids(list("aud", "?dock=dk-b"))},
		{"sup-a", "", sorted(storedID, wrongID, partialID)}, // unit a's devices only
		{"sup-a", "?device=cam-b", ""},
	} {
		if got := ids(list(c.who, c.query)); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.who, c.query, got, c.want)
		}
	}
	if resp, body := f.call(t, "GET", "/api/v1/uploads?state=done", "aud", nil); resp.StatusCode != 400 || !strings.Contains(string(body), "refused") {
		t.Errorf("an unknown state: %d %s", resp.StatusCode, body)
	}
	by := map[string]item{}
	for _, i := range all {
		by[i.ID] = i
	}
	s := by[storedID]
	if s.State != "stored" || s.RecordingID == "" || s.Offset != int64(len(stored)) || s.Received != sha(stored) || !s.Important || s.TimeSource != "given" ||
		s.StartedAt == nil || !s.StartedAt.Equal(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) || s.EndedAt == nil || s.Dock != "dk-a" || s.DeviceID != "cam-a" {
		t.Errorf("stored upload: %+v", s)
	}
	w := by[wrongID]
	if w.State != "refused" || w.Received != sha(wrong) || w.SHA256 != sha([]byte("other bytes")) || !strings.Contains(w.Reason, sha(wrong)) ||
		!strings.Contains(w.Reason, w.SHA256) || w.RecordingID != "" {
		t.Errorf("refused upload: %+v", w)
	}
	p := by[partialID]
	if p.State != "receiving" || p.Offset != 5 || p.Size != int64(len(partial)) || p.Received != "" || p.FileName != "half.mp4" {
		t.Errorf("partial upload: %+v", p)
	}
}

// An uploaded file's recorded span comes from its own movie header when it
// has one (creation time and length), ahead of what the dock says; from
// the dock's start and the file's length when the header has no time; and
// from the upload's start, of the file's length, when nobody says.
func TestUploadTimesFromFile(t *testing.T) {
	f := newFixture(t)
	stamped := clip(t, "stamped.mp4", append(append(append([]string{}, video...), h264...), "-metadata", "creation_time=2026-02-03T04:05:06Z")...)
	plain := clip(t, "plain.mov", append(append([]string{}, video...), h264...)...)
	wav := clip(t, "plain.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "pcm_s16le")
	given := "2026-02-03T10:00:00Z"
	for _, c := range []struct {
		name   string
		data   []byte
		start  string
		want   time.Time
		source evidence.TimeSource
		length bool // the recording lasts the file's ~2 s
	}{
		{"stamped.mp4", stamped, given, time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC), evidence.TimeFromFile, true},
		{"plain.mov", plain, given, time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC), evidence.TimeGiven, true},
		{"plain.wav", wav, "", time.Time{}, evidence.TimeReceived, false},
	} {
		meta := map[string]string{"device": "cam-a", "filename": c.name, "sha256": sha(c.data)}
		if c.start != "" {
			meta["started_at"] = c.start
		}
		resp, body := f.create(t, "dk-a", len(c.data), meta)
		if resp.StatusCode != 201 {
			t.Fatalf("%s: create %d %s", c.name, resp.StatusCode, body)
		}
		resp, body = f.patch(t, "dk-a", resp.Header.Get("Location"), 0, c.data)
		r := f.checkReceipt(t, body, c.data, c.name)
		rec, err := f.cat.Recording(context.Background(), r.RecordingID)
		if err != nil {
			t.Fatal(err)
		}
		up, err := f.cat.StoredUpload(context.Background(), "cam-a", sha(c.data))
		if err != nil || up.TimeSource != c.source || !up.StartedAt.Equal(rec.StartedAt) || !up.EndedAt.Equal(rec.EndedAt) {
			t.Fatalf("%s: upload %+v (%v), recording %v..%v, want time source %s", c.name, up, err, rec.StartedAt, rec.EndedAt, c.source)
		}
		if !c.want.IsZero() && !rec.StartedAt.Equal(c.want) {
			t.Fatalf("%s: recorded from %v, want %v", c.name, rec.StartedAt, c.want)
		}
		if d := rec.EndedAt.Sub(rec.StartedAt); c.length && (d < 1900*time.Millisecond || d > 2200*time.Millisecond) {
			t.Fatalf("%s: lasts %v, want the file's ~2 s", c.name, d)
		}
		if c.source == evidence.TimeReceived && (rec.StartedAt.Before(up.CreatedAt.Add(-time.Second)) || rec.StartedAt.After(time.Now())) {
			t.Fatalf("%s: recorded from %v, want the upload's start %v", c.name, rec.StartedAt, up.CreatedAt)
		}
		mb, err := f.store.Get(context.Background(), rec.ManifestKey)
		if err != nil {
			t.Fatal(err)
		}
		var m evidence.Manifest
		err = json.NewDecoder(mb).Decode(&m)
		mb.Close()
		if err != nil || m.Origin == nil || m.Origin.TimeSource != c.source || !m.StartedAt.Equal(rec.StartedAt) {
			t.Fatalf("%s: manifest origin %+v from %v, %v", c.name, m.Origin, m.StartedAt, err)
		}
	}
}

// A tus client in another origin's page (Uppy on a workstation's own web
// page) uploads with a dock's bearer token: the preflight of every request
// is answered without credentials, and every answer (tusd's and bodycam's
// own, for a stored upload) lets the page read the tus headers. Cookies are
// never allowed cross-origin.
func TestUploadCrossOrigin(t *testing.T) {
	f := newFixture(t)
	const origin = "http://workstation.example:8080"
	file := clip(t, "a.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "pcm_s16le")
	checkCORS := func(what string, resp *http.Response) {
		t.Helper()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Fatalf("%s: Access-Control-Allow-Origin %q", what, got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Fatalf("%s: Access-Control-Allow-Credentials %q", what, got)
		}
	}
	exposes := func(what string, resp *http.Response, names ...string) {
		t.Helper()
		for _, n := range names {
			if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), n) {
				t.Fatalf("%s does not expose %s: %v", what, n, resp.Header)
			}
		}
	}
	for _, p := range []string{"/api/v1/uploads", "/api/v1/uploads/", "/api/v1/uploads/some-id"} {
		resp, _ := f.call(t, "OPTIONS", p, "", nil, "Origin", origin, "Access-Control-Request-Method", "PATCH",
			"Access-Control-Request-Headers", "authorization,tus-resumable,upload-offset,upload-checksum,content-type")
		if resp.StatusCode/100 != 2 {
			t.Fatalf("preflight of %s: %d", p, resp.StatusCode)
		}
		checkCORS("preflight of "+p, resp)
		for _, h := range []string{"Authorization", "Upload-Checksum", "Upload-Offset", "Tus-Resumable"} {
			if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), h) {
				t.Fatalf("preflight of %s does not allow %s: %v", p, h, resp.Header)
			}
		}
		if !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PATCH") {
			t.Fatalf("preflight of %s: methods %q", p, resp.Header.Get("Access-Control-Allow-Methods"))
		}
	}
	resp, body := f.call(t, "POST", "/api/v1/uploads/", "dk-a", nil, "Origin", origin, "Tus-Resumable", "1.0.0",
		"Upload-Length", strconv.Itoa(len(file)), "Upload-Metadata", metadata(map[string]string{"device": "cam-a", "filename": "a.wav", "sha256": sha(file)}))
	if resp.StatusCode != 201 {
		t.Fatalf("create from another origin: %d %s", resp.StatusCode, body)
	}
	checkCORS("create", resp)
	exposes("create", resp, "Location", "Upload-Offset")
	loc := resp.Header.Get("Location")
	sum := sha256.Sum256(file)
	resp, body = f.patch(t, "dk-a", loc, 0, file, "Origin", origin, "Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(sum[:]))
	if resp.StatusCode != 200 && resp.StatusCode != 204 {
		t.Fatalf("patch from another origin: %d %s", resp.StatusCode, body)
	}
	checkCORS("patch", resp)
	exposes("patch", resp, "Upload-Offset", "Bodycam-Recording")
	// Stored: bodycam answers the HEAD itself.
	resp, _ = f.call(t, "HEAD", loc, "dk-a", nil, "Origin", origin, "Tus-Resumable", "1.0.0")
	if resp.StatusCode != 200 || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(file)) {
		t.Fatalf("HEAD of the stored upload: %d %v", resp.StatusCode, resp.Header)
	}
	checkCORS("HEAD of a stored upload", resp)
	exposes("HEAD of a stored upload", resp, "Upload-Offset")
}
