// Package configstore keeps the configuration of clusters of Prometheus
// servers in ZooKeeper: immutable, compressed revisions of a whole bundle
// (prometheus.yml, rule files and any other files), a `current` pointer
// moved only with a version check, an optional canary pointer, pruned
// history, and one ephemeral member znode per agent carrying its status.
// The Store and the cluster's set-up are in store.go, revisions, push,
// rollback and history in revisions.go, the canary in canary.go, who may
// do what in access.go. Store.Status says which agents are behind
// (status.go); WaitRollout follows a rollout with watches on the member
// nodes (members.go).
//
// Layout below the root (default /zkprom/clusters) for cluster NAME, each
// node with the ACL of the trust model (access.go, docs/security.md):
//
//	NAME/access                       who may do what (JSON), writers and agents only
//	NAME/revisions/r-0000000012       revision metadata (JSON)
//	NAME/revisions/r-0000000012/c-0000 compressed bundle, chunk 0 (…/c-0001, …)
//	NAME/current                      {"revision":12,…}, moved with a version check
//	NAME/canary                       ephemeral, while a canary rollout runs
//	NAME/members/<member>             ephemeral, one per agent, its status (JSON)
//	NAME/ha/<group>/…                 HA groups: election and leader record (fleet.go)
package configstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/zkprom/zkprom/internal/zk"
)

// DefaultReaders read the status of a cluster unless its first push says
// otherwise: everyone (the status holds no secret).
var DefaultReaders = []string{"world:anyone"}

// Defaults.
const (
	DefaultRoot         = "/zkprom/clusters"
	DefaultHistoryDepth = 20
	// DefaultChunkSize keeps each znode well under ZooKeeper's default
	// jute.maxbuffer (1 MiB) with headroom for the request framing.
	DefaultChunkSize = 1<<20 - 64<<10
)

// Errors callers test for with errors.Is.
var (
	// ErrConflict: another push moved the current pointer first.
	ErrConflict = errors.New("conflict: the current revision was changed by another push")
	// ErrCanaryInProgress: a canary rollout holds the cluster.
	ErrCanaryInProgress = errors.New("a canary rollout is in progress")
	// ErrNoRevision: the cluster has no such revision (or none at all).
	ErrNoRevision = errors.New("no such revision")
)

// Options configure a Store.
type Options struct {
	Root         string // default DefaultRoot
	Cluster      string // required
	HistoryDepth int    // revisions kept; default DefaultHistoryDepth
	ChunkSize    int    // default DefaultChunkSize
	// Access is what a writer's push changes in the cluster's access
	// settings: nil slices keep the cluster's (the first push must name
	// the agents; readers default to DefaultReaders), Open opens it. The
	// writers are always the identities of the pushing session.
	Access *Access
	// RepairACLs lets a push set the model's ACL on nodes that grant
	// more (after the operator checked them).
	RepairACLs bool
}

var clusterRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateName checks a cluster or member name.
func ValidateName(kind, name string) error {
	if !clusterRE.MatchString(name) || len(name) > 200 {
		return fmt.Errorf("bad %s name %q: use letters, digits, '.', '_' and '-' (starting with a letter or digit)", kind, name)
	}
	return nil
}

// Store reads and writes one cluster's configuration.
type Store struct {
	c      *zk.Client
	opts   Options
	base   string
	logger *slog.Logger
	access Access // as a push prepared it
}

