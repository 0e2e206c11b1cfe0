package main

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// metric is one sampled quantity: a CSV column, a plot, and maybe a
// flatness check.
type metric struct {
	key, title, unit string
	scale            float64 // the plot and the summary show value / scale
	get              func(sample) float64
	checked          bool     // judged for flatness after the warm-up
	plot             string   // SVG file; "" none
	with             []metric // more lines on the same plot
}

// metrics are the sampled quantities, in the CSV's order.
var metrics = []metric{
	{key: "rss_bytes", title: "server RSS", unit: "MiB", scale: 1 << 20, get: func(s sample) float64 { return s.rss }, checked: true, plot: "rss.svg",
		with: []metric{{key: "heap_inuse_bytes", title: "Go heap in use", scale: 1 << 20, get: func(s sample) float64 { return s.heap }}}},
	{key: "heap_inuse_bytes", title: "server Go heap in use (go_memstats_heap_inuse_bytes)", unit: "MiB", scale: 1 << 20, get: func(s sample) float64 { return s.heap }},
	{key: "goroutines", title: "server goroutines (go_goroutines)", unit: "goroutines", scale: 1, get: func(s sample) float64 { return s.goroutines }, checked: true, plot: "goroutines.svg"},
	{key: "open_files", title: "server open files (/proc/<pid>/fd)", unit: "descriptors", scale: 1, get: func(s sample) float64 { return s.openFiles }, checked: true, plot: "open-files.svg"},
	{key: "spool_bytes", title: "spool on disk (du, mean of each second)", unit: "MiB", scale: 1 << 20, get: func(s sample) float64 { return s.spoolBytes }, checked: true, plot: "spool.svg",
		with: []metric{{key: "spool_bytes_max", title: "the most in the interval", scale: 1 << 20, get: func(s sample) float64 { return s.spoolMax }}}},
	{key: "spool_bytes_max", title: "spool on disk, the most in the interval", unit: "MiB", scale: 1 << 20, get: func(s sample) float64 { return s.spoolMax }},
	{key: "spool_files", title: "spool files, the most in the interval", unit: "files", scale: 1, get: func(s sample) float64 { return s.spoolFiles }},
	{key: "server_cpu_pct", title: "server CPU", unit: "% of one core", scale: 1, get: func(s sample) float64 { return s.cpu }, checked: true, plot: "cpu.svg",
		with: []metric{
			{key: "minio_cpu_pct", title: "MinIO", scale: 1, get: func(s sample) float64 { return s.minio }},
			{key: "bench_cpu_pct", title: "bench (recorders and viewers)", scale: 1, get: func(s sample) float64 { return s.bench }},
		}},
	{key: "segments_stored", title: "segments stored (bodycam_segments_stored_total)", unit: "segments", scale: 1, get: func(s sample) float64 { return s.segments }, plot: "segments.svg"},
	{key: "segments_per_min", title: "segments stored per minute", unit: "segments / min", scale: 1, get: func(s sample) float64 { return s.segRate }, checked: true, plot: "segment-rate.svg"},
	{key: "publishers", title: "recorders publishing (bodycam_ingest_publishers)", unit: "recorders", scale: 1, get: func(s sample) float64 { return s.publishers }},
	{key: "viewers_connected", title: "viewing sessions connected (server)", unit: "sessions", scale: 1, get: func(s sample) float64 { return float64(s.connected) }},
	{key: "viewer_fps_min", title: "lowest viewer's frames/s", unit: "frames/s", scale: 1, get: func(s sample) float64 { lo, _ := fpsStats(s.fps); return lo }},
	{key: "viewer_fps_mean", title: "mean viewer frames/s", unit: "frames/s", scale: 1, get: func(s sample) float64 { _, m := fpsStats(s.fps); return m }},
	{key: "viewer_audio_pps_min", title: "lowest viewer's audio packets/s", unit: "packets/s", scale: 1, get: func(s sample) float64 { lo, _ := fpsStats(s.audio); return lo }},
	{key: "catalog_bytes", title: "catalog on disk", unit: "MiB", scale: 1 << 20, get: func(s sample) float64 { return s.catalog }},
	{key: "machine_cpu_pct", title: "machine CPU", unit: "% of one core", scale: 1, get: func(s sample) float64 { return s.machine }},
	{key: "minio_cpu_pct", title: "MinIO CPU", unit: "% of one core", scale: 1, get: func(s sample) float64 { return s.minio }},
	{key: "bench_cpu_pct", title: "bench CPU (recorders and viewers)", unit: "% of one core", scale: 1, get: func(s sample) float64 { return s.bench }},
	{key: "load1", title: "load average (1 min)", unit: "", scale: 1, get: func(s sample) float64 { return s.load1 }},
}

