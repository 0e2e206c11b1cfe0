package upload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/seal"
	"github.com/bodycam/bodycam/storage"
)

// result is how a finishing ended: stored (or the same file already
// stored for the device: Duplicate), or refused with both hashes.
type result struct {
	Receipt   evidence.Receipt
	Body, Sig []byte
	Duplicate bool

	Refused            bool
	Declared, Received string
}

// receiptJSON is the answer that carries a receipt (the API description's
// Receipt).
type receiptJSON struct {
	RecordingID string           `json:"recording_id"`
	Receipt     evidence.Receipt `json:"receipt"`
	ReceiptB64  []byte           `json:"receipt_b64"`
	Signature   []byte           `json:"signature"`
	Duplicate   bool             `json:"duplicate"`
}

func (r result) body() receiptJSON {
	return receiptJSON{RecordingID: r.Receipt.RecordingID, Receipt: r.Receipt, ReceiptB64: r.Body, Signature: r.Sig, Duplicate: r.Duplicate}
}

// hashBuf is the read buffer of a whole-file hash: memory stays this
// whatever the file's size.
const hashBuf = 1 << 20

// finish takes an upload whose last byte is in the spool to the end. Every
// step is idempotent, and the catalog's state says where it got to, so a
// call after a crash (or a failure) at any point completes the work:
//
//	receiving → finishing; hash the file from disk;
//	  mismatch → refused (the partial is kept);
//	  the device has the same file stored → that recording (duplicate);
//	put the object (its hash checked by the store) → catalog StoreUpload
//	(recording, chained segment, upload stored: one transaction) →
//	legal hold if linked → signed manifest → signed receipt → custody →
//	the partial deleted.
//
// The caller holds the upload's finish lock.
func (s *Server) finish(ctx context.Context, rec catalog.UploadRecord) (result, error) {
	switch rec.State {
	case catalog.UploadStored:
		res, err := s.storedResult(ctx, rec, false)
		if err == nil {
			err = s.forget(ctx, rec.ID)
		}
		return res, err
	case catalog.UploadRefused:
		return result{Refused: true, Declared: rec.SHA256, Received: rec.ReceivedSHA256}, nil
	case catalog.UploadAbandoned:
		return result{}, fmt.Errorf("upload %s was abandoned (%s)", rec.ID, rec.Reason)
	case catalog.UploadReceiving:
		if err := s.o.Catalog.SetUploadState(ctx, rec.ID, catalog.UploadFinishing, "", ""); err != nil {
			return result{}, fmt.Errorf("catalog: %w", err)
		}
	}
	t0 := time.Now()
	file := filepath.Join(s.o.Dir, rec.ID)
	sum, size, err := hashFile(file)
	if err != nil {
		return result{}, fmt.Errorf("spool: %w", err)
	}
	s.m.hashSeconds.Observe(time.Since(t0).Seconds())
	if sum != rec.SHA256 || size != rec.Size {
		reason := fmt.Sprintf("SHA-256 mismatch: the dock declared %s, the %d bytes received hash to %s", rec.SHA256, size, sum)
		if err := s.o.Catalog.SetUploadState(ctx, rec.ID, catalog.UploadRefused, reason, sum); err != nil {
			return result{}, fmt.Errorf("catalog: %w", err)
		}
		s.m.refusals.WithLabelValues("sha256").Inc()
		s.m.outcome("refused")
		s.record(ctx, evidence.CustodyEvent{Actor: rec.Dock, Role: string(evidence.RoleDock), Remote: rec.RemoteAddr, Action: ActionRefused,
			TargetKind: "upload", TargetID: rec.ID, Outcome: evidence.OutcomeFailed, Detail: uploadDetail(rec.Upload) + "; " + reason + "; nothing stored"})
		s.o.Log.Warn("upload refused: SHA-256 mismatch", "upload", rec.ID, "device", rec.DeviceID, "dock", rec.Dock,
			"declared_sha256", rec.SHA256, "received_sha256", sum)
		return result{Refused: true, Declared: rec.SHA256, Received: sum}, nil
	}
	if prior, err := s.o.Catalog.StoredUpload(ctx, rec.DeviceID, rec.SHA256); err == nil && prior.ID != rec.ID {
		return s.duplicate(ctx, rec, prior)
	} else if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return result{}, fmt.Errorf("catalog: %w", err)
	}

	// The recording's id is the upload's, made again the same on a retry,
	// so an object a crashed attempt stored is found again.
	idSum := sha256.Sum256([]byte(rec.ID))
	recID := rec.CreatedAt.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(idSum[:4])
	key := evidence.OriginalKey(rec.DeviceID, recID, rec.FileName)
	if err := s.put(ctx, key, file, rec); err != nil {
		return result{}, err
	}
	started, ended, source := recordedSpan(rec, probeTimes(file, time.Now()))
	if err := s.o.Catalog.SetUploadTimes(ctx, rec.ID, started, ended, source); err != nil {
		return result{}, fmt.Errorf("catalog: %w", err)
	}
	rec.StartedAt, rec.EndedAt, rec.TimeSource = started, ended, source
	r := evidence.Recording{ID: recID, Kind: evidence.KindUpload, DeviceID: rec.DeviceID, OfficerID: rec.OfficerID,
		State: evidence.StateComplete, StartedAt: started, EndedAt: ended, RemoteAddr: rec.RemoteAddr,
		EndReason: fmt.Sprintf("uploaded by dock %s: %s", rec.Dock, rec.FileName)}
	seg := evidence.Segment{RecordingID: recID, DeviceID: rec.DeviceID, Seq: 1, Kind: evidence.KindOriginal, Key: key,
		Size: rec.Size, SHA256: rec.SHA256, StartedAt: started, Duration: ended.Sub(started)}
	_, _, err = s.o.Catalog.StoreUpload(ctx, r, seg, rec.ID)
	if errors.Is(err, catalog.ErrExists) {
		// The same file of the device was stored by another upload since
		// the look above; the object stored under this one's key stays
		// (write-once) but is in no recording.
		prior, perr := s.o.Catalog.StoredUpload(ctx, rec.DeviceID, rec.SHA256)
		if perr != nil {
			return result{}, fmt.Errorf("catalog: %w", perr)
		}
		if prior.ID == rec.ID { // this one, stored by an attempt the catalog answered too late
			return s.storedResult(ctx, prior, false)
		}
		s.o.Log.Warn("the same file was stored by another upload meanwhile; this one's object is left unrecorded", "upload", rec.ID, "key", key, "stored_as", prior.RecordingID)
		return s.duplicate(ctx, rec, prior)
	} else if err != nil {
		return result{}, fmt.Errorf("catalog: %w", err)
	}
	rec.State, rec.RecordingID = catalog.UploadStored, recID
	res, err := s.storedResult(ctx, rec, true)
	if err != nil {
		return res, err
	}
	if err := s.forget(ctx, rec.ID); err != nil {
		s.o.Log.Warn("stored upload's partial not deleted from the spool; retried", "upload", rec.ID, "err", err)
	}
	return res, nil
}

