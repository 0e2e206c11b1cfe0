package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
)

// A backup directory mirrors the data directory's layout, so a restore is
// a copy back (RESTORE.txt in it says where each file goes):
//
//	catalog.db           a consistent snapshot of the SQLite catalog (none with PostgreSQL)
//	keys/signing.key     the current signing key
//	keys/credential.key  the key device secrets are derived from
//	keys/public/<id>.pem every public key, old ones included
//	admin-token          the admin token (none when it is a plain setting)
//	RESTORE.txt          what was copied from where, and how to put it back
//	MANIFEST             the SHA-256 of every other file, as sha256sum writes it
//
// Not in it: the object store (write-once, with its own durability: MinIO's
// erasure coding and replication, or the disk under <data-dir>/objects) and
// the spool (transient, but evidence not yet stored: see docs/architecture.md,
// "Backup and restore").

// backupFile is one file of a backup: where it came from, where it is in
// the backup, and its hash.
type backupFile struct {
	from, to, sha256 string
	size             int64
	note             string
}

// backupCmd is `bodycam backup [flags] <dir>`: it reads the same settings
// as serve, so it runs with serve's configuration file and environment,
// beside a running server.
func backupCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (int, error) {
	cfg, rest, err := parseConfig("backup", "[flags] <dir>", args, getenv, stdout)
	if err == nil {
		cfg, err = cfg.loadSecrets()
	}
	if err == nil && len(rest) != 1 {
		err = errors.New("want one backup directory: bodycam backup [flags] <dir>")
	}
	if err != nil {
		return exitUsage, err
	}
	dir := rest[0]
	if err := newBackupDir(dir, cfg.DataDir); err != nil {
		return exitUsage, err
	}
	files, notes, err := backup(ctx, cfg, getenv, dir)
	if err != nil {
		return 1, fmt.Errorf("%v (the backup in %s is incomplete: remove it)", err, dir)
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "%s  %s  (%d bytes, from %s)\n", f.sha256, f.to, f.size, f.from)
	}
	for _, n := range notes {
		fmt.Fprintln(stdout, n)
	}
	fmt.Fprintf(stdout, "backup in %s: %d files, MANIFEST and RESTORE.txt; check it with: cd %s && sha256sum -c MANIFEST\n", dir, len(files), shellQuote(dir))
	return 0, nil
}

