package api

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/skip2/go-qrcode"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/password"
)

const minPassword = 12

type signInJSON struct {
	Token    string `json:"token"`
	User     string `json:"user"`
	Password string `json:"password"`
}

// signIn checks a user's password (or the bootstrap admin token) and sets
// the console's session cookie.
//
// What it costs and answers tells nothing about the account: an unknown
// name, a disabled user, a user without a password and a wrong password
// each cost one argon2id check and get 401 "wrong user or password"; the
// lock-out counts attempts per claimed name, user or not. Each attempt is
// counted before its password is checked, in one atomic step, so at most
// maxSignIns in a row are ever checked however many arrive at once. The
// work is bounded: a client address gets a burst of sign-ins and then one a
// second, and argon2id runs in a few slots at a time (see SignInLimits).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	// Login CSRF: another site's page could sign the browser in as the
	// attacker. A JSON body needs a CORS preflight no other origin passes,
	// and the browser says where the request comes from.
	if why := crossSite(r); why != "" {
		s.refuse(w, r, http.StatusForbidden, "", why, false)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		s.refuse(w, r, http.StatusUnsupportedMediaType, "", "sign-in takes Content-Type: application/json", false)
		return
	}
	now := time.Now()
	if wait, ok := s.signIns.take(clientHost(r), now); !ok {
		s.metrics.limited.WithLabelValues("address").Inc()
		retryAfter(w, wait)
		s.deny(w, r, http.StatusTooManyRequests, "", "too many sign-ins from this address; try again in "+wait.Round(time.Second).String())
		return
	}
	var in signInJSON
	if err := readJSON(w, r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if in.Token != "" {
		s.signInWithToken(w, r, in.Token)
		return
	}
	if in.User == "" || in.Password == "" || s.o.Users == nil {
		writeError(w, http.StatusBadRequest, "user and password (or token) are required")
		return
	}
	ctx := r.Context()
	release, ok := s.hashSlot(w, r)
	if !ok {
		return
	}
	defer release()
	s.sweepSignIns(ctx, now)
	n, until, err := s.o.Users.SignInAttempt(ctx, in.User, now, maxSignIns, lockOut)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if n > maxSignIns {
		s.metrics.limited.WithLabelValues("locked").Inc()
		retryAfter(w, until.Sub(now))
		s.deny(w, r, http.StatusTooManyRequests, in.User, "too many failed sign-ins under this name; try again after "+until.UTC().Format(time.RFC3339))
		return
	}
	u, err := s.o.Users.User(ctx, in.User)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		s.internal(w, r, err)
		return
	}
	hash := dummyHash // the same work for a name that is no user, or one without a password
	if err == nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	match, _ := s.o.Passwords.Verify(hash, in.Password)
	if !match || err != nil || u.PasswordHash == "" || u.Disabled {
		if n == maxSignIns {
			s.o.Log.Warn("sign-ins under this name locked after repeated failures", "user", in.User, "until", until, "remote", r.RemoteAddr)
		}
		s.deny(w, r, http.StatusUnauthorized, in.User, "wrong user or password")
		return
	}
	if err := s.o.Users.SignInSucceeded(ctx, u.ID); err != nil {
		s.internal(w, r, err)
		return
	}
	s.startSession(w, r, u, "")
}

