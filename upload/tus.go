package upload

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	tus "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	xslog "golang.org/x/exp/slog"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// chunkDir (in the spool) holds PATCH bodies that carry an Upload-Checksum
// while they are checked: a chunk is appended only once its bytes match.
const chunkDir = ".chunks"

type ctxKey int

const (
	whoKey ctxKey = iota
	checksumKey
	controllerKey
)

// The tus checksum extension's answers (tusd has none of its own).
var (
	errChecksumMismatch = tus.NewError("ERR_CHECKSUM_MISMATCH", "the chunk's bytes do not match its Upload-Checksum; it was not kept", 460)
	errChecksumAlgo     = tus.NewError("ERR_UNSUPPORTED_CHECKSUM_ALGORITHM", "Upload-Checksum: unsupported algorithm (sha1, md5 and sha256 are)", http.StatusBadRequest)
	errChecksumHeader   = tus.NewError("ERR_INVALID_CHECKSUM", "Upload-Checksum must be \"<algorithm> <base64 digest>\"", http.StatusBadRequest)
	errNoUpload         = tus.NewError("ERR_UPLOAD_NOT_FOUND", "no such upload", http.StatusNotFound)
)

// tusCORS lets a tus client in another origin's page (Uppy or
// tus-js-client on a workstation's own web page) upload with a dock's
// bearer token: any origin, never with credentials, so a page can only
// use a token it already holds — the console's session cookie is never
// sent cross-origin (and the API refuses cross-site cookie use anyway).
// It allows and exposes what the checksum extension and bodycam's answer
// add to tusd's defaults.
var tusCORS = func() tus.CorsConfig {
	c := tus.DefaultCorsConfig
	c.AllowCredentials = false
	c.AllowHeaders += ", Upload-Checksum"
	c.ExposeHeaders += ", Upload-Expires, Tus-Checksum-Algorithm, Bodycam-Recording"
	return c
}()

