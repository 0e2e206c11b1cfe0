package evidence

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The workflow refuses skipped steps, going back, and self-review.
func TestCaseWorkflow(t *testing.T) {
	c := Case{ID: "C-1", State: CaseFiled, Officer: "o-1"}
	steps := []struct {
		to   CaseState
		by   string
		role Role
		want error
	}{
		{CaseUnderReview, "o-1", RoleOfficer, ErrSkippedStep},
		{CaseInvestigating, "o-1", RoleOfficer, nil},
		{CaseFiled, "o-1", RoleOfficer, ErrSkippedStep},
		{CaseUnderReview, "o-1", RoleOfficer, nil},
		{CaseDecided, "o-1", RoleOfficer, ErrSelfReview},    // an officer does not decide
		{CaseDecided, "o-1", RoleSupervisor, ErrSelfReview}, // nor the officer in charge, whatever the role
		{CaseClosed, "s-2", RoleSupervisor, ErrSkippedStep},
		{CaseDecided, "s-2", RoleSupervisor, nil},
		{CaseClosed, "s-2", RoleSupervisor, nil},
		{CaseArchived, "s-2", RoleSupervisor, nil},
		{CaseArchived, "s-2", RoleSupervisor, ErrSkippedStep},
	}
	for i, st := range steps {
		err := CheckTransition(c, st.to, st.by, st.role)
		if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
			t.Fatalf("step %d: %s -> %s by %s: %v, want %v", i, c.State, st.to, st.by, err, st.want)
		}
		if err == nil {
			c.State = st.to
		}
	}
	if err := CheckTransition(c, "lost", "s-2", RoleSupervisor); err == nil {
		t.Fatal("unknown state accepted")
	}
}

func TestParseStepLimits(t *testing.T) {
	l, err := ParseStepLimits("filed=1h, closed=240h,decided=0")
	if err != nil {
		t.Fatal(err)
	}
	want := StepLimits{CaseFiled: time.Hour, CaseInvestigating: 720 * time.Hour, CaseUnderReview: 336 * time.Hour, CaseClosed: 240 * time.Hour}
	if len(l) != len(want) {
		t.Fatalf("limits %v, want %v", l, want)
	}
	for s, d := range want {
		if l[s] != d {
			t.Errorf("%s: %v, want %v", s, l[s], d)
		}
	}
	if got := l.String(); got != "filed=1h0m0s,investigating=720h0m0s,under_review=336h0m0s,closed=240h0m0s" {
		t.Errorf("String() = %q", got)
	}
	if d, _ := ParseStepLimits(""); d.String() != DefaultStepLimits().String() {
		t.Errorf("empty: %v, want the defaults", d)
	}
	for _, bad := range []string{"filed", "nope=1h", "archived=1h", "filed=soon", "filed=-1h"} {
		if _, err := ParseStepLimits(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSilentEndPrefixes(t *testing.T) {
	for _, p := range SilentEndPrefixes {
		if strings.ContainsAny(p, `'%_\`) {
			t.Errorf("prefix %q holds a character LIKE or SQL quoting would read", p)
		}
	}
	for reason, silent := range map[string]bool{
		"no data for 10s (read timeout)": true, "publisher disconnected: connection reset by peer": true,
		"the device connected again (from 10.0.0.2) after 5s without media; this session was ended": true,
		"publisher stopped": false, "server shutting down": false, "uploaded": false,
	} {
		if EndedSilent(reason) != silent {
			t.Errorf("EndedSilent(%q) = %v", reason, !silent)
		}
	}
}
