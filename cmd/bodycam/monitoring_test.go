package main

// The deployment's monitoring (deploy/grafana, deploy/prometheus) checked
// against the binary: every PromQL expression parses with Prometheus' own
// parser, names only metrics a running bodycam exports, the dashboard
// decodes strictly with Grafana's schema (the Grafana Foundation SDK's
// types, generated from Grafana's own) and passes the checks Grafana makes
// on its layout, and each alert rule is complete and fires, or not, on the
// series of its scenario (alerts_test.go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	grafanaprom "github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// deployMetricsPort is the --metrics-addr port deploy/ runs its nodes with
// and deploy/prometheus scrapes (every metric, the per-device ones too).
const deployMetricsPort = "9464"

const (
	dashboardFile    = "../../deploy/grafana/bodycam.json"
	provisioningDir  = "../../deploy/grafana/provisioning"
	rulesFile        = "../../deploy/prometheus/alerts.yml"
	promConfigFile   = "../../deploy/prometheus/prometheus.yml"
	promReadmeFile   = "../../deploy/prometheus/README.md"
	grafanaReadme    = "../../deploy/grafana/README.md"
	provisionedDSUID = "prometheus" // deploy/grafana/provisioning/datasources
)

// query is one PromQL expression of the dashboard or the rules, and where.
type query struct{ where, expr string }

// grafanaVars are the variables Grafana itself provides to queries.
var grafanaVars = map[string]string{
	"__rate_interval": "1m", "__interval": "30s", "__range": "6h", "__range_s": "21600", "__interval_ms": "30000",
}

var varRef = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// substitute replaces Grafana's variables in a query as Grafana does before
// sending it: the dashboard's own with a value of theirs, Grafana's with a
// duration. It reports variables that are neither.
func substitute(expr string, own map[string]string) (string, []string) {
	var unknown []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := own[name]; ok {
			return v
		}
		if v, ok := grafanaVars[name]; ok {
			return v
		}
		unknown = append(unknown, name)
		return m
	})
	return out, unknown
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawDashboard is the part of the dashboard JSON model the checks walk.
type rawDashboard struct {
	UID           string     `json:"uid"`
	Title         string     `json:"title"`
	SchemaVersion int        `json:"schemaVersion"`
	Panels        []rawPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *rawDatasource  `json:"datasource"`
			Current    struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type rawDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type rawPanel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	Datasource  *rawDatasource           `json:"datasource"`
	Description string                   `json:"description"`
	Panels      []rawPanel               `json:"panels"` // a collapsed row's
	Targets     []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *rawDatasource `json:"datasource"`
	} `json:"targets"`
}

// variableValues gives each of the dashboard's variables a value a query
// may hold: the data source's uid, a node for $instance.
func (d rawDashboard) variableValues() map[string]string {
	own := map[string]string{}
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			own[v.Name] = provisionedDSUID
		default:
			own[v.Name] = "bodycam-1:8080"
		}
	}
	return own
}

// labelValues is Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)

