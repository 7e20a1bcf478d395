package discovery

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
)

// job is one discovery job: the members found below its paths, turned
// into targets, kept in groups, rendered as a file_sd list. Work per
// change is proportional to the change: only the touched groups are
// rendered again.
type job struct {
	cfg    JobConfig
	format Format
	merger Merger
	props  propsFormat // nil unless the format reads a properties znode
	rules  rules
	logger *slog.Logger

	mu      sync.Mutex
	paths   map[string]*pathState      // znodes that produced members, but the plain ones (see plain)
	nPlain  int                        // plain znodes
	keyed   map[string]map[string]bool // de-duplication key -> paths
	groups  map[string]*group          // by source
	srcOf   map[string]string          // target id -> source, unless the source is the id's parent (see sourceOf)
	invalid map[string]string          // path -> reason, for znodes skipped now
	refused refusals                   // the first few of them per reason, with why
	// counters and state read by the collector
	invalidTotal map[string]float64 // by reason
	nTargets     int
	labelBytes   int64 // of the targets held
	synced       bool
	stale        bool
	started      time.Time
	syncDuration time.Duration
	lastUpdate   time.Time
	gen          uint64
	srcs         []string // the groups' sources, sorted; nil when groups came or went since
	out          *list
	outGen       uint64
	changed      chan struct{} // signalled when the output changes (cap 1)
	subs         []*subscriber
	syncedCh     chan struct{}
	// props formats: the scheme found beside each path, the paths whose
	// properties were not read yet, and whether the tree has synced (the
	// job is synced when both are done).
	schemes    map[string]string
	propsRoots []string
	propsWait  int
	treeSynced bool
}

type pathState struct {
	ids   []string // targets this znode produced (unkeyed members)
	keyed []Member // members with a Key
}

// group holds each target's file_sd entry once. Entries are immutable,
// and so is a built entries slice: lists handed out point at them.
type group struct {
	targets map[string][]byte // target id -> rendered entry
	ids     []string          // the ids, sorted; nil when targets were added or dropped since
	entries [][]byte          // the entries in id order; nil when any changed since
	size    int64             // of the entries
	dirty   bool
}

func newJob(cfg JobConfig, logger *slog.Logger) *job {
	f := Formats()[cfg.Format]
	cfg.Limits.fill() // validated configs have them filled; tests build jobs directly
	j := &job{
		cfg:          cfg,
		format:       f,
		rules:        newRules(cfg),
		logger:       logger.With("job", cfg.Name, "format", cfg.Format),
		paths:        map[string]*pathState{},
		keyed:        map[string]map[string]bool{},
		groups:       map[string]*group{},
		srcOf:        map[string]string{},
		invalid:      map[string]string{},
		invalidTotal: map[string]float64{},
		started:      time.Now(),
		changed:      make(chan struct{}, 1),
		syncedCh:     make(chan struct{}),
	}
	j.merger, _ = f.(Merger)
	j.props, _ = f.(propsFormat)
	if j.props != nil {
		j.schemes = map[string]string{}
		for _, p := range cfg.Paths {
			if !slices.Contains(j.propsRoots, p) {
				j.propsRoots = append(j.propsRoots, p)
			}
		}
		j.propsWait = len(j.propsRoots)
	}
	return j
}

// cacheOptions is what the job's tree cache mirrors. The job keeps its
// own parsed form of every member, so the cache forgets the data, except
// for formats whose members are parsed again when their properties change.
func (j *job) cacheOptions() zk.CacheOptions {
	need := j.format.Tree()
	return zk.CacheOptions{MaxDepth: need.MaxDepth, Data: need.Data, ForgetData: j.props == nil, Logger: j.logger}
}

// propsUpdate is a read of the properties znode of one of the job's paths.
type propsUpdate struct {
	root   string
	scheme string
}

// run mirrors the job's paths through a tree cache until ctx ends.
func (j *job) run(ctx context.Context, c *zk.Client) {
	tc := zk.NewTreeCache(c, j.cfg.Paths, j.cacheOptions())
	done := make(chan error, 1)
	go func() { done <- tc.Run(ctx) }()
	synced := tc.Synced()
	events := tc.Events()
	var propsCh chan propsUpdate
	if j.props != nil {
		propsCh = make(chan propsUpdate)
		for _, root := range j.propsRoots {
			go j.watchProps(ctx, c, root, propsCh)
		}
	}
	for {
		select {
		case b, ok := <-events:
			if !ok {
				<-done
				return
			}
			j.apply(b)
		case u := <-propsCh:
			if j.setScheme(tc, u) {
				j.markSynced()
			}
		case <-synced:
			synced = nil
			// The first complete read was emitted before Synced closed:
			// take it before saying we are synced.
		drain:
			for {
				select {
				case b, ok := <-events:
					if !ok {
						break drain
					}
					j.apply(b)
				default:
					break drain
				}
			}
			j.mu.Lock()
			j.treeSynced = true
			ready := j.propsWait == 0
			j.mu.Unlock()
			if ready {
				j.markSynced()
			}
		}
	}
}

