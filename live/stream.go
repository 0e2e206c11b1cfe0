package live

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bodycam/bodycam/media"
)

// Transcoder turns units of one codec into another (package transcode).
type Transcoder interface {
	Transcode(u media.Unit) ([]media.Unit, error)
	Close()
}

// Transcoders make transcoders for what browsers cannot play as sent. A nil
// field means that conversion is not available.
type Transcoders struct {
	Audio func(in media.Track) (Transcoder, error) // to Opus 48 kHz
	Video func(in media.Track) (Transcoder, error) // to H.264 without B-frames
}

// stream is one publisher's live media: an output per track, transcoded
// outputs made while someone watches them, and its viewers. It is the
// ingest.LiveFeed of the publisher.
type stream struct {
	r         *Relay
	device    string
	recording string
	started   time.Time
	outs      []*output
	video     *output // the first video track, or nil
	audio     *output // the first audio track, or nil

	mu      sync.Mutex
	derived map[string]*derived // by kind: "video", "audio"
	viewers map[*viewer]bool
	groups  []*group // the writers of the attached viewers
	closed  bool
}

func newStream(r *Relay, device, recording string, tracks []media.Track) *stream {
	s := &stream{r: r, device: device, recording: recording, started: time.Now(),
		derived: map[string]*derived{}, viewers: map[*viewer]bool{}}
	for _, t := range tracks {
		o := newOutput(t)
		s.outs = append(s.outs, o)
		switch {
		case t.Codec.Video() && s.video == nil:
			s.video = o
		case !t.Codec.Video() && s.audio == nil:
			s.audio = o
		}
	}
	return s
}

// Write passes one unit of a track on to the viewers.
func (s *stream) Write(track int, u media.Unit) {
	if track >= 0 && track < len(s.outs) {
		s.r.m.units.Inc()
		s.outs[track].write(u)
	}
}

// Close ends the stream: the publisher has gone.
func (s *stream) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	viewers := make([]*viewer, 0, len(s.viewers))
	for v := range s.viewers {
		viewers = append(viewers, v)
	}
	derived := s.derived
	groups := s.groups
	s.groups = nil
	s.mu.Unlock()
	for _, g := range groups {
		g.stop()
	}
	s.r.remove(s)
	for _, o := range s.outs {
		o.close()
	}
	for _, d := range derived {
		d.stop()
		d.out.close()
	}
	for _, v := range viewers {
		v.close("publisher stopped")
	}
}

func (s *stream) add(v *viewer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.viewers[v] = true
	return true
}

// attach has a group write v from now on, starting with the kept GOP.
func (s *stream) attach(v *viewer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || v.gone {
		return false
	}
	var g *group
	for _, c := range s.groups {
		if c.size() < groupSize {
			g = c
			break
		}
	}
	if g == nil {
		g = newGroup(s)
		s.groups = append(s.groups, g)
	}
	if !g.add(v) {
		if g.size() == 0 {
			s.dropGroup(g)
			go g.stop()
		}
		return false
	}
	v.group = g
	return true
}

// detach stops writing v; a group left empty ends.
func (s *stream) detach(v *viewer) {
	s.mu.Lock()
	v.gone = true
	g := v.group
	v.group = nil
	var found, empty bool
	if g != nil {
		found, empty = g.remove(v)
		if empty {
			s.dropGroup(g)
		}
	}
	s.mu.Unlock()
	if found {
		g.unwatch(v) // may stop an idle transcoder: outside the lock
	}
	if empty {
		g.stop()
	}
}

// dropGroup forgets g; s.mu is held.
func (s *stream) dropGroup(g *group) {
	for i, c := range s.groups {
		if c == g {
			s.groups = append(s.groups[:i], s.groups[i+1:]...)
			return
		}
	}
}

func (s *stream) drop(v *viewer) {
	s.mu.Lock()
	delete(s.viewers, v)
	s.mu.Unlock()
}

