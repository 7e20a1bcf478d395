package shard

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

func targets(n int) []string {
	ts := make([]string, n)
	for i := range ts {
		ts[i] = TargetKey("node", fmt.Sprintf("10.0.%d.%d:9100", i/250, i%250), "/metrics", "")
	}
	return ts
}

func members(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{Name: fmt.Sprintf("prometheus-%d", i)}
	}
	return ms
}

// Every agent computes the same assignment from the same view, whatever
// order its view lists members and targets in.
func TestAssignIsTheSameEverywhere(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 50; trial++ {
		ms := members(1 + rng.Intn(12))
		for i := range ms {
			if rng.Intn(3) == 0 {
				ms[i].Weight = float64(1 + rng.Intn(4))
			}
		}
		ts := targets(200 + rng.Intn(300))
		replicas := 1 + rng.Intn(3)
		want := Assign(ts, ms, replicas)
		for agent := 0; agent < 5; agent++ {
			ms2 := append([]Member(nil), ms...)
			ts2 := append([]string(nil), ts...)
			rng.Shuffle(len(ms2), func(i, j int) { ms2[i], ms2[j] = ms2[j], ms2[i] })
			rng.Shuffle(len(ts2), func(i, j int) { ts2[i], ts2[j] = ts2[j], ts2[i] })
			got := Assign(ts2, ms2, replicas)
			for _, tk := range ts {
				if !sameSet(got[tk], want[tk]) {
					t.Fatalf("trial %d agent %d: %s owned by %v, elsewhere by %v", trial, agent, tk, got[tk], want[tk])
				}
			}
		}
		for _, tk := range ts {
			r := min(replicas, len(ms))
			if len(want[tk]) != r {
				t.Fatalf("%s has %d owners, want %d", tk, len(want[tk]), r)
			}
			seen := map[string]bool{}
			for _, o := range want[tk] {
				if seen[o] {
					t.Fatalf("%s owned twice by %s", tk, o)
				}
				seen[o] = true
			}
		}
	}
}

func TestBalanceAndMinimalMovement(t *testing.T) {
	ts := targets(10000)
	for _, n := range []int{3, 10} {
		before := Assign(ts, members(n), 1)
		for m, c := range Counts(before) {
			even := float64(len(ts)) / float64(n)
			if math.Abs(float64(c)-even)/even > 0.10 {
				t.Errorf("n=%d: %s has %d targets, even share %.0f", n, m, c, even)
			}
		}
		// A join moves only what the newcomer takes: ideally 1/(n+1).
		after := Assign(ts, members(n+1), 1)
		ideal := 1 / float64(n+1)
		if moved := Moved(before, after); moved > 1.1*ideal {
			t.Errorf("join at n=%d moved %.3f, ideal %.3f", n, moved, ideal)
		}
		for tk, o := range after {
			if o[0] != before[tk][0] && o[0] != fmt.Sprintf("prometheus-%d", n) {
				t.Fatalf("join moved %s between two old members", tk)
			}
		}
		// A leave moves only the leaver's targets.
		ms := members(n)
		left := Assign(ts, append(ms[:1:1], ms[2:]...), 1)
		for tk, o := range before {
			if o[0] != ms[1].Name && left[tk][0] != o[0] {
				t.Fatalf("leave moved %s, which the leaver did not own", tk)
			}
		}
	}
}

func TestWeightsAndReplicas(t *testing.T) {
	ts := targets(20000)
	ms := []Member{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}, {Name: "c", Weight: 2}}
	c := Counts(Assign(ts, ms, 1))
	if r := float64(c["c"]) / float64(c["a"]); r < 1.8 || r > 2.2 {
		t.Errorf("weight 2 got %.2f× the targets of weight 1", r)
	}
	if got := Assign(ts[:1], []Member{{Name: "x", Weight: -1}}, 1); len(got[ts[0]]) != 0 {
		t.Errorf("a member with negative weight got targets")
	}
	a := Assign(ts, members(4), 2)
	for _, n := range Counts(a) {
		if math.Abs(float64(n)-10000)/10000 > 0.1 {
			t.Errorf("replicas=2 over 4 members: a member has %d, want about 10000", n)
		}
	}
	if got := Assign(ts[:1], members(2), 5)[ts[0]]; len(got) != 2 {
		t.Errorf("replicas above the member count: %v", got)
	}
	if got := Assign(ts[:1], nil, 1); len(got) != 0 {
		t.Errorf("no members: %v", got)
	}
}

func BenchmarkAssign(b *testing.B) {
	ts := targets(100000)
	ms := members(50)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Assign(ts, ms, 1)
	}
}

// BenchmarkMovement reports the moved fraction on a join and a leave at
// 10 members beside the ideal, and the peak/average load.
func BenchmarkMovement(b *testing.B) {
	ts := targets(100000)
	for i := 0; i < b.N; i++ {
		ms := members(10)
		base := Assign(ts, ms, 1)
		join := Assign(ts, members(11), 1)
		leave := Assign(ts, ms[1:], 1)
		peak := 0
		for _, c := range Counts(base) {
			peak = max(peak, c)
		}
		b.ReportMetric(Moved(base, join), "join-moved")
		b.ReportMetric(1.0/11, "join-ideal")
		b.ReportMetric(Moved(base, leave), "leave-moved")
		b.ReportMetric(1.0/10, "leave-ideal")
		b.ReportMetric(float64(peak)/(float64(len(ts))/10), "peak/avg")
	}
}
