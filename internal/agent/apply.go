// The apply pipeline: one attempt at bringing a revision live, carried
// through fetch → stage → validate → switch → reload → verify and then
// reported (succeed, or fail and switch back). An attempt whose reload
// found Prometheus away waits as the agent's pending attempt until it
// answers (finishPending).

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
)

// Steps of an apply, as used in metrics and status.
const (
	stepFetch    = "fetch"
	stepStage    = "stage"
	stepValidate = "validate"
	stepSwitch   = "switch"
	stepReload   = "reload"
	stepVerify   = "verify"
	stepRollback = "rollback"
)

// attempt is one try to bring a revision live, from its start to its
// report.
type attempt struct {
	rev    int
	canary bool // rev is this member's canary revision
	leader bool // the leader variant (false once rev turns out to have no leader.yml)
	// local: a switch of variant from the files on disk (an HA
	// step-down) that must not wait for ZooKeeper: the status is
	// published with a short timeout (and again when the session is back).
	local bool

	prev     int    // the revision applied before
	prevLink string // what DIR/current switches back to on failure ("": nothing)
	checksum string // of the bundle as pushed, once fetched

	start    time.Time
	steps    map[string]time.Duration // by step
	swapped  bool                     // DIR/current may no longer be prevLink: switch back on failure
	switched time.Time                // when DIR/current was switched

	// Once reported:
	total time.Duration
	err   error // nil: applied and verified
}

// applyReport describes the last apply (for benchmarks and logs).
type applyReport struct {
	Revision int
	Noticed  time.Time                // when the agent learned about the revision
	Steps    map[string]time.Duration // by step
	Total    time.Duration
	Err      error
}

// lastReport returns the report of the last apply.
func (a *Agent) lastReport() applyReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	at := a.last
	if at == nil {
		return applyReport{}
	}
	return applyReport{Revision: at.rev, Noticed: a.noticed[at.rev], Steps: at.steps, Total: at.total, Err: at.err}
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

// newAttempt starts an attempt at rev: the variant this agent's HA role
// wants, and what to switch back to on failure.
func (a *Agent) newAttempt(rev int, canary, local bool) *attempt {
	at := &attempt{rev: rev, canary: canary, local: local, start: time.Now(), steps: map[string]time.Duration{}}
	a.mu.Lock()
	at.prev = a.state.Applied
	a.mu.Unlock()
	at.leader = a.fleet.leading() // the leader of an HA group runs the leader variant
	// What to switch back to: the last verified revision (the variant
	// live now), or whatever the link pointed at before the agent's first
	// apply (a bootstrap file).
	prev := at.prev
	if t := a.disk.linkTarget(); prev != 0 && t != relVariantDir(rev, at.leader) && (t == relRevDir(prev) || t == relVariantDir(prev, true)) {
		at.prevLink = t
	} else if _, err := os.Stat(a.disk.revDir(prev)); prev != 0 && err == nil {
		at.prevLink = relRevDir(prev)
	} else if t := a.disk.linkTarget(); t != "" && t != relRevDir(rev) && t != relVariantDir(rev, true) {
		at.prevLink = t
	}
	return at
}

// timed runs one step of at and records its duration.
func (a *Agent) timed(at *attempt, step string, f func() error) error {
	t := time.Now()
	err := f()
	d := time.Since(t)
	at.steps[step] = d
	a.m.stepDuration.WithLabelValues(step).Observe(d.Seconds())
	if err != nil {
		return &stepError{step: step, err: err}
	}
	return nil
}

// report changes the status while at runs.
func (a *Agent) report(ctx context.Context, at *attempt, f func(*configstore.Status)) {
	a.updateStatus(ctx, at.local, f)
}

// apply brings revision rev live. It returns true when it should be
// retried later (transient trouble), false when done or failed for good.
func (a *Agent) apply(ctx context.Context, rev int, canary bool) bool {
	return a.carry(ctx, a.newAttempt(rev, canary, false))
}

