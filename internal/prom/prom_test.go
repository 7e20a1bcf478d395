package prom

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

func TestNewBadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9090", "ftp://x", "http://"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(p, []byte("scrape_configs:\n  - job_name: a\n    scrape_interval: 1s\n    scrape_timeout: 5s\n"), 0o644)
	_, err := CheckConfig(ctx, "", p)
	var ce *CheckError
	if !errors.As(err, &ce) || !strings.Contains(ce.Output, "scrape timeout greater than scrape interval") {
		t.Errorf("bad config: %v", err)
	}
	os.WriteFile(p, []byte("global: {}\n"), 0o644)
	if _, err := CheckConfig(ctx, "", p); err != nil {
		t.Errorf("good config: %v", err)
	}
	if _, err := CheckConfig(ctx, "/nonexistent/promtool", p); !errors.Is(err, ErrPromtoolNotFound) {
		t.Errorf("missing promtool: %v", err)
	}
}

func start(t *testing.T, noLifecycle bool) (*zktest.Prometheus, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs Prometheus")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\n"), 0o644)
	p, err := zktest.StartPrometheus(zktest.PrometheusOptions{ConfigFile: cfg, NoLifecycle: noLifecycle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, cfg
}

func TestReloadAndVerify(t *testing.T) {
	p, cfg := start(t, false)
	ctx := context.Background()
	c, err := New(Config{URL: p.URL + "/"})
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
	var re *ReloadError
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
	if err := c.Reload(ctx); !errors.Is(err, ErrUnreachable) {
		t.Errorf("reload of a stopped Prometheus: %v", err)
	}
}

func TestReloadBySignal(t *testing.T) {
	p, _ := start(t, true)
	ctx := context.Background()
	c, _ := New(Config{URL: p.URL})
	if err := c.Reload(ctx); err == nil || !strings.Contains(err.Error(), "--web.enable-lifecycle") {
		t.Errorf("POST without lifecycle: %v", err)
	}
	_, before, err := c.ReloadMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(p.Pid())+"\n"), 0o644)
	c, _ = New(Config{URL: p.URL, PIDFile: pidFile})
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
