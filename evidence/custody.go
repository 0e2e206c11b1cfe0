package evidence

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The custody ledger is append-only and hash-chained. Each event's content
// has a digest; the chain runs over the digests:
//
//	digest_n = SHA-256("bodycam-custody-event-v1\n" + the event's fields, one per line)
//	hash_n   = SHA-256("bodycam-custody-v1\n" + n + "\n" + hash_(n-1) + "\n" + digest_n + "\n"), hash_0 = 64 zeros
//
// A checkpoint signs (seq, hash) with the server's Ed25519 key every
// CheckpointEvery events and whenever an excerpt is given out. Because the
// chain runs over digests, an excerpt (a case's events) can be checked
// offline without revealing other events: between an event and the next
// checkpoint it carries only the other events' digests.

// CheckpointEvery is how many events at most lie between checkpoints.
const CheckpointEvery = 64

// Custody actions.
const (
	ActionIngest      = "ingest"      // a recording stored
	ActionLink        = "link"        // footage linked to a case
	ActionUnlink      = "unlink"      // link removed, with a reason
	ActionLiveView    = "live_view"   // watched live
	ActionPlayback    = "playback"    // played or read
	ActionDownload    = "download"    // media downloaded
	ActionExport      = "export"      // a case exported
	ActionVerify      = "verify"      // verification run
	ActionRetention   = "retention"   // retention deleted footage (tombstone)
	ActionHold        = "hold"        // legal hold placed or lifted
	ActionCaseCreate  = "case_create" // a case filed
	ActionCaseTransit = "case_transition"
	ActionDenied      = "denied" // a refused attempt
	// ActionAccount: an account changed (target kind user, device or
	// token): created, password set or reset, disabled, certificate,
	// API token made or revoked, device registered or retired. Admins
	// read no evidence; the ledger is how what they do to accounts, and so
	// who could act as whom, is watched.
	ActionAccount = "account"
	// ActionWebhook: an admin queued again an event a webhook had given
	// up on (target kind event), sending what it tells out once more.
	ActionWebhook = "webhook"
	// ActionBookmark and ActionBookmarkRemoved: a moment of a recording
	// marked for review, or such a mark removed (with the reason).
	ActionBookmark        = "bookmark"
	ActionBookmarkRemoved = "bookmark_removed"
	// ActionDerived: a job stored a copy derived from a recording (a
	// poster, thumbnails, a proxy, a clip, a redacted copy), outside the
	// device chain, with its signed provenance record (target kind
	// recording; actor who asked for it, or "jobs" for the system).
	ActionDerived = "derived"
	// ActionDeriveRequest: a user asked for a copy derived from a
	// recording (a clip, a redacted copy): what, with its parameters.
	// The copy, once made, is an ActionDerived event.
	ActionDeriveRequest = "derive_request"
	// ActionJobRerun: an admin ran a done or failed job again (target
	// kind job).
	ActionJobRerun = "job_rerun"
	// ActionCategories: a recording's categories (retention classes)
	// changed: the old and new ones, the retention each gives, and why.
	ActionCategories = "categories"
	// ActionReport: an audit report made (target: the recording, case or
	// user it is of; detail: format, the ledger state it is of, its SHA-256).
	ActionReport = "report"
	// Approval before copying (copies.go), target the recording or case
	// copied (a case's events carry its case id), the detail naming the
	// copy request:
	// ActionCopyRequest a copy asked for (who, what, why, how many uses);
	// ActionCopyApprove and ActionCopyRefuse a supervisor's decision
	// (a refused decision, such as one's own request, is ActionCopyApprove
	// with outcome denied); ActionCopyUse a grant used for a download or
	// an export (outcome denied: a copy refused for want of a valid grant).
	ActionCopyRequest = "copy_request"
	ActionCopyApprove = "copy_approve"
	ActionCopyRefuse  = "copy_refuse"
	ActionCopyUse     = "copy_use"
)

