package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/peer"
	"github.com/bodycam/bodycam/live"
)

// Live views through any node of a cluster. A viewer's WHEP offer on node
// A for a device that node B records is checked on A (sign-in, role,
// access: the same answers as for a device of A's own), then forwarded to
// B's advertise URL at an internal endpoint, with the user's identity
// vouched for by A (package peer). B's relay answers with its own ICE
// candidates, so the media flows between the viewer and B; B records the
// viewing for audit as for its own viewers. The session's URL stays on A,
// with B's id in it (<session>@<node>), and A forwards the hang-up the same
// way. Only signalling passes through A.

// Directory tells which node records a device and how to reach each node
// (coord.Local, coord.Redis).
type Directory interface {
	// Device is the device's lease; coord.ErrNotHeld when nobody records it.
	Device(ctx context.Context, id string) (coord.DeviceLease, error)
	// Nodes lists the nodes seen lately, with their state and advertise URL.
	Nodes(ctx context.Context) ([]coord.NodeInfo, error)
}

// peerTimeout bounds a request to another node, and the whole offer.
const peerTimeout = 10 * time.Second

// Internal endpoints: for other nodes only, each request vouched for by one
// (package peer); anything else gets 401. Not part of the API description.
const (
	internalOffer   = "POST /internal/v1/live/{device}/whep"
	internalHangup  = "DELETE /internal/v1/live/{device}/whep/{session}"
	internalViewers = "GET /internal/v1/live/viewers"
)

// clustered: live views may go through other nodes.
func (s *Server) clustered() bool { return s.o.Directory != nil && s.o.Peers != nil }

// nodeID is this node's id ("" on its own).
func (s *Server) nodeID() string {
	if s.o.Peers == nil {
		return ""
	}
	return s.o.Peers.Node()
}

func (s *Server) peerClient() *http.Client {
	if s.o.PeerClient != nil {
		return s.o.PeerClient
	}
	return defaultPeerClient
}

var defaultPeerClient = &http.Client{
	Timeout: peerTimeout,
	// A vouched request goes where it was signed for, or nowhere.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// identity is who made r, as this node vouches for them to another.
func identity(r *http.Request) peer.Identity {
	p := principalOf(r)
	return peer.Identity{User: p.ID, Role: string(p.Role), Remote: r.RemoteAddr, UserAgent: r.UserAgent()}
}

// where is the node that records a device: node.ID "" for this one (or
// none: the local relay then answers "not live"); unsure when that could
// not be learnt; err when it is another node this one cannot reach.
type where struct {
	node   coord.NodeInfo
	unsure bool
	err    string
}

func (s *Server) publisherNode(ctx context.Context, device string) where {
	if !s.clustered() {
		return where{}
	}
	lease, err := s.o.Directory.Device(ctx, device)
	switch {
	case errors.Is(err, coord.ErrNotHeld):
		return where{}
	case err != nil:
		s.o.Log.Warn("live: which node records the device is unknown (coordination does not answer); trying this node", "device", device, "err", err)
		return where{unsure: true}
	case lease.Node == s.nodeID():
		return where{}
	}
	node, err := s.peerNode(ctx, lease.Node)
	if err != nil {
		s.o.Log.Warn("live: the device's node cannot be reached", "device", device, "node", lease.Node, "err", err)
		return where{err: "device " + device + " is live on node " + lease.Node + ", which this node cannot reach: " + err.Error()}
	}
	return where{node: node}
}

// peerNode finds another node's address.
func (s *Server) peerNode(ctx context.Context, id string) (coord.NodeInfo, error) {
	nodes, err := s.o.Directory.Nodes(ctx)
	if err != nil {
		return coord.NodeInfo{}, fmt.Errorf("the list of nodes cannot be read now (%v)", err)
	}
	for _, n := range nodes {
		if n.ID != id {
			continue
		}
		if n.AdvertiseURL == "" {
			return n, errors.New("it advertises no URL (--advertise-url)")
		}
		return n, nil
	}
	return coord.NodeInfo{}, errNoNode
}

var errNoNode = errors.New("no such node")

// forward sends a vouched request to node and returns its answer's status,
// headers and body (at most limit bytes).
func (s *Server) forward(ctx context.Context, r *http.Request, node coord.NodeInfo, method, p string, body []byte, limit int64) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(node.AdvertiseURL, "/")+p, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/sdp")
	}
	s.o.Peers.Sign(req, node.ID, body, identity(r))
	resp, err := s.peerClient().Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// forwardOffer hands a viewer's offer to the node that records the device
