package shard

import (
	"fmt"
	"testing"
	"time"
)

func discovered(n int) []Target {
	ts := make([]Target, n)
	for i := range ts {
		addr := fmt.Sprintf("10.1.%d.%d:9100", i/200, i%200)
		ts[i] = Target{Key: TargetKey("node", addr, "/metrics", ""), Source: "g", Labels: map[string]string{"__address__": addr}}
	}
	return ts
}

// fleet drives one share per member through the same views.
type fleet map[string]*Share

func (f fleet) view(now time.Time, names ...string) {
	ms := make([]Member, len(names))
	for i, n := range names {
		ms[i] = Member{Name: n}
	}
	for _, s := range f {
		s.SetMembers(ms, now)
	}
}

func (f fleet) advance(now time.Time) {
	for _, s := range f {
		s.Advance(now)
	}
}

// owners counts, for each target, the members scraping it now.
func (f fleet) owners(alive ...string) map[string]int {
	c := map[string]int{}
	for _, name := range alive {
		for _, t := range f[name].Owned() {
			c[t.Key]++
		}
	}
	return c
}

func TestHandOverWithoutGaps(t *testing.T) {
	ts := discovered(1000)
	now := time.Unix(0, 0)
	opts := Options{Overlap: 10 * time.Second, JoinDelay: 2 * time.Second}
	f := fleet{}
	for _, n := range []string{"a", "b", "c", "d"} {
		f[n] = NewShare(n, opts)
		f[n].SetTargets(ts, now)
	}
	f.view(now, "a", "b", "c")
	f.advance(now.Add(3 * time.Second))
	now = now.Add(3 * time.Second)
	for k, n := range f.owners("a", "b", "c") {
		if n != 1 {
			t.Fatalf("%s scraped by %d members", k, n)
		}
	}
	if len(f.owners("a", "b", "c")) != len(ts) {
		t.Fatal("some target has no owner")
	}
	before := map[string]int{"a": f["a"].Assigned(), "b": f["b"].Assigned(), "c": f["c"].Assigned()}

	// d joins: nothing moves before the join delay, then d takes its share
	// while the old owners keep theirs for the overlap.
	f.view(now, "a", "b", "c", "d")
	if f["d"].Assigned() != 0 && f["a"].Assigned() != before["a"] {
		t.Fatal("assignment changed before the join delay")
	}
	now = now.Add(2 * time.Second)
	f.advance(now)
	all := f.owners("a", "b", "c", "d")
	if len(all) != len(ts) {
		t.Fatal("a target is unowned during the hand-over")
	}
	if f["d"].Assigned() == 0 {
		t.Fatal("d got nothing after the join delay")
	}
	moved := f["a"].Moves() + f["b"].Moves() + f["c"].Moves()
	if ideal := len(ts) / 4; float64(moved) > 1.1*float64(ideal)+10 {
		t.Errorf("join moved %d targets, ideal %d", moved, ideal)
	}
	overlapping := 0
	for _, n := range all {
		if n > 1 {
			overlapping++
		}
	}
	if overlapping != moved {
		t.Errorf("%d targets scraped twice during the overlap, %d moved", overlapping, moved)
	}
	// After the overlap, exactly one owner each.
	now = now.Add(10 * time.Second)
	f.advance(now)
	for k, n := range f.owners("a", "b", "c", "d") {
		if n != 1 {
			t.Fatalf("after the overlap %s scraped by %d", k, n)
		}
	}

	// c dies: its node goes when its session expires; the others take its
	// targets at once.
	delete(f, "c")
	f.view(now, "a", "b", "d")
	if got := len(f.owners("a", "b", "d")); got != len(ts) {
		t.Fatalf("after c left, %d of %d targets owned", got, len(ts))
	}
}

func TestFlappingMemberMovesNothing(t *testing.T) {
	ts := discovered(500)
	now := time.Unix(0, 0)
	a := NewShare("a", Options{JoinDelay: 2 * time.Second})
	a.SetTargets(ts, now)
	a.SetMembers([]Member{{Name: "a"}, {Name: "b"}}, now)
	now = now.Add(3 * time.Second)
	a.Advance(now)
	base, moves := a.Assigned(), a.Moves()
	for i := 0; i < 10; i++ {
		now = now.Add(500 * time.Millisecond)
		a.SetMembers([]Member{{Name: "a"}, {Name: "b"}, {Name: "x"}}, now)
		now = now.Add(500 * time.Millisecond)
		a.SetMembers([]Member{{Name: "a"}, {Name: "b"}}, now)
	}
	if a.Assigned() != base || a.Moves() != moves {
		t.Errorf("a member flapping faster than the join delay moved targets: %d moves", a.Moves()-moves)
	}
}

func TestTargetsComeAndGo(t *testing.T) {
	now := time.Unix(0, 0)
	s := NewShare("a", Options{})
	s.SetMembers([]Member{{Name: "a"}}, now)
	s.SetTargets(discovered(10), now)
	if len(s.Owned()) != 10 {
		t.Fatalf("single member owns %d of 10", len(s.Owned()))
	}
	s.SetTargets(discovered(4), now)
	if len(s.Owned()) != 4 {
		t.Fatalf("vanished targets must go at once, own %d", len(s.Owned()))
	}
}

// Update ends where SetTargets with the whole new list does, through
// joins, moves in overlap and targets coming and going (weighted members
// too), and Version changes whenever Owned does.
func TestShareUpdateMatchesSetTargets(t *testing.T) {
	all := discovered(600)
	now := time.Unix(1000, 0)
	inc := NewShare("b", Options{Replicas: 2})
	full := NewShare("b", Options{Replicas: 2})
	members := []Member{{Name: "a"}, {Name: "b", Weight: 2}, {Name: "c"}}
	inc.SetMembers(members, now)
	full.SetMembers(members, now)
	have := map[string]Target{}
	list := func() []Target {
		out := make([]Target, 0, len(have))
		for _, t := range have {
			out = append(out, t)
		}
		return out
	}
	for step := range 40 {
		var set []Target
		var removed []string
		for i := step * 7 % 600; i < 600; i += 13 + step {
			tg := all[i]
			if _, ok := have[tg.Key]; ok && i%3 == 0 {
				delete(have, tg.Key)
				removed = append(removed, tg.Key)
				continue
			}
			tg.Labels = map[string]string{"__address__": tg.Labels["__address__"], "step": fmt.Sprint(step)}
			have[tg.Key] = tg
			set = append(set, tg)
		}
		before, v := fmt.Sprint(inc.Owned()), inc.Version()
		inc.Update(set, removed)
		full.SetTargets(list(), now)
		if after := fmt.Sprint(inc.Owned()); after != before && inc.Version() == v {
			t.Fatalf("step %d: the share changed, its version did not", step)
		}
		if step == 10 {
			members = append(members, Member{Name: "d"})
			inc.SetMembers(members, now)
			full.SetMembers(members, now)
		}
		if step == 25 {
			members = members[1:]
			inc.SetMembers(members, now)
			full.SetMembers(members, now)
		}
		now = now.Add(time.Second)
		inc.Advance(now)
		full.Advance(now)
		if got, want := fmt.Sprint(inc.Owned()), fmt.Sprint(full.Owned()); got != want {
			t.Fatalf("step %d: Update gives\n%s\nSetTargets\n%s", step, got, want)
		}
		if inc.OwnedCount() != len(full.Owned()) || inc.Assigned() != full.Assigned() || inc.Targets() != full.Targets() {
			t.Fatalf("step %d: counts differ", step)
		}
	}
}
