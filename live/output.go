package live

import (
	"bytes"
	"sync"
	"time"

	"github.com/bodycam/bodycam/media"
)

// Bounds of the GOP kept for fast start. A stream whose keyframes are
// further apart than this keeps nothing, and new viewers wait for the next
// keyframe.
const (
	maxGOPUnits = 600
	maxGOPBytes = 16 << 20
	maxGOPAge   = 10 * time.Second
)

// item is one unit on its way to a subscriber; burst marks units from the
// GOP kept for fast start, which are already old.
type item struct {
	out   *output
	unit  media.Unit
	burst bool
}

// subscriber is whoever reads an output's units: a viewer or a
// transcoder. Its channel is shared by the outputs it subscribes to.
type subscriber struct {
	ch      chan item
	dropped func(n int) // counts units lost to a full channel
}

func newSubscriber(size int, dropped func(int)) *subscriber {
	return &subscriber{ch: make(chan item, size), dropped: dropped}
}

// output is one elementary stream (a publisher's track, or a
// transcoder's output). It keeps the current GOP of video, packetizes each
// unit once into its packet log while viewers watch it (their writers,
// the groups, read the log), and hands units to its subscribers, the
// transcoders, without ever waiting for one. A subscriber that cannot keep
// up loses units (counted), and its video resumes at the next keyframe, so
// what it shows is never corrupt and nobody else slows down.
type output struct {
	track media.Track

	mu       sync.Mutex
	gop      []media.Unit
	gopBytes int
	caching  bool
	params   [][]byte // video: the latest parameter sets
	reorder  bool     // video: B-frames seen (DTS differs from PTS)
	// subs maps each subscriber to whether its video is skipped up to the
	// next keyframe (it joined with no GOP, or lost units).
	subs   map[*subscriber]wait
	closed bool
	// onIdle runs (without the lock) when the last subscriber or viewer
	// leaves.
	onIdle func()

	// The packets of the viewers' writers: made while watchers > 0.
	log      packetLog
	watchers int            // viewers' tracks bound to this output
	groups   map[*group]int // their writers, with how many of each
}

type wait uint8

const (
	flowing wait = iota
	joining      // no GOP when it joined
	lost         // it lost units
)

func newOutput(t media.Track) *output {
	return &output{track: t, params: t.Params, subs: map[*subscriber]wait{}, groups: map[*group]int{}}
}

// write takes one unit and passes it to every subscriber.
func (o *output) write(u media.Unit) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	if o.track.Codec.Video() {
		u = o.withParams(u)
		if u.PTS != u.DTS {
			o.reorder = true
		}
		o.keep(u)
	}
	for s := range o.subs {
		o.send(s, u, false)
	}
	if o.watchers > 0 {
		o.log.add(o.track, u, o.caching)
		for g := range o.groups {
			g.signal()
		}
	}
}

// send hands u to s unless s is waiting for a keyframe or full; the lock
// is held.
func (o *output) send(s *subscriber, u media.Unit, burst bool) {
	video := o.track.Codec.Video()
	if w := o.subs[s]; video && w != flowing {
		if !u.Keyframe {
			if w == lost {
				s.dropped(1)
			}
			return
		}
		o.subs[s] = flowing
	}
	select {
	case s.ch <- item{out: o, unit: u, burst: burst}:
	default:
		s.dropped(1)
		if video {
			o.subs[s] = lost
		}
	}
}

// keep maintains the GOP from the last keyframe; the lock is held.
func (o *output) keep(u media.Unit) {
	if u.Keyframe {
		o.gop, o.gopBytes, o.caching = o.gop[:0], 0, true
	}
	if !o.caching {
		return
	}
	size := 0
	for _, n := range u.NALUs {
		size += len(n)
	}
	if len(o.gop) >= maxGOPUnits || o.gopBytes+size > maxGOPBytes ||
		(len(o.gop) > 0 && time.Duration(u.PTS-o.gop[0].PTS)*time.Second/time.Duration(o.track.ClockRate) > maxGOPAge) {
		o.gop, o.gopBytes, o.caching = nil, 0, false
		return
	}
	o.gop = append(o.gop, u)
	o.gopBytes += size
}

