package api

import (
	"errors"
	"html/template"
	"net/http"
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
// the console's session cookie. Repeated failures lock the user out.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	var in signInJSON
	if err := readJSON(w, r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cookie := func(value string, maxAge int) {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
	}
	if in.Token != "" {
		if !s.adminToken(in.Token) {
			s.deny(w, r, http.StatusUnauthorized, "", "console sign-in with a wrong token")
			return
		}
		// The bootstrap admin signs in as the user "admin" with a session
		// of its own, so the cookie never carries the token itself and
		// sign-out ends it on the server.
		if s.o.Users == nil {
			writeError(w, http.StatusServiceUnavailable, "console sign-in needs the user store")
			return
		}
		existing, err := s.o.Users.User(r.Context(), "admin")
		if err == nil && existing.Role != evidence.RoleAdmin {
			// The token is an admin's: never a way into another role.
			writeError(w, http.StatusConflict, `the user "admin" is not an admin; sign in with an account`)
			return
		}
		if errors.Is(err, catalog.ErrNotFound) {
			err = s.o.Users.CreateUser(r.Context(), evidence.User{ID: "admin", Name: "Bootstrap admin", Role: evidence.RoleAdmin,
				CertToken: password.NewSecret(), CreatedAt: time.Now().UTC()})
			if err != nil && !errors.Is(err, catalog.ErrExists) {
				s.internal(w, r, err)
				return
			}
		}
		in.User = "admin"
		s.startSession(w, r, in.User, cookie)
		return
	}
	if in.User == "" || in.Password == "" || s.o.Users == nil {
		writeError(w, http.StatusBadRequest, "user and password (or token) are required")
		return
	}
	ctx := r.Context()
	u, err := s.o.Users.User(ctx, in.User)
	now := time.Now()
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		password.Verify(dummyHash, in.Password) // the same time as for a real user
		s.deny(w, r, http.StatusUnauthorized, in.User, "wrong user or password")
		return
	case err != nil:
		s.internal(w, r, err)
		return
	case u.Disabled:
		s.deny(w, r, http.StatusUnauthorized, in.User, "wrong user or password")
		return
	case now.Before(u.LockedUntil):
		s.deny(w, r, http.StatusTooManyRequests, in.User, "too many failed sign-ins; try again after "+u.LockedUntil.Format(time.RFC3339))
		return
	}
	if ok, _ := password.Verify(u.PasswordHash, in.Password); u.PasswordHash == "" || !ok {
		if u, err := s.o.Users.LoginFailed(ctx, u.ID, now, maxLoginFailure, lockOut); err == nil && !u.LockedUntil.IsZero() && now.Before(u.LockedUntil) {
			s.o.Log.Warn("user locked out after repeated sign-in failures", "user", u.ID, "until", u.LockedUntil, "remote", r.RemoteAddr)
		}
		s.deny(w, r, http.StatusUnauthorized, in.User, "wrong user or password")
		return
	}
	s.o.Users.LoginSucceeded(ctx, u.ID)
	s.startSession(w, r, u.ID, cookie)
}

// startSession makes a console session for user and sets its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, user string, cookie func(string, int)) {
	u, err := s.o.Users.User(r.Context(), user)
	if err != nil || u.Disabled {
		s.deny(w, r, http.StatusUnauthorized, user, "wrong user or password")
		return
	}
	now := time.Now()
	token := "bcs_" + password.NewSecret()
	if err := s.o.Users.CreateSession(r.Context(), evidence.Session{TokenHash: hashToken(token), UserID: u.ID, RemoteAddr: r.RemoteAddr,
		CreatedAt: now, ExpiresAt: now.Add(sessionTTL)}); err != nil {
		s.internal(w, r, err)
		return
	}
	cookie(token, int(sessionTTL.Seconds()))
	s.o.Log.Info("console sign-in", "user", u.ID, "role", u.Role, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"user": u.ID, "role": u.Role, "name": u.Name, "expires_at": now.Add(sessionTTL).UTC()})
}

// dummyHash makes a sign-in for an unknown user cost what a real one does.
var dummyHash = password.Hash("not a password of anyone")

func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	writeJSON(w, http.StatusOK, map[string]any{"user": p.ID, "role": p.Role, "name": p.Name, "unit": p.Unit})
}

// signOut ends the console session.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" && s.o.Users != nil {
		s.o.Users.DeleteSession(r.Context(), hashToken(c.Value))
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
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
	CreatedAt      time.Time  `json:"created_at"`
}

func toUserJSON(u evidence.User) userJSON {
	j := userJSON{ID: u.ID, Name: u.Name, Role: string(u.Role), Unit: u.Unit, BadgeNumber: u.BadgeNumber, Agency: u.Agency,
		CertRevoked: u.CertRevoked, CertURL: "/verify/officer/" + u.CertToken, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
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
	if req.Password != "" {
		if err := validPassword(req.Password); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		u.PasswordHash = password.Hash(req.Password)
	}
	if req.CertValidUntil != nil {
		u.CertValidUntil = req.CertValidUntil.UTC()
	}
	if s.userError(w, r, u.ID, s.o.Users.CreateUser(r.Context(), u)) {
		return
	}
	s.o.Log.Info("user created", "user", u.ID, "role", u.Role, "by", userOf(r))
	writeJSON(w, http.StatusCreated, toUserJSON(u))
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
	s.o.Users.DeleteUserSessions(r.Context(), id)
	s.o.Log.Info("user disabled", "user", id, "by", userOf(r))
	w.WriteHeader(http.StatusNoContent)
}

// setPassword sets a user's password: an admin for anyone, a user for
// themselves. Every session of the user ends.
func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !isAdmin(r) && userOf(r) != id {
		s.deny(w, r, http.StatusForbidden, userOf(r), "only an admin may set another user's password")
		return
	}
	var req struct {
		Password string `json:"password"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := validPassword(req.Password); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.userError(w, r, id, s.o.Users.SetPassword(r.Context(), id, password.Hash(req.Password))) {
		return
	}
	s.o.Users.DeleteUserSessions(r.Context(), id)
	w.WriteHeader(http.StatusNoContent)
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
// token is shown once; only its hash is kept.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if p.via == "admin-token" || (p.via == "session" && p.CertToken == "") {
		writeError(w, http.StatusBadRequest, "the bootstrap admin token cannot make API tokens; create an admin user")
		return
	}
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
	t := evidence.APIToken{ID: password.NewSecret()[:12], TokenHash: hashToken(secret), UserID: p.ID, Name: req.Name, CreatedAt: time.Now().UTC()}
	if err := s.o.Users.CreateAPIToken(r.Context(), t); err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, tokenJSON{ID: t.ID, Name: t.Name, Token: secret, CreatedAt: t.CreatedAt})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	list, err := s.o.Users.APITokens(r.Context(), userOf(r))
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
	id := r.PathValue("id")
	list, err := s.o.Users.APITokens(r.Context(), userOf(r))
	if err != nil {
		s.internal(w, r, err)
		return
	}
	for _, t := range list {
		if t.ID == id {
			if err := s.o.Users.RevokeAPIToken(r.Context(), id, time.Now()); err != nil && !errors.Is(err, catalog.ErrConflict) {
				s.internal(w, r, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, http.StatusNotFound, "no token "+id+" of yours")
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