// queries are the dashboard's PromQL expressions: every target's, and the
// selectors of its query variables.
func (d rawDashboard) queries() []query {
	var out []query
	var walk func([]rawPanel)
	walk = func(ps []rawPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, query{fmt.Sprintf("panel %d %q query %s", p.ID, p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			out = append(out, query{fmt.Sprintf("variable %s", v.Name), m[1]})
		} else {
			out = append(out, query{fmt.Sprintf("variable %s", v.Name), v.Definition})
		}
	}
	return out
}

func loadDashboard(t *testing.T) (rawDashboard, []byte) {
	t.Helper()
	b := readFile(t, dashboardFile)
	var d rawDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d, b
}

// checkDashboard is what Grafana requires of a dashboard's JSON model and
// what this one promises: Grafana's schema (strict: no unknown field, every
// required one, each panel's options and each Prometheus query by their
// own types), unique panel ids, panels within the 24 columns and not
// overlapping, a data source and queries with distinct refIds on every
// panel, only variables the dashboard defines, and PromQL that parses.
func checkDashboard(raw []byte) []error {
	var errs []error
	plugins.RegisterDefaultPlugins()
	var sd dashboard.Dashboard
	if err := schemaErr(sd.UnmarshalJSONStrict(raw)); err != nil {
		return append(errs, fmt.Errorf("Grafana's dashboard schema: %v", err))
	}
	if err := schemaErr(sd.Validate()); err != nil {
		errs = append(errs, fmt.Errorf("Grafana's dashboard constraints: %v", err))
	}
	for _, p := range sd.Panels {
		if p.Panel == nil {
			continue
		}
		title := ""
		if p.Panel.Title != nil {
			title = *p.Panel.Title
		}
		if _, ok := p.Panel.Options.(map[string]any); ok || p.Panel.Options == nil {
			errs = append(errs, fmt.Errorf("panel %q: options of type %q are not checked by a schema", title, p.Panel.Type))
		}
		for _, q := range p.Panel.Targets {
			if _, ok := q.(*grafanaprom.Dataquery); !ok {
				errs = append(errs, fmt.Errorf("panel %q: a query that is not a Prometheus query (%T)", title, q))
			}
		}
	}

	var d rawDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return append(errs, err)
	}
	if d.SchemaVersion < 39 {
		errs = append(errs, fmt.Errorf("schemaVersion %d: older than Grafana 11's", d.SchemaVersion))
	}
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		errs = append(errs, fmt.Errorf("uid %q (1 to 40 characters) and title %q must be set", d.UID, d.Title))
	}
	own := d.variableValues()
	ids := map[int]string{}
	var flat []rawPanel
	var walk func([]rawPanel)
	walk = func(ps []rawPanel) {
		for _, p := range ps {
			flat = append(flat, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for i, p := range flat {
		if other, ok := ids[p.ID]; ok || p.ID <= 0 {
			errs = append(errs, fmt.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, other))
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			errs = append(errs, fmt.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g))
		}
		for _, q := range flat[:i] {
			o := q.GridPos
			if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
				errs = append(errs, fmt.Errorf("panels %q and %q overlap: %+v, %+v", q.Title, p.Title, o, g))
			}
		}
		for _, s := range []string{p.Title, p.Description} {
			if _, unknown := substitute(s, own); len(unknown) > 0 {
				errs = append(errs, fmt.Errorf("panel %q: undefined variables %v", p.Title, unknown))
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID == "" {
			errs = append(errs, fmt.Errorf("panel %q: no Prometheus data source", p.Title))
		} else if _, unknown := substitute(p.Datasource.UID, own); len(unknown) > 0 {
			errs = append(errs, fmt.Errorf("panel %q: data source of undefined variables %v", p.Title, unknown))
		}
		if len(p.Targets) == 0 {
			errs = append(errs, fmt.Errorf("panel %q: no queries", p.Title))
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				errs = append(errs, fmt.Errorf("panel %q: query refId %q missing or repeated", p.Title, tg.RefID))
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && p.Datasource != nil && *tg.Datasource != *p.Datasource {
				errs = append(errs, fmt.Errorf("panel %q query %s: another data source than its panel's", p.Title, tg.RefID))
			}
		}
	}
	for _, q := range d.queries() {
		if _, err := parseQuery(q.expr, own); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", q.where, err))
		}
	}
	return errs
}

// schemaErr is the SDK's error, nil when it is an empty list of errors
// (which it returns as a non-nil error).
func schemaErr(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

// parseQuery parses a query with Prometheus' parser, after Grafana's
// variables are replaced as Grafana would.
func parseQuery(expr string, own map[string]string) (parser.Expr, error) {
	s, unknown := substitute(expr, own)
	if len(unknown) > 0 {
		return nil, fmt.Errorf("undefined variables %v in %s", unknown, expr)
	}
	e, err := promqlParser.ParseExpr(s)
	if err != nil {
		return nil, fmt.Errorf("%v in %s", err, s)
	}
	return e, nil
}

// metricNames are the metrics an expression selects.
func metricNames(e parser.Expr) []string {
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && name == "" {
					name = m.Value // an equality matcher on the name; a regex one would be a list
				}
			}
			names = append(names, name)
		}
		return nil
	})
	return names
}

