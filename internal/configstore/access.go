package configstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zkprom/zkprom/internal/zk"
)

// Access is who may do what in a cluster: the data of the cluster's
// access node (NAME/access, readable by writers and agents only: it names
// their digest identities), written by the writers' pushes.
// docs/security.md explains the model.
//
//   - writers push, roll back and run canaries: every right on every node;
//   - agents read the pointers and the revisions (the bundles included),
//     and create and delete their member nodes and HA groups;
//   - readers read the status (pointers, revision metadata, members, HA
//     groups), never a bundle; world:anyone by default;
//   - anyone else: nothing. An open cluster (a lab) lets anyone do anything.
type Access struct {
	Writers []string `json:"writers,omitempty"`
	Agents  []string `json:"agents,omitempty"`
	Readers []string `json:"readers,omitempty"`
	Open    bool     `json:"open,omitempty"`
}

// Node kinds of the layout, by what the model lets each role do there.
type NodeKind int

const (
	// KindStatus: the cluster node, revisions, a revision's metadata,
	// current, canary. Writers all, agents and readers read.
	KindStatus NodeKind = iota
	// KindPrivate: a revision's chunks (the bundle) and the access
	// settings. Writers all, agents read.
	KindPrivate
	// KindAgentDir: members, ha, an HA group, its election node: agents
	// create and delete below, readers read.
	KindAgentDir
	// KindAgentNode: what an agent creates and writes: its member node, a
	// candidacy, an HA group's leader record.
	KindAgentNode
)

// Errors callers test for with errors.Is.
var (
	// ErrNoCluster: the cluster's node does not exist (nothing was pushed).
	ErrNoCluster = errors.New("the cluster does not exist")
	// ErrBadAccess: the cluster's node holds no valid access settings.
	ErrBadAccess = errors.New("bad access settings")
)

