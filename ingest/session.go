package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/media"
)

type input struct {
	track int
	smp   sample
}

// session is one publisher: its packets are depacketized on gortsplib's
// reader goroutine and handed to the session's writer goroutine, which
// segments them into the spool. When the writer falls behind, the reader
// waits (TCP pushes back on the recorder); media is never dropped here.
type session struct {
	srv    *Server
	device evidence.Device
	caseID string
	remote string
	tracks []*track
	rtsp   *gortsplib.ServerSession
	log    *slog.Logger

	in          chan input
	quit        chan struct{}
	done        chan struct{}
	recordingID string
	started     time.Time
	lost        atomic.Uint64
	stopOnce    sync.Once
	endErr      error
	connErr     atomic.Pointer[error] // why the publisher's connection closed
	dropped     atomic.Uint64         // samples before the tracks were ready
	feed        LiveFeed              // nil without a live relay
	lastPacket  prometheus.Gauge      // the device's bodycam_ingest_device_last_publish_timestamp_seconds

	leaseID    string      // the session's id in the device's lease
	fence      int64       // the lease grant it records under
	unleased   atomic.Bool // accepted while coordination did not answer
	superseded atomic.Bool // ended because another node was granted the device
}

func newRecordingID(t time.Time) string {
	return t.UTC().Format("20060102T150405Z") + "-" + randHex(4)
}

func (ss *session) codecNames() []string {
	out := make([]string, len(ss.tracks))
	for i, t := range ss.tracks {
		out[i] = t.info.name
	}
	return out
}

func (ss *session) start() error {
	ss.srv.mu.Lock() // Live() reads these
	ss.started = time.Now().UTC()
	ss.recordingID = newRecordingID(ss.started)
	ss.srv.mu.Unlock()
	ss.quit = make(chan struct{})
	ss.log = ss.log.With("recording", ss.recordingID)
	ss.lastPacket = ss.srv.m.lastPublish.WithLabelValues(ss.device.ID) // before the first packet
	ss.lastPacket.Set(unixSeconds(ss.started))
	for i, t := range ss.tracks {
		ss.rtsp.OnPacketRTP(t.media, t.format, func(pkt *rtp.Packet) { ss.packet(i, t, pkt) })
	}
	if ss.srv.o.Live != nil {
		live := make([]media.Track, len(ss.tracks))
		for i, t := range ss.tracks {
			live[i] = t.live
		}
		ss.feed = ss.srv.o.Live.Start(ss.device.ID, ss.recordingID, live)
	}
	rec := ss.recording()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ss.srv.o.Catalog.CreateRecording(ctx, rec); err != nil {
		// The uploader creates it from the spool later; recording goes on.
		ss.log.Warn("catalog: recording not created yet; it will be from the spool", "err", err)
	} else if ss.caseID != "" && ss.srv.o.Holds != nil {
		if err := ss.srv.o.Holds.LinkFromStart(ctx, rec); err != nil {
			// Recorded all the same: refused, it is in no case; not decided
			// (the catalog failing), the link is tried again before the
			// manifest is signed.
			ss.log.Warn("recording not linked to the case it was published for", "case", ss.caseID, "err", err)
		}
	}
	ss.srv.o.Events.Publish(events.Event{Kind: events.RecordingStarted, At: ss.started, Recording: rec})
	ss.srv.m.publishers.Inc()
	ss.srv.sessions.Add(1)
	go ss.run()
	ss.log.Info("recording started", "codecs", strings.Join(ss.codecNames(), ", "), "case", ss.caseID)
	return nil
}

func (ss *session) recording() evidence.Recording {
	return evidence.Recording{ID: ss.recordingID, DeviceID: ss.device.ID, OfficerID: ss.device.OfficerID, CaseID: ss.caseID,
		State: evidence.StateLive, StartedAt: ss.started, Codecs: ss.codecNames(), RemoteAddr: ss.remote,
		NodeID: ss.srv.o.NodeID, Fence: ss.fence}
}