// carry takes at through its stages; it returns what apply returns.
func (a *Agent) carry(ctx context.Context, at *attempt) bool {
	a.logger.Info("applying revision", "revision", at.rev, "previous", at.prev, "canary", at.canary)
	a.report(ctx, at, func(s *configstore.Status) {
		s.Target, s.Canary, s.State = at.rev, at.canary, configstore.StateApplying
	})

	var b *bundle.Bundle
	if err := a.timed(at, stepFetch, func() (err error) {
		var meta configstore.Meta
		meta, b, err = a.fetchRevision(ctx, at.rev, at.leader)
		at.checksum = meta.Checksum
		return err
	}); err != nil {
		a.m.failures.WithLabelValues(stepFetch).Inc()
		a.logger.Warn("could not fetch revision; retrying", "revision", at.rev, "err", err)
		a.report(ctx, at, func(s *configstore.Status) {
			s.State = a.restState(s)
			if errors.Is(err, errNotAllowed) {
				s.Error = err.Error() // for the writer's push --wait and status
			}
		})
		return true
	}
	if _, ok := b.Files[bundle.LeaderFile]; !ok {
		at.leader = false // no overlay in this revision: one variant for all
	}
	if err := a.timed(at, stepStage, func() error {
		return a.stageRevision(at.rev, at.leader, at.checksum, b)
	}); err != nil {
		return a.fail(ctx, at, err)
	}
	if err := a.timed(at, stepValidate, func() error {
		if _, err := bundle.ValidateDir(ctx, a.disk.variantDir(at.rev, at.leader), a.cfg.Promtool); err != nil {
			return err
		}
		return bundle.ValidateFleetDir(a.disk.variantDir(at.rev, at.leader), a.fleet.cfg.ZooKeeper)
	}); err != nil {
		return a.fail(ctx, at, err)
	}
	if at.leader && !a.fleet.leading() {
		// Leadership ended during the apply: never switch to the overlay
		// without it; the next step applies the follower variant.
		a.logger.Info("lost HA leadership before the switch; not applying the overlay", "revision", at.rev)
		a.report(ctx, at, func(s *configstore.Status) { s.State = a.restState(s) })
		return true
	}
	at.swapped = true
	var before reloadState
	if err := a.timed(at, stepSwitch, func() error {
		before, _ = a.reloadState(ctx) // unread when Prometheus does not answer: see reloadSwitched
		return a.disk.linkTo(relVariantDir(at.rev, at.leader))
	}); err != nil {
		return a.fail(ctx, at, err)
	}
	at.switched = time.Now()
	err := a.timed(at, stepReload, func() error {
		flags, err := a.checkPrometheus(ctx)
		if err != nil {
			return err
		}
		before, err = a.reloadSwitched(ctx, before, flags.AutoReload)
		return err
	})
	if errors.Is(err, prom.ErrUnreachable) {
		// Prometheus is not up (yet): the files are in place; it reads them
		// when it starts. Verify once it answers.
		a.mu.Lock()
		a.pending = at
		a.mu.Unlock()
		a.logger.Info("Prometheus does not answer; revision laid down, will verify when it does", "revision", at.rev, "err", err)
		a.report(ctx, at, func(s *configstore.Status) { s.State = configstore.StateWaiting; s.Error = "" })
		return true
	}
	if err != nil {
		return a.fail(ctx, at, err)
	}
	var after prom.RuntimeInfo
	if err := a.timed(at, stepVerify, func() (err error) {
		after, err = a.verify(ctx, before)
		return err
	}); err != nil {
		return a.fail(ctx, at, err)
	}
	a.succeed(ctx, at, after)
	return false
}

// fetchRevision returns revision rev: from the disk when the wanted
// variant of the applied revision is complete there (no ZooKeeper
// needed), else from ZooKeeper.
func (a *Agent) fetchRevision(ctx context.Context, rev int, leader bool) (configstore.Meta, *bundle.Bundle, error) {
	a.mu.Lock()
	applied, checksum := a.state.Applied, a.state.Checksum
	a.mu.Unlock()
	// Both variants on disk (the plain one is the source: the leader's
	// prometheus.yml has the overlay merged in): nothing to stage.
	if rev == applied && checksum != "" && a.disk.completeVariant(rev, false, checksum) &&
		(!leader || a.disk.completeVariant(rev, true, checksum)) {
		if b, err := bundle.LoadDir(a.disk.revDir(rev)); err == nil {
			return configstore.Meta{Revision: rev, Checksum: checksum}, b, nil
		}
	}
	if _, err := a.checkAccess(ctx); err != nil {
		return configstore.Meta{}, nil, err
	}
	return a.revisions.Revision(ctx, rev)
}

