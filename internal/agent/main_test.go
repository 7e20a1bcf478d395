package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

// One ensemble for the whole package, and three Prometheus servers of
// each build the tests run against (Debian's 2.42, the pinned 3.x).
var env struct {
	ens *zktest.Ensemble
	// build, proms and dirs are the Prometheus servers a test uses and
	// their agents' config dirs (Prometheus runs
	// DIR/current/prometheus.yml): those of sets[0] (Debian's), or of the
	// build a subtest of forEachPrometheus runs against.
	build  zktest.PrometheusBuild
	proms  []*zktest.Prometheus
	dirs   []string
	sets   []promSet
	tmp    string
	binary string // built zkprom, for the kill -9 test
	// Credentials: tests push as the writer and run agents as the agents'
	// identity, as in production (docs/security.md).
	writerAuth, agentAuth string
	agentID               zk.Identity
}

// promSet is nProm Prometheus servers of one build.
type promSet struct {
	build zktest.PrometheusBuild
	proms []*zktest.Prometheus
	dirs  []string
}

// use makes s the set the tests use (env.build, env.proms, env.dirs).
func (s promSet) use() { env.build, env.proms, env.dirs = s.build, s.proms, s.dirs }

const nProm = 3

// forEachPrometheus runs f as a subtest per build, on that build's
// Prometheus servers, with agents that validate with its promtool. The
// tests of the package run one at a time: env is switched for the
// subtest and back.
func forEachPrometheus(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, set := range env.sets {
		set.use()
		t.Run(set.build.Name, f)
	}
	env.sets[0].use()
}

const tickTime = 500 * time.Millisecond

const bootstrapConfig = "global:\n  scrape_interval: 15s\n"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "zkprom-agent-test-")
	if err != nil {
		return 0, err
	}
	env.tmp = tmp
	defer os.RemoveAll(tmp)
	if err := writeCredentials(tmp); err != nil {
		return 0, err
	}
	// A tick of 500 ms: ZooKeeper expires sessions on tick boundaries, so a
	// dead agent's node goes at most half a second after its session
	// timeout (docs/fleet.md, "Takeover time").
	env.ens, err = zktest.StartEnsemble(zktest.Options{Servers: 3, TickTime: tickTime})
	if err != nil {
		return 0, err
	}
	defer env.ens.Close()
	builds, err := zktest.PrometheusBuilds()
	if err != nil {
		return 0, err
	}
	for _, b := range builds {
		set := promSet{build: b}
		for i := 0; i < nProm; i++ {
			dir := filepath.Join(tmp, fmt.Sprintf("%s-%d", b.Name, i))
			if err := bootstrap(dir); err != nil {
				return 0, err
			}
			p, err := zktest.StartPrometheus(zktest.PrometheusOptions{Build: b, ConfigFile: filepath.Join(dir, "current", "prometheus.yml")})
			if err != nil {
				return 0, err
			}
			defer p.Close()
			set.proms = append(set.proms, p)
			set.dirs = append(set.dirs, dir)
		}
		env.sets = append(env.sets, set)
	}
	env.sets[0].use()
	env.binary = filepath.Join(tmp, "zkprom")
	if out, err := exec.Command("go", "build", "-o", env.binary, "../../cmd/zkprom").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build zkprom: %v: %s", err, out)
	}
	return m.Run(), nil
}

