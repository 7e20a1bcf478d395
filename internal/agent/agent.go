// Package agent runs beside one Prometheus server and keeps it on its
// cluster's configuration revision from ZooKeeper: it stages each new
// revision whole on disk, validates it, swaps the DIR/current symlink
// atomically, reloads Prometheus, verifies the reload, and on any failure
// switches back, reloads and verifies the previous revision. It reports
// its status in one ephemeral member znode.
//
// The agent is also where sharding and HA leadership will live: they plug
// in as a Role (which revision and which placeholders this member runs)
// beside the one member znode and the one status.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// Steps of an apply, as used in metrics and status.
const (
	StepFetch    = "fetch"
	StepStage    = "stage"
	StepValidate = "validate"
	StepSwitch   = "switch"
	StepReload   = "reload"
	StepVerify   = "verify"
	StepRollback = "rollback"
)

// applyReport describes the last apply (for benchmarks and logs).
type applyReport struct {
	Revision int
	Noticed  time.Time                // when the agent learned about the revision
	Steps    map[string]time.Duration // by step
	Total    time.Duration
	Err      error
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

	mu      sync.Mutex
	status  configstore.Status
	state   State
	report  applyReport
	reg     *zk.Registration
	changed chan struct{} // closed and replaced on every status change
	pending *pendingVerify
	noticed map[int]time.Time
	fleet   *fleet
	access  configstore.Access // the cluster's, as read at registration
}

// pendingVerify is a revision that is switched on disk while Prometheus
// did not answer.
type pendingVerify struct {
	rev      int
	checksum string
	since    time.Time
	prev     int
	prevLink string
	start    time.Time
	steps    map[string]time.Duration
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
		cfg: cfg, c: c, store: store, prom: pc, disk: disk{dir: cfg.ConfigDir},
		logger:  logger.With("component", "agent", "cluster", cfg.Cluster, "member", cfg.Member),
		changed: make(chan struct{}),
		noticed: map[int]time.Time{},
	}
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

// statusChanged returns a channel closed at the next status change.
func (a *Agent) statusChanged() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// lastReport returns the report of the last apply.
func (a *Agent) lastReport() applyReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.report
}

// Store returns the agent's view of the cluster.
func (a *Agent) Store() *configstore.Store { return a.store }

// setStatus changes the status and publishes it to the member znode.
func (a *Agent) setStatus(ctx context.Context, f func(*configstore.Status)) {
	a.mu.Lock()
	f(&a.status)
	a.status.Error = bundle.CleanText(a.status.Error)
	a.status.Updated = time.Now().UTC()
	st := a.status
	reg := a.reg
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	if reg != nil {
		a.publish(ctx, reg, st)
	}
}

func (a *Agent) publish(ctx context.Context, reg *zk.Registration, st configstore.Status) {
	data, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(ctx, a.publishTimeout(ctx))
	defer cancel()
	if err := reg.Update(ctx, data); err != nil {
		a.logger.Warn("could not report status to ZooKeeper; will report when it is back", "err", err)
	}
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
	a.status.Revision = st.Applied
	a.status.Checksum = st.Checksum
	a.status.FailedRevision = st.FailedRevision
	a.status.FailedStep = st.FailedStep
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
				a.publish(ctx, reg, st)
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
				ACLFunc: func() []zk.ACL { return a.Access().ACL(configstore.KindAgentNode) }, Logger: a.logger})
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

// Access returns the cluster's access settings as read at registration.
func (a *Agent) Access() configstore.Access {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.access
}

