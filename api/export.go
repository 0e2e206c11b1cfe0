package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

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
	c, ok := s.loadCase(w, r, false)
	if !ok {
		return
	}
	if s.o.Custody == nil || s.o.Signer == nil {
		writeError(w, http.StatusServiceUnavailable, "exports need the custody ledger and a signing key, and this server has none")
		return
	}
	ctx := r.Context()
	steps, err := s.o.Cases.CaseTransitions(ctx, c.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	links, err := s.o.Cases.EvidenceLinks(ctx, c.ID, "")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var recs []export.RecordingData
	var ids []string
	for _, l := range links {
		if !l.Active() || slices.Contains(ids, l.RecordingID) {
			continue
		}
		rec, err := s.o.Catalog.Recording(ctx, l.RecordingID)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		if rec.ManifestKey == "" {
			writeError(w, http.StatusConflict, "recording "+rec.ID+" has no signed manifest yet (it is still being recorded or stored); export when it is complete")
			return
		}
		segs, err := s.o.Catalog.Segments(ctx, rec.ID)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		gaps, err := s.o.Catalog.Gaps(ctx, rec.ID)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		recs = append(recs, export.RecordingData{Recording: rec, Segments: segs, Gaps: gaps})
		ids = append(ids, rec.ID)
	}
	same, err := s.o.Catalog.SameEvents(ctx, ids)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	for i := range recs {
		recs[i].SameEvent = same[recs[i].Recording.ID]
	}
	// Every node's keys: the footage may have been signed on any of them.
	pubs, err := s.o.Keys.PublicKeys(ctx)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var keys []export.PublicKey
	for _, k := range pubs {
		keys = append(keys, export.PublicKey{ID: k.ID, Key: k.Key})
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	name := "case-" + c.ID + ".zip"
	if err := s.record(r, evidence.CustodyEvent{At: at, Action: evidence.ActionExport, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
		Detail: fmt.Sprintf("court export %s: %d recording(s) %s", name, len(ids), strings.Join(ids, ", "))}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the export cannot be recorded in the custody ledger now; refused")
		return
	}
	failed := func(err error) {
		s.o.Log.Error("case export failed", "case", c.ID, "user", userOf(r), "err", err)
		s.record(r, evidence.CustodyEvent{Action: evidence.ActionExport, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
			Detail: "court export " + name + " failed: " + err.Error(), Outcome: evidence.OutcomeFailed})
	}
	x, err := s.caseExcerpt(r, c.ID)
	if err != nil {
		failed(err)
		s.internal(w, r, err)
		return
	}
	data := export.CaseData{Case: c, Transitions: steps, Links: links, Recordings: recs, Custody: x, Keys: keys,
		ExportedBy: userOf(r), ExportedAt: at, Signer: s.o.Signer}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := &countingWriter{w: w}
	if err := export.Write(ctx, cw, s.o.Store, data); err != nil {
		failed(err)
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			s.internal(w, r, err)
			return
		}
		// Part of the zip is out: break the connection so that the client
		// sees a failed download, not a short file.
		panic(http.ErrAbortHandler)
	}
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
