package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// Uploaded recordings (kind upload) are one object, the recorder's own
// file exactly as it was uploaded. /original serves those bytes; /media
// serves what a browser plays: a video file remuxed on the fly into a
// fragmented MP4 (Remuxer: the pictures and sound copied, not re-encoded),
// a sound or picture file as it is.

// ErrNotPlayable is what a Remuxer's error wraps when the file holds
// nothing it can copy into an MP4 or cannot be read as media at all.
var ErrNotPlayable = errors.New("not a video file that can be played")

// Remuxer copies a stored video file into a fragmented MP4, stream copy,
// reading it through ranged reads (transcode.Remux in bodycam serve; nil
// in a build without FFmpeg). It returns the bytes written to w; when it
// fails having written none, the caller may still answer with an error.
type Remuxer interface {
	Remux(ctx context.Context, key string, size int64, w io.Writer) (int64, error)
}

// playKind is how /media serves an uploaded file.
type playKind int

const (
	playNone  playKind = iota // no playback copy: /original only
	playRemux                 // a container FFmpeg reads: remuxed to fMP4
	playAsIs                  // sound or a picture: the original bytes
)

// playback says how /media serves an uploaded file, by its object's
// extension (evidence.OriginalKey keeps the file's, lower-cased), and
// with which content type.
func playback(key string) (playKind, string) {
	switch ext := path.Ext(key); ext {
	case ".mp4", ".mov", ".m4v", ".3gp", ".3g2", ".mkv", ".avi", ".ts", ".mts", ".m2ts":
		return playRemux, "video/mp4"
	case ".m4a":
		return playRemux, "audio/mp4"
	case ".wav":
		return playAsIs, "audio/wav"
	case ".mp3":
		return playAsIs, "audio/mpeg"
	case ".aac":
		return playAsIs, "audio/aac"
	case ".amr":
		return playAsIs, "audio/amr"
	case ".ogg", ".opus", ".oga":
		return playAsIs, "audio/ogg"
	case ".flac":
		return playAsIs, "audio/flac"
	case ".jpg", ".jpeg":
		return playAsIs, "image/jpeg"
	case ".png":
		return playAsIs, "image/png"
	}
	return playNone, ""
}

// originalType is the content type /original answers with: the file's
// own when known, else bytes.
func originalType(key string) string {
	if _, t := playback(key); t != "" && !strings.HasPrefix(t, "video/") && t != "audio/mp4" {
		return t
	}
	switch path.Ext(key) {
	case ".mp4", ".m4v":
		return "video/mp4"
	case ".m4a":
		return "audio/mp4"
	case ".mov":
		return "video/quicktime"
	case ".3gp":
		return "video/3gpp"
	case ".avi":
		return "video/x-msvideo"
	case ".mkv":
		return "video/x-matroska"
	case ".ts", ".mts", ".m2ts":
		return "video/mp2t"
	}
	return "application/octet-stream"
}

// viewed records a viewing of rec in the custody ledger, once per user,
// recording, window and action every viewingWindow (a seeking player's
// Range requests are one viewing). It answers 503 itself and returns
// false when the event cannot be recorded: no record, no footage.
func (s *Server) viewed(w http.ResponseWriter, r *http.Request, rec evidence.Recording, action, window, detail string) bool {
	now := time.Now()
	key := viewingKey{user: userOf(r), recording: rec.ID, action: action, window: window}
	if s.views.recorded(key, now) {
		return true
	}
	if rg := r.Header.Get("Range"); rg != "" {
		detail += ", Range " + rg
	}
	if err := s.record(r, evidence.CustodyEvent{Action: action, TargetKind: "recording", TargetID: rec.ID, Detail: detail}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the access cannot be recorded in the custody ledger now; refused")
		return false
	}
	s.views.remember(key, now)
	return true
}

// originalOf returns an uploaded recording's one object, answering
// itself when there is none to serve.
func (s *Server) originalOf(w http.ResponseWriter, r *http.Request, rec evidence.Recording) (evidence.Segment, bool) {
	if !rec.DeletedAt.IsZero() {
		writeError(w, http.StatusGone, "the media of recording "+rec.ID+" was deleted by retention on "+
			rec.DeletedAt.Format(time.RFC3339)+"; its signed tombstone is the last link of its chain (verify shows it)")
		return evidence.Segment{}, false
	}
	segs, err := s.o.Catalog.Segments(r.Context(), rec.ID)
	if err != nil {
		s.internal(w, r, err)
		return evidence.Segment{}, false
	}
	for _, sg := range segs {
		if sg.Kind == evidence.KindOriginal {
			return sg, true
		}
	}
	writeError(w, http.StatusNotFound, "recording "+rec.ID+" has no original file (it is a stream recording: GET /media)")
	return evidence.Segment{}, false
}

// serveObject serves one stored object with Range support: each range
// read from its offset (GetRange), none of the rest.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, sg evidence.Segment, name string, modified time.Time) {
	rd := &objectsReader{ctx: r.Context(), store: s.o.Store, segs: []evidence.Segment{sg}, total: sg.Size}
	if rs, h, ok := normalizeRange(r.Header.Get("Range"), rd.total); ok {
		rd.ranges = rs
		if h == "" {
			r.Header.Del("Range")
		} else {
			r.Header.Set("Range", h)
		}
	}
	http.ServeContent(w, r, name, modified, rd)
	rd.Close()
}

