package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
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

// admin lets a request through only with the admin token: as a bearer
// token, or as the console's session cookie. A request that relies on the
// cookie and changes something must also carry the console's header, which
// another site's page cannot add (defence in depth beside SameSite=Strict).
func (s *Server) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		viaCookie := false
		if !ok {
			if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
				token, ok, viaCookie = c.Value, true, true
			}
		}
		if !ok || !s.adminToken(token) {
			s.o.Log.Warn("denied: missing or wrong bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			s.metrics.denied.Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="bodycam"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		if viaCookie && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(consoleHeader) == "" {
			s.metrics.denied.Inc()
			writeError(w, http.StatusForbidden, "a request signed in by cookie must carry the "+consoleHeader+" header")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), userKey{}, principal{user: "admin", admin: true})))
	}
}

// adminToken reports whether token is the admin token, in constant time.
func (s *Server) adminToken(token string) bool {
	want := sha256.Sum256([]byte(s.o.AdminToken))
	got := sha256.Sum256([]byte(token))
	return s.o.AdminToken != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

const (
	sessionCookie = "bodycam_session"
	consoleHeader = "X-Bodycam-Console"
)

type userKey struct{}

type principal struct {
	user  string
	admin bool
}

// userOf names who made an authenticated request.
func userOf(r *http.Request) string {
	p, _ := r.Context().Value(userKey{}).(principal)
	return p.user
}

func isAdmin(r *http.Request) bool {
	p, _ := r.Context().Value(userKey{}).(principal)
	return p.admin
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	denied   prometheus.Counter
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
	}
	reg.MustRegister(m.requests, m.duration, m.denied)
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

func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		level := slog.LevelDebug
		if sw.code >= 500 {
			level = slog.LevelError
		}
		s.o.Log.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path,
			"code", sw.code, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}
