// Package agent runs beside one Prometheus server and keeps it on its
// cluster's configuration revision from ZooKeeper: it stages each new
// revision whole on disk, validates it, swaps the DIR/current symlink
// atomically, reloads Prometheus, verifies the reload, and on any failure
// switches back, reloads and verifies the previous revision. It reports
// its status in one ephemeral member znode.
//
// The same agent is its Prometheus's part in the fleet: it writes this
// member's share of each sharded job (shards.yml) and, in an HA group,
// campaigns for leadership; the acting leader runs the leader variant of
// the revision (leader.yml merged in).
//
// Where things are:
//
//	agent.go       Config, New, Run: the member node, the status, the main loop
//	target.go      which revision this member should run, and the step towards it
//	apply.go       one attempt: fetch, stage, validate, switch, reload, verify, report
//	reload.go      asking Prometheus: reload state, reload, verify, switch back
//	promcheck.go   its --config.file, --config.auto-reload, version against promtool's
//	disk.go        the layout below --config-dir: revisions, the link, state.json
//	leader.go      the leader variant: its directory, rendering, switching variants
//	access.go      whether the cluster admits this agent
//	fleet.go       sharding and HA tied to the agent; fleet status and metrics
//	shards.go      sharded jobs: discovery, members, share files
//	campaign.go    the HA candidacy: election, take-over, leader record, follow
//	prevleader.go  probing the previous leader's Prometheus (overlay still on?)
//	fleetstatus.go `zkprom shards`: the cluster's members and HA groups
//	metrics.go     the agent's own metrics
//	seams.go       what the state machines need of ZooKeeper: small interfaces
//	               (unit tests run them on an in-memory fake, fakezk_test.go)
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zk"
)

// Config configures an agent.
type Config struct {
	Root    string // default configstore.DefaultRoot
	Cluster string
	// Member is this agent's name in the cluster (default: the host name).
	Member string
	// ConfigDir is DIR: Prometheus runs with
	// --config.file=DIR/current/prometheus.yml.
	ConfigDir  string
	Prometheus prom.Config
	// Promtool is the promtool binary; "none" uses the built-in checks.
	Promtool string
	// VerifyTimeout bounds waiting for Prometheus to confirm a reload.
	VerifyTimeout time.Duration
	// RetryInterval is the pause before retrying after ZooKeeper errors
	// and between polls of a Prometheus that does not answer yet.
	RetryInterval time.Duration
	// KeepRevisions is how many revision directories stay on disk.
	KeepRevisions int
	// Fleet is sharding and HA (fleet.go).
	Fleet FleetConfig
}

// Defaults of Config: DefaultConfig has them all, zkprom agent's flags
// read them, and New (and the fleet) fill in the zero values from them.
const (
	DefaultPrometheusURL        = "http://127.0.0.1:9090"
	DefaultPromtool             = "promtool"
	DefaultVerifyTimeout        = 30 * time.Second
	DefaultRetryInterval        = 2 * time.Second
	DefaultKeepRevisions        = 5
	DefaultShardWeight          = 1.0
	DefaultTakeoverCheckTimeout = time.Second
	DefaultUntrustedRecordWait  = 30 * time.Second
)

// DefaultConfig is a Config with every default filled in (the cluster,
// member and config directory have none).
func DefaultConfig() Config {
	return Config{
		Root:          configstore.DefaultRoot,
		Prometheus:    prom.Config{URL: DefaultPrometheusURL},
		Promtool:      DefaultPromtool,
		VerifyTimeout: DefaultVerifyTimeout,
		RetryInterval: DefaultRetryInterval,
		KeepRevisions: DefaultKeepRevisions,
		Fleet: FleetConfig{
			Weight:               DefaultShardWeight,
			TakeoverCheckTimeout: DefaultTakeoverCheckTimeout,
			UntrustedRecordWait:  DefaultUntrustedRecordWait,
		},
	}
}

