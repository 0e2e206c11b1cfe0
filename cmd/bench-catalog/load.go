package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// database is the bench's own PostgreSQL database, created on the admin
// connection's server and dropped at the end.
type database struct {
	admin *pgx.Conn
	name  string
	url   string
}

func createDatabase(ctx context.Context, adminURL string) (*database, error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL at %s: %w", adminURL, err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "bodycam_bench_catalog_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		admin.Close(ctx)
		return nil, err
	}
	u.Path = "/" + name
	return &database{admin: admin, name: name, url: u.String()}, nil
}

// drop removes the database (its connections are closed by force).
func (db *database) drop(ctx context.Context) error {
	defer db.admin.Close(ctx)
	_, err := db.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db.name+" WITH (FORCE)")
	return err
}

// loader writes the city's ops on one connection, each COPY or statement
// in its own transaction.
type loader struct {
	conn *pgx.Conn
}

func (l *loader) apply(ctx context.Context, o op) error {
	if o.table != "" {
		if len(o.rows) == 0 {
			return nil
		}
		_, err := l.conn.CopyFrom(ctx, pgx.Identifier{o.table}, o.cols, pgx.CopyFromRows(o.rows))
		if err != nil {
			return fmt.Errorf("copy into %s: %w", o.table, err)
		}
		return nil
	}
	if _, err := l.conn.Exec(ctx, o.sql, o.args...); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(strings.Fields(o.sql), " ")[:min(60, len(o.sql))], err)
	}
	return nil
}

// fill runs the city's generator to target rows on one goroutine and the
// writes on this one, so that generating and PostgreSQL's COPY overlap.
func (l *loader) fill(ctx context.Context, c *city, target int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ops := make(chan op, 4)
	done := make(chan error, 1)
	go func() {
		defer close(ops)
		done <- c.fillTo(target, func(o op) error {
			select {
			case ops <- o:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for o := range ops {
		if err := l.apply(ctx, o); err != nil {
			cancel()
			for range ops {
			}
			<-done
			return err
		}
	}
	return <-done
}

// columnExists says whether table has column (the fill follows the schema
// of the catalog it was built with, older or newer).
func columnExists(ctx context.Context, conn *pgx.Conn, table, column string) (bool, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT COUNT(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2`,
		table, column).Scan(&n)
	return n > 0, err
}

// setupFleet writes the devices (the city's and the append test's) and
// their officers.
func setupFleet(ctx context.Context, conn *pgx.Conn, c cityConfig, appendDevices int) error {
	created := c.Start.Add(-24 * time.Hour).UnixMicro()
	var devices, users [][]any
	for d := range c.Devices {
		devices = append(devices, []any{deviceID(d), "chest camera " + deviceID(d), officerID(d), "bench", "bench", created})
		users = append(users, []any{officerID(d), "Officer " + officerID(d), "officer", c.unitOf(d), fmt.Sprintf("cert-%05d", d), created})
	}
	for d := range appendDevices {
		devices = append(devices, []any{appendDeviceID(d), "append test " + appendDeviceID(d), "", "bench", "bench", created})
	}
	users = append(users, []any{"supervisor-1", "Supervisor", "supervisor", "unit-1", "cert-supervisor-1", created})
	l := loader{conn}
	if err := l.apply(ctx, op{table: "users", cols: []string{"id", "name", "role", "unit", "cert_token", "created_us"}, rows: users}); err != nil {
		return err
	}
	return l.apply(ctx, op{table: "devices", cols: []string{"id", "name", "officer_id", "secret_hash", "secret_salt", "created_us"}, rows: devices})
}

func appendDeviceID(d int) string { return fmt.Sprintf("append-%03d", d) }
