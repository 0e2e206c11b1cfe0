// Package events is the in-process event bus: ingest announces what it has
// stored, and later parts (live view, transcode workers, Redis fan-out)
// subscribe. Events are notifications; the catalog stays the record, so a
// subscriber too slow to keep up misses events (counted) rather than slowing
// ingest.
package events

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// Kind names an event. The same names are used for the events other
// systems get (the catalog's outbox, relayed by package outbox).
type Kind string

const (
	RecordingStarted Kind = "recording.started"
	SegmentStored    Kind = "segment.stored"
	RecordingClosed  Kind = "recording.closed"

	// Kinds only the outbox carries.
	DeviceOnline     Kind = "device.online"
	DeviceOffline    Kind = "device.offline"
	CaseStep         Kind = "case.step"
	EvidenceLinked   Kind = "evidence.linked"
	EvidenceUnlinked Kind = "evidence.unlinked"
	LiveViewStarted  Kind = "live_view.started"
	LiveViewEnded    Kind = "live_view.ended"
)

// Event is one notification.
type Event struct {
	Kind      Kind
	At        time.Time
	Recording evidence.Recording
	Segment   evidence.Segment // for SegmentStored
}

// Bus fans events out to subscribers.
type Bus struct {
	mu      sync.Mutex
	subs    map[chan Event]struct{}
	dropped atomic.Uint64
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[chan Event]struct{}{}} }

// Publish delivers e to every subscriber with room for it; it never blocks.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			b.dropped.Add(1)
		}
	}
}

// Subscribe returns a channel of events with room for buf of them, and a
// function that ends the subscription and closes the channel.
func (b *Bus) Subscribe(buf int) (<-chan Event, func()) {
	ch := make(chan Event, buf)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// Dropped counts events that a full subscriber missed.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }
