// Asking Prometheus about reloads: its reload state, reloading the files
// just switched to, verifying a reload, switching back to the previous
// revision.

package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zkprom/zkprom/internal/prom"
)

// reloadState is what Prometheus says about its configuration: the
// metric's timestamp has sub-second precision, runtimeinfo's
// lastConfigTime only seconds.
type reloadState struct {
	ri          prom.RuntimeInfo
	ok          bool      // prometheus_config_last_reload_successful
	lastSuccess time.Time // prometheus_config_last_reload_success_timestamp_seconds
}

// read reports whether the state was read (a Prometheus that answers has
// loaded a configuration at least once).
func (s reloadState) read() bool { return !s.lastSuccess.IsZero() }

// healthy reports whether Prometheus says its last reload succeeded (the
// metric and runtimeinfo).
func (s reloadState) healthy() bool { return s.ok && s.ri.ReloadConfigSuccess }

// reloadedSince reports whether Prometheus has reloaded, successfully or
// not, since the healthy state before.
func (s reloadState) reloadedSince(before reloadState) bool {
	return !s.healthy() || s.lastSuccess.After(before.lastSuccess)
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
	wasFailing := !before.healthy()
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

// reloadSwitched has Prometheus load the files DIR/current was just
// switched to, and returns the state verify compares with. before is the
// state read before the switch (unread when Prometheus did not answer
// then: it is read now). A Prometheus with --config.auto-reload may have
// reloaded the switched files by itself already (its poll came between
// the switch and now): that reload, or its failure, is the outcome, and
// the agent does not ask for a second one. Only a healthy Prometheus is
// judged so: after a failed reload it polls again even without a change.
func (a *Agent) reloadSwitched(ctx context.Context, before reloadState, autoReload bool) (reloadState, error) {
	if !before.read() {
		var err error
		if before, err = a.reloadState(ctx); err != nil {
			return before, err
		}
	} else if autoReload && before.healthy() {
		if now, err := a.reloadState(ctx); err == nil && now.reloadedSince(before) {
			a.logger.Info("Prometheus reloaded the switched files by itself (--config.auto-reload); not asking again")
			return before, nil
		}
	}
	return before, a.prom.Reload(ctx)
}

// switchTo points DIR/current at target, has Prometheus reload and
// verifies the reload.
func (a *Agent) switchTo(ctx context.Context, target string) (prom.RuntimeInfo, error) {
	before, _ := a.reloadState(ctx) // unread when Prometheus does not answer: see reloadSwitched
	if err := a.disk.linkTo(target); err != nil {
		return prom.RuntimeInfo{}, fmt.Errorf("switch %s to %s: %w", currentLink, target, err)
	}
	before, err := a.reloadSwitched(ctx, before, a.Status().AutoReload)
	if err != nil {
		return prom.RuntimeInfo{}, err
	}
	return a.verify(ctx, before)
}

// switchBack points DIR/current at prev again, reloads and verifies.
func (a *Agent) switchBack(ctx context.Context, prevLink string) (prom.RuntimeInfo, error) {
	ctx = context.WithoutCancel(ctx)
	t := time.Now()
	defer func() { a.m.stepDuration.WithLabelValues(stepRollback).Observe(time.Since(t).Seconds()) }()
	if prevLink == "" {
		return prom.RuntimeInfo{}, a.disk.linkTo("")
	}
	return a.switchTo(ctx, prevLink)
}
