package exporter

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureResults are servers of four kinds, as the scrape would make them
// from the captured answers: a 3.8 leader through the AdminServer, a 3.8
// follower through four-letter words, 3.4 and 3.5 leaders through mntr.
func fixtureResults(t testing.TB) []*ServerResult {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var out []*ServerResult

	leader := &ServerResult{Server: "zk1:2181", Source: SourceAdmin, Up: true, Serving: ptr(true), ReadOnly: ptr(false)}
	s, err := ParseMonitor([]byte(fixture(t, "leader_admin_monitor.json")))
	must(err)
	leader.Stats = &s
	st, err := ParseAdminSrvr([]byte(fixture(t, "leader_admin_srvr.json")))
	must(err)
	leader.Voters, err = ParseVotingView([]byte(fixture(t, "leader_admin_voting_view.json")))
	must(err)
	applyStatus(leader, st)
	leader.Conns, err = ParseAdminConnections([]byte(fixture(t, "follower_admin_connections.json")))
	must(err)
	leader.HasConns = true
	leader.Commands = []CommandResult{{Command: "monitor", Source: SourceAdmin}, {Command: "srvr", Source: SourceAdmin}}
	out = append(out, leader)

	follower := &ServerResult{Server: "zk2:2181", Source: SourceFourLetter, Up: true, Serving: ptr(true), ReadOnly: ptr(false)}
	fs, err := ParseMntr(fixture(t, "follower_mntr.txt"))
	must(err)
	follower.Stats = &fs
	st, err = ParseSrvr(fixture(t, "follower_srvr.txt"))
	must(err)
	applyStatus(follower, st)
	w, err := ParseWchs(fixture(t, "follower_wchs.txt"))
	must(err)
	follower.Wchs = &w
	follower.Commands = []CommandResult{{Command: "mntr", Source: SourceFourLetter}, {Command: "cons", Source: SourceFourLetter, Refused: true}}
	out = append(out, follower)

	for i, f := range []string{"mntr_3.4_leader.txt", "mntr_3.5_leader.txt"} {
		r := &ServerResult{Server: []string{"old1:2181", "old2:2181"}[i], Source: SourceFourLetter, Up: true, Serving: ptr(true)}
		s, err := ParseMntr(fixture(t, f))
		must(err)
		r.Stats = &s
		applyStatus(r, ServerStatus{})
		out = append(out, r)
	}
	out = append(out, &ServerResult{Server: "down:2181"})
	return out
}

