package configstore

import (
	"errors"
	"testing"
)

// An agent is behind unless it runs the revision meant for it (the
// canary's for a canary) and applied it; a node that is not an agent's
// always counts.
func TestClusterStatusBehind(t *testing.T) {
	agent := func(name, state string, rev int) Member {
		return Member{Name: name, Status: Status{Member: name, State: state, Revision: rev}}
	}
	members := []Member{
		agent("a", StateApplied, 3),
		agent("b", StateApplied, 4), // a canary, on the canary's revision
		agent("c", StateApplied, 2),
		agent("d", StateApplying, 3),
		agent("e", StateFailed, 3),
		{Name: "f", Err: errors.New("not an agent's")},
	}
	c := clusterStatus(Pointer{Revision: 3}, &CanaryPointer{Revision: 4, Members: []string{"b"}}, members)
	want := map[string]struct {
		want   int
		behind bool
	}{"a": {3, false}, "b": {4, false}, "c": {3, true}, "d": {3, true}, "e": {3, true}, "f": {0, true}}
	for _, m := range c.Members {
		if w := want[m.Name]; m.Want != w.want || m.Behind != w.behind {
			t.Errorf("%s: want %d behind %t, expected %d %t", m.Name, m.Want, m.Behind, w.want, w.behind)
		}
	}
	if n := c.Behind(); n != 4 {
		t.Errorf("Behind() = %d, want 4", n)
	}
	if c := clusterStatus(Pointer{Revision: 3}, nil, members[:1]); c.Behind() != 0 || c.Members[0].Want != 3 {
		t.Errorf("without a canary: %+v", c)
	}
}
