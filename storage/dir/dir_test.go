package dir_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/dir"
	"github.com/bodycam/bodycam/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, r storage.Retention) storage.Store {
		s, err := dir.Open(t.TempDir(), dir.Options{Retention: r})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

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
