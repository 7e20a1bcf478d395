package shard

import (
	"sort"
	"time"
)

// Target is one discovered target: its assignment key and what to hand
// Prometheus for it.
type Target struct {
	Key    string            // see TargetKey
	Source string            // the target group it came from
	Labels map[string]string // __address__ and the rest
}

// Options tune a Share.
type Options struct {
	Replicas int // members per target (default 1)
	// Overlap is how long a member keeps scraping a target that moved
	// away, so that the new owner starts before the old one stops
	// (default: one scrape interval, 15s).
	Overlap time.Duration
	// JoinDelay is how long a new member must stay before it gets targets,
	// so that a flapping member does not churn the fleet (default 2s). A
	// member that leaves is dropped at once: its node is gone only after a
	// clean exit or a session expiry.
	JoinDelay time.Duration
}

// Share is one member's view of the shard assignment: it tracks the
// live members and the targets and says which targets this member scrapes
// now. It is a pure state machine driven with explicit times; Next says
// when to look again.
type Share struct {
	self string
	opts Options

	viewed  bool                 // a membership view has arrived
	seen    map[string]Member    // the latest membership view
	since   map[string]time.Time // when each member of seen appeared
	applied []Member             // the members the assignment uses
	targets map[string]Target

	owned     map[string]bool      // targets assigned to self by the applied view
	lingering map[string]time.Time // moved away: kept until then
	moves     int
	version   uint64 // counts changes of what Owned returns

	ms      []prepared // the applied members, prepared for scoring
	uniform bool       // all of ms weigh the same
	top     []scored   // scratch for owns
}

// NewShare makes the share of member self.
func NewShare(self string, opts Options) *Share {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.Overlap == 0 {
		opts.Overlap = 15 * time.Second
	}
	if opts.JoinDelay == 0 {
		opts.JoinDelay = 2 * time.Second
	}
	return &Share{self: self, opts: opts, seen: map[string]Member{}, since: map[string]time.Time{},
		targets: map[string]Target{}, owned: map[string]bool{}, lingering: map[string]time.Time{}}
}

// SetMembers takes a new membership view.
func (s *Share) SetMembers(members []Member, now time.Time) {
	seen := make(map[string]Member, len(members))
	for _, m := range members {
		seen[m.Name] = m
		if _, ok := s.since[m.Name]; !ok {
			if s.viewed {
				s.since[m.Name] = now
			} else {
				// Members already there when we start are not joining.
				s.since[m.Name] = now.Add(-s.opts.JoinDelay)
			}
		}
	}
	s.viewed = true
	for name := range s.since {
		if _, ok := seen[name]; !ok {
			delete(s.since, name)
		}
	}
	s.seen = seen
	s.Advance(now)
}

// SetTargets takes the complete current target list.
func (s *Share) SetTargets(targets []Target, now time.Time) {
	s.targets = make(map[string]Target, len(targets))
	for _, t := range targets {
		s.targets[t.Key] = t
	}
	s.reassign(now, false)
}

// Update takes a change of the target list: targets added or changed
// (by Key) and the keys of targets gone. It ends as SetTargets with the
// whole new list would, at a cost of the change's size: the owners of a
// target depend only on its key and the applied members, so the other
// targets keep theirs. A target gone goes at once, lingering or not.
func (s *Share) Update(set []Target, removed []string) {
	for _, k := range removed {
		if _, ok := s.targets[k]; !ok {
			continue
		}
		delete(s.targets, k)
		if s.owned[k] {
			delete(s.owned, k)
			s.version++
		}
		if _, ok := s.lingering[k]; ok {
			delete(s.lingering, k)
			s.version++
		}
	}
	for _, t := range set {
		s.targets[t.Key] = t
		_, lingering := s.lingering[t.Key]
		if s.owns(t.Key) {
			s.owned[t.Key] = true
			delete(s.lingering, t.Key)
			s.version++
		} else if lingering {
			s.version++ // its labels may have changed
		}
	}
}

