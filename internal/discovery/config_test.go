package discovery

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigGood(t *testing.T) {
	c, err := LoadConfig("testdata/minimal.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Jobs[0].ZooKeeper.Servers != "zk1:2181,zk2:2181,zk3:2181/chroot" {
		t.Errorf("the job should inherit the top-level zookeeper block: %+v", c.Jobs[0].ZooKeeper)
	}
	c, err = LoadConfig("testdata/full.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Jobs[0].ZooKeeper.SessionTimeout != 15*time.Second {
		t.Errorf("session timeout %v", c.Jobs[0].ZooKeeper.SessionTimeout)
	}
	if got := c.Jobs[2].Paths; len(got) != 1 || got[0] != "/brokers/ids" {
		t.Errorf("kafka default paths %v", got)
	}
	if c.Jobs[1].ZooKeeper.AuthFile != "/etc/zkprom/zk-auth" {
		t.Errorf("per-job zookeeper: %+v", c.Jobs[1].ZooKeeper)
	}
}

// TestConfigBad: every bad file is refused with an error that names the
// problem.
func TestConfigBad(t *testing.T) {
	want := map[string]string{
		"unknown_field":               "field pathz not found",
		"no_jobs":                     "no jobs",
		"unknown_format":              `unknown format "eureka"`,
		"no_paths":                    "has no default path",
		"relative_path":               `path "aurora"`,
		"bad_name":                    "name must match",
		"duplicate_name":              "name used twice",
		"no_servers":                  "no ZooKeeper servers",
		"two_address_rules":           "at most one of endpoint, port_field and port",
		"bad_port":                    "is not a port",
		"bad_scheme":                  "use http or https",
		"bad_metrics_path":            "must start with /",
		"status_filter_wrong_format":  "filter.status applies",
		"enabled_filter_wrong_format": "filter.enabled_only applies",
		"meta_label":                  `label name "__meta_x" is not allowed`,
		"bad_label_name":              `label name "a-b" is not allowed`,
		"conflicting_sessions":        "other auth, TLS or session settings",
		"bad_connect_string":          `job "a"`,
		"bad_yaml":                    "decode YAML",
	}
	files, _ := filepath.Glob("testdata/*.bad.yml")
	if len(files) != len(want) {
		t.Errorf("%d bad files, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bad.yml")
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(f)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), want[name]) || want[name] == "" {
				t.Errorf("error %q does not say %q", err, want[name])
			}
			if !strings.Contains(err.Error(), f) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := LoadConfig("testdata/missing.yml"); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// TestDeployExamples: the example configs are valid, for zkprom sd and,
// when promtool is installed, for Prometheus.
func TestDeployExamples(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/discovery/sd*.yml")
	if len(files) < 2 {
		t.Fatalf("examples missing: %v", files)
	}
	for _, f := range files {
		if _, err := LoadConfig(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	pfiles, _ := filepath.Glob("../../deploy/discovery/prometheus*.yml")
	for _, f := range pfiles {
		out, err := exec.Command(promtool, "check", "config", "--syntax-only", f).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check config %s: %v\n%s", f, err, out)
		}
	}
}

// TestSamples: the demo's sample registrations parse in their format.
func TestSamples(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/discovery/samples.json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Samples []struct {
			Format string          `json:"format"`
			Path   string          `json:"path"`
			Data   json.RawMessage `json:"data"`
		} `json:"samples"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	for _, x := range s.Samples {
		var data []byte
		if string(x.Data) != "null" {
			data = x.Data
		}
		ls, err := ParseMember(JobConfig{Format: x.Format}, x.Path, data)
		if err != nil || len(ls) != 1 {
			t.Errorf("%s %s: %v %v", x.Format, x.Path, ls, err)
		}
	}
}
