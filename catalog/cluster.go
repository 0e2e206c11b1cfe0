package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
)

// What several nodes sharing one catalog need from it: a reaper for the
// recordings and live views of a node that stopped answering, the fence a
// node issues itself when the coordinator does not answer, and every node's
// public keys.

// InterruptNode ends every live recording of node as interrupted at at with
// reason, marks them reaped (ReapedAt = at), and returns them as they are
// now. Nothing is signed: the node signs each manifest when its spool comes
// back, and its FinishRecording then replaces this end with its own.
func (c *Catalog) InterruptNode(ctx context.Context, node string, at time.Time, reason string) ([]evidence.Recording, error) {
	if node == "" {
		return nil, errors.New("catalog: InterruptNode needs a node id")
	}
	ids, err := func() ([]string, error) {
		defer c.writing()()
		tx, err := c.db.BeginTx(ctx, nil)
		if err != nil {
			return nil, translate(err, "recordings of node "+node)
		}
		defer tx.Rollback()
		rows, err := tx.QueryContext(ctx, c.q(`UPDATE recordings SET state = 'interrupted', ended_us = $1, end_reason = $2, reaped_us = $1
			WHERE node_id = $3 AND state = 'live' RETURNING id, device_id, started_us`), micros(at), reason, node)
		if err != nil {
			return nil, translate(err, "recordings of node "+node)
		}
		var ids, devices []string
		var starts []int64
		for rows.Next() {
			var id, device string
			var started int64
			if err := rows.Scan(&id, &device, &started); err != nil {
				rows.Close()
				return nil, translate(err, "recordings of node "+node)
			}
			ids, devices, starts = append(ids, id), append(devices, device), append(starts, started)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, translate(err, "recordings of node "+node)
		}
		for i := range ids {
			if err := c.raiseLongest(ctx, tx, devices[i], fromMicros(starts[i]), at); err != nil {
				return nil, err
			}
		}
		// Each device is offline from then on, told in the same transaction.
		for i, id := range ids {
			if err := c.emit(ctx, tx, events.DeviceOffline, devices[i], "", at,
				deviceData{DeviceID: devices[i], RecordingID: id, State: evidence.StateInterrupted, Reason: reason}); err != nil {
				return nil, err
			}
		}
		return ids, translate(tx.Commit(), "recordings of node "+node)
	}()
	if err != nil || len(ids) == 0 {
		return []evidence.Recording{}, err
	}
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i], marks[i] = id, fmt.Sprintf("$%d", i+1)
	}
	return c.recordings(ctx, `SELECT `+recordingCols+` FROM recordings r WHERE r.id IN (`+strings.Join(marks, ", ")+`)
		ORDER BY r.started_us, r.id`, args...)
}

// EndNodeLiveViews ends the open live views node serves, and returns them
// (for the custody ledger).
func (c *Catalog) EndNodeLiveViews(ctx context.Context, node string, at time.Time, reason string) ([]evidence.LiveView, error) {
	if node == "" {
		return nil, errors.New("catalog: EndNodeLiveViews needs a node id")
	}
	return c.endLiveViews(ctx, at, reason, " AND node_id = $3", node)
}

// DeviceFence is the highest fence of the device's recordings (0 for none,
// or only recordings from before clusters): what a node passes to
// coord.LocalFence when the coordinator does not answer.
func (c *Catalog) DeviceFence(ctx context.Context, deviceID string) (int64, error) {
	var f int64
	err := c.queryRow(ctx, `SELECT fence FROM devices WHERE id = $1`, deviceID).Scan(&f)
	return f, translate(err, "device "+deviceID)
}

// AddSigningKey records a node's public key. It is idempotent: a key on
// record already is left as it is (the node that first published it stays
// named); a different key under the same id is ErrConflict.
func (c *Catalog) AddSigningKey(ctx context.Context, k evidence.SigningKey) error {
	if k.ID == "" || k.PublicKeyPEM == "" {
		return errors.New("catalog: a signing key needs an id and its PEM")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	if _, err := c.exec(ctx, `INSERT INTO signing_keys (id, public_key, node_id, created_us) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`, k.ID, k.PublicKeyPEM, k.NodeID, micros(k.CreatedAt)); err != nil {
		return translate(err, "signing key "+k.ID)
	}
	var pem string
	if err := c.queryRow(ctx, `SELECT public_key FROM signing_keys WHERE id = $1`, k.ID).Scan(&pem); err != nil {
		return translate(err, "signing key "+k.ID)
	}
	if strings.TrimSpace(pem) != strings.TrimSpace(k.PublicKeyPEM) {
		return fmt.Errorf("%w: signing key %s is on record with another public key", ErrConflict, k.ID)
	}
	return nil
}

// SigningKeys lists every public key on record, oldest first.
func (c *Catalog) SigningKeys(ctx context.Context) ([]evidence.SigningKey, error) {
	rows, err := c.query(ctx, `SELECT id, public_key, node_id, created_us FROM signing_keys ORDER BY created_us, id`)
	if err != nil {
		return nil, translate(err, "signing keys")
	}
	defer rows.Close()
	out := []evidence.SigningKey{}
	for rows.Next() {
		var k evidence.SigningKey
		var created int64
		if err := rows.Scan(&k.ID, &k.PublicKeyPEM, &k.NodeID, &created); err != nil {
			return nil, translate(err, "signing keys")
		}
		k.CreatedAt = fromMicros(created)
		out = append(out, k)
	}
	return out, translate(rows.Err(), "signing keys")
}
