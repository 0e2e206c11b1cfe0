// Package seal writes the signed objects that close a recording: its
// manifest (manifest.json and manifest.json.sig) and, for an uploaded file,
// the receipt the dock keeps (receipt.json and receipt.json.sig). Ingest
// and upload both seal recordings, so the rules live here once: every step
// is idempotent (a retry after a crash keeps what an earlier attempt
// stored and signs those exact bytes), and each object is put on legal
// hold when its recording is linked to a case.
package seal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/storage"
)

// ErrCatalog wraps the catalog's failures, so callers can count them apart
// from the store's.
var ErrCatalog = errors.New("catalog")

// Store is what sealing needs from the object store.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64, o storage.PutOptions) (storage.Info, error)
	Stat(ctx context.Context, key string) (storage.Info, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// Catalog is what a manifest is written from.
type Catalog interface {
	Segments(ctx context.Context, recordingID string) ([]evidence.Segment, error)
	Gaps(ctx context.Context, recordingID string) ([]evidence.Gap, error)
	SetManifest(ctx context.Context, id, key string) error
}

// Signer signs manifests and receipts.
type Signer interface {
	ID() string
	Sign(msg []byte) (keyID string, sig []byte)
}

// Holds puts a stored object on legal hold if its recording is linked to a
// case (caselink); nil: no holds.
type Holds interface {
	HoldIfLinked(ctx context.Context, recordingID, key string) error
}

// ManifestKey is the object key of a recording's manifest.
func ManifestKey(device, recording string) string { return device + "/" + recording + "/manifest.json" }

// WriteManifest writes rec's signed manifest, from its segments and gaps
// on record, and records its key in the catalog. origin is the uploaded
// file's entry (nil for a stream: its manifest is what it always was).
func WriteManifest(ctx context.Context, store Store, cat Catalog, signer Signer, holds Holds, rec evidence.Recording, origin *evidence.ManifestOrigin) error {
	key := ManifestKey(rec.DeviceID, rec.ID)
	// A retry after a crash keeps the manifest an earlier attempt stored.
	body, err := read(ctx, store, key)
	if errors.Is(err, storage.ErrNotFound) {
		segs, err := cat.Segments(ctx, rec.ID)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCatalog, err)
		}
		gaps, err := cat.Gaps(ctx, rec.ID)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCatalog, err)
		}
		m := evidence.NewManifest(rec, segs, gaps)
		if origin != nil {
			m.Kind, m.Origin = evidence.KindUpload, origin
		}
		m.SignedAt = time.Now().UTC()
		m.SigningKeyID = signer.ID()
		body = m.Marshal()
		if err := putSmall(ctx, store, key, body); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := signOnce(ctx, store, signer, key, body); err != nil {
		return err
	}
	if err := hold(ctx, holds, rec.ID, key, key+".sig"); err != nil {
		return err
	}
	if err := cat.SetManifest(ctx, rec.ID, key); err != nil {
		return fmt.Errorf("%w: %v", ErrCatalog, err)
	}
	return nil
}

// WriteReceipt stores the signed receipt of an uploaded file: r (its
// SigningKeyID set here) unless an earlier attempt stored one, which is
// kept. It returns the receipt as stored, its bytes and their signature,
// and whether this call wrote it.
func WriteReceipt(ctx context.Context, store Store, signer Signer, holds Holds, r evidence.Receipt) (evidence.Receipt, []byte, []byte, bool, error) {
	key := evidence.ReceiptKey(r.DeviceID, r.RecordingID)
	body, err := read(ctx, store, key)
	fresh := errors.Is(err, storage.ErrNotFound)
	if fresh {
		r.Version = 1
		r.SigningKeyID = signer.ID()
		body = r.Marshal()
		if err := putSmall(ctx, store, key, body); err != nil {
			return r, nil, nil, false, err
		}
	} else if err != nil {
		return r, nil, nil, false, err
	} else if err := json.Unmarshal(body, &r); err != nil {
		return r, nil, nil, false, fmt.Errorf("receipt %s: %v", key, err)
	}
	if err := signOnce(ctx, store, signer, key, body); err != nil {
		return r, nil, nil, false, err
	}
	sig, err := read(ctx, store, key+".sig")
	if err != nil {
		return r, nil, nil, false, err
	}
	if err := hold(ctx, holds, r.RecordingID, key, key+".sig"); err != nil {
		return r, nil, nil, false, err
	}
	return r, body, sig, fresh, nil
}

// ReadReceipt reads a stored receipt and its signature.
func ReadReceipt(ctx context.Context, store Store, device, recording string) (evidence.Receipt, []byte, []byte, error) {
	var r evidence.Receipt
	key := evidence.ReceiptKey(device, recording)
	body, err := read(ctx, store, key)
	if err != nil {
		return r, nil, nil, err
	}
	sig, err := read(ctx, store, key+".sig")
	if err != nil {
		return r, nil, nil, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, nil, nil, fmt.Errorf("receipt %s: %v", key, err)
	}
	return r, body, sig, nil
}

// signOnce stores the signature of body at key+".sig" unless it is there.
func signOnce(ctx context.Context, store Store, signer Signer, key string, body []byte) error {
	if _, err := store.Stat(ctx, key+".sig"); errors.Is(err, storage.ErrNotFound) {
		_, sig := signer.Sign(body)
		return putSmall(ctx, store, key+".sig", sig)
	} else if err != nil {
		return err
	}
	return nil
}

func hold(ctx context.Context, holds Holds, recordingID string, keys ...string) error {
	if holds == nil {
		return nil
	}
	for _, k := range keys {
		if err := holds.HoldIfLinked(ctx, recordingID, k); err != nil {
			return fmt.Errorf("legal hold on %s: %w", k, err)
		}
	}
	return nil
}

func read(ctx context.Context, store Store, key string) ([]byte, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 64<<20))
}

// putSmall stores b at key; an object an earlier attempt stored there
// with the same bytes is as good.
func putSmall(ctx context.Context, store Store, key string, b []byte) error {
	_, err := store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), storage.PutOptions{})
	if errors.Is(err, storage.ErrExists) {
		if old, rerr := read(ctx, store, key); rerr == nil && bytes.Equal(old, b) {
			return nil
		}
	}
	return err
}

// WriteSigned stores body at key with its signature at key+".sig", as
// manifests are: an object an earlier attempt stored there is kept (and
// returned: the signature covers what is stored), and signed if its
// signature is missing. Derived copies' provenance records are written so.
func WriteSigned(ctx context.Context, store Store, signer Signer, key string, body []byte) ([]byte, error) {
	stored, err := read(ctx, store, key)
	if errors.Is(err, storage.ErrNotFound) {
		if err := putSmall(ctx, store, key, body); err != nil {
			if !errors.Is(err, storage.ErrExists) {
				return nil, err
			}
			if stored, err = read(ctx, store, key); err != nil {
				return nil, err
			}
		} else {
			stored = body
		}
	} else if err != nil {
		return nil, err
	}
	if err := signOnce(ctx, store, signer, key, stored); err != nil {
		return nil, err
	}
	return stored, nil
}
