package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// statsFixture is rolesFixture (unit a: o-a, s-a, cam-a live with rec-a,
// case C-1; unit b: o-b, s-b) with a week of work seeded, and the period
// that holds it (rec-a, live since the fixture began, is after it):
//
//	o-a: ra1 1 h, stored after a minute; ra2 30 min, ended silent (read
//	     timeout), never stored; ru1 an important upload of 15 min in no
//	     case; a refusal; case C-2 filed, investigating after 24 h, and
//	     overdue there (limit 48 h, 4 days in).
//	o-b: rb1 2 h, stored 30 h after its end; a failed verification of it;
//	     a refusal; an upload pending; case C-3 filed a day ago.
//	anonymous: a refusal, in no unit.
func statsFixture(t *testing.T) (srv string, from, to time.Time) {
	t.Helper()
	s, _ := rolesFixture(t, func(o *api.Options) {
		o.StepLimits = evidence.StepLimits{evidence.CaseFiled: 72 * time.Hour, evidence.CaseInvestigating: 48 * time.Hour}
	})
	cat, keys := lastFixture.cat, lastFixture.keys
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	from, to = now.Add(-6*24*time.Hour), now.Add(-time.Minute)
	if err := cat.CreateDevice(ctx, evidence.Device{ID: "cam-b", OfficerID: "o-b", SecretHash: "x"}); err != nil {
		t.Fatal(err)
	}
	rec := func(id, dev, off string, start time.Time, length time.Duration, reason string) {
		t.Helper()
		state := evidence.StateComplete
		if evidence.EndedSilent(reason) {
			state = evidence.StateInterrupted
		}
		if err := cat.CreateRecording(ctx, evidence.Recording{ID: id, DeviceID: dev, OfficerID: off, State: state,
			StartedAt: start, EndedAt: start.Add(length), EndReason: reason}); err != nil {
			t.Fatal(err)
		}
	}
	d := 24 * time.Hour
	rec("ra1", "cam-a", "o-a", now.Add(-3*d), time.Hour, "publisher stopped")
	rec("ra2", "cam-a", "o-a", now.Add(-2*d), 30*time.Minute, "no data for 10s (read timeout)")
	rec("rb1", "cam-b", "o-b", now.Add(-3*d), 2*time.Hour, "publisher stopped")
	important := evidence.Upload{ID: "up-1", DeviceID: "cam-a", OfficerID: "o-a", Dock: "dk", FileName: "A.MP4", Size: 10,
		SHA256: strings.Repeat("ab", 32), Important: true, StartedAt: now.Add(-4 * d), EndedAt: now.Add(-4*d + 15*time.Minute), TimeSource: evidence.TimeGiven}
	pending := important
	pending.ID, pending.DeviceID, pending.OfficerID, pending.SHA256, pending.Important = "up-2", "cam-b", "o-b", strings.Repeat("cd", 32), false
	for _, u := range []evidence.Upload{important, pending} {
		if err := cat.CreateUpload(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.SetUploadState(ctx, "up-1", catalog.UploadFinishing, "", important.SHA256); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cat.StoreUpload(ctx, evidence.Recording{ID: "ru1", DeviceID: "cam-a", OfficerID: "o-a", Kind: evidence.KindUpload,
		State: evidence.StateComplete, StartedAt: important.StartedAt, EndedAt: important.EndedAt, EndReason: "uploaded"},
		evidence.Segment{RecordingID: "ru1", DeviceID: "cam-a", Seq: 1, Kind: evidence.KindOriginal, Key: evidence.OriginalKey("cam-a", "ru1", "A.MP4"),
			Size: 10, SHA256: important.SHA256, StartedAt: important.StartedAt, Duration: 15 * time.Minute, Keyframe: true}, "up-1"); err != nil {
		t.Fatal(err)
	}
	for _, e := range []evidence.CustodyEvent{
		{At: now.Add(-3*d + 61*time.Minute), Actor: "device:cam-a", Action: evidence.ActionIngest, TargetKind: "recording", TargetID: "ra1"},
		{At: now.Add(-3*d + 32*time.Hour), Actor: "device:cam-b", Action: evidence.ActionIngest, TargetKind: "recording", TargetID: "rb1"},
		{At: now.Add(-d), Actor: "o-a", Action: evidence.ActionDenied, TargetKind: "request", TargetID: "GET /api/v1/nodes", Outcome: evidence.OutcomeDenied},
		{At: now.Add(-d), Actor: "o-b", Action: evidence.ActionDenied, TargetKind: "request", TargetID: "GET /api/v1/nodes", Outcome: evidence.OutcomeDenied},
		// A client with no valid credential: the totals of those who see every unit only.
		{At: now.Add(-d), Actor: "anonymous", Action: evidence.ActionDenied, TargetKind: "request", TargetID: "GET /api/v1/stats", Outcome: evidence.OutcomeDenied},
		{At: now.Add(-d), Actor: "aud", Action: evidence.ActionVerify, TargetKind: "recording", TargetID: "rb1", Outcome: evidence.OutcomeFailed},
		{At: now.Add(-d), Actor: "aud", Action: evidence.ActionVerify, TargetKind: "recording", TargetID: "ra1"},
	} {
		if _, err := cat.AppendCustody(ctx, e, keys); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []evidence.Case{
		{ID: "C-2", Officer: "o-a", Unit: "a", CreatedBy: "o-a", CreatedAt: now.Add(-5 * d)},
		{ID: "C-3", Officer: "o-b", Unit: "b", CreatedBy: "o-b", CreatedAt: now.Add(-d)},
	} {
		if err := cat.CreateCase(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.TransitionCase(ctx, evidence.CaseTransition{CaseID: "C-2", From: evidence.CaseFiled, To: evidence.CaseInvestigating, By: "o-a", At: now.Add(-4 * d)}); err != nil {
		t.Fatal(err)
	}
	return s.URL, from, to
}

type statsRowT struct {
	Unit                 string   `json:"unit"`
	Officer              string   `json:"officer"`
	Recordings           int      `json:"recordings"`
	HoursRecorded        float64  `json:"hours_recorded"`
	SilentRecordings     int      `json:"silent_recordings"`
	DevicesLiveNow       int      `json:"devices_live_now"`
	DevicesSilentOnDuty  int      `json:"devices_silent_on_duty"`
	UploadsPending       int      `json:"uploads_pending"`
	StoredDecided        int      `json:"stored_decided"`
	StoredWithin24h      int      `json:"stored_within_24h"`
	StoredWithin24hShare *float64 `json:"stored_within_24h_share"`
	ImportantInNoCase    int      `json:"important_in_no_case"`
	Refusals             int      `json:"refusals"`
	VerificationFailures int      `json:"verification_failures"`
	CasesOverdue         int      `json:"cases_overdue"`
}

type statsT struct {
	Unit     string      `json:"unit"`
	Totals   statsRowT   `json:"totals"`
	Units    []statsRowT `json:"units"`
	Officers []statsRowT `json:"officers"`
	Devices  struct {
		LiveNow      int `json:"live_now"`
		SilentOnDuty int `json:"silent_on_duty"`
	} `json:"devices"`
	Uploads struct {
		Pending int      `json:"pending"`
		Share   *float64 `json:"stored_within_24h_share"`
	} `json:"uploads"`
	Cases struct {
		ByState map[string]int `json:"by_state"`
		Steps   []struct {
			State       string   `json:"state"`
			LimitHours  *float64 `json:"limit_hours"`
			Left        int      `json:"left"`
			MeanHours   *float64 `json:"mean_hours"`
			MedianHours *float64 `json:"median_hours"`
			Open        int      `json:"open"`
			Overdue     int      `json:"overdue"`
		} `json:"steps"`
		Overdue []struct {
			CaseID string `json:"case_id"`
			State  string `json:"state"`
		} `json:"overdue"`
	} `json:"cases"`
	Trend struct {
		Day []struct {
			Start      string  `json:"start"`
			Recordings int     `json:"recordings"`
			Hours      float64 `json:"hours"`
		} `json:"day"`
		Week []struct {
			Start      string `json:"start"`
			Recordings int    `json:"recordings"`
		} `json:"week"`
	} `json:"trend"`
}

func getStats(t *testing.T, srv, who string, from, to time.Time, extra string) (int, statsT, string) {
	t.Helper()
	q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	req, _ := http.NewRequest("GET", srv+"/api/v1/stats?"+q.Encode()+extra, nil)
	req.Header.Set("Authorization", "Bearer tok-"+who)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	json.NewDecoder(resp.Body).Decode(&raw)
	var st statsT
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, st, string(raw)
}

func share(f *float64) string {
	if f == nil {
		return "null"
	}
	return fmt.Sprint(*f)
}

// rowString is the numbers of a row, to compare with what was seeded.
func rowString(r statsRowT) string {
	return fmt.Sprintf("%s/%s rec=%d h=%v silent=%d live=%d silentdev=%d pending=%d stored=%d/%d share=%s important=%d refusals=%d verify=%d overdue=%d",
		r.Unit, r.Officer, r.Recordings, r.HoursRecorded, r.SilentRecordings, r.DevicesLiveNow, r.DevicesSilentOnDuty, r.UploadsPending,
		r.StoredWithin24h, r.StoredDecided, share(r.StoredWithin24hShare), r.ImportantInNoCase, r.Refusals, r.VerificationFailures, r.CasesOverdue)
}

var (
	wantOA     = "a/o-a rec=3 h=1.75 silent=1 live=1 silentdev=1 pending=0 stored=1/3 share=0.3333 important=1 refusals=1 verify=0 overdue=1"
	wantOB     = "b/o-b rec=1 h=2 silent=0 live=0 silentdev=0 pending=1 stored=0/1 share=0 important=0 refusals=1 verify=1 overdue=0"
	wantUnitA  = "a/ rec=3 h=1.75 silent=1 live=1 silentdev=1 pending=0 stored=1/3 share=0.3333 important=1 refusals=1 verify=0 overdue=1"
	wantUnitB  = "b/ rec=1 h=2 silent=0 live=0 silentdev=0 pending=1 stored=0/1 share=0 important=0 refusals=1 verify=1 overdue=0"
	wantNoUnit = "/ rec=0 h=0 silent=0 live=0 silentdev=0 pending=0 stored=0/0 share=null important=0 refusals=1 verify=0 overdue=0"
	wantTotal  = "/ rec=4 h=3.75 silent=1 live=1 silentdev=1 pending=1 stored=1/4 share=0.25 important=1 refusals=3 verify=1 overdue=1"
)

// Every number of the dashboard on seeded data, as an auditor sees it.
func TestStatsNumbers(t *testing.T) {
	srv, from, to := statsFixture(t)
	code, st, raw := getStats(t, srv, "aud", from, to, "")
	if code != 200 {
		t.Fatalf("%d %s", code, raw)
	}
	if got := rowString(st.Totals); got != wantTotal {
		t.Errorf("totals\n got %s\nwant %s", got, wantTotal)
	}
	if len(st.Units) != 3 || rowString(st.Units[0]) != wantNoUnit || rowString(st.Units[1]) != wantUnitA || rowString(st.Units[2]) != wantUnitB {
		t.Errorf("units: %+v", st.Units)
	}
	if len(st.Officers) != 2 || rowString(st.Officers[0]) != wantOA || rowString(st.Officers[1]) != wantOB {
		for _, o := range st.Officers {
			t.Log(rowString(o))
		}
		t.Errorf("officers\nwant %s\nwant %s", wantOA, wantOB)
	}
	if st.Devices.LiveNow != 1 || st.Devices.SilentOnDuty != 1 || st.Uploads.Pending != 1 || share(st.Uploads.Share) != "0.25" {
		t.Errorf("devices %+v, uploads %+v", st.Devices, st.Uploads)
	}
	if b := st.Cases.ByState; b["filed"] != 2 || b["investigating"] != 1 || b["closed"] != 0 || len(b) != 6 {
		t.Errorf("cases by state %v, want filed 2 (C-1, C-3), investigating 1 (C-2), every state named", b)
	}
	steps := map[string]string{}
	for _, s := range st.Cases.Steps {
		steps[s.State] = fmt.Sprintf("limit=%s left=%d mean=%s median=%s open=%d overdue=%d", share(s.LimitHours), s.Left, share(s.MeanHours), share(s.MedianHours), s.Open, s.Overdue)
	}
	for state, want := range map[string]string{
		"filed":         "limit=72 left=1 mean=24 median=24 open=2 overdue=0",
		"investigating": "limit=48 left=0 mean=null median=null open=1 overdue=1",
		"under_review":  "limit=null left=0 mean=null median=null open=0 overdue=0",
	} {
		if steps[state] != want {
			t.Errorf("step %s: %s, want %s", state, steps[state], want)
		}
	}
	if len(st.Cases.Overdue) != 1 || st.Cases.Overdue[0].CaseID != "C-2" || st.Cases.Overdue[0].State != "investigating" {
		t.Errorf("overdue cases %+v, want C-2 in investigating", st.Cases.Overdue)
	}
	// Seven days (from is six days and a minute before the end), each
	// recording on its day; weeks sum the days.
	if len(st.Trend.Day) != 7 {
		t.Fatalf("%d days in the trend, want 7", len(st.Trend.Day))
	}
	byDay := map[string]string{}
	sum, weekSum := 0, 0
	for _, p := range st.Trend.Day {
		byDay[p.Start] = fmt.Sprintf("%d/%v", p.Recordings, p.Hours)
		sum += p.Recordings
	}
	for _, p := range st.Trend.Week {
		weekSum += p.Recordings
		if wd := must(time.Parse(time.DateOnly, p.Start)).Weekday(); wd != time.Monday && p.Start != st.Trend.Day[0].Start {
			t.Errorf("week %s starts on a %s", p.Start, wd)
		}
	}
	now := to.Add(time.Minute)
	for day, want := range map[time.Time]string{now.Add(-4 * 24 * time.Hour): "1/0.25", now.Add(-3 * 24 * time.Hour): "2/3", now.Add(-2 * 24 * time.Hour): "1/0.5"} {
		if got := byDay[day.Format(time.DateOnly)]; got != want {
			t.Errorf("day %s: %s, want %s", day.Format(time.DateOnly), got, want)
		}
	}
	if sum != 4 || weekSum != 4 {
		t.Errorf("trend sums: days %d, weeks %d; want 4", sum, weekSum)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Scope: a supervisor of a unit sees that unit's numbers only, and asking
// for another unit or one of its officers is refused as missing; an
// auditor, and a supervisor of no unit, see every unit and may narrow;
// officers, admins and docks are refused.
func TestStatsScope(t *testing.T) {
	srv, from, to := statsFixture(t)
	code, st, raw := getStats(t, srv, "s-a", from, to, "")
	if code != 200 || st.Unit != "a" || rowString(st.Totals) != strings.Replace(wantUnitA, "a/", "/", 1) ||
		len(st.Units) != 1 || len(st.Officers) != 1 || rowString(st.Officers[0]) != wantOA {
		t.Errorf("s-a: %d %s", code, raw)
	}
	if st.Cases.ByState["filed"] != 1 || st.Cases.ByState["investigating"] != 1 {
		t.Errorf("s-a cases %v, want unit a's: C-1 filed, C-2 investigating", st.Cases.ByState)
	}
	code, st, raw = getStats(t, srv, "s-b", from, to, "")
	if code != 200 || st.Unit != "b" || rowString(st.Totals) != strings.Replace(wantUnitB, "b/", "/", 1) || len(st.Officers) != 1 ||
		st.Officers[0].Officer != "o-b" || len(st.Cases.Overdue) != 0 || st.Cases.ByState["filed"] != 1 || st.Cases.ByState["investigating"] != 0 {
		t.Errorf("s-b: %d %s", code, raw)
	}
	for _, extra := range []string{"&unit=b", "&officer=o-b", "&unit=a&officer=o-b"} {
		if code, _, raw := getStats(t, srv, "s-a", from, to, extra); code != 404 || strings.Contains(raw, "recordings") {
			t.Errorf("s-a asking %s: %d %s, want 404", extra, code, raw)
		}
	}
	if code, st, _ := getStats(t, srv, "s-a", from, to, "&unit=a&officer=o-a"); code != 200 || rowString(st.Totals) != strings.Replace(wantOA, "a/o-a", "/", 1) {
		t.Errorf("s-a asking for o-a: %d %s", code, rowString(st.Totals))
	}
	code, st, _ = getStats(t, srv, "aud", from, to, "&unit=b")
	if code != 200 || rowString(st.Totals) != strings.Replace(wantUnitB, "b/", "/", 1) || len(st.Units) != 1 {
		t.Errorf("aud, unit b: %d %s", code, rowString(st.Totals))
	}
	code, st, _ = getStats(t, srv, "aud", from, to, "&officer=o-a")
	if code != 200 || rowString(st.Totals) != strings.Replace(wantOA, "a/o-a", "/", 1) {
		t.Errorf("aud, officer o-a: %d %s", code, rowString(st.Totals))
	}
	// A supervisor of no unit (a duty supervisor) sees every unit, as an auditor.
	sum := sha256.Sum256([]byte("tok-s-none"))
	if err := lastFixture.cat.CreateUser(context.Background(), evidence.User{ID: "s-none", Role: evidence.RoleSupervisor, CertToken: "cert-s-none"}); err != nil {
		t.Fatal(err)
	}
	if err := lastFixture.cat.CreateAPIToken(context.Background(), evidence.APIToken{ID: "s-none", TokenHash: hex.EncodeToString(sum[:]), UserID: "s-none", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, st, raw = getStats(t, srv, "s-none", from, to, "")
	if code != 200 || st.Unit != "" || rowString(st.Totals) != wantTotal || len(st.Officers) != 2 {
		t.Errorf("s-none: %d %s", code, raw)
	}
	if code, st, _ := getStats(t, srv, "s-none", from, to, "&unit=b"); code != 200 || rowString(st.Totals) != strings.Replace(wantUnitB, "b/", "/", 1) {
		t.Errorf("s-none, unit b: %d %s", code, rowString(st.Totals))
	}
	for _, who := range []string{"o-a", "adm", "dk"} {
		if code, _, _ := getStats(t, srv, who, from, to, ""); code != 403 {
			t.Errorf("%s: %d, want 403", who, code)
		}
	}
}

// Periods: both ends, in order, at most 400 days.
func TestStatsPeriod(t *testing.T) {
	srv, _ := rolesFixture(t)
	for q, want := range map[string]string{
		"":                                       "from: a time",
		"from=2026-01-01T00:00:00Z":              "to: a time",
		"from=yesterday&to=2026-01-01T00:00:00Z": "from: a time",
		"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z": "to must be after from",
		"from=2025-01-01T00:00:00Z&to=2026-03-01T00:00:00Z": "at most 400 days",
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/stats?"+q, nil)
		req.Header.Set("Authorization", "Bearer tok-aud")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(e.Error, want) {
			t.Errorf("%q: %d %q, want 400 saying %q", q, resp.StatusCode, e.Error, want)
		}
	}
}

// CSV: every table, as an attachment, escaped by encoding/csv, the same
// numbers as the JSON; an unknown table is refused.
func TestStatsCSV(t *testing.T) {
	srv, from, to := statsFixture(t)
	get := func(table, who string) (*http.Response, [][]string) {
		q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "table": {table}}
		req, _ := http.NewRequest("GET", srv+"/api/v1/stats.csv?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer tok-"+who)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return resp, nil
		}
		recs, err := csv.NewReader(resp.Body).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		return resp, recs
	}
	resp, recs := get("officers", "aud")
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="bodycam-stats-officers-`) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Errorf("headers %v", resp.Header)
	}
	want := [][]string{
		{"unit", "officer", "recordings", "hours_recorded", "silent_recordings", "devices_live_now", "devices_silent_on_duty", "uploads_pending",
			"stored_within_24h", "stored_decided", "stored_within_24h_share", "important_in_no_case", "refusals", "verification_failures", "cases_overdue"},
		{"a", "o-a", "3", "1.75", "1", "1", "1", "0", "1", "3", "0.3333", "1", "1", "0", "1"},
		{"b", "o-b", "1", "2", "0", "0", "0", "1", "0", "1", "0", "0", "1", "1", "0"},
		{"total", "", "4", "3.75", "1", "1", "1", "1", "1", "4", "0.25", "1", "3", "1", "1"},
	}
	if fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Errorf("officers.csv\n got %v\nwant %v", recs, want)
	}
	_, recs = get("steps", "s-b")
	if fmt.Sprint(recs[1]) != "[filed 72 0   1 0]" || len(recs) != 6 {
		t.Errorf("steps.csv of s-b: %v", recs)
	}
	_, recs = get("overdue", "aud")
	if len(recs) != 2 || recs[1][0] != "C-2" || recs[1][1] != "investigating" {
		t.Errorf("overdue.csv: %v", recs)
	}
	_, recs = get("cases", "s-a")
	if fmt.Sprint(recs) != "[[state cases] [filed 1] [investigating 1] [under_review 0] [decided 0] [closed 0] [archived 0]]" {
		t.Errorf("cases.csv of s-a: %v", recs)
	}
	for _, table := range []string{"units", "trend_day", "trend_week"} {
		if _, recs := get(table, "aud"); len(recs) < 2 {
			t.Errorf("%s.csv: %v", table, recs)
		}
	}
	if resp, _ := get("secrets", "aud"); resp.StatusCode != 400 {
		t.Errorf("unknown table: %d, want 400", resp.StatusCode)
	}
	if resp, _ := get("officers", "o-a"); resp.StatusCode != 403 {
		t.Errorf("officer: %d, want 403", resp.StatusCode)
	}
}