// check is one pass/fail verdict of the summary.
type check struct {
	name, detail string
	ok           bool
}

// steady returns the samples after the warm-up.
func (b *bench) steady() []sample {
	var out []sample
	for _, s := range b.samples {
		if s.at > b.o.warmup {
			out = append(out, s)
		}
	}
	return out
}

// flatOfMetric is a metric's flatness over the steady samples.
func (b *bench) flatOfMetric(m metric) flatness {
	var t, v []float64
	for _, s := range b.steady() {
		if x := m.get(s); !math.IsNaN(x) {
			t, v = append(t, s.at.Seconds()), append(v, x)
		}
	}
	return flatOf(t, v)
}

// checks judges the soak.
func (b *bench) checks() []check {
	o, e := b.o, b.end
	var out []check
	add := func(name string, ok bool, detail string, args ...any) {
		out = append(out, check{name: name, ok: ok, detail: fmt.Sprintf(detail, args...)})
	}
	want := int(o.duration / o.sample)
	add("the server ran throughout", len(b.samples) == want && !b.srv.Exited(), "%d of %d samples taken", len(b.samples), want)

	short := 0
	for _, s := range b.samples {
		if s.publishers != float64(o.recorders) {
			short++
		}
	}
	add("every recorder published throughout", e.reconnects == 0 && short == 0,
		"%d reconnects; %d samples with fewer than %d publishers%s", e.reconnects, short, o.recorders, b.lastRecorderError())

	lowest, who, when := math.Inf(1), "", time.Duration(0)
	badSamples, noAudio, notConnected := 0, 0, 0
	for _, s := range b.samples {
		bad := false
		for i := range s.fps {
			if s.fps[i] < lowest {
				lowest, who, when = s.fps[i], fmt.Sprintf("viewer %d (%s)", i+1, b.watched[i]), s.at
			}
			if s.fps[i] < o.minFPS {
				bad = true
			}
			if s.audio[i] <= 0 {
				bad = true
				noAudio++
			}
		}
		if s.connected != o.viewers {
			notConnected++
		}
		if bad {
			badSamples++
		}
	}
	if o.viewers > 0 {
		add("every viewer kept receiving", badSamples == 0 && notConnected == 0,
			"at least %.0f frames/s and some audio at every sample: %d samples short (%d viewer-samples without audio); lowest %.1f frames/s, %s at %v; %d samples with fewer than %d sessions connected",
			o.minFPS, badSamples, noAudio, lowest, who, when, notConnected, o.viewers)
	}

	for _, m := range metrics {
		if !m.checked {
			continue
		}
		f := b.flatOfMetric(m)
		ok, why := f.flat(o.by, o.tol)
		add("flat: "+m.title, ok, "%d samples; mean %s %s, drift %s, range %s%s", f.n, g(f.mean/m.scale), m.unit, pct(f.drift), pct(f.rng), joinNonEmpty("", prefix("; ", why)))
	}

	if b.interrupted {
		return out // the end was not reached: nothing to judge there
	}
	if o.viewers > 0 {
		add("every viewer hung up cleanly", e.hangupErrors == 0 && e.viewersLeft == 0,
			"%d WHEP DELETEs failed; %d sessions still listed afterwards", e.hangupErrors, e.viewersLeft)
	}
	var ended []string // stored, but not as a recording that ended normally
	for _, r := range e.recordings {
		if r.State != "live" && r.State != "complete" {
			ended = append(ended, fmt.Sprintf("%s (%s): %s, %s", r.ID, r.DeviceID, r.State, r.EndReason))
		}
	}
	add("every recording stored", e.drained && len(ended) == 0, "%d recordings with a signed manifest and the spool empty after %v%s",
		len(e.recordings)-len(e.notStored), e.drainTime.Round(time.Millisecond), joinNonEmpty("", prefix("; not stored: ", strings.Join(first(e.notStored, 5), ", ")),
			prefix("; spool files left: ", nonzero(e.spoolLeft)), prefix("; not complete: ", strings.Join(first(ended, 5), ", "))))
	add("every recording verifies", len(e.recordings) > 0 && e.verified == len(e.recordings),
		"%d of %d verified (POST /api/v1/recordings/{id}/verify as an auditor)%s", e.verified, len(e.recordings), prefix("; ", strings.Join(first(e.verifyFailed, 5), "; ")))
	var split []string
	for _, r := range b.recs {
		if n := e.perDevice[r.id]; n != 1 {
			split = append(split, fmt.Sprintf("%s: %d", r.id, n))
		}
	}
	add("one recording per recorder", len(split) == 0, "%d recorders, %d recordings%s", o.recorders, len(e.recordings), prefix("; ", strings.Join(first(split, 5), ", ")))

	// Verification checks what was stored; this checks that nothing is
	// missing between the segments: a recording's media segments last as
	// long as the recording (its end less its start, server clock).
	holes := fmt.Sprintf("%.0f s of media in recordings spanning %.0f s; the most one recording lacks: %.2f s (%s)",
		e.mediaSeconds, e.spanSeconds, e.worstMissing, e.worstRecording)
	if o.loss == 0 {
		add("every recording's media covers its span (within 1 s)", e.spanSeconds > 0 && e.worstMissing <= 1, "%s", holes)
	}

	gaps := 0
	for _, n := range e.gaps {
		gaps += n
	}
	var mgaps float64
	for _, n := range e.metricGaps {
		mgaps += n
	}
	detail := fmt.Sprintf("verified gaps %s; server: gaps %s, lost packets %.0f%s", kinds(e.gaps), kindsF(e.metricGaps), e.lost,
		prefix("; e.g. ", strings.Join(e.gapNotes, "; ")))
	if o.loss == 0 {
		add("no gaps, no lost packets", gaps == 0 && mgaps == 0 && e.lost == 0, "%s", detail)
	} else {
		// Dropped packets are loss gaps, and undecodable ones where the
		// decoder must wait for a keyframe. A discontinuity is not what a
		// lost packet is (ingest's own lossy test says so), also one of no
		// duration: reported apart as instantDiscontinuity, but a failure.
		var other []string
		for k := range e.gaps {
			if k != "loss" && k != "undecodable" {
				other = append(other, k)
			}
		}
		for k := range e.metricGaps {
			if k != "loss" && k != "undecodable" {
				other = append(other, k)
			}
		}
		add("only the gaps -loss causes (loss, undecodable)", len(other) == 0, "%s", detail)
	}
	return out
}

