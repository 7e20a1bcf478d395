package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/shard"
	"github.com/zkprom/zkprom/internal/zk"
)

var unitZK = zk.Config{Servers: "127.0.0.1:2181"}

// The leader variant lists the marker rule file, whatever form
// rule_files has, and the marker is found in a loaded configuration the
// way Prometheus shows it (paths joined with the config's directory).
func TestLeaderMarker(t *testing.T) {
	for name, main := range map[string]string{
		"absent":     "global: {}\n",
		"null":       "rule_files:\nglobal: {}\n",
		"block list": "rule_files:\n  - rules/*.yml\n",
		"flow list":  "rule_files: [a.yml, b.yml]\n",
	} {
		out, err := addRuleFile([]byte(main), bundle.LeaderMarker)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var cfg struct {
			RuleFiles []string `yaml:"rule_files"`
		}
		if err := yaml.Unmarshal(out, &cfg); err != nil || len(cfg.RuleFiles) == 0 || cfg.RuleFiles[len(cfg.RuleFiles)-1] != bundle.LeaderMarker {
			t.Errorf("%s: rule_files %q (%v) in\n%s", name, cfg.RuleFiles, err, out)
		}
		if strings.Contains(main, "a.yml") && !strings.Contains(string(out), "a.yml") {
			t.Errorf("%s: lost the other rule files:\n%s", name, out)
		}
	}
	if _, err := addRuleFile([]byte("rule_files: x.yml\n"), bundle.LeaderMarker); err == nil {
		t.Error("rule_files that is not a list was accepted")
	}
	for loaded, want := range map[string]bool{
		"global:\n  scrape_interval: 15s\nrule_files:\n- /srv/p/current/rules/a.yml\n- /srv/p/current/" + bundle.LeaderMarker + "\n": true,
		"global:\n  scrape_interval: 15s\nrule_files:\n- /srv/p/current/rules/a.yml\n":                                               false,
		"global:\n  scrape_interval: 15s\n": false,
	} {
		if got, err := runsOverlay(loaded); err != nil || got != want {
			t.Errorf("runsOverlay(%q) = %t, %v; want %t", loaded, got, err, want)
		}
	}
	if _, err := runsOverlay("rule_files: [\n"); err == nil {
		t.Error("a loaded configuration that is not YAML was read")
	}
}

func TestShardTargetKey(t *testing.T) {
	a := model.LabelSet{"__address__": "h:1", "__metrics_path__": "/m", "__param_b": "2", "__param_a": "1", "env": "x"}
	b := model.LabelSet{"__address__": "h:1", "__metrics_path__": "/m", "__param_a": "1", "__param_b": "2", "env": "y", "__meta_x": "z"}
	if shardTargetKey("j", a) != shardTargetKey("j", b) {
		t.Error("labels other than address, path and params changed the key")
	}
	for _, c := range []model.LabelSet{
		{"__address__": "h:2", "__metrics_path__": "/m", "__param_a": "1", "__param_b": "2"},
		{"__address__": "h:1", "__metrics_path__": "/n", "__param_a": "1", "__param_b": "2"},
		{"__address__": "h:1", "__metrics_path__": "/m", "__param_a": "1"},
	} {
		if shardTargetKey("j", a) == shardTargetKey("j", c) {
			t.Errorf("%v has the same key as %v", c, a)
		}
	}
	if shardTargetKey("j", a) == shardTargetKey("k", a) {
		t.Error("the job is not part of the key")
	}
}

func TestRenderShareFile(t *testing.T) {
	if got := string(renderShareFile(nil)); got != "[]\n" {
		t.Errorf("empty share: %q", got)
	}
	got := string(renderShareFile([]shard.Target{{Key: "k", Labels: map[string]string{"__address__": "h:1", "env": "x"}}}))
	if !strings.Contains(got, `"targets": [`) || !strings.Contains(got, `"h:1"`) || !strings.Contains(got, `"env": "x"`) || strings.Contains(got, "__address__") {
		t.Errorf("share file:\n%s", got)
	}
}

func TestFleetBadFlags(t *testing.T) {
	for name, f := range map[string]FleetConfig{
		"negative weight": {Weight: -1},
		"bad group":       {HAGroup: "a/b"},
	} {
		_, err := New(nil, Config{Cluster: "c", Member: "m", ConfigDir: t.TempDir(), Prometheus: prom.Config{URL: "http://127.0.0.1:9090"}, Fleet: f}, nil, nil)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "--") {
			t.Errorf("%s: error does not name the flag: %v", name, err)
		}
	}
}

