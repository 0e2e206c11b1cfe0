package catalog

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// The supervision dashboard's numbers (GET /api/v1/stats; docs/architecture.md,
// "The supervision dashboard"). The catalog aggregates: what it returns grows
// with officers, days, devices and open cases, never with recordings or
// ledger events. The API sums these rows into units, officers, totals and
// trends.

// StatsQuery is the period and scope of the dashboard. A recording, upload,
// refusal or case belongs to the officer it names (a recording's officer, an
// upload's, a refusal's actor, a case's officer in charge) and to that
// officer's unit as it is now.
type StatsQuery struct {
	From, To time.Time // the period: [From, To)
	Unit     string    // only the officers of this unit (users.unit); "" every unit
	Officer  string    // only this officer; "" every officer
	Now      time.Time // what "now" is for live devices, open cases and the 24 h rule
	// StepStates: the case states that have a time limit; Stats lists the
	// cases now in one of them (Open).
	StepStates []evidence.CaseState
}

// StatsDay is one officer's recordings that started on one UTC day.
type StatsDay struct {
	Officer, Unit string
	Day           int64 // days since 1970-01-01 UTC
	Recordings    int
	Recorded      time.Duration // whole lengths; one still recording, up to Now
	// Silent: recordings that ended because the recorder fell silent
	// (evidence.SilentEndPrefixes).
	Silent int
	// ImportantUnfiled: recordings marked important (an upload's mark) that
	// no case links now.
	ImportantUnfiled int
	// StoredDecided: recordings stored, or ended more than 24 h before Now
	// (whether they made it in 24 h is known); StoredWithin: those stored
	// (their first ingest event in the ledger) within 24 h of their end.
	StoredDecided, StoredWithin int
}

// StatsDevice is a device, with the officer and unit its recording names.
type StatsDevice struct{ Device, Officer, Unit string }

// StatsCount is a count of one officer's (or other actor's).
type StatsCount struct {
	Officer, Unit string
	N             int
}

// StatsCases counts cases now in one state, of one officer in charge.
type StatsCases struct {
	State         evidence.CaseState
	Officer, Unit string
	N             int
}

// StatsOpenCase is a case now in a step that has a limit, since when.
type StatsOpenCase struct {
	ID            string
	State         evidence.CaseState
	Officer, Unit string
	Since         time.Time
}

// StatsStep is a step a case left during the period: the state, when the
// case entered it (filed: its creation) and when it left it.
type StatsStep struct {
	CaseID        string
	State         evidence.CaseState
	Officer, Unit string
	Entered, Left time.Time
}

// Stats is the rows of the dashboard.
type Stats struct {
	Days []StatsDay
	// Live: devices recording now; Silent: devices that fell silent in a
	// recording that started in the period.
	Live, Silent []StatsDevice
	// UploadsPending: uploads being received or finished now.
	UploadsPending []StatsCount
	// Refusals: refused requests in the period (ledger outcome denied), by
	// actor (those of no user under officer ""); VerifyFailures: failed verifications of recordings in the
	// period, by the recording's officer.
	Refusals, VerifyFailures []StatsCount
	Cases                    []StatsCases
	Open                     []StatsOpenCase
	Steps                    []StatsStep
}

const dayMicros = 86400 * 1_000_000

// statsArgs builds a query's placeholders as they are used, so that each
// query has exactly the arguments it names (pgx refuses others).
type statsArgs struct{ list []any }

func (a *statsArgs) add(v any) string {
	a.list = append(a.list, v)
	return "$" + strconv.Itoa(len(a.list))
}

// scope is the condition that keeps the rows of q's unit and officer, on
// the column that names the officer.
func (a *statsArgs) scope(q StatsQuery, col string) string {
	var b strings.Builder
	if q.Unit != "" {
		b.WriteString(" AND " + col + " IN (SELECT id FROM users WHERE unit = " + a.add(q.Unit) + ")")
	}
	if q.Officer != "" {
		b.WriteString(" AND " + col + " = " + a.add(q.Officer))
	}
	return b.String()
}

