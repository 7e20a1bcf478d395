package agent

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/zkprom/zkprom/internal/targetgroup"
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

// renderShareFile is the file_sd content for a share: one group per
// target, sorted by key, "[]" when empty.
func renderShareFile(targets []shard.Target) []byte {
	out := make([]targetgroup.Group, 0, len(targets))
	for _, t := range targets {
		e := targetgroup.Group{Labels: map[string]string{}}
		for k, v := range t.Labels {
			if k == model.AddressLabel {
				e.Targets = []string{v}
				continue
			}
			e.Labels[k] = v
		}
		out = append(out, e)
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	return append(b, '\n')
}

// shardJob is one sharded job on this agent.
type shardJob struct {
	cfg     bundle.ShardedJob
	sharder *shard.Share
	groups  map[string][]model.LabelSet
	synced  bool // the discovery sent its first complete list
	cancel  context.CancelFunc
	gen     int
	last    []byte
	lastKey string
}

type groupUpdate struct {
	job    string
	gen    int
	groups []discovery.Group
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
		j.groups = map[string][]model.LabelSet{} // the first list after (re)subscribing is complete
		j.synced = true
	}
	for _, g := range u.groups {
		if len(g.Targets) == 0 {
			delete(j.groups, g.Source)
		} else {
			j.groups[g.Source] = g.Targets
		}
	}
	seen := map[string]bool{}
	var targets []shard.Target
	for src, ls := range j.groups {
		for _, l := range ls {
			key := shardTargetKey(j.cfg.Name, l)
			if seen[key] {
				continue
			}
			seen[key] = true
			labels := make(map[string]string, len(l))
			for k, v := range l {
				labels[string(k)] = string(v)
			}
			targets = append(targets, shard.Target{Key: key, Source: src, Labels: labels})
		}
	}
	s.markPending()
	j.sharder.SetTargets(targets, time.Now())
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
		data := renderShareFile(j.sharder.Owned())
		if bytes.Equal(data, j.last) {
			continue
		}
		if err := writeAtomic(s.filePath(name), data); err != nil {
			s.logger.Error("cannot write the share file; keeping the last one", "job", name, "err", err)
			s.d.m.shardWriteErrors.WithLabelValues(name).Inc()
			continue
		}
		j.last = data
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
			Owned: len(j.sharder.Owned()), Moves: j.sharder.Moves(),
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
			j = &shardJob{sharder: shard.NewShare(s.cfg.shardMember, shardOptions(jc)), groups: map[string][]model.LabelSet{}}
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
			for groups := range ch {
				select {
				case s.updates <- groupUpdate{job: name, gen: gen, groups: groups}:
				case <-jctx.Done():
					return
				}
			}
		}(name, j.gen)
	}
	s.logger.Info("sharded jobs", "jobs", len(cfg.Jobs))
	return true
}