// step reads the target revision (arming watches) and works towards it.
// It returns whether to retry after RetryInterval.
func (a *Agent) step(ctx context.Context, w *watches) bool {
	target, canary, err := a.target(ctx, w)
	if err != nil {
		a.logger.Warn("could not read the cluster's revision; keeping the applied one", "err", err)
		return true
	}
	if target == 0 {
		a.setStatus(ctx, func(s *configstore.Status) { s.Target = 0 })
		return false
	}
	a.mu.Lock()
	if _, ok := a.noticed[target]; !ok {
		a.noticed[target] = time.Now()
	}
	st, pending := a.state, a.pending
	a.mu.Unlock()

	if pending != nil {
		if pending.rev == target {
			if again := a.finishPending(ctx, canary); again || !a.variantChanged(target) {
				return again
			}
			// The HA role changed while Prometheus was away: the
			// variant switch was deferred until now.
			return a.apply(ctx, target, canary)
		}
		a.mu.Lock()
		a.pending = nil
		a.mu.Unlock()
	}
	switch {
	case target == st.Applied && a.variantChanged(target):
		return a.apply(ctx, target, canary) // HA leadership changed: add or remove the overlay
	case target == st.Applied:
		switch cur := a.Status(); {
		case cur.State == configstore.StateApplied && cur.Target == target && cur.Canary == canary:
			return false
		case cur.State == configstore.StateApplied || cur.State == configstore.StateFailed:
			// Back on the applied revision (a canary ended, or a failed
			// revision was replaced by this one): nothing to do on disk.
			// The last failure stays in the status for the record.
			a.setStatus(ctx, func(s *configstore.Status) {
				s.State, s.Target, s.Canary = configstore.StateApplied, target, canary
			})
			return false
		}
		// Restart with the revision already applied: change nothing, just
		// check that Prometheus runs it.
		return a.confirm(ctx, target, canary)
	case target == st.FailedRevision:
		a.setStatus(ctx, func(s *configstore.Status) {
			s.Target, s.Canary, s.State = target, canary, configstore.StateFailed
		})
		return false
	}
	return a.apply(ctx, target, canary)
}

// target returns the revision this member should run: the canary's when
// it is one of the canaries, else current's. It arms the watches that are
// not armed.
func (a *Agent) target(ctx context.Context, w *watches) (int, bool, error) {
	var ok bool
	var err error
	if w.access == nil {
		if _, _, ch, err := a.c.GetW(ctx, a.store.AccessPath()); err == nil {
			w.access = ch
		}
	}
	if w.canary == nil {
		var ch <-chan zk.WatchEvent
		ok, _, ch, err = a.c.ExistsW(ctx, a.store.CanaryPath())
		if err == nil {
			w.canary = ch
		}
	} else {
		ok, _, err = a.c.Exists(ctx, a.store.CanaryPath())
	}
	if err != nil {
		return 0, false, err
	}
	var canary *configstore.CanaryPointer
	if ok {
		data, _, err := a.c.Get(ctx, a.store.CanaryPath())
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return 0, false, err
		}
		if err == nil {
			if canary, err = configstore.ParseCanary(data); err != nil {
				return 0, false, err
			}
		}
	}
	var data []byte
	if w.current == nil {
		var ch <-chan zk.WatchEvent
		data, _, ch, err = a.c.GetW(ctx, a.store.CurrentPath())
		if errors.Is(err, zk.ErrNoNode) {
			// Nothing pushed yet: wait for the node to appear.
			ok, _, ch, err = a.c.ExistsW(ctx, a.store.CurrentPath())
			if err != nil {
				return 0, false, err
			}
			w.current = ch
			if !ok {
				return 0, false, nil
			}
			w.current = nil
			return a.target(ctx, w)
		}
		if err == nil {
			w.current = ch
		}
	} else {
		data, _, err = a.c.Get(ctx, a.store.CurrentPath())
		if errors.Is(err, zk.ErrNoNode) {
			return 0, false, nil
		}
	}
	if err != nil {
		return 0, false, err
	}
	p, err := configstore.ParsePointer(data)
	if err != nil {
		return 0, false, err
	}
	if canary.Has(a.cfg.Member) {
		return canary.Revision, true, nil
	}
	return p.Revision, false, nil
}

type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string {
	if msg := e.err.Error(); strings.HasPrefix(msg, e.step+":") {
		return msg // the cause names the step already
	}
	return e.step + ": " + e.err.Error()
}
func (e *stepError) Unwrap() error { return e.err }

