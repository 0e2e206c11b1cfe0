package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/password"
)

// Approval before copying (issue 16). With it required, a copy of evidence
// leaving the system, a download of a recording's media (its original
// file, /media?download=, a clip's or redacted copy's download) or a
// case's export, needs a grant: a copy request (who, what, why) approved
// by a supervisor other than the requester, valid for a time and a number
// of uses. Every request, decision and use, and every copy refused for
// want of a grant, is a custody event. Watching in the console (playback
// without download) is not a copy: it is allowed by role and recorded as
// before.

// CopyRequests keeps copy requests and their grants (catalog).
type CopyRequests interface {
	CreateCopyRequest(ctx context.Context, r evidence.CopyRequest) error
	CopyRequest(ctx context.Context, id string) (evidence.CopyRequest, error)
	CopyRequests(ctx context.Context, f catalog.CopyRequestFilter) ([]evidence.CopyRequest, error)
	DecideCopyRequest(ctx context.Context, id, by, note string, approve bool, at, expires time.Time) (evidence.CopyRequest, error)
	UseCopyGrant(ctx context.Context, id, user, kind, target string, at time.Time) (evidence.CopyRequest, error)
}

// CopyApproval is the rule of approval before copying. Its zero value is
// off: copies go out as the roles allow (tests of other parts);
// bodycam serve requires approval unless told otherwise.
type CopyApproval struct {
	Required bool
	// Exempt roles copy without a grant (bodycam serve
	// --copy-approval-exempt auditor); their downloads and exports are
	// custody events as ever.
	Exempt []evidence.Role
	// GrantTTL: how long a grant is valid when its decision does not say
	// (zero: DefaultGrantTTL); at most evidence.MaxCopyGrant.
	GrantTTL time.Duration
	// Now is the clock grants are checked against (nil: time.Now).
	Now func() time.Time
}

// DefaultGrantTTL is how long a grant is valid unless configured or
// decided otherwise.
const DefaultGrantTTL = 24 * time.Hour

// GrantHeader carries a grant's id on a download, as the query
// parameter grant does.
const GrantHeader = "X-Bodycam-Grant"

func (s *Server) now() time.Time {
	if s.o.CopyApproval.Now != nil {
		return s.o.CopyApproval.Now()
	}
	return time.Now()
}

func (s *Server) grantTTL() time.Duration {
	if d := s.o.CopyApproval.GrantTTL; d > 0 {
		return min(d, evidence.MaxCopyGrant)
	}
	return DefaultGrantTTL
}

// copyJSON is a copy request as the API gives it: its state now (a grant
// expired or used up says so) and, once granted, how to use it.
type copyJSON struct {
	evidence.CopyRequest
	// Grant is what a download carries to use the grant (query
	// parameter, or the X-Bodycam-Grant header's value).
	Grant string `json:"grant,omitempty"`
}

func (s *Server) toCopyJSON(c evidence.CopyRequest) copyJSON {
	j := copyJSON{CopyRequest: c}
	j.State = c.StateAt(s.now())
	if j.State == evidence.CopyGranted {
		j.Grant = "grant=" + c.ID
	}
	return j
}

// copiesReady answers 503 when this server keeps no copy requests.
func (s *Server) copiesReady(w http.ResponseWriter) bool {
	if s.o.Copies == nil {
		writeError(w, http.StatusServiceUnavailable, "copy requests are not kept by this server")
		return false
	}
	return true
}

// mayReadCopy reports whether the principal may read what c would copy:
// the recording (mayReadRecording) or the case (evidence.MayReadCase).
// found is false when the thing does not exist.
func (s *Server) mayReadCopy(r *http.Request, kind, id string) (found, may bool, err error) {
	switch kind {
	case evidence.CopyOfRecording:
		rec, err := s.o.Catalog.Recording(r.Context(), id)
		if errors.Is(err, catalog.ErrNotFound) {
			return false, false, nil
		}
		if err != nil {
			return false, false, err
		}
		return true, s.mayReadRecording(r, rec), nil
	case evidence.CopyOfCase:
		if s.o.Cases == nil {
			return false, false, nil
		}
		c, err := s.o.Cases.Case(r.Context(), id)
		if errors.Is(err, catalog.ErrNotFound) {
			return false, false, nil
		}
		if err != nil {
			return false, false, err
		}
		return true, evidence.MayReadCase(principalOf(r).User, c), nil
	}
	return false, false, nil
}

// copyEvent is a custody event about copy request c: its target is the
// recording or case copied (a case's carries its case id), its detail
// names the request.
func copyEvent(c evidence.CopyRequest, action, detail, outcome string) evidence.CustodyEvent {
	e := evidence.CustodyEvent{Action: action, TargetKind: c.Kind, TargetID: c.TargetID, Detail: "copy request " + c.ID + ": " + detail, Outcome: outcome}
	if c.Kind == evidence.CopyOfCase {
		e.CaseID = c.TargetID
	}
	return e
}

