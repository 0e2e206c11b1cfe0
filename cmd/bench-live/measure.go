package main

// Measuring helpers of this benchmark: metric deltas, histograms and their
// quantiles, UDP losses. Process and machine CPU, memory and scraping are in
// internal/benchutil.

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// delta is after − before for every series: for counters and histograms,
// what happened in between. (Meaningless for gauges; read those from a
// single scrape.)
func delta(after, before map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(after))
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// histogram is a Prometheus histogram's cumulative buckets, by upper bound.
type histogram []bucket

type bucket struct{ le, n float64 }

// hist reads histogram name from a scrape, summing the series whose labels
// (besides le) match want: a histogram split by a label (say kind) is read
// whole with want nil, or one part of it with want {"kind": "video"}.
func hist(m map[string]float64, name string, want map[string]string) histogram {
	byLe := map[float64]float64{}
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, name+"_bucket{")
		if !ok {
			continue
		}
		labels := parseLabels(strings.TrimSuffix(rest, "}"))
		le, err := strconv.ParseFloat(labels["le"], 64)
		if err != nil {
			continue
		}
		match := true
		for wk, wv := range want {
			match = match && labels[wk] == wv
		}
		if match {
			byLe[le] += v
		}
	}
	var h histogram
	for le, n := range byLe {
		h = append(h, bucket{le, n})
	}
	sort.Slice(h, func(i, j int) bool { return h[i].le < h[j].le })
	return h
}

// parseLabels reads `a="x",b="y"` (label values here hold no quotes or
// commas).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// hasLabel reports whether any series of histogram name has label.
func hasLabel(m map[string]float64, name, label string) bool {
	for k := range m {
		if strings.HasPrefix(k, name+"_bucket{") && strings.Contains(k, label+`="`) {
			return true
		}
	}
	return false
}

func (h histogram) count() float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].n // the +Inf bucket
}

// within is the share of observations at most le, exact when le is a
// bucket bound; NaN if there are none.
func (h histogram) within(le float64) float64 {
	for _, b := range h {
		if b.le == le {
			return b.n / h.count()
		}
	}
	return math.NaN()
}

// quant is a quantile read from a histogram. In the first bucket it is
// only known to be at most that bucket's bound, v (interpolating from 0
// would make up a value); beyond the last finite bucket, to exceed its.
type quant struct {
	v           float64 // seconds; NaN if the histogram is empty
	under, over bool
}

// quantile estimates a quantile by linear interpolation inside the bucket
// that holds it, as bench-ingest's does, except that it says when the
// quantile lies in the first bucket or beyond the last finite one
// (bench-ingest's returns half the first bound, or the last bound, as if
// it were the value).
func (h histogram) quantile(q float64) quant {
	if h.count() == 0 {
		return quant{v: math.NaN()}
	}
	target := q * h.count()
	prevLe, prevN := 0.0, 0.0
	for _, b := range h {
		if b.n >= target {
			switch {
			case math.IsInf(b.le, 1):
				return quant{v: prevLe, over: true}
			case prevN == 0 && prevLe == 0:
				return quant{v: b.le, under: true}
			}
			return quant{v: prevLe + (b.le-prevLe)*(target-prevN)/math.Max(b.n-prevN, 1)}
		}
		prevLe, prevN = b.le, b.n
	}
	return quant{v: prevLe, over: true}
}

// udpErrors reads the machine's count of UDP datagrams dropped on receipt
// because a socket's receive buffer was full (RcvbufErrors in
// /proc/net/snmp). On loopback that is where "network" loss happens: a
// receiver (here, a viewer) that did not read in time.
func udpErrors() float64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, "Udp: ")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		for i, v := range strings.Fields(rest) {
			if i < len(names) && names[i] == "RcvbufErrors" {
				n, _ := strconv.ParseFloat(v, 64)
				return n
			}
		}
	}
	return 0
}

// udpSocketDrops sums the receive-buffer drops of the UDP sockets a
// process holds (the drops column of /proc/net/udp{,6}, matched to the
// process's socket inodes), so that loss can be told apart: the viewers'
// sockets (they did not read in time) or the server's (RTCP from viewers).
// Counts of sockets closed since are lost, so take both ends of a window
// while the same sockets are open.
func udpSocketDrops(pid int) float64 {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var drops float64
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) >= 13 && inodes[f[9]] {
				n, _ := strconv.ParseFloat(f[12], 64)
				drops += n
			}
		}
	}
	return drops
}