// packet runs on gortsplib's reader goroutine.
func (ss *session) packet(i int, t *track, pkt *rtp.Packet) {
	recv := time.Now()
	ss.lastPacket.Set(unixSeconds(recv))
	ss.srv.m.packets.Inc()
	ss.srv.m.bytes.Add(float64(len(pkt.Payload)))
	pts, ok := ss.rtsp.PacketPTS(t.media, pkt)
	if !ok {
		return // before the first packet that sets the timeline
	}
	if cr := int64(t.clockRate()); cr != int64(t.info.timescale) && cr > 0 {
		pts = pts * int64(t.info.timescale) / cr
	}
	t.sequence(pkt)
	samples, err := t.decode(pkt, pts)
	if err != nil {
		// Samples that come with an error are still recorded (a video
		// frame whose DTS had to be estimated).
		ss.srv.m.errors.WithLabelValues("depacketize").Inc()
		ss.log.Debug("depacketize", "track", t.info.name, "err", err)
	}
	if len(samples) == 0 {
		return // a packet inside an access unit
	}
	ntp, _ := ss.rtsp.PacketNTP(t.media, pkt)
	samples[0].lost, t.lost = t.lost, 0
	for _, smp := range samples {
		smp.recv, smp.ntp = recv, ntp
		if ss.feed != nil && smp.hasMedia() {
			ss.feed.Write(i, t.liveUnit(smp))
		}
		in := input{track: i, smp: smp}
		select {
		case ss.in <- in:
			continue
		default:
		}
		ss.srv.m.backpressure.Inc()
		select {
		case ss.in <- in:
		case <-ss.done:
			return
		}
	}
}

// stop ends the recording and waits until its last media is in the spool.
func (ss *session) stop(err error) {
	ss.stopOnce.Do(func() {
		if ss.quit == nil { // announced but never recorded
			close(ss.done)
			return
		}
		ss.endErr = err
		if ss.feed != nil {
			ss.feed.Close()
		}
		close(ss.quit)
		<-ss.done
		ss.srv.m.publishers.Dec()
	})
}

// unixSeconds is t as a timestamp metric's value.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// endReason says why the recording ended, and whether the publisher ended
// it itself (TEARDOWN, or its stream ended cleanly): then the recorder was
// stopped, not lost.
func (ss *session) endReason() (reason string, byPublisher bool) {
	err := ss.endErr
	var notInUse liberrors.ErrServerSessionNotInUse
	if errors.As(err, &notInUse) {
		if c := ss.connErr.Load(); c != nil {
			err = *c
		}
	}
	var term liberrors.ErrServerTerminated
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no data for %v (read timeout)", ss.srv.o.ReadTimeout), false
	case err == nil:
		return "publisher stopped", true
	case errors.As(err, &term):
		return "server shutting down", false
	case strings.Contains(err.Error(), "timeout") || strings.Contains(err.Error(), "timed out"):
		return fmt.Sprintf("no data for %v (read timeout)", ss.srv.o.ReadTimeout), false
	case errors.Is(err, liberrors.ErrServerSessionTornDown{}) || strings.Contains(err.Error(), "torn down"):
		return "publisher stopped", true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		// Without the addresses: the reason goes to the catalog and out to
		// other systems (events), and the recorder's address is not theirs.
		return "publisher disconnected: " + op.Err.Error(), false
	}
	return "publisher disconnected: " + err.Error(), false
}

// run is the session's writer goroutine.
func (ss *session) run() {
	defer ss.srv.sessions.Done()
	defer close(ss.done)
	w := &writer{ss: ss}
	for {
		select {
		case in := <-ss.in:
			w.push(in)
		case <-ss.quit:
			for {
				select {
				case in := <-ss.in:
					w.push(in)
					continue
				default:
				}
				break
			}
			reason, byPublisher := ss.endReason()
			if byPublisher {
				ss.srv.m.lastStop.WithLabelValues(ss.device.ID).SetToCurrentTime()
			}
			state := evidence.StateComplete
			if ss.superseded.Load() {
				state, reason = evidence.StateInterrupted, errSuperseded.Error()
			}
			w.end(state, reason)
			w.release()
			return
		}
	}
}

// writer owns the spool recording of a session.
type writer struct {
	ss     *session
	rec    *recWriter
	seg    *segmenter
	failed bool
}

func (w *writer) push(in input) {
	if w.failed {
		return
	}
	ss := w.ss
	if in.smp.params != nil {
		ss.tracks[in.track].apply(in.smp.params)
	}
	if w.seg == nil {
		for _, t := range ss.tracks {
			if !t.ready() {
				ss.dropped.Add(1)
				return
			}
		}
		infos := make([]trackInfo, len(ss.tracks))
		for i, t := range ss.tracks {
			infos[i] = t.info
		}
		w.seg = newSegmenter(ss.recordingID, infos, ss.srv.o.SegmentDuration, nil)
		init, err := w.seg.init()
		if err == nil {
			meta := recordingMeta{ID: ss.recordingID, DeviceID: ss.device.ID, OfficerID: ss.device.OfficerID, CaseID: ss.caseID,
				StartedAt: ss.started, Codecs: ss.codecNames(), RemoteAddr: ss.remote, NodeID: ss.srv.o.NodeID, Fence: ss.fence,
				PrimaryTrack: w.seg.primary.info.id, PrimaryTimescale: w.seg.primary.info.timescale}
			w.rec, err = ss.srv.o.Spool.create(meta, init)
		}
		if err != nil {
			w.fail(err)
			return
		}
		w.rec.closed = func(_ segmentMeta, took time.Duration) {
			ss.srv.m.stepTime.WithLabelValues("spool_close").Observe(took.Seconds())
			ss.srv.up.kickDevice(ss.device.ID)
		}
		w.seg.out = &countingSink{recWriter: w.rec, srv: ss.srv, log: ss.log}
	}
	if err := w.seg.push(in.track, in.smp); err != nil {
		w.fail(err)
	}
}

