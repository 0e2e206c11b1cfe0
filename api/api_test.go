package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/keyring"
	"github.com/bodycam/bodycam/password"
	"github.com/bodycam/bodycam/storage/dir"
)

const token = "test-admin-token-0123456789"

var quiet = slog.New(slog.DiscardHandler)

type fixture struct {
	srv   *httptest.Server
	cat   *catalog.Catalog
	keys  *keyring.Keyring
	store *dir.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dataDir := t.TempDir()
	cat, err := catalog.Open(context.Background(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	store, err := dir.Open(dataDir+"/objects", dir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Open(dataDir+"/keys", keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := api.New(api.Options{Catalog: cat, Store: store, Keys: keys, AdminToken: token, RTSPPort: "8554", Registry: prometheus.NewRegistry(), Log: quiet})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, cat: cat, keys: keys, store: store}
}

func (f *fixture) do(t *testing.T, method, path, auth, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestDevicesAPI(t *testing.T) {
	f := newFixture(t)
	admin := "Bearer " + token
	steps := []struct {
		name, method, path, auth, body string
		want                           int
		contains                       string
	}{
		{"no token", "POST", "/api/v1/devices", "", `{"id":"cam-1"}`, 401, "bearer token"},
		{"wrong token", "POST", "/api/v1/devices", "Bearer nope", `{"id":"cam-1"}`, 401, ""},
		{"basic auth is not a token", "GET", "/api/v1/devices", "Basic " + token, "", 401, ""},
		{"list needs token", "GET", "/api/v1/devices", "", "", 401, ""},
		{"delete needs token", "DELETE", "/api/v1/devices/cam-1", "", "", 401, ""},
		{"bad id slash", "POST", "/api/v1/devices", admin, `{"id":"a/b"}`, 400, "id"},
		{"bad id dotdot", "POST", "/api/v1/devices", admin, `{"id":".."}`, 400, "id"},
		{"bad id too long", "POST", "/api/v1/devices", admin, `{"id":"` + strings.Repeat("a", 65) + `"}`, 400, "id"},
		{"bad id empty", "POST", "/api/v1/devices", admin, `{"id":""}`, 400, "id"},
		{"bad id unicode", "POST", "/api/v1/devices", admin, `{"id":"相机"}`, 400, "id"},
		{"unknown field", "POST", "/api/v1/devices", admin, `{"id":"cam-1","color":"red"}`, 400, "color"},
		{"not json", "POST", "/api/v1/devices", admin, `id=cam-1`, 400, "JSON"},
		{"empty body", "POST", "/api/v1/devices", admin, ``, 400, "empty"},
		{"two values", "POST", "/api/v1/devices", admin, `{"id":"cam-1"}{"id":"cam-2"}`, 400, "more than one"},
		{"control char in name", "POST", "/api/v1/devices", admin, `{"id":"cam-1","name":"a\u0000b"}`, 400, "name"},
		{"create", "POST", "/api/v1/devices", admin, `{"id":"cam-1","name":"Chest cam 1","officer_id":"o-17"}`, 201, "rtsp_password"},
		{"duplicate", "POST", "/api/v1/devices", admin, `{"id":"cam-1"}`, 409, "exists"},
		{"get", "GET", "/api/v1/devices/cam-1", admin, "", 200, `"officer_id": "o-17"`},
		{"get missing", "GET", "/api/v1/devices/cam-9", admin, "", 404, ""},
		{"get bad id", "GET", "/api/v1/devices/..", admin, "", 404, ""},
		{"list", "GET", "/api/v1/devices", admin, "", 200, `"id": "cam-1"`},
		{"delete missing", "DELETE", "/api/v1/devices/cam-9", admin, "", 404, ""},
		{"delete", "DELETE", "/api/v1/devices/cam-1", admin, "", 204, ""},
		{"deleted is listed disabled", "GET", "/api/v1/devices/cam-1", admin, "", 200, `"disabled": true`},
		{"deleted id stays reserved", "POST", "/api/v1/devices", admin, `{"id":"cam-1"}`, 409, ""},
		{"unknown endpoint", "GET", "/api/v1/nothing", admin, "", 404, "no such endpoint"},
		{"wrong method", "PUT", "/api/v1/devices", admin, "", 405, "not allowed"},
	}
	for _, s := range steps {
		code, _, body := f.do(t, s.method, s.path, s.auth, s.body)
		if code != s.want || !strings.Contains(body, s.contains) {
			t.Errorf("%s: %s %s = %d %s; want %d containing %q", s.name, s.method, s.path, code, body, s.want, s.contains)
		}
		if s.want >= 400 && !strings.Contains(body, `"error"`) {
			t.Errorf("%s: error body %q is not a JSON error", s.name, body)
		}
	}
}

func TestCreateReturnsSecretOnceStoresHash(t *testing.T) {
	f := newFixture(t)
	code, hdr, body := f.do(t, "POST", "/api/v1/devices", "Bearer "+token, `{"id":"cam-7","officer_id":"o-1"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var got struct{ ID, RTSPUsername, RTSPPassword, PublishURL string }
	dec := json.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(&struct {
		ID           *string `json:"id"`
		RTSPUsername *string `json:"rtsp_username"`
		RTSPPassword *string `json:"rtsp_password"`
		PublishURL   *string `json:"publish_url"`
	}{&got.ID, &got.RTSPUsername, &got.RTSPPassword, &got.PublishURL}); err != nil {
		t.Fatal(err)
	}
	if got.ID != "cam-7" || got.RTSPUsername != "cam-7" || len(got.RTSPPassword) < 32 {
		t.Fatalf("created = %+v", got)
	}
	if !strings.HasPrefix(got.PublishURL, "rtsp://127.0.0.1:8554/cam-7") {
		t.Fatalf("publish_url = %s", got.PublishURL)
	}
	if hdr.Get("Location") != "/api/v1/devices/cam-7" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", hdr)
	}
	d, err := f.cat.Device(context.Background(), "cam-7")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d.SecretHash, got.RTSPPassword) || !strings.HasPrefix(d.SecretHash, "$argon2id$") {
		t.Fatalf("stored %q", d.SecretHash)
	}
	if ok, _ := password.Verify(d.SecretHash, got.RTSPPassword); !ok {
		t.Fatal("stored hash does not verify the returned secret")
	}
	if strings.Contains(d.SecretSalt, got.RTSPPassword) || f.keys.DeviceSecret("cam-7", d.SecretSalt) != got.RTSPPassword {
		t.Fatal("the server cannot re-derive the secret it handed out")
	}
	// With RTSPS the port speaks TLS only: the URL says rtsps.
	tls := httptest.NewServer(api.New(api.Options{Catalog: f.cat, Store: f.store, Keys: f.keys, AdminToken: token, RTSPPort: "8322", RTSPS: true,
		Registry: prometheus.NewRegistry(), Log: quiet}).Handler())
	defer tls.Close()
	req, _ := http.NewRequest("POST", tls.URL+"/api/v1/devices", strings.NewReader(`{"id":"cam-8"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"publish_url": "rtsps://127.0.0.1:8322/cam-8"`) {
		t.Fatalf("publish_url with RTSPS: %s", b)
	}
	// The secret is never shown again.
	_, _, body = f.do(t, "GET", "/api/v1/devices/cam-7", "Bearer "+token, "")
	if strings.Contains(body, got.RTSPPassword) || strings.Contains(body, "argon2") {
		t.Fatalf("device view leaks the secret: %s", body)
	}
}

func TestHealthMetricsKeysOpenAPI(t *testing.T) {
	f := newFixture(t)
	code, _, body := f.do(t, "GET", "/healthz", "", "")
	if code != 200 || !strings.Contains(body, `"storage": "ok"`) || !strings.Contains(body, `"catalog": "ok"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	f.do(t, "GET", "/api/v1/devices", "", "") // a denial, to be counted
	code, _, body = f.do(t, "GET", "/metrics", "", "")
	if code != 200 || !strings.Contains(body, "bodycam_http_denied_total 1") || !strings.Contains(body, `bodycam_http_requests_total{code="200",route="GET /healthz"} 1`) {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	code, _, body = f.do(t, "GET", "/api/v1/keys", "", "")
	var keys struct {
		Items []struct {
			ID           string `json:"id"`
			PublicKeyPEM string `json:"public_key_pem"`
			Current      bool   `json:"current"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &keys); code != 200 || err != nil || len(keys.Items) != 1 || !keys.Items[0].Current {
		t.Fatalf("keys: %d %s %v", code, body, err)
	}
	if pk, err := keyring.ParsePublicPEM([]byte(keys.Items[0].PublicKeyPEM)); err != nil || pk.ID != keys.Items[0].ID {
		t.Fatalf("key PEM: %v %v", pk.ID, err)
	}
	code, _, body = f.do(t, "GET", "/api/v1/openapi.yaml", "", "")
	if code != 200 || !strings.HasPrefix(body, "openapi: 3") {
		t.Fatalf("openapi: %d", code)
	}
}

type failing struct{}

func (failing) Ping(context.Context) error { return errors.New("connection refused") }
func (failing) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("connection refused")
}
func (failing) GetRange(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, errors.New("connection refused")
}

func TestHealthReportsStorageDown(t *testing.T) {
	dataDir := t.TempDir()
	cat, _ := catalog.Open(context.Background(), "", dataDir)
	defer cat.Close()
	keys, _ := keyring.Open(dataDir+"/keys", keyring.Options{})
	srv := httptest.NewServer(api.New(api.Options{Catalog: cat, Store: failing{}, Keys: keys, AdminToken: token, Log: quiet}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "connection refused") || !strings.Contains(string(b), `"catalog": "ok"`) {
		t.Fatalf("healthz with storage down: %d %s", resp.StatusCode, b)
	}
}

// The OpenAPI file describes exactly the routes the server serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	s := api.New(api.Options{AdminToken: token, Log: quiet})
	served := map[string]bool{}
	for _, r := range s.Routes() {
		served[r] = true
		if !documented[r] {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("openapi.yaml documents %s, which the server does not serve", r)
		}
	}
}

// /readyz: 200 while serving with both backing services answering; 503
// when the object store does not answer; 503 "draining" once Drain is
// called, while /healthz (liveness) and everything else still serve.
func TestReadyz(t *testing.T) {
	f := newFixture(t)
	code, _, body := f.do(t, "GET", "/readyz", "", "")
	if code != 200 || !strings.Contains(body, `"status": "ready"`) || !strings.Contains(body, `"storage": "ok"`) || !strings.Contains(body, `"catalog": "ok"`) {
		t.Fatalf("readyz: %d %s", code, body)
	}

	dataDir := t.TempDir()
	cat, _ := catalog.Open(context.Background(), "", dataDir)
	defer cat.Close()
	keys, _ := keyring.Open(dataDir+"/keys", keyring.Options{})
	down := api.New(api.Options{Catalog: cat, Store: failing{}, Keys: keys, AdminToken: token, Log: quiet})
	rec := httptest.NewRecorder()
	down.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if b := rec.Body.String(); rec.Code != 503 || !strings.Contains(b, `"status": "unavailable"`) || !strings.Contains(b, "connection refused") || !strings.Contains(b, `"catalog": "ok"`) {
		t.Fatalf("readyz with the object store down: %d %s", rec.Code, b)
	}

	s := api.New(api.Options{Catalog: f.cat, Store: f.store, Keys: f.keys, AdminToken: token, Log: quiet})
	s.Drain()
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/readyz", 503, `"status": "draining"`},
		{"/healthz", 200, `"status": "ok"`},
		{"/api/v1/keys", 200, `"items"`},
	} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s while draining: %d %s", c.path, rec.Code, rec.Body)
		}
	}
}