// recordedSpan decides when an uploaded file was recorded: from the file's
// own header when it says (its creation time, and its length), else as the
// dock gave it (a given start with the file's length when the dock gave no
// end), else the time the upload began, of the file's length (or none).
func recordedSpan(rec catalog.UploadRecord, ft fileTimes) (started, ended time.Time, source evidence.TimeSource) {
	switch {
	case !ft.Created.IsZero():
		started, source = ft.Created.UTC(), evidence.TimeFromFile
		ended = started.Add(ft.Duration)
		if ft.Duration == 0 && !rec.EndedAt.IsZero() && !rec.StartedAt.IsZero() {
			ended = started.Add(rec.EndedAt.Sub(rec.StartedAt))
		}
	case !rec.StartedAt.IsZero():
		started, ended, source = rec.StartedAt, rec.EndedAt, evidence.TimeGiven
		if ended.IsZero() {
			ended = started.Add(ft.Duration)
		}
	default:
		started, source = rec.CreatedAt.UTC(), evidence.TimeReceived
		ended = started.Add(ft.Duration)
	}
	return started, ended, source
}

// storedResult seals the recording of a stored upload (manifest, receipt:
// each written once) and returns its receipt. count: this call stored it.
func (s *Server) storedResult(ctx context.Context, rec catalog.UploadRecord, count bool) (result, error) {
	r, err := s.o.Catalog.Recording(ctx, rec.RecordingID)
	if err != nil {
		return result{}, fmt.Errorf("catalog: recording %s: %w", rec.RecordingID, err)
	}
	segs, err := s.o.Catalog.Segments(ctx, r.ID)
	if err != nil || len(segs) == 0 {
		return result{}, fmt.Errorf("catalog: segments of %s: %v", r.ID, err)
	}
	seg := segs[0]
	if s.o.Holds != nil {
		if err := s.o.Holds.HoldIfLinked(ctx, r.ID, seg.Key); err != nil {
			return result{}, fmt.Errorf("legal hold on %s: %w", seg.Key, err)
		}
	}
	if r.ManifestKey == "" {
		if err := seal.WriteManifest(ctx, s.o.Store, s.o.Catalog, s.o.Signer, s.o.Holds, r, evidence.NewManifestOrigin(rec.Upload)); err != nil {
			return result{}, err
		}
	}
	if err := s.reconcile(ctx, rec, r); err != nil {
		return result{}, err
	}
	receipt, body, sig, fresh, err := seal.WriteReceipt(ctx, s.o.Store, s.o.Signer, s.o.Holds, evidence.Receipt{
		RecordingID: r.ID, DeviceID: r.DeviceID, FileName: rec.FileName, Size: seg.Size, SHA256: seg.SHA256,
		ObjectKey: seg.Key, ChainHash: seg.ChainHash, Dock: rec.Dock, StoredAt: time.Now().UTC()})
	if err != nil {
		return result{}, err
	}
	if fresh {
		s.record(ctx, evidence.CustodyEvent{Actor: rec.Dock, Role: string(evidence.RoleDock), Remote: rec.RemoteAddr, Action: evidence.ActionIngest,
			TargetKind: "recording", TargetID: r.ID, Detail: fmt.Sprintf("upload stored: %s as %s (upload %s; times %s); signed receipt %s",
				uploadDetail(rec.Upload), seg.Key, rec.ID, rec.TimeSource, evidence.ReceiptKey(r.DeviceID, r.ID))})
		if count {
			s.m.outcome("stored")
		}
		s.o.Log.Info("upload stored", "upload", rec.ID, "recording", r.ID, "device", r.DeviceID, "dock", rec.Dock, "size", seg.Size, "key", seg.Key)
	}
	return result{Receipt: receipt, Body: body, Sig: sig}, nil
}

