package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zk"
)

// FleetConfig configures the agent's part in the fleet: sharded jobs
// (declared by the bundle's shards.yml) and HA leadership.
type FleetConfig struct {
	// ZooKeeper is the ensemble sharded jobs read unless shards.yml names
	// one (the agent's own ensemble).
	ZooKeeper zk.Config
	// Weight is this member's share weight (default 1; 2 takes twice the
	// targets).
	Weight float64
	// HAGroup puts the agent in an HA group of the cluster: the group's
	// members scrape the same share, and one of them, the leader, runs
	// the leader overlay (leader.yml). Empty: no HA group.
	HAGroup string
	// DisconnectGrace is how long a disconnected leader stays leader
	// (default a third of the session timeout).
	DisconnectGrace time.Duration
	// AdvertiseURL is the URL of this agent's Prometheus as the other
	// members of its HA group reach it (default: the agent's own
	// Prometheus URL).
	AdvertiseURL string
	// TakeoverCheckTimeout bounds asking the previous leader's Prometheus
	// whether it still runs the overlay (default 1s); no answer within it
	// counts as not running.
	TakeoverCheckTimeout time.Duration
	// UntrustedRecordWait bounds how long an elected member waits on a
	// leader record anyone could have written (an open cluster) before it
	// takes over (default 30s).
	UntrustedRecordWait time.Duration
}

// fleet ties the shards and the HA candidacy to the agent: it wakes the
// agent's loop when the wanted variant changes and puts the fleet's part
// into the agent's status, through the funcs it was handed.
type fleet struct {
	cluster, member string
	disk            disk                                               // the agent's (is the overlay live?)
	status          func() configstore.Status                          // the agent's status
	setStatus       func(context.Context, func(s *configstore.Status)) // changes it
	cfg             FleetConfig
	logger          *slog.Logger
	m               *fleetMetrics

	shardMember string
	weight      float64
	sh          *shards
	ha          *ha // nil without an HA group
	wake        chan struct{}

	mu      sync.Mutex
	jobs    map[string]configstore.ShardedJobStatus
	members int
	ignored map[string]int // member nodes ignored now, by reason
}

// setIgnored records the member nodes the shards ignore (key => reason).
func (f *fleet) setIgnored(nodes map[string]string) {
	by := map[string]int{}
	for _, r := range nodes {
		by[r]++
	}
	f.mu.Lock()
	f.ignored = by
	f.mu.Unlock()
}

