package catalog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// A snapshot taken while a writer commits holds exactly the commits made
// before some moment: every device committed before the snapshot began (in
// the WAL, not yet checkpointed, as well), none with a hole after it. It is
// 0600, opens as a catalog, and never replaces a file.
func TestSnapshotSQLiteWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := catalog.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.CreateDevice(ctx, evidence.Device{ID: fmt.Sprintf("cam-%05d", i), SecretHash: "x"}); err != nil {
				t.Error(err)
				return
			}
			committed.Add(1)
		}
	}()
	for committed.Load() < 50 { // let the writer get going
		runtime.Gosched()
	}
	before := committed.Load()
	dst := filepath.Join(t.TempDir(), "catalog.db")
	snap, err := catalog.SnapshotSQLite(ctx, filepath.Join(dir, "catalog.db"), dst)
	after := committed.Load()
	close(stop)
	wg.Wait()
	if err != nil || snap.SchemaVersion < 9 || snap.LiveRecordings != 0 {
		t.Fatalf("snapshot: %+v, %v", snap, err)
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", st.Mode(), err)
	}
	copied, err := catalog.OpenSQLite(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer copied.Close()
	devs, err := copied.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(devs))
	if n < before || n > after+1 {
		t.Fatalf("snapshot holds %d devices; %d were committed before it began, %d when it ended", n, before, after)
	}
	for i, d := range devs {
		if want := fmt.Sprintf("cam-%05d", i); d.ID != want {
			t.Fatalf("device %d is %s, want %s: the snapshot has a hole", i, d.ID, want)
		}
	}

	if _, err := catalog.SnapshotSQLite(ctx, filepath.Join(dir, "catalog.db"), dst); err == nil {
		t.Fatal("a snapshot replaced an existing file")
	}
	missing := filepath.Join(t.TempDir(), "catalog.db")
	if _, err := catalog.SnapshotSQLite(ctx, filepath.Join(t.TempDir(), "none.db"), missing); err == nil {
		t.Fatal("a snapshot of a missing catalog")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("a failed snapshot left a file: %v", err)
	}
}