// apply brings revision rev live. It returns true when it should be
// retried later (transient trouble), false when done or failed for good.
func (a *Agent) apply(ctx context.Context, rev int, canary bool) bool {
	start := time.Now()
	steps := map[string]time.Duration{}
	timed := func(step string, f func() error) error {
		t := time.Now()
		err := f()
		d := time.Since(t)
		steps[step] = d
		a.m.stepDuration.WithLabelValues(step).Observe(d.Seconds())
		if err != nil {
			return &stepError{step: step, err: err}
		}
		return nil
	}
	a.mu.Lock()
	prev := a.state.Applied
	a.mu.Unlock()
	leader := a.fleet.leading() // the leader of an HA group runs the leader variant
	// What to switch back to: the last verified revision (the variant
	// live now), or whatever the link pointed at before the agent's first
	// apply (a bootstrap file).
	prevLink := ""
	if t := a.disk.linkTarget(); prev != 0 && t != relVariantDir(rev, leader) && (t == relRevDir(prev) || t == relVariantDir(prev, true)) {
		prevLink = t
	} else if _, err := os.Stat(a.disk.revDir(prev)); prev != 0 && err == nil {
		prevLink = relRevDir(prev)
	} else if t := a.disk.linkTarget(); t != "" && t != relRevDir(rev) && t != relVariantDir(rev, true) {
		prevLink = t
	}
	a.logger.Info("applying revision", "revision", rev, "previous", prev, "canary", canary)
	a.setStatus(ctx, func(s *configstore.Status) {
		s.Target, s.Canary, s.State = rev, canary, configstore.StateApplying
	})

	var meta configstore.Meta
	var b *bundle.Bundle
	if err := timed(StepFetch, func() (err error) {
		meta, b, err = a.fetchRevision(ctx, rev, leader)
		return err
	}); err != nil {
		a.m.failures.WithLabelValues(StepFetch).Inc()
		a.logger.Warn("could not fetch revision; retrying", "revision", rev, "err", err)
		a.setStatus(ctx, func(s *configstore.Status) {
			s.State = a.restState(s)
			if errors.Is(err, errNotAllowed) {
				s.Error = err.Error() // for the writer's push --wait and status
			}
		})
		return true
	}
	if _, ok := b.Files[bundle.LeaderFile]; !ok {
		leader = false // no overlay in this revision: one variant for all
	}
	if err := timed(StepStage, func() error {
		return a.stageRevision(rev, leader, meta.Checksum, b)
	}); err != nil {
		return a.fail(ctx, rev, canary, prev, prevLink, false, err, start, steps)
	}
	if err := timed(StepValidate, func() error {
		if _, err := bundle.ValidateDir(ctx, a.disk.variantDir(rev, leader), a.cfg.Promtool); err != nil {
			return err
		}
		return bundle.ValidateFleetDir(a.disk.variantDir(rev, leader), a.fleet.cfg.ZooKeeper)
	}); err != nil {
		return a.fail(ctx, rev, canary, prev, prevLink, false, err, start, steps)
	}
	if leader && !a.fleet.leading() {
		// Leadership ended during the apply: never switch to the overlay
		// without it; the next step applies the follower variant.
		a.logger.Info("lost HA leadership before the switch; not applying the overlay", "revision", rev)
		a.setStatus(ctx, func(s *configstore.Status) { s.State = a.restState(s) })
		return true
	}
	if err := timed(StepSwitch, func() error { return a.disk.linkTo(relVariantDir(rev, leader)) }); err != nil {
		return a.fail(ctx, rev, canary, prev, prevLink, true, err, start, steps)
	}
	switched := time.Now()
	var before reloadState
	err := timed(StepReload, func() error {
		var err error
		if err := a.checkConfigFile(ctx); err != nil {
			return err
		}
		before, err = a.reloadState(ctx)
		if err != nil {
			return err
		}
		return a.prom.Reload(ctx)
	})
	if errors.Is(err, prom.ErrUnreachable) {
		// Prometheus is not up (yet): the files are in place; it reads them
		// when it starts. Verify once it answers.
		a.mu.Lock()
		a.pending = &pendingVerify{rev: rev, checksum: meta.Checksum, since: switched, prev: prev, prevLink: prevLink, start: start, steps: steps}
		a.mu.Unlock()
		a.logger.Info("Prometheus does not answer; revision laid down, will verify when it does", "revision", rev, "err", err)
		a.setStatus(ctx, func(s *configstore.Status) { s.State = configstore.StateWaiting; s.Error = "" })
		return true
	}
	if err != nil {
		return a.fail(ctx, rev, canary, prev, prevLink, true, err, start, steps)
	}
	var after prom.RuntimeInfo
	if err := timed(StepVerify, func() (err error) {
		after, err = a.verify(ctx, before)
		return err
	}); err != nil {
		return a.fail(ctx, rev, canary, prev, prevLink, true, err, start, steps)
	}
	a.succeed(ctx, rev, meta.Checksum, canary, prev, after, start, steps)
	return false
}

