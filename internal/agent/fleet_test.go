package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

const fleetJob = "nodes"

// registerTargets writes n members in the zkprom registration format
// below base (what `zkprom register` writes), 100 per transaction.
func registerTargets(t testing.TB, c *zk.Client, base string, n int) []string {
	t.Helper()
	return registerTargetsFrom(t, c, base, 0, n)
}

// registerTargetsFrom is registerTargets for the members from, from+1, ...
func registerTargetsFrom(t testing.TB, c *zk.Client, base string, from, n int) []string {
	t.Helper()
	ctx := context.Background()
	if err := c.CreateAll(ctx, base, nil); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	var ops []zk.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := c.Multi(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		ops = nil
	}
	for i := from; i < from+n; i++ {
		addr := fmt.Sprintf("10.%d.%d.%d:9100", i/65536, (i/256)%256, i%256)
		addrs = append(addrs, addr)
		data, _ := json.Marshal(map[string]any{"targets": []string{addr}, "labels": map[string]string{"idx": fmt.Sprint(i)}})
		ops = append(ops, zk.CreateOp(zk.Join(base, fmt.Sprintf("t-%06d", i)), data, zk.Persistent, nil))
		if len(ops) == 100 {
			flush()
		}
	}
	flush()
	return addrs
}

// fleetBundle is a bundle with one sharded job reading base, its file_sd
// reference, and (when overlay) a leader overlay.
func fleetBundle(base string, replicas int, overlay bool) *bundle.Bundle {
	main := "global:\n  scrape_interval: 15s\n  external_labels:\n    replica: ${ZKPROM_MEMBER}\n" +
		"scrape_configs:\n  - job_name: " + fleetJob + "\n    file_sd_configs:\n      - files: ['${ZKPROM_CONFIG_DIR}/shards/" + fleetJob + ".json']\n"
	shards := fmt.Sprintf("replicas: %d\noverlap: 2s\njoin_delay: 1s\njobs:\n  - name: %s\n    format: zkprom\n    paths: [%s]\n", replicas, fleetJob, base)
	files := map[string][]byte{"prometheus.yml": []byte(main), bundle.ShardsFile: []byte(shards)}
	if overlay {
		files[bundle.LeaderFile] = []byte("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:1']\n")
	}
	return &bundle.Bundle{Files: files}
}

// readShare returns the targets in one agent's share file (nil when the
// file is missing).
func readShare(dir string) (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, shardsDir, fleetJob+".json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var groups []struct {
		Targets []string `json:"targets"`
	}
	if err := json.Unmarshal(data, &groups); err != nil {
		return nil, fmt.Errorf("share file of %s: %w", dir, err)
	}
	out := map[string]bool{}
	for _, g := range groups {
		for _, t := range g.Targets {
			out[t] = true
		}
	}
	return out, nil
}

// shareView is one sample of every agent's share.
type shareView struct {
	shares map[string]map[string]bool // agent dir name => targets
	owners map[string][]string        // target => agents
}

func sample(t testing.TB, dirs []string) shareView {
	t.Helper()
	v := shareView{shares: map[string]map[string]bool{}, owners: map[string][]string{}}
	for _, d := range dirs {
		s, err := readShare(d)
		if err != nil {
			t.Fatal(err)
		}
		v.shares[filepath.Base(d)] = s
		for tg := range s {
			v.owners[tg] = append(v.owners[tg], filepath.Base(d))
		}
	}
	return v
}

// exact reports whether every target is owned by exactly r agents and
// every agent of the view owns some: an agent that has not joined yet
// (its share still empty) does not count as settled.
func (v shareView) exact(targets []string, r int) (bool, string) {
	for a, s := range v.shares {
		if len(s) == 0 {
			return false, a + " owns no target yet"
		}
	}
	for _, tg := range targets {
		if n := len(v.owners[tg]); n != r {
			return false, fmt.Sprintf("%s owned by %d agents %v, want %d", tg, n, v.owners[tg], r)
		}
	}
	return true, ""
}

func (v shareView) unowned(targets []string) []string {
	var out []string
	for _, tg := range targets {
		if len(v.owners[tg]) == 0 {
			out = append(out, tg)
		}
	}
	return out
}