// watchProps reads the properties znode of root, and again whenever it
// changes, until ctx ends. A read that fails is retried; until one
// succeeds the members have no scheme of their own.
func (j *job) watchProps(ctx context.Context, c *zk.Client, root string, out chan<- propsUpdate) {
	p := j.props.PropsPath(root)
	logger := j.logger.With("props", p)
	sent, failing := false, false
	backoff := 500 * time.Millisecond
	send := func(scheme string) bool {
		select {
		case out <- propsUpdate{root: root, scheme: scheme}:
			sent = true
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		data, _, w, err := c.GetW(ctx, p)
		if errors.Is(err, zk.ErrNoNode) {
			var exists bool
			exists, _, w, err = c.ExistsW(ctx, p)
			if err == nil && exists {
				continue // created between the two reads
			}
			data = nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				logger.Warn("cannot read the cluster properties: keeping the scheme known so far (none: the configured one or http) and retrying", "err", err)
				failing = true
			}
			if !sent && !send("") {
				return
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		if failing {
			logger.Info("cluster properties readable again")
			failing = false
		}
		backoff = 500 * time.Millisecond
		scheme, perr := j.props.ParseProps(data)
		if perr != nil {
			logger.Warn("cluster properties do not parse: using http (or the configured metrics.scheme); fix the znode", "err", perr)
		}
		if !send(scheme) {
			return
		}
		select {
		case <-w: // changed, deleted, created, or lost with the session: read again
		case <-ctx.Done():
			return
		}
	}
}

// setScheme takes a read of root's properties: when the scheme changes,
// the members below root are parsed again. It reports whether the job
// has just become ready to say it is synced.
func (j *job) setScheme(tc *zk.TreeCache, u propsUpdate) bool {
	j.mu.Lock()
	old, known := j.schemes[u.root]
	j.schemes[u.root] = u.scheme
	if !known {
		j.propsWait--
	}
	ready := !known && j.propsWait == 0 && j.treeSynced
	var evs []zk.CacheEvent
	if old != u.scheme {
		j.logger.Info("scheme from the cluster properties", "root", u.root, "scheme", u.scheme)
		j.eachMember(func(p string) {
			if under(p, u.root) {
				if n, ok := tc.Get(p); ok {
					evs = append(evs, zk.CacheEvent{Type: zk.Updated, Path: p, Data: n.Data, Stat: n.Stat})
				}
			}
		})
	}
	stale := j.stale
	j.mu.Unlock()
	if len(evs) > 0 {
		sort.Slice(evs, func(a, b int) bool { return evs[a].Path < evs[b].Path })
		j.apply(zk.CacheBatch{Events: evs, Stale: stale})
	}
	return ready
}

func under(p, root string) bool {
	return root == "/" || strings.HasPrefix(p, root+"/")
}

// schemeOf is the scheme the properties give the members at path p
// (j.mu held).
func (j *job) schemeOf(p string) string {
	best, scheme := "", ""
	for root, s := range j.schemes {
		if under(p, root) && len(root) > len(best) {
			best, scheme = root, s
		}
	}
	return scheme
}

func (j *job) markSynced() {
	j.mu.Lock()
	if !j.synced {
		j.synced = true
		j.syncDuration = time.Since(j.started)
		j.gen++
		j.lastUpdate = time.Now()
		close(j.syncedCh)
		j.notifySubs(nil)
		j.logger.Info("discovery synced", "targets", j.nTargets, "invalid", len(j.invalid), "duration", j.syncDuration)
	}
	j.mu.Unlock()
	j.signal()
}

func (j *job) signal() {
	select {
	case j.changed <- struct{}{}:
	default:
	}
}

// apply takes one batch of tree changes.
func (j *job) apply(b zk.CacheBatch) {
	j.mu.Lock()
	if j.stale != b.Stale {
		j.stale = b.Stale
		j.logger.Info("discovery staleness changed", "stale", b.Stale)
	}
	touchedKeys := map[string]bool{}
	for i, ev := range b.Events {
		j.remove(ev.Path, touchedKeys)
		if ev.Type == zk.Removed {
			j.clearInvalid(ev.Path)
		} else {
			j.add(ev, touchedKeys)
		}
		// Parsed: the data may go. It is a slice of the reply it came in
		// (of up to 1,000 nodes): a first sync's replies are freed as the
		// batch is taken, not all held until its end.
		b.Events[i].Data = nil
	}
	for k := range touchedKeys {
		j.rebuildKey(k)
	}
	changed := false
	var dirtySrcs []string
	for src, g := range j.groups {
		if !g.dirty {
			continue
		}
		changed = true
		dirtySrcs = append(dirtySrcs, src)
		if len(g.targets) == 0 {
			delete(j.groups, src) // a vanished group: gone from the list
			j.srcs = nil
			continue
		}
		g.dirty = false
	}
	if changed {
		j.gen++
		j.lastUpdate = time.Now()
		j.notifySubs(dirtySrcs)
	}
	j.mu.Unlock()
	if changed {
		j.signal()
	}
}

// sortedIDs returns the group's target ids in order.
func (g *group) sortedIDs() []string {
	if g.ids == nil {
		g.ids = make([]string, 0, len(g.targets))
		for id := range g.targets {
			g.ids = append(g.ids, id)
		}
		sort.Strings(g.ids)
	}
	return g.ids
}

// plain says whether znode p is a plain member: one target, its id the
// path, in the group of its parent, as almost every member is. Those are
// known by their target alone, not held in paths (100,000 of them would
// be ~3 MB of map).
func (j *job) plain(p string) bool {
	if _, ok := j.srcOf[p]; ok {
		return false
	}
	g := j.groups[zk.Parent(p)]
	if g == nil {
		return false
	}
	_, ok := g.targets[p]
	return ok
}

// members counts the znodes that produced members.
func (j *job) members() int { return len(j.paths) + j.nPlain }

// eachMember calls f with every znode that produced members.
func (j *job) eachMember(f func(p string)) {
	for p := range j.paths {
		f(p)
	}
	for src, g := range j.groups {
		for id := range g.targets {
			// Plain ids are paths of the group's children, not in srcOf;
			// a znode's several targets have a NUL in theirs, keyed ones
			// "key:".
			if _, moved := j.srcOf[id]; !moved && strings.HasPrefix(id, "/") && !strings.Contains(id, "\x00") && zk.Parent(id) == src {
				f(id)
			}
		}
	}
}

// znodeTargets returns the ids of the targets znode p produced, and
// whether it produced members.
func (j *job) znodeTargets(p string) ([]string, bool) {
	if ps, ok := j.paths[p]; ok {
		ids := slices.Clone(ps.ids)
		for _, m := range ps.keyed {
			ids = append(ids, "key:"+m.Key)
		}
		return ids, true
	}
	if j.plain(p) {
		return []string{p}, true
	}
	return nil, false
}

// remove drops whatever path contributed.
func (j *job) remove(path string, touchedKeys map[string]bool) {
	ps, ok := j.paths[path]
	if !ok {
		if j.plain(path) {
			j.dropTarget(path)
			j.nPlain--
		}
		return
	}
	delete(j.paths, path)
	for _, id := range ps.ids {
		j.dropTarget(id)
	}
	for _, m := range ps.keyed {
		if set := j.keyed[m.Key]; set != nil {
			delete(set, path)
			if len(set) == 0 {
				delete(j.keyed, m.Key)
			}
		}
		touchedKeys[m.Key] = true
	}
}

func (j *job) add(ev zk.CacheEvent, touchedKeys map[string]bool) {
	parent := zk.Parent(ev.Path)
	n := Node{Path: ev.Path, Name: zk.Base(ev.Path), Parent: zk.Base(parent), Data: ev.Data}
	ms, err := j.format.Parse(n)
	if err != nil {
		j.markInvalid(ev.Path, err)
		return
	}
	if j.props != nil {
		if s := j.schemeOf(ev.Path); s != "" {
			for i := range ms {
				if ms[i].Defaults.Scheme == "" {
					ms[i].Defaults.Scheme = s
				}
			}
		}
	}
	if len(ms) == 0 {
		j.clearInvalid(ev.Path)
		return
	}
	lim := j.cfg.Limits
	if len(ms) > lim.TargetsPerZnode {
		j.markInvalid(ev.Path, invalid(ReasonTooLarge, "%d targets in one znode (at most %d: limits.targets_per_znode)", len(ms), lim.TargetsPerZnode))
		return
	}
	ps := &pathState{}
	var built []struct {
		id, src string
		entry   []byte
	}
	znodeBytes := 0
	for i, m := range ms {
		if m.Key != "" {
			// Kept until merged: its labels count against this
			// znode's bounds now (the merged target's, when built).
			if l, err := j.rules.target(m); err == nil {
				n := len(render(l))
				znodeBytes += n
				if n > lim.LabelBytesPerTarget || znodeBytes > lim.LabelBytesPerZnode {
					j.markInvalid(ev.Path, invalid(ReasonTooLarge, "a member of %d bytes (limits.label_bytes_per_target, label_bytes_per_znode)", n))
					return
				}
			}
			ps.keyed = append(ps.keyed, m)
			continue
		}
		if !j.rules.keep(m) {
			continue
		}
		l, err := j.rules.target(m)
		if err != nil {
			j.markInvalid(ev.Path, err)
			return
		}
		entry := render(l)
		znodeBytes += len(entry)
		switch {
		case len(entry) > lim.LabelBytesPerTarget:
			j.markInvalid(ev.Path, invalid(ReasonTooLarge, "a target of %d bytes (at most %d: limits.label_bytes_per_target)", len(entry), lim.LabelBytesPerTarget))
			return
		case znodeBytes > lim.LabelBytesPerZnode:
			j.markInvalid(ev.Path, invalid(ReasonTooLarge, "targets of more than %d bytes in one znode (limits.label_bytes_per_znode)", lim.LabelBytesPerZnode))
			return
		}
		// A NUL never occurs in a znode path: ids of one znode's targets
		// cannot collide with another znode's, whatever its name.
		id := ev.Path
		if len(ms) > 1 {
			id += "\x00" + strconv.Itoa(i)
		}
		src := m.Group
		if src == "" {
			src = parent
		}
		built = append(built, struct {
			id, src string
			entry   []byte
		}{id, src, entry})
	}
	// The job's totals, counting what this znode held before as gone.
	oldTargets, oldBytes := j.pathTotals(ev.Path)
	if err := j.overTotals(len(built)-oldTargets, int64(znodeBytes)-oldBytes); err != nil {
		j.markInvalid(ev.Path, err)
		return
	}
	j.clearInvalid(ev.Path)
	for _, b := range built {
		j.putTarget(b.id, b.src, b.entry)
		ps.ids = append(ps.ids, b.id)
	}
	for _, m := range ps.keyed {
		set := j.keyed[m.Key]
		if set == nil {
			set = map[string]bool{}
			j.keyed[m.Key] = set
		}
		set[ev.Path] = true
		touchedKeys[m.Key] = true
	}
	if len(ps.keyed) == 0 && len(ps.ids) == 1 && j.plain(ev.Path) {
		j.nPlain++ // the common case, held without a pathState
		return
	}
	j.paths[ev.Path] = ps
}

// rebuildKey folds every member with one de-duplication key into one
// target.
func (j *job) rebuildKey(key string) {
	id := "key:" + key
	j.dropTarget(id)
	set := j.keyed[key]
	if len(set) == 0 {
		return
	}
	paths := make([]string, 0, len(set))
	for p := range set {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var ms []Member
	for _, p := range paths {
		for _, m := range j.paths[p].keyed {
			if m.Key == key {
				ms = append(ms, m)
			}
		}
	}
	m := ms[0]
	if j.merger != nil && len(ms) > 1 {
		m = j.merger.Merge(ms)
	}
	if !j.rules.keep(m) {
		return
	}
	l, err := j.rules.target(m)
	if err != nil {
		j.markInvalid(paths[0], err)
		return
	}
	// The merged target counts against the limits like any other.
	entry, lim := render(l), j.cfg.Limits
	err = j.overTotals(1, int64(len(entry)))
	if len(entry) > lim.LabelBytesPerTarget {
		err = invalid(ReasonTooLarge, "the target merged from %d znodes takes %d bytes (at most %d: limits.label_bytes_per_target)", len(paths), len(entry), lim.LabelBytesPerTarget)
	}
	if err != nil {
		j.markInvalid(paths[0], err)
		return
	}
	src := m.Group
	if src == "" {
		src = zk.Parent(paths[0])
	}
	j.putTarget(id, src, entry)
}

func (j *job) putTarget(id, src string, entry []byte) {
	g := j.groups[src]
	if g == nil {
		g = &group{targets: map[string][]byte{}}
		j.groups[src] = g
		j.srcs = nil
	}
	if old, ok := g.targets[id]; !ok {
		j.nTargets++
		g.ids = nil
	} else {
		j.labelBytes -= int64(len(old))
	}
	j.labelBytes += int64(len(entry))
	g.targets[id] = entry
	g.entries = nil
	g.dirty = true
	if src != zk.Parent(id) {
		j.srcOf[id] = src
	} else {
		delete(j.srcOf, id)
	}
}

// sourceOf returns the group of target id. Most targets are in the group
// of their znode's parent, and srcOf leaves those out: it would otherwise
// hold an entry per target (100,000 of them are ~5 MB).
func (j *job) sourceOf(id string) (string, *group, bool) {
	src, ok := j.srcOf[id]
	if !ok {
		src = zk.Parent(id)
	}
	g := j.groups[src]
	if g == nil {
		return "", nil, false
	}
	if _, ok := g.targets[id]; !ok {
		return "", nil, false
	}
	return src, g, true
}

func (j *job) dropTarget(id string) {
	_, g, ok := j.sourceOf(id)
	if !ok {
		return
	}
	delete(j.srcOf, id)
	j.labelBytes -= int64(len(g.targets[id]))
	delete(g.targets, id)
	g.ids, g.entries = nil, nil
	j.nTargets--
	g.dirty = true
}

// overTotals says whether adding targets and bytes (either may be
// negative) would take the job past its totals.
func (j *job) overTotals(targets int, bytes int64) error {
	lim := j.cfg.Limits
	if j.nTargets+targets > lim.TargetsPerJob || j.labelBytes+bytes > lim.LabelBytesPerJob {
		return invalid(ReasonTooLarge, "the job would hold more than %d targets or %d bytes of them (limits.targets_per_job, label_bytes_per_job)", lim.TargetsPerJob, lim.LabelBytesPerJob)
	}
	return nil
}

// pathTotals returns the targets and bytes path holds now.
func (j *job) pathTotals(path string) (int, int64) {
	var ids []string
	if ps, ok := j.paths[path]; ok {
		ids = ps.ids
	} else if j.plain(path) {
		ids = []string{path}
	}
	n, b := 0, int64(0)
	for _, id := range ids {
		if _, g, ok := j.sourceOf(id); ok {
			n++
			b += int64(len(g.targets[id]))
		}
	}
	return n, b
}

func (j *job) markInvalid(path string, err error) {
	reason := ReasonOf(err)
	j.invalidTotal[reason]++
	if prev, ok := j.invalid[path]; !ok || prev != reason {
		j.logger.Warn("skipping member that does not parse", "path", path, "reason", reason, "err", err)
	}
	j.invalid[path] = reason
	j.refused.note(path, reason, err, time.Now())
}

// clearInvalid forgets that path was refused (it parses now, or is gone).
func (j *job) clearInvalid(path string) {
	if _, ok := j.invalid[path]; ok {
		delete(j.invalid, path)
		j.refused.forget(path)
	}
}

// outputGen returns the job's current file_sd list, its generation, and
// whether the first complete sync is done. Only the groups that changed
// since the last list are gathered again.
func (j *job) outputGen() (*list, uint64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.synced {
		return nil, 0, false
	}
	if j.out != nil && j.outGen == j.gen {
		return j.out, j.gen, true
	}
	if j.srcs == nil {
		j.srcs = make([]string, 0, len(j.groups))
		for s := range j.groups {
			j.srcs = append(j.srcs, s)
		}
		sort.Strings(j.srcs)
	}
	l := &list{groups: make([][][]byte, 0, len(j.srcs)), size: 2}
	n := 0
	for _, s := range j.srcs {
		g := j.groups[s]
		if g.entries == nil {
			// A new slice, never one handed out before: lists are immutable.
			g.entries = make([][]byte, 0, len(g.targets))
			g.size = 0
			for _, id := range g.sortedIDs() {
				e := g.targets[id]
				g.entries = append(g.entries, e)
				g.size += int64(len(e))
			}
		}
		l.groups = append(l.groups, g.entries)
		l.size += g.size
		n += len(g.entries)
	}
	if n > 1 {
		l.size += int64(n - 1) // the commas
	}
	j.out, j.outGen = l, j.gen
	return l, j.gen, true
}
