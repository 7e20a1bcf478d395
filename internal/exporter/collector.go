// Package exporter is zkprom's ZooKeeper exporter: it asks every server of
// the configured ensembles (AdminServer or four-letter words, chosen per
// server), each within a hard deadline and all in parallel, and turns the
// answers into typed metrics, liveness facts and a view of the ensemble's
// quorum.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Exporter holds the configured ensembles and the exporter's own
// long-lived metrics. Scrapes build their metrics fresh.
type Exporter struct {
	logger *slog.Logger
	series *seriesCache

	scrapeErrors    *prometheus.CounterVec
	refusedSeries   prometheus.Counter
	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge

	mu        sync.RWMutex
	ensembles []*ensemble
	probe     *ensemble // settings for /probe?target= of unconfigured servers: no client certificate
	policy    ProbePolicy
	probing   chan struct{} // one token per /probe being served

	downMu sync.Mutex
	down   map[string]bool // servers last seen unreachable, to log changes only

	errMu       sync.Mutex
	errSeries   map[errKey]bool // (ensemble, server) pairs with scrape error series
	probeSeries int             // of them, servers outside the configured ensembles
}

// errKey names the series of one server in the scrape error counter:
// the ensemble whose settings were used ("" for /probe?target= servers
// that no configured ensemble lists) and the server.
type errKey struct{ ensemble, server string }

// New builds an exporter for cfg. probeDefaults gives the settings
// (timeout, TLS, AdminServer port) used for /probe?target= servers that
// are in no configured ensemble; its Name and Servers are ignored, and so
// is its client certificate: it is presented only to the servers of the
// ensemble it is configured for.
func New(cfg *Config, probeDefaults EnsembleConfig, logger *slog.Logger, reg prometheus.Registerer) (*Exporter, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	x := &Exporter{
		logger: logger,
		series: newSeriesCache(),
		scrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "scrape_errors_total",
			Help: "Commands to a ZooKeeper server that failed, by source (admin, fourletter) and reason (timeout, connection_refused, connection_reset, tls, http_status, parse, too_large, canceled, other).",
		}, []string{"ensemble", "server", "source", "reason"}),
		refusedSeries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "refused_series_total",
			Help: "Series of an answer left out of a scrape because a label value is not valid UTF-8.",
		}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or failed (0).",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration load.",
		}),
	}
	probeDefaults.Name, probeDefaults.Servers = "probe", "localhost:2181"
	probeDefaults.TLS.CertFile, probeDefaults.TLS.KeyFile = "", ""
	probe, err := newEnsemble(probeDefaults, logger)
	if err != nil {
		return nil, fmt.Errorf("probe settings: %w", err)
	}
	x.probe = probe
	if err := x.ApplyConfig(cfg); err != nil {
		return nil, err
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{x.scrapeErrors, x.refusedSeries, x.reloadSuccess, x.reloadTimestamp} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register exporter metrics: %w", err)
			}
		}
	}
	return x, nil
}

// ApplyConfig replaces the ensembles (validated first; on error nothing
// changes) and sets the reload gauges.
func (x *Exporter) ApplyConfig(cfg *Config) error {
	if cfg == nil {
		cfg = &Config{}
	}
	var ens []*ensemble
	err := cfg.Validate()
	if err == nil {
		for _, c := range cfg.Ensembles {
			e, eerr := newEnsemble(c, x.logger)
			if eerr != nil {
				err = eerr
				break
			}
			ens = append(ens, e)
		}
	}
	if err != nil {
		for _, e := range ens {
			e.close()
		}
		x.reloadSuccess.Set(0)
		return fmt.Errorf("apply exporter config: %w", err)
	}
	x.mu.Lock()
	old := x.ensembles
	x.ensembles = ens
	if x.probing == nil || cap(x.probing) != cfg.Probe.MaxConcurrent {
		x.probing = make(chan struct{}, cfg.Probe.MaxConcurrent)
	}
	x.policy = cfg.Probe
	x.mu.Unlock()
	for _, e := range old {
		e.close()
	}
	x.dropErrorSeries(ens)
	x.reloadSuccess.Set(1)
	x.reloadTimestamp.SetToCurrentTime()
	return nil
}

// Close ends the ensembles' sessions and idle connections.
func (x *Exporter) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range x.ensembles {
		e.close()
	}
	x.ensembles = nil
	x.probe.close()
}

// Ensembles returns the names of the configured ensembles.
func (x *Exporter) Ensembles() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for _, e := range x.ensembles {
		out = append(out, e.cfg.Name)
	}
	return out
}

