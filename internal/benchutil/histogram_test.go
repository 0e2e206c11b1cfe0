package benchutil

import (
	"math"
	"testing"
)

// The send-delay histogram is read whole, or by kind once the server
// labels it; a quantile beyond the last finite bucket says so.
func TestHistogram(t *testing.T) {
	plain := map[string]float64{
		`d_bucket{le="0.01"}`: 60,
		`d_bucket{le="0.05"}`: 90,
		`d_bucket{le="1"}`:    99,
		`d_bucket{le="+Inf"}`: 100,
		`d_count`:             100,
	}
	h := Hist(plain, "d", nil)
	if h.Count() != 100 || h.Within(0.05) != 0.9 {
		t.Fatalf("count %v within 50 ms %v", h.Count(), h.Within(0.05))
	}
	if q := h.Quantile(0.5); !q.Under || q.V != 0.01 {
		t.Fatalf("p50 %+v, want at most 10 ms", q)
	}
	if q := h.Quantile(0.75); q.Under || q.Over || math.Abs(q.V-(0.01+0.04*15/30)) > 1e-9 {
		t.Fatalf("p75 %+v", q)
	}
	if q := h.Quantile(0.995); !q.Over || q.V != 1 {
		t.Fatalf("p99.5 %+v, want beyond 1 s", q)
	}
	if HasLabel(plain, "d", "kind") {
		t.Fatal("no kind label here")
	}

	byKind := map[string]float64{
		`d_bucket{kind="audio",le="0.05"}`: 50,
		`d_bucket{kind="audio",le="+Inf"}`: 50,
		`d_bucket{kind="video",le="0.05"}`: 10,
		`d_bucket{kind="video",le="+Inf"}`: 30,
	}
	if !HasLabel(byKind, "d", "kind") {
		t.Fatal("kind label not seen")
	}
	if all := Hist(byKind, "d", nil); all.Count() != 80 || all.Within(0.05) != 60.0/80 {
		t.Fatalf("whole: %+v", all)
	}
	if v := Hist(byKind, "d", map[string]string{"kind": "video"}); v.Count() != 30 || v.Within(0.05) != 10.0/30 {
		t.Fatalf("video: %+v", v)
	}
	if q := Hist(nil, "d", nil).Quantile(0.5); !math.IsNaN(q.V) {
		t.Fatalf("empty: %+v", q)
	}
}
