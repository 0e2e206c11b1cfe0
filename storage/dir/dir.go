// Package dir is the embedded object store: one file per object under a root
// directory (`<data-dir>/objects/<key>`), written once and made read-only.
//
// A write goes to a temporary file that is fsync'd, then hard-linked to its
// final name (link(2) refuses to replace an existing file, so two writers of
// one key cannot both win), then the directory is fsync'd. PutFile links a
// file the caller gives up (a closed spool segment) the same way once it is
// hashed, without copying it. The hash, retention and legal hold of each
// object are kept beside it under `<root>/.bodycam/meta`, a name no valid key
// can take.
package dir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bodycam/bodycam/storage"
)

// Store is a directory-backed storage.Store.
type Store struct {
	root      string
	retention storage.Retention
	now       func() time.Time

	metaMu sync.Mutex // serialises read-modify-write of metadata files
}

// Options configure a Store. The zero value writes objects without retention.
type Options struct {
	Retention storage.Retention
	// Now is the clock; nil means time.Now. Tests move it forward.
	Now func() time.Time
}

// meta is the bookkeeping kept for each object.
type meta struct {
	SHA256      string       `json:"sha256"`
	Size        int64        `json:"size"`
	Created     time.Time    `json:"created"`
	Mode        storage.Mode `json:"mode,omitempty"`
	RetainUntil time.Time    `json:"retain_until,omitzero"`
	LegalHold   bool         `json:"legal_hold,omitempty"`
	ContentType string       `json:"content_type,omitempty"`
}

// Open opens (creating if needed) a store rooted at root.
func Open(root string, o Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{root: root, retention: o.Retention, now: o.Now}
	for _, d := range []string{root, s.tmpDir(), s.metaRoot()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("object directory: %w", err)
		}
	}
	if err := s.Ping(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) tmpDir() string   { return filepath.Join(s.root, ".bodycam", "tmp") }
func (s *Store) metaRoot() string { return filepath.Join(s.root, ".bodycam", "meta") }
func (s *Store) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}
func (s *Store) metaPath(key string) string {
	return filepath.Join(s.metaRoot(), filepath.FromSlash(key)+".json")
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	final := s.path(key)
	if _, err := os.Lstat(final); err == nil {
		return storage.Info{}, fmt.Errorf("%w: %s", storage.ErrExists, key)
	}
	vr, err := storage.NewVerifyingReader(ctxReader{ctx, r}, size, o.SHA256)
	if err != nil {
		return storage.Info{}, err
	}
	tmp, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	defer os.Remove(tmp.Name()) // the link below keeps the data; the temp name always goes
	_, err = io.Copy(tmp, vr)
	if err == nil && !vr.Complete() {
		err = fmt.Errorf("%w: short content", storage.ErrSizeMismatch)
	}
	if err == nil {
		err = tmp.Chmod(0o444)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return storage.Info{}, err
	}
	if err := mkdirAllSync(filepath.Dir(final)); err != nil {
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return storage.Info{}, fmt.Errorf("%w: %s", storage.ErrExists, key)
		}
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	return s.putMeta(key, vr.SumHex(), size, o)
}

