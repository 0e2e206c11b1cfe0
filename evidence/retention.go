package evidence

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Retention classes (issue 16): a recording has zero or more categories
// (traffic stop, arrest, complaint, ...), each configured with a retention
// period. How long a recording is kept is decided here, once, for the
// retention job (which deletes) and the API (which shows it) alike.

// MinRetention is the legal minimum: enforcement footage is kept at least
// six months. The server refuses a shorter period at start-up (outside
// tests and evaluations, which may lower it explicitly).
const MinRetention = 180 * 24 * time.Hour

// RetentionPeriod is how long footage is kept: years (calendar years,
// counted with AddDate, so a leap day never makes "3y" a day short) plus a
// duration, or for ever.
type RetentionPeriod struct {
	Years     int
	Duration  time.Duration
	Permanent bool
}

// ErrRetentionPeriod is wrapped by ParseRetentionPeriod's errors.
var ErrRetentionPeriod = errors.New("want a period such as 180d, 3y or permanent")

// ParseRetentionPeriod reads "180d" (days), "3y" (calendar years),
// "permanent", or a Go duration ("72h", for tests with a lowered minimum).
func ParseRetentionPeriod(s string) (RetentionPeriod, error) {
	s = strings.TrimSpace(s)
	if s == "permanent" {
		return RetentionPeriod{Permanent: true}, nil
	}
	for _, u := range []struct {
		suffix string
		max    int
		set    func(n int) RetentionPeriod
	}{
		{"d", 36500, func(n int) RetentionPeriod { return RetentionPeriod{Duration: time.Duration(n) * 24 * time.Hour} }},
		{"y", 100, func(n int) RetentionPeriod { return RetentionPeriod{Years: n} }},
	} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 || v > u.max {
				return RetentionPeriod{}, fmt.Errorf("%q: %w", s, ErrRetentionPeriod)
			}
			return u.set(v), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return RetentionPeriod{}, fmt.Errorf("%q: %w", s, ErrRetentionPeriod)
	}
	return RetentionPeriod{Duration: d}, nil
}

// String is the period as ParseRetentionPeriod reads it.
func (p RetentionPeriod) String() string {
	switch {
	case p.Permanent:
		return "permanent"
	case p.Years > 0 && p.Duration == 0:
		return fmt.Sprintf("%dy", p.Years)
	case p.Years > 0:
		return fmt.Sprintf("%dy+%s", p.Years, RetentionPeriod{Duration: p.Duration})
	case p.Duration > 0 && p.Duration%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", p.Duration/(24*time.Hour))
	}
	return p.Duration.String()
}

// IsZero reports whether the period is unset.
func (p RetentionPeriod) IsZero() bool { return p == RetentionPeriod{} }

// After is when footage kept this period from t may go (zero when
// permanent).
func (p RetentionPeriod) After(t time.Time) time.Time {
	if p.Permanent {
		return time.Time{}
	}
	return t.AddDate(p.Years, 0, 0).Add(p.Duration)
}

// Shortest is the least the period can last (a year of 365 days): what
// the legal minimum is checked against.
func (p RetentionPeriod) Shortest() time.Duration {
	return time.Duration(p.Years)*365*24*time.Hour + p.Duration
}

// Longest is the most the period can last (a year of 366 days; after a
// change of clocks an hour more): a bound that After never exceeds, for
// queries that must not select footage before its time.
func (p RetentionPeriod) Longest() time.Duration {
	if p.Years == 0 {
		return p.Duration
	}
	return time.Duration(p.Years)*366*24*time.Hour + time.Hour + p.Duration
}

// RetentionClass is a configured category and its period.
type RetentionClass struct {
	Name   string          `json:"name"`
	Period RetentionPeriod `json:"-"`
}

var categoryPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ValidateCategoryName reports whether name may name a category:
// lower-case letters, digits and _, starting with a letter, at most 32.
func ValidateCategoryName(name string) error {
	if !categoryPattern.MatchString(name) {
		return fmt.Errorf("category %q: want [a-z][a-z0-9_]{0,31}", name)
	}
	return nil
}

// RetentionPolicy is how long footage is kept.
type RetentionPolicy struct {
	// Classes are the categories a recording may have, each with its period.
	Classes []RetentionClass
	// Unlinked is how long footage with no category is kept.
	Unlinked RetentionPeriod
	// Important is the least footage marked important (the recorder's
	// one-key mark) is kept, whatever its categories; zero: no minimum.
	Important RetentionPeriod
}

// Class returns the configured class of that name.
func (p RetentionPolicy) Class(name string) (RetentionClass, bool) {
	for _, c := range p.Classes {
		if c.Name == name {
			return c, true
		}
	}
	return RetentionClass{}, false
}