func newFleet(a *Agent, reg prometheus.Registerer) (*fleet, error) {
	cfg := a.cfg.Fleet
	if cfg.Weight < 0 || cfg.Weight > configstore.MaxWeight || math.IsNaN(cfg.Weight) {
		return nil, fmt.Errorf("agent: shard weight %v: want a positive number up to %d (--shard.weight)", cfg.Weight, configstore.MaxWeight)
	}
	if cfg.Weight == 0 {
		cfg.Weight = DefaultShardWeight
	}
	if cfg.HAGroup != "" {
		if err := configstore.ValidateName("HA group", cfg.HAGroup); err != nil {
			return nil, fmt.Errorf("agent: %w (--ha.group)", err)
		}
	}
	if cfg.AdvertiseURL == "" {
		cfg.AdvertiseURL = a.prom.URL()
	} else if pc, err := prom.New(prom.Config{URL: cfg.AdvertiseURL}); err != nil {
		return nil, fmt.Errorf("agent: %w (--ha.advertise-url)", err)
	} else {
		cfg.AdvertiseURL = pc.URL() // recorded in ZooKeeper: without credentials
	}
	if cfg.TakeoverCheckTimeout <= 0 {
		cfg.TakeoverCheckTimeout = DefaultTakeoverCheckTimeout
	}
	if cfg.UntrustedRecordWait <= 0 {
		cfg.UntrustedRecordWait = DefaultUntrustedRecordWait
	}
	if cfg.ZooKeeper.Servers == "" && a.c != nil {
		// Without the agent's full settings (auth, TLS): the same servers.
		cs := a.c.ConnectString()
		cfg.ZooKeeper.Servers = strings.Join(cs.Servers, ",") + cs.Chroot
		cfg.ZooKeeper.SessionTimeout = a.c.SessionTimeout()
		cfg.ZooKeeper.MaxBuffer = a.c.MaxBuffer() // the shards list the wide parents
	}
	f := &fleet{cluster: a.cfg.Cluster, member: a.cfg.Member, disk: a.disk, status: a.Status, setStatus: a.setStatus, cfg: cfg, logger: a.logger, shardMember: a.cfg.Member, weight: cfg.Weight,
		wake: make(chan struct{}, 1)}
	if cfg.HAGroup != "" {
		f.shardMember = cfg.HAGroup
	}
	var err error
	if f.m, err = newFleetMetrics(reg, f); err != nil {
		return nil, err
	}
	f.sh = newShards(shardsConfig{
		cluster: a.cfg.Cluster, shardMember: f.shardMember, weight: f.weight, configDir: a.cfg.ConfigDir,
		zooKeeper: cfg.ZooKeeper, membersPath: a.store.MembersPath(),
	}, shardsDeps{c: a.c, relinked: a.linked, setIgnored: f.setIgnored, setStatus: f.setShardStatus, m: f.m}, a.logger)
	if cfg.HAGroup != "" {
		f.ha = newHA(haConfig{
			member: a.cfg.Member, group: cfg.HAGroup,
			electionPath: a.store.HAElectionPath(cfg.HAGroup), recordPath: a.store.HALeaderPath(cfg.HAGroup),
			advertiseURL: cfg.AdvertiseURL, ownURL: a.cfg.Prometheus.URL,
			disconnectGrace: cfg.DisconnectGrace, checkTimeout: cfg.TakeoverCheckTimeout,
			untrustedWait: cfg.UntrustedRecordWait, retry: a.cfg.RetryInterval,
		}, haDeps{
			c: a.c, elect: newElection(a.c), access: a.accessSettings,
			recordTrusted: func(ctx context.Context, acc configstore.Access) (bool, error) {
				return a.store.RecordTrusted(ctx, acc, cfg.HAGroup)
			},
			leadershipChanged: func(ctx context.Context) { f.wakeAgent(); f.publish(ctx) },
			viewChanged:       f.publish,
			transitions:       f.m.haTransitions, untrusted: f.m.haUntrusted,
		}, a.logger)
	}
	a.status.Fleet = &configstore.FleetStatus{ShardMember: f.shardMember, Weight: f.weight, HAGroup: cfg.HAGroup}
	return f, nil
}

// run runs the shards and the candidacy until ctx ends.
func (f *fleet) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.sh.run(ctx) }()
	go func() { defer wg.Done(); f.refresh(ctx) }()
	if f.ha != nil {
		wg.Add(1)
		go func() { defer wg.Done(); f.ha.run(ctx) }()
	}
	wg.Wait()
}

// wakeC wakes the agent's loop when the wanted variant changed.
func (f *fleet) wakeC() <-chan struct{} { return f.wake }

func (f *fleet) wakeAgent() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// leading reports whether this agent should run the leader variant now.
func (f *fleet) leading() bool { return f.ha.leading() }

func (f *fleet) setShardStatus(ctx context.Context, jobs map[string]configstore.ShardedJobStatus, members int) {
	f.mu.Lock()
	same := maps.Equal(jobs, f.jobs) && members == f.members
	f.jobs, f.members = jobs, members
	f.mu.Unlock()
	if !same {
		f.publish(ctx)
	}
}

// publish puts the fleet's part into the agent's status when it changed.
func (f *fleet) publish(ctx context.Context) {
	f.mu.Lock()
	fs := configstore.FleetStatus{ShardMember: f.shardMember, Weight: f.weight, HAGroup: f.cfg.HAGroup,
		Jobs: maps.Clone(f.jobs), Members: f.members}
	f.mu.Unlock()
	v := f.ha.view()
	fs.Leader, fs.Term, fs.LeaderSince, fs.Waiting = v.Leader, v.Term, v.Since, v.Waiting
	fs.Overlay = f.disk.linkedLeader()
	cur := f.status().Fleet
	if cur != nil && fleetEqual(*cur, fs) {
		return
	}
	f.setStatus(ctx, func(s *configstore.Status) { s.Fleet = &fs })
}