// corsHeaders sets, for a request from a page (it has an Origin), the
// headers tusd's own answers carry, on the answers bodycam writes itself
// (a stored upload, a refused checksum), so a browser client reads them.
func corsHeaders(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || r.Method == http.MethodOptions {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", tusCORS.ExposeHeaders)
}

func (s *Server) newTus() error {
	s.locker = memorylocker.New()
	composer := tus.NewStoreComposer()
	st := spoolStore{s}
	composer.UseCore(st)
	composer.UseTerminater(st)
	s.locker.UseIn(composer)
	h, err := tus.NewUnroutedHandler(tus.Config{
		StoreComposer: composer, MaxSize: s.o.MaxSize, BasePath: s.o.BasePath, NetworkTimeout: s.o.NetworkTimeout,
		DisableDownload: true, DisableConcatenation: true,
		Cors:                       &tusCORS,
		Logger:                     xslog.New(quiet{s.o.Log.Handler()}),
		PreUploadCreateCallback:    s.preCreate,
		PreFinishResponseCallback:  s.preFinish,
		PreUploadTerminateCallback: s.preTerminate,
	})
	if err != nil {
		return fmt.Errorf("tus: %w", err)
	}
	s.tus = h
	s.route = h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// tusd's handlers take the path below the base path (the upload's
		// id), as its own router's StripPrefix gives it.
		u := *r.URL
		u.Path = strings.TrimPrefix(strings.TrimPrefix(u.Path, strings.TrimSuffix(s.o.BasePath, "/")), "/")
		u.RawPath = ""
		r2 := *r
		r2.URL = &u
		r = &r2
		switch r.Method {
		case http.MethodPost:
			h.PostFile(w, r)
		case http.MethodHead:
			h.HeadFile(w, r)
		case http.MethodPatch:
			h.PatchFile(w, r)
		case http.MethodDelete:
			h.DelFile(w, r)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	return nil
}

// ServeTus serves the tus endpoints (POST to create, HEAD, PATCH, DELETE
// on an upload, OPTIONS) for who, a dock the API authenticated (nobody for
// OPTIONS).
func (s *Server) ServeTus(w http.ResponseWriter, r *http.Request, who evidence.User) {
	// The override (for clients that cannot PATCH) would route around the
	// checks below; tus clients worth the name do not need it.
	r.Header.Del("X-HTTP-Method-Override")
	corsHeaders(w, r)
	ctx := context.WithValue(r.Context(), whoKey, who)
	ctx = context.WithValue(ctx, controllerKey, http.NewResponseController(w))
	if r.Method == http.MethodOptions {
		s.route.ServeHTTP(advertise{w}, r.WithContext(ctx))
		return
	}
	if h := r.Header.Get("Upload-Checksum"); h != "" {
		c, err := parseChecksum(h)
		if err != nil {
			s.m.refusals.WithLabelValues("checksum").Inc()
			tusError(w, r, err)
			return
		}
		ctx = context.WithValue(ctx, checksumKey, c)
	}
	r = r.WithContext(ctx)
	if r.Method == http.MethodPost {
		if n, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64); err == nil && n > s.o.MaxSize {
			s.m.refusals.WithLabelValues("too_large").Inc()
		}
		s.route.ServeHTTP(w, r)
		return
	}
	id := path.Base(r.URL.Path)
	rec, err := s.o.Catalog.Upload(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) || (err == nil && rec.Dock != who.ID) {
		tusError(w, r, errNoUpload) // another dock's is as good as none
		return
	} else if err != nil {
		tusError(w, r, err)
		return
	}
	if rec.State == catalog.UploadStored {
		// Its partial is gone: say it is whole, and give the receipt again
		// to a PATCH that finished it but lost the answer.
		w.Header().Set("Tus-Resumable", "1.0.0")
		w.Header().Set("Upload-Offset", strconv.FormatInt(rec.Size, 10))
		w.Header().Set("Upload-Length", strconv.FormatInt(rec.Size, 10))
		w.Header().Set("Cache-Control", "no-store")
		switch r.Method {
		case http.MethodHead:
			w.WriteHeader(http.StatusOK)
		case http.MethodPatch:
			// Its sealing (manifest, receipt) may still be under way, by
			// the request that stored it or by Run: one at a time.
			unlock, err := s.finishing(ctx, id, true)
			if err != nil {
				tusError(w, r, err)
				return
			}
			res, err := s.finish(ctx, rec)
			unlock()
			if err != nil {
				tusError(w, r, err)
				return
			}
			w.Header().Set("Bodycam-Recording", res.Receipt.RecordingID)
			writeJSON(w, http.StatusOK, res.body())
		default:
			writeJSON(w, http.StatusConflict, map[string]string{"error": "upload " + id + " is stored (recording " + rec.RecordingID + "); there is nothing to delete"})
		}
		return
	}
	s.route.ServeHTTP(w, r)
}

// tusError answers err as tusd would.
func tusError(w http.ResponseWriter, r *http.Request, err error) {
	var te tus.Error
	if !errors.As(err, &te) {
		te = tus.NewError("ERR_INTERNAL_SERVER_ERROR", err.Error(), http.StatusInternalServerError)
	}
	w.Header().Set("Tus-Resumable", "1.0.0")
	for k, v := range te.HTTPResponse.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(te.HTTPResponse.StatusCode)
	if r.Method != http.MethodHead {
		io.WriteString(w, te.HTTPResponse.Body)
	}
}

// jsonError is a tus error answered with a JSON body.
func jsonError(code int, errCode string, body map[string]string) tus.Error {
	b, _ := json.Marshal(body)
	return tus.Error{ErrorCode: errCode, Message: body["error"], HTTPResponse: tus.HTTPResponse{
		StatusCode: code, Body: string(b) + "\n", Header: tus.HTTPHeader{"Content-Type": "application/json"}}}
}

func refuse(code int, msg string) tus.Error {
	return jsonError(code, "ERR_BODYCAM_REFUSED", map[string]string{"error": msg})
}

// preCreate checks a creation's metadata and who asks, counts it against
// the spool's bound, and writes the upload's row and custody event, all
// before anything is in the spool.
func (s *Server) preCreate(hook tus.HookEvent) (tus.HTTPResponse, tus.FileInfoChanges, error) {
	ctx := hook.Context
	who, _ := ctx.Value(whoKey).(evidence.User)
	u, reason, err := s.validate(ctx, who, hook.Upload.MetaData, hook.Upload.Size)
	if err != nil {
		s.m.refusals.WithLabelValues(reason).Inc()
		s.o.Log.Info("upload refused at creation", "dock", who.ID, "why", err.Error(), "remote", hook.HTTPRequest.RemoteAddr)
		return tus.HTTPResponse{}, tus.FileInfoChanges{}, err
	}
	u.ID = time.Now().UTC().Format("20060102T150405Z") + "-" + randHex(8)
	u.RemoteAddr = hook.HTTPRequest.RemoteAddr
	if !s.reserve(u.ID, u.Size) {
		s.m.refusals.WithLabelValues("spool_full").Inc()
		return tus.HTTPResponse{}, tus.FileInfoChanges{}, refuse(http.StatusInsufficientStorage,
			fmt.Sprintf("the upload spool is full (unfinished uploads may declare %d bytes together); try again later", s.o.SpoolMax))
	}
	if err := s.o.Catalog.CreateUpload(ctx, u); err != nil {
		s.forget(ctx, u.ID)
		return tus.HTTPResponse{}, tus.FileInfoChanges{}, fmt.Errorf("catalog: %w", err)
	}
	s.record(ctx, evidence.CustodyEvent{Actor: who.ID, Role: string(who.Role), Remote: u.RemoteAddr, Action: ActionStarted,
		TargetKind: "upload", TargetID: u.ID, Detail: uploadDetail(u)})
	s.o.Log.Info("upload started", "upload", u.ID, "dock", who.ID, "device", u.DeviceID, "file", u.FileName, "size", u.Size)
	return tus.HTTPResponse{}, tus.FileInfoChanges{ID: u.ID}, nil
}

// validate reads a creation's metadata (see the API description) into an
// Upload, or says why not (and the refusal's metric label).
func (s *Server) validate(ctx context.Context, who evidence.User, meta tus.MetaData, size int64) (evidence.Upload, string, error) {
	bad := func(format string, args ...any) (evidence.Upload, string, error) {
		return evidence.Upload{}, "metadata", refuse(http.StatusBadRequest, fmt.Sprintf(format, args...))
	}
	u := evidence.Upload{Dock: who.ID, Size: size, DeviceID: meta["device"], FileName: meta["filename"],
		SHA256: strings.ToLower(meta["sha256"]), TimeSource: evidence.TimeReceived}
	if u.FileName == "" {
		u.FileName = meta["name"] // tus-js-client's and Uppy's
	}
	if u.DeviceID == "" {
		return bad("Upload-Metadata: device is required (the recorder's device id)")
	}
	if err := evidence.ValidateDeviceID(u.DeviceID); err != nil {
		return bad("Upload-Metadata: device: %v", err)
	}
	if u.FileName == "" {
		return bad("Upload-Metadata: filename (or name) is required")
	}
	if err := evidence.ValidateFileName(u.FileName); err != nil {
		return bad("Upload-Metadata: filename: %v", err)
	}
	if b, err := hex.DecodeString(u.SHA256); err != nil || len(b) != sha256.Size {
		return bad("Upload-Metadata: sha256 is required: the file's SHA-256, 64 hex digits")
	}
	if size <= 0 {
		return bad("Upload-Length: an empty file is not a recording")
	}
	for _, t := range []struct {
		key string
		to  *time.Time
	}{{"started_at", &u.StartedAt}, {"ended_at", &u.EndedAt}} {
		if v := meta[t.key]; v != "" {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return bad("Upload-Metadata: %s: an RFC 3339 time is required (%v)", t.key, err)
			}
			*t.to = at.UTC()
		}
	}
	if !u.StartedAt.IsZero() {
		u.TimeSource = evidence.TimeGiven
	} else if !u.EndedAt.IsZero() {
		return bad("Upload-Metadata: ended_at without started_at")
	}
	if !u.EndedAt.IsZero() && u.EndedAt.Before(u.StartedAt) {
		return bad("Upload-Metadata: ended_at is before started_at")
	}
	switch strings.ToLower(meta["important"]) {
	case "", "0", "false":
	case "1", "true":
		u.Important = true
	default:
		return bad("Upload-Metadata: important must be 1, true, 0 or false")
	}
	dev, err := s.o.Catalog.Device(ctx, u.DeviceID)
	forbidden := refuse(http.StatusForbidden, "device "+u.DeviceID+" is not one this dock may upload for")
	if errors.Is(err, catalog.ErrNotFound) {
		return evidence.Upload{}, "forbidden", forbidden // as a device of another unit: ids are not probed
	} else if err != nil {
		return evidence.Upload{}, "catalog", fmt.Errorf("catalog: %w", err)
	}
	unit := ""
	if dev.OfficerID != "" {
		if o, err := s.o.Catalog.User(ctx, dev.OfficerID); err == nil {
			unit = o.Unit
		} else if !errors.Is(err, catalog.ErrNotFound) {
			return evidence.Upload{}, "catalog", fmt.Errorf("catalog: %w", err)
		}
	}
	if !evidence.MayUpload(who, unit) {
		return evidence.Upload{}, "forbidden", forbidden
	}
	u.OfficerID = dev.OfficerID
	if o := meta["officer"]; o != "" && o != dev.OfficerID {
		// Who footage belongs to decides who may read it: a dock names only
		// an active officer it could upload for (of its unit, when it has
		// one), never a user of another unit or role.
		if err := evidence.ValidateUserID(o); err != nil {
			return bad("Upload-Metadata: officer: %v", err)
		}
		ou, err := s.o.Catalog.User(ctx, o)
		if errors.Is(err, catalog.ErrNotFound) {
			return bad("Upload-Metadata: officer %s: no such user", o)
		} else if err != nil {
			return evidence.Upload{}, "catalog", fmt.Errorf("catalog: %w", err)
		}
		if ou.Role != evidence.RoleOfficer || ou.Disabled {
			return bad("Upload-Metadata: officer %s is not an active officer", o)
		}
		if !evidence.MayUpload(who, ou.Unit) {
			return evidence.Upload{}, "forbidden", refuse(http.StatusForbidden, "officer "+o+" is not of this dock's unit")
		}
		u.OfficerID = o
	}
	if g := meta["gps"]; g != "" {
		// The recorder's track (from its sidecar), as the dock read it:
		// a JSON array of {at, lat, lon}, bounded like every header.
		if len(g) > maxGPS {
			return bad("Upload-Metadata: gps: at most %d bytes", maxGPS)
		}
		if err := json.Unmarshal([]byte(g), &u.GPS); err != nil {
			return bad("Upload-Metadata: gps: a JSON array of {\"at\", \"lat\", \"lon\"} is required (%v)", err)
		}
		for _, p := range u.GPS {
			if p.Lat < -90 || p.Lat > 90 || p.Lon < -180 || p.Lon > 180 {
				return bad("Upload-Metadata: gps: a point out of range (lat %g, lon %g)", p.Lat, p.Lon)
			}
		}
	}
	return u, "", nil
}

