package catalog

import (
	"context"
	"fmt"
	"strings"
)

// maxBatch bounds the ids one query takes; more are looked up in batches
// of that many (a case export may hold more recordings than a page).
const maxBatch = 1000

// UploadsOfRecordings returns the stored upload each of the given
// recordings was made from, by recording id; stream recordings (and ids
// of no recording) are not in the map. It finds them through each
// recording's original segment (device and SHA-256: the stored uploads'
// unique index), not by scanning the uploads.
func (c *Catalog) UploadsOfRecordings(ctx context.Context, ids []string) (map[string]UploadRecord, error) {
	out := map[string]UploadRecord{}
	if len(ids) == 0 {
		return out, nil
	}
	if len(ids) > maxBatch {
		for len(ids) > 0 {
			n := min(len(ids), maxBatch)
			part, err := c.UploadsOfRecordings(ctx, ids[:n])
			if err != nil {
				return nil, err
			}
			for k, v := range part {
				out[k] = v
			}
			ids = ids[n:]
		}
		return out, nil
	}
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i], marks[i] = id, fmt.Sprintf("$%d", i+1)
	}
	rows, err := c.query(ctx, `SELECT `+uploadCols+` FROM segments s
		JOIN uploads u ON u.device_id = s.device_id AND u.sha256 = s.sha256 AND u.state = 'stored' AND u.recording_id = s.recording_id
		WHERE s.recording_id IN (`+strings.Join(marks, ", ")+`) AND s.seq = 1 AND s.kind = 'original'`, args...)
	if err != nil {
		return nil, translate(err, "uploads of recordings")
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, translate(err, "uploads of recordings")
		}
		out[u.RecordingID] = u
	}
	return out, translate(rows.Err(), "uploads of recordings")
}

// UploadOfRecording returns the stored upload a recording was made from
// (ErrNotFound for a stream recording).
func (c *Catalog) UploadOfRecording(ctx context.Context, id string) (UploadRecord, error) {
	m, err := c.UploadsOfRecordings(ctx, []string{id})
	if err != nil {
		return UploadRecord{}, err
	}
	u, ok := m[id]
	if !ok {
		return u, fmt.Errorf("%w: no stored upload of recording %s", ErrNotFound, id)
	}
	return u, nil
}

// SameEvents returns, for each of the given recordings that has any, the
// recordings linked to it as of the same event (LinkSameEvent), by id.
func (c *Catalog) SameEvents(ctx context.Context, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	if len(ids) > maxBatch {
		for len(ids) > 0 {
			n := min(len(ids), maxBatch)
			part, err := c.SameEvents(ctx, ids[:n])
			if err != nil {
				return nil, err
			}
			for k, v := range part {
				out[k] = v
			}
			ids = ids[n:]
		}
		return out, nil
	}
	args := []any{linkSameEvent}
	marks := make([]string, len(ids))
	for i, id := range ids {
		args = append(args, id)
		marks[i] = fmt.Sprintf("$%d", i+2)
	}
	in := strings.Join(marks, ", ")
	rows, err := c.query(ctx, `SELECT a, b FROM recording_links WHERE kind = $1 AND a IN (`+in+`)
		UNION SELECT b, a FROM recording_links WHERE kind = $1 AND b IN (`+in+`) ORDER BY 1, 2`, args...)
	if err != nil {
		return nil, translate(err, "same events")
	}
	defer rows.Close()
	for rows.Next() {
		var id, other string
		if err := rows.Scan(&id, &other); err != nil {
			return nil, translate(err, "same events")
		}
		out[id] = append(out[id], other)
	}
	return out, translate(rows.Err(), "same events")
}
