package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/derive"
	"github.com/bodycam/bodycam/evidence"
)

// proxy: GET /api/v1/recordings/{id}/media?rendition=proxy, the recording's
// readers: its newest review proxy (derive.KindProxy), Range requests
// served, a viewing in the custody ledger as /media's are. The first ask
// of a stored recording queues its making (one job, whoever asks again):
// 404 with Retry-After until it is made, saying how its job stands.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, rec evidence.Recording) {
	if !s.jobsReady(w) {
		return
	}
	if !rec.DeletedAt.IsZero() {
		writeError(w, http.StatusGone, "the media of recording "+rec.ID+" was deleted by retention on "+rec.DeletedAt.Format(time.RFC3339))
		return
	}
	list, err := s.o.Jobs.Derived(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d := newestDerived(list, derive.KindProxy)
	if d == nil {
		msg := "no review proxy of this recording yet"
		if rec.State != evidence.StateLive && rec.ManifestKey != "" {
			params, _ := json.Marshal(derive.DefaultProxy)
			if j, _, err := s.o.Jobs.Enqueue(r.Context(), catalog.JobRequest{Kind: derive.KindProxy, Source: rec.ID, Params: params,
				RequestedBy: userOf(r)}, time.Now()); err == nil {
				msg = fmt.Sprintf("the review proxy is being made (job %s, %s", j.ID, j.State)
				if j.Error != "" {
					msg += ": " + j.Error
				}
				msg += ")"
				w.Header().Set("Retry-After", "15")
			} else {
				s.o.Log.Warn("review proxy not queued", "recording", rec.ID, "err", err)
			}
		}
		writeError(w, http.StatusNotFound, msg+"; the original plays without rendition")
		return
	}
	s.serveDerivedVideo(w, r, rec, *d, rec.ID+"-proxy.mp4", "review proxy")
}

// serveDerivedVideo serves a derived video of rec (a proxy, a clip) as
// /media serves the original.
func (s *Server) serveDerivedVideo(w http.ResponseWriter, r *http.Request, rec evidence.Recording, d catalog.Derived, name, what string) {
	s.serveMedia(w, r, rec, []evidence.Segment{{Key: d.Key, Size: d.Size}}, name, d.Key,
		func(action string) string {
			return fmt.Sprintf("%s %s: %s (sha256 %s), derived by job %s", what, action, d.Key, d.SHA256, d.JobID)
		}, d.CreatedAt)
}

// askedJSON is a copy asked for (a clip, a redacted copy) as the API lists
// it: its job, and the copy once made.
type askedJSON struct {
	JobID       string             `json:"job_id"`
	State       string             `json:"state"`
	Params      json.RawMessage    `json:"params"`
	Error       string             `json:"error,omitempty"`
	RequestedBy string             `json:"requested_by"`
	CreatedAt   time.Time          `json:"created_at"`
	Made        *derivedObjectJSON `json:"made,omitempty"`
}

// asked says what one kind of copy asked for is called in the API.
type asked struct {
	kind string // the job's and the derived object's
	path string // under /api/v1/recordings/{id}/
	noun string // in custody details and errors
}

var (
	askedClips      = asked{kind: derive.KindClip, path: "clips", noun: "clip"}
	askedRedactions = asked{kind: derive.KindRedaction, path: "redactions", noun: "redacted copy"}
)

// derivedObjectJSON is a derived object made, and where it plays.
type derivedObjectJSON struct {
	Key           string `json:"key"`
	SHA256        string `json:"sha256"`
	Size          int64  `json:"size"`
	ProvenanceKey string `json:"provenance_key"`
	URL           string `json:"url"`
}

// listAsked: GET /api/v1/recordings/{id}/clips (or /redactions), the
// recording's readers: every one asked for, newest first, with its job's
// state and, once made, the copy.
func (s *Server) listAsked(a asked) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.listAskedOf(w, r, a) }
}