func (v shareView) counts() map[string]int {
	out := map[string]int{}
	for a, s := range v.shares {
		out[a] = len(s)
	}
	return out
}

// startFleetAgent runs an in-process agent without a Prometheus (the
// revision is laid down and the agent waits for Prometheus): enough for
// sharding, which never reloads.
func startFleetAgent(t testing.TB, cluster, member, dir string, timeout time.Duration) *runningAgent {
	return startFleetAgentVia(t, env.ens.Connect(), cluster, member, dir, timeout, 1)
}

// startFleetAgentVia is startFleetAgent through the connect string
// servers, with a shard weight.
func startFleetAgentVia(t testing.TB, servers, cluster, member, dir string, timeout time.Duration, weight float64) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zc := agentZK(servers, timeout)
	c, err := zk.Connect(ctx, zc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Cluster: cluster, Member: member, ConfigDir: dir, Promtool: "none",
		Prometheus: prom.Config{URL: "http://127.0.0.1:1"}, VerifyTimeout: 10 * time.Second, RetryInterval: 300 * time.Millisecond,
		Fleet: FleetConfig{ZooKeeper: zc, Weight: weight}}
	a, err := New(c, cfg, testLogger(t).With("member", member), nil)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	r := &runningAgent{a: a, cancel: rcancel, done: make(chan error, 1), client: c}
	go func() { r.done <- a.Run(rctx) }()
	t.Cleanup(r.stop)
	return r
}

