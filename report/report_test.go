package report

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

var t0 = time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC)

func sample() Report {
	events := []evidence.CustodyEvent{
		{Seq: 3, At: t0, Actor: "ingest", Action: evidence.ActionIngest, TargetKind: "recording", TargetID: "rec-1", Outcome: evidence.OutcomeOK, Digest: "d3", Hash: "h3"},
		{Seq: 7, At: t0.Add(time.Hour), Actor: "s-1", Role: "supervisor", Remote: "10.0.0.5:4431", Action: evidence.ActionPlayback,
			TargetKind: "recording", TargetID: "rec-1", Detail: "media 0-60 s", Outcome: evidence.OutcomeOK, Digest: "d7", Hash: "h7"},
		{Seq: 9, At: t0.Add(2 * time.Hour), Actor: "o-1", Role: "officer", Action: evidence.ActionLink, TargetKind: "recording", TargetID: "rec-1",
			CaseID: "C-1", Detail: "执法 记录\tlinked: traffic stop", Outcome: evidence.OutcomeOK, Digest: "d9", Hash: "h9"},
		{Seq: 12, At: t0.Add(3 * time.Hour), Actor: "o-2", Role: "officer", Action: evidence.ActionDownload, TargetKind: "recording", TargetID: "rec-1",
			Outcome: evidence.OutcomeDenied, Detail: "not in the officer's unit", Digest: "d12", Hash: "h12"},
	}
	return New(KindRecording, "rec-1", "Custody history of recording rec-1", []Fact{{"Device", "cam-1"}}, events, 14, "h14", t0.Add(4*time.Hour))
}

// pdfText is what pdftotext reads of a PDF (poppler-utils; installed by
// scripts/deps.sh test).
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "r.pdf")
	if err := os.WriteFile(f, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", f, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v %s", err, out)
	}
	return string(out)
}

// The PDF lists every event (number, time, action, who, what, detail),
// the ledger state it is of and the counts; characters the standard fonts
// lack are written as their code points, not dropped; made again, it is
// the same bytes (a signature can be fetched apart).
func TestPDF(t *testing.T) {
	r := sample()
	a, err := PDF(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := PDF(sample())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same report made twice differs")
	}
	text := pdfText(t, a)
	for _, want := range []string{"Custody history of recording rec-1", "ledger through event 14", "h14", "cam-1",
		"#3", "#7", "#9", "#12", "2026-12-01 09:30:00.000000 UTC", "playback", "s-1 (supervisor) from 10.0.0.5:4431",
		`\u{6267}\u{6CD5} \u{8BB0}\u{5F55} linked: traffic stop`, "case C-1", "(refused, denied)", "not in the officer's unit",
		"4 events: changed 1, refused 1, system 1, watched 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF's text lacks %q:\n%s", want, text)
		}
	}
	r.Events = r.Events[:1]
	if c, _ := PDF(r); bytes.Equal(a, c) {
		t.Fatal("a different report, the same bytes")
	}
}

// The JSON holds the events as the ledger has them (text unchanged) with
// their categories.
func TestJSON(t *testing.T) {
	b, err := JSON(sample())
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Through != 14 || r.LedgerHash != "h14" || len(r.Events) != 4 || r.Events[2].Detail != "执法 记录\tlinked: traffic stop" ||
		r.Events[1].Category != Watched || r.Events[3].Category != Refused || r.Counts[Watched] != 1 {
		t.Fatalf("%s", b)
	}
}

// Approval before copying has its own category; a refused use is a
// refusal.
func TestCopyCategories(t *testing.T) {
	for action, want := range map[string]string{evidence.ActionCopyRequest: Copies, evidence.ActionCopyApprove: Copies,
		evidence.ActionCopyRefuse: Copies, evidence.ActionCopyUse: Copies} {
		if got := Category(evidence.CustodyEvent{Action: action, Outcome: evidence.OutcomeOK}); got != want {
			t.Errorf("%s: %s, want %s", action, got, want)
		}
	}
	if got := Category(evidence.CustodyEvent{Action: evidence.ActionCopyUse, Outcome: evidence.OutcomeDenied}); got != Refused {
		t.Errorf("refused use: %s", got)
	}
}
