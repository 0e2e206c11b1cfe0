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

// session is one publisher. Its packets are depacketized and segmented on
// gortsplib's reader goroutine, which hands each finished fragment (about
// 0.9 s of media) to the session's spool goroutine: one hand-off a
// fragment, not one an access unit. The spool goroutine writes, fsyncs and
// hashes it. When the spool falls behind, the reader waits (TCP pushes back
// on the recorder); media is never dropped here.
type session struct {
	srv    *Server
	device evidence.Device
	caseID string
	remote string
	tracks []*track
	rtsp   *gortsplib.ServerSession
	log    *slog.Logger

	recordingID string
	started     time.Time
	lost        atomic.Uint64
	stopOnce    sync.Once
	connErr     atomic.Pointer[error] // why the publisher's connection closed
	connClosed  chan struct{}         // closed once connErr is final (OnConnClose ran)
	connOnce    sync.Once
	dropped     atomic.Uint64    // samples before the tracks were ready
	feed        LiveFeed         // nil without a live relay
	lastPacket  prometheus.Gauge // the device's bodycam_ingest_device_last_publish_timestamp_seconds

	// mu is held by the reader goroutine while it segments, and by stop,
	// which ends the recording: whoever holds it owns w and the tracks'
	// codecs. stopped is set under it; the reader then records nothing more.
	mu      sync.Mutex
	w       *writer
	stopped bool
	// ops carries what the segmenter makes to the spool goroutine, which
	// closes done when it has written the recording's end. Only a holder
	// of mu sends, and stop closes ops once stopped is set, so nothing is
	// sent on it closed.
	ops    chan spoolOp
	done   chan struct{}
	halted chan struct{} // closed once stopped is set: it records nothing more
	failed atomic.Bool   // the spool goroutine could not write: the recording ended as interrupted

	leaseID    string      // the session's id in the device's lease
	fence      int64       // the lease grant it records under
	unleased   atomic.Bool // accepted while coordination did not answer
	superseded atomic.Bool // ended because another node was granted the device

	lastRecv atomic.Int64           // unix nanoseconds of the last media received (of the announce before any)
	replaced atomic.Pointer[string] // the address of the device's new connection that ended this silent session
	prior    *endNote               // how the device's previous session here ended, if it left a hole before this one
}

// endNote is how a device's session ended when its recorder did not stop
// it (a read timeout, a reset, a takeover): the device's next recording
// starts with a gap from here, the media between having reached nothing.
type endNote struct {
	recording string
	last      time.Time // the last media received
	reason    string
}

// holeWindow bounds the hole a device's next recording declares: a device
// that comes back later than this after losing its session was most likely
// stopped meanwhile (its recorder switched off), and the time between is
// not declared as lost media.
const holeWindow = 10 * time.Minute

// lastMedia is when the session last received media (its announce, before
// any).
func (ss *session) lastMedia() time.Time { return time.Unix(0, ss.lastRecv.Load()) }

// spoolQueue is how many of the segmenter's calls (fragments of about
// 0.9 s, segment boundaries, gaps) may wait for the spool goroutine before
// the reader waits too: about 14 s of a stalled disk are absorbed without
// holding the publisher back (over UDP, every publisher: they share one
// reader), and a stream holds at most this many fragment buffers (about
// 8 MB at 4 Mbit/s, only while the disk stalls; none otherwise). The
// per-access-unit channel of 4096 samples it replaces was 0.8 MiB a stream
// at all times, allocated whole.
const spoolQueue = 16

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
	if n, ok := ss.srv.ends[ss.device.ID]; ok {
		delete(ss.srv.ends, ss.device.ID)
		if ss.started.Sub(n.last) <= holeWindow {
			ss.prior = &n
		}
	}
	ss.srv.mu.Unlock()
	ss.ops = make(chan spoolOp, spoolQueue)
	ss.w = &writer{ss: ss}
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
	go ss.runSpool()
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
	t.packets++
	t.bytes += len(pkt.Payload)
	pts, ok := ss.rtsp.PacketPTS(t.media, pkt)
	if !ok {
		ss.count(t, time.Now()) // before the first packet that sets the timeline
		return
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
		// A packet inside an access unit: counted with the access unit's
		// last packet (or every countEvery packets, if none ends).
		if t.packets >= countEvery {
			ss.count(t, time.Now())
		}
		return
	}
	recv := time.Now()
	ss.count(t, recv)
	ntp, _ := ss.rtsp.PacketNTP(t.media, pkt)
	samples[0].lost, t.lost = t.lost, 0
	for j := range samples {
		samples[j].recv, samples[j].ntp = recv, ntp
		if ss.feed != nil && samples[j].hasMedia() {
			ss.feed.Write(i, t.liveUnit(samples[j]))
		}
	}
	ss.mu.Lock()
	if !ss.stopped {
		for j := range samples {
			ss.w.push(i, samples[j])
		}
	}
	ss.mu.Unlock()
}