// writeCredentials writes the writer's and the agents' auth files with
// random passwords.
func writeCredentials(dir string) error {
	env.writerAuth, env.agentAuth = filepath.Join(dir, "writer.auth"), filepath.Join(dir, "agent.auth")
	agentPass := randomPassword()
	if err := os.WriteFile(env.writerAuth, []byte("writer:"+randomPassword()+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(env.agentAuth, []byte("agent:"+agentPass+"\n"), 0o600); err != nil {
		return err
	}
	env.agentID = zk.DigestIdentity("agent", agentPass)
	return nil
}

func randomPassword() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// agentZK is how agents reach ZooKeeper: with the agents' credentials.
func agentZK(servers string, timeout time.Duration) zk.Config {
	return zk.Config{Servers: servers, SessionTimeout: timeout, AuthFile: env.agentAuth}
}

// bootstrap (re)creates an agent directory whose current link points at a
// minimal configuration outside the revisions.
func bootstrap(dir string) error {
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "bootstrap"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bootstrap", "prometheus.yml"), []byte(bootstrapConfig), 0o644); err != nil {
		return err
	}
	return os.Symlink("bootstrap", filepath.Join(dir, "current"))
}

// reset puts every Prometheus back on the bootstrap configuration.
func reset(t testing.TB) {
	t.Helper()
	for i, dir := range env.dirs {
		if env.proms[i].Pid() == 0 {
			if err := env.proms[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		if err := bootstrap(dir); err != nil {
			t.Fatal(err)
		}
		pc := promClient(t, i)
		if err := pc.Reload(context.Background()); err != nil {
			t.Fatalf("reset prometheus %d: %v", i, err)
		}
	}
}

func promClient(t testing.TB, i int) *prom.Client { return promClientFor(t, env.proms[i].URL) }

func promClientFor(t testing.TB, url string) *prom.Client {
	pc, err := prom.New(prom.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// connect returns a session with the writer's credentials.
func connect(t testing.TB) *zk.Client {
	t.Helper()
	return connectWith(t, zk.Config{Servers: env.ens.Connect(), SessionTimeout: 6 * time.Second, AuthFile: env.writerAuth})
}

func connectWith(t testing.TB, cfg zk.Config) *zk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func clusterName(t testing.TB) string {
	return strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
}

// newStore is the cluster's store for c; a push through it names the
// test agents' identity.
func newStore(t testing.TB, c *zk.Client, cluster string) *configstore.Store {
	s, err := configstore.New(c, configstore.Options{Cluster: cluster, Access: &configstore.Access{Agents: []string{env.agentID.String()}}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type runningAgent struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
	client *zk.Client
	once   sync.Once
}

func (r *runningAgent) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		r.client.Close()
	})
}

// startAgent runs an agent for Prometheus i in a goroutine, with its own
// ZooKeeper session.
func startAgent(t testing.TB, cluster string, i int, mod func(*Config)) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, agentZK(env.ens.Connect(), 6*time.Second), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Cluster: cluster, Member: fmt.Sprintf("agent-%d", i), ConfigDir: env.dirs[i],
		Prometheus: prom.Config{URL: env.proms[i].URL}, Promtool: env.build.Promtool,
		VerifyTimeout: 10 * time.Second, RetryInterval: 300 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(c, cfg, testLogger(t).With("member", cfg.Member), nil)
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

// ensureCluster creates the cluster's nodes as the writer's first push
// would.
func ensureCluster(t testing.TB, cluster string) {
	t.Helper()
	if err := newStore(t, connect(t), cluster).Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func startAgents(t testing.TB, cluster string, mod func(i int, c *Config)) []*runningAgent {
	ensureCluster(t, cluster)
	var out []*runningAgent
	for i := 0; i < nProm; i++ {
		out = append(out, startAgent(t, cluster, i, func(c *Config) {
			if mod != nil {
				mod(i, c)
			}
		}))
	}
	waitFor(t, 30*time.Second, "agents registered", func() (bool, string) {
		for _, r := range out {
			r.a.mu.Lock()
			registered := r.a.reg != nil
			r.a.mu.Unlock()
			if !registered {
				return false, r.a.cfg.Member + " not registered"
			}
		}
		return true, ""
	})
	return out
}

func waitFor(t testing.TB, timeout time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := f()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

// bundle builds a bundle: one static scrape job per name in jobs (all
// scraping Prometheus 0 itself) and one rule group per name in groups.
func testBundle(jobs []string, groups []string, extraMain string, extra map[string]string) *bundle.Bundle {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 15s\n  external_labels:\n    replica: ${ZKPROM_MEMBER}\n")
	b.WriteString("rule_files:\n  - rules/*.yml\n")
	b.WriteString(extraMain)
	b.WriteString("scrape_configs:\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: ['%s']\n", j, env.proms[0].Addr)
	}
	files := map[string][]byte{"prometheus.yml": []byte(b.String())}
	if len(groups) > 0 {
		var r strings.Builder
		r.WriteString("groups:\n")
		for _, g := range groups {
			fmt.Fprintf(&r, "  - name: %s\n    rules:\n      - record: %s:up:sum\n        expr: sum(up)\n", g, g)
		}
		files["rules/main.yml"] = []byte(r.String())
	}
	for k, v := range extra {
		files[k] = []byte(v)
	}
	return &bundle.Bundle{Files: files}
}

func push(t testing.TB, s *configstore.Store, b *bundle.Bundle, msg string) *configstore.PushResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := bundle.Validate(ctx, b, bundle.ValidateOptions{}); err != nil {
		t.Fatalf("validate: %v", err)
	}
	res, err := s.Push(ctx, b, configstore.PushMeta{Author: "test", Message: msg})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return res
}

func waitRollout(t testing.TB, s *configstore.Store, rev int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return s.WaitRollout(ctx, rev, nil, nil)
}

// served checks that Prometheus pc serves exactly these scrape pools and
// rule groups.
func served(pc *prom.Client, jobs, groups []string) (bool, string) {
	ctx := context.Background()
	pools, err := pc.Targets(ctx)
	if err != nil {
		return false, err.Error()
	}
	rules, err := pc.RuleGroups(ctx)
	if err != nil {
		return false, err.Error()
	}
	if len(pools) != len(jobs) || len(rules) != len(groups) {
		return false, fmt.Sprintf("pools %v rule groups %v, want %v %v", pools, rules, jobs, groups)
	}
	for _, j := range jobs {
		if pools[j] == 0 {
			return false, fmt.Sprintf("no pool %s in %v", j, pools)
		}
	}
	for _, g := range groups {
		if _, ok := rules[g]; !ok {
			return false, fmt.Sprintf("no rule group %s in %v", g, rules)
		}
	}
	return true, ""
}

// waitServed waits until Prometheus i serves these scrape pools and rule
// groups.
func waitServed(t testing.TB, i int, jobs, groups []string) {
	t.Helper()
	waitServedBy(t, promClient(t, i), jobs, groups)
}

func waitServedBy(t testing.TB, pc *prom.Client, jobs, groups []string) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%s to serve %v %v", pc.URL(), jobs, groups), func() (bool, string) {
		return served(pc, jobs, groups)
	})
}
