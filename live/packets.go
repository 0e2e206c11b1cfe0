package live

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/bodycam/bodycam/media"
)

// Every access unit of an output is packetized once, for every viewer:
// the RTP payloads, their marker bits and what the writers need to know
// (first packet of a unit, of a keyframe) go into the output's packet log.
// A viewer's writer sends the same payloads with its own header (sequence
// number, timestamp, SSRC, payload type) and its own SRTP.

const (
	// mtu bounds an RTP payload. 1200 leaves room for the RTP header, the
	// SRTP tag and IPv6/UDP within the usual 1280..1500 byte paths.
	mtu = 1200
	// nackKeep is how many recent video packets the log keeps besides the
	// GOP, to answer NACKs: over a second at 4 Mbit/s.
	nackKeep = 512
	// audioKeep is the audio packets kept (no NACKs for audio): the margin
	// of a writer that runs late.
	audioKeep = 64
	// slabSize is the size of the chunks packet payloads are cut from.
	slabSize = 64 << 10
)

// packet is one RTP packet of an output, shared by its viewers. Once in
// the log it never changes, so writers read it without the lock.
type packet struct {
	payload []byte
	pts     int64     // the unit's, in the track's clock rate
	recv    time.Time // when ingest received the unit
	flags   uint8
}

const (
	pktFirst uint8 = 1 << iota // the first packet of its unit
	pktLast                    // the last packet of its unit (video: the marker bit)
	pktKey                     // of a keyframe
)

// packetLog is an output's packets while someone watches it: the kept GOP
// and at least the last nackKeep (video) packets. Indexes count every
// packet the output ever made, so a writer's position stays meaningful
// across trims. Guarded by the output's lock.
type packetLog struct {
	pkts     []packet
	base     uint64 // index of pkts[0]
	gopStart uint64 // index of the kept keyframe's first packet, if gopOK
	gopOK    bool
	slab     []byte // the free end of the current payload chunk
	h265     rtp.Payloader
	annexB   []byte // scratch for the H.265 payloader, which copies its input
}

// next is the index the next packet will get.
func (l *packetLog) next() uint64 { return l.base + uint64(len(l.pkts)) }

// reset empties the log (nobody watches); indexes go on from where they
// were.
func (l *packetLog) reset() {
	l.base = l.next()
	l.pkts, l.gopOK, l.slab, l.h265 = nil, false, nil, nil
}

// alloc cuts n bytes from the current payload chunk. Chunks are never
// reused: a chunk lives as long as a packet in some log points into it.
func (l *packetLog) alloc(n int) []byte {
	if n > slabSize/4 {
		return make([]byte, n)
	}
	if len(l.slab) < n {
		l.slab = make([]byte, slabSize)
	}
	b := l.slab[:n:n]
	l.slab = l.slab[n:]
	return b
}

// add packetizes u (video: parameter sets already in front of keyframes)
// and appends its packets. gopKept says whether the output keeps the GOP
// this unit belongs to.
func (l *packetLog) add(t media.Track, u media.Unit, gopKept bool) {
	first := len(l.pkts)
	switch t.Codec {
	case media.H264:
		l.addH264(u)
	case media.H265:
		l.addH265(u)
	default:
		if len(u.Data) == 0 {
			return
		}
		// Opus and G.711 frames fit a packet (G.711 at 8 kHz: 160 bytes
		// per 20 ms); a longer one is split as pion's G.711 payloader does.
		for d := u.Data; len(d) > 0; {
			n := min(len(d), mtu)
			l.pkts = append(l.pkts, packet{payload: d[:n:n]})
			d = d[n:]
		}
	}
	if len(l.pkts) == first {
		return
	}
	var key uint8
	if u.Keyframe && t.Codec.Video() {
		key = pktKey
	}
	for i := first; i < len(l.pkts); i++ {
		l.pkts[i].pts, l.pkts[i].recv, l.pkts[i].flags = u.PTS, u.Recv, key
	}
	l.pkts[first].flags |= pktFirst
	l.pkts[len(l.pkts)-1].flags |= pktLast
	if t.Codec.Video() {
		if u.Keyframe {
			l.gopStart = l.base + uint64(first)
		}
		l.gopOK = gopKept
	}
	l.trim(t.Codec.Video())
}

