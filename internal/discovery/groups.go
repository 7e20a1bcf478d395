package discovery

import (
	"context"
	"fmt"
	"sort"

	"github.com/prometheus/common/model"
)

// Group is a target group as Prometheus's discovery defines it: a stable,
// unique Source (the znode of the service, or "dubbo:<application>") and
// its targets. A group that vanished is sent once with no targets.
type Group struct {
	Source  string
	Targets []model.LabelSet
}

type subscriber struct {
	pending map[string]bool
	signal  chan struct{}
	sent    bool
}

// Subscribe streams a job's target groups: every group once the job has
// synced, then the groups that changed (coalesced while the reader is
// busy), vanished groups once as empty. The channel closes when ctx ends
// or the job stops.
func (m *Manager) Subscribe(ctx context.Context, jobName string) (<-chan []Group, error) {
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

func (j *job) subscribe(ctx context.Context) <-chan []Group {
	out := make(chan []Group)
	s := &subscriber{pending: map[string]bool{}, signal: make(chan struct{}, 1)}
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
			srcs := make([]string, 0, len(s.pending))
			for src := range s.pending {
				srcs = append(srcs, src)
			}
			s.pending = map[string]bool{}
			sort.Strings(srcs)
			var groups []Group
			for _, src := range srcs {
				g := Group{Source: src}
				if grp := j.groups[src]; grp != nil {
					g.Targets = grp.labelSets()
				} else if !s.sent {
					continue // never sent: nothing to retract
				}
				groups = append(groups, g)
			}
			s.sent = true
			j.mu.Unlock()
			if len(groups) == 0 {
				continue
			}
			select {
			case out <- groups:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
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

// labelSets decodes the group's rendered targets.
func (g *group) labelSets() []model.LabelSet {
	ids := make([]string, 0, len(g.targets))
	for id := range g.targets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]model.LabelSet, 0, len(ids))
	for _, id := range ids {
		t, ok := decodeEntry(g.targets[id])
		if !ok {
			continue
		}
		l := make(model.LabelSet, len(t.Labels)+1)
		for k, v := range t.Labels {
			l[model.LabelName(k)] = model.LabelValue(v)
		}
		l[model.AddressLabel] = model.LabelValue(t.Address)
		out = append(out, l)
	}
	return out
}
