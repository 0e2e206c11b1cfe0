package custody

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

const (
	// anonymousWindow: a host's refused requests without valid credentials are
	// recorded one at once and the rest as one summary per window, so that
	// a scanner cannot grow the ledger, or load the database, at will.
	anonymousWindow = time.Minute
	// anonymousHosts bounds the hosts tallied at once; more (a scan from
	// many addresses) are tallied together as "many hosts".
	anonymousHosts = 4096
	manyHosts      = "many hosts"
)

// anonymous tallies refused requests that carried no valid credentials
// (a 401, a wrong password, a locked-out sign-in), by host.
type anonymous struct {
	mu    sync.Mutex
	hosts map[string]*tally
}

type tally struct {
	first, last time.Time
	more        int    // refusals after the recorded one
	what        string // the last one's request and reason
}

// Denied records a refused attempt by user (the user name claimed, for a
// failed sign-in; empty when none was). Refusals of a signed-in user (403)
// are all recorded: someone is accountable for each. Those without valid
// credentials are recorded the first time a host is refused in a minute;
// the rest of that minute's are counted and recorded as one summary event
// when the minute is over (by Run), with how many and the last one. The
// server's log has every one.
func (l *Ledger) Denied(ctx context.Context, user, what, remote, why string, signedIn bool) {
	actor := user
	if actor == "" {
		actor = "anonymous"
	}
	if signedIn {
		l.Record(ctx, evidence.CustodyEvent{Actor: actor, Remote: remote, Action: evidence.ActionDenied, TargetKind: "request",
			TargetID: what, Detail: why, Outcome: evidence.OutcomeDenied})
		return
	}
	now := time.Now()
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	l.anon.mu.Lock()
	t := l.anon.hosts[host]
	if t == nil && len(l.anon.hosts) >= anonymousHosts {
		host = manyHosts
		t = l.anon.hosts[host]
	}
	if t != nil {
		t.more++
		t.last, t.what = now, Clip(what, maxField)+": "+Clip(why, maxField)
		if user != "" {
			t.what += " (as " + Clip(user, maxField) + ")"
		}
		l.anon.mu.Unlock()
		return
	}
	l.anon.hosts[host] = &tally{first: now, last: now}
	l.anon.mu.Unlock()
	l.Record(ctx, evidence.CustodyEvent{At: now, Actor: actor, Remote: remote, Action: evidence.ActionDenied, TargetKind: "request",
		TargetID: what, Detail: why, Outcome: evidence.OutcomeDenied})
}

// Run records the summaries of anonymous refusals as their minutes end,
// until ctx ends; then it records what is left.
func (l *Ledger) Run(ctx context.Context) error {
	tick := time.NewTicker(anonymousWindow / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			l.Flush(context.WithoutCancel(ctx))
			return nil
		case now := <-tick.C:
			l.flush(ctx, now, false)
		}
	}
}

// Flush records every pending summary of anonymous refusals now.
func (l *Ledger) Flush(ctx context.Context) { l.flush(ctx, time.Now(), true) }

func (l *Ledger) flush(ctx context.Context, now time.Time, all bool) {
	type summary struct {
		host string
		t    tally
	}
	var due []summary
	l.anon.mu.Lock()
	for host, t := range l.anon.hosts {
		if all || now.Sub(t.first) >= anonymousWindow {
			if t.more > 0 {
				due = append(due, summary{host, *t})
			}
			delete(l.anon.hosts, host)
		}
	}
	l.anon.mu.Unlock()
	for _, s := range due {
		from := "from " + s.host
		if s.host == manyHosts {
			from = "from many hosts (more than " + fmt.Sprint(anonymousHosts) + " in a minute)"
		}
		l.Record(ctx, evidence.CustodyEvent{At: s.t.last, Actor: "anonymous", Remote: s.host, Action: evidence.ActionDenied,
			TargetKind: "request", TargetID: "requests without valid credentials",
			Detail: fmt.Sprintf("%d more refused %s between %s and %s; the last: %s", s.t.more, from,
				s.t.first.UTC().Format(time.RFC3339), s.t.last.UTC().Format(time.RFC3339), s.t.what),
			Outcome: evidence.OutcomeDenied})
	}
}
