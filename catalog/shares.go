package catalog

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// ShareRecord is a share as kept: the share, and the keyed hash of its
// current one-time code and the SHA-256 (hex) of the recipient's session
// ("" before the code was used). The API makes and compares them; the
// catalog never sees a code.
type ShareRecord struct {
	evidence.Share
	CodeHash    string
	SessionHash string
}

// ShareReceiptRecord is a download's signed receipt as kept: the signed
// bytes and the raw signature.
type ShareReceiptRecord struct {
	ID        string
	ShareID   string
	Download  int
	At        time.Time
	Body      []byte
	Signature []byte
}

const shareCols = `id, case_id, recipient_name, recipient_org, recipient_email, purpose, recordings, copies, max_downloads, downloads,
	created_by, created_us, expires_us, code_hash, code_used_us, session_hash, failed_codes, revoked_by, revoked_us, revoked_reason`

func scanShare(s scanner) (ShareRecord, error) {
	var r ShareRecord
	var recs string
	var created, expires, used, revoked int64
	err := s.Scan(&r.ID, &r.CaseID, &r.Recipient.Name, &r.Recipient.Organisation, &r.Recipient.Email, &r.Purpose, &recs, &r.Copies,
		&r.MaxDownloads, &r.Downloads, &r.CreatedBy, &created, &expires, &r.CodeHash, &used, &r.SessionHash, &r.FailedCodes,
		&r.RevokedBy, &revoked, &r.RevokedReason)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(recs), &r.Recordings); err != nil {
		return r, fmt.Errorf("share %s: recordings: %v", r.ID, err)
	}
	r.CreatedAt, r.ExpiresAt = fromMicros(created), fromMicros(expires)
	if used != 0 {
		r.CodeUsedAt = fromMicros(used)
	}
	if revoked != 0 {
		r.RevokedAt = fromMicros(revoked)
	}
	return r, nil
}

