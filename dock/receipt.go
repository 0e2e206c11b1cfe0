package dock

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// receiptBody is the server's answer when a file is stored (the finishing
// PATCH, GET /api/v1/uploads/{id}/receipt, GET /api/v1/receipts).
type receiptBody struct {
	RecordingID string          `json:"recording_id"`
	Receipt     json.RawMessage `json:"receipt"`
	ReceiptB64  string          `json:"receipt_b64"`
	Signature   string          `json:"signature"`
	Duplicate   bool            `json:"duplicate"`
}

// errNoReceipt: the server holds no stored file for (device, sha256).
var errNoReceipt = errors.New("no receipt")

// errFinishing: the upload is complete and the server is still storing it.
var errFinishing = errors.New("the server is still storing the upload")

// storedReceipt asks whether the server already stored this file for the
// device (GET /api/v1/receipts): a receipt, or errNoReceipt.
func (c *client) storedReceipt(ctx context.Context, device, sha string) (*receiptBody, error) {
	q := url.Values{"device": {device}, "sha256": {sha}}
	resp, err := c.do(ctx, http.MethodGet, "/api/v1/receipts?"+q.Encode(), nil, nil, 0)
	if err != nil {
		return nil, err
	}
	b := readBody(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		var rb receiptBody
		if err := json.Unmarshal(b, &rb); err != nil {
			return nil, fmt.Errorf("receipts: not JSON: %v", err)
		}
		return &rb, nil
	case http.StatusNotFound:
		return nil, errNoReceipt
	}
	return nil, &statusError{Op: "GET receipts", Status: resp.StatusCode, Body: shortBody(b)}
}

// uploadReceipt fetches the receipt of a finished upload (when the
// finishing PATCH's answer was lost): errFinishing on 202, a refusedError
// on 409, errGone on 404.
func (c *client) uploadReceipt(ctx context.Context, uploadURL string) (*receiptBody, error) {
	resp, err := c.do(ctx, http.MethodGet, uploadURL+"/receipt", nil, nil, 0)
	if err != nil {
		return nil, err
	}
	b := readBody(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		var rb receiptBody
		if err := json.Unmarshal(b, &rb); err != nil {
			return nil, fmt.Errorf("upload receipt: not JSON: %v", err)
		}
		return &rb, nil
	case http.StatusAccepted:
		return nil, errFinishing
	case http.StatusConflict:
		var st struct {
			State string `json:"state"`
		}
		if json.Unmarshal(b, &st) == nil && st.State == "abandoned" {
			return nil, errGone // deleted or swept: start over
		}
		re := &refusedError{}
		if json.Unmarshal(b, re) != nil || re.Message == "" {
			re.Message = shortBody(b)
		}
		return nil, re
	case http.StatusNotFound, http.StatusGone:
		return nil, errGone
	}
	return nil, &statusError{Op: "GET upload receipt", Status: resp.StatusCode, Body: shortBody(b)}
}

// released tells the server the recorder's copy was deleted.
func (c *client) released(ctx context.Context, uploadURL string) error {
	resp, err := c.do(ctx, http.MethodPost, uploadURL+"/released", nil, nil, 0)
	if err != nil {
		return err
	}
	b := readBody(resp)
	if resp.StatusCode/100 != 2 {
		return &statusError{Op: "POST released", Status: resp.StatusCode, Body: shortBody(b)}
	}
	return nil
}

// keyJSON is one entry of GET /api/v1/keys.
type keyJSON struct {
	ID        string `json:"id"`
	Algorithm string `json:"algorithm"`
	PublicKey []byte `json:"public_key"` // base64 in JSON
}

// errKeysUnavailable: the server's public keys could not be fetched for
// now (the network, a 5xx): a receipt is not checked, neither good nor bad.
var errKeysUnavailable = errors.New("the server's public keys could not be fetched")

// keyCache holds the server's public keys, fetched again when a receipt
// names a key it does not know (a rotation).
type keyCache struct {
	c    *client
	mu   sync.Mutex
	keys map[string]ed25519.PublicKey
	at   time.Time
}

