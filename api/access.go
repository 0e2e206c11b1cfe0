package api

import (
	"net/http"

	"github.com/bodycam/bodycam/evidence"
)

// Who reads evidence. Admins run the system and read none; auditors read
// everything; officers their own footage; supervisors their unit's (a
// supervisor without a unit: every unit's, as a duty supervisor). The rules
// themselves are evidence.MayReadFootage and evidence.MayReadCase.
var evidenceReaders = []evidence.Role{evidence.RoleOfficer, evidence.RoleSupervisor, evidence.RoleAuditor}

// mayRead reports whether the request's principal may read footage recorded
// by officer.
func (s *Server) mayRead(r *http.Request, officer string) bool {
	return evidence.MayReadFootage(principalOf(r).User, officer, s.unitOf(r, officer))
}

// unitOf is the unit of a user, "" when unknown; only supervisors with a
// unit need it, so only they look it up.
func (s *Server) unitOf(r *http.Request, user string) string {
	p := principalOf(r)
	if user == "" || s.o.Users == nil || p.Role != evidence.RoleSupervisor || p.Unit == "" {
		return ""
	}
	u, err := s.o.Users.User(r.Context(), user)
	if err != nil {
		return ""
	}
	return u.Unit
}

// mayReadRecording is mayRead, widened by cases: an officer or supervisor
// who may read a case may read the footage linked to it.
func (s *Server) mayReadRecording(r *http.Request, rec evidence.Recording) bool {
	if s.mayRead(r, rec.OfficerID) {
		return true
	}
	p := principalOf(r)
	if s.o.Cases == nil || (p.Role != evidence.RoleOfficer && p.Role != evidence.RoleSupervisor) {
		return false
	}
	links, err := s.o.Cases.EvidenceLinks(r.Context(), "", rec.ID)
	if err != nil {
		return false
	}
	for _, l := range links {
		if !l.Active() {
			continue
		}
		if c, err := s.o.Cases.Case(r.Context(), l.CaseID); err == nil && evidence.MayReadCase(p.User, c) {
			return true
		}
	}
	return false
}

// conceal answers a signed-in principal's request for a case, recording or
// device that is missing, or that exists but is not theirs to see, with the
// same 404 (notFound), after the same work: both are audited refusals (why
// says which, in the ledger only), so that ids can be probed neither by the
// answer nor by its time.
func (s *Server) conceal(w http.ResponseWriter, r *http.Request, notFound, why string) {
	s.audit(r, why)
	writeError(w, http.StatusNotFound, notFound)
}

// audit logs, counts and records a signed-in principal's refused request.
func (s *Server) audit(r *http.Request, why string) {
	user := userOf(r)
	s.o.Log.Warn("denied", "user", user, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
	s.metrics.denied.Inc()
	if s.o.Audit != nil {
		s.o.Audit.Denied(r.Context(), user, r.Method+" "+r.URL.Path, r.RemoteAddr, why, true)
	}
}

// deviceScope tells, for one request, whether its principal may see each
// live device and its viewers: a supervisor with a unit, their unit's
// (the footage rule, evidence.MayReadFootage); others every device (the
// routes let in only those who may see them). Each device is looked up once.
func (s *Server) deviceScope(r *http.Request) func(device string) bool {
	p := principalOf(r)
	if p.Role != evidence.RoleSupervisor || p.Unit == "" {
		return func(string) bool { return true }
	}
	seen := map[string]bool{}
	return func(device string) bool {
		if ok, done := seen[device]; done {
			return ok
		}
		d, err := s.o.Catalog.Device(r.Context(), device)
		ok := err == nil && s.mayRead(r, d.OfficerID)
		seen[device] = ok
		return ok
	}
}
