package ingest

import (
	"cmp"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/bodycam/bodycam/evidence"
)

// sample is one access unit of one track, in the track's timescale.
type sample struct {
	dts, pts int64
	sync     bool
	payload  []byte
	// nalus, for H.264 and H.265, are the access unit's NAL units as
	// received (payload is nil); they are stored length-prefixed (AVCC).
	nalus [][]byte
	recv  time.Time // server receive time: authoritative for order
	ntp   time.Time // the recorder's clock, zero when unknown
	// params are parameter sets that came in-band with this access unit;
	// the session's writer (under its lock), which owns the track's codec,
	// applies them.
	params [][]byte
	// raw is what the recorder sent when payload is a conversion of it
	// (G.711, stored as linear PCM); the live relay passes it on.
	raw []byte
	// lost is how many RTP packets of the track went missing just before
	// this sample.
	lost int
	// undecodable, on a sample without media, says why it has none.
	undecodable string
}

// hasMedia reports whether the sample carries media: video before the
// first keyframe is counted, not stored, and has none.
func (s *sample) hasMedia() bool { return s.payload != nil || s.nalus != nil }

// trackInfo describes one recorded track.
type trackInfo struct {
	id        int // fMP4 track id, from 1
	video     bool
	timescale uint32
	codec     codecs.Codec
	name      string // for people: "H264 1280x720"
	nominal   int64  // a sample's duration when nothing better is known
}

func (t trackInfo) kind() string {
	if t.video {
		return "video"
	}
	return "audio"
}

// sink receives what the segmenter makes; the spool implements it.
type sink interface {
	openSegment(seq int64, start, deviceTime time.Time, keyframe bool) error
	// writeFragment takes b, a buffer from fragmentBuffers, and puts it
	// back once it is written (or not).
	writeFragment(b *[]byte, mediaEnd time.Duration) error
	closeSegment(duration time.Duration) error
	gap(g evidence.Gap) error
}

const (
	// fragmentSpan bounds how long received media stays in memory before it
	// is written to the spool and fsync'd.
	fragmentSpan = 900 * time.Millisecond
	// maxSampleGap: a pause in media timestamps longer than this, with the
	// receive clock agreeing, is a loss gap, not a long sample.
	maxSampleGap = time.Second
	// jumpTolerance: media timestamps may run ahead of the receive clock by
	// this much (jitter, bursts) before it counts as a discontinuity.
	jumpTolerance = time.Second
	// maxCatchUp: how far behind the receive clock a track's media may have
	// fallen (a publisher or a network that stalled) and still catch up in a
	// burst without the burst counting as a jump ahead.
	maxCatchUp = 5 * time.Second
)

// segmenter turns samples into fMP4 fragments and segments. Durations come
// from media timestamps checked against the receive clock: a pause in the
// media becomes an explicit loss gap and a hole in the timeline, and a jump
// in timestamps becomes an explicit discontinuity with the timeline carried
// on by the receive clock. No sample is ever stretched over missing time.
type segmenter struct {
	recordingID string
	out         sink
	target      time.Duration // cut at the first keyframe after this
	hardCap     time.Duration // cut anyway after this
	tracks      []*trackState
	primary     *trackState // the video track, or the first track

	started   bool
	zeroDTS   int64  // the first recorded sample's dts ...
	zeroScale uint32 // ... in its track's timescale
	fragSeq   uint32
	segSeq    int64
	segOpen   bool
	segStart  int64 // primary track dts of the segment's first sample
	fragStart time.Time
	dropped   map[*trackState]time.Duration
	firstSeen time.Time
}

type trackState struct {
	info     trackInfo
	pending  *sample // &slot, or nil
	slot     sample  // the pending sample, kept here rather than allocated
	frag     []fragSample
	fragBase int64
	nextDTS  int64 // where the next finalized sample continues the timeline
	off      int64 // added to incoming timestamps after a discontinuity
	typical  int64
	zeroed   bool
	// behind is how far (ticks) the media has fallen behind the receive
	// clock since it last ran level or ahead, up to maxCatchUp: a burst
	// that makes it up is not a jump.
	behind int64
	// A run of samples that arrived but cannot be stored (video after lost
	// packets, until the next keyframe): how many, first and last receipt.
	skipped          int
	skipFrom, skipTo time.Time // the gap: from the last stored frame's end
	skipFirst        time.Time // the first frame not stored
	skipWhy          string
}

