package upload

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/seal"
	"github.com/bodycam/bodycam/storage"
)

// The API's routes other than tus's. The API lets in the roles of each
// (see api/server.go); these check what is the principal's.

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// mine reports whether who may see upload u: its dock, admins, auditors,
// supervisors (of u's officer's unit, when they have one: unit).
func mine(who evidence.User, u catalog.UploadRecord) bool {
	switch who.Role {
	case evidence.RoleDock:
		return u.Dock == who.ID
	case evidence.RoleAdmin, evidence.RoleAuditor:
		return true
	}
	return false
}

// ServeReceipt answers GET /api/v1/uploads/{id}/receipt: 200 with the
// receipt once stored (or once found to be a file already stored), 202
// while receiving or finishing, 409 with the reason when refused or
// abandoned, 404 when unknown (or another dock's).
func (s *Server) ServeReceipt(w http.ResponseWriter, r *http.Request, who evidence.User) {
	id := r.PathValue("id")
	u, err := s.o.Catalog.Upload(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && !mine(who, u)) {
		writeError(w, http.StatusNotFound, "no upload "+id)
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	switch u.State {
	case catalog.UploadStored:
		s.answerReceipt(w, r, u, false)
	case catalog.UploadAbandoned:
		if u.ReceivedSHA256 == u.SHA256 && strings.HasPrefix(u.Reason, "duplicate") {
			if prior, err := s.o.Catalog.StoredUpload(r.Context(), u.DeviceID, u.SHA256); err == nil {
				s.answerReceipt(w, r, prior, true)
				return
			}
		}
		writeJSON(w, http.StatusConflict, map[string]any{"error": u.Reason, "state": u.State})
	case catalog.UploadRefused:
		writeJSON(w, http.StatusConflict, map[string]any{"error": u.Reason, "state": u.State,
			"declared_sha256": u.SHA256, "received_sha256": u.ReceivedSHA256})
	default:
		writeJSON(w, http.StatusAccepted, map[string]any{"state": u.State, "offset": s.offset(u), "size": u.Size})
	}
}

// answerReceipt answers the stored receipt of u (202 while it is being
// written).
func (s *Server) answerReceipt(w http.ResponseWriter, r *http.Request, u catalog.UploadRecord, duplicate bool) {
	rc, body, sig, err := seal.ReadReceipt(r.Context(), s.o.Store, u.DeviceID, u.RecordingID)
	if errors.Is(err, storage.ErrNotFound) {
		writeJSON(w, http.StatusAccepted, map[string]any{"state": catalog.UploadFinishing, "offset": u.Size, "size": u.Size})
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Bodycam-Recording", u.RecordingID)
	writeJSON(w, http.StatusOK, result{Receipt: rc, Body: body, Sig: sig, Duplicate: duplicate}.body())
}

// ServeLookup answers GET /api/v1/receipts?device=D&sha256=H: the receipt
// of the device's stored file with that hash, 404 if there is none (a dock
// skips a file already stored). A dock asks only for devices it may
// upload for.
func (s *Server) ServeLookup(w http.ResponseWriter, r *http.Request, who evidence.User) {
	device, sum := r.URL.Query().Get("device"), strings.ToLower(r.URL.Query().Get("sha256"))
	if err := evidence.ValidateDeviceID(device); err != nil || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		writeError(w, http.StatusBadRequest, "device (a device id) and sha256 (64 hex digits) are required")
		return
	}
	if who.Role == evidence.RoleDock {
		dev, err := s.o.Catalog.Device(r.Context(), device)
		unit := ""
		if err == nil && dev.OfficerID != "" {
			if o, err := s.o.Catalog.User(r.Context(), dev.OfficerID); err == nil {
				unit = o.Unit
			}
		}
		if err != nil || !evidence.MayUpload(who, unit) {
			writeError(w, http.StatusNotFound, "no stored file of device "+device+" with that SHA-256")
			return
		}
	}
	u, err := s.o.Catalog.StoredUpload(r.Context(), device, sum)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no stored file of device "+device+" with that SHA-256")
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.answerReceipt(w, r, u, false)
}

type uploadJSON struct {
	ID        string `json:"id"`
	Dock      string `json:"dock"`
	DeviceID  string `json:"device_id"`
	OfficerID string `json:"officer_id"`
	FileName  string `json:"file_name"`
	Size      int64  `json:"size"`
	Offset    int64  `json:"offset"`
	SHA256    string `json:"sha256"`
	State     string `json:"state"`
	Reason    string `json:"reason"`
	// ReceivedSHA256: what the server hashed once every byte was in ("" until
	// then); differs from sha256 when refused.
	ReceivedSHA256 string     `json:"received_sha256"`
	RecordingID    string     `json:"recording_id"`
	Important      bool       `json:"important"`
	StartedAt      *time.Time `json:"started_at,omitempty"` // the recorded start, once known
	EndedAt        *time.Time `json:"ended_at,omitempty"`
	TimeSource     string     `json:"time_source"` // file, given or received: where started_at and ended_at came from
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// offset is how many bytes of u the server has.
func (s *Server) offset(u catalog.UploadRecord) int64 {
	if u.State == catalog.UploadStored {
		return u.Size
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partials[u.ID].offset
}

// ServeList answers GET /api/v1/uploads (?dock=, ?device=, ?state=,
// ?limit=): newest first; a dock its own, a supervisor with a unit their
// unit's, admins and auditors every one.
func (s *Server) ServeList(w http.ResponseWriter, r *http.Request, who evidence.User) {
	q := r.URL.Query()
	f := catalog.UploadFilter{Dock: q.Get("dock"), DeviceID: q.Get("device"), State: catalog.UploadState(q.Get("state"))}
	if f.State != "" && !f.State.Valid() {
		writeError(w, http.StatusBadRequest, "state: one of receiving, finishing, stored, refused, abandoned")
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: 1 to 1000")
			return
		}
		f.Limit = n
	}
	switch who.Role {
	case evidence.RoleDock:
		if f.Dock != "" && f.Dock != who.ID {
			// Another dock's: none of them is this dock's to see.
			writeJSON(w, http.StatusOK, map[string]any{"items": []uploadJSON{}})
			return
		}
		f.Dock = who.ID
	case evidence.RoleSupervisor:
		f.Unit = who.Unit
	}
	ups, err := s.o.Catalog.Uploads(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	items := make([]uploadJSON, 0, len(ups))
	for _, u := range ups {
		items = append(items, uploadJSON{ID: u.ID, Dock: u.Dock, DeviceID: u.DeviceID, OfficerID: u.OfficerID, FileName: u.FileName,
			Size: u.Size, Offset: s.offset(u), SHA256: u.SHA256, State: string(u.State), Reason: u.Reason, ReceivedSHA256: u.ReceivedSHA256,
			RecordingID: u.RecordingID, Important: u.Important, StartedAt: timeOrNil(u.StartedAt), EndedAt: timeOrNil(u.EndedAt),
			TimeSource: string(u.TimeSource), CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// ServeReleased answers POST /api/v1/uploads/{id}/released: the dock says
// it deleted the recorder's copy of a stored file (after checking its
// receipt); recorded in the custody ledger.
func (s *Server) ServeReleased(w http.ResponseWriter, r *http.Request, who evidence.User) {
	id := r.PathValue("id")
	u, err := s.o.Catalog.Upload(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && u.Dock != who.ID) {
		writeError(w, http.StatusNotFound, "no upload "+id)
		return
	} else if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if u.State != catalog.UploadStored {
		writeError(w, http.StatusConflict, "upload "+id+" is "+string(u.State)+": a recorder's copy may be released only once its file is stored")
		return
	}
	now := time.Now().UTC()
	s.record(r.Context(), evidence.CustodyEvent{Actor: who.ID, Role: string(who.Role), Remote: r.RemoteAddr, Action: ActionReleased,
		TargetKind: "recording", TargetID: u.RecordingID, Detail: "the recorder's copy deleted by dock " + who.ID + " after its receipt verified: " + uploadDetail(u.Upload) + " (upload " + u.ID + ")"})
	s.o.Log.Info("recorder's copy released", "upload", id, "recording", u.RecordingID, "dock", who.ID)
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "recording_id": u.RecordingID, "released_at": now})
}
