package agent

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
)

// TestTenAgentsWatches: ten agents share one sharded job. The watches
// they hold on the servers together stay within 100 and do not grow with
// the targets: the job's tree cache holds one persistent recursive watch
// per root (ZooKeeper 3.6+), the rest are each agent's own few
// (pointers, membership). BenchmarkTenAgentsWatches is the same over
// 100,000 targets.
func TestTenAgentsWatches(t *testing.T) {
	skipShort(t)
	tenAgentsWatches(t, 1000)
}

func tenAgentsWatches(t testing.TB, n int) {
	cluster, base, c, targets := shardedJob(t, n)
	before, err := env.ens.Watches()
	if err != nil {
		t.Fatal(err)
	}
	dirs := startTenAgents(t, cluster)
	settled := func(what string, targets []string) int {
		waitFor(t, 3*time.Minute, what, func() (bool, string) { return sample(t, dirs).exact(targets, 1) })
		w, err := env.ens.Watches()
		if err != nil {
			t.Fatal(err)
		}
		return w - before
	}
	first := settled(fmt.Sprintf("10 agents sharing %d targets once", n), targets)
	// Twice the targets: no more watches.
	more := slices.Concat(targets, registerSpread(t, c, base, n, n))
	second := settled(fmt.Sprintf("10 agents sharing %d targets once", 2*n), more)
	t.Logf("watches the 10 agents hold: %d over %d targets, %d over %d", first, n, second, 2*n)
	if first > 100 || second > 100 {
		t.Errorf("the 10 agents hold %d watches over %d targets and %d over %d: want at most 100", first, n, second, 2*n)
	}
	if second > first {
		t.Errorf("the watches grew with the targets: %d over %d, %d over %d", first, n, second, 2*n)
	}
}

// registerSpread registers the members from, ..., from+n-1 below base in
// groups of at most spreadChildren, one parent per group (base/s-000,
// base/s-001, ...): a getChildren2 reply of all 100,000 under one parent
// (12 bytes a name) is 1.2 MB, over the client's 1 MiB jute.maxbuffer, and
// that parent could never be listed.
func registerSpread(t testing.TB, c *zk.Client, base string, from, n int) []string {
	t.Helper()
	var out []string
	for i := from; i < from+n; i += spreadChildren {
		out = append(out, registerTargetsFrom(t, c, fmt.Sprintf("%s/s-%03d", base, i/spreadChildren), i, min(spreadChildren, from+n-i))...)
	}
	return out
}

const spreadChildren = 10000

// shardedJob makes a cluster whose bundle has one sharded job over n
// targets, registered 10,000 to a parent.
func shardedJob(t testing.TB, n int) (cluster, root string, c *zk.Client, targets []string) {
	cluster = clusterName(t)
	c = connect(t)
	root = "/" + cluster + "/services"
	targets = registerSpread(t, c, root, 0, n)
	s := newStore(t, c, cluster)
	ensureCluster(t, cluster)
	push(t, s, fleetBundle(root, 1, false), "sharded")
	return cluster, root, c, targets
}

// startTenAgents starts ten agents of the cluster and returns their
// folders.
func startTenAgents(t testing.TB, cluster string) []string {
	var dirs []string
	for i := range 10 {
		dir := filepath.Join(env.tmp, cluster, fmt.Sprintf("agent-%d", i))
		dirs = append(dirs, dir)
		startFleetAgent(t, cluster, fmt.Sprintf("agent-%d", i), dir, 6*time.Second)
	}
	return dirs
}

// BenchmarkTenAgentsWatches: TestTenAgentsWatches over 100,000 targets
// (then 200,000).
func BenchmarkTenAgentsWatches(b *testing.B) {
	for range b.N {
		tenAgentsWatches(b, 100000)
	}
}
