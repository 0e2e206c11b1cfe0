package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// quantiles of a set of timings.
type quantiles struct {
	n             int
	p50, p99, max time.Duration
}

func quantilesOf(ds []time.Duration) quantiles {
	if len(ds) == 0 {
		return quantiles{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return quantiles{n: len(ds), p50: at(0.50), p99: at(0.99), max: ds[len(ds)-1]}
}

// appendResult is what the append test measured.
type appendResult struct {
	devices  int
	segments int64 // media and init segments appended
	media    int64
	elapsed  time.Duration
	latency  quantiles
}

func (a appendResult) rate() float64 { return float64(a.segments) / a.elapsed.Seconds() }

// appendTest has each of devices record a new recording and append its
// segments through Catalog.AppendSegment, back to back, for dur: what the
// catalog takes from as many uploaders at once.
func appendTest(ctx context.Context, cat *catalog.Catalog, step, devices int, dur, segment time.Duration) (appendResult, error) {
	res := appendResult{devices: devices}
	var mu sync.Mutex
	var lat []time.Duration
	errs := make(chan error, devices)
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := appendDeviceID(d)
			now := time.Now().UTC().Truncate(time.Microsecond)
			rec := evidence.Recording{ID: fmt.Sprintf("append-%02d-%03d-%s", step, d, now.Format("150405")), DeviceID: dev,
				State: evidence.StateLive, StartedAt: now, Fence: now.UnixMicro(), NodeID: "bench",
				Codecs: []string{"H264 1280x720", "MPEG-4 Audio 48000Hz 2ch"}}
			if err := cat.CreateRecording(ctx, rec); err != nil {
				errs <- err
				return
			}
			var mine []time.Duration
			var media int64
			seq := int64(0)
			for ; time.Now().Before(deadline); seq++ {
				s := evidence.Segment{RecordingID: rec.ID, DeviceID: dev, Seq: seq, Kind: evidence.KindInit,
					Key: dev + "/" + rec.ID + "/init.mp4", Size: 870, StartedAt: now, Keyframe: true}
				if seq > 0 {
					s.Kind, s.Key, s.Size = evidence.KindMedia, fmt.Sprintf("%s/%s/%06d.m4s", dev, rec.ID, seq), 2_000_000+seq%1000
					s.StartedAt, s.Duration = now.Add(time.Duration(seq-1)*segment), segment
					media++
				}
				sum := sha256.Sum256([]byte(s.Key))
				s.SHA256 = hex.EncodeToString(sum[:])
				t0 := time.Now()
				if _, err := cat.AppendSegment(ctx, s); err != nil {
					errs <- fmt.Errorf("append %s: %w", s.Key, err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			if err := cat.FinishRecording(ctx, rec.ID, evidence.StateComplete, now.Add(time.Duration(seq)*segment), "publisher stopped"); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.segments += seq
			res.media += media
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return res, err
	}
	res.latency = quantilesOf(lat)
	return res, nil
}

// querySet times the three reads the brief names, n times each, on random
// devices, days, recordings and cases, and checks what they return.
type queryResult struct {
	list, recording, excerpt quantiles
	listed                   float64 // recordings per list, on average
	segments                 float64 // segments per recording read
	excerptEvents            float64
}

func queries(ctx context.Context, cat *catalog.Catalog, c *city, n int, rng *rand.Rand, signer catalog.Signer, key func(string) ed25519.PublicKey) (queryResult, error) {
	var res queryResult
	// Warm the connection pool and the statements first: a connection's
	// first query is not what a running server sees.
	for d := range min(16, c.cfg.Devices) {
		if _, err := cat.Recordings(ctx, catalog.RecordingFilter{DeviceID: deviceID(d), From: c.cfg.Start, To: c.cfg.Start.Add(time.Hour)}); err != nil {
			return res, err
		}
	}
	var list, rec, exc []time.Duration
	var listed, segs, events int
	days := c.days()
	for range n {
		d, day := rng.IntN(c.cfg.Devices), rng.IntN(days)
		from := c.cfg.Start.Add(time.Duration(day) * 24 * time.Hour)
		t0 := time.Now()
		rs, err := cat.Recordings(ctx, catalog.RecordingFilter{DeviceID: deviceID(d), From: from, To: from.Add(24 * time.Hour)})
		list = append(list, time.Since(t0))
		if err != nil {
			return res, err
		}
		// Every device records every slot: a day before the last holds
		// PerDay recordings of it.
		if want := c.cfg.PerDay; (day+1)*c.cfg.PerDay <= c.finishedSlots() && len(rs) != want {
			return res, fmt.Errorf("device %s, day %d: %d recordings listed, want %d", deviceID(d), day, len(rs), want)
		}
		listed += len(rs)
	}
	for range n {
		d := rng.IntN(c.cfg.Devices)
		s := c.slot // the live one when nothing is finished yet
		if c.finishedSlots() > 0 {
			s = rng.IntN(c.finishedSlots())
		}
		id := c.recID(d, s)
		t0 := time.Now()
		r, err := cat.Recording(ctx, id)
		if err != nil {
			return res, err
		}
		ss, err := cat.Segments(ctx, id)
		rec = append(rec, time.Since(t0))
		if err != nil {
			return res, err
		}
		if len(ss) != r.SegmentCount || len(ss) == 0 {
			return res, fmt.Errorf("recording %s: %d segments, count says %d", id, len(ss), r.SegmentCount)
		}
		for i, s := range ss {
			if evidence.ChainHash(s.Link()) != s.ChainHash || (i > 0 && s.PrevChainHash != ss[i-1].ChainHash) {
				return res, fmt.Errorf("recording %s: segment %d does not chain", id, s.Seq)
			}
		}
		segs += len(ss)
	}
	if len(c.cases) > 0 {
		for i := range n {
			id := c.cases[rng.IntN(len(c.cases))]
			t0 := time.Now()
			x, err := caseExcerpt(ctx, cat, id, signer)
			exc = append(exc, time.Since(t0))
			if err != nil {
				return res, err
			}
			if len(x.Events) == 0 {
				return res, fmt.Errorf("case %s: no custody events", id)
			}
			if i == 0 { // one in full, each step
				if err := evidence.VerifyExcerpt(x, key); err != nil {
					return res, fmt.Errorf("case %s: %w", id, err)
				}
			}
			events += len(x.Events)
		}
	}
	res.list, res.recording, res.excerpt = quantilesOf(list), quantilesOf(rec), quantilesOf(exc)
	res.listed = float64(listed) / float64(n)
	res.segments = float64(segs) / float64(n)
	res.excerptEvents = float64(events) / float64(max(1, len(exc)))
	return res, nil
}

// caseExcerpt is what GET /api/v1/cases/{id}/custody asks of the catalog
// (api.Server.caseExcerpt): the case's links, then its custody excerpt.
func caseExcerpt(ctx context.Context, cat *catalog.Catalog, caseID string, signer catalog.Signer) (evidence.Excerpt, error) {
	links, err := cat.EvidenceLinks(ctx, caseID, "")
	if err != nil {
		return evidence.Excerpt{}, err
	}
	f := catalog.CustodyFilter{CaseID: caseID, Keep: func(e evidence.CustodyEvent) bool {
		return evidence.InCaseRecord(e, caseID, links)
	}}
	for _, l := range links {
		if !slices.Contains(f.TargetIDs, l.RecordingID) {
			f.TargetIDs = append(f.TargetIDs, l.RecordingID)
		}
	}
	return cat.CustodyExcerpt(ctx, f, signer)
}

// catalogTables are what the catalog keeps for good; the outbox is pruned
// after --events-keep and is reported apart.
var catalogTables = []string{"segments", "recordings", "devices", "gaps", "custody_events", "custody_checkpoints",
	"cases", "case_members", "case_transitions", "evidence_links"}

type sizes struct {
	total           int64 // every table in catalogTables, with indexes and TOAST
	byTable         map[string]int64
	segHeap, segIdx int64
	indexes         map[string]int64
	outbox, outboxN int64
	recordings      int64
	custody, cps    int64
	cases, links    int64
}

func measureSizes(ctx context.Context, conn *pgx.Conn) (sizes, error) {
	s := sizes{byTable: map[string]int64{}, indexes: map[string]int64{}}
	for _, t := range catalogTables {
		var n int64
		if err := conn.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass)`, t).Scan(&n); err != nil {
			return s, err
		}
		s.byTable[t] = n
		s.total += n
	}
	err := conn.QueryRow(ctx, `SELECT pg_relation_size('segments'), pg_indexes_size('segments'), pg_total_relation_size('outbox'),
		(SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM recordings), (SELECT COUNT(*) FROM custody_events),
		(SELECT COUNT(*) FROM custody_checkpoints), (SELECT COUNT(*) FROM cases), (SELECT COUNT(*) FROM evidence_links)`).
		Scan(&s.segHeap, &s.segIdx, &s.outbox, &s.outboxN, &s.recordings, &s.custody, &s.cps, &s.cases, &s.links)
	if err != nil {
		return s, err
	}
	rows, err := conn.Query(ctx, `SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname IN ('segments', 'recordings')`)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return s, err
		}
		s.indexes[name] = n
	}
	return s, rows.Err()
}

// vacuum does what autovacuum would have done by now: the visibility map
// (index-only scans) and the planner's statistics.
func vacuum(ctx context.Context, conn *pgx.Conn) error {
	for _, t := range catalogTables {
		if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+t); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	return nil
}

// benchSigner signs the ledger's checkpoints (the city's and the ones an
// excerpt makes) with one key.
type benchSigner struct{ key ed25519.PrivateKey }

func (s benchSigner) ID() string { return "bench-k1" }
func (s benchSigner) Sign(msg []byte) (string, []byte) {
	return "bench-k1", ed25519.Sign(s.key, msg)
}