// maxGPS bounds the gps metadata (a track of some hundreds of points).
const maxGPS = 32 << 10

// preFinish finishes an upload whose last byte just arrived, and answers
// the request that brought it: the receipt, or 460 with both hashes.
func (s *Server) preFinish(hook tus.HookEvent) (tus.HTTPResponse, error) {
	if rc, ok := hook.Context.Value(controllerKey).(*http.ResponseController); ok {
		// Hashing and storing a large file takes a while (minutes for
		// gigabytes on S3); the answer must still get out.
		rc.SetWriteDeadline(time.Now().Add(time.Hour))
		// And the body is read whole: the read deadline tusd set for it
		// (NetworkTimeout after the last read) would now bound net/http's
		// wait for the connection's next request, and when it passes
		// net/http cancels the connection's context, from which every
		// later request on the connection takes its own (golang/go#70834):
		// the dock's next requests on it all failed, 500 "context
		// canceled". No deadline while finishing; net/http sets its own
		// for the next request.
		rc.SetReadDeadline(time.Time{})
	}
	// A client that goes away does not stop the finishing half way.
	ctx := context.WithoutCancel(hook.Context)
	id := hook.Upload.ID
	// Run's sweep may have found the last byte in first: it finishes (or
	// has finished) the upload; this waits for it, then reads where it got.
	unlock, err := s.finishing(ctx, id, true)
	if err != nil {
		return tus.HTTPResponse{}, err
	}
	defer unlock()
	rec, err := s.o.Catalog.Upload(ctx, id)
	if err != nil {
		return tus.HTTPResponse{}, fmt.Errorf("catalog: %w", err)
	}
	if rec.State == catalog.UploadAbandoned {
		if res, ok := s.duplicateOf(ctx, rec); ok {
			return s.answer(hook, res), nil
		}
		return tus.HTTPResponse{}, refuse(http.StatusConflict, "upload "+id+" is abandoned: "+rec.Reason)
	}
	res, err := s.finish(ctx, rec)
	if err != nil {
		s.o.Log.Error("finishing an upload failed; it stays in the spool and is retried", "upload", id, "err", err)
		return tus.HTTPResponse{}, jsonError(http.StatusInternalServerError, "ERR_BODYCAM_FINISH", map[string]string{
			"error": "the file arrived whole but is not stored yet (" + err.Error() + "); the server retries: ask GET " + s.o.BasePath + id + "/receipt"})
	}
	if res.Refused {
		return tus.HTTPResponse{}, jsonError(460, "ERR_BODYCAM_SHA256_MISMATCH", map[string]string{
			"error":           "the file's SHA-256 does not match the one declared: refused, nothing stored; DELETE this upload and send the file again",
			"declared_sha256": res.Declared, "received_sha256": res.Received})
	}
	return s.answer(hook, res), nil
}

