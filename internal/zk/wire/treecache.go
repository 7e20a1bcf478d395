package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// CacheConfig says what a TreeCache mirrors and how it reaches ZooKeeper.
type CacheConfig struct {
	// Session is how the cache's own sessions are made (one at a time; a
	// new one after expiry).
	Session SessionConfig
	// Root is the subtree mirrored, the root included.
	Root string
	// BatchBytes bounds the expected size of one multiRead reply; 0 means
	// half the connection's MaxBuffer.
	BatchBytes int
	// MaxBatch bounds the reads in one multiRead (default 2,000).
	MaxBatch int
	// Concurrency bounds the requests in flight during a read (default 8
	// multiReads, 8× as many getChildren2).
	Concurrency int
	Logger      *slog.Logger
}

// CacheEventType says what happened to a node.
type CacheEventType int

const (
	CacheAdded CacheEventType = iota
	CacheUpdated
	CacheRemoved
)

func (t CacheEventType) String() string { return [...]string{"added", "updated", "removed"}[t] }

// CacheEvent is one change of the mirror.
type CacheEvent struct {
	Type CacheEventType
	Path string
	Data []byte // nil for CacheRemoved
	Stat Stat
}

// CacheBatch is a set of changes applied at once, or (Events empty) a
// change of staleness.
type CacheBatch struct {
	Events []CacheEvent
	Stale  bool
}

// CacheNode is one mirrored node.
type CacheNode struct {
	Path string
	Data []byte
	Stat Stat
}

type cached struct {
	data []byte
	stat Stat
}

// TreeCache mirrors one subtree with one persistent recursive watch on
// its root (3.6+): the watch is set before the first read so no change is
// missed, the tree is read with getChildren2 per directory and getData in
// multiRead batches sized in bytes, and every event is confirmed by a
// read of its node, applied only when the node's czxid/mzxid say it is
// newer than what the cache holds (so a change seen both in the read and
// in an event ends right, and nothing is reported twice). Consumers get
// whole batches only.
//
// On a disconnect the mirror is marked stale. The server does not replay
// what a persistent watch missed while the session had no connection, so
// after a reconnect the tree is read again (the watch is kept) and the
// exact difference emitted; after an expiry a new session does the same.
type TreeCache struct {
	cfg    CacheConfig
	logger *slog.Logger

	mu    sync.RWMutex
	nodes map[string]*cached
	stale bool

	maxData int // largest data length seen: the batch estimate

	events     chan CacheBatch
	synced     chan struct{}
	syncedOnce sync.Once

	statsMu sync.Mutex
	stats   CacheStats
}

// CacheStats counts what the cache asked of the server.
type CacheStats struct {
	FullReads  int // complete reads of the tree
	MultiReads int // multiRead requests sent (splits included)
	Splits     int // batches split because the reply was over MaxBuffer
	Children   int // getChildren2 requests
}

// NewTreeCache makes a cache; Run starts it.
func NewTreeCache(cfg CacheConfig) *TreeCache {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	cfg.Session.Conn = cfg.Session.Conn.withDefaults()
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = cfg.Session.Conn.MaxBuffer / 2
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 2000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &TreeCache{
		cfg:     cfg,
		logger:  cfg.Logger.With("component", "treecache", "root", cfg.Root),
		nodes:   map[string]*cached{},
		stale:   true,
		maxData: 1024,
		events:  make(chan CacheBatch, 16),
		synced:  make(chan struct{}),
	}
}

// Events delivers the changes in order; the cache waits for the reader.
func (tc *TreeCache) Events() <-chan CacheBatch { return tc.events }

// Synced is closed after the first complete read has been applied.
func (tc *TreeCache) Synced() <-chan struct{} { return tc.synced }

// Stale reports whether the mirror may lag ZooKeeper.
func (tc *TreeCache) Stale() bool {
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	return tc.stale
}

// Stats returns the request counts so far.
func (tc *TreeCache) Stats() CacheStats {
	tc.statsMu.Lock()
	defer tc.statsMu.Unlock()
	return tc.stats
}

