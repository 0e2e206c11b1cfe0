package main

import (
	"context"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/custody"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/password"
	"github.com/bodycam/bodycam/storage"
)

// caseHolds keeps footage linked to cases on legal hold as ingest stores it,
// and links recordings published with ?case= from their first byte.
type caseHolds struct {
	cat    *catalog.Catalog
	store  storage.Store
	ledger *custody.Ledger
}

func (h caseHolds) HoldIfLinked(ctx context.Context, recordingID, key string) error {
	links, err := h.cat.EvidenceLinks(ctx, "", recordingID)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Active() {
			return h.store.SetLegalHold(ctx, key, true)
		}
	}
	return nil
}

func (h caseHolds) LinkFromStart(ctx context.Context, r evidence.Recording) error {
	actor := "device:" + r.DeviceID
	c, err := h.cat.Case(ctx, r.CaseID)
	if err != nil {
		h.ledger.Record(ctx, evidence.CustodyEvent{Actor: actor, Role: "device", Remote: r.RemoteAddr, Action: evidence.ActionLink,
			TargetKind: "recording", TargetID: r.ID, Detail: "published for case " + r.CaseID + ", which does not exist: not linked",
			Outcome: evidence.OutcomeFailed})
		return fmt.Errorf("case %s: %w", r.CaseID, err)
	}
	if c.State == evidence.CaseClosed || c.State == evidence.CaseArchived {
		return fmt.Errorf("case %s is %s", c.ID, c.State)
	}
	l := evidence.EvidenceLink{ID: password.NewSecret()[:16], CaseID: c.ID, RecordingID: r.ID, LinkedBy: actor,
		LinkedAt: time.Now().UTC(), Note: "published with ?case=" + c.ID}
	if err := h.cat.LinkEvidence(ctx, l); err != nil {
		return err
	}
	return h.ledger.Record(ctx, evidence.CustodyEvent{Actor: actor, Role: "device", Remote: r.RemoteAddr, Action: evidence.ActionLink,
		TargetKind: "recording", TargetID: r.ID, CaseID: c.ID, Detail: "link " + l.ID + ": the whole recording, from its first byte"})
}

// liveAudit records viewing sessions in the catalog and the custody ledger.
type liveAudit struct {
	cat    *catalog.Catalog
	ledger *custody.Ledger
}

func (a liveAudit) StartLiveView(ctx context.Context, v evidence.LiveView) error {
	if err := a.cat.StartLiveView(ctx, v); err != nil {
		return err
	}
	return a.ledger.Record(ctx, evidence.CustodyEvent{At: v.StartedAt, Actor: v.User, Role: a.role(ctx, v.User), Remote: v.RemoteAddr, Action: evidence.ActionLiveView,
		TargetKind: "recording", TargetID: v.RecordingID, Detail: "live view " + v.ID + " of " + v.DeviceID + " started: video " + v.Video + ", audio " + v.Audio})
}

// role is the viewer's role as the event is recorded: the ledger keeps who
// watched in what capacity, whatever the account becomes later.
func (a liveAudit) role(ctx context.Context, user string) string {
	u, err := a.cat.User(ctx, user)
	if err != nil {
		return ""
	}
	return string(u.Role)
}

func (a liveAudit) EndLiveView(ctx context.Context, id string, endedAt time.Time, reason string) error {
	if err := a.cat.EndLiveView(ctx, id, endedAt, reason); err != nil {
		return err
	}
	v, err := a.cat.LiveView(ctx, id)
	if err != nil {
		return err
	}
	return a.ledger.Record(ctx, evidence.CustodyEvent{At: endedAt, Actor: v.User, Role: a.role(ctx, v.User), Remote: v.RemoteAddr, Action: evidence.ActionLiveView,
		TargetKind: "recording", TargetID: v.RecordingID, Detail: "live view " + id + " ended: " + reason})
}