// answer is the finishing request's answer carrying a receipt.
func (s *Server) answer(hook tus.HookEvent, res result) tus.HTTPResponse {
	code := http.StatusOK
	if hook.HTTPRequest.Method == http.MethodPost {
		code = http.StatusCreated
	}
	b, _ := json.MarshalIndent(res.body(), "", "  ")
	return tus.HTTPResponse{StatusCode: code, Body: string(b) + "\n",
		Header: tus.HTTPHeader{"Content-Type": "application/json", "Bodycam-Recording": res.Receipt.RecordingID}}
}

// preTerminate lets a dock delete its partial upload (one being received,
// or refused), with a custody event; not one being finished.
func (s *Server) preTerminate(hook tus.HookEvent) (tus.HTTPResponse, error) {
	ctx := hook.Context
	who, _ := ctx.Value(whoKey).(evidence.User)
	id := hook.Upload.ID
	unlock, err := s.finishing(ctx, id, false)
	if err != nil {
		return tus.HTTPResponse{}, refuse(http.StatusConflict, "upload "+id+" is being finished")
	}
	defer unlock()
	rec, err := s.o.Catalog.Upload(ctx, id)
	if err != nil {
		return tus.HTTPResponse{}, fmt.Errorf("catalog: %w", err)
	}
	if rec.State == catalog.UploadFinishing || rec.State == catalog.UploadStored {
		return tus.HTTPResponse{}, refuse(http.StatusConflict, "upload "+id+" is "+string(rec.State))
	}
	reason := fmt.Sprintf("deleted by its dock after %d of %d bytes", hook.Upload.Offset, rec.Size)
	if rec.State == catalog.UploadRefused {
		reason += " (" + rec.Reason + ")"
	}
	if err := s.o.Catalog.SetUploadState(ctx, id, catalog.UploadAbandoned, reason, rec.ReceivedSHA256); err != nil {
		return tus.HTTPResponse{}, fmt.Errorf("catalog: %w", err)
	}
	s.m.outcome("abandoned")
	s.record(ctx, evidence.CustodyEvent{Actor: who.ID, Role: string(who.Role), Remote: hook.HTTPRequest.RemoteAddr,
		Action: ActionAbandoned, TargetKind: "upload", TargetID: id, Detail: uploadDetail(rec.Upload) + "; " + reason})
	return tus.HTTPResponse{}, nil
}