// countEvery bounds how many packets wait, uncounted, for the end of their
// access unit.
const countEvery = 64

// count adds a track's packets since the last count to the metrics: once
// an access unit, not once a packet.
func (ss *session) count(t *track, now time.Time) {
	ss.lastPacket.Set(unixSeconds(now))
	ss.lastRecv.Store(now.UnixNano())
	ss.srv.m.packets.Add(float64(t.packets))
	ss.srv.m.bytes.Add(float64(t.bytes))
	t.packets, t.bytes = 0, 0
}

// stop ends the recording and waits until its last media is in the spool.
func (ss *session) stop(err error) {
	ss.stopOnce.Do(func() {
		if ss.ops == nil { // announced but never recorded
			close(ss.halted)
			return
		}
		if ss.feed != nil {
			ss.feed.Close()
		}
		reason, byPublisher := ss.endReason(err)
		if byPublisher {
			ss.srv.m.lastStop.WithLabelValues(ss.device.ID).SetToCurrentTime()
		}
		state := evidence.StateComplete
		if ss.superseded.Load() {
			state, reason = evidence.StateInterrupted, errSuperseded.Error()
		}
		ss.mu.Lock()
		ss.stopped = true
		close(ss.halted)
		recorded := ss.w.seg != nil
		ss.w.end(state, reason)
		ss.mu.Unlock()
		ss.srv.noteEnd(ss, reason, byPublisher, recorded)
		close(ss.ops)
		<-ss.done
		ss.srv.m.publishers.Dec()
	})
}

