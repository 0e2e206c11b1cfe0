package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type errorJSON struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorJSON{Error: msg})
}

const maxBody = 64 << 10

// readJSON decodes a request body strictly: one JSON object, no unknown
// fields, at most maxBody bytes.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return fmt.Errorf("request body larger than %d bytes", maxBody)
		case errors.Is(err, io.EOF):
			return errors.New("request body is empty; a JSON object is required")
		}
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: more than one value")
	}
	return nil
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	denied   prometheus.Counter
	limited  *prometheus.CounterVec
	peer     *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bodycam_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bodycam_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bodycam_http_denied_total", Help: "Requests refused for a missing or wrong credential.",
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bodycam_http_signin_limited_total",
			Help: "Sign-ins (and password checks) held back: address (too many from one client address, 429), locked (too many failures under one user name, 429), busy (no hashing slot in time, 503).",
		}, []string{"why"}),
	}
	reg.MustRegister(m.requests, m.duration, m.denied, m.limited)
	m.peer = newPeerMetric(reg)
	return m
}

// wrap counts and times one route; route is the mux pattern, so label values
// stay few whatever paths clients send.
func (m *httpMetrics) wrap(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// hsts tells browsers that reached the server over HTTPS to use nothing
// else for a year, so that a later plain-HTTP link or a downgrade by the
// network cannot expose the session cookie. It is sent on every HTTPS
// response (browsers ignore it over plain HTTP); not for subdomains, whose
// services the server does not know.
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		level := slog.LevelDebug
		if sw.code >= 500 && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" { // those say why once (healthLog)
			level = slog.LevelError
		}
		s.o.Log.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path,
			"code", sw.code, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}
