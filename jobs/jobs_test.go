package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/jobs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// checkGoroutines fails the test when goroutines started during it are
// still there at its end (after a grace for those on their way out), as
// pion's test/checkroutines does.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines left over (%d before):\n%s", n-before, before, buf)
		}
	})
}

func openCatalog(t *testing.T, recs ...string) *catalog.Catalog {
	t.Helper()
	ctx := context.Background()
	c, err := catalog.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.CreateDevice(ctx, evidence.Device{ID: "cam-1", SecretHash: "x", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, id := range recs {
		if err := c.CreateRecording(ctx, evidence.Recording{ID: id, DeviceID: "cam-1", StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func enqueue(t *testing.T, c *catalog.Catalog, kind, source string) catalog.Job {
	t.Helper()
	j, _, err := c.Enqueue(context.Background(), catalog.JobRequest{Kind: kind, Source: source, RequestedBy: "system", MaxAttempts: 3}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// running runs r until the returned stop is called, which waits for Run.
func running(t *testing.T, r *jobs.Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitState(t *testing.T, c *catalog.Catalog, id string, want catalog.JobState) catalog.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := c.Job(context.Background(), id)
		if err == nil && j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %+v %v; want %s", id, j, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A pool of two runs every job once, records what each made with its
// completion, and counts them; the workers' threads run at a lower
// priority; nothing is left running after Run returns.
func TestRunnerRunsJobs(t *testing.T) {
	checkGoroutines(t)
	c := openCatalog(t, "r1", "r2", "r3", "r4", "r5")
	reg := prometheus.NewRegistry()
	r := jobs.New(jobs.Options{Catalog: c, Workers: 2, Node: "n1", Poll: time.Hour, Log: quiet, Registry: reg})
	var mu sync.Mutex
	ran := map[string]int{}
	var busy, most atomic.Int32
	var niceSeen atomic.Int32
	niceSeen.Store(-100)
	r.Handle("poster", func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
		n := busy.Add(1)
		defer busy.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid()); err == nil {
			niceSeen.Store(int32(20 - p))
		}
		mu.Lock()
		ran[j.Source]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return []catalog.Derived{{RecordingID: j.Source, Kind: "poster", Key: "derived/cam-1/" + j.Source + "/poster.jpg", SHA256: "00", Size: 1,
			ProvenanceKey: "derived/cam-1/" + j.Source + "/poster.provenance.json"}}, nil
	})
	stop := running(t, r)
	var ids []string
	for _, rec := range []string{"r1", "r2", "r3", "r4", "r5"} {
		ids = append(ids, enqueue(t, c, "poster", rec).ID)
		r.Wake() // Poll is an hour: only the wake-up finds them
	}
	for _, id := range ids {
		waitState(t, c, id, catalog.JobDone)
	}
	stop()
	for _, rec := range []string{"r1", "r2", "r3", "r4", "r5"} {
		d, err := c.Derived(context.Background(), rec)
		if err != nil || len(d) != 1 || ran[rec] != 1 {
			t.Fatalf("%s: ran %d times, derived %+v %v", rec, ran[rec], d, err)
		}
	}
	if m := most.Load(); m > 2 {
		t.Fatalf("%d jobs at once with 2 workers", m)
	}
	if runtime.GOOS == "linux" {
		base, _ := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
		if got, want := niceSeen.Load(), int32(min(20-base+10, 19)); got != want {
			t.Fatalf("worker thread's nice value %d, want %d", got, want)
		}
	}
	if n := metricValue(t, reg, "bodycam_jobs_finished_total", "poster", "done"); n != 5 {
		t.Fatalf("bodycam_jobs_finished_total{done} = %v, want 5", n)
	}
}

// metricValue is the value of the counter or gauge name with the given
// label values (in the order of their names), or -1.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			if strings.Join(vals, ",") != strings.Join(labels, ",") {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// A failing attempt is tried again after its back-off and then succeeds; a
// permanent failure fails at once; a panicking handler is a failed
// attempt; a kind without handler is not claimed.
func TestRunnerRetries(t *testing.T) {
	checkGoroutines(t)
	c := openCatalog(t, "r1", "r2", "r3")
	r := jobs.New(jobs.Options{Catalog: c, Workers: 1, Node: "n1", Poll: 20 * time.Millisecond, Backoff: 10 * time.Millisecond, Log: quiet})
	var attempts atomic.Int32
	r.Handle("flaky", func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
		if attempts.Add(1) == 1 {
			return nil, errors.New("the store did not answer")
		}
		return nil, nil
	})
	r.Handle("hopeless", func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
		return nil, jobs.Permanent(errors.New("no video track"))
	})
	r.Handle("panics", func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
		var m map[string]int
		m["x"]++
		return nil, nil
	})
	flaky := enqueue(t, c, "flaky", "r1")
	hopeless := enqueue(t, c, "hopeless", "r1")
	panics := enqueue(t, c, "panics", "r1")
	other := enqueue(t, c, "unhandled", "r2")
	running(t, r)
	if j := waitState(t, c, flaky.ID, catalog.JobDone); j.Attempts != 2 {
		t.Fatalf("flaky: %+v, want done at attempt 2", j)
	}
	if j := waitState(t, c, hopeless.ID, catalog.JobFailed); j.Attempts != 1 || j.Error != "no video track" {
		t.Fatalf("hopeless: %+v, want failed at the first attempt", j)
	}
	if j := waitState(t, c, panics.ID, catalog.JobFailed); j.Attempts != 3 || !strings.Contains(j.Error, "panicked") {
		t.Fatalf("panics: %+v, want failed after 3 attempts", j)
	}
	if j, _ := c.Job(context.Background(), other.ID); j.State != catalog.JobQueued {
		t.Fatalf("a kind this runner does not handle: %+v", j)
	}
}

// Stopping the runner mid-job stops the handler and gives the job back,
// its attempt not counted.
func TestRunnerReleasesOnStop(t *testing.T) {
	checkGoroutines(t)
	c := openCatalog(t, "r1")
	r := jobs.New(jobs.Options{Catalog: c, Workers: 1, Node: "n1", Log: quiet})
	started := make(chan struct{})
	r.Handle("slow", func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	j := enqueue(t, c, "slow", "r1")
	stop := running(t, r)
	<-started
	stop()
	got, _ := c.Job(context.Background(), j.ID)
	if got.State != catalog.JobQueued || got.Attempts != 0 || got.LeaseOwner != "" {
		t.Fatalf("after a stop mid-job: %+v, want queued, no attempt counted", got)
	}
}

// A job whose worker died (its lease not extended) is taken over by
// another when the lease expires; one that this node held before a
// restart (a kill -9) runs again at once; a worker that loses its lease
// mid-job is cancelled and records nothing.
func TestRunnerTakeover(t *testing.T) {
	checkGoroutines(t)
	c := openCatalog(t, "r1", "r2", "r3")
	ctx := context.Background()
	dead := enqueue(t, c, "poster", "r1")
	if _, err := c.Claim(ctx, "other/run/0", []string{"poster"}, 300*time.Millisecond, time.Now()); err != nil {
		t.Fatal(err)
	}
	mine := enqueue(t, c, "poster", "r2")
	if _, err := c.Claim(ctx, "n1/oldrun/0", []string{"poster"}, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ran := map[string]int{}
	r := jobs.New(jobs.Options{Catalog: c, Workers: 2, Node: "n1", Poll: 50 * time.Millisecond, Log: quiet})
	r.Handle("poster", func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
		mu.Lock()
		ran[j.Source]++
		mu.Unlock()
		return nil, nil
	})
	stop := running(t, r)
	if j := waitState(t, c, mine.ID, catalog.JobDone); j.Attempts != 2 {
		t.Fatalf("this node's job from before its restart: %+v", j)
	}
	if j := waitState(t, c, dead.ID, catalog.JobDone); j.Attempts != 2 {
		t.Fatalf("the dead worker's job: %+v", j)
	}
	stop()

	// Lost lease: the lease is taken from under a running handler.
	lost := enqueue(t, c, "lose", "r3")
	r2 := jobs.New(jobs.Options{Catalog: c, Workers: 1, Node: "n2", Lease: 150 * time.Millisecond, Log: quiet})
	cancelled := make(chan struct{})
	r2.Handle("lose", func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) {
		// An admin's hand: the row is given to someone else.
		if _, err := c.DB().Exec(`UPDATE jobs SET lease_owner = 'thief' WHERE id = ?`, j.ID); err != nil {
			return nil, err
		}
		<-ctx.Done()
		close(cancelled)
		return []catalog.Derived{{RecordingID: "r3", Kind: "lose", Key: "k", SHA256: "00", ProvenanceKey: "p"}}, nil
	})
	stop2 := running(t, r2)
	<-cancelled
	stop2()
	if d, _ := c.Derived(ctx, "r3"); len(d) != 0 {
		t.Fatalf("a worker that lost its lease recorded %+v", d)
	}
	if j, _ := c.Job(ctx, lost.ID); j.LeaseOwner != "thief" {
		t.Fatalf("the lost job: %+v", j)
	}
}

// The jobs gauge counts the catalog's jobs by kind and state.
func TestRunnerGauge(t *testing.T) {
	checkGoroutines(t)
	c := openCatalog(t, "r1", "r2")
	enqueue(t, c, "poster", "r1")
	enqueue(t, c, "poster", "r2")
	reg := prometheus.NewRegistry()
	r := jobs.New(jobs.Options{Catalog: c, Workers: 0, Node: "n1", Log: quiet, Registry: reg})
	r.Handle("poster", func(ctx context.Context, j catalog.Job) ([]catalog.Derived, error) { return nil, nil })
	stop := running(t, r)
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, reg, "bodycam_jobs", "poster", "queued") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("bodycam_jobs{poster,queued} = %v, want 2", metricValue(t, reg, "bodycam_jobs", "poster", "queued"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
}
