package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/keyring"
)

// Shares keeps what is shared with recipients outside (catalog).
type Shares interface {
	CreateShare(ctx context.Context, s evidence.Share, codeHash string) error
	Share(ctx context.Context, id string) (catalog.ShareRecord, error)
	Shares(ctx context.Context, caseID string) ([]catalog.ShareRecord, error)
	RevokeShare(ctx context.Context, id, by, reason string, at time.Time) error
	NewShareCode(ctx context.Context, id, codeHash string) error
	UseShareCode(ctx context.Context, id, codeHash, sessionHash string, at time.Time) error
	FailShareCode(ctx context.Context, id string, max int, at time.Time) (int, bool, error)
	TakeShareDownload(ctx context.Context, id, sessionHash string, at time.Time) (int, error)
	AddShareReceipt(ctx context.Context, r catalog.ShareReceiptRecord) error
	ShareReceipts(ctx context.Context, shareID string) ([]catalog.ShareReceiptRecord, error)
}

// Sharing with recipients outside (prosecutors, the defence): a user who
// may change a case shares chosen recordings of it (the court export of
// those, with chosen derived copies) with a named recipient. The recipient
// gets a link (/share/<id>, the page that opens it) and, by another way, a
// one-time code. The code opens the share once, in one browser (a session
// cookie scoped to the share's own API path); a lost session needs a new
// code. Each download is counted against the limit, recorded in the custody
// ledger before it starts, and yields a receipt the server signs (what,
// its SHA-256, when, to whom), checkable offline with the public keys. The
// share's cookie opens nothing but the share: it is no user's session.
const (
	shareCookie      = "bodycam_share"
	shareCodeLetters = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789" // no 0/O, 1/I
	shareCodeLen     = 12
	sharePath        = "/api/v1/shared/"
)

// sharesReady answers 503 when this server does not share.
func (s *Server) sharesReady(w http.ResponseWriter) bool {
	if s.o.Shares == nil || s.o.Custody == nil || s.o.Signer == nil {
		writeError(w, http.StatusServiceUnavailable, "sharing needs the catalog's shares, the custody ledger and a signing key, and this server has none")
		return false
	}
	return true
}

// newShareCode is a one-time code, as the recipient types it (XXXX-XXXX-XXXX,
// 60 bits).
func newShareCode() string {
	b := make([]byte, shareCodeLen)
	rand.Read(b)
	var out strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			out.WriteByte('-')
		}
		out.WriteByte(shareCodeLetters[int(c)%len(shareCodeLetters)])
	}
	return out.String()
}

