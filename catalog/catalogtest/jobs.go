package catalogtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
)

func jobsFixture(t *testing.T, c *catalog.Catalog, recs ...string) {
	t.Helper()
	mustDevice(t, c, "cam-1")
	for i, id := range recs {
		if err := c.CreateRecording(context.Background(), recording(id, "cam-1", t0.Add(time.Duration(i)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
}

// Enqueue is idempotent per (kind, source, parameters): the same again,
// with the parameters spelt otherwise, is the same job; other parameters,
// another kind or another recording is another; an unknown recording and
// parameters that are not an object are refused.
func testJobsEnqueue(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	jobsFixture(t, c, "r1", "r2")
	j, made, err := c.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "r1", Params: json.RawMessage(`{"width": 640, "at":0}`), RequestedBy: "system"}, t0)
	if err != nil || !made {
		t.Fatalf("enqueue: %+v %v %v", j, made, err)
	}
	if j.State != catalog.JobQueued || j.Attempts != 0 || j.MaxAttempts != 5 || !j.NextAt.Equal(t0) || !j.CreatedAt.Equal(t0) ||
		string(j.Params) != `{"at":0,"width":640}` || len(j.ParamsHash) != 64 || j.RequestedBy != "system" || len(j.ID) != 26 {
		t.Fatalf("new job = %+v", j)
	}
	again, made, err := c.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "r1", Params: json.RawMessage(`{"at":0,"width":640}`), RequestedBy: "u-2"}, t0.Add(time.Minute))
	if err != nil || made || again.ID != j.ID || again.RequestedBy != "system" {
		t.Fatalf("the same job again: %+v made=%v %v; want job %s as it was", again, made, err, j.ID)
	}
	others := []catalog.JobRequest{
		{Kind: "poster", Source: "r1", Params: json.RawMessage(`{"at":2,"width":640}`), RequestedBy: "system"},
		{Kind: "sprite", Source: "r1", Params: json.RawMessage(`{"at":0,"width":640}`), RequestedBy: "system"},
		{Kind: "poster", Source: "r2", Params: json.RawMessage(`{"at":0,"width":640}`), RequestedBy: "system"},
		{Kind: "poster", Source: "r2", RequestedBy: "system"}, // no parameters: {}
	}
	seen := map[string]bool{j.ID: true}
	for _, r := range others {
		o, made, err := c.Enqueue(ctx, r, t0)
		if err != nil || !made || seen[o.ID] {
			t.Fatalf("enqueue %+v: %+v made=%v %v; want a new job", r, o, made, err)
		}
		seen[o.ID] = true
	}
	if _, _, err := c.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "nope", RequestedBy: "system"}, t0); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("a job of no recording: %v, want ErrNotFound", err)
	}
	for _, p := range []string{`[1]`, `"x"`, `{"a":1} {}`, `{`} {
		if _, _, err := c.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "r1", Params: json.RawMessage(p), RequestedBy: "system"}, t0); err == nil {
			t.Fatalf("parameters %s taken", p)
		}
	}
	// Concurrent enqueues of one job make one.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	made8 := make([]bool, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, m, err := c.Enqueue(ctx, catalog.JobRequest{Kind: "proxy", Source: "r2", RequestedBy: "system"}, t0)
			if err != nil {
				t.Error(err)
			}
			ids[i], made8[i] = j.ID, m
		}()
	}
	wg.Wait()
	n := 0
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("concurrent enqueues made jobs %v", ids)
		}
		if made8[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d concurrent enqueues say they made the job, want 1", n)
	}
	list, err := c.Jobs(ctx, catalog.JobFilter{})
	if err != nil || len(list) != 6 {
		t.Fatalf("jobs: %d %v, want 6", len(list), err)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].ID <= list[i].ID {
			t.Fatalf("jobs not newest first: %s before %s", list[i-1].ID, list[i].ID)
		}
	}
	if l, _ := c.Jobs(ctx, catalog.JobFilter{Kind: "poster", Source: "r2"}); len(l) != 2 {
		t.Fatalf("kind and source filter: %d, want 2", len(l))
	}
	page, _ := c.Jobs(ctx, catalog.JobFilter{Limit: 4})
	rest, _ := c.Jobs(ctx, catalog.JobFilter{Before: page[3].ID})
	if len(page) != 4 || len(rest) != 2 || rest[0].ID >= page[3].ID {
		t.Fatalf("paging: %d then %d", len(page), len(rest))
	}
	if got, err := c.Job(ctx, j.ID); err != nil || got.ID != j.ID {
		t.Fatalf("job: %+v %v", got, err)
	}
	if _, err := c.Job(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("no job: %v", err)
	}
}

