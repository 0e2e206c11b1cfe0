package main

import (
	"context"
	"crypto/ed25519"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/internal/testsvc"
)

// The synthetic city is a valid catalog: every device's chain recomputes
// link by link, the custody ledger verifies whole, the counts and windows
// read back as generated (the dashboard's too), and appends through the
// Catalog continue it, in steps that stop in the middle of a slot.
func TestCityIsValid(t *testing.T) {
	ctx := context.Background()
	url := testsvc.Postgres(t)
	cat, err := catalog.OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cfg := cityConfig{Devices: 7, Units: 3, PerDay: 3, Segment: 4 * time.Second, Recording: 40 * time.Second, CaseEvery: 2,
		Start: time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC), Chunk: 13}
	if cfg.HasCount, err = columnExists(ctx, conn, "recordings", "segment_count"); err != nil || !cfg.HasCount {
		t.Fatalf("segment_count: %v, %v", cfg.HasCount, err)
	}
	if cfg.HasLongest, err = columnExists(ctx, conn, "devices", "longest_recording_us"); err != nil || !cfg.HasLongest {
		t.Fatalf("longest_recording_us: %v, %v", cfg.HasLongest, err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	const appenders = 2
	if err := setupFleet(ctx, conn, cfg, appenders); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	signer := benchSigner{priv}
	key := func(id string) ed25519.PublicKey {
		if id == signer.ID() {
			return priv.Public().(ed25519.PublicKey)
		}
		return nil
	}
	c := newCity(cfg, priv, signer.ID())
	l := &loader{conn}
	rng := rand.New(rand.NewPCG(1, 2))
	perSlot := int64(cfg.Devices * (c.segs + 1))
	// Nine days, stopping mid-slot (and mid-row of devices) on the way: the
	// catalog must be whole at every stop. The last stop's 7 days leave
	// out the first two.
	for step, target := range []int64{perSlot/2 + 3, 4 * perSlot, 9*perSlot + 5, 10 * perSlot, 27 * perSlot} {
		if err := l.fill(ctx, c, target); err != nil {
			t.Fatal(err)
		}
		if c.rows != target {
			t.Fatalf("filled %d rows, want %d", c.rows, target)
		}
		if _, err := appendTest(ctx, cat, step+1, appenders, 50*time.Millisecond, cfg.Segment); err != nil {
			t.Fatal(err)
		}
		if _, err := queries(ctx, cat, c, 20, rng, signer, key); err != nil {
			t.Fatalf("step %d: %v", step+1, err)
		}
		dash, err := dashboard(ctx, cat, c, 3)
		if err != nil {
			t.Fatalf("step %d: %v", step+1, err)
		}
		if dash.unitRecs == 0 || dash.unitRecs >= dash.monthRecs {
			t.Fatalf("step %d: the unit's dashboard counted %d recordings of the city's %d", step+1, dash.unitRecs, dash.monthRecs)
		}
		checkChains(t, cat, cfg.Devices, appenders)
		if n, err := cat.VerifyLedger(ctx, key); err != nil || n < c.cseq {
			t.Fatalf("step %d: ledger verified to %d of %d: %v", step+1, n, c.cseq, err)
		}
	}
	if len(c.cases) == 0 || c.links == 0 {
		t.Fatalf("%d cases, %d links", len(c.cases), c.links)
	}
	// Every recording's count is its rows; every finished one is complete
	// with its manifest; the live ones are the current slot's.
	var wrong, live int
	if err := conn.QueryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM recordings r WHERE r.segment_count <> (SELECT COUNT(*) FROM segments s WHERE s.recording_id = r.id)),
		(SELECT COUNT(*) FROM recordings WHERE state = 'live')`).Scan(&wrong, &live); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 || live != 0 { // 27 whole slots: nothing left open
		t.Fatalf("%d recordings with a wrong count, %d live", wrong, live)
	}
	for _, id := range c.cases {
		x, err := caseExcerpt(ctx, cat, id, signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := evidence.VerifyExcerpt(x, key); err != nil || len(x.Events) < 2*cfg.PerDay+1 {
			t.Fatalf("case %s: %d events: %v", id, len(x.Events), err)
		}
	}
	dash, err := dashboard(ctx, cat, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	if days := 27 / cfg.PerDay; dash.days != days || dash.weekRecs != 7*cfg.PerDay*cfg.Devices || dash.monthRecs != days*cfg.PerDay*cfg.Devices {
		t.Fatalf("%d days: %d recordings in 7 days, %d in 30", dash.days, dash.weekRecs, dash.monthRecs)
	}
	// The dashboard's check counts what the city made, not what the
	// catalog holds: a recording more in the week is found.
	started := c.last.Add(-time.Hour)
	if _, err := conn.Exec(ctx, `INSERT INTO recordings (id, device_id, officer_id, case_id, state, started_us, ended_us, codecs, remote_addr, node_id, fence)
		VALUES ('extra', $1, $2, '', 'complete', $3, $4, '', '', 'bench', $3)`, deviceID(0), officerID(0), started.UnixMicro(), c.last.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if _, err := dashboard(ctx, cat, c, 1); err == nil {
		t.Fatal("a recording the city did not make was not noticed")
	}
}

// checkChains recomputes every device's chain from the catalog.
func checkChains(t *testing.T, cat *catalog.Catalog, devices, appenders int) {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for d := range devices {
		ids = append(ids, deviceID(d))
	}
	for d := range appenders {
		ids = append(ids, appendDeviceID(d))
	}
	for _, dev := range ids {
		links, err := cat.ChainLinks(ctx, dev, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		head, headHash, err := cat.ChainHead(ctx, dev)
		if err != nil {
			t.Fatal(err)
		}
		prev := evidence.GenesisHash
		for i, s := range links {
			if s.ChainSeq != int64(i+1) || s.PrevChainHash != prev || evidence.ChainHash(s.Link()) != s.ChainHash {
				t.Fatalf("%s: link %d (chain_seq %d) does not chain", dev, i+1, s.ChainSeq)
			}
			prev = s.ChainHash
		}
		if head != int64(len(links)) || (len(links) > 0 && headHash != prev) {
			t.Fatalf("%s: head %d %s, chain ends at %d %s", dev, head, headHash, len(links), prev)
		}
	}
}
