package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/derive"
	"github.com/bodycam/bodycam/evidence"
)

// Jobs is the catalog's durable jobs and what they derived (package jobs
// runs them).
type Jobs interface {
	Jobs(ctx context.Context, f catalog.JobFilter) ([]catalog.Job, error)
	Job(ctx context.Context, id string) (catalog.Job, error)
	Rerun(ctx context.Context, id, by string, now time.Time) (catalog.Job, error)
	Derived(ctx context.Context, recordingID string) ([]catalog.Derived, error)
	Enqueue(ctx context.Context, r catalog.JobRequest, now time.Time) (catalog.Job, bool, error)
}

// jobJSON is a job as the API gives it.
type jobJSON struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	RecordingID string          `json:"recording_id"`
	Params      json.RawMessage `json:"params"`
	State       string          `json:"state"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"max_attempts"`
	NextAt      *time.Time      `json:"next_at,omitempty"`
	LeaseOwner  string          `json:"lease_owner,omitempty"`
	LeaseUntil  *time.Time      `json:"lease_until,omitempty"`
	Error       string          `json:"error,omitempty"`
	RequestedBy string          `json:"requested_by"`
	RerunBy     string          `json:"rerun_by,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
}

func toJobJSON(j catalog.Job) jobJSON {
	out := jobJSON{ID: j.ID, Kind: j.Kind, RecordingID: j.Source, Params: j.Params, State: string(j.State), Attempts: j.Attempts,
		MaxAttempts: j.MaxAttempts, LeaseOwner: j.LeaseOwner, LeaseUntil: timePtr(j.LeaseUntil), Error: j.Error,
		RequestedBy: j.RequestedBy, RerunBy: j.RerunBy, CreatedAt: j.CreatedAt, StartedAt: timePtr(j.StartedAt), FinishedAt: timePtr(j.FinishedAt)}
	if j.State == catalog.JobQueued {
		out.NextAt = timePtr(j.NextAt)
	}
	return out
}

// jobsReady answers 503 when this server keeps no jobs.
func (s *Server) jobsReady(w http.ResponseWriter) bool {
	if s.o.Jobs == nil {
		writeError(w, http.StatusServiceUnavailable, "jobs are not kept by this server")
		return false
	}
	return true
}

// jobScope tells, for one request, whether its principal may see the jobs
// of a recording: admins and auditors every job; a supervisor the jobs of
// the footage they may read (each recording looked up once).
func (s *Server) jobScope(r *http.Request) func(recording string) bool {
	p := principalOf(r)
	if p.Role != evidence.RoleSupervisor {
		return func(string) bool { return true }
	}
	seen := map[string]bool{}
	return func(id string) bool {
		if ok, done := seen[id]; done {
			return ok
		}
		rec, err := s.o.Catalog.Recording(r.Context(), id)
		ok := err == nil && s.mayReadRecording(r, rec)
		seen[id] = ok
		return ok
	}
}

// listJobs: GET /api/v1/jobs?state=&kind=&recording=&before=&limit=,
// newest first (before: a job id, to page on).
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	if !s.jobsReady(w) {
		return
	}
	q := r.URL.Query()
	f := catalog.JobFilter{State: catalog.JobState(q.Get("state")), Kind: q.Get("kind"), Source: q.Get("recording"), Before: q.Get("before")}
	if f.State != "" && !f.State.Valid() {
		writeError(w, http.StatusBadRequest, "state: want queued, running, done or failed")
		return
	}
	for name, v := range map[string]string{"kind": f.Kind, "recording": f.Source, "before": f.Before} {
		if len(v) > 128 {
			writeError(w, http.StatusBadRequest, name+": too long")
			return
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: want 1 to 1000")
			return
		}
		f.Limit = n
	}
	list, err := s.o.Jobs.Jobs(r.Context(), f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	may := s.jobScope(r)
	items := make([]jobJSON, 0, len(list))
	for _, j := range list {
		if may(j.Source) {
			items = append(items, toJobJSON(j))
		}
	}
	out := map[string]any{"items": items}
	if limit := cmp.Or(f.Limit, 100); len(list) == limit {
		out["next_before"] = list[len(list)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

// job loads the job in the path, answering 404 itself (also for a job of
// footage a supervisor may not read: audited, as for recordings).
func (s *Server) job(w http.ResponseWriter, r *http.Request) (catalog.Job, bool) {
	id := r.PathValue("id")
	j, err := s.o.Jobs.Job(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no job "+id)
		return j, false
	}
	if err != nil {
		s.internal(w, r, err)
		return j, false
	}
	if !s.jobScope(r)(j.Source) {
		s.conceal(w, r, "no job "+id, "job "+id+" is of footage this user may not read")
		return j, false
	}
	return j, true
}

// getJob: GET /api/v1/jobs/{id}.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	if !s.jobsReady(w) {
		return
	}
	if j, ok := s.job(w, r); ok {
		writeJSON(w, http.StatusOK, toJobJSON(j))
	}
}

// rerunJob: POST /api/v1/jobs/{id}/rerun, an admin: a done or failed job
// is queued again, its attempts starting over (409 for a queued or
// running one). A custody event, written first.
func (s *Server) rerunJob(w http.ResponseWriter, r *http.Request) {
	if !s.jobsReady(w) {
		return
	}
	j, ok := s.job(w, r)
	if !ok {
		return
	}
	if j.State != catalog.JobDone && j.State != catalog.JobFailed {
		writeError(w, http.StatusConflict, "job "+j.ID+" is "+string(j.State)+": only a done or failed job runs again")
		return
	}
	detail := fmt.Sprintf("job %s (%s of recording %s) queued again; it was %s after %d attempts", j.ID, j.Kind, j.Source, j.State, j.Attempts)
	if j.Error != "" {
		detail += ": " + oneLineNote(j.Error)
	}
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionJobRerun, TargetKind: "job", TargetID: j.ID, Detail: detail}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the rerun cannot be recorded in the custody ledger now; not queued")
		return
	}
	j, err := s.o.Jobs.Rerun(r.Context(), j.ID, userOf(r), time.Now())
	if errors.Is(err, catalog.ErrConflict) {
		writeError(w, http.StatusConflict, "job "+j.ID+" is "+string(j.State)+": only a done or failed job runs again")
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if s.o.JobQueued != nil {
		s.o.JobQueued()
	}
	writeJSON(w, http.StatusOK, toJobJSON(j))
}

// derivedJSON is a derived object with its provenance record and the
// record's signature (base64, Ed25519 by the key it names).
type derivedJSON struct {
	Kind          string          `json:"kind"`
	Key           string          `json:"key"`
	SHA256        string          `json:"sha256"`
	Size          int64           `json:"size"`
	ContentType   string          `json:"content_type"`
	JobID         string          `json:"job_id"`
	CreatedAt     time.Time       `json:"created_at"`
	ProvenanceKey string          `json:"provenance_key"`
	Provenance    json.RawMessage `json:"provenance,omitempty"`
	Signature     []byte          `json:"provenance_signature,omitempty"`
}

// listDerived: GET /api/v1/recordings/{id}/derived, the recording's
// readers: what jobs made from it, each with its signed provenance.
func (s *Server) listDerived(w http.ResponseWriter, r *http.Request) {
	if !s.jobsReady(w) {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	list, err := s.o.Jobs.Derived(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]derivedJSON, 0, len(list))
	for _, d := range list {
		item := derivedJSON{Kind: d.Kind, Key: d.Key, SHA256: d.SHA256, Size: d.Size, ContentType: d.ContentType, JobID: d.JobID,
			CreatedAt: d.CreatedAt, ProvenanceKey: d.ProvenanceKey}
		if b, err := s.small(r.Context(), d.ProvenanceKey); err == nil && json.Valid(b) {
			item.Provenance = b
		} else if err != nil {
			s.o.Log.Warn("provenance record not read", "key", d.ProvenanceKey, "err", err)
		}
		if sig, err := s.small(r.Context(), d.ProvenanceKey+".sig"); err == nil {
			item.Signature = sig
		}
		items = append(items, item)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// small reads a small stored object (a provenance record, a signature).
func (s *Server) small(ctx context.Context, key string) ([]byte, error) {
	rc, err := s.o.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

// poster: GET /api/v1/recordings/{id}/poster, the recording's readers: its
// newest poster (JPEG). Seeing it is seeing the footage: a custody event
// (playback), as /media's viewings are.
func (s *Server) poster(w http.ResponseWriter, r *http.Request) {
	if !s.jobsReady(w) {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	list, err := s.o.Jobs.Derived(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	d := newestDerived(list, "poster")
	if d == nil {
		writeError(w, http.StatusNotFound, "no poster of this recording yet")
		return
	}
	s.serveDerived(w, r, rec, *d, "poster "+d.Key, "poster "+d.Key+" (sha256 "+d.SHA256+")")
}

// serveDerived serves a derived picture of rec. Seeing it is seeing the
// footage: a custody event (playback, detail) first, once per user and
// window in a viewing window.
func (s *Server) serveDerived(w http.ResponseWriter, r *http.Request, rec evidence.Recording, d catalog.Derived, window, detail string) {
	now := time.Now()
	key := viewingKey{user: userOf(r), recording: rec.ID, action: evidence.ActionPlayback, window: window}
	if !s.views.recorded(key, now) {
		if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionPlayback, TargetKind: "recording", TargetID: rec.ID,
			Detail: detail}); err != nil {
			writeError(w, http.StatusServiceUnavailable, "the access cannot be recorded in the custody ledger now; refused")
			return
		}
		s.views.remember(key, now)
	}
	s.serveDerivedObject(w, r, d, "image/jpeg")
}

// serveDerivedObject writes a derived object, its content type (fallback when
// the row has none of the same major type) and its SHA-256 as ETag.
func (s *Server) serveDerivedObject(w http.ResponseWriter, r *http.Request, d catalog.Derived, fallback string) {
	rc, err := s.o.Store.Get(r.Context(), d.Key)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	defer rc.Close()
	ct := d.ContentType
	if major, _, _ := strings.Cut(fallback, "/"); ct == "" || !strings.HasPrefix(ct, major+"/") {
		ct = fallback
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(d.Size, 10))
	w.Header().Set("ETag", `"`+d.SHA256+`"`)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	io.Copy(w, rc)
}

// newestDerived is the recording's newest derived object of kind (nil: none).
func newestDerived(list []catalog.Derived, kind string) *catalog.Derived {
	var d *catalog.Derived
	for i := range list {
		if list[i].Kind == kind && (d == nil || !list[i].CreatedAt.Before(d.CreatedAt)) {
			d = &list[i]
		}
	}
	return d
}

// thumbnailSet is the recording's newest thumbnails (those of one job, as
// its provenance record lists them, in order), or 404 answered.
func (s *Server) thumbnailSet(w http.ResponseWriter, r *http.Request) (evidence.Recording, []catalog.Derived, []derive.Output, bool) {
	if !s.jobsReady(w) {
		return evidence.Recording{}, nil, nil, false
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return rec, nil, nil, false
	}
	list, err := s.o.Jobs.Derived(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return rec, nil, nil, false
	}
	newest := newestDerived(list, derive.KindThumbnail)
	if newest == nil {
		writeError(w, http.StatusNotFound, "no thumbnails of this recording yet")
		return rec, nil, nil, false
	}
	byKey := map[string]catalog.Derived{}
	for _, d := range list {
		if d.JobID == newest.JobID && d.Kind == derive.KindThumbnail {
			byKey[d.Key] = d
		}
	}
	b, err := s.small(r.Context(), newest.ProvenanceKey)
	var prov derive.Provenance
	if err == nil {
		err = json.Unmarshal(b, &prov)
	}
	if err != nil {
		s.internal(w, r, fmt.Errorf("thumbnails provenance %s: %w", newest.ProvenanceKey, err))
		return rec, nil, nil, false
	}
	var rows []catalog.Derived
	var outs []derive.Output
	for _, o := range prov.Outputs {
		if d, ok := byKey[o.Key]; ok && o.Kind == derive.KindThumbnail {
			rows, outs = append(rows, d), append(outs, o)
		}
	}
	return rec, rows, outs, true
}

// listThumbnails: GET /api/v1/recordings/{id}/thumbnails, the recording's
// readers: its newest thumbnails (one per segment), each with the time of
// its frame and its URL. Listing them shows no footage: no custody event.
func (s *Server) listThumbnails(w http.ResponseWriter, r *http.Request) {
	rec, rows, outs, ok := s.thumbnailSet(w, r)
	if !ok {
		return
	}
	type item struct {
		AtSeconds float64 `json:"at_seconds"`
		URL       string  `json:"url"`
		Width     int     `json:"width"`
		Height    int     `json:"height"`
		SHA256    string  `json:"sha256"`
		Segment   string  `json:"segment,omitempty"`
	}
	items := make([]item, 0, len(outs))
	for i, o := range outs {
		at := 0.0
		if o.FrameAtSeconds != nil {
			at = *o.FrameAtSeconds
		}
		items = append(items, item{AtSeconds: at, URL: fmt.Sprintf("/api/v1/recordings/%s/thumbnails/%d", rec.ID, i), Width: o.Width,
			Height: o.Height, SHA256: rows[i].SHA256, Segment: o.Segment})
	}
	out := map[string]any{"items": items}
	if len(rows) > 0 {
		out["job_id"], out["provenance_key"] = rows[0].JobID, rows[0].ProvenanceKey
	}
	writeJSON(w, http.StatusOK, out)
}

// thumbnail: GET /api/v1/recordings/{id}/thumbnails/{n}, the recording's
// readers: the nth of its thumbnails (JPEG). Seeing them is seeing the
// footage: a custody event (playback, naming the thumbnails) once per user
// and set in a viewing window.
func (s *Server) thumbnail(w http.ResponseWriter, r *http.Request) {
	rec, rows, _, ok := s.thumbnailSet(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(rows) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no thumbnail %s (there are %d)", r.PathValue("n"), len(rows)))
		return
	}
	set := strings.TrimSuffix(rows[n].ProvenanceKey, ".provenance.json") + "/"
	s.serveDerived(w, r, rec, rows[n], "thumbnails "+set, fmt.Sprintf("thumbnails %s (%d, job %s)", set, len(rows), rows[n].JobID))
}

// spriteOf is the recording's newest sprite and its index, or 404 answered.
func (s *Server) spriteOf(w http.ResponseWriter, r *http.Request) (evidence.Recording, catalog.Derived, catalog.Derived, bool) {
	var none catalog.Derived
	if !s.jobsReady(w) {
		return evidence.Recording{}, none, none, false
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return rec, none, none, false
	}
	list, err := s.o.Jobs.Derived(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return rec, none, none, false
	}
	sprite := newestDerived(list, derive.KindSprite)
	if sprite == nil {
		writeError(w, http.StatusNotFound, "no sprite of this recording yet")
		return rec, none, none, false
	}
	for _, d := range list {
		if d.Kind == derive.KindSpriteIndex && d.JobID == sprite.JobID {
			return rec, *sprite, d, true
		}
	}
	writeError(w, http.StatusNotFound, "no sprite index of this recording yet")
	return rec, none, none, false
}

// sprite: GET /api/v1/recordings/{id}/sprite, the recording's readers: its
// newest timeline sprite (JPEG; /sprite/index says where each tile is). A
// custody event (playback, naming the sprite), as the poster's.
func (s *Server) sprite(w http.ResponseWriter, r *http.Request) {
	rec, sprite, _, ok := s.spriteOf(w, r)
	if !ok {
		return
	}
	s.serveDerived(w, r, rec, sprite, "sprite "+sprite.Key, "sprite "+sprite.Key+" (sha256 "+sprite.SHA256+")")
}

// spriteIndex: GET /api/v1/recordings/{id}/sprite/index[?format=vtt], the
// recording's readers: the newest sprite's index (JSON, derive.SpriteIndex),
// or as WebVTT cues (each tile's time to the next's, "sprite#xywh=x,y,w,h").
// Times and places only: no custody event.
func (s *Server) spriteIndex(w http.ResponseWriter, r *http.Request) {
	_, _, index, ok := s.spriteOf(w, r)
	if !ok {
		return
	}
	switch r.URL.Query().Get("format") {
	case "", "json":
		s.serveDerivedObject(w, r, index, "application/json")
		return
	case "vtt":
	default:
		writeError(w, http.StatusBadRequest, "format: json or vtt")
		return
	}
	b, err := s.small(r.Context(), index.Key)
	var idx derive.SpriteIndex
	if err == nil {
		err = json.Unmarshal(b, &idx)
	}
	if err != nil {
		s.internal(w, r, fmt.Errorf("sprite index %s: %w", index.Key, err))
		return
	}
	var vtt strings.Builder
	vtt.WriteString("WEBVTT\n")
	for i, t := range idx.Tiles {
		end := t.AtSeconds + idx.EverySeconds
		if i+1 < len(idx.Tiles) {
			end = idx.Tiles[i+1].AtSeconds
		}
		fmt.Fprintf(&vtt, "\n%s --> %s\nsprite#xywh=%d,%d,%d,%d\n", vttTime(t.AtSeconds), vttTime(end), t.X, t.Y, idx.TileWidth, idx.TileHeight)
	}
	w.Header().Set("Content-Type", "text/vtt; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	io.WriteString(w, vtt.String())
}

// vttTime is seconds as WebVTT writes a time, hh:mm:ss.mmm.
func vttTime(sec float64) string {
	ms := int64(sec*1000 + 0.5)
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}
