package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/testsvc"
	"github.com/bodycam/bodycam/internal/whep"
	"github.com/bodycam/bodycam/outbox"
	"github.com/bodycam/bodycam/simulate"
)

// clusterNode is one `bodycam serve` of the cluster test, with what it
// takes to start it again on the same data directory and HTTP port.
type clusterNode struct {
	*server
	name string
	dir  string
	port int
	args []string
}

// simRecorder is a simulated recorder that publishes to its home node and,
// when that fails, to the next node, as a recorder behind a load balancer
// would reconnect.
type simRecorder struct {
	id, secret string
	home       int
}

// Three nodes as one bodycam, sharing one PostgreSQL database, one MinIO
// and one Redis of the test's own: 30 simulated recorders spread over the
// nodes; a duplicate publisher on another node is refused and the first is
// untouched; a pion WHEP client and the console in Chromium on node A watch
// a device that publishes on node C; kill -9 of node B mid-stream: its
// recordings become interrupted within 30 s and its devices publish again
// on A or C; B restarts and uploads its spool, completing its recordings
// with what it had; then Redis is stopped for 30 s: recording goes on, a new
// publisher is accepted, and nothing is lost; when Redis is back (empty),
// the leases come back. Node C then drains (SIGTERM): it turns new
// publishers and viewers away while its recorders go on, stores their
// recordings, exits, and they publish on A or B. A webhook receiver, down
// from B's kill to its restart, gets every event once (by id), signed and
// in order per device; the Redis stream carries them to a consumer group.
// At the end every recording verifies, every device
// chain is whole (no fork, no hole), no two recordings of a device overlap,
// and nothing B had received a second before it was killed is missing.
func TestCluster(t *testing.T) {
	m := sharedMinIO(t)
	db := testsvc.Postgres(t)
	rd, err := testsvc.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	shared := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	credKey := filepath.Join(shared, "credential.key")
	if err := os.WriteFile(credKey, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := []byte("a webhook secret for the cluster test")
	secretFile := filepath.Join(shared, "webhook.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	hook := newHookReceiver(t, secret)
	const admin = "a-cluster-admin-token-for-tests"
	nodes := make([]*clusterNode, 3)
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		port, _ := testsvc.FreePort()
		n := &clusterNode{name: name, dir: t.TempDir(), port: port}
		n.args = []string{"--node-id", name, "--advertise-url", "http://127.0.0.1:" + strconv.Itoa(port), "--redis-url", rd.URL,
			"--database-url", db, "--s3-endpoint", m.Endpoint, "--s3-access-key", m.AccessKey, "--s3-secret-key", m.SecretKey,
			"--s3-bucket", "cluster", "--admin-token", admin, "--credential-key", credKey, "--segment-duration", "1s",
			"--shutdown-delay", "3s", "--webhook-url", hook.srv.URL + "/events", "--webhook-secret-file", secretFile}
		n.server = startWith(t, launch{httpPort: port}, n.dir, n.args...)
		nodes[i] = n
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	cat, err := catalog.OpenPostgres(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()

	spec := simulate.DefaultClip
	spec.Width, spec.Height, spec.VideoBitrate, spec.BFrames = 640, 360, "800k", 0
	ctx, stopRecorders := context.WithCancel(context.Background())
	defer stopRecorders()
	clipPath, err := simulate.EnsureClip(ctx, filepath.Join(shared, "sim"), spec)
	if err != nil {
		t.Fatal(err)
	}
	clip, err := simulate.LoadClip(clipPath)
	if err != nil {
		t.Fatal(err)
	}
	recorders := make([]simRecorder, 30)
	for i := range recorders {
		id := fmt.Sprintf("cam-%02d", i)
		recorders[i] = simRecorder{id: id, secret: a.register(admin, id), home: i % 3}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopRecorders()
	publish := func(r simRecorder) {
		defer wg.Done()
		for k := 0; ctx.Err() == nil; k++ {
			n := nodes[(r.home+k)%3]
			url := fmt.Sprintf("rtsp://%s:%s@%s/%s", r.id, r.secret, n.arg("--rtsp-addr"), r.id)
			simulate.PublishClip(ctx, url, clip, true, 0)
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	for _, r := range recorders {
		wg.Add(1)
		go publish(r)
	}
	aud := a.roleToken(admin, "aud-cluster", "auditor")
	sup := a.roleToken(admin, "sup-cluster", "supervisor")

	// Every device live, ten on each node, listed by any node.
	where := waitLiveOn(t, c.server, admin, 30, 60*time.Second, func(map[string]liveItem) bool { return true })
	perNode := map[string]int{}
	for _, l := range where {
		perNode[l.NodeID]++
	}
	if perNode["node-a"] != 10 || perNode["node-b"] != 10 || perNode["node-c"] != 10 {
		t.Fatalf("publishers per node: %v", perNode)
	}
	var nodeList struct {
		Items []struct {
			ID         string `json:"id"`
			State      string `json:"state"`
			Publishers int    `json:"publishers"`
		} `json:"items"`
	}
	waitUntil(t, 20*time.Second, "every node up with its publishers in GET /api/v1/nodes", func() bool {
		_, body := b.call("GET", "/api/v1/nodes", admin, "")
		json.Unmarshal([]byte(body), &nodeList)
		up, pubs := 0, 0
		for _, n := range nodeList.Items {
			if n.State == "up" {
				up++
			}
			pubs += n.Publishers
		}
		return up == 3 && pubs == 30
	})

	// A second publisher of cam-00 (on node A) at node C is refused; the
	// first goes on with the same recording.
	first := where["cam-00"]
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = simulate.PublishClip(dctx, fmt.Sprintf("rtsp://cam-00:%s@%s/cam-00", recorders[0].secret, c.arg("--rtsp-addr")), clip, true, 0)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("a second publisher of cam-00 on node C: %v", err)
	}
	if now := waitLiveOn(t, a.server, admin, 30, 10*time.Second, func(map[string]liveItem) bool { return true }); now["cam-00"] != first {
		t.Fatalf("the first publisher was touched: %+v, was %+v", now["cam-00"], first)
	}

	// Watching through node A a device that publishes on node C.
	onC := ""
	for id, l := range where {
		if l.NodeID == "node-c" && (onC == "" || id < onC) {
			onC = id
		}
	}
	vctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	v, err := whep.Dial(vctx, a.whepURL(onC), whep.Options{Token: sup})
	cancel()
	if err != nil {
		t.Fatalf("WHEP on node A for %s on node C: %v", onC, err)
	}
	waitFrames(t, v, 30)
	v.Close()
	browserWatch(t, a.server, "sup-cluster", "a long enough test password of their own", onC)

	// kill -9 of node B mid-stream.
	onB := map[string]string{} // device -> its recording on B
	for id, l := range where {
		if l.NodeID == "node-b" {
			onB[id] = l.RecordingID
		}
	}
	hook.setDown(true) // and the webhook receiver is down until B is back
	killed := time.Now()
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
	waitUntil(t, 30*time.Second, "node B's recordings interrupted", func() bool {
		for _, rec := range onB {
			r, err := cat.Recording(context.Background(), rec)
			if err != nil || r.State != evidence.StateInterrupted {
				return false
			}
		}
		return true
	})
	t.Logf("node B's recordings interrupted %v after its kill", time.Since(killed).Round(100*time.Millisecond))
	waitLiveOn(t, a.server, admin, 30, 30*time.Second, func(now map[string]liveItem) bool {
		for id := range onB {
			if now[id].NodeID == "node-b" || now[id].NodeID == "" {
				return false
			}
		}
		return true
	})
	t.Logf("node B's devices publish again on A or C %v after its kill", time.Since(killed).Round(100*time.Millisecond))

	// B comes back with its spool: its recordings are completed and signed.
	b.server = startWith(t, launch{httpPort: b.port}, b.dir, b.args...)
	hook.setDown(false)
	waitUntil(t, 60*time.Second, "node B's recordings signed after its restart", func() bool {
		for _, rec := range onB {
			r, err := cat.Recording(context.Background(), rec)
			if err != nil || r.ManifestKey == "" {
				return false
			}
		}
		return true
	})
	for dev, rec := range onB {
		segs, err := cat.Segments(context.Background(), rec)
		if err != nil || len(segs) < 2 {
			t.Fatalf("%s's recording on B: %d segments, %v", dev, len(segs), err)
		}
		last := segs[len(segs)-1]
		if end := last.StartedAt.Add(last.Duration); end.Before(killed.Add(-time.Second)) {
			t.Errorf("%s: node B's recording ends at %v, more than 1 s before the kill at %v", dev, end, killed)
		}
	}

	// Redis stopped for 30 s: recording goes on and a new publisher is
	// accepted; every node says it is degraded.
	counts := func() int {
		n := 0
		for _, r := range recorders {
			recs, _ := cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: r.id})
			for _, rec := range recs {
				n += rec.SegmentCount
			}
		}
		return n
	}
	rd.Stop()
	stopped := time.Now()
	before := counts()
	for _, n := range nodes {
		waitUntil(t, 15*time.Second, n.name+" degraded", func() bool {
			_, body := n.call("GET", "/healthz", "", "")
			return strings.Contains(body, `"status": "degraded"`)
		})
	}
	late := simRecorder{id: "cam-late", secret: a.register(admin, "cam-late"), home: 2}
	wg.Add(1)
	go publish(late)
	waitUntil(t, 20*time.Second, "cam-late recording on node C while Redis is down", func() bool {
		recs, _ := cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: "cam-late"})
		return len(recs) == 1 && recs[0].State == evidence.StateLive && recs[0].SegmentCount > 2
	})
	time.Sleep(time.Until(stopped.Add(30 * time.Second)))
	if after := counts(); after < before+30*20 {
		t.Fatalf("segments stored while Redis was down: %d, then %d 30 s later", before, after)
	}
	if err := rd.Start(); err != nil {
		t.Fatal(err)
	}
	waitLiveOn(t, b.server, admin, 31, 30*time.Second, func(now map[string]liveItem) bool { return len(now) == 31 })
	for _, n := range nodes {
		waitUntil(t, 15*time.Second, n.name+" no longer degraded", func() bool {
			_, body := n.call("GET", "/healthz", "", "")
			return strings.Contains(body, `"status": "ok"`)
		})
	}

	// Node C drains (SIGTERM): /readyz fails and it is draining in the
	// node list at once; new publishers and viewers are turned away (503)
	// while its recorders go on; then it ends and stores their recordings,
	// exits, and they publish again on A or B.
	onC = ""
	onCNow := map[string]string{}
	for id, l := range waitLiveOn(t, a.server, admin, 31, 10*time.Second, func(map[string]liveItem) bool { return true }) {
		if l.NodeID == "node-c" {
			onCNow[id] = l.RecordingID
			onC = id
		}
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	waitUntil(t, 2*time.Second, "node C's /readyz answering draining", func() bool {
		code, body, _ := c.probe("/readyz")
		return code == 503 && strings.Contains(body, "draining")
	})
	dctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	err = simulate.PublishClip(dctx, fmt.Sprintf("rtsp://cam-late:%s@%s/cam-late", late.secret, c.arg("--rtsp-addr")), clip, true, 0)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a publisher at a draining node: %v", err)
	}
	if code, body := c.call("POST", "/api/v1/live/"+onC+"/whep", sup, "v=0"); code != 503 {
		t.Fatalf("a viewer at a draining node: %d %s", code, body)
	}
	if _, body := a.call("GET", "/api/v1/nodes", admin, ""); !strings.Contains(body, `"state": "draining"`) {
		t.Fatalf("node C is not draining in the node list: %s", body)
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("node C's exit after SIGTERM: %v\n%s", err, c.log)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("node C did not stop within 40 s of SIGTERM\n%s", c.log)
	}
	for dev, rec := range onCNow {
		if r, err := cat.Recording(context.Background(), rec); err != nil || r.ManifestKey == "" || r.State != evidence.StateComplete {
			t.Errorf("%s's recording %s on node C after its drain: %+v %v\nnode C's log of it:\n%s", dev, rec, r, err, grepLines(c.log.String(), rec)+grepLines(c.log.String(), "stopping")+grepLines(c.log.String(), "level=ERROR"))
		}
	}
	waitLiveOn(t, a.server, admin, 31, 20*time.Second, func(now map[string]liveItem) bool {
		for id := range onCNow {
			if now[id].NodeID != "node-a" && now[id].NodeID != "node-b" {
				return false
			}
		}
		return true
	})

	// The end: every recording stored, signed and verified; every chain whole.
	stopRecorders()
	wg.Wait()
	devices := append([]simRecorder{late}, recorders...)
	waitUntil(t, 90*time.Second, "every recording stored with its manifest", func() bool {
		for _, r := range devices {
			recs, err := cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: r.id})
			if err != nil {
				return false
			}
			for _, rec := range recs {
				if rec.State == evidence.StateLive || rec.ManifestKey == "" {
					return false
				}
			}
		}
		return true
	})
	verified := 0
	for i, r := range devices {
		recs, _ := cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: r.id})
		sort.Slice(recs, func(i, j int) bool { return recs[i].StartedAt.Before(recs[j].StartedAt) })
		var prevEnd time.Time
		for _, rec := range recs {
			n := nodes[i%2] // A or B (C has gone)
			code, body := n.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, "")
			if code != 200 || !strings.Contains(body, `"ok": true`) {
				t.Errorf("verify %s (%s, %s) on %s: %d %s", rec.ID, r.id, rec.NodeID, n.name, code, body)
			}
			verified++
			segs, _ := cat.Segments(context.Background(), rec.ID)
			if len(segs) > 0 && segs[0].StartedAt.Before(prevEnd.Add(-500*time.Millisecond)) {
				t.Errorf("%s: recording %s begins at %v, before the previous one ends at %v (a fork)", r.id, rec.ID, segs[0].StartedAt, prevEnd)
			}
			if len(segs) > 0 {
				last := segs[len(segs)-1]
				prevEnd = last.StartedAt.Add(last.Duration)
			}
		}
		links, err := cat.ChainLinks(context.Background(), r.id, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		prev := evidence.GenesisHash
		for k, l := range links {
			if l.ChainSeq != int64(k+1) || l.PrevChainHash != prev || evidence.ChainHash(l.Link()) != l.ChainHash {
				t.Fatalf("%s: chain broken at link %d: %+v", r.id, k+1, l)
			}
			prev = l.ChainHash
		}
	}
	t.Logf("%d recordings of %d devices verified", verified, len(devices))

	// The webhook got every event once after de-duplication by id, in order
	// per device, signed; every stored segment and closed recording is
	// among them.
	waitUntil(t, 60*time.Second, "every device's segments and closings at the webhook", func() bool {
		for _, r := range devices {
			recs, _ := cat.Recordings(context.Background(), catalog.RecordingFilter{DeviceID: r.id})
			segs := 0
			for _, rec := range recs {
				segs += rec.SegmentCount
			}
			if hook.count(r.id, "segment.stored") != segs || hook.count(r.id, "recording.closed") != len(recs) {
				return false
			}
		}
		return true
	})
	hook.check(t)
	// The Redis stream "events" (restarted empty in the outage) carries
	// what was relayed since, for consumer groups.
	co, err := coord.OpenRedis(context.Background(), rd.URL, coord.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := co.ReadGroup(context.Background(), "events", "cluster-test", "reader-1", 100, time.Second)
	co.Close()
	if err != nil || len(msgs) == 0 || msgs[0].ID == "" || !json.Valid(msgs[0].Payload) {
		t.Fatalf("the Redis stream events: %d messages, %v", len(msgs), err)
	}
	a.stop()
	b.stop()
}

