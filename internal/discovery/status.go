package discovery

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zkprom/zkprom/internal/targetgroup"
)

// maxListedTargets bounds the targets a job page lists (the JSON twin
// too); the count says how many there are.
const maxListedTargets = 1000

// Status is what `zkprom sd`'s page shows: every job, read from the
// jobs' caches.
type Status struct {
	Jobs []JobStatus `json:"jobs"`
}

// JobStatus is one job as its engine sees it now.
type JobStatus struct {
	Name      string   `json:"name"`
	Format    string   `json:"format"`
	Paths     []string `json:"paths"`
	ZooKeeper string   `json:"zookeeper"`
	Session   string   `json:"session"` // connecting, connected, disconnected, expired, auth_failed
	Synced    bool     `json:"synced"`
	Stale     bool     `json:"stale"`
	// Members is the znodes that produced members, Targets what they
	// became (zkprom_sd_members, zkprom_sd_targets).
	Members int `json:"members"`
	Targets int `json:"targets"`
	// Refused is the znodes refused now, by reason; RefusedTotal every
	// refusal since start (zkprom_sd_invalid_members_total).
	Refused      map[string]int     `json:"refused"`
	RefusedTotal map[string]float64 `json:"refused_total"`
	// Refusals are the first few znodes refused now, per reason, and why.
	Refusals   []Refusal `json:"refusals"`
	LastChange time.Time `json:"last_change,omitzero"`
}

// Target is one target of a job: its address, its labels and the
// znodes it came from (several when members were merged by key).
type Target struct {
	Address string            `json:"address"`
	Labels  map[string]string `json:"labels"`
	Znodes  []string          `json:"znodes"`
	Group   string            `json:"group"`
}

// JobTargets is a job page: the job and its targets.
type JobTargets struct {
	JobStatus
	List []Target `json:"target_list"`
	// Omitted is how many targets are not listed (beyond maxListedTargets).
	Omitted int `json:"omitted"`
}

// Status reads every job's state.
func (m *Manager) Status() Status {
	st := Status{Jobs: []JobStatus{}}
	for _, rj := range m.runningJobs() {
		st.Jobs = append(st.Jobs, rj.status())
	}
	return st
}

// JobTargets reads one job and its targets; false when there is no such job.
func (m *Manager) JobTargets(name string) (JobTargets, bool) {
	v, ok := m.runningJob(name)
	if !ok {
		return JobTargets{}, false
	}
	jt := JobTargets{JobStatus: v.status(), List: []Target{}}
	j := v.j
	j.mu.Lock()
	defer j.mu.Unlock()
	j.eachTarget(nil, func(t Target) bool {
		jt.List = append(jt.List, t)
		return len(jt.List) < maxListedTargets
	})
	jt.Omitted = j.nTargets - len(jt.List)
	return jt, true
}

// runningJobs returns the jobs sorted by name, with their sessions.
func (m *Manager) runningJobs() []jobView {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]jobView, 0, len(m.jobs))
	for _, rj := range m.jobs {
		out = append(out, jobView{j: rj.j, ce: m.clients[rj.key]})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].j.cfg.Name < out[b].j.cfg.Name })
	return out
}

// runningJob returns the job named name with its session.
func (m *Manager) runningJob(name string) (jobView, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rj, ok := m.jobs[name]
	if !ok {
		return jobView{}, false
	}
	return jobView{j: rj.j, ce: m.clients[rj.key]}, true
}

// jobView is a running job and its session.
type jobView struct {
	j  *job
	ce *clientEntry
}

func (v jobView) session() string {
	if v.ce == nil {
		return "none"
	}
	select {
	case <-v.ce.ready:
		return v.ce.client.State().String()
	default:
		return "connecting"
	}
}

func (v jobView) status() JobStatus {
	j := v.j
	st := JobStatus{Name: j.cfg.Name, Format: j.cfg.Format, Paths: j.cfg.Paths, Session: v.session(),
		Refused: map[string]int{}, RefusedTotal: map[string]float64{}, Refusals: []Refusal{}}
	if j.cfg.ZooKeeper != nil {
		st.ZooKeeper = j.cfg.ZooKeeper.Servers
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	st.Synced, st.Stale, st.LastChange = j.synced, j.stale, j.lastUpdate
	st.Members, st.Targets = j.members(), j.nTargets
	for _, r := range j.invalid {
		st.Refused[r]++
	}
	for r, n := range j.invalidTotal {
		st.RefusedTotal[r] = n
	}
	for _, list := range j.refused {
		st.Refusals = append(st.Refusals, list...)
	}
	sort.Slice(st.Refusals, func(a, b int) bool {
		ra, rb := st.Refusals[a], st.Refusals[b]
		return ra.Reason < rb.Reason || ra.Reason == rb.Reason && ra.Path < rb.Path
	})
	return st
}

// eachTarget calls fn with every target whose rendered entry match
// accepts (nil: all), groups by source and targets by id, until fn
// returns false (j.mu held). Only the accepted entries are decoded.
func (j *job) eachTarget(match func(entry []byte) bool, fn func(Target) bool) {
	for _, s := range slices.Sorted(maps.Keys(j.groups)) {
		g := j.groups[s]
		for _, id := range g.sortedIDs() {
			if match != nil && !match(g.targets[id]) {
				continue
			}
			if t, ok := j.target(id); ok && !fn(t) {
				return
			}
		}
	}
}

// target returns the target with the id (j.mu held).
func (j *job) target(id string) (Target, bool) {
	src, g, ok := j.sourceOf(id)
	if !ok {
		return Target{}, false
	}
	t, ok := decodeEntry(g.targets[id])
	t.Group, t.Znodes = src, j.znodesOf(id)
	return t, ok
}

// znodesOf returns the znodes a target id came from (j.mu held).
func (j *job) znodesOf(id string) []string {
	if key, ok := strings.CutPrefix(id, "key:"); ok {
		return slices.Sorted(maps.Keys(j.keyed[key]))
	}
	p, _, _ := strings.Cut(id, "\x00")
	return []string{p}
}

// decodeEntry reads one rendered file_sd entry (one target).
func decodeEntry(entry []byte) (Target, bool) {
	var e targetgroup.Group
	if json.Unmarshal(entry, &e) != nil || len(e.Targets) != 1 {
		return Target{}, false
	}
	if e.Labels == nil {
		e.Labels = map[string]string{}
	}
	return Target{Address: e.Targets[0], Labels: e.Labels}, true
}
