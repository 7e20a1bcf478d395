package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
)

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ZooKeeper and Prometheus")
	}
}

// Push => every Prometheus serves the new job and rules; a second push;
// rollback; restart of an agent changes nothing; a restarted agent that
// finds a newer revision applies it.
func TestPushRolloutRollbackRestart(t *testing.T) {
	skipShort(t)
	forEachPrometheus(t, testPushRolloutRollbackRestart)
}

func testPushRolloutRollbackRestart(t *testing.T) {
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	agents := startAgents(t, cluster, nil)

	r1 := push(t, s, testBundle([]string{"job_a"}, []string{"group_a"}, "", nil), "first")
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range env.proms {
		waitServed(t, i, []string{"job_a"}, []string{"group_a"})
		// The placeholder was filled in per member.
		data, err := os.ReadFile(filepath.Join(env.dirs[i], "current", "prometheus.yml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "replica: agent-") || strings.Contains(string(data), "${ZKPROM") {
			t.Errorf("prometheus %d config not rendered: %s", i, data)
		}
	}
	r2 := push(t, s, testBundle([]string{"job_a", "job_b"}, []string{"group_a", "group_b"}, "", nil), "second")
	if r2.Previous != r1.Meta.Revision {
		t.Errorf("previous = %d, want %d", r2.Previous, r1.Meta.Revision)
	}
	if err := waitRollout(t, s, r2.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range env.proms {
		waitServed(t, i, []string{"job_a", "job_b"}, []string{"group_a", "group_b"})
	}

	// Rollback: a new revision copying r1.
	ctx := context.Background()
	rb, err := s.Rollback(ctx, 0, configstore.PushMeta{Author: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Meta.RollbackOf != r1.Meta.Revision {
		t.Errorf("rollback copies %d, want %d", rb.Meta.RollbackOf, r1.Meta.Revision)
	}
	if err := waitRollout(t, s, rb.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range env.proms {
		waitServed(t, i, []string{"job_a"}, []string{"group_a"})
	}
	h, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].Revision != rb.Meta.Revision || h[2].Revision != r1.Meta.Revision {
		t.Errorf("history %+v", h)
	}

	// Restart agent 0: same revision => nothing changes (no reload).
	before, err := promClient(t, 0).RuntimeInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	agents[0].stop()
	a0 := startAgent(t, cluster, 0, nil)
	waitFor(t, 30*time.Second, "restarted agent applied", func() (bool, string) {
		st := a0.a.Status()
		return st.State == configstore.StateApplied && st.Revision == rb.Meta.Revision, st.State
	})
	after, err := promClient(t, 0).RuntimeInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !after.LastConfigTime.Equal(before.LastConfigTime) {
		t.Errorf("restart with the same revision reloaded Prometheus: lastConfigTime %s -> %s", before.LastConfigTime, after.LastConfigTime)
	}
	// Stopped agent, newer revision, restart => applied.
	a0.stop()
	r4 := push(t, s, testBundle([]string{"job_c"}, nil, "", nil), "while agent 0 is down")
	a0 = startAgent(t, cluster, 0, nil)
	if err := waitRollout(t, s, r4.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range env.proms {
		waitServed(t, i, []string{"job_c"}, nil)
	}
}

// A bundle that passes validation where it was pushed but that one host
// rejects: agent-2 has no credentials file (its promtool refuses it), so
// it reports the error, Prometheus stays on the old revision, and the
// rollout fails naming agent-2.
func TestHostRejectsMissingCredentials(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	for i := 0; i < 2; i++ {
		writeFile(t, filepath.Join(env.dirs[i], "secrets", "scrape.password"), "s3cret")
	}
	agents := startAgents(t, cluster, nil)
	r1 := push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	main := testBundle([]string{"job_a"}, nil, "", nil)
	main.Files["prometheus.yml"] = append(main.Files["prometheus.yml"], []byte(
		"  - job_name: with_auth\n    basic_auth:\n      username: u\n      password_file: ${ZKPROM_CONFIG_DIR}/secrets/scrape.password\n    static_configs:\n      - targets: ['127.0.0.1:1']\n")...)
	// Validation where it is pushed: this host has the secret.
	ctx := context.Background()
	if _, err := bundle.Validate(ctx, main, bundle.ValidateOptions{Vars: bundle.Vars{ConfigDir: env.dirs[0]}}); err != nil {
		t.Fatalf("validation where the secret exists: %v", err)
	}
	r2, err := s.Push(ctx, main, configstore.PushMeta{Author: "test", Message: "needs a secret"})
	if err != nil {
		t.Fatal(err)
	}
	err = waitRollout(t, s, r2.Meta.Revision)
	var re *configstore.RolloutError
	if !errors.As(err, &re) || re.Member != "agent-2" {
		t.Fatalf("rollout error %v, want one naming agent-2", err)
	}
	if !strings.Contains(re.Message, "scrape.password") || re.Step != stepValidate {
		t.Errorf("error does not carry promtool's text: step %s: %s", re.Step, re.Message)
	}
	st := agents[2].a.Status()
	if st.State != configstore.StateFailed || st.Revision != r1.Meta.Revision || st.FailedRevision != r2.Meta.Revision {
		t.Errorf("agent-2 status %+v", st)
	}
	waitServed(t, 2, []string{"job_a"}, nil)
	for i := 0; i < 2; i++ {
		waitServed(t, i, []string{"job_a", "with_auth"}, nil)
	}
	if l, _ := agents[2].a.disk.linked(); l != r1.Meta.Revision {
		t.Errorf("agent-2 links revision %d, want %d", l, r1.Meta.Revision)
	}
}

// A revision Prometheus itself refuses at reload (agent-1 validates
// without promtool; a host-local rule file has bad PromQL): the agent
// switches back, reloads, verifies Prometheus is healthy on the old
// configuration (the new scrape job is gone again), and reports
// Prometheus's error text.
func TestReloadRefusedRollsBack(t *testing.T) {
	skipShort(t)
	forEachPrometheus(t, testReloadRefusedRollsBack)
}

func testReloadRefusedRollsBack(t *testing.T) {
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	writeBadLocalRules(t, env.dirs[1])
	agents := startAgents(t, cluster, func(i int, c *Config) {
		if i == 1 {
			c.Promtool = "none"
		}
	})
	r1 := push(t, s, testBundle([]string{"job_a"}, []string{"group_a"}, "", nil), "first")
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	b := withLocalRules(testBundle([]string{"job_a", "job_new"}, []string{"group_a"}, "", nil))
	r2 := push(t, s, b, "host-local rules")
	err := waitRollout(t, s, r2.Meta.Revision)
	var re *configstore.RolloutError
	if !errors.As(err, &re) || re.Member != "agent-1" {
		t.Fatalf("rollout error %v, want one naming agent-1", err)
	}
	if re.Step != stepReload || !strings.Contains(re.Message, "errors occurred while applying the new configuration") {
		t.Errorf("want Prometheus's reload error, got step %s: %s", re.Step, re.Message)
	}
	ri, err := promClient(t, 1).RuntimeInfo(context.Background())
	if err != nil || !ri.ReloadConfigSuccess {
		t.Errorf("prometheus 1 not healthy after rollback: %+v %v", ri, err)
	}
	waitServed(t, 1, []string{"job_a"}, []string{"group_a"})
	if st := agents[1].a.Status(); st.Revision != r1.Meta.Revision || st.State != configstore.StateFailed {
		t.Errorf("agent-1 status %+v", st)
	}
	for _, i := range []int{0, 2} {
		waitServed(t, i, []string{"job_a", "job_new"}, []string{"group_a"})
	}
}

// A failing canary touches nobody else; a passing canary goes to all.
func TestCanary(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	for i := 1; i < 3; i++ {
		writeFile(t, filepath.Join(env.dirs[i], "secrets", "scrape.password"), "s3cret")
	}
	agents := startAgents(t, cluster, nil)
	r1 := push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var before []time.Time
	for i := range env.proms {
		ri, err := promClient(t, i).RuntimeInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, ri.LastConfigTime)
	}
	bad := testBundle([]string{"job_a"}, nil, "", nil)
	bad.Files["prometheus.yml"] = append(bad.Files["prometheus.yml"], []byte(
		"  - job_name: with_auth\n    basic_auth:\n      username: u\n      password_file: ${ZKPROM_CONFIG_DIR}/secrets/scrape.password\n    static_configs:\n      - targets: ['127.0.0.1:1']\n")...)
	_, c, err := s.PushCanary(ctx, bad, configstore.PushMeta{Author: "test", Message: "canary"}, 1, time.Minute, nil)
	var ce *configstore.CanaryError
	if !errors.As(err, &ce) {
		t.Fatalf("canary push: %v, want a CanaryError", err)
	}
	if c == nil || len(c.Pointer.Members) != 1 || c.Pointer.Members[0] != "agent-0" {
		t.Fatalf("canary members %+v", c)
	}
	var re *configstore.RolloutError
	if !errors.As(err, &re) || re.Member != "agent-0" {
		t.Errorf("canary error does not name agent-0: %v", err)
	}
	if cur, _, _ := s.Current(ctx); cur.Revision != r1.Meta.Revision {
		t.Errorf("current moved to %d", cur.Revision)
	}
	for i := 1; i < 3; i++ {
		ri, err := promClient(t, i).RuntimeInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ri.LastConfigTime.Equal(before[i]) {
			t.Errorf("prometheus %d was reloaded during a failed canary", i)
		}
		if st := agents[i].a.Status(); st.Target != r1.Meta.Revision || st.Revision != r1.Meta.Revision {
			t.Errorf("agent %d was touched: %+v", i, st)
		}
	}
	// agent-0 returns to the current revision.
	waitFor(t, 10*time.Second, "agent-0 back on current", func() (bool, string) {
		st := agents[0].a.Status()
		return st.State == configstore.StateApplied && st.Target == r1.Meta.Revision, st.State
	})

	// A good canary: first the canary, then all.
	good := testBundle([]string{"job_a", "job_b"}, nil, "", nil)
	res, _, err := s.PushCanary(ctx, good, configstore.PushMeta{Author: "test", Message: "good canary"}, 1, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitRollout(t, s, res.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range env.proms {
		waitServed(t, i, []string{"job_a", "job_b"}, nil)
	}
}

// Concurrent pushes: never two winners from the same version; the loser
// gets ErrConflict and its revision is gone; history is a chain.
func TestConcurrentPushes(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	ctx := context.Background()
	var stores []*configstore.Store
	for i := 0; i < 4; i++ {
		stores = append(stores, newStore(t, connect(t), cluster))
	}
	push(t, stores[0], testBundle([]string{"job_0"}, nil, "", nil), "base")
	conflicts, wins := 0, 0
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		results := make([]*configstore.PushResult, len(stores))
		errs := make([]error, len(stores))
		for i, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = s.Push(ctx, testBundle([]string{"job_x"}, nil, "", map[string]string{"who": string(rune('a' + i))}), configstore.PushMeta{Author: "p", Message: "race"})
			}()
		}
		wg.Wait()
		prevSeen := map[int]int{}
		for i := range stores {
			switch {
			case errs[i] == nil:
				wins++
				if other, dup := prevSeen[results[i].Previous]; dup {
					t.Errorf("two pushes (%d and %d) both won from revision %d", other, results[i].Meta.Revision, results[i].Previous)
				}
				prevSeen[results[i].Previous] = results[i].Meta.Revision
			case errors.Is(errs[i], configstore.ErrConflict):
				conflicts++
				if !strings.Contains(errs[i].Error(), "push again") {
					t.Errorf("conflict error is not clear: %v", errs[i])
				}
			default:
				t.Errorf("push %d: %v", i, errs[i])
			}
		}
	}
	if conflicts == 0 {
		t.Errorf("no conflicts in 5 rounds of 4 concurrent pushes (%d wins)", wins)
	}
	h, err := stores[0].History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != wins+1 {
		t.Errorf("history has %d revisions, want %d wins + base", len(h), wins)
	}
	revs, _ := stores[0].Revisions(ctx)
	if len(revs) != wins+1 {
		t.Errorf("%d revisions stored, want %d (losers' revisions must be deleted)", len(revs), wins+1)
	}
}

// writeBadLocalRules writes a host-local rule file with bad PromQL into
// the agent directory dir: promtool refuses it, and so does Prometheus at
// reload (a bundle reads it through withLocalRules).
func writeBadLocalRules(t testing.TB, dir string) {
	writeFile(t, filepath.Join(dir, "local-rules", "bad.yml"), "groups:\n  - name: local\n    rules:\n      - record: bad\n        expr: sum(up{\n")
}

// withLocalRules makes b's prometheus.yml read the host-local rule files.
func withLocalRules(b *bundle.Bundle) *bundle.Bundle {
	b.Files["prometheus.yml"] = []byte(strings.Replace(string(b.Files["prometheus.yml"]), "  - rules/*.yml\n", "  - rules/*.yml\n  - ${ZKPROM_CONFIG_DIR}/local-rules/*.yml\n", 1))
	return b
}

func writeFile(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ZooKeeper down: Prometheus stays on the applied revision, the agents
// retry and report when ZooKeeper is back, and apply what was pushed.
func TestZooKeeperOutage(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	agents := startAgents(t, cluster, nil)
	s := newStore(t, connect(t), cluster)
	r1 := push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range env.ens.Servers {
		if err := env.ens.Stop(i); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	for i := range env.proms {
		ri, err := promClient(t, i).RuntimeInfo(context.Background())
		if err != nil || !ri.ReloadConfigSuccess {
			t.Errorf("prometheus %d during the outage: %+v %v", i, ri, err)
		}
		if st := agents[i].a.Status(); st.Revision != r1.Meta.Revision {
			t.Errorf("agent %d during the outage: %+v", i, st)
		}
		if l, _ := agents[i].a.disk.linked(); l != r1.Meta.Revision {
			t.Errorf("agent %d switched to %d during the outage", i, l)
		}
	}
	for i := range env.ens.Servers {
		if err := env.ens.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.ens.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, connect(t), cluster)
	waitFor(t, 60*time.Second, "agents back in ZooKeeper", func() (bool, string) {
		ms, err := s2.Members(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return len(ms) == nProm, fmt.Sprintf("%d members", len(ms))
	})
	r2 := push(t, s2, testBundle([]string{"job_b"}, nil, "", nil), "after the outage")
	if err := waitRollout(t, s2, r2.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	for i := range env.proms {
		waitServed(t, i, []string{"job_b"}, nil)
	}
}

// Prometheus not up yet: the agent lays the revision down and verifies it
// once Prometheus answers.
func TestPrometheusNotUpYet(t *testing.T) {
	skipShort(t)
	forEachPrometheus(t, testPrometheusNotUpYet)
}

func testPrometheusNotUpYet(t *testing.T) {
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	env.proms[1].Stop()
	defer func() {
		if env.proms[1].Pid() == 0 {
			env.proms[1].Start()
		}
	}()
	agents := startAgents(t, cluster, nil)
	r1 := push(t, s, testBundle([]string{"job_a"}, []string{"group_a"}, "", nil), "first")
	waitFor(t, 30*time.Second, "agent-1 waiting for Prometheus", func() (bool, string) {
		st := agents[1].a.Status()
		return st.State == configstore.StateWaiting, st.State
	})
	if l, _ := agents[1].a.disk.linked(); l != r1.Meta.Revision {
		t.Fatalf("agent-1 did not lay down revision %d (links %d)", r1.Meta.Revision, l)
	}
	if err := env.proms[1].Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	waitServed(t, 1, []string{"job_a"}, []string{"group_a"})
}

// Reload by SIGHUP (a Prometheus without the lifecycle API): the outcome
// is read from the metric and runtimeinfo; a refused revision is detected
// and rolled back the same way.
func TestReloadBySignal(t *testing.T) {
	skipShort(t)
	forEachPrometheus(t, testReloadBySignal)
}

func testReloadBySignal(t *testing.T) {
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	writeBadLocalRules(t, env.dirs[2])
	agents := startAgents(t, cluster, func(i int, c *Config) {
		if i == 2 {
			c.Prometheus.PID = env.proms[2].Pid()
			c.Promtool = "none"
		}
	})
	r1 := push(t, s, testBundle([]string{"job_a"}, []string{"group_a"}, "", nil), "first")
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	waitServed(t, 2, []string{"job_a"}, []string{"group_a"})
	b := withLocalRules(testBundle([]string{"job_a", "job_new"}, []string{"group_a"}, "", nil))
	r2 := push(t, s, b, "host-local rules")
	err := waitRollout(t, s, r2.Meta.Revision)
	var re *configstore.RolloutError
	if !errors.As(err, &re) || re.Member != "agent-2" || re.Step != stepVerify || !strings.Contains(re.Message, "reloadConfigSuccess=false") {
		t.Fatalf("rollout error %v, want agent-2 failing at verify", err)
	}
	ri, err := promClient(t, 2).RuntimeInfo(context.Background())
	if err != nil || !ri.ReloadConfigSuccess {
		t.Errorf("prometheus 2 not healthy after the rollback: %+v %v", ri, err)
	}
	waitServed(t, 2, []string{"job_a"}, []string{"group_a"})
	if st := agents[2].a.Status(); st.Revision != r1.Meta.Revision {
		t.Errorf("agent-2 status %+v", st)
	}
}

// An agent whose Prometheus runs another --config.file refuses to report
// success: the revision would never be read.
func TestWrongConfigFile(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	ensureCluster(t, cluster)
	other := t.TempDir()
	startAgent(t, cluster, 0, func(c *Config) { c.ConfigDir = other })
	r1 := push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
	err := waitRollout(t, s, r1.Meta.Revision)
	var re *configstore.RolloutError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "--config.file="+filepath.Join(env.dirs[0], "current", "prometheus.yml")) {
		t.Fatalf("rollout error %v, want one naming Prometheus's --config.file", err)
	}
	if l, _ := os.Readlink(filepath.Join(other, "current")); l != "" {
		t.Errorf("the agent left its link at %q", l)
	}
}
