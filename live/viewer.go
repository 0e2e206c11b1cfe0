package live

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/media"
)

const (
	mtu = 1200
	// A unit older than this when it is sent is catching up (the kept GOP,
	// a transcoder's first output): its timestamp follows the previous one
	// closely, so the browser decodes it at once instead of playing the
	// backlog in real time, and the picture reaches the live edge.
	staleAfter = 150 * time.Millisecond
	// connectTimeout bounds ICE and DTLS after the answer.
	connectTimeout = 20 * time.Second
)

// viewer is one WHEP session: a peer connection that receives a stream.
type viewer struct {
	r    *Relay
	s    *stream
	id   string
	user string
	view evidence.LiveView

	pc        *webrtc.PeerConnection
	sub       *subscriber
	tracks    map[*output]*sendTrack
	derived   []*derived
	videoDesc string
	audioDesc string
	audited   atomic.Bool
	held      map[string]bool // slot pools holding this session (Options.Slots); under r.mu

	connected chan struct{}
	connOnce  sync.Once
	done      chan struct{}
	closeOnce sync.Once
	dropped   atomic.Uint64
}

// sendTrack is one of a viewer's outgoing tracks.
type sendTrack struct {
	kind    string // "video" or "audio"
	codec   media.Codec
	track   *webrtc.TrackLocalStaticRTP
	payload rtp.Payloader
	seq     uint16
	ts      uint32
	lastPTS int64
	started bool
	first   bool // a keyframe has been sent
	buf     []byte
}

