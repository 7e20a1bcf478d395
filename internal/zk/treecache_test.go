package zk

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// freshRead reads the subtree at root the plain way, one node at a time:
// what the cache must equal.
func freshRead(ctx context.Context, c *Client, root string, maxDepth int, data bool) (map[string]string, error) {
	out := map[string]string{}
	var walk func(p string, depth int) error
	walk = func(p string, depth int) error {
		if depth > 0 {
			v := ""
			if data {
				d, _, err := c.Get(ctx, p)
				if errors.Is(err, ErrNoNode) {
					return nil
				}
				if err != nil {
					return err
				}
				v = string(d)
			}
			out[p] = v
		}
		if maxDepth != 0 && depth >= maxDepth {
			return nil
		}
		children, _, err := c.Children(ctx, p)
		if errors.Is(err, ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, ch := range children {
			if err := walk(Join(p, ch), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(root, 0)
}

func snapshotMap(tc *TreeCache) map[string]string {
	out := map[string]string{}
	for _, n := range tc.Snapshot() {
		out[n.Path] = string(n.Data)
	}
	return out
}

func diffMaps(want, got map[string]string) error {
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, "missing "+k)
		} else if g != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q want %q", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
	}
	return errors.New(strings.Join(diffs, "; "))
}

// model applies a cache's event stream to a map, to check that the events
// alone describe the mirror.
type model struct {
	mu      sync.Mutex
	nodes   map[string]string
	batches [][]CacheEvent
}

func follow(tc *TreeCache) *model {
	m := &model{nodes: map[string]string{}}
	go func() {
		for b := range tc.Events() {
			m.mu.Lock()
			for _, ev := range b.Events {
				switch ev.Type {
				case Added, Updated:
					m.nodes[ev.Path] = string(ev.Data)
				case Removed:
					delete(m.nodes, ev.Path)
				}
			}
			if len(b.Events) > 0 {
				m.batches = append(m.batches, b.Events)
			}
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *model) snapshot() (map[string]string, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.nodes))
	for k, v := range m.nodes {
		out[k] = v
	}
	return out, len(m.batches)
}

func (m *model) batchesSince(n int) [][]CacheEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]CacheEvent(nil), m.batches[n:]...)
}

func converged(t testing.TB, ctx context.Context, reader *Client, tc *TreeCache, m *model, root string, maxDepth int, data bool) {
	t.Helper()
	eventually(t, 30*time.Second, "cache converges to a fresh read of "+root, func() error {
		if err := reader.Sync(ctx, root); err != nil {
			return err
		}
		want, err := freshRead(ctx, reader, root, maxDepth, data)
		if err != nil {
			return err
		}
		wantSnap := want
		if tc.opts.ForgetData { // names only: the data went out in the events
			wantSnap = make(map[string]string, len(want))
			for k := range want {
				wantSnap[k] = ""
			}
		}
		if err := diffMaps(wantSnap, snapshotMap(tc)); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		got, _ := m.snapshot()
		if err := diffMaps(want, got); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		if tc.Stale() {
			return errors.New("still stale")
		}
		return nil
	})
}

// TestTreeCacheEvents runs in both modes: the default (a persistent watch
// per root on this 3.8 server) and the per-node fallback, forced.
func TestTreeCacheEvents(t *testing.T) {
	needEnsemble(t)
	for _, mode := range []CacheMode{CacheModeAuto, CachePerNodeWatches} {
		t.Run(mode.String(), func(t *testing.T) { testTreeCacheEvents(t, mode) })
	}
}