// Validate checks the policy: valid, distinct class names, and every period
// at least min (MinRetention outside tests). The error names what is wrong.
func (p RetentionPolicy) Validate(min time.Duration) error {
	law := ""
	if min >= MinRetention {
		law = " (footage is kept at least six months)"
	}
	short := func(what string, q RetentionPeriod) error {
		if !q.Permanent && q.Shortest() < min {
			return fmt.Errorf("%s: %s is below the minimum retention of %s%s", what, q, RetentionPeriod{Duration: min}, law)
		}
		return nil
	}
	seen := map[string]bool{}
	for _, c := range p.Classes {
		if err := ValidateCategoryName(c.Name); err != nil {
			return err
		}
		if seen[c.Name] {
			return fmt.Errorf("category %s: configured twice", c.Name)
		}
		seen[c.Name] = true
		if c.Period.IsZero() {
			return fmt.Errorf("category %s: no period", c.Name)
		}
		if err := short("category "+c.Name, c.Period); err != nil {
			return err
		}
	}
	if p.Unlinked.IsZero() || p.Unlinked.Permanent {
		return errors.New("unlinked retention: want a period (footage in no category and no case is deleted after it)")
	}
	if err := short("unlinked retention", p.Unlinked); err != nil {
		return err
	}
	if !p.Important.IsZero() {
		return short("important retention", p.Important)
	}
	return nil
}

// CheckCategories checks categories a user gives a recording: each a
// configured class, none twice. It returns them sorted.
func (p RetentionPolicy) CheckCategories(cats []string) ([]string, error) {
	out := make([]string, 0, len(cats))
	for _, c := range cats {
		if _, ok := p.Class(c); !ok {
			return nil, fmt.Errorf("category %q is not configured (GET /api/v1/categories lists them)", c)
		}
		if slices.Contains(out, c) {
			return nil, fmt.Errorf("category %q given twice", c)
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// RetentionFacts is what a recording's retention depends on.
type RetentionFacts struct {
	Ended      time.Time // zero while it records
	Categories []string
	Important  bool // an uploaded file the recorder marked important
	// Linked: a case links it now (legal hold: nothing is deleted).
	Linked bool
	// LastUnlinked: when it left its last case (zero: never in one); its
	// period counts from then when that is after its end.
	LastUnlinked time.Time
}

// RetentionDecision is how long a recording is kept, and by which rule.
type RetentionDecision struct {
	// Held: a case links it; nothing is deleted while it does, whatever
	// Until says.
	Held bool
	// Permanent: never deleted (a permanent category, or one no longer
	// configured, which keeps it until an operator says otherwise).
	Permanent bool
	// Until: when it may be deleted (zero when permanent, or while it
	// records: its period counts from its end).
	Until time.Time
	// Rule says which rule gave Until (or Permanent).
	Rule string
}

// Due reports whether the recording may be deleted at now.
func (d RetentionDecision) Due(now time.Time) bool {
	return !d.Held && !d.Permanent && !d.Until.IsZero() && now.After(d.Until)
}

// Decide applies the policy: the longest period of the recording's
// categories (with none, Unlinked); at least Important when it is marked
// important; counted from its end, or from when it left its last case if
// that is later; permanent when any category is; held while a case links
// it, whatever the rest says.
func (p RetentionPolicy) Decide(f RetentionFacts) RetentionDecision {
	d := RetentionDecision{Held: f.Linked}
	base, from := f.Ended, "its end"
	if f.LastUnlinked.After(base) && !f.Ended.IsZero() {
		base, from = f.LastUnlinked, "leaving its last case"
	}
	type rule struct {
		period RetentionPeriod
		name   string
	}
	var rules []rule
	for _, c := range f.Categories {
		class, ok := p.Class(c)
		if !ok {
			d.Permanent, d.Rule = true, "category "+c+" is not configured: kept until it is"
			return d
		}
		rules = append(rules, rule{class.Period, "category " + c + " (" + class.Period.String() + ")"})
	}
	if len(rules) == 0 {
		rules = append(rules, rule{p.Unlinked, "no category: unlinked retention (" + p.Unlinked.String() + ")"})
	}
	if f.Important && !p.Important.IsZero() {
		rules = append(rules, rule{p.Important, "important-marked minimum (" + p.Important.String() + ")"})
	}
	for _, r := range rules {
		if r.period.Permanent {
			d.Permanent, d.Rule = true, strings.TrimSuffix(r.name, " (permanent)")+": permanent"
			return d
		}
	}
	ref := base
	if ref.IsZero() {
		ref = time.Unix(0, 0) // live: which rule is longest, told on any base
	}
	best := 0
	for i, r := range rules {
		if r.period.After(ref).After(rules[best].period.After(ref)) {
			best = i
		}
	}
	d.Rule = rules[best].name + " from " + from
	if !f.Ended.IsZero() {
		d.Until = rules[best].period.After(base)
	}
	return d
}

// Shortens reports whether giving a recording with facts f the categories
// cats would let it be deleted sooner (holds aside). Officers may change
// categories only where it does not (users.go's roles: a supervisor
// shortens, never of their own footage).
func (p RetentionPolicy) Shortens(f RetentionFacts, cats []string) bool {
	if f.Ended.IsZero() {
		f.Ended = time.Now() // live: compared on a common base
	}
	g := f
	g.Categories = cats
	before, after := p.Decide(f), p.Decide(g)
	switch {
	case before.Permanent:
		return !after.Permanent
	case after.Permanent:
		return false
	}
	return after.Until.Before(before.Until)
}