// CreateShare keeps a new share with the hash of its one-time code. A
// known id is ErrExists, an unknown case ErrNotFound. The caller checks it
// (evidence.ValidateShare) and that its recordings are the case's.
func (c *Catalog) CreateShare(ctx context.Context, s evidence.Share, codeHash string) error {
	if s.ID == "" || s.CaseID == "" || codeHash == "" || s.CreatedAt.IsZero() || s.ExpiresAt.IsZero() {
		return fmt.Errorf("catalog: a share needs an id, a case, a code, a creation time and an expiry")
	}
	recs, err := json.Marshal(s.Recordings)
	if err != nil {
		return err
	}
	_, err = c.exec(ctx, `INSERT INTO shares (id, case_id, recipient_name, recipient_org, recipient_email, purpose, recordings, copies,
		max_downloads, created_by, created_us, expires_us, code_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		s.ID, s.CaseID, s.Recipient.Name, s.Recipient.Organisation, s.Recipient.Email, s.Purpose, string(recs), s.Copies,
		s.MaxDownloads, s.CreatedBy, micros(s.CreatedAt), micros(s.ExpiresAt), codeHash)
	return translate(err, "share "+s.ID)
}

// Share returns one share (ErrNotFound).
func (c *Catalog) Share(ctx context.Context, id string) (ShareRecord, error) {
	r, err := scanShare(c.queryRow(ctx, `SELECT `+shareCols+` FROM shares WHERE id = $1`, id))
	return r, translate(err, "share "+id)
}

// Shares lists a case's shares, the newest first.
func (c *Catalog) Shares(ctx context.Context, caseID string) ([]ShareRecord, error) {
	rows, err := c.query(ctx, `SELECT `+shareCols+` FROM shares WHERE case_id = $1 ORDER BY created_us DESC, id`, caseID)
	if err != nil {
		return nil, translate(err, "shares of "+caseID)
	}
	defer rows.Close()
	out := []ShareRecord{}
	for rows.Next() {
		r, err := scanShare(rows)
		if err != nil {
			return nil, translate(err, "shares of "+caseID)
		}
		out = append(out, r)
	}
	return out, translate(rows.Err(), "shares of "+caseID)
}

// RevokeShare ends a share now, with who and why. Unknown: ErrNotFound;
// revoked already: ErrConflict.
func (c *Catalog) RevokeShare(ctx context.Context, id, by, reason string, at time.Time) error {
	if by == "" || reason == "" || at.IsZero() {
		return fmt.Errorf("catalog: revoking a share needs who, why and when")
	}
	return c.shareUpdate(ctx, id, "was revoked already", `UPDATE shares SET revoked_by = $1, revoked_us = $2, revoked_reason = $3,
		session_hash = '' WHERE id = $4 AND revoked_us = 0`, by, micros(at), reason, id)
}

// NewShareCode replaces a share's one-time code: the recipient's session
// ends, and the new code opens the share once. Revoked: ErrConflict.
func (c *Catalog) NewShareCode(ctx context.Context, id, codeHash string) error {
	return c.shareUpdate(ctx, id, "is revoked", `UPDATE shares SET code_hash = $1, code_used_us = 0, session_hash = '', failed_codes = 0
		WHERE id = $2 AND revoked_us = 0`, codeHash, id)
}

// UseShareCode spends a share's one-time code: it opens the share for the
// session whose hash is given, once. A code used already, another code, a
// share revoked or expired at at: ErrConflict (two recipients racing with
// the same code: one wins).
func (c *Catalog) UseShareCode(ctx context.Context, id, codeHash, sessionHash string, at time.Time) error {
	return c.shareUpdate(ctx, id, "cannot be opened with this code now", `UPDATE shares SET code_used_us = $1, session_hash = $2
		WHERE id = $3 AND code_hash = $4 AND code_used_us = 0 AND revoked_us = 0 AND expires_us > $1`, micros(at), sessionHash, id, codeHash)
}

// FailShareCode counts a wrong code given for a share; the max-th revokes
// it (by "server", at at). It returns the count and whether it revoked the
// share now.
func (c *Catalog) FailShareCode(ctx context.Context, id string, max int, at time.Time) (int, bool, error) {
	var n int
	err := func() error {
		defer c.writing()()
		return c.db.QueryRowContext(ctx, c.q(`UPDATE shares SET failed_codes = failed_codes + 1 WHERE id = $1 RETURNING failed_codes`), id).Scan(&n)
	}()
	if err != nil {
		return 0, false, translate(err, "share "+id)
	}
	if n < max {
		return n, false, nil
	}
	err = c.RevokeShare(ctx, id, "server", fmt.Sprintf("%d wrong codes", n), at)
	if errors.Is(err, ErrConflict) {
		return n, false, nil
	}
	return n, err == nil, err
}

// TakeShareDownload counts one download of a share by the session whose
// hash is given, if it may still be used at at (not revoked, not expired,
// downloads left, that session still the share's), and returns its number
// (1 for the first). Otherwise ErrConflict: concurrent downloads never take
// more than the limit, and a session ended meanwhile (a new code, a
// revocation) takes none.
func (c *Catalog) TakeShareDownload(ctx context.Context, id, sessionHash string, at time.Time) (int, error) {
	var n int
	err := func() error {
		defer c.writing()()
		return c.db.QueryRowContext(ctx, c.q(`UPDATE shares SET downloads = downloads + 1
			WHERE id = $1 AND downloads < max_downloads AND revoked_us = 0 AND expires_us > $2 AND session_hash <> '' AND session_hash = $3
			RETURNING downloads`), id, micros(at), sessionHash).Scan(&n)
	}()
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := c.Share(ctx, id); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("share %s may not be downloaded now: %w", id, ErrConflict)
	}
	return n, translate(err, "share "+id)
}

// AddShareReceipt keeps a download's signed receipt.
func (c *Catalog) AddShareReceipt(ctx context.Context, r ShareReceiptRecord) error {
	if r.ID == "" || r.ShareID == "" || len(r.Body) == 0 || len(r.Signature) == 0 {
		return fmt.Errorf("catalog: a share receipt needs an id, a share, its bytes and its signature")
	}
	_, err := c.exec(ctx, `INSERT INTO share_receipts (id, share_id, download, at_us, body, signature) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.ID, r.ShareID, r.Download, micros(r.At), string(r.Body), base64.StdEncoding.EncodeToString(r.Signature))
	return translate(err, "share receipt "+r.ID)
}

// ShareReceipts lists a share's receipts by download.
func (c *Catalog) ShareReceipts(ctx context.Context, shareID string) ([]ShareReceiptRecord, error) {
	rows, err := c.query(ctx, `SELECT id, share_id, download, at_us, body, signature FROM share_receipts WHERE share_id = $1
		ORDER BY download, at_us`, shareID)
	if err != nil {
		return nil, translate(err, "receipts of share "+shareID)
	}
	defer rows.Close()
	out := []ShareReceiptRecord{}
	for rows.Next() {
		var r ShareReceiptRecord
		var at int64
		var body, sig string
		if err := rows.Scan(&r.ID, &r.ShareID, &r.Download, &at, &body, &sig); err != nil {
			return nil, translate(err, "receipts of share "+shareID)
		}
		r.At, r.Body = fromMicros(at), []byte(body)
		if r.Signature, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return nil, fmt.Errorf("receipt %s: signature: %v", r.ID, err)
		}
		out = append(out, r)
	}
	return out, translate(rows.Err(), "receipts of share "+shareID)
}

// shareUpdate runs an update of one share; no row changed: ErrNotFound
// when the share is unknown, else ErrConflict saying why.
func (c *Catalog) shareUpdate(ctx context.Context, id, conflict, query string, args ...any) error {
	res, err := c.exec(ctx, query, args...)
	if err != nil {
		return translate(err, "share "+id)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return translate(err, "share "+id)
	}
	if _, err := c.Share(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("share %s %s: %w", id, conflict, ErrConflict)
}
