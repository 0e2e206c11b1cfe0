package dock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// finishWait bounds how long the agent polls a complete upload's receipt
// while the server answers 202 (still storing).
const finishWait = 10 * time.Minute

// upload brings a file to a verified receipt: the server's own copy if it
// has one (GET /api/v1/receipts), else a tus upload, resumed from the
// server's offset when the entry has a URL.
func (a *Agent) upload(ctx context.Context, cam *camera, e *entry, facts fileFacts, buf *[]byte, save func(), log *slog.Logger) error {
	failures, chunkRetries := 0, 0
	var counted int64 // bytes of this file counted as done in the progress
	progressTo := func(n int64) {
		if n > counted {
			a.st.doneBytes.Add(n - counted)
			counted = n
		}
	}
	defer func() {
		if e.done() {
			progressTo(e.Size)
		}
	}()
	retry := func(err error) error {
		var se *statusError
		if errors.As(err, &se) && !se.temporary() && se.Status != http.StatusInsufficientStorage {
			return err
		}
		failures++
		if failures >= maxFailures {
			return fmt.Errorf("gave up after %d tries: %w", failures, err)
		}
		d := min(time.Second<<(failures-1), 30*time.Second)
		log.Warn("retrying", "err", err, "in", d)
		return sleep(ctx, d)
	}
	startOver := func(why string) {
		log.Info("starting the upload over", "why", why)
		e.UploadURL, e.Offset = "", 0
		save()
	}
	var finishing time.Time
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.UploadURL == "" {
			rb, err := a.c.storedReceipt(ctx, facts.Device, facts.SHA256)
			if err == nil {
				return a.accept(ctx, cam, e, rb, facts, StateDuplicate, save, log)
			}
			if !errors.Is(err, errNoReceipt) {
				if err := retry(err); err != nil {
					return err
				}
				continue
			}
			u, err := a.c.create(ctx, facts.Size, facts.metadata())
			var se *statusError
			if errors.As(err, &se) && se.Status == http.StatusBadRequest && len(facts.metadata()) > len(facts.required()) {
				// The server refused what a sidecar or the name said (an
				// officer it does not know, odd times): the file goes up
				// with what it must have; the report says why.
				log.Warn("the server refused the optional metadata; sending the file without it", "why", se.Body)
				e.Reason = "sent without sidecar/name metadata: " + se.Body
				u, err = a.c.create(ctx, facts.Size, facts.required())
			}
			if err != nil {
				if err := retry(err); err != nil {
					return err
				}
				continue
			}
			e.UploadURL, e.Offset, e.State = u, 0, StatePending
			save()
			log.Info("upload created", "url", u, "device", facts.Device, "size", facts.Size)
		}
		off, err := a.c.offset(ctx, e.UploadURL)
		if errors.Is(err, errGone) {
			startOver("the server no longer knows the upload")
			continue
		}
		if err != nil {
			if err := retry(err); err != nil {
				return err
			}
			continue
		}
		if off > e.Size {
			a.c.terminate(ctx, e.UploadURL)
			startOver(fmt.Sprintf("the server holds %d bytes of a %d-byte file", off, e.Size))
			continue
		}
		if off != e.Offset {
			e.Offset = off
			save()
		}
		progressTo(off)
		if off == e.Size {
			// Every byte is there: the receipt (the finishing PATCH's answer
			// was lost, or the server is still storing).
			rb, err := a.c.uploadReceipt(ctx, e.UploadURL)
			var re *refusedError
			switch {
			case err == nil:
				return a.accept(ctx, cam, e, rb, facts, StateUploaded, save, log)
			case errors.Is(err, errFinishing):
				if finishing.IsZero() {
					finishing = time.Now()
				}
				if time.Since(finishing) > finishWait {
					return fmt.Errorf("the server was still storing the upload after %v", finishWait)
				}
				if err := sleep(ctx, time.Second); err != nil {
					return err
				}
			case errors.As(err, &re):
				a.c.terminate(ctx, e.UploadURL)
				e.UploadURL, e.Offset = "", 0
				return re
			case errors.Is(err, errGone):
				startOver("the server no longer knows the upload")
			default:
				if err := retry(err); err != nil {
					return err
				}
			}
			continue
		}
		n := min(a.o.Chunk, e.Size-off)
		if int64(cap(*buf)) < n {
			*buf = make([]byte, n)
		}
		chunk := (*buf)[:n]
		if err := readAt(cam, e, chunk, off); err != nil {
			return err
		}
		res, err := a.c.patch(ctx, e.UploadURL, off, chunk, a.meter(ctx))
		var re *refusedError
		switch {
		case err == nil:
			failures, chunkRetries = 0, 0
			e.Offset = res.Offset
			save()
			progressTo(res.Offset)
			if res.Receipt != nil {
				return a.accept(ctx, cam, e, res.Receipt, facts, StateUploaded, save, log)
			}
		case errors.Is(err, errChunkChecksum):
			chunkRetries++
			if chunkRetries > maxChunkRetries {
				return fmt.Errorf("the server refused the chunk at %d %d times: %w", off, chunkRetries, err)
			}
			log.Warn("the server refused a chunk's checksum; sending it again", "offset", off)
		case errors.As(err, &re):
			a.c.terminate(ctx, e.UploadURL)
			e.UploadURL, e.Offset = "", 0
			return re
		case errors.Is(err, errOffset):
			// The next HEAD says where the server is.
		case errors.Is(err, errGone):
			startOver("the server no longer knows the upload")
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := retry(err); err != nil {
				return err
			}
		}
	}
}

