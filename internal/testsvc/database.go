package testsvc

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// Database is a PostgreSQL database of a benchmark's own, on the server
// PostgresAdminURL names, dropped by Drop.
type Database struct {
	Name  string
	URL   string
	admin *sql.DB
}

// CreateDatabase creates <prefix><random> on PostgresAdminURL's server.
func CreateDatabase(ctx context.Context, prefix string) (*Database, error) {
	adminURL := PostgresAdminURL()
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	name := prefix + randHex(6)
	if _, err := db.ExecContext(cctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		return nil, fmt.Errorf("PostgreSQL at %s: create database: %w", adminURL, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		db.Close()
		return nil, err
	}
	u.Path = "/" + name
	return &Database{Name: name, URL: u.String(), admin: db}, nil
}

// Size is the database's size on disk (pg_database_size; 0 if unknown).
func (d *Database) Size(ctx context.Context) float64 {
	var n float64
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d.admin.QueryRowContext(cctx, "SELECT pg_database_size($1)", d.Name).Scan(&n)
	return n
}

// Drop drops the database, whoever is still connected.
func (d *Database) Drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := d.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.Name+" WITH (FORCE)")
	d.admin.Close()
	return err
}

// Admin is the connection to the server's admin database, for what a
// benchmark reads about its database (its backends, its size).
func (d *Database) Admin() *sql.DB { return d.admin }
