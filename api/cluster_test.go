package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/peer"
	"github.com/bodycam/bodycam/internal/whep"
	"github.com/bodycam/bodycam/live"
	"github.com/bodycam/bodycam/media"
)

// fakeDirectory says which node records each device, as coord does.
type fakeDirectory struct {
	mu     sync.Mutex
	leases map[string]string // device -> node
	nodes  map[string]string // node -> advertise URL
	down   bool              // coordination does not answer
}

func (d *fakeDirectory) Device(_ context.Context, id string) (coord.DeviceLease, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return coord.DeviceLease{}, coord.ErrUnavailable
	}
	node, ok := d.leases[id]
	if !ok {
		return coord.DeviceLease{}, coord.ErrNotHeld
	}
	return coord.DeviceLease{Device: id, Node: node, Session: "s-" + id, Fence: 1}, nil
}

func (d *fakeDirectory) Nodes(context.Context) ([]coord.NodeInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, coord.ErrUnavailable
	}
	var out []coord.NodeInfo
	for id, u := range d.nodes {
		out = append(out, coord.NodeInfo{ID: id, AdvertiseURL: u, State: coord.NodeUp})
	}
	return out, nil
}

// fakeSlots are coord's slots in memory: idempotent per id, expired
// members do not count, renewal extends members still there.
type fakeSlots struct {
	mu    sync.Mutex
	pools map[string]map[string]time.Time
	down  bool
}

func (f *fakeSlots) TakeSlot(_ context.Context, pool, id string, limit int, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return coord.ErrUnavailable
	}
	now := time.Now()
	p := f.pools[pool]
	if p == nil {
		p = map[string]time.Time{}
		f.pools[pool] = p
	}
	for m, until := range p {
		if !until.After(now) {
			delete(p, m)
		}
	}
	if _, ok := p[id]; !ok && len(p) >= limit {
		return coord.ErrFull
	}
	p[id] = now.Add(ttl)
	return nil
}

func (f *fakeSlots) RenewSlots(_ context.Context, pool string, ids []string, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return coord.ErrUnavailable
	}
	for _, id := range ids {
		if until, ok := f.pools[pool][id]; ok && until.After(time.Now()) {
			f.pools[pool][id] = time.Now().Add(ttl)
		}
	}
	return nil
}

func (f *fakeSlots) ReleaseSlot(_ context.Context, pool, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return coord.ErrUnavailable
	}
	delete(f.pools[pool], id)
	return nil
}