func fleetEqual(a, b configstore.FleetStatus) bool {
	ja, jb := a.Jobs, b.Jobs
	a.Jobs, b.Jobs = nil, nil
	return reflect.DeepEqual(a, b) && maps.Equal(ja, jb)
}

// refresh keeps the status's leader and overlay fields current.
func (f *fleet) refresh(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.publish(ctx)
			if f.ha != nil && f.disk.linkedLeader() != f.leading() {
				f.wakeAgent() // e.g. Prometheus's files were switched back under a leader
			}
			if f.ha != nil {
				f.disk.pruneVariants(-1, time.Minute) // never the live one
			}
		}
	}
}

type fleetMetrics struct {
	shardWrites      *prometheus.CounterVec
	shardWriteErrors *prometheus.CounterVec
	rebalance        prometheus.Histogram
	haTransitions    prometheus.Counter
	haUntrusted      prometheus.Counter
}

var (
	descShardTargets = prometheus.NewDesc("zkprom_shard_targets",
		"Targets of a sharded job in this agent's share file now (assigned plus handed over, still in overlap).", []string{"cluster", "member", "job"}, nil)
	descShardAssigned = prometheus.NewDesc("zkprom_shard_assigned_targets",
		"Targets of a sharded job the assignment gives this agent.", []string{"cluster", "member", "job"}, nil)
	descShardDiscovered = prometheus.NewDesc("zkprom_shard_discovered_targets",
		"Targets discovered in a sharded job (the whole job, before sharding).", []string{"cluster", "member", "job"}, nil)
	descShardMoves = prometheus.NewDesc("zkprom_shard_moves_total",
		"Targets of a sharded job this agent handed over to another member.", []string{"cluster", "member", "job"}, nil)
	descShardMembers = prometheus.NewDesc("zkprom_shard_members",
		"Shard members (agents, or HA groups counted once) the assignment uses.", []string{"cluster", "member"}, nil)
	descShardWeight = prometheus.NewDesc("zkprom_shard_weight",
		"This agent's share weight.", []string{"cluster", "member", "shard_member"}, nil)
	descHALeader = prometheus.NewDesc("zkprom_ha_leader",
		"1 while this agent is the leader of its HA group (and may run the leader overlay), else 0.", []string{"cluster", "member", "group"}, nil)
	descHATerm = prometheus.NewDesc("zkprom_ha_term",
		"Term of the HA group's current leader (the sequence number of its election node; absent while unknown).", []string{"cluster", "member", "group"}, nil)
	descHAHandover = prometheus.NewDesc("zkprom_ha_last_handover_timestamp_seconds",
		"When the HA group's current leader took over (absent while unknown).", []string{"cluster", "member", "group"}, nil)
	descHAWaiting = prometheus.NewDesc("zkprom_ha_takeover_waiting",
		"1 while this agent is elected leader of its HA group but does not act as leader yet: the previous leader's Prometheus still runs the overlay (or cannot be read), or the hand-over is not recorded yet.", []string{"cluster", "member", "group"}, nil)
	descShardIgnored = prometheus.NewDesc("zkprom_shard_ignored_members",
		"Nodes under the cluster's members that the sharding ignores now because they are not a live agent's (persistent, bad or oversized status, weight out of range), by reason.", []string{"cluster", "member", "reason"}, nil)
	descHAOverlay = prometheus.NewDesc("zkprom_ha_overlay_applied",
		"1 while the leader overlay is on disk for this Prometheus (DIR/current is a leader variant), else 0.", []string{"cluster", "member", "group"}, nil)
)

