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
// ledger) and checked with PRAGMA integrity_check.
func SnapshotSQLite(ctx context.Context, src, dst string) (snap Snapshot, err error) {
	if _, err := os.Stat(src); err != nil {
		return Snapshot{}, fmt.Errorf("catalog: %w", err)
	}
	// VACUUM INTO writes into an empty file: made here, so it is the
	// owner's alone from its first byte.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Snapshot{}, fmt.Errorf("catalog: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return Snapshot{}, fmt.Errorf("catalog: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return Snapshot{}, fmt.Errorf("catalog: snapshot of %s: %w", src, oneLine(err))
	}
	return checkSQLite(ctx, dst)
}

// Snapshot describes a catalog snapshot.
type Snapshot struct {
	SchemaVersion int
	// LiveRecordings were being recorded at the snapshot: a catalog
	// restored from it has them as far as they were stored then.
	LiveRecordings int
}

// checkSQLite checks a catalog file's integrity and describes it,
// read-only.
func checkSQLite(ctx context.Context, path string) (Snapshot, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return Snapshot{}, fmt.Errorf("catalog: %w", err)
	}
	defer db.Close()
	var verdict string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&verdict); err != nil {
		return Snapshot{}, fmt.Errorf("catalog: integrity check of %s: %w", path, oneLine(err))
	}
	if verdict != "ok" {
		return Snapshot{}, fmt.Errorf("catalog: integrity check of %s: %s", path, verdict)
	}
	var version sql.NullInt64
	var live int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT MAX(version) FROM schema_migrations), (SELECT COUNT(*) FROM recordings WHERE state = 'live')`).Scan(&version, &live); err != nil {
		return Snapshot{}, fmt.Errorf("catalog: %s is not a bodycam catalog: %w", path, oneLine(err))
	}
	return Snapshot{SchemaVersion: int(version.Int64), LiveRecordings: live}, nil
}
