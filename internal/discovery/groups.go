package discovery

import (
	"context"
	"fmt"
	"sort"

	"github.com/prometheus/common/model"
)

// GroupChange is what changed in one target group (Prometheus's sense: a
// stable, unique Source, the znode of the service or
// "dubbo:<application>") since the subscriber's last update: the targets
// added or changed, by target id, and the ids of those that went. A
// vanished group is sent once with all its ids in Removed.
type GroupChange struct {
	Source  string
	Targets map[string]model.LabelSet
	Removed []string
}

type subscriber struct {
	pending map[string]bool
	signal  chan struct{}
	// sent is what the subscriber has been given: source -> target id
	// -> the entry's first byte. Entries are immutable and a changed
	// target gets a new one, so an entry that is still the one sent needs
	// neither decoding nor sending; holding the pointer keeps the address
	// from being reused.
	sent map[string]map[string]*byte
}

// Subscribe streams a job's target groups as changes: every group once
// the job has synced (all its targets as added), then, per group that
// changed, only the targets added, changed or gone. Changes coalesce
// while the reader is busy: a reader that is behind gets the latest state
// of what changed, once, and the work per update is the size of the
// change, not of the group (plus a scan of the changed groups' entries,
// compared by pointer). The channel closes when ctx ends or the job
// stops.
func (m *Manager) Subscribe(ctx context.Context, jobName string) (<-chan []GroupChange, error) {
	m.mu.Lock()
	rj, ok := m.jobs[jobName]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("subscribe: no discovery job %q", jobName)
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-rj.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	return rj.j.subscribe(ctx), nil
}

func (j *job) subscribe(ctx context.Context) <-chan []GroupChange {
	out := make(chan []GroupChange)
	s := &subscriber{pending: map[string]bool{}, signal: make(chan struct{}, 1), sent: map[string]map[string]*byte{}}
	j.mu.Lock()
	for src := range j.groups {
		s.pending[src] = true
	}
	j.subs = append(j.subs, s)
	if j.synced {
		s.signal <- struct{}{}
	}
	j.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			j.mu.Lock()
			for i, x := range j.subs {
				if x == s {
					j.subs = append(j.subs[:i], j.subs[i+1:]...)
					break
				}
			}
			j.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.signal:
			}
			j.mu.Lock()
			if !j.synced {
				j.mu.Unlock()
				continue
			}
			changes := s.collect(j.groups)
			j.mu.Unlock()
			if len(changes) == 0 {
				continue
			}
			select {
			case out <- changes:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// collect takes the pending sources and returns how each differs from
// what was sent, recording the new state as sent. The caller holds j.mu.
func (s *subscriber) collect(groups map[string]*group) []GroupChange {
	srcs := make([]string, 0, len(s.pending))
	for src := range s.pending {
		srcs = append(srcs, src)
	}
	clear(s.pending)
	sort.Strings(srcs)
	var out []GroupChange
	for _, src := range srcs {
		if c, ok := s.diff(src, groups[src]); ok {
			out = append(out, c)
		}
	}
	return out
}

// diff is group g (nil: gone) of src against what was sent of it.
func (s *subscriber) diff(src string, g *group) (GroupChange, bool) {
	prev := s.sent[src]
	c := GroupChange{Source: src}
	if g == nil {
		for id := range prev {
			c.Removed = append(c.Removed, id)
		}
		delete(s.sent, src)
		sort.Strings(c.Removed)
		return c, len(c.Removed) > 0
	}
	if prev == nil {
		prev = make(map[string]*byte, len(g.targets))
		s.sent[src] = prev
	}
	held := 0 // ids of g that prev holds
	for id, entry := range g.targets {
		p, had := prev[id]
		if had && len(entry) > 0 && p == &entry[0] {
			held++
			continue
		}
		l, ok := entryLabelSet(entry)
		if !ok {
			if had {
				delete(prev, id)
				c.Removed = append(c.Removed, id)
			}
			continue
		}
		if c.Targets == nil {
			c.Targets = map[string]model.LabelSet{}
		}
		c.Targets[id] = l
		prev[id] = &entry[0]
		held++
	}
	if len(prev) > held {
		for id := range prev {
			if _, ok := g.targets[id]; !ok {
				delete(prev, id)
				c.Removed = append(c.Removed, id)
			}
		}
	}
	sort.Strings(c.Removed)
	return c, len(c.Targets) > 0 || len(c.Removed) > 0
}

// notifySubs records changed sources for every subscriber. The caller
// holds j.mu.
func (j *job) notifySubs(srcs []string) {
	for _, s := range j.subs {
		for _, src := range srcs {
			s.pending[src] = true
		}
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
}

// entryLabelSet decodes one rendered target.
func entryLabelSet(entry []byte) (model.LabelSet, bool) {
	t, ok := decodeEntry(entry)
	if !ok {
		return nil, false
	}
	l := make(model.LabelSet, len(t.Labels)+1)
	for k, v := range t.Labels {
		l[model.LabelName(k)] = model.LabelValue(v)
	}
	l[model.AddressLabel] = model.LabelValue(t.Address)
	return l, true
}
