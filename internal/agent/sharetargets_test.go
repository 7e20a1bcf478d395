package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/discovery"
	"github.com/zkprom/zkprom/internal/shard"
	"github.com/zkprom/zkprom/internal/targetgroup"
)

func labelSet(i, rev int) model.LabelSet {
	return model.LabelSet{model.AddressLabel: model.LabelValue(fmt.Sprintf("10.%d.%d.%d:9100", i/65536, (i/256)%256, i%256)), "rev": model.LabelValue(fmt.Sprint(rev))}
}

// groupsOf is n targets in groups of 10,000, as discovery's first update.
func groupsOf(n int) []discovery.GroupChange {
	var out []discovery.GroupChange
	for i := range n {
		if i%10000 == 0 {
			out = append(out, discovery.GroupChange{Source: fmt.Sprintf("/s/s-%03d", i/10000), Targets: map[string]model.LabelSet{}})
		}
		c := out[len(out)-1]
		c.Targets[fmt.Sprintf("%s/t-%06d", c.Source, i)] = labelSet(i, 0)
	}
	return out
}

// testShards is the shards of member "a" of ten, with one sharded job
// "j" writing to a temporary folder, driven by hand.
func testShards(t testing.TB) (*shards, *shardJob) {
	m, err := newFleetMetrics(nil, &fleet{cluster: "c", member: "a"})
	if err != nil {
		t.Fatal(err)
	}
	s := newShards(shardsConfig{cluster: "c", shardMember: "a", weight: 1, configDir: t.TempDir()},
		shardsDeps{setIgnored: func(map[string]string) {}, setStatus: func(context.Context, map[string]configstore.ShardedJobStatus, int) {}, m: m},
		slog.New(slog.DiscardHandler))
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := bundle.ShardedJob{JobConfig: discovery.JobConfig{Name: "j"}}
	j := &shardJob{cfg: cfg, sharder: shard.NewShare("a", shardOptions(cfg)), targets: newJobTargets("j"), gen: 1}
	var ms []shard.Member
	for i := range 10 {
		ms = append(ms, shard.Member{Name: string(rune('a' + i)), Weight: 1})
	}
	j.sharder.SetMembers(ms, time.Now())
	s.jobs["j"] = j
	return s, j
}

// shareOf reads the job's share file: address => rev label.
func shareOf(t testing.TB, s *shards) map[string]string {
	data, err := os.ReadFile(s.filePath("j"))
	if err != nil {
		t.Fatal(err)
	}
	var gs []targetgroup.Group
	if err := json.Unmarshal(data, &gs); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range gs {
		out[g.Targets[0]] = g.Labels["rev"]
	}
	return out
}

// The share file is what MarshalIndent of the whole list gives, byte for
// byte, and the kept entries follow changed targets.
func TestShareRender(t *testing.T) {
	var ts []shard.Target
	for i := range 5 {
		l := labelSet(i, 0)
		ts = append(ts, shard.Target{Key: fmt.Sprint(i), Labels: map[string]string{"__address__": string(l[model.AddressLabel]), "rev": "0", "x": `"q"`}})
	}
	want := func(ts []shard.Target) string {
		var gs []targetgroup.Group
		for _, t := range ts {
			g := targetgroup.Group{Targets: []string{t.Labels["__address__"]}, Labels: map[string]string{}}
			for k, v := range t.Labels {
				if k != "__address__" {
					g.Labels[k] = v
				}
			}
			gs = append(gs, g)
		}
		b, _ := json.MarshalIndent(gs, "", "  ")
		return string(b) + "\n"
	}
	var r shareRender
	if got := string(r.render(ts)); got != want(ts) {
		t.Fatalf("got\n%s\nwant\n%s", got, want(ts))
	}
	ts[2].Labels = map[string]string{"__address__": "h:1", "rev": "1"}
	r.forget(ts[2].Key)
	if got := string(r.render(ts[1:])); got != want(ts[1:]) {
		t.Fatalf("after a change: got\n%s\nwant\n%s", got, want(ts[1:]))
	}
	if got := string(r.render(nil)); got != "[]\n" {
		t.Errorf("empty: %q", got)
	}
}

