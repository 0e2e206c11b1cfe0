// Package derive makes the copies derived from recordings that durable
// jobs (package jobs) ask for: a poster per recording, per-segment
// thumbnails and a timeline sprite (thumbs.go); proxies, clips and
// redacted copies later. Each is stored write-once
// outside the device chain (derived/<device>/<recording>/...), with its
// SHA-256 and a provenance record (the source objects and their SHA-256
// from the catalog, the operation, every parameter, the FFmpeg and bodycam
// versions, who asked, when, the job) signed as manifests are (seal), and
// recorded in the custody ledger before the job completes. The originals
// are only read.
//
// Every step is idempotent: a job run again (after a crash, a lost lease,
// an admin's rerun) finds the object an earlier attempt stored and keeps
// it, so there is never a second copy of one derived object.
package derive

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/jobs"
	"github.com/bodycam/bodycam/seal"
)

// KindPoster is the job (and derived object) kind of a recording's poster.
const KindPoster = "poster"

// Catalog is what deriving reads of the catalog.
type Catalog interface {
	Recording(ctx context.Context, id string) (evidence.Recording, error)
	Segments(ctx context.Context, recordingID string) ([]evidence.Segment, error)
}

// Store is the object store, read in ranges and written once.
type Store interface {
	seal.Store
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// Custody records custody events (custody.Ledger).
type Custody interface {
	Record(ctx context.Context, e evidence.CustodyEvent) error
}

// Object is a source object, by key and size.
type Object struct {
	Key  string
	Size int64
}

// PictureInfo says what a picture is.
type PictureInfo struct {
	Width, Height             int
	SourceWidth, SourceHeight int
	Codec                     string
	FrameAt                   time.Duration
}

// Picturer decodes the frame at at of objects (read in order as one file)
// to a JPEG width wide (transcode.Picture). An error another attempt cannot
// cure (no video) is jobs.Permanent.
type Picturer func(ctx context.Context, src Store, objects []Object, at time.Duration, width int) ([]byte, PictureInfo, error)

// Options configure a Deriver.
type Options struct {
	Catalog Catalog
	Store   Store
	Signer  seal.Signer
	Custody Custody
	Holds   seal.Holds // nil: no legal holds
	// Picture makes pictures; nil (a build without FFmpeg): no poster
	// handler, and such jobs wait for a node that has one.
	Picture Picturer
	// Frames takes frames (thumbnails, sprites); nil: no such handlers.
	Frames Framer
	// Render makes renditions (proxies, clips); nil: no such handlers.
	Render Renderer
	// TempDir holds renditions while they are made ("": the system's).
	TempDir string
	// Version is bodycam's, FFmpeg FFmpeg's (transcode.FFmpegVersion):
	// both go into every provenance record.
	Version, FFmpeg string
	// Pause, for tests only (a kill -9 mid-job), is called after a derived
	// object is stored and before its provenance record is written.
	Pause func(ctx context.Context)
	Log   *slog.Logger
}

// Deriver holds the job handlers.
type Deriver struct{ o Options }

// New makes a Deriver.
func New(o Options) *Deriver {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Deriver{o: o}
}

// Handlers are the job handlers this build has, by kind.
func (d *Deriver) Handlers() map[string]jobs.Handler {
	h := map[string]jobs.Handler{}
	if d.o.Picture != nil {
		h[KindPoster] = d.Poster
	}
	if d.o.Frames != nil {
		h[KindThumbnails] = d.Thumbnails
		h[KindSprite] = d.Sprite
	}
	if d.o.Render != nil {
		h[KindProxy] = d.Proxy
		h[KindClip] = d.Clip
		h[KindRedaction] = d.Redaction
	}
	return h
}

// PosterParams are a poster job's parameters.
type PosterParams struct {
	AtSeconds float64 `json:"at_seconds"` // into the recording (its first video frame at or after)
	Width     int     `json:"width"`      // of the JPEG (even, 16 to 3840)
}

// DefaultPoster is the poster made of every closed recording.
var DefaultPoster = PosterParams{AtSeconds: 0, Width: 640}

// Rules are the jobs an outbox event causes (outbox.JobFeed): a closed
// recording gets its poster, its thumbnails (one per segment) and its
// timeline sprite. A review proxy costs ~13 times those (docs/benchmarks.md)
// and is made when someone asks to play one (api).
func Rules(e catalog.OutboxEvent) []catalog.JobRequest {
	if e.Kind != events.RecordingClosed {
		return nil
	}
	var d struct {
		RecordingID string `json:"recording_id"`
	}
	if json.Unmarshal(e.Data, &d) != nil || d.RecordingID == "" {
		return nil
	}
	p, _ := json.Marshal(DefaultPoster)
	t, _ := json.Marshal(DefaultThumbnails)
	sp, _ := json.Marshal(DefaultSprite)
	return []catalog.JobRequest{{Kind: KindPoster, Source: d.RecordingID, Params: p, RequestedBy: "system"},
		{Kind: KindThumbnails, Source: d.RecordingID, Params: t, RequestedBy: "system"},
		{Kind: KindSprite, Source: d.RecordingID, Params: sp, RequestedBy: "system"}}
}

// Source is a source object as a provenance record names it.
type Source struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Kind   string `json:"kind"` // init, media, original
}

