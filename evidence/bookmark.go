package evidence

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Bookmark marks a moment of a recording for review: when (recorded time),
// a note, and who set it. A bookmark is never edited: it is removed (with a
// reason, kept) and set again. Setting and removing one are custody events
// (ActionBookmark, ActionBookmarkRemoved); the footage is not touched.
type Bookmark struct {
	ID            string    `json:"id"`
	RecordingID   string    `json:"recording_id"`
	At            time.Time `json:"at"`
	Note          string    `json:"note"`
	CreatedBy     string    `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
	RemovedBy     string    `json:"removed_by,omitempty"`
	RemovedAt     time.Time `json:"-"`
	RemovedReason string    `json:"removed_reason,omitempty"`
}

// Removed reports whether the bookmark was removed.
func (b Bookmark) Removed() bool { return !b.RemovedAt.IsZero() }

// MaxBookmarkNote bounds a bookmark's note (characters).
const MaxBookmarkNote = 500

// ValidateBookmark checks what a user gives for a bookmark of rec: a note
// of at most MaxBookmarkNote characters of valid text, and a time within
// the recording (its start to its end, or to now while it is live).
func ValidateBookmark(rec Recording, at time.Time, note string, now time.Time) error {
	if !utf8.ValidString(note) || utf8.RuneCountInString(note) > MaxBookmarkNote {
		return fmt.Errorf("note: at most %d characters of text", MaxBookmarkNote)
	}
	for _, r := range note {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return fmt.Errorf("note: control characters are not allowed")
		}
	}
	end := rec.EndedAt
	if end.IsZero() {
		end = now
	}
	if at.IsZero() || at.Before(rec.StartedAt) || at.After(end) {
		return fmt.Errorf("at %s is outside the recording (%s to %s)", at.UTC().Format(time.RFC3339Nano),
			rec.StartedAt.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano))
	}
	return nil
}
