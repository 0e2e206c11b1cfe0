package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

const bookmarkCols = `id, recording_id, at_us, note, created_by, created_us, removed_by, removed_us, removed_reason`

func scanBookmark(s scanner) (evidence.Bookmark, error) {
	var b evidence.Bookmark
	var at, created, removed int64
	err := s.Scan(&b.ID, &b.RecordingID, &at, &b.Note, &b.CreatedBy, &created, &b.RemovedBy, &removed, &b.RemovedReason)
	b.At, b.CreatedAt = fromMicros(at), fromMicros(created)
	if removed != 0 {
		b.RemovedAt = fromMicros(removed)
	}
	return b, err
}

// CreateBookmark records a bookmark (not removed). A known id is ErrExists,
// an unknown recording ErrNotFound. The caller checks the time and note
// (evidence.ValidateBookmark).
func (c *Catalog) CreateBookmark(ctx context.Context, b evidence.Bookmark) error {
	if b.ID == "" || b.RecordingID == "" || b.CreatedBy == "" || b.At.IsZero() || b.CreatedAt.IsZero() {
		return fmt.Errorf("catalog: a bookmark needs an id, a recording, a time, an author and a creation time")
	}
	if _, err := c.Recording(ctx, b.RecordingID); err != nil {
		return err
	}
	_, err := c.exec(ctx, `INSERT INTO bookmarks (id, recording_id, at_us, note, created_by, created_us)
		VALUES ($1, $2, $3, $4, $5, $6)`, b.ID, b.RecordingID, micros(b.At), b.Note, b.CreatedBy, micros(b.CreatedAt))
	return translate(err, "bookmark "+b.ID)
}

// Bookmark returns one bookmark (ErrNotFound).
func (c *Catalog) Bookmark(ctx context.Context, id string) (evidence.Bookmark, error) {
	b, err := scanBookmark(c.queryRow(ctx, `SELECT `+bookmarkCols+` FROM bookmarks WHERE id = $1`, id))
	return b, translate(err, "bookmark "+id)
}

// Bookmarks lists a recording's bookmarks by time, removed ones too (they
// say so).
func (c *Catalog) Bookmarks(ctx context.Context, recordingID string) ([]evidence.Bookmark, error) {
	rows, err := c.query(ctx, `SELECT `+bookmarkCols+` FROM bookmarks WHERE recording_id = $1
		ORDER BY at_us, created_us, id`, recordingID)
	if err != nil {
		return nil, translate(err, "bookmarks of "+recordingID)
	}
	defer rows.Close()
	out := []evidence.Bookmark{}
	for rows.Next() {
		b, err := scanBookmark(rows)
		if err != nil {
			return nil, translate(err, "bookmarks of "+recordingID)
		}
		out = append(out, b)
	}
	return out, translate(rows.Err(), "bookmarks of "+recordingID)
}

// RemoveBookmark marks a bookmark removed by who, with why. Unknown:
// ErrNotFound; removed already: ErrConflict.
func (c *Catalog) RemoveBookmark(ctx context.Context, id, by, reason string, at time.Time) error {
	if by == "" || reason == "" || at.IsZero() {
		return fmt.Errorf("catalog: removing a bookmark needs who, why and when")
	}
	res, err := c.exec(ctx, `UPDATE bookmarks SET removed_by = $1, removed_us = $2, removed_reason = $3
		WHERE id = $4 AND removed_us = 0`, by, micros(at), reason, id)
	if err != nil {
		return translate(err, "bookmark "+id)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return translate(err, "bookmark "+id)
	}
	if _, err := c.Bookmark(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("bookmark %s was removed already: %w", id, ErrConflict)
}
