package live

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/media"
)

const (
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
	sends     []*sendTrack // video first: its GOP leads
	derived   []*derived
	videoDesc string
	audioDesc string
	audited   atomic.Bool
	held      map[string]bool // slot pools holding this session (Options.Slots); under r.mu

	// Under s.mu: the group writing this viewer, and whether it has gone
	// (a late attach must not bring it back).
	group *group
	gone  bool

	connected   chan struct{}
	connectedAt time.Time // set before the viewer is attached
	connOnce    sync.Once
	done        chan struct{}
	closeOnce   sync.Once
	dropped     atomic.Uint64
}

// negotiate chooses what the viewer gets, sets up its peer connection and
// returns the SDP answer with every candidate (no trickle ICE needed).
func (v *viewer) negotiate(ctx context.Context, sdpOffer string) (string, error) {
	off, err := parseOffer(sdpOffer)
	if err != nil {
		return "", err
	}
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
	if len(v.sends) == 0 {
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
	st := newSendTrack(v, kind, out, c)
	sender, err := v.pc.AddTrack(st)
	if err != nil {
		return fmt.Errorf("live: add %s track: %w", kind, err)
	}
	var d *derived
	for _, dd := range v.derived {
		if dd.out == out {
			d = dd
		}
	}
	go st.readRTCP(sender, d)
	if st.video {
		v.sends = append([]*sendTrack{st}, v.sends...)
	} else {
		v.sends = append(v.sends, st)
	}
	return nil
}

// attach starts the flow of media once the connection is up: the kept GOP
// first, then live units.
func (v *viewer) attach() {
	v.connectedAt = time.Now()
	if !v.s.attach(v) {
		return
	}
	for _, d := range v.derived {
		d.start()
	}
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

// close ends the session once, for reason, and records its end.
func (v *viewer) close(reason string) {
	v.closeOnce.Do(func() {
		close(v.done)
		v.s.detach(v)
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
		v.s.detach(v)
		v.r.release(v)
		v.r.releaseSlots(v)
		if v.pc != nil {
			v.pc.Close()
		}
	})
}
