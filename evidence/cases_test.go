package evidence

import (
	"errors"
	"testing"
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