// unixSeconds is t as a timestamp metric's value.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// endReason says why the recording ended, and whether the publisher ended
// it itself (TEARDOWN, or its stream ended cleanly): then the recorder was
// stopped, not lost. The reasons of a recorder lost begin with one of
// evidence.SilentEndPrefixes: the supervision dashboard counts them.
func (ss *session) endReason(err error) (reason string, byPublisher bool) {
	if by := ss.replaced.Load(); by != nil {
		return fmt.Sprintf("the device connected again (from %s) after %v without media; this session was ended", *by, staleAfter), false
	}
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

// writer segments a session's samples; it runs under the session's mu
// (on the reader goroutine, and in stop). What it makes goes to the spool
// goroutine as spoolOps.
type writer struct {
	ss     *session
	seg    *segmenter
	failed bool
}

func (w *writer) push(i int, smp sample) {
	ss := w.ss
	if w.failed || ss.failed.Load() {
		w.failed = true
		return
	}
	if smp.params != nil {
		ss.tracks[i].apply(smp.params)
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
		seg := newSegmenter(ss.recordingID, infos, ss.srv.o.SegmentDuration, &countingSink{sink: queueSink{ss}, srv: ss.srv, log: ss.log})
		init, err := seg.init()
		if err != nil {
			w.fail(err)
			return
		}
		w.seg = seg
		ss.send(spoolOp{kind: opCreate, init: init, meta: &recordingMeta{ID: ss.recordingID, DeviceID: ss.device.ID, OfficerID: ss.device.OfficerID,
			CaseID: ss.caseID, StartedAt: ss.started, Codecs: ss.codecNames(), RemoteAddr: ss.remote, NodeID: ss.srv.o.NodeID, Fence: ss.fence,
			PrimaryTrack: seg.primary.info.id, PrimaryTimescale: seg.primary.info.timescale}})
		if n := ss.prior; n != nil {
			if err := seg.out.gap(evidence.Gap{RecordingID: ss.recordingID, Kind: evidence.GapLoss, Start: n.last, End: ss.started,
				Detail: fmt.Sprintf("before this recording: the device's previous recording %s ended (%s) after its last media at %s; what the device sent until this recording started reached no recording",
					n.recording, n.reason, n.last.UTC().Format(time.RFC3339Nano))}); err != nil {
				w.fail(err)
				return
			}
		}
	}
	if err := w.seg.push(i, smp); err != nil {
		w.fail(err)
	}
}

// fail gives up segmenting: the spool goroutine failed (its error is
// handled there), or the segmenter itself did, which the spool goroutine is
// told of to end the recording.
func (w *writer) fail(err error) {
	w.failed = true
	if !errors.Is(err, errSpoolFailed) {
		w.ss.send(spoolOp{kind: opFail, err: err})
	}
}

// end finishes the recording: the segmenter's pending samples and its last
// segment, then the recording's end.
func (w *writer) end(state evidence.RecordingState, reason string) {
	if w.failed || w.ss.failed.Load() {
		return
	}
	if w.seg != nil {
		if err := w.seg.close(); err != nil {
			w.fail(err)
			return
		}
	}
	segments := int64(0)
	if w.seg != nil {
		segments = w.seg.segSeq
	}
	w.ss.send(spoolOp{kind: opEnd, state: state, reason: reason, seq: segments})
}

// send hands op to the spool goroutine, waiting while its queue is full.
// The caller holds mu; stop closes ops only after its own last send.
func (ss *session) send(op spoolOp) {
	select {
	case ss.ops <- op:
		return
	default:
	}
	ss.srv.m.backpressure.Inc()
	ss.ops <- op
}

// errSpoolFailed: the spool goroutine could not write the recording and
// has ended it.
var errSpoolFailed = errors.New("the recording could not be written to the spool")

type opKind uint8

const (
	opCreate   opKind = iota + 1 // meta, init
	opOpen                       // seq, start, deviceTime, keyframe
	opFragment                   // frag, d (where its media ends in the segment)
	opClose                      // d (the segment's duration)
	opGap                        // gap
	opFail                       // err: the segmenter failed
	opEnd                        // state, reason; seq: how many segments
)

// spoolOp is one call of the segmenter (or the session) for the spool
// goroutine.
type spoolOp struct {
	kind              opKind
	keyframe          bool
	seq               int64
	d                 time.Duration
	start, deviceTime time.Time
	frag              *[]byte // from fragmentBuffers; the spool goroutine puts it back
	gap               *evidence.Gap
	meta              *recordingMeta
	init              []byte
	err               error
	state             evidence.RecordingState
	reason            string
}

// queueSink is the segmenter's sink on the reader goroutine: each call
// becomes a spoolOp. Once the spool goroutine has failed, calls fail with
// errSpoolFailed and the segmenter stops.
type queueSink struct{ ss *session }

func (q queueSink) put(op spoolOp) error {
	if q.ss.failed.Load() {
		if op.frag != nil {
			fragmentBuffers.Put(op.frag)
		}
		return errSpoolFailed
	}
	q.ss.send(op)
	return nil
}

func (q queueSink) openSegment(seq int64, start, deviceTime time.Time, keyframe bool) error {
	return q.put(spoolOp{kind: opOpen, seq: seq, start: start, deviceTime: deviceTime, keyframe: keyframe})
}

func (q queueSink) writeFragment(b *[]byte, mediaEnd time.Duration) error {
	return q.put(spoolOp{kind: opFragment, frag: b, d: mediaEnd})
}

func (q queueSink) closeSegment(duration time.Duration) error {
	return q.put(spoolOp{kind: opClose, d: duration})
}

func (q queueSink) gap(g evidence.Gap) error { return q.put(spoolOp{kind: opGap, gap: &g}) }

// runSpool is the session's spool goroutine: it owns the recording's files.
func (ss *session) runSpool() {
	defer ss.srv.sessions.Done()
	defer close(ss.done)
	sw := &spoolWriter{ss: ss}
	for op := range ss.ops {
		sw.do(op)
	}
	sw.release()
}

// spoolWriter writes a session's recording into the spool.
type spoolWriter struct {
	ss  *session
	rec *recWriter
}

func (sw *spoolWriter) do(op spoolOp) {
	ss := sw.ss
	if op.frag != nil {
		defer fragmentBuffers.Put(op.frag)
	}
	if ss.failed.Load() {
		return
	}
	var err error
	switch op.kind {
	case opCreate:
		sw.rec, err = ss.srv.o.Spool.create(*op.meta, op.init)
		if err == nil {
			sw.rec.closed = func(_ segmentMeta, took time.Duration) {
				ss.srv.m.stepTime.WithLabelValues("spool_close").Observe(took.Seconds())
				ss.srv.up.kickDevice(ss.device.ID)
			}
		}
	case opOpen:
		err = sw.rec.openSegment(op.seq, op.start, op.deviceTime, op.keyframe)
	case opFragment:
		err = sw.rec.writeFragment(*op.frag, op.d)
	case opClose:
		err = sw.rec.closeSegment(op.d)
	case opGap:
		err = sw.rec.gap(*op.gap)
	case opFail:
		err = op.err
	case opEnd:
		sw.end(op.state, op.reason, op.seq)
		return
	}
	if err != nil {
		sw.fail(err)
	}
}

// fail ends a recording the server could no longer write: explicitly, as
// interrupted with a gap, and closes the publisher's session.
func (sw *spoolWriter) fail(err error) {
	ss := sw.ss
	ss.failed.Store(true)
	ss.srv.m.errors.WithLabelValues("spool_write").Inc()
	ss.log.Error("recording cannot be written to the spool; ending it as interrupted and closing the publisher", "err", err)
	if sw.rec != nil {
		// The segment being written stays on disk as it is, its file
		// closed first: the descriptor is not kept, whatever happens next.
		// Once end.json is written, the uploader salvages the segment
		// (its complete fragments; the rest is in the gap).
		sw.rec.closeFile()
		sw.rec.gap(evidence.Gap{RecordingID: ss.recordingID, Kind: evidence.GapInterrupted, Start: sw.rec.lastEnd, End: time.Now().UTC(),
			Detail: "the spool could not be written (" + err.Error() + "); media after this point was refused"})
		if err := sw.rec.end(evidence.StateInterrupted, sw.rec.lastEnd, "spool write failed: "+err.Error()); err != nil {
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
func (sw *spoolWriter) release() {
	if sw.rec != nil {
		sw.rec.release()
		sw.ss.srv.up.kickDevice(sw.ss.device.ID)
	}
}

func (sw *spoolWriter) end(state evidence.RecordingState, reason string, segments int64) {
	ss := sw.ss
	if sw.rec == nil {
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
	if err := sw.rec.end(state, sw.rec.lastEnd, reason); err != nil {
		sw.fail(err)
		return
	}
	ss.srv.up.kickDevice(ss.device.ID)
	ss.log.Info("recording ended", "reason", reason, "segments", segments, "packets_lost", ss.lost.Load())
}

// countingSink counts and logs gaps as they are written. A lossy stream can
// make a gap a second: the log gets the first few of every ten seconds and
// a count of the rest; the record and the metric get every one.
type countingSink struct {
	sink
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
	return c.sink.gap(g)
}