func (k *keyCache) key(ctx context.Context, id string) (ed25519.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pub, ok := k.keys[id]; ok {
		return pub, nil
	}
	if time.Since(k.at) < time.Second && k.keys != nil {
		return nil, fmt.Errorf("the server publishes no key %q", id)
	}
	resp, err := k.c.do(ctx, http.MethodGet, "/api/v1/keys", nil, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errKeysUnavailable, err)
	}
	b := readBody(resp)
	if resp.StatusCode != http.StatusOK {
		se := &statusError{Op: "GET keys", Status: resp.StatusCode, Body: shortBody(b)}
		if se.temporary() {
			return nil, fmt.Errorf("%w: %v", errKeysUnavailable, se)
		}
		return nil, se
	}
	var list struct {
		Items []keyJSON `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("keys: not JSON: %v", err)
	}
	k.keys, k.at = map[string]ed25519.PublicKey{}, time.Now()
	for _, it := range list.Items {
		if len(it.PublicKey) == ed25519.PublicKeySize && (it.Algorithm == "" || it.Algorithm == "Ed25519") {
			k.keys[it.ID] = ed25519.PublicKey(it.PublicKey)
		}
	}
	if pub, ok := k.keys[id]; ok {
		return pub, nil
	}
	return nil, fmt.Errorf("the server publishes no key %q", id)
}

// verifiedReceipt is a receipt whose signature and contents checked.
type verifiedReceipt struct {
	Receipt evidence.Receipt
	Body    []byte // receipt.json, the signed bytes
	Sig     []byte
}

// verifyReceipt checks that rb is signed by the server key it names, over
// the exact receipt_b64 bytes, and that it is about this file. otherName
// accepts a receipt of the same bytes stored earlier under another name
// (GET /api/v1/receipts finds a file by device and hash, not by name).
func verifyReceipt(ctx context.Context, keys *keyCache, rb *receiptBody, f fileFacts, otherName bool) (verifiedReceipt, error) {
	var v verifiedReceipt
	body, err := base64.StdEncoding.DecodeString(rb.ReceiptB64)
	if err != nil || len(body) == 0 {
		return v, fmt.Errorf("receipt: receipt_b64 is not base64")
	}
	sig, err := base64.StdEncoding.DecodeString(rb.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return v, fmt.Errorf("receipt: the signature is not a base64 Ed25519 signature")
	}
	var unverified evidence.Receipt
	if err := json.Unmarshal(body, &unverified); err != nil {
		return v, fmt.Errorf("receipt: %v", err)
	}
	pub, err := keys.key(ctx, unverified.SigningKeyID)
	if err != nil {
		return v, fmt.Errorf("receipt: %w", err)
	}
	r, err := evidence.VerifyReceipt(pub, body, sig)
	if err != nil {
		return v, err
	}
	switch {
	case r.DeviceID != f.Device:
		return v, fmt.Errorf("receipt: for device %q, not %q", r.DeviceID, f.Device)
	case r.Size != f.Size:
		return v, fmt.Errorf("receipt: for %d bytes, the file has %d", r.Size, f.Size)
	case r.SHA256 != f.SHA256:
		return v, fmt.Errorf("receipt: sha256 %s, the file's is %s", r.SHA256, f.SHA256)
	case r.FileName != f.Name && !otherName:
		return v, fmt.Errorf("receipt: for file %q, not %q", r.FileName, f.Name)
	case r.RecordingID == "" || (rb.RecordingID != "" && rb.RecordingID != r.RecordingID):
		return v, fmt.Errorf("receipt: recording %q, the answer said %q", r.RecordingID, rb.RecordingID)
	}
	return verifiedReceipt{Receipt: r, Body: body, Sig: sig}, nil
}

// saveReceipt keeps receipt.json and its .sig under dir, named after the
// recording (unique), and returns the receipt's path.
func saveReceipt(dir string, v verifiedReceipt) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, v.Receipt.RecordingID+".receipt.json")
	if err := writeFileAtomic(p, v.Body); err != nil {
		return "", err
	}
	if err := writeFileAtomic(p+".sig", v.Sig); err != nil {
		return "", err
	}
	return p, nil
}