// signInWithToken opens a console session with the bootstrap admin token.
func (s *Server) signInWithToken(w http.ResponseWriter, r *http.Request, token string) {
	if !s.adminToken(token) {
		s.deny(w, r, http.StatusUnauthorized, "", "console sign-in with a wrong token")
		return
	}
	// The bootstrap admin signs in as the user "admin" with a session of
	// its own, so the cookie never carries the token itself and sign-out
	// ends it on the server. The session keeps the token's fingerprint: a
	// new token ends it.
	if s.o.Users == nil {
		writeError(w, http.StatusServiceUnavailable, "console sign-in needs the user store")
		return
	}
	u, err := s.o.Users.User(r.Context(), "admin")
	if err == nil && u.Role != evidence.RoleAdmin {
		// The token is an admin's: never a way into another role.
		writeError(w, http.StatusConflict, `the user "admin" is not an admin; sign in with an account`)
		return
	}
	if errors.Is(err, catalog.ErrNotFound) {
		u = evidence.User{ID: "admin", Name: "Bootstrap admin", Role: evidence.RoleAdmin, CertToken: password.NewSecret(), CreatedAt: time.Now().UTC()}
		err = s.o.Users.CreateUser(r.Context(), u)
		if errors.Is(err, catalog.ErrExists) {
			u, err = s.o.Users.User(r.Context(), "admin")
		} else if err == nil && s.o.Custody != nil { // an account change like any other
			s.o.Custody.Record(r.Context(), evidence.CustodyEvent{Actor: "admin-token", Role: string(evidence.RoleAdmin), Remote: r.RemoteAddr,
				Action: evidence.ActionAccount, TargetKind: "user", TargetID: u.ID,
				Detail: "user created: role admin, the bootstrap admin token's console user (no password)"})
		}
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if u.Disabled {
		s.deny(w, r, http.StatusUnauthorized, "admin", `the user "admin" is disabled`)
		return
	}
	u.MustChangePassword = false // the token, not a password, signs it in
	s.startSession(w, r, u, s.adminPrint)
}

// hashSlot waits for one of the few argon2id slots; when none frees in
// time it answers 503 with Retry-After itself.
func (s *Server) hashSlot(w http.ResponseWriter, r *http.Request) (func(), bool) {
	release, ok := s.hashing.acquire(r.Context())
	if !ok {
		s.metrics.limited.WithLabelValues("busy").Inc()
		s.o.Log.Warn("password check refused: every hashing slot stayed busy", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		retryAfter(w, time.Second)
		writeError(w, http.StatusServiceUnavailable, "the server is busy checking other passwords; try again shortly")
	}
	return release, ok
}

// sweepSignIns forgets finished runs of sign-in failures, at most once a
// minute.
func (s *Server) sweepSignIns(ctx context.Context, now time.Time) {
	last := s.lastSweep.Load()
	if now.UnixNano()-last < int64(time.Minute) || !s.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if _, err := s.o.Users.SweepSignInFailures(ctx, now, lockOut); err != nil {
		s.o.Log.Warn("sign-in failures not swept", "err", err)
	}
}

// sessionCookieFor sets (or, with maxAge < 0, clears) the session cookie.
func sessionCookieFor(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}

// newSession makes a console session for user; openedBy is the admin
// token's fingerprint, or empty for a password.
func newSession(r *http.Request, user, openedBy string) (evidence.Session, string) {
	now := time.Now()
	token := "bcs_" + password.NewSecret()
	return evidence.Session{TokenHash: hashToken(token), UserID: user, RemoteAddr: r.RemoteAddr,
		CreatedAt: now, ExpiresAt: now.Add(sessionTTL), OpenedBy: openedBy}, token
}

// startSession makes a console session for u and sets its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u evidence.User, openedBy string) {
	sess, token := newSession(r, u.ID, openedBy)
	if err := s.o.Users.CreateSession(r.Context(), sess); err != nil {
		s.internal(w, r, err)
		return
	}
	sessionCookieFor(w, r, token, int(sessionTTL.Seconds()))
	s.o.Log.Info("console sign-in", "user", u.ID, "role", u.Role, "remote", r.RemoteAddr, "admin_token", openedBy != "")
	writeJSON(w, http.StatusOK, map[string]any{"user": u.ID, "role": u.Role, "name": u.Name, "expires_at": sess.ExpiresAt.UTC(),
		"must_change_password": u.MustChangePassword})
}

// dummyHash makes a sign-in for an unknown user cost what a real one does.
var dummyHash = password.Hash("not a password of anyone")

type sessionJSON struct {
	User string        `json:"user"`
	Role evidence.Role `json:"role"`
	Name string        `json:"name"`
	Unit string        `json:"unit"`
	// MustChangePassword: an admin set the password; this sign-in may only
	// change it (and see who it is, and sign out).
	MustChangePassword bool `json:"must_change_password"`
	// When and by whom an admin last set the user's password (at creation
	// or as a reset), so that the user sees it.
	PasswordResetAt *time.Time `json:"password_reset_at,omitempty"`
	PasswordResetBy string     `json:"password_reset_by,omitempty"`
	// CopyApproval: whether this user's downloads and exports need a
	// grant (approval before copying): "off", "required", or "exempt"
	// (their role copies without one).
	CopyApproval string `json:"copy_approval"`
	// Credential: what this request signed in with: password (a console
	// session), admin-token (the bootstrap token or a session it opened),
	// api-token.
	Credential string `json:"credential"`
}

func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	j := sessionJSON{User: p.ID, Role: p.Role, Name: p.Name, Unit: p.Unit, MustChangePassword: p.MustChangePassword,
		PasswordResetAt: timePtr(p.PasswordResetAt), PasswordResetBy: p.PasswordResetBy, Credential: p.via, CopyApproval: "off"}
	switch {
	case p.via == "session" && p.bootstrap:
		j.Credential = "admin-token"
	case p.via == "session":
		j.Credential = "password"
	}
	if pol := s.o.CopyApproval; pol.Required {
		j.CopyApproval = "required"
		if slices.Contains(pol.Exempt, p.Role) {
			j.CopyApproval = "exempt"
		}
	}
	writeJSON(w, http.StatusOK, j)
}

