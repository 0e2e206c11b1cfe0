package main

import (
	"context"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// dashboardResult is what the dashboard read measured: the whole city over
// 7 and 30 days, one unit over 30 days.
type dashboardResult struct {
	week, month, unit             quantiles
	weekRecs, monthRecs, unitRecs int // recordings each one counted
	days                          int // days of footage in the city
}

// dashboard times Catalog.Stats as GET /api/v1/stats calls it when the
// console's Dashboard page asks for the last days (whole UTC days, today
// included), with now the city's now, and checks every answer against what
// the city generated.
func dashboard(ctx context.Context, cat *catalog.Catalog, c *city, n int) (dashboardResult, error) {
	res := dashboardResult{days: c.days()}
	today := c.last.Truncate(24 * time.Hour)
	reads := []struct {
		days int
		unit string
		q    *quantiles
		recs *int
	}{
		{7, "", &res.week, &res.weekRecs},
		{30, "", &res.month, &res.monthRecs},
		{30, c.cfg.unitOf(0), &res.unit, &res.unitRecs},
	}
	for _, r := range reads {
		q := catalog.StatsQuery{From: today.Add(-time.Duration(r.days-1) * 24 * time.Hour), To: today.Add(24 * time.Hour),
			Unit: r.unit, Now: c.last, StepStates: evidence.DefaultStepLimits().States()}
		want := c.wantStats(q)
		// One untimed first: a connection's first Stats prepares its
		// statements, which a running server has done long before.
		var ts []time.Duration
		for i := range n + 1 {
			t0 := time.Now()
			st, err := cat.Stats(ctx, q)
			if i > 0 {
				ts = append(ts, time.Since(t0))
			}
			if err != nil {
				return res, err
			}
			if err := want.check(st); err != nil {
				return res, fmt.Errorf("dashboard of %d days, unit %q: %w", r.days, r.unit, err)
			}
		}
		*r.q, *r.recs = quantilesOf(ts), want.recordings
	}
	return res, nil
}

// statsWant is what the dashboard must count, from the city's generator
// rather than the database, so that a wrong answer fails.
type statsWant struct {
	unit                 string
	recordings, complete int
	recorded             time.Duration
	live, cases          int
}

// wantStats counts the recordings of q's period and unit as the city made
// them: every device records every slot, complete once its slot closed, a
// complete recording stored (its ingest event) 3 s after its end. The
// city's cases are all investigating (a step with a limit), none moved.
func (c *city) wantStats(q catalog.StatsQuery) statsWant {
	w := statsWant{unit: q.Unit}
	slots := c.slot
	if c.open {
		slots++
	}
	for d := range c.cfg.Devices {
		if q.Unit != "" && c.cfg.unitOf(d) != q.Unit {
			continue
		}
		if c.open {
			w.live++
		}
		for s := range slots {
			start := c.recStart(d, s)
			if start.Before(q.From) || !start.Before(q.To) {
				continue
			}
			w.recordings++
			if s < c.slot {
				w.complete++
				w.recorded += c.cfg.Recording
			} else if q.Now.After(start) {
				w.recorded += q.Now.Sub(start) // live: up to now
			}
		}
	}
	w.cases = len(c.cases)
	if q.Unit != "" {
		w.cases = c.unitCases[q.Unit]
	}
	return w
}

func (w statsWant) check(st catalog.Stats) error {
	var recs, silent, unfiled, decided, within int
	var recorded time.Duration
	for _, d := range st.Days {
		if w.unit != "" && d.Unit != w.unit {
			return fmt.Errorf("officer %s of unit %q counted", d.Officer, d.Unit)
		}
		recs += d.Recordings
		recorded += d.Recorded
		silent += d.Silent
		unfiled += d.ImportantUnfiled
		decided += d.StoredDecided
		within += d.StoredWithin
	}
	var cases int
	for _, n := range st.Cases {
		cases += n.N
	}
	switch {
	case recs != w.recordings:
		return fmt.Errorf("%d recordings, want %d", recs, w.recordings)
	case recorded != w.recorded:
		return fmt.Errorf("%v recorded, want %v", recorded, w.recorded)
	case decided != w.complete || within != w.complete:
		return fmt.Errorf("%d stored within 24 h of %d known, want %d of %d", within, decided, w.complete, w.complete)
	case silent != 0 || unfiled != 0 || len(st.Silent) != 0:
		return fmt.Errorf("%d silent recordings (%d devices), %d important unfiled, want none", silent, len(st.Silent), unfiled)
	case len(st.Live) != w.live:
		return fmt.Errorf("%d devices live, want %d", len(st.Live), w.live)
	case len(st.UploadsPending) != 0 || len(st.Refusals) != 0 || len(st.VerifyFailures) != 0 || len(st.Steps) != 0:
		return fmt.Errorf("uploads pending, refusals, verification failures or case steps where the city has none: %+v",
			[]int{len(st.UploadsPending), len(st.Refusals), len(st.VerifyFailures), len(st.Steps)})
	case cases != w.cases || len(st.Open) != w.cases:
		return fmt.Errorf("%d cases, %d in a step with a limit, want %d and %d", cases, len(st.Open), w.cases, w.cases)
	}
	return nil
}
