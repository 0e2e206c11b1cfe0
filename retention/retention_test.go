package retention_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/testsvc"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/retention"
	"github.com/bodycam/bodycam/storage"
	"github.com/bodycam/bodycam/storage/s3"
	"github.com/bodycam/bodycam/verify"
)

// store puts a recording's objects (init, two media segments, a signed
// manifest) and chains them in the catalog, as ingest does.
func storeRecording(t *testing.T, ctx context.Context, cat *catalog.Catalog, st storage.Store, keys *keyring.Keyring, id string, start time.Time) evidence.Recording {
	t.Helper()
	rec := evidence.Recording{ID: id, DeviceID: "cam-1", OfficerID: "o-1", StartedAt: start}
	if err := cat.CreateRecording(ctx, rec); err != nil {
		t.Fatal(err)
	}
	for seq := int64(0); seq < 3; seq++ {
		body := []byte(fmt.Sprintf("%s object %d", id, seq))
		sum := sha256.Sum256(body)
		name, kind := fmt.Sprintf("%06d.m4s", seq), evidence.KindMedia
		if seq == 0 {
			name, kind = "init.mp4", evidence.KindInit
		}
		key := "cam-1/" + id + "/" + name
		if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), storage.PutOptions{SHA256: sum[:]}); err != nil {
			t.Fatal(err)
		}
		if _, err := cat.AppendSegment(ctx, evidence.Segment{RecordingID: id, DeviceID: "cam-1", Seq: seq, Kind: kind, Key: key,
			Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), StartedAt: start.Add(time.Duration(seq) * time.Second),
			Duration: time.Second, Keyframe: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.FinishRecording(ctx, id, evidence.StateComplete, start.Add(3*time.Second), "publisher stopped"); err != nil {
		t.Fatal(err)
	}
	rec, _ = cat.Recording(ctx, id)
	segs, _ := cat.Segments(ctx, id)
	m := evidence.NewManifest(rec, segs, nil)
	m.SigningKeyID = keys.ID()
	body := m.Marshal()
	_, sig := keys.Sign(body)
	for k, b := range map[string][]byte{"cam-1/" + id + "/manifest.json": body, "cam-1/" + id + "/manifest.json.sig": sig} {
		sum := sha256.Sum256(b)
		if _, err := st.Put(ctx, k, bytes.NewReader(b), int64(len(b)), storage.PutOptions{SHA256: sum[:]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cat.SetManifest(ctx, id, "cam-1/"+id+"/manifest.json"); err != nil {
		t.Fatal(err)
	}
	rec, _ = cat.Recording(ctx, id)
	return rec
}

// Against the real MinIO, with compliance retention: footage linked to a
// case is on legal hold and cannot be deleted; once unlinked from its last
// case and past its period, the retention job deletes it and leaves a
// signed tombstone in the device's chain that verifies, and the next
// recording's chain still verifies.
func TestRetentionDeletesWithTombstone(t *testing.T) {
	m, err := testsvc.StartMinIO()
	if err != nil {
		t.Fatalf("this test needs a real MinIO server: %v", err)
	}
	defer m.Close()
	ctx := context.Background()
	const lock = 3 * time.Second // the object store's compliance lock
	st, err := s3.Open(ctx, s3.Options{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey, Bucket: "retention",
		Retention: storage.Retention{Mode: storage.Compliance, Period: lock}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cat, err := catalog.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	keys, err := keyring.Open(dir+"/keys", keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat.CreateDevice(ctx, evidence.Device{ID: "cam-1", OfficerID: "o-1", SecretHash: "x"})
	cat.CreateUser(ctx, evidence.User{ID: "o-1", Role: evidence.RoleOfficer, CertToken: "c1"})
	start := time.Now().Add(-time.Minute)
	old := storeRecording(t, ctx, cat, st, keys, "rec-old", start)
	next := storeRecording(t, ctx, cat, st, keys, "rec-next", start.Add(10*time.Second))

	// Linked to a case: on legal hold.
	if err := cat.CreateCase(ctx, evidence.Case{ID: "C-1", Officer: "o-1", CreatedBy: "o-1"}); err != nil {
		t.Fatal(err)
	}
	if err := cat.LinkEvidence(ctx, evidence.EvidenceLink{ID: "l1", CaseID: "C-1", RecordingID: old.ID, LinkedBy: "o-1"}); err != nil {
		t.Fatal(err)
	}
	segs, _ := cat.Segments(ctx, old.ID)
	for _, s := range segs {
		if err := st.SetLegalHold(ctx, s.Key, true); err != nil {
			t.Fatal(err)
		}
	}
	// A review proxy of rec-next (as a job stores one): deleted with it,
	// its provenance record kept.
	proxyKey, provKey := "derived/cam-1/rec-next/proxy-01234567.mp4", "derived/cam-1/rec-next/proxy-01234567.provenance.json"
	for _, k := range []string{proxyKey, provKey} {
		if _, err := st.Put(ctx, k, strings.NewReader("x"), 1, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := cat.Enqueue(ctx, catalog.JobRequest{Kind: "proxy", Source: next.ID, RequestedBy: "system"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pj, err := cat.Claim(ctx, "w", []string{"proxy"}, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Complete(ctx, pj.Lease(), []catalog.Derived{{RecordingID: next.ID, Kind: "proxy", Key: proxyKey, SHA256: strings.Repeat("0", 64),
		Size: 1, ContentType: "video/mp4", ProvenanceKey: provKey, JobID: pj.ID}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(lock + time.Second) // past the lock: only the hold protects it now
	if err := st.Delete(ctx, segs[1].Key); !errors.Is(err, storage.ErrRetained) {
		t.Fatalf("deleting a held object: %v, want ErrRetained", err)
	}
	job := &retention.Job{Policy: evidence.RetentionPolicy{Unlinked: evidence.RetentionPeriod{Duration: 30 * time.Second}}, Catalog: cat, Store: st, Signer: keys, Log: slog.New(slog.DiscardHandler)}
	if n, err := job.Pass(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		// rec-next is in no case: due too; rec-old is in a case: kept.
		t.Fatalf("pass while linked: %d deleted, %v; want only rec-next", n, err)
	}
	if _, err := st.Stat(ctx, segs[1].Key); err != nil {
		t.Fatalf("linked footage touched by retention: %v", err)
	}
	if _, err := st.Stat(ctx, proxyKey); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the proxy of deleted footage is still stored: %v", err)
	}
	if d, _ := cat.Derived(ctx, next.ID); len(d) != 0 {
		t.Fatalf("derived rows of deleted footage: %+v", d)
	}
	if _, err := st.Stat(ctx, provKey); err != nil {
		t.Fatalf("the proxy's provenance record went too: %v", err)
	}

	// Unlinked from its last case, hold lifted (as the API does), and the
	// period passes.
	unlinked := time.Now()
	if err := cat.UnlinkEvidence(ctx, "l1", "s-1", "not evidence after all", unlinked); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		st.SetLegalHold(ctx, s.Key, false)
	}
	if n, _ := job.Pass(ctx, unlinked.Add(10*time.Second)); n != 0 {
		t.Fatal("deleted before its period after unlinking had passed")
	}
	if n, err := job.Pass(ctx, unlinked.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("pass after the period: %d, %v", n, err)
	}
	for _, s := range segs {
		if _, err := st.Stat(ctx, s.Key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s still stored after retention: %v", s.Key, err)
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
	for _, id := range []string{old.ID, next.ID} {
		res, err := verify.Recording(ctx, cat, st, lookup, id)
		if err != nil || !res.OK || res.Deleted == "" {
			t.Fatalf("verify %s after retention: %+v, %v", id, res, err)
		}
	}
	if rec, _ := cat.Recording(ctx, old.ID); rec.DeletedAt.IsZero() || rec.SegmentCount != 3 {
		t.Fatalf("recording after retention: %+v", rec)
	}
	// A second pass finds nothing; the tombstone is there once.
	if n, _ := job.Pass(ctx, unlinked.Add(2*time.Minute)); n != 0 {
		t.Fatalf("second pass deleted %d", n)
	}
	// The tombstone cannot be forged: alter the record of a deleted object.
	if _, err := cat.DB().ExecContext(ctx, `UPDATE segments SET sha256 = '`+hex.EncodeToString(make([]byte, 32))+`' WHERE recording_id = 'rec-old' AND seq = 1`); err != nil {
		t.Fatal(err)
	}
	if res, _ := verify.Recording(ctx, cat, st, lookup, old.ID); res.OK {
		t.Fatal("an altered record of deleted footage still verifies")
	}
}
