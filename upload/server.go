// Package upload owns dock upload: recorders' own files coming in through a
// workstation over tus 1.0 (github.com/tus/tusd/v2, partial uploads in a
// filestore spool), hashed whole when the last byte arrives, compared with
// the SHA-256 the dock declared, and stored write-once as a recording of
// kind upload with its signed manifest and a signed receipt. Finishing is
// durable: its state is in the catalog and every step is idempotent, so a
// server killed at any point finishes on restart (Run).
//
// The API authenticates; this package is handed the principal and checks
// what is theirs (evidence.MayUpload, an upload's dock).
package upload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tus/tusd/v2/pkg/filestore"
	tus "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/seal"
	"github.com/bodycam/bodycam/storage"
)

// Catalog is what upload needs from the system of record.
type Catalog interface {
	Device(ctx context.Context, id string) (evidence.Device, error)
	User(ctx context.Context, id string) (evidence.User, error)
	Recording(ctx context.Context, id string) (evidence.Recording, error)
	CreateUpload(ctx context.Context, u evidence.Upload) error
	Upload(ctx context.Context, id string) (catalog.UploadRecord, error)
	Uploads(ctx context.Context, f catalog.UploadFilter) ([]catalog.UploadRecord, error)
	SetUploadState(ctx context.Context, id string, state catalog.UploadState, reason, receivedSHA256 string) error
	SetUploadTimes(ctx context.Context, id string, started, ended time.Time, source evidence.TimeSource) error
	StoredUpload(ctx context.Context, deviceID, sha256 string) (catalog.UploadRecord, error)
	StoreUpload(ctx context.Context, rec evidence.Recording, seg evidence.Segment, uploadID string) (evidence.Recording, evidence.Segment, error)
	Recordings(ctx context.Context, f catalog.RecordingFilter) ([]evidence.Recording, error)
	LinkSameEvent(ctx context.Context, a, b string) error
	seal.Catalog
}

// Store is what upload needs from the object store.
type Store interface {
	seal.Store
}

// filePutter is a Store that can take a file whole (the directory store
// links it instead of copying it); the caller never writes to it again.
type filePutter interface {
	PutFile(ctx context.Context, key string, f *os.File, size int64, o storage.PutOptions) (storage.Info, error)
}

// Custody records what happened to uploads (the custody ledger).
type Custody interface {
	Record(ctx context.Context, e evidence.CustodyEvent) error
}

// Custody actions of uploads besides the stored file's, which is an
// evidence.ActionIngest of its recording like a stream's.
const (
	ActionStarted   = "upload_started"
	ActionRefused   = "upload_refused"
	ActionReleased  = "upload_released"
	ActionAbandoned = "upload_abandoned"
)

// Options wire a Server. Zero limits are the defaults.
type Options struct {
	// Dir holds the partial uploads (<data-dir>/spool/uploads).
	Dir string
	// BasePath is where the tus endpoints are mounted (/api/v1/uploads/).
	BasePath string
	// MaxSize bounds one file (default 64 GiB).
	MaxSize int64
	// SpoolMax bounds the declared bytes of every unfinished upload
	// together; a creation that would pass it is answered 507 (default:
	// 4 × MaxSize).
	SpoolMax int64
	// AbandonAfter: a partial upload that received no byte for this long
	// is deleted, with a custody event (default 72 h).
	AbandonAfter time.Duration
	// SweepEvery is how often abandoned uploads are looked for and
	// finishings that failed are retried (default 1 min).
	SweepEvery time.Duration
	// NetworkTimeout: a PATCH whose body brings no byte for this long is
	// ended (tusd's; default 60 s).
	NetworkTimeout time.Duration
	Catalog        Catalog
	Store          Store
	Signer         seal.Signer
	Custody        Custody    // nil: no ledger (tests of other parts)
	Holds          seal.Holds // nil: no legal holds
	Registry       prometheus.Registerer
	Log            *slog.Logger
}

// Server serves the tus endpoints and finishes uploads.
type Server struct {
	o      Options
	tus    *tus.UnroutedHandler
	locker *memorylocker.MemoryLocker
	files  filestore.FileStore
	route  http.Handler // tus's middleware and routing (tus.go)
	m      *metrics

	mu       sync.Mutex
	partials map[string]partial // what is in the spool, by upload id
	finishes map[string]*finishLock
}

// finishLock is one upload's turn to be finished or sealed: a channel of
// one slot (so a wait can end with its context), kept while anyone holds
// or waits for it (users), so that no two paths ever hold two locks of
// one upload.
type finishLock struct {
	turn  chan struct{}
	users int
}

// errBusy: another path holds the upload's finish lock.
var errBusy = errors.New("upload: being finished")

// testHookLook, when set (tests), runs in look just before it takes an
// upload's finish lock.
var testHookLook func(id string)

// partial is an upload in the spool: its declared size and the bytes
// received so far.
type partial struct{ size, offset int64 }