func (x *Exporter) ensemble(name string) *ensemble {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, e := range x.ensembles {
		if e.cfg.Name == name {
			return e
		}
	}
	return nil
}

// ErrUnknownEnsemble is a /probe?ensemble= name that is not configured.
var ErrUnknownEnsemble = errors.New("unknown ensemble")

// ensembleScrape scrapes the given configured ensembles (all when names
// is empty), with the ensemble view. The scrape honours ctx.
func (x *Exporter) ensembleScrape(ctx context.Context, names ...string) (*scrape, error) {
	var ens []*ensemble
	if len(names) == 0 {
		x.mu.RLock()
		ens = append(ens, x.ensembles...)
		x.mu.RUnlock()
	}
	for _, n := range names {
		e := x.ensemble(n)
		if e == nil {
			return nil, fmt.Errorf("%w %q (configured: %s)", ErrUnknownEnsemble, n, strings.Join(x.Ensembles(), ", "))
		}
		ens = append(ens, e)
	}
	return &scrape{ctx: ctx, x: x, ensembles: ens, series: x.series}, nil
}

// targetScrape scrapes one server, with the settings of the
// configured ensemble that lists it (or of module, when given), else the
// probe defaults. A server outside the configured ensembles must be
// allowed by the probe policy (else ErrNotAllowed), and never gets a
// configured client certificate. Its series carry only the server label.
func (x *Exporter) targetScrape(ctx context.Context, server, module string) (*scrape, error) {
	host, err := parseTarget(server)
	if err != nil {
		return nil, err
	}
	src := x.ensembleOf(server)
	listed := src != x.probe
	if module != "" {
		m := x.ensemble(module)
		if m == nil {
			return nil, fmt.Errorf("%w %q given as module (configured: %s)", ErrUnknownEnsemble, module, strings.Join(x.Ensembles(), ", "))
		}
		listed = slices.Contains(m.servers, server)
		src = m
	}
	x.mu.RLock()
	policy := x.policy
	x.mu.RUnlock()
	if !listed && !policy.allows(host) {
		return nil, fmt.Errorf("%w: %s is no server of a configured ensemble (%s) and not in the probe allow-list (probe.allow in the config file, --probe.allow); see docs/exporter.md",
			ErrNotAllowed, server, strings.Join(x.Ensembles(), ", "))
	}
	cfg := src.cfg
	cfg.Name, cfg.Servers, cfg.ZnodePaths = "probe", server, nil
	if u, ok := cfg.Admin.URLs[server]; ok {
		cfg.Admin.URLs = map[string]string{server: u}
	} else {
		cfg.Admin.URLs = nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("probe target %q: %w", server, err)
	}
	servers, _ := cfg.ServerList()
	if len(servers) != 1 {
		return nil, fmt.Errorf("probe target %q: give one host:port", server)
	}
	tlsConf, hc := src.tls, src.http
	if !listed {
		tlsConf, hc = x.probe.tls, x.probe.http // no client certificate outside its ensemble
	}
	e := &ensemble{cfg: cfg, servers: servers, tls: tlsConf, http: hc, logger: src.logger,
		adminSkip: map[string]time.Time{}, srvrAdmin: map[string]time.Time{}, voters: map[string]cachedVoters{}}
	origin := ""
	if listed {
		origin = src.cfg.Name
	}
	// A server outside the configured ensembles names its own metrics: they
	// are described per scrape, never kept.
	series := newSeriesCache()
	if listed {
		series = x.series
	}
	return &scrape{ctx: ctx, x: x, ensembles: []*ensemble{e}, single: true, closeAfter: true, origin: origin, series: series}, nil
}

// ensembleOf returns the first configured ensemble that lists server,
// else the probe defaults.
func (x *Exporter) ensembleOf(server string) *ensemble {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, e := range x.ensembles {
		for _, s := range e.servers {
			if s == server {
				return e
			}
		}
	}
	return x.probe
}

// scrape is one scrape of some ensembles.
type scrape struct {
	ctx        context.Context
	x          *Exporter
	ensembles  []*ensemble
	single     bool // one /probe?target= server: no ensemble label, no view
	closeAfter bool
	origin     string // single: the configured ensemble whose settings are used, "" none
	series     *seriesCache
}

// ensembleResult is what one scrape learnt of one ensemble.
type ensembleResult struct {
	e       *ensemble
	servers []*ServerResult
	znodes  []ZnodeCount
}

