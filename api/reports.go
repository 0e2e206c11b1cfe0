package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/report"
)

// Audit reports (package report): a recording's or a case's custody
// history, or what a user did over a period, as JSON or PDF, pinned to the
// ledger's state (through_seq) and signed by the server's key. The same
// query with the same through_seq gives the same bytes, so the signature
// can be fetched apart (signature=true: the raw Ed25519 signature, for
// openssl) as well as read from the Bodycam-Signature header. Only what
// does not change is in a report besides the events (a recording's state
// or a case's step are in its events), so that it stays the same bytes.

// reportQuery is a report request's format, ledger state and signature wish.
type reportQuery struct {
	pdf       bool
	through   int64 // 0: the ledger's head now
	signature bool
}

func parseReportQuery(w http.ResponseWriter, r *http.Request) (reportQuery, bool) {
	var q reportQuery
	switch r.URL.Query().Get("format") {
	case "", "json":
	case "pdf":
		q.pdf = true
	default:
		writeError(w, http.StatusBadRequest, "format: json or pdf")
		return q, false
	}
	if v := r.URL.Query().Get("through_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "through_seq: the number of a custody event (1 or more)")
			return q, false
		}
		q.through = n
	}
	switch r.URL.Query().Get("signature") {
	case "", "false":
	case "true":
		q.signature = true
		if q.through == 0 {
			writeError(w, http.StatusBadRequest, "signature=true needs the through_seq of the report it is of (its Bodycam-Report-Through header)")
			return q, false
		}
	default:
		writeError(w, http.StatusBadRequest, "signature: true or false")
		return q, false
	}
	return q, true
}

// ledgerState is custody event through (the ledger's head when 0), or
// false after answering: 400 for an event the ledger does not have yet.
func (s *Server) ledgerState(w http.ResponseWriter, r *http.Request, through int64) (evidence.CustodyEvent, bool) {
	head, hash, err := s.o.Cases.CustodyHead(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return evidence.CustodyEvent{}, false
	}
	if through > head {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("through_seq: the custody ledger ends at event %d", head))
		return evidence.CustodyEvent{}, false
	}
	if through == 0 {
		through = head
	}
	if through == 0 { // an empty ledger
		return evidence.CustodyEvent{Hash: hash, At: time.Unix(0, 0).UTC()}, true
	}
	e, err := s.o.Cases.CustodyEvent(r.Context(), through)
	if err != nil {
		s.internal(w, r, err)
		return evidence.CustodyEvent{}, false
	}
	return e, true
}

// maxReportEvents is the most events a report holds (the catalog's most
// per query); a larger history is refused rather than cut short.
const maxReportEvents = 100000

