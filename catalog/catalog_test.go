package catalog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/catalog/catalogtest"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/testsvc"
)

func TestSQLite(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) *catalog.Catalog {
		c, err := catalog.Open(context.Background(), "", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if c.Dialect() != catalog.SQLite {
			t.Fatalf("dialect %s", c.Dialect())
		}
		return c
	})
}

func TestPostgres(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) *catalog.Catalog {
		c, err := catalog.Open(context.Background(), testsvc.Postgres(t), "")
		if err != nil {
			t.Fatal(err)
		}
		if c.Dialect() != catalog.Postgres {
			t.Fatalf("dialect %s", c.Dialect())
		}
		return c
	})
}

// Opening twice applies nothing twice; the data survives a reopen.
func TestReopen(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) (string, string){
		"sqlite":   func(t *testing.T) (string, string) { return "", t.TempDir() },
		"postgres": func(t *testing.T) (string, string) { return testsvc.Postgres(t), "" },
	} {
		t.Run(name, func(t *testing.T) {
			u, dir := url(t)
			ctx := context.Background()
			c, err := catalog.Open(ctx, u, dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.DisableDevice(ctx, "x"); err == nil {
				t.Fatal("disable of a missing device succeeded")
			}
			c.Close()
			c, err = catalog.Open(ctx, u, dir)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			c.Close()
		})
	}
}

// Migration 9 revokes, once, the API tokens that the bootstrap admin
// token's console sessions made before they no longer could (issue 10,
// finding 11: they outlived a change of the token); other tokens stay.
func TestBootstrapTokensRevoked(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) (string, string){
		"sqlite":   func(t *testing.T) (string, string) { return "", t.TempDir() },
		"postgres": func(t *testing.T) (string, string) { return testsvc.Postgres(t), "" },
	} {
		t.Run(name, func(t *testing.T) {
			u, dir := url(t)
			ctx := context.Background()
			c, err := catalog.Open(ctx, u, dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, usr := range []evidence.User{{ID: "admin", Role: evidence.RoleAdmin, CertToken: "c1"},
				{ID: "adm-2", Role: evidence.RoleAdmin, CertToken: "c2", PasswordHash: "$argon2id$x"}} {
				if err := c.CreateUser(ctx, usr); err != nil {
					t.Fatal(err)
				}
			}
			for id, user := range map[string]string{"t-boot": "admin", "t-adm": "adm-2"} {
				if err := c.CreateAPIToken(ctx, evidence.APIToken{ID: id, TokenHash: "h-" + id, UserID: user, CreatedAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			// As if the tokens had been made before migration 9 ran.
			if _, err := c.DB().Exec(`DELETE FROM schema_migrations WHERE version = 9`); err != nil {
				t.Fatal(err)
			}
			c.Close()
			before := time.Now().Add(-time.Second)
			if c, err = catalog.Open(ctx, u, dir); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			boot, _ := c.APITokenByHash(ctx, "h-t-boot")
			other, _ := c.APITokenByHash(ctx, "h-t-adm")
			if boot.RevokedAt.Before(before) || boot.RevokedAt.After(time.Now().Add(time.Second)) || !other.RevokedAt.IsZero() {
				t.Fatalf("bootstrap token revoked at %v, another admin's at %v", boot.RevokedAt, other.RevokedAt)
			}
		})
	}
}

// The catalog's files (users, password hashes, the ledger) are the owner's
// only, the WAL's too, also when an older start left them readable
// (issue 10, finding 17: they were 0644).
func TestSQLiteFileInDataDir(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c, err := catalog.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, name := range []string{"catalog.db", "catalog.db-wal", "catalog.db-shm"} {
			st, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %s is %v, want 0600", when, name, st.Mode().Perm())
			}
		}
	}
	if err := c.CreateDevice(ctx, evidence.Device{ID: "cam-1", SecretHash: "x"}); err != nil { // the WAL exists now
		t.Fatal(err)
	}
	check("new")
	for _, name := range []string{"catalog.db", "catalog.db-wal", "catalog.db-shm"} {
		os.Chmod(filepath.Join(dir, name), 0o644)
	}
	c2, err := catalog.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	check("reopened")
	c2.Close()
	c.Close()
}

func TestBadURLs(t *testing.T) {
	for _, u := range []string{"mysql://x/y", "postgres://", "::bad"} {
		_, err := catalog.Open(context.Background(), u, "")
		if err == nil || !strings.HasPrefix(err.Error(), "database-url") {
			t.Errorf("Open(%q): %v, want an error naming database-url", u, err)
		}
	}
}

func TestUnreachablePostgres(t *testing.T) {
	port, _ := testsvc.FreePort()
	_, err := catalog.Open(context.Background(), "postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/x?sslmode=disable&connect_timeout=3", "")
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unreachable database: %v, want a one-line error", err)
	}
}

