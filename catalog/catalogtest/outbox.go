package catalogtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/events"
	"github.com/bodycam/bodycam/evidence"
)

// sequenced gives every written event its seq and returns the events after
// seq after.
func sequenced(t *testing.T, c *catalog.Catalog, after int64) []catalog.OutboxEvent {
	t.Helper()
	ctx := context.Background()
	for {
		n, err := c.SequenceOutbox(ctx, 3, time.Now()) // small batches: several rounds
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	evs, err := c.OutboxEvents(ctx, after, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func kinds(evs []catalog.OutboxEvent) string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Kind))
	}
	return strings.Join(out, " ")
}

func data(t *testing.T, e catalog.OutboxEvent) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("%s: data %s: %v", e.Kind, e.Data, err)
	}
	return m
}

// Every change other systems hear of writes its event, with what they need;
// the relay orders them as they were written; consumers keep cursors; old
// events are pruned.
func testOutboxEvents(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if evs := sequenced(t, c, 0); len(evs) != 0 {
		t.Fatalf("registering a device wrote events: %s", kinds(evs))
	}
	rec := recording("r1", "cam-1", t0)
	rec.OfficerID, rec.CaseID, rec.Codecs = "officer-7", "", []string{"H264", "AAC"}
	if err := c.CreateRecording(ctx, rec); err != nil {
		t.Fatal(err)
	}
	for seq := int64(0); seq < 2; seq++ {
		if _, err := c.AppendSegment(ctx, segment("r1", seq)); err != nil {
			t.Fatal(err)
		}
	}
	end := t0.Add(time.Minute)
	if err := c.FinishRecording(ctx, "r1", evidence.StateInterrupted, end, "connection lost"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetManifest(ctx, "r1", "cam-1/r1/manifest.json"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetManifest(ctx, "r1", "cam-1/r1/manifest.json"); err != nil { // the same again: no second event
		t.Fatal(err)
	}
	evs := sequenced(t, c, 0)
	if got, want := kinds(evs), "recording.started device.online segment.stored segment.stored device.offline recording.closed"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	ids := map[string]bool{}
	for i, e := range evs {
		if e.Seq != int64(i+1) || e.DeviceID != "cam-1" || e.CaseID != "" || len(e.ID) != 26 || ids[e.ID] || e.OrderKey() != "device:cam-1" {
			t.Fatalf("event %d: %+v", i, e)
		}
		ids[e.ID] = true
	}
	if d := data(t, evs[0]); d["recording_id"] != "r1" || d["officer_id"] != "officer-7" || d["state"] != "live" ||
		d["started_at"] != t0.Format(time.RFC3339Nano) || !evs[0].OccurredAt.Equal(t0) {
		t.Fatalf("recording.started: %s at %v", evs[0].Data, evs[0].OccurredAt)
	}
	if d := data(t, evs[3]); d["seq"] != 1.0 || d["chain_seq"] != 2.0 || d["kind"] != "media" || d["sha256"] != segment("r1", 1).SHA256 ||
		d["object_key"] != segment("r1", 1).Key || d["chain_hash"] == "" {
		t.Fatalf("segment.stored: %s", evs[3].Data)
	}
	if d := data(t, evs[4]); d["state"] != "interrupted" || d["reason"] != "connection lost" || !evs[4].OccurredAt.Equal(end) {
		t.Fatalf("device.offline: %s at %v", evs[4].Data, evs[4].OccurredAt)
	}
	if d := data(t, evs[5]); d["state"] != "interrupted" || d["segments"] != 2.0 || d["manifest_key"] != "cam-1/r1/manifest.json" ||
		d["ended_at"] != end.Format(time.RFC3339Nano) || d["end_reason"] != "connection lost" {
		t.Fatalf("recording.closed: %s", evs[5].Data)
	}
	b, _ := json.Marshal(evs[5])
	var env map[string]any
	json.Unmarshal(b, &env)
	if env["id"] != evs[5].ID || env["seq"] != 6.0 || env["kind"] != "recording.closed" || env["device"] != "cam-1" || env["case"] != "" ||
		env["data"].(map[string]any)["recording_id"] != "r1" {
		t.Fatalf("envelope: %s", b)
	}
	if got, err := c.OutboxEvent(ctx, evs[2].ID); err != nil || got.Seq != 3 || got.Kind != events.SegmentStored {
		t.Fatalf("OutboxEvent = %+v, %v", got, err)
	}

	// Cases: filed, steps, links (ordered by case).
	if err := c.CreateUser(ctx, user("o-1", evidence.RoleOfficer)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	step := evidence.CaseTransition{CaseID: "C-1", From: evidence.CaseFiled, To: evidence.CaseInvestigating, By: "o-1", Reason: "opened", At: t0.Add(time.Hour)}
	if err := c.TransitionCase(ctx, step); err != nil {
		t.Fatal(err)
	}
	link := evidence.EvidenceLink{ID: "L1", CaseID: "C-1", RecordingID: "r1", From: t0.Add(10 * time.Second), To: t0.Add(20 * time.Second), LinkedBy: "o-1", LinkedAt: t0.Add(2 * time.Hour)}
	if err := c.LinkEvidence(ctx, link); err != nil {
		t.Fatal(err)
	}
	if err := c.UnlinkEvidence(ctx, "L1", "o-1", "wrong footage", t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	link.ID = "L2"
	if err := c.LinkEvidence(ctx, link); err != nil {
		t.Fatal(err)
	}
	if err := c.WithdrawLink(ctx, "L2", "system", "legal hold failed", t0.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	evs = sequenced(t, c, 6)
	if got, want := kinds(evs), "case.step case.step evidence.linked evidence.unlinked evidence.linked evidence.unlinked"; got != want {
		t.Fatalf("case events %q, want %q", got, want)
	}
	for _, e := range evs {
		if e.DeviceID != "" || e.CaseID != "C-1" || e.OrderKey() != "case:C-1" {
			t.Fatalf("case event %+v", e)
		}
	}
	if d := data(t, evs[0]); d["from"] != "" || d["to"] != "filed" || d["by"] != "o-1" {
		t.Fatalf("case filed: %s", evs[0].Data)
	}
	if d := data(t, evs[1]); d["from"] != "filed" || d["to"] != "investigating" || d["reason"] != nil || !evs[1].OccurredAt.Equal(step.At) {
		t.Fatalf("case step: %s", evs[1].Data)
	}
	if d := data(t, evs[2]); d["link_id"] != "L1" || d["recording_id"] != "r1" || d["from"] != link.From.Format(time.RFC3339Nano) {
		t.Fatalf("linked: %s", evs[2].Data)
	}
	if d := data(t, evs[3]); d["link_id"] != "L1" || d["reason"] != nil || d["withdrawn"] != nil || d["recording_id"] != "r1" {
		t.Fatalf("unlinked: %s", evs[3].Data)
	}
	if d := data(t, evs[5]); d["link_id"] != "L2" || d["withdrawn"] != true {
		t.Fatalf("withdrawn: %s", evs[5].Data)
	}

	// Live views, ended one by one and all at once.
	v := evidence.LiveView{ID: "v1", DeviceID: "cam-1", RecordingID: "r1", User: "sup-1", RemoteAddr: "10.1.2.3:5000", UserAgent: "Chromium",
		Video: "H264", StartedAt: t0}
	if err := c.StartLiveView(ctx, v); err != nil {
		t.Fatal(err)
	}
	v.ID = "v2"
	if err := c.StartLiveView(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := c.EndLiveView(ctx, "v1", t0.Add(time.Minute), "viewer left"); err != nil {
		t.Fatal(err)
	}
	if ended, err := c.EndOpenLiveViews(ctx, t0.Add(2*time.Minute), "server stopped"); err != nil || len(ended) != 1 {
		t.Fatalf("EndOpenLiveViews = %d, %v", len(ended), err)
	}
	evs = sequenced(t, c, 12)
	if got, want := kinds(evs), "live_view.started live_view.started live_view.ended live_view.ended"; got != want {
		t.Fatalf("live view events %q, want %q", got, want)
	}
	if strings.Contains(string(evs[0].Data), "10.1.2.3") || strings.Contains(string(evs[0].Data), "Chromium") {
		t.Fatalf("a live view event tells where the viewer is: %s", evs[0].Data)
	}
	if d := data(t, evs[3]); d["view_id"] != "v2" || d["user"] != "sup-1" || d["end_reason"] != "server stopped" || evs[3].DeviceID != "cam-1" {
		t.Fatalf("live view ended: %s", evs[3].Data)
	}

	// Cursors start where asked, only move forward.
	if cur, err := c.OutboxCursor(ctx, "hook", 5); err != nil || cur != 5 {
		t.Fatalf("new cursor = %d, %v", cur, err)
	}
	if cur, err := c.OutboxCursor(ctx, "hook", 0); err != nil || cur != 5 {
		t.Fatalf("cursor again = %d, %v", cur, err)
	}
	if err := c.AdvanceOutboxCursor(ctx, "hook", 9); err != nil {
		t.Fatal(err)
	}
	if err := c.AdvanceOutboxCursor(ctx, "hook", 7); err != nil {
		t.Fatal(err)
	}
	if cur, _ := c.OutboxCursor(ctx, "hook", 0); cur != 9 {
		t.Fatalf("cursor after moving to 9 then 7: %d", cur)
	}

	// Pruning takes sequenced events written before the cutoff, never one
	// still waiting for its seq.
	if err := c.StartLiveView(ctx, evidence.LiveView{ID: "v3", DeviceID: "cam-1", User: "sup-1", StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	st, err := c.OutboxStats(ctx)
	if err != nil || st.Head != 16 || st.Unsequenced != 1 || st.OldestWaiting.IsZero() {
		t.Fatalf("OutboxStats = %+v, %v", st, err)
	}
	if n, err := c.PruneOutbox(ctx, time.Now().Add(time.Minute), 10); err != nil || n != 10 {
		t.Fatalf("PruneOutbox = %d, %v; want a batch of 10", n, err)
	}
	if evs, _ := c.OutboxEvents(ctx, 0, 100); len(evs) != 6 || evs[0].Seq != 11 {
		t.Fatalf("after pruning 10: %d events from seq %d; want the oldest gone", len(evs), evs[0].Seq)
	}
	if n, err := c.PruneOutbox(ctx, time.Now().Add(time.Minute), 0); err != nil || n != 6 {
		t.Fatalf("PruneOutbox = %d, %v; want the 6 sequenced left", n, err)
	}
	evs = sequenced(t, c, 0)
	if len(evs) != 1 || evs[0].Seq != 17 || evs[0].Kind != events.LiveViewStarted {
		t.Fatalf("after pruning: %+v", evs)
	}
}

// An event exists if and only if its change committed: a refused change
// writes none, and a change whose event cannot be written is not made.
func testOutboxAtomic(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendSegment(ctx, segment("r1", 0)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateUser(ctx, user("o-1", evidence.RoleOfficer)); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	before := len(sequenced(t, c, 0))

	// Refused changes.
	refused := []struct {
		what string
		err  error
	}{
		{"recording of an unknown device", c.CreateRecording(ctx, recording("r2", "ghost", t0))},
		{"recording again", c.CreateRecording(ctx, recording("r1", "cam-1", t0))},
		{"segment again", func() error { _, err := c.AppendSegment(ctx, segment("r1", 0)); return err }()},
		{"segment of an unknown recording", func() error { _, err := c.AppendSegment(ctx, segment("nope", 1)); return err }()},
		{"case step from the wrong state", c.TransitionCase(ctx, evidence.CaseTransition{CaseID: "C-1", From: evidence.CaseDecided,
			To: evidence.CaseClosed, By: "o-1", At: t0})},
		{"case again", c.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1"})},
		{"unlink of an unknown link", c.UnlinkEvidence(ctx, "nope", "o-1", "x", t0)},
		{"live view of an unknown device", c.StartLiveView(ctx, evidence.LiveView{ID: "v1", DeviceID: "ghost", User: "u", StartedAt: t0})},
		{"end of an unknown live view", c.EndLiveView(ctx, "nope", t0, "x")},
	}
	if err := c.FinishRecording(ctx, "r1", evidence.StateComplete, t0.Add(time.Minute), "stopped"); err != nil {
		t.Fatal(err)
	}
	refused = append(refused, struct {
		what string
		err  error
	}{"finish of a finished recording", c.FinishRecording(ctx, "r1", evidence.StateComplete, t0.Add(time.Minute), "again")})
	for _, r := range refused {
		if r.err == nil {
			t.Fatalf("%s: accepted", r.what)
		}
	}
	evs := sequenced(t, c, 0)
	if got := kinds(evs[before:]); got != "device.offline" {
		t.Fatalf("refused changes wrote events: %q (want only the finish's device.offline)", got)
	}

	// The event's insert fails (a trigger, as a full disk or a lost
	// connection would fail it): the change is rolled back with it.
	switch c.Dialect() {
	case catalog.SQLite:
		if _, err := c.DB().Exec(`CREATE TRIGGER no_events BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox refused'); END`); err != nil {
			t.Fatal(err)
		}
	case catalog.Postgres:
		if _, err := c.DB().Exec(`CREATE FUNCTION no_events() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'outbox refused'; END $$ LANGUAGE plpgsql;
			CREATE TRIGGER no_events BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION no_events()`); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateRecording(ctx, recording("r3", "cam-1", t0.Add(time.Hour))); err == nil {
		t.Fatal("a recording was created without its event")
	}
	if _, err := c.Recording(ctx, "r3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("recording whose event failed: %v, want ErrNotFound", err)
	}
	if _, err := c.AppendSegment(ctx, segment("r1", 1)); err == nil {
		t.Fatal("a segment was stored without its event")
	}
	if segs, _ := c.Segments(ctx, "r1"); len(segs) != 1 {
		t.Fatalf("segments of r1 after a failed event: %d", len(segs))
	}
	if seq, _, _ := c.ChainHead(ctx, "cam-1"); seq != 1 {
		t.Fatalf("chain head moved to %d by a failed append", seq)
	}
	if err := c.SetManifest(ctx, "r1", "m"); err == nil {
		t.Fatal("a manifest was set without its event")
	}
	if r, _ := c.Recording(ctx, "r1"); r.ManifestKey != "" {
		t.Fatalf("manifest set though its event failed: %q", r.ManifestKey)
	}
	if err := c.TransitionCase(ctx, evidence.CaseTransition{CaseID: "C-1", From: evidence.CaseFiled, To: evidence.CaseInvestigating, By: "o-1", At: t0}); err == nil {
		t.Fatal("a case step was made without its event")
	}
	if k, _ := c.Case(ctx, "C-1"); k.State != evidence.CaseFiled {
		t.Fatalf("case moved to %s though its event failed", k.State)
	}
	if err := c.LinkEvidence(ctx, evidence.EvidenceLink{ID: "L1", CaseID: "C-1", RecordingID: "r1", LinkedBy: "o-1"}); err == nil {
		t.Fatal("a link was made without its event")
	}
	if _, err := c.EvidenceLink(ctx, "L1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("link whose event failed: %v", err)
	}
	if err := c.StartLiveView(ctx, evidence.LiveView{ID: "v9", DeviceID: "cam-1", User: "u", StartedAt: t0}); err == nil {
		t.Fatal("a live view was recorded without its event")
	}
	if _, err := c.LiveView(ctx, "v9"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("live view whose event failed: %v", err)
	}
	if evs2 := sequenced(t, c, 0); len(evs2) != len(evs) {
		t.Fatalf("%d events, want %d", len(evs2), len(evs))
	}
}

// Writers on several devices at once while the relay sequences: every
// event gets one seq, seqs are dense, and each device's events keep the
// order of its chain.
func testOutboxConcurrent(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	const devices, segs = 4, 15
	for d := 0; d < devices; d++ {
		mustDevice(t, c, fmt.Sprintf("cam-%d", d))
	}
	var wg sync.WaitGroup
	errs := make(chan error, devices*2+1)
	stop := make(chan struct{})
	var relayed sync.WaitGroup
	relayed.Add(1)
	go func() { // the relay, at work all along
		defer relayed.Done()
		for {
			if _, err := c.SequenceOutbox(ctx, 7, time.Now()); err != nil {
				errs <- err
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	for d := 0; d < devices; d++ {
		dev := fmt.Sprintf("cam-%d", d)
		for r := 0; r < 2; r++ { // two recordings of a device upload at once (a spool come back late)
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := fmt.Sprintf("%s-r%d", dev, r)
				if err := c.CreateRecording(ctx, recording(rec, dev, t0)); err != nil {
					errs <- err
					return
				}
				for seq := int64(0); seq < segs; seq++ {
					s := segment(rec, seq)
					s.DeviceID, s.Key = dev, dev+"/"+s.Key
					if _, err := c.AppendSegment(ctx, s); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	relayed.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	evs := sequenced(t, c, 0)
	if want := devices * 2 * (segs + 2); len(evs) != want {
		t.Fatalf("%d events, want %d", len(evs), want)
	}
	lastChain := map[string]float64{}
	started := map[string]bool{}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		d := data(t, e)
		switch e.Kind {
		case events.RecordingStarted:
			started[d["recording_id"].(string)] = true
		case events.SegmentStored:
			if !started[d["recording_id"].(string)] {
				t.Fatalf("segment of %s before its recording.started", d["recording_id"])
			}
			cs := d["chain_seq"].(float64)
			if cs != lastChain[e.DeviceID]+1 {
				t.Fatalf("%s: chain link %v after %v in the delivery order", e.DeviceID, cs, lastChain[e.DeviceID])
			}
			lastChain[e.DeviceID] = cs
		}
	}
}

// Dead letters: filed whole, listed, queued again once, settled.
func testDeadLetters(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	if err := c.CreateRecording(ctx, recording("r1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	evs := sequenced(t, c, 0)
	first := t0.Add(time.Hour)
	d, err := c.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: "wh1", URL: "https://example.org/hook", Event: evs[0], Attempts: 30,
		FirstAttempt: first, LastAttempt: first.Add(24 * time.Hour), LastError: "503 Service Unavailable", DeadAt: first.Add(24 * time.Hour)})
	if err != nil || d.ID == 0 || d.State != catalog.DeadLetterDead || d.Event.ID != evs[0].ID || string(d.Event.Data) != string(evs[0].Data) ||
		d.Event.Seq != 1 || d.Attempts != 30 || !d.FirstAttempt.Equal(first) {
		t.Fatalf("AddDeadLetter = %+v, %v", d, err)
	}
	other, err := c.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: "wh1", URL: "https://example.org/hook", Event: evs[1], Attempts: 3,
		FirstAttempt: first, LastAttempt: first, LastError: "400 Bad Request"})
	if err != nil {
		t.Fatal(err)
	}
	// The same event given up on again (by a runner that took over).
	again, err := c.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: "wh1", URL: "https://example.org/hook", Event: evs[0], Attempts: 2,
		FirstAttempt: first, LastAttempt: first.Add(48 * time.Hour), LastError: "timeout"})
	if err != nil || again.ID != d.ID || again.Attempts != 32 || again.LastError != "timeout" {
		t.Fatalf("dead letter filed again = %+v, %v", again, err)
	}
	if list, err := c.DeadLetters(ctx, catalog.DeadLetterFilter{}); err != nil || len(list) != 2 || list[0].ID != other.ID {
		t.Fatalf("DeadLetters = %+v, %v (want 2, newest first)", list, err)
	}
	if list, _ := c.DeadLetters(ctx, catalog.DeadLetterFilter{Before: other.ID}); len(list) != 1 || list[0].ID != d.ID {
		t.Fatalf("DeadLetters before %d = %+v", other.ID, list)
	}
	if list, _ := c.DeadLetters(ctx, catalog.DeadLetterFilter{Webhook: "wh2"}); len(list) != 0 {
		t.Fatalf("dead letters of another webhook: %+v", list)
	}
	if _, err := c.RequeueDeadLetter(ctx, 9999, "adm", t0); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("requeue of a missing dead letter: %v", err)
	}
	q, err := c.RequeueDeadLetter(ctx, d.ID, "adm", first.Add(50*time.Hour))
	if err != nil || q.State != catalog.DeadLetterQueued || q.RequeuedBy != "adm" {
		t.Fatalf("RequeueDeadLetter = %+v, %v", q, err)
	}
	if _, err := c.RequeueDeadLetter(ctx, d.ID, "adm", t0); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("requeue of a queued dead letter: %v", err)
	}
	if list, _ := c.QueuedDeadLetters(ctx, "wh1", 10); len(list) != 1 || list[0].ID != d.ID {
		t.Fatalf("QueuedDeadLetters = %+v", list)
	}
	if list, _ := c.DeadLetters(ctx, catalog.DeadLetterFilter{State: catalog.DeadLetterDead}); len(list) != 1 || list[0].ID != other.ID {
		t.Fatalf("dead ones: %+v", list)
	}
	if err := c.SettleDeadLetter(ctx, d.ID, 1, first.Add(51*time.Hour), "503 again"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.DeadLetter(ctx, d.ID); got.State != catalog.DeadLetterDead || got.Attempts != 33 || got.LastError != "503 again" {
		t.Fatalf("after a failed retry: %+v", got)
	}
	c.RequeueDeadLetter(ctx, d.ID, "adm", first.Add(52*time.Hour))
	if err := c.SettleDeadLetter(ctx, d.ID, 1, first.Add(53*time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.DeadLetter(ctx, d.ID); got.State != catalog.DeadLetterDelivered || !got.DeliveredAt.Equal(first.Add(53*time.Hour)) {
		t.Fatalf("after a delivered retry: %+v", got)
	}
	if err := c.SettleDeadLetter(ctx, d.ID, 1, first, ""); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("settling one not queued: %v", err)
	}
	// Delivered stays delivered even if a runner gives up on it again.
	if got, _ := c.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: "wh1", Event: evs[0], Attempts: 1, FirstAttempt: first, LastAttempt: first}); got.State != catalog.DeadLetterDelivered {
		t.Fatalf("delivered dead letter filed again: %+v", got)
	}
}
