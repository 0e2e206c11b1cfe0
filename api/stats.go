package api

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// The supervision dashboard (issue 16): GET /api/v1/stats and its tables as
// CSV. What each number means is written in docs/architecture.md, "The
// supervision dashboard"; the catalog aggregates (catalog.Stats), this
// file sums its rows per unit, per officer, in total and per day and week.

// StatsSource is what the dashboard needs from the catalog.
type StatsSource interface {
	Stats(ctx context.Context, q catalog.StatsQuery) (catalog.Stats, error)
}

// maxStatsPeriod bounds the period asked for: the rows grow with its days.
const maxStatsPeriod = 400 * 24 * time.Hour

// statsRow is one line of the units' and officers' tables, and the totals.
type statsRow struct {
	Unit                 string   `json:"unit"`
	Officer              string   `json:"officer,omitempty"`
	Recordings           int      `json:"recordings"`
	HoursRecorded        float64  `json:"hours_recorded"`
	SilentRecordings     int      `json:"silent_recordings"`
	DevicesLiveNow       int      `json:"devices_live_now"`
	DevicesSilentOnDuty  int      `json:"devices_silent_on_duty"`
	UploadsPending       int      `json:"uploads_pending"`
	StoredDecided        int      `json:"stored_decided"`
	StoredWithin24h      int      `json:"stored_within_24h"`
	StoredWithin24hShare *float64 `json:"stored_within_24h_share"` // null: none decided yet
	ImportantInNoCase    int      `json:"important_in_no_case"`
	Refusals             int      `json:"refusals"`
	VerificationFailures int      `json:"verification_failures"`
	CasesOverdue         int      `json:"cases_overdue"`

	recorded     time.Duration
	live, silent map[string]bool // device ids
}

type statsStep struct {
	State       evidence.CaseState `json:"state"`
	LimitHours  *float64           `json:"limit_hours"` // null: no limit
	Left        int                `json:"left"`        // steps ended in the period
	MeanHours   *float64           `json:"mean_hours"`  // of those; null: none
	MedianHours *float64           `json:"median_hours"`
	Open        int                `json:"open"` // cases in this step now
	Overdue     int                `json:"overdue"`
}

type statsOverdue struct {
	CaseID      string             `json:"case_id"`
	State       evidence.CaseState `json:"state"`
	Officer     string             `json:"officer"`
	Unit        string             `json:"unit"`
	Since       time.Time          `json:"since"`
	HoursInStep float64            `json:"hours_in_step"`
	LimitHours  float64            `json:"limit_hours"`
}

type statsPoint struct {
	Start      string  `json:"start"` // the day, or the week's Monday (UTC)
	Recordings int     `json:"recordings"`
	Hours      float64 `json:"hours"`
}

type statsJSON struct {
	From        time.Time   `json:"from"`
	To          time.Time   `json:"to"`
	GeneratedAt time.Time   `json:"generated_at"`
	Unit        string      `json:"unit"`    // the scope: "" every unit
	Officer     string      `json:"officer"` // "" every officer
	Totals      statsRow    `json:"totals"`
	Units       []*statsRow `json:"units"`
	Officers    []*statsRow `json:"officers"`
	Devices     struct {
		LiveNow      int `json:"live_now"`
		SilentOnDuty int `json:"silent_on_duty"`
	} `json:"devices"`
	Uploads struct {
		Pending              int      `json:"pending"`
		StoredWithin24hShare *float64 `json:"stored_within_24h_share"`
	} `json:"uploads"`
	Cases struct {
		ByState map[evidence.CaseState]int `json:"by_state"`
		Steps   []statsStep                `json:"steps"`
		Overdue []statsOverdue             `json:"overdue"`
	} `json:"cases"`
	Trend struct {
		Day  []statsPoint `json:"day"`
		Week []statsPoint `json:"week"`
	} `json:"trend"`
}

