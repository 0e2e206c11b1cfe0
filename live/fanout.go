package live

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The fan-out: a stream's viewers are written by groups, each one
// goroutine for up to groupSize viewers. A group wakes once per unit any
// of its outputs makes (never per packet or per viewer), and for each of
// its viewers sends the packets that viewer has not had yet from the
// outputs' shared packet logs: only the RTP header (sequence number,
// timestamp, SSRC, payload type) and the SRTP encryption are the viewer's
// own. The writes of one pass go out together (batchConn: sendmmsg, with
// UDP GSO where the kernel has it).

// groupSize bounds the viewers one goroutine writes; more viewers of a
// stream get more groups, which run in parallel.
const groupSize = 128

// nackHistory is how many of its last video packets a viewer can have
// again on a NACK (the log keeps nackKeep of them).
const nackHistory = 512

// group writes a set of viewers of one stream.
type group struct {
	s        *stream
	wake     chan struct{} // capacity 1: a pending wake-up
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu      sync.Mutex
	viewers []*viewer

	// Only the group's goroutine uses these.
	pass     []*viewer
	observed []observation // units sent live in this pass, for the delay histogram
}

type observation struct {
	video bool
	recv  time.Time
}

func newGroup(s *stream) *group {
	g := &group{s: s, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

// signal wakes the group without waiting.
func (g *group) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (g *group) run() {
	defer close(g.done)
	for {
		select {
		case <-g.quit:
			return
		case <-g.wake:
			g.write()
		}
	}
}

// stop ends the goroutine and waits for it; again, it does nothing.
func (g *group) stop() {
	g.stopOnce.Do(func() { close(g.quit) })
	<-g.done
}

// add binds v's tracks to their outputs and has the group write them from
// now on, starting with the kept GOP.
func (g *group) add(v *viewer) bool {
	for _, st := range v.sends {
		start, burstEnd, ok := st.out.watch(g)
		if !ok {
			for _, done := range v.sends {
				if done == st {
					break
				}
				done.out.unwatch(g)
			}
			return false
		}
		st.start(start, burstEnd)
	}
	g.mu.Lock()
	g.viewers = append(g.viewers, v)
	g.mu.Unlock()
	g.signal()
	return true
}

// remove stops writing v: found says whether the group had it (then
// unwatch must follow), empty whether the group is now empty.
func (g *group) remove(v *viewer) (found, empty bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, w := range g.viewers {
		if w == v {
			g.viewers = append(g.viewers[:i], g.viewers[i+1:]...)
			found = true
			break
		}
	}
	return found, len(g.viewers) == 0
}

// unwatch unbinds a removed viewer's tracks from their outputs.
func (g *group) unwatch(v *viewer) {
	for _, st := range v.sends {
		st.out.unwatch(g)
	}
}

func (g *group) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.viewers)
}

// write is one pass: every viewer gets what its outputs made since the
// last pass, then the pass's datagrams go out together.
func (g *group) write() {
	g.mu.Lock()
	g.pass = g.pass[:0]
	for _, v := range g.viewers {
		select {
		case <-v.done: // hung up: its tracks are being unbound
		default:
			g.pass = append(g.pass, v)
		}
	}
	g.mu.Unlock()
	r := g.s.r
	now := time.Now()
	g.observed = g.observed[:0]
	var video, audio int
	r.batch.hold()
	for _, v := range g.pass {
		for _, st := range v.sends {
			n := st.pump(g, now)
			if st.video {
				video += n
			} else {
				audio += n
			}
		}
	}
	r.batch.release()
	sent := time.Now()
	for _, o := range g.observed {
		h := r.m.delayAudio
		if o.video {
			h = r.m.delayVideo
		}
		h.Observe(sent.Sub(o.recv).Seconds())
	}
	r.m.sentVideo.Add(float64(video))
	r.m.sentAudio.Add(float64(audio))
	for _, v := range g.pass {
		for _, st := range v.sends {
			st.report(now)
		}
	}
}

// sendTrack is one of a viewer's outgoing tracks: a webrtc.TrackLocal
// whose packets come from an output's log, with this viewer's header.
type sendTrack struct {
	v     *viewer
	out   *output
	kind  string // "video" or "audio"
	video bool
	codec webrtc.RTPCodecCapability
	clock uint32
	id    string // the track and stream ids of the SDP
	sid   string

	// Set by Bind (before the connection is up).
	mu    sync.Mutex
	ssrc  uint32
	pt    uint8
	w     webrtc.TrackLocalWriter
	bound bool

	// The group's goroutine owns these (start copies the binding).
	wr       webrtc.TrackLocalWriter
	next     uint64 // log index of the next packet to consider
	burstEnd uint64 // packets before it are the GOP burst
	state    wait
	seq      uint16
	ts       uint32
	lastPTS  int64
	started  bool
	firstKey bool // a keyframe has been sent
	dead     bool // the connection is closed: nothing more to write
	hdr      rtp.Header
	packets  uint32 // for sender reports
	octets   uint32
	lastTS   uint32
	lastSent time.Time
	lastSR   time.Time

	// Video: the log index and timestamp of each recently sent sequence
	// number, for NACKs (read by the RTCP goroutine).
	histMu sync.Mutex
	hist   []sentPacket
}