func TestVariantDirs(t *testing.T) {
	d := disk{dir: t.TempDir()}
	if err := d.init(); err != nil {
		t.Fatal(err)
	}
	leaderFiles := map[string][]byte{"prometheus.yml": []byte("x: 1\n"), bundle.LeaderMarker: []byte(markerContent)}
	// A leader variant without the marker (laid down by an older agent)
	// is not complete: it would run the overlay unseen by the next leader.
	if err := d.stageVariant(3, true, "sum", "m", &bundle.Bundle{Files: map[string][]byte{"prometheus.yml": []byte("x: 1\n")}}); err != nil {
		t.Fatal(err)
	}
	if d.completeVariant(3, true, "sum") {
		t.Error("a leader variant without the marker counts as complete")
	}
	if err := d.stageVariant(3, true, "sum", "m", &bundle.Bundle{Files: leaderFiles}); err != nil {
		t.Fatal(err)
	}
	if !d.completeVariant(3, true, "sum") || d.completeVariant(3, false, "sum") {
		t.Error("variant completeness")
	}
	if err := d.linkTo(relVariantDir(3, true)); err != nil {
		t.Fatal(err)
	}
	if rev, _ := d.linked(); rev != 3 || !d.linkedLeader() {
		t.Errorf("linked %d leader %t, want 3 true", rev, d.linkedLeader())
	}
	if err := d.pruneVariants(-1, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.variantDir(3, true)); err != nil {
		t.Errorf("the live variant was pruned: %v", err)
	}
	if err := d.stageVariant(4, true, "sum", "m", &bundle.Bundle{Files: leaderFiles}); err != nil {
		t.Fatal(err)
	}
	if err := d.linkTo(relRevDir(4)); err != nil {
		t.Fatal(err)
	}
	d.pruneVariants(-1, 0)
	if _, err := os.Stat(d.variantDir(3, true)); !os.IsNotExist(err) {
		t.Errorf("an old variant was kept: %v", err)
	}
}

// Only "nothing serves there" lets a new leader take over unchecked: a
// refused connection or no answer in time. A TLS failure or an HTTP
// error proves nothing.
func TestNotServing(t *testing.T) {
	get := func(url string) error {
		pc, err := prom.New(prom.Config{URL: url, HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = pc.LoadedConfig(context.Background())
		return err
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + closed.Addr().String()
	closed.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers: a frozen process
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusUnauthorized) }))
	defer failing.Close()
	for url, want := range map[string]bool{
		refused:                            true,
		"http://" + silent.Addr().String(): true,
		tlsSrv.URL:                         false,
		failing.URL:                        false,
	} {
		err := get(url)
		if err == nil || notServing(err) != want {
			t.Errorf("%s: error %v: notServing %t, want %t", url, err, err != nil && notServing(err), want)
		}
	}
}

// The systemd drop-in that keeps a Prometheus from starting with the
// overlay: its ExecStartPre, unescaped as systemd does, run on a layout.
func TestPrometheusDropIn(t *testing.T) {
	data, err := os.ReadFile("../../deploy/config/prometheus-zkprom.conf")
	if err != nil {
		t.Fatal(err)
	}
	var cmd string
	for _, l := range strings.Split(string(data), "\n") {
		if c, ok := strings.CutPrefix(l, "ExecStartPre="); ok {
			cmd = strings.NewReplacer("$$", "$", "%%", "%").Replace(c)
		}
	}
	if cmd == "" {
		t.Fatal("no ExecStartPre in the drop-in")
	}
	for link, want := range map[string]string{
		"revisions/r-0000000003.leader": "revisions/r-0000000003",
		"revisions/r-0000000003":        "revisions/r-0000000003",
		"":                              "", // no link yet: nothing to do, no failure
	} {
		d := disk{dir: t.TempDir()}
		for _, v := range []string{"r-0000000003", "r-0000000003.leader"} {
			if err := os.MkdirAll(filepath.Join(d.dir, "revisions", v), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if link != "" {
			if err := os.Symlink(link, filepath.Join(d.dir, "current")); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command("sh", "-c", strings.ReplaceAll(cmd, "/var/lib/zkprom-agent/main", d.dir)).CombinedOutput()
		if err != nil {
			t.Errorf("current -> %q: %v: %s", link, err, out)
		}
		if got := d.linkTarget(); got != want {
			t.Errorf("current -> %q: after the drop-in -> %q, want %q", link, got, want)
		}
	}
}
