package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/discovery"
	"github.com/zkprom/zkprom/internal/shard"
	"github.com/zkprom/zkprom/internal/zk"
)

// shardsDir is the folder below --config-dir that holds one file_sd file
// per sharded job: DIR/shards/<job>.json, referenced from the bundle as
// ${ZKPROM_CONFIG_DIR}/shards/<job>.json.
const shardsDir = "shards"

// shardOptions are a sharded job's assignment settings.
func shardOptions(j bundle.ShardedJob) shard.Options {
	return shard.Options{Replicas: j.Replicas, Overlap: time.Duration(j.Overlap), JoinDelay: time.Duration(j.JoinDelay)}
}

// shardTargetKey is the assignment identity of a discovered target: job,
// address, metrics path and params (never the other labels).
func shardTargetKey(job string, l model.LabelSet) string {
	var params []string
	for k, v := range l {
		if strings.HasPrefix(string(k), model.ParamLabelPrefix) {
			params = append(params, string(k)+"="+string(v))
		}
	}
	sort.Strings(params)
	return shard.TargetKey(job, string(l[model.AddressLabel]), string(l[model.MetricsPathLabel]), strings.Join(params, "&"))
}

// shardJob is one sharded job on this agent.
type shardJob struct {
	cfg     bundle.ShardedJob
	sharder *shard.Share
	targets *jobTargets
	synced  bool // the discovery sent its first complete list
	cancel  context.CancelFunc
	gen     int
	render  shareRender
	last    []byte    // the share file as last written
	version uint64    // of the sharder when last rendered
	drawn   bool      // rendered at least once
	wrote   time.Time // when the share file was last written
}

// writeEvery is the least time between two writes of a job's share file:
// while targets keep coming, the file (of every target the agent owns)
// is rewritten at most this often, not on every change. Half the overlap
// at most, so that a target moving in is written well before its old
// owner lets it go.
func (j *shardJob) writeEvery() time.Duration {
	overlap := time.Duration(j.cfg.Overlap)
	if overlap <= 0 {
		overlap = 15 * time.Second // shard.Options' default
	}
	return min(shareWriteEvery, overlap/2)
}

const shareWriteEvery = time.Second

type groupUpdate struct {
	job     string
	gen     int
	changes []discovery.GroupChange
}

// shards runs the sharded jobs of the applied revision: it discovers
// their targets, follows the cluster's members and writes this agent's
// share of each job to DIR/shards/<job>.json.
type shards struct {
	cfg    shardsConfig
	d      shardsDeps
	logger *slog.Logger
	dir    string

	mgr     *discovery.Manager
	cfgData []byte // the last shards.yml read (good or bad)
	loaded  bool
	shards  *bundle.ShardedJobs // the last good shards.yml
	jobs    map[string]*shardJob
	updates chan groupUpdate
	members []shard.Member
	viewed  bool
	ignored map[string]string // member node (name and creation zxid) => reason, as last reported
	pending time.Time         // first change not yet written (for the rebalance duration)
	gen     int
}

// shardsConfig is what the shards need to know.
type shardsConfig struct {
	cluster     string
	shardMember string  // this agent's name in the assignment (its HA group or its member name)
	weight      float64 // this agent's share weight
	configDir   string  // DIR
	zooKeeper   zk.Config
	membersPath string // the cluster's members node
}

// shardsDeps is what the shards need from the agent and the fleet.
type shardsDeps struct {
	c        *zk.Client      // to follow the members
	relinked <-chan struct{} // DIR/current was re-pointed: read shards.yml again
	// setIgnored and setStatus hand what the shards see to the fleet's
	// status and metrics.
	setIgnored func(nodes map[string]string)
	setStatus  func(ctx context.Context, jobs map[string]configstore.ShardedJobStatus, members int)
	m          *fleetMetrics
}

func newShards(cfg shardsConfig, d shardsDeps, logger *slog.Logger) *shards {
	return &shards{cfg: cfg, d: d, logger: logger.With("part", "shards"), dir: filepath.Join(cfg.configDir, shardsDir),
		jobs: map[string]*shardJob{}, updates: make(chan groupUpdate, 16), ignored: map[string]string{}}
}