// trim drops what no writer needs: packets older than the kept GOP and
// than the NACK margin. Reslicing leaves the dropped elements to writers
// that may still read them; the array goes when append outgrows it.
func (l *packetLog) trim(video bool) {
	keep := uint64(audioKeep)
	if video {
		keep = nackKeep
	}
	from := l.base
	if n := l.next(); n > keep {
		from = max(from, n-keep)
	}
	if l.gopOK && l.gopStart < from {
		from = l.gopStart
	}
	if from > l.base {
		l.pkts = l.pkts[from-l.base:]
		l.base = from
	}
}

// addH264 packetizes as pion's H264Payloader does (RFC 6184 mode 1): SPS
// and PPS together in a STAP-A, NAL units that fit in single packets, the
// others in FU-As; access unit delimiters and filler data are left out.
// Single NAL units are not copied: the unit is the relay's to keep.
func (l *packetLog) addH264(u media.Unit) {
	var sps, pps []byte
	for _, n := range u.NALUs {
		if len(n) == 0 {
			continue
		}
		switch n[0] & 0x1f {
		case 9, 12: // access unit delimiter, filler
			continue
		case 7:
			sps = n
			continue
		case 8:
			pps = n
			continue
		}
		l.h264Params(sps, pps)
		sps, pps = nil, nil
		l.h264NALU(n)
	}
	l.h264Params(sps, pps)
}

// h264Params sends SPS and PPS in one STAP-A when both are there and fit,
// else each on its own.
func (l *packetLog) h264Params(sps, pps []byte) {
	if sps != nil && pps != nil {
		if size := 1 + 2 + len(sps) + 2 + len(pps); size <= mtu {
			b := l.alloc(size)
			b[0] = 0x78 // STAP-A with NRI 3, as pion writes it
			b[1], b[2] = byte(len(sps)>>8), byte(len(sps))
			copy(b[3:], sps)
			o := 3 + len(sps)
			b[o], b[o+1] = byte(len(pps)>>8), byte(len(pps))
			copy(b[o+2:], pps)
			l.pkts = append(l.pkts, packet{payload: b})
			return
		}
	}
	for _, n := range [][]byte{sps, pps} {
		if n != nil {
			l.h264NALU(n)
		}
	}
}

// h264NALU sends one NAL unit: in a single packet if it fits, else in
// FU-As of mtu bytes (the last shorter).
func (l *packetLog) h264NALU(n []byte) {
	if len(n) <= mtu {
		l.pkts = append(l.pkts, packet{payload: n[:len(n):len(n)]})
		return
	}
	const frag = mtu - 2
	ind, typ := n[0]&0x60|28, n[0]&0x1f // FU indicator: NRI, type 28; FU header: type
	for i := 1; i < len(n); i += frag {
		end := min(i+frag, len(n))
		b := l.alloc(2 + end - i)
		b[0], b[1] = ind, typ
		if i == 1 {
			b[1] |= 0x80 // start
		}
		if end == len(n) {
			b[1] |= 0x40 // end
		}
		copy(b[2:], n[i:end])
		l.pkts = append(l.pkts, packet{payload: b})
	}
}

// addH265 uses pion's H265Payloader (aggregation of parameter sets, FUs),
// one per log so its state follows the stream.
func (l *packetLog) addH265(u media.Unit) {
	if l.h265 == nil {
		l.h265 = &codecs.H265Payloader{}
	}
	l.annexB = l.annexB[:0]
	for _, n := range u.NALUs {
		if len(n) > 0 {
			l.annexB = append(append(l.annexB, 0, 0, 0, 1), n...)
		}
	}
	if len(l.annexB) == 0 {
		return
	}
	for _, p := range l.h265.Payload(mtu, l.annexB) { // fresh slices, its own
		l.pkts = append(l.pkts, packet{payload: p})
	}
}