// PutFile stores size bytes of the open file f, from its start, as key:
// what Put does with them, without copying them when it can. f is hashed
// through its descriptor (and checked against o.SHA256: a mismatch stores
// nothing and leaves f as it was), made read-only, fsync'd, and its inode
// hard-linked to the key's name. The caller gives the file up: it must never
// write to it again (removing its own name is fine). On another file system,
// or one without hard links, the bytes are copied as Put copies them.
//
// A spooled segment stored by Put is read, hashed, written again and
// fsync'd again; by PutFile it is read and hashed only: the disk sees it
// once.
func (s *Store) PutFile(ctx context.Context, key string, f *os.File, size int64, o storage.PutOptions) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	final := s.path(key)
	if _, err := os.Lstat(final); err == nil {
		return storage.Info{}, fmt.Errorf("%w: %s", storage.ErrExists, key)
	}
	whole := io.NewSectionReader(f, 0, math.MaxInt64) // from the start, whatever f's offset
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != size {
		return s.Put(ctx, key, whole, size, o) // which reports the size that is wrong
	}
	vr, err := storage.NewVerifyingReader(ctxReader{ctx, whole}, size, o.SHA256)
	if err != nil {
		return storage.Info{}, err
	}
	buf := hashBuffers.Get().(*[]byte)
	for err == nil {
		_, err = vr.Read(*buf)
	}
	hashBuffers.Put(buf)
	if err != io.EOF {
		return storage.Info{}, err
	}
	if err := f.Chmod(0o444); err != nil {
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	// Stored now, as a copy would be: metadata rebuilt from the file (after
	// a crash before it was written) counts retention from its time.
	if now := s.now(); os.Chtimes(f.Name(), now, now) != nil {
		return s.Put(ctx, key, io.NewSectionReader(f, 0, math.MaxInt64), size, o)
	}
	if err := f.Sync(); err != nil {
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	if err := mkdirAllSync(filepath.Dir(final)); err != nil {
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	if err := os.Link(f.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return storage.Info{}, fmt.Errorf("%w: %s", storage.ErrExists, key)
		}
		if errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EMLINK) || errors.Is(err, errors.ErrUnsupported) {
			return s.Put(ctx, key, io.NewSectionReader(f, 0, math.MaxInt64), size, o)
		}
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	// The name linked must still be the file hashed (a file put in its
	// place meanwhile is not): then the object is what was checked.
	if lst, err := os.Lstat(final); err != nil || !os.SameFile(st, lst) {
		os.Remove(final)
		return s.Put(ctx, key, io.NewSectionReader(f, 0, math.MaxInt64), size, o)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return storage.Info{}, fmt.Errorf("storage: %w", err)
	}
	return s.putMeta(key, vr.SumHex(), size, o)
}

// hashBuffers are PutFile's read buffers: large, so a segment is hashed in
// few reads.
var hashBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// putMeta writes the metadata of an object just stored.
func (s *Store) putMeta(key, sha string, size int64, o storage.PutOptions) (storage.Info, error) {
	now := s.now().UTC()
	m := meta{
		SHA256:      sha,
		Size:        size,
		Created:     now,
		Mode:        s.retention.Mode,
		RetainUntil: s.retention.Until(now),
		ContentType: o.ContentType,
	}
	if m.RetainUntil.IsZero() {
		m.Mode = ""
	}
	s.metaMu.Lock()
	err := s.writeMeta(key, m)
	s.metaMu.Unlock()
	if err != nil {
		// The object is durable and Stat rebuilds missing metadata; report
		// the failure all the same so the caller can log it.
		return storage.Info{}, fmt.Errorf("storage: object %s stored, metadata not: %w", key, err)
	}
	return m.info(key), nil
}

func (m meta) info(key string) storage.Info {
	return storage.Info{
		Key: key, Size: m.Size, SHA256: m.SHA256, Modified: m.Created,
		RetainUntil: m.RetainUntil, Mode: m.Mode, LegalHold: m.LegalHold,
	}
}

// Get implements storage.Store.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, translate(key, err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s", storage.ErrNotFound, key)
	}
	return f, nil
}

// GetRange implements storage.Store: the range is read with pread(2) from
// offset on, so nothing before it is read.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("%w: offset %d, length %d of %s", storage.ErrInvalidRange, offset, length, key)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, translate(key, err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s", storage.ErrNotFound, key)
	}
	if offset > st.Size() {
		f.Close()
		return nil, fmt.Errorf("%w: offset %d is past the end of %s (%d bytes)", storage.ErrInvalidRange, offset, key, st.Size())
	}
	n := min(length, st.Size()-offset)
	return sectionFile{io.NewSectionReader(f, offset, n), f}, nil
}