func newSegmenter(recordingID string, tracks []trackInfo, target time.Duration, out sink) *segmenter {
	s := &segmenter{recordingID: recordingID, out: out, target: target, hardCap: 4 * target, dropped: map[*trackState]time.Duration{}}
	if s.hardCap < 10*time.Second {
		s.hardCap = 10 * time.Second
	}
	for _, ti := range tracks {
		t := &trackState{info: ti, typical: ti.nominal}
		s.tracks = append(s.tracks, t)
		if ti.video && s.primary == nil {
			s.primary = t
		}
	}
	if s.primary == nil && len(s.tracks) > 0 {
		s.primary = s.tracks[0]
	}
	return s
}

// init returns the fMP4 init segment.
func (s *segmenter) init() ([]byte, error) {
	var in fmp4.Init
	for _, t := range s.tracks {
		in.Tracks = append(in.Tracks, &fmp4.InitTrack{ID: t.info.id, TimeScale: t.info.timescale, Codec: t.info.codec})
	}
	var b seekablebuffer.Buffer
	if err := in.Marshal(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ticks(d time.Duration, scale uint32) int64 {
	return int64(d) * int64(scale) / int64(time.Second)
}

func dur(t int64, scale uint32) time.Duration {
	return time.Duration(t * int64(time.Second) / int64(scale))
}

// push takes the next sample of track i, in arrival order.
func (s *segmenter) push(i int, smp sample) error {
	t := s.tracks[i]
	if !s.started {
		if s.firstSeen.IsZero() {
			s.firstSeen = smp.recv
		}
		// Start at the first video keyframe (or any sample of an audio-only
		// stream); if keyframes never come, start anyway after the hard cap
		// so that audio is not lost waiting for them.
		startable := t == s.primary && (smp.sync || !t.info.video || smp.recv.Sub(s.firstSeen) >= s.hardCap)
		if !startable {
			s.dropped[t] += dur(t.typical, t.info.timescale)
			return nil
		}
		s.started = true
		s.zeroDTS, s.zeroScale = smp.dts, t.info.timescale
		for _, tr := range s.tracks {
			if d := s.dropped[tr]; d > 0 {
				err := s.out.gap(evidence.Gap{RecordingID: s.recordingID, Kind: evidence.GapUndecodable,
					Start: s.firstSeen, End: smp.recv, Track: tr.info.kind(),
					Detail: fmt.Sprintf("about %v of %s before the first keyframe could not be decoded and was not stored", d.Round(time.Millisecond), tr.info.kind())})
				if err != nil {
					return err
				}
			}
		}
	}
	if !smp.hasMedia() {
		// Arrived, but cannot be decoded (the track resumes at its next
		// keyframe): an undecodable gap, written when the run ends.
		if t.skipped == 0 {
			t.skipFrom, t.skipFirst, t.skipWhy = smp.recv, smp.recv, smp.undecodable
			if p := t.pending; p != nil {
				// The gap starts where the last stored frame ends; if nothing
				// arrived for a while before the run, that part is a loss.
				from := p.recv.Add(dur(t.typical, t.info.timescale))
				if smp.recv.Sub(p.recv) <= maxSampleGap {
					if from.Before(smp.recv) {
						t.skipFrom = from
					}
				} else if err := s.out.gap(evidence.Gap{RecordingID: s.recordingID, Kind: evidence.GapLoss,
					Start: from, End: smp.recv, Track: t.info.kind(),
					Detail: fmt.Sprintf("no %s for %v", t.info.kind(), smp.recv.Sub(from).Round(time.Millisecond))}); err != nil {
					return err
				}
			}
		}
		t.skipped++
		t.skipTo = smp.recv
		return nil
	}
	skipped := t.skipped > 0
	if err := s.endSkip(t, smp.recv); err != nil {
		return err
	}
	if !t.zeroed {
		// Exact for the track that started the recording; others round down.
		t.off = -floorDiv(s.zeroDTS*int64(t.info.timescale), int64(s.zeroScale))
		t.zeroed = true
	}
	if !s.segOpen && s.segSeq == 0 {
		// The recording's first segment opens with its first sample, so
		// no track's samples are lost while the primary track waits for its
		// second sample.
		s.segSeq = 1
		s.segStart = 0
		if err := s.out.openSegment(1, smp.recv, smp.ntp, smp.sync || !t.info.video); err != nil {
			return err
		}
		s.segOpen = true
		s.fragStart = smp.recv
	}
	smp.dts += t.off
	smp.pts += t.off
	if t.pending == nil && smp.dts < 0 {
		// A secondary track's sample from before the recording's first
		// sample: it belongs to no segment. (Once a track has begun, a
		// timestamp that goes back is a discontinuity, handled below.)
		s.dropped[t] += dur(t.typical, t.info.timescale)
		return nil
	}
	if t.pending == nil {
		t.slot = smp
		t.pending = &t.slot
		t.nextDTS = smp.dts
		return nil
	}
	p := t.pending
	scale := t.info.timescale
	delta := smp.dts - p.dts
	recvDelta := ticks(smp.recv.Sub(p.recv), scale)
	d := delta
	jumped := delta <= 0 || delta > recvDelta+ticks(jumpTolerance, scale)+t.behind
	if jumped {
		t.behind = 0
	} else {
		t.behind = min(max(t.behind+recvDelta-delta, 0), ticks(maxCatchUp, scale))
	}
	switch {
	case jumped:
		// Timestamps went back or ran ahead of real time: a discontinuity.
		// The timeline follows the receive clock across it.
		d = t.typical
		newDTS := p.dts + max(t.typical, recvDelta)
		shift := newDTS - smp.dts
		t.off += shift
		smp.dts += shift
		smp.pts += shift
		if delta == 0 && smp.lost > 0 {
			// Not a jump: a lost packet (the marker) split one access
			// unit in two with one timestamp. The loss is told below.
		} else if err := s.out.gap(evidence.Gap{RecordingID: s.recordingID, Kind: evidence.GapDiscontinuity,
			Start: p.recv, End: smp.recv, Track: t.info.kind(),
			Detail: fmt.Sprintf("%s timestamps jumped by %v while %v passed", t.info.kind(),
				dur(delta, scale).Round(time.Millisecond), smp.recv.Sub(p.recv).Round(time.Millisecond))}); err != nil {
			return err
		}
	case skipped:
		// What was not stored stays a hole, explained by the gap above.
		d = t.typical
	case delta > ticks(maxSampleGap, scale):
		// Media stopped arriving: the last sample keeps its normal length
		// and the missing time stays a hole.
		d = t.typical
		detail := fmt.Sprintf("no %s for %v", t.info.kind(), dur(delta-t.typical, scale).Round(time.Millisecond))
		if smp.lost > 0 {
			detail += fmt.Sprintf(" (%d packets lost)", smp.lost)
		}
		if err := s.out.gap(evidence.Gap{RecordingID: s.recordingID, Kind: evidence.GapLoss,
			Start: p.recv.Add(dur(t.typical, scale)), End: smp.recv, Track: t.info.kind(), Detail: detail}); err != nil {
			return err
		}
		smp.lost = 0
	case smp.lost == 0:
		t.typical = delta
	}
	if smp.lost > 0 {
		// A short loss: the last sample before it lasts until this one (a
		// picture held, as a player would), and the record says so.
		detail := fmt.Sprintf("%d %s packets lost", smp.lost, t.info.kind())
		if t.info.video {
			detail += "; until the next keyframe, pictures show what they lack concealed by the decoder"
		}
		if err := s.out.gap(evidence.Gap{RecordingID: s.recordingID, Kind: evidence.GapLoss,
			Start: p.recv, End: smp.recv, Track: t.info.kind(), Detail: detail}); err != nil {
			return err
		}
	}
	if err := s.finalize(t, p, d); err != nil {
		return err
	}
	t.slot = smp // p is done with
	return nil
}

// finalize appends a sample whose duration is now known, cutting fragments
// and segments first where needed.
func (s *segmenter) finalize(t *trackState, p *sample, d int64) error {
	if t == s.primary {
		if s.segOpen {
			span := dur(p.dts-s.segStart, t.info.timescale)
			cut := (p.sync || !t.info.video) && span >= s.target
			if span >= s.hardCap {
				cut = true
			}
			if cut {
				if err := s.closeSegment(); err != nil {
					return err
				}
			}
		}
		if !s.segOpen {
			s.segSeq++
			s.segStart = p.dts
			if err := s.out.openSegment(s.segSeq, p.recv, p.ntp, p.sync || !t.info.video); err != nil {
				return err
			}
			s.segOpen = true
			s.fragStart = p.recv
		}
	}
	if !s.segOpen {
		return nil // a secondary track's sample from before the first segment
	}
	if len(t.frag) > 0 && p.dts != t.nextDTS {
		if err := s.flush(); err != nil { // a hole: the next fragment starts after it
			return err
		}
	}
	if len(t.frag) == 0 {
		t.fragBase = p.dts
	}
	t.frag = append(t.frag, fragSample{
		duration: uint32(d), ptsOffset: int32(p.pts - p.dts), nonSync: !p.sync, payload: p.payload, nalus: p.nalus,
	})
	t.nextDTS = p.dts + d
	if p.recv.Sub(s.fragStart) >= fragmentSpan {
		return s.flush()
	}
	return nil
}

// flush writes the samples held in memory as one fragment.
func (s *segmenter) flush() error {
	var trackBuf [4]fragTrack
	tracks := trackBuf[:0]
	for _, t := range s.tracks {
		if len(t.frag) > 0 {
			tracks = append(tracks, fragTrack{id: t.info.id, base: uint64(t.fragBase), samples: t.frag})
		}
	}
	if len(tracks) == 0 {
		return nil
	}
	buf := fragmentBuffers.Get().(*[]byte)
	*buf = appendFragment((*buf)[:0], s.fragSeq+1, tracks)
	s.fragSeq++
	for _, t := range s.tracks {
		clear(t.frag) // the samples' bytes go with them
		t.frag = t.frag[:0]
	}
	s.fragStart = time.Time{}
	if s.primary.pending != nil {
		s.fragStart = s.primary.pending.recv
	}
	return s.out.writeFragment(buf, s.segmentSpan())
}

func (s *segmenter) segmentSpan() time.Duration {
	return dur(s.primary.nextDTS-s.segStart, s.primary.info.timescale)
}

func (s *segmenter) closeSegment() error {
	if err := s.flush(); err != nil {
		return err
	}
	s.segOpen = false
	return s.out.closeSegment(s.segmentSpan())
}

// endSkip writes the undecodable gap of a run of samples that could not be
// stored, if one is open, ending at end.
func (s *segmenter) endSkip(t *trackState, end time.Time) error {
	if t.skipped == 0 {
		return nil
	}
	n := t.skipped
	t.skipped = 0
	return s.out.gap(evidence.Gap{RecordingID: s.recordingID, Kind: evidence.GapUndecodable, Start: t.skipFrom, End: end,
		Track: t.info.kind(), Detail: fmt.Sprintf("%d %s frames received over %v could not be decoded (%s) and were not stored; the %s resumes at its next keyframe",
			n, t.info.kind(), t.skipTo.Sub(t.skipFirst).Round(time.Millisecond), cmp.Or(t.skipWhy, "no keyframe had come yet"), t.info.kind())})
}

// close finishes the recording: pending samples get their typical length
// and the last segment is closed.
func (s *segmenter) close() error {
	for _, t := range s.tracks {
		if err := s.endSkip(t, t.skipTo); err != nil {
			return err
		}
		if t.pending != nil && s.started {
			if err := s.finalize(t, t.pending, t.typical); err != nil {
				return err
			}
			t.pending, t.slot = nil, sample{}
		}
	}
	if s.segOpen {
		return s.closeSegment()
	}
	return nil
}
