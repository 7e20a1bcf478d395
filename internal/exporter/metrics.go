package exporter

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "zookeeper"

// counterKeys are the mntr keys that only grow (until a restart or srst);
// they are exported as counters named zookeeper_<key without _count>_total.
// Every other numeric key is a gauge.
var counterKeys = map[string]bool{
	"packets_received": true, "packets_sent": true, "auth_failed_count": true,
	"non_mtls_remote_conn_count": true, "non_mtls_local_conn_count": true,
	"fsync_threshold_exceed_count": true, "proposal_count": true,
	"outstanding_changes_removed": true, "outstanding_changes_queued": true,
	"throttled_ops": true, "stale_requests_dropped": true, "large_requests_rejected": true,
	"insecure_admin_count": true, "connection_rejected": true,
	"cnxn_closed_without_zk_server_running": true, "sessionless_connections_expired": true,
	"looking_count": true, "dead_watchers_queued": true, "dead_watchers_cleared": true,
	"stale_requests": true, "connection_drop_count": true,
	"learner_proposal_received_count": true, "learner_commit_received_count": true,
	"digest_mismatches_count": true, "response_packet_cache_hits": true,
	"response_packet_cache_misses": true, "response_packet_get_children_cache_hits": true,
	"response_packet_get_children_cache_misses": true, "bytes_received_count": true,
	"add_dead_watcher_stall_time": true, "request_throttle_wait_count": true,
	"requests_not_forwarded_to_commit_processor": true, "ensemble_auth_success": true,
	"ensemble_auth_fail": true, "ensemble_auth_skip": true,
	"prep_processor_request_queued": true, "sync_processor_request_queued": true,
	"request_commit_queued": true, "stale_replies": true, "connection_request_count": true,
	"connection_revalidate_count": true, "revalidate_count": true, "response_bytes": true,
	"diff_count": true, "snap_count": true, "commit_count": true,
	"quit_leading_due_to_disloyal_voter": true, "unrecoverable_error_count": true,
	"unsuccessful_handshake": true, "stale_sessions_expired": true,
	"skip_learner_request_to_next_processor_count": true, "tls_handshake_exceeded": true,
}

// reservedNames are families the exporter builds itself; a future mntr key
// that would map onto one of them is left out rather than clash.
var reservedNames = map[string]bool{
	"zookeeper_up": true, "zookeeper_ruok": true, "zookeeper_serving": true,
	"zookeeper_read_only": true, "zookeeper_server_state": true, "zookeeper_server_info": true,
	"zookeeper_zxid_epoch": true, "zookeeper_zxid_sequence": true,
	"zookeeper_ensemble_servers": true, "zookeeper_ensemble_servers_up": true,
	"zookeeper_ensemble_servers_serving": true, "zookeeper_ensemble_leaders": true,
	"zookeeper_ensemble_voters": true, "zookeeper_ensemble_quorum_size": true,
	"zookeeper_ensemble_failures_tolerated": true, "zookeeper_ensemble_zxid_lag": true,
	"zookeeper_ensemble_versions": true, "zookeeper_znode_children": true,
	"zookeeper_wchs_connections": true, "zookeeper_wchs_paths": true, "zookeeper_wchs_watches": true,
	"zookeeper_connection_packets_received_total": true, "zookeeper_connection_packets_sent_total": true,
	"zookeeper_connection_queued_requests": true, "zookeeper_connection_max_latency_seconds": true,
}

// reserved reports whether a name made from a ZooKeeper key would clash
// with a family the exporter builds itself.
func reserved(name string) bool {
	return reservedNames[name] || strings.HasPrefix(name, namespace+"_exporter_")
}

// statPrefixes are the parts ZooKeeper splits a summary into:
// zk_<stat>_<name>. min and max become quantiles 0 and 1.
var statPrefixes = []string{"avg", "min", "max", "cnt", "sum", "p50", "p95", "p99", "p999", "last"}

var quantileOf = map[string]float64{"min": 0, "p50": 0.5, "p95": 0.95, "p99": 0.99, "p999": 0.999, "max": 1}

// gaugeRenames give plain names to gauges that ZooKeeper calls *_count
// (a _count suffix is reserved for summaries and histograms).
var gaugeRenames = map[string]string{
	"ephemerals_count": "ephemerals", "watch_count": "watches", "znode_count": "znodes",
	"open_file_descriptor_count": "open_file_descriptors", "max_file_descriptor_count": "max_file_descriptors",
}

