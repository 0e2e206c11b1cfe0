package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/derive"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/verify"
)

type recordingJSON struct {
	ID           string     `json:"id"`
	DeviceID     string     `json:"device_id"`
	OfficerID    string     `json:"officer_id"`
	CaseID       string     `json:"case_id"`
	State        string     `json:"state"`
	Kind         string     `json:"kind"` // stream or upload
	StartedAt    time.Time  `json:"started_at"`
	EndedAt      *time.Time `json:"ended_at"`
	EndReason    string     `json:"end_reason"`
	Codecs       []string   `json:"codecs"`
	SegmentCount int        `json:"segment_count"`
	ManifestKey  string     `json:"manifest_key,omitempty"`
	DeletedAt    *time.Time `json:"deleted_at,omitempty"`
	NodeID       string     `json:"node_id"`
	Fence        int64      `json:"fence"`
	ReapedAt     *time.Time `json:"reaped_at,omitempty"`
	// Origin: an uploaded recording's file (kind upload only).
	Origin *originJSON `json:"origin,omitempty"`
	// SameEvent: the recordings of the same event (a device's live stream
	// and its own file of the same span), by id.
	SameEvent []string `json:"same_event"`
	// Categories, retain_until and retention_rule (categories.go), when
	// this server keeps categories.
	*retentionJSON
}

type originJSON struct {
	FileName   string `json:"file_name"`
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	Dock       string `json:"dock"`
	Important  bool   `json:"important"`
	TimeSource string `json:"time_source"`
}

// withLinks adds to recordings' JSON their origins and same-event links,
// in two catalog queries for the page.
func (s *Server) withLinks(ctx context.Context, js []recordingJSON) error {
	if len(js) == 0 {
		return nil
	}
	ids := make([]string, 0, len(js))
	var uploads []string
	for _, j := range js {
		ids = append(ids, j.ID)
		if j.Kind == string(evidence.KindUpload) {
			uploads = append(uploads, j.ID)
		}
	}
	same, err := s.o.Catalog.SameEvents(ctx, ids)
	if err != nil {
		return err
	}
	ups, err := s.o.Catalog.UploadsOfRecordings(ctx, uploads)
	if err != nil {
		return err
	}
	for i := range js {
		js[i].SameEvent = same[js[i].ID]
		if js[i].SameEvent == nil {
			js[i].SameEvent = []string{}
		}
		if u, ok := ups[js[i].ID]; ok {
			js[i].Origin = &originJSON{FileName: u.FileName, SHA256: u.SHA256, Size: u.Size, Dock: u.Dock,
				Important: u.Important, TimeSource: string(u.TimeSource)}
		}
	}
	return nil
}

func toRecordingJSON(r evidence.Recording) recordingJSON {
	j := recordingJSON{ID: r.ID, DeviceID: r.DeviceID, OfficerID: r.OfficerID, CaseID: r.CaseID, State: string(r.State),
		StartedAt: r.StartedAt, EndReason: r.EndReason, Codecs: r.Codecs, SegmentCount: r.SegmentCount, ManifestKey: r.ManifestKey}
	if j.Codecs == nil {
		j.Codecs = []string{}
	}
	if !r.EndedAt.IsZero() {
		t := r.EndedAt
		j.EndedAt = &t
	}
	j.DeletedAt = timePtr(r.DeletedAt)
	j.NodeID, j.Fence, j.ReapedAt = r.NodeID, r.Fence, timePtr(r.ReapedAt)
	j.Kind = string(r.Kind)
	if j.Kind == "" {
		j.Kind = string(evidence.KindStream)
	}
	return j
}

type segmentJSON struct {
	Seq           int64      `json:"seq"`
	Kind          string     `json:"kind"`
	Key           string     `json:"key"`
	Size          int64      `json:"size"`
	SHA256        string     `json:"sha256"`
	ChainSeq      int64      `json:"chain_seq"`
	PrevChainHash string     `json:"prev_chain_hash"`
	ChainHash     string     `json:"chain_hash"`
	StartedAt     time.Time  `json:"started_at"`
	DeviceTime    *time.Time `json:"device_time,omitempty"`
	DurationMS    float64    `json:"duration_ms"`
	Keyframe      bool       `json:"keyframe"`
}

type gapJSON struct {
	Kind   string     `json:"kind"`
	Start  time.Time  `json:"start"`
	End    *time.Time `json:"end,omitempty"`
	Track  string     `json:"track,omitempty"`
	Detail string     `json:"detail"`
}

