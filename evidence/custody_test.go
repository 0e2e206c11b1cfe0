package evidence

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// ledger builds n events, every third about case c-1, with a checkpoint
// every CheckpointEvery events and at the end.
func ledger(t *testing.T, n int) ([]CustodyEvent, []Checkpoint, func(string) ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	var events []CustodyEvent
	var cps []Checkpoint
	hash := GenesisHash
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		e := CustodyEvent{Seq: int64(i), At: t0.Add(time.Duration(i) * time.Second), Actor: "s-1", Role: "supervisor",
			Remote: "10.0.0.1:1", Action: ActionPlayback, TargetKind: "recording", TargetID: fmt.Sprintf("rec-%d", i), Outcome: OutcomeOK}
		if i%3 == 0 {
			e.CaseID = "c-1"
		}
		e.Digest = CustodyDigest(e)
		hash = CustodyHash(e.Seq, hash, e.Digest)
		e.Hash = hash
		events = append(events, e)
		if i%CheckpointEvery == 0 || i == n {
			c := Checkpoint{Seq: e.Seq, Hash: hash, At: e.At, KeyID: "k1"}
			c.Signature = ed25519.Sign(priv, CheckpointMessage(c))
			cps = append(cps, c)
		}
	}
	return events, cps, func(id string) ed25519.PublicKey {
		if id == "k1" {
			return pub
		}
		return nil
	}, priv
}

func excerpt(t *testing.T, events []CustodyEvent, cps []Checkpoint, caseID string) Excerpt {
	var mine []CustodyEvent
	for _, e := range events {
		if e.CaseID == caseID {
			mine = append(mine, e)
		}
	}
	x, err := BuildExcerpt(mine, cps, func(from, to int64) ([]CustodyLink, error) {
		var out []CustodyLink
		for _, e := range events[from-1 : to] {
			out = append(out, CustodyLink{Seq: e.Seq, Digest: e.Digest})
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestExcerptVerifies(t *testing.T) {
	events, cps, key, _ := ledger(t, 200)
	x := excerpt(t, events, cps, "c-1")
	if len(x.Events) != 66 {
		t.Fatalf("%d events in the excerpt", len(x.Events))
	}
	if err := VerifyExcerpt(x, key); err != nil {
		t.Fatal(err)
	}
	// A case whose events are all in one checkpoint interval needs only that
	// interval's digests.
	events[69].CaseID = "c-2" // seq 70, interval 65..128
	events[69].Digest = CustodyDigest(events[69])
	events, cps, key, _ = rechain(t, events)
	x = excerpt(t, events, cps, "c-2")
	if x.AnchorSeq != 64 || len(x.Links) != 63 {
		t.Fatalf("excerpt of one event: anchor %d, %d links", x.AnchorSeq, len(x.Links))
	}
	if err := VerifyExcerpt(x, key); err != nil {
		t.Fatal(err)
	}
}

// rechain recomputes hashes and checkpoints after events were changed
// legitimately (test set-up).
func rechain(t *testing.T, events []CustodyEvent) ([]CustodyEvent, []Checkpoint, func(string) ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	var cps []Checkpoint
	hash := GenesisHash
	for i := range events {
		events[i].Digest = CustodyDigest(events[i])
		hash = CustodyHash(events[i].Seq, hash, events[i].Digest)
		events[i].Hash = hash
		if (i+1)%CheckpointEvery == 0 || i == len(events)-1 {
			c := Checkpoint{Seq: events[i].Seq, Hash: hash, At: events[i].At, KeyID: "k1"}
			c.Signature = ed25519.Sign(priv, CheckpointMessage(c))
			cps = append(cps, c)
		}
	}
	return events, cps, func(id string) ed25519.PublicKey {
		if id == "k1" {
			return pub
		}
		return nil
	}, priv
}

// Each kind of tampering is caught and named.
func TestExcerptTamper(t *testing.T) {
	events, cps, key, priv := ledger(t, 200)
	for _, tc := range []struct {
		name   string
		tamper func(x *Excerpt)
		want   string
	}{
		{"event edited", func(x *Excerpt) { x.Events[3].Actor = "someone-else" }, "altered"},
		{"event removed", func(x *Excerpt) { x.Events = append(x.Events[:3], x.Events[4:]...) }, "missing"},
		{"other event's digest changed", func(x *Excerpt) { x.Links[5].Digest = strings.Repeat("ab", 32) }, "chain breaks"},
		{"event rewritten with a fresh digest", func(x *Excerpt) {
			x.Events[2].Detail = "nothing happened"
			x.Events[2].Digest = CustodyDigest(x.Events[2])
		}, "chain breaks"},
		{"checkpoint forged", func(x *Excerpt) { x.Checkpoints[1].Hash = strings.Repeat("00", 32) }, "signature"},
		{"checkpoint re-signed by another key", func(x *Excerpt) {
			_, other, _ := ed25519.GenerateKey(nil)
			x.Checkpoints[0].Signature = ed25519.Sign(other, CheckpointMessage(x.Checkpoints[0]))
		}, "signature"},
		{"unknown key", func(x *Excerpt) { x.Checkpoints[0].KeyID = "k9" }, "unknown key"},
		{"event added", func(x *Excerpt) {
			e := CustodyEvent{Seq: 1000, At: time.Now(), Actor: "x", Action: ActionExport, CaseID: "c-1"}
			e.Digest = CustodyDigest(e)
			x.Events = append(x.Events, e)
		}, "not tied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := excerpt(t, events, cps, "c-1")
			tc.tamper(&x)
			err := VerifyExcerpt(x, key)
			if !errors.Is(err, ErrLedger) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
	_ = priv
}
