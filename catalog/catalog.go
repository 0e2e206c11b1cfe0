// Package catalog is bodycam's system of record in SQL: devices, recordings
// and segments (more with later parts). The same code runs on SQLite (the
// embedded default, a file in the data directory) and PostgreSQL; queries are
// written once with $N placeholders. Migrations are embedded and applied on
// Open. The conformance suite, catalogtest.Run, passes on both.
package catalog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("catalog: not found")
	ErrExists   = errors.New("catalog: already exists")
	ErrConflict = errors.New("catalog: conflicting state")
	// ErrStaleFence: AppendSegment refused a segment that its node recorded
	// after another node was granted the device (a newer fence); nothing
	// was written.
	ErrStaleFence = errors.New("catalog: stale fence")
)

// Dialect names the SQL engine behind a Catalog.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Catalog is the SQL system of record.
type Catalog struct {
	db      *sql.DB
	dialect Dialect
	// wmu serialises SQLite's writers in the process: SQLite has one writer
	// at a time anyway, and its busy handler waits by sleeping and polling,
	// which under load costs far more than a hand-off on a mutex.
	wmu sync.Mutex
	// stop ends the SQLite checkpointer; stopped says it has.
	stop, stopped chan struct{}
	closeOnce     sync.Once
}

// writing takes the in-process write lock where the engine needs it.
func (c *Catalog) writing() func() {
	if c.dialect != SQLite {
		return func() {}
	}
	c.wmu.Lock()
	return c.wmu.Unlock
}

// Open opens the catalog: PostgreSQL when databaseURL is set (postgres:// or
// postgresql://), otherwise SQLite at <dataDir>/catalog.db. It applies any
// pending migrations before returning.
func Open(ctx context.Context, databaseURL, dataDir string) (*Catalog, error) {
	if databaseURL == "" {
		return OpenSQLite(ctx, filepath.Join(dataDir, "catalog.db"))
	}
	return OpenPostgres(ctx, databaseURL)
}

// OpenSQLite opens (creating) a SQLite catalog file.
func OpenSQLite(ctx context.Context, path string) (*Catalog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if err := private(path); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	// WAL for concurrent readers, FULL sync because this is evidence, foreign
	// keys on, and immediate transactions so two writers queue rather than
	// deadlock on a lock upgrade.
	// Checkpoints run in the background (see checkpoints), not in the
	// writer that happens to cross the WAL's size threshold.
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=wal_autocheckpoint(0)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c, err := open(ctx, db, SQLite)
	if err != nil {
		return nil, err
	}
	c.stop = make(chan struct{})
	c.stopped = make(chan struct{})
	go c.checkpoints()
	return c, nil
}

// private makes the catalog's files readable by their owner only (0600):
// it holds users, password hashes and the custody ledger. SQLite gives the
// -wal and -shm files it creates the database file's mode, so the database
// is created 0600 before SQLite opens it; files of an older start are
// narrowed.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// checkpoints copies the SQLite WAL back into the database every second,
// in PASSIVE mode, outside the write lock: with SQLite's automatic
// checkpoint, the commit that crosses the threshold does the copy and the
// fsync while holding the write lock, and under load every other writer
// (the uploaders) stalls behind it for most of a second.
func (c *Catalog) checkpoints() {
	defer close(c.stopped)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
			cancel()
		}
	}
}

// OpenPostgres opens a PostgreSQL catalog.
func OpenPostgres(ctx context.Context, databaseURL string) (*Catalog, error) {
	if err := ValidateURL(databaseURL); err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database-url: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return open(ctx, db, Postgres)
}

// ValidateURL checks the shape of a --database-url.
func ValidateURL(databaseURL string) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return fmt.Errorf("database-url: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("database-url: scheme %q not supported (want postgres://)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("database-url: no host")
	}
	return nil
}

func open(ctx context.Context, db *sql.DB, d Dialect) (*Catalog, error) {
	c := &Catalog{db: db, dialect: d}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("catalog (%s): %w", d, oneLine(err))
	}
	if err := c.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

// Dialect reports the engine.
func (c *Catalog) Dialect() Dialect { return c.dialect }

// Close closes the database (twice is fine).
func (c *Catalog) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.stop != nil {
			close(c.stop)
			<-c.stopped
			c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
		}
		err = c.db.Close()
	})
	return err
}

// Ping checks that the database answers.
func (c *Catalog) Ping(ctx context.Context) error {
	var one int
	if err := c.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("catalog: %w", oneLine(err))
	}
	return nil
}

var placeholder = regexp.MustCompile(`\$(\d+)`)

// q adapts a query written with $N placeholders to the dialect.
func (c *Catalog) q(query string) string {
	if c.dialect == SQLite {
		return placeholder.ReplaceAllString(query, "?$1")
	}
	return query
}

