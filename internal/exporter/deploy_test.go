package exporter

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/zktest"
)

const deployDir = "../../deploy/exporter"

// forEachPromtool runs f with the promtool of every Prometheus build the
// tests run against; with -short, Debian's alone (the pinned 3.x is built
// by make deps, which make unit does not need).
func forEachPromtool(t *testing.T, f func(t *testing.T, promtool string)) {
	if testing.Short() {
		b, err := zktest.DebianPrometheus()
		if err != nil {
			t.Fatal(err)
		}
		f(t, b.Promtool)
		return
	}
	zktest.ForEachPrometheus(t, func(t *testing.T, b zktest.PrometheusBuild) { f(t, b.Promtool) })
}

func promtool(t *testing.T, path, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// emittedFamilies are the families the exporter can emit, sorted by name:
// everything the fixtures produce, the optional series and the
// exporter's own metrics.
func emittedFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	p := resultsPage(fixtureResults(t), newSeriesCache())
	emitZnodes(newEmitter(p, newSeriesCache()).with("ensemble", "x"), []ZnodeCount{{Path: "/a", Children: 1}})
	emitDroppedKeys(newEmitter(p, newSeriesCache()).with("ensemble", "x").with("server", "zk1:2181"), droppedTooMany, 1)
	reg := prometheus.NewRegistry()
	x, err := New(nil, EnsembleConfig{}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	// The scrape error series appear with a server's first failure.
	x.countErrors("x", &ServerResult{Server: "zk1:2181", Commands: []CommandResult{{Command: "mntr", Source: SourceFourLetter, Err: errParse}}})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range parseExposition(t, pageText(p)).mfs {
		mfs = append(mfs, mf)
	}
	sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
	return mfs
}

// knownFamilies are the metric names the exporter can emit.
func knownFamilies(t *testing.T) map[string]bool {
	known := map[string]bool{}
	for _, mf := range emittedFamilies(t) {
		known[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_SUMMARY {
			known[mf.GetName()+"_sum"] = true
			known[mf.GetName()+"_count"] = true
		}
	}
	return known
}

var metricRef = regexp.MustCompile(`\bzookeeper_[a-zA-Z0-9_]+`)

func checkRefs(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	for _, name := range metricRef.FindAllString(expr, -1) {
		if !known[name] {
			t.Errorf("%s: %s is not a metric the exporter emits", where, name)
		}
	}
}

func TestAlertRules(t *testing.T) {
	forEachPromtool(t, func(t *testing.T, path string) {
		promtool(t, path, deployDir, "check", "rules", "alerts.yml")
		promtool(t, path, deployDir, "test", "rules", "alerts_test.yml")
	})

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(deployDir, "alerts.yml"), &rules)
	var tests struct {
		Tests []struct {
			Alerts []struct {
				Name   string `yaml:"alertname"`
				Alerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join(deployDir, "alerts_test.yml"), &tests)
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.Alerts {
			if len(a.Alerts) > 0 {
				firing[a.Name] = true
			} else {
				quiet[a.Name] = true
			}
		}
	}
	known := knownFamilies(t)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !firing[r.Alert] {
				t.Errorf("alert %s has no test where it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alert %s has no test where it stays quiet", r.Alert)
			}
			checkRefs(t, "alert "+r.Alert, r.Expr, known)
		}
	}
	if n < 14 {
		t.Errorf("only %d alerts", n)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	known := knownFamilies(t)
	exprs := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs++
			checkRefs(t, "panel "+p.Title, tg.Expr, known)
		}
	}
	for _, v := range d.Templating.List {
		checkRefs(t, "variable "+v.Name, v.Definition, known)
	}
	// The list: state and leader, quorum headroom, latency,
	// throughput, outstanding requests, connections, znodes, watches,
	// fsync, zxid lag.
	all := string(b)
	for _, want := range []string{"zookeeper_server_state", "zookeeper_ensemble_leaders", "zookeeper_ensemble_failures_tolerated",
		"zookeeper_latency", "zookeeper_packets_received_total", "zookeeper_outstanding_requests", "zookeeper_num_alive_connections",
		"zookeeper_znodes", "zookeeper_watches", "zookeeper_fsynctime", "zookeeper_ensemble_zxid_lag"} {
		if !strings.Contains(all, want) {
			t.Errorf("dashboard does not show %s", want)
		}
	}
	if exprs < 20 {
		t.Errorf("dashboard has only %d queries", exprs)
	}
}