// signOut ends the console session. It clears a cookie, so another site's
// page may not make it.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if why := crossSite(r); why != "" {
		s.refuse(w, r, http.StatusForbidden, "", why, false)
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" && s.o.Users != nil {
		s.o.Users.DeleteSession(r.Context(), hashToken(c.Value))
	}
	sessionCookieFor(w, r, "", -1)
	w.WriteHeader(http.StatusNoContent)
}

type userRequest struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Role           string     `json:"role"`
	Unit           string     `json:"unit"`
	BadgeNumber    string     `json:"badge_number"`
	Agency         string     `json:"agency"`
	Password       string     `json:"password"`
	CertValidUntil *time.Time `json:"cert_valid_until"`
}

type userJSON struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Role           string     `json:"role"`
	Unit           string     `json:"unit"`
	BadgeNumber    string     `json:"badge_number"`
	Agency         string     `json:"agency"`
	CertValidUntil *time.Time `json:"cert_valid_until"`
	CertRevoked    bool       `json:"cert_revoked"`
	CertURL        string     `json:"cert_url"`
	Disabled       bool       `json:"disabled"`
	LockedUntil    *time.Time `json:"locked_until,omitempty"`
	// An admin set the password (when, who): the user must set a new one.
	MustChangePassword bool       `json:"must_change_password"`
	PasswordResetAt    *time.Time `json:"password_reset_at,omitempty"`
	PasswordResetBy    string     `json:"password_reset_by,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
}

func toUserJSON(u evidence.User) userJSON {
	j := userJSON{ID: u.ID, Name: u.Name, Role: string(u.Role), Unit: u.Unit, BadgeNumber: u.BadgeNumber, Agency: u.Agency,
		CertRevoked: u.CertRevoked, CertURL: "/verify/officer/" + u.CertToken, Disabled: u.Disabled, CreatedAt: u.CreatedAt,
		MustChangePassword: u.MustChangePassword, PasswordResetAt: timePtr(u.PasswordResetAt), PasswordResetBy: u.PasswordResetBy}
	if !u.CertValidUntil.IsZero() {
		t := u.CertValidUntil
		j.CertValidUntil = &t
	}
	if time.Now().Before(u.LockedUntil) {
		t := u.LockedUntil
		j.LockedUntil = &t
	}
	return j
}

func validPassword(p string) error {
	if utf8.RuneCountInString(p) < minPassword {
		return errors.New("password: at least 12 characters")
	}
	if len(p) > 256 {
		return errors.New("password: at most 256 bytes")
	}
	return nil
}

// createUser registers a user (admin).
func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	u := evidence.User{ID: req.ID, Name: req.Name, Role: evidence.Role(req.Role), Unit: req.Unit, BadgeNumber: req.BadgeNumber,
		Agency: req.Agency, CertToken: password.NewSecret(), CreatedAt: time.Now().UTC()}
	if err := evidence.ValidateUserID(u.ID); err != nil {
		writeError(w, http.StatusBadRequest, "id: "+err.Error())
		return
	}
	if !u.Role.Valid() {
		writeError(w, http.StatusBadRequest, "role: want officer, supervisor, auditor or admin")
		return
	}
	for field, v := range map[string]string{"name": u.Name, "unit": u.Unit, "badge_number": u.BadgeNumber, "agency": u.Agency} {
		if err := validText(field, v, 200); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if req.CertValidUntil != nil {
		u.CertValidUntil = req.CertValidUntil.UTC()
	}
	pw := "no password"
	if req.Password != "" {
		if err := validPassword(req.Password); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		// A new account's first password is the admin's to give (unlike a
		// reset, which must be replaced: see setPassword). A new account
		// has no owner yet who could notice it used, and its creation and
		// everything it reads are in the ledger.
		release, ok := s.hashSlot(w, r)
		if !ok {
			return
		}
		u.PasswordHash = s.o.Passwords.Hash(req.Password)
		release()
		u.PasswordResetAt, u.PasswordResetBy = u.CreatedAt, userOf(r)
		pw = "a first password set by " + userOf(r)
	}
	if s.userError(w, r, u.ID, s.o.Users.CreateUser(r.Context(), u)) {
		return
	}
	s.o.Log.Info("user created", "user", u.ID, "role", u.Role, "by", userOf(r))
	s.account(r, "user", u.ID, fmt.Sprintf("user created: role %s, unit %q, name %q, badge %q; %s", u.Role, u.Unit, u.Name, u.BadgeNumber, pw))
	writeJSON(w, http.StatusCreated, toUserJSON(u))
}

// account records an account change in the custody ledger. Admins read no
// evidence, but they make the accounts that do: who made, reset or
// disabled which account, and every token and device, is how an admin's
// access is watched. It is recorded after the change; an event that cannot
// be recorded is logged and counted by the ledger.
func (s *Server) account(r *http.Request, kind, id, detail string) {
	s.record(r, evidence.CustodyEvent{Action: evidence.ActionAccount, TargetKind: kind, TargetID: id, Detail: detail})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.o.Users.Users(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]userJSON, 0, len(users))
	for _, u := range users {
		items = append(items, toUserJSON(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// officerJSON is what a supervisor or auditor sees of an officer: who, not
// how they sign in.
type officerJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	BadgeNumber string `json:"badge_number,omitempty"`
	Agency      string `json:"agency,omitempty"`
	Unit        string `json:"unit,omitempty"`
}

// listOfficers lists the officers a supervisor may put in charge of a case
// (their unit's, every unit's for one without a unit) or an auditor may look
// up (all); disabled accounts are left out.
func (s *Server) listOfficers(w http.ResponseWriter, r *http.Request) {
	users, err := s.o.Users.Users(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	p := principalOf(r)
	items := []officerJSON{}
	for _, u := range users {
		if u.Role != evidence.RoleOfficer || u.Disabled {
			continue
		}
		if p.Role == evidence.RoleSupervisor && p.Unit != "" && u.Unit != p.Unit {
			continue
		}
		items = append(items, officerJSON{ID: u.ID, Name: u.Name, BadgeNumber: u.BadgeNumber, Agency: u.Agency, Unit: u.Unit})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	u, err := s.o.Users.User(r.Context(), id)
	if s.userError(w, r, id, err) {
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

// disableUser retires a user: sign-ins and tokens stop working, the id
// stays (the ledger names users forever).
func (s *Server) disableUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.userError(w, r, id, s.o.Users.SetUserDisabled(r.Context(), id, true)) {
		return
	}
	n, err := s.o.Users.DeleteUserSessions(r.Context(), id)
	if err != nil {
		s.o.Log.Error("sessions of a disabled user not deleted (they no longer authenticate)", "user", id, "err", err)
	}
	s.o.Log.Info("user disabled", "user", id, "by", userOf(r))
	s.account(r, "user", id, fmt.Sprintf("user disabled: sign-in and API tokens stop working; %d session(s) ended", n))
	w.WriteHeader(http.StatusNoContent)
}

// setPassword sets a user's password. A user changing their own shows the
// current one; an admin may set anyone's (a reset), which the user must
// replace at their next sign-in. Either way every API token of the user is
// revoked and every session ends: whoever held one made with the old
// password must show the new one. The console session that changed its own
// password goes on under a new cookie (it has just shown the password;
// the new token means a copy of the old cookie stops working too).
func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p := principalOf(r)
	// The bootstrap admin token (and its sessions) has no password of its
	// own: setting the "admin" user's is a reset like any other.
	self := p.ID == id && p.via != "admin-token" && !p.bootstrap
	if !self && p.Role != evidence.RoleAdmin {
		s.deny(w, r, http.StatusForbidden, p.ID, "only an admin may set another user's password")
		return
	}
	if !self && p.MustChangePassword {
		s.deny(w, r, http.StatusForbidden, p.ID, mustChangeFirst)
		return
	}
	var req struct {
		CurrentPassword string `json:"current_password"`
		Password        string `json:"password"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := validPassword(req.Password); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case self && req.CurrentPassword == "":
		writeError(w, http.StatusBadRequest, "current_password: required to change your own password")
		return
	case self && req.CurrentPassword == req.Password:
		writeError(w, http.StatusBadRequest, "password: choose one other than the current password")
		return
	case !self && req.CurrentPassword != "":
		writeError(w, http.StatusBadRequest, "current_password: only for changing your own password")
		return
	}
	ctx := r.Context()
	u, err := s.o.Users.User(ctx, id)
	if s.userError(w, r, id, err) {
		return
	}
	release, ok := s.hashSlot(w, r)
	if !ok {
		return
	}
	defer release()
	if self && !s.currentPassword(w, r, u, req.CurrentPassword) {
		return
	}
	change := catalog.PasswordChange{UserID: id, Hash: s.o.Passwords.Hash(req.Password), By: p.ID, At: time.Now().UTC(), MustChange: !self}
	var token string
	if self && p.via == "session" {
		var sess evidence.Session
		sess, token = newSession(r, id, "")
		change.Renew = &sess
	}
	done, err := s.o.Users.SetPassword(ctx, change)
	if s.userError(w, r, id, err) {
		return
	}
	ended := fmt.Sprintf("%d API token(s) revoked, %d session(s) ended", done.TokensRevoked, done.SessionsEnded)
	if self {
		if token != "" {
			sessionCookieFor(w, r, token, int(sessionTTL.Seconds()))
			ended += "; the console session that changed it goes on under a new cookie"
		}
		s.o.Log.Info("password changed", "user", id, "tokens_revoked", done.TokensRevoked, "sessions_ended", done.SessionsEnded)
		s.account(r, "user", id, "password changed by the user; "+ended)
	} else {
		s.o.Log.Info("password reset", "user", id, "by", p.ID, "tokens_revoked", done.TokensRevoked, "sessions_ended", done.SessionsEnded)
		s.account(r, "user", id, "password reset by "+p.ID+": the user must set a new one at the next sign-in; "+ended)
	}
	w.WriteHeader(http.StatusNoContent)
}

