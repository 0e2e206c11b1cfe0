package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func human(n float64) string {
	switch {
	case n >= 1e6:
		return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", n/1e6), "0"), ".0") + " M"
	case n >= 1e3:
		return fmt.Sprintf("%.0f k", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// report prints the results as Markdown tables.
func report(w io.Writer, o options, c *city, rs []stepResult) {
	fmt.Fprintf(w, "\ncity: %d devices, %d recordings of %v a day each, %v segments; %d devices appending for %v; %d samples per read\n\n",
		o.city.Devices, o.city.PerDay, o.city.Recording, o.city.Segment, o.appendDevices, o.appendFor, o.queries)
	fmt.Fprintln(w, "| segment rows | recordings (per device) | custody events / checkpoints | cases / links | fill (rows/s) | append (segments/s) | append p50 / p99 ms | list by device+day p50 / p99 ms | recording + segments p50 / p99 ms | case custody p50 / p99 ms | catalog on disk | bytes per hour of footage | load avg |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s (%.0f) | %s / %s | %d / %d | %s | %.0f | %s / %s | %s / %s | %s / %s | %s / %s | %s | %s | %s |\n",
			human(float64(r.rows)), human(float64(r.size.recordings)), float64(r.size.recordings)/float64(o.city.Devices),
			human(float64(r.size.custody)), human(float64(r.size.cps)), r.size.cases, r.size.links,
			human(float64(r.fillRows)/r.fill.Seconds()), r.app.rate(), ms(r.app.latency.p50), ms(r.app.latency.p99),
			ms(r.q.list.p50), ms(r.q.list.p99), ms(r.q.recording.p50), ms(r.q.recording.p99),
			ms(r.q.excerpt.p50), ms(r.q.excerpt.p99), mib(r.size.total),
			human(float64(r.size.total)/r.footageHours), r.load)
	}
	fmt.Fprintf(w, "\nsupervision dashboard (Catalog.Stats as GET /api/v1/stats calls it; whole UTC days up to the city's now; %s: one of %d units):\n\n",
		o.city.unitOf(0), o.city.Units)
	fmt.Fprintln(w, "| segment rows | days of footage | recordings counted: 7 d / 30 d / unit 30 d | city 7 d p50 / p99 ms | city 30 d p50 / p99 ms | unit 30 d p50 / p99 ms |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rs {
		d := r.dash
		fmt.Fprintf(w, "| %s | %d | %d / %d / %d | %s / %s | %s / %s | %s / %s |\n", human(float64(r.rows)), d.days,
			d.weekRecs, d.monthRecs, d.unitRecs, ms(d.week.p50), ms(d.week.p99), ms(d.month.p50), ms(d.month.p99),
			ms(d.unit.p50), ms(d.unit.p99))
	}
	if len(rs) < 2 {
		return
	}
	a, b := rs[0], rs[len(rs)-1]
	ratio := func(x, y float64) string { return fmt.Sprintf("× %.2f", y/x) }
	fmt.Fprintf(w, "\nfrom %s to %s segment rows (%s): append rate %s, append p99 %s, list p99 %s, recording + segments p99 %s, case custody p99 %s, bytes per hour of footage %s\n",
		human(float64(a.rows)), human(float64(b.rows)), ratio(float64(a.rows), float64(b.rows)),
		ratio(a.app.rate(), b.app.rate()), ratio(float64(a.app.latency.p99), float64(b.app.latency.p99)),
		ratio(float64(a.q.list.p99), float64(b.q.list.p99)), ratio(float64(a.q.recording.p99), float64(b.q.recording.p99)),
		ratio(float64(a.q.excerpt.p99), float64(b.q.excerpt.p99)),
		ratio(float64(a.size.total)/a.footageHours, float64(b.size.total)/b.footageHours))
	fmt.Fprintf(w, "dashboard p99 %s (7 d), %s (30 d), %s (a unit, 30 d)\n",
		ratio(float64(a.dash.week.p99), float64(b.dash.week.p99)), ratio(float64(a.dash.month.p99), float64(b.dash.month.p99)),
		ratio(float64(a.dash.unit.p99), float64(b.dash.unit.p99)))
	fmt.Fprintf(w, "reads return %.1f recordings per list, %.0f segments per recording, %.1f custody events per case\n",
		b.q.listed, b.q.segments, b.q.excerptEvents)
	fmt.Fprintf(w, "per step: fill time, vacuum (analyze) time:")
	for _, r := range rs {
		fmt.Fprintf(w, " %v/%v", r.fill.Round(time.Second), r.vacuum.Round(time.Second))
	}
	fmt.Fprintln(w)

	// Where the bytes go, at the last step.
	s := b.size
	fmt.Fprintf(w, "\nat %s segment rows: segments %s (heap %.0f B a row, indexes %.0f B a row); outbox %s for %d events (%.0f B each, pruned after --events-keep)\n",
		human(float64(b.rows)), mib(s.byTable["segments"]), float64(s.segHeap)/float64(b.rows), float64(s.segIdx)/float64(b.rows),
		mib(s.outbox), s.outboxN, float64(s.outbox)/float64(max(1, s.outboxN)))
	var names []string
	for n := range s.indexes {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintln(w, "| table or index | size | bytes per segment row | bytes per recording |")
	fmt.Fprintln(w, "|---|---|---|---|")
	var tables []string
	for t := range s.byTable {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		fmt.Fprintf(w, "| %s (all) | %s | %.1f | %.0f |\n", t, mib(s.byTable[t]), float64(s.byTable[t])/float64(b.rows), float64(s.byTable[t])/float64(s.recordings))
	}
	for _, n := range names {
		fmt.Fprintf(w, "| %s | %s | %.1f | %.0f |\n", n, mib(s.indexes[n]), float64(s.indexes[n])/float64(b.rows), float64(s.indexes[n])/float64(s.recordings))
	}
	_ = c
}