// Agent keeps one Prometheus on its cluster's revision.
type Agent struct {
	cfg    Config
	c      *zk.Client
	store  *configstore.Store
	prom   *prom.Client
	disk   disk
	logger *slog.Logger
	m      *metrics

	// What the state machine uses of c and store (seams.go): they
	// themselves, or an in-memory fake in unit tests.
	revisions revisionSource
	admission accessSource
	pointers  pointerSession

	// The record of what the agent is doing, under mu. state is what
	// survives a restart (DIR/state.json) and is the one home of the
	// applied and the failed revision; status is what /status, the
	// member node and the metrics show, its revision and failure fields
	// copied from state at every change (syncStatus). pending and last
	// are apply attempts.
	mu      sync.Mutex
	state   savedState
	status  configstore.Status
	pending *attempt // switched while Prometheus did not answer: verify when it does
	last    *attempt // the last attempt reported
	noticed map[int]time.Time
	reg     *zk.Registration
	linked  chan struct{} // DIR/current was re-pointed (one pending signal at most)
	fleet   *fleet
	acc     configstore.Access // the cluster's, as read at registration
	// toolVersion is promtool's version, asked once (promcheck.go).
	toolVersion *prom.Version
}

// New checks cfg and builds an agent; Run starts it.
func New(c *zk.Client, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Agent, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Member == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent member name: %w (set --member)", err)
		}
		cfg.Member = h
	}
	if err := configstore.ValidateName("member", cfg.Member); err != nil {
		return nil, err
	}
	if cfg.ConfigDir == "" {
		return nil, errors.New("agent: the config directory is required (--config-dir)")
	}
	if cfg.VerifyTimeout == 0 {
		cfg.VerifyTimeout = DefaultVerifyTimeout
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.KeepRevisions == 0 {
		cfg.KeepRevisions = DefaultKeepRevisions
	}
	if cfg.KeepRevisions < 2 {
		return nil, fmt.Errorf("agent: keep at least 2 revisions on disk, not %d", cfg.KeepRevisions)
	}
	store, err := configstore.New(c, configstore.Options{Root: cfg.Root, Cluster: cfg.Cluster}, logger)
	if err != nil {
		return nil, err
	}
	pc, err := prom.New(cfg.Prometheus)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, c: c, store: store, prom: pc,
		revisions: store, admission: store, pointers: c,
		logger:  logger.With("component", "agent", "cluster", cfg.Cluster, "member", cfg.Member),
		noticed: map[int]time.Time{},
		linked:  make(chan struct{}, 1),
	}
	a.disk = disk{dir: cfg.ConfigDir, onLink: a.relinked}
	a.m, err = newMetrics(reg, a)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	a.status = configstore.Status{
		Member: cfg.Member, Cluster: cfg.Cluster, State: configstore.StateStarting,
		PrometheusURL: pc.URL(), Started: now, Updated: now, Version: version.Version,
	}
	if a.fleet, err = newFleet(a, reg); err != nil {
		return nil, err
	}
	return a, nil
}

// Status returns the agent's current status.
func (a *Agent) Status() configstore.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// relinked tells the shards that DIR/current was re-pointed.
func (a *Agent) relinked() {
	select {
	case a.linked <- struct{}{}:
	default:
	}
}

// setStatus changes the status and publishes it to the member znode.
func (a *Agent) setStatus(ctx context.Context, f func(*configstore.Status)) {
	a.updateStatus(ctx, false, f)
}

// updateStatus is setStatus; local publishes with a short timeout (see
// publishTimeout).
func (a *Agent) updateStatus(ctx context.Context, local bool, f func(*configstore.Status)) {
	a.mu.Lock()
	f(&a.status)
	a.syncStatus()
	a.status.Error = bundle.CleanText(a.status.Error)
	a.status.Updated = time.Now().UTC()
	st := a.status
	reg := a.reg
	a.mu.Unlock()
	if reg != nil {
		a.publish(ctx, reg, st, local)
	}
}

// syncStatus copies the applied and the failed revision from the state
// into the status (a.mu held).
func (a *Agent) syncStatus() {
	a.status.Revision, a.status.Checksum = a.state.Applied, a.state.Checksum
	a.status.FailedRevision, a.status.FailedStep = a.state.FailedRevision, a.state.FailedStep
}

func (a *Agent) publish(ctx context.Context, reg *zk.Registration, st configstore.Status, local bool) {
	data, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(ctx, a.publishTimeout(local))
	defer cancel()
	if err := reg.Update(ctx, data); err != nil {
		a.logger.Warn("could not report status to ZooKeeper; will report when it is back", "err", err)
	}
}

// publishTimeout bounds publishing the status to the member node: the
// session timeout, or a moment for a local attempt (an HA step-down that
// must not wait for ZooKeeper; the status is published again when the
// session is back).
func (a *Agent) publishTimeout(local bool) time.Duration {
	if local {
		return 100 * time.Millisecond
	}
	return a.c.SessionTimeout()
}

