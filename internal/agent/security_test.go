package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zk"
)

// runOnce runs an agent with zc until it stops by itself (or 20 s), and
// returns its error.
func runOnce(t *testing.T, zc zk.Config, cluster string, mod func(*Config)) error {
	t.Helper()
	c := connectWith(t, zc)
	cfg := Config{Cluster: cluster, Member: "probe", ConfigDir: t.TempDir(), Promtool: "none",
		Prometheus: prom.Config{URL: "http://127.0.0.1:1"}, RetryInterval: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(c, cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return a.Run(ctx)
}

// An agent without the agents' identity is refused with the reason: no
// credentials at all, or credentials of someone else (a different
// password for the agents' user name, another user).
func TestAgentSecurityIdentity(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	push(t, newStore(t, connect(t), cluster), testBundle([]string{"job_a"}, nil, "", nil), "first")
	dir := t.TempDir()
	for _, tc := range []struct {
		name, creds, want string
	}{
		{"anonymous", "", "--zookeeper.auth-file"},
		{"agents' user, other password", "agent:" + randomPassword(), "is not one of them"},
		{"another user", "intruder-" + randomPassword()[:4] + ":" + randomPassword(), "is not one of them"},
		{"the writer", string(must(os.ReadFile(env.writerAuth))), "is not one of cluster"},
	} {
		zc := zk.Config{Servers: env.ens.Connect(), SessionTimeout: 6 * time.Second}
		if tc.creds != "" {
			zc.AuthFile = filepath.Join(dir, fmt.Sprintf("auth-%d", len(tc.name)))
			os.WriteFile(zc.AuthFile, []byte(tc.creds+"\n"), 0o600)
		}
		err := runOnce(t, zc, cluster, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "context deadline") {
			t.Errorf("%s: agent run: %v, want a refusal containing %q", tc.name, err, tc.want)
		}
		if tc.creds != "" && err != nil && strings.Contains(err.Error(), strings.TrimSpace(strings.SplitN(tc.creds, ":", 2)[1])) {
			t.Errorf("%s: the refusal shows the password: %v", tc.name, err)
		}
	}
	// The agents' identity is admitted.
	if err := runOnce(t, agentZK(env.ens.Connect(), 6*time.Second), cluster, func(c *Config) { c.Member = "admitted" }); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("agent with the agents' credentials: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A cluster node whose ACL grants more than the model stops an agent at
// start, and `zkprom config status`, naming the node and its ACL.
func TestAgentSecurityWideACL(t *testing.T) {
	skipShort(t)
	w := connect(t)
	ctx := context.Background()
	group := func(s *configstore.Store) string { return s.HAGroupPath("pair") }
	election := func(s *configstore.Store) string { return s.HAElectionPath("pair") }
	for i, tc := range []struct {
		node  func(*configstore.Store) string
		extra zk.ACL
	}{
		{(*configstore.Store).MembersPath, zk.ACL{Perms: zk.PermAll, Scheme: "world", ID: "anyone"}},
		{(*configstore.Store).CurrentPath, zk.ACL{Perms: zk.PermWrite, Scheme: "world", ID: "anyone"}},
		{(*configstore.Store).HAPath, zk.ACL{Perms: zk.PermCreate | zk.PermDelete, Scheme: "digest", ID: "intruder:" + randomPassword()}},
		{(*configstore.Store).Path, zk.ACL{Perms: zk.PermAll, Scheme: "ip", ID: "127.0.0.1"}},
		{group, zk.ACL{Perms: zk.PermWrite | zk.PermCreate, Scheme: "world", ID: "anyone"}},
		{election, zk.ACL{Perms: zk.PermAll, Scheme: "digest", ID: "agent:" + randomPassword()}},
	} {
		cluster := fmt.Sprintf("%s-%d", clusterName(t), i)
		s := newStore(t, w, cluster)
		push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
		access, _, err := s.Access(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.CreateAll(ctx, election(s), access.ACL(configstore.KindAgentDir)); err != nil {
			t.Fatal(err)
		}
		p := tc.node(s)
		acl, _, err := w.GetACL(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.SetACL(ctx, p, append(acl, tc.extra), -1); err != nil {
			t.Fatal(err)
		}
		err = runOnce(t, agentZK(env.ens.Connect(), 6*time.Second), cluster, func(c *Config) { c.Fleet.HAGroup = "pair" })
		if err == nil || !strings.Contains(err.Error(), p+" has ACL") || !strings.Contains(err.Error(), tc.extra.Scheme+":"+strings.SplitN(tc.extra.ID, ":", 2)[0]) {
			t.Errorf("agent in a cluster whose %s is wider: %v", p, err)
		}
		out, errOut, code := zkprom(t, "config", "status", "--zookeeper.servers="+env.ens.Connect(), "--zookeeper.auth-file="+env.writerAuth, "--cluster="+cluster, "--log.level=warn")
		if code != 1 || !strings.Contains(out, "ACL WIDER THAN THE MODEL: "+p) || !strings.Contains(errOut, "--repair-acls") {
			t.Errorf("config status of a cluster whose %s is wider: exit %d\n%s\n%s", p, code, out, errOut)
		}
	}
}

// Nodes under members that are not a live agent's (persistent, or with a
// huge weight) take no targets away from the real agents; an anonymous
// client cannot create one at all.
func TestAgentSecurityForeignMembers(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	c := connect(t)
	base := "/" + cluster + "/services"
	targets := registerTargets(t, c, base, 60)
	s := newStore(t, c, cluster)
	push(t, s, fleetBundle(base, 1, false), "sharded")
	var dirs []string
	var agents []*runningAgent
	for i := 0; i < 2; i++ {
		dirs = append(dirs, filepath.Join(env.tmp, cluster, fmt.Sprintf("agent-%d", i)))
		agents = append(agents, startFleetAgent(t, cluster, fmt.Sprintf("agent-%d", i), dirs[i], 6*time.Second))
	}
	waitFor(t, 60*time.Second, "2 agents sharing every target once", func() (bool, string) {
		return sample(t, dirs).exact(targets, 1)
	})
	ctx := context.Background()
	anon := connectWith(t, zk.Config{Servers: env.ens.Connect()})
	fake := func(name string, weight any, cluster string) []byte {
		return []byte(fmt.Sprintf(`{"member":%q,"cluster":%q,"state":"applied","fleet":{"shard_member":%q,"weight":%v}}`, name, cluster, name, weight))
	}
	if _, err := anon.Create(ctx, s.MemberPath("x"), fake("x", 1e300, cluster), zk.Persistent, zk.ACLOpen()); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("anonymous member node: %v", err)
	}
	// What only a holder of the writer's or agents' credentials could
	// place: each is ignored.
	access, _, err := s.Access(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := connectWith(t, agentZK(env.ens.Connect(), 6*time.Second))
	for _, m := range []struct {
		name string
		data []byte
		mode zk.CreateMode
	}{
		{"persistent", fake("persistent", 1, cluster), zk.Persistent},
		{"huge-" + randomPassword()[:5], nil, zk.Ephemeral},
		{"negative", fake("negative", -5, cluster), zk.Ephemeral},
		{"otherc", fake("otherc", 1, cluster+"-x"), zk.Ephemeral},
		{"junk", []byte("\x00\xffnot json"), zk.Ephemeral},
	} {
		if m.data == nil {
			m.data = fake(m.name, 1e300, cluster)
		}
		if _, err := other.Create(ctx, s.MemberPath(m.name), m.data, m.mode, access.ACL(configstore.KindAgentNode)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the agents ignoring 5 foreign member nodes", func() (bool, string) {
		for _, a := range agents {
			a.a.fleet.mu.Lock()
			n := 0
			for _, c := range a.a.fleet.ignored {
				n += c
			}
			a.a.fleet.mu.Unlock()
			if n != 5 {
				return false, fmt.Sprintf("%s ignores %d", a.a.cfg.Member, n)
			}
		}
		return true, ""
	})
	// Every target stays owned by exactly one real agent.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if ok, why := sample(t, dirs).exact(targets, 1); !ok {
			t.Fatalf("with foreign member nodes: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(fleetCollector{agents[0].a.fleet})
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "zkprom_shard_ignored_members" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					got[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"persistent": 1, "bad_weight": 2, "wrong_cluster": 1, "bad_data": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("zkprom_shard_ignored_members by reason: %v, want %v", got, want)
	}
}

// An agent whose member node is deleted (only the writer can, in a
// closed cluster) re-creates it at once.
func TestAgentSecurityMemberDeleted(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	w := connect(t)
	s := newStore(t, w, cluster)
	push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
	r := startFleetAgent(t, cluster, "agent-0", t.TempDir(), 6*time.Second)
	defer r.stop()
	ctx := context.Background()
	p := s.MemberPath("agent-0")
	owner := func() int64 {
		ok, st, err := w.Exists(ctx, p)
		if err != nil || !ok {
			return 0
		}
		return st.EphemeralOwner
	}
	waitFor(t, 30*time.Second, "member node", func() (bool, string) { return owner() != 0, "missing" })
	anon := connectWith(t, zk.Config{Servers: env.ens.Connect()})
	if err := anon.Delete(ctx, p, -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("anonymous delete of a member node: %v", err)
	}
	for i := 0; i < 3; i++ {
		if err := w.Delete(ctx, p, -1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("member node re-created (%d)", i), func() (bool, string) {
			return owner() == r.client.SessionID(), "missing"
		})
	}
}

// fakeProm answers like a Prometheus whose loaded configuration is a
// leader variant, and counts the requests it gets.
func fakeProm(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/api/v1/status/config" {
			json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]string{"yaml": "rule_files:\n- /x/" + bundle.LeaderMarker + "\n"}})
			return
		}
		fmt.Fprintln(w, "Prometheus Server is Ready.")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// forgeRecord replaces the HA group's leader record with one naming url,
// written with ACL acl.
func forgeRecord(t *testing.T, c *zk.Client, s *configstore.Store, url string, acl []zk.ACL) {
	t.Helper()
	h, _ := os.Hostname()
	data, _ := json.Marshal(configstore.HALeader{Member: "agent-9", Term: 1, Since: time.Now(), Prometheus: url, Host: h})
	p := s.HALeaderPath("pair")
	if _, err := c.Multi(context.Background(), zk.DeleteOp(p, -1), zk.CreateOp(p, data, zk.Persistent, acl)); err != nil {
		t.Fatal(err)
	}
}

// A leader record not written by an agent (its ACL is not the model's)
// sends nobody anywhere: the followers do not probe the URL it names, and
// the next leader takes over without waiting on it. Anonymous clients
// cannot write records at all.
func TestAgentSecurityForgedLeaderRecord(t *testing.T) {
	skipShort(t)
	p := startHAPair(t)
	ctx := context.Background()
	rec := p.store.HALeaderPath("pair")
	anon := connectWith(t, zk.Config{Servers: env.ens.Connect()})
	if _, err := anon.Set(ctx, rec, []byte(`{"member":"evil","term":99,"prometheus":"http://127.0.0.1:1"}`), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("anonymous write of the leader record: %v", err)
	}
	if _, err := anon.Create(ctx, zk.Join(p.store.HAPath(), "evil"), nil, zk.Persistent, zk.ACLOpen()); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("anonymous HA group: %v", err)
	}
	srv, hits := fakeProm(t)
	forgeRecord(t, p.c, p.store, srv.URL, zk.ACLOpen())
	time.Sleep(2 * time.Second) // the follower reads the record every second
	if n := hits.Load(); n != 0 {
		t.Errorf("followers probed the forged record's URL %d times", n)
	}
	leader, other := p.leader, 1-p.leader
	p.procs[leader].cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, 30*time.Second, "the other member running the overlay", func() (bool, string) {
		return promRunsOverlay(other), "not yet"
	})
	if n := hits.Load(); n != 0 {
		t.Errorf("the forged record's URL was asked %d times", n)
	}
	data, _, err := p.c.Get(ctx, rec)
	var got configstore.HALeader
	if err != nil || json.Unmarshal(data, &got) != nil || got.Member != fmt.Sprintf("agent-%d", other) {
		t.Errorf("leader record after the takeover: %s (%v)", data, err)
	}
	if acl := must2(p.c.GetACL(ctx, rec)); strings.Contains(zk.FormatACL(acl), "world:anyone:cdrwa") {
		t.Errorf("the forged record's ACL stayed: %s", zk.FormatACL(acl))
	}
	if v := metricValue(agentMetrics(p.procs[other].web), "zkprom_ha_untrusted_takeovers_total"); v != "1" {
		t.Errorf("untrusted takeovers: %q, want 1", v)
	}
}

func must2[T, U any](v T, _ U, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// In an open cluster anyone may write the leader record: the next leader
// asks the URL it names, but waits at most --ha.untrusted-record-wait,
// and says so while it waits; the followers never probe it.
func TestAgentSecurityOpenClusterBoundedWait(t *testing.T) {
	skipShort(t)
	p := startHAPairWith(t, &configstore.Access{Open: true}, "--ha.untrusted-record-wait=4s")
	s, procs, leader := p.store, p.procs, p.leader
	other := 1 - leader
	srv, hits := fakeProm(t)
	anon := connectWith(t, zk.Config{Servers: env.ens.Connect()})
	forgeRecord(t, anon, s, srv.URL, zk.ACLOpen())
	time.Sleep(2 * time.Second)
	if n := hits.Load(); n != 0 {
		t.Errorf("followers probed the record's URL %d times", n)
	}
	procs[leader].cmd.Process.Signal(syscall.SIGTERM)
	var sawWaiting bool
	var mu sync.Mutex
	waitFor(t, 30*time.Second, "the other member running the overlay after the bounded wait", func() (bool, string) {
		var st configstore.Status
		if resp, err := http.Get(procs[other].web + "/status"); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		mu.Lock()
		if st.Fleet != nil && strings.Contains(st.Fleet.Waiting, "not protected by ACLs") {
			sawWaiting = true
		}
		mu.Unlock()
		return promRunsOverlay(other), "not yet"
	})
	if !sawWaiting {
		t.Error("the wait on the open cluster's record was never shown in the status")
	}
	if hits.Load() == 0 {
		t.Error("the new leader did not ask the record's Prometheus at all (it should, within the bound)")
	}
	if log, _ := os.ReadFile(filepath.Join(env.tmp, "fleet-agent-"+fmt.Sprint(other)+".log")); !strings.Contains(string(log), "the cluster is open") {
		t.Error("the agent did not warn that its cluster is open")
	}
	if text := agentMetrics(procs[other].web); metricValue(text, "zkprom_ha_untrusted_takeovers_total") != "1" {
		t.Errorf("untrusted takeovers: %q", metricValue(text, "zkprom_ha_untrusted_takeovers_total"))
	}
}

// syncBuffer is a log sink for a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Credentials in --prometheus.url appear nowhere (member node, HA record,
// status, log); an error text with terminal control characters reaches
// the member node without them; the agent's files are its own.
func TestAgentSecuritySecretsStayLocal(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	w := connect(t)
	s := newStore(t, w, cluster)
	pass := "Pw-" + randomPassword()
	u, _ := url.Parse(env.proms[0].URL)
	u.User = url.UserPassword("scraper", pass)
	var logs syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	c := connectWith(t, agentZK(env.ens.Connect(), 6*time.Second))
	cfg := Config{Cluster: cluster, Member: "agent-0", ConfigDir: env.dirs[0], Prometheus: prom.Config{URL: u.String()},
		VerifyTimeout: 10 * time.Second, RetryInterval: 300 * time.Millisecond, Fleet: FleetConfig{HAGroup: "solo"}}
	a, err := New(c, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	ensureCluster(t, cluster)
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	defer func() { cancel(); <-done }()
	res := push(t, s, testBundle([]string{"job_a"}, []string{"group_a"}, "", map[string]string{"secrets/token": "t0ken-" + pass}), "first")
	if err := waitRollout(t, s, res.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := s.HALeaderPath("solo")
	waitFor(t, 30*time.Second, "leader record", func() (bool, string) {
		ok, _, _ := w.Exists(ctx, rec)
		return ok, "none"
	})
	member, _, _ := w.Get(ctx, s.MemberPath("agent-0"))
	record, _, _ := w.Get(ctx, rec)
	status, _ := json.Marshal(a.Status())
	for what, text := range map[string]string{"member node": string(member), "leader record": string(record), "status": string(status), "log": logs.String()} {
		if strings.Contains(text, pass) {
			t.Errorf("the password of --prometheus.url is in the %s", what)
		}
	}
	if !strings.Contains(string(member), u.Host) {
		t.Errorf("member node lost the Prometheus address too: %s", member)
	}
	// The agent's own nodes carry the model's ACL.
	access := a.accessSettings()
	for p, kind := range map[string]configstore.NodeKind{s.MemberPath("agent-0"): configstore.KindAgentNode, rec: configstore.KindAgentNode,
		s.HAGroupPath("solo"): configstore.KindAgentDir, s.HAElectionPath("solo"): configstore.KindAgentDir} {
		got := must2(w.GetACL(ctx, p))
		if zk.FormatACL(got) != zk.FormatACL(access.ACL(kind)) {
			t.Errorf("%s: ACL %s, want the model's %s", p, zk.FormatACL(got), zk.FormatACL(access.ACL(kind)))
		}
	}

	// Files: the state, the rendered revision and its secret, the share
	// directory.
	mode := func(p string) os.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	rev := filepath.Join(env.dirs[0], "revisions", configstore.RevisionName(res.Meta.Revision))
	for p, want := range map[string]os.FileMode{
		filepath.Join(env.dirs[0], "state.json"):      0o600,
		filepath.Join(env.dirs[0], "revisions"):       0o700,
		rev:                                           0o700,
		filepath.Join(rev, "prometheus.yml"):          0o600,
		filepath.Join(rev, "secrets", "token"):        0o600,
		filepath.Join(rev, "secrets"):                 0o700,
		filepath.Join(rev, manifestDir, manifestFile): 0o600,
		filepath.Join(env.dirs[0], shardsDir):         0o700,
	} {
		if got := mode(p); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}

	// An error text with control characters: the revision refuses (an
	// unknown top-level key named with escape sequences).
	for _, key := range []string{"\"\\e[2J\\e[31mowned\"", "\"\\a\\e]0;title\\a\"", "\"\u202eevil\"", "\"\\x9b31m\""} {
		bad := testBundle([]string{"job_a"}, nil, key+": 1\n", nil)
		res, err := s.Push(ctx, bad, configstore.PushMeta{Author: "test", Message: "bad"})
		if err != nil {
			t.Fatal(err)
		}
		var st configstore.Status
		waitFor(t, 30*time.Second, "the bad revision refused in the member node", func() (bool, string) {
			data, _, _ := w.Get(ctx, s.MemberPath("agent-0"))
			st = configstore.Status{}
			json.Unmarshal(data, &st)
			return st.State == configstore.StateFailed && st.FailedRevision == res.Meta.Revision, st.State
		})
		if !strings.Contains(st.Error, "owned") && !strings.Contains(st.Error, "title") && !strings.Contains(st.Error, "evil") && !strings.Contains(st.Error, "31m") {
			t.Errorf("key %s: error text lost its content: %q", key, st.Error)
		}
		for _, r := range st.Error {
			if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r < 0xa0) || r == '\u202e' {
				t.Errorf("key %s: control character %U in the member node's error: %q", key, r, st.Error)
				break
			}
		}
		good := push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "good again")
		if err := waitRollout(t, s, good.Meta.Revision); err != nil {
			t.Fatal(err)
		}
	}
}