type sentPacket struct {
	idx uint64
	ts  uint32
	seq uint16
	ok  bool
}

func newSendTrack(v *viewer, kind string, out *output, c webrtc.RTPCodecCapability) *sendTrack {
	st := &sendTrack{v: v, out: out, kind: kind, video: kind == "video", codec: c, clock: c.ClockRate,
		id: kind, sid: "bodycam-" + v.s.device, seq: uint16(rand.Uint32())}
	if st.video {
		st.hist = make([]sentPacket, nackHistory)
	}
	return st
}

// Bind is pion's: the negotiated SSRC, payload type and writer.
func (st *sendTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, ok := matchCodec(st.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ssrc, st.pt, st.w, st.bound = uint32(ctx.SSRC()), uint8(c.PayloadType), ctx.WriteStream(), true
	return c, nil
}

// Unbind is pion's: the track is no longer sent.
func (st *sendTrack) Unbind(webrtc.TrackLocalContext) error {
	st.mu.Lock()
	st.bound = false
	st.mu.Unlock()
	return nil
}

func (st *sendTrack) ID() string       { return st.id }
func (st *sendTrack) RID() string      { return "" }
func (st *sendTrack) StreamID() string { return st.sid }
func (st *sendTrack) Kind() webrtc.RTPCodecType {
	if st.video {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}

// matchCodec finds want among the negotiated codecs: the same MIME type
// and format parameters, else the same H.264 profile, else the same MIME
// type.
func matchCodec(want webrtc.RTPCodecCapability, have []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	best, score := webrtc.RTPCodecParameters{}, 0
	for _, c := range have {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		s := 1
		switch {
		case strings.EqualFold(c.SDPFmtpLine, want.SDPFmtpLine):
			s = 3
		case strings.EqualFold(want.MimeType, webrtc.MimeTypeH264):
			a, b := fmtpMap(c.SDPFmtpLine), fmtpMap(want.SDPFmtpLine)
			if len(a["profile-level-id"]) == 6 && len(b["profile-level-id"]) == 6 &&
				strings.EqualFold(a["profile-level-id"][:4], b["profile-level-id"][:4]) &&
				a["packetization-mode"] == b["packetization-mode"] {
				s = 2
			}
		}
		if s > score {
			best, score = c, s
		}
	}
	return best, score > 0
}

// start places the writer in the log; the group calls it before it
// writes the track.
func (st *sendTrack) start(next, burstEnd uint64) {
	ssrc, pt, w, _ := st.binding()
	st.hdr, st.wr = rtp.Header{Version: 2, SSRC: ssrc, PayloadType: pt}, w
	st.next, st.burstEnd = next, burstEnd
	st.state = flowing
	if st.video {
		st.state = joining
	}
}

// binding is what Bind said; ok is false before Bind or after Unbind.
func (st *sendTrack) binding() (ssrc uint32, pt uint8, w webrtc.TrackLocalWriter, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ssrc, st.pt, st.w, st.bound
}

// pump sends what the output made since the last pass and returns how
// many units it sent live (not from the burst).
func (st *sendTrack) pump(g *group, now time.Time) (units int) {
	if st.dead || st.wr == nil {
		return 0
	}
	pkts, first := st.out.since(st.next)
	if first > st.next && st.state == flowing {
		// The log moved on without this viewer: a writer that could not
		// keep up. Its video resumes at a keyframe.
		st.lose(1)
	}
	st.next = first + uint64(len(pkts))
	if len(pkts) == 0 {
		return 0
	}
	if st.video {
		st.histMu.Lock()
		defer st.histMu.Unlock()
	}
	for i := range pkts {
		p := &pkts[i]
		idx := first + uint64(i)
		if st.state != flowing {
			if p.flags&pktFirst == 0 || (st.video && p.flags&pktKey == 0) {
				if st.state == lost && p.flags&pktFirst != 0 {
					st.dropped(1)
				}
				continue
			}
			st.state = flowing
		}
		if p.flags&pktFirst != 0 {
			burst := idx < st.burstEnd
			st.timestamp(p.pts, burst || now.Sub(p.recv) > staleAfter)
			if !burst && !p.recv.IsZero() {
				units++
				g.observed = append(g.observed, observation{st.video, p.recv})
			}
			if st.video && p.flags&pktKey != 0 && !st.firstKey {
				st.firstKey = true
				st.v.r.m.firstFrame.Observe(now.Sub(st.v.connectedAt).Seconds())
			}
		}
		st.hdr.SequenceNumber, st.hdr.Timestamp = st.seq, st.ts
		st.hdr.Marker = st.video && p.flags&pktLast != 0
		if _, err := st.wr.WriteRTP(&st.hdr, p.payload); err != nil {
			if errors.Is(err, io.ErrClosedPipe) {
				st.dead = true
				return units
			}
			// A viewer whose transport takes no more (ICE-TCP's buffer
			// full): it loses this unit, its video the rest up to the
			// next keyframe.
			st.v.r.m.errors.WithLabelValues("send").Inc()
			st.lose(1)
			continue
		}
		if st.video {
			st.hist[st.seq%nackHistory] = sentPacket{idx: idx, ts: st.ts, seq: st.seq, ok: true}
		}
		st.seq++
		st.packets++
		st.octets += uint32(len(p.payload))
	}
	st.lastTS, st.lastSent = st.ts, now
	return units
}

// lose skips the rest of the current unit and, for video, every unit up to
// the next keyframe; n units are counted as dropped now.
func (st *sendTrack) lose(n int) {
	st.dropped(n)
	st.state = lost
}

func (st *sendTrack) dropped(n int) {
	st.v.dropped.Add(uint64(n))
	st.v.r.m.dropped.WithLabelValues("viewer").Add(float64(n))
}

// timestamp maps a unit's PTS to the viewer's RTP clock: a random start,
// then the units' own spacing, except that video units catching up (the
// kept GOP, a transcoder's first output) are packed one tick apart, so
// the browser shows them at once and reaches the live edge.
func (st *sendTrack) timestamp(pts int64, catchingUp bool) {
	switch {
	case !st.started:
		st.started = true
		st.ts = rand.Uint32()
	case st.video && catchingUp:
		st.ts++
	default:
		d := pts - st.lastPTS
		if d <= 0 {
			d = 1
		}
		st.ts += uint32(d)
	}
	st.lastPTS = pts
}

// report sends an RTCP sender report about once a second (browsers
// synchronize audio and video with them).
func (st *sendTrack) report(now time.Time) {
	if st.dead || st.packets == 0 || now.Sub(st.lastSR) < time.Second || st.v.pc == nil {
		return
	}
	st.lastSR = now
	rtpTime := st.lastTS + uint32(now.Sub(st.lastSent).Seconds()*float64(st.clock))
	sr := &rtcp.SenderReport{SSRC: st.hdr.SSRC, NTPTime: ntpTime(now), RTPTime: rtpTime,
		PacketCount: st.packets, OctetCount: st.octets}
	if err := st.v.pc.WriteRTCP([]rtcp.Packet{sr}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		st.v.r.m.errors.WithLabelValues("send").Inc()
	}
}

// ntpTime is t in NTP's 32.32 fixed point format.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // 1900 to 1970, in seconds
	ns := uint64(t.UnixNano())
	sec := ns/1e9 + ntpEpochOffset
	frac := (ns % 1e9) << 32 / 1e9
	return sec<<32 | frac
}

// resend answers a NACK: the packets still in the history and the log go
// again, with the sequence numbers and timestamps they had.
func (st *sendTrack) resend(seqs []uint16) (n int) {
	ssrc, pt, w, ok := st.binding()
	if !st.video || !ok {
		return 0
	}
	for _, seq := range seqs {
		st.histMu.Lock()
		e := st.hist[seq%nackHistory]
		st.histMu.Unlock()
		if !e.ok || e.seq != seq {
			continue
		}
		p, ok := st.out.packetAt(e.idx)
		if !ok {
			continue
		}
		h := rtp.Header{Version: 2, SSRC: ssrc, PayloadType: pt, SequenceNumber: seq, Timestamp: e.ts,
			Marker: p.flags&pktLast != 0}
		if _, err := w.WriteRTP(&h, p.payload); err != nil {
			return n
		}
		n++
	}
	return n
}

// readRTCP reads what the viewer says about the track: NACKs are answered
// from the log, picture loss makes a transcoder send a keyframe. It ends
// with the connection.
func (st *sendTrack) readRTCP(sender *webrtc.RTPSender, d *derived) {
	var lastPLI time.Time
	var seqs []uint16
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				if ssrc, _, _, _ := st.binding(); p.MediaSSRC != ssrc {
					continue
				}
				seqs = seqs[:0]
				for _, pair := range p.Nacks {
					pair.Range(func(s uint16) bool { seqs = append(seqs, s); return true })
				}
				st.v.r.m.resent.Add(float64(st.resend(seqs)))
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				// A camera's keyframes come when they come; a
				// transcoder's can come now, for everyone watching it.
				if d != nil && time.Since(lastPLI) >= time.Second {
					d.wantKey.Store(true)
					lastPLI = time.Now()
				}
			}
		}
	}
}

func (st *sendTrack) String() string { return fmt.Sprintf("%s track of %s", st.kind, st.v.id) }