func (f *fakeSlots) setDown(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

// nodeAudit records the viewings one node's relay audits, in the shared
// catalog too.
type nodeAudit struct {
	live.Audit
	mu    sync.Mutex
	views []evidence.LiveView
	ended map[string]string
}

func (a *nodeAudit) StartLiveView(ctx context.Context, v evidence.LiveView) error {
	a.mu.Lock()
	a.views = append(a.views, v)
	a.mu.Unlock()
	return a.Audit.StartLiveView(ctx, v)
}

func (a *nodeAudit) EndLiveView(ctx context.Context, id string, at time.Time, reason string) error {
	a.mu.Lock()
	a.ended[id] = reason
	a.mu.Unlock()
	return a.Audit.EndLiveView(ctx, id, at, reason)
}

func (a *nodeAudit) snapshot() ([]evidence.LiveView, map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ended := map[string]string{}
	for k, v := range a.ended {
		ended[k] = v
	}
	return append([]evidence.LiveView(nil), a.views...), ended
}

type clusterNode struct {
	id    string
	url   string
	relay *live.Relay
	audit *nodeAudit
	peers *peer.Auth
}

// cluster is two nodes sharing one catalog and credential key: node-a and
// node-b, each with its relay and API server. cam-a (unit a) publishes on
// node-b, cam-a2 (unit a) on node-a, cam-x on node-c, whose address
// answers nothing.
type cluster struct {
	a, b   *clusterNode
	dir    *fakeDirectory
	slots  *fakeSlots
	denied *deniedLog
}

const clusterKey = "the credential key every node shares"

func newCluster(t *testing.T, maxSessions, maxPerUser int) *cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &cluster{dir: &fakeDirectory{leases: map[string]string{"cam-a": "node-b", "cam-a2": "node-a", "cam-x": "node-c"},
		nodes: map[string]string{"node-c": "http://127.0.0.1:1"}}, slots: &fakeSlots{pools: map[string]map[string]time.Time{}}}
	var runs sync.WaitGroup
	t.Cleanup(func() { cancel(); runs.Wait() })
	node := func(id string) *clusterNode {
		n := &clusterNode{id: id, audit: &nodeAudit{ended: map[string]string{}}}
		var err error
		if n.peers, err = peer.New(peer.Options{Node: id, Key: []byte(clusterKey)}); err != nil {
			t.Fatal(err)
		}
		n.relay, err = live.New(live.Options{UDPAddr: "127.0.0.1:0", Loopback: true, MaxSessions: maxSessions, MaxPerUser: maxPerUser,
			Slots: c.slots, SlotTTL: 400 * time.Millisecond, Audit: n.audit, Registry: prometheus.NewRegistry(), Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		runs.Add(1)
		go func() { defer runs.Done(); n.relay.Run(ctx) }()
		return n
	}
	c.a, c.b = node("node-a"), node("node-b")
	var srvA *httptest.Server
	srvA, c.denied = rolesFixture(t, func(o *api.Options) {
		o.Relay, o.Directory, o.Peers = c.a.relay, c.dir, c.a.peers
	})
	f := lastFixture
	c.a.audit.Audit, c.b.audit.Audit = f.cat, f.cat
	for _, d := range []evidence.Device{{ID: "cam-a2", OfficerID: "o-a", SecretHash: "x"}, {ID: "cam-x", OfficerID: "o-a", SecretHash: "x"}} {
		if err := f.cat.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.cat.CreateRecording(ctx, evidence.Recording{ID: "rec-a2", DeviceID: "cam-a2", OfficerID: "o-a", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	srvB := httptest.NewServer(api.New(api.Options{Catalog: f.cat, Users: f.cat, Cases: f.cat, Custody: f.ledger, Store: f.store,
		Keys: f.keys, Relay: c.b.relay, Directory: c.dir, Peers: c.b.peers, AdminToken: token, Registry: prometheus.NewRegistry(), Log: quiet}).Handler())
	t.Cleanup(srvB.Close)
	c.a.url, c.b.url = srvA.URL, srvB.URL
	c.dir.nodes["node-a"], c.dir.nodes["node-b"] = srvA.URL, srvB.URL

	publish(ctx, &runs, c.b.relay, "cam-a", "rec-a")
	publish(ctx, &runs, c.a.relay, "cam-a2", "rec-a2")
	return c
}

// publish feeds a relay a device's H.264 at 30 frames a second, a keyframe
// a second, until ctx ends.
func publish(ctx context.Context, wg *sync.WaitGroup, r *live.Relay, device, recording string) {
	sps, pps := []byte{0x67, 0x42, 0xe0, 0x1f, 0xac}, []byte{0x68, 0xce, 0x3c, 0x80}
	feed := r.Start(device, recording, []media.Track{{Codec: media.H264, ClockRate: 90000, Params: [][]byte{sps, pps}}})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer feed.Close()
		t := time.NewTicker(time.Second / 30)
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			key := n%30 == 0
			nal := []byte{0x41, byte(n), byte(n >> 8), 1, 2, 3}
			nalus := [][]byte{nal}
			if key {
				nal[0] = 0x65
				nalus = [][]byte{sps, pps, nal}
			}
			pts := int64(n) * 3000
			feed.Write(0, media.Unit{PTS: pts, DTS: pts, Keyframe: key, NALUs: nalus, Recv: time.Now()})
		}
	}()
}

func (c *cluster) dial(t *testing.T, n *clusterNode, device, who string) (*whep.Viewer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	v, err := whep.Dial(ctx, n.url+"/api/v1/live/"+device+"/whep", whep.Options{Token: "tok-" + who})
	if err == nil {
		t.Cleanup(func() { v.Close() })
	}
	return v, err
}

func statusOf(err error) int {
	var se *whep.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func relayUsers(r *live.Relay) []string {
	var out []string
	for _, v := range r.Viewers() {
		out = append(out, v.User+"/"+v.Device)
	}
	return out
}

// A WHEP viewer on node A watches cam-a, which node B records: A checks
// the user, forwards the offer to B, and the media comes from B's relay,
// which audits the viewing with the user and their address; the session
// URL is on A, and its DELETE through A ends B's session. The viewers of
// every node are listed on either.
func TestWHEPThroughAnotherNode(t *testing.T) {
	c := newCluster(t, 10, 10)
	v, err := c.dial(t, c.a, "cam-a", "s-a")
	if err != nil {
		t.Fatal(err)
	}
	loc := v.Location()
	if !strings.HasPrefix(loc.String(), c.a.url+"/api/v1/live/cam-a/whep/") || !strings.HasSuffix(loc.Path, "@node-b") {
		t.Fatalf("session URL %s: want one on node A naming node-b", loc)
	}
	st := waitFrames(t, v, 30)
	if !st.FirstFrameHasParams {
		t.Errorf("first frame without parameter sets: %+v", st)
	}
	if a, b := relayUsers(c.a.relay), relayUsers(c.b.relay); len(a) != 0 || len(b) != 1 || b[0] != "s-a/cam-a" {
		t.Fatalf("viewers: node A %v, node B %v; want the session on B only", a, b)
	}
	views, _ := c.b.audit.snapshot()
	if len(views) != 1 || views[0].User != "s-a" || !strings.HasPrefix(views[0].RemoteAddr, "127.0.0.1:") || views[0].RecordingID != "rec-a" {
		t.Fatalf("node B audited %+v; want s-a's viewing of rec-a from the viewer's address", views)
	}
	if av, _ := c.a.audit.snapshot(); len(av) != 0 {
		t.Fatalf("node A audited %+v: the viewing is B's", av)
	}
	session := strings.TrimSuffix(loc.Path[strings.LastIndex(loc.Path, "/")+1:], "@node-b")
	for on, id := range map[*clusterNode]string{c.a: session + "@node-b", c.b: session} {
		code, body := call(t, on.url, "GET", "/api/v1/live/viewers", "tok-aud", "")
		if code != 200 || !strings.Contains(body, `"node_id": "node-b"`) || !strings.Contains(body, `"id": "`+id+`"`) || !strings.Contains(body, `"user": "s-a"`) {
			t.Fatalf("viewers on %s: %d %s", on.id, code, body)
		}
		if !strings.Contains(body, `"unreachable_nodes": [
    "node-c"
  ]`) {
			t.Errorf("viewers on %s do not say node-c did not answer: %s", on.id, body)
		}
	}
	// A supervisor of another unit sees none of it, from either node (the
	// other node lists every viewer for this one, which scopes them).
	for _, on := range []*clusterNode{c.a, c.b} {
		if code, body := call(t, on.url, "GET", "/api/v1/live/viewers", "tok-s-b", ""); code != 200 || strings.Contains(body, "cam-a") ||
			strings.Contains(body, "s-a") || strings.Contains(body, "127.0.0.1") {
			t.Fatalf("s-b's viewers on %s: %d %s", on.id, code, body)
		}
	}
	// Another user may not hang up s-a's session, through A or B.
	if code, _ := call(t, c.a.url, "DELETE", loc.Path, "tok-aud", ""); code != 404 {
		t.Fatalf("aud hangs up s-a's session: %d, want 404", code)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("DELETE through A: %v", err)
	}
	if b := relayUsers(c.b.relay); len(b) != 0 {
		t.Fatalf("node B still has %v after the DELETE", b)
	}
	if _, ended := c.b.audit.snapshot(); ended[views[0].ID] != "viewer hung up" {
		t.Fatalf("node B's audit of the end: %v", ended)
	}
	if code, _ := call(t, c.a.url, "DELETE", loc.Path, "tok-s-a", ""); code != 404 {
		t.Fatalf("second DELETE: %d, want 404", code)
	}
	// And the other way round: B forwards to A for cam-a2.
	v2, err := c.dial(t, c.b, "cam-a2", "aud")
	if err != nil {
		t.Fatal(err)
	}
	waitFrames(t, v2, 5)
	if a := relayUsers(c.a.relay); len(a) != 1 || a[0] != "aud/cam-a2" {
		t.Fatalf("node A viewers %v", a)
	}
}

// Who may not watch a device gets, through A, the very answer A or B give
// for a device that does not exist, and the offer goes nowhere; a node
// that does not answer, or coordination that does not, is a 503 that says
// so.
func TestWHEPThroughAnotherNodeRefusals(t *testing.T) {
	c := newCluster(t, 10, 10)
	offer := func(n *clusterNode, device, who string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", n.url+"/api/v1/live/"+device+"/whep", strings.NewReader("v=0"))
		req.Header.Set("Authorization", "Bearer tok-"+who)
		req.Header.Set("Content-Type", "application/sdp")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			k, err := resp.Body.Read(buf)
			b.WriteString(string(buf[:k]))
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	before, _ := c.denied.count()
	viaA, bodyA := offer(c.a, "cam-a", "s-b")
	onB, bodyB := offer(c.b, "cam-a", "s-b")
	code, missing := offer(c.a, "cam-a", "s-a") // the device exists and s-a may watch: a bad offer
	if code != 400 {
		t.Fatalf("s-a's junk offer through A: %d %s, want B's 400", code, missing)
	}
	nobodyCode, nobody := offer(c.a, "nobody", "s-b")
	if viaA != 404 || onB != 404 || nobodyCode != 404 || bodyA != bodyB || strings.ReplaceAll(bodyA, "cam-a", "nobody") != nobody {
		t.Fatalf("s-b for cam-a through A: %d %s; on B: %d %s; nobody: %d %s", viaA, bodyA, onB, bodyB, nobodyCode, nobody)
	}
	if after, _ := c.denied.count(); after != before+2 { // A audits its refusals (B's went to its own log)
		t.Errorf("refusals audited on A: %d, want %d", after, before+2)
	}
	if len(c.b.relay.Viewers()) != 0 {
		t.Fatal("a refused offer reached B")
	}

	code, body := offer(c.a, "cam-x", "s-a")
	if code != 503 || !strings.Contains(body, "node-c") || !strings.Contains(body, "does not answer") {
		t.Fatalf("cam-x on an unreachable node: %d %s, want 503 naming node-c", code, body)
	}
	c.dir.mu.Lock()
	c.dir.down = true
	c.dir.mu.Unlock()
	code, body = offer(c.a, "cam-a", "s-a")
	if code != 503 || !strings.Contains(body, "coordination") {
		t.Fatalf("cam-a while coordination is down: %d %s, want 503", code, body)
	}
	if _, err := c.dial(t, c.a, "cam-a2", "s-a"); err != nil { // but what A records itself still plays
		t.Fatalf("cam-a2 on A while coordination is down: %v", err)
	}
	c.dir.mu.Lock()
	c.dir.down = false
	c.dir.mu.Unlock()

	// A node whose credential key differs: its refusal of A's word is not
	// the viewer's fault (not 401, which would sign them out).
	other, _ := peer.New(peer.Options{Node: "node-a", Key: []byte("another key, not the cluster's one")})
	srv := httptest.NewServer(api.New(api.Options{Catalog: lastFixture.cat, Users: lastFixture.cat, Keys: lastFixture.keys, Store: lastFixture.store,
		Relay: c.a.relay, Directory: c.dir, Peers: other, AdminToken: token, Registry: prometheus.NewRegistry(), Log: quiet}).Handler())
	defer srv.Close()
	code, body = offer(&clusterNode{url: srv.URL}, "cam-a", "s-a")
	if code != 503 || !strings.Contains(body, "credential keys") {
		t.Fatalf("through a node with another key: %d %s, want 503", code, body)
	}
}

// The internal endpoints take only requests a node vouches for: none
// without the MAC (a user's token is not enough), none with another key,
// for another node, too old, or seen before.
func TestInternalEndpointsRefuseUnvouched(t *testing.T) {
	c := newCluster(t, 10, 10)
	send := func(method, path, bearer, body string, sign *peer.Auth, to string) int {
		t.Helper()
		req, _ := http.NewRequest(method, c.b.url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/sdp")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if sign != nil {
			sign.Sign(req, to, []byte(body), peer.Identity{User: "s-a", Role: "supervisor", Remote: "10.9.9.9:1"})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const offerPath = "/internal/v1/live/cam-a/whep"
	wrongKey, _ := peer.New(peer.Options{Node: "node-a", Key: []byte("another key, not the cluster's one")})
	old, _ := peer.New(peer.Options{Node: "node-a", Key: []byte(clusterKey), Now: func() time.Time { return time.Now().Add(-2 * time.Minute) }})
	for name, r := range map[string]struct {
		method, path, bearer string
		sign                 *peer.Auth
		to                   string
	}{
		"nothing":          {"POST", offerPath, "", nil, ""},
		"a user's token":   {"POST", offerPath, "tok-aud", nil, ""},
		"the admin token":  {"POST", offerPath, token, nil, ""},
		"another key":      {"POST", offerPath, "", wrongKey, "node-b"},
		"for another node": {"POST", offerPath, "", c.a.peers, "node-c"},
		"two minutes old":  {"POST", offerPath, "", old, "node-b"},
		"hang-up":          {"DELETE", offerPath + "/abc", "tok-s-a", nil, ""},
		"viewers":          {"GET", "/internal/v1/live/viewers", "tok-aud", nil, ""},
	} {
		if code := send(r.method, r.path, r.bearer, "v=0", r.sign, r.to); code != 401 {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	// A genuine request once, then replayed as it was.
	req, _ := http.NewRequest("POST", c.b.url+offerPath, strings.NewReader("v=0"))
	req.Header.Set("Content-Type", "application/sdp")
	c.a.peers.Sign(req, "node-b", []byte("v=0"), peer.Identity{User: "s-a", Role: "supervisor"})
	for i, want := range []int{400, 401} { // vouched: B's relay refuses the junk offer; then a replay
		again, _ := http.NewRequest("POST", req.URL.String(), strings.NewReader("v=0"))
		again.Header = req.Header.Clone()
		resp, err := http.DefaultClient.Do(again)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("delivery %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	// Vouched but with another body: the MAC covers it.
	tampered, _ := http.NewRequest("POST", c.b.url+offerPath, strings.NewReader("v=1"))
	c.a.peers.Sign(tampered, "node-b", []byte("v=0"), peer.Identity{User: "s-a", Role: "supervisor"})
	tampered.Header.Set("Content-Type", "application/sdp")
	if resp, err := http.DefaultClient.Do(tampered); err != nil || resp.StatusCode != 401 {
		t.Fatalf("tampered body: %v %v, want 401", resp.StatusCode, err)
	}
	if len(c.b.relay.Viewers()) != 0 {
		t.Fatal("an unvouched request started a session")
	}
}

// The viewing limits hold across the cluster: a user's sessions on both
// relays count together, and so do all sessions; a hang-up frees a place
// at once; slots are renewed (their TTL here is 400 ms); with the slots
// down, each node's own limits hold.
func TestClusterViewingLimits(t *testing.T) {
	c := newCluster(t, 3, 2)
	if _, err := c.dial(t, c.a, "cam-a", "s-a"); err != nil { // on B
		t.Fatal(err)
	}
	v2, err := c.dial(t, c.b, "cam-a2", "s-a") // on A
	if err != nil {
		t.Fatal(err)
	}
	// Each relay holds one of s-a's sessions, under its own limit of 2.
	if _, err := c.dial(t, c.a, "cam-a2", "s-a"); statusOf(err) != 429 || !strings.Contains(err.Error(), "across the cluster") {
		t.Fatalf("s-a's third session: %v, want 429 across the cluster", err)
	}
	if _, err := c.dial(t, c.b, "cam-a", "aud"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // past the slots' TTL: only renewal keeps them
	if _, err := c.dial(t, c.a, "cam-a", "aud"); statusOf(err) != 429 || !strings.Contains(err.Error(), "in all across the cluster") {
		t.Fatalf("a fourth session in all: %v, want 429 in all", err)
	}
	if err := v2.Close(); err != nil {
		t.Fatal(err)
	}
	v3, err := c.dial(t, c.a, "cam-a2", "s-a")
	if err != nil {
		t.Fatalf("after a hang-up, s-a's session: %v", err)
	}
	// Coordination down: A's own counters (s-a: 1 on A, 3 in all) decide.
	c.slots.setDown(true)
	if _, err := c.dial(t, c.a, "cam-a2", "s-a"); err != nil {
		t.Fatalf("with the slots down, a session A's own limits allow: %v", err)
	}
	if _, err := c.dial(t, c.a, "cam-a2", "s-a"); statusOf(err) != 429 {
		t.Fatalf("with the slots down, a session over A's own per-user limit: %v, want 429", err)
	}
	c.slots.setDown(false)
	v3.Close()
}

// waitFrames waits until v has received n frames.
func waitFrames(t *testing.T, v *whep.Viewer, n int) whep.Stats {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if st := v.Stats(); st.Frames >= n {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("only %+v within 15s", v.Stats())
	return whep.Stats{}
}
