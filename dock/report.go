package dock

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"
)

// stats are the agent's counters since it started.
type stats struct {
	start     time.Time
	files     atomic.Int64 // queued
	doneFiles atomic.Int64 // finished (whatever the outcome)
	bytes     atomic.Int64 // sizes of the queued files
	doneBytes atomic.Int64 // of those, bytes the server holds (or had)
	sentBytes atomic.Int64 // bytes actually sent
	failed    atomic.Int64
	refused   atomic.Int64
}

// progressLoop prints the summary line every ProgressEvery until done.
func (a *Agent) progressLoop(done <-chan struct{}) {
	t := time.NewTicker(a.o.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			a.summary(false)
		}
	}
}

// summary prints files done/total, bytes, the send rate (bytes actually
// sent, over the last interval; over the whole run at the end) and an ETA.
func (a *Agent) summary(final bool) {
	now := time.Now()
	sent := a.st.sentBytes.Load()
	a.mu.Lock()
	var r float64
	if final || a.lastAt.IsZero() {
		r = float64(sent) / max(now.Sub(a.st.start).Seconds(), 1e-3)
	} else {
		r = float64(sent-a.lastSent) / max(now.Sub(a.lastAt).Seconds(), 1e-3)
	}
	a.lastAt, a.lastSent = now, sent
	a.mu.Unlock()
	files, doneFiles := a.st.files.Load(), a.st.doneFiles.Load()
	total, done := a.st.bytes.Load(), a.st.doneBytes.Load()
	eta := "-"
	if rem := total - done; rem > 0 && r > 0 {
		eta = (time.Duration(float64(rem) / r * float64(time.Second))).Round(time.Second).String()
	} else if rem <= 0 {
		eta = "0s"
	}
	what := "progress"
	if final {
		what = "done"
	}
	fmt.Fprintf(a.o.Progress, "%s: files %d/%d, %s/%s, %s/s, ETA %s (sent %s, failed %d, refused %d)\n",
		what, doneFiles, files, human(done), human(total), human(int64(r)), eta, human(sent), a.st.failed.Load(), a.st.refused.Load())
}

// human prints a byte count in SI units (as --rate reads them).
func human(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// FileReport is one file of a camera's report.
type FileReport struct {
	Path        string    `json:"path"`
	Size        int64     `json:"size"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
	Device      string    `json:"device,omitempty"`
	RecordingID string    `json:"recording_id,omitempty"`
	Receipt     string    `json:"receipt,omitempty"`
	Verified    bool      `json:"receipt_verified"`
	Released    bool      `json:"released"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Report is <state-dir>/reports/<camera>.json.
type Report struct {
	Camera    string         `json:"camera"`
	Dir       string         `json:"dir"`
	UpdatedAt time.Time      `json:"updated_at"`
	Counts    map[string]int `json:"counts"`
	Files     []FileReport   `json:"files"`
}

// writeReport rewrites a camera's report from its state.
func (a *Agent) writeReport(cam *camera) error {
	cam.reportMu.Lock()
	defer cam.reportMu.Unlock()
	rep := Report{Camera: cam.name, Dir: cam.dir, UpdatedAt: time.Now().UTC(), Counts: map[string]int{}, Files: []FileReport{}}
	for _, e := range cam.state.entries() {
		rep.Counts[e.State]++
		rep.Files = append(rep.Files, FileReport{Path: e.Path, Size: e.Size, State: e.State, Reason: e.Reason,
			SHA256: e.SHA256, Device: e.Device, RecordingID: e.Recording, Receipt: e.Receipt, Verified: e.Verified,
			Released: e.Released, UpdatedAt: e.UpdatedAt})
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(a.o.StateDir, "reports", cam.name+".json"), append(b, '\n'))
}
