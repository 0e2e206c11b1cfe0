package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Retention is how the API shows and sets recordings' retention classes
// (issue 16): the server's policy, the shortest period it accepted, and
// where categories are kept.
type Retention struct {
	Policy evidence.RetentionPolicy
	// Minimum is the shortest period the configuration was checked
	// against: evidence.MinRetention, unless a test or an evaluation
	// lowered it (which GET /api/v1/categories then shows).
	Minimum time.Duration
	Catalog RetentionCatalog
}

// RetentionCatalog keeps recordings' categories (catalog).
type RetentionCatalog interface {
	SetRecordingCategories(ctx context.Context, id string, was, cats []string, by string, at time.Time) error
	RetentionFactsOf(ctx context.Context, recs []evidence.Recording) (map[string]evidence.RetentionFacts, error)
}

// retentionJSON is a recording's retention as the API shows it.
type retentionJSON struct {
	Categories []string `json:"categories"`
	// RetainUntil: when its footage may be deleted (RFC 3339),
	// "permanent", or "held by case"; null while it records (its period
	// counts from its end).
	RetainUntil   *string `json:"retain_until"`
	RetentionRule string  `json:"retention_rule"`
}

// Words of retain_until besides a time.
const (
	retainPermanent = "permanent"
	retainHeld      = "held by case"
)

func toRetentionJSON(f evidence.RetentionFacts, d evidence.RetentionDecision) *retentionJSON {
	j := &retentionJSON{Categories: f.Categories, RetentionRule: d.Rule}
	if j.Categories == nil {
		j.Categories = []string{}
	}
	until := ""
	switch {
	case d.Permanent:
		until = retainPermanent
	case d.Held:
		until = retainHeld
		j.RetentionRule = "held while a case links it; then " + d.Rule
	case !d.Until.IsZero():
		until = d.Until.UTC().Format(time.RFC3339)
	}
	if until != "" {
		j.RetainUntil = &until
	}
	return j
}

// withRetention adds their retention to recordings' JSON (nothing when
// this server keeps no categories).
func (s *Server) withRetention(ctx context.Context, js []recordingJSON, recs []evidence.Recording) error {
	if s.o.Retention == nil || len(recs) == 0 {
		return nil
	}
	facts, err := s.o.Retention.Catalog.RetentionFactsOf(ctx, recs)
	if err != nil {
		return err
	}
	for i := range js {
		f := facts[js[i].ID]
		js[i].retentionJSON = toRetentionJSON(f, s.o.Retention.Policy.Decide(f))
	}
	return nil
}

// retentionReady answers 503 when this server keeps no categories.
func (s *Server) retentionReady(w http.ResponseWriter) bool {
	if s.o.Retention == nil {
		writeError(w, http.StatusServiceUnavailable, "retention classes are not configured on this server")
		return false
	}
	return true
}

// listCategories: GET /api/v1/categories, the configured retention classes
// and the periods of footage with none and of footage marked important.
func (s *Server) listCategories(w http.ResponseWriter, r *http.Request) {
	if !s.retentionReady(w) {
		return
	}
	p := s.o.Retention.Policy
	items := make([]map[string]any, 0, len(p.Classes))
	for _, c := range p.Classes {
		items = append(items, map[string]any{"name": c.Name, "period": c.Period.String(), "permanent": c.Period.Permanent})
	}
	important := ""
	if !p.Important.IsZero() {
		important = p.Important.String()
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "unlinked_retention": p.Unlinked.String(),
		"important_retention": important, "retention_minimum": evidence.RetentionPeriod{Duration: s.o.Retention.Minimum}.String(),
		"legal_minimum": evidence.RetentionPeriod{Duration: evidence.MinRetention}.String()})
}