// newBackupDir makes dir (0700), or takes an empty one, never one with
// files in it: a backup is never mixed with another.
func newBackupDir(dir, dataDir string) error {
	abs, err1 := filepath.Abs(dir)
	data, err2 := filepath.Abs(dataDir)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if within(abs, data) {
		return fmt.Errorf("%s is inside the data directory %s: a backup there is lost with it", dir, dataDir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: give a new directory for each backup", dir)
	}
	return os.Chmod(dir, 0o700)
}

// backup copies what the settings say is there into dir and writes
// RESTORE.txt and MANIFEST. The notes are for the operator.
func backup(ctx context.Context, cfg Config, getenv func(string) string, dir string) ([]backupFile, []string, error) {
	var files []backupFile
	var notes []string
	started := time.Now().UTC()

	catalogLine := ""
	if cfg.DatabaseURL == "" {
		src := filepath.Join(cfg.DataDir, "catalog.db")
		dst := filepath.Join(dir, "catalog.db")
		snap, err := catalog.SnapshotSQLite(ctx, src, dst)
		if err != nil {
			return nil, nil, fmt.Errorf("data-dir: %v", err)
		}
		f, err := described(dst, src, fmt.Sprintf("SQLite, schema version %d, a consistent snapshot (VACUUM INTO) as of %s", snap.SchemaVersion, started.Format(time.RFC3339)))
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
		catalogLine = "catalog.db: " + f.note
		if snap.LiveRecordings > 0 {
			live := fmt.Sprintf("%d recording(s) were being recorded at the snapshot: a catalog restored from it lists them\n"+
				"as live, with the segments stored by then (the rest of them is in the object store only)", snap.LiveRecordings)
			catalogLine += "\n" + live
			notes = append(notes, live)
		}
	} else {
		dump, restore := pgCommands(cfg, getenv, dir)
		catalogLine = "the catalog is in PostgreSQL and NOT in this backup: back it up with pg_dump (or the database's own\n" +
			"backups, point-in-time recovery included), at about the same time as this, e.g.:\n    " + dump +
			"\nand restore it with:\n    " + restore
		notes = append(notes, "catalog: PostgreSQL, not copied; back it up with:\n    "+dump)
	}

	keyDir := filepath.Join(cfg.DataDir, "keys")
	signing := cfg.SigningKey
	if signing == "" {
		signing = filepath.Join(keyDir, "signing.key")
	}
	credential := cfg.CredentialKey
	if credential == "" {
		credential = filepath.Join(keyDir, "credential.key")
	}
	publics, err := filepath.Glob(filepath.Join(keyDir, "public", "*.pem"))
	if err != nil {
		return nil, nil, err
	}
	if len(publics) == 0 {
		return nil, nil, fmt.Errorf("data-dir: no public keys in %s: has bodycam serve run on this data directory?", filepath.Join(keyDir, "public"))
	}
	sort.Strings(publics)
	copies := []struct{ from, to, note string }{
		{signing, "keys/signing.key", "the current signing key"},
		{credential, "keys/credential.key", "the key device secrets are derived from: without it no recorder can sign in"},
	}
	for _, p := range publics {
		copies = append(copies, struct{ from, to, note string }{p, "keys/public/" + filepath.Base(p), "a public key, for signatures made with it"})
	}
	tokenLine := ""
	switch {
	case cfg.AdminTokenFile != "":
		copies = append(copies, struct{ from, to, note string }{cfg.AdminTokenFile, "admin-token", "the admin token (--admin-token-file)"})
	case cfg.AdminToken != "":
		tokenLine = "admin-token: not copied: it is a plain setting (--admin-token or BODYCAM_ADMIN_TOKEN); keep it with the configuration"
		notes = append(notes, tokenLine)
	default:
		copies = append(copies, struct{ from, to, note string }{filepath.Join(cfg.DataDir, "admin-token"), "admin-token", "the admin token"})
	}
	for _, c := range copies {
		f, err := copyPrivate(c.from, filepath.Join(dir, filepath.FromSlash(c.to)))
		if err != nil {
			return nil, nil, err
		}
		f.to, f.note = c.to, c.note
		files = append(files, f)
	}

	if err := writeRestore(dir, cfg, started, files, catalogLine, tokenLine); err != nil {
		return nil, nil, err
	}
	restore, err := described(filepath.Join(dir, "RESTORE.txt"), "", "")
	if err != nil {
		return nil, nil, err
	}
	restore.to = "RESTORE.txt"
	var manifest strings.Builder
	for _, f := range append(files, restore) {
		fmt.Fprintf(&manifest, "%s  %s\n", f.sha256, f.to) // sha256sum's format: `sha256sum -c MANIFEST`
	}
	if err := writePrivate(filepath.Join(dir, "MANIFEST"), []byte(manifest.String())); err != nil {
		return nil, nil, err
	}
	if err := syncDirs(dir); err != nil {
		return nil, nil, err
	}
	return files, notes, nil
}

// writeRestore writes RESTORE.txt: what the backup holds, from where, and
// how to put it back.
func writeRestore(dir string, cfg Config, started time.Time, files []backupFile, catalogLine, tokenLine string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bodycam backup, started %s by bodycam %s, of the data directory %s\n\n", started.Format(time.RFC3339), version(), cfg.DataDir)
	fmt.Fprintf(&b, "%s\n\n", catalogLine)
	b.WriteString("Files (each to be put back where it came from, mode 0600; MANIFEST has their SHA-256: sha256sum -c MANIFEST):\n")
	for _, f := range files {
		if f.to == "catalog.db" {
			fmt.Fprintf(&b, "  %-28s -> %s\n", f.to, f.from)
			continue
		}
		fmt.Fprintf(&b, "  %-28s -> %s  (%s)\n", f.to, f.from, f.note)
	}
	if tokenLine != "" {
		fmt.Fprintf(&b, "  %s\n", tokenLine)
	}
	b.WriteString(`
Not in this backup:
  the object store: write-once, with its own durability (MinIO's erasure coding and replication;
    with the directory backend, the disk under <data-dir>/objects: copy or replicate it on its own).
    A restored catalog verifies against the same objects.
  the spool: media received but not yet stored. Back it up only with the server stopped, or let
    the server drain first (stop it cleanly: it ends recordings and uploads what it can).

To restore:
  1. stop bodycam serve (every node)
  2. put each file above back where it came from (a new machine: the same paths, or the data
     directory's layout under a new --data-dir, which this backup mirrors); the catalog as
     catalog.db with no catalog.db-wal or catalog.db-shm beside it
  3. start bodycam serve with the same object store (--s3-endpoint and --s3-bucket, or the same
     objects under <data-dir>/objects)
  4. check: POST /api/v1/custody/verify and POST /api/v1/recordings/{id}/verify as an auditor
The catalog returns to the moment of the backup: what was recorded, linked or changed after it
is not in it (recordings stored after it stay in the object store).
`)
	return writePrivate(filepath.Join(dir, "RESTORE.txt"), []byte(b.String()))
}

// pgCommands are the pg_dump and pg_restore lines for the configured
// database, naming the URL without writing its password on the screen.
func pgCommands(cfg Config, getenv func(string) string, dir string) (dump, restore string) {
	dbname := ""
	switch {
	case cfg.DatabaseURLFile != "":
		dbname = `"$(cat ` + shellQuote(cfg.DatabaseURLFile) + `)"`
	case getenv("BODYCAM_DATABASE_URL") == cfg.DatabaseURL:
		dbname = `"$BODYCAM_DATABASE_URL"`
	default:
		u, err := url.Parse(cfg.DatabaseURL)
		dbname = "'<the --database-url>'"
		if err == nil {
			dbname = shellQuote(u.Redacted()) + "  # with the real password, or PGPASSWORD"
		}
	}
	out := filepath.Join(dir, "catalog.pgdump")
	dump = "pg_dump --format=custom --file=" + shellQuote(out) + " --dbname=" + dbname
	restore = "pg_restore --clean --if-exists --no-owner --single-transaction --dbname=" + dbname + " " + shellQuote(out)
	return dump, restore
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// copyPrivate copies a file into the backup, 0600, synced, hashing what it
// wrote.
func copyPrivate(from, to string) (backupFile, error) {
	b, err := os.ReadFile(from)
	if err != nil {
		return backupFile{}, err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return backupFile{}, err
	}
	if err := writePrivate(to, b); err != nil {
		return backupFile{}, err
	}
	sum := sha256.Sum256(b)
	return backupFile{from: from, sha256: hex.EncodeToString(sum[:]), size: int64(len(b))}, nil
}

// described hashes a file already in the backup.
func described(path, from, note string) (backupFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return backupFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return backupFile{}, err
	}
	return backupFile{from: from, to: filepath.Base(path), sha256: hex.EncodeToString(h.Sum(nil)), size: n, note: note}, nil
}

// writePrivate writes a new file, 0600, and syncs it.
func writePrivate(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDirs syncs the backup's directories, so the names are as durable as
// the files.
func syncDirs(dir string) error {
	for _, d := range []string{filepath.Join(dir, "keys", "public"), filepath.Join(dir, "keys"), dir} {
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
