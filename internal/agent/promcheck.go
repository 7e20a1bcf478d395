// What the agent checks of its Prometheus before each reload: that it
// runs DIR/current/prometheus.yml, whether it reloads by itself
// (--config.auto-reload), and whether the promtool that validates the
// revisions is of its release.

package agent

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
)

// checkPrometheus reads Prometheus's flags and version and returns the
// flags; what changed since the last look is logged once and shown in
// the status (published with the attempt's next report) and the metrics.
func (a *Agent) checkPrometheus(ctx context.Context) (prom.RunFlags, error) {
	flags, err := a.prom.RunFlags(ctx)
	if err != nil {
		return flags, err
	}
	if err := a.checkConfigFile(flags.ConfigFile); err != nil {
		return flags, err
	}
	v, err := a.prom.BuildVersion(ctx)
	if err != nil {
		a.logger.Debug("could not read Prometheus's version", "err", err)
	}
	tool, checked := a.promtoolVersion(ctx)
	seen := configstore.Status{PrometheusVersion: v.String(), AutoReload: flags.AutoReload}
	if checked {
		seen.PromtoolVersion = tool.String()
		if v.Known() && tool.Known() && !v.SameRelease(tool) {
			seen.VersionWarning = fmt.Sprintf("promtool %s validates the revisions, but Prometheus at %s is %s: a bundle valid for one release can be refused by the other (give the agent the promtool of Prometheus's release, --promtool)",
				tool, a.prom.URL(), v)
		}
	}
	a.mu.Lock()
	st := &a.status
	changed := st.PrometheusVersion != seen.PrometheusVersion || st.PromtoolVersion != seen.PromtoolVersion || st.AutoReload != seen.AutoReload
	st.PrometheusVersion, st.PromtoolVersion, st.VersionWarning, st.AutoReload = seen.PrometheusVersion, seen.PromtoolVersion, seen.VersionWarning, seen.AutoReload
	a.mu.Unlock()
	if changed {
		a.logger.Info("Prometheus", "url", a.prom.URL(), "version", seen.PrometheusVersion, "promtool", seen.PromtoolVersion, "auto_reload", seen.AutoReload)
		if seen.VersionWarning != "" {
			a.logger.Warn(seen.VersionWarning)
		}
	}
	return flags, nil
}

// promtoolVersion is the version of the agent's promtool, asked once
// (checked is false with --promtool=none).
func (a *Agent) promtoolVersion(ctx context.Context) (v prom.Version, checked bool) {
	if a.cfg.Promtool == "none" {
		return prom.Version{}, false
	}
	a.mu.Lock()
	known := a.toolVersion
	a.mu.Unlock()
	if known != nil {
		return *known, true
	}
	tool := a.cfg.Promtool
	if tool == "" {
		tool = DefaultPromtool
	}
	v, err := prom.BinaryVersion(ctx, tool)
	if err != nil {
		a.logger.Warn("could not read promtool's version", "promtool", tool, "err", err)
	}
	a.mu.Lock()
	a.toolVersion = &v
	a.mu.Unlock()
	return v, true
}

// checkConfigFile makes sure Prometheus runs DIR/current/prometheus.yml
// (got is its --config.file): otherwise a reload would "succeed" without
// it ever reading a revision.
func (a *Agent) checkConfigFile(got string) error {
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
