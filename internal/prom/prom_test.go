package prom_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zktest"
)

func TestNewBadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9090", "ftp://x", "http://"} {
		if _, err := prom.New(prom.Config{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	zktest.ForEachPrometheus(t, func(t *testing.T, b zktest.PrometheusBuild) {
		ctx := context.Background()
		dir := t.TempDir()
		p := filepath.Join(dir, "prometheus.yml")
		os.WriteFile(p, []byte("scrape_configs:\n  - job_name: a\n    scrape_interval: 1s\n    scrape_timeout: 5s\n"), 0o644)
		_, err := prom.CheckConfig(ctx, b.Promtool, p)
		var ce *prom.CheckError
		if !errors.As(err, &ce) || !strings.Contains(ce.Output, "scrape timeout greater than scrape interval") {
			t.Errorf("bad config: %v", err)
		}
		os.WriteFile(p, []byte("global: {}\n"), 0o644)
		if _, err := prom.CheckConfig(ctx, b.Promtool, p); err != nil {
			t.Errorf("good config: %v", err)
		}
		if v, err := prom.BinaryVersion(ctx, b.Promtool); err != nil || v != b.Version {
			t.Errorf("promtool's version %+v (%v), prometheus's %+v", v, err, b.Version)
		}
	})
	if _, err := prom.CheckConfig(context.Background(), "/nonexistent/promtool", "x.yml"); !errors.Is(err, prom.ErrPromtoolNotFound) {
		t.Errorf("missing promtool: %v", err)
	}
}

func start(t *testing.T, b zktest.PrometheusBuild, noLifecycle bool, args ...string) (*zktest.Prometheus, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\n"), 0o644)
	p, err := zktest.StartPrometheus(zktest.PrometheusOptions{Build: b, ConfigFile: cfg, NoLifecycle: noLifecycle, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, cfg
}

// forEachPrometheus is zktest.ForEachPrometheus for the integration tests.
func forEachPrometheus(t *testing.T, f func(t *testing.T, b zktest.PrometheusBuild)) {
	if testing.Short() {
		t.Skip("integration test: needs Prometheus")
	}
	zktest.ForEachPrometheus(t, f)
}

func TestReloadAndVerify(t *testing.T) { forEachPrometheus(t, testReloadAndVerify) }

func testReloadAndVerify(t *testing.T, b zktest.PrometheusBuild) {
	p, cfg := start(t, b, false)
	ctx := context.Background()
	c, err := prom.New(prom.Config{URL: p.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	ok, before, err := c.ReloadMetrics(ctx)
	if err != nil || !ok {
		t.Fatalf("reload metrics: %v %v", ok, err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	ok, after, err := c.ReloadMetrics(ctx)
	if err != nil || !ok || !after.After(before) {
		t.Errorf("after a reload: ok=%v %s -> %s %v", ok, before, after, err)
	}
	ri, err := c.RuntimeInfo(ctx)
	if err != nil || !ri.ReloadConfigSuccess || ri.LastConfigTime.IsZero() {
		t.Errorf("runtimeinfo %+v %v", ri, err)
	}
	// A bad config: Prometheus's text, the metric drops to 0.
	os.WriteFile(cfg, []byte("scrape_configs:\n  - job_name: a\n    scrape_interval: 1s\n    scrape_timeout: 5s\n"), 0o644)
	err = c.Reload(ctx)
	var re *prom.ReloadError
	if !errors.As(err, &re) || re.Status != 500 || !strings.Contains(re.Message, "scrape timeout greater than scrape interval") {
		t.Errorf("bad reload: %v", err)
	}
	if ok, _, _ := c.ReloadMetrics(ctx); ok {
		t.Error("prometheus_config_last_reload_successful still 1")
	}
	if ri, _ := c.RuntimeInfo(ctx); ri.ReloadConfigSuccess {
		t.Error("reloadConfigSuccess still true")
	}
	pools, err := c.Targets(ctx)
	if err != nil || len(pools) != 0 {
		t.Errorf("targets %v %v", pools, err)
	}
	if _, err := c.RuleGroups(ctx); err != nil {
		t.Error(err)
	}
	// Unreachable.
	p.Stop()
	if err := c.Reload(ctx); !errors.Is(err, prom.ErrUnreachable) {
		t.Errorf("reload of a stopped Prometheus: %v", err)
	}
}

func TestReloadBySignal(t *testing.T) { forEachPrometheus(t, testReloadBySignal) }

func testReloadBySignal(t *testing.T, b zktest.PrometheusBuild) {
	p, _ := start(t, b, true)
	ctx := context.Background()
	c, _ := prom.New(prom.Config{URL: p.URL})
	if err := c.Reload(ctx); err == nil || !strings.Contains(err.Error(), "--web.enable-lifecycle") {
		t.Errorf("POST without lifecycle: %v", err)
	}
	_, before, err := c.ReloadMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(p.Pid())+"\n"), 0o644)
	c, _ = prom.New(prom.Config{URL: p.URL, PIDFile: pidFile})
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, after, err := c.ReloadMetrics(ctx)
		if err == nil && after.After(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reload after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.WriteFile(pidFile, []byte("nope"), 0o644)
	if err := c.Reload(ctx); err == nil {
		t.Error("bad pid file accepted")
	}
}

// TestRunFlags: --config.file as Prometheus reports it, and
// --config.auto-reload, which only 3.x has.
func TestRunFlags(t *testing.T) {
	forEachPrometheus(t, func(t *testing.T, b zktest.PrometheusBuild) {
		var args []string
		if b.Version.Major >= 3 {
			args = []string{"--" + prom.AutoReloadFlag}
		}
		p, cfg := start(t, b, false, args...)
		c, _ := prom.New(prom.Config{URL: p.URL})
		f, err := c.RunFlags(context.Background())
		if err != nil || f.ConfigFile != cfg || f.AutoReload != (len(args) > 0) {
			t.Errorf("run flags %+v %v, want %s, auto-reload %v", f, err, cfg, len(args) > 0)
		}
	})
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in                  string
		major, minor, patch int
		ok                  bool
	}{
		{"2.42.0+ds", 2, 42, 0, true}, {"3.16.0", 3, 16, 0, true}, {"v3.0.0-rc.1", 3, 0, 0, true}, {"", 0, 0, 0, true},
		{"3.16", 0, 0, 0, false}, {"three.1.0", 0, 0, 0, false},
	} {
		v, err := prom.ParseVersion(tc.in)
		if (err == nil) != tc.ok || v.Major != tc.major || v.Minor != tc.minor || v.Patch != tc.patch {
			t.Errorf("ParseVersion(%q) = %+v, %v", tc.in, v, err)
		}
	}
	v2, _ := prom.ParseVersion("2.42.0+ds")
	v3, _ := prom.ParseVersion("3.16.0")
	v3b, _ := prom.ParseVersion("3.16.2")
	if v2.SameRelease(v3) || !v3.SameRelease(v3b) {
		t.Error("SameRelease compares major.minor")
	}
	if v2.UIPath("targets") != "/classic/targets" || v3.UIPath("targets") != "/targets" {
		t.Errorf("UIPath: %s %s", v2.UIPath("targets"), v3.UIPath("targets"))
	}
}