// spoolStore is tusd's filestore with what bodycam adds: each upload's
// bytes counted, and a PATCH with Upload-Checksum appended only once its
// bytes match.
type spoolStore struct{ s *Server }

func (st spoolStore) NewUpload(ctx context.Context, info tus.FileInfo) (tus.Upload, error) {
	up, err := st.s.files.NewUpload(ctx, info)
	if err != nil {
		// The catalog has its row: say why it will never get a byte.
		st.s.o.Catalog.SetUploadState(context.WithoutCancel(ctx), info.ID, catalog.UploadAbandoned, "the spool could not take it: "+err.Error(), "")
		st.s.forget(ctx, info.ID)
		return nil, err
	}
	return &spoolUpload{Upload: up, s: st.s, id: info.ID}, nil
}

func (st spoolStore) GetUpload(ctx context.Context, id string) (tus.Upload, error) {
	up, err := st.s.files.GetUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	return &spoolUpload{Upload: up, s: st.s, id: id}, nil
}

func (st spoolStore) AsTerminatableUpload(up tus.Upload) tus.TerminatableUpload {
	return terminator{up.(*spoolUpload)}
}

type terminator struct{ u *spoolUpload }

func (t terminator) Terminate(ctx context.Context) error { return t.u.s.forget(ctx, t.u.id) }