// and gives the viewer its answer, with a session URL on this node.
func (s *Server) forwardOffer(ctx context.Context, w http.ResponseWriter, r *http.Request, node coord.NodeInfo, device string, body []byte) {
	code, h, answer, err := s.forward(ctx, r, node, "POST", "/internal/v1/live/"+url.PathEscape(device)+"/whep", body, 4*maxSDP)
	if err != nil {
		s.peerFailed(w, "offer", node.ID, "device "+device+" is live on node "+node.ID+", which does not answer", err)
		return
	}
	if code != http.StatusCreated {
		s.peerRefused(w, "offer", node.ID, code, h, answer, notLiveMsg(device))
		return
	}
	id := path.Base(h.Get("Location"))
	if h.Get("Location") == "" || id == "." || id == "/" || strings.Contains(id, "@") {
		s.peerFailed(w, "offer", node.ID, "node "+node.ID+" answered the offer without a session", errors.New("no Location"))
		return
	}
	s.metrics.peer.WithLabelValues("offer", "ok").Inc()
	w.Header().Set("Location", "/api/v1/live/"+device+"/whep/"+id+"@"+node.ID)
	w.Header().Set("Content-Type", "application/sdp")
	for _, k := range []string{"X-Bodycam-Recording", "X-Bodycam-Video", "X-Bodycam-Audio"} {
		w.Header().Set(k, h.Get(k))
	}
	w.WriteHeader(http.StatusCreated)
	w.Write(answer)
}

// forwardDelete hangs up a session of another node there.
func (s *Server) forwardDelete(w http.ResponseWriter, r *http.Request, nodeID, device, session string) {
	ctx, cancel := context.WithTimeout(r.Context(), peerTimeout)
	defer cancel()
	node, err := s.peerNode(ctx, nodeID)
	if errors.Is(err, errNoNode) {
		writeError(w, http.StatusNotFound, "no such viewing session")
		return
	}
	if err != nil {
		s.peerFailed(w, "hangup", nodeID, "the session is on node "+nodeID+", which this node cannot reach", err)
		return
	}
	code, h, body, err := s.forward(ctx, r, node, "DELETE", "/internal/v1/live/"+url.PathEscape(device)+"/whep/"+url.PathEscape(session), nil, maxBody)
	if err != nil {
		s.peerFailed(w, "hangup", nodeID, "the session is on node "+nodeID+", which does not answer", err)
		return
	}
	if code != http.StatusOK {
		s.peerRefused(w, "hangup", nodeID, code, h, body, "no such viewing session")
		return
	}
	s.metrics.peer.WithLabelValues("hangup", "ok").Inc()
	w.WriteHeader(http.StatusOK)
}

// peerViewers asks every other node that is up for its viewers, at once.
func (s *Server) peerViewers(r *http.Request) ([]viewerJSON, []string) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	nodes, err := s.o.Directory.Nodes(ctx)
	if err != nil {
		s.o.Log.Warn("live: the list of nodes cannot be read; listing this node's viewers only", "err", err)
		return nil, []string{"*"}
	}
	var (
		mu          sync.Mutex
		wg          sync.WaitGroup
		items       []viewerJSON
		unreachable = []string{}
	)
	for _, n := range nodes {
		if n.ID == s.nodeID() || n.State == coord.NodeDown {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var list struct {
				Items []viewerJSON `json:"items"`
			}
			code, _, body, err := s.forward(ctx, r, n, "GET", "/internal/v1/live/viewers", nil, 16<<20)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("HTTP %d: %s", code, strings.TrimSpace(string(body)))
			}
			if err == nil {
				err = json.Unmarshal(body, &list)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil || n.AdvertiseURL == "" {
				s.metrics.peer.WithLabelValues("viewers", "unreachable").Inc()
				s.o.Log.Warn("live: a node's viewers cannot be listed", "node", n.ID, "err", err)
				unreachable = append(unreachable, n.ID)
				return
			}
			s.metrics.peer.WithLabelValues("viewers", "ok").Inc()
			for _, v := range list.Items {
				v.ID, v.NodeID = v.ID+"@"+n.ID, n.ID
				items = append(items, v)
			}
		}()
	}
	wg.Wait()
	return items, unreachable
}

