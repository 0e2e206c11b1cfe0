package live

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/media"
)

// noAudit records nothing and refuses nothing.
type noAudit struct{}

func (noAudit) StartLiveView(context.Context, evidence.LiveView) error       { return nil }
func (noAudit) EndLiveView(context.Context, string, time.Time, string) error { return nil }

// testRelay is a relay on loopback (ICE over UDP, through the batching
// socket) running until the test ends.
func testRelay(t *testing.T, reg *prometheus.Registry) (*Relay, func()) {
	t.Helper()
	r, err := New(Options{UDPAddr: "127.0.0.1:0", Loopback: true, Audit: noAudit{}, Registry: reg,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return r, stop
}

// peer is a pion receiver, as a browser offers: H.264 and PCMU, NACKs.
type peer struct {
	pc      *webrtc.PeerConnection
	session Session

	mu    sync.Mutex
	video []*rtp.Packet
	audio []*rtp.Packet
	ssrc  uint32 // of the video track
}

func dial(t *testing.T, r *Relay, device, user string) *peer {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for _, c := range []struct {
		c    webrtc.RTPCodecCapability
		pt   webrtc.PayloadType
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}}}, 102, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, 0, webrtc.RTPCodecTypeAudio},
	} {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c.c, PayloadType: c.pt}, c.kind); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	// The test asks again for a packet it has (as if lost): SRTP would
	// take it for a replay.
	se.DisableSRTPReplayProtection(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{pc: pc}
	t.Cleanup(func() { pc.Close() })
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		if video {
			p.mu.Lock()
			p.ssrc = uint32(tr.SSRC())
			p.mu.Unlock()
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p.mu.Lock()
			if video {
				p.video = append(p.video, pkt)
			} else {
				p.audio = append(p.audio, pkt)
			}
			p.mu.Unlock()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	p.session, err = r.Offer(context.Background(), OfferRequest{Device: device, User: user, SDP: pc.LocalDescription().SDP})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: p.session.Answer}); err != nil {
		t.Fatal(err)
	}
	return p
}

// frames reassembles the video received so far (frames ending with a
// marker), as Annex-B.
func (p *peer) frames(t *testing.T) [][]byte {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]byte
	var cur []byte
	var d codecs.H264Packet
	for i, pkt := range p.video {
		if i > 0 && pkt.SequenceNumber != p.video[i-1].SequenceNumber+1 {
			t.Fatalf("video sequence numbers %d then %d", p.video[i-1].SequenceNumber, pkt.SequenceNumber)
		}
		b, err := d.Unmarshal(pkt.Payload)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		cur = append(cur, b...)
		if pkt.Marker {
			out = append(out, cur)
			cur = nil
		}
	}
	return out
}

func (p *peer) audioPackets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.audio)
}

// bigFrame is frame n of a stream with a keyframe every 30, large enough
// to need FU-As (keyframes 6 KB, others 1.5 KB); its bytes say its number.
func bigFrame(n int) media.Unit {
	key := n%30 == 0
	size := 1500
	if key {
		size = 6000
	}
	nal := bytes.Repeat([]byte{byte(n)}, size)
	nal[0] = 0x41
	if key {
		nal[0] = 0x65
	}
	pts := int64(n) * 3000
	return media.Unit{PTS: pts, DTS: pts, Keyframe: key, NALUs: [][]byte{nal}, Recv: time.Now()}
}

// annexB is what a viewer reassembles from a unit: parameter sets in
// front of keyframes (the stream's, from its track).
func annexB(u media.Unit) []byte {
	var b []byte
	if u.Keyframe {
		u.NALUs = append([][]byte{sps, pps}, u.NALUs...)
	}
	for _, n := range u.NALUs {
		b = append(append(b, 0, 0, 0, 1), n...)
	}
	return b
}

// publish writes a stream's units at a camera's pace until stop: H.264
// from frame from on, and a G.711 frame with each.
func publish(s *stream, from int, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for n := from; ; n++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			s.Write(0, bigFrame(n))
			s.Write(1, media.Unit{PTS: int64(n) * 160, Data: bytes.Repeat([]byte{0xff}, 160), Recv: time.Now()})
		}
	}()
	return done
}