// Claim: the oldest due job of the kinds asked for, leased; not one that
// waits (back-off) or of another kind; complete with derived objects in
// the same transaction; fail with back-off, then failed after the last
// attempt; release gives the attempt back; a lost lease writes nothing;
// rerun starts over.
func testJobsLifecycle(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	jobsFixture(t, c, "r1", "r2")
	a, _, _ := c.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "r1", RequestedBy: "system", MaxAttempts: 2}, t0)
	b, _, _ := c.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "r2", RequestedBy: "system"}, t0.Add(time.Second))
	c.Enqueue(ctx, catalog.JobRequest{Kind: "proxy", Source: "r1", RequestedBy: "system"}, t0)
	now := t0.Add(time.Minute)
	if _, err := c.Claim(ctx, "w1", []string{"clip"}, time.Minute, now); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("claim of a kind with no job: %v, want ErrNotFound", err)
	}
	if _, err := c.Claim(ctx, "w1", []string{"poster"}, time.Minute, t0.Add(-time.Second)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("claim before any is due: %v, want ErrNotFound", err)
	}
	j, err := c.Claim(ctx, "w1", []string{"poster"}, time.Minute, now)
	if err != nil || j.ID != a.ID || j.State != catalog.JobRunning || j.Attempts != 1 || j.LeaseOwner != "w1" ||
		!j.LeaseUntil.Equal(now.Add(time.Minute)) || !j.StartedAt.Equal(now) {
		t.Fatalf("claim: %+v %v; want %s running, attempt 1", j, err, a.ID)
	}
	// Release: queued again, the attempt given back.
	if err := c.Release(ctx, j.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, j.Lease()); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Fatalf("release twice: %v, want ErrLeaseLost", err)
	}
	j, _ = c.Claim(ctx, "w1", []string{"poster"}, time.Minute, now)
	if j.ID != a.ID || j.Attempts != 1 {
		t.Fatalf("claim after release: %+v", j)
	}
	if err := c.ExtendLease(ctx, j.Lease(), now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.ExtendLease(ctx, catalog.JobLease{ID: j.ID, Owner: "w2", Attempt: 1}, now.Add(time.Hour)); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Fatalf("extend by another owner: %v, want ErrLeaseLost", err)
	}
	// Fail: queued after the back-off (base·2^0), not claimable before it.
	f, err := c.Fail(ctx, j.Lease(), "decoder said no", false, 10*time.Second, time.Hour, now)
	if err != nil || f.State != catalog.JobQueued || f.Error != "decoder said no" || !f.NextAt.Equal(now.Add(10*time.Second)) || f.LeaseOwner != "" {
		t.Fatalf("fail: %+v %v", f, err)
	}
	j2, _ := c.Claim(ctx, "w1", []string{"poster"}, time.Minute, now.Add(time.Second))
	if j2.ID != b.ID {
		t.Fatalf("claim during a's back-off: %+v, want %s", j2, b.ID)
	}
	later := now.Add(11 * time.Second)
	j, err = c.Claim(ctx, "w1", []string{"poster"}, time.Minute, later)
	if err != nil || j.ID != a.ID || j.Attempts != 2 {
		t.Fatalf("claim after the back-off: %+v %v", j, err)
	}
	f, err = c.Fail(ctx, j.Lease(), "again", false, 10*time.Second, time.Hour, later)
	if err != nil || f.State != catalog.JobFailed || !f.FinishedAt.Equal(later) || f.Error != "again" {
		t.Fatalf("the last attempt failed: %+v %v; want failed", f, err)
	}
	// Complete, with the derived objects.
	made := []catalog.Derived{{RecordingID: "r2", Kind: "poster", Key: "derived/cam-1/r2/poster-1.jpg", SHA256: "ab", Size: 10,
		ContentType: "image/jpeg", ProvenanceKey: "derived/cam-1/r2/poster-1.provenance.json"}}
	if err := c.Complete(ctx, catalog.JobLease{ID: j2.ID, Owner: "w9", Attempt: 1}, made, later); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Fatalf("complete by another owner: %v, want ErrLeaseLost", err)
	}
	if d, _ := c.Derived(ctx, "r2"); len(d) != 0 {
		t.Fatalf("a lost lease's completion recorded %+v", d)
	}
	if err := c.Complete(ctx, j2.Lease(), made, later); err != nil {
		t.Fatal(err)
	}
	done, _ := c.Job(ctx, j2.ID)
	d, err := c.Derived(ctx, "r2")
	if done.State != catalog.JobDone || !done.FinishedAt.Equal(later) || err != nil || len(d) != 1 || d[0].JobID != j2.ID ||
		d[0].SHA256 != "ab" || d[0].Size != 10 || d[0].ContentType != "image/jpeg" || !d[0].CreatedAt.Equal(later) || d[0].ProvenanceKey != made[0].ProvenanceKey {
		t.Fatalf("completed: %+v; derived %+v %v", done, d, err)
	}
	// Rerun: done and failed jobs, by an admin; not a queued one.
	if _, err := c.Rerun(ctx, a.ID, "adm", later); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rerun(ctx, a.ID, "adm", later); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("rerun of a queued job: %v, want ErrConflict", err)
	}
	if _, err := c.Rerun(ctx, "nope", "adm", later); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("rerun of no job: %v", err)
	}
	re, _ := c.Rerun(ctx, j2.ID, "adm", later)
	if re.State != catalog.JobQueued || re.Attempts != 0 || re.RerunBy != "adm" {
		t.Fatalf("rerun: %+v", re)
	}
	j, _ = c.Claim(ctx, "w1", []string{"poster"}, time.Minute, later)
	j3, _ := c.Claim(ctx, "w1", []string{"poster"}, time.Minute, later)
	if err := c.Complete(ctx, j3.Lease(), made, later.Add(time.Second)); err != nil { // the same object again: one row
		t.Fatal(err)
	}
	if d, _ := c.Derived(ctx, "r2"); len(d) != 1 || !d[0].CreatedAt.Equal(later) {
		t.Fatalf("derived after the same object again: %+v", d)
	}
	// A permanent failure: failed at once.
	if f, err := c.Fail(ctx, j.Lease(), "no video track", true, time.Second, time.Hour, later); err != nil || f.State != catalog.JobFailed {
		t.Fatalf("permanent failure: %+v %v", f, err)
	}
	counts, err := c.JobCounts(ctx)
	if err != nil || counts["poster"][catalog.JobFailed] != 1 || counts["poster"][catalog.JobDone] != 1 || counts["proxy"][catalog.JobQueued] != 1 {
		t.Fatalf("counts: %v %v", counts, err)
	}
	if l, _ := c.Jobs(ctx, catalog.JobFilter{State: catalog.JobFailed}); len(l) != 1 || l[0].ID != j.ID {
		t.Fatalf("state filter: %+v", l)
	}
}

