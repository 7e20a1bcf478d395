package discovery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

// promTargets returns, per job, the discovered label sets of Prometheus's
// active targets, rendered as sorted strings, without the labels that
// differ by mechanism (job, __meta_filepath).
func promTargets(t testing.TB, p *zktest.Prometheus) map[string][]string {
	t.Helper()
	resp, err := http.Get(p.URL + "/api/v1/targets?state=active")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			ActiveTargets []struct {
				DiscoveredLabels map[string]string `json:"discoveredLabels"`
				ScrapePool       string            `json:"scrapePool"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, at := range body.Data.ActiveTargets {
		var kv []string
		for k, v := range at.DiscoveredLabels {
			if k == "job" || k == "__meta_filepath" {
				continue
			}
			kv = append(kv, fmt.Sprintf("%s=%q", k, v))
		}
		sort.Strings(kv)
		out[at.ScrapePool] = append(out[at.ScrapePool], "{"+strings.Join(kv, ", ")+"}")
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// TestSameAsPrometheus is the proof of compatibility: the same serverset
// and Nerve trees, discovered by a real Prometheus once with its built-in
// serverset_sd_configs / nerve_sd_configs and once through zkprom sd via
// file_sd, give identical target label sets.
func TestSameAsPrometheus(t *testing.T) {
	needEnsemble(t)
	zktest.ForEachPrometheus(t, testSameAsPrometheus)
}

func testSameAsPrometheus(t *testing.T, build zktest.PrometheusBuild) {
	w := writer(t, ensemble.Connect())
	root := fmt.Sprintf("/cmp-%s-%d", build.Name, time.Now().UnixNano()) // a tree per build and run
	// Serversets as Aurora and Finagle write them, at several depths,
	// with folders whose data is empty.
	put(t, w, root+"/aurora/www-data/prod/hello/member_0000000000", []byte(`{"serviceEndpoint": {"host": "127.0.0.1", "port": 31000}, "additionalEndpoints": {"aurora": {"host": "127.0.0.1", "port": 31000}, "health": {"host": "127.0.0.1", "port": 31001}}, "status": "ALIVE", "shard": 0}`))
	put(t, w, root+"/aurora/www-data/prod/hello/member_0000000001", []byte(`{"serviceEndpoint": {"host": "127.0.0.2", "port": 31000}, "additionalEndpoints": {"http-admin": {"host": "127.0.0.2", "port": 9990}, "metrics.v2": {"host": "127.0.0.2", "port": 9991}}, "status": "STARTING", "shard": 1}`))
	put(t, w, root+"/aurora/finagle/member_0000000007", []byte(`{"serviceEndpoint":{"host":"localhost","port":8080},"additionalEndpoints":{},"status":"ALIVE"}`))
	put(t, w, root+"/aurora/finagle/member_0000000008", []byte(`{"serviceEndpoint":{"host":"::1","port":8081},"status":"WARNING","shard":12}`))
	put(t, w, root+"/nerve/web/services/i-0abc_0000000001", []byte(`{"host":"127.0.0.3","port":8080,"name":"i-0abc","weight":1}`))
	put(t, w, root+"/nerve/web/services/i-0def_0000000002", []byte(`{"host":"localhost","port":8081,"name":"i-0def"}`))
	put(t, w, root+"/nerve/db/i-1_0000000003", []byte(`{"host":"127.0.0.4","port":5432,"name":""}`))

	dir := t.TempDir()
	_, _ = startManager(t, `
zookeeper: {servers: '`+ensemble.Connect()+`'}
jobs:
  - {name: serverset, format: serverset, paths: [`+root+`/aurora]}
  - {name: nerve, format: nerve, paths: [`+root+`/nerve]}
`, dir)
	var servers []string
	for _, s := range ensemble.Servers {
		servers = append(servers, fmt.Sprintf("%q", s.ClientAddr))
	}
	zs := "[" + strings.Join(servers, ", ") + "]"
	cfg := filepath.Join(t.TempDir(), "prometheus.yml")
	os.WriteFile(cfg, []byte(`
global: {scrape_interval: 1h, scrape_timeout: 1s}
scrape_configs:
  - job_name: builtin_serverset
    serverset_sd_configs: [{servers: `+zs+`, paths: [`+root+`/aurora]}]
  - job_name: zkprom_serverset
    file_sd_configs: [{files: ['`+filepath.Join(dir, "serverset.json")+`']}]
  - job_name: builtin_nerve
    nerve_sd_configs: [{servers: `+zs+`, paths: [`+root+`/nerve]}]
  - job_name: zkprom_nerve
    file_sd_configs: [{files: ['`+filepath.Join(dir, "nerve.json")+`']}]
`), 0o644)
	p, err := zktest.StartPrometheus(zktest.PrometheusOptions{Build: build, ConfigFile: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// compare waits until both discoveries list the same label sets, with
	// the counts given and each of has in them: the counts alone also
	// match the state before a change, which Prometheus may still show.
	compare := func(step string, nServerset, nNerve int, has ...string) {
		t.Helper()
		var last map[string][]string
		deadline := time.Now().Add(60 * time.Second)
		for {
			last = promTargets(t, p)
			ok := len(last["builtin_serverset"]) == nServerset && len(last["builtin_nerve"]) == nNerve &&
				fmt.Sprint(last["builtin_serverset"]) == fmt.Sprint(last["zkprom_serverset"]) &&
				fmt.Sprint(last["builtin_nerve"]) == fmt.Sprint(last["zkprom_nerve"])
			for _, h := range has {
				ok = ok && strings.Contains(fmt.Sprint(last), h)
			}
			if ok {
				t.Logf("%s: %d serverset and %d nerve targets, label sets identical, e.g. %s", step, nServerset, nNerve, last["zkprom_serverset"][0])
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		for _, pair := range [][2]string{{"builtin_serverset", "zkprom_serverset"}, {"builtin_nerve", "zkprom_nerve"}} {
			a, b := last[pair[0]], last[pair[1]]
			t.Errorf("%s: %s (%d):\n  %s\n%s (%d):\n  %s", step, pair[0], len(a), strings.Join(a, "\n  "), pair[1], len(b), strings.Join(b, "\n  "))
		}
		t.FailNow()
	}
	compare("initial", 4, 3)

	// Members come, go and change: both follow.
	del(t, w, root+"/aurora/finagle/member_0000000007")
	put(t, w, root+"/aurora/www-data/prod/hello/member_0000000002", []byte(`{"serviceEndpoint": {"host": "127.0.0.5", "port": 31000}, "additionalEndpoints": {"health": {"host": "127.0.0.5", "port": 31001}}, "status": "ALIVE", "shard": 2}`))
	put(t, w, root+"/nerve/db/i-1_0000000003", []byte(`{"host":"127.0.0.4","port":5433,"name":"i-1"}`))
	compare("after changes", 4, 3, `/member_0000000002"`, `__address__="127.0.0.4:5433"`)

	// Where they differ on purpose: a member holding {} becomes the
	// target ":0" in Prometheus's built-in discovery; zkprom sd skips it.
	put(t, w, root+"/aurora/finagle/member_0000000009", []byte(`{}`))
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := promTargets(t, p)
		builtin := strings.Join(got["builtin_serverset"], "\n")
		if len(got["builtin_serverset"]) == 5 && strings.Contains(builtin, `__address__=":0"`) {
			if n := len(got["zkprom_serverset"]); n != 4 {
				t.Errorf("zkprom sd has %d serverset targets, want 4 (the {} member skipped)", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not turn {} into :0 within 60s: %v", got["builtin_serverset"])
		}
		time.Sleep(250 * time.Millisecond)
	}
}
