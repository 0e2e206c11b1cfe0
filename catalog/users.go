package catalog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

const userCols = `id, name, role, unit, badge_number, agency, cert_token, cert_valid_us, cert_revoked,
	password_hash, must_change_password, password_reset_us, password_reset_by, disabled, created_us`

// userSelect reads users with the lock-out of their name, if any.
const userSelect = `SELECT u.id, u.name, u.role, u.unit, u.badge_number, u.agency, u.cert_token, u.cert_valid_us, u.cert_revoked,
	u.password_hash, u.must_change_password, u.password_reset_us, u.password_reset_by, u.disabled, u.created_us, f.locked_until_us
	FROM users u LEFT JOIN sign_in_failures f ON f.name = u.id`

func scanUser(s scanner) (evidence.User, error) {
	var u evidence.User
	var role string
	var certValid, reset, locked sql.NullInt64
	var created int64
	err := s.Scan(&u.ID, &u.Name, &role, &u.Unit, &u.BadgeNumber, &u.Agency, &u.CertToken, &certValid, &u.CertRevoked,
		&u.PasswordHash, &u.MustChangePassword, &reset, &u.PasswordResetBy, &u.Disabled, &created, &locked)
	u.Role, u.CertValidUntil, u.PasswordResetAt, u.CreatedAt = evidence.Role(role), fromNullMicros(certValid), fromNullMicros(reset), fromMicros(created)
	u.LockedUntil = fromNullMicros(locked)
	return u, err
}

// CreateUser adds a user. The id and role must be valid and the
// certificate token set (it is unique: the public page finds users by it).
func (c *Catalog) CreateUser(ctx context.Context, u evidence.User) error {
	if err := evidence.ValidateUserID(u.ID); err != nil {
		return err
	}
	if !u.Role.Valid() {
		return fmt.Errorf("catalog: role %q: want officer, supervisor, auditor or admin", u.Role)
	}
	if u.CertToken == "" {
		return fmt.Errorf("catalog: user %s needs a certificate token", u.ID)
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	_, err := c.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		u.ID, u.Name, string(u.Role), u.Unit, u.BadgeNumber, u.Agency, u.CertToken, nullMicros(u.CertValidUntil), u.CertRevoked,
		u.PasswordHash, u.MustChangePassword, nullMicros(u.PasswordResetAt), u.PasswordResetBy, u.Disabled, micros(u.CreatedAt))
	return translate(err, "user "+u.ID)
}

// User returns one user.
func (c *Catalog) User(ctx context.Context, id string) (evidence.User, error) {
	u, err := scanUser(c.queryRow(ctx, userSelect+` WHERE u.id = $1`, id))
	return u, translate(err, "user "+id)
}

// UserByCertToken finds the officer whose certificate page token is token.
func (c *Catalog) UserByCertToken(ctx context.Context, token string) (evidence.User, error) {
	u, err := scanUser(c.queryRow(ctx, userSelect+` WHERE u.cert_token = $1`, token))
	return u, translate(err, "certificate")
}

// Users lists every user by id.
func (c *Catalog) Users(ctx context.Context) ([]evidence.User, error) {
	rows, err := c.query(ctx, userSelect+` ORDER BY u.id`)
	if err != nil {
		return nil, translate(err, "users")
	}
	defer rows.Close()
	out := []evidence.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, translate(err, "users")
		}
		out = append(out, u)
	}
	return out, translate(rows.Err(), "users")
}