func (c *Catalog) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer c.writing()()
	return c.db.ExecContext(ctx, c.q(query), args...)
}

func (c *Catalog) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.db.QueryContext(ctx, c.q(query), args...)
}

func (c *Catalog) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return c.db.QueryRowContext(ctx, c.q(query), args...)
}

//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded migrations in order. A file NNNN_name.sql
// serves both engines unless NNNN_name.<dialect>.sql exists beside it.
func migrations(d Dialect) ([]migration, error) {
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]migration{}
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".sql")
		name, only, dialectSpecific := strings.Cut(base, ".")
		if dialectSpecific && Dialect(only) != d {
			continue
		}
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("catalog: migration %s: bad version", f)
		}
		if _, seen := byVersion[v]; seen && !dialectSpecific {
			continue
		}
		b, _ := migrationFS.ReadFile(f)
		byVersion[v] = migration{version: v, name: name, sql: string(b)}
	}
	var out []migration
	for _, m := range byVersion {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// migrate applies pending migrations, each in its own transaction. On
// PostgreSQL an advisory lock keeps several nodes starting at once from
// applying the same migration twice.
func (c *Catalog) migrate(ctx context.Context) error {
	ms, err := migrations(c.dialect)
	if err != nil {
		return err
	}
	if _, err := c.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_us BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("catalog: migrations table: %w", oneLine(err))
	}
	var newest sql.NullInt64
	if err := c.queryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("catalog: %w", oneLine(err))
	}
	if known := ms[len(ms)-1].version; newest.Valid && int(newest.Int64) > known {
		return fmt.Errorf("catalog: schema version %d is newer than this binary knows (%d); run a newer bodycam", newest.Int64, known)
	}
	for _, m := range ms {
		if err := c.apply(ctx, m); err != nil {
			return fmt.Errorf("catalog: migration %04d %s: %w", m.version, m.name, oneLine(err))
		}
	}
	return nil
}

// fkOff marks a SQLite migration that rebuilds a table other tables refer
// to: `-- bodycam: foreign_keys off; check <table>...`. SQLite cannot drop
// such a table with foreign keys on (dropping deletes its rows first), and
// cannot turn them off inside a transaction, so the migration runs on a
// connection of its own with them off, and the tables named are checked
// (PRAGMA foreign_key_check) before it commits: SQLite's own procedure
// for changing a table's definition.
var fkOff = regexp.MustCompile(`(?m)^-- bodycam: foreign_keys off; check ([a-z_ ]+)$`)

func (c *Catalog) apply(ctx context.Context, m migration) error {
	defer c.writing()()
	var check []string
	if f := fkOff.FindStringSubmatch(m.sql); c.dialect == SQLite && f != nil {
		check = strings.Fields(f[1])
	}
	var tx *sql.Tx
	if check == nil {
		var err error
		if tx, err = c.db.BeginTx(ctx, nil); err != nil {
			return err
		}
	} else {
		conn, err := c.db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
			return err
		}
		// The connection goes back to the pool with foreign keys on, or
		// not at all.
		defer func() {
			if _, err := conn.ExecContext(context.Background(), `PRAGMA foreign_keys = ON`); err != nil {
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
		if tx, err = conn.BeginTx(ctx, nil); err != nil {
			return err
		}
	}
	defer tx.Rollback()
	if c.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(74610231)`); err != nil {
			return err
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, c.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = $1`), m.version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	for _, table := range check {
		rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check(`+table+`)`)
		if err != nil {
			return err
		}
		bad := rows.Next()
		rows.Close()
		if bad {
			return fmt.Errorf("%s has rows whose foreign keys refer to nothing", table)
		}
	}
	if _, err := tx.ExecContext(ctx, c.q(`INSERT INTO schema_migrations (version, name, applied_us) VALUES ($1, $2, $3)`),
		m.version, m.name, micros(time.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

// translate maps engine errors to the package's sentinels.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			return fmt.Errorf("%w: %s", ErrExists, what)
		case "23503":
			return fmt.Errorf("%w: %s refers to a missing row", ErrNotFound, what)
		}
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %s", ErrExists, what)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %s refers to a missing row", ErrNotFound, what)
		}
	}
	return fmt.Errorf("catalog: %s: %w", what, oneLine(err))
}

func oneLine(err error) error {
	msg := err.Error()
	if !strings.ContainsAny(msg, "\r\n") {
		return err
	}
	return errors.New(strings.Join(strings.Fields(msg), " "))
}

// micros and fromMicros convert times to the stored integer form.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(t), Valid: true}
}

func fromNullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}

// DB is the database under the catalog, for tests that must reach beneath
// it (tamper tests edit rows as an intruder with database access would).
func (c *Catalog) DB() *sql.DB { return c.db }