// stats: GET /api/v1/stats?from=&to=[&unit=][&officer=].
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	out, ok := s.buildStats(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// buildStats reads the period and scope, asks the catalog and sums its
// rows; on a bad request or a refusal it has answered and says so.
func (s *Server) buildStats(w http.ResponseWriter, r *http.Request) (statsJSON, bool) {
	var out statsJSON
	if s.o.Stats == nil {
		writeError(w, http.StatusServiceUnavailable, "the dashboard is not configured")
		return out, false
	}
	q := catalog.StatsQuery{Now: time.Now().UTC()}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		t, err := time.Parse(time.RFC3339, r.URL.Query().Get(p.name))
		if err != nil {
			writeError(w, http.StatusBadRequest, p.name+": a time (RFC 3339, e.g. 2026-11-25T00:00:00Z), required")
			return out, false
		}
		*p.t = t.UTC()
	}
	if !q.To.After(q.From) {
		writeError(w, http.StatusBadRequest, "to must be after from")
		return out, false
	}
	if q.To.Sub(q.From) > maxStatsPeriod {
		writeError(w, http.StatusBadRequest, "the period is at most 400 days")
		return out, false
	}
	q.Unit, q.Officer = r.URL.Query().Get("unit"), r.URL.Query().Get("officer")
	// A supervisor with a unit sees that unit's numbers only (the footage
	// rule); another unit, or an officer of one, is concealed as missing.
	if p := principalOf(r); p.Role == evidence.RoleSupervisor && p.Unit != "" {
		if q.Unit != "" && q.Unit != p.Unit {
			s.conceal(w, r, "no such unit: "+q.Unit, "stats of unit "+q.Unit+", not the supervisor's")
			return out, false
		}
		q.Unit = p.Unit
		if q.Officer != "" && s.unitOf(r, q.Officer) != p.Unit {
			s.conceal(w, r, "no such officer: "+q.Officer, "stats of officer "+q.Officer+", not of the supervisor's unit")
			return out, false
		}
	}
	limits := s.o.StepLimits
	if limits == nil {
		limits = evidence.DefaultStepLimits()
	}
	q.StepStates = limits.States()
	st, err := s.o.Stats.Stats(r.Context(), q)
	if err != nil {
		s.internal(w, r, err)
		return out, false
	}
	return sumStats(q, st, limits), true
}