// sectionFile reads a section of a file and closes the file.
type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s sectionFile) Close() error { return s.f.Close() }

// Stat implements storage.Store.
func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	m, err := s.readMeta(key)
	if err != nil {
		return storage.Info{}, err
	}
	return m.info(key), nil
}

// readMeta returns an object's metadata, rebuilding it if a crash left the
// object without it. Callers hold metaMu.
func (s *Store) readMeta(key string) (meta, error) {
	st, err := os.Stat(s.path(key))
	if err != nil {
		return meta{}, translate(key, err)
	}
	if !st.Mode().IsRegular() {
		return meta{}, fmt.Errorf("%w: %s", storage.ErrNotFound, key)
	}
	b, err := os.ReadFile(s.metaPath(key))
	if err == nil {
		var m meta
		if err := json.Unmarshal(b, &m); err != nil {
			return meta{}, fmt.Errorf("storage: metadata of %s: %w", key, err)
		}
		return m, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return meta{}, fmt.Errorf("storage: %w", err)
	}
	// Object linked but metadata never written: rebuild it from the bytes,
	// with retention counted from the file's own time (the conservative end).
	f, err := os.Open(s.path(key))
	if err != nil {
		return meta{}, translate(key, err)
	}
	defer f.Close()
	vr, _ := storage.NewVerifyingReader(f, st.Size(), nil)
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return meta{}, fmt.Errorf("storage: rehash %s: %w", key, err)
	}
	created := st.ModTime().UTC()
	m := meta{SHA256: vr.SumHex(), Size: st.Size(), Created: created, Mode: s.retention.Mode, RetainUntil: s.retention.Until(created)}
	if m.RetainUntil.IsZero() {
		m.Mode = ""
	}
	if err := s.writeMeta(key, m); err != nil {
		return meta{}, err
	}
	return m, nil
}

func (s *Store) writeMeta(key string, m meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	p := s.metaPath(key)
	if err := mkdirAllSync(filepath.Dir(p)); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.tmpDir(), "meta-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err == nil {
		err = syncDir(filepath.Dir(p))
	}
	return err
}

// List implements storage.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	// Walk from the deepest directory the prefix names; filter the rest.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var found []storage.Info
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.root, p)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != s.root {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) || storage.ValidateKey(key) != nil {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return nil // removed while walking
		}
		found = append(found, storage.Info{Key: key, Size: st.Size(), Modified: st.ModTime().UTC()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: list %q: %w", prefix, err)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Key < found[j].Key })
	for _, info := range found {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Store. It refuses while retention runs or a legal
// hold is set.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	m, err := s.readMeta(key)
	if err != nil {
		return err
	}
	if m.LegalHold {
		return fmt.Errorf("%w: %s has a legal hold", storage.ErrRetained, key)
	}
	if !m.RetainUntil.IsZero() && s.now().Before(m.RetainUntil) {
		return fmt.Errorf("%w: %s is retained until %s", storage.ErrRetained, key, m.RetainUntil.Format(time.RFC3339))
	}
	if err := os.Remove(s.path(key)); err != nil {
		return translate(key, err)
	}
	if err := syncDir(filepath.Dir(s.path(key))); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if err := os.Remove(s.metaPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// SetLegalHold implements storage.Store.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	m, err := s.readMeta(key)
	if err != nil {
		return err
	}
	m.LegalHold = on
	return s.writeMeta(key, m)
}

// Ping implements storage.Store: the root must exist and take new files.
func (s *Store) Ping(ctx context.Context) error {
	f, err := os.CreateTemp(s.tmpDir(), "ping-*")
	if err != nil {
		return fmt.Errorf("storage: object directory %s not writable: %w", s.root, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func translate(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return fmt.Errorf("%w: %s", storage.ErrNotFound, key)
	}
	return fmt.Errorf("storage: %w", err)
}

// mkdirAllSync creates dir and its missing parents, fsyncing each parent so
// the new entries survive a crash.
func mkdirAllSync(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err := mkdirAllSync(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
