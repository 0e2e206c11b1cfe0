package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stage is one FROM ... AS name of a Dockerfile with its instructions
// (continuation lines joined).
type stage struct {
	name  string
	from  string
	instr [][2]string // instruction (upper case), rest of the line
}

func parseDockerfile(t *testing.T, p string) []stage {
	t.Helper()
	var stages []stage
	var pending string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, p)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") { // a comment inside a continued RUN
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		op, rest, _ := strings.Cut(line, " ")
		op = strings.ToUpper(op)
		if op == "FROM" {
			f := strings.Fields(rest)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{op, strings.TrimSpace(rest)})
		}
	}
	return stages
}

func (s stage) all(op string) []string {
	var out []string
	for _, in := range s.instr {
		if in[0] == op {
			out = append(out, in[1])
		}
	}
	return out
}

// aptPackages are the packages a stage's RUN lines apt-get install.
func (s stage) aptPackages() []string {
	var pkgs []string
	for _, run := range s.all("RUN") {
		for _, cmd := range strings.Split(run, "&&") {
			f := strings.Fields(cmd)
			i := slices.Index(f, "install")
			if i < 0 || !slices.Contains(f[:i], "apt-get") {
				continue
			}
			for _, a := range f[i+1:] {
				if !strings.HasPrefix(a, "-") {
					pkgs = append(pkgs, a)
				}
			}
		}
	}
	return pkgs
}

// astiavLibraries are the FFmpeg libraries go-astiav links (its #cgo
// pkg-config lines), from the module the build uses.
func astiavLibraries(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/asticode/go-astiav").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/asticode/go-astiav: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("go-astiav sources in %q: %v", dir, err)
	}
	seen := map[string]bool{}
	re := regexp.MustCompile(`(?m)^//\s*#cgo pkg-config:(.*)$`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			for _, lib := range strings.Fields(m[1]) {
				seen[lib] = true
			}
		}
	}
	var libs []string
	for l := range seen {
		libs = append(libs, l)
	}
	slices.Sort(libs)
	if len(libs) == 0 {
		t.Fatal("no #cgo pkg-config lines in go-astiav")
	}
	return libs
}

func TestDockerfile(t *testing.T) {
	s := bodycamSettings(t)
	stages := parseDockerfile(t, "Dockerfile")
	byName := map[string]stage{}
	for _, st := range stages {
		byName[st.name] = st
	}
	// The default target (the last stage) is the runtime image.
	runtime := stages[len(stages)-1]
	if runtime.name != "runtime" {
		t.Fatalf("the last stage (docker build's default target) is %q, want runtime", runtime.name)
	}
	build, ok := byName["build"]
	if !ok {
		t.Fatal("no build stage")
	}
	libs := astiavLibraries(t)

	// The cgo build has the FFmpeg development files; the runtime only the
	// runtime libraries (Debian names them after the soname: libavcodec59).
	buildPkgs, runPkgs := build.aptPackages(), runtime.aptPackages()
	for _, lib := range libs {
		if !slices.Contains(buildPkgs, lib+"-dev") {
			t.Errorf("build stage: no %s-dev (go-astiav links %s)", lib, lib)
		}
		re := regexp.MustCompile("^" + regexp.QuoteMeta(lib) + `[0-9]+$`)
		if !slices.ContainsFunc(runPkgs, re.MatchString) {
			t.Errorf("runtime stage: no runtime package of %s (want %sNN)", lib, lib)
		}
	}
	for _, p := range runPkgs {
		if strings.HasSuffix(p, "-dev") || p == "golang" || p == "gcc" {
			t.Errorf("runtime stage installs %s: build tools stay in the build stage", p)
		}
	}
	if !strings.Contains(strings.Join(build.all("RUN"), " "), "CGO_ENABLED=1 go build") {
		t.Error("build stage: no CGO_ENABLED=1 go build")
	}

	// The static variant: the nocgo build on a minimal image.
	static, ok := byName["static"]
	if !ok {
		t.Fatal("no static stage (docker build --target static)")
	}
	var nocgo bool
	for _, st := range stages {
		for _, run := range st.all("RUN") {
			nocgo = nocgo || regexp.MustCompile(`CGO_ENABLED=0 go build .*-tags nocgo .*\./cmd/bodycam`).MatchString(run)
		}
	}
	if !nocgo {
		t.Error("no `CGO_ENABLED=0 go build -tags nocgo ./cmd/bodycam` stage")
	}

	for _, st := range []stage{runtime, static} {
		// Non-root.
		users := st.all("USER")
		if len(users) == 0 {
			t.Errorf("stage %s: no USER: it would run as root", st.name)
		} else {
			u := users[len(users)-1]
			uid, _, _ := strings.Cut(u, ":")
			if n, err := strconv.Atoi(uid); err != nil || n == 0 {
				t.Errorf("stage %s: USER %q: want a numeric non-root uid (runAsNonRoot can check only a number)", st.name, u)
			}
		}
		// Every bodycam listener's default port is exposed.
		exposed := strings.Fields(strings.Join(st.all("EXPOSE"), " "))
		rtpPort := s.port(t, "rtsp-udp-addr")
		for _, want := range []string{
			strconv.Itoa(s.port(t, "rtsp-addr")) + "/tcp", strconv.Itoa(s.port(t, "http-addr")) + "/tcp",
			strconv.Itoa(s.port(t, "webrtc-udp-addr")) + "/udp", strconv.Itoa(s.port(t, "webrtc-tcp-addr")) + "/tcp",
			strconv.Itoa(rtpPort) + "/udp", strconv.Itoa(rtpPort+1) + "/udp",
		} {
			if !slices.Contains(exposed, want) {
				t.Errorf("stage %s: EXPOSE %v lacks %s", st.name, exposed, want)
			}
		}
		// Its writable places are volumes (a read-only root filesystem),
		// named by settings bodycam reads.
		volumes := strings.Join(st.all("VOLUME"), " ")
		env := strings.Fields(strings.Join(st.all("ENV"), " "))
		dirs := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			if s.flagOfEnv(k) == "" {
				t.Errorf("stage %s: ENV %s is no bodycam setting", st.name, k)
			}
			dirs[k] = v
		}
		for _, k := range []string{"BODYCAM_DATA_DIR", "BODYCAM_SPOOL_DIR"} {
			if dirs[k] == "" || !strings.Contains(volumes, `"`+dirs[k]+`"`) {
				t.Errorf("stage %s: %s=%q is not a VOLUME (%s)", st.name, k, dirs[k], volumes)
			}
		}
		if sig := st.all("STOPSIGNAL"); len(sig) == 0 || sig[0] != "SIGTERM" {
			t.Errorf("stage %s: STOPSIGNAL %v, want SIGTERM (bodycam drains on it)", st.name, sig)
		}
	}
}