// run loops until ctx ends.
func (s *shards) run(ctx context.Context) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		s.logger.Error("cannot create the share directory; sharding is off", "dir", s.dir, "err", err)
		return
	}
	mgr, err := discovery.NewManager(ctx, discovery.Options{Logger: s.logger})
	if err != nil {
		s.logger.Error("cannot start discovery; sharding is off", "err", err)
		return
	}
	s.mgr = mgr
	defer mgr.Close()
	views := zk.WatchGroup(ctx, s.d.c, s.cfg.membersPath, s.logger).Views()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// The apply path says when DIR/current changes; the slow re-read
	// only catches a link changed behind the agent's back.
	reread := time.NewTicker(shardsRecheck)
	defer reread.Stop()
	s.loadConfig(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case v, ok := <-views:
			if !ok {
				views = nil // ctx ended
				continue
			}
			s.setView(v)
		case u := <-s.updates:
			s.applyUpdate(u)
		case <-timer.C:
		case <-s.d.relinked:
			if !s.loadConfig(ctx) {
				continue
			}
		case <-reread.C:
			if !s.loadConfig(ctx) {
				continue
			}
		}
		next := s.advance(ctx, time.Now())
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
	}
}

// shardsRecheck is how often the shards read shards.yml of DIR/current
// without being told that it changed.
const shardsRecheck = 30 * time.Second

// setView takes the cluster's members: each counts as its shard member
// (its HA group or its name) with its weight. This agent always counts
// itself: its own node may be missing for a moment after a session
// expiry, and it keeps its share meanwhile.
func (s *shards) setView(v zk.GroupView) {
	if v.Stale && s.viewed {
		return // ZooKeeper away: the view is the last one; change nothing
	}
	byName := map[string]float64{}
	ignored := map[string]string{}
	for _, m := range v.Members {
		st, err := configstore.ParseMember(s.cfg.cluster, m.Name, m.Data, &m.Stat)
		if err != nil {
			key := fmt.Sprintf("%s@%d", m.Name, m.Stat.Czxid)
			var me *configstore.MemberError
			reason := "bad_data"
			if errors.As(err, &me) {
				reason = me.Reason
			}
			ignored[key] = reason
			if _, seen := s.ignored[key]; !seen {
				s.logger.Warn("ignoring a node under members that is not a live agent's", "node", zk.Join(s.cfg.membersPath, m.Name), "reason", reason, "err", err)
			}
			continue
		}
		name, w := m.Name, 1.0
		if st.Fleet != nil {
			name, w = st.Fleet.ShardMember, st.Fleet.Weight
		}
		byName[name] = max(byName[name], w)
	}
	s.ignored = ignored
	s.d.setIgnored(ignored)
	byName[s.cfg.shardMember] = max(byName[s.cfg.shardMember], s.cfg.weight)
	members := make([]shard.Member, 0, len(byName))
	for n, w := range byName {
		members = append(members, shard.Member{Name: n, Weight: w})
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	s.viewed = true
	if reflect.DeepEqual(members, s.members) {
		return
	}
	s.members = members
	s.markPending()
	now := time.Now()
	for _, j := range s.jobs {
		j.sharder.SetMembers(members, now)
	}
}

func (s *shards) markPending() {
	if s.pending.IsZero() {
		s.pending = time.Now()
	}
}

func (s *shards) applyUpdate(u groupUpdate) {
	j := s.jobs[u.job]
	if j == nil || j.gen != u.gen {
		return
	}
	if !j.synced {
		// The first changes after (re)subscribing are the complete list.
		j.targets = newJobTargets(j.cfg.Name)
		j.targets.apply(u.changes)
		j.synced = true
		j.render = shareRender{}
		s.markPending()
		j.sharder.SetTargets(j.targets.all(), time.Now())
		return
	}
	set, removed := j.targets.apply(u.changes)
	if len(set) == 0 && len(removed) == 0 {
		return
	}
	for _, t := range set {
		j.render.forget(t.Key)
	}
	j.render.forget(removed...)
	s.markPending()
	j.sharder.Update(set, removed)
}

// advance lets every job's sharder catch up and writes the shares that
// changed; it returns when to look again.
func (s *shards) advance(ctx context.Context, now time.Time) time.Time {
	var next time.Time
	wrote := false
	for name, j := range s.jobs {
		j.sharder.Advance(now)
		if n := j.sharder.Next(); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
		if !j.synced {
			continue // keep the last share until discovery has a complete list
		}
		if j.drawn && j.sharder.Version() == j.version {
			continue // the share is what was rendered last
		}
		if due := j.wrote.Add(j.writeEvery()); now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue // written a moment ago: the next write takes this change too
		}
		j.version, j.drawn = j.sharder.Version(), true
		data := j.render.render(j.sharder.Owned())
		if bytes.Equal(data, j.last) {
			continue
		}
		if err := writeAtomic(s.filePath(name), data); err != nil {
			s.logger.Error("cannot write the share file; keeping the last one", "job", name, "err", err)
			s.d.m.shardWriteErrors.WithLabelValues(name).Inc()
			continue
		}
		j.last, j.wrote = data, now
		wrote = true
		s.d.m.shardWrites.WithLabelValues(name).Inc()
	}
	if wrote && !s.pending.IsZero() {
		s.d.m.rebalance.Observe(time.Since(s.pending).Seconds())
	}
	if wrote || len(s.jobs) == 0 {
		s.pending = time.Time{}
	}
	jobs, members := s.status()
	s.d.setStatus(ctx, jobs, members)
	return next
}