// transcoded returns the output that converts src with mk, creating it on
// first use; its transcoder runs only while the output has subscribers.
func (s *stream) transcoded(kind string, src *output, mk func(media.Track) (Transcoder, error), to media.Track) *derived {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.derived[kind]
	if d == nil {
		d = &derived{s: s, kind: kind, src: src, make: mk, out: newOutput(to)}
		d.out.onIdle = d.stopIfIdle
		s.derived[kind] = d
	}
	return d
}

// derived is a transcoded output and the goroutine that feeds it.
type derived struct {
	s    *stream
	kind string
	src  *output
	make func(media.Track) (Transcoder, error)
	out  *output

	mu   sync.Mutex
	quit chan struct{}
	done chan struct{}
	// wantKey: a viewer lost pictures (PLI); the next output should be a
	// keyframe if the transcoder can do that.
	wantKey atomic.Bool
}

// keyframeRequester is a transcoder that can make its next output a
// keyframe.
type keyframeRequester interface{ RequestKeyframe() }

// start runs the transcoder unless it is running. It subscribes to the
// source like a viewer, so it begins with the source's GOP.
func (d *derived) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.quit != nil {
		return
	}
	d.quit, d.done = make(chan struct{}), make(chan struct{})
	go d.run(d.quit, d.done)
}

func (d *derived) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.quit != nil {
		close(d.quit)
		<-d.done
		d.quit, d.done = nil, nil
	}
}

// stopIfIdle stops the transcoder when nobody subscribes to its output. A
// viewer subscribes before it calls start, so one arriving meanwhile either
// keeps this from stopping or starts a new transcoder after it.
func (d *derived) stopIfIdle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.out.mu.Lock()
	idle := d.out.idle()
	d.out.mu.Unlock()
	if idle && d.quit != nil {
		close(d.quit)
		<-d.done
		d.quit, d.done = nil, nil
	}
}

func (d *derived) run(quit, done chan struct{}) {
	defer close(done)
	r := d.s.r
	log := r.log.With("device", d.s.device, "transcode", d.kind, "from", d.src.track.Codec, "to", d.out.track.Codec)
	tc, err := d.make(d.src.track)
	if err != nil {
		log.Error("live transcoder cannot start; viewers get no "+d.kind, "err", err)
		r.m.errors.WithLabelValues("transcode").Inc()
		return
	}
	defer tc.Close()
	log.Info("live transcoder started")
	r.m.transcoders.Inc()
	defer r.m.transcoders.Dec()
	sub := newSubscriber(1024, func(n int) {
		r.m.dropped.WithLabelValues("transcoder").Add(float64(n))
	})
	if !d.src.subscribe(sub) {
		return
	}
	defer d.src.unsubscribe(sub)
	var failures int
	for {
		select {
		case <-quit:
			log.Info("live transcoder stopped: nobody watches")
			d.out.resetGOP()
			return
		case it := <-sub.ch:
			if kr, ok := tc.(keyframeRequester); ok && d.wantKey.Swap(false) {
				kr.RequestKeyframe()
			}
			units, err := tc.Transcode(it.unit)
			if err != nil {
				failures++
				r.m.errors.WithLabelValues("transcode").Inc()
				if failures == 1 || failures%100 == 0 {
					log.Warn("live transcoding failed on a unit; it is skipped", "err", err, "failures", failures)
				}
				continue
			}
			for _, u := range units {
				d.out.write(u)
			}
		}
	}
}

// resetGOP forgets the kept GOP, which a stopped transcoder will not
// continue.
func (o *output) resetGOP() {
	o.mu.Lock()
	o.gop, o.gopBytes, o.caching = nil, 0, false
	o.mu.Unlock()
}

func (s *stream) describe() string {
	var names []string
	for _, o := range s.outs {
		names = append(names, string(o.track.Codec))
	}
	return strings.Join(names, " + ")
}
