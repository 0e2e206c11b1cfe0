package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Users is what authentication and user management need from the catalog.
type Users interface {
	CreateUser(ctx context.Context, u evidence.User) error
	User(ctx context.Context, id string) (evidence.User, error)
	UserByCertToken(ctx context.Context, token string) (evidence.User, error)
	Users(ctx context.Context) ([]evidence.User, error)
	SetPassword(ctx context.Context, p catalog.PasswordChange) (catalog.PasswordChanged, error)
	SetUserDisabled(ctx context.Context, id string, disabled bool) error
	SetCertificate(ctx context.Context, id string, validUntil time.Time, revoked bool) error
	SignInAttempt(ctx context.Context, name string, at time.Time, max int, lockFor time.Duration) (int, time.Time, error)
	SignInSucceeded(ctx context.Context, name string) error
	SweepSignInFailures(ctx context.Context, at time.Time, lockFor time.Duration) (int64, error)
	CreateSession(ctx context.Context, s evidence.Session) error
	Session(ctx context.Context, hash string) (evidence.Session, error)
	DeleteSession(ctx context.Context, hash string) error
	DeleteUserSessions(ctx context.Context, userID string) (int64, error)
	CreateAPIToken(ctx context.Context, t evidence.APIToken) error
	APITokenByHash(ctx context.Context, hash string) (evidence.APIToken, error)
	APITokens(ctx context.Context, userID string) ([]evidence.APIToken, error)
	RevokeAPIToken(ctx context.Context, id string, at time.Time) error
}

// Sign-in rules.
const (
	sessionTTL    = 12 * time.Hour // a shift; then sign in again
	maxSignIns    = 5              // password checks in a row under one name before a lock-out
	lockOut       = 15 * time.Minute
	sessionCookie = "bodycam_session"
	consoleHeader = "X-Bodycam-Console"
)

// principal is who made a request.
type principal struct {
	evidence.User
	via string // "admin-token", "api-token", "session"
	// bootstrap: a console session opened with the bootstrap admin token.
	bootstrap bool
}

type userKey struct{}

func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(userKey{}).(principal)
	return p
}

// userOf names who made an authenticated request.
func userOf(r *http.Request) string { return principalOf(r).ID }

func isAdmin(r *http.Request) bool { return principalOf(r).Role == evidence.RoleAdmin }

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// adminToken reports whether token is the bootstrap admin token, in
// constant time.
func (s *Server) adminToken(token string) bool {
	want := sha256.Sum256([]byte(s.o.AdminToken))
	got := sha256.Sum256([]byte(token))
	return s.o.AdminToken != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// adminTokenPrint is the fingerprint a console session opened with the
// bootstrap admin token keeps of it: keyed with the credential key (the
// device-secret derivation under an id no device can have), so that a
// database dump does not allow guessing the token offline.
func adminTokenPrint(keys Keys, token string) string {
	if token == "" {
		return ""
	}
	if keys == nil { // only servers that register no devices either (tests of other parts)
		return "sha256:" + hashToken("bodycam-admin-session-v1\x00"+token)
	}
	return "hmac:" + keys.DeviceSecret("\x00bootstrap-admin-session", hashToken(token))
}

var errNoCredential = errors.New("a valid bearer token or a console session is required")

// authenticate finds who made r: a bearer token (the bootstrap admin token
// or a user's API token) or the console's session cookie.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	ctx := r.Context()
	if token, ok := bearer(r); ok {
		if s.adminToken(token) {
			return principal{User: evidence.User{ID: "admin", Role: evidence.RoleAdmin}, via: "admin-token"}, nil
		}
		if s.o.Users == nil {
			return principal{}, errNoCredential
		}
		t, err := s.o.Users.APITokenByHash(ctx, hashToken(token))
		if err != nil || !t.RevokedAt.IsZero() {
			return principal{}, errNoCredential
		}
		return s.active(ctx, t.UserID, "api-token")
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return principal{}, errNoCredential
	}
	if s.o.Users == nil {
		return principal{}, errNoCredential
	}
	sess, err := s.o.Users.Session(ctx, hashToken(c.Value))
	if err != nil || time.Now().After(sess.ExpiresAt) {
		return principal{}, errNoCredential
	}
	if sess.OpenedBy == "" {
		return s.active(ctx, sess.UserID, "session")
	}
	// Opened with the bootstrap admin token: valid only while that token
	// is the server's. A changed token ends the sessions of the old one.
	if s.adminPrint == "" || subtle.ConstantTimeCompare([]byte(sess.OpenedBy), []byte(s.adminPrint)) != 1 {
		s.o.Users.DeleteSession(ctx, sess.TokenHash)
		return principal{}, errors.New("the admin token that opened this session has changed; sign in again")
	}
	p, err := s.active(ctx, sess.UserID, "session")
	if err != nil || p.Role != evidence.RoleAdmin {
		return principal{}, errNoCredential
	}
	// The token, not a password, opened it: a reset of the "admin" user's
	// password does not hold it back.
	p.bootstrap, p.MustChangePassword = true, false
	return p, nil
}

