package upload

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	inFlight    prometheus.Gauge
	bytes       prometheus.Counter
	uploads     *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	pending     prometheus.Gauge
	hashSeconds prometheus.Histogram
	putSeconds  prometheus.Histogram
}

// Outcomes and refusal reasons, exported at 0 from the start so that a rate
// or an alert sees the first one.
var (
	outcomes       = []string{"stored", "duplicate", "refused", "abandoned"}
	refusalReasons = []string{"metadata", "forbidden", "too_large", "spool_full", "checksum", "sha256", "catalog"}
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_upload_bytes_in_flight",
			Help: "Bytes received of uploads not yet stored (partial uploads in the spool)."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "bodycam_upload_bytes_total",
			Help: "Bytes of dock uploads received and kept in the spool (rate: the upload rate)."}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_uploads_total",
			Help: "Uploads ended, by outcome: stored, duplicate (the device's same file was stored), refused (SHA-256 mismatch), abandoned (deleted by its dock or swept)."}, []string{"outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bodycam_upload_refusals_total",
			Help: "Upload requests refused, by reason: metadata, forbidden, too_large, spool_full, checksum (a PATCH's Upload-Checksum), sha256 (the whole file), catalog."}, []string{"reason"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bodycam_uploads_pending",
			Help: "Partial uploads in the spool (being received, finished, or refused and kept)."}),
		hashSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bodycam_upload_hash_seconds",
			Help: "Time to hash a whole uploaded file from the spool.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
		putSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bodycam_upload_put_seconds",
			Help: "Time to put a whole uploaded file in the object store.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
	}
	reg.MustRegister(m.inFlight, m.bytes, m.uploads, m.refusals, m.pending, m.hashSeconds, m.putSeconds)
	for _, o := range outcomes {
		m.uploads.WithLabelValues(o)
	}
	for _, r := range refusalReasons {
		m.refusals.WithLabelValues(r)
	}
	return m
}

func (m *metrics) outcome(o string) { m.uploads.WithLabelValues(o).Inc() }
