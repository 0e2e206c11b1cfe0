// Package whep is a small WHEP viewer built on pion: it offers to receive
// video and audio, and reassembles H.264 frames so that tests and the live
// benchmark can check and time what a browser would get.
package whep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// StatusError is a WHEP request the server refused.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("WHEP: HTTP %d: %s", e.Code, strings.TrimSpace(e.Body))
}

// Options of a viewer.
type Options struct {
	Token string
	// H265 offers H.265 besides H.264.
	H265 bool
	// Annex receives every complete H.264 frame in Annex-B form (for a
	// decoder), if set.
	Annex io.Writer
	// TCPOnly gathers and uses ICE-TCP candidates only, as a viewer behind
	// a firewall that blocks UDP.
	TCPOnly bool
}

// Viewer is one WHEP session.
type Viewer struct {
	pc       *webrtc.PeerConnection
	location string
	token    string
	answered time.Time
	Answer   string // the server's SDP answer
	Video    string // negotiated video mime type
	Audio    string

	mu    sync.Mutex
	stats Stats
	annex io.Writer
	sock  *net.UDPConn // closed with the connection
}

// Stats is what a viewer received.
type Stats struct {
	Frames, Keyframes int // complete video frames
	VideoBytes        int
	AudioPackets      int
	// FirstKeyframe is the time from the answer to the first complete
	// keyframe; zero until one came.
	FirstKeyframe time.Duration
	// ICEConnected and Connected are the times from the answer to ICE
	// connectivity and to the whole connection (DTLS too) being up.
	ICEConnected, Connected time.Duration
	// FirstFrameHasParams: the first frame carried SPS and PPS.
	FirstFrameHasParams bool
	LastFrame           time.Time
}

// Dial offers to receive endpoint's stream and waits for the answer.
func Dial(ctx context.Context, endpoint string, o Options) (*Viewer, error) {
	// What a browser offers: H.264 in several profiles, Opus, G.711; H.265
	// only when asked (as only some browsers do).
	me := &webrtc.MediaEngine{}
	codecs := []struct {
		c    webrtc.RTPCodecCapability
		pt   webrtc.PayloadType
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, 102, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"}, 104, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"}, 106, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, 111, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, 0, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, 8, webrtc.RTPCodecTypeAudio},
	}
	if o.H265 {
		codecs = append(codecs, codecs[0])
		codecs[len(codecs)-1].c, codecs[len(codecs)-1].pt = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}, 49
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c.c, PayloadType: c.pt}, c.kind); err != nil {
			return nil, err
		}
	}
	// A receiver's interceptors: NACKs for lost packets and receiver
	// reports (a browser also sends congestion feedback; the relay does not
	// use it).
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	ir.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(rr)
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	var sock *net.UDPConn
	if o.TCPOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	} else {
		// One loopback socket with a receive buffer the size a browser
		// uses (the default 208 KiB is 0.4 s of a 4 Mbit/s stream, and a
		// busy load generator would lose packets in its own kernel).
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		sock.SetReadBuffer(4 << 20)
		se.SetICEUDPMux(webrtc.NewICEUDPMux(nil, sock))
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		if sock != nil {
			sock.Close()
		}
		return nil, err
	}
	v := &Viewer{pc: pc, token: o.Token, annex: o.Annex, sock: sock}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			v.shutdown()
			return nil, err
		}
	}
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		if st == webrtc.ICEConnectionStateConnected {
			v.mu.Lock()
			v.stats.ICEConnected = time.Since(v.answered)
			v.mu.Unlock()
		}
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			v.mu.Lock()
			v.stats.Connected = time.Since(v.answered)
			v.mu.Unlock()
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() == webrtc.RTPCodecTypeVideo {
			v.mu.Lock()
			v.Video = t.Codec().MimeType
			v.mu.Unlock()
			v.readVideo(t)
			return
		}
		v.mu.Lock()
		v.Audio = t.Codec().MimeType
		v.mu.Unlock()
		for {
			if _, _, err := t.ReadRTP(); err != nil {
				return
			}
			v.mu.Lock()
			v.stats.AudioPackets++
			v.mu.Unlock()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		gathered := webrtc.GatheringCompletePromise(pc)
		if err = pc.SetLocalDescription(offer); err == nil {
			<-gathered
		}
	}
	if err != nil {
		v.shutdown()
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", endpoint, strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.shutdown()
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		v.shutdown()
		return nil, &StatusError{Code: resp.StatusCode, Body: string(body)}
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		v.shutdown()
		return nil, errors.New("WHEP: 201 without a Location")
	}
	v.location = loc.String()
	v.answered = time.Now()
	v.Answer = string(body)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// Location is the session's URL.
func (v *Viewer) Location() *url.URL { u, _ := url.Parse(v.location); return u }

// readVideo reassembles H.264 frames (marker bit ends one).
func (v *Viewer) readVideo(t *webrtc.TrackRemote) {
	var pkt codecs.H264Packet
	var frame []byte
	broken := false
	var lastSeq uint16
	first := true
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		if !first && p.SequenceNumber != lastSeq+1 {
			broken = true // a lost packet: drop the frame
		}
		first, lastSeq = false, p.SequenceNumber
		if !strings.EqualFold(t.Codec().MimeType, webrtc.MimeTypeH264) {
			v.count(p, nil)
			continue
		}
		nal, err := pkt.Unmarshal(p.Payload)
		if err != nil {
			broken = true
		}
		frame = append(frame, nal...)
		if !p.Marker {
			continue
		}
		if !broken {
			v.count(p, frame)
		}
		frame, broken = frame[:0], false
	}
}

func (v *Viewer) count(p *rtp.Packet, frame []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if frame == nil { // not H.264: count packets with the marker as frames
		if p.Marker {
			v.stats.Frames++
		}
		v.stats.VideoBytes += len(p.Payload)
		return
	}
	types := nalTypes(frame)
	key := types[5]
	if v.stats.Frames == 0 && v.stats.Keyframes == 0 && !key {
		return // a decoder needs a keyframe first: what precedes it is useless
	}
	if v.stats.Frames == 0 {
		v.stats.FirstFrameHasParams = types[7] && types[8]
		v.stats.FirstKeyframe = time.Since(v.answered)
	}
	v.stats.Frames++
	if key {
		v.stats.Keyframes++
	}
	v.stats.VideoBytes += len(frame)
	v.stats.LastFrame = time.Now()
	if v.annex != nil {
		v.annex.Write(frame)
	}
}

// nalTypes lists the NAL unit types of an Annex-B frame.
func nalTypes(frame []byte) map[int]bool {
	out := map[int]bool{}
	for _, n := range bytes.Split(frame, []byte{0, 0, 1}) {
		n = bytes.TrimRight(n, "\x00")
		if len(n) > 0 {
			out[int(n[0]&0x1f)] = true
		}
	}
	return out
}

// Stats returns what was received so far.
func (v *Viewer) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// Codecs returns the negotiated video and audio mime types, once tracks came.
func (v *Viewer) Codecs() (video, audio string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.Video, v.Audio
}

// Close hangs up (WHEP DELETE) and closes the connection.
func (v *Viewer) Close() error {
	req, _ := http.NewRequest("DELETE", v.location, nil)
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
	var err error
	if resp, derr := http.DefaultClient.Do(req); derr != nil {
		err = derr
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = &StatusError{Code: resp.StatusCode}
		}
	}
	v.shutdown()
	return err
}

func (v *Viewer) shutdown() {
	v.pc.Close()
	if v.sock != nil {
		v.sock.Close()
	}
}
