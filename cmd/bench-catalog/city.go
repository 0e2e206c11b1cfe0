package main

// The synthetic city: a fleet of devices that each record perDay recordings
// a day, one after the other, of whole segments, with the catalog rows real
// ingest, custody and cases would leave. Everything is computed the
// catalog's way (chain links with evidence.ChainHash, custody digests and
// hashes, signed checkpoints), so the result verifies like a real catalog;
// it is written with COPY rather than through the Catalog API because a
// city's worth of rows through one transaction each would take hours.
//
// Rows are produced in time order across the fleet, as a city's uploaders
// produce them: the first segment of every device's recording, then the
// second, ... so one recording's segments lie far apart in the table, as
// they do when thousands of devices upload at once.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// cityConfig is the shape of the synthetic city.
type cityConfig struct {
	Devices    int           // recording devices (one officer each)
	Units      int           // the officers' units (users.unit), officer d in unit d%Units+1
	PerDay     int           // recordings per device per day
	Segment    time.Duration // media segment length
	Recording  time.Duration // recording length (a whole number of segments)
	CaseEvery  int           // one device-day in CaseEvery becomes a case with that day's recordings
	Start      time.Time     // the first day, 00:00 UTC
	Chunk      int           // segment rows per COPY
	HasCount   bool          // recordings.segment_count exists (migration 0012)
	HasLongest bool          // devices.longest_recording_us exists (migration 0012)
}

// The recording day: recordings are spread from 06:00 over dayLength.
const (
	dayStart  = 6 * time.Hour
	dayLength = 16 * time.Hour
)

func (c cityConfig) validate() error {
	switch {
	case c.Devices < 1:
		return fmt.Errorf("devices: want at least 1")
	case c.Units < 1:
		return fmt.Errorf("units: want at least 1")
	case c.PerDay < 1:
		return fmt.Errorf("per-day: want at least 1")
	case c.Segment <= 0 || c.Recording < c.Segment:
		return fmt.Errorf("recording (%v) must be at least one segment (%v)", c.Recording, c.Segment)
	case c.Recording%c.Segment != 0:
		return fmt.Errorf("recording (%v) must be a whole number of segments (%v)", c.Recording, c.Segment)
	case time.Duration(c.PerDay)*c.Recording*4/3 > dayLength:
		return fmt.Errorf("%d recordings of %v do not fit in a %v day with room between them", c.PerDay, c.Recording, dayLength)
	case c.CaseEvery < 1:
		return fmt.Errorf("case-every: want at least 1")
	}
	return nil
}

// op is one write of the fill: a COPY of rows into a table, or a statement.
type op struct {
	table string
	cols  []string
	rows  [][]any
	sql   string
	args  []any
}

var segmentColumns = []string{"recording_id", "device_id", "seq", "kind", "object_key", "size", "sha256", "chain_seq",
	"prev_chain_hash", "chain_hash", "started_us", "device_time_us", "duration_us", "keyframe"}

var custodyColumns = []string{"seq", "at_us", "actor", "role", "remote", "action", "target_kind", "target_id", "case_id",
	"detail", "outcome", "digest", "hash"}

type devState struct {
	id       string
	rec      string    // its current recording
	start    time.Time // and when that began
	chainSeq int64
	head     string
	fence    int64
	n        int64 // segments of the device's current recording so far
}

// city generates the rows. It is not safe for concurrent use.
type city struct {
	cfg   cityConfig
	key   ed25519.PrivateKey
	keyID string
	segs  int // media segments per recording
	dev   []devState
	slot  int  // the recording slot being filled (day*PerDay + k)
	i     int  // next segment index in the slot (0 = init)
	d     int  // next device at index i
	open  bool // the slot's recordings exist

	rows, media int64 // segment rows written, media segments among them
	recordings  int64
	cseq        int64 // custody ledger head
	chead       string
	checkpoints int64
	cases       []string
	unitCases   map[string]int // cases by their unit
	links       int64
	last        time.Time // the city's now: when its latest segment written ends
}

func newCity(cfg cityConfig, key ed25519.PrivateKey, keyID string) *city {
	return &city{cfg: cfg, key: key, keyID: keyID, segs: int(cfg.Recording / cfg.Segment),
		dev: make([]devState, cfg.Devices), chead: evidence.GenesisHash, unitCases: map[string]int{}}
}

func deviceID(d int) string  { return fmt.Sprintf("cam-%05d", d) }
func officerID(d int) string { return fmt.Sprintf("officer-%05d", d) }

