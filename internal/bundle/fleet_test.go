package bundle

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/zk"
)

var unitZK = zk.Config{Servers: "127.0.0.1:2181"}

func TestParseShards(t *testing.T) {
	good := "replicas: 2\noverlap: 30s\njob_delay_is_not_a_field: 1\n"
	if _, err := ParseShardedJobs([]byte(good), unitZK); err == nil || !strings.Contains(err.Error(), "job_delay_is_not_a_field") {
		t.Errorf("unknown field: got %v", err)
	}
	c, err := ParseShardedJobs([]byte("replicas: 2\noverlap: 30s\njoin_delay: 5s\njobs:\n  - name: a\n    format: zkprom\n    paths: [/a]\n  - name: b\n    format: kafka\n    replicas: 1\n    overlap: 1m\n"), unitZK)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Jobs[0], c.Jobs[1]
	if a.Replicas != 2 || a.Overlap != model.Duration(30e9) || a.JoinDelay != model.Duration(5e9) {
		t.Errorf("job a: defaults not applied: %+v", a)
	}
	if b.Replicas != 1 || b.Overlap != model.Duration(60e9) || len(b.Paths) != 1 || b.Paths[0] != "/brokers/ids" || b.ZooKeeper.Servers != unitZK.Servers {
		t.Errorf("job b: %+v", b)
	}
	for name, bad := range map[string]string{
		"no paths":         "jobs:\n  - name: a\n    format: zkprom\n",
		"unknown format":   "jobs:\n  - name: a\n    format: what\n    paths: [/a]\n",
		"negative":         "replicas: -1\njobs:\n  - name: a\n    format: zkprom\n    paths: [/a]\n",
		"negative overlap": "jobs:\n  - name: a\n    format: zkprom\n    paths: [/a]\n    overlap: -1s\n",
		"duplicate":        "jobs:\n  - name: a\n    format: zkprom\n    paths: [/a]\n  - name: a\n    format: zkprom\n    paths: [/b]\n",
		"no jobs":          "replicas: 1\n",
		"bad name":         "jobs:\n  - name: a/b\n    format: zkprom\n    paths: [/a]\n",
		"not yaml":         "jobs: [\n",
	} {
		if _, err := ParseShardedJobs([]byte(bad), unitZK); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "shards.yml") {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
}

func TestValidateFleetDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("prometheus.yml", "global: {}\n")
	if err := ValidateFleetDir(dir, unitZK); err != nil {
		t.Errorf("no fleet files: %v", err)
	}
	write(ShardsFile, "jobs:\n  - name: a\n    format: zkprom\n    paths: [/a]\n")
	write(LeaderFile, "remote_write: []\n")
	if err := ValidateFleetDir(dir, unitZK); err != nil {
		t.Errorf("good fleet files: %v", err)
	}
	write(ShardsFile, "jobs: 3\n")
	write(LeaderFile, "nope: 1\n")
	err := ValidateFleetDir(dir, unitZK)
	if err == nil || !strings.Contains(err.Error(), "shards.yml") || !strings.Contains(err.Error(), "leader.yml") {
		t.Errorf("bad fleet files: got %v", err)
	}
}

// The marker's name is the agent's: a bundle that uses it is refused.
func TestValidateFleetReservesMarker(t *testing.T) {
	opts := ValidateOptions{Promtool: "none"}
	ok := &Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global: {}\n"), "leader.yml": []byte("remote_write: []\n")}}
	if err := ValidateFleet(context.Background(), ok, opts, unitZK); err != nil {
		t.Fatalf("a good bundle: %v", err)
	}
	for name, files := range map[string]map[string]string{
		"marker file":           {"prometheus.yml": "global: {}\n", "rules/" + LeaderMarker: "groups: []\n"},
		"marker in rule_files":  {"prometheus.yml": "rule_files: [" + LeaderMarker + "]\n"},
		"marker in the overlay": {"prometheus.yml": "global: {}\n", "leader.yml": "rule_files: [" + LeaderMarker + "]\n"},
	} {
		b := &Bundle{Files: map[string][]byte{}}
		for n, d := range files {
			b.Files[n] = []byte(d)
		}
		if err := ValidateFleet(context.Background(), b, opts, unitZK); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
