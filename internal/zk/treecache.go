package zk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zkprom/zkprom/internal/zk/wire"
)

// CacheOptions says what a TreeCache mirrors.
type CacheOptions struct {
	// MaxDepth is how many levels below each root are mirrored (1: the
	// root's children only); 0 means the whole subtree. Nodes at MaxDepth
	// get no children watch.
	MaxDepth int
	// Data reads and watches the data of every node below the roots.
	// Without it only names are mirrored and leaves cost no request at all.
	Data bool
	// ForgetData (with Data) delivers the data in the events but does not
	// keep it: Get and Snapshot return nodes without Data, and a change is
	// recognised by the node's zxids (a write always moves Mzxid). For a
	// reader that keeps its own parsed form of every node.
	ForgetData bool
	// Concurrency bounds the requests in flight during a sync (default 64).
	Concurrency int
	// Mode says how the cache learns of changes; the default picks
	// CachePersistentWatch when the server has it (3.6+).
	Mode   CacheMode
	Logger *slog.Logger
}

// CacheMode says how a TreeCache learns of changes.
type CacheMode int

const (
	// CacheModeAuto is CachePersistentWatch where the server has
	// persistent watches and multiRead (3.6+), else CachePerNodeWatches.
	CacheModeAuto CacheMode = iota
	// CachePersistentWatch: one persistent recursive watch per root, set
	// before the tree is read; data read in multiRead batches. The server
	// does not replay what the watch missed while disconnected, so the
	// tree is read again after every reconnect.
	CachePersistentWatch
	// CachePerNodeWatches: a children watch per mirrored directory and,
	// with Data, a data watch per node (every ZooKeeper version); one-shot
	// watches are set again on a reconnect and fire for what they missed.
	CachePerNodeWatches
)

func (m CacheMode) String() string {
	return [...]string{"auto", "persistent_watch", "per_node_watches"}[m]
}

// CacheEventType says what happened to a node.
type CacheEventType int

const (
	Added CacheEventType = iota
	Updated
	Removed
)

func (t CacheEventType) String() string {
	return [...]string{"added", "updated", "removed"}[t]
}

// CacheEvent is one change of the mirror. Roots are not reported.
type CacheEvent struct {
	Type CacheEventType
	Path string
	Data []byte // nil for Removed, and without CacheOptions.Data
	Stat Stat
}

// CacheBatch is a set of changes applied to the mirror at once, or a
// change of staleness (Events empty).
type CacheBatch struct {
	Events []CacheEvent
	Stale  bool // the mirror may lag ZooKeeper (no connection, or resyncing)
}

// Node is one mirrored node.
type Node struct {
	Path string
	Data []byte
	Stat Stat
}

// TreeCache keeps an in-memory mirror of one or more subtrees, with one
// persistent recursive watch per root (3.6+), or else one children watch
// per mirrored directory and a data watch only when data is asked for
// (CacheOptions.Mode). It reads the initial tree with bounded
// concurrency, keeps its state through disconnects (flagged stale), and
// after a session expiry (in the persistent mode after every reconnect)
// re-reads everything and emits exactly the difference.
type TreeCache struct {
	c      *Client
	roots  []string
	opts   CacheOptions
	logger *slog.Logger

	mode    CacheMode    // as decided by the first read (Run's goroutine)
	modeV   atomic.Int32 // mode, for the hook and Mode
	maxData atomic.Int64 // largest data read: the multiRead batch estimate

	mu    sync.RWMutex
	nodes map[string]*cacheNode // every mirrored node, roots included
	stale bool

	events     chan CacheBatch
	synced     chan struct{}
	syncedOnce sync.Once

	pmu     sync.Mutex
	pending map[string]dirty
	signal  chan struct{}
}

type cacheNode struct {
	data  []byte // nil with ForgetData
	stat  Stat
	depth int32
	// dir: the node's children are mirrored (it is above MaxDepth).
	dir bool
	// streamed: its Added event went out during the first read (see
	// resync).
	streamed bool
	// children are the names of the mirrored children (nil while there are
	// none); each name shares its bytes with the child's path.
	children map[string]struct{}
}

// addChild records the child at path p (the name is a slice of p).
func (n *cacheNode) addChild(p string) {
	if n.children == nil {
		n.children = map[string]struct{}{}
	}
	n.children[Base(p)] = struct{}{}
}

type dirty uint8

