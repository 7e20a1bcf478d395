package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

// haGroupStatus is one HA group as `zkprom shards` shows it: who is
// elected (the election's first candidate) and who holds the overlay (the
// leader record, written when a leader takes over).
type haGroupStatus struct {
	Name        string
	Elected     string // "" when the election has no candidate
	ElectedTerm int64
	Record      *configstore.HALeader // nil when none was written
}

// fleetView is the cluster's fleet as `zkprom shards` and the agent's page
// show it: the member nodes, the HA groups and the replicas per sharded
// job of the current revision (nil when unreadable).
type fleetView struct {
	Members  []configstore.Member
	Groups   []haGroupStatus
	Replicas map[string]int
}

// WriteFleetStatus prints the cluster's shard members (targets owned per
// sharded job, weight) and its HA groups (leader, term, last hand-over).
// A cluster with no live agent and no revision is an error: it most
// likely is a wrong --cluster or --root.
func WriteFleetStatus(ctx context.Context, c *zk.Client, s *configstore.Store, w io.Writer) error {
	f, err := readFleet(ctx, c, s)
	if err != nil {
		return err
	}
	writeFleetStatus(w, f.Members, f.Groups, f.Replicas)
	return nil
}

// readFleet reads the cluster's fleet (see WriteFleetStatus).
func readFleet(ctx context.Context, c *zk.Client, s *configstore.Store) (fleetView, error) {
	members, err := s.Members(ctx)
	if err != nil {
		return fleetView{}, err
	}
	if len(members) == 0 {
		if _, _, err := s.Current(ctx); errors.Is(err, configstore.ErrNoRevision) {
			hint := ""
			if known, _, lerr := c.Children(ctx, path.Dir(s.Path())); lerr == nil && len(known) > 0 {
				sort.Strings(known)
				hint = fmt.Sprintf(" (clusters under %s: %s)", path.Dir(s.Path()), strings.Join(known, ", "))
			}
			return fleetView{}, fmt.Errorf("%w, and no agent has joined it: check --cluster and --root%s", err, hint)
		}
	}
	names, _, err := c.Children(ctx, s.HAPath())
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fleetView{}, fmt.Errorf("list HA groups of cluster %s: %w", s.Cluster(), err)
	}
	sort.Strings(names)
	groups := make([]haGroupStatus, 0, len(names))
	for _, g := range names {
		hg := haGroupStatus{Name: g}
		e := zk.NewElection(c, s.HAElectionPath(g), nil, zk.ElectionOptions{})
		if data, term, err := e.Leader(ctx); err == nil {
			var cand struct{ Member string }
			json.Unmarshal(data, &cand)
			hg.Elected, hg.ElectedTerm = cand.Member, term
		}
		if rdata, _, err := c.Get(ctx, s.HALeaderPath(g)); err == nil {
			var rec configstore.HALeader
			if json.Unmarshal(rdata, &rec) == nil && rec.Member != "" {
				// Written by agents, or by anyone in an open cluster.
				rec.Member, rec.Previous, rec.Host = bundle.CleanText(rec.Member), bundle.CleanText(rec.Previous), bundle.CleanText(rec.Host)
				hg.Record = &rec
			}
		}
		groups = append(groups, hg)
	}
	return fleetView{Members: members, Groups: groups, Replicas: currentReplicas(ctx, s)}, nil
}

// currentReplicas reads the replicas per sharded job from the current
// revision's shards.yml (nil when it cannot be read: the totals then do
// not name them).
func currentReplicas(ctx context.Context, s *configstore.Store) map[string]int {
	cur, _, err := s.Current(ctx)
	if err != nil {
		return nil
	}
	_, b, err := s.Revision(ctx, cur.Revision)
	if err != nil || b.Files[bundle.ShardsFile] == nil {
		return nil
	}
	var sc struct {
		Replicas int `yaml:"replicas"`
		Jobs     []struct {
			Name     string `yaml:"name"`
			Replicas int    `yaml:"replicas"`
		} `yaml:"jobs"`
	}
	if yaml.Unmarshal(b.Files[bundle.ShardsFile], &sc) != nil {
		return nil
	}
	out := map[string]int{}
	for _, j := range sc.Jobs {
		r := j.Replicas
		if r == 0 {
			r = sc.Replicas
		}
		out[j.Name] = max(r, 1)
	}
	return out
}