func testTreeCacheEvents(t *testing.T, mode CacheMode) {
	c := connect(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	c.CreateAll(ctx, "/tc-basic/svc", nil)
	c.Create(ctx, "/tc-basic/svc/m1", []byte("one"), Persistent, nil)

	tc := NewTreeCache(c, []string{"/tc-basic", "/tc-later"}, CacheOptions{MaxDepth: 2, Data: true, Mode: mode})
	go tc.Run(ctx)
	first := <-tc.Events()
	<-tc.Synced()
	var got []string
	for _, ev := range first.Events {
		got = append(got, ev.Type.String()+" "+ev.Path+" "+string(ev.Data))
	}
	if strings.Join(got, ",") != "added /tc-basic/svc ,added /tc-basic/svc/m1 one" {
		t.Fatalf("initial batch: %v", got)
	}
	want := CachePersistentWatch
	if mode == CachePerNodeWatches {
		want = CachePerNodeWatches
	}
	if tc.Mode() != want {
		t.Errorf("mode %s, want %s", tc.Mode(), want)
	}
	if v := testutil.ToFloat64(c.m.treeCacheMode.WithLabelValues(want.String())); v != 1 {
		t.Errorf("zkprom_zookeeper_tree_cache_mode{mode=%q} = %v, want 1", want, v)
	}
	expect := func(want string) {
		t.Helper()
		select {
		case b := <-tc.Events():
			var got []string
			for _, ev := range b.Events {
				got = append(got, ev.Type.String()+" "+ev.Path+" "+string(ev.Data))
			}
			if strings.Join(got, ",") != want {
				t.Fatalf("batch %v, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no batch, want %s", want)
		}
	}
	c.Set(ctx, "/tc-basic/svc/m1", []byte("uno"), -1)
	expect("updated /tc-basic/svc/m1 uno")
	c.Create(ctx, "/tc-basic/svc/m2", []byte("two"), Ephemeral, nil)
	expect("added /tc-basic/svc/m2 two")
	c.Delete(ctx, "/tc-basic/svc/m1", -1)
	expect("removed /tc-basic/svc/m1 ")
	// A root that does not exist yet is watched and read once created.
	c.CreateAll(ctx, "/tc-later/x", nil)
	expect("added /tc-later/x ")
	// Below MaxDepth nothing is mirrored.
	c.Create(ctx, "/tc-later/x/deep", nil, Persistent, nil)
	c.Create(ctx, "/tc-later/x/deep/deeper", nil, Persistent, nil)
	expect("added /tc-later/x/deep ")
	if _, ok := tc.Get("/tc-later/x/deep/deeper"); ok {
		t.Error("a node below MaxDepth is mirrored")
	}
	c.Delete(ctx, "/tc-later/x/deep/deeper", -1) // not mirrored: no event
	c.Delete(ctx, "/tc-later/x/deep", -1)
	expect("removed /tc-later/x/deep ")
	c.Delete(ctx, "/tc-later/x", -1)
	expect("removed /tc-later/x ")
	c.Delete(ctx, "/tc-later", -1)
	c.Create(ctx, "/tc-later", nil, Persistent, nil)
	c.Create(ctx, "/tc-later/y", []byte("back"), Persistent, nil)
	expect("added /tc-later/y back")
	c.DeleteAll(ctx, "/tc-basic")
	c.DeleteAll(ctx, "/tc-later")
}

// randomOps changes the tree at root at random: creates (persistent and
// ephemeral), data changes and deletes, up to three levels deep. It
// returns the paths it touched.
func randomOps(ctx context.Context, t testing.TB, c *Client, rng *rand.Rand, root string, n int) map[string]bool {
	touched := map[string]bool{}
	for i := 0; i < n; i++ {
		p := root
		for d := 0; d < 1+rng.Intn(3); d++ {
			p = Join(p, fmt.Sprintf("n%d", rng.Intn(4)))
		}
		var err error
		switch op := rng.Intn(10); {
		case op < 5:
			mode := Persistent
			if rng.Intn(3) == 0 {
				mode = Ephemeral
			}
			_, err = c.Create(ctx, p, []byte(fmt.Sprintf("v%d", rng.Intn(1000))), mode, nil)
		case op < 8:
			_, err = c.Set(ctx, p, []byte(fmt.Sprintf("v%d", rng.Intn(1000))), -1)
		default:
			err = c.Delete(ctx, p, -1)
		}
		switch {
		case err == nil:
			touched[p] = true
		case errors.Is(err, ErrNoNode), errors.Is(err, ErrNodeExists), errors.Is(err, ErrNotEmpty), errors.Is(err, ErrNoChildrenForEphemerals):
		default:
			t.Fatalf("random op on %s: %v", p, err)
		}
	}
	return touched
}

func TestTreeCacheRandomizedWithExpiry(t *testing.T) {
	needEnsemble(t)
	seed := time.Now().UnixNano()
	if s := os.Getenv("ZKPROM_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (ZKPROM_TEST_SEED repeats it)", seed)
	rng := rand.New(rand.NewSource(seed))
	cacheClient, px := proxiedClient(t, 2)
	writer := connect(t, Config{})
	ctx := ctxT(t, 120*time.Second)
	const root = "/tc-random"
	writer.CreateAll(ctx, root, nil)
	defer writer.DeleteAll(context.Background(), root)
	randomOps(ctx, t, writer, rng, root, 100)

	// The default mode (a persistent watch on this 3.8 server) and the
	// per-node fallback, forced, side by side.
	full := NewTreeCache(cacheClient, []string{root}, CacheOptions{Data: true, Concurrency: 8})
	names := NewTreeCache(cacheClient, []string{root}, CacheOptions{MaxDepth: 2})
	forget := NewTreeCache(cacheClient, []string{root}, CacheOptions{Data: true, ForgetData: true, Concurrency: 8})
	fullPerNode := NewTreeCache(cacheClient, []string{root}, CacheOptions{Data: true, Concurrency: 8, Mode: CachePerNodeWatches})
	namesPerNode := NewTreeCache(cacheClient, []string{root}, CacheOptions{MaxDepth: 2, Mode: CachePerNodeWatches})
	mFull, mNames, mForget, mFullPerNode, mNamesPerNode := follow(full), follow(names), follow(forget), follow(fullPerNode), follow(namesPerNode)
	for _, tc := range []*TreeCache{full, names, forget, fullPerNode, namesPerNode} {
		go tc.Run(ctx)
	}
	allConverged := func() {
		t.Helper()
		converged(t, ctx, writer, full, mFull, root, 0, true)
		converged(t, ctx, writer, names, mNames, root, 2, false)
		converged(t, ctx, writer, forget, mForget, root, 0, true)
		converged(t, ctx, writer, fullPerNode, mFullPerNode, root, 0, true)
		converged(t, ctx, writer, namesPerNode, mNamesPerNode, root, 2, false)
	}

	// Changes while the caches run.
	for round := 0; round < 3; round++ {
		randomOps(ctx, t, writer, rng, root, 100)
		allConverged()
	}
	if full.Mode() != CachePersistentWatch || fullPerNode.Mode() != CachePerNodeWatches {
		t.Errorf("modes %s and %s, want persistent_watch and per_node_watches", full.Mode(), fullPerNode.Mode())
	}

	// A cut connection: the persistent watches come back on the same
	// session but do not replay what they missed; the caches read again.
	px.Stall()
	px.Cut()
	randomOps(ctx, t, writer, rng, root, 40)
	px.Resume()
	allConverged()

	// Connections cut at random moments while changes run: reads fail
	// half done, events are lost on the way, the caches read again.
	stop := make(chan struct{})
	cutsDone := make(chan struct{})
	go func() {
		defer close(cutsDone)
		for cut := rand.New(rand.NewSource(seed + 1)); ; {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(20+cut.Intn(300)) * time.Millisecond):
				px.Drop()
			}
		}
	}()
	for range 3 {
		randomOps(ctx, t, writer, rng, root, 100)
	}
	close(stop)
	<-cutsDone
	allConverged()

	// A session expiry with changes while the caches are cut off.
	before, nBatches := mFull.snapshot()
	_, nForget := mForget.snapshot()
	_, nPerNode := mFullPerNode.snapshot()
	var touched map[string]bool
	expire(t, cacheClient, px, func() {
		touched = randomOps(ctx, t, writer, rng, root, 60)
	})
	allConverged()

	// Exactly the difference: every event names a node that differs
	// between before and after, and none is removed and added back.
	// The same for the cache that forgets the data, which tells changes
	// apart by their zxids alone.
	after, _ := mFull.snapshot()
	for _, b := range slices.Concat(mFull.batchesSince(nBatches), mForget.batchesSince(nForget), mFullPerNode.batchesSince(nPerNode)) {
		seen := map[string]CacheEventType{}
		for _, ev := range b {
			if prev, ok := seen[ev.Path]; ok {
				t.Errorf("%s reported twice in one batch (%s then %s)", ev.Path, prev, ev.Type)
			}
			seen[ev.Path] = ev.Type
			bv, inBefore := before[ev.Path]
			av, inAfter := after[ev.Path]
			if inBefore && inAfter && bv == av && !touched[ev.Path] {
				t.Errorf("phantom %s event for %s, which did not change", ev.Type, ev.Path)
			}
		}
	}

	// And more changes on the new session.
	randomOps(ctx, t, writer, rng, root, 100)
	allConverged()
}

