package retention_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/retention"
	"github.com/bodycam/bodycam/storage/dir"
	"github.com/bodycam/bodycam/verify"
)

// everything is a catalog whose query chooses every recording not yet
// deleted: the job must still keep what its policy keeps.
type everything struct{ *catalog.Catalog }

func (e everything) RetentionDue(ctx context.Context, _ evidence.RetentionPolicy, _ time.Time, limit int) ([]evidence.Recording, error) {
	all, err := e.Recordings(ctx, catalog.RecordingFilter{Limit: limit})
	var out []evidence.Recording
	for _, r := range all {
		if r.DeletedAt.IsZero() && r.ManifestKey != "" {
			out = append(out, r)
		}
	}
	return out, err
}

// Retention classes, with periods of minutes (a test's lowered minimum):
// a recording goes only after the longest of its categories, with none
// after the unlinked period; a permanent category keeps it for ever; a
// case's hold wins over an expired class. Each tombstone says which rule
// let its footage go, and verifies. Even when the catalog's query chose
// everything, the job deletes only what the policy says is due.
func TestRetentionClasses(t *testing.T) {
	ctx := context.Background()
	d := t.TempDir()
	st, err := dir.Open(d+"/objects", dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(ctx, "", d)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	keys, err := keyring.Open(d+"/keys", keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat.CreateDevice(ctx, evidence.Device{ID: "cam-1", OfficerID: "o-1", SecretHash: "x"})
	cat.CreateUser(ctx, evidence.User{ID: "o-1", Role: evidence.RoleOfficer, CertToken: "c1"})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	cats := map[string][]string{"plain": nil, "longest": {"arrest", "traffic_stop"}, "permanent": {"arrest", "complaint"}, "held": {"traffic_stop"}}
	var end time.Time
	for i, id := range []string{"plain", "longest", "permanent", "held"} {
		rec := storeRecording(t, ctx, cat, st, keys, id, start.Add(time.Duration(i)*time.Millisecond))
		end = rec.EndedAt // within a few ms of each other; the periods are minutes
		if cats[id] != nil {
			if err := cat.SetRecordingCategories(ctx, id, nil, cats[id], "o-1", start); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cat.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1"}); err != nil {
		t.Fatal(err)
	}
	if err := cat.LinkEvidence(ctx, evidence.EvidenceLink{ID: "l1", CaseID: "C-1", RecordingID: "held", LinkedBy: "o-1"}); err != nil {
		t.Fatal(err)
	}
	p := evidence.RetentionPolicy{Unlinked: evidence.RetentionPeriod{Duration: time.Minute}, Important: evidence.RetentionPeriod{Duration: 30 * time.Minute},
		Classes: []evidence.RetentionClass{
			{Name: "traffic_stop", Period: evidence.RetentionPeriod{Duration: time.Minute}},
			{Name: "arrest", Period: evidence.RetentionPeriod{Duration: 5 * time.Minute}},
			{Name: "complaint", Period: evidence.RetentionPeriod{Permanent: true}},
		}}
	if err := p.Validate(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(evidence.MinRetention); err == nil {
		t.Fatal("periods of minutes pass the legal minimum")
	}
	deleted := func() []string {
		var out []string
		for id := range cats {
			if rec, _ := cat.Recording(ctx, id); !rec.DeletedAt.IsZero() {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		name    string
		cat     retention.Catalog
		after   time.Duration
		deleted []string
	}{
		{"query chose everything, nothing due", everything{cat}, 30 * time.Second, nil},
		{"past the unlinked period and traffic_stop's", cat, 2 * time.Minute, []string{"plain"}},
		{"query chose everything, only plain due", everything{cat}, 2 * time.Minute, []string{"plain"}},
		{"past arrest's", cat, 6 * time.Minute, []string{"longest", "plain"}},
		{"query chose everything, a year later", everything{cat}, 365 * 24 * time.Hour, []string{"longest", "plain"}},
	} {
		job := &retention.Job{Policy: p, Catalog: c.cat, Store: st, Signer: keys, Log: slog.New(slog.DiscardHandler)}
		if _, err := job.Pass(ctx, end.Add(c.after)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := deleted(); !slices.Equal(got, c.deleted) {
			t.Fatalf("%s: deleted %v, want %v", c.name, got, c.deleted)
		}
	}
	lookup := func(id string) ed25519.PublicKey {
		for _, k := range keys.Public() {
			if k.ID == id {
				return k.Key
			}
		}
		return nil
	}
	for id, want := range map[string]struct {
		rule  string
		until time.Duration
	}{
		"plain":   {"no category: unlinked retention (1m0s) from its end", time.Minute},
		"longest": {"category arrest (5m0s) from its end", 5 * time.Minute},
	} {
		rc, err := st.Get(ctx, "cam-1/"+id+"/tombstone.json")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rc)
		rc.Close()
		var tomb evidence.Tombstone
		if err := json.Unmarshal(body, &tomb); err != nil {
			t.Fatal(err)
		}
		rec, _ := cat.Recording(ctx, id)
		if tomb.Rule != want.rule || !tomb.RetainUntil.Equal(rec.EndedAt.Add(want.until)) || !slices.Equal(tomb.Categories, cats[id]) && !(len(cats[id]) == 0 && len(tomb.Categories) == 0) ||
			!strings.Contains(tomb.Reason, want.rule) {
			t.Errorf("%s's tombstone: rule %q, until %s, categories %v, reason %q; want %q, end+%v, %v", id, tomb.Rule, tomb.RetainUntil, tomb.Categories, tomb.Reason,
				want.rule, want.until, cats[id])
		}
		res, err := verify.Recording(ctx, cat, st, lookup, id)
		if err != nil || !res.OK || !strings.Contains(res.Deleted, want.rule) {
			t.Fatalf("verify %s after retention: %+v, %v", id, res, err)
		}
	}
	// Unlinked, the held recording's expired class lets it go a period
	// after its unlink.
	unlinked := end.Add(time.Hour)
	if err := cat.UnlinkEvidence(ctx, "l1", "o-1", "not evidence", unlinked); err != nil {
		t.Fatal(err)
	}
	job := &retention.Job{Policy: p, Catalog: cat, Store: st, Signer: keys, Log: slog.New(slog.DiscardHandler)}
	if n, err := job.Pass(ctx, unlinked.Add(30*time.Second)); err != nil || n != 0 {
		t.Fatalf("just after the unlink: %d deleted, %v", n, err)
	}
	if n, err := job.Pass(ctx, unlinked.Add(2*time.Minute)); err != nil || n != 1 || !slices.Equal(deleted(), []string{"held", "longest", "plain"}) {
		t.Fatalf("a period after the unlink: %d deleted (%v), %v", n, deleted(), err)
	}
}