// duplicate ends an upload of a file its device already has stored (by
// prior): the answer is prior's receipt; this upload is closed and its
// partial deleted.
func (s *Server) duplicate(ctx context.Context, rec, prior catalog.UploadRecord) (result, error) {
	res, err := s.priorResult(ctx, prior)
	if err != nil {
		return res, err
	}
	reason := fmt.Sprintf("duplicate: the same file (SHA-256 %s) is stored as recording %s (upload %s)", rec.SHA256, prior.RecordingID, prior.ID)
	if err := s.o.Catalog.SetUploadState(ctx, rec.ID, catalog.UploadAbandoned, reason, rec.SHA256); err != nil {
		return result{}, fmt.Errorf("catalog: %w", err)
	}
	s.m.outcome("duplicate")
	s.record(ctx, evidence.CustodyEvent{Actor: rec.Dock, Role: string(evidence.RoleDock), Remote: rec.RemoteAddr, Action: ActionAbandoned,
		TargetKind: "upload", TargetID: rec.ID, Detail: uploadDetail(rec.Upload) + "; " + reason})
	if err := s.forget(ctx, rec.ID); err != nil {
		s.o.Log.Warn("duplicate upload's partial not deleted from the spool; retried", "upload", rec.ID, "err", err)
	}
	s.o.Log.Info("upload is a file already stored", "upload", rec.ID, "recording", prior.RecordingID, "device", rec.DeviceID)
	return res, nil
}