// owns says whether the applied members give target key to self.
func (s *Share) owns(key string) bool {
	if len(s.ms) == 0 {
		return false
	}
	n := max(1, min(s.opts.Replicas, len(s.ms)))
	s.top = topMembers(hashString(key), s.ms, n, s.uniform, s.top[:0])
	for _, sc := range s.top {
		if s.ms[sc.idx].name == s.self {
			return true
		}
	}
	return false
}

// Version changes whenever what Owned returns changes (a target added,
// changed or gone, or moved in or out); equal versions mean equal shares.
func (s *Share) Version() uint64 { return s.version }

// Advance applies what became due by now: members that stayed long enough
// join, lingering targets expire.
func (s *Share) Advance(now time.Time) {
	var next []Member
	for name, m := range s.seen {
		// Self and the members already in the assignment need no delay.
		if name == s.self || s.inApplied(name) || now.Sub(s.since[name]) >= s.opts.JoinDelay {
			next = append(next, m)
		}
	}
	sort.Slice(next, func(i, j int) bool { return next[i].Name < next[j].Name })
	changed := !sameMembers(next, s.applied)
	s.applied = next
	if changed {
		s.ms = prepare(next)
		s.uniform = true
		for _, m := range s.ms {
			s.uniform = s.uniform && m.weight == s.ms[0].weight
		}
		s.reassign(now, true)
	}
	for k, until := range s.lingering {
		if !now.Before(until) {
			delete(s.lingering, k)
			s.version++
		}
	}
}

func (s *Share) inApplied(name string) bool {
	for _, m := range s.applied {
		if m.Name == name {
			return true
		}
	}
	return false
}

func (s *Share) reassign(now time.Time, membershipChanged bool) {
	keys := make([]string, 0, len(s.targets))
	for k := range s.targets {
		keys = append(keys, k)
	}
	a := Assign(keys, s.applied, s.opts.Replicas)
	owned := make(map[string]bool)
	for k, owners := range a {
		for _, o := range owners {
			if o == s.self {
				owned[k] = true
			}
		}
	}
	for k := range s.owned {
		if owned[k] {
			continue
		}
		// Moved to another member: keep it for the overlap, so the new
		// owner has begun before we stop. A target that vanished from
		// discovery goes at once.
		if _, still := s.targets[k]; still && membershipChanged {
			s.lingering[k] = now.Add(s.opts.Overlap)
			s.moves++
		}
	}
	for k := range owned {
		delete(s.lingering, k)
	}
	for k := range s.lingering {
		if _, still := s.targets[k]; !still {
			delete(s.lingering, k)
		}
	}
	s.owned = owned
	s.version++
}

// Owned returns the targets this member scrapes now (assigned plus
// lingering), sorted by key.
func (s *Share) Owned() []Target {
	out := make([]Target, 0, len(s.owned)+len(s.lingering))
	for k := range s.owned {
		out = append(out, s.targets[k])
	}
	for k := range s.lingering {
		out = append(out, s.targets[k])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// OwnedCount is len(Owned()) without building the list.
func (s *Share) OwnedCount() int { return len(s.owned) + len(s.lingering) }

// Assigned returns how many targets the assignment gives this member (not
// counting lingering ones).
func (s *Share) Assigned() int { return len(s.owned) }

// Members returns the members the assignment uses.
func (s *Share) Members() []Member { return append([]Member(nil), s.applied...) }

// Moves counts targets this member handed over.
func (s *Share) Moves() int { return s.moves }

// Next returns when Advance has work next (zero time: nothing pending).
func (s *Share) Next() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for name, since := range s.since {
		if name != s.self && !s.inApplied(name) {
			consider(since.Add(s.opts.JoinDelay))
		}
	}
	for _, until := range s.lingering {
		consider(until)
	}
	return next
}

func sameMembers(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Targets returns how many targets the share knows.
func (s *Share) Targets() int { return len(s.targets) }
