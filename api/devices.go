package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
	"unicode"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/password"
)

type deviceRequest struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	OfficerID string `json:"officer_id"`
}

type deviceCreated struct {
	ID           string `json:"id"`
	RTSPUsername string `json:"rtsp_username"`
	RTSPPassword string `json:"rtsp_password"`
	PublishURL   string `json:"publish_url"`
}

type deviceJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	OfficerID string    `json:"officer_id"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func toDeviceJSON(d evidence.Device) deviceJSON {
	return deviceJSON{ID: d.ID, Name: d.Name, OfficerID: d.OfficerID, Disabled: d.Disabled, CreatedAt: d.CreatedAt}
}

// validText checks a free-text field: bounded and printable.
func validText(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s: longer than %d bytes", field, max)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s: contains a control character", field)
		}
	}
	return nil
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request) {
	var req deviceRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := evidence.ValidateDeviceID(req.ID); err != nil {
		writeError(w, http.StatusBadRequest, "id: "+err.Error())
		return
	}
	if req.Name == "" {
		req.Name = req.ID
	}
	for _, err := range []error{validText("name", req.Name, 200), validText("officer_id", req.OfficerID, 64)} {
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	salt := password.NewSecret()
	secret := s.o.Keys.DeviceSecret(req.ID, salt)
	release, ok := s.hashSlot(w, r)
	if !ok {
		return
	}
	hash := s.o.Passwords.Hash(secret)
	release()
	d := evidence.Device{ID: req.ID, Name: req.Name, OfficerID: req.OfficerID,
		SecretHash: hash, SecretSalt: salt, CreatedAt: time.Now().UTC()}
	if err := s.o.Catalog.CreateDevice(r.Context(), d); err != nil {
		if errors.Is(err, catalog.ErrExists) {
			writeError(w, http.StatusConflict, "device "+req.ID+" already exists (ids of removed devices stay reserved)")
			return
		}
		s.internal(w, r, err)
		return
	}
	s.o.Log.Info("device registered", "device", d.ID, "officer", d.OfficerID, "remote", r.RemoteAddr)
	officer := "no officer"
	if d.OfficerID != "" {
		officer = "officer " + d.OfficerID
	}
	s.account(r, "device", d.ID, fmt.Sprintf("device registered: %q, assigned to %s; RTSP credentials issued", d.Name, officer))
	w.Header().Set("Location", "/api/v1/devices/"+d.ID)
	w.Header().Set("Cache-Control", "no-store") // the secret is in the body
	writeJSON(w, http.StatusCreated, deviceCreated{
		ID: d.ID, RTSPUsername: d.ID, RTSPPassword: secret, PublishURL: s.publishURL(r, d.ID),
	})
}

// publishURL is where the device should push: the host the client reached
// the API on, at the RTSP port.
func (s *Server) publishURL(r *http.Request, id string) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	if host == "" {
		host = "localhost"
	}
	scheme := "rtsp://"
	if s.o.RTSPS {
		scheme = "rtsps://"
	}
	return scheme + net.JoinHostPort(host, s.o.RTSPPort) + "/" + id
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	ds, err := s.o.Catalog.Devices(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]deviceJSON, 0, len(ds))
	for _, d := range ds {
		items = append(items, toDeviceJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	id, ok := pathDeviceID(w, r)
	if !ok {
		return
	}
	d, err := s.o.Catalog.Device(r.Context(), id)
	if s.deviceError(w, r, id, err) {
		return
	}
	writeJSON(w, http.StatusOK, toDeviceJSON(d))
}

// deleteDevice retires a device: it can no longer publish, its id stays
// reserved, and its recordings are untouched (evidence is never deleted by
// removing a device).
func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request) {
	id, ok := pathDeviceID(w, r)
	if !ok {
		return
	}
	if s.deviceError(w, r, id, s.o.Catalog.DisableDevice(r.Context(), id)) {
		return
	}
	s.o.Log.Info("device disabled", "device", id, "remote", r.RemoteAddr)
	s.account(r, "device", id, "device retired: its RTSP credentials stop working; its recordings are kept")
	w.WriteHeader(http.StatusNoContent)
}

// pathDeviceID reads and checks the {id} of a device path, answering 400
// itself when it is not a valid id.
func pathDeviceID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := evidence.ValidateDeviceID(id); err != nil {
		writeError(w, http.StatusBadRequest, "id: "+err.Error())
		return "", false
	}
	return id, true
}

// deviceError answers a catalog error about a device (404 or 500) and
// reports whether there was one.
func (s *Server) deviceError(w http.ResponseWriter, r *http.Request, id string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, "no device "+id)
	default:
		s.internal(w, r, err)
	}
	return true
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.o.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error; see the server log")
}