// withParams keeps the parameter sets up to date from in-band ones and puts
// them in front of keyframes that lack them: browsers ignore the SDP's, so
// each keyframe must carry its own. The lock is held.
func (o *output) withParams(u media.Unit) media.Unit {
	kinds := paramKinds(o.track.Codec)
	var have uint64 // bit per NAL unit type
	for _, n := range u.NALUs {
		if k := nalType(o.track.Codec, n); kinds[k] {
			have |= 1 << k
			o.setParam(k, n)
		}
	}
	if !u.Keyframe || len(o.params) == 0 {
		return u
	}
	nalus := make([][]byte, 0, len(o.params)+len(u.NALUs))
	for _, p := range o.params {
		if k := nalType(o.track.Codec, p); k >= 0 && have&(1<<k) == 0 {
			nalus = append(nalus, p)
		}
	}
	u.NALUs = append(nalus, u.NALUs...)
	return u
}

func (o *output) setParam(kind int, n []byte) {
	for i, p := range o.params {
		if nalType(o.track.Codec, p) == kind {
			if !bytes.Equal(p, n) {
				o.params = append([][]byte(nil), o.params...)
				o.params[i] = n
			}
			return
		}
	}
	o.params = append(append([][]byte(nil), o.params...), n)
}

// subscribe adds s. It gets the current GOP first (burst), so its picture
// starts at once; without one, its video starts at the next keyframe.
func (o *output) subscribe(s *subscriber) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.subs[s] = flowing
	if o.track.Codec.Video() && len(o.gop) == 0 {
		o.subs[s] = joining
	}
	for _, u := range o.gop {
		o.send(s, u, true)
	}
	return true
}

func (o *output) unsubscribe(s *subscriber) {
	o.mu.Lock()
	_, was := o.subs[s]
	delete(o.subs, s)
	idle := was && o.idle() && o.onIdle != nil
	o.mu.Unlock()
	if idle {
		o.onIdle()
	}
}

// idle: nobody takes this output's units or packets. The lock is held.
func (o *output) idle() bool { return len(o.subs) == 0 && o.watchers == 0 }

// watch binds one more viewer's track, written by g, and returns where its
// writer starts in the log: video at the kept GOP's keyframe (or, without
// one, at the next packet, waiting for a keyframe), audio at the next
// packet. Packets before burstEnd are old: the GOP burst. The first viewer
// starts the log, with the kept GOP packetized.
func (o *output) watch(g *group) (start, burstEnd uint64, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, 0, false
	}
	if o.watchers == 0 {
		o.log.reset()
		for _, u := range o.gop {
			o.log.add(o.track, u, true)
		}
	}
	o.watchers++
	o.groups[g]++
	start = o.log.next()
	if o.track.Codec.Video() && o.log.gopOK {
		start = o.log.gopStart
	}
	return start, o.log.next(), true
}

// unwatch unbinds a viewer's track written by g. With the last one the
// log goes.
func (o *output) unwatch(g *group) {
	o.mu.Lock()
	if o.groups[g] == 0 {
		o.mu.Unlock()
		return
	}
	if o.groups[g]--; o.groups[g] == 0 {
		delete(o.groups, g)
	}
	o.watchers--
	if o.watchers == 0 {
		o.log.reset()
	}
	idle := o.idle() && o.onIdle != nil
	o.mu.Unlock()
	if idle {
		o.onIdle()
	}
}

// since returns the packets from index i on and the index of the first
// one returned: later than i when i has been trimmed. The packets do not
// change; the caller reads them without the lock.
func (o *output) since(i uint64) ([]packet, uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := &o.log
	if i < l.base {
		i = l.base
	}
	if i >= l.next() {
		return nil, i
	}
	return l.pkts[i-l.base:], i
}

// packetAt returns the packet of index i if the log still has it.
func (o *output) packetAt(i uint64) (packet, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := &o.log
	if i < l.base || i >= l.next() {
		return packet{}, false
	}
	return l.pkts[i-l.base], true
}

// currentParams returns the latest parameter sets.
func (o *output) currentParams() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.params
}

// hasReorder reports whether B-frames have been seen.
func (o *output) hasReorder() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reorder
}

func (o *output) close() {
	o.mu.Lock()
	o.closed = true
	o.subs = map[*subscriber]wait{}
	o.gop = nil
	o.log.reset()
	o.mu.Unlock()
}

// nalType is a NAL unit's type.
func nalType(c media.Codec, n []byte) int {
	if len(n) == 0 {
		return -1
	}
	if c == media.H265 {
		return int(n[0]>>1) & 0x3f
	}
	return int(n[0] & 0x1f)
}

// paramKinds are the NAL unit types of a codec's parameter sets.
func paramKinds(c media.Codec) map[int]bool {
	if c == media.H265 {
		return h265Params
	}
	return h264Params
}

var (
	h264Params = map[int]bool{7: true, 8: true}             // SPS, PPS
	h265Params = map[int]bool{32: true, 33: true, 34: true} // VPS, SPS, PPS
)
