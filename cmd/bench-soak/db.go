package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// database is the bench's own PostgreSQL database (-database postgres),
// dropped at the end. (As cmd/bench-cluster makes its own.)
type database struct {
	admin *sql.DB
	name  string
	url   string
}

// createDatabase creates bodycam_soak_<random> on the machine's PostgreSQL
// (testsvc.PostgresAdminURL: $BODYCAM_TEST_POSTGRES_URL or the local one).
func createDatabase(ctx context.Context) (*database, error) {
	adminURL := testsvc.PostgresAdminURL()
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	name := "bodycam_soak_" + randHex(6)
	if _, err := db.ExecContext(cctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		return nil, fmt.Errorf("PostgreSQL at %s: create database: %w", adminURL, err)
	}
	u, i := adminURL, strings.LastIndex(adminURL, "/")
	q := ""
	if j := strings.Index(u, "?"); j > i {
		q = u[j:]
	}
	return &database{admin: db, name: name, url: u[:i+1] + name + q}, nil
}

// size is the database's size on disk (pg_database_size).
func (d *database) size(ctx context.Context) float64 {
	var n float64
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d.admin.QueryRowContext(cctx, "SELECT pg_database_size($1)", d.name).Scan(&n)
	return n
}

func (d *database) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := d.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "bench-soak: drop database %s: %v\n", d.name, err)
	}
	d.admin.Close()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