// unitOf is officer d's unit, so that a unit's dashboard reads a share of
// the city rather than all of it.
func (c cityConfig) unitOf(d int) string { return fmt.Sprintf("unit-%d", d%c.Units+1) }

func mix(a, b uint64) uint64 {
	x := a*0x9E3779B97F4A7C15 ^ (b + 0x632BE59BD9B4E019)
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	return x
}

// recStart is when device d's recording of slot s starts: slots are spread
// evenly over the recording day, each device a few minutes off.
func (c *city) recStart(d, s int) time.Time {
	day, k := s/c.cfg.PerDay, s%c.cfg.PerDay
	spacing := dayLength / time.Duration(c.cfg.PerDay)
	slack := (spacing - c.cfg.Recording) / 2
	jitter := time.Duration(mix(uint64(d), uint64(s)) % uint64(slack/time.Second+1) * uint64(time.Second))
	return c.cfg.Start.Add(time.Duration(day)*24*time.Hour + dayStart + time.Duration(k)*spacing + jitter)
}

// recID names device d's recording of slot s the way ingest does (its start
// and 4 random bytes).
func (c *city) recID(d, s int) string {
	return fmt.Sprintf("%s-%08x", c.recStart(d, s).UTC().Format("20060102T150405Z"), uint32(mix(uint64(s), uint64(d))))
}

func (c *city) day(s int) time.Time {
	return c.cfg.Start.Add(time.Duration(s/c.cfg.PerDay) * 24 * time.Hour)
}

// segment is device d's segment i (0 = init) of the current slot, as the
// next link of its chain.
func (c *city) segment(d, i int) []any {
	ds := &c.dev[d]
	rec, dev, start := ds.rec, ds.id, ds.start
	kind, name, size, dur := evidence.KindInit, "init.mp4", int64(870+d%40), time.Duration(0)
	if i > 0 {
		kind, name, dur = evidence.KindMedia, fmt.Sprintf("%06d.m4s", i), c.cfg.Segment
		start = start.Add(time.Duration(i-1) * c.cfg.Segment)
		// ~4 Mbit/s
		size = int64(c.cfg.Segment/time.Millisecond)*500 + int64(mix(uint64(d), uint64(i))%100000)
	}
	var content [16]byte
	binary.LittleEndian.PutUint64(content[:], mix(uint64(d), uint64(c.slot)))
	binary.LittleEndian.PutUint64(content[8:], uint64(i))
	sum := sha256.Sum256(content[:])
	prev := ds.head
	if prev == "" {
		prev = evidence.GenesisHash
	}
	l := evidence.Link{Prev: prev, DeviceID: dev, ChainSeq: ds.chainSeq + 1, RecordingID: rec, Seq: int64(i),
		SHA256: hex.EncodeToString(sum[:]), StartedAt: start, Duration: dur}
	h := evidence.ChainHash(l)
	ds.chainSeq, ds.head = l.ChainSeq, h
	ds.n++
	if end := start.Add(dur); end.After(c.last) {
		c.last = end
	}
	c.rows++
	if i > 0 {
		c.media++
	}
	return []any{rec, dev, int64(i), string(kind), dev + "/" + rec + "/" + name, size, l.SHA256, l.ChainSeq, prev, h,
		start.UnixMicro(), start.Add(37 * time.Millisecond).UnixMicro(), dur.Microseconds(), true}
}

// fillTo emits the writes that bring the catalog to target segment rows,
// then what makes it consistent at that point (chain heads, fences, live
// recordings' counts, the ledger's head).
func (c *city) fillTo(target int64, emit func(op) error) error {
	for c.rows < target {
		if !c.open {
			if err := emit(c.openSlot()); err != nil {
				return err
			}
		}
		chunk := make([][]any, 0, min(int64(c.cfg.Chunk), target-c.rows))
		for c.rows < target && len(chunk) < c.cfg.Chunk && c.i <= c.segs {
			chunk = append(chunk, c.segment(c.d, c.i))
			if c.d++; c.d == c.cfg.Devices {
				c.d, c.i = 0, c.i+1
			}
		}
		if err := emit(op{table: "segments", cols: segmentColumns, rows: chunk}); err != nil {
			return err
		}
		if c.i > c.segs {
			for _, o := range c.closeSlot() {
				if err := emit(o); err != nil {
					return err
				}
			}
		}
	}
	return c.settle(emit)
}

