package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/password"
)

// Bookmarks keeps the moments of recordings marked for review (catalog).
type Bookmarks interface {
	CreateBookmark(ctx context.Context, b evidence.Bookmark) error
	Bookmark(ctx context.Context, id string) (evidence.Bookmark, error)
	Bookmarks(ctx context.Context, recordingID string) ([]evidence.Bookmark, error)
	RemoveBookmark(ctx context.Context, id, by, reason string, at time.Time) error
}

// bookmarkJSON is a bookmark as the API gives it: its offset from the
// recording's start besides its time, so that a player seeks to it.
type bookmarkJSON struct {
	evidence.Bookmark
	OffsetSeconds float64    `json:"offset_seconds"`
	RemovedAt     *time.Time `json:"removed_at,omitempty"`
}

func toBookmarkJSON(rec evidence.Recording, b evidence.Bookmark) bookmarkJSON {
	return bookmarkJSON{Bookmark: b, OffsetSeconds: math.Round(b.At.Sub(rec.StartedAt).Seconds()*1000) / 1000, RemovedAt: timePtr(b.RemovedAt)}
}

// bookmarksReady answers 503 when this server keeps no bookmarks.
func (s *Server) bookmarksReady(w http.ResponseWriter) bool {
	if s.o.Bookmarks == nil {
		writeError(w, http.StatusServiceUnavailable, "bookmarks are not kept by this server")
		return false
	}
	return true
}

// listBookmarks: GET /api/v1/recordings/{id}/bookmarks, the readers of the
// recording; removed ones too (they say who removed them and why).
func (s *Server) listBookmarks(w http.ResponseWriter, r *http.Request) {
	if !s.bookmarksReady(w) {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	list, err := s.o.Bookmarks.Bookmarks(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]bookmarkJSON, 0, len(list))
	for _, b := range list {
		items = append(items, toBookmarkJSON(rec, b))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// createBookmark: POST /api/v1/recordings/{id}/bookmarks, an officer or a
// supervisor who may read the recording: {"at": RFC 3339} or
// {"offset_seconds": from the start}, and a "note". It is in the custody
// ledger before it is kept: a bookmark the ledger does not tell of is never
// made.
func (s *Server) createBookmark(w http.ResponseWriter, r *http.Request) {
	if !s.bookmarksReady(w) {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	var req struct {
		At            *time.Time `json:"at"`
		OffsetSeconds *float64   `json:"offset_seconds"`
		Note          string     `json:"note"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var at time.Time
	switch {
	case (req.At == nil) == (req.OffsetSeconds == nil):
		writeError(w, http.StatusBadRequest, "give the moment as at (RFC 3339) or as offset_seconds (from the recording's start), one of them")
		return
	case req.At != nil:
		at = req.At.UTC()
	default:
		off := *req.OffsetSeconds
		if math.IsNaN(off) || math.IsInf(off, 0) || off < 0 || off > 1e7 {
			writeError(w, http.StatusBadRequest, "offset_seconds: a number of seconds from the recording's start")
			return
		}
		at = rec.StartedAt.Add(time.Duration(off * float64(time.Second))).UTC()
	}
	now := time.Now().UTC()
	if err := evidence.ValidateBookmark(rec, at, req.Note, now); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	b := evidence.Bookmark{ID: "bm-" + password.NewSecret()[:16], RecordingID: rec.ID, At: at, Note: req.Note,
		CreatedBy: userOf(r), CreatedAt: now}
	detail := fmt.Sprintf("bookmark %s at %s (%s from the start): %s", b.ID, at.Format(time.RFC3339Nano),
		at.Sub(rec.StartedAt).Round(time.Millisecond), oneLineNote(req.Note))
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionBookmark, TargetKind: "recording", TargetID: rec.ID, Detail: detail}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the bookmark cannot be recorded in the custody ledger now; not set")
		return
	}
	if err := s.o.Bookmarks.CreateBookmark(r.Context(), b); err != nil {
		s.o.Log.Error("bookmark in the custody ledger but not kept", "bookmark", b.ID, "recording", rec.ID, "err", err)
		s.record(r, evidence.CustodyEvent{Action: evidence.ActionBookmark, TargetKind: "recording", TargetID: rec.ID,
			Detail: "bookmark " + b.ID + " not kept: the catalog failed", Outcome: evidence.OutcomeFailed})
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toBookmarkJSON(rec, b))
}

// removeBookmark: POST /api/v1/recordings/{id}/bookmarks/{bookmark}/remove
// with a "reason", by its author or a supervisor who may read the
// recording. The bookmark stays listed, removed, with who and why.
func (s *Server) removeBookmark(w http.ResponseWriter, r *http.Request) {
	if !s.bookmarksReady(w) {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	reason, ok := readReason(w, r, "the bookmark is removed")
	if !ok {
		return
	}
	id := r.PathValue("bookmark")
	b, err := s.o.Bookmarks.Bookmark(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) || err == nil && b.RecordingID != rec.ID {
		writeError(w, http.StatusNotFound, "no bookmark "+id+" on recording "+rec.ID)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	p := principalOf(r)
	if b.CreatedBy != p.ID && p.Role != evidence.RoleSupervisor {
		s.deny(w, r, http.StatusForbidden, p.ID, "only its author or a supervisor removes bookmark "+id)
		return
	}
	if b.Removed() {
		writeError(w, http.StatusConflict, "bookmark "+id+" was removed already")
		return
	}
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionBookmarkRemoved, TargetKind: "recording", TargetID: rec.ID,
		Detail: fmt.Sprintf("bookmark %s (at %s, by %s) removed: %s", id, b.At.Format(time.RFC3339Nano), b.CreatedBy, oneLineNote(reason))}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the removal cannot be recorded in the custody ledger now; not removed")
		return
	}
	now := time.Now().UTC()
	if err := s.o.Bookmarks.RemoveBookmark(r.Context(), id, p.ID, reason, now); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			writeError(w, http.StatusConflict, "bookmark "+id+" was removed already")
			return
		}
		s.internal(w, r, err)
		return
	}
	b.RemovedBy, b.RemovedAt, b.RemovedReason = p.ID, now, reason
	writeJSON(w, http.StatusOK, toBookmarkJSON(rec, b))
}

// readReason reads a body {"reason"}: required (why says what it must
// explain), text of at most 500 bytes. It answers 400 itself (false).
func readReason(w http.ResponseWriter, r *http.Request, why string) (string, bool) {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	if strings.TrimSpace(req.Reason) == "" {
		writeError(w, http.StatusBadRequest, "reason: say why "+why)
		return "", false
	}
	if err := validText("reason", req.Reason, 500); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return req.Reason, true
}

// oneLineNote is a note as a custody event's detail carries it: on one
// line, at most 200 characters.
func oneLineNote(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}