// ParseIdentities parses identities (scheme:id) given by name or in the
// cluster's node.
func ParseIdentities(list []string) ([]zk.Identity, error) {
	out := make([]zk.Identity, 0, len(list))
	for _, s := range list {
		id, err := zk.ParseIdentity(s)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

func identities(list []string) []zk.Identity {
	ids, _ := ParseIdentities(list) // checked when read (Store.Access)
	return ids
}

// Check validates the identities.
func (a Access) Check() error {
	for _, l := range [][]string{a.Writers, a.Agents, a.Readers} {
		if _, err := ParseIdentities(l); err != nil {
			return err
		}
	}
	for _, l := range [][]string{a.Writers, a.Agents} {
		if slices.Contains(l, zk.World.String()) {
			return errors.New("world:anyone cannot be a writer or an agent (that is an open cluster)")
		}
	}
	if !a.Open && len(a.Writers) == 0 {
		return errors.New("no writer identity")
	}
	return nil
}

// ACL is the model's ACL for a node of this kind.
func (a Access) ACL(kind NodeKind) []zk.ACL {
	if a.Open {
		return zk.ACLOpen()
	}
	w, ag, r := identities(a.Writers), identities(a.Agents), identities(a.Readers)
	acl := zk.Grant(zk.PermAll, w...)
	switch kind {
	case KindStatus:
		acl = zk.MergeACL(acl, zk.Grant(zk.PermRead, ag...), zk.Grant(zk.PermRead, r...))
	case KindPrivate:
		acl = zk.MergeACL(acl, zk.Grant(zk.PermRead, ag...))
	case KindAgentDir:
		acl = zk.MergeACL(acl, zk.Grant(zk.PermRead|zk.PermCreate|zk.PermDelete, ag...), zk.Grant(zk.PermRead, r...))
	case KindAgentNode:
		acl = zk.MergeACL(acl, zk.Grant(zk.PermRead|zk.PermWrite, ag...), zk.Grant(zk.PermRead, r...))
	}
	return acl
}

// IsAgent reports whether id is one of the agents' identities.
func (a Access) IsAgent(id zk.Identity) bool {
	return slices.Contains(a.Agents, id.String())
}

// ACLProblem is a node whose ACL grants more than the model allows.
type ACLProblem struct {
	Path   string
	ACL    []zk.ACL
	Excess []zk.ACL
	remove string // an agent's node: the subtree a writer removes
}

func (p ACLProblem) String() string {
	if p.ACL == nil {
		return fmt.Sprintf("%s has an ACL this session may not even read (not zkprom's model)", p.Path)
	}
	return fmt.Sprintf("%s has ACL %s, which grants %s beyond zkprom's model", p.Path, zk.FormatACL(p.ACL), zk.FormatACL(p.Excess))
}

// ACLError is a cluster with nodes wider than the model: stop and look.
type ACLError struct {
	Cluster  string
	Problems []ACLProblem
}

func (e *ACLError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %s: %d node(s) grant more than zkprom's model allows (someone else may have created or changed them): ", e.Cluster, len(e.Problems))
	for i, p := range e.Problems {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	b.WriteString(". Check what they hold (zkprom config status, zkCli.sh getAcl), then set the model's ACLs with zkprom config push --repair-acls")
	return b.String()
}

// AccessPath is the node of the cluster's access settings.
func (s *Store) AccessPath() string { return zk.Join(s.base, "access") }

// Access reads the cluster's access settings and their node's stat;
// ErrNoCluster when the cluster does not exist. A cluster made before
// access settings has zero settings and a nil stat. Status readers may
// not read them (an error wrapping zk.ErrNoAuth).
func (s *Store) Access(ctx context.Context) (Access, *zk.Stat, error) {
	if ok, _, err := s.c.Exists(ctx, s.base); err != nil {
		return Access{}, nil, fmt.Errorf("read cluster %s: %w", s.opts.Cluster, err)
	} else if !ok {
		return Access{}, nil, fmt.Errorf("cluster %s: %w", s.opts.Cluster, ErrNoCluster)
	}
	data, st, err := s.c.Get(ctx, s.AccessPath())
	if errors.Is(err, zk.ErrNoNode) {
		return Access{}, nil, nil
	}
	if err != nil {
		return Access{}, nil, fmt.Errorf("read access settings of cluster %s: %w", s.opts.Cluster, err)
	}
	var a Access
	err = json.Unmarshal(data, &a)
	if err == nil {
		err = a.Check()
	}
	if err != nil {
		return Access{}, st, fmt.Errorf("read cluster %s: %w in %s: %w", s.opts.Cluster, ErrBadAccess, s.AccessPath(), err)
	}
	return a, st, nil
}

// writeAccess records a as the cluster's settings (st: the access node's
// stat; nil when it does not exist yet).
func (s *Store) writeAccess(ctx context.Context, a Access, st *zk.Stat) error {
	data, _ := json.Marshal(a)
	err := s.settle(ctx, "recording the access settings", func(ctx context.Context) error {
		var err error
		if st == nil {
			_, err = s.c.Create(ctx, s.AccessPath(), data, zk.Persistent, a.ACL(KindPrivate))
		} else {
			_, err = s.c.Set(ctx, s.AccessPath(), data, st.Version)
		}
		return err
	}, func(ctx context.Context) (bool, error) {
		d, _, err := s.c.Get(ctx, s.AccessPath())
		if errors.Is(err, zk.ErrNoNode) {
			return false, nil
		}
		return bytes.Equal(d, data), err
	})
	if err != nil {
		return fmt.Errorf("cluster %s: record access settings: %w", s.opts.Cluster, err)
	}
	return nil
}

// checkRoot refuses a clusters' root in which anyone may create: someone
// could make a cluster there before its first push.
func (s *Store) checkRoot(ctx context.Context) error {
	acl, _, err := s.c.GetACL(ctx, s.opts.Root)
	if err != nil {
		return fmt.Errorf("check the clusters' root %s: %w", s.opts.Root, err)
	}
	for _, e := range acl {
		if (e.Scheme == "world" || e.Scheme == "ip") && e.Perms&^zk.PermRead != 0 {
			return fmt.Errorf("the clusters' root %s has ACL %s: anyone may create or change clusters there, so a cluster can be made by someone else before its first push. Narrow it to the writers (zkCli.sh setAcl %s world:anyone:r,digest:<writer>:cdrwa), or use another --root",
				s.opts.Root, zk.FormatACL(acl), s.opts.Root)
		}
	}
	return nil
}

// node is one node of the layout with its kind. remove is set for what
// agents create (member nodes and HA groups): a node of theirs outside the
// model is removed rather than adopted, and the agent makes it again.
type node struct {
	path   string
	kind   NodeKind
	remove string // the subtree to delete when this node is outside the model
}

// layout lists the cluster's nodes that exist: the top ones, and with
// deep every revision, chunk, member and HA node too.
func (s *Store) layout(ctx context.Context, deep bool) ([]node, error) {
	nodes := []node{{s.base, KindStatus, ""}, {s.AccessPath(), KindPrivate, ""}, {s.RevisionsPath(), KindStatus, ""}, {s.CurrentPath(), KindStatus, ""},
		{s.CanaryPath(), KindStatus, ""}, {s.MembersPath(), KindAgentDir, ""}, {s.HAPath(), KindAgentDir, ""}}
	if !deep {
		return nodes, nil
	}
	children := func(p string) ([]string, error) {
		ch, _, err := s.c.Children(ctx, p)
		if errors.Is(err, zk.ErrNoNode) {
			return nil, nil
		}
		slices.Sort(ch)
		return ch, err
	}
	revs, err := children(s.RevisionsPath())
	if err != nil {
		return nil, err
	}
	for _, r := range revs {
		rp := zk.Join(s.RevisionsPath(), r)
		nodes = append(nodes, node{rp, KindStatus, ""})
		chunks, err := children(rp)
		if err != nil {
			return nil, err
		}
		for _, c := range chunks {
			nodes = append(nodes, node{zk.Join(rp, c), KindPrivate, ""})
		}
	}
	members, err := children(s.MembersPath())
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		nodes = append(nodes, node{s.MemberPath(m), KindAgentNode, s.MemberPath(m)})
	}
	groups, err := children(s.HAPath())
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		gn, err := s.haGroupLayout(ctx, g)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, gn...)
	}
	return nodes, nil
}