// currentPassword checks the password a user shows to change their own,
// counted like a sign-in under their name (a token or a session alone must
// not allow guessing it), and answers the refusal itself.
func (s *Server) currentPassword(w http.ResponseWriter, r *http.Request, u evidence.User, current string) bool {
	now := time.Now()
	n, until, err := s.o.Users.SignInAttempt(r.Context(), u.ID, now, maxSignIns, lockOut)
	if err != nil {
		s.internal(w, r, err)
		return false
	}
	if n > maxSignIns {
		s.metrics.limited.WithLabelValues("locked").Inc()
		retryAfter(w, until.Sub(now))
		s.refuse(w, r, http.StatusTooManyRequests, u.ID, "too many wrong passwords under this name; try again after "+until.UTC().Format(time.RFC3339), true)
		return false
	}
	hash := u.PasswordHash
	if hash == "" {
		hash = dummyHash
	}
	if ok, _ := s.o.Passwords.Verify(hash, current); !ok || u.PasswordHash == "" {
		s.deny(w, r, http.StatusForbidden, u.ID, "current_password is wrong")
		return false
	}
	if err := s.o.Users.SignInSucceeded(r.Context(), u.ID); err != nil {
		s.internal(w, r, err)
		return false
	}
	return true
}

// setCertificate sets an officer's certificate validity or revokes it.
func (s *Server) setCertificate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req struct {
		ValidUntil *time.Time `json:"valid_until"`
		Revoked    bool       `json:"revoked"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var until time.Time
	if req.ValidUntil != nil {
		until = req.ValidUntil.UTC()
	}
	if s.userError(w, r, id, s.o.Users.SetCertificate(r.Context(), id, until, req.Revoked)) {
		return
	}
	detail := "certificate: none issued"
	if !until.IsZero() {
		detail = "certificate valid until " + until.Format(time.RFC3339)
	}
	if req.Revoked {
		detail += "; revoked"
	}
	s.account(r, "user", id, detail)
	u, _ := s.o.Users.User(r.Context(), id)
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

type tokenJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Token     string     `json:"token,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// createToken makes an API token for the signed-in user (scripts). The
// token is shown once; only its hash is kept. The bootstrap admin token, and
// the sessions it opened, make none: a token would outlive a change of it.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if p.via == "admin-token" || p.bootstrap {
		s.deny(w, r, http.StatusForbidden, p.ID, "the bootstrap admin token (or a session it opened) cannot make API tokens, which would outlive a change of it; create an admin user")
		return
	}
	s.issueToken(w, r, p.ID)
}

