package dir_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/dir"
	"github.com/bodycam/bodycam/storage/storagetest"
)

func open(t *testing.T, r storage.Retention) storage.Store {
	s, err := dir.Open(t.TempDir(), dir.Options{Retention: r})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { storagetest.Run(t, open) }

// A file is one write whatever its size: the large-object suite holds too.
func TestConformanceLarge(t *testing.T) { storagetest.RunLarge(t, open) }

// The contract of PRODUCT.md: object <key> lives at <root>/<key>, read-only.
func TestLayoutAndReadOnly(t *testing.T) {
	root := t.TempDir()
	s, err := dir.Open(root, dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "dev/rec/1.m4s", bytes.NewReader([]byte("abc")), 3, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "dev", "rec", "1.m4s"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o222 != 0 {
		t.Fatalf("object mode %v is writable", st.Mode())
	}
}

// A crash between linking an object and writing its metadata leaves an object
// without metadata; Stat rebuilds it from the bytes.
func TestStatRebuildsLostMetadata(t *testing.T) {
	root := t.TempDir()
	s, err := dir.Open(root, dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Put(context.Background(), "x/y", bytes.NewReader([]byte("hello")), 5, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, ".bodycam", "meta", "x", "y.json")); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(context.Background(), "x/y")
	if err != nil || st.SHA256 != info.SHA256 || st.Size != 5 {
		t.Fatalf("Stat = %+v, %v; want sha %s", st, err, info.SHA256)
	}
}

// PutFile links a file on the store's file system into the store, after
// checking its hash: the object is that file, read-only, and Stat has its
// hash. A second store of the key is refused either way.
func TestPutFileLinks(t *testing.T) {
	root := t.TempDir()
	stored := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := dir.Open(root, dir.Options{Now: func() time.Time { return stored }})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("segment "), 100_000) // several hash reads
	sum := sha256.Sum256(data)
	path := filepath.Join(t.TempDir(), "000001.m4s")
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Seek(100, io.SeekStart) // the offset does not matter
	info, err := s.PutFile(context.Background(), "dev/rec/000001.m4s", f, int64(len(data)), storage.PutOptions{SHA256: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(data)) {
		t.Fatalf("info %+v", info)
	}
	obj := filepath.Join(root, "dev", "rec", "000001.m4s")
	ost, err := os.Stat(obj)
	if err != nil {
		t.Fatal(err)
	}
	fst, _ := os.Stat(path)
	if !os.SameFile(ost, fst) {
		t.Fatal("the object is a copy, not the file linked")
	}
	if ost.Mode().Perm()&0o222 != 0 {
		t.Fatalf("object mode %v is writable", ost.Mode())
	}
	if !ost.ModTime().Equal(stored) {
		t.Fatalf("object time %v, want when it was stored (%v): metadata rebuilt from it counts retention from then", ost.ModTime(), stored)
	}
	os.Remove(path) // the spool lets its name go
	if got, err := os.ReadFile(obj); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object read back: %v", err)
	}
	if st, err := s.Stat(context.Background(), "dev/rec/000001.m4s"); err != nil || st.SHA256 != info.SHA256 {
		t.Fatalf("Stat %+v, %v", st, err)
	}
	if _, err := s.PutFile(context.Background(), "dev/rec/000001.m4s", f, int64(len(data)), storage.PutOptions{}); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second PutFile: %v", err)
	}
}

// A file whose bytes are not those expected (hash or size) is not stored,
// and is left as it was.
func TestPutFileRefusesWrongContent(t *testing.T) {
	root := t.TempDir()
	s, err := dir.Open(root, dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "seg")
	os.WriteFile(path, []byte("changed after it was hashed"), 0o640)
	f, _ := os.Open(path)
	defer f.Close()
	other := sha256.Sum256([]byte("what was written"))
	for _, c := range []struct {
		size int64
		sha  []byte
		want error
	}{
		{27, other[:], storage.ErrHashMismatch},
		{20, nil, storage.ErrSizeMismatch},
		{30, nil, storage.ErrSizeMismatch},
	} {
		_, err := s.PutFile(context.Background(), "k/seg", f, c.size, storage.PutOptions{SHA256: c.sha})
		if !errors.Is(err, c.want) {
			t.Fatalf("size %d: %v, want %v", c.size, err, c.want)
		}
		if _, err := s.Stat(context.Background(), "k/seg"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("size %d: something was stored: %v", c.size, err)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
			t.Fatalf("size %d: the refused file's mode became %v", c.size, st.Mode())
		}
	}
}

// A file on another file system (no hard link possible) is copied.
func TestPutFileOtherFileSystem(t *testing.T) {
	root := t.TempDir()
	s, err := dir.Open(root, dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	shm, err := os.MkdirTemp("/dev/shm", "putfile-*")
	if err != nil {
		t.Fatalf("this test needs /dev/shm (a tmpfs): %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	var a, b syscall.Stat_t
	syscall.Stat(root, &a)
	syscall.Stat(shm, &b)
	if a.Dev == b.Dev {
		t.Fatalf("/dev/shm and %s are one file system here; the test needs two", root)
	}
	path := filepath.Join(shm, "seg")
	os.WriteFile(path, []byte("elsewhere"), 0o640)
	f, _ := os.Open(path)
	defer f.Close()
	if _, err := s.PutFile(context.Background(), "k/seg", f, 9, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ost, _ := os.Stat(filepath.Join(root, "k", "seg"))
	fst, _ := os.Stat(path)
	if os.SameFile(ost, fst) {
		t.Fatal("linked across file systems?")
	}
	if got, _ := os.ReadFile(filepath.Join(root, "k", "seg")); string(got) != "elsewhere" {
		t.Fatalf("object %q", got)
	}
}