// Snapshot returns every mirrored node, sorted by path, as of one applied
// batch.
func (tc *TreeCache) Snapshot() []CacheNode {
	tc.mu.RLock()
	out := make([]CacheNode, 0, len(tc.nodes))
	for p, n := range tc.nodes {
		out = append(out, CacheNode{Path: p, Data: n.data, Stat: n.stat})
	}
	tc.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Len is the number of mirrored nodes.
func (tc *TreeCache) Len() int {
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	return len(tc.nodes)
}

// Run keeps the mirror until ctx ends; it closes Events when it returns.
func (tc *TreeCache) Run(ctx context.Context) error {
	defer close(tc.events)
	for ctx.Err() == nil {
		s, err := NewSession(ctx, tc.cfg.Session)
		if err != nil {
			tc.logger.Debug("zookeeper session failed, retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		err = tc.runSession(ctx, s)
		s.Close()
		for range s.Events() { // drain to the end
		}
		if ctx.Err() != nil {
			return nil
		}
		tc.logger.Debug("tree cache session ended, starting a new one", "err", err)
		tc.setStale(ctx, true)
		if !errors.Is(err, errSessionEnded) {
			// a read refused (an ACL, a node over MaxBuffer): not at once again
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// runSession mirrors the tree on one session until it ends.
func (tc *TreeCache) runSession(ctx context.Context, s *Session) error {
	events := s.Events()
	// The first event is the session's connected state: the read follows.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-events:
	}
	needRead := true
	for {
		if needRead {
			if err := tc.addWatch(ctx, s); err != nil {
				return err
			}
			fresh, err := tc.fullRead(ctx, s)
			if err != nil {
				if errors.Is(err, ErrConnectionLoss) {
					// the reconnect's events say when to read again
					needRead = false
					continue
				}
				return err
			}
			needRead = false
			// What changed during the read is queued: apply it on top
			// before handing the snapshot out.
			dirty, _, reread, end := drain(events, nil)
			if end != nil {
				return end
			}
			if reread {
				needRead = true
				continue
			}
			if err := tc.confirm(ctx, s, fresh, dirty); err != nil {
				if errors.Is(err, ErrConnectionLoss) {
					continue
				}
				return err
			}
			tc.replace(ctx, fresh)
			if s.ReadOnly() {
				tc.setStale(ctx, true) // served, but maybe behind
			}
			tc.syncedOnce.Do(func() { close(tc.synced) })
			continue
		}
		var first Event
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case first, ok = <-events:
			if !ok {
				return ErrClosing
			}
		}
		dirty, disconnected, reread, end := drain(events, &first)
		if end != nil {
			return end
		}
		if disconnected || reread {
			tc.setStale(ctx, true)
		}
		if reread {
			needRead = true
			continue
		}
		if len(dirty) == 0 {
			continue
		}
		if err := tc.applyEvents(ctx, s, dirty); err != nil {
			if errors.Is(err, ErrConnectionLoss) {
				continue // a reconnect follows: the tree is read again
			}
			return err
		}
	}
}

// drain takes first and every event already queued: the paths that
// changed, whether a reconnect makes a full read necessary, and the
// session's end.
func drain(events <-chan Event, first *Event) (dirty map[string]struct{}, disconnected, reread bool, end error) {
	dirty = map[string]struct{}{}
	take := func(ev Event) {
		switch {
		case ev.Type != EventNone:
			dirty[ev.Path] = struct{}{}
		case ev.State == StateDisconnected:
			disconnected = true
		case ev.State == StateSyncConnected || ev.State == StateConnectedReadOnly:
			reread = true
		case ev.State == StateExpired || ev.State == StateClosed || ev.State == StateAuthFailed:
			end = fmt.Errorf("tree cache: session ended (%s): %w", ev.State, errors.Join(ev.Err, errSessionEnded))
		}
	}
	if first != nil {
		take(*first)
	}
	for end == nil {
		select {
		case ev, ok := <-events:
			if !ok {
				if end == nil {
					end = ErrClosing
				}
				return
			}
			take(ev)
		default:
			return
		}
	}
	return
}

var errSessionEnded = errors.New("session ended")

func (tc *TreeCache) addWatch(ctx context.Context, s *Session) error {
	for {
		err := s.AddWatch(ctx, tc.cfg.Root, true)
		if err == nil || !errors.Is(err, ErrConnectionLoss) {
			if err != nil {
				return fmt.Errorf("tree cache: add watch on %s: %w", tc.cfg.Root, err)
			}
			return nil
		}
	}
}

// fullRead reads the whole tree: getData of each level in multiRead
// batches, getChildren2 of the nodes that have children.
func (tc *TreeCache) fullRead(ctx context.Context, s *Session) (map[string]*cached, error) {
	tc.count(func(st *CacheStats) { st.FullReads++ })
	out := map[string]*cached{}
	level := []string{tc.cfg.Root}
	for len(level) > 0 {
		res, err := tc.readData(ctx, s, level)
		if err != nil {
			return nil, err
		}
		var dirs []string
		for i, p := range level {
			if res[i] == nil {
				continue // gone since its parent was listed
			}
			out[p] = res[i]
			if res[i].stat.NumChildren > 0 {
				dirs = append(dirs, p)
			}
		}
		next, err := tc.listChildren(ctx, s, dirs)
		if err != nil {
			return nil, err
		}
		level = next
	}
	return out, nil
}

// listChildren lists dirs with getChildren2, many in flight.
func (tc *TreeCache) listChildren(ctx context.Context, s *Session, dirs []string) ([]string, error) {
	kids := make([][]string, len(dirs))
	err := parallel(ctx, len(dirs), tc.cfg.Concurrency*8, func(i int) error {
		tc.count(func(st *CacheStats) { st.Children++ })
		ch, _, err := s.Children(ctx, dirs[i], false)
		if errors.Is(err, ErrNoNode) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tree cache: list %s: %w", dirs[i], err)
		}
		sort.Strings(ch)
		kids[i] = make([]string, len(ch))
		for k, c := range ch {
			kids[i][k] = joinPath(dirs[i], c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range kids {
		out = append(out, k...)
	}
	return out, nil
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// readData reads every path's data and stat (nil: no such node) in
// multiRead batches whose replies are expected under BatchBytes; a batch
// whose reply turns out over MaxBuffer is split in two and read again.
func (tc *TreeCache) readData(ctx context.Context, s *Session, paths []string) ([]*cached, error) {
	out := make([]*cached, len(paths))
	spans := ReadBatches(paths, tc.maxData, tc.cfg.BatchBytes, tc.cfg.MaxBatch)
	var mu sync.Mutex
	maxSeen := 0
	var read func(lo, hi int) error
	read = func(lo, hi int) error {
		ops := make([]ReadOp, hi-lo)
		for i := range ops {
			ops[i] = GetDataOp(paths[lo+i])
		}
		for {
			tc.count(func(st *CacheStats) { st.MultiReads++ })
			res, err := s.MultiRead(ctx, ops...)
			if errors.Is(err, ErrFrameTooLarge) {
				if hi-lo == 1 {
					return fmt.Errorf("tree cache: read %s: %w (raise MaxBuffer)", paths[lo], err)
				}
				tc.count(func(st *CacheStats) { st.Splits++ })
				mid := lo + (hi-lo)/2
				if err := read(lo, mid); err != nil {
					return err
				}
				return read(mid, hi)
			}
			if errors.Is(err, ErrConnectionLoss) && ctx.Err() == nil {
				continue // the session waits for its next connection
			}
			if err != nil {
				return fmt.Errorf("tree cache: read under %s: %w", tc.cfg.Root, err)
			}
			m := 0
			for i, r := range res {
				if r.Err != nil {
					if errors.Is(r.Err, ErrNoNode) {
						continue
					}
					return fmt.Errorf("tree cache: %w", r.Err)
				}
				out[lo+i] = &cached{data: r.Data, stat: r.Stat}
				m = max(m, len(r.Data))
			}
			mu.Lock()
			maxSeen = max(maxSeen, m)
			mu.Unlock()
			return nil
		}
	}
	err := parallel(ctx, len(spans), tc.cfg.Concurrency, func(i int) error { return read(spans[i][0], spans[i][1]) })
	if maxSeen > 0 {
		tc.maxData = max(maxSeen, 64)
	}
	return out, err
}

// parallel runs f(0..n-1), at most k at once; the first error stops the
// rest from starting.
func parallel(ctx context.Context, n, k int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, k)
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// confirm reads the paths events named during a full read and puts what
// the server holds now into fresh.
func (tc *TreeCache) confirm(ctx context.Context, s *Session, fresh map[string]*cached, dirty map[string]struct{}) error {
	if len(dirty) == 0 {
		return nil
	}
	paths := sortedKeys(dirty)
	res, err := tc.readData(ctx, s, paths)
	if err != nil {
		return err
	}
	for i, p := range paths {
		if res[i] == nil {
			delete(fresh, p)
		} else if old, ok := fresh[p]; !ok || newer(res[i].stat, old.stat) {
			fresh[p] = res[i]
		}
	}
	return nil
}

// newer says whether stat n is of a later version of the node than o: a
// node created again, or a later write.
func newer(n, o Stat) bool {
	if n.Czxid != o.Czxid {
		return n.Czxid > o.Czxid
	}
	return n.Mzxid > o.Mzxid || n.Pzxid > o.Pzxid
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// applyEvents reads the paths events named and applies what is newer
// than the mirror, as one batch.
func (tc *TreeCache) applyEvents(ctx context.Context, s *Session, dirty map[string]struct{}) error {
	paths := sortedKeys(dirty)
	res, err := tc.readData(ctx, s, paths)
	if err != nil {
		return err
	}
	var evs []CacheEvent
	tc.mu.Lock()
	for i, p := range paths {
		old, had := tc.nodes[p]
		n := res[i]
		switch {
		case n == nil && had:
			delete(tc.nodes, p)
			evs = append(evs, CacheEvent{Type: CacheRemoved, Path: p, Stat: old.stat})
		case n == nil:
		case !had:
			tc.nodes[p] = n
			evs = append(evs, CacheEvent{Type: CacheAdded, Path: p, Data: n.data, Stat: n.stat})
		case newer(n.stat, old.stat):
			tc.nodes[p] = n
			if n.stat.Czxid != old.stat.Czxid || n.stat.Mzxid != old.stat.Mzxid {
				evs = append(evs, CacheEvent{Type: CacheUpdated, Path: p, Data: n.data, Stat: n.stat})
			}
		}
	}
	tc.mu.Unlock()
	if len(evs) > 0 {
		tc.emit(ctx, CacheBatch{Events: evs})
	}
	return nil
}

// replace puts a complete read in place of the mirror and emits the exact
// difference (with Stale false) as one batch.
func (tc *TreeCache) replace(ctx context.Context, fresh map[string]*cached) {
	var evs []CacheEvent
	tc.mu.Lock()
	for p, o := range tc.nodes {
		if _, ok := fresh[p]; !ok {
			evs = append(evs, CacheEvent{Type: CacheRemoved, Path: p, Stat: o.stat})
		}
	}
	for p, n := range fresh {
		o, ok := tc.nodes[p]
		switch {
		case !ok:
			evs = append(evs, CacheEvent{Type: CacheAdded, Path: p, Data: n.data, Stat: n.stat})
		case n.stat.Czxid != o.stat.Czxid || n.stat.Mzxid != o.stat.Mzxid:
			evs = append(evs, CacheEvent{Type: CacheUpdated, Path: p, Data: n.data, Stat: n.stat})
		}
	}
	tc.nodes = fresh
	tc.stale = false
	tc.mu.Unlock()
	sort.Slice(evs, func(i, j int) bool { return evs[i].Path < evs[j].Path })
	tc.emit(ctx, CacheBatch{Events: evs})
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

func (tc *TreeCache) count(f func(*CacheStats)) {
	tc.statsMu.Lock()
	f(&tc.stats)
	tc.statsMu.Unlock()
}