// peerFailed answers 503 for a node that could not be asked. Why goes to
// the log only: it holds the node's internal address.
func (s *Server) peerFailed(w http.ResponseWriter, op, node, msg string, err error) {
	s.metrics.peer.WithLabelValues(op, "unreachable").Inc()
	s.o.Log.Warn("live: a request to another node failed", "op", op, "node", node, "err", err)
	writeError(w, http.StatusServiceUnavailable, msg+" now; try again")
}

// peerRefused gives the viewer another node's refusal as this node would
// have answered it. A node that refuses this node's word (401, 403) has
// another credential key or a clock too far apart: the viewer's own
// credentials are fine, so that is this system's fault, 503.
func (s *Server) peerRefused(w http.ResponseWriter, op, node string, code int, h http.Header, body []byte, notFound string) {
	var e errorJSON
	json.Unmarshal(body, &e)
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		s.metrics.peer.WithLabelValues(op, "unvouched").Inc()
		s.o.Log.Error("live: another node refuses this node's requests: do the nodes share --credential-key, and are their clocks within 60 s?",
			"node", node, "code", code, "why", e.Error)
		writeError(w, http.StatusServiceUnavailable, "node "+node+" refuses this node's requests (the nodes' credential keys or clocks differ); tell an administrator")
		return
	case code == http.StatusNotFound:
		e.Error = notFound // the very answer this node gives
	case e.Error == "":
		e.Error = fmt.Sprintf("node %s answered HTTP %d", node, code)
	}
	s.metrics.peer.WithLabelValues(op, "refused").Inc()
	if ra := h.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	writeError(w, code, e.Error)
}

// vouched checks that r comes from another node on a user's behalf, or
// answers 401. Reading the body is part of the check (the MAC covers it).
func (s *Server) vouched(w http.ResponseWriter, r *http.Request, limit int64) (peer.Identity, []byte, bool) {
	if s.o.Peers == nil {
		s.deny(w, r, http.StatusUnauthorized, "", "internal endpoint: this node takes no requests from other nodes")
		return peer.Identity{}, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		s.deny(w, r, http.StatusUnauthorized, "", "internal endpoint: body too large")
		return peer.Identity{}, nil, false
	}
	id, from, err := s.o.Peers.Verify(r, body)
	if err != nil {
		s.deny(w, r, http.StatusUnauthorized, "", "internal endpoint: "+err.Error())
		return peer.Identity{}, nil, false
	}
	s.o.Log.Debug("vouched request", "from", from, "user", id.User, "method", r.Method, "path", r.URL.Path)
	return id, body, true
}

// internalOffer runs an offer another node vouches for on this node's
// relay, which records the viewing as for a viewer of its own.
func (s *Server) internalOffer(w http.ResponseWriter, r *http.Request) {
	id, body, ok := s.vouched(w, r, maxSDP)
	if !ok {
		return
	}
	if s.o.Relay == nil {
		writeError(w, http.StatusServiceUnavailable, "live viewing is not enabled on this server")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), peerTimeout)
	defer cancel()
	s.offer(ctx, w, live.OfferRequest{Device: r.PathValue("device"), User: id.User, Remote: id.Remote,
		UserAgent: id.UserAgent, SDP: string(body)}, false)
}

// internalHangup ends a session of this node for another node's user.
func (s *Server) internalHangup(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.vouched(w, r, maxBody)
	if !ok {
		return
	}
	if s.o.Relay == nil || s.o.Relay.Hangup(r.PathValue("device"), r.PathValue("session"), id.User, id.Role == string(evidence.RoleAdmin)) != nil {
		writeError(w, http.StatusNotFound, "no such viewing session")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// internalViewers lists this node's viewers for another node, which scopes
// them to its user.
func (s *Server) internalViewers(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.vouched(w, r, maxBody); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": s.localViewers()})
}

func newPeerMetric(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bodycam_live_peer_requests_total",
		Help: "Live viewing requests this node made to other nodes (offer, hangup, viewers) by result: ok, refused (the node's answer, passed on), unreachable, unvouched (the node refused this node's word: credential keys or clocks differ).",
	}, []string{"op", "result"})
	for _, op := range []string{"offer", "hangup", "viewers"} {
		for _, res := range []string{"ok", "refused", "unreachable", "unvouched"} {
			c.WithLabelValues(op, res)
		}
	}
	reg.MustRegister(c)
	return c
}
