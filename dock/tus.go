package dock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// The tus 1.0 client: creation, HEAD for the offset, PATCH in chunks with a
// per-chunk Upload-Checksum (sha256), termination. It is small on purpose:
// it knows the server's contract (docs: "Dock upload"), not every tus
// server's.

const tusVersion = "1.0.0"

// Errors of the tus client that the uploader acts on.
var (
	// errGone: the upload URL is unknown to the server (404/410): start over.
	errGone = errors.New("tus: the upload is gone from the server")
	// errChunkChecksum: the server refused one chunk's checksum (460
	// without a whole-file verdict): send that chunk again.
	errChunkChecksum = errors.New("tus: the server refused a chunk's checksum")
	// errOffset: the server's offset is not ours (409): ask it (HEAD).
	errOffset = errors.New("tus: offset mismatch")
)

// refusedError is the server's verdict on a whole file whose bytes did not
// hash to the SHA-256 the dock declared (460 with both hashes).
type refusedError struct {
	Message  string `json:"error"`
	Declared string `json:"declared_sha256"`
	Received string `json:"received_sha256"`
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("refused by the server: %s (declared sha256 %s, received %s)", e.Message, e.Declared, e.Received)
}

// statusError is an answer the client has no plan for; permanent ones
// (4xx other than 408/423/429) are not retried within a round.
type statusError struct {
	Op     string
	Status int
	Body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.Body)
}

func (e *statusError) temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusLocked ||
		e.Status == http.StatusTooManyRequests
}

// client talks to the bodycam API with the dock's bearer token.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// resolve makes ref (a path, or an upload URL the server gave) a URL of
// the server the agent was pointed at: only ref's path and query count.
// The server builds an upload's Location from the Host its request
// arrived with, which behind a reverse proxy, a TLS terminator or a
// tunnel is not the address the dock reaches it at (nor its scheme);
// --server is.
func (c *client) resolve(ref string) string {
	r, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	r.Scheme, r.Host, r.User, r.Fragment, r.RawFragment = "", "", nil, "", ""
	if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
		r.Path = "/" + r.Path
		r.RawPath = ""
	}
	return c.base.ResolveReference(r).String()
}

func (c *client) do(ctx context.Context, method, ref string, hdr http.Header, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.resolve(ref), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.http.Do(req)
}

// readBody reads at most 1 MiB of an answer (receipts and errors are small).
func readBody(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return b
}

func shortBody(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// encodeMetadata is tus' Upload-Metadata: key base64(value) pairs, sorted
// so that the header is the same every time.
func encodeMetadata(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+base64.StdEncoding.EncodeToString([]byte(m[k])))
	}
	return strings.Join(parts, ",")
}

// create makes an upload of size bytes and returns its URL (absolute).
func (c *client) create(ctx context.Context, size int64, meta map[string]string) (string, error) {
	hdr := http.Header{}
	hdr.Set("Tus-Resumable", tusVersion)
	hdr.Set("Upload-Length", strconv.FormatInt(size, 10))
	hdr.Set("Upload-Metadata", encodeMetadata(meta))
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/uploads/", hdr, nil, 0)
	if err != nil {
		return "", err
	}
	b := readBody(resp)
	if resp.StatusCode != http.StatusCreated {
		return "", &statusError{Op: "create upload", Status: resp.StatusCode, Body: shortBody(b)}
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("create upload: the server gave no Location")
	}
	// Its path on our --server (see resolve), never another host.
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("create upload: Location %q: %v", loc, err)
	}
	return c.resolve(u.RequestURI()), nil
}

// offset asks the server how many bytes of the upload it holds.
func (c *client) offset(ctx context.Context, uploadURL string) (int64, error) {
	hdr := http.Header{}
	hdr.Set("Tus-Resumable", tusVersion)
	resp, err := c.do(ctx, http.MethodHead, uploadURL, hdr, nil, 0)
	if err != nil {
		return 0, err
	}
	readBody(resp)
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return 0, errGone
	case resp.StatusCode/100 != 2:
		return 0, &statusError{Op: "HEAD upload", Status: resp.StatusCode}
	}
	off, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("HEAD upload: bad Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return off, nil
}

// patchResult is what a PATCH did: the new offset and, when it finished
// the file and the server stored it, the receipt.
type patchResult struct {
	Offset  int64
	Receipt *receiptBody // nil unless the server answered 200 with one
}

// patch sends chunk (the bytes at offset) with its SHA-256, through body
// (which may be rate limited) and returns the server's new offset.
func (c *client) patch(ctx context.Context, uploadURL string, offset int64, chunk []byte, wrap func(io.Reader) io.Reader) (patchResult, error) {
	sum := sha256.Sum256(chunk)
	hdr := http.Header{}
	hdr.Set("Tus-Resumable", tusVersion)
	hdr.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	hdr.Set("Content-Type", "application/offset+octet-stream")
	hdr.Set("Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(sum[:]))
	var body io.Reader = bytes.NewReader(chunk)
	if wrap != nil {
		body = wrap(body)
	}
	resp, err := c.do(ctx, http.MethodPatch, uploadURL, hdr, body, int64(len(chunk)))
	if err != nil {
		return patchResult{}, err
	}
	b := readBody(resp)
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		res := patchResult{Offset: offset + int64(len(chunk))}
		if s := resp.Header.Get("Upload-Offset"); s != "" {
			if off, err := strconv.ParseInt(s, 10, 64); err == nil {
				res.Offset = off
			}
		}
		if resp.StatusCode == http.StatusOK && len(bytes.TrimSpace(b)) > 0 {
			var rb receiptBody
			if err := json.Unmarshal(b, &rb); err != nil {
				return res, fmt.Errorf("PATCH: the receipt is not JSON: %v", err)
			}
			res.Receipt = &rb
		}
		return res, nil
	case 460: // checksum mismatch: of this chunk, or of the whole file
		var re refusedError
		if json.Unmarshal(b, &re) == nil && (re.Declared != "" || re.Received != "") {
			return patchResult{}, &re
		}
		return patchResult{}, errChunkChecksum
	case http.StatusConflict:
		return patchResult{}, errOffset
	case http.StatusNotFound, http.StatusGone:
		return patchResult{}, errGone
	}
	return patchResult{}, &statusError{Op: "PATCH upload", Status: resp.StatusCode, Body: shortBody(b)}
}

// terminate deletes an upload the server refused (best effort: the server
// sweeps what is left).
func (c *client) terminate(ctx context.Context, uploadURL string) error {
	hdr := http.Header{}
	hdr.Set("Tus-Resumable", tusVersion)
	resp, err := c.do(ctx, http.MethodDelete, uploadURL, hdr, nil, 0)
	if err != nil {
		return err
	}
	readBody(resp)
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusGone {
		return &statusError{Op: "DELETE upload", Status: resp.StatusCode}
	}
	return nil
}

// uploadID is the last path element of an upload URL (the server's id).
func uploadID(uploadURL string) string {
	u, err := url.Parse(uploadURL)
	if err != nil {
		return ""
	}
	p := strings.TrimSuffix(u.Path, "/")
	return p[strings.LastIndex(p, "/")+1:]
}