// updateUser runs one UPDATE of a user and reports ErrNotFound for no row.
func (c *Catalog) updateUser(ctx context.Context, id, set string, args ...any) error {
	args = append(args, id)
	res, err := c.exec(ctx, `UPDATE users SET `+set+fmt.Sprintf(` WHERE id = $%d`, len(args)), args...)
	if err != nil {
		return translate(err, "user "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: user %s", ErrNotFound, id)
	}
	return nil
}

// PasswordChange is a new password for a user and what goes with it.
type PasswordChange struct {
	UserID string
	Hash   string // argon2id
	By     string // who set it: the user, or an admin (a reset)
	At     time.Time
	// MustChange makes the user set their own at the next sign-in (an
	// admin's reset); a reset also records At and By as the last reset.
	MustChange bool
	// Renew, when set, is a session of the user made in the same step (the
	// one that changed the password, under a new token).
	Renew *evidence.Session
}

// PasswordChanged says what a password change ended.
type PasswordChanged struct {
	TokensRevoked int64
	SessionsEnded int64
}

// SetPassword replaces a user's password hash in one transaction: it lifts
// a lock-out of the name, revokes every API token of the user and ends every
// session (then stores p.Renew, if any). Whoever held a token or a session
// made with the old password must show the new one.
func (c *Catalog) SetPassword(ctx context.Context, p PasswordChange) (PasswordChanged, error) {
	var out PasswordChanged
	what := "user " + p.UserID
	if p.At.IsZero() {
		p.At = time.Now()
	}
	defer c.writing()()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return out, translate(err, what)
	}
	defer tx.Rollback()
	set, args := `password_hash = $1, must_change_password = $2`, []any{p.Hash, p.MustChange}
	if p.By != p.UserID {
		set, args = set+`, password_reset_us = $3, password_reset_by = $4`, append(args, micros(p.At), p.By)
	}
	args = append(args, p.UserID)
	res, err := tx.ExecContext(ctx, c.q(`UPDATE users SET `+set+fmt.Sprintf(` WHERE id = $%d`, len(args))), args...)
	if err != nil {
		return out, translate(err, what)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return out, fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	if _, err := tx.ExecContext(ctx, c.q(`DELETE FROM sign_in_failures WHERE name = $1`), p.UserID); err != nil {
		return out, translate(err, what)
	}
	res, err = tx.ExecContext(ctx, c.q(`UPDATE api_tokens SET revoked_us = $1 WHERE user_id = $2 AND revoked_us IS NULL`), micros(p.At), p.UserID)
	if err != nil {
		return out, translate(err, "API tokens of "+p.UserID)
	}
	out.TokensRevoked, _ = res.RowsAffected()
	res, err = tx.ExecContext(ctx, c.q(`DELETE FROM sessions WHERE user_id = $1`), p.UserID)
	if err != nil {
		return out, translate(err, "sessions of "+p.UserID)
	}
	out.SessionsEnded, _ = res.RowsAffected()
	if s := p.Renew; s != nil {
		if s.UserID != p.UserID {
			return out, fmt.Errorf("catalog: a renewed session must be %s's", p.UserID)
		}
		if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6)`),
			s.TokenHash, s.UserID, s.RemoteAddr, micros(s.CreatedAt), micros(s.ExpiresAt), s.OpenedBy); err != nil {
			return out, translate(err, "session")
		}
	}
	return out, translate(tx.Commit(), what)
}

// SetUserDisabled disables or re-enables a user.
func (c *Catalog) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	return c.updateUser(ctx, id, `disabled = $1`, disabled)
}

// SetCertificate sets an officer's certificate validity and revocation.
func (c *Catalog) SetCertificate(ctx context.Context, id string, validUntil time.Time, revoked bool) error {
	return c.updateUser(ctx, id, `cert_valid_us = $1, cert_revoked = $2`, nullMicros(validUntil), revoked)
}

// signInKey is the sign_in_failures key of a claimed name: the name itself
// when it could be a user id, otherwise '#' and its SHA-256 (no user id
// starts with '#').
func signInKey(name string) string {
	if evidence.ValidateUserID(name) == nil {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "#" + hex.EncodeToString(sum[:])
}

// SignInAttempt counts a sign-in attempt under the claimed name, existing
// user or not, before its password is checked, and returns the attempt's
// number in the current run and the end of the lock-out, if one is on. The
// max-th attempt in a row starts a lock-out until at+lockFor; attempts past
// max are not to be checked until it ends. A run restarts after a lock-out
// ends, or lockFor after its last attempt. One statement on both engines,
// so concurrent attempts each get their own number.
func (c *Catalog) SignInAttempt(ctx context.Context, name string, at time.Time, max int, lockFor time.Duration) (int, time.Time, error) {
	now, until := micros(at), micros(at.Add(lockFor))
	first := sql.NullInt64{Int64: until, Valid: max <= 1}
	// stale: the previous run is over (its lock-out ended, or it went
	// quiet for lockFor without one).
	const stale = `((sign_in_failures.locked_until_us IS NOT NULL AND sign_in_failures.locked_until_us <= $3)
		OR (sign_in_failures.locked_until_us IS NULL AND sign_in_failures.last_us <= $3 - $5))`
	var n int64
	var locked sql.NullInt64
	err := func() error {
		defer c.writing()()
		return c.db.QueryRowContext(ctx, c.q(`INSERT INTO sign_in_failures (name, attempts, locked_until_us, last_us) VALUES ($1, 1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET
			attempts = CASE WHEN `+stale+` THEN 1 ELSE sign_in_failures.attempts + 1 END,
			locked_until_us = CASE
				WHEN `+stale+` THEN $2
				WHEN sign_in_failures.locked_until_us IS NULL AND sign_in_failures.attempts + 1 >= $4 THEN $6
				ELSE sign_in_failures.locked_until_us END,
			last_us = $3
		RETURNING attempts, locked_until_us`),
			signInKey(name), first, now, int64(max), int64(lockFor/time.Microsecond), until).Scan(&n, &locked)
	}()
	if err != nil {
		return 0, time.Time{}, translate(err, "sign-in attempts")
	}
	return int(n), fromNullMicros(locked), nil
}

// SignInSucceeded ends the name's run of failures.
func (c *Catalog) SignInSucceeded(ctx context.Context, name string) error {
	_, err := c.exec(ctx, `DELETE FROM sign_in_failures WHERE name = $1`, signInKey(name))
	return translate(err, "sign-in attempts")
}

// SweepSignInFailures forgets the runs that are over at at (no lock-out on,
// no attempt for lockFor) and reports how many.
func (c *Catalog) SweepSignInFailures(ctx context.Context, at time.Time, lockFor time.Duration) (int64, error) {
	res, err := c.exec(ctx, `DELETE FROM sign_in_failures WHERE (locked_until_us IS NULL OR locked_until_us <= $1) AND last_us <= $2`,
		micros(at), micros(at.Add(-lockFor)))
	if err != nil {
		return 0, translate(err, "sign-in attempts")
	}
	n, _ := res.RowsAffected()
	return n, nil
}

const sessionCols = `token_hash, user_id, remote_addr, created_us, expires_us, opened_by`

// CreateSession stores a console session.
func (c *Catalog) CreateSession(ctx context.Context, s evidence.Session) error {
	_, err := c.exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		s.TokenHash, s.UserID, s.RemoteAddr, micros(s.CreatedAt), micros(s.ExpiresAt), s.OpenedBy)
	return translate(err, "session")
}

// Session returns the session whose token hashes to hash, expired or not.
func (c *Catalog) Session(ctx context.Context, hash string) (evidence.Session, error) {
	var s evidence.Session
	var created, expires int64
	err := c.queryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE token_hash = $1`, hash).
		Scan(&s.TokenHash, &s.UserID, &s.RemoteAddr, &created, &expires, &s.OpenedBy)
	s.CreatedAt, s.ExpiresAt = fromMicros(created), fromMicros(expires)
	return s, translate(err, "session")
}

// DeleteSession ends a session (sign-out).
func (c *Catalog) DeleteSession(ctx context.Context, hash string) error {
	_, err := c.exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, hash)
	return translate(err, "session")
}