// restState is the state to show while an apply cannot proceed; it runs
// inside setStatus (a.mu held), on the status s.
func (a *Agent) restState(s *configstore.Status) string {
	if a.state.FailedRevision != 0 && a.state.FailedRevision == s.Target {
		return configstore.StateFailed
	}
	if a.state.Applied != 0 {
		return configstore.StateApplied
	}
	return configstore.StateStarting
}

func (a *Agent) vars(rev int) bundle.Vars {
	return bundle.Vars{
		Member: a.cfg.Member, Cluster: a.cfg.Cluster, ConfigDir: a.cfg.ConfigDir,
		RevisionDir: a.disk.revDir(rev), Revision: rev,
	}
}

// reloadState is what Prometheus says about its configuration: the
// metric's timestamp has sub-second precision, runtimeinfo's
// lastConfigTime only seconds.
type reloadState struct {
	ri          prom.RuntimeInfo
	ok          bool      // prometheus_config_last_reload_successful
	lastSuccess time.Time // prometheus_config_last_reload_success_timestamp_seconds
}

func (a *Agent) reloadState(ctx context.Context) (reloadState, error) {
	ri, err := a.prom.RuntimeInfo(ctx)
	if err != nil {
		return reloadState{}, err
	}
	ok, ts, err := a.prom.ReloadMetrics(ctx)
	if err != nil {
		return reloadState{}, err
	}
	return reloadState{ri: ri, ok: ok, lastSuccess: ts}, nil
}

