package evidence

import (
	"strings"
	"testing"
	"time"
)

func period(t *testing.T, s string) RetentionPeriod {
	t.Helper()
	p, err := ParseRetentionPeriod(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseRetentionPeriod(t *testing.T) {
	for in, want := range map[string]RetentionPeriod{
		"180d":      {Duration: 180 * 24 * time.Hour},
		"3y":        {Years: 3},
		"permanent": {Permanent: true},
		"1m30s":     {Duration: 90 * time.Second},
	} {
		got, err := ParseRetentionPeriod(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseRetentionPeriod(%q) = %+v (%s), %v; want %+v", in, got, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-3y", "forever", "1.5y", "101y", "0s"} {
		if _, err := ParseRetentionPeriod(in); err == nil {
			t.Errorf("ParseRetentionPeriod(%q) accepted", in)
		}
	}
	// Calendar years: three years over a leap day are 1096 days, never a day short.
	from := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	if got := period(t, "3y").After(from); !got.Equal(time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)) || got.Sub(from) != 1096*24*time.Hour {
		t.Fatalf("3y after %s = %s", from, got)
	}
	if p := period(t, "3y"); p.Longest() < p.After(from).Sub(from) || p.Shortest() > p.After(from).Sub(from) {
		t.Fatal("Shortest/Longest do not bound After")
	}
}

// The policy refuses periods below the legal minimum, bad and doubled
// names; a test's lowered minimum lets short periods through.
func TestRetentionPolicyValidate(t *testing.T) {
	good := RetentionPolicy{Unlinked: period(t, "180d"), Important: period(t, "2y"), Classes: []RetentionClass{
		{"traffic_stop", period(t, "180d")}, {"complaint", period(t, "permanent")}}}
	if err := good.Validate(MinRetention); err != nil {
		t.Fatal(err)
	}
	for what, p := range map[string]RetentionPolicy{
		"category arrest: 179d is below":      {Unlinked: period(t, "180d"), Classes: []RetentionClass{{"arrest", period(t, "179d")}}},
		"unlinked retention: 30d is below":    {Unlinked: period(t, "30d")},
		"important retention: 90d is below":   {Unlinked: period(t, "180d"), Important: period(t, "90d")},
		`category "Arrest"`:                   {Unlinked: period(t, "180d"), Classes: []RetentionClass{{"Arrest", period(t, "1y")}}},
		"category arrest: configured twice":   {Unlinked: period(t, "180d"), Classes: []RetentionClass{{"arrest", period(t, "1y")}, {"arrest", period(t, "2y")}}},
		"unlinked retention: want a period":   {Unlinked: period(t, "permanent")},
		"category arrest: 4m0s is below the ": {Unlinked: period(t, "180d"), Classes: []RetentionClass{{"arrest", period(t, "4m")}}},
	} {
		err := p.Validate(MinRetention)
		if err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("Validate(%+v) = %v; want %q", p, err, what)
		}
	}
	short := RetentionPolicy{Unlinked: period(t, "2m"), Classes: []RetentionClass{{"arrest", period(t, "4m")}}}
	if err := short.Validate(time.Minute); err != nil {
		t.Fatalf("a lowered minimum (tests): %v", err)
	}
}

// Each rule: the longest category wins; with none, the unlinked period;
// an important mark raises it to the minimum; permanent is never due;
// a hold wins over an expired class; a period counts from leaving the last
// case when that is later; an unconfigured category keeps footage.
func TestRetentionDecide(t *testing.T) {
	p := RetentionPolicy{Unlinked: period(t, "10m"), Important: period(t, "30m"), Classes: []RetentionClass{
		{"traffic_stop", period(t, "10m")}, {"arrest", period(t, "20m")}, {"complaint", period(t, "permanent")}}}
	end := time.Date(2027, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name  string
		f     RetentionFacts
		until time.Duration // after end; -1: permanent
		held  bool
		rule  string
	}{
		{"no category", RetentionFacts{Ended: end}, 10 * time.Minute, false, "no category: unlinked retention (10m0s) from its end"},
		{"longest class wins", RetentionFacts{Ended: end, Categories: []string{"traffic_stop", "arrest"}}, 20 * time.Minute, false, "category arrest (20m0s) from its end"},
		{"important minimum", RetentionFacts{Ended: end, Categories: []string{"arrest"}, Important: true}, 30 * time.Minute, false, "important-marked minimum (30m0s) from its end"},
		{"important, no category", RetentionFacts{Ended: end, Important: true}, 30 * time.Minute, false, "important-marked minimum"},
		{"permanent", RetentionFacts{Ended: end, Categories: []string{"traffic_stop", "complaint"}}, -1, false, "category complaint: permanent"},
		{"unconfigured category", RetentionFacts{Ended: end, Categories: []string{"arrest", "gone"}}, -1, false, "category gone is not configured"},
		{"hold wins over an expired class", RetentionFacts{Ended: end, Categories: []string{"traffic_stop"}, Linked: true}, 10 * time.Minute, true, "category traffic_stop"},
		{"from leaving the last case", RetentionFacts{Ended: end, Categories: []string{"arrest"}, LastUnlinked: end.Add(time.Hour)}, time.Hour + 20*time.Minute, false, "from leaving its last case"},
	} {
		d := p.Decide(c.f)
		switch {
		case c.until < 0 && (!d.Permanent || !d.Until.IsZero()),
			c.until >= 0 && (d.Permanent || !d.Until.Equal(end.Add(c.until))),
			d.Held != c.held, !strings.Contains(d.Rule, c.rule):
			t.Errorf("%s: %+v; want until end+%v, held %v, rule %q", c.name, d, c.until, c.held, c.rule)
		}
		if late := end.Add(1000 * time.Hour); d.Due(late) != (c.until >= 0 && !c.held) {
			t.Errorf("%s: due long after = %v", c.name, d.Due(late))
		}
		if c.until > 0 && d.Due(end.Add(c.until)) {
			t.Errorf("%s: due at its very time, not after it", c.name)
		}
	}
	if d := p.Decide(RetentionFacts{Categories: []string{"arrest"}}); !d.Until.IsZero() || d.Due(end) || !strings.Contains(d.Rule, "arrest") {
		t.Fatalf("a live recording: %+v", d)
	}
	// Shortening: removing the longest class, or a permanent one, shortens;
	// adding one never does here; an unlinked period longer than a class
	// makes adding that class shorten.
	f := RetentionFacts{Ended: end, Categories: []string{"arrest"}}
	for cats, want := range map[string]bool{"": true, "traffic_stop": true, "arrest,traffic_stop": false, "arrest,complaint": false} {
		var list []string
		if cats != "" {
			list = strings.Split(cats, ",")
		}
		if got := p.Shortens(f, list); got != want {
			t.Errorf("arrest -> %q shortens = %v", cats, got)
		}
	}
	if !p.Shortens(RetentionFacts{Ended: end, Categories: []string{"complaint"}}, []string{"arrest"}) {
		t.Error("permanent -> arrest does not shorten")
	}
	long := p
	long.Unlinked = period(t, "15m")
	if !long.Shortens(RetentionFacts{Ended: end}, []string{"traffic_stop"}) {
		t.Error("adding a class shorter than the unlinked period does not shorten")
	}
	if _, err := p.CheckCategories([]string{"arrest", "arrest"}); err == nil {
		t.Error("a category twice accepted")
	}
	if _, err := p.CheckCategories([]string{"nope"}); err == nil {
		t.Error("an unconfigured category accepted")
	}
	if got, err := p.CheckCategories([]string{"traffic_stop", "arrest"}); err != nil || strings.Join(got, ",") != "arrest,traffic_stop" {
		t.Errorf("CheckCategories = %v, %v", got, err)
	}
}
