package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// SnapshotSQLite writes a consistent copy of the SQLite catalog at src to
// dst, which must not exist, while a server may be writing to src. SQLite's
// VACUUM INTO reads the whole database inside one read transaction, so the
// copy is the database as of one commit, what is in the WAL included, and
// writers go on meanwhile (WAL readers do not block them). A copy of the
// files would not do: the database and its WAL, copied one after the
// other, need not belong together. The source is opened read-only; the
// copy is made 0600 (it holds users, password hashes and the custody
// ledger), checked with PRAGMA integrity_check, and its schema version
// returned.
func SnapshotSQLite(ctx context.Context, src, dst string) (schemaVersion int, err error) {
	if _, err := os.Stat(src); err != nil {
		return 0, fmt.Errorf("catalog: %w", err)
	}
	// VACUUM INTO writes into an empty file: made here, so it is the
	// owner's alone from its first byte.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("catalog: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, fmt.Errorf("catalog: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return 0, fmt.Errorf("catalog: snapshot of %s: %w", src, oneLine(err))
	}
	return checkSQLite(ctx, dst)
}

// checkSQLite checks a catalog file's integrity and reads its schema
// version, read-only.
func checkSQLite(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, fmt.Errorf("catalog: %w", err)
	}
	defer db.Close()
	var verdict string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&verdict); err != nil {
		return 0, fmt.Errorf("catalog: integrity check of %s: %w", path, oneLine(err))
	}
	if verdict != "ok" {
		return 0, fmt.Errorf("catalog: integrity check of %s: %s", path, verdict)
	}
	var version sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil {
		return 0, fmt.Errorf("catalog: %s is not a bodycam catalog: %w", path, oneLine(err))
	}
	return int(version.Int64), nil
}