func TestFixtureMetrics(t *testing.T) {
	text := parseExposition(t, pageText(resultsPage(fixtureResults(t), newSeriesCache()))).text
	for _, want := range []string{
		`zookeeper_packets_received_total{ensemble="fixture",server="zk1:2181"} 370`,
		`zookeeper_packets_received_total{ensemble="fixture",server="old1:2181"} 1722`,
		`zookeeper_readlatency{ensemble="fixture",server="zk1:2181",quantile="0.99"}`,
		`zookeeper_readlatency_count{ensemble="fixture",server="zk1:2181"}`,
		`zookeeper_read_per_namespace_count{ensemble="fixture",namespace="demo0",server="zk1:2181"}`,
		`zookeeper_learner_handler_qp_size_count{ensemble="fixture",peer_id="1",server="zk1:2181"}`,
		`zookeeper_latency{ensemble="fixture",server="old1:2181",stat="max"} 12`,
		`zookeeper_proposal_size{ensemble="fixture",server="old2:2181",stat="last"} 92`,
		`zookeeper_some_future_key{ensemble="fixture",server="old2:2181"} 7`,
		`zookeeper_followers{ensemble="fixture",server="old1:2181"} 2`,
		`zookeeper_pending_syncs{ensemble="fixture",server="old1:2181"} 0`,
		`zookeeper_max_file_descriptors{ensemble="fixture",server="zk1:2181"} 20000`,
		`zookeeper_server_state{ensemble="fixture",server="zk2:2181",state="follower"} 1`,
		`zookeeper_zxid_epoch{ensemble="fixture",server="zk1:2181"} 1`,
		`zookeeper_zxid_sequence{ensemble="fixture",server="zk2:2181"} 219`,
		`zookeeper_up{ensemble="fixture",server="down:2181"} 0`,
		`zookeeper_exporter_command_refused{command="cons",ensemble="fixture",server="zk2:2181"} 1`,
		`zookeeper_ensemble_versions{ensemble="fixture"} 3`,
		`zookeeper_server_info{build="3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC",ensemble="fixture",server="zk1:2181",version="3.8.0"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	for _, bad := range []string{"zookeeper_demo0", "zookeeper_1_", "zookeeper_p99_", "zookeeper_avg_", `zookeeper_serving{ensemble="fixture",server="down:2181"}`} {
		if strings.Contains(text, bad) {
			t.Errorf("output holds %s", bad)
		}
	}
	promtoolCheckMetrics(t, text)
	// The whole exposition against a golden file (-update rewrites it).
	golden := filepath.Join("testdata", "fixture_metrics.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != text {
		t.Errorf("exposition differs from %s (run go test ./internal/exporter -run TestFixtureMetrics -update and review the diff)", golden)
	}
}

// promtoolCheckMetrics lints exposition text with the real promtool.
func promtoolCheckMetrics(t testing.TB, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		path = "/usr/bin/promtool"
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestEnsembleView(t *testing.T) {
	srv := func(name, state string, serving bool, zxid uint64) *ServerResult {
		return &ServerResult{Server: name, Up: true, State: state, Serving: ptr(serving), Zxid: zxid, HasZxid: zxid != 0, Version: "3.8.0"}
	}
	down := &ServerResult{Server: "c"}
	for _, tc := range []struct {
		name                         string
		rs                           []*ServerResult
		up, serving, leaders, quorum int
		tolerated                    int
		lag                          map[string]float64
	}{
		{"healthy", []*ServerResult{srv("a", "leader", true, 0x100000010), srv("b", "follower", true, 0x10000000a), srv("c", "follower", true, 0x100000010)},
			3, 3, 1, 2, 1, map[string]float64{"a": 0, "b": 6, "c": 0}},
		{"one down", []*ServerResult{srv("a", "leader", true, 0), srv("b", "follower", true, 0), down},
			2, 2, 1, 2, 0, map[string]float64{}},
		{"two down", []*ServerResult{srv("a", "looking", false, 0), {Server: "b"}, down},
			1, 0, 0, 2, -2, map[string]float64{}},
		{"split brain", []*ServerResult{srv("a", "leader", true, 0x200000001), srv("b", "leader", true, 0x100000009), srv("c", "follower", true, 0x100000001)},
			3, 3, 2, 2, 1, map[string]float64{"a": 0}},
		{"standalone", []*ServerResult{srv("a", "standalone", true, 5)}, 1, 1, 1, 1, 0, map[string]float64{"a": 0}},
		{"unknown serving", []*ServerResult{srv("a", "leader", true, 0), {Server: "b", Up: true}, srv("c", "follower", true, 0)},
			3, 2, 1, 2, 0, map[string]float64{}},
		{"observer", []*ServerResult{srv("a", "leader", true, 0), srv("b", "follower", true, 0), srv("c", "follower", true, 0), srv("o", "observer", true, 0)},
			4, 4, 1, 2, 1, map[string]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ensembleView(tc.rs)
			unknown := tc.name == "unknown serving"
			if v.ServingKnown == unknown || v.StateKnown == unknown {
				t.Errorf("serving known %v, state known %v; want %v", v.ServingKnown, v.StateKnown, !unknown)
			}
			if v.ServersUp != tc.up || v.ServersServing != tc.serving || v.Leaders != tc.leaders || v.QuorumSize != tc.quorum || v.FailuresTolerated != tc.tolerated {
				t.Errorf("view = %+v, want up %d serving %d leaders %d quorum %d tolerated %d", v, tc.up, tc.serving, tc.leaders, tc.quorum, tc.tolerated)
			}
			if len(v.ZxidLag) != len(tc.lag) {
				t.Errorf("zxid lag = %v, want %v", v.ZxidLag, tc.lag)
			}
			for s, l := range tc.lag {
				if v.ZxidLag[s] != l {
					t.Errorf("zxid lag[%s] = %v, want %v", s, v.ZxidLag[s], l)
				}
			}
		})
	}
}

func TestConsLimit(t *testing.T) {
	conns := []Connection{
		{Client: "10.0.0.1:1", PacketsReceived: 5},
		{Client: "10.0.0.2:1", PacketsReceived: 500},
		{Client: "10.0.0.3:1", PacketsReceived: 50},
	}
	s := parseExposition(t, pageText(serverPage(newSeriesCache(), func(e *emitter) { emitConns(e, conns, 2) })))
	s.want(t, 500, "zookeeper_connection_packets_received_total", "client=10.0.0.2:1")
	s.want(t, 50, "zookeeper_connection_packets_received_total", "client=10.0.0.3:1")
	s.absent(t, "zookeeper_connection_packets_received_total", "client=10.0.0.1:1")
	s.want(t, 1, "zookeeper_exporter_connections_omitted", "server=zk1:2181")
}

func TestReservedNames(t *testing.T) {
	s := Stats{Numbers: map[string]float64{"ensemble_leaders": 7, "up": 3, "exporter_source": 1, "ensemble_auth_fail": 2}, Strings: map[string]string{}}
	out := parseExposition(t, pageText(serverPage(newSeriesCache(), func(e *emitter) { emitStats(e, s) })))
	for _, n := range []string{"zookeeper_ensemble_leaders", "zookeeper_up", "zookeeper_exporter_source"} {
		out.absent(t, n)
	}
	out.want(t, 2, "zookeeper_quorum_auth_fail_total") // not in the view's zookeeper_ensemble_*
	for name := range out.mfs {
		if strings.HasPrefix(name, "zookeeper_ensemble_") {
			t.Errorf("a ZooKeeper key made %s, in the name space of the ensemble view", name)
		}
	}
}

// Keys whose series would share a name (a plain key and a stat group, a
// _count gauge and its base, a summary and a key named like its _sum, a
// key in milliseconds and one in seconds) make one family, the same one
// every scrape, and the others are counted as name clashes: the scrape
// never fails.
func TestNameClashes(t *testing.T) {
	for _, tc := range []struct {
		keys    map[string]float64
		want    string // the family that survives
		clashes float64
	}{
		{map[string]float64{"latency": 1, "min_latency": 0, "max_latency": 2}, "zookeeper_latency", 1},
		{map[string]float64{"foo_count": 1, "foo": 2}, "zookeeper_foo", 1},
		{map[string]float64{"cnt_x": 1, "sum_x": 2, "max_x": 3, "x_sum": 9}, "zookeeper_x", 1},
		{map[string]float64{"cnt_y": 1, "sum_y": 2, "min_y": 3, "y_count": 9}, "zookeeper_y", 1},
		{map[string]float64{"wait_ms": 1, "wait_seconds": 2}, "zookeeper_wait_seconds", 1},
		{map[string]float64{"up": 1, "exporter_source": 2, "a": 1}, "zookeeper_a", 2},
	} {
		s := Stats{Numbers: tc.keys, Strings: map[string]string{}}
		var first string
		for range 5 { // map order differs between runs; the outcome must not
			text := pageText(serverPage(newSeriesCache(), func(e *emitter) { emitStats(e, s) }))
			out := parseExposition(t, text) // fails the test on what a registry refuses
			out.want(t, tc.clashes, "zookeeper_exporter_keys_dropped", "reason=name_clash")
			if !strings.Contains(text, "\n"+tc.want+"{") && !strings.Contains(text, "\n"+tc.want+" ") {
				t.Errorf("%v: no %s in\n%s", tc.keys, tc.want, text)
			}
			if first == "" {
				first = text
			} else if text != first {
				t.Errorf("%v: the outcome changes between scrapes:\n%s\n---\n%s", tc.keys, first, text)
			}
		}
	}
}

// Servers that disagree on what a family is (a summary on one, a gauge
// by stat on another, as in a mixed-version ensemble) do not fail it: the
// first server's meaning wins, the other's keys are counted as clashes.
func TestNameClashAcrossServers(t *testing.T) {
	summary := Stats{Numbers: map[string]float64{"cnt_x": 1, "sum_x": 2, "min_x": 0}, Strings: map[string]string{}}
	gauges := Stats{Numbers: map[string]float64{"min_x": 0, "max_x": 2}, Strings: map[string]string{}}
	out := parseExposition(t, pageText(resultsPage([]*ServerResult{
		{Server: "zk1:2181", Source: SourceAdmin, Up: true, Stats: &summary},
		{Server: "zk2:2181", Source: SourceAdmin, Up: true, Stats: &gauges},
	}, newSeriesCache()))) // fails on what a registry refuses
	out.want(t, 2, "zookeeper_exporter_keys_dropped", "server=zk2:2181", "reason=name_clash")
	out.absent(t, "zookeeper_exporter_keys_dropped", "server=zk1:2181")
}

// A server's plan follows its keys: when they change (a follower that
// becomes leader, a key that goes or comes), the page is what a fresh
// cache makes of the new keys.
func TestStatsPlanFollowsKeys(t *testing.T) {
	sets := []map[string]float64{
		{"a": 1, "min_x": 0, "max_x": 2, "cnt_y": 3, "sum_y": 6, "min_y": 1},
		{"a": 2, "min_x": 1, "max_x": 3, "b": 4},                             // one key gone, one new
		{"a": 3, "min_x": 1, "max_x": 3, "c": 5},                             // same count, other key
		{"a": 4, "min_x": 0, "max_x": 2, "cnt_y": 3, "sum_y": 6, "min_y": 1}, // back
		{"a": 5, "x": 1, "min_x": 0, "max_x": 2, "cnt_y": 3, "sum_y": 6},     // x now clashes
	}
	kept := newSeriesCache()
	for i, keys := range sets {
		s := Stats{Numbers: keys, Strings: map[string]string{}}
		got := pageText(serverPage(kept, func(e *emitter) { emitStats(e, s) }))
		want := pageText(serverPage(newSeriesCache(), func(e *emitter) { emitStats(e, s) }))
		parseExposition(t, got)
		if got != want {
			t.Errorf("set %d: with the kept plan\n%s\nwant\n%s", i, got, want)
		}
	}
}