// Three agents share 1,000 targets exactly once and evenly; a fourth
// joins: about a quarter moves and no target is ever unowned; R=2 gives
// every target to exactly two agents.
func TestShardsSplitAndJoin(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	c := connect(t)
	base := "/" + cluster + "/services"
	targets := registerTargets(t, c, base, 1000)
	s := newStore(t, c, cluster)
	ensureCluster(t, cluster)
	push(t, s, fleetBundle(base, 1, false), "sharded")
	var dirs []string
	for i := 0; i < 4; i++ {
		dirs = append(dirs, filepath.Join(env.tmp, cluster, fmt.Sprintf("agent-%d", i)))
	}
	for i := 0; i < 3; i++ {
		startFleetAgent(t, cluster, fmt.Sprintf("agent-%d", i), dirs[i], 6*time.Second)
	}
	var before shareView
	waitFor(t, 60*time.Second, "3 agents sharing every target once", func() (bool, string) {
		before = sample(t, dirs[:3])
		return before.exact(targets, 1)
	})
	even := 1000.0 / 3
	for a, n := range before.counts() {
		if float64(n) < even*0.9 || float64(n) > even*1.1 {
			t.Errorf("agent %s owns %d of 1000 targets: not within 10%% of %.0f", a, n, even)
		}
	}
	t.Logf("3 agents: %v", before.counts())

	// A fourth joins; sample until the fleet settles.
	joined := time.Now()
	startFleetAgent(t, cluster, "agent-3", dirs[3], 6*time.Second)
	samples := 0
	var after shareView
	waitFor(t, 60*time.Second, "4 agents sharing every target once", func() (bool, string) {
		after = sample(t, dirs)
		samples++
		if u := after.unowned(targets); len(u) > 0 {
			t.Fatalf("sample %d, %s after the join: %d targets unowned (e.g. %s)", samples, time.Since(joined), len(u), u[0])
		}
		if len(after.shares["agent-3"]) == 0 {
			return false, "agent-3 owns nothing yet"
		}
		return after.exact(targets, 1)
	})
	moved := 0
	for _, tg := range targets {
		if before.owners[tg][0] != after.owners[tg][0] {
			moved++
		}
	}
	frac := float64(moved) / 1000
	t.Logf("4th agent joined: %d samples, never a target unowned; moved %d of 1000 (%.3f, ideal 0.25); shares %v; settled in %s (join delay 1s + overlap 2s)",
		samples, moved, frac, after.counts(), time.Since(joined).Round(time.Millisecond))
	if frac > 1.1*0.25 {
		t.Errorf("moved fraction %.3f is above 1.1 × the ideal 1/4", frac)
	}

	// Replication 2: every target on exactly two agents.
	push(t, s, fleetBundle(base, 2, false), "replicas 2")
	waitFor(t, 60*time.Second, "every target on exactly 2 agents", func() (bool, string) {
		return sample(t, dirs).exact(targets, 2)
	})
	t.Logf("replicas 2: %v", sample(t, dirs).counts())

	// The status tells per member what it owns.
	ctx := context.Background()
	var out strings.Builder
	if err := WriteFleetStatus(ctx, c, s, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("zkprom shards:\n%s", out.String())
	if !strings.Contains(out.String(), "agent-3") || !strings.Contains(out.String(), fleetJob) {
		t.Errorf("fleet status lacks members or the job:\n%s", out.String())
	}
}

// agentProc is the zkprom agent binary.
type agentProc struct {
	cmd    *exec.Cmd
	member string
	dir    string
	web    string // base URL of its /metrics and /status
}

func startAgentProc(t testing.TB, cluster, member, dir string, timeout time.Duration, promURL string, extra ...string) *agentProc {
	t.Helper()
	ports, err := zktest.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"agent",
		"--zookeeper.servers=" + env.ens.Connect(), "--zookeeper.session-timeout=" + timeout.String(), "--zookeeper.auth-file=" + env.agentAuth,
		"--cluster=" + cluster, "--member=" + member, "--config-dir=" + dir,
		"--prometheus.url=" + promURL, "--retry.interval=200ms", "--verify.timeout=10s",
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[0]), "--log.level=info"}, extra...)
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--promtool=") }) {
		args = append(args, "--promtool="+env.build.Promtool) // the one of the Prometheus it runs beside
	}
	cmd := exec.Command(env.binary, args...)
	logPath := filepath.Join(env.tmp, "fleet-"+member+".log")
	logf, _ := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, member: member, dir: dir, web: fmt.Sprintf("http://127.0.0.1:%d", ports[0])}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		// The agent's log on failure, or on demand.
		if t.Failed() || os.Getenv("ZKPROM_TEST_AGENT_LOGS") != "" {
			out, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Logf("log of %s (last 40 lines):\n%s", member, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return p
}

// kill -9 one agent: the others own its targets again once its session
// expires; SIGTERM one: handed over at once. The ZooKeeper leader is
// killed meanwhile: no agent drops its targets.
func TestShardsTakeover(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	c := connect(t)
	base := "/" + cluster + "/services"
	targets := registerTargets(t, c, base, 1000)
	s := newStore(t, c, cluster)
	ensureCluster(t, cluster)
	push(t, s, fleetBundle(base, 1, false), "sharded")
	const timeout = 4 * time.Second
	var procs []*agentProc
	var dirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(env.tmp, cluster, fmt.Sprintf("agent-%d", i))
		dirs = append(dirs, d)
		procs = append(procs, startAgentProc(t, cluster, fmt.Sprintf("agent-%d", i), d, timeout, "http://127.0.0.1:1", "--promtool=none"))
	}
	waitFor(t, 60*time.Second, "3 agents sharing every target once", func() (bool, string) {
		return sample(t, dirs).exact(targets, 1)
	})

	// The ZooKeeper leader dies: nobody drops targets.
	leader := env.ens.Leader()
	if err := env.ens.Kill(leader); err != nil {
		t.Fatal(err)
	}
	killedZK := time.Now()
	for time.Since(killedZK) < 3*time.Second {
		if u := sample(t, dirs).unowned(targets); len(u) > 0 {
			t.Fatalf("%s after the ZooKeeper leader was killed: %d targets unowned", time.Since(killedZK), len(u))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := env.ens.Start(leader); err != nil {
		t.Fatal(err)
	}
	if err := env.ens.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, msg := sample(t, dirs).exact(targets, 1); !ok {
		t.Fatalf("after the ZooKeeper leader's restart: %s", msg)
	}

	// kill -9 agent-0: its share is owned again once its session expires.
	victim := sample(t, dirs).shares["agent-0"]
	node := s.MemberPath("agent-0")
	procs[0].cmd.Process.Signal(syscall.SIGKILL)
	procs[0].cmd.Wait()
	killed := time.Now()
	var removed time.Duration
	waitFor(t, timeout+10*time.Second, "the killed agent's targets owned again", func() (bool, string) {
		if removed == 0 {
			if ok, _, err := c.Exists(context.Background(), node); err == nil && !ok {
				removed = time.Since(killed)
			}
		}
		v := sample(t, dirs[1:])
		if u := v.unowned(targets); len(u) > 0 {
			return false, fmt.Sprintf("%d unowned", len(u))
		}
		return true, ""
	})
	takeover := time.Since(killed)
	t.Logf("kill -9: the %d targets of the dead agent owned again after %s (session timeout %s, tick %s); ZooKeeper removed its node after %s",
		len(victim), takeover.Round(time.Millisecond), timeout, tickTime, removed.Round(time.Millisecond))
	// ZooKeeper's expiry is the floor (the timeout, rounded up to a tick);
	// zkprom's own part, from the node's removal, is what this bounds:
	// measured in tens of milliseconds, bounded loosely for a busy machine.
	if removed > 0 && takeover-removed > 2*time.Second {
		t.Errorf("targets owned again %s after ZooKeeper removed the dead agent's node: want well under the tick", takeover-removed)
	}

	// SIGTERM agent-1: it removes its member node; agent-2 takes over.
	procs[1].cmd.Process.Signal(syscall.SIGTERM)
	termed := time.Now()
	waitFor(t, 10*time.Second, "the stopped agent's targets owned by agent-2", func() (bool, string) {
		v := sample(t, dirs[2:])
		if u := v.unowned(targets); len(u) > 0 {
			return false, fmt.Sprintf("%d unowned", len(u))
		}
		return true, ""
	})
	t.Logf("SIGTERM: every target owned by the last agent %s after the signal", time.Since(termed).Round(time.Millisecond))
	procs[1].cmd.Wait()
}

// A brief disconnect of one agent (shorter than its session timeout)
// moves nothing: every share stays exactly as it was, at every sample.
func TestShardsBriefDisconnect(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	c := connect(t)
	base := "/" + cluster + "/services"
	targets := registerTargets(t, c, base, 300)
	s := newStore(t, c, cluster)
	ensureCluster(t, cluster)
	push(t, s, fleetBundle(base, 1, false), "sharded")
	px, err := zktest.NewProxy(env.ens.Servers[0].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	var dirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(env.tmp, cluster, fmt.Sprintf("agent-%d", i))
		dirs = append(dirs, d)
		servers := env.ens.Connect()
		if i == 0 {
			servers = px.Addr()
		}
		startFleetAgentVia(t, servers, cluster, fmt.Sprintf("agent-%d", i), d, 8*time.Second, 1)
	}
	waitFor(t, 60*time.Second, "3 agents sharing every target once", func() (bool, string) {
		return sample(t, dirs).exact(targets, 1)
	})
	time.Sleep(3 * time.Second) // past join delay and overlap: settled
	before := sample(t, dirs)
	px.Stall()
	stalled := time.Now()
	n := 0
	for time.Since(stalled) < 10*time.Second {
		if time.Since(stalled) > 6*time.Second {
			px.Resume() // 6 s of silence: the client gave up the connection (after 2/3 of the timeout), the session lives
		}
		v := sample(t, dirs)
		n++
		for a, share := range before.shares {
			if len(v.shares[a]) != len(share) {
				t.Fatalf("%s after the stall began: %s owns %d targets, had %d", time.Since(stalled).Round(time.Millisecond), a, len(v.shares[a]), len(share))
			}
			for tg := range share {
				if !v.shares[a][tg] {
					t.Fatalf("%s after the stall began: %s lost %s", time.Since(stalled).Round(time.Millisecond), a, tg)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("agent-0 silent for 6 s (session timeout 8 s): %d samples over 10 s, no share changed", n)
}

func agentMetrics(base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue returns the value of the first sample of name ("" when none).
func metricValue(text, name string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			f := strings.Fields(l)
			return f[len(f)-1]
		}
	}
	return ""
}

// startHAAgent runs an in-process agent of Prometheus i in HA group
// "pair", reaching ZooKeeper through servers.
func startHAAgent(t testing.TB, servers, cluster string, i int, timeout time.Duration) *runningAgent {
	return startHAAgentWith(t, agentZK(servers, timeout), cluster, i)
}

func startHAAgentWith(t testing.TB, zc zk.Config, cluster string, i int) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, zc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	member := fmt.Sprintf("agent-%d", i)
	cfg := Config{Cluster: cluster, Member: member, ConfigDir: env.dirs[i],
		Prometheus: prom.Config{URL: env.proms[i].URL}, VerifyTimeout: 10 * time.Second, RetryInterval: 300 * time.Millisecond,
		Fleet: FleetConfig{ZooKeeper: zc, HAGroup: "pair"}}
	a, err := New(c, cfg, testLogger(t).With("member", member), nil)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	r := &runningAgent{a: a, cancel: rcancel, done: make(chan error, 1), client: c}
	go func() { r.done <- a.Run(rctx) }()
	t.Cleanup(r.stop)
	return r
}

// A leader cut off from ZooKeeper gives up its overlay after the grace
// (a third of the session timeout), from local files, well before its
// session can expire and another member can lead; back within the
// session, it leads again. The overlay is never on both.
func TestHADisconnectedLeaderStepsDown(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	c := connect(t)
	base := "/" + cluster + "/services"
	registerTargets(t, c, base, 10)
	s := newStore(t, c, cluster)
	ensureCluster(t, cluster)
	res := push(t, s, fleetBundle(base, 1, true), "ha")
	px, err := zktest.NewProxy(env.ens.Servers[0].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	const timeout = 8 * time.Second
	dirs := env.dirs[:2]
	startHAAgent(t, px.Addr(), cluster, 0, timeout)
	waitFor(t, 30*time.Second, "agent-0 leading with the overlay", func() (bool, string) {
		return overlayOn(dirs[0]), "no overlay"
	})
	startHAAgent(t, env.ens.Connect(), cluster, 1, timeout)
	if err := waitRollout(t, s, res.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		if overlayOn(dirs[0]) && overlayOn(dirs[1]) {
			t.Fatalf("%s: both agents have the overlay", when)
		}
		if overlayOn(dirs[1]) {
			t.Fatalf("%s: agent-1 took the overlay although agent-0's session never expired", when)
		}
	}
	// The leader must give up before its session could expire (the grace
	// is a third of the session timeout); the bound is the session timeout
	// itself, not the grace, so a loaded machine does not fail the test.
	px.Stall()
	stalled := time.Now()
	limit := timeout - time.Second
	var down time.Duration
	for time.Since(stalled) < limit && (down == 0 || time.Since(stalled) < down+500*time.Millisecond) {
		check(fmt.Sprintf("%s after the stall", time.Since(stalled).Round(time.Millisecond)))
		if down == 0 && !overlayOn(dirs[0]) {
			down = time.Since(stalled)
		}
		time.Sleep(10 * time.Millisecond)
	}
	px.Resume()
	resumed := time.Now()
	if down == 0 {
		t.Fatalf("agent-0 kept the overlay for %s without ZooKeeper (grace %s, session timeout %s)", limit, timeout/3, timeout)
	}
	waitFor(t, 20*time.Second, "agent-0 leading again", func() (bool, string) {
		check(fmt.Sprintf("%s after the resume", time.Since(resumed).Round(time.Millisecond)))
		return overlayOn(dirs[0]), "no overlay"
	})
	t.Logf("leader cut off: overlay removed %s after the stall (grace %s, session timeout %s); back %s after the connection returned; never on agent-1",
		down.Round(time.Millisecond), (timeout / 3).Round(time.Millisecond), timeout, time.Since(resumed).Round(time.Millisecond))
}

// Weights come from each agent's member node: weights 1, 1 and 2 give
// shares of about 1/4, 1/4 and 1/2.
func TestShardsWeights(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	c := connect(t)
	base := "/" + cluster + "/services"
	targets := registerTargets(t, c, base, 1000)
	s := newStore(t, c, cluster)
	ensureCluster(t, cluster)
	push(t, s, fleetBundle(base, 1, false), "sharded")
	var dirs []string
	for i, w := range []float64{1, 1, 2} {
		d := filepath.Join(env.tmp, cluster, fmt.Sprintf("agent-%d", i))
		dirs = append(dirs, d)
		startFleetAgentVia(t, env.ens.Connect(), cluster, fmt.Sprintf("agent-%d", i), d, 6*time.Second, w)
	}
	var v shareView
	waitFor(t, 60*time.Second, "3 agents sharing every target once", func() (bool, string) {
		v = sample(t, dirs)
		return v.exact(targets, 1)
	})
	n := v.counts()
	t.Logf("weights 1, 1, 2: shares %v", n)
	if n["agent-2"] < 400 || n["agent-2"] > 600 || n["agent-0"] < 175 || n["agent-0"] > 325 || n["agent-1"] < 175 || n["agent-1"] > 325 {
		t.Errorf("shares %v: want about 250, 250 and 500", n)
	}
}

// Leadership won while the agent's Prometheus is away (its revision laid
// down, the verify deferred): once Prometheus answers, the agent applies
// the leader variant instead of staying on the plain one.
func TestHALeadershipWonWhilePrometheusAway(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	c := connect(t)
	base := "/" + cluster + "/services"
	registerTargets(t, c, base, 4)
	s := newStore(t, c, cluster)
	ensureCluster(t, cluster)
	push(t, s, fleetBundle(base, 1, true), "ha")
	dirs := env.dirs[:2]
	const timeout = 8 * time.Second
	first := startHAAgent(t, env.ens.Connect(), cluster, 1, timeout)
	waitFor(t, 30*time.Second, "agent-1 leading with the overlay", func() (bool, string) {
		return overlayOn(dirs[1]), "no overlay"
	})

	env.proms[0].Stop()
	t.Cleanup(func() {
		if env.proms[0].Pid() == 0 {
			env.proms[0].Start()
		}
	})
	second := startHAAgent(t, env.ens.Connect(), cluster, 0, timeout)
	waitFor(t, 30*time.Second, "agent-0 laid its revision down", func() (bool, string) {
		l, _ := os.Readlink(filepath.Join(dirs[0], "current"))
		return strings.HasPrefix(filepath.Base(l), "r-"), "current -> " + l
	})
	first.stop() // a clean exit: agent-0 leads while its Prometheus is away
	waitFor(t, 30*time.Second, "agent-0 leading", func() (bool, string) {
		return second.a.fleet.leading(), "follower"
	})
	if err := env.proms[0].Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "agent-0 applies the overlay once its Prometheus answers", func() (bool, string) {
		return overlayOn(dirs[0]), "plain revision"
	})
}

// TestHAMixedCredentials: the two members of an HA group run with
// different agent identities (both named at push): whoever creates the
// group's nodes, the other can stand, win and record the hand-over.
func TestHAMixedCredentials(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	dir := t.TempDir()
	auths := []string{filepath.Join(dir, "agent-a"), filepath.Join(dir, "agent-b")}
	var ids []string
	for i, user := range []string{"agent-a", "agent-b"} {
		pass := randomPassword()
		os.WriteFile(auths[i], []byte(user+":"+pass+"\n"), 0o600)
		ids = append(ids, zk.DigestIdentity(user, pass).String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	writer := connect(t)
	base := "/" + cluster + "/services"
	registerTargets(t, writer, base, 4)
	s, err := configstore.New(writer, configstore.Options{Cluster: cluster, Access: &configstore.Access{Agents: ids}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	push(t, s, fleetBundle(base, 1, true), "ha")

	first := startHAAgentWith(t, zk.Config{Servers: env.ens.Connect(), SessionTimeout: 6 * time.Second, AuthFile: auths[0]}, cluster, 0)
	waitFor(t, 30*time.Second, "agent-0 (identity a) leading", func() (bool, string) {
		return first.a.fleet.leading() && overlayOn(env.dirs[0]), "not yet"
	})
	second := startHAAgentWith(t, zk.Config{Servers: env.ens.Connect(), SessionTimeout: 6 * time.Second, AuthFile: auths[1]}, cluster, 1)
	waitFor(t, 30*time.Second, "agent-1 (identity b) standing", func() (bool, string) {
		st := second.a.Status()
		return st.Fleet != nil && st.Revision > 0, "no revision yet"
	})
	first.stop()
	waitFor(t, 30*time.Second, "agent-1 leading with the overlay", func() (bool, string) {
		return second.a.fleet.leading() && overlayOn(env.dirs[1]), "not yet"
	})
	data, _, err := writer.Get(ctx, s.HALeaderPath("pair"))
	var rec configstore.HALeader
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.Member != "agent-1" || rec.Previous != "agent-0" {
		t.Errorf("leader record %s (%v): want agent-1 after agent-0", data, err)
	}
}
