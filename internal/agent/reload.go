// Asking Prometheus about reloads: its reload state, verifying a reload,
// switching back to the previous revision, and checking that it reads
// DIR/current/prometheus.yml at all.

package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
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

// switchBack points DIR/current at prev again, reloads and verifies.
func (a *Agent) switchBack(ctx context.Context, prevLink string) (prom.RuntimeInfo, error) {
	ctx = context.WithoutCancel(ctx)
	t := time.Now()
	defer func() { a.m.stepDuration.WithLabelValues(stepRollback).Observe(time.Since(t).Seconds()) }()
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