// New builds a Server, creating its spool directory (0700) and counting
// what a previous run left in it.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.MaxSize <= 0 {
		o.MaxSize = 64 << 30
	}
	if o.SpoolMax <= 0 {
		o.SpoolMax = 4 * o.MaxSize
	}
	if o.AbandonAfter <= 0 {
		o.AbandonAfter = 72 * time.Hour
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = time.Minute
	}
	if o.BasePath == "" {
		o.BasePath = "/api/v1/uploads/"
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, chunkDir), 0o700); err != nil {
		return nil, fmt.Errorf("upload spool: %w", err)
	}
	// A chunk being checked when the process died (kill -9, power) was
	// never appended: its client sends it again. Nothing else counts it.
	if stale, err := filepath.Glob(filepath.Join(o.Dir, chunkDir, "*")); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
		if len(stale) > 0 {
			o.Log.Info("upload spool: deleted chunks a previous run left unchecked", "chunks", len(stale))
		}
	}
	s := &Server{o: o, partials: map[string]partial{}, finishes: map[string]*finishLock{}}
	s.files = filestore.FileStore{Path: o.Dir, DirModePerm: 0o700, FileModePerm: 0o600}
	s.m = newMetrics(o.Registry)
	if err := s.count(); err != nil {
		return nil, fmt.Errorf("upload spool: %w", err)
	}
	if err := s.newTus(); err != nil {
		return nil, err
	}
	return s, nil
}

// count reads what is in the spool: every upload there counts against
// SpoolMax until it is stored or deleted.
func (s *Server) count() error {
	infos, err := filepath.Glob(filepath.Join(s.o.Dir, "*.info"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range infos {
		id := filepath.Base(f[:len(f)-len(".info")])
		up, err := s.files.GetUpload(context.Background(), id)
		if err != nil {
			continue
		}
		info, _ := up.GetInfo(context.Background())
		s.partials[id] = partial{size: info.Size, offset: info.Offset}
	}
	s.gauges()
	return nil
}

// gauges sets the spool gauges from partials; s.mu held.
func (s *Server) gauges() {
	var n int64
	for _, p := range s.partials {
		n += p.offset
	}
	s.m.inFlight.Set(float64(n))
	s.m.pending.Set(float64(len(s.partials)))
}

// reserve counts a new upload of size against SpoolMax, or says no.
func (s *Server) reserve(id string, size int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total int64
	for _, p := range s.partials {
		total += p.size
	}
	if total+size > s.o.SpoolMax {
		return false
	}
	s.partials[id] = partial{size: size}
	s.gauges()
	return true
}

// received notes n more bytes of upload id.
func (s *Server) received(id string, n int64) {
	s.m.bytes.Add(float64(n))
	s.mu.Lock()
	p := s.partials[id]
	p.offset += n
	s.partials[id] = p
	s.gauges()
	s.mu.Unlock()
}

// forget removes upload id's partial from the spool (and the counts).
func (s *Server) forget(ctx context.Context, id string) error {
	up, err := s.files.GetUpload(ctx, id)
	if err == nil {
		err = s.files.AsTerminatableUpload(up).Terminate(ctx)
	} else if errors.Is(err, tus.ErrNotFound) {
		err = nil
	}
	s.mu.Lock()
	delete(s.partials, id)
	s.gauges()
	s.mu.Unlock()
	return err
}

// finishing takes upload id's finish lock: every path that finishes or
// seals an upload (the request that brought its last byte, Run's retries,
// a request about a stored upload, a deletion) takes it, then reads the
// upload's state afresh, since what it read before may be out of date.
// With wait false it gives up at once (errBusy) when another path holds
// it; otherwise it waits, until ctx ends. It returns the unlock.
func (s *Server) finishing(ctx context.Context, id string, wait bool) (func(), error) {
	s.mu.Lock()
	l := s.finishes[id]
	if l == nil {
		l = &finishLock{turn: make(chan struct{}, 1)}
		s.finishes[id] = l
	}
	l.users++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.finishes, id)
		}
		s.mu.Unlock()
	}
	if wait {
		select {
		case l.turn <- struct{}{}:
		case <-ctx.Done():
			leave()
			return nil, ctx.Err()
		}
	} else {
		select {
		case l.turn <- struct{}{}:
		default:
			leave()
			return nil, errBusy
		}
	}
	return func() { <-l.turn; leave() }, nil
}

// Run finishes what a previous run left (uploads whose last byte arrived
// but that were not stored), then until ctx ends retries finishings that
// failed and deletes abandoned partial uploads.
func (s *Server) Run(ctx context.Context) error {
	tick := time.NewTicker(s.o.SweepEvery)
	defer tick.Stop()
	for {
		s.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// pass looks at every upload in the spool once.
func (s *Server) pass(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.partials))
	for id := range s.partials {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		s.look(ctx, id)
	}
}

