package live

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	streams     prometheus.Gauge
	sessions    prometheus.Gauge
	transcoders prometheus.Gauge
	started     prometheus.Counter
	refused     *prometheus.CounterVec
	units       prometheus.Counter
	sent        *prometheus.CounterVec
	sentVideo   prometheus.Counter // sent's children, looked up once
	sentAudio   prometheus.Counter
	resent      prometheus.Counter
	delayVideo  prometheus.Observer // delay's children
	delayAudio  prometheus.Observer
	dropped     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	delay       *prometheus.HistogramVec
	firstFrame  prometheus.Histogram
	slotsDown   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bodycam_live_streams", Help: "Publishers whose live stream can be watched.",
		}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bodycam_live_sessions", Help: "Live viewing sessions in progress.",
		}),
		transcoders: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bodycam_live_transcoders", Help: "Live transcoders running (only while someone watches their output).",
		}),
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bodycam_live_sessions_started_total", Help: "Live viewing sessions accepted.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bodycam_live_sessions_refused_total", Help: "Live viewing sessions refused, by reason.",
		}, []string{"reason"}),
		units: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bodycam_live_units_total", Help: "Access units received from publishers for live viewing.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bodycam_live_sent_units_total", Help: "Access units sent to viewers, by kind.",
		}, []string{"kind"}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bodycam_live_resent_packets_total", Help: "Video packets sent again to viewers that reported them lost (NACK).",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bodycam_live_dropped_units_total", Help: "Access units a slow viewer or transcoder lost (never slowing ingest or others).",
		}, []string{"who"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bodycam_live_errors_total", Help: "Live relay errors by kind.",
		}, []string{"kind"}),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bodycam_live_send_delay_seconds",
			Help:    "Time from ingest receiving an access unit to the relay sending it to a viewer, by kind (video, audio).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1},
		}, []string{"kind"}),
		firstFrame: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bodycam_live_first_frame_seconds",
			Help:    "Time from a viewer's connection to its first keyframe sent.",
			Buckets: []float64{.01, .05, .1, .2, .5, 1, 2, 5},
		}),
		slotsDown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bodycam_live_slots_unavailable_total",
			Help: "Calls to the cluster-wide viewing limits (take, renew, release) that got no answer; this node's own limits held meanwhile.",
		}, []string{"op"}),
	}
	// Exported at 0 from the start, so that a rate or an alert sees the
	// first one (a series born at 1 has no increase).
	for _, r := range []string{"limit", "user_limit"} {
		m.refused.WithLabelValues(r)
	}
	for _, w := range []string{"viewer", "transcoder"} {
		m.dropped.WithLabelValues(w)
	}
	for _, k := range []string{"audit", "send", "transcode"} {
		m.errors.WithLabelValues(k)
	}
	for _, k := range []string{"video", "audio"} {
		m.sent.WithLabelValues(k)
		m.delay.WithLabelValues(k)
	}
	for _, op := range []string{"take", "renew", "release"} {
		m.slotsDown.WithLabelValues(op)
	}
	m.sentVideo, m.sentAudio = m.sent.WithLabelValues("video"), m.sent.WithLabelValues("audio")
	m.delayVideo, m.delayAudio = m.delay.WithLabelValues("video"), m.delay.WithLabelValues("audio")
	reg.MustRegister(m.streams, m.sessions, m.transcoders, m.started, m.refused, m.units, m.sent, m.resent, m.dropped, m.errors, m.delay, m.firstFrame, m.slotsDown)
	return m
}
