package main

import (
	"fmt"
	"math"
)

// The flatness of a metric over the soak after its warm-up, two ways:
//
//   - drift: fit a line y = a + b·t to the samples by least squares; drift
//     is what the line rises or falls over the samples' span, against the
//     samples' mean: b·(t_last − t_first) / mean. A leak is a trend, and
//     the fit sees it through the noise of single samples.
//   - range: max / min − 1 over the samples. It catches a step or a burst
//     that a fit averages away, but also one noisy sample (a busy
//     neighbour on a shared machine shows in CPU).
//
// A metric is flat within tol when |drift| ≤ tol (-flat-by drift, the
// default), range ≤ tol (-flat-by range), or both (-flat-by both).

// flatness is one metric's statistics over the steady samples.
type flatness struct {
	n              int
	mean, min, max float64
	slope          float64 // per second
	drift          float64 // slope × span / mean
	rng            float64 // max/min − 1
}

// flatOf computes the statistics of values at times t (seconds).
func flatOf(t, v []float64) flatness {
	f := flatness{n: len(v), min: math.Inf(1), max: math.Inf(-1)}
	if len(v) == 0 {
		return f
	}
	var tm float64
	for i := range v {
		f.mean += v[i]
		tm += t[i]
		f.min, f.max = min(f.min, v[i]), max(f.max, v[i])
	}
	f.mean /= float64(len(v))
	tm /= float64(len(v))
	var sxy, sxx float64
	for i := range v {
		sxy += (t[i] - tm) * (v[i] - f.mean)
		sxx += (t[i] - tm) * (t[i] - tm)
	}
	if sxx > 0 {
		f.slope = sxy / sxx
	}
	span := t[len(t)-1] - t[0]
	switch {
	case f.mean != 0:
		f.drift = f.slope * span / f.mean
	case f.slope != 0:
		f.drift = math.Inf(1)
	}
	switch {
	case f.min > 0:
		f.rng = f.max/f.min - 1
	case f.max == f.min: // all zero
	default:
		f.rng = math.Inf(1)
	}
	return f
}

// flatBy is how -flat-by judges flatness.
type flatBy string

const (
	byDrift flatBy = "drift"
	byRange flatBy = "range"
	byBoth  flatBy = "both"
)

func (b flatBy) valid() bool { return b == byDrift || b == byRange || b == byBoth }

// minSteady is the fewest samples after the warm-up a verdict needs.
const minSteady = 3

// flat says whether f is flat within tol as by judges, and why not.
func (f flatness) flat(by flatBy, tol float64) (bool, string) {
	if f.n < minSteady {
		return false, fmt.Sprintf("%d samples after the warm-up, fewer than %d", f.n, minSteady)
	}
	driftOK, rangeOK := math.Abs(f.drift) <= tol, f.rng <= tol
	switch {
	case (by == byDrift || by == byBoth) && !driftOK:
		return false, fmt.Sprintf("drift %s beyond ±%s", pct(f.drift), tolStr(tol))
	case (by == byRange || by == byBoth) && !rangeOK:
		return false, fmt.Sprintf("range %s beyond %s", pct(f.rng), tolStr(tol))
	}
	return true, ""
}

// pct formats a share as a signed percentage.
func pct(x float64) string {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return "∞"
	}
	return fmt.Sprintf("%+.1f %%", x*100)
}

// tolStr formats a tolerance (unsigned).
func tolStr(x float64) string { return fmt.Sprintf("%.3g %%", x*100) }
