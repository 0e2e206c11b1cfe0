package catalog

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// Migration 13 on a catalog that holds data: SQLite rebuilds users (which
// sessions, tokens and cases refer to) and segments with foreign keys off;
// every row stays, the foreign keys are on again and hold, and the new
// role, segment kind and recording kind are accepted.
func TestMigration13Upgrade(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (*sql.DB, Dialect){
		"sqlite": func(t *testing.T) (*sql.DB, Dialect) {
			db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "catalog.db")+
				"?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
			if err != nil {
				t.Fatal(err)
			}
			return db, SQLite
		},
		"postgres": func(t *testing.T) (*sql.DB, Dialect) {
			db, err := sql.Open("pgx", testsvc.Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			return db, Postgres
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db, d := open(t)
			defer db.Close()
			c := &Catalog{db: db, dialect: d}
			if _, err := c.exec(ctx, `CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			ms, err := migrations(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if m.version >= 13 {
					break
				}
				if err := c.apply(ctx, m); err != nil {
					t.Fatalf("migration %d: %v", m.version, err)
				}
			}
			for _, q := range []string{
				`INSERT INTO users (id, role, unit, cert_token, created_us) VALUES ('adm', 'admin', 'u-1', 'c1', 1)`,
				`INSERT INTO sessions (token_hash, user_id, created_us, expires_us) VALUES ('h1', 'adm', 1, 2)`,
				`INSERT INTO api_tokens (id, token_hash, user_id, created_us) VALUES ('t1', 'th1', 'adm', 1)`,
				`INSERT INTO cases (id, state, officer, created_by, created_us, updated_us) VALUES ('k1', 'filed', 'adm', 'adm', 1, 1)`,
				`INSERT INTO case_members (case_id, user_id) VALUES ('k1', 'adm')`,
				`INSERT INTO devices (id, name, secret_hash, created_us) VALUES ('cam-1', 'c', 'h', 1)`,
				`INSERT INTO recordings (id, device_id, state, started_us) VALUES ('r1', 'cam-1', 'complete', 1)`,
				`INSERT INTO segments (recording_id, device_id, seq, kind, object_key, size, sha256, chain_seq, prev_chain_hash, chain_hash, started_us, duration_us)
					VALUES ('r1', 'cam-1', 0, 'init', 'k0', 1, 's', 1, 'p', 'h', 1, 0)`,
			} {
				if _, err := c.exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := c.migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for table, want := range map[string]int{"users": 1, "sessions": 1, "api_tokens": 1, "cases": 1, "case_members": 1, "segments": 1} {
				var n int
				if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil || n != want {
					t.Fatalf("%s: %d rows, %v; want %d", table, n, err, want)
				}
			}
			var kind, unit string
			if err := db.QueryRow(`SELECT r.kind, u.unit FROM recordings r, users u WHERE r.id = 'r1' AND u.id = 'adm'`).Scan(&kind, &unit); err != nil || kind != "stream" || unit != "u-1" {
				t.Fatalf("after the migration: kind %q, unit %q, %v", kind, unit, err)
			}
			for _, q := range []string{
				`INSERT INTO users (id, role, cert_token, created_us) VALUES ('dock-1', 'dock', 'c2', 1)`,
				`INSERT INTO segments (recording_id, device_id, seq, kind, object_key, size, sha256, chain_seq, prev_chain_hash, chain_hash, started_us, duration_us)
					VALUES ('r1', 'cam-1', 1, 'original', 'k1', 1, 's', 2, 'h', 'h2', 1, 0)`,
				`UPDATE recordings SET kind = 'upload' WHERE id = 'r1'`,
			} {
				if _, err := c.exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			_, err = c.exec(ctx, `INSERT INTO sessions (token_hash, user_id, created_us, expires_us) VALUES ('hx', 'nobody', 1, 2)`)
			if !errors.Is(translate(err, "session"), ErrNotFound) {
				t.Fatalf("session of an unknown user: %v, want a foreign key refusal", err)
			}
			// Every SQLite connection has foreign keys on, also the one that
			// ran the migration (back in the pool, or closed).
			if d == SQLite {
				var conns []*sql.Conn
				for i := 0; i < 4; i++ {
					conn, err := db.Conn(ctx)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close()
					conns = append(conns, conn)
				}
				for i, conn := range conns {
					var on int
					if err := conn.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&on); err != nil || on != 1 {
						t.Fatalf("connection %d: foreign_keys %d, %v", i, on, err)
					}
				}
			}
			if _, err := c.exec(ctx, `INSERT INTO users (id, role, cert_token, created_us) VALUES ('x', 'robot', 'c3', 1)`); err == nil {
				t.Fatal("role robot accepted")
			}
		})
	}
}