// familyName maps a key (without stat prefix, namespace or server id) to a
// metric name and a scale: counters end in _total, gauges lose a _count
// suffix, milliseconds (_ms) become seconds.
func familyName(key string, counter bool) (string, float64) {
	scale := 1.0
	if base, ok := strings.CutSuffix(key, "_ms"); ok {
		key, scale = base+"_seconds", 0.001
	}
	if counter {
		return namespace + "_" + metricName(strings.TrimSuffix(key, "_count")) + "_total", scale
	}
	if r, ok := gaugeRenames[key]; ok {
		key = r
	} else if base, ok := strings.CutSuffix(key, "_count"); ok && base != "" {
		key = base
	}
	return namespace + "_" + metricName(key), scale
}

// metricName turns a key part into a valid metric name part.
func metricName(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r >= '0' && r <= '9' && i > 0:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// splitKey takes per-namespace and per-server-id parts out of a key:
// "demo0_read_per_namespace" -> ("read_per_namespace", namespace=demo0),
// "1_learner_handler_qp_size" -> ("learner_handler_qp_size", peer_id=1).
func splitKey(key string) (name, label, value string) {
	if rest, ok := strings.CutSuffix(key, "_per_namespace"); ok {
		if i := strings.LastIndexByte(rest, '_'); i > 0 {
			return rest[i+1:] + "_per_namespace", "namespace", rest[:i]
		}
	}
	if i := strings.IndexByte(key, '_'); i > 0 && isDigits(key[:i]) {
		return key[i+1:], "peer_id", key[:i]
	}
	return key, "", ""
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// descCache keeps one Desc per family and label set: families come from
// the keys servers send, so they are built on the fly, once. It keeps at
// most maxDescs; beyond, Descs are built for the scrape and not kept.
type descCache struct {
	mu sync.Mutex
	m  map[string]*prometheus.Desc
}

const maxDescs = 4096

func newDescCache() *descCache { return &descCache{m: map[string]*prometheus.Desc{}} }

func (c *descCache) get(name, help string, labels []string) *prometheus.Desc {
	key := name + "\xff" + strings.Join(labels, "\xff")
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[key]
	if !ok {
		d = prometheus.NewDesc(name, help, labels, nil)
		if len(c.m) < maxDescs {
			c.m[key] = d
		}
	}
	return d
}

// emitter sends metrics that share a set of leading labels (ensemble,
// server) to a channel.
type emitter struct {
	ch     chan<- prometheus.Metric
	cache  *descCache
	names  []string
	values []string
}

func (e *emitter) with(name, value string) *emitter {
	return &emitter{ch: e.ch, cache: e.cache,
		names:  append(append([]string{}, e.names...), name),
		values: append(append([]string{}, e.values...), value)}
}

func (e *emitter) labels(extra []string) ([]string, []string) {
	names := append([]string{}, e.names...)
	values := append([]string{}, e.values...)
	for i := 0; i+1 < len(extra); i += 2 {
		names = append(names, extra[i])
		values = append(values, extra[i+1])
	}
	return names, values
}

// emit sends one sample. A label value that is not valid UTF-8 (from a
// server's answer) makes it an invalid metric: a scrape error for that
// series, never a panic.
func (e *emitter) emit(name, help string, t prometheus.ValueType, v float64, extra ...string) {
	names, values := e.labels(extra)
	d := e.cache.get(name, help, names)
	m, err := prometheus.NewConstMetric(d, t, v, values...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}

func (e *emitter) gauge(name, help string, v float64, extra ...string) {
	e.emit(name, help, prometheus.GaugeValue, v, extra...)
}

func (e *emitter) summary(name, help string, count uint64, sum float64, q map[float64]float64, extra ...string) {
	names, values := e.labels(extra)
	d := e.cache.get(name, help, names)
	m, err := prometheus.NewConstSummary(d, count, sum, q, values...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e.ch <- m
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// group is one summary-like set of keys zk_<stat>_<base>.
type group struct {
	base  string
	stats map[string]float64
}

// maxKeys bounds the numeric mntr/monitor keys exported per server: a
// real server sends a few hundred (more with many namespaces); an answer
// with more is cut, in key order, and says how many keys it dropped.
const maxKeys = 2000

func emitDroppedKeys(e *emitter, n int) {
	e.gauge("zookeeper_exporter_keys_dropped", fmt.Sprintf("Numeric keys of the server's mntr/monitor answer left out in this scrape (more than %d).", maxKeys), float64(n))
}

// emitStats sends every numeric key of mntr/monitor, at most maxKeys.
func emitStats(e *emitter, s Stats) {
	if n := len(s.Numbers); n > maxKeys {
		keys := make([]string, 0, n)
		for k := range s.Numbers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kept := make(map[string]float64, maxKeys)
		for _, k := range keys[:maxKeys] {
			kept[k] = s.Numbers[k]
		}
		s.Numbers = kept
		emitDroppedKeys(e, n-maxKeys)
	}
	groups := make(map[string]*group, len(s.Numbers)/4)
	for k, v := range s.Numbers {
		for _, p := range statPrefixes {
			if base, ok := strings.CutPrefix(k, p+"_"); ok && base != "" {
				g := groups[base]
				if g == nil {
					g = &group{base: base, stats: map[string]float64{}}
					groups[base] = g
				}
				g.stats[p] = v
				break
			}
		}
	}
	inGroup := make(map[string]bool, len(s.Numbers))
	var bases []string
	for base, g := range groups {
		_, hasMin := g.stats["min"]
		_, hasMax := g.stats["max"]
		_, hasAvg := g.stats["avg"]
		if len(g.stats) < 2 || !(hasMin || hasMax || hasAvg) {
			continue
		}
		bases = append(bases, base)
		for p := range g.stats {
			inGroup[p+"_"+base] = true
		}
	}
	sort.Strings(bases)
	for _, base := range bases {
		emitGroup(e, groups[base])
	}
	keys := make([]string, 0, len(s.Numbers))
	for k := range s.Numbers {
		if !inGroup[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, label, value := splitKey(k)
		var extra []string
		if label != "" {
			extra = []string{label, value}
		}
		n, scale := familyName(name, counterKeys[k])
		if reserved(n) {
			continue
		}
		if counterKeys[k] {
			e.emit(n, "ZooKeeper's zk_"+keyPattern(name, label)+" (a counter since the server started)."+unitNote(scale), prometheus.CounterValue, s.Numbers[k]*scale, extra...)
			continue
		}
		e.gauge(n, "ZooKeeper's zk_"+keyPattern(name, label)+"."+unitNote(scale), s.Numbers[k]*scale, extra...)
	}
}

// unitNote tells that milliseconds became seconds.
func unitNote(scale float64) string {
	if scale != 1 {
		return " In seconds (ZooKeeper reports milliseconds)."
	}
	return ""
}

func keyPattern(name, label string) string {
	switch label {
	case "namespace":
		return "<namespace>_" + name
	case "peer_id":
		return "<server id>_" + name
	}
	return name
}

// emitGroup sends one summary-like family: a summary (quantile 0 = min,
// 1 = max) when ZooKeeper gives a count and a sum, else a gauge with a
// "stat" label (min, avg, max, last).
func emitGroup(e *emitter, g *group) {
	name, label, value := splitKey(g.base)
	var extra []string
	if label != "" {
		extra = []string{label, value}
	}
	n, scale := familyName(name, false)
	if reserved(n) {
		return
	}
	cnt, hasCnt := g.stats["cnt"]
	sum, hasSum := g.stats["sum"]
	pattern := keyPattern(name, label)
	if hasCnt && hasSum {
		q := map[float64]float64{}
		for p, v := range g.stats {
			if qq, ok := quantileOf[p]; ok {
				if cnt == 0 {
					v = math.NaN()
				}
				q[qq] = v * scale
			}
		}
		e.summary(n, "ZooKeeper's zk_{min,max,cnt,sum,p50,...}_"+pattern+" as a summary (quantile 0 is the minimum, 1 the maximum)."+unitNote(scale),
			uint64(cnt), sum*scale, q, extra...)
		return
	}
	stats := make([]string, 0, len(g.stats))
	for p := range g.stats {
		stats = append(stats, p)
	}
	sort.Strings(stats)
	for _, p := range stats {
		e.gauge(n, "ZooKeeper's zk_{min,avg,max,last}_"+pattern+", by stat."+unitNote(scale), g.stats[p]*scale, append([]string{"stat", p}, extra...)...)
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
