package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fleet files of a bundle are checked at push: a bad shards.yml or
// leader.yml is refused, and so is a leader variant that does not
// validate; the deploy example passes.
func TestConfigPushFleetFiles(t *testing.T) {
	push := func(dir string) (int, string) {
		var out bytes.Buffer
		code := run([]string{"config", "push", dir, "--cluster=c", "-m", "x", "--dry-run", "--promtool=none", "--zookeeper.servers=127.0.0.1:1"}, &out, io.Discard)
		return code, out.String()
	}
	if code, out := push("../../deploy/fleet/bundle"); code != 0 {
		t.Errorf("deploy/fleet/bundle: exit %d: %s", code, out)
	}
	for name, files := range map[string]map[string]string{
		"bad shards.yml":       {"shards.yml": "jobs:\n  - name: n\n    format: zkprom\n"},
		"unknown shards field": {"shards.yml": "replica: 2\njobs:\n  - name: n\n    format: zkprom\n    paths: [/a]\n"},
		"bad leader key":       {"leader.yml": "remote_writes: []\n"},
		"bad leader variant":   {"leader.yml": "scrape_configs:\n  - job_name: a\n  - job_name: a\n"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global: {}\n"), 0o644)
		for n, d := range files {
			os.WriteFile(filepath.Join(dir, n), []byte(d), 0o644)
		}
		if code, out := push(dir); code != 1 {
			t.Errorf("%s: exit %d, want 1: %s", name, code, out)
		}
	}
}

func TestShardsBadInput(t *testing.T) {
	var errOut bytes.Buffer
	if code := run([]string{"shards"}, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), "cluster") {
		t.Errorf("missing --cluster: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"agent", "--cluster=c", "--config-dir=/tmp/x", "--shard.weight=x"}, io.Discard, &errOut); code != 2 {
		t.Errorf("bad --shard.weight: exit %d: %s", code, errOut.String())
	}
}