// issueToken makes an API token for user from the request's {"name"}: shown
// once in the answer, only its hash kept, an account event saying who made
// it for whom.
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request, user string) {
	var req struct {
		Name string `json:"name"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := validText("name", req.Name, 100); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	secret := "bct_" + password.NewSecret()
	t := evidence.APIToken{ID: password.NewSecret()[:12], TokenHash: hashToken(secret), UserID: user, Name: req.Name, CreatedAt: time.Now().UTC()}
	if err := s.o.Users.CreateAPIToken(r.Context(), t); err != nil {
		s.internal(w, r, err)
		return
	}
	detail := fmt.Sprintf("API token %q of %s created", t.Name, user)
	if by := userOf(r); by != user {
		detail += " by " + by
	}
	s.account(r, "token", t.ID, detail)
	writeJSON(w, http.StatusCreated, tokenJSON{ID: t.ID, Name: t.Name, Token: secret, CreatedAt: t.CreatedAt})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	s.writeTokens(w, r, userOf(r))
}

// writeTokens lists user's tokens (never their secrets).
func (s *Server) writeTokens(w http.ResponseWriter, r *http.Request, user string) {
	list, err := s.o.Users.APITokens(r.Context(), user)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	items := make([]tokenJSON, 0, len(list))
	for _, t := range list {
		j := tokenJSON{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt}
		if !t.RevokedAt.IsZero() {
			at := t.RevokedAt
			j.RevokedAt = &at
		}
		items = append(items, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// revokeToken revokes one of the signed-in user's tokens.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	s.revokeTokenOf(w, r, userOf(r), r.PathValue("id"))
}

// revokeTokenOf revokes user's token id (404 when user has no such token).
func (s *Server) revokeTokenOf(w http.ResponseWriter, r *http.Request, user, id string) {
	list, err := s.o.Users.APITokens(r.Context(), user)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	for _, t := range list {
		if t.ID == id {
			err := s.o.Users.RevokeAPIToken(r.Context(), id, time.Now())
			if err != nil && !errors.Is(err, catalog.ErrConflict) {
				s.internal(w, r, err)
				return
			}
			if err == nil {
				s.account(r, "token", id, fmt.Sprintf("API token %q of %s revoked", t.Name, t.UserID))
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no token "+id+" of "+user)
}

// dockUser is the dock user that an admin's /users/{id}/tokens request
// names, or false with the answer written: a workstation's account has no
// person to sign in and make its own token, so an admin issues and revokes
// them; anyone else's tokens are theirs alone (an admin holding an
// officer's token could act as the officer).
func (s *Server) dockUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	u, err := s.o.Users.User(r.Context(), id)
	if s.userError(w, r, id, err) {
		return "", false
	}
	if u.Role != evidence.RoleDock {
		s.deny(w, r, http.StatusForbidden, userOf(r), "an admin issues tokens only for dock users; "+id+" is "+string(u.Role)+" and makes its own")
		return "", false
	}
	if u.Disabled {
		writeError(w, http.StatusConflict, "user "+id+" is disabled")
		return "", false
	}
	return id, true
}

// createDockToken issues a token for a dock user (the workstation agent's
// --token-file).
func (s *Server) createDockToken(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.dockUser(w, r); ok {
		s.issueToken(w, r, id)
	}
}

func (s *Server) listDockTokens(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.dockUser(w, r); ok {
		s.writeTokens(w, r, id)
	}
}

func (s *Server) revokeDockToken(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.dockUser(w, r); ok {
		s.revokeTokenOf(w, r, id, r.PathValue("token"))
	}
}

var officerPage = template.Must(template.New("officer").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Officer certificate</title><link rel="stylesheet" href="/console/verify.css"></head>
<body><main class="cert {{.Status}}">
<h1>{{.Title}}</h1>
<dl>
<dt>Name</dt><dd>{{.User.Name}}</dd>
<dt>Badge number</dt><dd>{{.User.BadgeNumber}}</dd>
<dt>Agency</dt><dd>{{.User.Agency}}</dd>
<dt>Unit</dt><dd>{{.User.Unit}}</dd>
<dt>Valid until</dt><dd>{{if .User.CertValidUntil.IsZero}}no certificate issued{{else}}{{.User.CertValidUntil.Format "2006-01-02"}}{{end}}</dd>
</dl>
<p class="checked">Checked {{.Now.Format "2006-01-02 15:04 MST"}} against the issuing system.</p>
</main></body></html>`))