// contentDisposition is a Content-Disposition header naming a file: an
// ASCII fallback in quotes (quotes, backslashes and control characters
// replaced) and the exact name in RFC 8187 form (filename*).
func contentDisposition(kind, name string) string {
	var ascii strings.Builder
	for _, c := range name {
		switch {
		case c < 0x20 || c == 0x7f || c > 0x7e || c == '"' || c == '\\' || c == '%' || c == ';':
			ascii.WriteByte('_')
		default:
			ascii.WriteRune(c)
		}
	}
	h := mime.FormatMediaType(kind, map[string]string{"filename": name})
	if h == "" || strings.Contains(h, "*=") {
		// Not plain ASCII: mime gives filename* only; add the fallback.
		return fmt.Sprintf(`%s; filename="%s"; filename*=UTF-8''%s`, kind, ascii.String(), pathEscape(name))
	}
	return h
}

// pathEscape percent-encodes all but RFC 8187's attr-chars.
func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// fileName is the name the recorder gave an uploaded file, from its
// upload, or the recording's id and the object's extension.
func (s *Server) fileName(ctx context.Context, rec evidence.Recording, sg evidence.Segment) string {
	if ups, err := s.o.Catalog.UploadsOfRecordings(ctx, []string{rec.ID}); err == nil {
		if u, ok := ups[rec.ID]; ok && evidence.ValidateFileName(u.FileName) == nil {
			return u.FileName
		}
	}
	return rec.ID + path.Ext(sg.Key)
}

// original serves an uploaded recording's file, the exact stored bytes,
// with Range support, as a download named as the recorder named it. Each
// download is a custody event.
func (s *Server) original(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	sg, ok := s.originalOf(w, r, rec)
	if !ok {
		return
	}
	name := s.fileName(r.Context(), rec, sg)
	if !s.takeGrant(w, r, evidence.CopyOfRecording, rec.ID) {
		return
	}
	if !s.viewed(w, r, rec, evidence.ActionDownload, "original", "original file "+sg.Key+" ("+name+") download") {
		return
	}
	w.Header().Set("Content-Type", originalType(sg.Key))
	w.Header().Set("Content-Disposition", contentDisposition("attachment", name))
	s.serveObject(w, r, sg, name, rec.EndedAt)
}

// uploadMedia is /media of an uploaded recording: a video file remuxed
// into a fragmented MP4, streamed (no Range: the copy is made as it is
// sent); a sound file or picture as stored, with Range.
func (s *Server) uploadMedia(w http.ResponseWriter, r *http.Request, rec evidence.Recording) {
	sg, ok := s.originalOf(w, r, rec)
	if !ok {
		return
	}
	kind, ctype := playback(sg.Key)
	switch {
	case kind == playNone:
		writeError(w, http.StatusUnsupportedMediaType, "recording "+rec.ID+" is a file ("+path.Ext(sg.Key)+") that cannot be played in a browser; GET /api/v1/recordings/"+rec.ID+"/original for the file")
		return
	case kind == playRemux && s.o.Remux == nil:
		writeError(w, http.StatusNotImplemented, "this server was built without FFmpeg and cannot remux recording "+rec.ID+" for playback; GET /api/v1/recordings/"+rec.ID+"/original for the file")
		return
	}
	action := evidence.ActionPlayback
	disposition := "inline"
	if r.URL.Query().Get("download") != "" {
		action, disposition = evidence.ActionDownload, "attachment"
	}
	detail := "media " + action + " of uploaded file " + sg.Key
	if kind == playRemux {
		detail += " (remuxed to fragmented MP4 for playback)"
	}
	if action == evidence.ActionDownload && !s.takeGrant(w, r, evidence.CopyOfRecording, rec.ID) {
		return
	}
	if !s.viewed(w, r, rec, action, "upload", detail) {
		return
	}
	if kind == playAsIs {
		name := s.fileName(r.Context(), rec, sg)
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", contentDisposition(disposition, name))
		s.serveObject(w, r, sg, name, rec.EndedAt)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", contentDisposition(disposition, rec.ID+".mp4"))
	h.Set("Accept-Ranges", "none")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	n, err := s.o.Remux.Remux(r.Context(), sg.Key, sg.Size, w)
	switch {
	case err == nil:
	case n == 0 && errors.Is(err, ErrNotPlayable):
		h.Del("Content-Disposition")
		h.Del("Accept-Ranges")
		writeError(w, http.StatusUnsupportedMediaType, "recording "+rec.ID+" cannot be played: "+err.Error()+"; GET /api/v1/recordings/"+rec.ID+"/original for the file")
	case r.Context().Err() != nil:
		// The viewer went away.
	case n == 0:
		h.Del("Content-Disposition")
		h.Del("Accept-Ranges")
		s.internal(w, r, err)
	default:
		// Part of the copy is out: break the connection so that the
		// player sees a failed download, not a short file.
		s.o.Log.Error("remux failed", "recording", rec.ID, "key", sg.Key, "sent", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}
