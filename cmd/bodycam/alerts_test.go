package main

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// memStore is a Prometheus storage of a few series, for evaluating rules.
type memStore []storage.Series

func (m memStore) Querier(int64, int64) (storage.Querier, error) { return m, nil }

func (m memStore) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range m {
		ok := true
		for _, matcher := range ms {
			ok = ok && matcher.Matches(s.Labels().Get(matcher.Name))
		}
		if ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	return &seriesSet{series: out, i: -1}
}

func (memStore) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (memStore) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (memStore) Close() error { return nil }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// evalAt is when the rules are evaluated; series are sampled every 15 s (the
// scrape interval of prometheus.yml) before it.
var evalAt = time.Unix(1_800_000_000, 0)

// series is metric (a PromQL series description, `name{label="value"}`)
// sampled every 15 s from `from` to `to` before evalAt (from > to >= 0),
// valued f(age) at each sample, age the sample's time before evalAt.
func series(t *testing.T, metric string, from, to time.Duration, f func(age time.Duration) float64) storage.Series {
	t.Helper()
	lset, err := promqlParser.ParseMetric(metric)
	if err != nil {
		t.Fatalf("%s: %v", metric, err)
	}
	var samples []chunks.Sample
	for age := from; age >= to; age -= 15 * time.Second {
		samples = append(samples, floatSample{evalAt.Add(-age).UnixMilli(), f(age)})
	}
	return storage.NewListSeries(lset, samples)
}

// floatSample is one scraped value.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// Shapes of series over the last hour.
func constant(v float64) func(time.Duration) float64 { return func(time.Duration) float64 { return v } }

// counter goes up by rate a second over the hour before evalAt.
func counter(rate float64) func(time.Duration) float64 {
	return func(age time.Duration) float64 { return rate * (time.Hour - age).Seconds() }
}

// stepUp is at before until `at` before evalAt, then at after.
func stepUp(at time.Duration, before, after float64) func(time.Duration) float64 {
	return func(age time.Duration) float64 {
		if age > at {
			return before
		}
		return after
	}
}

// lastPacket is a device's last-publish timestamp: the sample's own time
// while it publishes, frozen at `lost` before evalAt after that.
func lastPacket(lost time.Duration) func(time.Duration) float64 {
	return func(age time.Duration) float64 {
		return float64(evalAt.Add(-max(age, lost)).Unix())
	}
}

const (
	mib = 1 << 20
	gib = 1 << 30
)

