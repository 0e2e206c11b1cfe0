package api

import (
	"net/http"

	"github.com/bodycam/bodycam/evidence"
)

// Uploads serves dock upload (package upload): the tus endpoints and the
// receipts. The API authenticates and lets in the roles of each route;
// the handlers are given the principal and check what is theirs.
type Uploads interface {
	ServeTus(w http.ResponseWriter, r *http.Request, who evidence.User)
	ServeReceipt(w http.ResponseWriter, r *http.Request, who evidence.User)
	ServeLookup(w http.ResponseWriter, r *http.Request, who evidence.User)
	ServeList(w http.ResponseWriter, r *http.Request, who evidence.User)
	ServeReleased(w http.ResponseWriter, r *http.Request, who evidence.User)
}

// uploadRoutes adds the dock upload routes. Only docks upload (and say a
// recorder's copy is released); admins and auditors also read receipts
// and the list, supervisors the list of their unit's.
func (s *Server) uploadRoutes(route func(string, http.HandlerFunc)) {
	serve := func(h func(Uploads, http.ResponseWriter, *http.Request, evidence.User)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.o.Uploads == nil {
				writeError(w, http.StatusServiceUnavailable, "dock upload is not configured on this server")
				return
			}
			h(s.o.Uploads, w, r, principalOf(r).User)
		}
	}
	tus := serve(Uploads.ServeTus)
	docks := s.allow(evidence.RoleDock)
	route("POST /api/v1/uploads/", docks(tus))
	route("POST /api/v1/uploads", docks(tus))
	route("HEAD /api/v1/uploads/{id}", docks(tus))
	route("PATCH /api/v1/uploads/{id}", docks(tus))
	route("DELETE /api/v1/uploads/{id}", docks(tus))
	// tus discovery: the protocol's version, extensions and size limit;
	// no credentials (browsers send none with a preflight, which it also
	// answers: a page of any origin may upload with a dock's token).
	route("OPTIONS /api/v1/uploads/", tus)
	route("OPTIONS /api/v1/uploads", tus)
	route("GET /api/v1/uploads", s.allow(evidence.RoleDock, evidence.RoleAdmin, evidence.RoleAuditor, evidence.RoleSupervisor)(serve(Uploads.ServeList)))
	receiptReaders := s.allow(evidence.RoleDock, evidence.RoleAdmin, evidence.RoleAuditor)
	route("GET /api/v1/uploads/{id}/receipt", receiptReaders(serve(Uploads.ServeReceipt)))
	route("GET /api/v1/receipts", receiptReaders(serve(Uploads.ServeLookup)))
	route("POST /api/v1/uploads/{id}/released", docks(serve(Uploads.ServeReleased)))
}
