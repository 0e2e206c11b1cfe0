package catalog

// TEMPORARY (branch up-server): the spec's upload types and methods, so that
// package upload compiles before the catalog's real ones (branch
// up-catalog) are merged. Deleted by that merge.

import (
	"context"
	"errors"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

type UploadState string

const (
	UploadReceiving UploadState = "receiving"
	UploadFinishing UploadState = "finishing"
	UploadStored    UploadState = "stored"
	UploadRefused   UploadState = "refused"
	UploadAbandoned UploadState = "abandoned"
)

type UploadRecord struct {
	evidence.Upload
	State                UploadState
	Reason               string
	ReceivedSHA256       string
	CreatedAt, UpdatedAt time.Time
}

type UploadFilter struct {
	Dock, DeviceID string
	Unit           string
	State          UploadState
	Limit          int
}

var errStub = errors.New("catalog: uploads not merged yet")

func (c *Catalog) CreateUpload(ctx context.Context, u evidence.Upload) error { return errStub }
func (c *Catalog) Upload(ctx context.Context, id string) (UploadRecord, error) {
	return UploadRecord{}, errStub
}
func (c *Catalog) Uploads(ctx context.Context, f UploadFilter) ([]UploadRecord, error) {
	return nil, errStub
}
func (c *Catalog) SetUploadState(ctx context.Context, id string, state UploadState, reason, receivedSHA256 string) error {
	return errStub
}
func (c *Catalog) StoredUpload(ctx context.Context, deviceID, sha256 string) (UploadRecord, error) {
	return UploadRecord{}, errStub
}
func (c *Catalog) StoreUpload(ctx context.Context, rec evidence.Recording, seg evidence.Segment, uploadID string) (evidence.Recording, evidence.Segment, error) {
	return rec, seg, errStub
}