// readAt reads a chunk of the camera's file, which must still be the file
// that was hashed.
func readAt(cam *camera, e *entry, chunk []byte, off int64) error {
	f, err := os.Open(cam.dir + string(os.PathSeparator) + e.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != e.Size || !fi.ModTime().Equal(e.ModTime) {
		return errors.New("the file changed since it was hashed")
	}
	_, err = f.ReadAt(chunk, off)
	return err
}

// accept verifies a receipt and keeps it; a receipt that does not verify
// leaves the file failed (and never released).
func (a *Agent) accept(ctx context.Context, cam *camera, e *entry, rb *receiptBody, facts fileFacts, state string, save func(), log *slog.Logger) error {
	if rb.Duplicate {
		state = StateDuplicate // the server had these bytes already
	}
	v, err := verifyReceipt(ctx, a.keys, rb, facts, state == StateDuplicate)
	for tries := 1; errors.Is(err, errKeysUnavailable) && tries < maxFailures; tries++ {
		// The file is stored; only the check waits (a busy server, a
		// network blip): it is not a receipt that failed to verify.
		d := min(time.Second<<(tries-1), 30*time.Second)
		log.Warn("the server's keys could not be fetched to check the receipt; trying again", "err", err, "in", d)
		if err := sleep(ctx, d); err != nil {
			return err
		}
		v, err = verifyReceipt(ctx, a.keys, rb, facts, state == StateDuplicate)
	}
	if err != nil {
		e.Verified = false
		return fmt.Errorf("the receipt does not verify: %w", err)
	}
	p, err := saveReceipt(cam.receipts, v)
	if err != nil {
		return fmt.Errorf("keeping the receipt: %w", err)
	}
	e.State, e.Recording, e.Receipt, e.Verified = state, v.Receipt.RecordingID, p, true
	if v.Receipt.FileName != facts.Name {
		e.Reason = strings.TrimPrefix(e.Reason+"; stored earlier as "+v.Receipt.FileName, "; ")
	}
	e.Offset = e.Size
	save()
	log.Info("receipt verified", "state", state, "recording", e.Recording, "receipt", p, "key", v.Receipt.SigningKeyID)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// meter wraps a PATCH body: it counts the bytes sent and, with --rate,
// waits on the token bucket every upload shares.
func (a *Agent) meter(ctx context.Context) func(io.Reader) io.Reader {
	return func(r io.Reader) io.Reader {
		return &meteredReader{ctx: ctx, r: r, lim: a.lim, burst: a.burst, sent: &a.st.sentBytes}
	}
}

type meteredReader struct {
	ctx   context.Context
	r     io.Reader
	lim   *rate.Limiter
	burst int
	sent  interface{ Add(int64) int64 }
}

func (m *meteredReader) Read(p []byte) (int, error) {
	if m.lim != nil && len(p) > m.burst {
		p = p[:m.burst]
	}
	n, err := m.r.Read(p)
	if n > 0 && m.lim != nil {
		if werr := m.lim.WaitN(m.ctx, n); werr != nil {
			return 0, werr
		}
	}
	m.sent.Add(int64(n))
	return n, err
}