func toGapJSON(g evidence.Gap) gapJSON {
	j := gapJSON{Kind: string(g.Kind), Start: g.Start, Track: g.Track, Detail: g.Detail}
	if !g.End.IsZero() {
		t := g.End
		j.End = &t
	}
	return j
}

func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, errors.New(field + ": want an RFC 3339 time such as 2026-11-25T10:00:00Z")
	}
	return t, nil
}

// parseWindow reads the from and to query parameters.
func parseWindow(q url.Values) (from, to time.Time, err error) {
	if from, err = parseTime("from", q.Get("from")); err != nil {
		return
	}
	to, err = parseTime("to", q.Get("to"))
	return
}

func (s *Server) listRecordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := catalog.RecordingFilter{DeviceID: q.Get("device")}
	var err error
	if f.From, f.To, err = parseWindow(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if st := evidence.RecordingState(q.Get("state")); st != "" {
		if !st.Valid() {
			writeError(w, http.StatusBadRequest, "state: want live, complete or interrupted")
			return
		}
		f.State = st
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: want 1 to 1000")
			return
		}
		f.Limit = n
	}
	if k := evidence.RecordingKind(q.Get("kind")); k != "" {
		if !k.Valid() {
			writeError(w, http.StatusBadRequest, "kind: want stream or upload")
			return
		}
		f.Kind = k
	}
	if f.DeviceID != "" && evidence.ValidateDeviceID(f.DeviceID) != nil {
		writeError(w, http.StatusBadRequest, "device: not a valid device id")
		return
	}
	if o := q.Get("officer"); o != "" {
		f.OfficerIDs = []string{o}
	}
	if unit := q.Get("unit"); unit != "" {
		// The unit's officers (disabled ones too: their footage stays).
		users, err := s.o.Users.Users(r.Context())
		if err != nil {
			s.internal(w, r, err)
			return
		}
		var in []string
		for _, u := range users {
			if u.Role == evidence.RoleOfficer && u.Unit == unit && (len(f.OfficerIDs) == 0 || f.OfficerIDs[0] == u.ID) {
				in = append(in, u.ID)
			}
		}
		if len(in) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"items": []recordingJSON{}})
			return
		}
		f.OfficerIDs = in
	}
	f.CaseID, f.Category = q.Get("case"), q.Get("category")
	for name, v := range map[string]string{"officer": q.Get("officer"), "unit": q.Get("unit"), "case": f.CaseID, "category": f.Category} {
		if len(v) > 200 {
			writeError(w, http.StatusBadRequest, name+": at most 200 characters")
			return
		}
	}
	// What the user may not read is left out after the query: page on
	// (older) until the list is full, the footage runs out, or ten pages
	// were read (a scoped user asking across everything).
	if f.Limit == 0 {
		f.Limit = 100
	}
	want := f.Limit
	var items []recordingJSON
	var readable []evidence.Recording
	for page := 0; page < 10 && len(readable) < want; page++ {
		recs, err := s.o.Catalog.Recordings(r.Context(), f)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		for _, rec := range recs {
			if len(readable) < want && s.mayReadRecording(r, rec) {
				items = append(items, toRecordingJSON(rec))
				readable = append(readable, rec)
			}
		}
		if len(recs) < f.Limit {
			break
		}
		f.To = recs[len(recs)-1].StartedAt
	}
	if items == nil {
		items = []recordingJSON{}
	}
	if err := s.withLinks(r.Context(), items); err != nil {
		s.internal(w, r, err)
		return
	}
	if err := s.withRetention(r.Context(), items, readable); err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// recording loads the recording named in the path, answering 404 itself,
// also for one the principal may not read (so ids cannot be probed).
func (s *Server) recording(w http.ResponseWriter, r *http.Request) (evidence.Recording, bool) {
	id := r.PathValue("id")
	rec, err := s.o.Catalog.Recording(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		s.conceal(w, r, "no recording "+id, "no recording "+id)
		return rec, false
	}
	if err != nil {
		s.internal(w, r, err)
		return rec, false
	}
	if !s.mayReadRecording(r, rec) {
		s.conceal(w, r, "no recording "+id, "recording "+id+" is not footage this user may read")
		return rec, false
	}
	return rec, true
}