func TestDedupeSubtrees(t *testing.T) {
	got := dedupeSubtrees([]string{"/a/b/c", "/a/b-c", "/a/b", "/x", "/a/b-c/d", "/x"})
	if want := []string{"/a/b", "/a/b-c", "/x"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := dedupeSubtrees([]string{"/a", "/"}); !slices.Equal(got, []string{"/"}) {
		t.Errorf("under the root: got %q", got)
	}
}

// TestTreeCachesShareARoot runs a persistent-watch cache and a per-node
// cache (names one level deep) of the same root on one client, with an
// ExistsW of the client's own on the root too. A 3.8 server keeps one
// watch mode per path and session: the exists watches on the missing
// root used to replace the persistent watch (once fired, the persistent
// cache saw no creation or change below), and a persistent watch set over
// the per-node cache's children watch on the root used to turn it into one
// that gets no children events (the per-node cache saw no new child).
func TestTreeCachesShareARoot(t *testing.T) {
	needEnsemble(t)
	for _, perNodeFirst := range []bool{false, true} {
		name := "persistent cache first, root missing"
		if perNodeFirst {
			name = "per-node cache first, root there"
		}
		t.Run(name, func(t *testing.T) {
			ctx := ctxT(t, 60*time.Second)
			c := connect(t, Config{})
			writer := connect(t, Config{})
			root := fmt.Sprintf("/tc-share-%t-%d", perNodeFirst, time.Now().UnixNano())
			defer writer.DeleteAll(context.Background(), root)
			if perNodeFirst {
				writer.Create(ctx, root, nil, Persistent, nil)
			}
			persistent := NewTreeCache(c, []string{root}, CacheOptions{Data: true})
			perNode := NewTreeCache(c, []string{root}, CacheOptions{MaxDepth: 1, Mode: CachePerNodeWatches})
			mP, mN := follow(persistent), follow(perNode)
			order := []*TreeCache{persistent, perNode}
			if perNodeFirst {
				order = []*TreeCache{perNode, persistent}
			}
			for _, tc := range order {
				go tc.Run(ctx)
				select {
				case <-tc.Synced():
				case <-ctx.Done():
					t.Fatal("a cache did not sync")
				}
			}
			allConverged := func() {
				t.Helper()
				converged(t, ctx, writer, perNode, mN, root, 1, false)
				converged(t, ctx, writer, persistent, mP, root, 0, true)
			}
			_, _, w, err := c.ExistsW(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			if perNodeFirst {
				writer.Set(ctx, root, []byte("r"), -1)
			} else {
				writer.Create(ctx, root, nil, Persistent, nil)
			}
			if ev := <-w; ev.Path != root || ev.Type == WatchLost {
				t.Fatalf("ExistsW fired with %+v", ev)
			}
			if _, open := <-w; open {
				t.Fatal("ExistsW fired twice")
			}
			// Both have read the root as it is now: what follows reaches
			// them through the watches alone.
			allConverged()
			for i := range 3 {
				p := Join(root, fmt.Sprintf("n%d", i))
				writer.Create(ctx, p, []byte("a"), Persistent, nil)
				writer.Create(ctx, Join(p, "deep"), []byte("b"), Persistent, nil)
				writer.Set(ctx, p, []byte("c"), -1)
			}
			writer.Delete(ctx, Join(root, "n0", "deep"), -1)
			allConverged()
		})
	}
}

// listings counts the getChildren requests c has made.
func listings(t *testing.T, c *Client) uint64 { return opCount(t, c, "children") }

// opCount counts the requests of one operation c has made.
func opCount(t *testing.T, c *Client, op string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := c.m.requestDuration.WithLabelValues(op).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestTreeCachePersistentChangesCost: with a persistent watch, members
// created below a parent of many are read alone (the parent is not
// listed again), and deleted ones are dropped without a read: the watch
// reports each create and delete in order. A member deleted and created
// again, and one created and deleted, end as they are.
func TestTreeCachePersistentChangesCost(t *testing.T) {
	needEnsemble(t)
	writer := connect(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	root := bigTree(t, writer, "tc-cost", 300, 50)
	c := connect(t, Config{})
	tc := NewTreeCache(c, []string{root}, CacheOptions{Data: true, ForgetData: true})
	if tc.Mode() == CachePerNodeWatches {
		t.Skip("no persistent watches")
	}
	m := follow(tc)
	runCache(t, tc)
	<-tc.Synced()
	listed := listings(t, c)
	for i := range 20 {
		writer.Create(ctx, fmt.Sprintf("%s/new%02d", root, i), []byte("n"), Persistent, nil)
	}
	converged(t, ctx, writer, tc, m, root, 0, true)
	if got := listings(t, c) - listed; got != 0 {
		t.Errorf("20 members created: %d listings, want 0", got)
	}
	reads := opCount(t, c, "multi_read") + opCount(t, c, "get") + listings(t, c)
	for i := range 20 {
		writer.Delete(ctx, fmt.Sprintf("%s/m%05d", root, i), -1)
	}
	converged(t, ctx, writer, tc, m, root, 0, true)
	if got := opCount(t, c, "multi_read") + opCount(t, c, "get") + listings(t, c) - reads; got != 0 {
		t.Errorf("20 members deleted: %d reads, want 0", got)
	}
	for i := 20; i < 25; i++ {
		p := fmt.Sprintf("%s/m%05d", root, i)
		writer.Delete(ctx, p, -1)
		writer.Create(ctx, p, []byte("again"), Persistent, nil)
		q := fmt.Sprintf("%s/brief%02d", root, i)
		writer.Create(ctx, q, nil, Persistent, nil)
		writer.Delete(ctx, q, -1)
	}
	converged(t, ctx, writer, tc, m, root, 0, true)
}

// TestTreeCacheLeafGetsChild: in the persistent mode with data, a node
// whose stat counts no children is not listed, and a child created under
// it later is reported by the root's persistent watch alone. Children
// appear under leaves after the sync, under children that were read as
// leaves themselves in a refresh, and during a cache's initial read; the
// cache must mirror them (never below MaxDepth) in both modes, with data,
// forgetting data, and with names only.
func TestTreeCacheLeafGetsChild(t *testing.T) {
	needEnsemble(t)
	for _, mode := range []CacheMode{CacheModeAuto, CachePerNodeWatches} {
		for _, o := range []struct {
			name string
			opts CacheOptions
		}{
			{"data", CacheOptions{Data: true}},
			{"forget", CacheOptions{Data: true, ForgetData: true}},
			{"names", CacheOptions{}},
			{"data-depth2", CacheOptions{Data: true, MaxDepth: 2}},
		} {
			t.Run(mode.String()+"/"+o.name, func(t *testing.T) {
				o.opts.Mode = mode
				testLeafGetsChild(t, o.opts)
			})
		}
	}
}

func testLeafGetsChild(t *testing.T, opts CacheOptions) {
	ctx := ctxT(t, 90*time.Second)
	writer := connect(t, Config{})
	root := fmt.Sprintf("/tc-leaf-%d", time.Now().UnixNano())
	defer writer.DeleteAll(context.Background(), root)
	const leaves = 50
	writer.CreateAll(ctx, root+"/dir", nil)
	writer.Create(ctx, root+"/dir/x", []byte("x"), Persistent, nil)
	for i := range leaves {
		if _, err := writer.Create(ctx, fmt.Sprintf("%s/l%02d", root, i), []byte("leaf"), Persistent, nil); err != nil {
			t.Fatal(err)
		}
	}

	c := connect(t, Config{})
	tc := NewTreeCache(c, []string{root}, opts)
	m := follow(tc)
	go tc.Run(ctx)
	select {
	case <-tc.Synced():
	case <-ctx.Done():
		t.Fatal("the cache did not sync")
	}
	if tc.Mode() == CachePersistentWatch && opts.Data {
		// The root and dir: the leaves' stats say they have no children.
		if n := listings(t, c); n != 2 {
			t.Errorf("the initial read listed %d nodes, want 2 (the root and %s/dir)", n, root)
		}
	}
	converged(t, ctx, writer, tc, m, root, opts.MaxDepth, opts.Data)

	// Children under leaves, then under those new children (read as leaves
	// in a refresh), then one removed and made again.
	for i := range leaves / 2 {
		writer.Create(ctx, fmt.Sprintf("%s/l%02d/c", root, i), []byte("child"), Persistent, nil)
	}
	converged(t, ctx, writer, tc, m, root, opts.MaxDepth, opts.Data)
	if _, ok := tc.Get(root + "/l00/c"); !ok {
		t.Fatalf("%s/l00/c, a leaf's new child, is not mirrored", root)
	}
	for i := range leaves / 2 {
		writer.Create(ctx, fmt.Sprintf("%s/l%02d/c/g", root, i), []byte("grandchild"), Persistent, nil)
	}
	writer.Delete(ctx, root+"/dir/x", -1)
	converged(t, ctx, writer, tc, m, root, opts.MaxDepth, opts.Data)
	if _, ok := tc.Get(root + "/l00/c/g"); ok != (opts.MaxDepth == 0) {
		t.Fatalf("%s/l00/c/g mirrored: %t, with MaxDepth %d", root, ok, opts.MaxDepth)
	}
	writer.Delete(ctx, root+"/l01/c/g", -1)
	writer.Delete(ctx, root+"/l01/c", -1)
	writer.Create(ctx, root+"/dir/x", []byte("x again"), Persistent, nil)
	converged(t, ctx, writer, tc, m, root, opts.MaxDepth, opts.Data)
	writer.Create(ctx, root+"/l01/c", []byte("child again"), Persistent, nil)
	writer.Create(ctx, root+"/dir/x/y", []byte("y"), Persistent, nil)
	converged(t, ctx, writer, tc, m, root, opts.MaxDepth, opts.Data)

	// Children made under leaves while a second cache reads the tree: a
	// leaf read before its child came is told of it by the watch.
	second := NewTreeCache(connect(t, Config{}), []string{root}, opts)
	m2 := follow(second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := leaves / 2; i < leaves; i++ {
			writer.Create(ctx, fmt.Sprintf("%s/l%02d/c", root, i), []byte("raced"), Persistent, nil)
			writer.Create(ctx, fmt.Sprintf("%s/l%02d/c/g", root, i), []byte("raced"), Persistent, nil)
		}
	}()
	go second.Run(ctx)
	<-done
	converged(t, ctx, writer, second, m2, root, opts.MaxDepth, opts.Data)
	converged(t, ctx, writer, tc, m, root, opts.MaxDepth, opts.Data)
}
