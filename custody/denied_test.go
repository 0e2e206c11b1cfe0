package custody

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// memory is an appender that keeps what it is given.
type memory struct {
	mu     sync.Mutex
	events []evidence.CustodyEvent
}

func (m *memory) append(_ context.Context, e evidence.CustodyEvent) (evidence.CustodyEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return e, nil
}

func (m *memory) all() []evidence.CustodyEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]evidence.CustodyEvent(nil), m.events...)
}

// Refusals of signed-in users are all recorded; those without valid
// credentials once per host a minute, then summed up in one event.
func TestDeniedAnonymousSummarised(t *testing.T) {
	m := &memory{}
	l := New(m.append, slog.New(slog.DiscardHandler), nil)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		l.Denied(ctx, "off-1", "GET /api/v1/recordings/r1", "10.0.0.9:5000", "not footage this user may read", true)
	}
	for i := 0; i < 100; i++ {
		l.Denied(ctx, "", "GET /api/v1/recordings", fmt.Sprintf("10.0.0.1:%d", 1000+i), "no credentials", false)
	}
	l.Denied(ctx, "alice", "POST /api/v1/sign-in", "10.0.0.1:2000", "wrong user or password", false)
	l.Denied(ctx, "", "GET /api/v1/recordings", "[2001:db8::1]:443", "no credentials", false)
	if got := len(m.all()); got != 5+1+1 {
		t.Fatalf("%d events at once, want 7 (5 of a signed-in user, the first of each host)", got)
	}
	l.flush(ctx, time.Now(), false)
	if got := len(m.all()); got != 7 {
		t.Fatalf("a summary before its minute was over: %d events", got)
	}
	l.flush(ctx, time.Now().Add(anonymousWindow), false)
	events := m.all()
	if len(events) != 8 {
		t.Fatalf("%d events after the minute, want 8: %+v", len(events), events)
	}
	s := events[7]
	if s.Remote != "10.0.0.1" || s.Outcome != evidence.OutcomeDenied || s.Action != evidence.ActionDenied ||
		!strings.Contains(s.Detail, "100 more refused from 10.0.0.1") || !strings.Contains(s.Detail, "POST /api/v1/sign-in: wrong user or password (as alice)") {
		t.Fatalf("summary %+v", s)
	}
	// The minute is over: the host's next refusal is recorded at once.
	l.Denied(ctx, "", "GET /api/v1/recordings", "10.0.0.1:3000", "no credentials", false)
	if got := len(m.all()); got != 9 {
		t.Fatalf("%d events, want 9", got)
	}
}

// A scan from more hosts than are tallied is tallied together, and Flush
// (at shutdown) records every pending summary whatever its age.
func TestDeniedManyHosts(t *testing.T) {
	m := &memory{}
	l := New(m.append, slog.New(slog.DiscardHandler), nil)
	ctx := context.Background()
	for i := 0; i < anonymousHosts+10; i++ {
		l.Denied(ctx, "", "GET /", fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255), "no credentials", false)
	}
	if got := len(m.all()); got != anonymousHosts+1 {
		t.Fatalf("%d events at once, want %d", got, anonymousHosts+1)
	}
	l.Flush(ctx)
	events := m.all()
	if len(events) != anonymousHosts+2 || !strings.Contains(events[len(events)-1].Detail, "9 more refused from many hosts") {
		t.Fatalf("last of %d events: %+v", len(events), events[len(events)-1])
	}
	l.Flush(ctx)
	if got := len(m.all()); got != anonymousHosts+2 {
		t.Fatalf("a second Flush recorded again: %d events", got)
	}
}