func (s *Server) getRecording(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	segs, err := s.o.Catalog.Segments(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	gaps, err := s.o.Catalog.Gaps(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := struct {
		recordingJSON
		Segments []segmentJSON `json:"segments"`
		Gaps     []gapJSON     `json:"gaps"`
	}{recordingJSON: toRecordingJSON(rec), Segments: []segmentJSON{}, Gaps: []gapJSON{}}
	one := []recordingJSON{out.recordingJSON}
	if err := s.withLinks(r.Context(), one); err != nil {
		s.internal(w, r, err)
		return
	}
	if err := s.withRetention(r.Context(), one, []evidence.Recording{rec}); err != nil {
		s.internal(w, r, err)
		return
	}
	out.recordingJSON = one[0]
	for _, sg := range segs {
		j := segmentJSON{Seq: sg.Seq, Kind: string(sg.Kind), Key: sg.Key, Size: sg.Size, SHA256: sg.SHA256,
			ChainSeq: sg.ChainSeq, PrevChainHash: sg.PrevChainHash, ChainHash: sg.ChainHash, StartedAt: sg.StartedAt,
			DurationMS: float64(sg.Duration.Microseconds()) / 1000, Keyframe: sg.Keyframe}
		if !sg.DeviceTime.IsZero() {
			t := sg.DeviceTime
			j.DeviceTime = &t
		}
		out.Segments = append(out.Segments, j)
	}
	for _, g := range gaps {
		out.Gaps = append(out.Gaps, toGapJSON(g))
	}
	writeJSON(w, http.StatusOK, out)
}

// media streams the recording as one fragmented MP4: the init segment, then
// the media segments, exactly as stored. ?from= and ?to= keep the segments
// that overlap the window; HTTP Range requests are served. An uploaded
// file is served as uploadMedia says (the window does not apply).
func (s *Server) media(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	switch r.URL.Query().Get("rendition") {
	case "", "original":
	case derive.KindProxy:
		s.proxy(w, r, rec)
		return
	default:
		writeError(w, http.StatusBadRequest, "rendition: original (the default) or proxy")
		return
	}
	if rec.Kind == evidence.KindUpload {
		s.uploadMedia(w, r, rec)
		return
	}
	if !rec.DeletedAt.IsZero() {
		writeError(w, http.StatusGone, "the media of recording "+rec.ID+" was deleted by retention on "+
			rec.DeletedAt.Format(time.RFC3339)+"; its signed tombstone is the last link of its chain (verify shows it)")
		return
	}
	from, err := parseTime("from", r.URL.Query().Get("from"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	to, err := parseTime("to", r.URL.Query().Get("to"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	segs, err := s.o.Catalog.Segments(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var parts []evidence.Segment
	for _, sg := range segs {
		if sg.Kind == evidence.KindMedia {
			end := sg.StartedAt.Add(sg.Duration)
			if (!from.IsZero() && end.Before(from)) || (!to.IsZero() && !sg.StartedAt.Before(to)) {
				continue
			}
		}
		parts = append(parts, sg)
	}
	if len(parts) == 0 || parts[0].Kind != evidence.KindInit {
		writeError(w, http.StatusNotFound, "no stored media for this recording yet")
		return
	}
	if len(parts) == 1 && len(segs) > 1 {
		writeError(w, http.StatusNotFound, "no media in that time window")
		return
	}
	modified := rec.EndedAt
	if rec.State == evidence.StateLive {
		modified = time.Time{}
	}
	s.serveMedia(w, r, rec, parts, rec.ID+".mp4", fmtTime(from)+" "+fmtTime(to),
		func(action string) string {
			return "media " + action + ", window " + fmtTime(from) + " to " + fmtTime(to)
		}, modified)
}

// serveMedia serves parts (objects read in order as one file) as
// video/mp4 named name, HTTP Range requests too, once the viewing is in the
// custody ledger: once per user, recording, window and action every
// viewingWindow (a seeking player's Range requests are one viewing), with
// the detail what says of the action. ?download= makes it a download. No
// record, no footage.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request, rec evidence.Recording, parts []evidence.Segment, name, window string,
	what func(action string) string, modified time.Time) {
	rd := &objectsReader{ctx: r.Context(), store: s.o.Store, segs: parts}
	for _, p := range parts {
		rd.total += p.Size
	}
	// Serving a Range costs no more than its answer: ranges merged and
	// bounded (normalizeRange), each read from its offset (GetRange).
	rangeAsked := r.Header.Get("Range")
	if rs, h, ok := normalizeRange(rangeAsked, rd.total); ok {
		rd.ranges = rs
		if h == "" {
			r.Header.Del("Range")
		} else {
			r.Header.Set("Range", h)
		}
	}
	action := evidence.ActionPlayback
	if r.URL.Query().Get("download") != "" {
		// A copy leaving the system: approval before copying.
		if !s.takeGrant(w, r, evidence.CopyOfRecording, rec.ID) {
			return
		}
		action = evidence.ActionDownload
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	now := time.Now()
	key := viewingKey{user: userOf(r), recording: rec.ID, action: action, window: window}
	if !s.views.recorded(key, now) {
		detail := what(action)
		if rangeAsked != "" {
			detail += ", Range " + rangeAsked
		}
		if err := s.record(r, evidence.CustodyEvent{Action: action, TargetKind: "recording", TargetID: rec.ID, Detail: detail}); err != nil {
			writeError(w, http.StatusServiceUnavailable, "the access cannot be recorded in the custody ledger now; refused")
			return
		}
		s.views.remember(key, now)
	}
	w.Header().Set("Content-Type", "video/mp4")
	if w.Header().Get("Content-Disposition") == "" {
		w.Header().Set("Content-Disposition", `inline; filename="`+name+`"`)
	}
	http.ServeContent(w, r, name, modified, rd)
	rd.Close()
}

func (s *Server) verifyRecording(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	lookup, err := s.keyLookup(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	res, err := verify.Recording(r.Context(), s.o.Catalog, s.o.Store, lookup, rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	outcome, detail := evidence.OutcomeOK, fmt.Sprintf("ok: %d objects checked", res.Checked)
	if !res.OK {
		s.o.Log.Warn("verification failed", "recording", rec.ID, "first_bad_seq", res.FirstBadSeq, "reason", res.Reason)
		outcome, detail = evidence.OutcomeFailed, fmt.Sprintf("first bad seq %d: %s", res.FirstBadSeq, res.Reason)
	}
	s.record(r, evidence.CustodyEvent{Action: evidence.ActionVerify, TargetKind: "recording", TargetID: rec.ID, Detail: detail, Outcome: outcome})
	gaps := make([]gapJSON, 0, len(res.Gaps))
	for _, g := range res.Gaps {
		gaps = append(gaps, toGapJSON(g))
	}
	notes := res.Notes
	if notes == nil {
		notes = []string{}
	}
	out := map[string]any{"ok": res.OK, "first_bad_seq": res.FirstBadSeq, "reason": res.Reason,
		"checked": res.Checked, "chain_head": res.ChainHead, "manifest": res.Manifest, "gaps": gaps, "notes": notes}
	if res.Receipt != "" {
		out["receipt"] = res.Receipt
	}
	writeJSON(w, http.StatusOK, out)
}

// objectsReader reads a list of objects as one seekable stream. It is safe
// for use from two goroutines: http.ServeContent reads a multi-range answer
// on one of its own, which may still be reading when the handler closes it.
type objectsReader struct {
	mu     sync.Mutex
	closed bool
	ctx    context.Context
	store  Objects
	segs   []evidence.Segment
	total  int64
	ranges []byteRange // what will be read; nil: everything
	off    int64
	cur    io.ReadCloser
	curEnd int64 // stream offset where cur's read ends: its object's end, or its range's
	curPos int64 // stream offset cur is at
}

func (o *objectsReader) Read(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		if o.closed {
			return 0, os.ErrClosed
		}
		if o.off >= o.total {
			return 0, io.EOF
		}
		if o.cur == nil || o.curPos != o.off || o.off >= o.curEnd {
			if err := o.open(); err != nil {
				return 0, err
			}
		}
		n, err := o.cur.Read(p[:min(int64(len(p)), o.curEnd-o.off)])
		o.off += int64(n)
		o.curPos = o.off
		if err == io.EOF {
			if o.off < o.curEnd {
				return n, io.ErrUnexpectedEOF // the object is shorter than recorded
			}
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// open opens the object that holds o.off, from there to the end of the
// object or of the range being served, whichever comes first: a ranged
// read, nothing before o.off or past what is served is asked of the store.
func (o *objectsReader) open() error {
	o.closeCurrent()
	var start int64
	for _, sg := range o.segs {
		if o.off < start+sg.Size {
			end := start + sg.Size
			for _, r := range o.ranges {
				if o.off >= r.start && o.off <= r.end {
					end = min(end, r.end+1)
				}
			}
			rc, err := o.store.GetRange(o.ctx, sg.Key, o.off-start, end-o.off)
			if err != nil {
				return err
			}
			o.cur, o.curEnd, o.curPos = rc, end, o.off
			return nil
		}
		start += sg.Size
	}
	return io.EOF
}

func (o *objectsReader) Seek(offset int64, whence int) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += o.off
	case io.SeekEnd:
		offset += o.total
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	o.off = offset
	return offset, nil
}

// Close closes the object being read; later reads fail.
func (o *objectsReader) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.closeCurrent()
	return nil
}

func (o *objectsReader) closeCurrent() {
	if o.cur != nil {
		o.cur.Close()
		o.cur = nil
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(open)"
	}
	return t.Format(time.RFC3339Nano)
}