// Run keeps Prometheus on the cluster's revision until ctx ends, then
// removes the member znode.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.disk.init(); err != nil {
		return err
	}
	st, err := a.disk.readState()
	if err != nil {
		return err
	}
	linked, err := a.disk.linked()
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.state = st
	a.syncStatus()
	a.status.Error = bundle.CleanText(st.FailedError)
	a.mu.Unlock()
	a.logger.Info("starting", "config_dir", a.cfg.ConfigDir, "applied", st.Applied, "linked", linked, "prometheus", a.prom.URL())
	a.dropOverlay("starting") // when the link is a leader variant: never leader yet

	sub := a.c.Subscribe()
	defer sub.Close()
	if err := a.register(ctx); err != nil {
		return err
	}
	defer func() {
		a.mu.Lock()
		reg := a.reg
		a.mu.Unlock()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if reg != nil {
			reg.Close(cctx)
		}
	}()

	// The fleet stops after this loop: a leader first removes its overlay,
	// then resigns; the member node goes last.
	fctx, fcancel := context.WithCancel(context.WithoutCancel(ctx))
	fleetDone := make(chan struct{})
	go func() { defer close(fleetDone); a.fleet.run(fctx) }()
	defer func() {
		if a.fleet.ha != nil {
			a.dropOverlay("leaving")
		}
		fcancel()
		<-fleetDone
	}()

	retry := time.NewTimer(time.Hour)
	retry.Stop()
	var w watches
	for {
		again := a.step(ctx, &w)
		if again {
			retry.Reset(a.cfg.RetryInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.current:
			w.current = nil
		case <-w.canary:
			w.canary = nil
		case <-w.access:
			// The writer changed who may do what: the nodes this agent
			// makes from now on follow (checkAccess keeps the settings).
			w.access = nil
			if _, err := a.checkAccess(ctx); err != nil {
				a.logger.Error("the cluster's access settings changed and no longer admit this agent", "err", err)
				a.setStatus(ctx, func(s *configstore.Status) { s.Error = err.Error() })
			}
		case ev := <-sub.C:
			if ev.State == zk.StateConnected {
				// Back: report the status we have, then look again.
				a.mu.Lock()
				st, reg := a.status, a.reg
				a.mu.Unlock()
				a.publish(ctx, reg, st, false)
			}
		case <-a.fleet.wakeC():
			a.fleetStep(ctx) // HA role changed: switch the variant from local files first
		case <-retry.C:
		}
		retry.Stop()
	}
}

// watches are the armed ZooKeeper watches on the two pointers; a nil
// channel is re-armed at the next read. Each is armed at most once at a
// time, so waiting long (ZooKeeper or Prometheus away) piles nothing up.
type watches struct {
	current, canary, access <-chan zk.WatchEvent
}

// register checks the cluster's access settings and creates the member
// znode, retrying while ZooKeeper is away, the cluster does not exist yet,
// or an earlier session of this agent (killed) still holds the node. An
// agent the cluster does not admit stops with the reason.
func (a *Agent) register(ctx context.Context) error {
	// The agent creates nothing but its member node and HA nodes: the
	// cluster's nodes (and their ACLs) come from the writer's first push.
	for {
		rctx, cancel := context.WithTimeout(ctx, a.c.SessionTimeout())
		acc, err := a.checkAccess(rctx)
		if err == nil {
			a.mu.Lock()
			data, _ := json.Marshal(a.status)
			a.mu.Unlock()
			var reg *zk.Registration
			reg, err = zk.Register(rctx, a.c, a.store.MemberPath(a.cfg.Member), data, zk.RegisterOptions{
				ACLFunc: func() []zk.ACL { return a.accessSettings().ACL(configstore.KindAgentNode) }, Logger: a.logger})
			if err == nil {
				cancel()
				a.mu.Lock()
				a.reg = reg
				a.mu.Unlock()
				if acc.Open {
					a.logger.Warn("the cluster is open: anyone who reaches ZooKeeper can change its configuration and membership (docs/security.md)")
				}
				return nil
			}
		}
		cancel()
		switch {
		case errors.Is(err, errNotAllowed):
			return err
		case errors.Is(err, configstore.ErrNoCluster) || errors.Is(err, zk.ErrNoNode):
			a.logger.Warn("the cluster does not exist yet (push its first revision with zkprom config push); retrying", "path", a.store.Path())
		default:
			a.logger.Warn("could not register member; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.cfg.RetryInterval):
		}
	}
}

// accessSettings returns the cluster's access settings as read at registration.
func (a *Agent) accessSettings() configstore.Access {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acc
}