// look finishes upload id if its last byte is in and it is not refused,
// or deletes it if it was abandoned.
func (s *Server) look(ctx context.Context, id string) {
	up, err := s.files.GetUpload(ctx, id)
	if errors.Is(err, tus.ErrNotFound) {
		s.mu.Lock()
		delete(s.partials, id)
		s.gauges()
		s.mu.Unlock()
		return
	} else if err != nil {
		s.o.Log.Warn("upload spool unreadable", "upload", id, "err", err)
		return
	}
	info, _ := up.GetInfo(ctx)
	rec, err := s.o.Catalog.Upload(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		// Created in the spool but never in the catalog (its creation
		// failed half way): nothing to keep.
		s.o.Log.Warn("partial upload unknown to the catalog; deleted", "upload", id)
		s.forget(ctx, id)
		return
	} else if err != nil {
		return // the catalog is down: next pass
	}
	last := s.lastByte(id)
	complete := info.Offset == info.Size
	switch {
	case rec.State == catalog.UploadAbandoned:
		s.forget(ctx, id)
	case complete && rec.State != catalog.UploadRefused:
		if testHookLook != nil {
			testHookLook(id)
		}
		unlock, err := s.finishing(ctx, id, false)
		if err != nil {
			return // the request that brought the last byte is finishing it
		}
		defer unlock()
		// What was read above may be out of date: another path may have
		// stored it, refused it or closed it as a duplicate meanwhile.
		if rec, err = s.o.Catalog.Upload(ctx, id); err != nil {
			return
		}
		switch rec.State {
		case catalog.UploadAbandoned:
			s.forget(ctx, id)
			return
		case catalog.UploadRefused:
			return
		}
		res, err := s.finish(ctx, rec)
		if err != nil {
			s.o.Log.Warn("finishing an upload failed; retried on the next pass", "upload", id, "err", err)
			return
		}
		s.o.Log.Info("upload finished after a restart or a failure", "upload", id, "recording", res.Receipt.RecordingID, "refused", res.Refused)
	case time.Since(last) > s.o.AbandonAfter:
		s.abandon(ctx, rec.ID, info.Offset, last)
	}
}

// lastByte is when upload id last received a byte (its file's time).
func (s *Server) lastByte(id string) time.Time {
	st, err := os.Stat(filepath.Join(s.o.Dir, id))
	if err != nil {
		return time.Now()
	}
	return st.ModTime()
}

// abandon deletes a partial upload no byte came to for AbandonAfter.
func (s *Server) abandon(ctx context.Context, id string, offset int64, last time.Time) {
	lock, err := s.lockUpload(ctx, id)
	if err != nil {
		return // busy: not abandoned
	}
	defer lock.Unlock()
	unlock, err := s.finishing(ctx, id, false)
	if err != nil {
		return
	}
	defer unlock()
	if time.Since(s.lastByte(id)) <= s.o.AbandonAfter {
		return
	}
	rec, err := s.o.Catalog.Upload(ctx, id)
	if err != nil || (rec.State != catalog.UploadReceiving && rec.State != catalog.UploadRefused) {
		return
	}
	reason := fmt.Sprintf("abandoned: no byte for %s (%d of %d bytes received, the last at %s); the partial upload was deleted",
		s.o.AbandonAfter, offset, rec.Size, last.UTC().Format(time.RFC3339))
	if rec.State == catalog.UploadRefused {
		reason = fmt.Sprintf("refused and not deleted by its dock for %s; the partial upload was deleted (%s)", s.o.AbandonAfter, rec.Reason)
	}
	if err := s.o.Catalog.SetUploadState(ctx, rec.ID, catalog.UploadAbandoned, reason, rec.ReceivedSHA256); err != nil {
		s.o.Log.Warn("abandoned upload not marked in the catalog; retried on the next pass", "upload", rec.ID, "err", err)
		return
	}
	if err := s.forget(ctx, rec.ID); err != nil {
		s.o.Log.Warn("abandoned upload not deleted from the spool", "upload", rec.ID, "err", err)
	}
	s.m.outcome("abandoned")
	s.record(ctx, evidence.CustodyEvent{Actor: "system", Role: "system", Action: ActionAbandoned, TargetKind: "upload",
		TargetID: rec.ID, Detail: uploadDetail(rec.Upload) + "; " + reason})
	s.o.Log.Info("abandoned upload deleted", "upload", rec.ID, "device", rec.DeviceID, "dock", rec.Dock, "received", offset, "size", rec.Size)
}

// lockUpload takes tusd's lock of an upload, so no request writes to it
// meanwhile (waiting at most a second).
func (s *Server) lockUpload(ctx context.Context, id string) (tus.Lock, error) {
	l, err := s.locker.NewLock(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := l.Lock(ctx, func() {}); err != nil {
		return nil, err
	}
	return l, nil
}

func (s *Server) record(ctx context.Context, e evidence.CustodyEvent) {
	if s.o.Custody == nil {
		return
	}
	if e.Outcome == "" {
		e.Outcome = evidence.OutcomeOK
	}
	s.o.Custody.Record(ctx, e) // a failure is logged and counted by the ledger
}

func uploadDetail(u evidence.Upload) string {
	return fmt.Sprintf("file %q of device %s, %d bytes, SHA-256 %s", u.FileName, u.DeviceID, u.Size, u.SHA256)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