// DeleteUserSessions ends every session of a user (disabled) and reports
// how many there were.
func (c *Catalog) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	res, err := c.exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
	if err != nil {
		return 0, translate(err, "sessions")
	}
	n, _ := res.RowsAffected()
	return n, nil
}

const tokenCols = `id, token_hash, user_id, name, created_us, revoked_us`

func scanToken(s scanner) (evidence.APIToken, error) {
	var t evidence.APIToken
	var created int64
	var revoked sql.NullInt64
	err := s.Scan(&t.ID, &t.TokenHash, &t.UserID, &t.Name, &created, &revoked)
	t.CreatedAt, t.RevokedAt = fromMicros(created), fromNullMicros(revoked)
	return t, err
}

// CreateAPIToken stores a token for scripts.
func (c *Catalog) CreateAPIToken(ctx context.Context, t evidence.APIToken) error {
	_, err := c.exec(ctx, `INSERT INTO api_tokens (`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, t.TokenHash, t.UserID, t.Name, micros(t.CreatedAt), nullMicros(t.RevokedAt))
	return translate(err, "API token "+t.ID)
}

// APITokenByHash finds the token whose secret hashes to hash.
func (c *Catalog) APITokenByHash(ctx context.Context, hash string) (evidence.APIToken, error) {
	t, err := scanToken(c.queryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE token_hash = $1`, hash))
	return t, translate(err, "API token")
}

// APITokens lists a user's tokens.
func (c *Catalog) APITokens(ctx context.Context, userID string) ([]evidence.APIToken, error) {
	rows, err := c.query(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE user_id = $1 ORDER BY created_us, id`, userID)
	if err != nil {
		return nil, translate(err, "API tokens")
	}
	defer rows.Close()
	out := []evidence.APIToken{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, translate(err, "API tokens")
		}
		out = append(out, t)
	}
	return out, translate(rows.Err(), "API tokens")
}

// RevokeAPIToken revokes a token; revoking twice is ErrConflict.
func (c *Catalog) RevokeAPIToken(ctx context.Context, id string, at time.Time) error {
	res, err := c.exec(ctx, `UPDATE api_tokens SET revoked_us = $1 WHERE id = $2 AND revoked_us IS NULL`, micros(at), id)
	if err != nil {
		return translate(err, "API token "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := scanToken(c.queryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = $1`, id)); err != nil {
			return translate(err, "API token "+id)
		}
		return fmt.Errorf("%w: API token %s is already revoked", ErrConflict, id)
	}
	return nil
}
