package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/zkprom/zkprom/internal/zk"

	"github.com/zkprom/zkprom/internal/bundle"
)

// Agent states, as reported in member znodes.
const (
	StateStarting = "starting"               // registered, nothing applied yet in this run
	StateApplying = "applying"               // working on Status.Target
	StateApplied  = "applied"                // Status.Revision is live and verified
	StateFailed   = "failed"                 // Status.FailedRevision was refused; Prometheus is back on Status.Revision
	StateWaiting  = "waiting_for_prometheus" // files are laid down; Prometheus does not answer yet
)

// Status is what an agent reports in its member znode. One member znode
// and one status per agent.
type Status struct {
	Member         string `json:"member"`
	Cluster        string `json:"cluster"`
	State          string `json:"state"`
	Revision       int    `json:"revision"` // applied and verified (0: none)
	Checksum       string `json:"checksum,omitempty"`
	Target         int    `json:"target"` // the revision the agent is meant to run
	FailedRevision int    `json:"failed_revision,omitempty"`
	FailedStep     string `json:"failed_step,omitempty"`
	Error          string `json:"error,omitempty"` // Prometheus's or promtool's text
	// LastReload is Prometheus's lastConfigTime after the last reload the
	// agent verified; ReloadSuccessful is its reloadConfigSuccess.
	LastReload       time.Time `json:"last_reload_time,omitzero"`
	ReloadSuccessful bool      `json:"reload_successful"`
	Canary           bool      `json:"canary,omitempty"` // Target came from the canary pointer
	PrometheusURL    string    `json:"prometheus_url,omitempty"`
	Updated          time.Time `json:"updated"`
	Started          time.Time `json:"started"`
	Version          string    `json:"agent_version,omitempty"`
	// Fleet is the sharding and HA part (nil when the agent has none).
	Fleet *FleetStatus `json:"fleet,omitempty"`
	// What the agent saw of its Prometheus at its last reload: the
	// versions of Prometheus and of the promtool that validates for it
	// ("unknown" when a build does not say), a warning when they are not
	// the same major.minor release, and whether Prometheus reloads by
	// itself (--config.auto-reload).
	PrometheusVersion string `json:"prometheus_version,omitempty"`
	PromtoolVersion   string `json:"promtool_version,omitempty"`
	VersionWarning    string `json:"version_warning,omitempty"`
	AutoReload        bool   `json:"prometheus_auto_reload,omitempty"`
}

// Member is one live agent, or a node under members that is not one
// (Err says why; it is left out of rollouts, canaries and shards).
type Member struct {
	Name   string // the member node's name
	Status Status
	Err    error
}

// MaxWeight bounds a member's shard weight: one member must not be able to
// take (or, with a tiny weight, refuse) every target.
const MaxWeight = 1000

// maxMemberData bounds a member node's status.
const maxMemberData = 64 << 10

// ParseMember decodes and checks the member node name of cluster: it must
// belong to a live session (ephemeral), carry a status for that member
// and cluster, and sane fleet fields.
func ParseMember(cluster, name string, data []byte, st *zk.Stat) (Status, error) {
	var s Status
	bad := func(reason, format string, args ...any) (Status, error) {
		return s, &MemberError{Reason: reason, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case st != nil && st.EphemeralOwner == 0:
		return bad("persistent", "not an agent's: a persistent node (an agent's member node goes with its session)")
	case len(data) > maxMemberData:
		return bad("too_large", "status of %d bytes (at most %d)", len(data), maxMemberData)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return bad("bad_data", "bad status data: %w", err)
	}
	switch {
	case s.Member != name:
		return bad("wrong_member", "status names member %q, not %q", s.Member, name)
	case s.Cluster != cluster:
		return bad("wrong_cluster", "status names cluster %q, not %q", s.Cluster, cluster)
	}
	if f := s.Fleet; f != nil {
		if !(f.Weight > 0 && f.Weight <= MaxWeight) {
			return bad("bad_weight", "shard weight %v out of range (0, %d]", f.Weight, MaxWeight)
		}
		if err := ValidateName("shard member", f.ShardMember); err != nil {
			return bad("bad_name", "%w", err)
		}
		if f.HAGroup != "" {
			if err := ValidateName("HA group", f.HAGroup); err != nil {
				return bad("bad_name", "%w", err)
			}
		}
	}
	return s, nil
}

// MemberError is a node under members that is not a live agent's.
type MemberError struct {
	Reason string // for metrics: persistent, too_large, bad_data, wrong_member, wrong_cluster, bad_weight, bad_name
	Err    error
}

func (e *MemberError) Error() string { return e.Err.Error() }
func (e *MemberError) Unwrap() error { return e.Err }

// Members lists the nodes under members, sorted by name: live agents, and
// with Err set the nodes that are not one.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	names, _, err := s.c.Children(ctx, s.MembersPath())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list agents of cluster %s: %w", s.opts.Cluster, err)
	}
	sort.Strings(names)
	out := make([]Member, 0, len(names))
	for _, n := range names {
		data, st, err := s.c.Get(ctx, s.MemberPath(n))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read agent %s of cluster %s: %w", n, s.opts.Cluster, err)
		}
		out = append(out, s.member(n, data, st))
	}
	return out, nil
}