// fail ends a recording the server could no longer write: explicitly, as
// interrupted with a gap, and closes the publisher's session.
func (w *writer) fail(err error) {
	ss := w.ss
	ss.srv.m.errors.WithLabelValues("spool_write").Inc()
	ss.log.Error("recording cannot be written to the spool; ending it as interrupted and closing the publisher", "err", err)
	w.failed = true
	if w.rec != nil {
		// The segment being written stays on disk as it is, its file
		// closed first: the descriptor is not kept, whatever happens next.
		// Once end.json is written, the uploader salvages the segment
		// (its complete fragments; the rest is in the gap).
		w.rec.closeFile()
		w.rec.gap(evidence.Gap{RecordingID: ss.recordingID, Kind: evidence.GapInterrupted, Start: w.rec.lastEnd, End: time.Now().UTC(),
			Detail: "the spool could not be written (" + err.Error() + "); media after this point was refused"})
		if err := w.rec.end(evidence.StateInterrupted, w.rec.lastEnd, "spool write failed: "+err.Error()); err != nil {
			ss.log.Error("the end of the recording could not be written to the spool either", "err", err)
		}
		ss.srv.up.kickDevice(ss.device.ID)
	} else {
		// Nothing of it is in the spool (it failed as it started): end the
		// catalog's recording here, or it stays live.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ss.srv.o.Catalog.FinishRecording(ctx, ss.recordingID, evidence.StateInterrupted, time.Now(),
			"spool write failed before any media was stored: "+err.Error()); err != nil {
			ss.log.Warn("catalog: could not end the recording", "err", err)
		}
		ss.srv.up.kickDevice(ss.device.ID) // what a failed start left in the spool
	}
	go ss.rtsp.Close()
}

// release lets the spool know the writer is done with its recording, ended
// or not (then the uploader recovers it).
func (w *writer) release() {
	if w.rec != nil {
		w.rec.release()
		w.ss.srv.up.kickDevice(w.ss.device.ID)
	}
}

func (w *writer) end(state evidence.RecordingState, reason string) {
	ss := w.ss
	if w.failed {
		return
	}
	if w.rec == nil {
		// Nothing recordable ever arrived: end the catalog's recording, with
		// the reason, so it does not stay "live".
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		why := reason + "; no decodable media was received"
		if err := ss.srv.o.Catalog.FinishRecording(ctx, ss.recordingID, evidence.StateComplete, time.Now(), why); err != nil {
			ss.log.Warn("catalog: could not end an empty recording", "err", err)
		}
		ss.log.Info("recording ended without media", "reason", why, "dropped_samples", ss.dropped.Load())
		return
	}
	if err := w.seg.close(); err != nil {
		w.fail(err)
		return
	}
	if err := w.rec.end(state, w.rec.lastEnd, reason); err != nil {
		w.fail(err)
		return
	}
	ss.srv.up.kickDevice(ss.device.ID)
	ss.log.Info("recording ended", "reason", reason, "segments", w.seg.segSeq, "packets_lost", ss.lost.Load())
}

// countingSink counts and logs gaps as they are written. A lossy stream can
// make a gap a second: the log gets the first few of every ten seconds and
// a count of the rest; the record and the metric get every one.
type countingSink struct {
	*recWriter
	srv *Server
	log *slog.Logger

	window      time.Time // start of the current ten seconds
	logged, not int
}

const gapLogsPer10s = 5

func (c *countingSink) gap(g evidence.Gap) error {
	c.srv.m.gaps.WithLabelValues(string(g.Kind)).Inc()
	now := time.Now()
	if now.Sub(c.window) >= 10*time.Second {
		if c.not > 0 {
			c.log.Warn("more gaps in recording, not logged one by one (the recording lists them all)", "gaps", c.not, "since", c.window)
		}
		c.window, c.logged, c.not = now, 0, 0
	}
	if c.logged < gapLogsPer10s {
		c.logged++
		c.log.Warn("gap in recording", "kind", g.Kind, "track", g.Track, "detail", g.Detail)
	} else {
		c.not++
		c.log.Debug("gap in recording", "kind", g.Kind, "track", g.Track, "detail", g.Detail)
	}
	return c.recWriter.gap(g)
}
