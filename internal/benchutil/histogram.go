package benchutil

// Reading the server's Prometheus histograms: what a window added, one
// histogram (or one label's part of it), and its quantiles.

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Delta is after − before for every series: for counters and histograms,
// what happened in between. (Meaningless for gauges; read those from a
// single scrape.)
func Delta(after, before map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(after))
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// Histogram is a Prometheus histogram's cumulative buckets, by upper bound.
type Histogram []Bucket

type Bucket struct{ LE, N float64 }

// Hist reads histogram name from a scrape, summing the series whose labels
// (besides le) match want: a histogram split by a label (say kind) is read
// whole with want nil, or one part of it with want {"kind": "video"}.
func Hist(m map[string]float64, name string, want map[string]string) Histogram {
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
	var h Histogram
	for le, n := range byLe {
		h = append(h, Bucket{le, n})
	}
	sort.Slice(h, func(i, j int) bool { return h[i].LE < h[j].LE })
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

// HasLabel reports whether any series of histogram name has label.
func HasLabel(m map[string]float64, name, label string) bool {
	for k := range m {
		if strings.HasPrefix(k, name+"_bucket{") && strings.Contains(k, label+`="`) {
			return true
		}
	}
	return false
}

func (h Histogram) Count() float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].N // the +Inf bucket
}

// Within is the share of observations at most le, exact when le is a
// bucket bound; NaN if there are none.
func (h Histogram) Within(le float64) float64 {
	for _, b := range h {
		if b.LE == le {
			return b.N / h.Count()
		}
	}
	return math.NaN()
}

// Quant is a quantile read from a histogram. In the first bucket it is
// only known to be at most that bucket's bound, v (interpolating from 0
// would make up a value); beyond the last finite bucket, to exceed its.
type Quant struct {
	V           float64 // seconds; NaN if the histogram is empty
	Under, Over bool
}

// Quantile estimates a quantile by linear interpolation inside the bucket
// that holds it, and says when it lies in the first bucket (only known to
// be at most its bound: interpolating from 0 would make up a value) or
// beyond the last finite one.
func (h Histogram) Quantile(q float64) Quant {
	if h.Count() == 0 {
		return Quant{V: math.NaN()}
	}
	target := q * h.Count()
	prevLe, prevN := 0.0, 0.0
	for _, b := range h {
		if b.N >= target {
			switch {
			case math.IsInf(b.LE, 1):
				return Quant{V: prevLe, Over: true}
			case prevN == 0 && prevLe == 0:
				return Quant{V: b.LE, Under: true}
			}
			return Quant{V: prevLe + (b.LE-prevLe)*(target-prevN)/math.Max(b.N-prevN, 1)}
		}
		prevLe, prevN = b.LE, b.N
	}
	return Quant{V: prevLe, Over: true}
}

// String is the quantile in milliseconds, "≤ " or "> " when it is a bound.
func (q Quant) String() string {
	switch {
	case q.Over:
		return "> " + Millis(q.V)
	case q.Under:
		return "≤ " + Millis(q.V)
	}
	return Millis(q.V)
}

// Millis formats seconds as milliseconds: "n/a" for NaN, a decimal under
// 10 ms.
func Millis(s float64) string {
	switch {
	case math.IsNaN(s):
		return "n/a"
	case s < 0.010:
		return fmt.Sprintf("%.1f ms", s*1000)
	default:
		return fmt.Sprintf("%.0f ms", s*1000)
	}
}