// Outcomes of custody events.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// CustodyEvent is one entry of the ledger: who did what to which object,
// when, from where, and how it went.
type CustodyEvent struct {
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Role       string    `json:"role"`
	Remote     string    `json:"remote"`
	Action     string    `json:"action"`
	TargetKind string    `json:"target_kind"` // recording, case, device, user, ...
	TargetID   string    `json:"target_id"`
	CaseID     string    `json:"case_id"`
	Detail     string    `json:"detail"`
	Outcome    string    `json:"outcome"`
	Digest     string    `json:"digest"`
	Hash       string    `json:"hash"`
}

// CustodyDigest is the digest of an event's content.
func CustodyDigest(e CustodyEvent) string {
	var b strings.Builder
	b.WriteString("bodycam-custody-event-v1\n")
	for _, f := range []string{strconv.FormatInt(e.Seq, 10), strconv.FormatInt(e.At.UnixMicro(), 10), e.Actor, e.Role, e.Remote,
		e.Action, e.TargetKind, e.TargetID, e.CaseID, e.Detail, e.Outcome} {
		// Fields are escaped so that no field can imitate a line break.
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(f, `\`, `\\`), "\n", `\n`))
		b.WriteByte('\n')
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// CustodyHash is the chain hash of event seq with digest after prev.
func CustodyHash(seq int64, prev, digest string) string {
	sum := sha256.Sum256([]byte("bodycam-custody-v1\n" + strconv.FormatInt(seq, 10) + "\n" + prev + "\n" + digest + "\n"))
	return hex.EncodeToString(sum[:])
}

// Checkpoint is a signed statement of the ledger's head.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	At        time.Time `json:"at"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
}

// CheckpointMessage is what a checkpoint's signature covers.
func CheckpointMessage(c Checkpoint) []byte {
	return []byte(fmt.Sprintf("bodycam-custody-checkpoint-v1\n%d\n%s\n%d\n", c.Seq, c.Hash, c.At.UnixMicro()))
}

// CustodyLink is another event's place in the chain, without its content.
type CustodyLink struct {
	Seq    int64  `json:"seq"`
	Digest string `json:"digest"`
}

// Excerpt is part of the ledger with what is needed to check it offline:
// its events, the digests of the other events from the first event's
// predecessor's checkpoint to the last checkpoint, and the checkpoints.
type Excerpt struct {
	// Anchor is the checkpoint (or genesis: Seq 0, GenesisHash) the chain
	// is recomputed from.
	AnchorSeq   int64          `json:"anchor_seq"`
	AnchorHash  string         `json:"anchor_hash"`
	Events      []CustodyEvent `json:"events"`
	Links       []CustodyLink  `json:"links"`
	Checkpoints []Checkpoint   `json:"checkpoints"`
}

// ErrLedger is wrapped by every ledger check failure.
var ErrLedger = errors.New("custody ledger")

// VerifyExcerpt recomputes an excerpt's chain from its anchor through every
// event and link to its last checkpoint, and checks each checkpoint's
// signature with the key lookup gives for its key id. The anchor must be
// genesis or one of the checkpoints. It names the first thing wrong.
func VerifyExcerpt(x Excerpt, key func(id string) ed25519.PublicKey) error {
	if len(x.Checkpoints) == 0 {
		return fmt.Errorf("%w: no signed checkpoint", ErrLedger)
	}
	cps := map[int64]Checkpoint{}
	for _, c := range x.Checkpoints {
		k := key(c.KeyID)
		if k == nil {
			return fmt.Errorf("%w: checkpoint %d signed by unknown key %q", ErrLedger, c.Seq, c.KeyID)
		}
		if !ed25519.Verify(k, CheckpointMessage(c), c.Signature) {
			return fmt.Errorf("%w: checkpoint %d: signature does not verify", ErrLedger, c.Seq)
		}
		cps[c.Seq] = c
	}
	if x.AnchorSeq == 0 {
		if x.AnchorHash != GenesisHash {
			return fmt.Errorf("%w: genesis anchor is not the genesis hash", ErrLedger)
		}
	} else if c, ok := cps[x.AnchorSeq]; !ok || c.Hash != x.AnchorHash {
		return fmt.Errorf("%w: anchor %d is not a signed checkpoint", ErrLedger, x.AnchorSeq)
	}
	digests := map[int64]string{}
	for _, e := range x.Events {
		if got := CustodyDigest(e); got != e.Digest {
			return fmt.Errorf("%w: event %d (%s %s by %s) was altered: its content does not match its digest", ErrLedger, e.Seq, e.Action, e.TargetID, e.Actor)
		}
		digests[e.Seq] = e.Digest
	}
	for _, l := range x.Links {
		if _, dup := digests[l.Seq]; dup {
			return fmt.Errorf("%w: seq %d given twice", ErrLedger, l.Seq)
		}
		digests[l.Seq] = l.Digest
	}
	last := int64(0)
	for s := range cps {
		last = max(last, s)
	}
	// Walk the chain from the anchor. Between checkpoints every digest
	// must be there; from a checkpoint the walk may jump to the next one
	// (events of no concern to the excerpt, not even as digests).
	walked := map[int64]bool{}
	hash, seq, anchored := x.AnchorHash, x.AnchorSeq, true
	for seq < last {
		d, ok := digests[seq+1]
		if !ok {
			if !anchored {
				return fmt.Errorf("%w: event %d is missing from the chain before the next checkpoint", ErrLedger, seq+1)
			}
			next := last
			for s := range cps {
				if s > seq && s < next {
					next = s
				}
			}
			hash, seq = cps[next].Hash, next
			continue
		}
		seq++
		hash, anchored = CustodyHash(seq, hash, d), false
		walked[seq] = true
		if c, ok := cps[seq]; ok {
			if c.Hash != hash {
				return fmt.Errorf("%w: chain breaks before checkpoint %d (an event up to it was altered, removed or reordered)", ErrLedger, seq)
			}
			anchored = true
		}
	}
	for s := range digests {
		if !walked[s] {
			return fmt.Errorf("%w: event %d is not tied to a signed checkpoint", ErrLedger, s)
		}
	}
	return nil
}

// BuildExcerpt assembles the excerpt of events (in seq order) given
// checkpoints in seq order, the last at or after the last event, and a way
// to read the other events' digests in a seq range (from and to included).
// The checkpoints may be every one, or only those around each event (the
// last before it and the first at or after it) and the last: the excerpt
// carries those from its anchor on, and a verifier jumps between them.
func BuildExcerpt(events []CustodyEvent, cps []Checkpoint, linksIn func(from, to int64) ([]CustodyLink, error)) (Excerpt, error) {
	if len(cps) == 0 {
		return Excerpt{}, fmt.Errorf("%w: no checkpoint", ErrLedger)
	}
	last := cps[len(cps)-1]
	if len(events) == 0 {
		return Excerpt{AnchorSeq: last.Seq, AnchorHash: last.Hash, Events: []CustodyEvent{}, Links: []CustodyLink{}, Checkpoints: []Checkpoint{last}}, nil
	}
	if events[len(events)-1].Seq > last.Seq {
		return Excerpt{}, fmt.Errorf("%w: event %d is after the last checkpoint %d", ErrLedger, events[len(events)-1].Seq, last.Seq)
	}
	// around is the checkpoint interval (from, to] holding seq.
	around := func(seq int64) (from, to int64, hash string) {
		for _, c := range cps {
			if c.Seq < seq {
				from, hash = c.Seq, c.Hash
			} else {
				return from, c.Seq, hash
			}
		}
		return from, last.Seq, hash
	}
	x := Excerpt{Events: events, Links: []CustodyLink{}}
	x.AnchorSeq, _, x.AnchorHash = around(events[0].Seq)
	if x.AnchorSeq == 0 {
		x.AnchorHash = GenesisHash
	}
	included := map[int64]bool{}
	for _, e := range events {
		included[e.Seq] = true
	}
	done := map[int64]bool{} // intervals (by their end) already linked
	for _, e := range events {
		from, to, _ := around(e.Seq)
		if done[to] {
			continue
		}
		done[to] = true
		links, err := linksIn(from+1, to)
		if err != nil {
			return Excerpt{}, err
		}
		for _, l := range links {
			if !included[l.Seq] {
				x.Links = append(x.Links, l)
			}
		}
	}
	for _, c := range cps {
		if c.Seq >= x.AnchorSeq {
			x.Checkpoints = append(x.Checkpoints, c)
		}
	}
	return x, nil
}
