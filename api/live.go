package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/live"
)

// Relay is the live relay as the API drives it (WHEP).
type Relay interface {
	Offer(ctx context.Context, req live.OfferRequest) (live.Session, error)
	Hangup(device, id, user string, admin bool) error
	Viewers() []live.ViewerInfo
}

// LiveViews lists recorded viewing sessions (the catalog).
type LiveViews interface {
	LiveViews(ctx context.Context, f catalog.LiveViewFilter) ([]evidence.LiveView, error)
}

const maxSDP = 64 << 10

// whepOffer takes a viewer's SDP offer and answers it (WHEP, RFC 9725):
// 201 with the answer and the session's URL to DELETE when done. A device
// that publishes on another node of the cluster is watched through it: the
// offer goes on to that node (forwardOffer), and the media flows between
// the viewer and that node.
func (s *Server) whepOffer(w http.ResponseWriter, r *http.Request) {
	device := r.PathValue("device")
	notLive := notLiveMsg(device)
	d, err := s.o.Catalog.Device(r.Context(), device)
	if errors.Is(err, catalog.ErrNotFound) {
		s.conceal(w, r, notLive, "no device "+device)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if !s.mayRead(r, d.OfficerID) {
		s.conceal(w, r, notLive, "device "+device+" is not footage this user may watch")
		return
	}
	if s.o.Relay == nil && !s.clustered() {
		writeError(w, http.StatusServiceUnavailable, "live viewing is not enabled on this server")
		return
	}
	if s.draining.Load() {
		// New viewers go to another node (the load balancer's /readyz
		// already fails); those watching go on until the node stops.
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, "this node is draining before it stops; ask again (another node answers)")
		return
	}
	body, ok := readOffer(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), peerTimeout)
	defer cancel()
	at := s.publisherNode(ctx, device)
	switch {
	case at.err != "":
		writeError(w, http.StatusServiceUnavailable, at.err)
		return
	case at.node.ID != "":
		s.forwardOffer(ctx, w, r, at.node, device, body)
		return
	case s.o.Relay == nil:
		writeError(w, http.StatusServiceUnavailable, "live viewing is not enabled on this server")
		return
	}
	s.offer(ctx, w, live.OfferRequest{Device: device, User: userOf(r), Remote: r.RemoteAddr,
		UserAgent: r.UserAgent(), SDP: string(body)}, at.unsure)
}

func notLiveMsg(device string) string {
	return "device " + device + " is not live (unknown, or not publishing now)"
}

// readOffer reads a WHEP offer's body, answering 415 or 413 when it is not
// one.
func readOffer(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/sdp" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/sdp (a WHEP offer)")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSDP))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "SDP offer larger than 64 KiB")
		return nil, false
	}
	return body, true
}

// offer runs an offer on this node's relay and answers it, for a viewer
// here or one another node vouches for. unsure: this node could not learn
// where the device publishes, so "not live here" is no answer.
func (s *Server) offer(ctx context.Context, w http.ResponseWriter, req live.OfferRequest, unsure bool) {
	sess, err := s.o.Relay.Offer(ctx, req)
	switch {
	case errors.Is(err, live.ErrNotLive) && unsure:
		writeError(w, http.StatusServiceUnavailable, "device "+req.Device+" is not live on this node, and which node records it cannot be learnt now (cluster coordination does not answer); try again")
		return
	case errors.Is(err, live.ErrNotLive):
		writeError(w, http.StatusNotFound, notLiveMsg(req.Device))
		return
	case errors.Is(err, live.ErrLimit):
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, err.Error())
		return
	case errors.Is(err, live.ErrBadOffer), errors.Is(err, live.ErrNoMedia):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, live.ErrAudit):
		writeError(w, http.StatusServiceUnavailable, "live viewing is refused while it cannot be recorded for audit")
		return
	case err != nil:
		s.o.Log.Error("live: offer failed", "device", req.Device, "err", err)
		writeError(w, http.StatusInternalServerError, "live: "+err.Error())
		return
	}
	w.Header().Set("Location", "/api/v1/live/"+req.Device+"/whep/"+sess.ID)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("X-Bodycam-Recording", sess.RecordingID)
	none := func(v string) string {
		if v == "" {
			return "none"
		}
		return v
	}
	w.Header().Set("X-Bodycam-Video", none(sess.Video))
	w.Header().Set("X-Bodycam-Audio", none(sess.Audio))
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, sess.Answer)
}