// A running job whose lease expired (its worker died) is taken over by
// the next claim, as a new attempt; the dead worker can then no longer
// extend, complete or fail it. Out of attempts, it becomes failed. A
// node's leases expire at once when it starts again.
func testJobsTakeover(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	jobsFixture(t, c, "r1", "r2")
	c.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "r1", RequestedBy: "system", MaxAttempts: 2}, t0)
	dead, err := c.Claim(ctx, "node-a/1", []string{"poster"}, time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Claim(ctx, "node-b/1", []string{"poster"}, time.Minute, t0.Add(59*time.Second)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("claim while the lease holds: %v, want ErrNotFound", err)
	}
	taken, err := c.Claim(ctx, "node-b/1", []string{"poster"}, time.Minute, t0.Add(61*time.Second))
	if err != nil || taken.ID != dead.ID || taken.Attempts != 2 || taken.LeaseOwner != "node-b/1" {
		t.Fatalf("takeover: %+v %v", taken, err)
	}
	if err := c.ExtendLease(ctx, dead.Lease(), t0.Add(time.Hour)); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Fatalf("the dead worker extends: %v, want ErrLeaseLost", err)
	}
	if err := c.Complete(ctx, dead.Lease(), nil, t0.Add(time.Hour)); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Fatalf("the dead worker completes: %v, want ErrLeaseLost", err)
	}
	if _, err := c.Fail(ctx, dead.Lease(), "x", false, time.Second, time.Second, t0.Add(time.Hour)); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Fatalf("the dead worker fails it: %v, want ErrLeaseLost", err)
	}
	// The second worker dies too: out of attempts, failed at the next claim.
	if _, err := c.Claim(ctx, "node-c/1", []string{"poster"}, time.Minute, t0.Add(3*time.Minute)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("claim of a job out of attempts: %v, want ErrNotFound", err)
	}
	if j, _ := c.Job(ctx, dead.ID); j.State != catalog.JobFailed || j.Error == "" {
		t.Fatalf("a job whose workers all died: %+v, want failed with why", j)
	}
	// A node starting again ends its own leases (and no one else's).
	c.Enqueue(ctx, catalog.JobRequest{Kind: "poster", Source: "r2", RequestedBy: "system"}, t0)
	c.Enqueue(ctx, catalog.JobRequest{Kind: "proxy", Source: "r2", RequestedBy: "system"}, t0)
	mine, _ := c.Claim(ctx, "node-a/2", []string{"poster"}, time.Hour, t0.Add(4*time.Minute))
	theirs, _ := c.Claim(ctx, "node-ab/1", []string{"proxy"}, time.Hour, t0.Add(4*time.Minute))
	if n, err := c.ExpireLeases(ctx, "node-a/", t0.Add(5*time.Minute)); err != nil || n != 1 {
		t.Fatalf("expire node-a's leases: %d %v, want 1", n, err)
	}
	again, err := c.Claim(ctx, "node-a/3", []string{"poster", "proxy"}, time.Hour, t0.Add(5*time.Minute))
	if err != nil || again.ID != mine.ID || again.Attempts != 2 {
		t.Fatalf("claim after the node's restart: %+v %v; want %s", again, err, mine.ID)
	}
	if j, _ := c.Job(ctx, theirs.ID); j.LeaseOwner != "node-ab/1" || j.State != catalog.JobRunning {
		t.Fatalf("another node's lease changed: %+v", j)
	}
}

