package agent

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/configstore"
)

type metrics struct {
	applies      prometheus.Counter
	failures     *prometheus.CounterVec
	stepDuration *prometheus.HistogramVec
}

// Metric descriptions of the state collector (read at every scrape).
var (
	descApplied = prometheus.NewDesc("zkprom_agent_applied_revision",
		"Revision applied and verified on this Prometheus (absent until one is).", []string{"cluster", "member"}, nil)
	descTarget = prometheus.NewDesc("zkprom_agent_target_revision",
		"Revision this member should run (from the current or canary pointer; absent while unknown).", []string{"cluster", "member"}, nil)
	descState = prometheus.NewDesc("zkprom_agent_state",
		"1 for the agent's current state.", []string{"cluster", "member", "state"}, nil)
	descLastReload = prometheus.NewDesc("zkprom_agent_last_reload_timestamp_seconds",
		"Prometheus's lastConfigTime after the last verified reload.", []string{"cluster", "member"}, nil)
	descVersionMismatch = prometheus.NewDesc("zkprom_agent_promtool_version_mismatch",
		"1 when the agent's promtool is not of the major.minor release of the Prometheus it validates for, 0 when it is or a version is unknown (absent until the agent has looked, and with --promtool=none).",
		[]string{"cluster", "member", "prometheus_version", "promtool_version"}, nil)
	descAutoReload = prometheus.NewDesc("zkprom_agent_prometheus_auto_reload",
		"1 when Prometheus runs with --config.auto-reload and reloads by itself when its files change (absent until the agent has looked).", []string{"cluster", "member"}, nil)
)

var allStates = []string{configstore.StateStarting, configstore.StateApplying, configstore.StateApplied, configstore.StateFailed, configstore.StateWaiting}

func newMetrics(reg prometheus.Registerer, a *Agent) (*metrics, error) {
	m := &metrics{
		applies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zkprom_agent_applies_total", Help: "Revisions applied and verified.",
			ConstLabels: prometheus.Labels{"cluster": a.cfg.Cluster, "member": a.cfg.Member},
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkprom_agent_apply_failures_total", Help: "Failed applies by reason (the step that failed: fetch, stage, validate, switch, reload, verify, rollback).",
			ConstLabels: prometheus.Labels{"cluster": a.cfg.Cluster, "member": a.cfg.Member},
		}, []string{"reason"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "zkprom_agent_apply_duration_seconds", Help: "Duration of the steps of an apply (fetch, stage, validate, switch, reload, verify, rollback) and of the whole (total).",
			ConstLabels: prometheus.Labels{"cluster": a.cfg.Cluster, "member": a.cfg.Member},
			Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"step"}),
	}
	for _, r := range []string{stepFetch, stepStage, stepValidate, stepSwitch, stepReload, stepVerify, stepRollback} {
		m.failures.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.applies, m.failures, m.stepDuration, stateCollector{a}} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register agent metrics: %w", err)
			}
		}
	}
	return m, nil
}

// stateCollector reports the agent's state at scrape time.
type stateCollector struct{ a *Agent }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descApplied
	ch <- descTarget
	ch <- descState
	ch <- descLastReload
	ch <- descVersionMismatch
	ch <- descAutoReload
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Status()
	l := []string{st.Cluster, st.Member}
	if st.Revision != 0 {
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(st.Revision), l...)
	}
	if st.Target != 0 {
		ch <- prometheus.MustNewConstMetric(descTarget, prometheus.GaugeValue, float64(st.Target), l...)
	}
	for _, s := range allStates {
		v := 0.0
		if s == st.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.Cluster, st.Member, s)
	}
	if !st.LastReload.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastReload, prometheus.GaugeValue, float64(st.LastReload.UnixNano())/1e9, l...)
	}
	if st.PrometheusVersion != "" {
		ch <- prometheus.MustNewConstMetric(descAutoReload, prometheus.GaugeValue, b2f(st.AutoReload), l...)
	}
	if st.PromtoolVersion != "" {
		ch <- prometheus.MustNewConstMetric(descVersionMismatch, prometheus.GaugeValue, b2f(st.VersionWarning != ""),
			st.Cluster, st.Member, st.PrometheusVersion, st.PromtoolVersion)
	}
}

// DocumentMetrics makes every metric of the agent visible in a Gather
// (each label value once), for generated documentation.
func (a *Agent) DocumentMetrics() {
	a.m.stepDuration.WithLabelValues("total")
	a.mu.Lock()
	a.state.Applied = 1
	a.status.Target, a.status.LastReload = 1, a.status.Started
	a.status.PrometheusVersion, a.status.PromtoolVersion = "3.16.0", "2.42.0"
	a.syncStatus()
	a.mu.Unlock()
	a.fleet.documentFleet()
}
