package api

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/caselink"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Cases is what the case endpoints need from the catalog.
type Cases interface {
	CreateCase(ctx context.Context, c evidence.Case) error
	Case(ctx context.Context, id string) (evidence.Case, error)
	Cases(ctx context.Context, f catalog.CaseFilter) ([]evidence.Case, error)
	TransitionCase(ctx context.Context, t evidence.CaseTransition) error
	CaseTransitions(ctx context.Context, caseID string) ([]evidence.CaseTransition, error)
	EvidenceLinks(ctx context.Context, caseID, recordingID string) ([]evidence.EvidenceLink, error)
	CustodyExcerpt(ctx context.Context, f catalog.CustodyFilter, signer catalog.Signer) (evidence.Excerpt, error)
	CustodyEvents(ctx context.Context, f catalog.CustodyFilter) ([]evidence.CustodyEvent, error)
	CustodyHead(ctx context.Context) (int64, string, error)
	CustodyEvent(ctx context.Context, seq int64) (evidence.CustodyEvent, error)
	VerifyLedger(ctx context.Context, key func(id string) ed25519.PublicKey) (int64, error)
}

// Custody records custody events (the ledger).
type Custody interface {
	Record(ctx context.Context, e evidence.CustodyEvent) error
	DeniedAudit
}

// Linker links footage to cases and unlinks it (package caselink: the one
// owner of that rule, shared with ingest).
type Linker interface {
	Link(ctx context.Context, a caselink.Actor, req caselink.Request) (evidence.EvidenceLink, error)
	Unlink(ctx context.Context, a caselink.Actor, caseID, linkID, reason string) (evidence.EvidenceLink, error)
}

// record appends a custody event about r's principal.
func (s *Server) record(r *http.Request, e evidence.CustodyEvent) error {
	if s.o.Custody == nil {
		return nil
	}
	p := principalOf(r)
	e.Actor, e.Role, e.Remote = p.ID, string(p.Role), r.RemoteAddr
	return s.o.Custody.Record(r.Context(), e)
}

