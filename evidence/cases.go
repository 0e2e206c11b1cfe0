package evidence

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// CaseState is where a case is in its workflow.
type CaseState string

// The workflow of the original system, in order. No step can be skipped.
const (
	CaseFiled         CaseState = "filed"
	CaseInvestigating CaseState = "investigating"
	CaseUnderReview   CaseState = "under_review"
	CaseDecided       CaseState = "decided"
	CaseClosed        CaseState = "closed"
	CaseArchived      CaseState = "archived"
)

var caseOrder = []CaseState{CaseFiled, CaseInvestigating, CaseUnderReview, CaseDecided, CaseClosed, CaseArchived}

// CaseStates lists every state in workflow order.
func CaseStates() []CaseState { return append([]CaseState(nil), caseOrder...) }

// Valid reports whether s is a known state.
func (s CaseState) Valid() bool {
	for _, c := range caseOrder {
		if c == s {
			return true
		}
	}
	return false
}

// Next is the state after s, or "" for the last.
func (s CaseState) Next() CaseState {
	for i, c := range caseOrder {
		if c == s && i+1 < len(caseOrder) {
			return caseOrder[i+1]
		}
	}
	return ""
}

var caseIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateCaseID reports whether id may name a case (it goes into RTSP
// query strings and file names of exports).
func ValidateCaseID(id string) error {
	if !caseIDPattern.MatchString(id) {
		return fmt.Errorf("%w %q: a case id must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}", ErrInvalidID, id)
	}
	return nil
}

// Case is an enforcement case that footage serves as evidence for.
type Case struct {
	ID        string
	Title     string
	State     CaseState
	Officer   string // the officer in charge
	Unit      string // the unit it belongs to (the officer's)
	Members   []string
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// CaseTransition is one recorded step of a case's workflow.
type CaseTransition struct {
	CaseID string
	From   CaseState
	To     CaseState
	By     string
	Reason string
	At     time.Time
}

// Errors of the workflow.
var (
	ErrSkippedStep = errors.New("a workflow step cannot be skipped")
	ErrSelfReview  = errors.New("a case cannot be reviewed by its officer in charge")
)

// CheckTransition applies the workflow's rules to moving c to to by a user
// with role: one step at a time, forward only; the review decision
// (under review → decided) by a supervisor other than the officer in charge.
func CheckTransition(c Case, to CaseState, by string, role Role) error {
	if !to.Valid() {
		return fmt.Errorf("unknown case state %q", to)
	}
	if next := c.State.Next(); to != next {
		if next == "" {
			return fmt.Errorf("%w: case %s is %s, the last step", ErrSkippedStep, c.ID, c.State)
		}
		return fmt.Errorf("%w: case %s is %s; the next step is %s, not %s", ErrSkippedStep, c.ID, c.State, next, to)
	}
	if c.State == CaseUnderReview {
		if role != RoleSupervisor {
			return fmt.Errorf("%w: the review decision is a supervisor's", ErrSelfReview)
		}
		if by == c.Officer {
			return fmt.Errorf("%w: %s is the officer in charge of %s", ErrSelfReview, by, c.ID)
		}
	}
	return nil
}

// EvidenceLink ties a recording, or a time window of one, to a case. An
// unlinked link stays on record with who removed it and why.
type EvidenceLink struct {
	ID           string
	CaseID       string
	RecordingID  string
	From, To     time.Time // zero: the whole recording
	LinkedBy     string
	LinkedAt     time.Time
	Note         string
	UnlinkedBy   string
	UnlinkedAt   time.Time // zero while linked
	UnlinkReason string
}

// Active reports whether the link still holds.
func (l EvidenceLink) Active() bool { return l.UnlinkedAt.IsZero() }

// CaseRecord is a case as the API and court exports show it.
type CaseRecord struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	State     string    `json:"state"`
	Officer   string    `json:"officer"`
	Unit      string    `json:"unit"`
	Members   []string  `json:"members"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewCaseRecord is c as the API and exports show it.
func NewCaseRecord(c Case) CaseRecord {
	return CaseRecord{ID: c.ID, Title: c.Title, State: string(c.State), Officer: c.Officer, Unit: c.Unit,
		Members: append([]string{}, c.Members...), CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// TransitionRecord is a case step as the API and court exports show it.
type TransitionRecord struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// NewTransitionRecord is t as the API and exports show it.
func NewTransitionRecord(t CaseTransition) TransitionRecord {
	return TransitionRecord{From: string(t.From), To: string(t.To), By: t.By, Reason: t.Reason, At: t.At}
}

// LinkRecord is an evidence link as the API and court exports show it.
type LinkRecord struct {
	ID           string     `json:"id"`
	RecordingID  string     `json:"recording_id"`
	From         *time.Time `json:"from,omitempty"`
	To           *time.Time `json:"to,omitempty"`
	LinkedBy     string     `json:"linked_by"`
	LinkedAt     time.Time  `json:"linked_at"`
	Note         string     `json:"note"`
	Active       bool       `json:"active"`
	UnlinkedBy   string     `json:"unlinked_by,omitempty"`
	UnlinkedAt   *time.Time `json:"unlinked_at,omitempty"`
	UnlinkReason string     `json:"unlink_reason,omitempty"`
}

// NewLinkRecord is l as the API and exports show it.
func NewLinkRecord(l EvidenceLink) LinkRecord {
	return LinkRecord{ID: l.ID, RecordingID: l.RecordingID, From: optTime(l.From), To: optTime(l.To), LinkedBy: l.LinkedBy,
		LinkedAt: l.LinkedAt, Note: l.Note, Active: l.Active(), UnlinkedBy: l.UnlinkedBy, UnlinkedAt: optTime(l.UnlinkedAt),
		UnlinkReason: l.UnlinkReason}
}

// optTime is t, or nil when it is zero (left out of the JSON).
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// StepLimits is how long a case may stay in a step of its workflow before
// the supervision dashboard calls it overdue. A state without a limit is
// never overdue (by default the last two: a closed case waits for its
// archiving as long as its retention says).
type StepLimits map[CaseState]time.Duration

// DefaultStepLimits: three days to start investigating a filed case, thirty
// to investigate, fourteen to review, thirty to close a decided case.
func DefaultStepLimits() StepLimits {
	return StepLimits{CaseFiled: 72 * time.Hour, CaseInvestigating: 720 * time.Hour,
		CaseUnderReview: 336 * time.Hour, CaseDecided: 720 * time.Hour}
}

// ParseStepLimits reads "filed=72h,investigating=720h": the states named
// get those limits, the others keep the defaults; a limit of 0 removes
// one. archived, the last state, takes none (a case never leaves it).
func ParseStepLimits(s string) (StepLimits, error) {
	limits := DefaultStepLimits()
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		state := CaseState(strings.TrimSpace(name))
		if !ok || !state.Valid() {
			return nil, fmt.Errorf("case step limit %q: want state=duration, with a state of %v", part, caseOrder[:len(caseOrder)-1])
		}
		if state == CaseArchived {
			return nil, fmt.Errorf("case step limit %q: a case never leaves archived", part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(value))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("case step limit %q: want a duration such as 72h", part)
		}
		if d == 0 {
			delete(limits, state)
		} else {
			limits[state] = d
		}
	}
	return limits, nil
}

// States lists the states that have a limit, in workflow order.
func (l StepLimits) States() []CaseState {
	var out []CaseState
	for _, s := range caseOrder {
		if l[s] > 0 {
			out = append(out, s)
		}
	}
	return out
}

// String is the limits as ParseStepLimits reads them, in workflow order.
func (l StepLimits) String() string {
	var parts []string
	for _, s := range l.States() {
		parts = append(parts, string(s)+"="+l[s].String())
	}
	return strings.Join(parts, ",")
}