func TestDashboardSchema(t *testing.T) {
	d, raw := loadDashboard(t)
	for _, err := range checkDashboard(raw) {
		t.Error(err)
	}
	if n := len(d.queries()); n < 30 {
		t.Errorf("only %d queries found: the walk of the dashboard is broken", n)
	}
	if t.Failed() {
		return
	}
	// The checks catch what they are for: each mutation is refused.
	mutations := []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"unknown option", func(m map[string]any) { panel(m, 1)["options"].(map[string]any)["legnd"] = true }},
		{"query without its expr", func(m map[string]any) { delete(target(m, 2), "expr") }},
		{"duplicate id", func(m map[string]any) { panel(m, 2)["id"] = panel(m, 1)["id"] }},
		{"overlap", func(m map[string]any) { panel(m, 2)["gridPos"] = panel(m, 1)["gridPos"] }},
		{"past 24 columns", func(m map[string]any) { panel(m, 1)["gridPos"].(map[string]any)["x"] = 22.0 }},
		{"undefined variable", func(m map[string]any) { target(m, 2)["expr"] = `up{instance=~"$node"}` }},
		{"bad PromQL", func(m map[string]any) { target(m, 2)["expr"] = `sum by (instance (up)` }},
		{"repeated refId", func(m map[string]any) {
			p := panel(m, 2)
			p["targets"] = append(p["targets"].([]any), p["targets"].([]any)[0])
		}},
		{"no data source", func(m map[string]any) { delete(panel(m, 2), "datasource") }},
	}
	for _, mu := range mutations {
		var m map[string]any
		json.Unmarshal(raw, &m)
		mu.mutate(m)
		b, _ := json.Marshal(m)
		if errs := checkDashboard(b); len(errs) == 0 {
			t.Errorf("mutation %q passed the checks", mu.name)
		} else {
			t.Logf("mutation %q: %v", mu.name, errs[0])
		}
	}
}

// panel is the i-th panel of a dashboard's JSON; target its first query.
func panel(m map[string]any, i int) map[string]any {
	return m["panels"].([]any)[i].(map[string]any)
}

func target(m map[string]any, i int) map[string]any {
	return panel(m, i)["targets"].([]any)[0].(map[string]any)
}

// The README describes every panel.
func TestDashboardDocumented(t *testing.T) {
	d, _ := loadDashboard(t)
	readme := string(readFile(t, grafanaReadme))
	for _, p := range d.Panels {
		want := "**" + p.Title + "**"
		if p.Type == "row" {
			want = "### " + p.Title + "\n"
		}
		if !strings.Contains(readme, want) {
			t.Errorf("deploy/grafana/README.md does not describe %s %q", p.Type, p.Title)
		}
	}
}