// liveItem is one publisher as GET /api/v1/live lists it.
type liveItem struct {
	RecordingID string `json:"recording_id"`
	NodeID      string `json:"node_id"`
}

// waitLiveOn waits until s lists at least n publishers and ok accepts
// them, and returns them by device.
func waitLiveOn(t *testing.T, s *server, token string, n int, within time.Duration, ok func(map[string]liveItem) bool) map[string]liveItem {
	t.Helper()
	var now map[string]liveItem
	var body string
	for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
		var list struct {
			Items []struct {
				DeviceID string `json:"device_id"`
				liveItem
			} `json:"items"`
			Partial bool `json:"partial"`
		}
		_, body = s.call("GET", "/api/v1/live", token, "")
		json.Unmarshal([]byte(body), &list)
		now = map[string]liveItem{}
		for _, l := range list.Items {
			now[l.DeviceID] = l.liveItem
		}
		if !list.Partial && len(now) >= n && ok(now) {
			return now
		}
		if time.Now().After(deadline) {
			t.Fatalf("live list not as wanted within %v: %s", within, body)
		}
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// browserWatch runs test/browser/cluster-live.mjs: the console on s in
// Chromium, signed in as user, watches device.
func browserWatch(t *testing.T, s *server, user, password, device string) {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir := filepath.Join(root, "test", "browser")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("this test needs Node.js (apt-get install nodejs npm), then: npm ci --prefix test/browser")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("this test needs its npm packages: run `npm ci --prefix test/browser` in %s (%v)", root, err)
	}
	chromium := os.Getenv("BODYCAM_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "cluster-live.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BODYCAM_URL="+s.url, "BODYCAM_USER="+user, "BODYCAM_PASSWORD="+password, "BODYCAM_DEVICE="+device, "BODYCAM_CHROMIUM="+chromium)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Chromium on node A watching %s: %v\n%s", device, err, out)
	}
	t.Logf("Chromium:\n%s", out)
}

