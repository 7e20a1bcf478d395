package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

// BenchmarkShardTakeover measures, for session timeouts of 4 s and 10 s,
// the time from kill -9 of one of three agent binaries to every one of
// 1,000 targets being owned again by the two others, beside the session
// timeout (the floor) and the moment ZooKeeper removed the dead agent's
// member node. ZooKeeper expires sessions in buckets of one tick, so the
// run is made side by side on the package's ensemble (tick 500 ms) and on
// one with ZooKeeper's usual tick of 2 s.
func BenchmarkShardTakeover(b *testing.B) {
	if testing.Short() {
		b.Skip("integration benchmark")
	}
	usual, err := zktest.StartEnsemble(zktest.Options{Servers: 3, TickTime: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer usual.Close()
	for _, ens := range []struct {
		tick time.Duration
		e    *zktest.Ensemble
	}{{tickTime, env.ens}, {2 * time.Second, usual}} {
		for _, timeout := range []time.Duration{4 * time.Second, 10 * time.Second} {
			b.Run(fmt.Sprintf("tick=%s/session=%s", ens.tick, timeout), func(b *testing.B) {
				defer func(e *zktest.Ensemble) { env.ens = e }(env.ens)
				env.ens = ens.e // the helpers connect to env.ens
				var takeover, expiry time.Duration
				for n := 0; n < b.N; n++ {
					tk, ex := takeoverOnce(b, fmt.Sprintf("bench-takeover-%d-%d", timeout/time.Second, time.Now().UnixNano()), timeout)
					takeover += tk
					expiry += ex
				}
				b.ReportMetric(takeover.Seconds()/float64(b.N), "takeover-s")
				b.ReportMetric(timeout.Seconds(), "session-timeout-s")
				b.ReportMetric(expiry.Seconds()/float64(b.N), "node-removed-s")
				b.ReportMetric(float64((takeover-expiry).Milliseconds())/float64(b.N), "after-removal-ms")
			})
		}
	}
}

func takeoverOnce(b *testing.B, cluster string, timeout time.Duration) (takeover, expiry time.Duration) {
	c := connect(b)
	base := "/" + cluster + "/services"
	targets := registerTargets(b, c, base, 1000)
	s := newStore(b, c, cluster)
	ensureCluster(b, cluster)
	push(b, s, fleetBundle(base, 1, false), "sharded")
	var procs []*agentProc
	var dirs []string
	for i := 0; i < 3; i++ {
		d := filepath.Join(env.tmp, cluster, fmt.Sprintf("agent-%d", i))
		dirs = append(dirs, d)
		procs = append(procs, startAgentProc(b, cluster, fmt.Sprintf("agent-%d", i), d, timeout, "http://127.0.0.1:1", "--promtool=none"))
	}
	waitFor(b, 60*time.Second, "3 agents sharing every target once", func() (bool, string) {
		return sample(b, dirs).exact(targets, 1)
	})
	// Let the join delay and overlap pass: a settled fleet.
	time.Sleep(3 * time.Second)
	gone := make(chan time.Time, 1)
	node := s.MemberPath("agent-0")
	procs[0].cmd.Process.Signal(syscall.SIGKILL)
	procs[0].cmd.Wait()
	killed := time.Now()
	go func() {
		for time.Since(killed) < timeout+20*time.Second {
			if ok, _, err := c.Exists(context.Background(), node); err == nil && !ok {
				gone <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitFor(b, timeout+15*time.Second, "the killed agent's targets owned again", func() (bool, string) {
		u := sample(b, dirs[1:]).unowned(targets)
		return len(u) == 0, fmt.Sprintf("%d unowned", len(u))
	})
	takeover = time.Since(killed)
	select {
	case at := <-gone:
		expiry = at.Sub(killed)
	case <-time.After(time.Second):
	}
	for _, p := range procs[1:] {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
	return takeover, expiry
}
