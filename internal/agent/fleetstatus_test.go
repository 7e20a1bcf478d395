package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/configstore"
)

func fleetMember(name, shardMember, group string, f configstore.FleetStatus) configstore.Member {
	f.ShardMember, f.HAGroup, f.Weight = shardMember, group, 1
	return configstore.Member{Name: name, Status: configstore.Status{Member: name, Fleet: &f}}
}

// The rendering of `zkprom shards`: the normal HA case, a take-over that
// waits (short ROLE, the reason below the table, the group line saying the
// elected member does not act yet), and totals that count an HA group's
// share once.
func TestFleetStatusRender(t *testing.T) {
	since := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	jobs := func(assigned int) map[string]configstore.ShardedJobStatus {
		return map[string]configstore.ShardedJobStatus{"sharded": {Discovered: 30, Assigned: assigned, Owned: assigned}}
	}
	const reason = "waiting for prom-a's Prometheus (http://127.0.0.1:9090) to drop the leader overlay"
	for _, tc := range []struct {
		name    string
		members []configstore.Member
		groups  []haGroupStatus
		want    []string
		notWant []string
	}{{
		name: "leader acts",
		members: []configstore.Member{
			fleetMember("prom-a", "pair", "pair", configstore.FleetStatus{Jobs: jobs(18)}),
			fleetMember("prom-b", "pair", "pair", configstore.FleetStatus{Jobs: jobs(18), Leader: true, Term: 1, Overlay: true}),
			fleetMember("prom-c", "prom-c", "", configstore.FleetStatus{Jobs: jobs(12)}),
		},
		groups: []haGroupStatus{{Name: "pair", Elected: "prom-b", ElectedTerm: 1,
			Record: &configstore.HALeader{Member: "prom-b", Term: 1, Since: since, Previous: "prom-a"}}},
		want: []string{
			"leader (term 1), overlay on",
			"HA group pair: leader prom-b, term 1; last hand-over 2026-11-26T01:00:00Z to prom-b (term 1) from prom-a (term 0)",
			"sharded: 30 discovered targets, 30 assignments over 2 shard members (replicas 1)",
		},
		notWant: []string{"waiting", "not acting"},
	}, {
		name: "take-over waits",
		members: []configstore.Member{
			fleetMember("prom-a", "pair", "pair", configstore.FleetStatus{Jobs: jobs(18)}),
			fleetMember("prom-b", "pair", "pair", configstore.FleetStatus{Jobs: jobs(18), Waiting: reason}),
			fleetMember("prom-c", "prom-c", "", configstore.FleetStatus{Jobs: jobs(12)}),
		},
		groups: []haGroupStatus{{Name: "pair", Elected: "prom-b", ElectedTerm: 1,
			Record: &configstore.HALeader{Member: "prom-a", Term: 0, Since: since}}},
		want: []string{
			"  elected, waiting  ",
			"\nprom-b: " + reason + "\n",
			"HA group pair: elected prom-b (term 1), not acting yet; the overlay holder is prom-a (term 0) since 2026-11-26T01:00:00Z",
			"sharded: 30 discovered targets, 30 assignments over 2 shard members (replicas 1)",
		},
		notWant: []string{"leader prom-b", "elected, waiting for"},
	}, {
		name:   "no candidate",
		groups: []haGroupStatus{{Name: "pair"}},
		want:   []string{"no live agents\n", "HA group pair: no leader"},
	}} {
		var out strings.Builder
		writeFleetStatus(&out, tc.members, tc.groups, map[string]int{"sharded": 1})
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out.String())
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(out.String(), w) {
				t.Errorf("%s: output has %q:\n%s", tc.name, w, out.String())
			}
		}
		// The table's rows are as wide as its header: the waiting reason
		// does not widen the ROLE column.
		lines := strings.Split(out.String(), "\n")
		for _, l := range lines[1 : 1+len(tc.members)] {
			if len(strings.TrimRight(l, " ")) > len(lines[0]) {
				t.Errorf("%s: row wider than the header:\n%s", tc.name, out.String())
			}
		}
		t.Logf("%s:\n%s", tc.name, out.String())
	}
}