func (s *shards) status() (map[string]configstore.ShardedJobStatus, int) {
	out := map[string]configstore.ShardedJobStatus{}
	for name, j := range s.jobs {
		out[name] = configstore.ShardedJobStatus{
			Discovered: j.sharder.Targets(), Assigned: j.sharder.Assigned(),
			Owned: j.sharder.OwnedCount(), Moves: j.sharder.Moves(),
		}
	}
	return out, len(s.members)
}

func (s *shards) filePath(job string) string { return filepath.Join(s.dir, job+".json") }

// loadConfig reads shards.yml of the applied revision (DIR/current) and
// starts, restarts or stops jobs when it changed (then it returns true).
func (s *shards) loadConfig(ctx context.Context) bool {
	data, err := os.ReadFile(filepath.Join(s.cfg.configDir, currentLink, bundle.ShardsFile))
	if errors.Is(err, fs.ErrNotExist) {
		data, err = nil, nil
	}
	if err != nil {
		s.logger.Warn("cannot read shards.yml of the applied revision; keeping the running jobs", "err", err)
		return false
	}
	if bytes.Equal(data, s.cfgData) && (s.loaded || data == nil) {
		return false // unchanged (a bad file is reported once)
	}
	s.loaded = true
	cfg := &bundle.ShardedJobs{}
	if data != nil {
		cfg, err = bundle.ParseShardedJobs(data, s.cfg.zooKeeper)
		if err != nil {
			s.logger.Error("bad shards.yml in the applied revision; keeping the running jobs", "err", err)
			s.cfgData = data
			return false
		}
	} else {
		cfg.ZooKeeper = &s.cfg.zooKeeper
	}
	s.cfgData, s.shards = data, cfg
	if len(cfg.Jobs) > 0 {
		s.mgr.ApplyConfig(cfg.DiscoveryConfig())
	} else {
		s.mgr.ApplyConfig(&discovery.Config{})
	}
	want := map[string]bundle.ShardedJob{}
	for _, jc := range cfg.Jobs {
		want[jc.Name] = jc
	}
	for name, j := range s.jobs {
		if _, ok := want[name]; !ok {
			j.cancel()
			delete(s.jobs, name)
			if err := os.Remove(s.filePath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.logger.Warn("cannot remove the share file of a removed job", "job", name, "err", err)
			}
		}
	}
	now := time.Now()
	for name, jc := range want {
		j := s.jobs[name]
		if j != nil && reflect.DeepEqual(j.cfg, jc) {
			continue
		}
		if j != nil {
			j.cancel()
			if shardOptions(j.cfg) != shardOptions(jc) {
				j = nil // new sharding options: a new sharder
			}
		}
		if j == nil {
			j = &shardJob{sharder: shard.NewShare(s.cfg.shardMember, shardOptions(jc)), targets: newJobTargets(jc.Name)}
			if s.viewed {
				j.sharder.SetMembers(s.members, now)
			}
			// The share file Prometheus reads exists from the start.
			if _, err := os.Stat(s.filePath(name)); errors.Is(err, fs.ErrNotExist) {
				writeAtomic(s.filePath(name), []byte("[]\n"))
			}
		}
		j.cfg = jc
		s.gen++
		j.gen = s.gen
		j.synced = false
		jctx, cancel := context.WithCancel(ctx)
		j.cancel = cancel
		s.jobs[name] = j
		ch, err := s.mgr.Subscribe(jctx, name)
		if err != nil {
			s.logger.Error("cannot follow the job's discovery", "job", name, "err", err)
			continue
		}
		go func(name string, gen int) {
			for changes := range ch {
				select {
				case s.updates <- groupUpdate{job: name, gen: gen, changes: changes}:
				case <-jctx.Done():
					return
				}
			}
		}(name, j.gen)
	}
	s.logger.Info("sharded jobs", "jobs", len(cfg.Jobs))
	return true
}