// writeFleetStatus renders the status: a table with one row per agent,
// the reasons of elected agents that wait, one line per HA group, and
// per sharded job the totals.
func writeFleetStatus(w io.Writer, members []configstore.Member, groups []haGroupStatus, replicas map[string]int) {
	jobs := shardedJobs(members)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "MEMBER\tSHARD MEMBER\tWEIGHT\tHA GROUP\tROLE")
	for _, j := range jobs {
		fmt.Fprintf(tw, "\t%s (owned/assigned of discovered)", j)
	}
	fmt.Fprintln(tw)
	var waiting []string
	for _, m := range members {
		f := m.Status.Fleet
		if m.Err != nil || f == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\n", m.Name)
			continue
		}
		if why := waitingWhy(f); why != "" {
			waiting = append(waiting, fmt.Sprintf("%s: %s", m.Name, why))
		}
		group := f.HAGroup
		if group == "" {
			group = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%g\t%s\t%s", m.Name, f.ShardMember, f.Weight, group, haRole(f))
		for _, j := range jobs {
			st := f.Jobs[j]
			fmt.Fprintf(tw, "\t%d/%d of %d", st.Owned, st.Assigned, st.Discovered)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(members) == 0 {
		fmt.Fprintln(w, "no live agents")
	}
	for _, l := range waiting {
		fmt.Fprintln(w, l)
	}
	for _, m := range members {
		if m.Err != nil {
			fmt.Fprintf(w, "not an agent, left out: %s\n", bundle.CleanText(m.Err.Error()))
		}
	}
	for _, g := range groups {
		fmt.Fprintln(w, haGroupLine(g))
	}
	for _, l := range jobTotals(members, jobs, replicas) {
		fmt.Fprintln(w, l)
	}
}

// shardedJobs are the sharded jobs the members report, sorted.
func shardedJobs(members []configstore.Member) []string {
	jobSet := map[string]bool{}
	for _, m := range members {
		if m.Status.Fleet != nil {
			for j := range m.Status.Fleet.Jobs {
				jobSet[j] = true
			}
		}
	}
	jobs := make([]string, 0, len(jobSet))
	for j := range jobSet {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	return jobs
}

// jobTotals says per sharded job how many targets were discovered and
// assigned over how many shard members. Both members of an HA group hold
// the same share: the totals count each shard member once.
func jobTotals(members []configstore.Member, jobs []string, replicas map[string]int) []string {
	var out []string
	for _, j := range jobs {
		discovered, assigned := 0, 0
		shardMembers := map[string]bool{}
		for _, m := range members {
			f := m.Status.Fleet
			if m.Err != nil || f == nil {
				continue
			}
			st, ok := f.Jobs[j]
			discovered = max(discovered, st.Discovered)
			if ok && !shardMembers[f.ShardMember] {
				shardMembers[f.ShardMember] = true
				assigned += st.Assigned
			}
		}
		noun := "shard members"
		if len(shardMembers) == 1 {
			noun = "shard member"
		}
		line := fmt.Sprintf("%s: %d discovered targets, %d assignments over %d %s", j, discovered, assigned, len(shardMembers), noun)
		if r, ok := replicas[j]; ok {
			line += fmt.Sprintf(" (replicas %d)", r)
		}
		out = append(out, line)
	}
	return out
}

// haRole is a member's role in its HA group ("-" without one).
func haRole(f *configstore.FleetStatus) string {
	if f == nil || f.HAGroup == "" {
		return "-"
	}
	role := "follower"
	if f.Leader {
		role = fmt.Sprintf("leader (term %d)", f.Term)
	} else if f.Waiting != "" {
		role = "elected, waiting"
	}
	if f.Overlay {
		role += ", overlay on"
	}
	return role
}

// waitingWhy says why an elected member of an HA group does not lead yet
// ("" when it is not waiting).
func waitingWhy(f *configstore.FleetStatus) string {
	if f == nil || f.HAGroup == "" || f.Leader {
		return ""
	}
	return bundle.CleanText(f.Waiting)
}

// haGroupLine says who leads an HA group. The elected member acts (holds
// the overlay) once it wrote the leader record with its term; until then
// the record names the member that may still run the overlay.
func haGroupLine(g haGroupStatus) string {
	line := fmt.Sprintf("HA group %s: ", g.Name)
	rec := g.Record
	switch {
	case g.Elected == "":
		line += "no leader"
	case rec != nil && (rec.Term < g.ElectedTerm || rec.Member != g.Elected):
		line += fmt.Sprintf("elected %s (term %d), not acting yet; the overlay holder is %s (term %d) since %s",
			g.Elected, g.ElectedTerm, rec.Member, rec.Term, rec.Since.Format(time.RFC3339))
		return line
	default:
		line += fmt.Sprintf("leader %s, term %d", g.Elected, g.ElectedTerm)
	}
	if rec != nil {
		line += fmt.Sprintf("; last hand-over %s to %s (term %d)", rec.Since.Format(time.RFC3339), rec.Member, rec.Term)
		if rec.Previous != "" {
			line += fmt.Sprintf(" from %s (term %d)", rec.Previous, rec.PreviousTerm)
		}
	}
	return line
}