// sumStats turns the catalog's rows into the dashboard.
func sumStats(q catalog.StatsQuery, st catalog.Stats, limits evidence.StepLimits) statsJSON {
	out := statsJSON{From: q.From, To: q.To, GeneratedAt: q.Now, Unit: q.Unit, Officer: q.Officer}
	units, officers := map[string]*statsRow{}, map[string]*statsRow{}
	total := &out.Totals
	total.live, total.silent = map[string]bool{}, map[string]bool{}
	// rows are the lines a number of (officer, unit) adds to: the totals,
	// the unit's, and the officer's when there is one (refusals of no user,
	// recordings of no officer count in the totals and their unit only).
	rows := func(officer, unit string) []*statsRow {
		u := units[unit]
		if u == nil {
			u = &statsRow{Unit: unit, live: map[string]bool{}, silent: map[string]bool{}}
			units[unit] = u
		}
		if officer == "" {
			return []*statsRow{total, u}
		}
		o := officers[officer]
		if o == nil {
			o = &statsRow{Unit: unit, Officer: officer, live: map[string]bool{}, silent: map[string]bool{}}
			officers[officer] = o
		}
		return []*statsRow{total, u, o}
	}
	day0, dayN := dayOf(q.From), dayOf(q.To.Add(-time.Microsecond))
	days := make([]statsPoint, dayN-day0+1)
	dayHours := make([]time.Duration, len(days))
	for i := range days {
		days[i].Start = dayStart(day0 + int64(i))
	}
	for _, d := range st.Days {
		for _, row := range rows(d.Officer, d.Unit) {
			row.Recordings += d.Recordings
			row.recorded += d.Recorded
			row.SilentRecordings += d.Silent
			row.ImportantInNoCase += d.ImportantUnfiled
			row.StoredDecided += d.StoredDecided
			row.StoredWithin24h += d.StoredWithin
		}
		if i := d.Day - day0; i >= 0 && i < int64(len(days)) {
			days[i].Recordings += d.Recordings
			dayHours[i] += d.Recorded
		}
	}
	for i := range days {
		days[i].Hours = hours(dayHours[i])
	}
	out.Trend.Day = days
	out.Trend.Week = weeks(days, dayHours, day0)
	for _, d := range st.Live {
		for _, row := range rows(d.Officer, d.Unit) {
			row.live[d.Device] = true
		}
	}
	for _, d := range st.Silent {
		for _, row := range rows(d.Officer, d.Unit) {
			row.silent[d.Device] = true
		}
	}
	for _, n := range st.UploadsPending {
		for _, row := range rows(n.Officer, n.Unit) {
			row.UploadsPending += n.N
		}
	}
	for _, n := range st.Refusals {
		for _, row := range rows(n.Officer, n.Unit) {
			row.Refusals += n.N
		}
	}
	for _, n := range st.VerifyFailures {
		for _, row := range rows(n.Officer, n.Unit) {
			row.VerificationFailures += n.N
		}
	}

	out.Cases.ByState = map[evidence.CaseState]int{}
	for _, s := range evidence.CaseStates() {
		out.Cases.ByState[s] = 0
	}
	for _, c := range st.Cases {
		out.Cases.ByState[c.State] += c.N
	}
	steps := map[evidence.CaseState]*statsStep{}
	left := map[evidence.CaseState][]time.Duration{}
	for _, s := range evidence.CaseStates() {
		if s == evidence.CaseArchived {
			continue
		}
		step := statsStep{State: s}
		if l := limits[s]; l > 0 {
			step.LimitHours = ptr(hours(l))
		}
		out.Cases.Steps = append(out.Cases.Steps, step)
	}
	for i := range out.Cases.Steps { // once the slice has stopped growing
		steps[out.Cases.Steps[i].State] = &out.Cases.Steps[i]
	}
	for _, t := range st.Steps {
		left[t.State] = append(left[t.State], t.Left.Sub(t.Entered))
	}
	for s, ds := range left {
		step := steps[s]
		if step == nil {
			continue
		}
		slices.Sort(ds)
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		median := ds[len(ds)/2]
		if len(ds)%2 == 0 {
			median = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
		}
		step.Left, step.MeanHours, step.MedianHours = len(ds), ptr(hours(sum/time.Duration(len(ds)))), ptr(hours(median))
	}
	out.Cases.Overdue = []statsOverdue{}
	for _, c := range st.Open {
		step := steps[c.State]
		if step == nil {
			continue
		}
		step.Open++
		in, limit := q.Now.Sub(c.Since), limits[c.State]
		if limit <= 0 || in <= limit {
			continue
		}
		step.Overdue++
		for _, row := range rows(c.Officer, c.Unit) {
			row.CasesOverdue++
		}
		out.Cases.Overdue = append(out.Cases.Overdue, statsOverdue{CaseID: c.ID, State: c.State, Officer: c.Officer, Unit: c.Unit,
			Since: c.Since, HoursInStep: hours(in), LimitHours: hours(limit)})
	}
	sort.Slice(out.Cases.Overdue, func(i, j int) bool { return out.Cases.Overdue[i].Since.Before(out.Cases.Overdue[j].Since) })

	finish := func(row *statsRow) {
		row.HoursRecorded = hours(row.recorded)
		row.DevicesLiveNow, row.DevicesSilentOnDuty = len(row.live), len(row.silent)
		if row.StoredDecided > 0 {
			row.StoredWithin24hShare = ptr(math.Round(float64(row.StoredWithin24h)/float64(row.StoredDecided)*10000) / 10000)
		}
	}
	finish(total)
	out.Units, out.Officers = []*statsRow{}, []*statsRow{}
	for _, u := range units {
		finish(u)
		out.Units = append(out.Units, u)
	}
	for _, o := range officers {
		finish(o)
		out.Officers = append(out.Officers, o)
	}
	sort.Slice(out.Units, func(i, j int) bool { return out.Units[i].Unit < out.Units[j].Unit })
	sort.Slice(out.Officers, func(i, j int) bool { return out.Officers[i].Officer < out.Officers[j].Officer })
	out.Devices.LiveNow, out.Devices.SilentOnDuty = total.DevicesLiveNow, total.DevicesSilentOnDuty
	out.Uploads.Pending, out.Uploads.StoredWithin24hShare = total.UploadsPending, total.StoredWithin24hShare
	return out
}

func dayOf(t time.Time) int64 { return int64(math.Floor(float64(t.Unix()) / 86400)) }

func dayStart(d int64) string { return time.Unix(d*86400, 0).UTC().Format(time.DateOnly) }

// weeks sums days into weeks that start on Monday (1970-01-01, day 0, was
// a Thursday).
func weeks(days []statsPoint, dayHours []time.Duration, day0 int64) []statsPoint {
	var out []statsPoint
	var h time.Duration
	for i, d := range days {
		n := day0 + int64(i)
		monday := n - ((n%7)+7+3)%7
		if len(out) == 0 || out[len(out)-1].Start != dayStart(monday) {
			if len(out) > 0 {
				out[len(out)-1].Hours = hours(h)
			}
			out, h = append(out, statsPoint{Start: dayStart(monday)}), 0
		}
		out[len(out)-1].Recordings += d.Recordings
		h += dayHours[i]
	}
	if len(out) > 0 {
		out[len(out)-1].Hours = hours(h)
	}
	return out
}

