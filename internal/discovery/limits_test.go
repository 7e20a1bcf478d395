package discovery

import (
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/zkprom/zkprom/internal/zk"
)

func zkpromGroupJSON(targets []string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(`{"targets":[`)
	for i, t := range targets {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", t)
	}
	b.WriteString(`],"labels":{`)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", k, labels[k])
	}
	b.WriteString(`}}`)
	return b.String()
}

func addrs(n, base int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.%d:9100", (base+i)/65536, ((base+i)/256)%256, (base+i)%256)
	}
	return out
}

// A registration small on the wire that would blow up inside (many
// targets sharing large labels), or that is simply too big, is refused
// whole with reason too_large, and the rest of the job is unaffected; the
// job's own totals are bounded too.
func TestJobLimits(t *testing.T) {
	big := map[string]string{"pad": strings.Repeat("x", 100<<10)}
	for _, tc := range []struct {
		name   string
		limits LimitsConfig
		data   string
	}{
		{"1000 targets sharing 100 KB of labels", LimitsConfig{}, zkpromGroupJSON(addrs(1000, 0), big)},
		{"too many targets", LimitsConfig{}, zkpromGroupJSON(addrs(1001, 0), nil)},
		{"few targets, lower bound", LimitsConfig{TargetsPerZnode: 3}, zkpromGroupJSON(addrs(4, 0), nil)},
		{"one large target", LimitsConfig{LabelBytesPerTarget: 1000}, zkpromGroupJSON(addrs(1, 0), map[string]string{"a": strings.Repeat("é", 600)})},
		{"a znode's bytes", LimitsConfig{LabelBytesPerZnode: 2000}, zkpromGroupJSON(addrs(40, 0), map[string]string{"a": strings.Repeat("y", 100)})},
		{"the job's targets", LimitsConfig{TargetsPerJob: 5}, zkpromGroupJSON(addrs(4, 0), nil)},
		{"the job's bytes", LimitsConfig{LabelBytesPerJob: 400}, zkpromGroupJSON(addrs(4, 0), nil)},
	} {
		j := newJob(JobConfig{Name: "x", Format: "zkprom", Paths: []string{"/t"}, Limits: tc.limits}, slog.New(slog.DiscardHandler))
		j.apply(zk.CacheBatch{Events: []zk.CacheEvent{
			ev(zk.Added, "/t/good", zkpromGroupJSON(addrs(2, 5000), map[string]string{"env": "prod"})),
			ev(zk.Added, "/t/bad", tc.data),
		}})
		j.markSynced()
		got := outputAddrs(t, j)
		if strings.Join(got, " ") != strings.Join(addrs(2, 5000), " ") {
			t.Errorf("%s: targets %v, want only the good znode's", tc.name, got)
		}
		if j.invalid["/t/bad"] != ReasonTooLarge || j.invalidTotal[ReasonTooLarge] != 1 {
			t.Errorf("%s: invalid %v, totals %v", tc.name, j.invalid, j.invalidTotal)
		}
		out, _ := j.output()
		if len(out) > 1<<10 {
			t.Errorf("%s: the job holds %d bytes of output for two small targets", tc.name, len(out))
		}
	}
}

// Targets of different znodes never replace each other, whatever the
// znodes are named: one named like another's numbered target included.
func TestTargetIdentities(t *testing.T) {
	for _, names := range [][2]string{{"/t/a", "/t/a#0"}, {"/t/a", "/t/a#1"}, {"/t/a#0", "/t/a"}, {"/t/x", "/t/x%00"}} {
		j := newJob(JobConfig{Name: "x", Format: "zkprom", Paths: []string{"/t"}}, slog.New(slog.DiscardHandler))
		j.apply(zk.CacheBatch{Events: []zk.CacheEvent{
			ev(zk.Added, names[0], zkpromGroupJSON(addrs(2, 0), nil)),
			ev(zk.Added, names[1], zkpromGroupJSON(addrs(1, 100), nil)),
		}})
		j.markSynced()
		if got := outputAddrs(t, j); len(got) != 3 {
			t.Errorf("znodes %v: targets %v, want 3", names, got)
		}
	}
}

// De-duplicated members (a Dubbo 2 process registers one znode per
// interface) count against the limits too: the merged target and the
// job's totals.
func TestJobLimitsMerged(t *testing.T) {
	provider := func(host, iface string) string {
		return "/dubbo/" + iface + "/providers/" + url.QueryEscape("dubbo://"+host+":20880/"+iface+"?application=app&side=provider")
	}
	// Too many processes for the job.
	j := newJob(JobConfig{Name: "d", Format: "dubbo", Paths: []string{"/dubbo"}, Limits: LimitsConfig{TargetsPerJob: 5}}, slog.New(slog.DiscardHandler))
	var evs []zk.CacheEvent
	for i := 0; i < 8; i++ {
		evs = append(evs, ev(zk.Added, provider(fmt.Sprintf("10.0.0.%d", i+1), "com.example.Svc"), ""))
	}
	j.apply(zk.CacheBatch{Events: evs})
	j.markSynced()
	if got := outputAddrs(t, j); len(got) != 5 || j.invalidTotal[ReasonTooLarge] != 3 {
		t.Errorf("8 processes, at most 5 targets: %d targets, invalid %v", len(got), j.invalidTotal)
	}
	// One process under many long interface names: its merged target is
	// too large.
	j = newJob(JobConfig{Name: "d", Format: "dubbo", Paths: []string{"/dubbo"}, Limits: LimitsConfig{LabelBytesPerTarget: 2000}}, slog.New(slog.DiscardHandler))
	evs = nil
	for i := 0; i < 40; i++ {
		evs = append(evs, ev(zk.Added, provider("10.0.1.1", fmt.Sprintf("com.example.I%02d%s", i, strings.Repeat("x", 100))), ""))
	}
	evs = append(evs, ev(zk.Added, provider("10.0.1.2", "com.example.Small"), ""))
	j.apply(zk.CacheBatch{Events: evs})
	j.markSynced()
	if got := outputAddrs(t, j); len(got) != 1 || j.invalidTotal[ReasonTooLarge] == 0 {
		t.Errorf("merged target over the bound: targets %v, invalid %v", got, j.invalidTotal)
	}
}
