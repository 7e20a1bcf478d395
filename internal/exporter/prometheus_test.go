package exporter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

// promGet GETs a Prometheus API path and decodes its data.
func promGet(t *testing.T, p *zktest.Prometheus, path string, data any) {
	t.Helper()
	resp, err := http.Get(p.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("GET %s: status %q, %v", path, body.Status, err)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func activeAlerts(t *testing.T, p *zktest.Prometheus) []promAlert {
	var d struct {
		Alerts []promAlert `json:"alerts"`
	}
	promGet(t, p, "/api/v1/alerts", &d)
	return d.Alerts
}

func queryValue(t *testing.T, p *zktest.Prometheus, q string) (string, bool) {
	var d struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	promGet(t, p, "/api/v1/query?query="+url.QueryEscape(q), &d)
	if len(d.Result) != 1 {
		return "", false
	}
	return fmt.Sprint(d.Result[0].Value[1]), true
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// loadDependent are alerts about speed: on a loaded test machine a freshly
// restarted JVM can really be slow, so the test does not judge them.
var loadDependent = map[string]bool{
	"ZooKeeperHighRequestLatency": true, "ZooKeeperOutstandingRequests": true, "ZooKeeperSlowFsync": true,
}

// TestPrometheusWithAlertRules: a real Prometheus scrapes the exporter
// (/metrics and /probe?ensemble=) with deploy/exporter/alerts.yml loaded;
// killing a follower makes the server-down and quorum-at-risk alerts go
// pending, and nothing else.
func TestPrometheusWithAlertRules(t *testing.T) {
	needZooKeeper(t)
	zktest.ForEachPrometheus(t, testPrometheusWithAlertRules)
}

func testPrometheusWithAlertRules(t *testing.T, build zktest.PrometheusBuild) {
	ts := newTestServer(t, mainConfig(5*time.Second), nil)
	ts.scrape(t, "/metrics") // warm: connections open, as in a running exporter
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(deployDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(ts.srv.URL, "http://")
	cfg := fmt.Sprintf(`global: {scrape_interval: 2s, scrape_timeout: 1900ms, evaluation_interval: 1s}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: zookeeper
    static_configs: [{targets: [%q]}]
  - job_name: zookeeper-ensembles
    metrics_path: /probe
    params: {ensemble: [main]}
    static_configs: [{targets: [%q]}]
`, host, host)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := zktest.StartPrometheus(zktest.PrometheusOptions{Build: build, ConfigFile: filepath.Join(dir, "prometheus.yml")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	var rs struct {
		Groups []struct {
			Rules []struct {
				Name   string `json:"name"`
				Health string `json:"health"`
			} `json:"rules"`
		} `json:"groups"`
	}
	promGet(t, p, "/api/v1/rules", &rs)
	n := 0
	for _, g := range rs.Groups {
		n += len(g.Rules)
	}
	if n < 14 {
		t.Errorf("Prometheus loaded %d rules", n)
	}
	eventually(t, "both jobs scraped with one leader", func() bool {
		a, _ := queryValue(t, p, `sum(up{job=~"zookeeper.*"})`)
		b, _ := queryValue(t, p, `count(zookeeper_ensemble_leaders{ensemble="main"} == 1)`)
		return a == "2" && b == "2"
	})
	for _, a := range activeAlerts(t, p) {
		if !loadDependent[a.Labels["alertname"]] {
			t.Errorf("healthy ensemble, yet alert %v is %s", a.Labels, a.State)
		}
	}

	f := followers(t)[0]
	killed := ens.Servers[f].ClientAddr
	if err := ens.Kill(f); err != nil {
		t.Fatal(err)
	}
	defer restart(t, f)
	eventually(t, "server-down and quorum-at-risk alerts", func() bool {
		down, risk := false, false
		for _, a := range activeAlerts(t, p) {
			switch a.Labels["alertname"] {
			case "ZooKeeperServerDown":
				down = down || a.Labels["server"] == killed
			case "ZooKeeperQuorumAtRisk":
				risk = risk || a.Labels["ensemble"] == "main"
			}
		}
		return down && risk
	})
	for _, a := range activeAlerts(t, p) {
		switch name := a.Labels["alertname"]; {
		case name == "ZooKeeperServerDown", name == "ZooKeeperQuorumAtRisk", loadDependent[name]:
		default:
			t.Errorf("one follower down, yet alert %v is %s", a.Labels, a.State)
		}
	}
}
