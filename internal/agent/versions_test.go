package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zktest"
)

// otherBuild is the build the running subtest of forEachPrometheus does
// not use.
func otherBuild() zktest.PrometheusBuild {
	for _, set := range env.sets {
		if set.build.Name != env.build.Name {
			return set.build
		}
	}
	panic("one Prometheus build only")
}

// The agent compares its promtool's version with its Prometheus's, with
// the real binaries: agent-0 has the matching promtool, agent-1 the other
// release's, which it names in its status and its member node (zkprom
// config status shows it). On 3.x, a revision with a key that 2.42 does
// not know is then refused by agent-1 alone, at validation.
func TestPromtoolVersion(t *testing.T) {
	skipShort(t)
	forEachPrometheus(t, testPromtoolVersion)
}

func testPromtoolVersion(t *testing.T) {
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	other := otherBuild()
	agents := startAgents(t, cluster, func(i int, c *Config) {
		if i == 1 {
			c.Promtool = other.Promtool
		}
	})
	r1 := push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	mine, theirs := env.build.Version.Text, other.Version.Text
	for i, want := range map[int]string{0: mine, 1: theirs, 2: mine} {
		st := agents[i].a.Status()
		if st.PrometheusVersion != mine || st.PromtoolVersion != want || (st.VersionWarning != "") != (i == 1) {
			t.Errorf("agent-%d: Prometheus %q, promtool %q, warning %q; want Prometheus %s, promtool %s", i, st.PrometheusVersion, st.PromtoolVersion, st.VersionWarning, mine, want)
		}
	}
	// From the member nodes: zkprom config status.
	out, _, code := zkprom(t, "config", "status", "--zookeeper.servers="+env.ens.Connect(), "--cluster="+cluster)
	if code != 0 || !strings.Contains(out, "warning: agent-1: promtool "+theirs) || strings.Count(out, "warning:") != 1 {
		t.Errorf("zkprom config status (exit %d) does not warn about agent-1 alone:\n%s", code, out)
	}
	if env.build.Version.Major < 3 {
		return
	}
	b := testBundle([]string{"job_a"}, nil, "", nil)
	b.Files["prometheus.yml"] = []byte(strings.Replace(string(b.Files["prometheus.yml"]), "global:\n", "global:\n  metric_name_validation_scheme: utf8\n", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := bundle.Validate(ctx, b, bundle.ValidateOptions{Promtool: env.build.Promtool}); err != nil {
		t.Fatalf("3.x's promtool refuses: %v", err)
	}
	r2, err := s.Push(ctx, b, configstore.PushMeta{Author: "test", Message: "a 3.x key"})
	if err != nil {
		t.Fatal(err)
	}
	err = waitRollout(t, s, r2.Meta.Revision)
	var re *configstore.RolloutError
	if !errors.As(err, &re) || re.Member != "agent-1" || re.Step != stepValidate || !strings.Contains(re.Message, "metric_name_validation_scheme") {
		t.Fatalf("rollout error %v, want agent-1 refusing at validate", err)
	}
}

// A Prometheus 3 with --config.auto-reload (a poll every second): the
// agent sees the flag; every revision is verified as loaded, and no poll
// reloads it again afterwards; a revision Prometheus refuses is read as
// refused (whether the poll or the agent reloaded first), switched back,
// and the previous one stays.
func TestAutoReload(t *testing.T) {
	skipShort(t)
	var b zktest.PrometheusBuild
	for _, set := range env.sets {
		if set.build.Version.Major >= 3 {
			b = set.build
		}
	}
	dir := filepath.Join(t.TempDir(), "agent")
	if err := bootstrap(dir); err != nil {
		t.Fatal(err)
	}
	p, err := zktest.StartPrometheus(zktest.PrometheusOptions{Build: b, ConfigFile: filepath.Join(dir, "current", "prometheus.yml"),
		Args: []string{"--config.auto-reload", "--config.auto-reload-interval=1s"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	writeBadLocalRules(t, dir)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	ensureCluster(t, cluster)
	r := startAgent(t, cluster, 0, func(c *Config) { c.ConfigDir, c.Prometheus.URL, c.Promtool = dir, p.URL, "none" })
	pc := promClientFor(t, p.URL)
	ctx := context.Background()

	// still checks that the reload Prometheus last did stays the last one
	// over two polls.
	still := func(what string) {
		t.Helper()
		_, before, err := pc.ReloadMetrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond)
		if ok, after, err := pc.ReloadMetrics(ctx); err != nil || !ok || !after.Equal(before) {
			t.Errorf("%s: Prometheus reloaded again by itself (ok %t, last success %s -> %s, %v)", what, ok, before, after, err)
		}
	}
	for i, jobs := range [][]string{{"job_a"}, {"job_a", "job_b"}} {
		res := push(t, s, testBundle(jobs, []string{"group_a"}, "", nil), "auto-reload")
		if err := waitRollout(t, s, res.Meta.Revision); err != nil {
			t.Fatalf("revision %d: %v", i+1, err)
		}
		waitServedBy(t, pc, jobs, []string{"group_a"})
		still("after a verified revision")
	}
	if st := r.a.Status(); !st.AutoReload || st.PrometheusVersion != b.Version.Text {
		t.Errorf("status does not say Prometheus %s reloads by itself: %+v", b.Version, st)
	}

	res := push(t, s, withLocalRules(testBundle([]string{"job_a", "job_new"}, []string{"group_a"}, "", nil)), "host-local rules")
	err = waitRollout(t, s, res.Meta.Revision)
	var re *configstore.RolloutError
	if !errors.As(err, &re) || (re.Step != stepReload && re.Step != stepVerify) || strings.Contains(re.Message, "within") {
		t.Fatalf("rollout error %v, want the refusal read at reload or verify (not a timeout)", err)
	}
	waitServedBy(t, pc, []string{"job_a", "job_b"}, []string{"group_a"})
	still("after the switch back")
}
