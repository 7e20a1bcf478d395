package discovery

import (
	"fmt"
	"testing"

	"github.com/prometheus/common/model"
)

func groupEntry(i, rev int) []byte {
	return render(model.LabelSet{model.AddressLabel: model.LabelValue(fmt.Sprintf("10.0.%d.%d:9100", i/256, i%256)), "rev": model.LabelValue(fmt.Sprint(rev))})
}

func groupOf(n int) *group {
	g := &group{targets: map[string][]byte{}}
	for i := range n {
		g.targets[fmt.Sprintf("/s/t-%06d", i)] = groupEntry(i, 0)
	}
	return g
}

// TestSubscriberSendsChanges: a subscriber gets a group whole once, then
// per change only the targets added, changed or gone, and several changes
// made while it was busy come as one, in their latest state.
func TestSubscriberSendsChanges(t *testing.T) {
	groups := map[string]*group{"/s": groupOf(5)}
	s := &subscriber{pending: map[string]bool{"/s": true}, sent: map[string]map[string]*byte{}}
	first := s.collect(groups)
	if len(first) != 1 || len(first[0].Targets) != 5 || len(first[0].Removed) != 0 {
		t.Fatalf("first update: %v", first)
	}
	g := groups["/s"]
	g.targets["/s/t-000001"] = groupEntry(1, 1)
	g.targets["/s/t-000001"] = groupEntry(1, 2) // changed twice: the latest
	g.targets["/s/t-000009"] = groupEntry(9, 0) // added
	delete(g.targets, "/s/t-000003")            // gone
	g.targets["/s/t-000004"] = groupEntry(4, 0) // re-rendered, same labels
	s.pending["/s"] = true
	got := s.collect(groups)
	if len(got) != 1 || got[0].Source != "/s" {
		t.Fatalf("second update: %v", got)
	}
	c := got[0]
	if len(c.Targets) != 3 || c.Targets["/s/t-000001"]["rev"] != "2" || c.Targets["/s/t-000009"] == nil || c.Targets["/s/t-000004"] == nil {
		t.Errorf("changed targets: %v", c.Targets)
	}
	if fmt.Sprint(c.Removed) != "[/s/t-000003]" {
		t.Errorf("removed: %v", c.Removed)
	}
	s.pending["/s"] = true
	if got := s.collect(groups); len(got) != 0 {
		t.Errorf("nothing changed, yet: %v", got)
	}
	// A group that vanishes is sent once with all its ids; one that came
	// and went unseen is not sent at all.
	delete(groups, "/s")
	s.pending["/s"], s.pending["/never"] = true, true
	got = s.collect(groups)
	if len(got) != 1 || len(got[0].Removed) != 5 || len(got[0].Targets) != 0 {
		t.Errorf("vanished group: %v", got)
	}
}

// TestSubscriberChangeCost: the work for one changed target does not grow
// with its group: a group of 10,000 costs what one of 100 does (the
// unchanged entries are compared, not decoded). Sending the changed
// group's full decoded list, as before, took ~10 allocations per target of
// the group.
func TestSubscriberChangeCost(t *testing.T) {
	allocs := func(n int) float64 {
		groups := map[string]*group{"/s": groupOf(n)}
		s := &subscriber{pending: map[string]bool{"/s": true}, sent: map[string]map[string]*byte{}}
		s.collect(groups)
		rev := 0
		return testing.AllocsPerRun(20, func() {
			rev++
			groups["/s"].targets["/s/t-000001"] = groupEntry(1, rev)
			s.pending["/s"] = true
			if c := s.collect(groups); len(c) != 1 || len(c[0].Targets) != 1 {
				t.Fatalf("one target changed: got %d groups (the first with %d targets), want one with one", len(c), len(c[0].Targets))
			}
		})
	}
	small, big := allocs(100), allocs(10000)
	t.Logf("allocations per change: %.0f in a group of 100, %.0f in one of 10,000", small, big)
	if big > small+5 {
		t.Errorf("one change in a group of 10,000 takes %.0f allocations, in one of 100 %.0f: the work grows with the group", big, small)
	}
}