// New returns a store for opts.Cluster on c.
func New(c *zk.Client, opts Options, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if err := zk.ValidatePath(opts.Root); err != nil {
		return nil, fmt.Errorf("configuration root %q: %w", opts.Root, err)
	}
	if err := ValidateName("cluster", opts.Cluster); err != nil {
		return nil, err
	}
	if opts.HistoryDepth == 0 {
		opts.HistoryDepth = DefaultHistoryDepth
	}
	if opts.HistoryDepth < 1 {
		return nil, fmt.Errorf("history depth %d: want at least 1", opts.HistoryDepth)
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.ChunkSize < 1024 || opts.ChunkSize > DefaultChunkSize {
		return nil, fmt.Errorf("chunk size %d: want 1024..%d", opts.ChunkSize, DefaultChunkSize)
	}
	if a := opts.Access; a != nil {
		if _, err := ParseIdentities(append(slices.Clone(a.Agents), a.Readers...)); err != nil {
			return nil, err
		}
	}
	return &Store{c: c, opts: opts, base: zk.Join(opts.Root, opts.Cluster), logger: logger}, nil
}

// Cluster returns the cluster name.
func (s *Store) Cluster() string { return s.opts.Cluster }

// Paths of the layout.
func (s *Store) Path() string               { return s.base }
func (s *Store) CurrentPath() string        { return zk.Join(s.base, "current") }
func (s *Store) CanaryPath() string         { return zk.Join(s.base, "canary") }
func (s *Store) RevisionsPath() string      { return zk.Join(s.base, "revisions") }
func (s *Store) MembersPath() string        { return zk.Join(s.base, "members") }
func (s *Store) MemberPath(m string) string { return zk.Join(s.base, "members", m) }
func (s *Store) RevisionPath(rev int) string {
	return zk.Join(s.base, "revisions", RevisionName(rev))
}

// RevisionName is the znode name of a revision: r-0000000012.
func RevisionName(rev int) string { return fmt.Sprintf("r-%010d", rev) }

// ParseRevision accepts 12, r12 or r-0000000012.
func ParseRevision(s string) (int, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "r"), "-")
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || t == "" || t[0] < '0' || t[0] > '9' || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("bad revision %q: want a number such as 12 (or r-0000000012)", s)
	}
	return n, nil
}

// Ensure prepares the cluster for a writer: it creates the cluster when
// it is missing, checks every node's ACL against the model (an ACLError
// names the nodes that grant more), applies changed access settings, and
// creates missing nodes. Push, StartCanary and Rollback call it.
func (s *Store) Ensure(ctx context.Context) error {
	a, err := s.prepare(ctx)
	if err != nil {
		return err
	}
	s.access = a
	return nil
}