// Viewers of one stream get the same video, from the kept GOP's keyframe
// (with its parameter sets) on, every unit whole and in order, and its
// audio; a NACK is answered with the packet it names, as first sent. When
// everything has stopped, no goroutine is left (pion's test style: count
// before and after, with a settle loop).
func TestRelayViewers(t *testing.T) {
	before := runtime.NumGoroutine()
	reg := prometheus.NewRegistry()
	r, stopRelay := testRelay(t, reg)
	s := r.Start("cam-1", "rec-1", []media.Track{h264Track(), {Codec: media.PCMU, ClockRate: 8000, Channels: 1}})
	for n := range 40 { // the kept GOP is 30..39
		s.Write(0, bigFrame(n))
	}
	// Every viewer joins and gets the kept GOP before the stream goes on,
	// so that a slow join (a busy machine) cannot move the GOP it is given.
	var peers []*peer
	for i := range 3 {
		peers = append(peers, dial(t, r, "cam-1", fmt.Sprintf("u%d", i)))
	}
	for _, p := range peers {
		waitFor(t, func() bool { return len(p.frames(t)) >= 10 })
	}
	stop := make(chan struct{})
	published := publish(s, 40, stop)
	for _, p := range peers {
		waitFor(t, func() bool { return len(p.frames(t)) >= 40 && p.audioPackets() > 10 })
	}
	close(stop)
	<-published
	for i, p := range peers {
		got := p.frames(t)
		first := 30 // the kept GOP's keyframe
		for j, f := range got {
			if want := annexB(bigFrame(first + j)); !bytes.Equal(f, want) {
				t.Fatalf("viewer %d, frame %d: %d bytes, want frame %d (%d bytes)", i, j, len(f), first+j, len(want))
			}
		}
		if p.session.Video != "H264" || p.session.Audio != "PCMU" {
			t.Fatalf("viewer %d gets %q and %q", i, p.session.Video, p.session.Audio)
		}
	}

	// A NACK for a packet received: it comes again, the same. First the
	// stream settles: what the relay still had in flight when the
	// publisher stopped (a busy machine delays it) arrives before the NACK.
	p := peers[0]
	for last, still := -1, 0; still < 5; time.Sleep(100 * time.Millisecond) {
		p.mu.Lock()
		n := len(p.video)
		p.mu.Unlock()
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	p.mu.Lock()
	lost := *p.video[len(p.video)/2]
	n := len(p.video)
	ssrc := p.ssrc
	p.mu.Unlock()
	if err := p.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc,
		Nacks: []rtcp.NackPair{{PacketID: lost.SequenceNumber}}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.video) > n })
	p.mu.Lock()
	again := p.video[n]
	p.video = p.video[:n] // keep the sequence check of frames() meaningful
	p.mu.Unlock()
	if again.SequenceNumber != lost.SequenceNumber || again.Timestamp != lost.Timestamp || !bytes.Equal(again.Payload, lost.Payload) {
		t.Fatalf("NACKed %d (ts %d), got %d (ts %d)", lost.SequenceNumber, lost.Timestamp, again.SequenceNumber, again.Timestamp)
	}
	if got := counter(t, reg, "bodycam_live_resent_packets_total"); got != 1 {
		t.Fatalf("resent packets %v, want 1", got)
	}

	for _, p := range peers {
		if err := r.Hangup("cam-1", p.session.ID, "", true); err != nil {
			t.Fatal(err)
		}
		p.pc.Close()
	}
	s.Close()
	stopRelay()
	checkGoroutines(t, before)
}

// checkGoroutines waits for the goroutines to come back to before.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	var now int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if now = runtime.NumGoroutine(); now <= before {
			return
		}
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Fatalf("%d goroutines left (%d before):\n%s", now, before, buf)
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// When the publisher stops, its viewers' sessions end with it, their
// writers too: nothing is left running.
func TestPublisherStopsWithViewers(t *testing.T) {
	before := runtime.NumGoroutine()
	r, stopRelay := testRelay(t, prometheus.NewRegistry())
	s := r.Start("cam-2", "rec-2", []media.Track{h264Track(), {Codec: media.PCMU, ClockRate: 8000, Channels: 1}})
	for n := range 35 {
		s.Write(0, bigFrame(n))
	}
	stop := make(chan struct{})
	published := publish(s, 35, stop)
	var peers []*peer
	for i := range 2 {
		peers = append(peers, dial(t, r, "cam-2", fmt.Sprintf("u%d", i)))
	}
	for _, p := range peers {
		waitFor(t, func() bool { return len(p.frames(t)) >= 10 })
	}
	close(stop)
	<-published
	s.Close()
	waitFor(t, func() bool { return len(r.Viewers()) == 0 })
	for _, p := range peers {
		p.pc.Close()
	}
	stopRelay()
	checkGoroutines(t, before)
}
