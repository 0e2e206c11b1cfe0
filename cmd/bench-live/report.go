package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bodycam/bodycam/internal/benchutil"
)

// Targets of the issues: 4 (the relay) and 13 (its performance).
const (
	targetViewersPerCore = 100
	targetDelayP50       = 0.050 // seconds
	targetFirstFrame     = time.Second
	targetCPUPerViewer   = 0.35    // % of a core (issue 13)
	targetRSSPerViewer   = 1 << 20 // bytes (issue 13)
	targetFirstFrameP99  = 300 * time.Millisecond
)

// report prints the results as Markdown on stdout: the table, a line per N
// against the targets, how the numbers are computed, and per-phase details.
// Phases 0 and 1 are the references; results may stop short after an error.
func report(c config, rs []result) {
	if len(rs) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Printf(format, args...) }
	cpus := rs[0].cpus
	p("\n## Live relay: viewers of one 720p30 ~4 Mbit/s H.264 + AAC stream, %s\n\n", bframesLabel(c.bframes))
	p("%s, %d CPUs; -warmup %v -measure %v (0 and 1 viewer: -baseline %v); viewers dialled %d at a time.\n\n",
		time.Now().Format("2006-01-02 15:04"), cpus, c.warmup, c.measure, c.baseline, c.parallel)
	p("| viewers | server CPU (%% of one core) | CPU per viewer | viewers per core | server RSS (peak / end) | RSS per viewer (peak / end) | added latency p50 | p99 | first keyframe p50 / p99 / max (client) | received per viewer (mean; min fps) | dropped units | UDP lost on receipt (viewers / server) | bench (viewers) CPU | simulator CPU | machine CPU (of %d%%) | rest of machine |\n",
		cpus*100)
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var ref *result // the 1-viewer phase
	if len(rs) > 1 {
		ref = &rs[1]
	}
	for i, r := range rs {
		perViewer, perCore, rssViewer := "—", "—", "—"
		if r.viewers > 1 && ref != nil {
			peak, end := rssPerViewer(r, *ref)
			rssViewer = fmt.Sprintf("%s / %s", mib(peak), mib(end))
		}
		switch {
		case i == 1:
			perViewer = fmt.Sprintf("(first viewer and shared transcoder: %+.1f over 0)", r.serverCPU-rs[0].serverCPU)
		case r.viewers > 1 && ref != nil:
			v := cpuPerViewer(r, *ref)
			perViewer = fmt.Sprintf("%.2f", v)
			perCore = "n/a (noise)"
			if v > 0 {
				perCore = fmt.Sprintf("%.0f", 100/v)
			}
		}
		latency50, latency99, first, received, dropped := "—", "—", "—", "—", "—"
		if r.viewers > 0 {
			latency50, latency99 = r.video.p50.String(), r.video.p99.String()
			if r.byKind {
				latency50 += " (video)"
			}
			first = fmt.Sprintf("%s / %s / %s", dur(r.firstP50), dur(r.firstP99), dur(r.firstMax))
			if r.noPicture > 0 {
				first += fmt.Sprintf(" (**%d without a frame**)", r.noPicture)
			}
			received = fmt.Sprintf("%.2f Mbit/s, %.1f fps; min %.1f", r.mbps, r.fpsMean, r.fpsMin)
			if r.slow > 0 {
				received += fmt.Sprintf(" (**%d under %d fps**)", r.slow, slowFPS)
			}
			dropped = fmt.Sprintf("%.0f", r.dropped)
		}
		if r.droppedTranscoder > 0 {
			dropped += fmt.Sprintf(" (+%.0f by the transcoder)", r.droppedTranscoder)
		}
		p("| %d | %.1f | %s | %s | %.0f / %.0f MiB | %s | %s | %s | %s | %s | %s | %.0f / %.0f | %.1f | %.1f | %.0f%% | %.1f |\n",
			r.viewers, r.serverCPU, perViewer, perCore, r.rss/(1<<20), r.rssEnd/(1<<20), rssViewer, latency50, latency99, first, received, dropped,
			r.udpViewers, r.udpServer, r.benchCPU, r.simCPU, r.machineCPU, r.otherCPU)
	}

	p("\nAgainst the targets (at least %d viewers per core, added latency p50 under %.0f ms, first frame under %v for every viewer):\n\n",
		targetViewersPerCore, targetDelayP50*1000, targetFirstFrame)
	for _, r := range rs {
		if r.viewers < 2 || ref == nil {
			continue
		}
		v := cpuPerViewer(r, *ref)
		perCore := "n/a"
		if v > 0 {
			perCore = fmt.Sprintf("%.0f", 100/v)
		}
		caveat := ""
		if r.slow > 0 || r.noPicture > 0 || r.dropped > 0 {
			caveat = " (not the cost of full streams: the viewers did not get all of it)"
		}
		what := "of every unit sent (video and audio: the server's histogram has no kind label)"
		if r.byKind {
			what = "of video units"
		}
		p("- **%d viewers**: %s viewers per core (%.2f %% of a core each)%s: %s; added latency p50 %s %s (%.1f %% within 50 ms): %s; first frame max %s (p50 %s%s): %s; every viewer at %d fps or more: %s.\n",
			r.viewers, perCore, v, caveat, met(v > 0 && 100/v >= targetViewersPerCore),
			what, r.video.p50, 100*r.video.within50, met(r.video.within50 > 0.5),
			dur(r.firstMax), dur(r.firstP50), noneSuffix(r.noPicture), met(r.noPicture == 0 && r.firstMax < targetFirstFrame),
			slowFPS, yes(r.slow == 0))
		peak, _ := rssPerViewer(r, *ref)
		p("  Issue 13: CPU per viewer %.2f %% (at most %.2f): %s; RSS per viewer %s at the peak (at most %s): %s; first keyframe p99 %s (at most %s): %s.\n",
			v, targetCPUPerViewer, met(v <= targetCPUPerViewer), mib(peak), mib(targetRSSPerViewer), met(peak <= targetRSSPerViewer),
			dur(r.firstP99), dur(targetFirstFrameP99), met(r.noPicture == 0 && r.firstP99 > 0 && r.firstP99 <= targetFirstFrameP99))
	}

	p("\nHow the numbers are computed:\n\n")
	p("- **server CPU**: user+system time of `bodycam serve` (/proc/<pid>/stat) over the window, in %% of one core. " +
		"On loopback it includes the kernel's delivery of each datagram into the viewer's socket, which a NIC would spare. " +
		"0 viewers is the recording alone; the first viewer also starts what all viewers share (the AAC→Opus transcoder, " +
		"and with B-frames the video transcoder).\n")
	p("- **CPU per viewer** = (server CPU with N − server CPU with 1) / (N − 1): the marginal cost of a viewer, the shared " +
		"transcoders and the recording left out. **viewers per core** = 100 / CPU per viewer. With few viewers it is within " +
		"the noise of the machine.\n")
	p("- **added latency**: the server's `bodycam_live_send_delay_seconds`, from ingest receiving a unit to the relay " +
		"sending it to a viewer, each unit to each viewer (the kept GOP sent to a new viewer is not counted), window " +
		"deltas. Video units only if the histogram has a kind label; otherwise video and audio together, and audio " +
		"(about 50 Opus packets a second against 30 video frames) is most of it. Transcoded units include the " +
		"transcoder's delay. Quantiles are interpolated within the buckets (0.5 ms, …, 20, 50, 100 ms, …, 1 s; \"≤\": " +
		"in the first bucket, \">\": beyond the last); the target is checked exactly against the 50 ms bucket.\n")
	p("- **server RSS**: the server's VmRSS, the highest sampled each second in the window and at its end; **RSS per " +
		"viewer** = (RSS with N − RSS with 1) / (N − 1), of the peaks and of the ends.\n")
	p("- **first keyframe (client)**: per viewer, from the WHEP answer to the first complete keyframe it received " +
		"(ICE + DTLS on loopback, then the kept GOP); p50 and p99 are nearest-rank over the N viewers.\n")
	p("- **received per viewer**: complete H.264 frames and their bytes each viewer reassembled in the window " +
		"(a frame with a lost packet does not count).\n")
	p("- **dropped units**: `bodycam_live_dropped_units_total{who=\"viewer\"}` in the window: units the relay did not " +
		"hand to a viewer whose queue was full (and its video up to the next keyframe).\n")
	p("- **UDP lost on receipt**: datagrams the kernel dropped in the window because a socket's receive buffer was " +
		"full, on this process's sockets (the viewers) and on the server's (/proc/net/udp drops of each process's " +
		"sockets; the details give the machine-wide RcvbufErrors). On loopback this is all the network loss there is: " +
		"a viewer that did not read in time. Its NACKs then make the relay retransmit, which the server's CPU includes.\n")
	p("- **bench (viewers) CPU**: this process, i.e. the viewers' receiving, decrypting and reassembling; **rest of " +
		"machine** = machine − server − simulator − bench: other work on the machine (noise if not near 0).\n")

	p("\nDetails:\n\n")
	for _, r := range rs {
		p("- %d viewers (%.0f s window):", r.viewers, r.window)
		if r.viewers > 0 {
			p(" sent video %q, audio %q; connected %d/%d; video units sent per viewer %.1f/s;", r.sentVideo, r.sentAudio,
				r.connected, r.viewers, r.videoUnitsPerView)
			p(" client first frame under 100 ms / 0.1-0.5 s / 0.5-1 s / later: %d / %d / %d / %d;",
				r.firstHist[0], r.firstHist[1], r.firstHist[2], r.firstHist[3])
			p(" client answer → ICE connected p50 %s p99 %s, → DTLS up p50 %s p99 %s;", dur(r.iceP50), dur(r.iceP99),
				dur(r.connP50), dur(r.connP99))
			p(" server first frame (connection → first keyframe sent) p50 %s p99 %s over %.0f;", r.serverFirstP50,
				r.serverFirstP99, r.serverFirstCount)
			p(" sends %.0f (%.0f/s), their added latency p50 %s p99 %s, %.1f %% within 50 ms;", r.sends, r.sends/r.window,
				r.delay.p50, r.delay.p99, 100*r.delay.within50)
			if r.byKind {
				p(" audio p50 %s p99 %s;", r.audio.p50, r.audio.p99)
			}
			p(" dropped units while dialling and warming up %.0f, in the window %.0f; sessions that dropped any %d/%d;",
				r.droppedBefore, r.dropped, r.viewersDropping, r.viewers)
		}
		p(" UDP datagrams the machine dropped for full receive buffers in the window %.0f (viewers %.0f, server %.0f);",
			r.udpDrops, r.udpViewers, r.udpServer)
		p(" live transcoders running %.0f; server goroutines %.0f", r.transcoders, r.goroutines)
		if r.viewers > 1 && ref != nil {
			p(" (%.1f per viewer over 1 viewer)", (r.goroutines-ref.goroutines)/float64(r.viewers-1))
		}
		if len(r.errors) > 0 {
			keys := make([]string, 0, len(r.errors))
			for k := range r.errors {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "bodycam_live_errors_total"), r.errors[k]))
			}
			p("; **relay errors** (from the first dial on): %s", strings.Join(parts, ", "))
		}
		if r.hangupErrors > 0 {
			p("; **%d hang-ups failed**", r.hangupErrors)
		}
		p(".\n")
	}
}

// rssPerViewer is the marginal resident memory of a viewer, at the peaks
// and at the ends of the windows, in bytes.
func rssPerViewer(r, ref result) (peak, end float64) {
	return (r.rss - ref.rss) / float64(r.viewers-1), (r.rssEnd - ref.rssEnd) / float64(r.viewers-1)
}

func mib(b float64) string { return fmt.Sprintf("%.2f MiB", b/(1<<20)) }

func cpuPerViewer(r, ref result) float64 {
	return (r.serverCPU - ref.serverCPU) / float64(r.viewers-1)
}

func bframesLabel(b int) string {
	switch {
	case b == 0:
		return "no B-frames (video passes through the relay)"
	case b < 0:
		return "with B-frames, the encoder's default (the relay transcodes video: a fixed cost shared by all viewers)"
	default:
		return fmt.Sprintf("at most %d consecutive B-frames (the relay transcodes video: a fixed cost shared by all viewers)", b)
	}
}

// dur formats a client-side time like benchutil.Millis; zero means none measured.
func dur(d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return benchutil.Millis(d.Seconds())
}

func noneSuffix(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d viewers without a frame", n)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