// priorResult is the receipt of prior, a stored upload of the same file
// as another, with Duplicate set. prior may still be sealing (the two were
// sent at once): it takes prior's finish lock for that. No two uploads
// wait for each other's: only a stored upload is ever a prior, and a
// stored upload never looks for one.
func (s *Server) priorResult(ctx context.Context, prior catalog.UploadRecord) (result, error) {
	unlock, err := s.finishing(ctx, prior.ID, true)
	if err != nil {
		return result{}, err
	}
	defer unlock()
	res, err := s.storedResult(ctx, prior, false)
	res.Duplicate = true
	return res, err
}

// duplicateOf is the receipt of the stored file that upload rec, closed as
// a duplicate of it, is the same as (ok false when rec is not one).
func (s *Server) duplicateOf(ctx context.Context, rec catalog.UploadRecord) (result, bool) {
	if rec.ReceivedSHA256 != rec.SHA256 || !strings.HasPrefix(rec.Reason, "duplicate") {
		return result{}, false
	}
	prior, err := s.o.Catalog.StoredUpload(ctx, rec.DeviceID, rec.SHA256)
	if err != nil {
		return result{}, false
	}
	res, err := s.priorResult(ctx, prior)
	return res, err == nil
}

// put stores the spooled file at key (the store checks its hash as it
// writes). An object an earlier attempt stored there with the same hash is
// as good.
func (s *Server) put(ctx context.Context, key, file string, rec catalog.UploadRecord) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	want, _ := hex.DecodeString(rec.SHA256)
	opts := storage.PutOptions{SHA256: want, ContentType: mime.TypeByExtension(path.Ext(key))}
	t0 := time.Now()
	if fp, ok := s.o.Store.(filePutter); ok {
		// Nothing writes to a whole upload again: the store may take the
		// file itself (the directory store links it).
		_, err = fp.PutFile(ctx, key, f, rec.Size, opts)
	} else {
		_, err = s.o.Store.Put(ctx, key, f, rec.Size, opts)
	}
	s.m.putSeconds.Observe(time.Since(t0).Seconds())
	if errors.Is(err, storage.ErrExists) {
		st, serr := s.o.Store.Stat(ctx, key)
		if serr != nil {
			return serr
		}
		if st.SHA256 != rec.SHA256 {
			return fmt.Errorf("%s exists with other content (SHA-256 %s)", key, st.SHA256)
		}
		return nil
	}
	return err
}

// hashFile is the SHA-256 and size of a file, read from disk.
func hashFile(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, hashBuf))
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// reconcile links an uploaded recording with the device's streamed
// recordings of the same time (same_event): when a recorder streamed and
// later docked, both copies of the moment are shown and exported together,
// the uploaded original first. Only times the file or the dock gave count:
// an upload's receive time says nothing about when it was recorded.
func (s *Server) reconcile(ctx context.Context, rec catalog.UploadRecord, r evidence.Recording) error {
	if rec.TimeSource == evidence.TimeReceived || rec.TimeSource == "" {
		return nil
	}
	to := r.EndedAt
	if !to.After(r.StartedAt) {
		to = r.StartedAt.Add(time.Microsecond)
	}
	streams, err := s.o.Catalog.Recordings(ctx, catalog.RecordingFilter{DeviceID: r.DeviceID, From: r.StartedAt, To: to,
		Kind: evidence.KindStream, Limit: 1000})
	if err != nil {
		return fmt.Errorf("catalog: recordings overlapping %s: %w", r.ID, err)
	}
	for _, st := range streams {
		if err := s.o.Catalog.LinkSameEvent(ctx, r.ID, st.ID); err != nil {
			return fmt.Errorf("catalog: same_event %s %s: %w", r.ID, st.ID, err)
		}
		s.o.Log.Info("upload linked to the stream of the same time", "recording", r.ID, "stream", st.ID, "device", r.DeviceID)
	}
	return nil
}