// negotiate chooses what the viewer gets, sets up its peer connection and
// returns the SDP answer with every candidate (no trickle ICE needed).
func (v *viewer) negotiate(ctx context.Context, sdpOffer string) (string, error) {
	off, err := parseOffer(sdpOffer)
	if err != nil {
		return "", err
	}
	v.tracks = map[*output]*sendTrack{}
	v.sub = newSubscriber(1024, func(n int) {
		v.dropped.Add(uint64(n))
		v.r.m.dropped.WithLabelValues("viewer").Add(float64(n))
	})
	pc, err := v.r.api.NewPeerConnection(webrtc.Configuration{ICEServers: v.r.o.ICEServers})
	if err != nil {
		return "", fmt.Errorf("live: peer connection: %w", err)
	}
	v.pc = pc
	if off.video {
		if err := v.chooseVideo(off); err != nil {
			return "", err
		}
	}
	if off.audio {
		if err := v.chooseAudio(off); err != nil {
			return "", err
		}
	}
	if len(v.tracks) == 0 {
		why := ""
		for _, d := range []string{v.videoDesc, v.audioDesc} {
			if d != "" {
				why += "; " + d
			}
		}
		return "", fmt.Errorf("%w (stream: %s; the viewer offered %s%s)", ErrNoMedia, v.s.describe(), off.describe(), why)
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			v.connOnce.Do(func() {
				close(v.connected)
				v.attach()
			})
		case webrtc.PeerConnectionStateFailed:
			go v.close("connection failed")
		case webrtc.PeerConnectionStateClosed:
			go v.close("connection closed")
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdpOffer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("live: local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(5 * time.Second):
		return "", errors.New("live: ICE gathering did not finish in 5 s")
	}
	return pc.LocalDescription().SDP, nil
}

func (v *viewer) chooseVideo(off offer) error {
	src := v.s.video
	if src == nil {
		return nil
	}
	tc := v.r.o.Transcoders.Video
	switch c := src.track.Codec; {
	case c == media.H265 && off.has(webrtc.MimeTypeH265):
		v.videoDesc = "H265"
		return v.addTrack("video", src, capFor(media.H265, ""))
	case c == media.H264 && (!src.hasReorder() || tc == nil):
		profile := off.h264Profile(src.currentParams())
		if profile == "" {
			return nil
		}
		v.videoDesc = "H264"
		if src.hasReorder() {
			v.videoDesc = "H264 with B-frames (no transcoder: may stutter)"
		}
		return v.addTrack("video", src, capFor(media.H264, profile))
	case tc != nil && off.h264Profile(nil) != "":
		why := "from " + string(c)
		if c == media.H264 {
			why = "B-frames removed"
		}
		d := v.s.transcoded("video", src, tc, media.Track{Codec: media.H264, ClockRate: 90000,
			Width: src.track.Width, Height: src.track.Height})
		v.derived = append(v.derived, d)
		v.videoDesc = "H264 (transcoded: " + why + ")"
		return v.addTrack("video", d.out, capFor(media.H264, off.h264Profile(nil)))
	case tc == nil && c == media.H265 && off.h264Profile(nil) != "":
		// A build without transcoders (-tags nocgo): said, so the viewer,
		// the audit and the operator know why there is no picture.
		v.videoDesc = "none (H265 needs a transcoder for this viewer; this server has none)"
	}
	return nil
}

func (v *viewer) chooseAudio(off offer) error {
	src := v.s.audio
	if src == nil {
		return nil
	}
	switch c := src.track.Codec; {
	case c == media.Opus && off.has(webrtc.MimeTypeOpus):
		v.audioDesc = "Opus"
		return v.addTrack("audio", src, opusCap)
	case (c == media.PCMU || c == media.PCMA) && src.track.ClockRate == 8000 && src.track.Channels <= 1 && off.has("audio/"+string(c)):
		v.audioDesc = string(c)
		return v.addTrack("audio", src, capFor(c, ""))
	case c == media.AAC && v.r.o.Transcoders.Audio != nil && off.has(webrtc.MimeTypeOpus):
		d := v.s.transcoded("audio", src, v.r.o.Transcoders.Audio, media.Track{Codec: media.Opus, ClockRate: 48000, Channels: 2})
		v.derived = append(v.derived, d)
		v.audioDesc = "Opus (transcoded from AAC)"
		return v.addTrack("audio", d.out, opusCap)
	case c == media.AAC && v.r.o.Transcoders.Audio == nil && off.has(webrtc.MimeTypeOpus):
		v.audioDesc = "none (AAC needs a transcoder; this server has none)"
	}
	return nil
}

func (v *viewer) addTrack(kind string, out *output, c webrtc.RTPCodecCapability) error {
	t, err := webrtc.NewTrackLocalStaticRTP(c, kind, "bodycam-"+v.s.device)
	if err != nil {
		return err
	}
	sender, err := v.pc.AddTrack(t)
	if err != nil {
		return fmt.Errorf("live: add %s track: %w", kind, err)
	}
	var d *derived
	for _, dd := range v.derived {
		if dd.out == out {
			d = dd
		}
	}
	go func() { // RTCP: NACKs and receiver reports feed the interceptors
		var last time.Time
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			if d == nil || time.Since(last) < time.Second {
				continue
			}
			for _, p := range pkts {
				switch p.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					// A camera's keyframes come when they come; a
					// transcoder's can come now, for everyone watching it.
					d.wantKey.Store(true)
					last = time.Now()
				}
			}
		}
	}()
	st := &sendTrack{kind: kind, codec: out.track.Codec, track: t, seq: uint16(rand.Uint32())}
	switch out.track.Codec {
	case media.H264:
		st.payload = &codecs.H264Payloader{}
	case media.H265:
		st.payload = &codecs.H265Payloader{}
	case media.Opus:
		st.payload = &codecs.OpusPayloader{}
	default:
		st.payload = &codecs.G711Payloader{}
	}
	v.tracks[out] = st
	return nil
}

// attach starts the flow of media once the connection is up: the kept GOP
// first, then live units.
func (v *viewer) attach() {
	for _, video := range []bool{true, false} { // video first: its GOP leads
		for out := range v.tracks {
			if out.track.Codec.Video() == video {
				out.subscribe(v.sub)
			}
		}
	}
	for _, d := range v.derived {
		d.start()
	}
	go v.send(time.Now())
}

