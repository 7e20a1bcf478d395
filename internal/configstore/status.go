package configstore

import "context"

// ClusterStatus is a cluster as its agents report it: what each of them
// runs against what it should run. `zkprom config status` prints it; a
// status page can show the same.
type ClusterStatus struct {
	Current Pointer
	Canary  *CanaryPointer // nil when no canary rollout runs
	// Members are the nodes under members, sorted by name.
	Members []MemberStatus
}

// MemberStatus is one member node and the revision its agent should run.
type MemberStatus struct {
	Member
	// Want is the revision the agent should run: the canary's for a
	// canary, else the current one (0 for a node that is not an agent's).
	Want int
	// Behind: the agent does not run Want, applied (it is applying,
	// failed, or waiting for Prometheus), or the node is not an agent's.
	Behind bool
}

// Behind counts the members that are behind (or not agents).
func (c ClusterStatus) Behind() int {
	n := 0
	for _, m := range c.Members {
		if m.Behind {
			n++
		}
	}
	return n
}

// Want is the revision member should run: the canary's for a canary,
// else the current one.
func (c ClusterStatus) Want(member string) int {
	if c.Canary.Has(member) {
		return c.Canary.Revision
	}
	return c.Current.Revision
}

// Status reads the current pointer, the canary pointer and every member
// node, and says which agents are behind.
func (s *Store) Status(ctx context.Context) (ClusterStatus, error) {
	cur, _, err := s.Current(ctx)
	if err != nil {
		return ClusterStatus{}, err
	}
	canary, err := s.Canary(ctx)
	if err != nil {
		return ClusterStatus{}, err
	}
	members, err := s.Members(ctx)
	if err != nil {
		return ClusterStatus{}, err
	}
	return clusterStatus(cur, canary, members), nil
}

// clusterStatus is the rule of what counts as behind.
func clusterStatus(cur Pointer, canary *CanaryPointer, members []Member) ClusterStatus {
	c := ClusterStatus{Current: cur, Canary: canary}
	for _, m := range members {
		ms := MemberStatus{Member: m, Behind: true}
		if m.Err == nil {
			ms.Want = c.Want(m.Name)
			ms.Behind = m.Status.Revision != ms.Want || m.Status.State != StateApplied
		}
		c.Members = append(c.Members, ms)
	}
	return c
}
