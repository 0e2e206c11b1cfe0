package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parts of compose.yaml the checks read (YAML merge keys, <<: *bodycam,
// are resolved by the decoder).
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File        string `yaml:"file"`
		Environment string `yaml:"environment"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	User            string            `yaml:"user"`
	ReadOnly        bool              `yaml:"read_only"`
	CapDrop         []string          `yaml:"cap_drop"`
	CapAdd          []string          `yaml:"cap_add"`
	Privileged      bool              `yaml:"privileged"`
	SecurityOpt     []string          `yaml:"security_opt"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	StopSignal      string            `yaml:"stop_signal"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	Secrets         []string          `yaml:"secrets"`
	Healthcheck     *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

const composeDir = "compose"

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, filepath.Join(composeDir, "compose.yaml")), &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// bodycamNodes are the services built from deploy/Dockerfile.
func bodycamNodes(t *testing.T, c composeFile) map[string]composeService {
	t.Helper()
	nodes := map[string]composeService{}
	for name, s := range c.Services {
		if s.Build.Dockerfile == "deploy/Dockerfile" {
			if got := path.Clean(path.Join(composeDir, s.Build.Context, s.Build.Dockerfile)); got != "../deploy/Dockerfile" {
				t.Errorf("%s: builds %s, not deploy/Dockerfile", name, got)
			}
			nodes[name] = s
		}
	}
	return nodes
}

// mountAt is the source of the volume a service mounts at dir, or "".
func mountAt(s composeService, dir string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && path.Clean(parts[1]) == path.Clean(dir) {
			return parts[0]
		}
	}
	return ""
}

// scrapePort is the port deploy/prometheus/prometheus.yml scrapes the
// nodes at (each node's --metrics-addr).
func scrapePort(t *testing.T) int {
	t.Helper()
	var c struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, sc := range c.ScrapeConfigs {
		if sc.JobName == "bodycam" && len(sc.StaticConfigs) > 0 && len(sc.StaticConfigs[0].Targets) > 0 {
			_, p, err := net.SplitHostPort(sc.StaticConfigs[0].Targets[0])
			if n, err2 := strconv.Atoi(p); err == nil && err2 == nil {
				return n
			}
		}
	}
	t.Fatal("deploy/prometheus/prometheus.yml: no bodycam scrape target")
	return 0
}

// published reports whether a service publishes container port p/proto on
// host port h (any host address).
func published(s composeService, h, p int, proto string) bool {
	for _, spec := range s.Ports {
		spec, pr, _ := strings.Cut(spec, "/")
		if pr == "" {
			pr = "tcp"
		}
		parts := strings.Split(spec, ":")
		if len(parts) < 2 || pr != proto {
			continue
		}
		hp, err1 := strconv.Atoi(parts[len(parts)-2])
		cp, err2 := strconv.Atoi(parts[len(parts)-1])
		if err1 == nil && err2 == nil && hp == h && cp == p {
			return true
		}
	}
	return false
}

func TestComposeNodes(t *testing.T) {
	s := bodycamSettings(t)
	c := loadCompose(t)
	nodes := bodycamNodes(t, c)
	if len(nodes) != 3 {
		t.Fatalf("want 3 bodycam nodes (services built from deploy/Dockerfile), got %d", len(nodes))
	}
	files, plain := s.secretFlags()
	spools, datas, webrtcPorts := map[string]string{}, map[string]string{}, map[int]string{}
	for name, n := range nodes {
		args := s.args(t, name, n.Command)

		// Its own spool (and data directory) on a named volume.
		for _, m := range []struct {
			flag string
			seen map[string]string
		}{{"spool-dir", spools}, {"data-dir", datas}} {
			dir, ok := args[m.flag]
			if !ok || !path.IsAbs(dir) {
				t.Errorf("%s: --%s: want an absolute path, got %q", name, m.flag, dir)
				continue
			}
			vol := mountAt(n, dir)
			if _, named := c.Volumes[vol]; !named {
				t.Errorf("%s: --%s=%s is not on a named volume (got %q)", name, m.flag, dir, vol)
				continue
			}
			if other, ok := m.seen[vol]; ok {
				t.Errorf("%s and %s share volume %s for --%s", name, other, vol, m.flag)
			}
			m.seen[vol] = name
		}
		if mountAt(n, args["spool-dir"]) == mountAt(n, args["data-dir"]) {
			t.Errorf("%s: the spool has no volume of its own", name)
		}

		// Secrets: each a compose secret file, passed with its -file flag.
		for _, f := range wantSecretFiles {
			if !slices.Contains(files, f) {
				t.Errorf("--%s: not a secret-file flag of bodycam (cmd/bodycam/config.go)", f)
			}
			p, ok := args[f]
			if !ok {
				t.Errorf("%s: --%s not passed", name, f)
				continue
			}
			secret, ok := strings.CutPrefix(p, "/run/secrets/")
			if !ok || !slices.Contains(n.Secrets, secret) {
				t.Errorf("%s: --%s=%s is not one of its secrets (/run/secrets/<name>)", name, f, p)
				continue
			}
			if def, ok := c.Secrets[secret]; !ok || def.File == "" {
				t.Errorf("secret %s is not from a file", secret)
			}
		}
		for _, p := range plain {
			if _, ok := args[p]; ok {
				t.Errorf("%s: --%s: a secret in the command line; use --%s-file", name, p, p)
			}
		}
		for k := range n.Environment {
			f := s.flagOfEnv(k)
			if f == "" {
				t.Errorf("%s: %s is no bodycam setting", name, k)
			}
			if slices.Contains(plain, f) {
				t.Errorf("%s: %s carries a secret in the environment", name, k)
			}
		}

		// Metrics: every series on --metrics-addr, where Prometheus
		// scrapes, never published (it names which recorders publish).
		mp := addrPort(t, "metrics-addr", args["metrics-addr"])
		if mp != scrapePort(t) {
			t.Errorf("%s: --metrics-addr port %d, but deploy/prometheus scrapes %d", name, mp, scrapePort(t))
		}
		for _, spec := range n.Ports {
			if strings.HasSuffix(strings.Split(spec, "/")[0], ":"+strconv.Itoa(mp)) {
				t.Errorf("%s: the metrics port is published (%s)", name, spec)
			}
		}

		// Health: /readyz on the HTTP port.
		httpPort := addrPort(t, "http-addr", s.setting(t, args, "http-addr"))
		if httpPort != s.port(t, "http-addr") {
			t.Errorf("%s: HTTP port %d, not bodycam's default %d", name, httpPort, s.port(t, "http-addr"))
		}
		if n.Healthcheck == nil || !strings.Contains(strings.Join(n.Healthcheck.Test, " "), fmt.Sprintf(":%d/readyz", httpPort)) {
			t.Errorf("%s: want a healthcheck on /readyz at port %d", name, httpPort)
		}

		// Non-root, read-only, no capabilities.
		if n.User == "" || n.User == "0" || n.User == "root" || strings.HasPrefix(n.User, "0:") {
			t.Errorf("%s: user %q: want a non-root uid", name, n.User)
		}
		if !n.ReadOnly {
			t.Errorf("%s: read_only is not true", name)
		}
		if !slices.Contains(n.CapDrop, "ALL") || len(n.CapAdd) > 0 || n.Privileged {
			t.Errorf("%s: want cap_drop ALL, no cap_add, not privileged", name)
		}
		if !slices.Contains(n.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: want security_opt no-new-privileges:true", name)
		}

		// The engine kills at stop_grace_period: the drain must end first.
		shutdown := s.stopTime(t, args)
		if grace := duration(t, name+" stop_grace_period", n.StopGracePeriod); grace <= shutdown {
			t.Errorf("%s: stop_grace_period %v is not longer than --shutdown-delay plus --shutdown-timeout, %v", name, grace, shutdown)
		}
		if n.StopSignal != "" && n.StopSignal != "SIGTERM" {
			t.Errorf("%s: stop_signal %s: bodycam drains on SIGTERM", name, n.StopSignal)
		}

		// WebRTC: published on the same port it listens on (ICE announces
		// that port with --webrtc-public-ips), UDP and TCP, one per node.
		if args["webrtc-public-ips"] == "" && n.Environment["BODYCAM_WEBRTC_PUBLIC_IPS"] == "" {
			t.Errorf("%s: no --webrtc-public-ips: browsers would get the container's address", name)
		}
		for _, w := range []struct{ flag, proto string }{{"webrtc-udp-addr", "udp"}, {"webrtc-tcp-addr", "tcp"}} {
			addr, ok := args[w.flag]
			if !ok {
				addr = n.Environment[envName(w.flag)]
			}
			if addr == "" {
				addr = s.def(t, w.flag)
			}
			p := addrPort(t, name+" "+w.flag, addr)
			if !published(n, p, p, w.proto) {
				t.Errorf("%s: WebRTC %s port %d is not published as %d:%d/%s", name, w.proto, p, p, p, w.proto)
			}
			if w.proto == "udp" {
				if other, ok := webrtcPorts[p]; ok {
					t.Errorf("%s and %s both use WebRTC port %d", name, other, p)
				}
				webrtcPorts[p] = name
			}
		}
		// RTP over UDP cannot pass the load balancer.
		if v, ok := args["rtsp-udp-addr"]; !ok || v != "" {
			t.Errorf("%s: --rtsp-udp-addr should be set empty (RTP over UDP does not pass the load balancer)", name)
		}
	}
	if _, ok := webrtcPorts[s.port(t, "webrtc-udp-addr")]; !ok {
		t.Errorf("no node on bodycam's default WebRTC port %d", s.port(t, "webrtc-udp-addr"))
	}
}

// haproxyServers are the `server` lines of each backend in haproxy.cfg.
func haproxyServers(t *testing.T) (map[string][]string, map[string]int) {
	t.Helper()
	backends := map[string][]string{}
	binds := map[string]int{}
	var section, name string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, filepath.Join(composeDir, "haproxy.cfg"))))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "frontend", "backend", "global", "defaults", "resolvers", "listen":
			section = f[0]
			if len(f) > 1 {
				name = f[1]
			}
		case "server":
			if section == "backend" && len(f) >= 3 {
				backends[name] = append(backends[name], f[2])
			}
		case "bind":
			if section == "frontend" && len(f) >= 2 {
				_, p, _ := strings.Cut(f[1], ":")
				n, _ := strconv.Atoi(p)
				binds[name] = n
			}
		}
	}
	return backends, binds
}

func TestComposeLoadBalancer(t *testing.T) {
	s := bodycamSettings(t)
	c := loadCompose(t)
	nodes := bodycamNodes(t, c)
	backends, binds := haproxyServers(t)
	rtsp, http := s.port(t, "rtsp-addr"), s.port(t, "http-addr")
	// Every node behind the RTSP and the HTTP ports, at bodycam's ports.
	for _, want := range []struct {
		frontend string
		port     int
	}{{"rtsp", rtsp}, {"http", http}} {
		if binds[want.frontend] != want.port {
			t.Errorf("haproxy frontend %s binds %d, want %d", want.frontend, binds[want.frontend], want.port)
		}
		var got []string
		for _, srv := range backends[want.frontend] {
			host, port, _ := strings.Cut(srv, ":")
			if port != strconv.Itoa(want.port) {
				t.Errorf("haproxy backend %s: server %s, want port %d", want.frontend, srv, want.port)
			}
			got = append(got, host)
		}
		for name := range nodes {
			if !slices.Contains(got, name) {
				t.Errorf("haproxy backend %s lacks node %s", want.frontend, name)
			}
		}
	}
	var lb composeService
	for _, svc := range c.Services {
		for _, v := range svc.Volumes {
			if strings.HasPrefix(v, "./haproxy.cfg:") {
				lb = svc
			}
		}
	}
	if !published(lb, rtsp, rtsp, "tcp") || !published(lb, http, http, "tcp") {
		t.Errorf("the load balancer does not publish %d and %d: %v", rtsp, http, lb.Ports)
	}
	cfg := string(readFile(t, filepath.Join(composeDir, "haproxy.cfg")))
	for _, want := range []string{"balance source", "uri /readyz"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
}

func TestComposeBackingServices(t *testing.T) {
	c := loadCompose(t)
	images := map[string]composeService{}
	for name, s := range c.Services {
		images[name] = s
	}
	for _, want := range []string{"postgres", "redis", "prometheus", "grafana", "minio"} {
		if _, ok := images[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}

	// MinIO: four drives in one erasure set, each its own volume.
	m := images["minio"]
	var drives []string
	for _, a := range m.Command {
		if m := regexp.MustCompile(`^(/[^{]*)\{(\d+)\.\.\.(\d+)\}$`).FindStringSubmatch(a); m != nil {
			lo, _ := strconv.Atoi(m[2])
			hi, _ := strconv.Atoi(m[3])
			for i := lo; i <= hi; i++ {
				drives = append(drives, m[1]+strconv.Itoa(i))
			}
		}
	}
	if len(drives) != 4 {
		t.Errorf("minio: want 4 drives (server /data{1...4}), got %v", drives)
	}
	vols := map[string]bool{}
	for _, d := range drives {
		v := mountAt(m, d)
		if v == "" || vols[v] {
			t.Errorf("minio: drive %s has no volume of its own", d)
		}
		vols[v] = true
	}
	if m.Environment["MINIO_ROOT_PASSWORD_FILE"] == "" || m.Environment["MINIO_ROOT_PASSWORD"] != "" {
		t.Error("minio: the root password must come from a file (MINIO_ROOT_PASSWORD_FILE)")
	}
	if images["postgres"].Environment["POSTGRES_PASSWORD_FILE"] == "" || images["postgres"].Environment["POSTGRES_PASSWORD"] != "" {
		t.Error("postgres: the password must come from a file (POSTGRES_PASSWORD_FILE)")
	}
	for _, name := range []string{"minio", "postgres", "redis"} {
		if images[name].Healthcheck == nil {
			t.Errorf("%s: no healthcheck", name)
		}
	}

	// Every file a service mounts from the repository exists (Prometheus'
	// configuration and rules, Grafana's dashboard and provisioning).
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") {
				continue
			}
			if _, err := os.Stat(filepath.Join(composeDir, src)); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
		}
	}
	for _, want := range []string{"../prometheus/prometheus.yml", "../prometheus/alerts.yml", "../grafana/bodycam.json", "../grafana/provisioning"} {
		found := false
		for _, s := range c.Services {
			for _, v := range s.Volumes {
				found = found || strings.HasPrefix(v, want+":")
			}
		}
		if !found {
			t.Errorf("no service mounts %s", want)
		}
	}

	// Secrets: every one a file that make-secrets.sh makes.
	script := string(readFile(t, filepath.Join(composeDir, "make-secrets.sh")))
	made := map[string]bool{}
	for _, m := range regexp.MustCompile(`\|\s*put\s+([a-z0-9-]+)\s`).FindAllStringSubmatch(script, -1) {
		made[m[1]] = true
	}
	for name, def := range c.Secrets {
		if def.File == "" {
			t.Errorf("secret %s is not from a file", name)
			continue
		}
		if def.File != "./secrets/"+name || !made[name] {
			t.Errorf("secret %s: file %s is not one make-secrets.sh makes", name, def.File)
		}
	}
	for name, s := range c.Services {
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("%s uses undeclared secret %s", name, sec)
			}
		}
	}
}