// Each alert rule fires for what it is meant to and not for its near
// misses, evaluated by Prometheus' own engine over series shaped as a
// bodycam node exports them. ("for:" is Prometheus' rule manager's; it is
// not evaluated here.)
func TestAlertRulesFire(t *testing.T) {
	h := time.Hour
	m := time.Minute
	n1, n2, n3 := `instance="bodycam-1:8080"`, `instance="bodycam-2:8080"`, `instance="bodycam-3:8080"`
	scenarios := map[string]struct {
		key    string // the label that names what fires
		series []storage.Series
		want   []string
	}{
		"BodycamNodeDown": {"instance", []storage.Series{
			series(t, `up{job="bodycam",`+n1+`}`, h, 0, constant(1)),
			series(t, `up{job="bodycam",`+n2+`}`, h, 0, stepUp(5*m, 1, 0)),          // down for 5 minutes
			series(t, `up{job="minio",instance="minio-1:9000"}`, h, 0, constant(0)), // another job's target
		}, []string{"bodycam-2:8080"}},

		"BodycamCoordinationDegraded": {"instance", []storage.Series{
			series(t, `bodycam_coord_degraded{`+n1+`}`, h, 0, constant(0)),
			series(t, `bodycam_coord_degraded{`+n2+`}`, h, 0, stepUp(5*m, 0, 1)), // Redis away for 5 minutes
		}, []string{"bodycam-2:8080"}},

		"BodycamUploadBacklogGrowing": {"instance", []storage.Series{
			// Growing past two per recorder plus ten.
			series(t, `bodycam_spool_backlog_segments{`+n1+`}`, h, 0, func(age time.Duration) float64 { return 300 * (1 - age.Hours()) }),
			series(t, `bodycam_ingest_publishers{`+n1+`}`, h, 0, constant(20)),
			// Steady at about two per recorder: normal.
			series(t, `bodycam_spool_backlog_segments{`+n2+`}`, h, 0, func(age time.Duration) float64 { return float64(40 + int(age.Minutes())%3) }),
			series(t, `bodycam_ingest_publishers{`+n2+`}`, h, 0, constant(20)),
			// Large but draining after an outage.
			series(t, `bodycam_spool_backlog_segments{`+n3+`}`, h, 0, func(age time.Duration) float64 { return 100 + 500*age.Hours() }),
			series(t, `bodycam_ingest_publishers{`+n3+`}`, h, 0, constant(5)),
		}, []string{"bodycam-1:8080"}},

		"BodycamDurableLatencyHigh": {"instance", append(
			// Every segment durable within a second.
			buckets(t, n1, map[string]float64{"1": 1, "30": 1, "60": 1, "+Inf": 1}),
			// Half of them take between 30 s and a minute (uploads retrying).
			buckets(t, n2, map[string]float64{"1": 0.5, "30": 0.5, "60": 1, "+Inf": 1})...,
		), []string{"bodycam-2:8080"}},

		"BodycamSpoolNearlyFull": {"instance", []storage.Series{
			series(t, `bodycam_spool_free_bytes{`+n1+`}`, h, 0, constant(1.5*gib)),
			series(t, `bodycam_spool_min_free_bytes{`+n1+`}`, h, 0, constant(gib)),
			series(t, `bodycam_spool_free_bytes{`+n2+`}`, h, 0, constant(10*gib)),
			series(t, `bodycam_spool_min_free_bytes{`+n2+`}`, h, 0, constant(gib)),
		}, []string{"bodycam-1:8080"}},

		"BodycamSpoolFillingUp": {"instance", []storage.Series{
			// 10 GiB free, losing 100 MiB a minute: below 1 GiB in 92 minutes.
			series(t, `bodycam_spool_free_bytes{`+n1+`}`, h, 0, func(age time.Duration) float64 { return 10*gib + age.Minutes()*100*mib }),
			series(t, `bodycam_spool_min_free_bytes{`+n1+`}`, h, 0, constant(gib)),
			series(t, `bodycam_spool_free_bytes{`+n2+`}`, h, 0, constant(10*gib)),
			series(t, `bodycam_spool_min_free_bytes{`+n2+`}`, h, 0, constant(gib)),
			// Falling and already nearly full: BodycamSpoolNearlyFull's.
			series(t, `bodycam_spool_free_bytes{`+n3+`}`, h, 0, func(age time.Duration) float64 { return 1.5*gib + age.Minutes()*10*mib }),
			series(t, `bodycam_spool_min_free_bytes{`+n3+`}`, h, 0, constant(gib)),
		}, []string{"bodycam-1:8080"}},

		"BodycamVerificationFailed": {"instance", []storage.Series{
			// The node's first failure: the series appears, at 1.
			series(t, `bodycam_custody_events_total{action="verify",outcome="failed",`+n1+`}`, 5*m, 0, constant(1)),
			// Old failures, nothing new.
			series(t, `bodycam_custody_events_total{action="verify",outcome="failed",`+n2+`}`, h, 0, constant(3)),
			// A new failure after old ones.
			series(t, `bodycam_custody_events_total{action="verify",outcome="failed",`+n3+`}`, h, 0, stepUp(10*m, 3, 4)),
			series(t, `bodycam_custody_events_total{action="verify",outcome="ok",`+n2+`}`, h, 0, counter(0.1)),
		}, []string{"bodycam-1:8080", "bodycam-3:8080"}},

		"BodycamCustodyNotRecorded": {"instance", []storage.Series{
			series(t, `bodycam_custody_errors_total{`+n1+`}`, h, 0, stepUp(5*m, 0, 1)),
			series(t, `bodycam_custody_errors_total{`+n2+`}`, h, 0, constant(0)),
		}, []string{"bodycam-1:8080"}},

		"BodycamRecorderOfflineOnDuty": {"device", []storage.Series{
			// Lost 30 minutes ago, never back.
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-lost",`+n1+`}`, 2*h, 0, lastPacket(30*m)),
			// Stopped by its officer 30 minutes ago.
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-stopped",`+n1+`}`, 2*h, 0, lastPacket(30*m)),
			series(t, `bodycam_ingest_device_last_stop_timestamp_seconds{device="cam-stopped",`+n1+`}`, 30*m, 0, constant(float64(evalAt.Add(-30*m+time.Second).Unix()))),
			// Recording now.
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-live",`+n1+`}`, 2*h, 0, lastPacket(0)),
			// Last seen 12 hours ago: off duty.
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-gone",`+n1+`}`, 11*h, 0, lastPacket(12*h)),
			// Lost on one node 40 minutes ago, recording on another since.
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-moved",`+n1+`}`, 2*h, 0, lastPacket(40*m)),
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-moved",`+n2+`}`, 35*m, 0, lastPacket(0)),
			// Its node restarted 20 minutes ago (its series gone since),
			// the recorder did not come back anywhere.
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-node-restart",`+n3+`}`, 3*h, 20*m, lastPacket(25*m)),
			// Lost on one node 3 hours ago, then recorded on another and
			// was stopped there an hour ago.
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-stopped-elsewhere",`+n1+`}`, 5*h, 0, lastPacket(3*h)),
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-stopped-elsewhere",`+n2+`}`, 2*h, 0, lastPacket(h)),
			series(t, `bodycam_ingest_device_last_stop_timestamp_seconds{device="cam-stopped-elsewhere",`+n2+`}`, h, 0, constant(float64(evalAt.Add(-h+time.Second).Unix()))),
			// A dead zone of five minutes so far.
			series(t, `bodycam_ingest_device_last_publish_timestamp_seconds{device="cam-blip",`+n1+`}`, 2*h, 0, lastPacket(5*m)),
		}, []string{"cam-lost", "cam-node-restart"}},

		"BodycamCredentialRefusalBurst": {"instance", []storage.Series{
			series(t, `bodycam_http_denied_total{`+n1+`}`, h, 0, counter(2)),
			series(t, `bodycam_http_denied_total{`+n2+`}`, h, 0, counter(0.1)),
		}, []string{"bodycam-1:8080"}},

		"BodycamSignInLimited": {"instance", []storage.Series{
			series(t, `bodycam_http_signin_limited_total{why="address",`+n1+`}`, h, 0, counter(0.5)),
			series(t, `bodycam_http_signin_limited_total{why="locked",`+n2+`}`, h, 0, counter(0.01)),
		}, []string{"bodycam-1:8080"}},

		"BodycamRecorderAuthRefusals": {"instance", []storage.Series{
			series(t, `bodycam_ingest_refused_total{reason="auth",`+n1+`}`, h, 0, counter(1)),
			series(t, `bodycam_ingest_refused_total{reason="duplicate",`+n2+`}`, h, 0, counter(5)),
			series(t, `bodycam_ingest_refused_total{reason="auth",`+n2+`}`, h, 0, counter(0.01)),
		}, []string{"bodycam-1:8080"}},

		"BodycamConnectionsRefused": {"instance", []storage.Series{
			series(t, `bodycam_http_connections_refused_total{reason="per_host",`+n1+`}`, h, 0, counter(2)),
			series(t, `bodycam_rtsp_connections_refused_total{reason="per_host",`+n1+`}`, h, 0, constant(0)),
			series(t, `bodycam_http_connections_refused_total{reason="per_host",`+n2+`}`, h, 0, counter(0.1)),
			series(t, `bodycam_rtsp_connections_refused_total{reason="total",`+n2+`}`, h, 0, counter(0.1)),
		}, []string{"bodycam-1:8080"}},
	}

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	for _, r := range loadRules(t) {
		t.Run(r.Alert, func(t *testing.T) {
			sc, ok := scenarios[r.Alert]
			if !ok {
				t.Fatalf("no scenario for %s: add one here", r.Alert)
			}
			q, err := engine.NewInstantQuery(context.Background(), memStore(sc.series), nil, r.Expr, evalAt)
			if err != nil {
				t.Fatal(err)
			}
			res := q.Exec(context.Background())
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			vec, err := res.Vector()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range vec {
				got = append(got, s.Metric.Get(sc.key))
				t.Logf("fires: %s = %g", s.Metric, s.F)
			}
			sort.Strings(got)
			if !slices.Equal(got, sc.want) {
				t.Errorf("fires for %s %v, want %v", sc.key, got, sc.want)
			}
		})
	}
}

// buckets is bodycam_segment_durable_seconds' histogram on one node, each
// bucket's counter going up by its rate a second.
func buckets(t *testing.T, node string, rates map[string]float64) []storage.Series {
	var out []storage.Series
	for le, rate := range rates {
		out = append(out, series(t, `bodycam_segment_durable_seconds_bucket{le="`+le+`",`+node+`}`, time.Hour, 0, counter(rate)))
	}
	return out
}