// writeReport renders, signs and sends a report (or only its signature),
// and records that it was made.
func (s *Server) writeReport(w http.ResponseWriter, r *http.Request, q reportQuery, rep report.Report, targetKind, targetID string) {
	if len(rep.Events) >= maxReportEvents {
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("more than %d events: a report this large is not made (a user's: ask for a shorter period)", maxReportEvents-1))
		return
	}
	render, ext, ctype := report.JSON, "json", "application/json"
	if q.pdf {
		render, ext, ctype = report.PDF, "pdf", "application/pdf"
	}
	body, err := render(rep)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	keyID, sig := s.o.Signer.Sign(body)
	w.Header().Set("Bodycam-Report-Through", strconv.FormatInt(rep.Through, 10))
	w.Header().Set("Bodycam-Signing-Key-Id", keyID)
	w.Header().Set("Cache-Control", "no-store")
	name := fmt.Sprintf("audit-%s-%s-%d.%s", rep.Kind, rep.Subject, rep.Through, ext)
	if q.signature {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".sig"))
		w.WriteHeader(http.StatusOK)
		w.Write(sig)
		return
	}
	sum := sha256.Sum256(body)
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionReport, TargetKind: targetKind, TargetID: targetID,
		Detail: fmt.Sprintf("audit report (%s) of the custody ledger through event %d, %d events, sha256 %s", ext, rep.Through, len(rep.Events), hex.EncodeToString(sum[:]))}); err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Bodycam-Signature", base64.StdEncoding.EncodeToString(sig))
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// recordingReport: GET /api/v1/recordings/{id}/audit, the recording's
// custody history (its readers).
func (s *Server) recordingReport(w http.ResponseWriter, r *http.Request) {
	q, ok := parseReportQuery(w, r)
	if !ok {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	at, ok := s.ledgerState(w, r, q.through)
	if !ok {
		return
	}
	events, err := s.o.Cases.CustodyEvents(r.Context(), catalog.CustodyFilter{TargetIDs: []string{rec.ID}, Through: at.Seq})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	facts := []report.Fact{{Name: "Device", Value: rec.DeviceID}, {Name: "Officer", Value: rec.OfficerID},
		{Name: "Kind", Value: string(rec.Kind)}, {Name: "Started", Value: rec.StartedAt.UTC().Format(time.RFC3339Nano)}}
	if rec.Kind == "" {
		facts[2].Value = string(evidence.KindStream)
	}
	rep := report.New(report.KindRecording, rec.ID, "Custody history of recording "+rec.ID, facts, events, at.Seq, at.Hash, at.At)
	s.writeReport(w, r, q, rep, "recording", rec.ID)
}

// caseReport: GET /api/v1/cases/{id}/audit, the case's custody history:
// its events and those of its recordings while they were linked to it
// (as GET …/custody; the case's readers).
func (s *Server) caseReport(w http.ResponseWriter, r *http.Request) {
	q, ok := parseReportQuery(w, r)
	if !ok {
		return
	}
	c, ok := s.loadCase(w, r, false)
	if !ok {
		return
	}
	at, ok := s.ledgerState(w, r, q.through)
	if !ok {
		return
	}
	f, err := s.caseFilter(r, c.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	f.Through = at.Seq
	events, err := s.o.Cases.CustodyEvents(r.Context(), f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	kept := events[:0]
	for _, e := range events {
		if f.Keep(e) {
			kept = append(kept, e)
		}
	}
	facts := []report.Fact{{Name: "Title", Value: c.Title}, {Name: "Officer in charge", Value: c.Officer}, {Name: "Unit", Value: c.Unit},
		{Name: "Filed", Value: c.CreatedAt.UTC().Format(time.RFC3339Nano) + " by " + c.CreatedBy}}
	rep := report.New(report.KindCase, c.ID, "Custody history of case "+c.ID, facts, kept, at.Seq, at.Hash, at.At)
	s.writeReport(w, r, q, rep, "case", c.ID)
}

// userReport: GET /api/v1/users/{id}/audit?since=&until=, what a user did
// over a period: watched, downloaded, exported, changed, and what was
// refused (auditors only, for internal affairs).
func (s *Server) userReport(w http.ResponseWriter, r *http.Request) {
	q, ok := parseReportQuery(w, r)
	if !ok {
		return
	}
	var since, until time.Time
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &since}, {"until", &until}} {
		v := r.URL.Query().Get(p.name)
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, p.name+": a time (RFC 3339), required")
			return
		}
		*p.t = t.UTC()
	}
	if !until.After(since) {
		writeError(w, http.StatusBadRequest, "until must be after since")
		return
	}
	id := r.PathValue("id")
	u, err := s.o.Users.User(r.Context(), id)
	if s.userError(w, r, id, err) {
		return
	}
	at, ok := s.ledgerState(w, r, q.through)
	if !ok {
		return
	}
	events, err := s.o.Cases.CustodyEvents(r.Context(), catalog.CustodyFilter{Actor: u.ID, Since: since, Until: until, Through: at.Seq})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	facts := []report.Fact{{Name: "Name", Value: u.Name}, {Name: "Role", Value: string(u.Role)}, {Name: "Unit", Value: u.Unit}}
	rep := report.New(report.KindUser, u.ID, "Activity of user "+u.ID, facts, events, at.Seq, at.Hash, at.At)
	rep.Since, rep.Until = &since, &until
	s.writeReport(w, r, q, rep, "user", u.ID)
}