// hookReceiver is a webhook receiver that checks each delivery's signature
// and keeps each event once (by id), in the order it first came, and can
// be down (503).
type hookReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret []byte
	mu     sync.Mutex
	down   bool
	seen   map[string]bool
	dups   int
	bad    []string
	order  map[string][]int64 // order key -> seqs, as first received
	kinds  map[string]int     // device + " " + kind -> events
}

func newHookReceiver(t *testing.T, secret []byte) *hookReceiver {
	h := &hookReceiver{t: t, secret: secret, seen: map[string]bool{}, order: map[string][]int64{}, kinds: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := outbox.Verify(h.secret, r.Header.Get("X-Bodycam-Signature"), r.Header.Get("X-Bodycam-Timestamp"), body, time.Now(), 5*time.Minute); err != nil {
		h.bad = append(h.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e struct {
		ID     string `json:"id"`
		Seq    int64  `json:"seq"`
		Kind   string `json:"kind"`
		Device string `json:"device"`
		Case   string `json:"case"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.ID == "" || e.ID != r.Header.Get("X-Bodycam-Event-Id") {
		h.bad = append(h.bad, "bad event: "+string(body))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if h.seen[e.ID] {
		h.dups++
		w.WriteHeader(http.StatusOK)
		return
	}
	h.seen[e.ID] = true
	key := e.Device
	if key == "" {
		key = "case " + e.Case
	}
	h.order[key] = append(h.order[key], e.Seq)
	h.kinds[e.Device+" "+e.Kind]++
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) setDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
}

func (h *hookReceiver) count(device, kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.kinds[device+" "+kind]
}

// check: every signature good, and each device's events in order.
func (h *hookReceiver) check(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bad) > 0 {
		t.Fatalf("webhook deliveries refused: %v", h.bad)
	}
	for key, seqs := range h.order {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("webhook events of %s out of order: %v", key, seqs)
			}
		}
	}
	t.Logf("webhook: %d events, %d duplicate deliveries ignored", len(h.seen), h.dups)
}

// A second `bodycam serve` under a node id a running node has (two hosts
// whose names differ only after the first dot take the same default) does
// not start: as it would, its first heartbeat dropped the running node's
// device leases, its start ended that node's open viewing sessions, and
// its stop marked that node down for the reaper. The running node goes on.
func TestNodeIDInUse(t *testing.T) {
	rd, err := testsvc.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	port, _ := testsvc.FreePort()
	first := startWith(t, launch{httpPort: port}, t.TempDir(), "--node-id", "twin", "--redis-url", rd.URL,
		"--advertise-url", "http://127.0.0.1:"+strconv.Itoa(port))
	code, stderr := runOnce(t, "serve", "--data-dir", t.TempDir(), "--node-id", "twin", "--redis-url", rd.URL,
		"--http-addr", "127.0.0.1:0", "--advertise-url", "http://127.0.0.1:1", "--rtsp-addr", "127.0.0.1:0", "--rtsp-udp-addr", "",
		"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0", "--log-level", "warn")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || !strings.Contains(lines[len(lines)-1], "node-id") || !strings.Contains(lines[len(lines)-1], `"twin"`) {
		t.Fatalf("second node as twin: exit %d\n%s\nwant exit 1 naming node-id", code, stderr)
	}
	if c, body := first.call("GET", "/api/v1/nodes", first.token(), ""); c != 200 || !strings.Contains(body, `"state": "up"`) ||
		!strings.Contains(body, "http://127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("nodes after the refused start: %d %s", c, body)
	}
	first.stop()
}
