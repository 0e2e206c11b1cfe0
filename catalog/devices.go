package catalog

import (
	"context"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

const deviceCols = `id, name, officer_id, secret_hash, secret_salt, disabled, created_us`

type scanner interface{ Scan(dest ...any) error }

func scanDevice(s scanner) (evidence.Device, error) {
	var d evidence.Device
	var created int64
	err := s.Scan(&d.ID, &d.Name, &d.OfficerID, &d.SecretHash, &d.SecretSalt, &d.Disabled, &created)
	d.CreatedAt = fromMicros(created)
	return d, err
}

// CreateDevice registers a device. An id already in use, even by a disabled
// device, is ErrExists: evidence refers to devices by id forever.
func (c *Catalog) CreateDevice(ctx context.Context, d evidence.Device) error {
	if err := evidence.ValidateDeviceID(d.ID); err != nil {
		return err
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now()
	}
	_, err := c.exec(ctx, `INSERT INTO devices (`+deviceCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		d.ID, d.Name, d.OfficerID, d.SecretHash, d.SecretSalt, d.Disabled, micros(d.CreatedAt))
	return translate(err, "device "+d.ID)
}

// Device returns one device.
func (c *Catalog) Device(ctx context.Context, id string) (evidence.Device, error) {
	d, err := scanDevice(c.queryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	return d, translate(err, "device "+id)
}

// Devices lists every device, disabled ones included, by id.
func (c *Catalog) Devices(ctx context.Context) ([]evidence.Device, error) {
	rows, err := c.query(ctx, `SELECT `+deviceCols+` FROM devices ORDER BY id`)
	if err != nil {
		return nil, translate(err, "devices")
	}
	defer rows.Close()
	var out []evidence.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, translate(err, "devices")
		}
		out = append(out, d)
	}
	return out, translate(rows.Err(), "devices")
}

// DisableDevice retires a device: its credentials stop working, its id stays
// reserved and its recordings stay. Disabling twice is not an error.
func (c *Catalog) DisableDevice(ctx context.Context, id string) error {
	res, err := c.exec(ctx, `UPDATE devices SET disabled = TRUE WHERE id = $1`, id)
	if err != nil {
		return translate(err, "device "+id)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return translate(errNoRows, "device "+id)
	}
	return nil
}