// stageRevision lays down the wanted variant of rev; with the leader
// variant it also lays down the plain one, so that stepping down never
// needs ZooKeeper.
func (a *Agent) stageRevision(rev int, leader bool, checksum string, bundle *bundle.Bundle) error {
	for _, v := range []bool{leader, false} {
		if a.disk.completeVariant(rev, v, checksum) {
			continue
		}
		r, err := renderVariant(bundle, a.variantVars(rev, v), v)
		if err != nil {
			return err
		}
		if err := a.disk.stageVariant(rev, v, checksum, a.cfg.Member, r); err != nil {
			return err
		}
		if !leader {
			break
		}
	}
	return nil
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

// succeed reports at applied and verified (ri: what Prometheus said).
func (a *Agent) succeed(ctx context.Context, at *attempt, ri prom.RuntimeInfo) {
	at.total = time.Since(at.start)
	a.m.stepDuration.WithLabelValues("total").Observe(at.total.Seconds())
	a.m.applies.Inc()
	st := savedState{Applied: at.rev, Checksum: at.checksum, AppliedAt: time.Now().UTC()}
	if err := a.disk.writeState(st); err != nil {
		a.logger.Error("could not record the applied revision", "err", err)
	}
	if err := a.disk.prune(a.cfg.KeepRevisions, at.rev, at.prev); err != nil {
		a.logger.Warn("could not prune revision directories", "err", err)
	}
	a.logger.Info("applied revision", "revision", at.rev, "previous", at.prev, "duration", at.total, "steps", stepsText(at.steps))
	a.report(ctx, at, func(s *configstore.Status) {
		a.state, a.last, a.pending = st, at, nil
		s.State, s.Target, s.Canary, s.Error = configstore.StateApplied, at.rev, at.canary, ""
		s.LastReload, s.ReloadSuccessful = ri.LastConfigTime, ri.ReloadConfigSuccess
	})
}

// stepsText lists step durations in the order of an apply.
func stepsText(steps map[string]time.Duration) string {
	var parts []string
	for _, s := range []string{stepFetch, stepStage, stepValidate, stepSwitch, stepReload, stepVerify} {
		if d, ok := steps[s]; ok {
			parts = append(parts, fmt.Sprintf("%s=%s", s, d.Round(time.Millisecond)))
		}
	}
	return strings.Join(parts, " ")
}

// fail reports a failed attempt: when the switch happened, it switches
// back to the previous revision, reloads and verifies Prometheus on it,
// then reports the failure with Prometheus's text. It returns false (not
// to be retried).
func (a *Agent) fail(ctx context.Context, at *attempt, err error) bool {
	step := stepStage
	var se *stepError
	if errors.As(err, &se) {
		step = se.step
	}
	msg := errorText(err)
	a.m.failures.WithLabelValues(step).Inc()
	a.logger.Error("revision refused; rolling back", "revision", at.rev, "step", step, "err", msg)
	var ri prom.RuntimeInfo
	if at.swapped {
		ri, err = a.switchBack(ctx, at.prevLink)
		if err != nil {
			a.m.failures.WithLabelValues(stepRollback).Inc()
			msg += "; AND rolling back to revision " + fmt.Sprint(at.prev) + " failed: " + errorText(err)
			a.logger.Error("rollback failed", "previous", at.prev, "err", err)
		}
	}
	at.total, at.err = time.Since(at.start), errors.New(msg)
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	st.FailedRevision, st.FailedStep, st.FailedError = at.rev, step, msg
	if err := a.disk.writeState(st); err != nil {
		a.logger.Error("could not record the failed revision", "err", err)
	}
	a.report(ctx, at, func(s *configstore.Status) {
		a.state, a.last = st, at
		s.State, s.Target, s.Canary, s.Error = configstore.StateFailed, at.rev, at.canary, msg
		if at.swapped && !ri.LastConfigTime.IsZero() {
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
	a.setStatus(ctx, func(s *configstore.Status) {
		// rev is the applied revision: the status takes it from the state.
		s.State, s.Target, s.Canary = configstore.StateApplied, rev, canary
		s.LastReload, s.ReloadSuccessful = ri.LastConfigTime, ri.ReloadConfigSuccess
	})
	return false
}

// finishPending verifies the pending attempt, switched while Prometheus
// was down; canary is what this member's revision is now.
func (a *Agent) finishPending(ctx context.Context, canary bool) bool {
	a.mu.Lock()
	at := a.pending
	a.mu.Unlock()
	at.canary, at.local = canary, false
	rs, err := a.reloadState(ctx)
	if err != nil {
		return true
	}
	if _, err := a.checkPrometheus(ctx); err != nil {
		if errors.Is(err, prom.ErrUnreachable) {
			return true
		}
		a.dropPending()
		return a.fail(ctx, at, &stepError{step: stepReload, err: err})
	}
	if rs.healthy() && rs.lastSuccess.After(at.switched) {
		// Prometheus started after the switch and loaded the new files.
		a.succeed(ctx, at, rs.ri)
		return false
	}
	if err := a.prom.Reload(ctx); err != nil {
		if errors.Is(err, prom.ErrUnreachable) {
			return true
		}
		a.dropPending()
		return a.fail(ctx, at, &stepError{step: stepReload, err: err})
	}
	after, err := a.verify(ctx, rs)
	a.dropPending()
	if err != nil {
		return a.fail(ctx, at, &stepError{step: stepVerify, err: err})
	}
	a.succeed(ctx, at, after)
	return false
}

func (a *Agent) dropPending() {
	a.mu.Lock()
	a.pending = nil
	a.mu.Unlock()
}