// silentCond is the SQL for "the recording ended because its recorder fell
// silent", on the end_reason column col.
func silentCond(col string) string {
	var parts []string
	for _, p := range evidence.SilentEndPrefixes {
		// The prefixes hold no quote, % or _ (evidence's test checks).
		parts = append(parts, col+" LIKE '"+p+"%'")
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// Stats returns the dashboard's rows for q, in a fixed number of queries.
func (c *Catalog) Stats(ctx context.Context, q StatsQuery) (Stats, error) {
	var st Stats
	now := micros(q.Now)

	// Recordings that started in the period, per officer and day.
	a := &statsArgs{}
	from, to, nowArg := a.add(micros(q.From)), a.add(micros(q.To)), a.add(now)
	day := a.add(int64(dayMicros))
	grace := a.add(int64(24 * 3600 * 1_000_000))
	scope := a.scope(q, "r.officer_id")
	// The recordings' own facts are worked out once each (MATERIALIZED:
	// otherwise the engine inlines the CTE and runs the ledger's subquery
	// for every use of stored_us), then summed per officer and day.
	err := c.scanAll(ctx, "recording stats", `WITH x AS MATERIALIZED (
		SELECT r.officer_id, r.started_us, r.ended_us, r.started_us / `+day+` AS day,
			COALESCE(r.ended_us, `+nowArg+`) AS end_us,
			CASE WHEN `+silentCond("r.end_reason")+` THEN 1 ELSE 0 END AS silent,
			CASE WHEN EXISTS (SELECT 1 FROM uploads up WHERE up.recording_id = r.id AND up.state = 'stored' AND up.important)
				AND NOT EXISTS (SELECT 1 FROM evidence_links l WHERE l.recording_id = r.id AND l.unlinked_us IS NULL) THEN 1 ELSE 0 END AS unfiled,
			(SELECT MIN(e.at_us) FROM custody_events e WHERE e.target_id = r.id AND e.action = 'ingest'
				AND e.target_kind = 'recording' AND e.outcome = 'ok') AS stored_us
			FROM recordings r WHERE r.started_us >= `+from+` AND r.started_us < `+to+scope+`)
		SELECT x.officer_id, COALESCE(u.unit, ''), x.day, COUNT(*),
		SUM(CASE WHEN x.end_us > x.started_us THEN x.end_us - x.started_us ELSE 0 END),
		SUM(x.silent), SUM(x.unfiled),
		SUM(CASE WHEN x.stored_us IS NOT NULL OR (x.ended_us IS NOT NULL AND x.ended_us + `+grace+` <= `+nowArg+`) THEN 1 ELSE 0 END),
		SUM(CASE WHEN x.stored_us IS NOT NULL AND x.ended_us IS NOT NULL AND x.stored_us <= x.ended_us + `+grace+` THEN 1 ELSE 0 END)
		FROM x
		LEFT JOIN users u ON u.id = x.officer_id
		GROUP BY x.officer_id, u.unit, x.day ORDER BY x.day, x.officer_id`, a.list, func(row scanner) error {
		var d StatsDay
		var recorded int64
		if err := row.Scan(&d.Officer, &d.Unit, &d.Day, &d.Recordings, &recorded, &d.Silent, &d.ImportantUnfiled,
			&d.StoredDecided, &d.StoredWithin); err != nil {
			return err
		}
		d.Recorded = time.Duration(recorded) * time.Microsecond
		st.Days = append(st.Days, d)
		return nil
	})
	if err != nil {
		return Stats{}, err
	}

	devices := func(what, where string, a *statsArgs) ([]StatsDevice, error) {
		var out []StatsDevice
		err := c.scanAll(ctx, what, `SELECT DISTINCT r.device_id, r.officer_id, COALESCE(u.unit, '')
			FROM recordings r LEFT JOIN users u ON u.id = r.officer_id WHERE `+where+a.scope(q, "r.officer_id")+`
			ORDER BY r.device_id, r.officer_id`, a.list, func(row scanner) error {
			var d StatsDevice
			if err := row.Scan(&d.Device, &d.Officer, &d.Unit); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
		return out, err
	}
	if st.Live, err = devices("live devices", "r.state = 'live' AND r.ended_us IS NULL", &statsArgs{}); err != nil {
		return Stats{}, err
	}
	a = &statsArgs{}
	if st.Silent, err = devices("silent devices", "r.started_us >= "+a.add(micros(q.From))+" AND r.started_us < "+a.add(micros(q.To))+
		" AND "+silentCond("r.end_reason"), a); err != nil {
		return Stats{}, err
	}

	counts := func(what, query string, args []any) ([]StatsCount, error) {
		var out []StatsCount
		err := c.scanAll(ctx, what, query, args, func(row scanner) error {
			var n StatsCount
			if err := row.Scan(&n.Officer, &n.Unit, &n.N); err != nil {
				return err
			}
			out = append(out, n)
			return nil
		})
		return out, err
	}
	a = &statsArgs{}
	st.UploadsPending, err = counts("pending uploads", `SELECT p.officer_id, COALESCE(u.unit, ''), COUNT(*)
		FROM uploads p LEFT JOIN users u ON u.id = p.officer_id WHERE p.state IN ('receiving', 'finishing')`+a.scope(q, "p.officer_id")+`
		GROUP BY p.officer_id, u.unit ORDER BY p.officer_id`, a.list)
	if err != nil {
		return Stats{}, err
	}
	a = &statsArgs{}
	from, to = a.add(micros(q.From)), a.add(micros(q.To))
	// An actor that is no user (an anonymous client, a device) is counted
	// under officer "".
	st.Refusals, err = counts("refusals", `SELECT CASE WHEN u.id IS NULL THEN '' ELSE e.actor END, COALESCE(u.unit, ''), COUNT(*)
		FROM custody_events e LEFT JOIN users u ON u.id = e.actor
		WHERE e.outcome = 'denied' AND e.at_us >= `+from+` AND e.at_us < `+to+a.scope(q, "e.actor")+`
		GROUP BY 1, 2 ORDER BY 1, 2`, a.list)
	if err != nil {
		return Stats{}, err
	}
	a = &statsArgs{}
	from, to = a.add(micros(q.From)), a.add(micros(q.To))
	st.VerifyFailures, err = counts("verification failures", `SELECT r.officer_id, COALESCE(u.unit, ''), COUNT(*)
		FROM custody_events e JOIN recordings r ON r.id = e.target_id LEFT JOIN users u ON u.id = r.officer_id
		WHERE e.outcome = 'failed' AND e.action = 'verify' AND e.target_kind = 'recording'
		AND e.at_us >= `+from+` AND e.at_us < `+to+a.scope(q, "r.officer_id")+`
		GROUP BY r.officer_id, u.unit ORDER BY r.officer_id`, a.list)
	if err != nil {
		return Stats{}, err
	}

	// Cases: scoped by their own unit (the case's, as MayReadCase does) and
	// officer in charge.
	caseScope := func(a *statsArgs) string {
		var b strings.Builder
		if q.Unit != "" {
			b.WriteString(" AND c.unit = " + a.add(q.Unit))
		}
		if q.Officer != "" {
			b.WriteString(" AND c.officer = " + a.add(q.Officer))
		}
		return b.String()
	}
	a = &statsArgs{}
	err = c.scanAll(ctx, "cases by state", `SELECT c.state, c.officer, c.unit, COUNT(*) FROM cases c WHERE 1 = 1`+caseScope(a)+`
		GROUP BY c.state, c.officer, c.unit ORDER BY c.state, c.officer`, a.list, func(row scanner) error {
		var n StatsCases
		if err := row.Scan(&n.State, &n.Officer, &n.Unit, &n.N); err != nil {
			return err
		}
		st.Cases = append(st.Cases, n)
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	if len(q.StepStates) > 0 {
		a = &statsArgs{}
		var in []string
		for _, s := range q.StepStates {
			in = append(in, a.add(string(s)))
		}
		err = c.scanAll(ctx, "open cases", `SELECT c.id, c.state, c.officer, c.unit,
			COALESCE((SELECT MAX(t.at_us) FROM case_transitions t WHERE t.case_id = c.id AND t.to_state = c.state), c.created_us)
			FROM cases c WHERE c.state IN (`+strings.Join(in, ", ")+`)`+caseScope(a)+` ORDER BY c.id`, a.list, func(row scanner) error {
			var o StatsOpenCase
			var since int64
			if err := row.Scan(&o.ID, &o.State, &o.Officer, &o.Unit, &since); err != nil {
				return err
			}
			o.Since = fromMicros(since)
			st.Open = append(st.Open, o)
			return nil
		})
		if err != nil {
			return Stats{}, err
		}
	}
	a = &statsArgs{}
	from, to = a.add(micros(q.From)), a.add(micros(q.To))
	err = c.scanAll(ctx, "case steps", `SELECT t.case_id, t.from_state, c.officer, c.unit, t.at_us,
		COALESCE((SELECT MAX(p.at_us) FROM case_transitions p WHERE p.case_id = t.case_id AND p.to_state = t.from_state AND p.at_us <= t.at_us), c.created_us)
		FROM case_transitions t JOIN cases c ON c.id = t.case_id
		WHERE t.at_us >= `+from+` AND t.at_us < `+to+caseScope(a)+` ORDER BY t.at_us, t.case_id`, a.list, func(row scanner) error {
		var s StatsStep
		var left, entered int64
		if err := row.Scan(&s.CaseID, &s.State, &s.Officer, &s.Unit, &left, &entered); err != nil {
			return err
		}
		s.Entered, s.Left = fromMicros(entered), fromMicros(left)
		st.Steps = append(st.Steps, s)
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	return st, nil
}
