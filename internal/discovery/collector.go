package discovery

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector reports the discovery's own state, read fresh on every
// scrape.
type collector struct{ m *Manager }

var (
	descMembers = prometheus.NewDesc("zkprom_sd_members",
		"Znodes that hold a valid member, per job (after the first complete sync).", []string{"job", "format"}, nil)
	descTargets = prometheus.NewDesc("zkprom_sd_targets",
		"Targets in the job's output (after filters and de-duplication).", []string{"job", "format"}, nil)
	descInvalid = prometheus.NewDesc("zkprom_sd_invalid_members",
		"Znodes skipped now because they do not parse, by reason.", []string{"job", "format", "reason"}, nil)
	descInvalidTotal = prometheus.NewDesc("zkprom_sd_invalid_members_total",
		"Times a znode was skipped because it did not parse, by reason.", []string{"job", "format", "reason"}, nil)
	descStale = prometheus.NewDesc("zkprom_sd_stale",
		"1 while the job serves its last good list because ZooKeeper cannot be read (disconnected, no quorum, resyncing).", []string{"job"}, nil)
	descSynced = prometheus.NewDesc("zkprom_sd_synced",
		"1 once the job completed its first sync (before that, /sd/<job> answers 503 and no file is written).", []string{"job"}, nil)
	descLastUpdate = prometheus.NewDesc("zkprom_sd_last_update_timestamp_seconds",
		"When the job's output last changed.", []string{"job"}, nil)
	descSyncDuration = prometheus.NewDesc("zkprom_sd_sync_duration_seconds",
		"Time the job's first complete sync took (session set-up included).", []string{"job"}, nil)
	descWrites = prometheus.NewDesc("zkprom_sd_file_writes_total",
		"file_sd files written (only when the content changed).", []string{"job"}, nil)
	descWriteErrors = prometheus.NewDesc("zkprom_sd_file_write_errors_total",
		"file_sd files that could not be written.", []string{"job"}, nil)
	descReloadOK = prometheus.NewDesc("zkprom_sd_config_last_reload_successful",
		"Whether the last configuration reload succeeded.", nil, nil)
	descReloadTime = prometheus.NewDesc("zkprom_sd_config_last_reload_success_timestamp_seconds",
		"When the configuration was last loaded successfully.", nil, nil)
)

var allDescs = []*prometheus.Desc{descMembers, descTargets, descInvalid, descInvalidTotal, descStale, descSynced,
	descLastUpdate, descSyncDuration, descWrites, descWriteErrors, descReloadOK, descReloadTime}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.mu.Lock()
	jobs := make([]*job, 0, len(m.jobs))
	for _, rj := range m.jobs {
		jobs = append(jobs, rj.j)
	}
	ok, t := m.reloadOK, m.reloadTime
	m.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	if !t.IsZero() || !ok {
		gauge(descReloadOK, b2f(ok))
	}
	if !t.IsZero() {
		gauge(descReloadTime, float64(t.UnixNano())/1e9)
	}
	for _, j := range jobs {
		name, format := j.cfg.Name, j.cfg.Format
		j.mu.Lock()
		gauge(descSynced, b2f(j.synced), name)
		gauge(descStale, b2f(j.stale), name)
		if j.synced {
			gauge(descMembers, float64(j.members()), name, format)
			gauge(descTargets, float64(j.nTargets), name, format)
			gauge(descLastUpdate, float64(j.lastUpdate.UnixNano())/1e9, name)
			gauge(descSyncDuration, j.syncDuration.Seconds(), name)
			now := map[string]float64{}
			for _, r := range j.invalid {
				now[r]++
			}
			for _, r := range reasons {
				gauge(descInvalid, now[r], name, format, r)
			}
		}
		for _, r := range reasons {
			ch <- prometheus.MustNewConstMetric(descInvalidTotal, prometheus.CounterValue, j.invalidTotal[r], name, format, r)
		}
		j.mu.Unlock()
		if m.opts.FileSDDir != "" {
			m.fmu.Lock()
			w, e := m.writes[name], m.writeErrs[name]
			m.fmu.Unlock()
			ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, w, name)
			ch <- prometheus.MustNewConstMetric(descWriteErrors, prometheus.CounterValue, e, name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