// Grafana's provisioning: the data source the dashboard's variable selects
// by default, and the folder compose mounts the dashboard into.
func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL, Access string
			IsDefault                    bool `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(provisioningDir, "datasources", "prometheus.yaml")), &ds); err != nil {
		t.Fatal(err)
	}
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].UID != provisionedDSUID || ds.Datasources[0].Type != "prometheus" ||
		!strings.HasSuffix(ds.Datasources[0].URL, ":9090") {
		t.Errorf("data source provisioning: %+v", ds)
	}
	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type string
			Options    struct{ Path string }
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(provisioningDir, "dashboards", "bodycam.yaml")), &dp); err != nil {
		t.Fatal(err)
	}
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path == "" {
		t.Errorf("dashboard provisioning: %+v", dp)
	}
	d, _ := loadDashboard(t)
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Current.Value != provisionedDSUID {
			t.Errorf("the dashboard's data source variable selects %v by default, not the provisioned %q", v.Current.Value, provisionedDSUID)
		}
	}
}

// rule is one alert of alerts.yml.
type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(readFile(t, rulesFile))))
	dec.KnownFields(true) // a misspelt key (expresion, annotation) would be dropped silently
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a name and rules are needed", g.Name)
		}
		rules = append(rules, g.Rules...)
	}
	return rules
}

// Prometheus' template functions, for parsing annotations (their bodies
// do not matter here).
var promTemplateFuncs = template.FuncMap{}

func init() {
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp",
		"toTime", "title", "toUpper", "toLower", "match", "reReplaceAll", "query", "first", "label", "value", "sortByLabel",
		"args", "safeHtml", "stripPort", "stripDomain", "pathPrefix", "externalURL", "graphLink", "tableLink", "strvalue", "parseDuration"} {
		promTemplateFuncs[f] = func(...any) any { return nil }
	}
}

// Each alert is complete: an expression that parses, a for, a severity,
// a summary, a description and a runbook section that exists, and
// annotations that are valid templates.
func TestAlertRules(t *testing.T) {
	rules := loadRules(t)
	if len(rules) < 8 {
		t.Fatalf("only %d alert rules", len(rules))
	}
	readme := string(readFile(t, promReadmeFile))
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" || seen[r.Alert] {
			t.Errorf("alert name %q missing or repeated", r.Alert)
		}
		seen[r.Alert] = true
		if _, err := promqlParser.ParseExpr(r.Expr); err != nil {
			t.Errorf("%s: %v", r.Alert, err)
		}
		if d, err := model.ParseDuration(r.For); err != nil || d <= 0 {
			t.Errorf("%s: for %q: %v (each alert waits a while before it fires)", r.Alert, r.For, err)
		}
		if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
			t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: no %s", r.Alert, a)
			}
		}
		anchor := "#" + strings.ToLower(r.Alert)
		if r.Annotations["runbook"] != "deploy/prometheus/README.md"+anchor || !strings.Contains(readme, "### "+r.Alert+"\n") {
			t.Errorf("%s: runbook %q; want deploy/prometheus/README.md%s and a \"### %s\" section there", r.Alert, r.Annotations["runbook"], anchor, r.Alert)
		}
		for name, text := range r.Annotations {
			// Prometheus defines these before expanding an annotation.
			src := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}" + text
			if _, err := template.New(name).Funcs(promTemplateFuncs).Parse(src); err != nil {
				t.Errorf("%s: annotation %s: %v", r.Alert, name, err)
			}
		}
	}
}

// The scrape configuration: the nodes the compose file names, on the
// default HTTP port, in the job the rules and the dashboard select, and the
// rule file beside it.
func TestPrometheusConfig(t *testing.T) {
	var c struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
			ScrapeTimeout      string `yaml:"scrape_timeout"`
		} `yaml:"global"`
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			Scheme        string `yaml:"scheme"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(readFile(t, promConfigFile))))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{c.Global.ScrapeInterval, c.Global.EvaluationInterval, c.Global.ScrapeTimeout} {
		if _, err := model.ParseDuration(d); err != nil {
			t.Errorf("global: %v", err)
		}
	}
	if len(c.RuleFiles) != 1 || filepath.Join(filepath.Dir(promConfigFile), c.RuleFiles[0]) != filepath.Clean(rulesFile) {
		t.Errorf("rule_files %v: want alerts.yml beside prometheus.yml", c.RuleFiles)
	}
	port := deployMetricsPort
	want := []string{"bodycam-1:" + port, "bodycam-2:" + port, "bodycam-3:" + port}
	if len(c.ScrapeConfigs) != 1 || c.ScrapeConfigs[0].JobName != "bodycam" || c.ScrapeConfigs[0].MetricsPath != "/metrics" ||
		len(c.ScrapeConfigs[0].StaticConfigs) != 1 || !slices.Equal(c.ScrapeConfigs[0].StaticConfigs[0].Targets, want) {
		t.Errorf("scrape_configs %+v: want job bodycam scraping %v/metrics", c.ScrapeConfigs, want)
	}
	for _, r := range loadRules(t) {
		if strings.Contains(r.Expr, "job=") && !strings.Contains(r.Expr, `job="bodycam"`) {
			t.Errorf("%s selects another job than the scrape configuration's", r.Alert)
		}
	}
}