// Migration 12 fills in what a catalog from before it knew only from its
// rows: each recording's segment count (tombstones not counted) and each
// device's longest finished recording, which bounds time windows.
func TestCityScaleMigrationBackfills(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) (string, string){
		"sqlite":   func(t *testing.T) (string, string) { return "", t.TempDir() },
		"postgres": func(t *testing.T) (string, string) { return testsvc.Postgres(t), "" },
	} {
		t.Run(name, func(t *testing.T) {
			u, dir := url(t)
			ctx := context.Background()
			c, err := catalog.Open(ctx, u, dir)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
			if err := c.CreateDevice(ctx, evidence.Device{ID: "cam-1", SecretHash: "x"}); err != nil {
				t.Fatal(err)
			}
			// A 9 h recording with an init, 3 media segments and a
			// tombstone, then a short one.
			for _, r := range []struct {
				id       string
				at, end  time.Time
				segments int
			}{{"long", t0, t0.Add(9 * time.Hour), 4}, {"short", t0.Add(10 * time.Hour), t0.Add(10*time.Hour + time.Minute), 2}} {
				if err := c.CreateRecording(ctx, evidence.Recording{ID: r.id, DeviceID: "cam-1", StartedAt: r.at}); err != nil {
					t.Fatal(err)
				}
				for seq := range r.segments {
					kind := evidence.KindMedia
					if seq == 0 {
						kind = evidence.KindInit
					}
					if _, err := c.AppendSegment(ctx, evidence.Segment{RecordingID: r.id, Seq: int64(seq), Kind: kind,
						Key: fmt.Sprintf("cam-1/%s/%d", r.id, seq), SHA256: "00", StartedAt: r.at}); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.FinishRecording(ctx, r.id, evidence.StateComplete, r.end, ""); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.AppendSegment(ctx, evidence.Segment{RecordingID: "long", Seq: 4, Kind: evidence.KindTombstone,
				Key: "cam-1/long/tombstone.json", SHA256: "00", StartedAt: t0}); err != nil {
				t.Fatal(err)
			}
			// Back to the schema before migration 12, its rows as they were.
			for _, s := range []string{`DROP INDEX devices_longest_recording`, `DROP INDEX recordings_device_open`, `DROP INDEX recordings_open`, `DROP INDEX recordings_retention`,
				`ALTER TABLE recordings DROP COLUMN segment_count`, `ALTER TABLE devices DROP COLUMN longest_recording_us`,
				`DELETE FROM schema_migrations WHERE version = 12`} {
				if _, err := c.DB().Exec(s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			c.Close()
			if c, err = catalog.Open(ctx, u, dir); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for id, want := range map[string]int{"long": 4, "short": 2} {
				if r, err := c.Recording(ctx, id); err != nil || r.SegmentCount != want {
					t.Errorf("%s: %d segments, %v; want %d", id, r.SegmentCount, err, want)
				}
			}
			rs, err := c.Recordings(ctx, catalog.RecordingFilter{DeviceID: "cam-1", From: t0.Add(8 * time.Hour), To: t0.Add(8*time.Hour + time.Minute)})
			if err != nil || len(rs) != 1 || rs[0].ID != "long" {
				t.Fatalf("window inside the long recording: %+v, %v", rs, err)
			}
		})
	}
}

// Opening, using and closing catalogs leaves no goroutine behind (the
// SQLite checkpointer, database/sql's connection openers).
func TestNoGoroutineLeak(t *testing.T) {
	pg := testsvc.Postgres(t) // its admin connection stays open until the test ends
	before := runtime.NumGoroutine()
	ctx := context.Background()
	for _, open := range []func() (*catalog.Catalog, error){
		func() (*catalog.Catalog, error) { return catalog.Open(ctx, "", t.TempDir()) },
		func() (*catalog.Catalog, error) { return catalog.Open(ctx, pg, "") },
	} {
		c, err := open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Recordings(ctx, catalog.RecordingFilter{DeviceID: "cam-1", From: time.Now()}); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > before && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	if n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
