package exporter

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`
ensembles:
  - name: main
    servers: zk1:2181,zk2:2181,zk3
    timeout: 2s
    admin:
      port: 8081
      urls:
        zk2:2181: http://zk2:9999
    cons: true
    znode_paths: [/brokers/ids]
  - name: other
    servers: zk9:2181
    admin: {disabled: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Ensembles[0]
	if m.Timeout != 2*time.Second || m.ConsLimit != DefaultConsLimit || m.Admin.Scheme != "http" {
		t.Errorf("defaults: %+v", m)
	}
	for server, want := range map[string]string{"zk1:2181": "http://zk1:8081", "zk2:2181": "http://zk2:9999", "zk3:2181": "http://zk3:8081"} {
		if got := m.AdminURL(server); got != want {
			t.Errorf("AdminURL(%s) = %q, want %q", server, got, want)
		}
	}
	if got := c.Ensembles[1].AdminURL("zk9:2181"); got != "" {
		t.Errorf("disabled AdminURL = %q", got)
	}
	if c.Ensembles[1].Timeout != DefaultTimeout {
		t.Errorf("default timeout = %s", c.Ensembles[1].Timeout)
	}
	if empty, err := ParseConfig(nil); err != nil || len(empty.Ensembles) != 0 {
		t.Errorf("empty config: %v, %v", empty, err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":  {"ensembles:\n  - name: a\n    servers: a:1\n    bogus: 1\n", "field bogus not found"},
		"no name":        {"ensembles:\n  - servers: a:1\n", "needs a name"},
		"bad name":       {"ensembles:\n  - name: a/b\n    servers: a:1\n", "must not hold"},
		"no servers":     {"ensembles:\n  - name: a\n", "no servers"},
		"duplicate name": {"ensembles:\n  - {name: a, servers: 'a:1'}\n  - {name: a, servers: 'b:1'}\n", "used twice"},
		"duplicate host": {"ensembles:\n  - {name: a, servers: 'a:1,a:1'}\n", "listed twice"},
		"negative time":  {"ensembles:\n  - {name: a, servers: 'a:1', timeout: -1s}\n", "timeout must be positive"},
		"bad cons limit": {"ensembles:\n  - {name: a, servers: 'a:1', cons_limit: -3}\n", "cons_limit"},
		"bad port":       {"ensembles:\n  - {name: a, servers: 'a:1', admin: {port: 70000}}\n", "out of range"},
		"bad scheme":     {"ensembles:\n  - {name: a, servers: 'a:1', admin: {scheme: ftp}}\n", "http or https"},
		"url for nobody": {"ensembles:\n  - {name: a, servers: 'a:1', admin: {urls: {'b:1': 'http://b:8080'}}}\n", "not in servers"},
		"bad url":        {"ensembles:\n  - {name: a, servers: 'a:1', admin: {urls: {'a:1': 'b:8080'}}}\n", "want http(s)://host:port"},
		"tls without ca": {"ensembles:\n  - {name: a, servers: 'a:1', tls: {cert_file: c.pem, key_file: k.pem}}\n", "CA file"},
		"missing ca":     {"ensembles:\n  - {name: a, servers: 'a:1', tls: {ca_file: /nonexistent/ca.pem}}\n", "read CA file"},
		"bad znode path": {"ensembles:\n  - {name: a, servers: 'a:1', znode_paths: [brokers]}\n", "znode path"},
		"missing auth":   {"ensembles:\n  - {name: a, servers: 'a:1', auth_file: /nonexistent/zk-auth}\n", "read ZooKeeper auth file"},
		"bad servers":    {"ensembles:\n  - {name: a, servers: 'zk1:notaport'}\n", "no valid port"},
		"not yaml":       {"ensembles: [", "parse exporter config"},
		"wrong type":     {"ensembles: {name: a}", "parse exporter config"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yml")); err == nil || !strings.Contains(err.Error(), "read exporter config") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestScrapeTimeout(t *testing.T) {
	for h, want := range map[string]time.Duration{"10": 9500 * time.Millisecond, "1": 900 * time.Millisecond, "0.5": 450 * time.Millisecond} {
		if got, ok := scrapeTimeout(h); !ok || got != want {
			t.Errorf("scrapeTimeout(%q) = %s, %v, want %s", h, got, ok, want)
		}
	}
	for _, h := range []string{"", "x", "-1", "0"} {
		if _, ok := scrapeTimeout(h); ok {
			t.Errorf("scrapeTimeout(%q) accepted", h)
		}
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exporter.yml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ensembles:\n  - {name: a, servers: '127.0.0.1:1'}\n")
	load := func() (*Config, error) { return LoadConfig(path) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, cfg, load)
	post := func() int {
		resp, err := http.Post(ts.srv.URL+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := strings.Join(ts.x.Ensembles(), ","); got != "a" {
		t.Fatalf("ensembles = %s", got)
	}
	write("ensembles:\n  - {name: a, servers: '127.0.0.1:1'}\n  - {name: b, servers: '127.0.0.1:2'}\n")
	if code := post(); code != http.StatusOK {
		t.Fatalf("reload: HTTP %d", code)
	}
	if got := strings.Join(ts.x.Ensembles(), ","); got != "a,b" {
		t.Errorf("after reload ensembles = %s", got)
	}
	if v := testutil.ToFloat64(ts.x.reloadSuccess); v != 1 {
		t.Errorf("reload successful = %v", v)
	}
	ok := testutil.ToFloat64(ts.x.reloadTimestamp)

	write("ensembles:\n  - {name: c, servers: '127.0.0.1:1', nope: 1}\n")
	if code := post(); code != http.StatusInternalServerError {
		t.Errorf("bad reload: HTTP %d, want 500", code)
	}
	if got := strings.Join(ts.x.Ensembles(), ","); got != "a,b" {
		t.Errorf("after a bad reload ensembles = %s, want the old a,b", got)
	}
	if v := testutil.ToFloat64(ts.x.reloadSuccess); v != 0 {
		t.Errorf("reload successful after a bad reload = %v", v)
	}
	if v := testutil.ToFloat64(ts.x.reloadTimestamp); v != ok {
		t.Errorf("success timestamp moved on a failed reload: %v -> %v", ok, v)
	}
	resp, err := http.Get(ts.srv.URL + "/-/reload")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: HTTP %d", resp.StatusCode)
	}
	// The reload gauges are on /metrics beside the ensembles.
	s := ts.scrape(t, "/metrics")
	s.want(t, 0, "zookeeper_exporter_config_last_reload_successful")
	s.want(t, 0, "zookeeper_up", "ensemble=a", "server=127.0.0.1:1")
}
