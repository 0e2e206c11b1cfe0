package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const unitPath = "systemd/bodycam.service"

// unit is a systemd unit file: section -> key -> values in order, with
// continuation lines joined.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, b []byte) unit {
	t.Helper()
	u := unit{}
	var section, pending string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s: bad line %q", unitPath, line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u
}

// one is a key's value, the last one set.
func (u unit) one(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// systemdSeconds parses a time span as systemd does for the values used
// here: "60", "60s", "1min 30s", "2min".
func systemdSeconds(t *testing.T, v string) time.Duration {
	t.Helper()
	var total time.Duration
	for _, f := range strings.Fields(v) {
		if n, err := strconv.Atoi(f); err == nil {
			total += time.Duration(n) * time.Second
			continue
		}
		d, err := time.ParseDuration(strings.Replace(f, "min", "m", 1))
		if err != nil {
			t.Fatalf("time span %q: %v", v, err)
		}
		total += d
	}
	return total
}

func TestSystemdUnit(t *testing.T) {
	s := bodycamSettings(t)
	u := parseUnit(t, readFile(t, unitPath))
	svc := u["Service"]
	if svc == nil {
		t.Fatal("no [Service] section")
	}
	exec := strings.Fields(u.one("Service", "ExecStart"))
	if len(exec) < 2 || exec[0] != "/usr/local/bin/bodycam" {
		t.Fatalf("ExecStart %q: want /usr/local/bin/bodycam serve ...", exec)
	}
	args := s.args(t, "ExecStart", exec[1:])

	// Secrets: systemd credentials (%d, owned by the service's user, 0400),
	// each loaded from a file; none on the command line or in the
	// environment file.
	creds := map[string]string{}
	for _, lc := range svc["LoadCredential"] {
		name, src, _ := strings.Cut(lc, ":")
		creds[name] = src
	}
	files, plain := s.secretFlags()
	for _, f := range wantSecretFiles {
		if !slices.Contains(files, f) {
			t.Errorf("--%s: not a secret-file flag of bodycam (cmd/bodycam/config.go)", f)
		}
		p, ok := args[f]
		name, isCred := strings.CutPrefix(p, "%d/")
		if !ok || !isCred {
			t.Errorf("--%s=%q: want a credential, %%d/<name>", f, p)
			continue
		}
		if src := creds[name]; !path.IsAbs(src) {
			t.Errorf("--%s: no LoadCredential=%s:<absolute path>", f, name)
		}
	}
	for _, p := range plain {
		if _, ok := args[p]; ok {
			t.Errorf("ExecStart: --%s puts a secret on the command line; use --%s-file", p, p)
		}
	}
	if len(svc["Environment"]) > 0 {
		t.Errorf("Environment= in the unit: settings go in the environment file")
	}

	// The environment file: known settings, no secrets.
	var envFile string
	for _, ef := range svc["EnvironmentFile"] {
		envFile = strings.TrimPrefix(ef, "-")
	}
	if envFile != "/etc/bodycam/bodycam.env" {
		t.Errorf("EnvironmentFile=%q, want /etc/bodycam/bodycam.env (systemd/bodycam.env installed)", envFile)
	}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "systemd/bodycam.env")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _ := strings.Cut(line, "=")
		f := s.flagOfEnv(k)
		if f == "" {
			t.Errorf("bodycam.env: %s is no bodycam setting", k)
		}
		if slices.Contains(plain, f) || slices.Contains(files, f) {
			t.Errorf("bodycam.env: %s is a secret setting: give it as a credential", k)
		}
	}

	// Where it keeps state: the data directory and the spool, each a
	// StateDirectory (made, owned by the dynamic user, kept).
	states := strings.Fields(strings.Join(svc["StateDirectory"], " "))
	for _, flag := range []string{"data-dir", "spool-dir"} {
		dir := args[flag]
		rel, ok := strings.CutPrefix(dir, "/var/lib/")
		if !ok || !slices.Contains(states, rel) {
			t.Errorf("--%s=%q is not one of StateDirectory=%v (under /var/lib)", flag, dir, states)
		}
	}
	if args["data-dir"] == args["spool-dir"] {
		t.Error("the spool has no directory of its own")
	}

	// The drain on stop.
	shutdown := s.stopTime(t, args)
	if got := u.one("Service", "KillSignal"); got != "SIGTERM" {
		t.Errorf("KillSignal=%q, want SIGTERM (bodycam drains on it)", got)
	}
	if stop := systemdSeconds(t, u.one("Service", "TimeoutStopSec")); stop <= shutdown {
		t.Errorf("TimeoutStopSec %v is not longer than --shutdown-delay plus --shutdown-timeout, %v", stop, shutdown)
	}
	if n, err := strconv.Atoi(u.one("Service", "LimitNOFILE")); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE=%q: want at least 65536", u.one("Service", "LimitNOFILE"))
	}

	// Hardening.
	if u.one("Service", "DynamicUser") != "yes" && (u.one("Service", "User") == "" || u.one("Service", "User") == "root") {
		t.Error("want DynamicUser=yes or a dedicated User=")
	}
	for k, want := range map[string]string{
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
		"CapabilityBoundingSet": "", "AmbientCapabilities": "",
	} {
		if _, set := svc[k]; !set || u.one("Service", k) != want {
			t.Errorf("%s=%q, want %q", k, u.one("Service", k), want)
		}
	}
	if !slices.Contains(svc["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%v lacks @system-service", svc["SystemCallFilter"])
	}
	families := strings.Fields(u.one("Service", "RestrictAddressFamilies"))
	for _, f := range []string{"AF_INET", "AF_INET6"} {
		if !slices.Contains(families, f) {
			t.Errorf("RestrictAddressFamilies=%v lacks %s", families, f)
		}
	}
	if len(families) == 0 || len(families) > 4 {
		t.Errorf("RestrictAddressFamilies=%v: want a short allow list", families)
	}
}

// TestSystemdVerify runs systemd-analyze on the unit (.ci/run makes sure it
// is there): verify must pass without a single warning (it exits 0 on an
// unknown key or a bad value, saying so on stderr), and the offline security
// analysis must rate its exposure at most 2.0 of 10. ExecStart's binary must
// exist for verify: a stand-in takes its place in a copy of the unit.
func TestSystemdVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to verify %s (Debian package systemd): %v", unitPath, err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bodycam")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := string(readFile(t, unitPath))
	if !strings.Contains(text, "ExecStart=/usr/local/bin/bodycam ") {
		t.Fatal("ExecStart is not /usr/local/bin/bodycam")
	}
	copyPath := filepath.Join(dir, "bodycam.service")
	if err := os.WriteFile(copyPath, []byte(strings.Replace(text, "ExecStart=/usr/local/bin/bodycam ", "ExecStart="+bin+" ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", "--no-pager", copyPath).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (or it failed): %v\n%s", err, out)
	}
}
