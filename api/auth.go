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
	SetPassword(ctx context.Context, id, hash string) error
	SetUserDisabled(ctx context.Context, id string, disabled bool) error
	SetCertificate(ctx context.Context, id string, validUntil time.Time, revoked bool) error
	LoginFailed(ctx context.Context, id string, at time.Time, max int, lockFor time.Duration) (evidence.User, error)
	LoginSucceeded(ctx context.Context, id string) error
	CreateSession(ctx context.Context, s evidence.Session) error
	Session(ctx context.Context, hash string) (evidence.Session, error)
	DeleteSession(ctx context.Context, hash string) error
	DeleteUserSessions(ctx context.Context, userID string) error
	CreateAPIToken(ctx context.Context, t evidence.APIToken) error
	APITokenByHash(ctx context.Context, hash string) (evidence.APIToken, error)
	APITokens(ctx context.Context, userID string) ([]evidence.APIToken, error)
	RevokeAPIToken(ctx context.Context, id string, at time.Time) error
}

// Sign-in rules.
const (
	sessionTTL      = 12 * time.Hour // a shift; then sign in again
	maxLoginFailure = 5              // failures in a row before a lock-out
	lockOut         = 15 * time.Minute
	sessionCookie   = "bodycam_session"
	consoleHeader   = "X-Bodycam-Console"
)

// principal is who made a request.
type principal struct {
	evidence.User
	via string // "admin-token", "api-token", "session"
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
	return s.active(ctx, sess.UserID, "session")
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
// request that relies on the cookie and changes something must also carry
// the console's header, which another site's page cannot add (defence in
// depth beside SameSite=Strict). Every refusal is logged and counted.
func (s *Server) allow(roles ...evidence.Role) func(http.HandlerFunc) http.HandlerFunc {
	return func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			p, err := s.authenticate(r)
			if err != nil {
				s.deny(w, r, http.StatusUnauthorized, "", err.Error())
				return
			}
			if p.via == "session" && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(consoleHeader) == "" {
				s.deny(w, r, http.StatusForbidden, p.ID, "a request signed in by cookie must carry the "+consoleHeader+" header")
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

// deny answers 401 or 403, logs who was refused what, and counts it.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, code int, user, msg string) {
	s.o.Log.Warn("denied", "code", code, "user", user, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", msg)
	s.metrics.denied.Inc()
	if s.o.Audit != nil {
		s.o.Audit.Denied(r.Context(), user, r.Method+" "+r.URL.Path, r.RemoteAddr, msg, code == http.StatusForbidden)
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