func (b *bench) lastRecorderError() string {
	for _, r := range b.recs {
		if v, ok := r.lastErr.Load().(string); ok {
			return fmt.Sprintf("; e.g. %s: %s", r.id, v)
		}
	}
	return ""
}

func prefix(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func nonzero(x float64) string {
	if x == 0 {
		return ""
	}
	return g(x)
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

func kinds(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(out, ", ")
}

func kindsF(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(out, ", ")
}

// g formats a number with sensible precision.
func g(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "—"
	case math.Abs(x) >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case math.Abs(x) >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}

// write writes samples.csv, viewers.csv, the plots and summary.md into
// -out, and the summary to stdout.
func (b *bench) write(checks []check) error {
	if err := os.MkdirAll(b.o.out, 0o755); err != nil {
		return err
	}
	if err := b.writeCSV(); err != nil {
		return err
	}
	var plots []string
	for _, m := range metrics {
		if m.plot == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(b.o.out, m.plot), []byte(b.plotOf(m).svg()), 0o644); err != nil {
			return err
		}
		plots = append(plots, fmt.Sprintf("![%s](%s)", m.title, m.plot))
	}
	if b.o.viewers > 0 {
		if err := os.WriteFile(filepath.Join(b.o.out, "viewers.svg"), []byte(b.viewerPlot().svg()), 0o644); err != nil {
			return err
		}
		plots = append(plots, "![frames per second per viewer](viewers.svg)")
	}
	sum := b.summary(checks, plots)
	fmt.Print(sum)
	return os.WriteFile(filepath.Join(b.o.out, "summary.md"), []byte(sum), 0o644)
}

func (b *bench) writeCSV() error {
	f, err := os.Create(filepath.Join(b.o.out, "samples.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{"t_s", "interval_s", "warmup"}
	for _, m := range metrics {
		head = append(head, m.key)
	}
	w.Write(head)
	num := func(x float64) string {
		if math.IsNaN(x) {
			return ""
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	for _, s := range b.samples {
		row := []string{num(s.at.Seconds()), num(math.Round(s.interval*1000) / 1000), strconv.FormatBool(s.at <= b.o.warmup)}
		for _, m := range metrics {
			row = append(row, num(math.Round(m.get(s)*1000)/1000))
		}
		w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Frames (and audio packets) per second of every viewer at every sample.
	f, err = os.Create(filepath.Join(b.o.out, "viewers.csv"))
	if err != nil {
		return err
	}
	w = csv.NewWriter(f)
	head = []string{"t_s"}
	for i := range b.viewers {
		head = append(head, fmt.Sprintf("viewer%02d_%s_fps", i+1, b.watched[i]))
	}
	for i := range b.viewers {
		head = append(head, fmt.Sprintf("viewer%02d_%s_audio_pps", i+1, b.watched[i]))
	}
	w.Write(head)
	for _, s := range b.samples {
		row := []string{num(s.at.Seconds())}
		for _, x := range append(append([]float64{}, s.fps...), s.audio...) {
			row = append(row, num(math.Round(x*100)/100))
		}
		w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var colors = []string{"#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"}

// plotOf is a metric's plot: its line (and those drawn with it), with the
// fit and band when it is checked.
func (b *bench) plotOf(m metric) plot {
	p := plot{title: m.title, unit: m.unit, warmup: b.o.warmup.Seconds(), tol: b.o.tol}
	for i, mm := range append([]metric{m}, m.with...) {
		s := series{name: mm.title, color: colors[i%len(colors)]}
		for _, x := range b.samples {
			s.t, s.v = append(s.t, x.at.Seconds()), append(s.v, mm.get(x)/mm.scale)
		}
		p.series = append(p.series, s)
	}
	if m.checked {
		f := b.flatOfMetric(m)
		st := b.steady()
		if f.n >= 2 {
			p.fit, p.mean = true, f.mean/m.scale
			p.t0, p.t1 = st[0].at.Seconds(), st[len(st)-1].at.Seconds()
			// The line through the mean at the mean time, with the fit's slope.
			var tm float64
			for _, s := range st {
				tm += s.at.Seconds()
			}
			tm /= float64(len(st))
			p.b = f.slope / m.scale
			p.a = p.mean - p.b*tm
		}
		ok, _ := f.flat(b.o.by, b.o.tol)
		verdict := "flat"
		if !ok {
			verdict = "NOT flat"
		}
		p.note = fmt.Sprintf("after the warm-up: mean %s %s, drift %s, range %s; %s within ±%s (by %s)",
			g(f.mean/m.scale), m.unit, pct(f.drift), pct(f.rng), verdict, tolStr(b.o.tol), b.o.by)
	}
	return p
}

// viewerPlot shows every viewer's frames per second (faint), the lowest
// and the mean, and the -min-fps line.
func (b *bench) viewerPlot() plot {
	p := plot{title: "frames per second received, per viewer", unit: "frames/s", warmup: b.o.warmup.Seconds(),
		note: fmt.Sprintf("%d viewers of %d recorders; a viewer under %.0f frames/s in an interval has stopped receiving", b.o.viewers, b.o.viewed, b.o.minFPS)}
	lo, mean := series{name: "lowest viewer", color: "#d62728"}, series{name: "mean", color: "#1f77b4"}
	floor := series{name: fmt.Sprintf("-min-fps %.0f", b.o.minFPS), color: "#888888", plain: true}
	for i := range b.viewers {
		s := series{color: "#1f77b4", thin: true}
		for _, x := range b.samples {
			s.t, s.v = append(s.t, x.at.Seconds()), append(s.v, x.fps[i])
		}
		p.series = append(p.series, s)
	}
	for _, x := range b.samples {
		l, m := fpsStats(x.fps)
		lo.t, lo.v = append(lo.t, x.at.Seconds()), append(lo.v, l)
		mean.t, mean.v = append(mean.t, x.at.Seconds()), append(mean.v, m)
	}
	if len(b.samples) > 0 {
		floor.t = []float64{0, b.samples[len(b.samples)-1].at.Seconds()}
		floor.v = []float64{b.o.minFPS, b.o.minFPS}
	}
	p.series = append(p.series, mean, lo, floor)
	return p
}

// summary is summary.md.
func (b *bench) summary(checks []check, plots []string) string {
	o, e := b.o, b.end
	var w strings.Builder
	failed := 0
	for _, c := range checks {
		if !c.ok {
			failed++
		}
	}
	verdict := "**PASSED**: every check below holds."
	if failed > 0 {
		verdict = fmt.Sprintf("**FAILED**: %d of %d checks.", failed, len(checks))
	}
	if b.interrupted {
		verdict = fmt.Sprintf("**INTERRUPTED** after %d samples: what was sampled is below; the end (recordings stored, verified, gaps) was not reached.", len(b.samples))
	}
	fmt.Fprintf(&w, "# Soak, %s\n\n%s\n\n", b.started.UTC().Format("2006-01-02 15:04 UTC"), verdict)
	fmt.Fprintf(&w, "```\n%s\n```\n\n", strings.Join(o.args, " "))
	var machine, lo, hi float64
	lo = math.Inf(1)
	for _, s := range b.samples {
		machine += s.machine
		lo, hi = math.Min(lo, s.load1), math.Max(hi, s.load1)
	}
	if len(b.samples) > 0 {
		machine /= float64(len(b.samples))
	}
	fmt.Fprintf(&w, "- set-up: `bodycam serve` (%s) with a MinIO store and a %s catalog, `--segment-duration %v`; %d recorders (simulate.PublishClip, "+
		"%s %d fps H.264 High, B-frames %d, + AAC, %.2f Mbit/s, over RTSP/TCP, starts spread over %v%s); %d WHEP viewers (internal/whep, pion) "+
		"of %d of the recorders (viewer i watches recorder ((i − 1) mod %d) + 1), as one supervisor\n",
		o.bin, o.database, o.segment, o.recorders, o.size, o.fps, o.bframes, b.clipMbps, o.stagger, prefix(", dropping a share of packets: ", nonzero(o.loss)),
		o.viewers, o.viewed, o.viewed)
	fmt.Fprintf(&w, "- soak: %v from the moment every recorder was live and every viewer had a picture, a sample every %v, the first %v warm-up\n",
		o.duration, o.sample, o.warmup)
	fmt.Fprintf(&w, "- machine: %d CPUs; machine CPU %.0f %% of %d %% on average over the samples; load average %.2f at the start, %.2f–%.2f while sampling\n",
		runtime.NumCPU(), machine, 100*runtime.NumCPU(), b.loadStart, lo, hi)
	fmt.Fprintf(&w, "- flat: a least-squares line through the samples after the warm-up; drift = its slope × (last − first sample time) / mean; range = max / min − 1; judged by %s, within ±%s\n\n",
		o.by, tolStr(o.tol))

	fmt.Fprintf(&w, "## Checks\n\n| check | result | detail |\n|---|---|---|\n")
	for _, c := range checks {
		r := "ok"
		if !c.ok {
			r = "**FAILED**"
		}
		fmt.Fprintf(&w, "| %s | %s | %s |\n", c.name, r, strings.ReplaceAll(c.detail, "|", "\\|"))
	}
	st := b.steady()
	from, to := time.Duration(0), time.Duration(0)
	if len(st) > 0 {
		from, to = st[0].at, st[len(st)-1].at
	}
	fmt.Fprintf(&w, "\n## After the warm-up (%d samples, %v to %v)\n\n| metric | unit | mean | min | max | range | drift | |\n|---|---|---|---|---|---|---|---|\n", len(st), from, to)
	for _, m := range metrics {
		f := b.flatOfMetric(m)
		mark := ""
		if m.checked {
			if ok, _ := f.flat(o.by, o.tol); ok {
				mark = "flat"
			} else {
				mark = "**NOT flat**"
			}
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", m.title, m.unit, g(f.mean/m.scale), g(f.min/m.scale), g(f.max/m.scale), pct(f.rng), pct(f.drift), mark)
	}
	fmt.Fprintf(&w, "\n## At the end\n\n")
	fmt.Fprintf(&w, "- recordings: %d; stored %v after the recorders stopped; verified in %v\n", len(e.recordings), e.drainTime.Round(time.Millisecond), e.verifyTime.Round(time.Millisecond))
	if e.spanSeconds > 0 {
		fmt.Fprintf(&w, "- footage: %d media segments, %.0f s of media in recordings spanning %.0f s (%.3f %%; the recorders published %.0f s); the most a recording's span exceeds its media: %.2f s (%s)\n",
			e.segments, e.mediaSeconds, e.spanSeconds, e.mediaSeconds/e.spanSeconds*100, e.published, e.worstMissing, e.worstRecording)
	}
	fmt.Fprintf(&w, "- gaps: verified %s; server counters: gaps %s, lost packets %.0f\n", kinds(e.gaps), kindsF(e.metricGaps), e.lost)
	if len(e.counters) > 0 {
		fmt.Fprintf(&w, "- other counters:")
		for _, k := range sortedKeys(e.counters) {
			fmt.Fprintf(&w, " `%s` %.0f;", k, e.counters[k])
		}
		fmt.Fprintln(&w)
	}
	fmt.Fprintf(&w, "\n## Events while sampling\n\n")
	if len(b.events) == 0 {
		fmt.Fprintf(&w, "None.\n")
	}
	for _, ev := range first(b.events, 50) {
		fmt.Fprintf(&w, "- %s\n", ev)
	}
	fmt.Fprintf(&w, "\n## Plots\n\nEvery sample is in `samples.csv`, every viewer's frames and audio packets per second in `viewers.csv`.\n\n")
	for _, p := range plots {
		fmt.Fprintf(&w, "%s\n\n", p)
	}
	return w.String()
}