type caseJSON struct {
	evidence.CaseRecord
	NextState   string                      `json:"next_state,omitempty"`
	Transitions []evidence.TransitionRecord `json:"transitions,omitempty"`
	Evidence    []evidence.LinkRecord       `json:"evidence,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toCaseJSON(c evidence.Case) caseJSON {
	return caseJSON{CaseRecord: evidence.NewCaseRecord(c), NextState: string(c.State.Next())}
}

// createCase files a case. An officer files their own (officer in charge:
// themselves); a supervisor names the officer in charge.
func (s *Server) createCase(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID      string   `json:"id"`
		Title   string   `json:"title"`
		Officer string   `json:"officer"`
		Members []string `json:"members"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p := principalOf(r)
	if p.Role == evidence.RoleOfficer {
		if req.Officer != "" && req.Officer != p.ID {
			s.deny(w, r, http.StatusForbidden, p.ID, "an officer files cases in their own charge")
			return
		}
		req.Officer = p.ID
	}
	if err := evidence.ValidateCaseID(req.ID); err != nil {
		writeError(w, http.StatusBadRequest, "id: "+err.Error())
		return
	}
	if err := validText("title", req.Title, 300); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	officer, err := s.o.Users.User(r.Context(), req.Officer)
	if err != nil || officer.Role != evidence.RoleOfficer {
		writeError(w, http.StatusBadRequest, "officer: "+req.Officer+" is not an officer")
		return
	}
	if p.Role == evidence.RoleSupervisor && p.Unit != "" && officer.Unit != p.Unit {
		s.deny(w, r, http.StatusForbidden, p.ID, "officer "+officer.ID+" is not in the supervisor's unit")
		return
	}
	for _, m := range req.Members {
		if _, err := s.o.Users.User(r.Context(), m); err != nil {
			writeError(w, http.StatusBadRequest, "members: no user "+m)
			return
		}
	}
	c := evidence.Case{ID: req.ID, Title: req.Title, State: evidence.CaseFiled, Officer: officer.ID, Unit: officer.Unit,
		Members: req.Members, CreatedBy: p.ID, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.o.Cases.CreateCase(r.Context(), c); err != nil {
		if errors.Is(err, catalog.ErrExists) {
			// The id is taken. Saying so tells that the case exists, so a
			// case the user may not read is an audited refusal as well.
			if k, err := s.o.Cases.Case(r.Context(), c.ID); err != nil || !evidence.MayReadCase(p.User, k) {
				s.audit(r, "filing case "+c.ID+", whose id is taken by a case this user may not read")
			}
			writeError(w, http.StatusConflict, "case "+c.ID+" exists")
			return
		}
		s.internal(w, r, err)
		return
	}
	s.record(r, evidence.CustodyEvent{Action: evidence.ActionCaseCreate, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
		Detail: "filed: " + c.Title + "; officer in charge " + c.Officer})
	c, _ = s.o.Cases.Case(r.Context(), c.ID)
	writeJSON(w, http.StatusCreated, toCaseJSON(c))
}

func (s *Server) listCases(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	f := catalog.CaseFilter{}
	switch {
	case p.Role == evidence.RoleOfficer:
		f.Member = p.ID
	case p.Role == evidence.RoleSupervisor && p.Unit != "":
		f.Unit = p.Unit
	}
	list, err := s.o.Cases.Cases(r.Context(), f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]caseJSON, 0, len(list))
	for _, c := range list {
		items = append(items, toCaseJSON(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// loadCase loads the case in the path and checks the principal may read
// it (or change it), answering itself when not. A case the principal may
// not read gets the answer a missing one gets, so case ids cannot be
// probed.
func (s *Server) loadCase(w http.ResponseWriter, r *http.Request, change bool) (evidence.Case, bool) {
	id := r.PathValue("id")
	c, err := s.o.Cases.Case(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		s.conceal(w, r, "no case "+id, "no case "+id)
		return c, false
	}
	if err != nil {
		s.internal(w, r, err)
		return c, false
	}
	p := principalOf(r)
	if !evidence.MayReadCase(p.User, c) {
		s.conceal(w, r, "no case "+id, "case "+id+" is not one this user may read")
		return c, false
	}
	if change && !evidence.MayChangeCase(p.User, c) {
		s.deny(w, r, http.StatusForbidden, p.ID, "case "+id+" is not one this user may change")
		return c, false
	}
	return c, true
}

func (s *Server) getCase(w http.ResponseWriter, r *http.Request) {
	c, ok := s.loadCase(w, r, false)
	if !ok {
		return
	}
	j := toCaseJSON(c)
	steps, err := s.o.Cases.CaseTransitions(r.Context(), c.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	j.Transitions = []evidence.TransitionRecord{}
	for _, t := range steps {
		j.Transitions = append(j.Transitions, evidence.NewTransitionRecord(t))
	}
	links, err := s.o.Cases.EvidenceLinks(r.Context(), c.ID, "")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	j.Evidence = []evidence.LinkRecord{}
	for _, l := range links {
		j.Evidence = append(j.Evidence, evidence.NewLinkRecord(l))
	}
	writeJSON(w, http.StatusOK, j)
}

// transitionCase moves a case one step on its workflow.
func (s *Server) transitionCase(w http.ResponseWriter, r *http.Request) {
	c, ok := s.loadCase(w, r, true)
	if !ok {
		return
	}
	var req struct {
		To     string `json:"to"`
		Reason string `json:"reason"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := validReason(req.Reason, "every step of a case says why"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p := principalOf(r)
	to := evidence.CaseState(req.To)
	if err := evidence.CheckTransition(c, to, p.ID, p.Role); err != nil {
		s.record(r, evidence.CustodyEvent{Action: evidence.ActionCaseTransit, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
			Detail: string(c.State) + " -> " + req.To + " refused: " + err.Error(), Outcome: evidence.OutcomeDenied})
		if errors.Is(err, evidence.ErrSelfReview) {
			s.deny(w, r, http.StatusForbidden, p.ID, err.Error())
			return
		}
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	t := evidence.CaseTransition{CaseID: c.ID, From: c.State, To: to, By: p.ID, Reason: req.Reason, At: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.o.Cases.TransitionCase(r.Context(), t); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			writeError(w, http.StatusConflict, "case "+c.ID+" changed meanwhile; reload it")
			return
		}
		s.internal(w, r, err)
		return
	}
	s.record(r, evidence.CustodyEvent{Action: evidence.ActionCaseTransit, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
		Detail: string(t.From) + " -> " + string(t.To) + ": " + t.Reason})
	c, _ = s.o.Cases.Case(r.Context(), c.ID)
	writeJSON(w, http.StatusOK, toCaseJSON(c))
}

// linkEvidence links a recording, or a window of one, to a case and puts a
// legal hold on its stored objects (caselink).
func (s *Server) linkEvidence(w http.ResponseWriter, r *http.Request) {
	c, ok := s.loadCase(w, r, true)
	if !ok {
		return
	}
	var req struct {
		RecordingID string     `json:"recording_id"`
		From        *time.Time `json:"from"`
		To          *time.Time `json:"to"`
		Note        string     `json:"note"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := validText("note", req.Note, 1000); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	lr := caselink.Request{CaseID: c.ID, RecordingID: req.RecordingID, Note: req.Note}
	if req.From != nil {
		lr.From = *req.From
	}
	if req.To != nil {
		lr.To = *req.To
	}
	l, err := s.o.Links.Link(r.Context(), s.actor(r), lr)
	if err != nil {
		s.linkError(w, r, err, req.RecordingID)
		return
	}
	writeJSON(w, http.StatusCreated, evidence.NewLinkRecord(l))
}

// actor is the request's principal as caselink sees it.
func (s *Server) actor(r *http.Request) caselink.Actor {
	return caselink.Actor{User: principalOf(r).User, Remote: r.RemoteAddr}
}

// linkError answers a caselink error. Its refusals are already in the
// custody ledger; they are logged and counted here. Footage the user may
// not read gets the answer a missing recording gets.
func (s *Server) linkError(w http.ResponseWriter, r *http.Request, err error, recordingID string) {
	refused := func(code int, msg string) {
		s.o.Log.Warn("denied", "code", code, "user", userOf(r), "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", err)
		s.metrics.denied.Inc()
		writeError(w, code, msg)
	}
	switch {
	case errors.Is(err, caselink.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, caselink.ErrNotYours):
		refused(http.StatusBadRequest, "recording_id: no recording "+recordingID)
	case errors.Is(err, caselink.ErrNoRecording):
		writeError(w, http.StatusBadRequest, "recording_id: no recording "+recordingID)
	case errors.Is(err, caselink.ErrNoCase), errors.Is(err, caselink.ErrNoLink):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, caselink.ErrForbidden):
		refused(http.StatusForbidden, err.Error())
	case errors.Is(err, caselink.ErrSettled), errors.Is(err, caselink.ErrUnlinked):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, caselink.ErrHold):
		writeError(w, http.StatusServiceUnavailable, "the footage cannot be put on legal hold now; it was not linked")
	default:
		s.internal(w, r, err)
	}
}

// validReason checks a reason that goes on record: present, bounded and
// printable; missing says why it is needed.
func validReason(reason, missing string) error {
	if strings.TrimSpace(reason) == "" {
		return errors.New("reason: " + missing)
	}
	return validText("reason", reason, 1000)
}

// unlinkEvidence removes a link, with a reason, kept forever; refused once
// the case is decided. The legal hold is lifted when no other case holds
// the recording.
func (s *Server) unlinkEvidence(w http.ResponseWriter, r *http.Request) {
	c, ok := s.loadCase(w, r, true)
	if !ok {
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := validReason(req.Reason, "unlinking evidence needs a reason, kept forever"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	l, err := s.o.Links.Unlink(r.Context(), s.actor(r), c.ID, r.PathValue("link"), req.Reason)
	if err != nil {
		s.linkError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, evidence.NewLinkRecord(l))
}

// caseCustody is the case's part of the ledger, with what is needed to
// check it offline (evidence.VerifyExcerpt).
func (s *Server) caseCustody(w http.ResponseWriter, r *http.Request) {
	c, ok := s.loadCase(w, r, false)
	if !ok {
		return
	}
	x, err := s.caseExcerpt(r, c.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

// caseExcerpt: the events of the case, and those about its recordings while
// they were linked to it (evidence.InCaseRecord); the rest as digests.
func (s *Server) caseExcerpt(r *http.Request, caseID string) (evidence.Excerpt, error) {
	f, err := s.caseFilter(r, caseID)
	if err != nil {
		return evidence.Excerpt{}, err
	}
	return s.o.Cases.CustodyExcerpt(r.Context(), f, s.o.Signer)
}

// caseFilter selects a case's custody record: its events and those of the
// recordings ever linked to it, keeping those while they were linked.
func (s *Server) caseFilter(r *http.Request, caseID string) (catalog.CustodyFilter, error) {
	links, err := s.o.Cases.EvidenceLinks(r.Context(), caseID, "")
	if err != nil {
		return catalog.CustodyFilter{}, err
	}
	f := catalog.CustodyFilter{CaseID: caseID, Keep: func(e evidence.CustodyEvent) bool {
		return evidence.InCaseRecord(e, caseID, links)
	}}
	for _, l := range links {
		if !slices.Contains(f.TargetIDs, l.RecordingID) {
			f.TargetIDs = append(f.TargetIDs, l.RecordingID)
		}
	}
	return f, nil
}

// verifyLedger re-checks the whole custody ledger as stored (auditors): every
// event against its digest, the chain, every checkpoint's signature. An
// event edited or removed in the database is named.
func (s *Server) verifyLedger(w http.ResponseWriter, r *http.Request) {
	lookup, err := s.keyLookup(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	n, err := s.o.Cases.VerifyLedger(r.Context(), lookup)
	out := map[string]any{"ok": err == nil, "events_checked": n}
	outcome, detail := evidence.OutcomeOK, fmt.Sprintf("ledger ok: %d events", n)
	if err != nil {
		if !errors.Is(err, evidence.ErrLedger) {
			s.internal(w, r, err)
			return
		}
		out["reason"] = err.Error()
		outcome, detail = evidence.OutcomeFailed, err.Error()
		s.o.Log.Error("custody ledger check failed", "err", err)
	}
	s.record(r, evidence.CustodyEvent{Action: evidence.ActionVerify, TargetKind: "ledger", TargetID: "custody", Detail: detail, Outcome: outcome})
	writeJSON(w, http.StatusOK, out)
}
