package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveSettings is what bodycam serve accepts, read from its source
// (cmd/bodycam is package main and cannot be imported): every flag name, and
// the default of each flag whose default is a literal in defaults().
type serveSettings struct {
	flags    map[string]bool   // flag name -> known
	defaults map[string]string // flag name -> default (durations as time.Duration strings)
}

var (
	settingsOnce sync.Once
	settings     serveSettings
	settingsErr  error
)

// bodycamSettings parses cmd/bodycam/config.go: the flags Config.flags binds
// (and --config, bound in loadConfig), and the literal defaults() gives the
// fields they are bound to.
func bodycamSettings(t *testing.T) serveSettings {
	t.Helper()
	settingsOnce.Do(func() { settings, settingsErr = parseSettings(filepath.Join("..", "cmd", "bodycam", "config.go")) })
	if settingsErr != nil {
		t.Fatalf("reading bodycam's settings: %v", settingsErr)
	}
	return settings
}

func parseSettings(path string) (serveSettings, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		return serveSettings{}, err
	}
	s := serveSettings{flags: map[string]bool{}, defaults: map[string]string{}}
	fieldDefault := map[string]string{} // Config field -> default
	fieldFlag := map[string]string{}    // Config field -> flag name
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			if n.Name.Name == "defaults" {
				ast.Inspect(n.Body, func(n ast.Node) bool {
					kv, ok := n.(*ast.KeyValueExpr)
					if !ok {
						return true
					}
					key, ok := kv.Key.(*ast.Ident)
					if !ok {
						return true
					}
					if v, ok := literal(kv.Value); ok {
						fieldDefault[key.Name] = v
					}
					return true
				})
			}
		case *ast.CallExpr:
			// fs.StringVar(&c.Field, "name", ...), fs.Var(&c.Field, "name", ...),
			// fs.String("name", ...)
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || len(n.Args) < 2 {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "fs" {
				return true
			}
			nameArg := n.Args[0]
			var field string
			if strings.HasSuffix(sel.Sel.Name, "Var") {
				nameArg = n.Args[1]
				if u, ok := n.Args[0].(*ast.UnaryExpr); ok {
					if fs, ok := u.X.(*ast.SelectorExpr); ok {
						field = fs.Sel.Name
					}
				}
			}
			lit, ok := nameArg.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			s.flags[name] = true
			if field != "" {
				fieldFlag[field] = name
			}
		}
		return true
	})
	for field, name := range fieldFlag {
		if v, ok := fieldDefault[field]; ok {
			s.defaults[name] = v
		}
	}
	return s, nil
}

// literal evaluates the default expressions config.go uses: strings,
// integers, and products of integers and time units.
func literal(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			v, err := strconv.Unquote(e.Value)
			return v, err == nil
		}
		if e.Kind == token.INT {
			return e.Value, true
		}
	case *ast.BinaryExpr:
		if e.Op != token.MUL {
			return "", false
		}
		n, ok := literal(e.X)
		if !ok {
			return "", false
		}
		count, err := strconv.Atoi(n)
		if err != nil {
			return "", false
		}
		unit, ok := e.Y.(*ast.SelectorExpr)
		if !ok {
			return "", false
		}
		units := map[string]time.Duration{"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
		u, ok := units[unit.Sel.Name]
		if !ok {
			return "", false
		}
		return (time.Duration(count) * u).String(), true
	}
	return "", false
}

// def is a flag's default; the test fails when the code has none to read.
func (s serveSettings) def(t *testing.T, flag string) string {
	t.Helper()
	v, ok := s.defaults[flag]
	if !ok {
		t.Fatalf("no literal default for --%s in cmd/bodycam/config.go", flag)
	}
	return v
}

// port is the port of a flag's default listen address (":8080" -> 8080).
func (s serveSettings) port(t *testing.T, flag string) int {
	t.Helper()
	return addrPort(t, flag, s.def(t, flag))
}

func addrPort(t *testing.T, what, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q is not host:port", what, addr)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: bad port in %q", what, addr)
	}
	return n
}

// secretFlags are the settings that carry a secret, as the files a
// deployment must give: every --X-file whose plain twin --X exists, and the
// key files (--signing-key, --credential-key are file paths already).
func (s serveSettings) secretFlags() (files []string, plain []string) {
	for name := range s.flags {
		if twin, ok := strings.CutSuffix(name, "-file"); ok && s.flags[twin] {
			files = append(files, name)
			plain = append(plain, twin)
		}
	}
	files = append(files, "signing-key", "credential-key")
	return files, plain
}

// wantSecretFiles is what every deployment here passes as files: the admin
// token, the S3 keys, the database URL (its password), the signing key and
// the credential key.
var wantSecretFiles = []string{"admin-token-file", "s3-access-key-file", "s3-secret-key-file", "database-url-file", "signing-key", "credential-key"}

// envName is bodycam's variable for a flag (cmd/bodycam: BODYCAM_<FLAG>).
func envName(flag string) string {
	return "BODYCAM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// flagOfEnv is the flag a BODYCAM_* variable sets, or "".
func (s serveSettings) flagOfEnv(name string) string {
	for f := range s.flags {
		if envName(f) == name {
			return f
		}
	}
	return ""
}

// args parses `serve --a=b --c d --flag` into flag -> value (repeats: the
// last), failing on a flag bodycam does not know: a renamed or misspelt
// flag stops the start with exit 2.
func (s serveSettings) args(t *testing.T, where string, argv []string) map[string]string {
	t.Helper()
	if len(argv) == 0 || argv[0] != "serve" {
		t.Fatalf("%s: want `serve` first, got %q", where, argv)
	}
	out := map[string]string{}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			t.Fatalf("%s: unexpected argument %q", where, a)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !s.flags[name] {
			t.Errorf("%s: --%s is not a flag of bodycam serve (cmd/bodycam/config.go)", where, name)
		}
		if !hasValue && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
			i++
			value = argv[i]
		}
		out[name] = value
	}
	return out
}

// setting is a flag's value in args, else its default.
func (s serveSettings) setting(t *testing.T, args map[string]string, flag string) string {
	t.Helper()
	if v, ok := args[flag]; ok {
		return v
	}
	return s.def(t, flag)
}

// stopTime is how long bodycam may take to stop after SIGTERM: it serves on
// for --shutdown-delay (where the code has it), then drains for up to
// --shutdown-timeout. A grace period must be longer.
func (s serveSettings) stopTime(t *testing.T, args map[string]string) time.Duration {
	t.Helper()
	d := duration(t, "shutdown-timeout", s.setting(t, args, "shutdown-timeout"))
	if s.flags["shutdown-delay"] {
		d += duration(t, "shutdown-delay", s.setting(t, args, "shutdown-delay"))
	}
	return d
}

func duration(t *testing.T, what, v string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %q is not a duration", what, v)
	}
	return d
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSettingsFromCode guards the parser above: the defaults the deployment
// tests compare against are really read from the code.
func TestSettingsFromCode(t *testing.T) {
	s := bodycamSettings(t)
	for flag, want := range map[string]string{"http-addr": ":8080", "rtsp-addr": ":8554", "webrtc-udp-addr": ":8189", "shutdown-timeout": "30s"} {
		if got := s.def(t, flag); got != want {
			t.Errorf("default of --%s read as %q, want %q (README's table)", flag, got, want)
		}
	}
	for _, f := range []string{"config", "data-dir", "admin-token-file", "signing-key"} {
		if !s.flags[f] {
			t.Errorf("flag --%s not found in cmd/bodycam/config.go", f)
		}
	}
}