// watchConnect ends a session whose connection never comes up.
func (v *viewer) watchConnect() {
	t := time.NewTimer(connectTimeout)
	defer t.Stop()
	select {
	case <-v.connected:
	case <-v.done:
	case <-t.C:
		v.close("never connected")
	}
}

func (v *viewer) isConnected() bool {
	select {
	case <-v.connected:
		return true
	default:
		return false
	}
}

// send is the viewer's writer goroutine.
func (v *viewer) send(connected time.Time) {
	for {
		select {
		case <-v.done:
			return
		case it := <-v.sub.ch:
			st := v.tracks[it.out]
			if st == nil {
				continue
			}
			if err := st.write(it.unit, it.burst); err != nil {
				if errors.Is(err, errClosedPipe) {
					return
				}
				v.r.m.errors.WithLabelValues("send").Inc()
				continue
			}
			v.r.m.sent.WithLabelValues(st.kind).Inc()
			if st.kind == "video" && it.unit.Keyframe && !st.first {
				st.first = true
				v.r.m.firstFrame.Observe(time.Since(connected).Seconds())
			}
			if !it.burst && !it.unit.Recv.IsZero() {
				v.r.m.delay.WithLabelValues(st.kind).Observe(time.Since(it.unit.Recv).Seconds())
			}
		}
	}
}

var errClosedPipe = errors.New("closed")

// write packetizes one unit and sends it.
func (st *sendTrack) write(u media.Unit, burst bool) error {
	var payload []byte
	if st.codec.Video() {
		st.buf = st.buf[:0]
		for _, n := range u.NALUs {
			if len(n) == 0 || (st.codec == media.H264 && n[0]&0x1f == 9) { // access unit delimiters are not needed
				continue
			}
			st.buf = append(st.buf, 0, 0, 0, 1)
			st.buf = append(st.buf, n...)
		}
		payload = st.buf
	} else {
		payload = u.Data
	}
	if len(payload) == 0 {
		return nil
	}
	ts := st.timestamp(u, burst)
	parts := st.payload.Payload(mtu, payload)
	for i, p := range parts {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: st.seq, Timestamp: ts,
			Marker: st.codec.Video() && i == len(parts)-1}, Payload: p}
		st.seq++
		if err := st.track.WriteRTP(&pkt); err != nil {
			return err
		}
	}
	return nil
}

// timestamp maps a unit's PTS to the viewer's RTP clock: a random start,
// then the units' own spacing, except that units catching up are packed
// one tick apart.
func (st *sendTrack) timestamp(u media.Unit, burst bool) uint32 {
	switch {
	case !st.started:
		st.started = true
		st.ts = rand.Uint32()
	case st.codec.Video() && (burst || time.Since(u.Recv) > staleAfter):
		st.ts++
	default:
		d := u.PTS - st.lastPTS
		if d <= 0 {
			d = 1
		}
		st.ts += uint32(d)
	}
	st.lastPTS = u.PTS
	return st.ts
}

// close ends the session once, for reason, and records its end.
func (v *viewer) close(reason string) {
	v.closeOnce.Do(func() {
		close(v.done)
		for out := range v.tracks {
			out.unsubscribe(v.sub)
		}
		v.s.drop(v)
		v.r.release(v)
		v.r.releaseSlots(v)
		go v.pc.Close()
		if !v.audited.Load() {
			return
		}
		v.r.m.sessions.Dec()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := v.r.o.Audit.EndLiveView(ctx, v.id, time.Now().UTC(), reason); err != nil {
			v.r.m.errors.WithLabelValues("audit").Inc()
			v.r.log.Error("live viewing end not recorded", "session", v.id, "err", err)
		}
		v.r.log.Info("live viewing ended", "session", v.id, "device", v.s.device, "user", v.user,
			"reason", reason, "dropped_units", v.dropped.Load())
	})
}

// abandon undoes a session that never got going (bad offer, no audit).
func (v *viewer) abandon() {
	v.closeOnce.Do(func() {
		close(v.done)
		v.r.release(v)
		v.r.releaseSlots(v)
		if v.pc != nil {
			v.pc.Close()
		}
	})
}
