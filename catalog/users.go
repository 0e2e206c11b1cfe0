package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

const userCols = `id, name, role, unit, badge_number, agency, cert_token, cert_valid_us, cert_revoked,
	password_hash, disabled, failed_logins, locked_until_us, created_us`

func scanUser(s scanner) (evidence.User, error) {
	var u evidence.User
	var role string
	var certValid, locked sql.NullInt64
	var created int64
	err := s.Scan(&u.ID, &u.Name, &role, &u.Unit, &u.BadgeNumber, &u.Agency, &u.CertToken, &certValid, &u.CertRevoked,
		&u.PasswordHash, &u.Disabled, &u.FailedLogins, &locked, &created)
	u.Role, u.CertValidUntil, u.LockedUntil, u.CreatedAt = evidence.Role(role), fromNullMicros(certValid), fromNullMicros(locked), fromMicros(created)
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
	_, err := c.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		u.ID, u.Name, string(u.Role), u.Unit, u.BadgeNumber, u.Agency, u.CertToken, nullMicros(u.CertValidUntil), u.CertRevoked,
		u.PasswordHash, u.Disabled, u.FailedLogins, nullMicros(u.LockedUntil), micros(u.CreatedAt))
	return translate(err, "user "+u.ID)
}

// User returns one user.
func (c *Catalog) User(ctx context.Context, id string) (evidence.User, error) {
	u, err := scanUser(c.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	return u, translate(err, "user "+id)
}

// UserByCertToken finds the officer whose certificate page token is token.
func (c *Catalog) UserByCertToken(ctx context.Context, token string) (evidence.User, error) {
	u, err := scanUser(c.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE cert_token = $1`, token))
	return u, translate(err, "certificate")
}

// Users lists every user by id.
func (c *Catalog) Users(ctx context.Context) ([]evidence.User, error) {
	rows, err := c.query(ctx, `SELECT `+userCols+` FROM users ORDER BY id`)
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

// SetPassword replaces a user's password hash and lifts a lock-out.
func (c *Catalog) SetPassword(ctx context.Context, id, hash string) error {
	return c.updateUser(ctx, id, `password_hash = $1, failed_logins = 0, locked_until_us = NULL`, hash)
}

// SetUserDisabled disables or re-enables a user.
func (c *Catalog) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	return c.updateUser(ctx, id, `disabled = $1`, disabled)
}

// SetCertificate sets an officer's certificate validity and revocation.
func (c *Catalog) SetCertificate(ctx context.Context, id string, validUntil time.Time, revoked bool) error {
	return c.updateUser(ctx, id, `cert_valid_us = $1, cert_revoked = $2`, nullMicros(validUntil), revoked)
}

// LoginFailed counts a failed sign-in; the max-th in a row locks the user
// out until at+lockFor and starts the count again.
func (c *Catalog) LoginFailed(ctx context.Context, id string, at time.Time, max int, lockFor time.Duration) (evidence.User, error) {
	done := c.writing()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		done()
		return evidence.User{}, translate(err, "user "+id)
	}
	defer func() { tx.Rollback(); done() }()
	u, err := scanUser(tx.QueryRowContext(ctx, c.q(`SELECT `+userCols+` FROM users WHERE id = $1`), id))
	if err != nil {
		return u, translate(err, "user "+id)
	}
	u.FailedLogins++
	if u.FailedLogins >= max {
		u.FailedLogins, u.LockedUntil = 0, at.Add(lockFor).UTC().Truncate(time.Microsecond)
	}
	if _, err := tx.ExecContext(ctx, c.q(`UPDATE users SET failed_logins = $1, locked_until_us = $2 WHERE id = $3`),
		u.FailedLogins, nullMicros(u.LockedUntil), id); err != nil {
		return u, translate(err, "user "+id)
	}
	return u, translate(tx.Commit(), "user "+id)
}

// LoginSucceeded clears a user's failed sign-ins.
func (c *Catalog) LoginSucceeded(ctx context.Context, id string) error {
	return c.updateUser(ctx, id, `failed_logins = 0, locked_until_us = NULL`)
}

// CreateSession stores a console session.
func (c *Catalog) CreateSession(ctx context.Context, s evidence.Session) error {
	_, err := c.exec(ctx, `INSERT INTO sessions (token_hash, user_id, remote_addr, created_us, expires_us) VALUES ($1, $2, $3, $4, $5)`,
		s.TokenHash, s.UserID, s.RemoteAddr, micros(s.CreatedAt), micros(s.ExpiresAt))
	return translate(err, "session")
}

// Session returns the session whose token hashes to hash, expired or not.
func (c *Catalog) Session(ctx context.Context, hash string) (evidence.Session, error) {
	var s evidence.Session
	var created, expires int64
	err := c.queryRow(ctx, `SELECT token_hash, user_id, remote_addr, created_us, expires_us FROM sessions WHERE token_hash = $1`, hash).
		Scan(&s.TokenHash, &s.UserID, &s.RemoteAddr, &created, &expires)
	s.CreatedAt, s.ExpiresAt = fromMicros(created), fromMicros(expires)
	return s, translate(err, "session")
}

// DeleteSession ends a session (sign-out).
func (c *Catalog) DeleteSession(ctx context.Context, hash string) error {
	_, err := c.exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, hash)
	return translate(err, "session")
}

// DeleteUserSessions ends every session of a user (disabled, new password).
func (c *Catalog) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := c.exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
	return translate(err, "sessions")
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
