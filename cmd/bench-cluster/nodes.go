package main

// The nodes the bench starts: `bodycam serve` processes on loopback sharing
// the bench's PostgreSQL database, MinIO, Redis and credential key.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// shared is what every node of every run shares.
type shared struct {
	bin, dir         string
	dbURL, redisURL  string
	s3Endpoint       string
	s3Access, s3Key  string
	credKey, admin   string
	segment          time.Duration
	logLevel, logDir string
}

// node is one running `bodycam serve`.
type node struct {
	id, url, rtsp string
	cmd           *exec.Cmd
	done          chan struct{}
}

// startNode starts one node (its own data directory and loopback ports)
// and waits until it answers /healthz. local leaves out --redis-url: the
// node coordinates in-process, alone.
func startNode(ctx context.Context, s shared, id string, local bool) (*node, error) {
	httpPort, err := testsvc.FreePort()
	if err != nil {
		return nil, err
	}
	rtspPort, err := testsvc.FreePort()
	if err != nil {
		return nil, err
	}
	n := &node{id: id, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort), rtsp: fmt.Sprintf("127.0.0.1:%d", rtspPort), done: make(chan struct{})}
	args := []string{"serve", "--node-id", id, "--advertise-url", n.url, "--data-dir", filepath.Join(s.dir, id),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--rtsp-addr", n.rtsp, "--rtsp-udp-addr", "",
		"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0",
		"--segment-duration", s.segment.String(), "--log-level", s.logLevel, "--shutdown-delay", "0",
		"--database-url", s.dbURL, "--s3-endpoint", s.s3Endpoint, "--s3-access-key", s.s3Access, "--s3-secret-key", s.s3Key,
		"--s3-bucket", "bench", "--admin-token", s.admin, "--credential-key", s.credKey}
	if !local {
		args = append(args, "--redis-url", s.redisURL)
	}
	logf, err := os.Create(filepath.Join(s.logDir, id+".log"))
	if err != nil {
		return nil, err
	}
	n.cmd = exec.Command(s.bin, args...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { n.cmd.Wait(); logf.Close(); close(n.done) }()
	for deadline := time.Now().Add(60 * time.Second); ; {
		code, _, err := call(ctx, "GET", n.url+"/healthz", "", "")
		if err == nil && code == http.StatusOK {
			return n, nil
		}
		select {
		case <-n.done:
			log, _ := os.ReadFile(logf.Name())
			if len(log) > 2000 {
				log = log[len(log)-2000:]
			}
			return nil, fmt.Errorf("node %s exited during start-up: %s", id, log)
		case <-ctx.Done():
			n.kill()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.kill()
			return nil, fmt.Errorf("node %s: not healthy within 60s (log: %s)", id, logf.Name())
		}
	}
}

// stop drains the node (SIGTERM: it finishes and uploads its recordings)
// and kills it if that takes over a minute.
func (n *node) stop() {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(time.Minute):
		n.kill()
	}
}

// kill is kill -9, and waits for the process to be gone.
func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

func (n *node) pid() int { return n.cmd.Process.Pid }

var httpClient = &http.Client{Timeout: 5 * time.Second}

// call makes one API request and returns the status and body.
func call(ctx context.Context, method, url, token, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// register registers a device and returns its RTSP password.
func register(ctx context.Context, n *node, admin, id string) (string, error) {
	code, body, err := call(ctx, "POST", n.url+"/api/v1/devices", admin, `{"id":"`+id+`","name":"bench recorder `+id+`"}`)
	if err != nil {
		return "", err
	}
	if code != http.StatusCreated {
		return "", fmt.Errorf("register %s: %d %s", id, code, body)
	}
	var dev struct {
		Password string `json:"rtsp_password"`
	}
	if err := json.Unmarshal(body, &dev); err != nil || dev.Password == "" {
		return "", fmt.Errorf("register %s: no rtsp_password in %s", id, body)
	}
	return dev.Password, nil
}

// publisher is one item of GET /api/v1/live.
type publisher struct {
	Device    string `json:"device_id"`
	Recording string `json:"recording_id"`
	Node      string `json:"node_id"`
}

// live lists who publishes where, as node n sees the cluster; an error
// when the list is partial (coordination did not answer).
func live(ctx context.Context, n *node, admin string) (map[string]publisher, error) {
	code, body, err := call(ctx, "GET", n.url+"/api/v1/live", admin, "")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/live: %d %s", code, body)
	}
	var list struct {
		Items   []publisher `json:"items"`
		Partial bool        `json:"partial"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	if list.Partial {
		return nil, fmt.Errorf("GET /api/v1/live on %s: partial", n.id)
	}
	out := map[string]publisher{}
	for _, p := range list.Items {
		out[p.Device] = p
	}
	return out, nil
}

// nodeStates is GET /api/v1/nodes as node id -> state.
func nodeStates(ctx context.Context, n *node, admin string) (map[string]string, error) {
	code, body, err := call(ctx, "GET", n.url+"/api/v1/nodes", admin, "")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/nodes: %d %s", code, body)
	}
	var list struct {
		Items []struct{ ID, State string } `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, it := range list.Items {
		out[it.ID] = it.State
	}
	return out, nil
}

// publishURL is a device's RTSP publish URL on node n.
func publishURL(n *node, device, password string) string {
	return "rtsp://" + device + ":" + password + "@" + n.rtsp + "/" + device
}
