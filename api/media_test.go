package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/storage"
)

// addUser adds a user of the last fixture with the API token "tok-<id>".
func addUser(t *testing.T, id string, role evidence.Role, unit string) {
	t.Helper()
	ctx := context.Background()
	if err := lastFixture.cat.CreateUser(ctx, evidence.User{ID: id, Role: role, Unit: unit, CertToken: "cert-" + id}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("tok-" + id))
	if err := lastFixture.cat.CreateAPIToken(ctx, evidence.APIToken{ID: id, TokenHash: hex.EncodeToString(sum[:]), UserID: id, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// storeRecording stores a recording of cam-a (officer o-a) with an init
// object and n media objects of size bytes each, in the last fixture's
// store and catalog, and returns the bytes /media serves for it.
func storeRecording(t *testing.T, id string, n, size int) []byte {
	t.Helper()
	ctx := context.Background()
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if err := lastFixture.cat.CreateRecording(ctx, evidence.Recording{ID: id, DeviceID: "cam-a", OfficerID: "o-a", StartedAt: start}); err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for seq := 0; seq <= n; seq++ {
		body := bytes.Repeat([]byte{byte('a' + seq%26)}, size)
		copy(body, fmt.Sprintf("%s object %d|", id, seq))
		key := fmt.Sprintf("cam-a/%s/%06d.m4s", id, seq)
		kind := evidence.KindMedia
		if seq == 0 {
			kind, key = evidence.KindInit, "cam-a/"+id+"/init.mp4"
		}
		info, err := lastFixture.store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), storage.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lastFixture.cat.AppendSegment(ctx, evidence.Segment{RecordingID: id, Seq: int64(seq), Kind: kind, Key: key,
			Size: info.Size, SHA256: info.SHA256, StartedAt: start.Add(time.Duration(seq) * 4 * time.Second), Duration: 4 * time.Second,
			Keyframe: true}); err != nil {
			t.Fatal(err)
		}
		all.Write(body)
	}
	return all.Bytes()
}

// playbacks lists the playback and download events about a recording.
func playbacks(t *testing.T, recording string) []evidence.CustodyEvent {
	t.Helper()
	events, err := lastFixture.cat.CustodyEvents(context.Background(), catalog.CustodyFilter{TargetIDs: []string{recording}})
	if err != nil {
		t.Fatal(err)
	}
	var out []evidence.CustodyEvent
	for _, e := range events {
		if e.Action == evidence.ActionPlayback || e.Action == evidence.ActionDownload {
			out = append(out, e)
		}
	}
	return out
}

func getMedia(t *testing.T, url, token, rangeHeader string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// The attack of issue 10 (finding 2): Range headers that do not start with
// "bytes=0-" but still return the whole recording left no custody record.
// Now every viewing is recorded whatever the Range syntax, once per user,
// recording, window and action.
func TestMediaEveryViewingRecorded(t *testing.T) {
	srv, _ := rolesFixture(t)
	whole := storeRecording(t, "rec-m", 3, 20000)
	url := srv.URL + "/api/v1/recordings/rec-m/media"
	for i, rg := range []string{"bytes=-999999999", "bytes= 0-", "bytes=1-,0-", "bytes=0-", ""} {
		user := fmt.Sprintf("aud-%d", i)
		addUser(t, user, evidence.RoleAuditor, "")
		resp, body := getMedia(t, url, "tok-"+user, rg)
		if (resp.StatusCode != 206 && resp.StatusCode != 200) || !bytes.Equal(body, whole) {
			t.Fatalf("Range %q: %d, %d bytes; want the whole recording (%d bytes)", rg, resp.StatusCode, len(body), len(whole))
		}
		var mine []evidence.CustodyEvent
		for _, e := range playbacks(t, "rec-m") {
			if e.Actor == user {
				mine = append(mine, e)
			}
		}
		if len(mine) != 1 || mine[0].Role != "auditor" || (rg != "" && !strings.Contains(mine[0].Detail, "Range "+rg)) {
			t.Fatalf("Range %q: the ledger has %+v; want one playback by %s naming the Range", rg, mine, user)
		}
	}
	// A seeking player's further requests are the same viewing...
	n := len(playbacks(t, "rec-m"))
	for _, rg := range []string{"bytes=100-200", "bytes=5000-", "bytes=-10"} {
		if resp, _ := getMedia(t, url, "tok-aud-0", rg); resp.StatusCode != 206 {
			t.Fatalf("Range %q: %d", rg, resp.StatusCode)
		}
	}
	if got := len(playbacks(t, "rec-m")); got != n {
		t.Fatalf("one viewing made %d events", got-n)
	}
	// ...a download, or another window of the recording, is another.
	getMedia(t, url+"?download=1", "tok-aud-0", "bytes=0-99")
	getMedia(t, url+"?from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "tok-aud-0", "bytes=7-")
	events := playbacks(t, "rec-m")
	if len(events) != n+2 || events[n].Action != evidence.ActionDownload || !strings.Contains(events[n+1].Detail, "window 20") {
		t.Fatalf("download and window: %+v", events[n:])
	}
}

// failingCustody is a ledger that cannot record.
type failingCustody struct{}

func (failingCustody) Record(context.Context, evidence.CustodyEvent) error {
	return errors.New("database is down")
}
func (failingCustody) Denied(context.Context, string, string, string, string, bool) {}

// A viewing that cannot be recorded is refused, whatever the Range.
func TestMediaRefusedWithoutLedger(t *testing.T) {
	rolesFixture(t)
	storeRecording(t, "rec-m", 2, 1000)
	f := lastFixture
	srv := httptest.NewServer(api.New(api.Options{Catalog: f.cat, Users: f.cat, Cases: f.cat, Custody: failingCustody{}, Store: f.store,
		Keys: f.keys, Registry: prometheus.NewRegistry(), Log: quiet}).Handler())
	defer srv.Close()
	for _, rg := range []string{"", "bytes=0-", "bytes=-999999999", "bytes= 0-", "bytes=1-,0-", "bytes=500-600"} {
		resp, body := getMedia(t, srv.URL+"/api/v1/recordings/rec-m/media", "tok-aud", rg)
		if resp.StatusCode != 503 || bytes.Contains(body, []byte("rec-m object")) {
			t.Fatalf("Range %q with no ledger: %d %q", rg, resp.StatusCode, body)
		}
	}
}

// countingStore counts the bytes read from the object store.
type countingStore struct {
	api.Objects
	read atomic.Int64
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := c.Objects.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return countingReader{rc, &c.read}, nil
}

func (c *countingStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := c.Objects.GetRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	return countingReader{rc, &c.read}, nil
}

// The attack of issue 10 (finding 9): 8,000 copies of one small range made
// the server read the object from its start for each. Ranges are now merged
// and bounded, and each read from its offset: the store reads what the
// answer holds.
func TestMultiRangeAmplification(t *testing.T) {
	rolesFixture(t)
	whole := storeRecording(t, "rec-m", 4, 256<<10)
	f := lastFixture
	cs := &countingStore{Objects: f.store}
	srv := httptest.NewServer(api.New(api.Options{Catalog: f.cat, Users: f.cat, Cases: f.cat, Custody: f.ledger, Store: cs,
		Keys: f.keys, Registry: prometheus.NewRegistry(), Log: quiet}).Handler())
	defer srv.Close()
	url := srv.URL + "/api/v1/recordings/rec-m/media"
	at := int64(len(whole) - 1000) // in the last object
	one := fmt.Sprintf("%d-%d", at, at+111)
	cases := []struct {
		name, rangeHeader string
		code              int
		body              []byte
		maxRead           int64
	}{
		{"8,000 copies of one range", "bytes=" + strings.Repeat(one+",", 7999) + one, 206, whole[at : at+112], 112},
		{"overlapping ranges", "bytes=1-,0-", 206, whole, int64(len(whole))},
		{"8,000 small ranges, far apart", "bytes=" + manyRanges(8000, 100), 200, whole, int64(len(whole))},
		{"a few ranges", fmt.Sprintf("bytes=10-19,%d-%d", at, at+9), 206, nil, 20},
	}
	for _, c := range cases {
		cs.read.Store(0)
		resp, body := getMedia(t, url, "tok-aud", c.rangeHeader)
		if resp.StatusCode != c.code || (c.body != nil && !bytes.Equal(body, c.body)) {
			t.Fatalf("%s: %d, %d bytes (%s)", c.name, resp.StatusCode, len(body), resp.Header.Get("Content-Range"))
		}
		if c.body == nil && (!bytes.Contains(body, whole[10:20]) || !bytes.Contains(body, whole[at:at+10])) {
			t.Fatalf("%s: the parts are not in the answer: %q", c.name, body)
		}
		if got := cs.read.Load(); got > c.maxRead {
			t.Fatalf("%s: the store read %d bytes for a %d-byte answer; want at most %d", c.name, got, len(body), c.maxRead)
		}
	}
}

// manyRanges is n one-byte ranges step bytes apart.
func manyRanges(n, step int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%d-%d", i*step, i*step)
	}
	return strings.Join(parts, ",")
}

// Finding 17: a recording or case the principal may not see gets the very
// answer a missing one gets, after the same work: both are audited.
func TestConcealedLikeMissing(t *testing.T) {
	srv, denied := rolesFixture(t)
	for _, c := range []struct{ hidden, missing, id, other string }{
		{"/api/v1/recordings/rec-a", "/api/v1/recordings/rec-z", "rec-a", "rec-z"},
		{"/api/v1/recordings/rec-a/media", "/api/v1/recordings/rec-z/media", "rec-a", "rec-z"},
		{"/api/v1/cases/C-1", "/api/v1/cases/C-9", "C-1", "C-9"},
		{"/api/v1/cases/C-1/custody", "/api/v1/cases/C-9/custody", "C-1", "C-9"},
	} {
		before, _ := denied.count()
		code1, body1 := call(t, srv.URL, "GET", c.hidden, "tok-o-b", "")
		mid, _ := denied.count()
		code2, body2 := call(t, srv.URL, "GET", c.missing, "tok-o-b", "")
		after, _ := denied.count()
		if code1 != 404 || code2 != 404 || strings.ReplaceAll(body1, c.id, c.other) != body2 {
			t.Fatalf("%s: %d %q; missing: %d %q", c.hidden, code1, body1, code2, body2)
		}
		if mid != before+1 || after != mid+1 {
			t.Fatalf("%s: refusals audited %d then %d; want both, alike (the same work before the same answer)", c.hidden, mid-before, after-mid)
		}
	}
	// Filing a case under a taken id says it exists: for a case the user
	// may not read, that is an audited refusal too.
	for who, audited := range map[string]int{"tok-o-b": 1, "tok-o-a": 0} {
		before, _ := denied.count()
		if code, body := call(t, srv.URL, "POST", "/api/v1/cases", who, `{"id":"C-1","title":"probe"}`); code != 409 {
			t.Fatalf("%s files C-1: %d %s", who, code, body)
		}
		if after, _ := denied.count(); after-before != audited {
			t.Fatalf("%s files C-1: %d refusals audited, want %d", who, after-before, audited)
		}
	}
}

// trackingStore counts the object readers open, each slowed like an S3
// read, so that a multi-range answer is still being written when its client
// goes away.
type trackingStore struct {
	api.Objects
	open atomic.Int64
}

type trackedReader struct {
	io.ReadCloser
	s      *trackingStore
	closed atomic.Bool
}

func (t *trackedReader) Read(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	return t.ReadCloser.Read(p)
}

func (t *trackedReader) Close() error {
	if t.closed.CompareAndSwap(false, true) {
		t.s.open.Add(-1)
	}
	return t.ReadCloser.Close()
}

func (s *trackingStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	time.Sleep(3 * time.Millisecond)
	rc, err := s.Objects.GetRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	return &trackedReader{ReadCloser: rc, s: s}, nil
}

// A multi-range answer is written by the HTTP library on a goroutine of its
// own, which may still be reading when the handler closes the reader (the
// client went away): no data race (go test -race), and no object reader
// left open.
func TestMultiRangeClientGone(t *testing.T) {
	rolesFixture(t)
	const size = 256 << 10
	storeRecording(t, "rec-r", 16, size)
	f := lastFixture
	ts := &trackingStore{Objects: f.store}
	srv := httptest.NewServer(api.New(api.Options{Catalog: f.cat, Users: f.cat, Cases: f.cat, Custody: f.ledger, Store: ts,
		Keys: f.keys, Registry: prometheus.NewRegistry(), Log: quiet}).Handler())
	defer srv.Close()
	var parts []string
	for i := 1; i <= 15; i++ { // each range crosses an object boundary
		parts = append(parts, fmt.Sprintf("%d-%d", i*size-1000, i*size+size/2))
	}
	req := "GET /api/v1/recordings/rec-r/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-aud\r\nRange: bytes=" + strings.Join(parts, ",") + "\r\n\r\n"
	addr := strings.TrimPrefix(srv.URL, "http://")
	for i := 0; i < 60; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(4096)
		io.WriteString(c, req)
		io.ReadFull(c, make([]byte, 4096))
		time.Sleep(time.Duration(i%7) * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0) // a reset, as a player that seeks away
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for ts.open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := ts.open.Load(); n != 0 {
		t.Fatalf("%d object readers left open after every request ended", n)
	}
}