func (s *Server) listAskedOf(w http.ResponseWriter, r *http.Request, a asked) {
	if !s.jobsReady(w) {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	list, err := s.o.Jobs.Jobs(r.Context(), catalog.JobFilter{Kind: a.kind, Source: rec.ID, Limit: 1000})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	derived, err := s.o.Jobs.Derived(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]askedJSON, 0, len(list))
	for _, j := range list {
		items = append(items, toAskedJSON(a, rec, j, derived))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func toAskedJSON(a asked, rec evidence.Recording, j catalog.Job, derived []catalog.Derived) askedJSON {
	c := askedJSON{JobID: j.ID, State: string(j.State), Params: j.Params, Error: j.Error, RequestedBy: j.RequestedBy, CreatedAt: j.CreatedAt}
	for _, d := range derived {
		if d.JobID == j.ID && d.Kind == a.kind {
			c.Made = &derivedObjectJSON{Key: d.Key, SHA256: d.SHA256, Size: d.Size, ProvenanceKey: d.ProvenanceKey,
				URL: "/api/v1/recordings/" + rec.ID + "/" + a.path + "/" + j.ID}
		}
	}
	return c
}

// createClip: POST /api/v1/recordings/{id}/clips, an officer or a
// supervisor who may read the recording: {"from_seconds", "to_seconds"}
// in media time (what /media's player shows), and optionally "width" and
// "video_kbps". The request is in the custody ledger before its job is
// queued; the same window again is the same clip (200 with its job,
// instead of 202).
func (s *Server) createClip(w http.ResponseWriter, r *http.Request) {
	var p derive.ClipParams
	rec, ok := s.readAsk(w, r, &p)
	if !ok {
		return
	}
	s.askFor(w, r, rec, askedClips, p, fmt.Sprintf("%.3f s to %.3f s of the recording's media time", p.FromSeconds, p.ToSeconds))
}

// readAsk is the start of an ask for a copy: jobs kept here, the recording
// the user may read, and p read from the body and checked (400 otherwise).
func (s *Server) readAsk(w http.ResponseWriter, r *http.Request, p interface{ Check() error }) (evidence.Recording, bool) {
	if !s.jobsReady(w) {
		return evidence.Recording{}, false
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return rec, false
	}
	if err := readJSON(w, r, p); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return rec, false
	}
	if err := p.Check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return rec, false
	}
	return rec, true
}

// askFor queues the job making a copy of rec: the ask in the custody
// ledger first, then the job (202; the same parameters again: the job
// there, 200).
func (s *Server) askFor(w http.ResponseWriter, r *http.Request, rec evidence.Recording, a asked, params any, what string) {
	if !rec.DeletedAt.IsZero() {
		writeError(w, http.StatusGone, "the media of recording "+rec.ID+" was deleted by retention")
		return
	}
	if rec.State == evidence.StateLive {
		writeError(w, http.StatusConflict, "recording "+rec.ID+" is still being recorded; a "+a.noun+" is made once it is stored")
		return
	}
	body, err := json.Marshal(params)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionDeriveRequest, TargetKind: "recording", TargetID: rec.ID,
		Detail: a.noun + " asked for: " + what}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the request cannot be recorded in the custody ledger now; no "+a.noun+" asked for")
		return
	}
	j, made, err := s.o.Jobs.Enqueue(r.Context(), catalog.JobRequest{Kind: a.kind, Source: rec.ID, Params: body, RequestedBy: userOf(r)}, time.Now())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	code := http.StatusAccepted
	if !made {
		code = http.StatusOK
	}
	derived, err := s.o.Jobs.Derived(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, code, toAskedJSON(a, rec, j, derived))
}

// createRedaction: POST /api/v1/recordings/{id}/redactions, an officer or a
// supervisor who may read the recording: boxes to hide (each a style,
// pixelate or solid, a span, and its positions at chosen times) and spans
// of sound to mute, in media time; see derive.RedactionParams. As a clip's
// ask: in the custody ledger first, the same parameters the same job.
func (s *Server) createRedaction(w http.ResponseWriter, r *http.Request) {
	var p derive.RedactionParams
	rec, ok := s.readAsk(w, r, &p)
	if !ok {
		return
	}
	keys := 0
	for _, b := range p.Boxes {
		keys += len(b.Keys)
	}
	s.askFor(w, r, rec, askedRedactions, p, fmt.Sprintf("%d boxes (%d positions), %d muted spans", len(p.Boxes), keys, len(p.Mutes)))
}

// serveAsked: GET /api/v1/recordings/{id}/clips/{job} (or /redactions/…),
// the recording's readers: the copy that job made (video/mp4, Range
// requests served; ?download=1 a download), a custody event as /media's
// viewings are.
func (s *Server) serveAsked(a asked) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.serveAskedOf(w, r, a) }
}

func (s *Server) serveAskedOf(w http.ResponseWriter, r *http.Request, a asked) {
	if !s.jobsReady(w) {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	if !rec.DeletedAt.IsZero() {
		writeError(w, http.StatusGone, "the media of recording "+rec.ID+" was deleted by retention")
		return
	}
	job := r.PathValue("job")
	derived, err := s.o.Jobs.Derived(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	for _, d := range derived {
		if d.JobID == job && d.Kind == a.kind {
			s.serveDerivedVideo(w, r, rec, d, rec.ID+"-"+a.kind+"-"+job+".mp4", a.noun)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no "+a.noun+" made by job "+job+" of this recording (GET …/"+a.path+" lists them and their jobs' states)")
}