// collect asks the servers (and counts their failed commands): the one
// path from the servers to both the metrics and the status page.
func (c *scrape) collect() []ensembleResult {
	if c.closeAfter {
		defer func() {
			for _, e := range c.ensembles {
				e.close()
			}
		}()
	}
	out := make([]ensembleResult, len(c.ensembles))
	fns := make([]func(), len(c.ensembles))
	for i, e := range c.ensembles {
		out[i].e = e
		fns[i] = func() {
			parallel(
				func() { out[i].servers = e.scrape(c.ctx) },
				func() { out[i].znodes = e.znodeCounts(c.ctx) },
			)
		}
	}
	parallel(fns...)
	for _, res := range out {
		ensLabel := res.e.cfg.Name
		if c.single {
			ensLabel = c.origin
		}
		for _, r := range res.servers {
			c.x.countErrors(ensLabel, r)
		}
	}
	return out
}

// run asks the servers and returns what they said as a page.
func (c *scrape) run() *page {
	results := c.collect()
	servers := 0
	for _, r := range results {
		servers += len(r.servers)
	}
	p := newPage(servers)
	for _, res := range results {
		base := newEmitter(p, c.series)
		if !c.single {
			base = base.with("ensemble", res.e.cfg.Name)
		}
		for _, r := range res.servers {
			emitServer(base.with("server", r.Server), r, res.e.cfg.ConsLimit)
		}
		if !c.single {
			emitView(base, ensembleView(res.servers))
			emitZnodes(base, res.znodes)
		}
	}
	return p
}

// maxProbeSeries bounds the servers outside the configured ensembles that
// get their own scrape error series (a /probe allow-list, or any target):
// beyond, their errors are counted under server="other".
const maxProbeSeries = 100

// countErrors counts the failed commands of one server, scraped with the
// settings of the ensemble named ens ("" for the probe defaults).
func (x *Exporter) countErrors(ens string, r *ServerResult) {
	var first error
	server := r.Server
	for _, cmd := range r.Commands {
		if cmd.Err == nil {
			continue
		}
		x.errMu.Lock()
		if x.errSeries == nil {
			x.errSeries = map[errKey]bool{}
		}
		key := errKey{ens, server}
		if !x.errSeries[key] && ens == "" && x.probeSeries >= maxProbeSeries {
			key.server = "other"
		} else if !x.errSeries[key] && ens == "" {
			x.probeSeries++
		}
		x.errSeries[key] = true
		x.errMu.Unlock()
		if c, err := x.scrapeErrors.GetMetricWithLabelValues(key.ensemble, key.server, cmd.Source, errorReason(cmd.Err)); err == nil {
			c.Inc()
		}
		x.logger.Debug("command failed", "ensemble", ens, "server", server, "command", cmd.Command, "source", cmd.Source, "err", cmd.Err)
		if first == nil {
			first = cmd.Err
		}
	}
	if ens == "" {
		return // only configured servers are followed for the log below
	}
	// Say why a server is unreachable once, when it goes, and when it is
	// back, rather than on every scrape.
	x.downMu.Lock()
	was := x.down[server]
	if x.down == nil {
		x.down = map[string]bool{}
	}
	x.down[server] = !r.Up
	x.downMu.Unlock()
	switch {
	case !r.Up && !was:
		x.logger.Warn("ZooKeeper server unreachable", "server", server, "reason", errorReason(first), "err", first)
	case r.Up && was:
		x.logger.Info("ZooKeeper server reachable again", "server", server)
	}
}

// dropErrorSeries removes the scrape error series of servers that the
// ensembles ens no longer list (and of /probe?target= servers outside
// them), so that the counter's series follow the configuration and not
// every target ever probed.
func (x *Exporter) dropErrorSeries(ens []*ensemble) {
	keep := map[errKey]bool{}
	for _, e := range ens {
		for _, s := range e.servers {
			keep[errKey{e.cfg.Name, s}] = true
		}
	}
	x.errMu.Lock()
	defer x.errMu.Unlock()
	for k := range x.errSeries {
		if !keep[k] {
			x.scrapeErrors.DeletePartialMatch(prometheus.Labels{"ensemble": k.ensemble, "server": k.server})
			delete(x.errSeries, k)
		}
	}
	x.probeSeries = 0
}

// scrapeTimeout is the deadline for a scrape: Prometheus's
// X-Prometheus-Scrape-Timeout-Seconds minus a small offset.
func scrapeTimeout(header string) (time.Duration, bool) {
	var secs float64
	if _, err := fmt.Sscanf(header, "%g", &secs); err != nil || secs <= 0 {
		return 0, false
	}
	d := time.Duration(secs * float64(time.Second))
	off := min(d/10, 500*time.Millisecond)
	return d - off, true
}