func newFleetMetrics(reg prometheus.Registerer, f *fleet) (*fleetMetrics, error) {
	cl := prometheus.Labels{"cluster": f.cluster, "member": f.member}
	m := &fleetMetrics{
		shardWrites: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zkprom_shard_file_writes_total",
			Help: "Share files written (only on change) by sharded job.", ConstLabels: cl}, []string{"job"}),
		shardWriteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zkprom_shard_file_write_errors_total",
			Help: "Share files that could not be written (the last one stays).", ConstLabels: cl}, []string{"job"}),
		rebalance: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "zkprom_shard_rebalance_duration_seconds",
			Help: "From a change of members or targets to the share files written.", ConstLabels: cl,
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		haTransitions: prometheus.NewCounter(prometheus.CounterOpts{Name: "zkprom_ha_leaderships_total",
			Help: "Times this agent became leader of its HA group.", ConstLabels: cl}),
		haUntrusted: prometheus.NewCounter(prometheus.CounterOpts{Name: "zkprom_ha_untrusted_takeovers_total",
			Help: "Takeovers past a leader record not written by the cluster's agents: one whose ACL is not the model's, or, in an open cluster, after the longest wait allowed on it.", ConstLabels: cl}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.shardWrites, m.shardWriteErrors, m.rebalance, m.haTransitions, m.haUntrusted, fleetCollector{f}} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register fleet metrics: %w", err)
			}
		}
	}
	return m, nil
}

// fleetCollector reports shard and HA state at scrape time.
type fleetCollector struct{ f *fleet }

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descShardTargets, descShardAssigned, descShardDiscovered, descShardMoves,
		descShardMembers, descShardWeight, descShardIgnored, descHALeader, descHATerm, descHAHandover, descHAWaiting, descHAOverlay} {
		ch <- d
	}
}

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.f
	cl, mb := f.cluster, f.member
	f.mu.Lock()
	jobs, members, ignored := maps.Clone(f.jobs), f.members, maps.Clone(f.ignored)
	f.mu.Unlock()
	for reason, n := range ignored {
		ch <- prometheus.MustNewConstMetric(descShardIgnored, prometheus.GaugeValue, float64(n), cl, mb, reason)
	}
	for job, st := range jobs {
		ch <- prometheus.MustNewConstMetric(descShardTargets, prometheus.GaugeValue, float64(st.Owned), cl, mb, job)
		ch <- prometheus.MustNewConstMetric(descShardAssigned, prometheus.GaugeValue, float64(st.Assigned), cl, mb, job)
		ch <- prometheus.MustNewConstMetric(descShardDiscovered, prometheus.GaugeValue, float64(st.Discovered), cl, mb, job)
		ch <- prometheus.MustNewConstMetric(descShardMoves, prometheus.CounterValue, float64(st.Moves), cl, mb, job)
	}
	if members > 0 {
		ch <- prometheus.MustNewConstMetric(descShardMembers, prometheus.GaugeValue, float64(members), cl, mb)
	}
	ch <- prometheus.MustNewConstMetric(descShardWeight, prometheus.GaugeValue, f.weight, cl, mb, f.shardMember)
	if f.ha == nil {
		return
	}
	v := f.ha.view()
	g := f.cfg.HAGroup
	ch <- prometheus.MustNewConstMetric(descHALeader, prometheus.GaugeValue, b2f(v.Leader), cl, mb, g)
	ch <- prometheus.MustNewConstMetric(descHAWaiting, prometheus.GaugeValue, b2f(v.Waiting != ""), cl, mb, g)
	if v.LeaderKnown {
		ch <- prometheus.MustNewConstMetric(descHATerm, prometheus.GaugeValue, float64(v.LeaderTerm), cl, mb, g)
	}
	if !v.LastHandover.IsZero() {
		ch <- prometheus.MustNewConstMetric(descHAHandover, prometheus.GaugeValue, float64(v.LastHandover.UnixNano())/1e9, cl, mb, g)
	}
	ch <- prometheus.MustNewConstMetric(descHAOverlay, prometheus.GaugeValue, b2f(f.disk.linkedLeader()), cl, mb, g)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// documentFleet fills the fleet's state so that every metric shows in a
// Gather (for generated documentation).
func (f *fleet) documentFleet() {
	f.m.shardWrites.WithLabelValues("example")
	f.m.shardWriteErrors.WithLabelValues("example")
	f.mu.Lock()
	f.jobs = map[string]configstore.ShardedJobStatus{"example": {}}
	f.members = 1
	f.ignored = map[string]int{"persistent": 1}
	f.mu.Unlock()
	if f.ha != nil {
		f.ha.mu.Lock()
		f.ha.leaderKnown, f.ha.lastHandover = true, time.Now()
		f.ha.mu.Unlock()
	}
}