// haGroupLayout lists an HA group's nodes: the group, its election node
// and candidacies, and its leader record.
func (s *Store) haGroupLayout(ctx context.Context, group string) ([]node, error) {
	gp, election, leader := s.HAGroupPath(group), s.HAElectionPath(group), s.HALeaderPath(group)
	nodes := []node{{gp, KindAgentDir, gp}, {election, KindAgentDir, gp}, {leader, KindAgentNode, leader}}
	cands, _, err := s.c.Children(ctx, election)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return nil, err
	}
	slices.Sort(cands)
	for _, c := range cands {
		p := zk.Join(election, c)
		nodes = append(nodes, node{p, KindAgentNode, p})
	}
	return nodes, nil
}

// CheckACLs compares the ACL of the cluster's nodes with the model for a:
// the top nodes, and with deep every node. Missing nodes are no problem;
// nodes this session may not read (a reader and the bundle's chunks) are
// not checked. A node whose ACL this session may not read is a problem.
func (s *Store) CheckACLs(ctx context.Context, a Access, deep bool) ([]ACLProblem, error) {
	nodes, err := s.layout(ctx, deep)
	if err != nil {
		return nil, fmt.Errorf("check ACLs of cluster %s: %w", s.opts.Cluster, err)
	}
	return s.checkNodes(ctx, a, nodes, false)
}

// CheckGroupACLs is CheckACLs for one HA group's nodes.
func (s *Store) CheckGroupACLs(ctx context.Context, a Access, group string) ([]ACLProblem, error) {
	nodes, err := s.haGroupLayout(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("check ACLs of HA group %s: %w", group, err)
	}
	return s.checkNodes(ctx, a, nodes, false)
}