// Changes of discovery reach the share exactly: added, changed, moved to
// another group, gone, a duplicate (same address twice) kept until its
// last holder goes.
func TestShardsApplyChanges(t *testing.T) {
	s, j := testShards(t)
	ctx := context.Background()
	now := time.Now()
	step := func(changes ...discovery.GroupChange) {
		t.Helper()
		s.applyUpdate(groupUpdate{job: "j", gen: 1, changes: changes})
		now = now.Add(time.Hour) // past any debounce
		s.advance(ctx, now)
	}
	want := map[string]string{} // address => rev, of the whole job
	check := func(what string) {
		t.Helper()
		got := shareOf(t, s)
		for addr, rev := range want {
			owners := shard.Owners(shardTargetKey("j", model.LabelSet{model.AddressLabel: model.LabelValue(addr)}), j.sharder.Members(), 1)
			if mine := owners[0] == "a"; mine != (got[addr] != "") || (mine && got[addr] != rev) {
				t.Fatalf("%s: %s (rev %s, owners %v): share has %q", what, addr, rev, owners, got[addr])
			}
		}
		for addr := range got {
			if _, ok := want[addr]; !ok {
				t.Fatalf("%s: %s in the share, not in the job", what, addr)
			}
		}
	}
	first := groupsOf(300)
	for _, c := range first {
		for _, l := range c.Targets {
			want[string(l[model.AddressLabel])] = "0"
		}
	}
	step(first...)
	check("first list")
	addr := func(i int) string { return string(labelSet(i, 0)[model.AddressLabel]) }
	// 300 more, 10 at a time, changes and removals between.
	for i := 300; i < 600; i += 10 {
		c := discovery.GroupChange{Source: "/s/s-001", Targets: map[string]model.LabelSet{}}
		for k := i; k < i+10; k++ {
			c.Targets[fmt.Sprintf("/s/s-001/t-%06d", k)] = labelSet(k, 0)
			want[addr(k)] = "0"
		}
		d := discovery.GroupChange{Source: "/s/s-000", Targets: map[string]model.LabelSet{fmt.Sprintf("/s/s-000/t-%06d", i/10): labelSet(i/10, 1)},
			Removed: []string{fmt.Sprintf("/s/s-000/t-%06d", i/10+100)}}
		want[addr(i/10)] = "1"
		delete(want, addr(i/10+100))
		step(c, d)
		check(fmt.Sprintf("after %d", i+10))
	}
	// A target moved to another group within one update (its new group
	// sorts first), and a duplicate of another.
	step(discovery.GroupChange{Source: "/s/a", Targets: map[string]model.LabelSet{"/s/a/x": labelSet(250, 2), "/s/a/dup": labelSet(251, 0)}},
		discovery.GroupChange{Source: "/s/s-000", Removed: []string{"/s/s-000/t-000250"}})
	want[addr(250)] = "2"
	check("moved")
	step(discovery.GroupChange{Source: "/s/s-000", Removed: []string{"/s/s-000/t-000251"}})
	check("one of two holders gone")
	step(discovery.GroupChange{Source: "/s/a", Removed: []string{"/s/a/x", "/s/a/dup"}})
	delete(want, addr(250))
	delete(want, addr(251))
	check("the group gone")
}

// The work for one new target does not grow with the job: after the first
// list, an update of one target costs the same allocations with 1,000 or
// 40,000 targets (rebuilding the whole list and assignment, as before,
// took ~20 per target of the job), and while targets keep coming the share
// file is written once per writeEvery, not per update.
func TestShardsUpdateCost(t *testing.T) {
	ctx := context.Background()
	allocs := func(n int) (float64, float64) {
		s, j := testShards(t)
		now := time.Now()
		s.applyUpdate(groupUpdate{job: "j", gen: 1, changes: groupsOf(n)})
		s.advance(ctx, now)
		writes := testutil.ToFloat64(s.d.m.shardWrites.WithLabelValues("j"))
		i := n
		a := testing.AllocsPerRun(100, func() {
			c := discovery.GroupChange{Source: "/s/new", Targets: map[string]model.LabelSet{fmt.Sprintf("/s/new/t-%06d", i): labelSet(i, 0)}}
			i++
			s.applyUpdate(groupUpdate{job: "j", gen: 1, changes: []discovery.GroupChange{c}})
			now = now.Add(j.writeEvery() / 50) // 101 updates over two writeEvery
			s.advance(ctx, now)
		})
		return a, testutil.ToFloat64(s.d.m.shardWrites.WithLabelValues("j")) - writes
	}
	small, smallWrites := allocs(1000)
	big, bigWrites := allocs(40000)
	t.Logf("allocations per new target: %.0f with 1,000 targets, %.0f with 40,000; share writes over 101 updates: %.0f, %.0f", small, big, smallWrites, bigWrites)
	if big > 2*small+20 {
		t.Errorf("a new target costs %.0f allocations with 40,000 targets and %.0f with 1,000: the work grows with the job", big, small)
	}
	if smallWrites > 3 || bigWrites > 3 {
		t.Errorf("101 updates over two write intervals wrote the share %.0f and %.0f times, want at most 3", smallWrites, bigWrites)
	}
}