// Output is the derived object as a provenance record names it.
type Output struct {
	Kind        string `json:"kind,omitempty"` // of several outputs: thumbnail, sprite, sprite_index
	Key         string `json:"key"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	// Of a thumbnail: the time of its frame in the recording, and the
	// media segment it shows the start of.
	FrameAtSeconds *float64 `json:"frame_at_seconds,omitempty"`
	Segment        string   `json:"segment,omitempty"`
}

// Provenance is the signed record of how a derived object was made.
type Provenance struct {
	Version     int               `json:"version"` // 1
	Kind        string            `json:"kind"`
	RecordingID string            `json:"recording_id"`
	DeviceID    string            `json:"device_id"`
	JobID       string            `json:"job_id"`
	Operation   string            `json:"operation"`
	Parameters  json.RawMessage   `json:"parameters"`
	Details     map[string]any    `json:"details,omitempty"`
	Sources     []Source          `json:"sources"`
	Output      *Output           `json:"output,omitempty"`  // the object made (a poster)
	Outputs     []Output          `json:"outputs,omitempty"` // the objects made (thumbnails, a sprite and its index)
	Software    map[string]string `json:"software"`
	RequestedBy string            `json:"requested_by"`
	CreatedAt   time.Time         `json:"created_at"`
	KeyID       string            `json:"signing_key_id"`
}

// DerivedKey is where a recording's derived object of kind with the given
// parameters (their hash) and extension is stored.
func DerivedKey(device, recording, kind, paramsHash, ext string) string {
	return fmt.Sprintf("derived/%s/%s/%s-%s.%s", device, recording, kind, paramsHash[:min(8, len(paramsHash))], ext)
}

// ProvenanceKey is where a derived object's provenance record is.
func ProvenanceKey(objectKey string) string {
	if i := strings.LastIndexByte(objectKey, '.'); i > strings.LastIndexByte(objectKey, '/') {
		objectKey = objectKey[:i]
	}
	return objectKey + ".provenance.json"
}

// Poster is the handler of poster jobs: the recording's first video frame
// at or after at_seconds, width wide, as a JPEG.
func (d *Deriver) Poster(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
	var p PosterParams
	dec := json.NewDecoder(bytes.NewReader(j.Params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, jobs.Permanent(fmt.Errorf("poster parameters: %v", err))
	}
	if p.Width < 16 || p.Width > 3840 || p.AtSeconds < 0 || p.AtSeconds > 1e6 || math.IsNaN(p.AtSeconds) {
		return nil, jobs.Permanent(fmt.Errorf("poster parameters: width 16 to 3840, at_seconds from 0"))
	}
	rec, err := d.o.Catalog.Recording(ctx, j.Source)
	if err != nil {
		return nil, err
	}
	segs, err := d.o.Catalog.Segments(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	at := time.Duration(p.AtSeconds * float64(time.Second))
	sources, objects, offset, err := pictureSources(rec, segs, at)
	if err != nil {
		return nil, err
	}
	jpeg, info, err := d.o.Picture(ctx, d.o.Store, objects, at-offset, p.Width)
	if err != nil {
		return nil, err
	}
	key := DerivedKey(rec.DeviceID, rec.ID, KindPoster, j.ParamsHash, "jpg")
	out, err := d.putOnce(ctx, key, jpeg, "image/jpeg")
	if err != nil {
		return nil, err
	}
	out.Width, out.Height = info.Width, info.Height
	if d.o.Pause != nil {
		d.o.Pause(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return d.finish(ctx, j, rec, KindPoster, out, sources,
		"the first video frame at or after at_seconds, decoded with FFmpeg and scaled (bicubic, display aspect kept) to width, written as a baseline JPEG (Go image/jpeg, quality 85)",
		map[string]any{"frame_at_seconds": info.FrameAt.Seconds() + offset.Seconds(), "codec": info.Codec,
			"source_width": info.SourceWidth, "source_height": info.SourceHeight})
}

// pictureSources picks what a picture at at is decoded from: a stream
// recording's init segment and the media segment holding at (the last one
// when at is past the end), or an uploaded recording's original file. It
// returns them as sources and objects, and where the objects start in the
// recording.
func pictureSources(rec evidence.Recording, segs []evidence.Segment, at time.Duration) ([]Source, []Object, time.Duration, error) {
	var init, media *evidence.Segment
	for i := range segs {
		s := &segs[i]
		switch s.Kind {
		case evidence.KindOriginal:
			return []Source{{Key: s.Key, SHA256: s.SHA256, Size: s.Size, Kind: string(s.Kind)}}, []Object{{Key: s.Key, Size: s.Size}}, 0, nil
		case evidence.KindInit:
			if init == nil {
				init = s
			}
		case evidence.KindMedia:
			if media == nil || s.StartedAt.Sub(rec.StartedAt) <= at {
				media = s
			}
		}
	}
	if init == nil || media == nil {
		return nil, nil, 0, jobs.Permanent(fmt.Errorf("recording %s has no stored video to take a picture of", rec.ID))
	}
	srcs := []Source{{Key: init.Key, SHA256: init.SHA256, Size: init.Size, Kind: string(init.Kind)}, {Key: media.Key, SHA256: media.SHA256, Size: media.Size, Kind: string(media.Kind)}}
	return srcs, []Object{{Key: init.Key, Size: init.Size}, {Key: media.Key, Size: media.Size}}, max(0, media.StartedAt.Sub(rec.StartedAt)), nil
}

// putOnce stores b at key unless an earlier attempt did: then the stored
// object is kept (one derived object, never two), and described.
func (d *Deriver) putOnce(ctx context.Context, key string, b []byte, contentType string) (Output, error) {
	sum := sha256.Sum256(b)
	return d.putFileOnce(ctx, key, bytes.NewReader(b), int64(len(b)), sum[:], contentType)
}

func hashObject(ctx context.Context, store Store, key string) (string, int64, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// finish writes the signed provenance record of out (one an earlier
// attempt wrote is kept), puts both on legal hold when the recording is in
// a case, records the custody event, and returns the derived row.
func (d *Deriver) finish(ctx context.Context, j catalog.Job, rec evidence.Recording, kind string, out Output, sources []Source,
	operation string, details map[string]any) ([]catalog.Derived, error) {
	out.Kind = kind
	return d.finishMany(ctx, j, rec, kind, ProvenanceKey(out.Key), []Output{out}, true, sources, operation, details,
		fmt.Sprintf("%s %s (sha256 %s, %d bytes)", kind, out.Key, out.SHA256, out.Size))
}

// finishMany is finish of a job's outputs (one provenance record, pkey,
// names them all; single: as "output", else as "outputs"), with one
// custody event saying what.
func (d *Deriver) finishMany(ctx context.Context, j catalog.Job, rec evidence.Recording, kind, pkey string, outs []Output, single bool,
	sources []Source, operation string, details map[string]any, what string) ([]catalog.Derived, error) {
	prov := Provenance{Version: 1, Kind: kind, RecordingID: rec.ID, DeviceID: rec.DeviceID, JobID: j.ID, Operation: operation,
		Parameters: j.Params, Details: details, Sources: sources,
		Software:    map[string]string{"bodycam": d.o.Version, "ffmpeg": d.o.FFmpeg},
		RequestedBy: j.RequestedBy, CreatedAt: time.Now().UTC(), KeyID: d.o.Signer.ID()}
	if single && len(outs) == 1 {
		o := outs[0]
		o.Kind = ""
		prov.Output = &o
	} else {
		prov.Outputs = outs
	}
	body, err := json.MarshalIndent(prov, "", "  ")
	if err != nil {
		return nil, err
	}
	stored, err := seal.WriteSigned(ctx, d.o.Store, d.o.Signer, pkey, append(body, '\n'))
	if err != nil {
		return nil, fmt.Errorf("provenance %s: %w", pkey, err)
	}
	if !bytes.Equal(stored, append(body, '\n')) {
		d.o.Log.Info("derive: the provenance record an earlier attempt wrote is kept", "key", pkey, "job", j.ID)
	}
	if d.o.Holds != nil {
		keys := []string{pkey, pkey + ".sig"}
		for _, o := range outs {
			keys = append(keys, o.Key)
		}
		for _, k := range keys {
			if err := d.o.Holds.HoldIfLinked(ctx, rec.ID, k); err != nil {
				return nil, fmt.Errorf("legal hold on %s: %w", k, err)
			}
		}
	}
	actor := j.RequestedBy
	if actor == "" || actor == "system" {
		actor = "jobs"
	}
	if d.o.Custody != nil {
		if err := d.o.Custody.Record(ctx, evidence.CustodyEvent{Actor: actor, Role: "system", Action: evidence.ActionDerived,
			TargetKind: "recording", TargetID: rec.ID,
			Detail: fmt.Sprintf("%s from %d source objects by job %s; provenance %s", what, len(sources), j.ID, pkey)}); err != nil {
			return nil, fmt.Errorf("custody event: %w", err)
		}
	}
	rows := make([]catalog.Derived, 0, len(outs))
	for _, o := range outs {
		rows = append(rows, catalog.Derived{RecordingID: rec.ID, Kind: cmp.Or(o.Kind, kind), Key: o.Key, SHA256: o.SHA256, Size: o.Size,
			ContentType: o.ContentType, ProvenanceKey: pkey, JobID: j.ID})
	}
	return rows, nil
}
