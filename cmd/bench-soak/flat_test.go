package main

import (
	"math"
	"strings"
	"testing"
)

func TestFlatness(t *testing.T) {
	times := func(n int) []float64 {
		t := make([]float64, n)
		for i := range t {
			t[i] = float64(i * 60)
		}
		return t
	}
	tests := []struct {
		name       string
		v          []float64
		by         flatBy
		flat       bool
		drift, rng float64
		why        string
	}{
		{name: "constant", v: []float64{100, 100, 100, 100}, by: byBoth, flat: true},
		// A leak: +2 per minute over 10 minutes on a mean of ~110 is a
		// rise of 18/109 = 16.5 %.
		{name: "leak", v: []float64{100, 102, 104, 106, 108, 110, 112, 114, 116, 118}, by: byDrift, drift: 18.0 / 109, rng: 0.18, why: "drift"},
		// Noise without a trend: the fit is flat, the range is not.
		{name: "noise by drift", v: []float64{100, 120, 100, 120, 100, 120}, by: byDrift, flat: true, rng: 0.2},
		{name: "noise by range", v: []float64{100, 120, 100, 120, 100, 120}, by: byRange, rng: 0.2, why: "range"},
		{name: "all zero", v: []float64{0, 0, 0}, by: byBoth, flat: true},
		{name: "too few", v: []float64{1, 1}, by: byDrift, why: "fewer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := flatOf(times(len(tt.v)), tt.v)
			ok, why := f.flat(tt.by, 0.10)
			if ok != tt.flat {
				t.Fatalf("flat = %v (%s), want %v; %+v", ok, why, tt.flat, f)
			}
			if tt.why != "" && !strings.Contains(why, tt.why) {
				t.Errorf("why = %q, want it to mention %q", why, tt.why)
			}
			if tt.name == "leak" && math.Abs(f.drift-tt.drift) > 1e-9 {
				t.Errorf("drift = %v, want %v", f.drift, tt.drift)
			}
			if math.Abs(f.rng-tt.rng) > 1e-9 {
				t.Errorf("range = %v, want %v", f.rng, tt.rng)
			}
		})
	}
}

// A zero minimum with a nonzero maximum has no finite range, and a zero
// mean with a slope no finite drift: neither passes as flat.
func TestFlatnessFromZero(t *testing.T) {
	f := flatOf([]float64{0, 60, 120}, []float64{0, 0, 5})
	if ok, _ := f.flat(byRange, 0.1); ok || !math.IsInf(f.rng, 1) {
		t.Errorf("range of 0..5: %v, flat by range %v", f.rng, ok)
	}
	f = flatOf([]float64{0, 60, 120}, []float64{-1, 0, 1})
	if ok, _ := f.flat(byDrift, 0.1); ok {
		t.Errorf("a slope around a zero mean passed as flat: %+v", f)
	}
}
