package bundle

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestMergeOverlay(t *testing.T) {
	main := "# main\nglobal:\n  scrape_interval: 15s\nalerting:\n  alertmanagers: []\nscrape_configs: []\n"
	got, err := MergeOverlay([]byte(main), []byte("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['am:9093']\nremote_write:\n  - url: http://rw/api/v1/write\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	for _, want := range []string{"# main", "scrape_interval: 15s", "am:9093", "remote_write:", "http://rw/api/v1/write"} {
		if !strings.Contains(s, want) {
			t.Errorf("merged config lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "alertmanagers: []") || strings.Count(s, "alerting:") != 1 {
		t.Errorf("alerting not replaced:\n%s", s)
	}
	// Mappings merge key by key: the leader's label joins the others and
	// the main file's later changes to global still reach the leader.
	got, err = MergeOverlay([]byte("global:\n  scrape_interval: 10s\n  external_labels:\n    replica: a\n"), []byte("global:\n  external_labels:\n    ha_role: leader\n"))
	if err != nil {
		t.Fatal(err)
	}
	var merged struct {
		Global struct {
			ScrapeInterval string            `yaml:"scrape_interval"`
			Labels         map[string]string `yaml:"external_labels"`
		}
	}
	if err := yaml.Unmarshal(got, &merged); err != nil || merged.Global.ScrapeInterval != "10s" || merged.Global.Labels["replica"] != "a" || merged.Global.Labels["ha_role"] != "leader" {
		t.Errorf("global not merged key by key (%v):\n%s", err, got)
	}
	if same, err := MergeOverlay([]byte(main), []byte("")); err != nil || string(same) != main {
		t.Errorf("empty overlay changed the config: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown key": "remote_writes:\n  - url: x\n",
		"not a map":   "- a\n",
		"not yaml":    "a: [\n",
	} {
		if _, err := MergeOverlay([]byte(main), []byte(bad)); err == nil || !strings.Contains(err.Error(), "leader.yml") {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if _, err := MergeOverlay([]byte("- a\n"), []byte("alerting: {}\n")); err == nil {
		t.Error("a prometheus.yml that is not a mapping was accepted")
	}
}