// openSlot creates every device's recording of the slot, live.
func (c *city) openSlot() op {
	rows := make([][]any, c.cfg.Devices)
	for d := range rows {
		start := c.recStart(d, c.slot)
		ds := &c.dev[d]
		ds.id, ds.rec, ds.start = deviceID(d), c.recID(d, c.slot), start
		ds.fence = start.UnixMicro() // the lease granted as it began
		ds.n = 0
		rows[d] = []any{ds.rec, ds.id, officerID(d), "", "live", start.UnixMicro(),
			"H264 1280x720\nMPEG-4 Audio 48000Hz 2ch", fmt.Sprintf("10.%d.%d.%d:554", d/65536%256, d/256%256, d%256),
			fmt.Sprintf("node-%d", d%3+1), start.UnixMicro()}
	}
	c.open, c.i, c.d = true, 0, 0
	c.recordings += int64(c.cfg.Devices)
	return op{table: "recordings", rows: rows, cols: []string{"id", "device_id", "officer_id", "case_id", "state", "started_us",
		"codecs", "remote_addr", "node_id", "fence"}}
}

// closeSlot finishes the slot's recordings (complete, manifest signed) and
// writes what follows in the ledger: each recording's ingest event, a few
// playbacks, and at the day's end its cases.
func (c *city) closeSlot() []op {
	n := c.cfg.Devices
	ids, ended, counts, keys := make([]string, n), make([]int64, n), make([]int64, n), make([]string, n)
	var events [][]any
	var cps [][]any
	add := func(e evidence.CustodyEvent) {
		c.cseq++
		e.Seq, e.Outcome = c.cseq, evidence.OutcomeOK
		e.At = e.At.UTC().Truncate(time.Microsecond)
		e.Digest = evidence.CustodyDigest(e)
		e.Hash = evidence.CustodyHash(e.Seq, c.chead, e.Digest)
		c.chead = e.Hash
		events = append(events, []any{e.Seq, e.At.UnixMicro(), e.Actor, e.Role, e.Remote, e.Action, e.TargetKind, e.TargetID,
			e.CaseID, e.Detail, e.Outcome, e.Digest, e.Hash})
		if e.Seq%evidence.CheckpointEvery == 0 {
			cps = append(cps, c.checkpoint(e.Seq, e.Hash, e.At))
		}
	}
	for d := range n {
		id, start := c.recID(d, c.slot), c.recStart(d, c.slot)
		end := start.Add(c.cfg.Recording)
		ids[d], ended[d], counts[d] = id, end.UnixMicro(), int64(c.segs+1)
		keys[d] = deviceID(d) + "/" + id + "/manifest.json"
		add(evidence.CustodyEvent{At: end.Add(3 * time.Second), Actor: "device:" + deviceID(d), Role: "device",
			Action: evidence.ActionIngest, TargetKind: "recording", TargetID: id,
			Detail: fmt.Sprintf("complete recording stored: %d segments, manifest %s; publisher stopped", c.segs+1, keys[d])})
		if mix(uint64(d), uint64(c.slot))%33 == 0 {
			add(evidence.CustodyEvent{At: end.Add(time.Hour), Actor: "supervisor-1", Role: "supervisor", Remote: "10.9.0.1:51000",
				Action: evidence.ActionPlayback, TargetKind: "recording", TargetID: id})
		}
	}
	set := "state = 'complete', ended_us = v.ended, end_reason = 'publisher stopped', manifest_key = v.key"
	if c.cfg.HasCount {
		set += ", segment_count = v.n"
	}
	out := []op{{sql: `UPDATE recordings r SET ` + set + ` FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS v(id, ended, n, key)
		WHERE r.id = v.id`, args: []any{ids, ended, counts, keys}}}

	var cases, members, links [][]any
	if c.slot%c.cfg.PerDay == c.cfg.PerDay-1 { // the day's last slot: its cases
		day := c.slot / c.cfg.PerDay
		for d := range n {
			if (d*7+day)%c.cfg.CaseEvery != 0 {
				continue
			}
			id := fmt.Sprintf("case-%04d-%05d", day, d)
			at := c.day(c.slot).Add(23 * time.Hour)
			c.cases = append(c.cases, id)
			c.unitCases[c.cfg.unitOf(d)]++
			cases = append(cases, []any{id, "incident " + id, "investigating", officerID(d), c.cfg.unitOf(d), officerID(d),
				at.UnixMicro(), at.UnixMicro()})
			members = append(members, []any{id, officerID(d)})
			add(evidence.CustodyEvent{At: at, Actor: officerID(d), Role: "officer", Action: evidence.ActionCaseCreate,
				TargetKind: "case", TargetID: id, CaseID: id, Detail: "filed"})
			for k := range c.cfg.PerDay {
				rec := c.recID(d, day*c.cfg.PerDay+k)
				lat := at.Add(time.Duration(k+1) * time.Minute)
				links = append(links, []any{fmt.Sprintf("link-%s-%d", id, k), id, rec, lat.UnixMicro(), officerID(d)})
				c.links++
				add(evidence.CustodyEvent{At: lat, Actor: officerID(d), Role: "officer", Action: evidence.ActionLink,
					TargetKind: "recording", TargetID: rec, CaseID: id})
				add(evidence.CustodyEvent{At: lat, Actor: officerID(d), Role: "officer", Action: evidence.ActionHold,
					TargetKind: "recording", TargetID: rec, CaseID: id, Detail: "legal hold placed"})
			}
			add(evidence.CustodyEvent{At: at.Add(30 * time.Minute), Actor: "supervisor-1", Role: "supervisor",
				Action: evidence.ActionPlayback, TargetKind: "recording", TargetID: c.recID(d, day*c.cfg.PerDay)})
		}
	}
	if len(cases) > 0 {
		out = append(out,
			op{table: "cases", cols: []string{"id", "title", "state", "officer", "unit", "created_by", "created_us", "updated_us"}, rows: cases},
			op{table: "case_members", cols: []string{"case_id", "user_id"}, rows: members},
			op{table: "evidence_links", cols: []string{"id", "case_id", "recording_id", "linked_us", "linked_by"}, rows: links})
	}
	out = append(out, op{table: "custody_events", cols: custodyColumns, rows: events})
	if len(cps) > 0 {
		out = append(out, op{table: "custody_checkpoints", cols: []string{"seq", "hash", "at_us", "key_id", "signature"}, rows: cps})
	}
	c.slot++
	c.open = false
	return out
}

