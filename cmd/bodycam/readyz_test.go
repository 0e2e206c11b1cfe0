package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// probe asks like a load balancer's health check: a new connection each time.
func (s *server) probe(path string) (int, string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(s.url + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// On SIGTERM the real server first only says it is not ready: /readyz
// answers 503 "draining" while /healthz and the API still serve, for
// --shutdown-delay; then the listener closes (new connections are refused)
// and a request that was in progress when the stop came still gets its
// answer before the process exits cleanly.
func TestReadyzWhileDraining(t *testing.T) {
	s := start(t, t.TempDir(), "--shutdown-delay", "3s")
	token := s.token()
	if code, body, err := s.probe("/readyz"); code != 200 || !strings.Contains(body, `"status": "ready"`) {
		t.Fatalf("readyz before the stop: %d %s %v", code, body, err)
	}
	// A request in progress: its body is sent only after the listener closed.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const device = `{"id":"cam-late"}`
	fmt.Fprintf(conn, "POST /api/v1/devices HTTP/1.1\r\nHost: bodycam\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		token, len(device), device[:5])

	s.cmd.Process.Signal(syscall.SIGTERM)
	draining, served := 0, false
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the listener is still open 15 s after SIGTERM (draining answers: %d)\n%s", draining, s.log)
		}
		code, body, err := s.probe("/readyz")
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		// A probe the kernel had queued when the listener closed is reset
		// unanswered: the listener is closing, as a load balancer sees it.
		if draining > 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			break
		}
		switch {
		case err != nil:
			t.Fatalf("readyz while stopping: %v", err)
		case code == 503 && strings.Contains(body, `"status": "draining"`):
			draining++
			if !served {
				// Everything else still serves while draining.
				hc, hbody, herr := s.probe("/healthz")
				req, _ := http.NewRequest("GET", s.url+"/api/v1/devices", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, aerr := http.DefaultClient.Do(req)
				if herr != nil || hc != 200 || aerr != nil || resp.StatusCode != 200 {
					t.Fatalf("while draining: healthz %d %s %v; devices %v %v", hc, hbody, herr, resp, aerr)
				}
				if !resp.Close {
					t.Error("an answer while draining keeps its connection alive; want Connection: close so clients move to another node")
				}
				resp.Body.Close()
				served = true
			}
		case draining > 0:
			t.Fatalf("readyz after draining began: %d %s", code, body)
		}
	}
	if draining == 0 || !served {
		t.Fatalf("no 503 draining answer before the listener closed (%d)\n%s", draining, s.log)
	}
	fmt.Fprint(conn, device[5:])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in progress lost its answer: %v\n%s", err, s.log)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("the request in progress: %d", resp.StatusCode)
	}
	select {
	case err := <-s.done:
		if err != nil || !strings.Contains(s.log.String(), "bodycam stopped") {
			t.Fatalf("exit: %v\n%s", err, s.log)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit after the last request\n%s", s.log)
	}
}

// /readyz answers 503 while the object store (a real MinIO, stopped) does
// not answer, and 200 again once it is back.
func TestReadyzObjectStoreDown(t *testing.T) {
	m, err := testsvc.StartMinIO()
	if err != nil {
		t.Fatalf("this test needs a real MinIO server: %v", err)
	}
	defer m.Close()
	s := start(t, t.TempDir(), "--s3-endpoint", m.Endpoint, "--s3-access-key", m.AccessKey, "--s3-secret-key", m.SecretKey, "--s3-bucket", "readyz")
	if code, body, err := s.probe("/readyz"); code != 200 || !strings.Contains(body, `"storage": "ok"`) {
		t.Fatalf("readyz: %d %s %v", code, body, err)
	}
	m.Stop()
	code, body, err := s.probe("/readyz")
	if code != 503 || !strings.Contains(body, `"status": "unavailable"`) || !strings.Contains(body, `"storage": "storage: `) || !strings.Contains(body, `"catalog": "ok"`) {
		t.Fatalf("readyz with MinIO stopped: %d %s %v", code, body, err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _, _ := s.probe("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready 20 s after MinIO came back\n%s", s.log)
		}
	}
	s.stop()
}
