package evidence

import (
	"fmt"
	"regexp"
	"time"
)

// Role is what a user may do.
type Role string

const (
	// RoleOfficer sees their own footage and the cases they are on.
	RoleOfficer Role = "officer"
	// RoleSupervisor sees their unit's footage and cases, watches live,
	// and reviews cases.
	RoleSupervisor Role = "supervisor"
	// RoleAuditor reads everything and changes nothing.
	RoleAuditor Role = "auditor"
	// RoleAdmin runs the system (devices, users) and does not read evidence.
	RoleAdmin Role = "admin"
	// RoleDock is a collection workstation (a dock): it uploads recorders'
	// own files for the devices of its unit (every device without one) and
	// does nothing else; see MayUpload.
	RoleDock Role = "dock"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleOfficer, RoleSupervisor, RoleAuditor, RoleAdmin, RoleDock:
		return true
	}
	return false
}

var userIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateUserID reports whether id may name a user (a lower-case login).
func ValidateUserID(id string) error {
	if !userIDPattern.MatchString(id) {
		return fmt.Errorf("%w %q: a user id must match [a-z0-9][a-z0-9._-]{0,63}", ErrInvalidID, id)
	}
	return nil
}

// User is a person who signs in.
type User struct {
	ID   string // the login name
	Name string
	Role Role
	Unit string // supervisors see their unit's footage
	// The officer's electronic certificate (the chest card's QR code).
	BadgeNumber    string
	Agency         string
	CertToken      string    // the public verification page's token
	CertValidUntil time.Time // zero: no certificate
	CertRevoked    bool
	// PasswordHash is argon2id; empty: no password sign-in.
	PasswordHash string
	// MustChangePassword: an admin set the password (at creation or as a
	// reset); until the user sets their own, a sign-in may do nothing else.
	MustChangePassword bool
	// When and by whom an admin last set the password; shown to the user.
	PasswordResetAt time.Time
	PasswordResetBy string
	Disabled        bool
	CreatedAt       time.Time
	// LockedUntil is the end of a lock-out after repeated sign-in failures
	// under the user's name (read-only: the catalog counts failures per
	// claimed name).
	LockedUntil time.Time
}

// Session is a console sign-in; only the SHA-256 of its token is stored.
type Session struct {
	TokenHash  string
	UserID     string
	RemoteAddr string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	// OpenedBy is empty for a password sign-in, or a fingerprint of the
	// bootstrap admin token that opened the session: the session is valid
	// only while that token is the server's.
	OpenedBy string
}

// APIToken is a long-lived token for scripts; only its hash is stored.
type APIToken struct {
	ID        string
	TokenHash string
	UserID    string
	Name      string
	CreatedAt time.Time
	RevokedAt time.Time // zero while valid
}
