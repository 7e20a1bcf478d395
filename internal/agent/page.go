package agent

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/statuspage"
)

// pageTimeout bounds what one page asks of ZooKeeper and Prometheus.
const pageTimeout = 5 * time.Second

// historyShown is how many revisions the page lists.
const historyShown = 10

// Page is what the agent's page shows: this member and its cluster, read
// by the code behind `zkprom config status` and `zkprom shards`.
type Page struct {
	// Member is this agent's status, as /status serves it.
	Member            configstore.Status `json:"member"`
	PrometheusVersion string             `json:"prometheus_version,omitempty"`
	// Cluster is every member's revision and state (config status).
	Cluster configstore.ClusterStatus `json:"cluster"`
	// Rollout is the revision being rolled out, while some member is
	// behind or a canary runs (nil otherwise).
	Rollout *Rollout       `json:"rollout,omitempty"`
	History []HistoryEntry `json:"history"`
	// Shards and HA groups (shards).
	Shards   []ShardRow `json:"shards"`
	Jobs     []string   `json:"sharded_jobs"`
	Totals   []string   `json:"sharded_job_totals"`
	HAGroups []string   `json:"ha_groups"`
	// Errors are the reads that failed: the rest of the page stands.
	Errors []string `json:"errors,omitempty"`
}

// Rollout is a revision on its way to the members that should run it.
type Rollout struct {
	Revision int      `json:"revision"`
	Canary   bool     `json:"canary"`
	Applied  int      `json:"applied"` // members that run it, applied
	Of       int      `json:"of"`      // members that should
	Waiting  []string `json:"waiting"` // members behind
}

// HistoryEntry is one revision in the history, newest first.
type HistoryEntry struct {
	Revision int       `json:"revision"`
	Time     time.Time `json:"time"`
	Author   string    `json:"author"`
	Message  string    `json:"message"` // as shown: secrets masked
	Files    int       `json:"files"`
}

// ShardRow is one member's share and HA role.
type ShardRow struct {
	Member      string                                  `json:"member"`
	ShardMember string                                  `json:"shard_member"`
	Weight      float64                                 `json:"weight"`
	HAGroup     string                                  `json:"ha_group"`
	Role        string                                  `json:"role"`
	Waiting     string                                  `json:"waiting,omitempty"` // why an elected member does not lead yet
	Jobs        map[string]configstore.ShardedJobStatus `json:"jobs"`
}

// Page reads what the agent's page shows, within ctx.
func (a *Agent) Page(ctx context.Context) Page {
	p := Page{Member: a.Status(), History: []HistoryEntry{}, Shards: []ShardRow{}}
	p.Member.Error = bundle.CleanText(p.Member.Error)
	fail := func(what string, err error) {
		p.Errors = append(p.Errors, fmt.Sprintf("%s: %s", what, bundle.CleanText(err.Error())))
	}
	if bi, err := a.prom.BuildInfo(ctx); err != nil {
		fail("Prometheus version", err)
	} else {
		p.PrometheusVersion = bi.Version
	}
	cs, err := a.store.Status(ctx)
	if err != nil {
		fail("cluster status", err)
	}
	for i, m := range cs.Members {
		cs.Members[i].Status.Error = bundle.CleanText(m.Status.Error)
	}
	p.Cluster, p.Rollout = cs, rollout(cs)
	h, err := a.store.History(ctx)
	if err != nil {
		fail("revision history", err)
	}
	for _, m := range h[:min(len(h), historyShown)] {
		p.History = append(p.History, HistoryEntry{Revision: m.Revision, Time: m.Time, Author: m.Author, Message: m.ShownMessage(), Files: len(m.Files)})
	}
	f, err := readFleet(ctx, a.c, a.store)
	if err != nil {
		fail("shards and HA groups", err)
	}
	p.Jobs = shardedJobs(f.Members)
	p.Totals = jobTotals(f.Members, p.Jobs, f.Replicas)
	for _, m := range f.Members {
		fs := m.Status.Fleet
		if m.Err != nil || fs == nil {
			continue
		}
		p.Shards = append(p.Shards, ShardRow{Member: m.Name, ShardMember: fs.ShardMember, Weight: fs.Weight, HAGroup: fs.HAGroup,
			Role: haRole(fs), Waiting: waitingWhy(fs), Jobs: fs.Jobs})
	}
	for _, g := range f.Groups {
		p.HAGroups = append(p.HAGroups, haGroupLine(g))
	}
	return p
}

// rollout is the revision in progress: a canary's, else the current one
// while a member is behind.
func rollout(cs configstore.ClusterStatus) *Rollout {
	if cs.Canary == nil && cs.Behind() == 0 {
		return nil
	}
	r := &Rollout{Revision: cs.Current.Revision, Canary: cs.Canary != nil, Waiting: []string{}}
	if r.Canary {
		r.Revision = cs.Canary.Revision
	}
	for _, m := range cs.Members {
		if m.Err != nil || m.Want != r.Revision {
			continue
		}
		r.Of++
		if m.Behind {
			r.Waiting = append(r.Waiting, m.Name)
		} else {
			r.Applied++
		}
	}
	return r
}

//go:embed page.html
var pageHTML string

// StatusHandler serves the agent's page at / and its JSON twin at
// /?format=json; page names the listener and its links.
func (a *Agent) StatusHandler(page statuspage.Page) http.Handler {
	t := statuspage.MustParse(pageHTML, nil)
	page.Refresh = 5 * time.Second
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		defer cancel()
		t.Serve(w, r, page, a.Page(ctx))
	})
}