type spoolUpload struct {
	tus.Upload
	s  *Server
	id string
}

func (u *spoolUpload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	c, ok := ctx.Value(checksumKey).(checksum)
	if !ok {
		n, err := u.Upload.WriteChunk(ctx, offset, src)
		u.s.received(u.id, n)
		return n, err
	}
	// To disk first, never to memory: a chunk may be the whole file.
	f, err := os.CreateTemp(filepath.Join(u.s.o.Dir, chunkDir), u.id+"-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := c.new()
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		return 0, err // a chunk cut short cannot be checked: none of it is kept
	}
	if !bytes.Equal(h.Sum(nil), c.sum) {
		u.s.m.refusals.WithLabelValues("checksum").Inc()
		u.s.o.Log.Info("chunk refused: its bytes do not match its Upload-Checksum", "upload", u.id, "offset", offset, "algorithm", c.algo)
		return 0, errChecksumMismatch
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := u.Upload.WriteChunk(ctx, offset, f)
	u.s.received(u.id, n)
	return n, err
}

// checksum is a request's Upload-Checksum.
type checksum struct {
	algo string
	sum  []byte
}

func (c checksum) new() hash.Hash {
	switch c.algo {
	case "sha1":
		return sha1.New()
	case "md5":
		return md5.New()
	}
	return sha256.New()
}

func parseChecksum(h string) (checksum, error) {
	algo, b64, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok {
		return checksum{}, errChecksumHeader
	}
	c := checksum{algo: strings.ToLower(algo)}
	want := map[string]int{"sha1": sha1.Size, "md5": md5.Size, "sha256": sha256.Size}[c.algo]
	if want == 0 {
		return checksum{}, errChecksumAlgo
	}
	sum, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil || len(sum) != want {
		return checksum{}, errChecksumHeader
	}
	c.sum = sum
	return c, nil
}

// advertise adds the checksum extension to tusd's answer to OPTIONS.
type advertise struct{ http.ResponseWriter }

func (a advertise) WriteHeader(code int) {
	h := a.Header()
	if e := h.Get("Tus-Extension"); e != "" {
		h.Set("Tus-Extension", e+",checksum")
		h.Set("Tus-Checksum-Algorithm", "sha1,md5,sha256")
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a advertise) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// quiet hands tusd's warnings and errors to our logger (tusd logs every
// request and chunk at info, and with golang.org/x/exp/slog).
type quiet struct{ h slog.Handler }

func (q quiet) Enabled(ctx context.Context, l xslog.Level) bool {
	return l >= xslog.LevelWarn && q.h.Enabled(ctx, slog.Level(l))
}

func (q quiet) Handle(ctx context.Context, r xslog.Record) error {
	out := slog.NewRecord(r.Time, slog.Level(r.Level), "tus: "+r.Message, r.PC)
	r.Attrs(func(a xslog.Attr) bool {
		out.AddAttrs(slog.Any(a.Key, a.Value.Any()))
		return true
	})
	return q.h.Handle(ctx, out)
}

func (q quiet) WithAttrs(as []xslog.Attr) xslog.Handler {
	out := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		out = append(out, slog.Any(a.Key, a.Value.Any()))
	}
	return quiet{q.h.WithAttrs(out)}
}

func (q quiet) WithGroup(n string) xslog.Handler { return quiet{q.h.WithGroup(n)} }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