// shareCodeHash is what the catalog keeps of share id's code, as typed:
// case, spaces and dashes do not matter. Keyed with the credential key (as
// the bootstrap admin token's print is) and salted with the share, so that
// a catalog dump allows no offline guessing of the 60 bits, let alone of
// every share's at once.
func (s *Server) shareCodeHash(id, code string) string {
	code = strings.ToUpper(strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, code))
	if s.o.Keys == nil { // only servers that register no devices either (tests of other parts)
		return "sha256:" + hashToken("bodycam-share-code-v1\x00"+id+"\x00"+code)
	}
	return "hmac:" + s.o.Keys.DeviceSecret("\x00share-code", id+"\x00"+code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// shareJSON is a share as its case's users see it.
type shareJSON struct {
	evidence.Share
	Link     string              `json:"link"`
	Code     string              `json:"code,omitempty"` // once, when made or renewed
	State    string              `json:"state"`          // active, revoked, expired, used up
	Receipts []shareReceiptBrief `json:"receipts"`
	Opened   bool                `json:"opened"`
}

type shareReceiptBrief struct {
	ID       string    `json:"id"`
	Download int       `json:"download"`
	At       time.Time `json:"at"`
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
}

func shareState(sh evidence.Share, now time.Time) string {
	switch {
	case sh.Revoked():
		return "revoked"
	case !now.Before(sh.ExpiresAt):
		return "expired"
	case sh.Downloads >= sh.MaxDownloads:
		return "used up"
	}
	return "active"
}

func (s *Server) toShareJSON(r *http.Request, sh catalog.ShareRecord, code string) (shareJSON, error) {
	j := shareJSON{Share: sh.Share, Link: shareLink(r, sh.ID), Code: code, State: shareState(sh.Share, time.Now()),
		Opened: sh.SessionHash != "", Receipts: []shareReceiptBrief{}}
	rcs, err := s.o.Shares.ShareReceipts(r.Context(), sh.ID)
	if err != nil {
		return j, err
	}
	for _, rc := range rcs {
		var body evidence.ShareReceipt
		json.Unmarshal(rc.Body, &body)
		j.Receipts = append(j.Receipts, shareReceiptBrief{ID: rc.ID, Download: rc.Download, At: rc.At, SHA256: body.SHA256, Size: body.Size})
	}
	return j, nil
}

// shareLink is the address of a share's page as the request that made it
// reached this server.
func shareLink(r *http.Request, id string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/share/" + id
}

// createShare: POST /api/v1/cases/{id}/shares, by a user who may change the
// case: {"recipient": {name, organisation, email}, "purpose", "recordings":
// [ids of recordings actively linked to the case; empty: all of them],
// "copies" (as the export's ?copies=), "expires_in" (Go duration, default
// 168h), "max_downloads" (default 3)}. The answer carries the link and the
// one-time code, the only time the code is shown.
func (s *Server) createShare(w http.ResponseWriter, r *http.Request) {
	if !s.sharesReady(w) {
		return
	}
	c, ok := s.loadCase(w, r, true)
	if !ok {
		return
	}
	var req struct {
		Recipient    evidence.Recipient `json:"recipient"`
		Purpose      string             `json:"purpose"`
		Recordings   []string           `json:"recordings"`
		Copies       string             `json:"copies"`
		ExpiresIn    string             `json:"expires_in"`
		MaxDownloads *int               `json:"max_downloads"`
		// Grant: the granted copy request of the case a share takes a use
		// of when copies need approval (as ?grant= or X-Bodycam-Grant).
		Grant string `json:"grant"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	expiresIn := 7 * 24 * time.Hour
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil {
			writeError(w, http.StatusBadRequest, "expires_in: a duration such as 72h: "+err.Error())
			return
		}
		expiresIn = d
	}
	max := 3
	if req.MaxDownloads != nil {
		max = *req.MaxDownloads
	}
	if _, err := parseCopies(req.Copies); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	links, err := s.o.Cases.EvidenceLinks(r.Context(), c.ID, "")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var linked []string
	for _, l := range links {
		if l.Active() && !slices.Contains(linked, l.RecordingID) {
			linked = append(linked, l.RecordingID)
		}
	}
	recs := req.Recordings
	if len(recs) == 0 {
		recs = linked
	}
	if len(recs) > 1000 {
		writeError(w, http.StatusBadRequest, "recordings: at most 1000")
		return
	}
	var chosen []string
	for _, id := range recs {
		if !slices.Contains(linked, id) {
			writeError(w, http.StatusBadRequest, "recording "+id+" is not linked to case "+c.ID+"; only a case's recordings are shared with it")
			return
		}
		if slices.Contains(chosen, id) {
			continue
		}
		rec, err := s.o.Catalog.Recording(r.Context(), id)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		if rec.ManifestKey == "" {
			writeError(w, http.StatusConflict, "recording "+id+" has no signed manifest yet (it is still being recorded or stored); share it when it is complete")
			return
		}
		chosen = append(chosen, id)
	}
	sh := evidence.Share{ID: "sh-" + randomHex(16), CaseID: c.ID, Recipient: req.Recipient, Purpose: req.Purpose, Recordings: chosen,
		Copies: req.Copies, MaxDownloads: max, CreatedBy: userOf(r), CreatedAt: now, ExpiresAt: now.Add(expiresIn)}
	if sh.Recordings == nil {
		sh.Recordings = []string{}
	}
	if err := evidence.ValidateShare(sh); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A share lets copies of the case leave: with approval before copying
	// it takes a use of a granted copy request of the case, as its export
	// does. The recipient's downloads are then the share's own (limited,
	// receipted), not each approved again.
	if req.Grant != "" && r.URL.Query().Get("grant") == "" && r.Header.Get(GrantHeader) == "" {
		r.Header.Set(GrantHeader, req.Grant)
	}
	if !s.takeGrantFor(w, r, evidence.CopyOfCase, c.ID, "share "+sh.ID) {
		return
	}
	code := newShareCode()
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionShare, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
		Detail: fmt.Sprintf("share %s made for %s: recordings %s%s; until %s, at most %d download(s); purpose: %s", sh.ID, recipientText(sh.Recipient),
			strings.Join(sh.Recordings, ", "), copiesNote(sh.Copies), sh.ExpiresAt.Format(time.RFC3339), sh.MaxDownloads, oneLineNote(sh.Purpose))}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the share cannot be recorded in the custody ledger now; not made")
		return
	}
	if err := s.o.Shares.CreateShare(r.Context(), sh, s.shareCodeHash(sh.ID, code)); err != nil {
		s.record(r, evidence.CustodyEvent{Action: evidence.ActionShare, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
			Detail: "share " + sh.ID + " not kept: the catalog failed", Outcome: evidence.OutcomeFailed})
		s.internal(w, r, err)
		return
	}
	j, err := s.toShareJSON(r, catalog.ShareRecord{Share: sh}, code)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

func recipientText(rc evidence.Recipient) string {
	t := rc.Name + " (" + rc.Organisation
	if rc.Email != "" {
		t += ", " + rc.Email
	}
	return oneLineNote(t + ")")
}

func copiesNote(copies string) string {
	if copies == "" {
		return ""
	}
	return " with derived copies " + copies
}

// listShares: GET /api/v1/cases/{id}/shares, the case's readers: every
// share, with its state, downloads and receipts (never a code).
func (s *Server) listShares(w http.ResponseWriter, r *http.Request) {
	if !s.sharesReady(w) {
		return
	}
	c, ok := s.loadCase(w, r, false)
	if !ok {
		return
	}
	list, err := s.o.Shares.Shares(r.Context(), c.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := []shareJSON{}
	for _, sh := range list {
		j, err := s.toShareJSON(r, sh, "")
		if err != nil {
			s.internal(w, r, err)
			return
		}
		items = append(items, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// caseShare loads the share {share} of the case {id} for a user who may
// change the case.
func (s *Server) caseShare(w http.ResponseWriter, r *http.Request) (evidence.Case, catalog.ShareRecord, bool) {
	var sh catalog.ShareRecord
	if !s.sharesReady(w) {
		return evidence.Case{}, sh, false
	}
	c, ok := s.loadCase(w, r, true)
	if !ok {
		return c, sh, false
	}
	id := r.PathValue("share")
	sh, err := s.o.Shares.Share(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) || err == nil && sh.CaseID != c.ID {
		writeError(w, http.StatusNotFound, "no share "+id+" of case "+c.ID)
		return c, sh, false
	}
	if err != nil {
		s.internal(w, r, err)
		return c, sh, false
	}
	return c, sh, true
}

// revokeShare: POST /api/v1/cases/{id}/shares/{share}/revoke {"reason"}:
// the recipient's link, code and session stop working at once.
func (s *Server) revokeShare(w http.ResponseWriter, r *http.Request) {
	c, sh, ok := s.caseShare(w, r)
	if !ok {
		return
	}
	reason, ok := readReason(w, r, "the share is revoked")
	if !ok {
		return
	}
	if sh.Revoked() {
		writeError(w, http.StatusConflict, "share "+sh.ID+" was revoked already")
		return
	}
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionShareRevoke, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
		Detail: fmt.Sprintf("share %s for %s revoked: %s", sh.ID, recipientText(sh.Recipient), oneLineNote(reason))}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the revocation cannot be recorded in the custody ledger now; not revoked")
		return
	}
	now := time.Now().UTC()
	if err := s.o.Shares.RevokeShare(r.Context(), sh.ID, userOf(r), reason, now); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			writeError(w, http.StatusConflict, "share "+sh.ID+" was revoked already")
			return
		}
		s.internal(w, r, err)
		return
	}
	sh, err := s.o.Shares.Share(r.Context(), sh.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	j, err := s.toShareJSON(r, sh, "")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// renewShareCode: POST /api/v1/cases/{id}/shares/{share}/code: a new
// one-time code (shown once); the old code and the recipient's session stop
// working.
func (s *Server) renewShareCode(w http.ResponseWriter, r *http.Request) {
	c, sh, ok := s.caseShare(w, r)
	if !ok {
		return
	}
	if why := sh.Usable(time.Now()); why != "" {
		writeError(w, http.StatusConflict, "share "+sh.ID+": "+why+"; make a new share")
		return
	}
	// Whoever holds the new code downloads what the share holds: with
	// approval before copying, a new code by anyone but the share's maker
	// (whose grant made it) is a copy leaving, and takes a use of their own
	// granted copy request of the case (?grant= or X-Bodycam-Grant).
	if sh.CreatedBy != userOf(r) && !s.takeGrantFor(w, r, evidence.CopyOfCase, c.ID, "share "+sh.ID) {
		return
	}
	code := newShareCode()
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionShare, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
		Detail: fmt.Sprintf("share %s for %s: a new one-time code issued; the old code and session end", sh.ID, recipientText(sh.Recipient))}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the new code cannot be recorded in the custody ledger now; not issued")
		return
	}
	if err := s.o.Shares.NewShareCode(r.Context(), sh.ID, s.shareCodeHash(sh.ID, code)); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			writeError(w, http.StatusConflict, "share "+sh.ID+" is revoked")
			return
		}
		s.internal(w, r, err)
		return
	}
	sh.CodeUsedAt, sh.SessionHash, sh.FailedCodes = time.Time{}, "", 0
	j, err := s.toShareJSON(r, sh, code)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// The recipient's side: /api/v1/shared/{share}/…, no account.

// asRecipient is r as the share's recipient makes it: the custody ledger
// names the share as the actor.
func asRecipient(r *http.Request, shareID string) *http.Request {
	p := principal{User: evidence.User{ID: evidence.ShareActor(shareID), Role: evidence.Role(evidence.RoleRecipient)}, via: "share"}
	return r.WithContext(context.WithValue(r.Context(), userKey{}, p))
}

// sharedShare loads the share a recipient's request names. An unknown
// share is 404 (as is a malformed id); the share must be usable (410
// saying why), or with usedUp, only not revoked nor expired; with session,
// the request must then carry the share's session cookie (401 otherwise).
func (s *Server) sharedShare(w http.ResponseWriter, r *http.Request, session, usedUp bool) (catalog.ShareRecord, *http.Request, bool) {
	var sh catalog.ShareRecord
	if !s.sharesReady(w) {
		return sh, r, false
	}
	if why := crossSite(r); why != "" {
		s.o.Log.Warn("denied", "code", http.StatusForbidden, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
		s.metrics.denied.Inc()
		writeError(w, http.StatusForbidden, strings.Replace(why, "sign in or use the console's session", "use a share", 1))
		return sh, r, false
	}
	id := r.PathValue("share")
	if len(id) > 64 {
		writeError(w, http.StatusNotFound, "no such share")
		return sh, r, false
	}
	sh, err := s.o.Shares.Share(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		s.o.Log.Warn("denied", "code", http.StatusNotFound, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", "no share "+id)
		s.metrics.denied.Inc()
		writeError(w, http.StatusNotFound, "no such share")
		return sh, r, false
	}
	if err != nil {
		s.internal(w, r, err)
		return sh, r, false
	}
	r = asRecipient(r, sh.ID)
	now := time.Now()
	why := sh.Usable(now)
	if usedUp && !sh.Revoked() && now.Before(sh.ExpiresAt) {
		why = "" // used up: its receipts are still given
	}
	if why != "" {
		s.refuseRecipient(w, r, sh, http.StatusGone, why)
		return sh, r, false
	}
	if session {
		ck, err := r.Cookie(shareCookie)
		if err != nil || sh.SessionHash == "" || subtle.ConstantTimeCompare([]byte(hashToken(ck.Value)), []byte(sh.SessionHash)) != 1 {
			s.refuseRecipient(w, r, sh, http.StatusUnauthorized, "open this share with its one-time code first (a new code ends the session it opened)")
			return sh, r, false
		}
	}
	return sh, r, true
}

// refuseRecipient logs, counts and answers a refused recipient's request.
func (s *Server) refuseRecipient(w http.ResponseWriter, r *http.Request, sh catalog.ShareRecord, code int, why string) {
	s.o.Log.Warn("denied", "code", code, "share", sh.ID, "case", sh.CaseID, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
	s.metrics.denied.Inc()
	writeError(w, code, why)
}

// openShare: POST /api/v1/shared/{share}/open {"code"}: the one-time code
// opens the share in this browser (an HttpOnly cookie for the share's own
// path). A wrong code is counted; the fifth revokes the share. Once the
// code is spent, every code is refused uncounted until a new one is issued.
func (s *Server) openShare(w http.ResponseWriter, r *http.Request) {
	sh, r, ok := s.sharedShare(w, r, false, false)
	if !ok {
		return
	}
	var req struct {
		Code string `json:"code"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.Code) > 64 {
		writeError(w, http.StatusBadRequest, "code: longer than 64 bytes")
		return
	}
	now := time.Now().UTC()
	event := func(detail, outcome string) error {
		return s.record(r, evidence.CustodyEvent{Action: evidence.ActionShareOpen, TargetKind: "case", TargetID: sh.CaseID, CaseID: sh.CaseID,
			Detail: "share " + sh.ID + " for " + recipientText(sh.Recipient) + ": " + detail, Outcome: outcome})
	}
	// Once its code is spent, no code opens the share until a new one is
	// issued: a code given then, right or wrong, is refused and not
	// counted, so that nobody holding only the link can have an open share
	// revoked by wrong codes.
	if !sh.CodeUsedAt.IsZero() {
		event("a code given once the share's code was used", evidence.OutcomeDenied)
		s.refuseRecipient(w, r, sh, http.StatusForbidden, "this share's code was used already (it opens the share once); ask the sender for a new code")
		return
	}
	right := subtle.ConstantTimeCompare([]byte(s.shareCodeHash(sh.ID, req.Code)), []byte(sh.CodeHash)) == 1
	if !right {
		n, revoked, err := s.o.Shares.FailShareCode(r.Context(), sh.ID, evidence.ShareMaxFailedCodes, now)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		event(fmt.Sprintf("a wrong code (%d of %d)", n, evidence.ShareMaxFailedCodes), evidence.OutcomeDenied)
		if revoked {
			s.record(r, evidence.CustodyEvent{Action: evidence.ActionShareRevoke, TargetKind: "case", TargetID: sh.CaseID, CaseID: sh.CaseID,
				Detail: fmt.Sprintf("share %s for %s revoked by the server: %d wrong codes", sh.ID, recipientText(sh.Recipient), n)})
			s.refuseRecipient(w, r, sh, http.StatusGone, "wrong code; after "+fmt.Sprint(n)+" wrong codes this share is revoked")
			return
		}
		s.refuseRecipient(w, r, sh, http.StatusForbidden, fmt.Sprintf("wrong code (%d of %d tries; then the share is revoked)", n, evidence.ShareMaxFailedCodes))
		return
	}
	token := "bsh_" + randomHex(32)
	if err := event("opened with its one-time code", evidence.OutcomeOK); err != nil {
		writeError(w, http.StatusServiceUnavailable, "opening the share cannot be recorded in the custody ledger now; try again")
		return
	}
	if err := s.o.Shares.UseShareCode(r.Context(), sh.ID, sh.CodeHash, hashToken(token), now); err != nil {
		// Recorded as opened above, it was not: the ledger says so.
		if errors.Is(err, catalog.ErrConflict) {
			event("not opened after all: its code was used, changed or ended meanwhile", evidence.OutcomeDenied)
			s.refuseRecipient(w, r, sh, http.StatusForbidden, "this code was used already (it opens the share once); ask the sender for a new code")
			return
		}
		event("not opened after all: the catalog failed", evidence.OutcomeFailed)
		s.internal(w, r, err)
		return
	}
	maxAge := int(time.Until(sh.ExpiresAt) / time.Second)
	http.SetCookie(w, &http.Cookie{Name: shareCookie, Value: token, Path: sharePath + sh.ID, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: max(maxAge, 1)})
	sh.CodeUsedAt, sh.SessionHash = now, hashToken(token)
	s.answerShared(w, r, sh)
}

// sharedJSON is what the recipient sees of a share.
type sharedJSON struct {
	ID           string               `json:"id"`
	CaseID       string               `json:"case_id"`
	CaseTitle    string               `json:"case_title"`
	Recipient    evidence.Recipient   `json:"recipient"`
	Purpose      string               `json:"purpose"`
	SharedBy     string               `json:"shared_by"`
	SharedAt     time.Time            `json:"shared_at"`
	ExpiresAt    time.Time            `json:"expires_at"`
	MaxDownloads int                  `json:"max_downloads"`
	Downloads    int                  `json:"downloads"`
	FileName     string               `json:"file_name"`
	Download     string               `json:"download"`
	Copies       string               `json:"copies,omitempty"`
	Recordings   []sharedRecordingRow `json:"recordings"`
	Receipts     []shareReceiptBrief  `json:"receipts"`
	KeysURL      string               `json:"keys_url"`
}

type sharedRecordingRow struct {
	ID        string    `json:"id"`
	DeviceID  string    `json:"device_id"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

func shareFileName(sh evidence.Share) string { return "case-" + sh.CaseID + "-" + sh.ID + ".zip" }

// getShared: GET /api/v1/shared/{share}, the recipient with the share's
// session: what is shared, the downloads left and the receipts so far
// (also once every download was used).
func (s *Server) getShared(w http.ResponseWriter, r *http.Request) {
	sh, r, ok := s.sharedShare(w, r, true, true)
	if !ok {
		return
	}
	s.answerShared(w, r, sh)
}

func (s *Server) answerShared(w http.ResponseWriter, r *http.Request, sh catalog.ShareRecord) {
	c, err := s.o.Cases.Case(r.Context(), sh.CaseID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	j, err := s.toShareJSON(r, sh, "")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := sharedJSON{ID: sh.ID, CaseID: c.ID, CaseTitle: c.Title, Recipient: sh.Recipient, Purpose: sh.Purpose, SharedBy: sh.CreatedBy,
		SharedAt: sh.CreatedAt, ExpiresAt: sh.ExpiresAt, MaxDownloads: sh.MaxDownloads, Downloads: sh.Downloads, FileName: shareFileName(sh.Share),
		Download: sharePath + sh.ID + "/download", Copies: sh.Copies, Recordings: []sharedRecordingRow{}, Receipts: j.Receipts, KeysURL: "/api/v1/keys"}
	// The shared recordings the download holds: those still actively
	// linked to the case (one unlinked since is no longer shared).
	links, err := s.o.Cases.EvidenceLinks(r.Context(), c.ID, "")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	for _, id := range sh.Recordings {
		if !slices.ContainsFunc(links, func(l evidence.EvidenceLink) bool { return l.RecordingID == id && l.Active() }) {
			continue
		}
		rec, err := s.o.Catalog.Recording(r.Context(), id)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		out.Recordings = append(out.Recordings, sharedRecordingRow{ID: rec.ID, DeviceID: rec.DeviceID, StartedAt: rec.StartedAt, EndedAt: rec.EndedAt})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// hashingWriter is a response whose bytes are counted and hashed on the
// way out.
type hashingWriter struct {
	http.ResponseWriter
	h hash.Hash
	n int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.ResponseWriter.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// downloadShared: GET /api/v1/shared/{share}/download, the recipient with
// the share's session: the court export of what was shared (recordings
// still linked to the case), counted against the limit and recorded before
// it starts; when the whole zip went out, a signed receipt of its bytes is
// kept, at the address the X-Bodycam-Receipt header gave.
func (s *Server) downloadShared(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// A HEAD would take a download and send nothing.
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "a share's download is GET only: each one is counted")
		return
	}
	sh, r, ok := s.sharedShare(w, r, true, false)
	if !ok {
		return
	}
	c, err := s.o.Cases.Case(r.Context(), sh.CaseID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	x, ok := s.prepareExport(w, r, c, sh.Recordings, sh.Copies)
	if !ok {
		return
	}
	if len(x.ids) == 0 {
		writeError(w, http.StatusGone, "none of the shared recordings is linked to the case any more")
		return
	}
	shared := x.ids
	x.name = shareFileName(sh.Share)
	x.keep = func(e evidence.CustodyEvent) bool { return inShareRecord(e, c.ID, sh.ID, shared, x.data.Links) }
	// Counted for the session this request carries (sharedShare checked
	// it): one ended meanwhile by a new code or a revocation takes none.
	n, err := s.o.Shares.TakeShareDownload(r.Context(), sh.ID, sh.SessionHash, time.Now())
	if errors.Is(err, catalog.ErrConflict) {
		if now, err := s.o.Shares.Share(r.Context(), sh.ID); err == nil {
			sh = now
		}
		why := sh.Usable(time.Now())
		if why == "" {
			why = "this share's session ended"
		}
		s.refuseRecipient(w, r, sh, http.StatusGone, why)
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	receiptID := "rc-" + randomHex(12)
	w.Header().Set("X-Bodycam-Receipt", sharePath+sh.ID+"/receipts/"+receiptID)
	hw := &hashingWriter{ResponseWriter: w, h: sha256.New()}
	why := fmt.Sprintf("; for share %s, download %d of %d, to %s", sh.ID, n, sh.MaxDownloads, recipientText(sh.Recipient))
	if !s.writeExport(hw, r, x, why) {
		return
	}
	keyID := s.o.Signer.ID()
	rc := evidence.ShareReceipt{Version: 1, ID: receiptID, ShareID: sh.ID, CaseID: c.ID, Recipient: sh.Recipient, SharedBy: sh.CreatedBy,
		FileName: x.name, Size: hw.n, SHA256: hex.EncodeToString(hw.h.Sum(nil)), Download: n, MaxDownloads: sh.MaxDownloads,
		DownloadedAt: time.Now().UTC().Truncate(time.Microsecond), Remote: r.RemoteAddr, SigningKeyID: keyID}
	for _, rd := range x.data.Recordings {
		head := ""
		if k := len(rd.Segments); k > 0 {
			head = rd.Segments[k-1].ChainHash
		}
		rc.Recordings = append(rc.Recordings, evidence.ShareReceiptRecording{ID: rd.Recording.ID, DeviceID: rd.Recording.DeviceID, ChainHead: head})
	}
	body := rc.Marshal()
	signedBy, sig := s.o.Signer.Sign(body)
	if signedBy != keyID {
		s.o.Log.Warn("share receipt: the signing key changed while it was made", "share", sh.ID, "receipt", receiptID)
	}
	detail := fmt.Sprintf("share %s for %s: download %d of %d, %s (%d bytes, sha256 %s), signed receipt %s", sh.ID, recipientText(sh.Recipient),
		n, sh.MaxDownloads, x.name, hw.n, rc.SHA256, receiptID)
	outcome := evidence.OutcomeOK
	if err := s.o.Shares.AddShareReceipt(r.Context(), catalog.ShareReceiptRecord{ID: receiptID, ShareID: sh.ID, Download: n, At: rc.DownloadedAt,
		Body: body, Signature: sig}); err != nil {
		s.o.Log.Error("share receipt not kept", "share", sh.ID, "receipt", receiptID, "err", err)
		detail += " not kept: " + err.Error()
		outcome = evidence.OutcomeFailed
	}
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionShareDownload, TargetKind: "case", TargetID: c.ID, CaseID: c.ID,
		Detail: detail, Outcome: outcome}); err != nil {
		s.o.Log.Error("share download not recorded in the custody ledger (its export was)", "share", sh.ID, "receipt", receiptID, "err", err)
	}
}

// inShareRecord is the custody excerpt a share's export carries: the case's
// record as a court export's (caseFilter), less what was not shared: events
// about the case's other recordings, other exports, other shares' events,
// and the copy requests, decisions and uses behind other copies (their
// reasons and notes tell whom those went to); of those only the use of the
// grant that made this share, or gave it a new code, is kept.
func inShareRecord(e evidence.CustodyEvent, caseID, shareID string, shared []string, links []evidence.EvidenceLink) bool {
	if !evidence.InCaseRecord(e, caseID, links) {
		return false
	}
	if e.TargetKind == "recording" && !slices.Contains(shared, e.TargetID) {
		return false
	}
	switch e.Action {
	case evidence.ActionShare, evidence.ActionShareRevoke, evidence.ActionShareOpen, evidence.ActionShareDownload:
		return strings.HasPrefix(e.Detail, "share "+shareID+" ")
	case evidence.ActionExport:
		// Other exports name other recordings, and whom they went to.
		return e.Actor == evidence.ShareActor(shareID)
	case evidence.ActionCopyRequest, evidence.ActionCopyApprove, evidence.ActionCopyRefuse:
		return false
	case evidence.ActionCopyUse:
		return e.TargetKind == "case" && e.Outcome == evidence.OutcomeOK && strings.HasSuffix(e.Detail, " (share "+shareID+")")
	}
	return true
}

// sharedReceiptJSON is a receipt as the recipient fetches it: the signed
// bytes (receipt_b64, to be saved as receipt.json) and the raw Ed25519
// signature (signature_b64, saved as receipt.json.sig), with the public
// key that checks them.
type sharedReceiptJSON struct {
	Receipt      json.RawMessage `json:"receipt"`
	ReceiptB64   string          `json:"receipt_b64"`
	SignatureB64 string          `json:"signature_b64"`
	SigningKeyID string          `json:"signing_key_id"`
	PublicKeyPEM string          `json:"public_key_pem,omitempty"`
}

// sharedReceipt: GET /api/v1/shared/{share}/receipts/{receipt}, the
// recipient with the share's session (also once it is used up): a
// download's signed receipt.
func (s *Server) sharedReceipt(w http.ResponseWriter, r *http.Request) {
	sh, r, ok := s.sharedShare(w, r, true, true)
	if !ok {
		return
	}
	rcs, err := s.o.Shares.ShareReceipts(r.Context(), sh.ID)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	id := r.PathValue("receipt")
	for _, rc := range rcs {
		if rc.ID != id {
			continue
		}
		var body evidence.ShareReceipt
		json.Unmarshal(rc.Body, &body)
		out := sharedReceiptJSON{Receipt: rc.Body, ReceiptB64: base64.StdEncoding.EncodeToString(rc.Body),
			SignatureB64: base64.StdEncoding.EncodeToString(rc.Signature), SigningKeyID: body.SigningKeyID}
		if keys, err := s.o.Keys.PublicKeys(r.Context()); err == nil {
			for _, k := range keys {
				if k.ID == body.SigningKeyID {
					out.PublicKeyPEM = string(keyring.PublicPEM(k.Key))
				}
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeError(w, http.StatusNotFound, "no receipt "+id+" of this share (a receipt is kept once its download is complete)")
}
