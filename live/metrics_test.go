package live

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// series counts name's series in reg and sums their values.
func series(t *testing.T, reg *prometheus.Registry, name string) (n int, sum float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n++
				sum += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return n, sum
}

// The refusals, losses and errors an alert or a dashboard rates are
// exported at 0 from the start: a series born at 1 shows no increase, so
// the first refusal or drop would go unseen.
func TestMetricsExportedAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	want := map[string]int{
		"bodycam_live_sessions_refused_total":  2,
		"bodycam_live_dropped_units_total":     2,
		"bodycam_live_errors_total":            3,
		"bodycam_live_sent_units_total":        2,
		"bodycam_live_send_delay_seconds":      2,
		"bodycam_live_slots_unavailable_total": 3,
	}
	for name, n := range want {
		if got, sum := series(t, reg, name); got != n || sum != 0 {
			t.Errorf("%s: %d series summing to %v at start, want %d at 0", name, got, sum, n)
		}
	}
	m.dropped.WithLabelValues("viewer").Add(3)
	if n, sum := series(t, reg, "bodycam_live_dropped_units_total"); n != 2 || sum != 3 {
		t.Errorf("dropped units after 3 lost: %d series summing to %v", n, sum)
	}
}
