package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/derive"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/export"
)

// exportCase streams the court export of a case (package export): a zip
// with the original objects of every actively linked recording, their
// signed manifests, derived playable copies, the custody excerpt, the
// public keys and a signed SHA256SUMS. The export is recorded in the
// custody ledger before any evidence goes out (no record, no export), and
// the excerpt in the zip includes that event.
func (s *Server) exportCase(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// A HEAD would build the zip and record an export that never left.
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "a case export is GET only: each one is recorded")
		return
	}
	c, ok := s.loadCase(w, r, false)
	if !ok {
		return
	}
	x, ok := s.prepareExport(w, r, c, nil, r.URL.Query().Get("copies"))
	if !ok {
		return
	}
	// A copy leaving the system: approval before copying (a grant of the
	// case), once the export is known to be possible.
	if !s.takeGrant(w, r, evidence.CopyOfCase, c.ID) {
		return
	}
	x.name = "case-" + c.ID + ".zip"
	s.writeExport(w, r, x, "")
}

// caseExport is a court export being made: what it holds, before it is
// recorded and written.
type caseExport struct {
	data    export.CaseData
	ids     []string // its recordings
	ncopies int      // derived copies with them
	name    string   // the zip's file name
	// keep selects the custody events of the excerpt (nil: the case's
	// record, caseFilter).
	keep func(evidence.CustodyEvent) bool
}

// prepareExport gathers a court export of c: the recordings actively
// linked to it (those shared says, nil: all of them) with the derived
// copies copies chooses (export's ?copies=), their segments, gaps and
// manifests, and every node's keys. It answers the request itself when the
// export cannot be made (false).
func (s *Server) prepareExport(w http.ResponseWriter, r *http.Request, c evidence.Case, shared []string, copies string) (*caseExport, bool) {
	if s.o.Custody == nil || s.o.Signer == nil {
		writeError(w, http.StatusServiceUnavailable, "exports need the custody ledger and a signing key, and this server has none")
		return nil, false
	}
	ctx := r.Context()
	steps, err := s.o.Cases.CaseTransitions(ctx, c.ID)
	if err != nil {
		s.internal(w, r, err)
		return nil, false
	}
	links, err := s.o.Cases.EvidenceLinks(ctx, c.ID, "")
	if err != nil {
		s.internal(w, r, err)
		return nil, false
	}
	if shared != nil {
		links = slices.DeleteFunc(links, func(l evidence.EvidenceLink) bool { return !slices.Contains(shared, l.RecordingID) })
	}
	chosen, err := parseCopies(copies)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if chosen != nil && s.o.Jobs == nil {
		writeError(w, http.StatusServiceUnavailable, "this server keeps no derived copies; export without copies")
		return nil, false
	}
	x := &caseExport{}
	var recs []export.RecordingData
	for _, l := range links {
		if !l.Active() || slices.Contains(x.ids, l.RecordingID) {
			continue
		}
		rec, err := s.o.Catalog.Recording(ctx, l.RecordingID)
		if err != nil {
			s.internal(w, r, err)
			return nil, false
		}
		if rec.ManifestKey == "" {
			writeError(w, http.StatusConflict, "recording "+rec.ID+" has no signed manifest yet (it is still being recorded or stored); export when it is complete")
			return nil, false
		}
		segs, err := s.o.Catalog.Segments(ctx, rec.ID)
		if err != nil {
			s.internal(w, r, err)
			return nil, false
		}
		gaps, err := s.o.Catalog.Gaps(ctx, rec.ID)
		if err != nil {
			s.internal(w, r, err)
			return nil, false
		}
		var copies []export.Copy
		if chosen != nil {
			derived, err := s.o.Jobs.Derived(ctx, rec.ID)
			if err != nil {
				s.internal(w, r, err)
				return nil, false
			}
			copies = chosen.pick(derived)
		}
		recs = append(recs, export.RecordingData{Recording: rec, Segments: segs, Gaps: gaps, Copies: copies})
		x.ids = append(x.ids, rec.ID)
	}
	if missing := chosen.unmatched(); len(missing) > 0 {
		writeError(w, http.StatusBadRequest, "no derived copy of a recording in this case was made by job "+strings.Join(missing, ", ")+
			" (a clip, redacted copy or proxy of one of its recordings, made)")
		return nil, false
	}
	for _, rd := range recs {
		x.ncopies += len(rd.Copies)
	}
	same, err := s.o.Catalog.SameEvents(ctx, x.ids)
	if err != nil {
		s.internal(w, r, err)
		return nil, false
	}
	for i := range recs {
		recs[i].SameEvent = same[recs[i].Recording.ID]
	}
	// Every node's keys: the footage may have been signed on any of them.
	pubs, err := s.o.Keys.PublicKeys(ctx)
	if err != nil {
		s.internal(w, r, err)
		return nil, false
	}
	var keys []export.PublicKey
	for _, k := range pubs {
		keys = append(keys, export.PublicKey{ID: k.ID, Key: k.Key})
	}
	x.data = export.CaseData{Case: c, Transitions: steps, Links: links, Recordings: recs, Keys: keys, Signer: s.o.Signer}
	return x, true
}