// verify waits until Prometheus reports a successful reload newer than
// before: prometheus_config_last_reload_successful is 1 with a newer
// success timestamp, and runtimeinfo says reloadConfigSuccess with a
// lastConfigTime not older.
func (a *Agent) verify(ctx context.Context, before reloadState) (prom.RuntimeInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.VerifyTimeout)
	defer cancel()
	wasFailing := !before.ok || !before.ri.ReloadConfigSuccess
	var last prom.RuntimeInfo
	var lastErr error
	for {
		st, err := a.reloadState(ctx)
		if err == nil {
			last = st.ri
			switch {
			case st.ok && st.ri.ReloadConfigSuccess && st.lastSuccess.After(before.lastSuccess) &&
				!st.ri.LastConfigTime.Before(before.lastSuccess.Truncate(time.Second)):
				return st.ri, nil
			case (!st.ok || !st.ri.ReloadConfigSuccess) && !wasFailing:
				return st.ri, errors.New("Prometheus reports reloadConfigSuccess=false: it refused the configuration (its log has the error)")
			default:
				lastErr = fmt.Errorf("no successful reload after %s yet (last success %s, reloadConfigSuccess %t)",
					before.lastSuccess.Format(time.RFC3339Nano), st.lastSuccess.Format(time.RFC3339Nano), st.ri.ReloadConfigSuccess)
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("verify reload within %s: %w", a.cfg.VerifyTimeout, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *Agent) succeed(ctx context.Context, rev int, checksum string, canary bool, prev int, ri prom.RuntimeInfo, start time.Time, steps map[string]time.Duration) {
	total := time.Since(start)
	a.m.stepDuration.WithLabelValues("total").Observe(total.Seconds())
	a.m.applies.Inc()
	a.mu.Lock()
	a.state = State{Applied: rev, Checksum: checksum, AppliedAt: time.Now().UTC()}
	st := a.state
	a.report = applyReport{Revision: rev, Noticed: a.noticed[rev], Steps: steps, Total: total}
	a.pending = nil
	a.mu.Unlock()
	if err := a.disk.writeState(st); err != nil {
		a.logger.Error("could not record the applied revision", "err", err)
	}
	if err := a.disk.prune(a.cfg.KeepRevisions, rev, prev); err != nil {
		a.logger.Warn("could not prune revision directories", "err", err)
	}
	a.logger.Info("applied revision", "revision", rev, "previous", prev, "duration", total, "steps", stepsText(steps))
	a.setStatus(ctx, func(s *configstore.Status) {
		s.State, s.Revision, s.Checksum, s.Target, s.Canary = configstore.StateApplied, rev, checksum, rev, canary
		s.FailedRevision, s.FailedStep, s.Error = 0, "", ""
		s.LastReload, s.ReloadSuccessful = ri.LastConfigTime, ri.ReloadConfigSuccess
	})
}

// stepsText lists step durations in the order of an apply.
func stepsText(steps map[string]time.Duration) string {
	var parts []string
	for _, s := range []string{StepFetch, StepStage, StepValidate, StepSwitch, StepReload, StepVerify} {
		if d, ok := steps[s]; ok {
			parts = append(parts, fmt.Sprintf("%s=%s", s, d.Round(time.Millisecond)))
		}
	}
	return strings.Join(parts, " ")
}

// fail handles a failed apply of rev: when the switch happened, it
// switches back to prev, reloads and verifies Prometheus on it, then
// reports the failure with Prometheus's text.
func (a *Agent) fail(ctx context.Context, rev int, canary bool, prev int, prevLink string, switched bool, err error, start time.Time, steps map[string]time.Duration) bool {
	step := StepStage
	var se *stepError
	if errors.As(err, &se) {
		step = se.step
	}
	msg := errorText(err)
	a.m.failures.WithLabelValues(step).Inc()
	a.logger.Error("revision refused; rolling back", "revision", rev, "step", step, "err", msg)
	var ri prom.RuntimeInfo
	if switched {
		ri, err = a.switchBack(ctx, prevLink)
		if err != nil {
			a.m.failures.WithLabelValues(StepRollback).Inc()
			msg += "; AND rolling back to revision " + fmt.Sprint(prev) + " failed: " + errorText(err)
			a.logger.Error("rollback failed", "previous", prev, "err", err)
		}
	}
	a.mu.Lock()
	a.state.FailedRevision, a.state.FailedStep, a.state.FailedError = rev, step, msg
	st := a.state
	a.report = applyReport{Revision: rev, Noticed: a.noticed[rev], Steps: steps, Total: time.Since(start), Err: errors.New(msg)}
	a.mu.Unlock()
	if err := a.disk.writeState(st); err != nil {
		a.logger.Error("could not record the failed revision", "err", err)
	}
	a.setStatus(ctx, func(s *configstore.Status) {
		s.State, s.Target, s.Canary = configstore.StateFailed, rev, canary
		s.FailedRevision, s.FailedStep, s.Error = rev, step, msg
		if switched && !ri.LastConfigTime.IsZero() {
			s.LastReload, s.ReloadSuccessful = ri.LastConfigTime, ri.ReloadConfigSuccess
		}
	})
	return false
}

func errorText(err error) string {
	var re *prom.ReloadError
	if errors.As(err, &re) {
		return re.Message
	}
	var ve *bundle.ValidationError
	if errors.As(err, &ve) {
		return ve.Output
	}
	return err.Error()
}

// switchBack points DIR/current at prev again, reloads and verifies.
func (a *Agent) switchBack(ctx context.Context, prevLink string) (prom.RuntimeInfo, error) {
	ctx = context.WithoutCancel(ctx)
	t := time.Now()
	defer func() { a.m.stepDuration.WithLabelValues(StepRollback).Observe(time.Since(t).Seconds()) }()
	if err := a.disk.linkTo(prevLink); err != nil {
		return prom.RuntimeInfo{}, err
	}
	if prevLink == "" {
		return prom.RuntimeInfo{}, nil
	}
	before, err := a.reloadState(ctx)
	if err != nil {
		return prom.RuntimeInfo{}, err
	}
	if err := a.prom.Reload(ctx); err != nil {
		return prom.RuntimeInfo{}, err
	}
	return a.verify(ctx, before)
}

// confirm checks, without reloading, that Prometheus runs the applied
// revision (after a restart of the agent).
func (a *Agent) confirm(ctx context.Context, rev int, canary bool) bool {
	linked, err := a.disk.linked()
	if err != nil || linked != rev {
		return a.apply(ctx, rev, canary)
	}
	ri, err := a.prom.RuntimeInfo(ctx)
	if err != nil {
		a.setStatus(ctx, func(s *configstore.Status) { s.Target, s.Canary, s.State = rev, canary, configstore.StateWaiting })
		return true
	}
	if !ri.ReloadConfigSuccess {
		// Prometheus is not on a good configuration: apply again.
		return a.apply(ctx, rev, canary)
	}
	a.mu.Lock()
	checksum := a.state.Checksum
	a.mu.Unlock()
	a.setStatus(ctx, func(s *configstore.Status) {
		s.State, s.Revision, s.Checksum, s.Target, s.Canary = configstore.StateApplied, rev, checksum, rev, canary
		s.LastReload, s.ReloadSuccessful = ri.LastConfigTime, ri.ReloadConfigSuccess
	})
	return false
}

// finishPending verifies a revision switched while Prometheus was down.
func (a *Agent) finishPending(ctx context.Context, canary bool) bool {
	a.mu.Lock()
	p := a.pending
	a.mu.Unlock()
	rs, err := a.reloadState(ctx)
	if err != nil {
		return true
	}
	if err := a.checkConfigFile(ctx); err != nil {
		if errors.Is(err, prom.ErrUnreachable) {
			return true
		}
		a.mu.Lock()
		a.pending = nil
		a.mu.Unlock()
		return a.fail(ctx, p.rev, canary, p.prev, p.prevLink, true, &stepError{step: StepReload, err: err}, p.start, p.steps)
	}
	if rs.ok && rs.ri.ReloadConfigSuccess && rs.lastSuccess.After(p.since) {
		// Prometheus started after the switch and loaded the new files.
		a.succeed(ctx, p.rev, p.checksum, canary, p.prev, rs.ri, p.start, p.steps)
		return false
	}
	if err := a.prom.Reload(ctx); err != nil {
		if errors.Is(err, prom.ErrUnreachable) {
			return true
		}
		a.mu.Lock()
		a.pending = nil
		a.mu.Unlock()
		return a.fail(ctx, p.rev, canary, p.prev, p.prevLink, true, &stepError{step: StepReload, err: err}, p.start, p.steps)
	}
	after, err := a.verify(ctx, rs)
	a.mu.Lock()
	a.pending = nil
	a.mu.Unlock()
	if err != nil {
		return a.fail(ctx, p.rev, canary, p.prev, p.prevLink, true, &stepError{step: StepVerify, err: err}, p.start, p.steps)
	}
	a.succeed(ctx, p.rev, p.checksum, canary, p.prev, after, p.start, p.steps)
	return false
}

// Describe is for docs: the placeholders a bundle may use.
func Placeholders() string {
	return strings.Join([]string{
		"${" + bundle.PlaceholderMember + "}", "${" + bundle.PlaceholderCluster + "}",
		"${" + bundle.PlaceholderConfigDir + "}", "${" + bundle.PlaceholderRevisionDir + "}",
		"${" + bundle.PlaceholderRevision + "}",
	}, ", ")
}

// checkConfigFile makes sure Prometheus runs DIR/current/prometheus.yml:
// otherwise a reload would "succeed" without it ever reading a revision.
func (a *Agent) checkConfigFile(ctx context.Context) error {
	got, err := a.prom.ConfigFile(ctx)
	if err != nil {
		return err
	}
	want, err := filepath.Abs(filepath.Join(a.cfg.ConfigDir, currentLink, bundle.MainFile))
	if err != nil {
		return err
	}
	if got != want {
		// The same directory under another name (a symlinked parent)?
		g, gerr := filepath.EvalSymlinks(filepath.Dir(filepath.Dir(got)))
		w, werr := filepath.EvalSymlinks(a.cfg.ConfigDir)
		if gerr != nil || werr != nil || g != w || filepath.Base(filepath.Dir(got)) != currentLink || filepath.Base(got) != bundle.MainFile {
			return fmt.Errorf("Prometheus at %s runs --config.file=%s, not %s: it would never read the revisions this agent lays down (start it with --config.file=%s)", a.prom.URL(), got, want, want)
		}
	}
	return nil
}
