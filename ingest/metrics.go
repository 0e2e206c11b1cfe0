package ingest

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	publishers   prometheus.Gauge
	bytes        prometheus.Counter
	packets      prometheus.Counter
	packetsLost  prometheus.Counter
	segments     prometheus.Counter
	durable      prometheus.Histogram
	stepTime     *prometheus.HistogramVec
	backlogSegs  prometheus.Gauge
	backlogBytes prometheus.Gauge
	errors       *prometheus.CounterVec
	gaps         *prometheus.CounterVec
	refused      *prometheus.CounterVec
	backpressure prometheus.Counter
	takeovers    prometheus.Counter
	coordErrors  *prometheus.CounterVec
	// Per device (one series each for every device that published since
	// the node started: devices are registered and authenticated before
	// they get one, so the count is bounded by the fleet, not by
	// clients), for telling a recorder that dropped off from one whose
	// officer stopped it.
	lastPublish *prometheus.GaugeVec
	lastStop    *prometheus.GaugeVec
}

// Kinds of bodycam_ingest_errors_total, exported at 0 from the start so that
// a rate or an alert sees the first error (a series born at 1 has no
// increase).
var errorKinds = []string{"catalog", "upload", "conflict", "legal_hold", "spool", "spool_write", "spool_damaged", "depacketize", "rtp_decode", "superseded"}

func newMetrics(reg, devices prometheus.Registerer, spool *Spool) *metrics {
	m := &metrics{
		publishers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_ingest_publishers", Help: "Recorders publishing now."}),
		bytes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_ingest_received_bytes_total", Help: "RTP payload bytes received from recorders."}),
		packets:    prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_ingest_received_packets_total", Help: "RTP packets received from recorders."}),
		packetsLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_ingest_lost_packets_total",
			Help: "RTP packets lost between recorders and the server (sequence gaps)."}),
		segments: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_segments_stored_total", Help: "Segments stored in the object store and the catalog."}),
		durable: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bodycam_segment_durable_seconds",
			Help:    "Time from a segment's close in the spool to its being in the object store and the catalog.",
			Buckets: []float64{.002, .005, .01, .02, .03, .05, .075, .1, .15, .2, .3, .4, .5, .75, 1, 2, 5, 10, 30, 60, 300}}),
		stepTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bodycam_upload_step_seconds",
			Help:    "Time of each upload step: the object store put, the catalog append.",
			Buckets: []float64{.002, .005, .01, .02, .03, .05, .075, .1, .15, .2, .3, .4, .5, .75, 1, 2, 5, 10}}, []string{"step"}),
		backlogSegs:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_spool_backlog_segments", Help: "Closed segments in the spool waiting for upload."}),
		backlogBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_spool_backlog_bytes", Help: "Bytes of closed segments in the spool waiting for upload."}),
		errors:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_ingest_errors_total", Help: "Ingest errors by kind."}, []string{"kind"}),
		gaps:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_recording_gaps_total", Help: "Explicit gaps recorded, by kind."}, []string{"kind"}),
		refused:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_ingest_refused_total", Help: "Publishers refused, by reason."}, []string{"reason"}),
		backpressure: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_ingest_backpressure_total",
			Help: "Times a publisher's reader waited because the spool was behind (media is never dropped)."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_ingest_takeovers_total",
			Help: "Publishers that replaced a silent session of their own device (a recorder that reconnected before its old connection timed out)."}),
		coordErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_ingest_coord_errors_total",
			Help: "Device lease calls the coordination backend did not answer (acquire: a publisher accepted without a cluster lease)."}, []string{"op"}),
		lastPublish: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bodycam_ingest_device_last_publish_timestamp_seconds",
			Help: "Unix time of the last packet received from the device on this node (kept after its recording ends)."}, []string{"device"}),
		lastStop: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bodycam_ingest_device_last_stop_timestamp_seconds",
			Help: "Unix time the device itself last ended a recording on this node (RTSP TEARDOWN; not a lost connection or a server stop)."}, []string{"device"}),
	}
	for _, k := range errorKinds {
		m.errors.WithLabelValues(k)
	}
	reg.MustRegister(m.publishers, m.bytes, m.packets, m.packetsLost, m.segments, m.durable, m.stepTime, m.backlogSegs,
		m.backlogBytes, m.errors, m.gaps, m.refused, m.backpressure, m.takeovers, m.coordErrors)
	for _, op := range []string{"acquire", "update", "release"} {
		m.coordErrors.WithLabelValues(op)
	}
	if devices != nil {
		devices.MustRegister(m.lastPublish, m.lastStop)
	}
	if spool != nil {
		// Read at each scrape: the disk is shared with whatever else the
		// host writes, so only statfs knows.
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bodycam_spool_free_bytes",
			Help: "Bytes free to the spool's file system (NaN if it cannot be read). Below bodycam_spool_min_free_bytes new recordings are refused."},
			func() float64 {
				free, err := spool.Free()
				if err != nil {
					return math.NaN()
				}
				return float64(free)
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bodycam_spool_min_free_bytes",
				Help: "--spool-min-free: below this much free space the spool refuses new recordings (those in progress go on)."},
				func() float64 { return float64(spool.minFree) }))
	}
	return m
}