// writeExport records the export in the custody ledger (what, by whom,
// with why appended to the detail), then writes the zip with the custody
// excerpt that includes that event. It reports whether the whole zip went
// out; when the ledger refuses, nothing does.
func (s *Server) writeExport(w http.ResponseWriter, r *http.Request, x *caseExport, why string) bool {
	c := x.data.Case
	at := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.record(r, evidence.CustodyEvent{At: at, Action: evidence.ActionExport, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
		Detail: fmt.Sprintf("court export %s: %d recording(s) %s%s%s", x.name, len(x.ids), strings.Join(x.ids, ", "),
			copiesText(x.data.Recordings, x.ncopies), why)}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the export cannot be recorded in the custody ledger now; refused")
		return false
	}
	failed := func(err error) {
		s.o.Log.Error("case export failed", "case", c.ID, "user", userOf(r), "err", err)
		s.record(r, evidence.CustodyEvent{Action: evidence.ActionExport, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
			Detail: "court export " + x.name + " failed: " + err.Error(), Outcome: evidence.OutcomeFailed})
	}
	f, err := s.caseFilter(r, c.ID)
	if err == nil && x.keep != nil {
		f.Keep = x.keep
		f.TargetIDs = x.ids
	}
	var excerpt evidence.Excerpt
	if err == nil {
		excerpt, err = s.o.Cases.CustodyExcerpt(r.Context(), f, s.o.Signer)
	}
	if err != nil {
		failed(err)
		s.internal(w, r, err)
		return false
	}
	data := x.data
	data.Custody, data.ExportedBy, data.ExportedAt = excerpt, userOf(r), at
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+x.name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := &countingWriter{w: w}
	if err := export.Write(r.Context(), cw, s.o.Store, data); err != nil {
		failed(err)
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			s.internal(w, r, err)
			return false
		}
		// Part of the zip is out: break the connection so that the client
		// sees a failed download, not a short file.
		panic(http.ErrAbortHandler)
	}
	return true
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// exportable are the kinds of derived copies an export may carry: one
// video each, with its own provenance record.
var exportable = []string{derive.KindRedaction, derive.KindClip, derive.KindProxy}

// copyChoice is what ?copies= chose: kinds (every copy of that kind of the
// exported recordings) and job ids (the copy that job made).
type copyChoice struct {
	kinds map[string]bool
	jobs  map[string]bool // job id -> matched
}

// parseCopies reads ?copies=: a comma-separated list of kinds (redaction,
// clip, proxy) and job ids. Empty: no copies (nil).
func parseCopies(v string) (*copyChoice, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	c := &copyChoice{kinds: map[string]bool{}, jobs: map[string]bool{}}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
		case slices.Contains(exportable, item):
			c.kinds[item] = true
		case len(item) <= 64 && evidence.ValidateDeviceID(item) == nil:
			c.jobs[item] = false
		default:
			return nil, fmt.Errorf("copies: %q is neither a kind (%s) nor a job id", item, strings.Join(exportable, ", "))
		}
	}
	if len(c.jobs) > 1000 {
		return nil, errors.New("copies: at most 1000 job ids")
	}
	return c, nil
}

// pick is what the choice takes of a recording's derived objects.
func (c *copyChoice) pick(derived []catalog.Derived) []export.Copy {
	var out []export.Copy
	for _, d := range derived {
		if !slices.Contains(exportable, d.Kind) || d.ProvenanceKey == "" {
			continue
		}
		_, byJob := c.jobs[d.JobID]
		if !c.kinds[d.Kind] && !byJob {
			continue
		}
		if byJob {
			c.jobs[d.JobID] = true
		}
		out = append(out, export.Copy{Kind: d.Kind, Key: d.Key, SHA256: d.SHA256, Size: d.Size, ProvenanceKey: d.ProvenanceKey, JobID: d.JobID})
	}
	return out
}

// unmatched are the job ids that chose no copy.
func (c *copyChoice) unmatched() []string {
	if c == nil {
		return nil
	}
	var out []string
	for id, ok := range c.jobs {
		if !ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// copiesText says in a custody detail which derived copies went with an
// export.
func copiesText(recs []export.RecordingData, n int) string {
	if n == 0 {
		return ""
	}
	var parts []string
	for _, r := range recs {
		for _, c := range r.Copies {
			parts = append(parts, c.Kind+" "+c.Key+" (sha256 "+c.SHA256+")")
		}
	}
	return fmt.Sprintf("; with %d derived copies: %s", n, strings.Join(parts, ", "))
}
