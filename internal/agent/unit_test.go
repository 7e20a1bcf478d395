package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/prom"
)

func TestNewBadConfig(t *testing.T) {
	ok := Config{Cluster: "c", Member: "m", ConfigDir: t.TempDir(), Prometheus: prom.Config{URL: "http://127.0.0.1:9090"}}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"bad member":   {func(c *Config) { c.Member = "a/b" }, "bad member name"},
		"no dir":       {func(c *Config) { c.ConfigDir = "" }, "config directory is required"},
		"bad cluster":  {func(c *Config) { c.Cluster = "" }, "bad cluster name"},
		"bad url":      {func(c *Config) { c.Prometheus.URL = "localhost:9090" }, "want http(s)://"},
		"keep too few": {func(c *Config) { c.KeepRevisions = 1 }, "keep at least 2"},
		"bad root":     {func(c *Config) { c.Root = "x" }, "configuration root"},
	} {
		cfg := ok
		tc.mod(&cfg)
		if _, err := New(nil, cfg, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := New(nil, ok, nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(nil, ok, nil, reg); err == nil {
		t.Error("two agents on one registry with the same labels accepted")
	}
}

func TestDiskStageLinkPrune(t *testing.T) {
	dir := t.TempDir()
	d := disk{dir: dir}
	if err := d.init(); err != nil {
		t.Fatal(err)
	}
	if rev, err := d.linked(); err != nil || rev != 0 {
		t.Fatalf("linked on an empty dir: %d %v", rev, err)
	}
	b := &bundle.Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global: {}\n"), "rules/a.yml": []byte("groups: []\n")}}
	for rev := 1; rev <= 4; rev++ {
		if err := d.stage(rev, "sum", "m", b); err != nil {
			t.Fatal(err)
		}
		if !d.complete(rev, "sum") || d.complete(rev, "other") {
			t.Fatalf("revision %d: complete() wrong", rev)
		}
		if err := d.link(rev); err != nil {
			t.Fatal(err)
		}
		if l, _ := d.linked(); l != rev {
			t.Fatalf("linked %d, want %d", l, rev)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "current", "rules", "a.yml"))
	if err != nil || string(data) != "groups: []\n" {
		t.Fatalf("through the link: %q %v", data, err)
	}
	// A damaged file makes the directory incomplete.
	os.WriteFile(filepath.Join(d.revDir(2), "prometheus.yml"), []byte("x"), 0o644)
	if d.complete(2, "sum") {
		t.Error("damaged revision reported complete")
	}
	// The live revision cannot be replaced in place.
	os.WriteFile(filepath.Join(d.revDir(4), "prometheus.yml"), []byte("x"), 0o644)
	if err := d.stage(4, "sum", "m", b); err == nil {
		t.Error("restaged the live revision")
	}
	if err := d.prune(2, 4, 1); err != nil {
		t.Fatal(err)
	}
	for rev, want := range map[int]bool{1: true, 2: false, 3: true, 4: true} {
		_, err := os.Stat(d.revDir(rev))
		if (err == nil) != want {
			t.Errorf("after prune, revision %d present=%v, want %v", rev, err == nil, want)
		}
	}
	// Leftovers of a killed agent are removed at start.
	os.MkdirAll(filepath.Join(dir, ".staging-r-0000000009-123", "rules"), 0o755)
	os.Symlink("revisions/r-0000000009", filepath.Join(dir, ".current-123"))
	if err := d.init(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s", e.Name())
		}
	}
	// Removing the link, and a link that is not ours.
	if err := d.linkTo(""); err != nil {
		t.Fatal(err)
	}
	os.Symlink("bootstrap", filepath.Join(dir, "current"))
	if rev, err := d.linked(); err != nil || rev != 0 {
		t.Errorf("foreign link: %d %v", rev, err)
	}
	// savedState round trip.
	st := savedState{Applied: 3, Checksum: "sum", FailedRevision: 4, FailedError: "boom"}
	if err := d.writeState(st); err != nil {
		t.Fatal(err)
	}
	if got, err := d.readState(); err != nil || got.Applied != 3 || got.FailedError != "boom" {
		t.Errorf("state %+v %v", got, err)
	}
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{"), 0o644)
	if _, err := d.readState(); err == nil {
		t.Error("corrupt state accepted")
	}
}

// HA members reach each other's Prometheus with the basic-auth
// credentials of their own --prometheus.url: records hold none.
func TestPeerURL(t *testing.T) {
	for _, tc := range []struct{ own, recorded, want string }{
		{"http://scraper:pw@127.0.0.1:9090", "http://10.0.0.2:9090", "http://scraper:pw@10.0.0.2:9090"},
		{"http://127.0.0.1:9090", "http://10.0.0.2:9090", "http://10.0.0.2:9090"},
		{"https://a:b@p1:9090/prom", "https://p2:9090/prom", "https://a:b@p2:9090/prom"},
		{"http://a:b@p1:9090", "http://c:d@p2:9090", "http://c:d@p2:9090"},
	} {
		if got := peerURL(tc.own, tc.recorded); got != tc.want {
			t.Errorf("own %s, recorded %s: %s, want %s", tc.own, tc.recorded, got, tc.want)
		}
	}
}