// hours is d in hours, to the hundredth.
func hours(d time.Duration) float64 { return math.Round(d.Hours()*100) / 100 }

func ptr[T any](v T) *T { return &v }

// statsTables are the tables of the dashboard as CSV, by name.
var statsTables = []string{"units", "officers", "cases", "steps", "overdue", "trend_day", "trend_week"}

// statsCSV: GET /api/v1/stats.csv?table=&from=&to=[&unit=][&officer=], one
// of the dashboard's tables, as a spreadsheet reads it.
func (s *Server) statsCSV(w http.ResponseWriter, r *http.Request) {
	table := r.URL.Query().Get("table")
	if !slices.Contains(statsTables, table) {
		writeError(w, http.StatusBadRequest, "table: one of "+strings.Join(statsTables, ", "))
		return
	}
	out, ok := s.buildStats(w, r)
	if !ok {
		return
	}
	var records [][]string
	num := strconv.Itoa
	flt := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	opt := func(f *float64) string {
		if f == nil {
			return ""
		}
		return flt(*f)
	}
	rowsOf := func(rows []*statsRow, officers bool) {
		head := []string{"unit"}
		if officers {
			head = append(head, "officer")
		}
		records = append(records, append(head, "recordings", "hours_recorded", "silent_recordings", "devices_live_now",
			"devices_silent_on_duty", "uploads_pending", "stored_within_24h", "stored_decided", "stored_within_24h_share",
			"important_in_no_case", "refusals", "verification_failures", "cases_overdue"))
		for _, row := range append(rows, &out.Totals) {
			rec := []string{text(row.Unit)}
			if row == &out.Totals {
				rec[0] = "total"
			}
			if officers {
				rec = append(rec, text(row.Officer))
			}
			records = append(records, append(rec, num(row.Recordings), flt(row.HoursRecorded), num(row.SilentRecordings),
				num(row.DevicesLiveNow), num(row.DevicesSilentOnDuty), num(row.UploadsPending), num(row.StoredWithin24h),
				num(row.StoredDecided), opt(row.StoredWithin24hShare), num(row.ImportantInNoCase), num(row.Refusals),
				num(row.VerificationFailures), num(row.CasesOverdue)))
		}
	}
	switch table {
	case "units":
		rowsOf(out.Units, false)
	case "officers":
		rowsOf(out.Officers, true)
	case "cases":
		records = append(records, []string{"state", "cases"})
		for _, st := range evidence.CaseStates() {
			records = append(records, []string{string(st), num(out.Cases.ByState[st])})
		}
	case "steps":
		records = append(records, []string{"state", "limit_hours", "left", "mean_hours", "median_hours", "open", "overdue"})
		for _, st := range out.Cases.Steps {
			records = append(records, []string{string(st.State), opt(st.LimitHours), num(st.Left), opt(st.MeanHours), opt(st.MedianHours),
				num(st.Open), num(st.Overdue)})
		}
	case "overdue":
		records = append(records, []string{"case_id", "state", "officer", "unit", "since", "hours_in_step", "limit_hours"})
		for _, o := range out.Cases.Overdue {
			records = append(records, []string{text(o.CaseID), string(o.State), text(o.Officer), text(o.Unit),
				o.Since.Format(time.RFC3339), flt(o.HoursInStep), flt(o.LimitHours)})
		}
	case "trend_day", "trend_week":
		points := out.Trend.Day
		if table == "trend_week" {
			points = out.Trend.Week
		}
		records = append(records, []string{"start", "recordings", "hours"})
		for _, p := range points {
			records = append(records, []string{p.Start, num(p.Recordings), flt(p.Hours)})
		}
	}
	name := fmt.Sprintf("bodycam-stats-%s-%s-%s.csv", table, out.From.Format("20060102T150405Z"), out.To.Format("20060102T150405Z"))
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	cw := csv.NewWriter(w)
	cw.WriteAll(records)
}

// text makes a cell of free text safe to open in a spreadsheet: one that
// begins like a formula is read as text (OWASP's CSV injection advice).
func text(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
