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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Exporter holds the configured ensembles and the exporter's own
// long-lived metrics. Scrapes build their metrics fresh.
type Exporter struct {
	logger *slog.Logger
	descs  *descCache

	scrapeErrors    *prometheus.CounterVec
	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge

	mu        sync.RWMutex
	ensembles []*ensemble
	probe     *ensemble // settings for /probe?target= of unconfigured servers
}

// New builds an exporter for cfg. probeDefaults gives the settings
// (timeout, TLS, AdminServer port) used for /probe?target= servers that
// are in no configured ensemble; its Name and Servers are ignored.
func New(cfg *Config, probeDefaults EnsembleConfig, logger *slog.Logger, reg prometheus.Registerer) (*Exporter, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	x := &Exporter{
		logger: logger,
		descs:  newDescCache(),
		scrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "scrape_errors_total",
			Help: "Commands to ZooKeeper servers that failed, by reason (timeout, connection_refused, tls, http_status, parse, ...).",
		}, []string{"reason"}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or failed (0).",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration load.",
		}),
	}
	for _, r := range []string{"timeout", "connection_refused", "tls", "http_status", "parse", "other"} {
		x.scrapeErrors.WithLabelValues(r)
	}
	probeDefaults.Name, probeDefaults.Servers = "probe", "localhost:2181"
	probe, err := newEnsemble(probeDefaults, logger)
	if err != nil {
		return nil, fmt.Errorf("probe settings: %w", err)
	}
	x.probe = probe
	if err := x.ApplyConfig(cfg); err != nil {
		return nil, err
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{x.scrapeErrors, x.reloadSuccess, x.reloadTimestamp} {
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
	x.mu.Unlock()
	for _, e := range old {
		e.close()
	}
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

// EnsembleCollector collects the given configured ensembles (all when
// names is empty), with the ensemble view. The scrape honours ctx.
func (x *Exporter) EnsembleCollector(ctx context.Context, names ...string) (prometheus.Collector, error) {
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
	return &collector{ctx: ctx, x: x, ensembles: ens}, nil
}

// TargetCollector collects one server, with the settings of the
// configured ensemble that lists it (or of module, when given), else the
// probe defaults. Its series carry only the server label. AdminServer
// connections are kept alive between probes.
func (x *Exporter) TargetCollector(ctx context.Context, server, module string) (prometheus.Collector, error) {
	src := x.probe
	if module != "" {
		if src = x.ensemble(module); src == nil {
			return nil, fmt.Errorf("%w %q given as module (configured: %s)", ErrUnknownEnsemble, module, strings.Join(x.Ensembles(), ", "))
		}
	} else {
		src = x.ensembleOf(server)
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
	e := &ensemble{cfg: cfg, servers: servers, tls: src.tls, http: src.http, logger: src.logger,
		adminSkip: map[string]time.Time{}, voters: map[string]cachedVoters{}}
	return &collector{ctx: ctx, x: x, ensembles: []*ensemble{e}, single: true, closeAfter: true}, nil
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

// collector is one scrape of some ensembles.
type collector struct {
	ctx        context.Context
	x          *Exporter
	ensembles  []*ensemble
	single     bool // one /probe?target= server: no ensemble label, no view
	closeAfter bool
}

// Describe sends nothing: families follow what the servers answer, so
// this is an unchecked collector.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.closeAfter {
		defer func() {
			for _, e := range c.ensembles {
				e.close()
			}
		}()
	}
	fns := make([]func(), len(c.ensembles))
	results := make([][]*ServerResult, len(c.ensembles))
	znodes := make([][]ZnodeCount, len(c.ensembles))
	for i, e := range c.ensembles {
		fns[i] = func() {
			parallel(
				func() { results[i] = e.scrape(c.ctx) },
				func() { znodes[i] = e.znodeCounts(c.ctx) },
			)
		}
	}
	parallel(fns...)
	for i, e := range c.ensembles {
		base := &emitter{ch: ch, cache: c.x.descs}
		if !c.single {
			base = base.with("ensemble", e.cfg.Name)
		}
		for _, r := range results[i] {
			c.x.countErrors(r)
			emitServer(base.with("server", r.Server), r, e.cfg.ConsLimit)
		}
		if !c.single {
			emitView(base, ensembleView(results[i]))
			emitZnodes(base, znodes[i])
		}
	}
}

func (x *Exporter) countErrors(r *ServerResult) {
	for _, cmd := range r.Commands {
		if cmd.Err != nil {
			x.scrapeErrors.WithLabelValues(errorReason(cmd.Err)).Inc()
			x.logger.Debug("command failed", "server", r.Server, "command", cmd.Command, "source", cmd.Source, "err", cmd.Err)
		}
	}
}

var serverStates = []string{"leader", "follower", "observer", "standalone", "looking", "other"}

// emitServer sends one server's series; unknown facts send nothing.
func emitServer(e *emitter, r *ServerResult, consLimit int) {
	e.gauge("zookeeper_up", "Whether the server answered at all (AdminServer or four-letter words).", boolValue(r.Up))
	if r.Ruok != nil {
		e.gauge("zookeeper_ruok", "Whether the server answered ruok with imok.", boolValue(*r.Ruok))
	}
	if r.Serving != nil {
		e.gauge("zookeeper_serving", "Whether the server serves requests (0: up but without a quorum).", boolValue(*r.Serving))
	}
	if r.ReadOnly != nil {
		e.gauge("zookeeper_read_only", "Whether the server is in read-only mode.", boolValue(*r.ReadOnly))
	}
	if r.State != "" {
		for _, s := range serverStates {
			e.gauge("zookeeper_server_state", "The server's state: 1 for the current one.", boolValue(r.State == s), "state", s)
		}
	}
	if r.Version != "" {
		v, _, _ := strings.Cut(r.Version, ",")
		v, _, _ = strings.Cut(v, "-")
		e.gauge("zookeeper_server_info", "The server's version (build is ZooKeeper's full version string).", 1,
			"version", strings.TrimSpace(v), "build", r.Version)
	}
	if r.HasZxid {
		e.gauge("zookeeper_zxid_epoch", "Epoch (high 32 bits) of the last zxid the server processed.", float64(r.Zxid>>32))
		e.gauge("zookeeper_zxid_sequence", "Counter (low 32 bits) of the last zxid the server processed.", float64(r.Zxid&0xffffffff))
	}
	if r.Stats != nil {
		emitStats(e, *r.Stats)
	}
	if r.Wchs != nil {
		e.gauge("zookeeper_wchs_connections", "Connections with watches (wchs).", r.Wchs.Connections)
		e.gauge("zookeeper_wchs_paths", "Paths watched (wchs).", r.Wchs.Paths)
		e.gauge("zookeeper_wchs_watches", "Watches in total (wchs).", r.Wchs.Watches)
	}
	if r.HasConns {
		emitConns(e, r.Conns, consLimit)
	}
	for _, s := range []string{SourceAdmin, SourceFourLetter} {
		e.gauge("zookeeper_exporter_source", "Where the server's data came from in this scrape (admin: AdminServer, fourletter: four-letter words).",
			boolValue(r.Source == s), "source", s)
	}
	for _, cmd := range r.Commands {
		e.gauge("zookeeper_exporter_command_success", "Whether a command to the server was answered in this scrape.",
			boolValue(cmd.Err == nil), "command", cmd.Command, "source", cmd.Source)
		e.gauge("zookeeper_exporter_command_duration_seconds", "How long a command to the server took in this scrape.",
			cmd.Duration.Seconds(), "command", cmd.Command, "source", cmd.Source)
	}
	for _, cmd := range r.Refused() {
		e.gauge("zookeeper_exporter_command_refused", "A four-letter word the server refused (not in 4lw.commands.whitelist): its data is missing, not zero.",
			1, "command", cmd)
	}
	e.gauge("zookeeper_exporter_server_scrape_success", "Whether every command of the chosen source was answered.", boolValue(r.Success()))
	e.gauge("zookeeper_exporter_server_scrape_duration_seconds", "How long asking the server took in this scrape.", r.Duration.Seconds())
}

// emitConns sends per-connection series for the busiest consLimit
// connections, and how many were left out.
func emitConns(e *emitter, conns []Connection, limit int) {
	sort.SliceStable(conns, func(i, j int) bool { return conns[i].PacketsReceived > conns[j].PacketsReceived })
	omitted := 0
	if len(conns) > limit {
		omitted = len(conns) - limit
		conns = conns[:limit]
	}
	seen := map[string]bool{}
	for _, c := range conns {
		if seen[c.Client] {
			continue
		}
		seen[c.Client] = true
		e.emit("zookeeper_connection_packets_received_total", "Packets received on a client connection (cons).", prometheus.CounterValue, c.PacketsReceived, "client", c.Client)
		e.emit("zookeeper_connection_packets_sent_total", "Packets sent on a client connection (cons).", prometheus.CounterValue, c.PacketsSent, "client", c.Client)
		e.gauge("zookeeper_connection_queued_requests", "Requests queued on a client connection (cons).", c.Queued, "client", c.Client)
		e.gauge("zookeeper_connection_max_latency_seconds", "Highest request latency on a client connection (cons).", c.MaxLatency/1000, "client", c.Client)
	}
	e.gauge("zookeeper_exporter_connections_omitted", "Client connections left out of the per-connection series by the cardinality limit.", float64(omitted))
}

func emitView(e *emitter, v View) {
	e.gauge("zookeeper_ensemble_servers", "Servers configured for the ensemble.", float64(v.Servers))
	e.gauge("zookeeper_ensemble_servers_up", "Servers that answered.", float64(v.ServersUp))
	if v.ServingKnown {
		e.gauge("zookeeper_ensemble_servers_serving", "Servers that serve requests.", float64(v.ServersServing))
	}
	if v.StateKnown {
		e.gauge("zookeeper_ensemble_leaders", "Servers that say they lead (must be 1: 0 is no leader, 2 or more a split brain; a standalone server counts).", float64(v.Leaders))
	}
	e.gauge("zookeeper_ensemble_voters", "Voting members of the ensemble (voting_view, else zk_quorum_size, else the configured non-observers).", float64(v.Voters))
	e.gauge("zookeeper_ensemble_quorum_size", "Voters needed for a quorum (a majority of the voters).", float64(v.QuorumSize))
	if v.ServingKnown && v.StateKnown {
		e.gauge("zookeeper_ensemble_failures_tolerated", "How many more voters can fail before the quorum is lost (serving voters minus the quorum; negative when lost).", float64(v.FailuresTolerated))
	}
	servers := make([]string, 0, len(v.ZxidLag))
	for s := range v.ZxidLag {
		servers = append(servers, s)
	}
	sort.Strings(servers)
	for _, s := range servers {
		e.gauge("zookeeper_ensemble_zxid_lag", "The leader's zxid counter minus the server's (same epoch only).", v.ZxidLag[s], "server", s)
	}
	e.gauge("zookeeper_ensemble_versions", "Distinct ZooKeeper versions running in the ensemble.", float64(len(v.Versions)))
}

func emitZnodes(e *emitter, counts []ZnodeCount) {
	for _, z := range counts {
		e.gauge("zookeeper_exporter_znode_read_success", "Whether the children of a configured znode could be counted.", boolValue(z.Err == nil), "path", z.Path)
		if z.Err == nil {
			e.gauge("zookeeper_znode_children", "Children of a configured znode.", float64(z.Children), "path", z.Path)
		}
	}
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
