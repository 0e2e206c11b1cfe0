package main

// Generic measuring helpers. cpuSeconds, rss and scrape are copies of
// cmd/bench-ingest's; machineBusy and the histogram quantile are
// bench-ingest's, extended (see each). They belong in a shared internal
// package (e.g. internal/benchutil) once both benchmarks settle.

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
)

// cpuSeconds reads a process's user+system CPU time.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b)[strings.LastIndex(string(b), ")")+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// rss reads a process's resident set size in bytes.
func rss(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// scrape reads a Prometheus text page into name{labels} -> value.
// (bench-ingest's uses http.Get, without a timeout.)
func scrape(url string) (map[string]float64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndex(line, " ")
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

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

// machineBusy reads the machine's busy and total CPU ticks and its number
// of CPUs (so that busy/total × cpus × 100 is in % of one core, like the
// per-process numbers). Unlike bench-ingest's, it leaves out guest time,
// which the kernel already counts in user time.
func machineBusy() (busy, total float64, cpus int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 1, 1
	}
	lines := strings.Split(string(b), "\n")
	for _, l := range lines[1:] {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			cpus++
		}
	}
	f := strings.Fields(lines[0])[1:]
	if len(f) > 8 {
		f = f[:8] // guest and guest_nice are already counted in user and nice
	}
	var idle float64
	for i, v := range f {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i == 3 || i == 4 { // idle, iowait
			idle += x
		}
	}
	return total - idle, total, max(cpus, 1)
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
