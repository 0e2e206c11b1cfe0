package main

import (
	"context"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/custody"
	"github.com/bodycam/bodycam/evidence"
)

// liveAudit records viewing sessions in the catalog and the custody ledger.
type liveAudit struct {
	cat    *catalog.Catalog
	ledger *custody.Ledger
	node   string // this node's id, on each viewing session
}

func (a liveAudit) StartLiveView(ctx context.Context, v evidence.LiveView) error {
	v.NodeID = a.node
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