const (
	dirtyData dirty = 1 << iota
	dirtyChildren
	dirtyTree // deleted or created: read the whole subtree again
	// dirtyGone: deleted, as a persistent watch reported last (a create
	// after it adds dirtyTree, which then wins): dropped without a read.
	dirtyGone
)

// NewTreeCache makes a cache of the subtrees at roots; Run starts it.
func NewTreeCache(c *Client, roots []string, opts CacheOptions) *TreeCache {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.Logger == nil {
		opts.Logger = c.logger
	}
	tc := &TreeCache{
		c:       c,
		roots:   append([]string(nil), roots...),
		opts:    opts,
		mode:    opts.Mode,
		logger:  opts.Logger.With("component", "treecache", "roots", strings.Join(roots, ",")),
		nodes:   map[string]*cacheNode{},
		stale:   true,
		events:  make(chan CacheBatch, 16),
		synced:  make(chan struct{}),
		pending: map[string]dirty{},
		signal:  make(chan struct{}, 1),
	}
	tc.maxData.Store(1024)
	tc.modeV.Store(int32(opts.Mode))
	return tc
}

// Mode is how the cache learns of changes: CacheModeAuto until its first
// read has decided.
func (tc *TreeCache) Mode() CacheMode { return CacheMode(tc.modeV.Load()) }

// watchesNodes says whether reads leave one-shot watches (the per-node
// mode, and before the mode is decided).
func (tc *TreeCache) watchesNodes() bool { return tc.Mode() != CachePersistentWatch }

// Events delivers the changes in order. The cache waits for the reader,
// so read it steadily.
func (tc *TreeCache) Events() <-chan CacheBatch { return tc.events }

// Synced is closed after the first complete read.
func (tc *TreeCache) Synced() <-chan struct{} { return tc.synced }

// Stale reports whether the mirror may lag ZooKeeper.
func (tc *TreeCache) Stale() bool {
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	return tc.stale
}