func (s *Store) prepare(ctx context.Context) (Access, error) {
	want := s.opts.Access
	if want == nil {
		want = &Access{}
	}
	noCredentials := fmt.Errorf("cluster %s: writing needs credentials, so that nobody else can change the cluster: give --zookeeper.auth-file (digest user:password) or a TLS client certificate (--zookeeper.tls.cert-file); for a lab only, --unsafe.open-cluster lets anyone change it", s.opts.Cluster)
	stored, st, err := s.Access(ctx)
	switch {
	case errors.Is(err, ErrNoCluster):
		switch {
		case want.Open:
		case !s.c.Authenticated():
			return Access{}, noCredentials
		case want.Agents == nil:
			return Access{}, fmt.Errorf("cluster %s does not exist yet: its first push names the agents' identity (--agents.auth-file or --agents.id), or --unsafe.open-cluster for a lab", s.opts.Cluster)
		}
		a := *want
		if a.Readers == nil {
			a.Readers = DefaultReaders
		}
		return s.create(ctx, a)
	case errors.Is(err, zk.ErrNoAuth) && want.Open:
		return Access{}, fmt.Errorf("cluster %s is closed: only its writers may open it (with their credentials and --unsafe.open-cluster)", s.opts.Cluster)
	case errors.Is(err, zk.ErrNoAuth) && !s.c.Authenticated():
		return Access{}, noCredentials
	case errors.Is(err, zk.ErrNoAuth):
		return Access{}, fmt.Errorf("cluster %s: this session (%s) is not one of the cluster's writers (it may not even read %s): use the writers' credentials", s.opts.Cluster, s.sessionIDs(), s.AccessPath())
	case errors.Is(err, ErrBadAccess) && want.Agents != nil:
		// Settings someone else wrote: the nodes are checked against
		// the ones given now, as for a cluster without settings.
		s.logger.Warn("ignoring the cluster's access settings", "err", err)
		stored, err = Access{}, nil
	}
	if err != nil {
		return Access{}, err
	}
	next := stored
	if want.Agents != nil {
		next.Agents, next.Open = want.Agents, false
	}
	if want.Readers != nil {
		next.Readers = want.Readers
	}
	if want.Open {
		next.Open, next.Writers = true, nil
	}
	legacy := len(stored.Writers) == 0 && !stored.Open
	switch {
	case next.Open:
	case !s.c.Authenticated():
		return Access{}, noCredentials
	case legacy && next.Agents == nil:
		return Access{}, fmt.Errorf("cluster %s has no access settings (made by an older zkprom, by someone else, or by a push that did not finish): push once with the agents' identity (--agents.auth-file or --agents.id), and --repair-acls after checking its nodes", s.opts.Cluster)
	default:
		if err := s.checkRoot(ctx); err != nil {
			return Access{}, err
		}
	}
	if legacy && next.Readers == nil {
		next.Readers = DefaultReaders
	}
	if !next.Open {
		ids, err := s.whoami(ctx, s.base)
		if errors.Is(err, zk.ErrNoAuth) {
			return Access{}, fmt.Errorf("cluster %s: this session (%s) is not one of the cluster's writers (%s): use the writers' credentials", s.opts.Cluster, s.sessionIDs(), strings.Join(stored.Writers, ", "))
		}
		if err != nil {
			return Access{}, fmt.Errorf("cluster %s: %w", s.opts.Cluster, err)
		}
		switch {
		case len(next.Writers) == 0 || stored.Open:
			next.Writers = ids // the session that gives the cluster its settings
		case !slices.ContainsFunc(ids, func(id string) bool { return slices.Contains(stored.Writers, id) }):
			return Access{}, fmt.Errorf("cluster %s: this session (%s) is not one of the cluster's writers (%s): use the writers' credentials", s.opts.Cluster, strings.Join(ids, ", "), strings.Join(stored.Writers, ", "))
		}
	}
	// Nodes are checked against the settings they were made under; a
	// cluster without settings, or one being closed, against the new ones
	// (an open cluster's model allows anything).
	model := stored
	if legacy || (stored.Open && !next.Open) {
		model = next
	}
	nodes, err := s.layout(ctx, true)
	if err != nil {
		return Access{}, fmt.Errorf("check ACLs of cluster %s: %w", s.opts.Cluster, err)
	}
	problems, err := s.checkNodes(ctx, model, nodes, !model.Open)
	if err != nil {
		return Access{}, err
	}
	// The writers' own nodes wider than the model stop the push; the
	// agents' are removed (apply below), and they make them again.
	var writers []ACLProblem
	for _, p := range problems {
		if p.remove == "" {
			writers = append(writers, p)
		}
	}
	if len(writers) > 0 && !s.opts.RepairACLs {
		return Access{}, &ACLError{Cluster: s.opts.Cluster, Problems: writers}
	}
	if !accessEqual(stored, next) || len(problems) > 0 || s.opts.RepairACLs {
		// The ACLs first, the settings last: a push cut off between them
		// finds the old settings and applies again.
		if err := s.applyACLs(ctx, next, problems); err != nil {
			return Access{}, fmt.Errorf("cluster %s: %w", s.opts.Cluster, err)
		}
		if !accessEqual(stored, next) || st == nil {
			if err := s.writeAccess(ctx, next, st); err != nil {
				return Access{}, err
			}
			s.logger.Debug("cluster access settings applied", "cluster", s.opts.Cluster, "writers", next.Writers, "agents", next.Agents, "readers", next.Readers, "open", next.Open)
		}
	}
	return next, s.ensureNodes(ctx, next)
}