// setCategories: PUT /api/v1/recordings/{id}/categories with
// {"categories": [...], "reason": "..."}, by an officer or a supervisor who
// may read the recording. A change that would let the footage be deleted
// sooner (a longer class removed, say) is a supervisor's, and never of
// their own footage; one that keeps it as long or longer is also the
// officer's. Each change is a custody event (old and new categories and
// retention, who, why) written before the catalog keeps it.
func (s *Server) setCategories(w http.ResponseWriter, r *http.Request) {
	if !s.retentionReady(w) {
		return
	}
	rec, ok := s.recording(w, r)
	if !ok {
		return
	}
	var req struct {
		Categories []string `json:"categories"`
		Reason     string   `json:"reason"`
	}
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Categories == nil {
		writeError(w, http.StatusBadRequest, "categories: the recording's whole new set (an empty list for none)")
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		writeError(w, http.StatusBadRequest, "reason: say why the categories change")
		return
	}
	if err := validText("reason", req.Reason, 500); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	policy := s.o.Retention.Policy
	cats, err := policy.CheckCategories(req.Categories)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !rec.DeletedAt.IsZero() {
		writeError(w, http.StatusConflict, "the media of recording "+rec.ID+" was deleted by retention on "+rec.DeletedAt.Format(time.RFC3339)+
			"; its categories are what its tombstone says")
		return
	}
	facts, err := s.o.Retention.Catalog.RetentionFactsOf(r.Context(), []evidence.Recording{rec})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	f := facts[rec.ID]
	if slices.Equal(f.Categories, cats) || len(f.Categories) == 0 && len(cats) == 0 {
		writeJSON(w, http.StatusOK, toRetentionJSON(f, policy.Decide(f)))
		return
	}
	p := principalOf(r)
	if policy.Shortens(f, cats) {
		if p.Role != evidence.RoleSupervisor {
			s.deny(w, r, http.StatusForbidden, p.ID, fmt.Sprintf("only a supervisor shortens the retention of recording %s (categories %v to %v)", rec.ID, f.Categories, cats))
			return
		}
		if rec.OfficerID == p.ID {
			s.deny(w, r, http.StatusForbidden, p.ID, fmt.Sprintf("a supervisor does not shorten the retention of their own recording %s", rec.ID))
			return
		}
	}
	g := f
	g.Categories = cats
	before, after := policy.Decide(f), policy.Decide(g)
	detail := fmt.Sprintf("categories %s -> %s (retention %s -> %s): %s", catList(f.Categories), catList(cats),
		retainWords(before), retainWords(after), oneLineNote(req.Reason))
	if err := s.record(r, evidence.CustodyEvent{Action: evidence.ActionCategories, TargetKind: "recording", TargetID: rec.ID, Detail: detail}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the change cannot be recorded in the custody ledger now; not changed")
		return
	}
	if err := s.o.Retention.Catalog.SetRecordingCategories(r.Context(), rec.ID, f.Categories, cats, p.ID, time.Now().UTC()); err != nil {
		s.record(r, evidence.CustodyEvent{Action: evidence.ActionCategories, TargetKind: "recording", TargetID: rec.ID,
			Detail: "categories " + catList(cats) + " not kept: " + err.Error(), Outcome: evidence.OutcomeFailed})
		if errors.Is(err, catalog.ErrConflict) {
			writeError(w, http.StatusConflict, "the categories of recording "+rec.ID+" changed meanwhile; read them again")
			return
		}
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toRetentionJSON(g, after))
}

// catList is categories as a custody event's detail says them.
func catList(cats []string) string {
	if len(cats) == 0 {
		return "[none]"
	}
	return "[" + strings.Join(cats, " ") + "]"
}

// retainWords is a decision as a custody event's detail says it (holds
// aside: a category change does not touch them).
func retainWords(d evidence.RetentionDecision) string {
	switch {
	case d.Permanent:
		return "permanent"
	case d.Until.IsZero():
		return d.Rule
	}
	return "until " + d.Until.UTC().Format(time.RFC3339) + " by " + d.Rule
}