// active loads a user who may still sign in.
func (s *Server) active(ctx context.Context, id, via string) (principal, error) {
	u, err := s.o.Users.User(ctx, id)
	if err != nil || u.Disabled {
		return principal{}, errNoCredential
	}
	return principal{User: u, via: via}, nil
}

// allow lets a request through when its principal has one of roles. A
// request that relies on the cookie must come from the console's own pages
// (see crossSite), and one that changes something must also carry the
// console's header, which another site's page cannot add (defence in depth
// beside SameSite=Strict). A user whose password an admin set may do
// nothing until they set their own (see allowPending). Every refusal is
// logged, counted and audited.
func (s *Server) allow(roles ...evidence.Role) func(http.HandlerFunc) http.HandlerFunc {
	return s.guard(false, roles...)
}

// allowPending is allow, open also to a user who must set a new password
// first: for who am I and setting one's password.
func (s *Server) allowPending(roles ...evidence.Role) func(http.HandlerFunc) http.HandlerFunc {
	return s.guard(true, roles...)
}

const mustChangeFirst = "set a new password first: an admin set yours, and until you replace it this sign-in may only see who it is, change its password and sign out"

func (s *Server) guard(pendingOK bool, roles ...evidence.Role) func(http.HandlerFunc) http.HandlerFunc {
	return func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			p, err := s.authenticate(r)
			if err != nil {
				s.deny(w, r, http.StatusUnauthorized, "", err.Error())
				return
			}
			if p.via == "session" {
				if why := crossSite(r); why != "" {
					s.deny(w, r, http.StatusForbidden, p.ID, why)
					return
				}
				if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(consoleHeader) == "" {
					s.deny(w, r, http.StatusForbidden, p.ID, "a request signed in by cookie must carry the "+consoleHeader+" header")
					return
				}
			}
			if p.MustChangePassword && !pendingOK {
				s.deny(w, r, http.StatusForbidden, p.ID, mustChangeFirst)
				return
			}
			if !slices.Contains(roles, p.Role) {
				s.deny(w, r, http.StatusForbidden, p.ID, "the "+string(p.Role)+" role may not do this")
				return
			}
			next(w, r.WithContext(context.WithValue(r.Context(), userKey{}, p)))
		}
	}
}

// admin is allow(admin).
func (s *Server) admin(next http.HandlerFunc) http.HandlerFunc {
	return s.allow(evidence.RoleAdmin)(next)
}

// deny answers 401 or 403, logs who was refused what, and counts it. A 403
// is a signed-in principal's refusal, anything else one without valid
// credentials (see DeniedAudit).
func (s *Server) deny(w http.ResponseWriter, r *http.Request, code int, user, msg string) {
	s.refuse(w, r, code, user, msg, code == http.StatusForbidden)
}

// refuse is deny with who was refused said: signedIn when the request
// carried valid credentials.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, user, msg string, signedIn bool) {
	s.o.Log.Warn("denied", "code", code, "user", user, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", msg)
	s.metrics.denied.Inc()
	if s.o.Audit != nil {
		s.o.Audit.Denied(r.Context(), user, r.Method+" "+r.URL.Path, r.RemoteAddr, msg, signedIn)
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bodycam"`)
	}
	writeError(w, code, msg)
}

// DeniedAudit records refused attempts (the custody ledger); signedIn says
// whether the request carried valid credentials (a 403) or not.
type DeniedAudit interface {
	Denied(ctx context.Context, user, what, remote, why string, signedIn bool)
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// userError answers a catalog error about a user.
func (s *Server) userError(w http.ResponseWriter, r *http.Request, id string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, "no user "+id)
	case errors.Is(err, catalog.ErrExists):
		writeError(w, http.StatusConflict, "user "+id+" exists")
	case errors.Is(err, evidence.ErrInvalidID):
		writeError(w, http.StatusBadRequest, "id: "+err.Error())
	default:
		s.internal(w, r, err)
	}
	return true
}
