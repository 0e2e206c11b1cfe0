// Package report renders audit reports: what the custody ledger says about
// a recording, a case or a user, as JSON and as PDF. A report is pinned to
// the ledger's state (its last event and the chain hash after it) and is
// the same bytes whenever it is made again for that state, so that its
// signature can be fetched apart and checked with the server's public key.
package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-pdf/fpdf"

	"github.com/bodycam/bodycam/evidence"
)

// Kinds of report.
const (
	KindRecording = "recording"
	KindCase      = "case"
	KindUser      = "user"
)

// Categories of events, for reading a history (and for internal affairs:
// what a user watched, downloaded, exported and changed).
const (
	Watched    = "watched"    // played, read, watched live
	Downloaded = "downloaded" // media or an original taken away
	Exported   = "exported"   // a case exported
	Changed    = "changed"    // anything that changed the record
	Checked    = "checked"    // verification, reports
	Refused    = "refused"    // an attempt the server refused
	System     = "system"     // done by the server itself (stored, derived, retention)
	// Copies: approval before copying: a copy requested, granted or
	// refused, a grant used (the download or export it allowed is its
	// own event besides).
	Copies = "copies"
)

// Category says what kind of act an event was.
func Category(e evidence.CustodyEvent) string {
	if e.Outcome == evidence.OutcomeDenied || e.Action == evidence.ActionDenied {
		return Refused
	}
	switch e.Action {
	case evidence.ActionLiveView, evidence.ActionPlayback:
		return Watched
	case evidence.ActionDownload:
		return Downloaded
	case evidence.ActionExport:
		return Exported
	case evidence.ActionVerify, evidence.ActionReport:
		return Checked
	case evidence.ActionCopyRequest, evidence.ActionCopyApprove, evidence.ActionCopyRefuse, evidence.ActionCopyUse:
		return Copies
	case evidence.ActionIngest, evidence.ActionDerived, evidence.ActionRetention, evidence.ActionWebhook:
		return System
	}
	// Sharing outside: making a share lets a copy leave; its recipient
	// opens it and downloads.
	switch e.Action {
	case evidence.ActionShare:
		return Exported
	case evidence.ActionShareOpen:
		return Watched
	case evidence.ActionShareDownload:
		return Downloaded
	}
	return Changed
}

// Report is an audit report.
type Report struct {
	Version int    `json:"version"` // 1
	Kind    string `json:"kind"`    // recording, case or user
	Subject string `json:"subject"` // its id
	Title   string `json:"title"`
	// A user report's period: events at or after Since, before Until.
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	// The ledger's state the report is of: its last event then, the chain
	// hash after it, and its time (the report's date).
	Through    int64     `json:"through_seq"`
	LedgerHash string    `json:"ledger_hash"`
	AsOf       time.Time `json:"as_of"`
	Facts      []Fact    `json:"facts"` // about the subject
	// Counts are the events per category.
	Counts map[string]int `json:"counts"`
	Events []Event        `json:"events"`
}

// Fact is one line about the subject.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Event is a custody event and its category.
type Event struct {
	evidence.CustodyEvent
	Category string `json:"category"`
}

// New makes a report of events (in seq order) pinned to the ledger's
// state through seq, whose chain hash is hash and time asOf.
func New(kind, subject, title string, facts []Fact, events []evidence.CustodyEvent, through int64, hash string, asOf time.Time) Report {
	r := Report{Version: 1, Kind: kind, Subject: subject, Title: title, Through: through, LedgerHash: hash, AsOf: asOf.UTC(),
		Facts: facts, Counts: map[string]int{}, Events: make([]Event, 0, len(events))}
	if r.Facts == nil {
		r.Facts = []Fact{}
	}
	for _, e := range events {
		c := Category(e)
		r.Counts[c]++
		e.At = e.At.UTC()
		r.Events = append(r.Events, Event{CustodyEvent: e, Category: c})
	}
	return r
}

// JSON is the report as indented JSON.
func JSON(r Report) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

const timeLayout = "2006-01-02 15:04:05.000000 UTC"