// create makes the cluster: the node first open to this session alone,
// then its access settings (the writers are whoever this session is) and
// the model's ACL, then the nodes below.
func (s *Store) create(ctx context.Context, a Access) (Access, error) {
	if a.Open {
		a.Writers = nil
		if err := s.c.CreateAll(ctx, zk.Parent(s.base), zk.ACLOpen()); err != nil {
			return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
		}
		if _, err := s.c.Create(ctx, s.base, nil, zk.Persistent, zk.ACLOpen()); err != nil {
			return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
		}
		if err := s.writeAccess(ctx, a, nil); err != nil {
			return Access{}, err
		}
		return a, s.ensureNodes(ctx, a)
	}
	// The clusters' root: writers create clusters there, everyone reads.
	// Above it (/zkprom), others may create their own nodes (service
	// registrations under /zkprom/targets).
	if ok, _, err := s.c.Exists(ctx, s.opts.Root); err != nil {
		return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
	} else if !ok {
		shared := append(zk.ACLCreatorOnly(), zk.ACL{Perms: zk.PermRead | zk.PermCreate, Scheme: "world", ID: "anyone"})
		if err := s.c.CreateAll(ctx, zk.Parent(s.opts.Root), shared); err != nil {
			return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
		}
		if _, err := s.c.Create(ctx, s.opts.Root, nil, zk.Persistent, zk.ACLCreatorAllWorldRead()); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
		}
	}
	if err := s.checkRoot(ctx); err != nil {
		return Access{}, err
	}
	err := s.settle(ctx, "creating cluster "+s.base, func(ctx context.Context) error {
		_, err := s.c.Create(ctx, s.base, nil, zk.Persistent, zk.ACLCreatorOnly())
		return err
	}, nil)
	if errors.Is(err, zk.ErrNodeExists) {
		return s.prepare(ctx) // another push made it meanwhile (or a create of ours whose answer was lost)
	} else if err != nil {
		return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
	}
	ids, err := s.whoami(ctx, s.base)
	if err != nil {
		return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
	}
	a.Writers = ids
	if err := s.settle(ctx, "setting the ACL of "+s.base, func(ctx context.Context) error { return s.c.SetACL(ctx, s.base, a.ACL(KindStatus), -1) }, nil); err != nil {
		return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
	}
	if err := s.writeAccess(ctx, a, nil); err != nil {
		return Access{}, err
	}
	s.logger.Debug("created cluster", "cluster", s.opts.Cluster, "writers", a.Writers, "agents", a.Agents, "readers", a.Readers)
	return a, s.ensureNodes(ctx, a)
}

// ensureNodes creates the nodes below the cluster node that are missing.
func (s *Store) ensureNodes(ctx context.Context, a Access) error {
	for _, n := range []node{{s.RevisionsPath(), KindStatus, ""}, {s.MembersPath(), KindAgentDir, ""}, {s.HAPath(), KindAgentDir, ""}} {
		if ok, _, err := s.c.Exists(ctx, n.path); err == nil && ok {
			continue
		}
		err := s.settle(ctx, "creating "+n.path, func(ctx context.Context) error {
			if _, err := s.c.Create(ctx, n.path, nil, zk.Persistent, a.ACL(n.kind)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return err
			}
			return nil
		}, nil)
		if err != nil {
			return fmt.Errorf("create %s of cluster %s: %w", n.path, s.opts.Cluster, err)
		}
	}
	return nil
}

// sessionIDs names this session's digest identities for messages (a
// client certificate's x509 identity only ZooKeeper knows).
func (s *Store) sessionIDs() string {
	var ids []string
	for _, id := range s.c.DigestIdentities() {
		ids = append(ids, id.String())
	}
	if len(ids) == 0 {
		return "a client certificate's identity"
	}
	return strings.Join(ids, ", ")
}

func accessEqual(a, b Access) bool {
	return slices.Equal(a.Writers, b.Writers) && slices.Equal(a.Agents, b.Agents) && slices.Equal(a.Readers, b.Readers) && a.Open == b.Open
}
