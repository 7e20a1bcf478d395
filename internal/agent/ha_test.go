package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

const haTimeout = 4 * time.Second

// haPair is two agent binaries in HA group "pair", beside Prometheus 0
// and 1, running a sharded bundle with a leader overlay.
type haPair struct {
	cluster string
	c       *zk.Client
	store   *configstore.Store
	procs   []*agentProc
	dirs    []string
	leader  int      // whose Prometheus runs the overlay
	extra   []string // more agent flags
}

func startHAPair(t *testing.T) *haPair {
	return startHAPairWith(t, nil)
}

// startHAPairWith is startHAPair in a cluster with the given access
// settings (nil: the test agents'), the agents run with extra flags.
func startHAPairWith(t *testing.T, access *configstore.Access, extra ...string) *haPair {
	reset(t)
	p := &haPair{cluster: clusterName(t), c: connect(t), dirs: env.dirs[:2], extra: extra}
	base := "/" + p.cluster + "/services"
	targets := registerTargets(t, p.c, base, 20)
	p.store = newStore(t, p.c, p.cluster)
	if access != nil {
		var err error
		if p.store, err = configstore.New(p.c, configstore.Options{Cluster: p.cluster, Access: access}, testLogger(t)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.store.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := push(t, p.store, fleetBundle(base, 1, true), "ha")
	for i := range 2 {
		p.procs = append(p.procs, p.start(t, i))
		t.Cleanup(func() { env.proms[i].Signal(syscall.SIGCONT) })
	}
	if err := waitRollout(t, p.store, res.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "one Prometheus running the overlay", func() (bool, string) {
		a, b := promRunsOverlay(0), promRunsOverlay(1)
		if a == b {
			return false, fmt.Sprintf("overlay %t %t", a, b)
		}
		if b {
			p.leader = 1
		}
		return true, ""
	})
	// Both Prometheus servers read the pair's share: every target.
	for i := range 2 {
		waitFor(t, 30*time.Second, fmt.Sprintf("prometheus %d scraping the share", i), func() (bool, string) {
			pools, err := promClient(t, i).Targets(context.Background())
			if err != nil {
				return false, err.Error()
			}
			return pools[fleetJob] == len(targets), fmt.Sprint(pools)
		})
	}
	return p
}

// start runs agent-i beside Prometheus i.
func (p *haPair) start(t *testing.T, i int) *agentProc {
	return startAgentProc(t, p.cluster, fmt.Sprintf("agent-%d", i), env.dirs[i], haTimeout, env.proms[i].URL,
		append([]string{"--ha.group=pair", "--ha.takeover-check-timeout=500ms"}, p.extra...)...)
}

func overlayOn(dir string) bool {
	t, _ := os.Readlink(filepath.Join(dir, "current"))
	return strings.HasSuffix(t, leaderSuffix)
}

// overlayState asks Prometheus i whether its loaded configuration is a
// leader variant; answered is false when it did not answer within a
// second (stopped, frozen).
func overlayState(i int) (on, answered bool) {
	pc, err := prom.New(prom.Config{URL: env.proms[i].URL, HTTPClient: &http.Client{Timeout: time.Second}})
	if err != nil {
		return false, false
	}
	loaded, err := pc.LoadedConfig(context.Background())
	if err != nil {
		return false, false
	}
	on, err = runsOverlay(loaded)
	return on, err == nil
}

// promRunsOverlay reports whether Prometheus i answers with the overlay.
func promRunsOverlay(i int) bool {
	on, _ := overlayState(i)
	return on
}

// answeredOverlay waits until Prometheus i answers (a slow answer on a
// busy machine is no answer) and reports whether it runs the overlay.
func answeredOverlay(t *testing.T, i int) bool {
	t.Helper()
	var on bool
	waitFor(t, 10*time.Second, fmt.Sprintf("prometheus %d answering", i), func() (bool, string) {
		var answered bool
		on, answered = overlayState(i)
		return answered, "no answer"
	})
	return on
}

// haSample is one look at both members of the pair: the overlay on their
// disks and in the configurations their Prometheus servers run, asked
// between start and end.
type haSample struct {
	start, end time.Time
	disk, prom [2]bool
}

// outside reports whether the sample was taken wholly outside [from, to].
func (st haSample) outside(from, to time.Time) bool {
	return st.end.Before(from) || st.start.After(to)
}

// haSampler looks at the pair every few milliseconds until stopped.
type haSampler struct {
	mu      sync.Mutex
	samples []haSample
	stop    chan struct{}
	done    chan struct{}
}

func sampleHA(dirs []string) *haSampler {
	s := &haSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			st := haSample{start: time.Now()}
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Add(1)
				go func() { defer wg.Done(); st.prom[i] = promRunsOverlay(i) }()
			}
			wg.Wait()
			st.disk = [2]bool{overlayOn(dirs[0]), overlayOn(dirs[1])}
			st.end = time.Now()
			s.mu.Lock()
			s.samples = append(s.samples, st)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *haSampler) finish() []haSample {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// Two agents in an HA group, each beside a real Prometheus; one runs the
// leader overlay. Sampled all along, from both disks and from the
// configurations both Prometheus servers have loaded:
//
//   - SIGSTOP of the leader's agent alone, past its session timeout: the
//     other is elected, but its old leader's Prometheus keeps running the
//     overlay (and doing the leader's work), so the new leader waits; on
//     SIGCONT the old agent steps down and the new one takes over. Never
//     two Prometheus with the overlay.
//   - SIGSTOP of the leader's agent and its Prometheus (a frozen host):
//     the other takes over once ZooKeeper expires the session; on SIGCONT
//     the old agent steps down at once.
//   - SIGTERM of the leader: overlay off there, then on on the other.
func TestHALeaderOverlay(t *testing.T) {
	skipShort(t)
	forEachPrometheus(t, testHALeaderOverlay)
}

func testHALeaderOverlay(t *testing.T) {
	p := startHAPair(t)
	procs, dirs, s, c := p.procs, p.dirs, p.store, p.c
	leader, other := p.leader, 1-p.leader
	const timeout = haTimeout
	sampler := sampleHA(dirs)

	// 1. The leader's agent alone frozen past its session timeout.
	if err := zktest.Freeze(procs[leader].cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitFor(t, timeout+10*time.Second, "the other agent elected and waiting", func() (bool, string) {
		m := agentMetrics(procs[other].web)
		return metricValue(m, "zkprom_ha_takeover_waiting") == "1", "not waiting"
	})
	elected := time.Since(stopped)
	// What an operator sees on the waiting agent's page (the binary's).
	waiter := procs[other].member
	zktest.NewBrowser(t).Wait(t, procs[other].web+"/", 15*time.Second, waiter+" elected and waiting, and why", func(pg *zktest.Page) bool {
		role := pg.Cell("shards", waiter, "role")
		return strings.HasPrefix(role, "elected, waiting: ") && len(role) > len("elected, waiting: ") &&
			strings.Contains(pg.TextOf("fleet"), "HA group pair: elected "+waiter)
	})
	if d := timeout + 3*time.Second - time.Since(stopped); d > 0 {
		time.Sleep(d) // frozen well past the session timeout
	}
	if old, cur := answeredOverlay(t, leader), answeredOverlay(t, other); !old || cur || overlayOn(dirs[other]) {
		t.Fatalf("while the old leader's agent is frozen its Prometheus must keep the overlay, alone: old %t, new %t (disk %t)",
			old, cur, overlayOn(dirs[other]))
	}
	procs[leader].cmd.Process.Signal(syscall.SIGCONT)
	woke := time.Now()
	agentWoke := woke
	waitFor(t, 20*time.Second, "the overlay moved to the new leader", func() (bool, string) {
		return promRunsOverlay(other) && !promRunsOverlay(leader) && !overlayOn(dirs[leader]), "not yet"
	})
	moved := time.Since(woke)
	t.Logf("agent SIGSTOP: the other elected %s after SIGSTOP (session timeout %s, tick %s); it waited while the old Prometheus ran the overlay; overlay moved %s after SIGCONT",
		elected.Round(time.Millisecond), timeout, tickTime, moved.Round(time.Millisecond))
	leader, other = other, leader

	// 2. The leader's agent and its Prometheus frozen (a frozen host).
	env.proms[leader].Signal(syscall.SIGSTOP)
	if err := zktest.Freeze(procs[leader].cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	hostStopped := time.Now()
	stopped = hostStopped
	waitFor(t, timeout+10*time.Second, "the other taking over from a frozen host", func() (bool, string) {
		return promRunsOverlay(other), "no overlay yet"
	})
	takeover := time.Since(stopped)
	if d := timeout + 2*time.Second - time.Since(stopped); d > 0 {
		time.Sleep(d)
	}
	woke = time.Now() // before the signals: a sample may see the wake-up at once
	env.proms[leader].Signal(syscall.SIGCONT)
	procs[leader].cmd.Process.Signal(syscall.SIGCONT)
	waitFor(t, 10*time.Second, "the old leader stepping down", func() (bool, string) {
		return !overlayOn(dirs[leader]) && !promRunsOverlay(leader), "overlay still on"
	})
	stepDown := time.Since(woke)
	time.Sleep(2 * time.Second) // the old leader must not take it back
	samples := sampler.finish()

	// Two Prometheus with the overlay: only in the moment after the frozen
	// host wakes, before its agent has switched it back. No process can
	// act sooner: both resume at the same instant.
	var window time.Duration
	for _, st := range samples {
		if st.prom[0] && st.prom[1] {
			if st.outside(woke, woke.Add(stepDown)) {
				t.Errorf("sample at %s (%s after the agent's SIGCONT, %s after the host's SIGSTOP): both Prometheus run the overlay outside the wake-up of a frozen host",
					st.start.Format(time.StampMilli), st.start.Sub(agentWoke), st.start.Sub(hostStopped))
			} else {
				window = max(window, st.end.Sub(woke)) // an upper bound
			}
		}
		// On disk: both only while a frozen host holds files it cannot
		// remove.
		if st.disk[0] && st.disk[1] && st.outside(hostStopped, woke.Add(stepDown)) {
			t.Errorf("sample at %s: both agents have the overlay on disk outside the host's freeze", st.start.Format(time.StampMilli))
		}
		if st.start.After(woke.Add(stepDown)) && (st.disk[leader] || st.prom[leader]) {
			t.Errorf("sample at %s: the old leader has the overlay again after stepping down", st.start.Format(time.StampMilli))
		}
	}
	t.Logf("host SIGSTOP: the other ran the overlay %s after SIGSTOP (session timeout %s, tick %s); the old one stepped down %s after SIGCONT; both seen running it until at most %s after SIGCONT; %d samples",
		takeover.Round(time.Millisecond), timeout, tickTime, stepDown.Round(time.Millisecond), window.Round(time.Millisecond), len(samples))

	// The metrics say who leads, with the term.
	for i, want := range map[int]string{other: "1", leader: "0"} {
		waitFor(t, 10*time.Second, fmt.Sprintf("agent-%d metrics", i), func() (bool, string) {
			m := agentMetrics(procs[i].web)
			return metricValue(m, "zkprom_ha_leader") == want && metricValue(m, "zkprom_ha_term") != "" &&
				metricValue(m, "zkprom_ha_overlay_applied") == want && metricValue(m, "zkprom_ha_takeover_waiting") == "0", m
		})
	}

	// The record names the new leader, its Prometheus, and the one before.
	data, _, err := c.Get(context.Background(), s.HALeaderPath("pair"))
	if err != nil {
		t.Fatal(err)
	}
	var rec configstore.HALeader
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Member != fmt.Sprintf("agent-%d", other) || rec.Previous != fmt.Sprintf("agent-%d", leader) || rec.Term <= rec.PreviousTerm ||
		rec.Prometheus != env.proms[other].URL {
		t.Errorf("leader record %+v: want agent-%d (Prometheus %s) after agent-%d with a larger term", rec, other, env.proms[other].URL, leader)
	}
	var out strings.Builder
	WriteFleetStatus(context.Background(), c, s, &out)
	t.Logf("zkprom shards:\n%s", out.String())

	// SIGTERM the leader: it removes its overlay, then resigns; the other
	// takes over. Never both, at any sample.
	procs[other].cmd.Process.Signal(syscall.SIGTERM)
	termed := time.Now()
	n := 0
	waitFor(t, 20*time.Second, "hand-over on SIGTERM", func() (bool, string) {
		a, b := promRunsOverlay(0), promRunsOverlay(1)
		n++
		if a && b {
			t.Fatalf("%s after SIGTERM of the leader: both Prometheus run the overlay", time.Since(termed))
		}
		return promRunsOverlay(leader) && overlayOn(dirs[leader]) && !overlayOn(dirs[other]), fmt.Sprintf("overlay %t %t", a, b)
	})
	t.Logf("SIGTERM of the leader: overlay moved to the other agent %s after the signal (%d samples, never on both)", time.Since(termed).Round(time.Millisecond), n)
	procs[other].cmd.Wait()
}

// The ZooKeeper leader killed under an HA pair: the overlay never runs on
// both Prometheus servers, and one runs it once the ensemble is back.
// Then kill -9 of the leader's agent alone: its Prometheus still runs the
// overlay, so the other, elected, waits (never two); once the dead agent
// is restarted it steps down and the other takes over.
func TestHADeadAgentAndZooKeeperLeader(t *testing.T) {
	skipShort(t)
	p := startHAPair(t)
	leader, other := p.leader, 1-p.leader
	sampler := sampleHA(p.dirs)

	zl := env.ens.Leader()
	if err := env.ens.Kill(zl); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := env.ens.Start(zl); err != nil {
		t.Fatal(err)
	}
	if err := env.ens.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "one Prometheus running the overlay after the ZooKeeper leader's restart", func() (bool, string) {
		a, b := promRunsOverlay(0), promRunsOverlay(1)
		return a != b, fmt.Sprintf("overlay %t %t", a, b)
	})
	if !promRunsOverlay(leader) {
		t.Logf("the overlay moved from agent-%d to agent-%d while the ZooKeeper leader was away", leader, other)
		leader, other = other, leader
	}

	// kill -9 the leader's agent; its Prometheus keeps running.
	p.procs[leader].cmd.Process.Kill()
	p.procs[leader].cmd.Wait()
	killed := time.Now()
	waitFor(t, haTimeout+10*time.Second, "the other agent elected and waiting", func() (bool, string) {
		m := agentMetrics(p.procs[other].web)
		return metricValue(m, "zkprom_ha_takeover_waiting") == "1", "not waiting"
	})
	elected := time.Since(killed)
	time.Sleep(2 * time.Second)
	if old, cur := answeredOverlay(t, leader), answeredOverlay(t, other); !old || cur {
		t.Fatalf("dead agent: its Prometheus must keep the overlay, alone: old %t, new %t", old, cur)
	}
	var out strings.Builder
	WriteFleetStatus(context.Background(), p.c, p.store, &out)
	if !strings.Contains(out.String(), "elected, waiting") || !strings.Contains(out.String(), fmt.Sprintf("agent-%d: waiting for agent-", other)) ||
		!strings.Contains(out.String(), fmt.Sprintf("elected agent-%d", other)) || !strings.Contains(out.String(), "not acting yet") {
		t.Errorf("zkprom shards does not say the new leader waits:\n%s", out.String())
	}
	t.Logf("zkprom shards while the dead agent's Prometheus runs the overlay:\n%s", out.String())

	restarted := time.Now()
	p.procs[leader] = p.start(t, leader)
	waitFor(t, 30*time.Second, "the overlay moved to the other", func() (bool, string) {
		return promRunsOverlay(other) && !promRunsOverlay(leader), "not yet"
	})
	t.Logf("kill -9 of the leader's agent: the other elected %s later and waited; the overlay moved %s after the dead agent's restart",
		elected.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	time.Sleep(time.Second)
	samples := sampler.finish()
	for _, st := range samples {
		if st.prom[0] && st.prom[1] {
			t.Errorf("sample at %s: both Prometheus run the overlay", st.start.Format(time.StampMilli))
		}
	}
	t.Logf("%d samples, never two Prometheus with the overlay", len(samples))
}