// member decodes the member node name.
func (s *Store) member(name string, data []byte, st *zk.Stat) Member {
	m := Member{Name: name}
	var err error
	if m.Status, err = ParseMember(s.opts.Cluster, name, data, st); err != nil {
		m.Err = fmt.Errorf("ignored %s: %w", s.MemberPath(name), err)
	}
	return m
}

// LiveMembers is Members without the nodes that are not a live agent's.
func LiveMembers(ms []Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		if m.Err == nil {
			out = append(out, m)
		}
	}
	return out
}

// RolloutError names the agent that refused a revision.
type RolloutError struct {
	Member   string
	Revision int
	Step     string
	Message  string
}

func (e *RolloutError) Error() string {
	return fmt.Sprintf("agent %s failed to apply revision %d at step %s (it rolled back): %s", e.Member, e.Revision, e.Step, bundle.CleanText(e.Message))
}

// Rollout is the state of a rollout as WaitRollout sees it.
type Rollout struct {
	Target  int
	Members []Member
	Applied int
	Pending int
}

// WaitRollout follows the members (a ZooKeeper watch on each member node
// and on the members node, through zk.WatchGroup) until every live one of
// them (or of only, when given) applied target (or something newer), or
// one failed it (*RolloutError). progress, if not nil, is called whenever
// the picture changes.
func (s *Store) WaitRollout(ctx context.Context, target int, only []string, progress func(Rollout)) error {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	group := zk.WatchGroup(wctx, s.c, s.MembersPath(), s.logger)
	var last string
	var r Rollout
	for {
		var view zk.GroupView
		open := true
		select {
		case <-ctx.Done():
		case view, open = <-group.Views():
		}
		if ctx.Err() != nil { // the views end with ctx too: say what is pending
			var pend []string
			for _, m := range r.Members {
				if !(m.Status.Revision >= target && m.Status.State == StateApplied) {
					pend = append(pend, fmt.Sprintf("%s (%s, revision %d)", m.Name, m.Status.State, m.Status.Revision))
				}
			}
			return fmt.Errorf("rollout of revision %d: still waiting for %s: %w", target, strings.Join(pend, ", "), ctx.Err())
		}
		if !open {
			return fmt.Errorf("rollout of revision %d: %w", target, zk.ErrClosing)
		}
		var members []Member
		for _, gm := range view.Members {
			members = append(members, s.member(gm.Name, gm.Data, &gm.Stat))
		}
		members = LiveMembers(members)
		r = Rollout{Target: target}
		var failed *RolloutError
		byName := map[string]bool{}
		for _, m := range members {
			byName[m.Name] = true
			if only != nil && !contains(only, m.Name) {
				continue
			}
			r.Members = append(r.Members, m)
			st := m.Status
			switch {
			case st.Revision >= target && st.State == StateApplied:
				r.Applied++
			case st.FailedRevision == target && st.State == StateFailed:
				failed = &RolloutError{Member: m.Name, Revision: target, Step: st.FailedStep, Message: st.Error}
			default:
				r.Pending++
			}
		}
		var missing []string
		for _, n := range only {
			if !byName[n] {
				missing = append(missing, n)
			}
		}
		key := fmt.Sprint(r.Applied, r.Pending, missing, failed != nil, statesKey(r.Members))
		if progress != nil && key != last {
			progress(r)
		}
		last = key
		if failed != nil {
			return failed
		}
		if len(missing) > 0 {
			return fmt.Errorf("rollout of revision %d: agent(s) %s left the cluster before applying it", target, strings.Join(missing, ", "))
		}
		if r.Pending == 0 {
			return nil
		}
	}
}

func statesKey(ms []Member) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s=%s/%d/%d;", m.Name, m.Status.State, m.Status.Revision, m.Status.Target)
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