// officerCertificate is the public page a chest card's QR code opens: who
// the officer is and whether the certificate is valid now.
func (s *Server) officerCertificate(w http.ResponseWriter, r *http.Request) {
	u, ok := s.certificateUser(w, r)
	if !ok {
		return
	}
	now := time.Now().UTC()
	status, title := "valid", "Valid certificate"
	switch {
	case u.CertRevoked || u.Disabled:
		status, title = "revoked", "Certificate REVOKED"
	case u.CertValidUntil.IsZero() || now.After(u.CertValidUntil):
		status, title = "expired", "Certificate NOT VALID (expired or not issued)"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'")
	officerPage.Execute(w, map[string]any{"User": u, "Status": status, "Title": title, "Now": now})
}

// officerQR is a PNG QR code of the certificate page's URL, to print on the
// chest card.
func (s *Server) officerQR(w http.ResponseWriter, r *http.Request) {
	u, ok := s.certificateUser(w, r)
	if !ok {
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	png, err := qrcode.Encode(scheme+"://"+r.Host+"/verify/officer/"+u.CertToken, qrcode.Medium, 320)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(png)
}

func (s *Server) certificateUser(w http.ResponseWriter, r *http.Request) (evidence.User, bool) {
	token := strings.TrimSuffix(r.PathValue("token"), "/")
	if s.o.Users == nil || len(token) < 16 {
		http.NotFound(w, r)
		return evidence.User{}, false
	}
	u, err := s.o.Users.UserByCertToken(r.Context(), token)
	if err != nil {
		http.NotFound(w, r)
		return u, false
	}
	return u, true
}
