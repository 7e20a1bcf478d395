package targetgroup

import (
	"strings"
	"testing"
)

func TestCheckLabel(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"team", "infra", true},
		{"env_2", "", true},
		{"job", "x", false},
		{"instance", "x", false},
		{"__address__", "x", false},
		{"__scheme__", "https", false},
		{"__metrics_path__", "/x", false},
		{"__param_target", "x", false},
		{"__scrape_interval__", "1s", false},
		{"__meta_serverset_shard", "1", false},
		{"__meta_zookeeper_path", "/x", false},
		{"__", "x", false},
		{"1abc", "x", false},
		{"a-b", "x", false},
		{"", "x", false},
		{"ok", "\xff", false},
		{"ok", strings.Repeat("é", 10), true},
	} {
		if err := CheckLabel(tc.name, tc.value); (err == nil) != tc.ok {
			t.Errorf("CheckLabel(%q, %q) = %v, want ok=%t", tc.name, tc.value, err, tc.ok)
		}
	}
}

func FuzzCheckLabel(f *testing.F) {
	for _, s := range []string{"team", "job", "__x", "a\xffb"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		if CheckLabel(name, value) == nil && (strings.HasPrefix(name, "__") || name == "job" || name == "instance") {
			t.Errorf("reserved label %q accepted", name)
		}
	})
}