// Snapshot returns every mirrored node below the roots, sorted by path, as
// of one applied batch.
func (tc *TreeCache) Snapshot() []Node {
	tc.mu.RLock()
	out := make([]Node, 0, len(tc.nodes))
	for p, n := range tc.nodes {
		if n.depth > 0 {
			out = append(out, Node{Path: p, Data: n.data, Stat: n.stat})
		}
	}
	tc.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Get returns one mirrored node.
func (tc *TreeCache) Get(p string) (Node, bool) {
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	n, ok := tc.nodes[p]
	if !ok || n.depth == 0 {
		return Node{}, false
	}
	return Node{Path: p, Data: n.data, Stat: n.stat}, true
}

// rootOf returns the root p is under and p's depth below it.
func (tc *TreeCache) rootOf(p string) (string, int, bool) {
	for _, r := range tc.roots {
		if p == r {
			return r, 0, true
		}
		prefix := r + "/"
		if r == "/" {
			prefix = "/"
		}
		if strings.HasPrefix(p, prefix) {
			return r, strings.Count(p[len(prefix)-1:], "/"), true
		}
	}
	return "", 0, false
}

func (tc *TreeCache) onEvent(ev WatchEvent) {
	_, depth, ok := tc.rootOf(ev.Path)
	if !ok {
		return
	}
	p := ev.Path
	var d dirty
	switch ev.Type {
	case NodeDataChanged:
		d = dirtyData
	case NodeChildrenChanged:
		d = dirtyChildren
	case NodeDeleted, NodeCreated:
		d = dirtyTree
		// A persistent recursive watch reports every create and delete
		// below its root, in order, and no children event: the node's own
		// subtree is read again, and its parent is not listed (a listing
		// of 10,000 children per change would cost far more).
		if !tc.watchesNodes() && tc.opts.MaxDepth != 0 && depth > tc.opts.MaxDepth {
			return
		}
		if !tc.watchesNodes() && ev.Type == NodeDeleted && depth > 0 {
			d = dirtyGone
		}
	default:
		return
	}
	if d == dirtyData && (!tc.opts.Data || depth == 0) {
		return
	}
	tc.markPending(p, d)
}

// markPending queues what to read again at p and wakes the cache.
func (tc *TreeCache) markPending(p string, d dirty) {
	tc.pmu.Lock()
	tc.pending[p] |= d
	tc.pmu.Unlock()
	select {
	case tc.signal <- struct{}{}:
	default:
	}
}

func (tc *TreeCache) takePending() map[string]dirty {
	tc.pmu.Lock()
	defer tc.pmu.Unlock()
	p := tc.pending
	tc.pending = map[string]dirty{}
	return p
}

func (tc *TreeCache) requeue(p map[string]dirty) {
	tc.pmu.Lock()
	for k, v := range p {
		tc.pending[k] |= v
	}
	tc.pmu.Unlock()
}

// Run mirrors the subtrees until ctx ends.
func (tc *TreeCache) Run(ctx context.Context) error {
	sub := tc.c.Subscribe()
	defer sub.Close()
	hook := tc.c.addHook(tc.onEvent)
	defer tc.c.removeHook(hook)
	defer close(tc.events)
	if tc.mode != CacheModeAuto { // chosen: else the first read decides
		tc.setMode(tc.mode, nil)
	}
	defer func() {
		if tc.mode != CacheModeAuto {
			tc.c.m.treeCacheMode.WithLabelValues(tc.mode.String()).Dec()
		}
	}()

	var syncedSession int64 // the session whose watches back the mirror
	needResync := true
	retry := time.NewTimer(0)
	defer retry.Stop()
	backoff := 100 * time.Millisecond
	// waiting: a read failed and the retry timer has not fired. Neither a
	// reconnect nor a change starts a read before it: a read that fails
	// every time (a reply over the max buffer) must not run at the pace
	// of reconnects or of changes below a wide parent.
	waiting := false
	warned := false // the failure streak was logged at Warn
	for {
		woken := false
		select {
		case <-ctx.Done():
			return nil
		case <-tc.c.Done():
			return ErrClosing
		case ev := <-sub.C:
			switch ev.State {
			case StateConnected:
				// A persistent watch's missed events are not replayed.
				if ev.SessionID != syncedSession || !tc.watchesNodes() {
					needResync = true
				} else if !needResync {
					tc.setStale(ctx, ev.ReadOnly)
				}
			case StateDisconnected, StateExpired, StateAuthFailed:
				tc.setStale(ctx, true)
			}
		case <-tc.signal:
		case <-retry.C:
			woken = true
		}
		if waiting && !woken {
			continue
		}
		waiting = false
		if tc.c.State() != StateConnected {
			continue
		}
		var err error
		if needResync {
			session := tc.c.SessionID()
			if err = tc.resync(ctx); err == nil {
				syncedSession, needResync = session, false
				if tc.c.SessionID() != session {
					needResync = true // expired while we read: again
				}
			}
		} else if pending := tc.takePending(); len(pending) > 0 {
			if err = tc.refresh(ctx, pending); err != nil {
				tc.requeue(pending)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, wire.ErrFrameTooLarge) && !warned {
				// Not passing on its own: said once per streak, at Warn.
				tc.logger.Warn("tree cache read failed: a ZooKeeper reply is over the client's max buffer; retrying with backoff until the limit is raised",
					"err", err, "max_buffer", tc.c.MaxBuffer(), "hint", maxBufferHint)
				warned = true
			} else {
				tc.logger.Debug("tree cache read failed; retrying", "err", err, "backoff", backoff)
			}
			retry.Reset(backoff)
			waiting = true
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		if warned {
			tc.logger.Info("tree cache read again after failures")
			warned = false
		}
		backoff = 100 * time.Millisecond
	}
}

func (tc *TreeCache) setStale(ctx context.Context, stale bool) {
	tc.mu.Lock()
	changed := tc.stale != stale
	tc.stale = stale
	tc.mu.Unlock()
	if changed {
		tc.emit(ctx, CacheBatch{Stale: stale})
	}
}

func (tc *TreeCache) emit(ctx context.Context, b CacheBatch) {
	select {
	case tc.events <- b:
	case <-ctx.Done():
	}
}

// resync reads every root again and replaces the mirror by the result,
// emitting only the difference.
func (tc *TreeCache) resync(ctx context.Context) error {
	if err := tc.watchRoots(ctx); err != nil {
		return err
	}
	tc.takePending() // the new read covers them; new watches report later changes
	tc.mu.RLock()
	first := len(tc.nodes) <= len(tc.roots)
	tc.mu.RUnlock()
	// A first read that forgets data hands its leaves over batch by batch
	// as they are read: the consumer parses each while the rest is read,
	// and the replies go as soon as it has, instead of the whole tree's
	// data being held until the end. Nothing is synced before the end, so
	// consumers see the same tree; a read that fails takes back what it
	// handed over.
	var stream func([]CacheEvent)
	var streamed []string
	if first && tc.opts.Data && tc.opts.ForgetData && !tc.watchesNodes() {
		var smu sync.Mutex
		stream = func(evs []CacheEvent) {
			slices.SortFunc(evs, func(a, b CacheEvent) int { return strings.Compare(a.Path, b.Path) })
			smu.Lock()
			for _, e := range evs {
				streamed = append(streamed, e.Path)
			}
			smu.Unlock()
			tc.emit(ctx, CacheBatch{Events: evs, Stale: tc.Stale()})
		}
	}
	fresh, err := tc.fetch(ctx, tc.roots, 0, stream)
	if err != nil {
		if len(streamed) > 0 {
			evs := make([]CacheEvent, len(streamed))
			for i, p := range streamed {
				evs[i] = CacheEvent{Type: Removed, Path: p}
			}
			tc.emit(ctx, CacheBatch{Events: evs, Stale: tc.Stale()})
		}
		return err
	}
	tc.mu.Lock()
	old := tc.nodes
	var evs []CacheEvent
	if first && stream == nil {
		evs = make([]CacheEvent, 0, len(fresh)) // everything is added
	}
	for p, n := range fresh {
		if n.depth == 0 || n.streamed {
			continue
		}
		if o, ok := old[p]; !ok {
			evs = append(evs, tc.event(Added, p, n))
		} else if tc.changed(o, n) {
			evs = append(evs, tc.event(Updated, p, n))
		}
	}
	for p, o := range old {
		if _, ok := fresh[p]; !ok && o.depth > 0 {
			evs = append(evs, CacheEvent{Type: Removed, Path: p, Stat: o.stat})
		}
	}
	for _, n := range fresh {
		tc.forget(n)
	}
	tc.nodes = fresh
	// A read-only server's tree is served, marked stale: it may be behind.
	stale := tc.c.ReadOnly()
	tc.stale = stale
	tc.mu.Unlock()
	// Each path once (from fresh, or from old alone): no stable sort
	// needed, and the stable one costs n·log²n on 100,000 events.
	slices.SortFunc(evs, func(a, b CacheEvent) int { return strings.Compare(a.Path, b.Path) })
	tc.emit(ctx, CacheBatch{Events: evs, Stale: stale})
	tc.syncedOnce.Do(func() { close(tc.synced) })
	tc.logger.Debug("tree cache synced", "nodes", len(fresh), "changes", len(evs))
	return nil
}

// watchRoots leaves the persistent watches on the roots before a read (a
// new session has none; on the same session it is a no-op), and on the
// first read decides the mode: a server without addWatch (before 3.6)
// answers it as unimplemented.
func (tc *TreeCache) watchRoots(ctx context.Context) error {
	if tc.mode == CachePerNodeWatches {
		return nil
	}
	for _, r := range tc.roots {
		err := tc.c.addPersistentWatch(ctx, r)
		if tc.mode == CacheModeAuto && (errors.Is(err, wire.ErrUnimplemented) || errors.Is(err, wire.ErrBadArguments)) {
			tc.setMode(CachePerNodeWatches, err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("tree cache: watch %s: %w", r, err)
		}
	}
	if tc.mode == CacheModeAuto {
		tc.setMode(CachePersistentWatch, nil)
	}
	return nil
}

// setMode records the mode, once, in the log and the metrics.
func (tc *TreeCache) setMode(m CacheMode, why error) {
	tc.mode = m
	tc.modeV.Store(int32(m))
	tc.c.m.treeCacheMode.WithLabelValues(m.String()).Inc()
	if why != nil {
		tc.logger.Info("tree cache mode: the server has no persistent watches (before 3.6): a watch per node", "mode", m, "err", why)
		return
	}
	tc.logger.Info("tree cache mode", "mode", m)
}

func (tc *TreeCache) changed(o, n *cacheNode) bool {
	if tc.opts.Data && tc.opts.ForgetData {
		return o.stat.Czxid != n.stat.Czxid || o.stat.Mzxid != n.stat.Mzxid
	}
	return !bytes.Equal(o.data, n.data) || o.stat.Czxid != n.stat.Czxid ||
		(tc.opts.Data && o.stat.Mzxid != n.stat.Mzxid)
}

// forget drops a node's data once its events are made, with ForgetData.
func (tc *TreeCache) forget(n *cacheNode) {
	if tc.opts.ForgetData {
		n.data = nil
	}
}

func (tc *TreeCache) event(t CacheEventType, p string, n *cacheNode) CacheEvent {
	return CacheEvent{Type: t, Path: p, Data: n.data, Stat: n.stat}
}

// refresh re-reads what fired watches named, and applies the result as one
// batch.
func (tc *TreeCache) refresh(ctx context.Context, pending map[string]dirty) error {
	type childRead struct {
		path     string
		children []string
		stat     *Stat
		gone     bool
	}
	type dataRead struct {
		path string
		data []byte
		stat *Stat
		gone bool
	}
	var trees, gone []string
	var childPaths, dataPaths []string
	tc.mu.RLock()
	for p, d := range pending {
		_, depth, _ := tc.rootOf(p)
		_, known := tc.nodes[p]
		if !known && depth > 0 {
			// Created below a directory we hold, reported by the
			// persistent watch: read it. Else below a node we do not hold
			// (yet): that node's read covers it.
			if parent := tc.nodes[Parent(p)]; d&dirtyTree != 0 && !tc.watchesNodes() && parent != nil && parent.dir {
				trees = append(trees, p)
			}
			continue
		}
		switch {
		case d&dirtyTree != 0:
			trees = append(trees, p)
		case d&dirtyGone != 0:
			gone = append(gone, p)
		default:
			if d&dirtyChildren != 0 {
				childPaths = append(childPaths, p)
			}
			if d&dirtyData != 0 {
				dataPaths = append(dataPaths, p)
			}
		}
	}
	tc.mu.RUnlock()

	childReads := make([]childRead, len(childPaths))
	dataReads := make([]dataRead, len(dataPaths))
	err := tc.parallel(ctx, len(childPaths)+len(dataPaths), tc.opts.Concurrency, func(i int) error {
		if i < len(childPaths) {
			p := childPaths[i]
			ch, st, err := tc.c.children(ctx, p, tc.watchesNodes())
			if errors.Is(err, ErrNoNode) {
				childReads[i] = childRead{path: p, gone: true}
				return nil
			}
			childReads[i] = childRead{path: p, children: ch, stat: st}
			return err
		}
		p := dataPaths[i-len(childPaths)]
		d, st, err := tc.c.get(ctx, p, tc.watchesNodes())
		if errors.Is(err, ErrNoNode) {
			dataReads[i-len(childPaths)] = dataRead{path: p, gone: true}
			return nil
		}
		dataReads[i-len(childPaths)] = dataRead{path: p, data: d, stat: st}
		return err
	})
	if err != nil {
		return err
	}

	// New children are read as whole subtrees, together with the subtrees
	// that were deleted or created.
	tc.mu.RLock()
	for _, r := range childReads {
		if r.gone {
			trees = append(trees, r.path)
			continue
		}
		n := tc.nodes[r.path]
		if n == nil || !n.dir {
			continue
		}
		for _, name := range r.children {
			if _, ok := n.children[name]; !ok {
				trees = append(trees, Join(r.path, name))
			}
		}
	}
	tc.mu.RUnlock()
	trees = dedupeSubtrees(trees)
	fetched, err := tc.fetch(ctx, trees, -1, nil)
	if err != nil {
		return err
	}

	// Apply everything at once: the deletions first, the reads (as new as
	// any event taken) after.
	var evs []CacheEvent
	tc.mu.Lock()
	for _, p := range gone {
		evs = tc.removeSubtree(p, evs)
	}
	for _, t := range trees {
		evs = tc.replaceSubtree(t, fetched, evs)
	}
	for _, r := range childReads {
		n := tc.nodes[r.path]
		if r.gone || n == nil || !n.dir {
			continue
		}
		now := make(map[string]struct{}, len(r.children))
		for _, name := range r.children {
			now[name] = struct{}{}
		}
		for name := range n.children {
			if _, ok := now[name]; ok {
				continue
			}
			cp := Join(r.path, name)
			if c := tc.nodes[cp]; c != nil && r.stat != nil && c.stat.Czxid > r.stat.Pzxid {
				continue // created again after this listing (read above)
			}
			evs = tc.removeSubtree(cp, evs)
		}
		if r.stat != nil && !tc.opts.Data {
			n.stat = *r.stat
		}
	}
	for _, r := range dataReads {
		n := tc.nodes[r.path]
		if r.gone || n == nil || r.stat == nil {
			continue // a removal is applied through the parent's children watch
		}
		nn := &cacheNode{data: r.data, stat: *r.stat, depth: n.depth, dir: n.dir, children: n.children}
		if tc.changed(n, nn) {
			tc.nodes[r.path] = nn
			evs = append(evs, tc.event(Updated, r.path, nn))
			tc.forget(nn)
		}
	}
	for _, n := range fetched {
		tc.forget(n)
	}
	stale := tc.stale
	tc.mu.Unlock()
	if len(evs) > 0 {
		sortEvents(evs)
		tc.emit(ctx, CacheBatch{Events: evs, Stale: stale})
	}
	return nil
}

// replaceSubtree makes the mirror of the subtree at t equal to what fetched
// holds for it (absent in fetched: the subtree is gone).
func (tc *TreeCache) replaceSubtree(t string, fetched map[string]*cacheNode, evs []CacheEvent) []CacheEvent {
	for _, p := range subtree(tc.nodes, t) {
		o := tc.nodes[p]
		n, ok := fetched[p]
		switch {
		case !ok && o.depth == 0:
			tc.nodes[p] = &cacheNode{depth: 0} // a root that is gone: kept, empty
		case !ok:
			delete(tc.nodes, p)
			evs = append(evs, CacheEvent{Type: Removed, Path: p, Stat: o.stat})
			tc.unlinkFromParent(p)
		case tc.changed(o, n) && o.depth > 0:
			evs = append(evs, tc.event(Updated, p, n))
		}
	}
	for _, p := range subtree(fetched, t) {
		n := fetched[p]
		_, existed := tc.nodes[p]
		if !existed && n.depth > 0 {
			evs = append(evs, tc.event(Added, p, n))
		}
		tc.nodes[p] = n
		if n.depth > 0 {
			if parent := tc.nodes[Parent(p)]; parent != nil && parent.dir {
				parent.addChild(p)
			}
		}
	}
	return evs
}

// subtree lists the paths of the subtree at t in nodes (none when t is
// not there), parents first, by its children sets: it costs the subtree,
// not the whole map (a closing session's 10,000 ephemerals are 10,000
// subtrees of one node each, in one refresh).
func subtree(nodes map[string]*cacheNode, t string) []string {
	if nodes[t] == nil {
		return nil
	}
	out := []string{t}
	for i := 0; i < len(out); i++ {
		p := out[i]
		for name := range nodes[p].children {
			if c := childPath(p, name); nodes[c] != nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func (tc *TreeCache) removeSubtree(t string, evs []CacheEvent) []CacheEvent {
	return tc.replaceSubtree(t, nil, evs)
}

func (tc *TreeCache) unlinkFromParent(p string) {
	if parent := tc.nodes[Parent(p)]; parent != nil {
		delete(parent.children, Base(p))
	}
}

type fetchItem struct {
	path  string
	depth int32
}

// fetch reads the subtrees at starts, level by level with bounded
// concurrency, setting watches as it goes. depth -1 means "find out from
// the path". A start that does not exist is left out (a root gets an
// exists watch and an empty entry). With stream, the leaves read with
// their data go to it as Added events as each batch is read, and keep no
// data.
func (tc *TreeCache) fetch(ctx context.Context, starts []string, depth int, stream func([]CacheEvent)) (map[string]*cacheNode, error) {
	type item = fetchItem
	out := make(map[string]*cacheNode, len(starts))
	var mu sync.Mutex
	level := make([]item, 0, len(starts))
	for _, s := range starts {
		d := depth
		if d < 0 {
			_, d, _ = tc.rootOf(s)
		}
		level = append(level, item{s, int32(d)})
	}
	watch := tc.watchesNodes()
	// The persistent mode with data reads each level's data and stat
	// first, in multiRead batches, and lists only the nodes whose stat
	// counts children: the leaves, most nodes, cost no getChildren. A child
	// created after that read is reported by the root's persistent watch,
	// set before it.
	dataFirst := !watch && tc.opts.Data
	var lost atomic.Bool // a child listed was gone before its own read
	for len(level) > 0 {
		list, read := level, []*cacheNode(nil)
		if dataFirst {
			var err error
			var gone bool
			if list, read, gone, err = tc.readLevelData(ctx, level, out, stream); err != nil {
				return nil, err
			}
			if gone {
				lost.Store(true)
			}
		}
		var next []item
		err := tc.parallel(ctx, len(list), tc.opts.Concurrency, func(i int) error {
			it := list[i]
			n := &cacheNode{depth: it.depth}
			if read != nil && read[i] != nil {
				n = read[i] // its data and stat, read above
			}
			wantChildren := tc.wantChildren(it.depth)
			wantData := tc.opts.Data && it.depth > 0
			var kids []string
			if wantChildren {
				ch, st, err := tc.c.children(ctx, it.path, watch)
				if errors.Is(err, ErrNoNode) {
					if it.depth == 0 {
						return tc.watchMissingRoot(ctx, it.path, &mu, out)
					}
					lost.Store(true)
					return nil // gone since: its parent's listing reports it
				}
				if err != nil {
					return err
				}
				if !dataFirst || it.depth == 0 {
					n.stat = *st // else the stat stays the one read with the data
				}
				n.dir = true
				if len(ch) > 0 {
					// The children's paths, and their names as slices of
					// them: the names as read become garbage.
					kids = make([]string, len(ch))
					n.children = make(map[string]struct{}, len(ch))
					for i, k := range ch {
						kids[i] = childPath(it.path, k)
						n.children[Base(kids[i])] = struct{}{}
					}
				}
			}
			if wantData && watch { // else read in batches above
				d, st, err := tc.c.get(ctx, it.path, true)
				if errors.Is(err, ErrNoNode) {
					lost.Store(true)
					return nil
				}
				if err != nil {
					return err
				}
				n.data, n.stat = d, *st
			}
			mu.Lock()
			out[it.path] = n
			for _, k := range kids {
				next = append(next, item{k, it.depth + 1})
			}
			mu.Unlock()
			return nil
		})
		if err != nil {
			return nil, err
		}
		// A child listed but gone before its own read is left out; its
		// parent's children watch reports the removal.
		var deeper []item
		for _, it := range next {
			if tc.wantChildren(it.depth) || (tc.opts.Data && it.depth > 0) {
				deeper = append(deeper, it)
			} else {
				out[it.path] = &cacheNode{depth: it.depth} // a name-only leaf costs no request
			}
		}
		level = deeper
	}
	// A child listed but gone before its own read is not mirrored, so its
	// parent must not list it either: else its return would look known.
	// (Rare: the whole map is not walked without one.)
	if lost.Load() {
		for p, n := range out {
			for name := range n.children {
				if _, ok := out[childPath(p, name)]; !ok {
					delete(n.children, name)
				}
			}
		}
	}
	return out, nil
}

func (tc *TreeCache) watchMissingRoot(ctx context.Context, root string, mu *sync.Mutex, out map[string]*cacheNode) error {
	if !tc.watchesNodes() { // the root's persistent watch reports its creation
		mu.Lock()
		out[root] = &cacheNode{depth: 0}
		mu.Unlock()
		return nil
	}
	ok, _, err := tc.c.exists(ctx, root, true)
	if err != nil {
		return err
	}
	if ok {
		// Created between the two reads: the exists watch will not fire,
		// so ask for another read.
		tc.pmu.Lock()
		tc.pending[root] |= dirtyTree
		tc.pmu.Unlock()
		select {
		case tc.signal <- struct{}{}:
		default:
		}
	}
	mu.Lock()
	out[root] = &cacheNode{depth: 0}
	mu.Unlock()
	return nil
}

// multiRead batches: replies are planned under half of the client's max
// buffer, guessing each node's data as the largest seen so far; a reply
// that turns out over it is read again in halves.
const maxBatch = 1000

// wantChildren says whether a node at depth has its children mirrored.
func (tc *TreeCache) wantChildren(depth int32) bool {
	return tc.opts.MaxDepth == 0 || int(depth) < tc.opts.MaxDepth
}

// readLevelData reads the data and stat of one level's nodes below the
// roots in multiRead batches (a node gone since its parent's listing is
// left out). A node that can have no mirrored children, or whose stat
// says it has none, goes into out as it is; the rest, and the roots, are
// returned to be listed, each with its node as read (nil for a root).
// With stream, those that go into out are streamed (see fetch).
func (tc *TreeCache) readLevelData(ctx context.Context, level []fetchItem, out map[string]*cacheNode, stream func([]CacheEvent)) (list []fetchItem, read []*cacheNode, gone bool, err error) {
	paths := make([]string, 0, len(level))
	var depths []int32
	for _, it := range level {
		if it.depth > 0 {
			paths = append(paths, it.path)
			depths = append(depths, it.depth)
		}
	}
	var batchRead func(lo, hi int, res []*cacheNode)
	if stream != nil {
		batchRead = func(lo, hi int, res []*cacheNode) {
			var evs []CacheEvent
			for i := lo; i < hi; i++ {
				if n := res[i]; n != nil && (!tc.wantChildren(n.depth) || n.stat.NumChildren == 0) {
					evs = append(evs, CacheEvent{Type: Added, Path: paths[i], Data: n.data, Stat: n.stat})
					n.data, n.streamed = nil, true
				}
			}
			if len(evs) > 0 {
				stream(evs)
			}
		}
	}
	res, err := tc.readData(ctx, paths, depths, batchRead)
	if err != nil {
		return nil, nil, false, err
	}
	j := 0
	for _, it := range level {
		if it.depth == 0 {
			list, read = append(list, it), append(read, nil)
			continue
		}
		n := res[j]
		j++
		if n == nil {
			gone = true
			continue
		}
		if !tc.wantChildren(it.depth) {
			out[it.path] = n
			continue
		}
		if n.stat.NumChildren == 0 {
			// A leaf: its children are mirrored, there are none yet.
			n.dir = true
			out[it.path] = n
			continue
		}
		list, read = append(list, it), append(read, n)
	}
	return list, read, gone, nil
}

// childPath is the path of parent's child name (a name as ZooKeeper lists
// it, one clean element): concatenated, which path.Join is not, cheaply.
func childPath(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

// readData reads the data and stat of paths, at depths, into their nodes
// (nil: no such node) in multiRead batches, a few in flight. batchRead,
// unless nil, is called with each batch's span of the nodes once they
// are in.
func (tc *TreeCache) readData(ctx context.Context, paths []string, depths []int32, batchRead func(lo, hi int, res []*cacheNode)) ([]*cacheNode, error) {
	spans := wire.ReadBatches(paths, int(tc.maxData.Load()), tc.c.MaxBuffer()/2, maxBatch)
	out := make([]*cacheNode, len(paths))
	var read func(lo, hi int) error
	read = func(lo, hi int) error {
		res, err := tc.c.multiRead(ctx, paths[lo:hi])
		if errors.Is(err, wire.ErrFrameTooLarge) && hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if err := read(lo, mid); err != nil {
				return err
			}
			return read(mid, hi)
		}
		if err != nil {
			return err
		}
		m := 0
		for i, r := range res {
			if errors.Is(r.Err, ErrNoNode) {
				continue
			}
			if r.Err != nil {
				return fmt.Errorf("read %s: %w", paths[lo+i], bare(r.Err))
			}
			out[lo+i] = &cacheNode{data: r.Data, stat: r.Stat, depth: depths[lo+i]}
			m = max(m, len(r.Data))
		}
		if batchRead != nil {
			batchRead(lo, hi, out)
		}
		for old := tc.maxData.Load(); int64(m) > old && !tc.maxData.CompareAndSwap(old, int64(m)); old = tc.maxData.Load() {
		}
		return nil
	}
	err := tc.parallel(ctx, len(spans), min(tc.opts.Concurrency, 8), func(i int) error { return read(spans[i][0], spans[i][1]) })
	return out, err
}

// parallel runs f(0..n-1) with at most k in flight and
// returns the first error.
func (tc *TreeCache) parallel(ctx context.Context, n, k int, f func(i int) error) error {
	if n == 0 {
		return nil
	}
	workers := min(k, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first != nil {
		return fmt.Errorf("tree cache read: %w", first)
	}
	return nil
}

// dedupeSubtrees drops paths that lie inside another path of the list
// (ancestors are looked up: in sorted order "/a/b-c" falls between "/a/b"
// and "/a/b/c").
func dedupeSubtrees(paths []string) []string {
	set := make(map[string]bool, len(paths))
	for _, p := range paths {
		set[p] = true
	}
	var out []string
	for p := range set {
		inside := false
		for a := p; a != "/" && !inside; {
			a = Parent(a)
			inside = set[a]
		}
		if !inside {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func sortEvents(evs []CacheEvent) {
	slices.SortStableFunc(evs, func(a, b CacheEvent) int { return strings.Compare(a.Path, b.Path) })
}