// checkNodes checks nodes against the model. With writer (a writer's
// session, which the model gives the admin right everywhere), a digest
// entry whose hash ZooKeeper hides is a problem too: the writers lack the
// admin right there, so the entry is not theirs.
func (s *Store) checkNodes(ctx context.Context, a Access, nodes []node, writer bool) ([]ACLProblem, error) {
	var out []ACLProblem
	for _, n := range nodes {
		acl, _, err := s.c.GetACL(ctx, n.path)
		if errors.Is(err, zk.ErrNoNode) || (errors.Is(err, zk.ErrNoAuth) && n.kind == KindPrivate && !writer) {
			continue
		}
		if errors.Is(err, zk.ErrNoAuth) {
			// The model lets writers, agents and readers read every
			// node but the private ones.
			out = append(out, ACLProblem{Path: n.path, remove: n.remove})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("check ACL of %s: %w", n.path, err)
		}
		ex := zk.Excess(acl, a.ACL(n.kind))
		if writer && !a.Open {
			for _, e := range acl {
				if user, hash, _ := strings.Cut(e.ID, ":"); e.Scheme == "digest" && hash == "x" {
					ex = zk.MergeACL(ex, []zk.ACL{{Perms: e.Perms, Scheme: e.Scheme, ID: user + ":x"}})
				}
			}
		}
		if len(ex) > 0 {
			out = append(out, ACLProblem{Path: n.path, ACL: acl, Excess: ex, remove: n.remove})
		}
	}
	return out, nil
}

// RecordTrusted reports whether an HA group's leader record can only have
// been written by the cluster's writers or agents: the cluster is closed,
// the record's ACL is within the model and gives the agents write.
func (s *Store) RecordTrusted(ctx context.Context, a Access, group string) (bool, error) {
	if a.Open {
		return false, nil
	}
	p := s.HALeaderPath(group)
	acl, _, err := s.c.GetACL(ctx, p)
	if err != nil {
		return false, err
	}
	if len(zk.Excess(acl, a.ACL(KindAgentNode))) > 0 {
		return false, nil
	}
	agents := zk.Grant(zk.PermAll, identities(a.Agents)...)
	for _, e := range acl {
		if e.Perms&zk.PermWrite != 0 && len(zk.Excess([]zk.ACL{e}, agents)) == 0 {
			return true, nil
		}
	}
	return false, nil
}

// applyACLs sets the model's ACL on the cluster's nodes, and removes what
// agents made outside it (problems): their member nodes, candidacies,
// leader records and HA groups are made again by the agents themselves.
// It goes on past errors and returns them all.
func (s *Store) applyACLs(ctx context.Context, a Access, problems []ACLProblem) error {
	var errs []error
	removed := map[string]bool{}
	for _, p := range problems {
		if p.remove == "" || removed[p.remove] {
			continue
		}
		if err := s.c.DeleteAll(ctx, p.remove); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", p.remove, err))
			continue
		}
		removed[p.remove] = true
		s.logger.Warn("removed an agent's node outside zkprom's model; agents make theirs again", "node", p.remove, "problem", p.String())
	}
	nodes, err := s.layout(ctx, true)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, n := range nodes {
		err := s.c.SetACL(ctx, n.path, a.ACL(n.kind), -1)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			errs = append(errs, fmt.Errorf("set the model's ACL: %w", err))
		}
	}
	return errors.Join(errs...)
}

// whoami returns the identities ZooKeeper gives this session: it creates
// an ephemeral node below dir with an ACL for its creator and reads the
// ACL back (digest, x509 or any other scheme the server maps). The admin
// right makes ZooKeeper show digest hashes.
func (s *Store) whoami(ctx context.Context, dir string) ([]string, error) {
	var p string
	// A node of a lost create goes with the session.
	err := s.settle(ctx, "creating a node to learn this session's identities", func(ctx context.Context) error {
		var err error
		p, err = s.c.Create(ctx, zk.Join(dir, ".whoami-"), nil, zk.EphemeralSequential, []zk.ACL{{Perms: zk.PermRead | zk.PermAdmin, Scheme: "auth"}})
		return err
	}, nil)
	if errors.Is(err, zk.ErrInvalidACL) {
		return nil, errors.New("ZooKeeper does not know who this session is: give --zookeeper.auth-file (digest user:password), or a client certificate on a TLS port that maps it to x509")
	}
	if err != nil {
		return nil, err
	}
	defer s.c.Delete(context.WithoutCancel(ctx), p, -1)
	acl, _, err := s.c.GetACL(ctx, p)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range acl {
		ids = append(ids, zk.Identity{Scheme: e.Scheme, ID: e.ID}.String())
	}
	return ids, nil
}
