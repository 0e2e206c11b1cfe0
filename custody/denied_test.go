package custody

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

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

// The attack of issue 10 (finding 7): a 900 KB query string became a 900 KB
// event, also for anonymous refusals. What an event keeps of each field is
// bounded, says how long it was, and stays valid UTF-8.
func TestEventsBounded(t *testing.T) {
	m := &memory{}
	l := New(m.append, slog.New(slog.DiscardHandler), nil)
	ctx := context.Background()
	huge := "GET /api/v1/recordings?x=" + strings.Repeat("é", 450000) // 900 KB
	l.Record(ctx, evidence.CustodyEvent{Actor: huge, Action: evidence.ActionPlayback, TargetKind: "recording", TargetID: huge, Detail: "media " + huge})
	l.Denied(ctx, huge, huge, "10.0.0.1:1", huge, false) // recorded at once
	for i := 0; i < 3; i++ {
		l.Denied(ctx, huge, huge, "10.0.0.1:1", huge, false) // tallied
	}
	l.Denied(ctx, huge, huge, "10.0.0.2:1", huge, true)
	l.Flush(ctx)
	events := m.all()
	if len(events) != 4 {
		t.Fatalf("%d events, want 4", len(events))
	}
	for _, e := range events {
		size := len(e.Actor) + len(e.Role) + len(e.Remote) + len(e.Action) + len(e.TargetKind) + len(e.TargetID) + len(e.CaseID) + len(e.Detail)
		if size > 4096 {
			t.Fatalf("a %d-byte event: %.200q", size, e.Detail)
		}
		for _, f := range []string{e.Actor, e.TargetID, e.Detail} {
			if !utf8.ValidString(f) {
				t.Fatalf("cut inside a character: %q", f[len(f)-40:])
			}
		}
	}
	if !strings.Contains(events[0].Detail, "bytes in all]") || !strings.Contains(events[0].Detail, fmt.Sprint(len("media "+huge))) {
		t.Fatalf("the cut does not say how long it was: %q", events[0].Detail[len(events[0].Detail)-60:])
	}
}