// whepDelete ends a viewing session. A session on another node (its id
// ends in "@<node>") is ended there (forwardDelete).
func (s *Server) whepDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("session")
	if sid, node, ok := strings.Cut(id, "@"); ok && s.clustered() {
		if node != s.o.Peers.Node() {
			s.forwardDelete(w, r, node, r.PathValue("device"), sid)
			return
		}
		id = sid
	}
	if s.o.Relay == nil {
		writeError(w, http.StatusNotFound, "no such viewing session")
		return
	}
	if err := s.o.Relay.Hangup(r.PathValue("device"), id, userOf(r), isAdmin(r)); err != nil {
		writeError(w, http.StatusNotFound, "no such viewing session")
		return
	}
	w.WriteHeader(http.StatusOK)
}

type liveViewJSON struct {
	ID          string     `json:"id"`
	DeviceID    string     `json:"device_id"`
	RecordingID string     `json:"recording_id"`
	User        string     `json:"user"`
	RemoteAddr  string     `json:"remote_addr"`
	UserAgent   string     `json:"user_agent"`
	Video       string     `json:"video"`
	Audio       string     `json:"audio"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at"`
	EndReason   string     `json:"end_reason"`
}

// listLiveViews is the audit of live viewing: who watched what, when, from
// where; a supervisor of a unit sees their unit's devices' viewings.
func (s *Server) listLiveViews(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := catalog.LiveViewFilter{DeviceID: q.Get("device"), User: q.Get("user")}
	var err error
	if f.From, f.To, err = parseWindow(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	views, err := s.o.Catalog.LiveViews(r.Context(), f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]liveViewJSON, 0, len(views))
	visible := s.deviceScope(r)
	for _, v := range views {
		if !visible(v.DeviceID) {
			continue
		}
		items = append(items, liveViewJSON{ID: v.ID, DeviceID: v.DeviceID, RecordingID: v.RecordingID, User: v.User,
			RemoteAddr: v.RemoteAddr, UserAgent: v.UserAgent, Video: v.Video, Audio: v.Audio, StartedAt: v.StartedAt,
			EndedAt: timePtr(v.EndedAt), EndReason: v.EndReason})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

type viewerJSON struct {
	ID        string    `json:"id"`
	NodeID    string    `json:"node_id"`
	DeviceID  string    `json:"device_id"`
	User      string    `json:"user"`
	Remote    string    `json:"remote_addr"`
	Video     string    `json:"video"`
	Audio     string    `json:"audio"`
	StartedAt time.Time `json:"started_at"`
	Connected bool      `json:"connected"`
	Dropped   uint64    `json:"dropped_units"`
}

// localViewers lists this node's viewing sessions.
func (s *Server) localViewers() []viewerJSON {
	items := []viewerJSON{}
	if s.o.Relay == nil {
		return items
	}
	for _, v := range s.o.Relay.Viewers() {
		items = append(items, viewerJSON{ID: v.ID, NodeID: s.nodeID(), DeviceID: v.Device, User: v.User, Remote: v.Remote,
			Video: v.Video, Audio: v.Audio, StartedAt: v.Started, Connected: v.Connected, Dropped: v.Dropped})
	}
	return items
}

// listViewers lists the live viewing sessions in progress on every node (a
// supervisor of a unit: of their unit's devices). Nodes that do not answer
// are named in unreachable_nodes.
func (s *Server) listViewers(w http.ResponseWriter, r *http.Request) {
	all, unreachable := s.localViewers(), []string{}
	if s.clustered() {
		var more []viewerJSON
		more, unreachable = s.peerViewers(r)
		all = append(all, more...)
	}
	items := []viewerJSON{}
	visible := s.deviceScope(r)
	for _, v := range all {
		if visible(v.DeviceID) {
			items = append(items, v)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "unreachable_nodes": unreachable})
}
