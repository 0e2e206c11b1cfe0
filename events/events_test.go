package events_test

import (
	"testing"

	"github.com/bodycam/bodycam/events"
)

func TestFanOutAndSlowSubscriber(t *testing.T) {
	b := events.NewBus()
	fast, cancelFast := b.Subscribe(10)
	slow, cancelSlow := b.Subscribe(1)
	for i := 0; i < 3; i++ {
		b.Publish(events.Event{Kind: events.SegmentStored})
	}
	if len(fast) != 3 || len(slow) != 1 || b.Dropped() != 2 {
		t.Fatalf("fast %d slow %d dropped %d", len(fast), len(slow), b.Dropped())
	}
	cancelSlow()
	cancelSlow() // twice is fine
	b.Publish(events.Event{Kind: events.RecordingClosed})
	if len(fast) != 4 {
		t.Fatalf("fast got %d", len(fast))
	}
	cancelFast()
	if _, ok := <-slow; !ok {
		t.Fatal("buffered event lost on cancel")
	}
	if _, ok := <-slow; ok {
		t.Fatal("channel not closed")
	}
}
