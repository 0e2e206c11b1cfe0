package evidence

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Approval before copying (issue 16). A copy of evidence leaving the
// system (a media download, a case export) needs a request naming who,
// what and why, granted by a supervisor other than the requester. A grant
// is time-limited and counted; every request, decision and use is a
// custody event (ActionCopyRequest, ActionCopyApprove, ActionCopyRefuse,
// ActionCopyUse). Watching in the console is not a copy.

// What a copy request names.
const (
	CopyOfRecording = "recording" // the original file and media downloads of a recording, its clips and redacted copies
	CopyOfCase      = "case"      // a case's court export
)

// Stored states of a copy request. A granted request is further "expired"
// or "used" (CopyRequest.StateAt) without being written again.
const (
	CopyPending = "pending"
	CopyGranted = "granted"
	CopyRefused = "refused"
	CopyExpired = "expired"
	CopyUsed    = "used"
)

// Bounds of a copy request.
const (
	MaxCopyReason = 500 // characters of a request's reason or a decision's note
	MaxCopyUses   = 20
	// MaxCopyGrant bounds how long a grant stays valid.
	MaxCopyGrant = 7 * 24 * time.Hour
)

// CopyRequest is a request to copy evidence out, and once decided its
// grant or refusal.
type CopyRequest struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`      // CopyOfRecording or CopyOfCase
	TargetID     string    `json:"target_id"` // the recording's or the case's id
	Reason       string    `json:"reason"`
	Uses         int       `json:"uses"`      // downloads the grant allows
	UsesLeft     int       `json:"uses_left"` // what is left of them
	RequestedBy  string    `json:"requested_by"`
	RequestedAt  time.Time `json:"requested_at"`
	State        string    `json:"state"` // stored: pending, granted or refused
	DecidedBy    string    `json:"decided_by,omitempty"`
	DecidedAt    time.Time `json:"decided_at,omitzero"`
	DecisionNote string    `json:"decision_note,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"` // a grant's end
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
}

// StateAt is the request's state at now: pending, refused, granted, or a
// grant expired or used up.
func (c CopyRequest) StateAt(now time.Time) string {
	if c.State != CopyGranted {
		return c.State
	}
	if c.UsesLeft <= 0 {
		return CopyUsed
	}
	if !now.Before(c.ExpiresAt) {
		return CopyExpired
	}
	return CopyGranted
}

// Target names what the request is for, as custody details say it.
func (c CopyRequest) Target() string { return c.Kind + " " + c.TargetID }

// ValidateCopyText checks a reason or a note: at most MaxCopyReason
// characters of text, required when required.
func ValidateCopyText(field, s string, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return fmt.Errorf("%s: required (say why the copy is needed)", field)
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxCopyReason {
		return fmt.Errorf("%s: at most %d characters of text", field, MaxCopyReason)
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return fmt.Errorf("%s: control characters are not allowed", field)
		}
	}
	return nil
}