// synthetic are the series Prometheus makes itself, not the target.
var synthetic = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// Every metric the dashboard and the rules name is one a running bodycam
// exports: the real binary, after a workload that makes the series that
// appear with their first event (a recording over a lossy uplink for a
// case its officer may not add to, a refused publisher, refused and
// limited sign-ins, a verification).
func TestMonitoringMetricsExist(t *testing.T) {
	d, _ := loadDashboard(t)
	own := d.variableValues()
	var qs []query
	qs = append(qs, d.queries()...)
	for _, r := range loadRules(t) {
		qs = append(qs, query{"alert " + r.Alert, r.Expr})
	}
	used := map[string][]string{} // metric -> where
	for _, q := range qs {
		e, err := parseQuery(q.expr, own)
		if err != nil {
			t.Fatalf("%s: %v", q.where, err)
		}
		for _, n := range metricNames(e) {
			if n == "" {
				t.Errorf("%s: a selector without a metric name cannot be checked", q.where)
			}
			used[n] = append(used[n], q.where)
		}
	}

	dataDir := t.TempDir()
	mport, _ := testsvc.FreePort()
	metricsAddr := "127.0.0.1:" + strconv.Itoa(mport)
	s := start(t, dataDir, "--segment-duration", "1s", "--metrics-addr", metricsAddr)
	admin := s.token()
	aud := s.roleToken(admin, "aud-m", "auditor")
	// A recording over a lossy uplink (lost packets, gaps), published for a
	// case that does not exist (a refused case link).
	sim := exec.Command(binary, "simulate", "--api", s.url, "--data-dir", dataDir, "--devices", "1", "--mode", "clip",
		"--size", "320x240", "--bitrate", "500k", "--duration", "5s", "--prefix", "mon-", "--loss", "0.03", "--case", "NO-SUCH-CASE")
	if out, err := sim.CombinedOutput(); err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	rec := s.waitStored(aud, "mon-1")
	if code, body := s.call("POST", "/api/v1/recordings/"+rec.ID+"/verify", aud, ""); code != 200 {
		t.Fatalf("verify: %d %s", code, body)
	}
	// A publisher with a wrong secret.
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "1",
		"-c:v", "libx264", "-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://mon-1:wrong@"+s.arg("--rtsp-addr")+"/mon-1").CombinedOutput()
	if err == nil {
		t.Fatalf("a wrong secret published: %s", out)
	}
	// Sign-ins with a wrong password from one address until one is held back.
	var wg sync.WaitGroup
	limited := make(chan int, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(s.url+"/api/v1/session", "application/json",
				strings.NewReader(`{"user":"nobody-`+strconv.Itoa(i)+`","password":"a wrong password"}`))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 429 || resp.StatusCode == 503 {
					limited <- resp.StatusCode
				}
			}
		}()
	}
	wg.Wait()
	if len(limited) == 0 {
		t.Fatal("64 sign-ins at once from one address: none held back")
	}

	// The operations listener (--metrics-addr) has everything; the HTTP
	// port's /metrics, which clients reach, not which recorders publish
	// and when.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, public := s.call("GET", "/metrics", "", "")
	names := func(body string) map[string]bool {
		out := map[string]bool{}
		for _, line := range strings.Split(body, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			out[line[:strings.IndexAny(line, "{ ")]] = true // a histogram's as _bucket, _sum, _count
		}
		return out
	}
	exported, open := names(string(all)), names(public)
	for _, n := range []string{"bodycam_ingest_device_last_publish_timestamp_seconds", "bodycam_ingest_device_last_stop_timestamp_seconds"} {
		if !exported[n] || open[n] || strings.Contains(public, "mon-1") {
			t.Errorf("%s: on --metrics-addr %v, on the HTTP port %v (device ids there: %v); want only the former", n, exported[n], open[n], strings.Contains(public, "mon-1"))
		}
	}
	for n := range open {
		if !exported[n] {
			t.Errorf("%s is on the HTTP port's /metrics but not on --metrics-addr", n)
		}
	}
	var usedNames []string
	for n := range used {
		usedNames = append(usedNames, n)
	}
	sort.Strings(usedNames)
	for _, n := range usedNames {
		if !exported[n] && !synthetic[n] {
			t.Errorf("%s (used by %s) is not in a running bodycam's /metrics", n, strings.Join(used[n], "; "))
		}
	}
	t.Logf("%d metrics used by the dashboard and the rules: %s", len(usedNames), strings.Join(usedNames, " "))
	s.stop()
}

// promqlParser is Prometheus' PromQL parser with its default options (those
// of a Prometheus server without feature flags).
var promqlParser = parser.NewParser(parser.Options{})