// PDF is the report as a PDF (A4, the standard Helvetica): the subject,
// the ledger state, the counts, then every event. Characters the standard
// fonts cannot show are written as \u{XXXX}, never dropped; the JSON holds
// the text as it is. The same report gives the same bytes.
func PDF(r Report) ([]byte, error) {
	p := fpdf.New("P", "mm", "A4", "")
	p.SetCatalogSort(true)
	p.SetCreationDate(r.AsOf)
	p.SetModificationDate(r.AsOf)
	p.SetProducer("bodycam", false)
	p.SetTitle(latin(r.Title), false)
	p.SetMargins(15, 15, 15)
	p.SetAutoPageBreak(true, 18)
	tr := p.UnicodeTranslatorFromDescriptor("")
	text := func(s string) string { return tr(latin(s)) }
	p.AliasNbPages("{nb}")
	p.SetFooterFunc(func() {
		p.SetY(-13)
		p.SetFont("Helvetica", "", 7)
		p.CellFormat(0, 4, text(fmt.Sprintf("%s  |  ledger through event %d, hash %s  |  page %d of {nb}", r.Title, r.Through, r.LedgerHash, p.PageNo())),
			"", 0, "C", false, 0, "")
	})
	p.AddPage()
	const w = 180.0
	p.SetFont("Helvetica", "B", 14)
	p.MultiCell(w, 7, text(r.Title), "", "L", false)
	p.Ln(2)
	p.SetFont("Helvetica", "", 9)
	line := func(name, value string) {
		p.SetFont("Helvetica", "B", 9)
		p.CellFormat(45, 5, text(name), "", 0, "L", false, 0, "")
		p.SetFont("Helvetica", "", 9)
		p.MultiCell(w-45, 5, text(value), "", "L", false)
	}
	line("Report of", fmt.Sprintf("%s %s", r.Kind, r.Subject))
	if r.Since != nil && r.Until != nil {
		line("Period", fmt.Sprintf("%s to %s", r.Since.UTC().Format(timeLayout), r.Until.UTC().Format(timeLayout)))
	}
	line("As of", fmt.Sprintf("%s (the custody ledger through event %d)", r.AsOf.Format(timeLayout), r.Through))
	line("Ledger hash", r.LedgerHash)
	for _, f := range r.Facts {
		line(f.Name, f.Value)
	}
	cats := make([]string, 0, len(r.Counts))
	for c := range r.Counts {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	var counts []string
	for _, c := range cats {
		counts = append(counts, fmt.Sprintf("%s %d", c, r.Counts[c]))
	}
	summary := fmt.Sprintf("%d events", len(r.Events))
	if len(counts) > 0 {
		summary += ": " + strings.Join(counts, ", ")
	}
	line("Events", summary)
	p.Ln(1)
	p.SetFont("Helvetica", "I", 8)
	p.MultiCell(w, 4, text("Every event below is in the server's hash-chained custody ledger (POST /api/v1/custody/verify re-checks it). "+
		"This file's Ed25519 signature by the server's key is served beside it (the same request with signature=true and through_seq="+
		fmt.Sprint(r.Through)+"); check it with openssl pkeyutl -verify -rawin and the key's PEM from GET /api/v1/keys (README)."), "", "L", false)
	p.Ln(3)
	for _, e := range r.Events {
		p.SetFont("Helvetica", "B", 9)
		p.MultiCell(w, 5, text(fmt.Sprintf("#%d  %s  %s  (%s, %s)", e.Seq, e.At.Format(timeLayout), e.Action, e.Category, e.Outcome)), "T", "L", false)
		p.SetFont("Helvetica", "", 8)
		who := e.Actor
		if e.Role != "" {
			who += " (" + e.Role + ")"
		}
		if e.Remote != "" {
			who += " from " + e.Remote
		}
		what := strings.TrimSpace(e.TargetKind + " " + e.TargetID)
		if e.CaseID != "" {
			what += ", case " + e.CaseID
		}
		p.MultiCell(w, 4, text("by "+who+"  |  "+what), "", "L", false)
		if e.Detail != "" {
			p.MultiCell(w, 4, text(e.Detail), "", "L", false)
		}
		p.SetFont("Helvetica", "", 6)
		p.MultiCell(w, 3, text("digest "+e.Digest+"  chain "+e.Hash), "", "L", false)
		p.Ln(1)
	}
	if len(r.Events) == 0 {
		p.SetFont("Helvetica", "", 9)
		p.MultiCell(w, 5, text("No events."), "", "L", false)
	}
	var buf bytes.Buffer
	if err := p.Output(&buf); err != nil {
		return nil, fmt.Errorf("report: pdf: %w", err)
	}
	return buf.Bytes(), nil
}

// latin keeps what Latin-1 (the standard PDF fonts' characters here) can
// show and writes anything else as \u{XXXX}, so that nothing is lost or
// silently replaced; tabs become spaces, other control characters but
// line breaks are escaped too.
func latin(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '\t':
			b.WriteByte(' ')
		case r == '\n' || (r >= 0x20 && r < 0x7f) || (r >= 0xa0 && r <= 0xff):
			b.WriteRune(r)
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x{%02X}`, s[i-1])
		default:
			fmt.Fprintf(&b, `\u{%04X}`, r)
		}
	}
	return b.String()
}