func TestExampleConfigs(t *testing.T) {
	forEachPromtool(t, func(t *testing.T, path string) { promtool(t, path, deployDir, "check", "config", "prometheus.yml") })
	// exporter.yml names TLS files under /etc/zkprom: point them at real ones.
	b, err := os.ReadFile(filepath.Join(deployDir, "exporter.yml"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := zktest.GenerateCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("/etc/zkprom/zookeeper-ca.pem", certs.CAFile,
		"/etc/zkprom/client.pem", certs.ClientCert, "/etc/zkprom/client-key.pem", certs.ClientKey).Replace(string(b))
	cfg, err := ParseConfig([]byte(s))
	if err != nil {
		t.Fatalf("exporter.yml: %v", err)
	}
	var names []string
	for _, e := range cfg.Ensembles {
		names = append(names, e.Name)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "kafka,main" {
		t.Errorf("ensembles %v", names)
	}
}

var update = flag.Bool("update", false, "rewrite the generated parts of docs/exporter.md")

const docPath = "../../docs/exporter.md"

// metricsDoc renders the metric families the exporter emits as two
// Markdown tables: its own facts, and the families made from ZooKeeper's
// mntr/monitor keys (from the 3.4, 3.5 and 3.8 fixtures).
func metricsDoc(t *testing.T) string {
	t.Helper()
	mfs := emittedFamilies(t)
	var own, keys strings.Builder
	head := "| metric | type | labels | description |\n|---|---|---|---|\n"
	own.WriteString(head)
	keys.WriteString(head)
	for _, mf := range mfs {
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, "`"+l+"`")
		}
		sort.Strings(ls)
		row := fmt.Sprintf("| `%s` | %s | %s | %s |\n", mf.GetName(), strings.ToLower(mf.GetType().String()),
			strings.Join(ls, " "), strings.ReplaceAll(mf.GetHelp(), "|", "\\|"))
		if strings.HasPrefix(mf.GetHelp(), "ZooKeeper's zk_") {
			keys.WriteString(row)
		} else {
			own.WriteString(row)
		}
	}
	return "<!-- Generated by `go test ./internal/exporter -run TestDocumentationMetrics -update`; do not edit. -->\n\n" +
		"### Liveness, state, ensemble view and the exporter itself\n\n" + own.String() +
		"\n### From ZooKeeper's mntr / AdminServer monitor keys\n\n" +
		"Listed from the 3.4, 3.5 and 3.8 fixtures; keys a newer server adds come through the same way (as gauges).\n\n" + keys.String()
}

// replaceSection puts body between <!-- BEGIN name --> and <!-- END name -->.
func replaceSection(doc, name, body string) (string, bool) {
	begin, end := "<!-- BEGIN "+name+" -->\n", "<!-- END "+name+" -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		return doc, false
	}
	return doc[:i+len(begin)] + body + doc[j:], true
}

// TestDocumentationMetrics keeps the metrics tables of docs/exporter.md
// equal to what the code emits.
func TestDocumentationMetrics(t *testing.T) {
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	want, ok := replaceSection(string(b), "METRICS", metricsDoc(t))
	if !ok {
		t.Fatalf("%s has no <!-- BEGIN METRICS --> ... <!-- END METRICS --> section", docPath)
	}
	if *update {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(b) != want {
		t.Fatalf("%s is out of date with the code: run go test ./internal/exporter -run TestDocumentationMetrics -update", docPath)
	}
}
