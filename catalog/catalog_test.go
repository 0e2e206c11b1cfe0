package catalog_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/catalog/catalogtest"
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

func TestSQLiteFileInDataDir(t *testing.T) {
	dir := t.TempDir()
	c, err := catalog.Open(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := os.Stat(filepath.Join(dir, "catalog.db")); err != nil {
		t.Fatal(err)
	}
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