// createCopyRequest: POST /api/v1/copy-requests, an officer, supervisor or
// auditor who may read the thing: {"kind": "recording"|"case", "id",
// "reason" (required), "uses" (1 to evidence.MaxCopyUses, default 1)}.
// 201 with the request, pending. In the custody ledger before it is kept.
func (s *Server) createCopyRequest(w http.ResponseWriter, r *http.Request) {
	if !s.copiesReady(w) {
		return
	}
	var req struct {
		Kind   string `json:"kind"`
		ID     string `json:"id"`
		Reason string `json:"reason"`
		Uses   *int   `json:"uses"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Kind != evidence.CopyOfRecording && req.Kind != evidence.CopyOfCase {
		writeError(w, http.StatusBadRequest, `kind: "recording" (its original file, media, clips and redacted copies) or "case" (its export)`)
		return
	}
	if req.ID == "" || len(req.ID) > 200 {
		writeError(w, http.StatusBadRequest, "id: the recording's or case's id")
		return
	}
	if err := evidence.ValidateCopyText("reason", req.Reason, true); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	uses := 1
	if req.Uses != nil {
		uses = *req.Uses
	}
	if uses < 1 || uses > evidence.MaxCopyUses {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("uses: 1 to %d downloads", evidence.MaxCopyUses))
		return
	}
	found, may, err := s.mayReadCopy(r, req.Kind, req.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if !found || !may {
		why := "no " + req.Kind + " " + req.ID
		if found {
			why = req.Kind + " " + req.ID + " is not one this user may read"
		}
		s.conceal(w, r, "no "+req.Kind+" "+req.ID, why)
		return
	}
	c := evidence.CopyRequest{ID: "cr-" + password.NewSecret()[:16], Kind: req.Kind, TargetID: req.ID, Reason: req.Reason,
		Uses: uses, UsesLeft: uses, RequestedBy: userOf(r), RequestedAt: s.now().UTC().Truncate(time.Microsecond), State: evidence.CopyPending}
	detail := fmt.Sprintf("copy of %s asked for, %d use(s), reason: %s", c.Target(), uses, c.Reason)
	if err := s.record(r, copyEvent(c, evidence.ActionCopyRequest, detail, evidence.OutcomeOK)); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the request cannot be recorded in the custody ledger now; not kept")
		return
	}
	if err := s.o.Copies.CreateCopyRequest(r.Context(), c); err != nil {
		s.record(r, copyEvent(c, evidence.ActionCopyRequest, "not kept: "+err.Error(), evidence.OutcomeFailed))
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.toCopyJSON(c))
}

// copyScope tells, for one request, whether its principal sees each copy
// request: their own; an auditor every one; a supervisor also those of
// things they may read (those they may decide). Each thing is looked up
// once.
func (s *Server) copyScope(r *http.Request) func(c evidence.CopyRequest) bool {
	p := principalOf(r)
	seen := map[string]bool{}
	return func(c evidence.CopyRequest) bool {
		switch {
		case c.RequestedBy == p.ID, p.Role == evidence.RoleAuditor:
			return true
		case p.Role != evidence.RoleSupervisor:
			return false
		}
		k := c.Kind + "\x00" + c.TargetID
		if ok, done := seen[k]; done {
			return ok
		}
		_, may, err := s.mayReadCopy(r, c.Kind, c.TargetID)
		seen[k] = err == nil && may
		return seen[k]
	}
}

var copyStates = []string{evidence.CopyPending, evidence.CopyGranted, evidence.CopyRefused, evidence.CopyExpired, evidence.CopyUsed}

// listCopyRequests: GET /api/v1/copy-requests[?state=], an officer,
// supervisor or auditor: the requests they see (copyScope), newest first,
// in a state now if asked (pending, granted, refused, expired, used).
func (s *Server) listCopyRequests(w http.ResponseWriter, r *http.Request) {
	if !s.copiesReady(w) {
		return
	}
	state := r.URL.Query().Get("state")
	if state != "" && !slices.Contains(copyStates, state) {
		writeError(w, http.StatusBadRequest, "state: one of "+strings.Join(copyStates, ", "))
		return
	}
	f := catalog.CopyRequestFilter{}
	if p := principalOf(r); p.Role == evidence.RoleOfficer {
		f.RequestedBy = p.ID
	}
	switch state {
	case evidence.CopyPending, evidence.CopyRefused:
		f.State = state
	case evidence.CopyGranted, evidence.CopyExpired, evidence.CopyUsed:
		f.State = evidence.CopyGranted
	}
	list, err := s.o.Copies.CopyRequests(r.Context(), f)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	sees := s.copyScope(r)
	items := []copyJSON{}
	for _, c := range list {
		if j := s.toCopyJSON(c); (state == "" || j.State == state) && sees(c) {
			items = append(items, j)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "approval_required": s.o.CopyApproval.Required})
}

// copyRequest loads the copy request of the path that the principal sees,
// answering the concealing 404 itself otherwise.
func (s *Server) copyRequest(w http.ResponseWriter, r *http.Request) (evidence.CopyRequest, bool) {
	id := r.PathValue("id")
	c, err := s.o.Copies.CopyRequest(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		s.conceal(w, r, "no copy request "+id, "no copy request "+id)
		return c, false
	}
	if err != nil {
		s.internal(w, r, err)
		return c, false
	}
	if !s.copyScope(r)(c) {
		s.conceal(w, r, "no copy request "+id, "copy request "+id+" is not one this user may see")
		return c, false
	}
	return c, true
}

// getCopyRequest: GET /api/v1/copy-requests/{id}, whoever sees it.
func (s *Server) getCopyRequest(w http.ResponseWriter, r *http.Request) {
	if !s.copiesReady(w) {
		return
	}
	if c, ok := s.copyRequest(w, r); ok {
		writeJSON(w, http.StatusOK, s.toCopyJSON(c))
	}
}

// decideCopyRequest: POST /api/v1/copy-requests/{id}/decision, a
// supervisor who may read the thing and is not the requester:
// {"approve": bool, "note", "valid_for": a Go duration (a grant's;
// default the server's --copy-grant-ttl, at most 168h)}. Final: a decided
// request is 409. One's own request is 403, a refusal in the ledger.
func (s *Server) decideCopyRequest(w http.ResponseWriter, r *http.Request) {
	if !s.copiesReady(w) {
		return
	}
	var req struct {
		Approve  *bool  `json:"approve"`
		Note     string `json:"note"`
		ValidFor string `json:"valid_for"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Approve == nil {
		writeError(w, http.StatusBadRequest, "approve: true (grant) or false (refuse)")
		return
	}
	if err := evidence.ValidateCopyText("note", req.Note, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ttl := s.grantTTL()
	if req.ValidFor != "" {
		d, err := time.ParseDuration(req.ValidFor)
		if err != nil || d <= 0 || d > evidence.MaxCopyGrant {
			writeError(w, http.StatusBadRequest, "valid_for: a duration such as 24h, more than 0 and at most "+evidence.MaxCopyGrant.String())
			return
		}
		ttl = d
	}
	c, ok := s.copyRequest(w, r)
	if !ok {
		return
	}
	// A supervisor sees the request either as its requester or because
	// they may read the thing; the requester is refused below.
	action := evidence.ActionCopyRefuse
	if *req.Approve {
		action = evidence.ActionCopyApprove
	}
	me := userOf(r)
	if c.RequestedBy == me {
		msg := "a copy request is decided by a supervisor other than its requester; " + me + " asked for " + c.ID
		s.o.Log.Warn("denied", "user", me, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", msg)
		s.metrics.denied.Inc()
		s.record(r, copyEvent(c, action, "refused: own request", evidence.OutcomeDenied))
		writeError(w, http.StatusForbidden, msg)
		return
	}
	if c.State != evidence.CopyPending {
		writeError(w, http.StatusConflict, "copy request "+c.ID+" was "+c.State+" already by "+c.DecidedBy+"; a decision is final (ask again for another)")
		return
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	expires := at.Add(ttl)
	detail := "refused"
	if *req.Approve {
		detail = fmt.Sprintf("granted to %s for %d use(s) until %s", c.RequestedBy, c.Uses, expires.Format(time.RFC3339))
	}
	if req.Note != "" {
		detail += ", note: " + req.Note
	}
	if err := s.record(r, copyEvent(c, action, detail, evidence.OutcomeOK)); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the decision cannot be recorded in the custody ledger now; not taken")
		return
	}
	d, err := s.o.Copies.DecideCopyRequest(r.Context(), c.ID, me, req.Note, *req.Approve, at, expires)
	if err != nil {
		s.record(r, copyEvent(c, action, "not taken: "+err.Error(), evidence.OutcomeFailed))
		if errors.Is(err, catalog.ErrConflict) {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.toCopyJSON(d))
}

// takeGrant decides whether a copy of kind ("recording" or "case") id may
// go out to the request's principal: yes with approval off, for an exempt
// role, or when the request carries a grant (query parameter grant, or
// the X-Bodycam-Grant header) of theirs for that thing, unexpired, with a
// use left, whose use it then takes (one, atomically) and records
// (custody action copy_use). Otherwise it answers the refusal itself
// (403 saying why and how to ask; 503 when the ledger cannot take it),
// records it in the custody ledger, and returns false. Call it once the
// request is known to be otherwise servable, just before the copy's own
// custody event: each call with a grant takes a use.
func (s *Server) takeGrant(w http.ResponseWriter, r *http.Request, kind, id string) bool {
	return s.takeGrantFor(w, r, kind, id, "")
}

// takeGrantFor is takeGrant for a copy that for names (a share: "share
// <id>"), said in its custody events after the request line.
func (s *Server) takeGrantFor(w http.ResponseWriter, r *http.Request, kind, id, forWhat string) bool {
	pol := s.o.CopyApproval
	p := principalOf(r)
	if !pol.Required || slices.Contains(pol.Exempt, p.Role) {
		return true
	}
	what := r.Method + " " + r.URL.Path
	if q := r.URL.RawQuery; q != "" {
		what += "?" + q
	}
	if forWhat != "" {
		what += " (" + forWhat + ")"
	}
	target := evidence.CopyRequest{Kind: kind, TargetID: id}
	refuse := func(grant, why string) bool {
		msg := "copy approval required: " + why
		s.o.Log.Warn("denied", "user", p.ID, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", msg)
		s.metrics.denied.Inc()
		e := copyEvent(target, evidence.ActionCopyUse, "", evidence.OutcomeDenied)
		e.Detail = "copy refused: " + why + "; " + what
		if grant != "" {
			e.Detail = "grant " + grant + ": " + e.Detail
		}
		if err := s.record(r, e); err != nil {
			s.o.Log.Error("refused copy not recorded", "user", p.ID, "err", err)
		}
		writeError(w, http.StatusForbidden, msg)
		return false
	}
	ask := fmt.Sprintf(`ask at POST /api/v1/copy-requests {"kind":%q,"id":%q,"reason":"…"}, have it approved by a supervisor, and download with ?grant=<its id>`, kind, id)
	grant := r.URL.Query().Get("grant")
	if grant == "" {
		grant = r.Header.Get(GrantHeader)
	}
	if grant == "" {
		return refuse("", "no grant; "+ask)
	}
	if s.o.Copies == nil {
		writeError(w, http.StatusServiceUnavailable, "copy requests are not kept by this server; no copy can be approved")
		return false
	}
	if len(grant) > 64 {
		return refuse("", "not a grant id; "+ask)
	}
	c, err := s.o.Copies.CopyRequest(r.Context(), grant)
	if errors.Is(err, catalog.ErrNotFound) {
		return refuse(grant, "no grant "+grant+" of yours; "+ask)
	}
	if err != nil {
		s.internal(w, r, err)
		return false
	}
	now := s.now()
	switch state := c.StateAt(now); {
	case c.RequestedBy != p.ID:
		// Whose it is is not told: a grant is its requester's alone.
		return refuse(grant, "no grant "+grant+" of yours; "+ask)
	case c.Kind != kind || c.TargetID != id:
		return refuse(grant, "grant "+grant+" is for "+c.Target()+", not "+kind+" "+id+"; "+ask)
	case state == evidence.CopyPending:
		return refuse(grant, "copy request "+grant+" is not decided yet (a supervisor other than you decides it)")
	case state == evidence.CopyRefused:
		return refuse(grant, "copy request "+grant+" was refused by "+c.DecidedBy+"; "+ask)
	case state == evidence.CopyExpired:
		return refuse(grant, "grant "+grant+" expired at "+c.ExpiresAt.Format(time.RFC3339)+"; "+ask)
	case state == evidence.CopyUsed:
		return refuse(grant, fmt.Sprintf("grant %s is used up (%d of %d uses); %s", grant, c.Uses, c.Uses, ask))
	}
	used, err := s.o.Copies.UseCopyGrant(r.Context(), grant, p.ID, kind, id, now)
	if errors.Is(err, catalog.ErrConflict) {
		// Another download took its last use, or it expired, meanwhile.
		return refuse(grant, "grant "+grant+" is used up or expired; "+ask)
	}
	if err != nil {
		s.internal(w, r, err)
		return false
	}
	detail := fmt.Sprintf("grant used (%d of %d uses left): %s", used.UsesLeft, used.Uses, what)
	if err := s.record(r, copyEvent(used, evidence.ActionCopyUse, detail, evidence.OutcomeOK)); err != nil {
		// The use is taken but not told: no record, no copy.
		s.o.Log.Error("grant use not recorded; copy refused", "grant", grant, "user", p.ID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the copy cannot be recorded in the custody ledger now; refused (the grant's use is spent)")
		return false
	}
	s.o.Log.Info("copy grant used", slog.String("grant", grant), slog.String("user", p.ID), slog.String("target", used.Target()), slog.Int("uses_left", used.UsesLeft))
	return true
}