func (c *city) checkpoint(seq int64, hash string, at time.Time) []any {
	cp := evidence.Checkpoint{Seq: seq, Hash: hash, At: at, KeyID: c.keyID}
	c.checkpoints++
	sig := ed25519.Sign(c.key, evidence.CheckpointMessage(cp))
	return []any{seq, hash, at.UnixMicro(), c.keyID, base64.StdEncoding.EncodeToString(sig)}
}

// settle makes the catalog consistent with what was written: each device's
// chain head and fence, the count of the live recordings' segments, the
// longest recording per device, and the ledger's head.
func (c *city) settle(emit func(op) error) error {
	n := c.cfg.Devices
	ids, seqs, heads, fences := make([]string, n), make([]int64, n), make([]string, n), make([]int64, n)
	for d, ds := range c.dev {
		ids[d], seqs[d], heads[d], fences[d] = deviceID(d), ds.chainSeq, ds.head, ds.fence
	}
	set := "chain_seq = v.seq, chain_head = v.head, fence = v.fence"
	if c.cfg.HasLongest && c.slot > 0 {
		set += fmt.Sprintf(", longest_recording_us = %d", c.cfg.Recording.Microseconds())
	}
	ops := []op{{sql: `UPDATE devices d SET ` + set + ` FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[]) AS v(id, seq, head, fence)
		WHERE d.id = v.id`, args: []any{ids, seqs, heads, fences}}}
	if c.open && c.cfg.HasCount {
		recs, counts := make([]string, n), make([]int64, n)
		for d, ds := range c.dev {
			recs[d], counts[d] = ds.rec, ds.n
		}
		ops = append(ops, op{sql: `UPDATE recordings r SET segment_count = v.n FROM unnest($1::text[], $2::bigint[]) AS v(id, n)
			WHERE r.id = v.id`, args: []any{recs, counts}})
	}
	ops = append(ops, op{sql: `UPDATE custody_head SET seq = $1, hash = $2 WHERE id = 1`, args: []any{c.cseq, c.chead}})
	for _, o := range ops {
		if err := emit(o); err != nil {
			return err
		}
	}
	return nil
}

// finishedSlots is how many slots have every recording complete.
func (c *city) finishedSlots() int { return c.slot }

// days is how many days hold footage (the current one included).
func (c *city) days() int {
	s := c.slot
	if c.open {
		s++
	}
	return max(1, (s+c.cfg.PerDay-1)/c.cfg.PerDay)
}
