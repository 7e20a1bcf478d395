package exporter

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"
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
	"zookeeper_up": true, "zookeeper_serving": true,
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
var statPrefixes = [...]string{"avg", "min", "max", "cnt", "sum", "p50", "p95", "p99", "p999", "last"}

// gaugeRenames give plain names to gauges that ZooKeeper calls *_count
// (a _count suffix is reserved for summaries and histograms).
var gaugeRenames = map[string]string{
	"ephemerals_count": "ephemerals", "watch_count": "watches", "znode_count": "znodes",
	"open_file_descriptor_count": "open_file_descriptors", "max_file_descriptor_count": "max_file_descriptors",
}

// familyName maps a key (without stat prefix, namespace or server id) to a
// metric name and a scale: counters end in _total, gauges lose a _count
// suffix, milliseconds (_ms) become seconds. ZooKeeper's ensemble_* keys
// (ensemble_auth_success, ...) count its quorum's authentication: they
// become zookeeper_quorum_*, which cannot be mistaken for the exporter's
// view of the ensemble (zookeeper_ensemble_*).
func familyName(key string, counter bool) (string, float64) {
	if rest, ok := strings.CutPrefix(key, "ensemble_"); ok {
		key = "quorum_" + rest
	}
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

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// maxKeys bounds the numeric mntr/monitor keys exported per server: a
// real server sends a few hundred (more with many namespaces); an answer
// with more is cut, in key order, and says how many keys it dropped.
const maxKeys = 2000

// Reasons a key of a server's answer is left out.
const (
	droppedTooMany   = "too_many"   // beyond maxKeys
	droppedNameClash = "name_clash" // its series would be named like another key's, or like the exporter's own
)

func emitDroppedKeys(e *emitter, reason string, n int) {
	e.gauge("zookeeper_exporter_keys_dropped", fmt.Sprintf("Numeric keys of the server's mntr/monitor answer left out in this scrape: too_many beyond %d, name_clash when its series would be named like another key's or the exporter's own.", maxKeys),
		float64(n), "reason", reason)
}

// family is how a key (or a summary-like group of keys) is exported.
type family struct {
	name         string
	help         string // as a gauge or counter
	summaryHelp  string // a group with cnt and sum
	statHelp     string // a group without: a gauge with a stat label
	scale        float64
	counter      bool
	label, value string // a namespace or server id taken out of the key
	reserved     bool   // would clash with a family the exporter builds
}

// keyInfo is what one mntr key means, worked out once per key.
type keyInfo struct {
	key   string
	stat  int // index in statPrefixes, -1 when the key has no stat prefix
	base  string
	plain family  // the key as a series of its own
	group *family // the family of base, when stat >= 0
}

func newKeyInfo(k string) *keyInfo {
	info := &keyInfo{key: k, stat: -1, plain: newFamily(k, counterKeys[k])}
	for i, p := range statPrefixes {
		if base, ok := strings.CutPrefix(k, p+"_"); ok && base != "" {
			g := newFamily(base, false)
			info.stat, info.base, info.group = i, base, &g
			break
		}
	}
	return info
}

func newFamily(key string, counter bool) family {
	name, label, value := splitKey(key)
	n, scale := familyName(name, counter)
	pattern, unit := keyPattern(name, label), unitNote(scale)
	help := "ZooKeeper's zk_" + pattern + "." + unit
	if counter {
		help = "ZooKeeper's zk_" + pattern + " (a counter since the server started)." + unit
	}
	return family{name: n, help: help,
		summaryHelp: "ZooKeeper's zk_{min,max,cnt,sum,p50,...}_" + pattern + " as a summary (quantile 0 is the minimum, 1 the maximum)." + unit,
		statHelp:    "ZooKeeper's zk_{min,avg,max,last}_" + pattern + ", by stat." + unit,
		scale:       scale, counter: counter, label: label, value: value, reserved: reserved(n)}
}

// labelPair is the family's label taken out of the key, if any.
func (f *family) labelPair() []string {
	if f.label == "" {
		return nil
	}
	return []string{f.label, f.value}
}

// group is one summary-like set of keys zk_<stat>_<base>.
type group struct {
	base   string
	f      *family
	has    uint16                          // bit i: statPrefixes[i] is present
	index  [len(statPrefixes)]int          // where in the plan's keys
	labels [len(statPrefixes) + 1]labelSet // of each stat's gauge, last of the summary
	v      [len(statPrefixes)]float64
}

func (g *group) get(stat string) (float64, bool) {
	i := statIndex[stat]
	return g.v[i], g.has&(1<<i) != 0
}

// hasCount says whether the group is a summary: it has cnt and sum.
func (g *group) hasCount() bool {
	_, cnt := g.get("cnt")
	_, sum := g.get("sum")
	return cnt && sum
}

// summarizes says whether the keys form a group: two stats or more, one
// of them min, max or avg.
func (g *group) summarizes() bool {
	const minMaxAvg = 1<<0 | 1<<1 | 1<<2
	return g.has&(g.has-1) != 0 && g.has&minMaxAvg != 0
}

var statIndex = func() map[string]int {
	m := map[string]int{}
	for i, p := range statPrefixes {
		m[p] = i
	}
	return m
}()

// emitStats sends every numeric key of mntr/monitor, at most maxKeys.
// Keys are taken in order, so that of two keys whose series would share a
// name (zk_x and zk_min_x, zk_x_count and zk_x, ...) the same one wins
// every scrape; the other is left out and counted.
func emitStats(e *emitter, s Stats) {
	nums := s.Numbers
	if n := len(nums); n > maxKeys {
		keys := make([]string, 0, n)
		for k := range nums {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		nums = make(map[string]float64, maxKeys)
		for _, k := range keys[:maxKeys] {
			nums[k] = s.Numbers[k]
		}
		emitDroppedKeys(e, droppedTooMany, n-maxKeys)
	}
	plan, vals := e.cache.statsPlan(e, nums)
	clashes := 0
	for _, g := range plan.groups {
		g := *g
		for i := range statPrefixes {
			if g.has&(1<<i) != 0 {
				g.v[i] = vals[g.index[i]]
			}
		}
		if g.f.reserved || !emitGroup(e, &g) {
			clashes += bits.OnesCount16(g.has)
		}
	}
	for j, i := range plan.plain {
		f := &plan.keys[i].plain
		kind := familyGauge
		if f.counter {
			kind = familyCounter
		}
		if f.reserved {
			clashes++
			continue
		}
		s, claimed := e.add(f.name, f.help, kind, plan.plainLabels[j])
		if !claimed {
			clashes++
		} else if s != nil {
			s.value = vals[i] * f.scale
		}
	}
	if clashes > 0 {
		emitDroppedKeys(e, droppedNameClash, clashes)
	}
}

// statsPlan is how a set of keys is exported, worked out once for each
// server whose set of keys is new: the keys in order, the groups they
// form (by base), the keys that are series of their own, and the label
// sets of all their series.
type statsPlan struct {
	keys        []*keyInfo // sorted
	groups      []*group   // that summarize, sorted by base
	plain       []int      // indexes in keys
	plainLabels []labelSet // of each plain key's series
}

// newStatsPlan works out the plan for nums, the keys of e's server; keep
// says whether the cache kept every key of it.
func newStatsPlan(e *emitter, nums map[string]float64) (p *statsPlan, keep bool) {
	c := e.cache
	p, keep = &statsPlan{keys: make([]*keyInfo, 0, len(nums))}, true
	for k := range nums {
		info, kept := c.key(k)
		p.keys = append(p.keys, info)
		keep = keep && kept
	}
	slices.SortFunc(p.keys, func(a, b *keyInfo) int { return strings.Compare(a.key, b.key) })
	groups := map[string]*group{}
	for i, info := range p.keys {
		if info.stat < 0 {
			continue
		}
		g := groups[info.base]
		if g == nil {
			g = &group{base: info.base, f: info.group}
			groups[info.base] = g
		}
		g.has |= 1 << info.stat
		g.index[info.stat] = i
	}
	for i, info := range p.keys {
		if info.stat < 0 || !groups[info.base].summarizes() {
			p.plain = append(p.plain, i)
			p.plainLabels = append(p.plainLabels, e.labelSet(info.plain.labelPair()...))
		}
	}
	for _, g := range groups {
		if !g.summarizes() {
			continue
		}
		p.groups = append(p.groups, g)
		extra := g.f.labelPair()
		for i, stat := range statPrefixes {
			if g.has&(1<<i) != 0 {
				g.labels[i] = e.labelSet(append([]string{"stat", stat}, extra...)...)
			}
		}
		g.labels[len(statPrefixes)] = e.labelSet(extra...)
	}
	slices.SortFunc(p.groups, func(a, b *group) int { return strings.Compare(a.base, b.base) })
	return p, keep
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

// quantileStats are the stats that become a summary's quantiles, in
// increasing order.
var quantileStats = []struct{ stat, quantile string }{
	{"min", "0"}, {"p50", "0.5"}, {"p95", "0.95"}, {"p99", "0.99"}, {"p999", "0.999"}, {"max", "1"},
}

// emitGroup adds one summary-like family: a summary (quantile 0 = min,
// 1 = max) when ZooKeeper gives a count and a sum, else a gauge with a
// "stat" label (min, avg, max, last). It is false when the family's name
// clashes.
func emitGroup(e *emitter, g *group) bool {
	f := g.f
	if g.hasCount() {
		cnt, _ := g.get("cnt")
		sum, _ := g.get("sum")
		qs := make([]quantile, 0, len(quantileStats))
		for _, q := range quantileStats {
			v, ok := g.get(q.stat)
			if !ok {
				continue
			}
			if cnt == 0 {
				v = math.NaN()
			}
			qs = append(qs, quantile{label: q.quantile, value: v * f.scale})
		}
		s, claimed := e.add(f.name, f.summaryHelp, familySummary, g.labels[len(statPrefixes)])
		if s != nil {
			s.value, s.count, s.quantiles = sum*f.scale, uint64(cnt), qs
		}
		return claimed
	}
	for i := range statPrefixes {
		if g.has&(1<<i) == 0 {
			continue
		}
		s, claimed := e.add(f.name, f.statHelp, familyGauge, g.labels[i])
		if !claimed {
			return false
		}
		if s != nil {
			s.value = g.v[i] * f.scale
		}
	}
	return true
}

var serverStates = []string{"leader", "follower", "observer", "standalone", "looking", "other"}

// emitServer sends one server's series; unknown facts send nothing.
func emitServer(e *emitter, r *ServerResult, consLimit int) {
	e.gauge("zookeeper_up", "Whether the server answered at all (AdminServer or four-letter words).", boolValue(r.Up))
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
		e.emit("zookeeper_connection_packets_received_total", "Packets received on a client connection (cons).", familyCounter, c.PacketsReceived, "client", c.Client)
		e.emit("zookeeper_connection_packets_sent_total", "Packets sent on a client connection (cons).", familyCounter, c.PacketsSent, "client", c.Client)
		e.gauge("zookeeper_connection_queued_requests", "Requests queued on a client connection (cons).", c.Queued, "client", c.Client)
		e.gauge("zookeeper_connection_max_latency_seconds", "Highest request latency on a client connection (cons).", c.MaxLatency/1000, "client", c.Client)
	}
	e.gauge("zookeeper_exporter_connections_omitted", "Client connections left out of the per-connection series by the cardinality limit.", float64(omitted))
}
