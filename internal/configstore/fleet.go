package configstore

import "time"

// FleetStatus is the sharding and HA part of an agent's status.
type FleetStatus struct {
	// ShardMember is the name the shard assignment uses for this agent:
	// its HA group when it is in one (both replicas scrape the same
	// share), else its member name.
	ShardMember string  `json:"shard_member"`
	Weight      float64 `json:"weight"`
	// Jobs has one entry per sharded job.
	Jobs map[string]ShardedJobStatus `json:"jobs,omitempty"`
	// Members is how many shard members the assignment uses.
	Members int `json:"shard_members,omitempty"`

	HAGroup string `json:"ha_group,omitempty"`
	Leader  bool   `json:"leader,omitempty"`
	// Term of the leadership this agent holds (0: not leader).
	Term int64 `json:"term"`
	// LeaderSince is when this agent became leader.
	LeaderSince time.Time `json:"leader_since,omitzero"`
	// Overlay says whether the leader overlay is applied on this host.
	Overlay bool `json:"overlay,omitempty"`
	// Waiting says why this agent, elected, does not act as leader yet.
	Waiting string `json:"takeover_waiting,omitempty"`
}

// ShardedJobStatus is one sharded job on one agent.
type ShardedJobStatus struct {
	Discovered int `json:"discovered"` // targets discovered in the job
	Assigned   int `json:"assigned"`   // targets the assignment gives this agent
	Owned      int `json:"owned"`      // in the share file now (assigned plus handed over, still in overlap)
	Moves      int `json:"moves"`      // targets handed over since start
}

// HALeader is the data of <cluster>/ha/<group>/leader, written by the
// leader with a fenced transaction when it takes over.
type HALeader struct {
	Member   string    `json:"member"`
	Term     int64     `json:"term"`
	Since    time.Time `json:"since"`
	Previous string    `json:"previous,omitempty"`
	// PreviousTerm is the term of the leader before (0: none known).
	PreviousTerm int64 `json:"previous_term,omitempty"`
	// Prometheus is the URL of the leader's Prometheus, Host its agent's
	// host name: the next leader checks that Prometheus before it takes
	// over.
	Prometheus string `json:"prometheus,omitempty"`
	Host       string `json:"host,omitempty"`
}

// HAPath is the node of the cluster's HA groups.
func (s *Store) HAPath() string { return s.base + "/ha" }

// HAGroupPath is one HA group's node: election/ holds the candidates,
// leader the last leader's record.
func (s *Store) HAGroupPath(group string) string { return s.HAPath() + "/" + group }

// HAElectionPath is the node of an HA group's candidates.
func (s *Store) HAElectionPath(group string) string { return s.HAGroupPath(group) + "/election" }

// HALeaderPath is an HA group's leader record (HALeader).
func (s *Store) HALeaderPath(group string) string { return s.HAGroupPath(group) + "/leader" }
