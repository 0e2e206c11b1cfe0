package evidence

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Custody actions of sharing a case with someone outside (a prosecutor, the
// defence): target kind case, target id the case; the detail names the
// share and its recipient.
const (
	// ActionShare: a share made (its recipient, purpose, recordings,
	// expiry and download limit), or a new one-time code issued for it.
	ActionShare = "share"
	// ActionShareRevoke: a share revoked, by a user (with the reason) or
	// by the server (too many wrong codes).
	ActionShareRevoke = "share_revoke"
	// ActionShareOpen: the recipient opened a share with its one-time code,
	// or gave a wrong code (outcome denied).
	ActionShareOpen = "share_open"
	// ActionShareDownload: the recipient downloaded what was shared: the
	// size and SHA-256 of the bytes sent and the signed receipt's id.
	ActionShareDownload = "share_download"
)

// ShareActor is the custody actor of what a share's recipient does (no
// account: the share is who acts).
func ShareActor(shareID string) string { return "share:" + shareID }

// RoleRecipient is the custody role of a share's recipient.
const RoleRecipient = "recipient"

// Recipient is who outside the system a case is shared with.
type Recipient struct {
	Name         string `json:"name"`
	Organisation string `json:"organisation"`
	Email        string `json:"email,omitempty"`
}

// Share is a case's footage shared with a named recipient through a link
// and a one-time code: the court export of the chosen recordings (with the
// chosen derived copies), downloadable a limited number of times until it
// expires or is revoked.
type Share struct {
	ID         string    `json:"id"`
	CaseID     string    `json:"case_id"`
	Recipient  Recipient `json:"recipient"`
	Purpose    string    `json:"purpose"`
	Recordings []string  `json:"recordings"`
	// Copies: which derived copies go with the export, as the export's
	// ?copies= (kinds and job ids); "" none.
	Copies       string    `json:"copies,omitempty"`
	MaxDownloads int       `json:"max_downloads"`
	Downloads    int       `json:"downloads"`
	CreatedBy    string    `json:"created_by"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	// CodeUsedAt: when the recipient opened the share with its current
	// code (zero: not yet).
	CodeUsedAt    time.Time `json:"code_used_at,omitzero"`
	FailedCodes   int       `json:"failed_codes"`
	RevokedBy     string    `json:"revoked_by,omitempty"`
	RevokedAt     time.Time `json:"revoked_at,omitzero"`
	RevokedReason string    `json:"revoked_reason,omitempty"`
}

// Share limits.
const (
	ShareMaxDownloads = 100
	ShareMinExpiry    = 5 * time.Second
	ShareMaxExpiry    = 90 * 24 * time.Hour
	// ShareMaxFailedCodes wrong codes revoke a share.
	ShareMaxFailedCodes = 5
)

// Revoked reports whether the share was revoked.
func (s Share) Revoked() bool { return !s.RevokedAt.IsZero() }

// Usable says why the recipient may not use the share now ("" when they
// may): revoked, expired or used up.
func (s Share) Usable(now time.Time) string {
	switch {
	case s.Revoked():
		return "this share was revoked"
	case !now.Before(s.ExpiresAt):
		return "this share expired at " + s.ExpiresAt.UTC().Format(time.RFC3339)
	case s.Downloads >= s.MaxDownloads:
		return fmt.Sprintf("this share's %d downloads were used", s.MaxDownloads)
	}
	return ""
}

// ValidateShare checks what a user asks to share: a named recipient, a
// purpose, at least one recording, a download limit and an expiry within
// bounds.
func ValidateShare(s Share) error {
	text := func(field, v string, max int, required bool) error {
		if required && strings.TrimSpace(v) == "" {
			return fmt.Errorf("%s is required", field)
		}
		if len(v) > max {
			return fmt.Errorf("%s: longer than %d bytes", field, max)
		}
		for _, r := range v {
			if !unicode.IsPrint(r) {
				return fmt.Errorf("%s: contains a control character", field)
			}
		}
		return nil
	}
	if err := errors.Join(text("recipient.name", s.Recipient.Name, 200, true), text("recipient.organisation", s.Recipient.Organisation, 200, true),
		text("recipient.email", s.Recipient.Email, 200, false), text("purpose", s.Purpose, 500, true)); err != nil {
		return err
	}
	if s.Recipient.Email != "" && (!strings.Contains(s.Recipient.Email, "@") || strings.ContainsAny(s.Recipient.Email, " <>\"")) {
		return fmt.Errorf("recipient.email: not an address")
	}
	if len(s.Recordings) == 0 {
		return fmt.Errorf("recordings: share at least one recording of the case")
	}
	if s.MaxDownloads < 1 || s.MaxDownloads > ShareMaxDownloads {
		return fmt.Errorf("max_downloads: from 1 to %d", ShareMaxDownloads)
	}
	if d := s.ExpiresAt.Sub(s.CreatedAt); d < ShareMinExpiry || d > ShareMaxExpiry {
		return fmt.Errorf("expires_in: from %s to %s", ShareMinExpiry, ShareMaxExpiry)
	}
	return nil
}

// ShareReceipt is what the server signs for each download of a share: what
// was sent (its name, size and SHA-256, the recordings in it with their
// chain heads), to whom, when, and which download of how many. Like a
// manifest it is kept as its Marshal bytes and the raw Ed25519 signature of
// those bytes; the recipient checks it offline with the server's public key
// (`openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in receipt.json
// -sigfile receipt.json.sig`), and that the file's SHA-256 is the one named.
type ShareReceipt struct {
	Version      int                     `json:"version"`
	ID           string                  `json:"id"`
	ShareID      string                  `json:"share_id"`
	CaseID       string                  `json:"case_id"`
	Recipient    Recipient               `json:"recipient"`
	SharedBy     string                  `json:"shared_by"`
	FileName     string                  `json:"file_name"`
	Size         int64                   `json:"size"`
	SHA256       string                  `json:"sha256"`
	Recordings   []ShareReceiptRecording `json:"recordings"`
	Download     int                     `json:"download"`
	MaxDownloads int                     `json:"max_downloads"`
	DownloadedAt time.Time               `json:"downloaded_at"`
	Remote       string                  `json:"remote"`
	SigningKeyID string                  `json:"signing_key_id"`
}

// ShareReceiptRecording is a recording in a shared export, by its chain
// head (the hash of its last segment: what its signed manifest names).
type ShareReceiptRecording struct {
	ID        string `json:"id"`
	DeviceID  string `json:"device_id"`
	ChainHead string `json:"chain_head"`
}

// Marshal encodes the receipt as the bytes that are signed.
func (r ShareReceipt) Marshal() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return append(b, '\n')
}

// VerifyShareReceipt checks a share receipt's raw Ed25519 signature and
// decodes it.
func VerifyShareReceipt(pub ed25519.PublicKey, body, sig []byte) (ShareReceipt, error) {
	var r ShareReceipt
	if !VerifyManifest(pub, body, sig) {
		return r, fmt.Errorf("share receipt: the signature does not match the key")
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("share receipt: %v", err)
	}
	return r, nil
}