// Claimers racing for one job: exactly one wins; with several jobs, each
// goes to one claimer.
func testJobsClaimRace(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	jobsFixture(t, c, "r1", "r2", "r3")
	for round := 0; round < 5; round++ {
		kind := fmt.Sprintf("k%d", round)
		c.Enqueue(ctx, catalog.JobRequest{Kind: kind, Source: "r1", RequestedBy: "system"}, t0)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				j, err := c.Claim(ctx, fmt.Sprintf("w%d", w), []string{kind}, time.Minute, t0)
				switch {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
					if j.Attempts != 1 {
						t.Errorf("winner's attempt %d", j.Attempts)
					}
				case !errors.Is(err, catalog.ErrNotFound):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d claimers won one job, want 1", round, won)
		}
	}
	for _, r := range []string{"r1", "r2", "r3"} {
		c.Enqueue(ctx, catalog.JobRequest{Kind: "many", Source: r, RequestedBy: "system"}, t0)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if j, err := c.Claim(ctx, fmt.Sprintf("w%d", w), []string{"many"}, time.Minute, t0); err == nil {
				mu.Lock()
				got[j.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != 3 {
		t.Fatalf("6 claimers of 3 jobs took %d of them: %v", len(got), got)
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("job %s claimed %d times", id, n)
		}
	}
}
