// Package configstore keeps the configuration of clusters of Prometheus
// servers in ZooKeeper: immutable, compressed revisions of a whole bundle
// (prometheus.yml, rule files and any other files), a `current` pointer
// moved only with a version check, an optional canary pointer, pruned
// history, and one ephemeral member znode per agent carrying its status.
// Store.Status says which agents are behind (status.go); WaitRollout
// follows a rollout with watches on the member nodes (members.go).
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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zkprom/zkprom/internal/zk"

	"github.com/zkprom/zkprom/internal/bundle"
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

// Meta describes one revision; it is the data of the revision's znode and
// never changes.
type Meta struct {
	Revision   int       `json:"-"`
	Parent     int       `json:"parent"` // the revision current pointed at when this one was pushed (0: none)
	Author     string    `json:"author"`
	Message    string    `json:"message"`
	Time       time.Time `json:"time"`
	Checksum   string    `json:"checksum"` // bundle.Bundle.Checksum
	Encoding   string    `json:"encoding"` // "tar+gzip"
	Size       int       `json:"size"`     // uncompressed
	Compressed int       `json:"compressed_size"`
	Chunks     int       `json:"chunks"`
	Files      []string  `json:"files"`
	RollbackOf int       `json:"rollback_of,omitempty"` // set by rollback: the revision whose bundle this copies
}

// Pointer is the data of the current node.
type Pointer struct {
	Revision int       `json:"revision"`
	Checksum string    `json:"checksum"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
}

// CanaryPointer is the data of the canary node.
type CanaryPointer struct {
	Revision int       `json:"revision"`
	Previous int       `json:"previous"`
	Checksum string    `json:"checksum"`
	Members  []string  `json:"members"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
}

// Has reports whether member is one of the canaries.
func (c *CanaryPointer) Has(member string) bool {
	if c == nil {
		return false
	}
	for _, m := range c.Members {
		if m == member {
			return true
		}
	}
	return false
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
	if _, err := s.c.Create(ctx, s.base, nil, zk.Persistent, zk.ACLCreatorOnly()); errors.Is(err, zk.ErrNodeExists) {
		return s.prepare(ctx) // another push made it meanwhile
	} else if err != nil {
		return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
	}
	ids, err := s.whoami(ctx, s.base)
	if err != nil {
		return Access{}, fmt.Errorf("create cluster %s: %w", s.base, err)
	}
	a.Writers = ids
	if err := s.c.SetACL(ctx, s.base, a.ACL(KindStatus), -1); err != nil {
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
		if _, err := s.c.Create(ctx, n.path, nil, zk.Persistent, a.ACL(n.kind)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
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

// Current reads the current pointer; ErrNoRevision when nothing was pushed.
func (s *Store) Current(ctx context.Context) (Pointer, *zk.Stat, error) {
	data, st, err := s.c.Get(ctx, s.CurrentPath())
	if errors.Is(err, zk.ErrNoNode) {
		return Pointer{}, nil, fmt.Errorf("cluster %s: %w: nothing was pushed yet", s.opts.Cluster, ErrNoRevision)
	}
	if err != nil {
		return Pointer{}, nil, fmt.Errorf("read current revision of cluster %s: %w", s.opts.Cluster, err)
	}
	var p Pointer
	if err := json.Unmarshal(data, &p); err != nil {
		return Pointer{}, nil, fmt.Errorf("read current revision of cluster %s: bad data in %s: %w", s.opts.Cluster, s.CurrentPath(), err)
	}
	return p, st, nil
}

// Canary reads the canary pointer; nil when no canary rollout runs.
func (s *Store) Canary(ctx context.Context) (*CanaryPointer, error) {
	data, _, err := s.c.Get(ctx, s.CanaryPath())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read canary of cluster %s: %w", s.opts.Cluster, err)
	}
	return ParseCanary(data)
}

// ParseCanary decodes the canary node's data.
func ParseCanary(data []byte) (*CanaryPointer, error) {
	var c CanaryPointer
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("bad canary data: %w", err)
	}
	return &c, nil
}

// ParsePointer decodes the current node's data.
func ParsePointer(data []byte) (Pointer, error) {
	var p Pointer
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("bad current pointer data: %w", err)
	}
	return p, nil
}

// Meta reads a revision's metadata.
func (s *Store) Meta(ctx context.Context, rev int) (Meta, error) {
	data, _, err := s.c.Get(ctx, s.RevisionPath(rev))
	if errors.Is(err, zk.ErrNoNode) {
		return Meta{}, fmt.Errorf("cluster %s revision %d: %w (pruned, or never pushed)", s.opts.Cluster, rev, ErrNoRevision)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("read cluster %s revision %d: %w", s.opts.Cluster, rev, err)
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, fmt.Errorf("read cluster %s revision %d: bad metadata: %w", s.opts.Cluster, rev, err)
	}
	m.Revision = rev
	return m, nil
}

// Revision reads a revision's metadata and whole bundle, checking its
// checksum.
func (s *Store) Revision(ctx context.Context, rev int) (Meta, *bundle.Bundle, error) {
	m, err := s.Meta(ctx, rev)
	if err != nil {
		return Meta{}, nil, err
	}
	var blob []byte
	for i := 0; i < m.Chunks; i++ {
		p := zk.Join(s.RevisionPath(rev), chunkName(i))
		d, _, err := s.c.Get(ctx, p)
		if errors.Is(err, zk.ErrNoAuth) {
			return Meta{}, nil, fmt.Errorf("read cluster %s revision %d: bundles hold secrets and only the cluster's writers and agents may read them: give their credentials (--zookeeper.auth-file): %w", s.opts.Cluster, rev, err)
		}
		if err != nil {
			return Meta{}, nil, fmt.Errorf("read cluster %s revision %d chunk %d of %d: %w", s.opts.Cluster, rev, i, m.Chunks, err)
		}
		blob = append(blob, d...)
	}
	if len(blob) != m.Compressed {
		return Meta{}, nil, fmt.Errorf("read cluster %s revision %d: %d compressed bytes, metadata says %d", s.opts.Cluster, rev, len(blob), m.Compressed)
	}
	b, err := bundle.Decode(blob)
	if err != nil {
		return Meta{}, nil, fmt.Errorf("read cluster %s revision %d: %w", s.opts.Cluster, rev, err)
	}
	if sum := b.Checksum(); sum != m.Checksum {
		return Meta{}, nil, fmt.Errorf("read cluster %s revision %d: checksum %s, metadata says %s", s.opts.Cluster, rev, sum, m.Checksum)
	}
	return m, b, nil
}

func chunkName(i int) string { return fmt.Sprintf("c-%04d", i) }

// PushMeta is what the operator says about a push.
type PushMeta struct {
	Author     string
	Message    string
	RollbackOf int
}

// PushResult is a successful push.
type PushResult struct {
	Meta      Meta
	Previous  int       // 0 when this is the cluster's first revision
	Committed time.Time // when the pointer moved (before pruning)
}

// createRevision writes a new, not yet referenced revision and returns its
// number.
func (s *Store) createRevision(ctx context.Context, b *bundle.Bundle, pm PushMeta, parent int) (Meta, error) {
	if err := b.Check(); err != nil {
		return Meta{}, err
	}
	blob, err := b.Encode()
	if err != nil {
		return Meta{}, err
	}
	m := Meta{
		Parent: parent, Author: pm.Author, Message: pm.Message, Time: time.Now().UTC(),
		Checksum: b.Checksum(), Encoding: "tar+gzip", Size: b.Size(), Compressed: len(blob),
		Chunks: (len(blob) + s.opts.ChunkSize - 1) / s.opts.ChunkSize, Files: b.Names(), RollbackOf: pm.RollbackOf,
	}
	data, err := json.Marshal(m)
	if err != nil {
		return Meta{}, err
	}
	created, err := s.c.Create(ctx, zk.Join(s.RevisionsPath(), "r-"), data, zk.PersistentSequential, s.access.ACL(KindStatus))
	if err != nil {
		return Meta{}, fmt.Errorf("create revision in %s: %w", s.RevisionsPath(), err)
	}
	rev, err := ParseRevision(zk.Base(created))
	if err != nil {
		return Meta{}, err
	}
	if rev == 0 {
		// The first sequence number is 0, which means "no revision":
		// take the next one.
		if err := s.c.Delete(ctx, created, -1); err != nil {
			return Meta{}, fmt.Errorf("create revision in %s: %w", s.RevisionsPath(), err)
		}
		return s.createRevision(ctx, b, pm, parent)
	}
	m.Revision = rev
	for i := 0; i < m.Chunks; i++ {
		end := min((i+1)*s.opts.ChunkSize, len(blob))
		p := zk.Join(created, chunkName(i))
		if _, err := s.c.Create(ctx, p, blob[i*s.opts.ChunkSize:end], zk.Persistent, s.access.ACL(KindPrivate)); err != nil {
			s.deleteRevision(context.WithoutCancel(ctx), rev)
			return Meta{}, fmt.Errorf("write revision %d chunk %d of %d: %w", rev, i, m.Chunks, err)
		}
	}
	return m, nil
}

func (s *Store) deleteRevision(ctx context.Context, rev int) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.c.DeleteAll(ctx, s.RevisionPath(rev)); err != nil {
		s.logger.Warn("could not delete revision", "revision", rev, "err", err)
	}
}

// readCurrent returns the current pointer and its version; version -1 and
// exists=false when there is none yet.
func (s *Store) readCurrent(ctx context.Context) (Pointer, int32, bool, error) {
	p, st, err := s.Current(ctx)
	if errors.Is(err, ErrNoRevision) {
		return Pointer{}, -1, false, nil
	}
	if err != nil {
		return Pointer{}, 0, false, err
	}
	return p, st.Version, true, nil
}

// conflictErr explains who won a race.
func (s *Store) conflictErr(ctx context.Context, mine int) error {
	p, _, err := s.Current(ctx)
	if err != nil {
		return fmt.Errorf("%w (your revision %d was discarded; push again)", ErrConflict, mine)
	}
	return fmt.Errorf("%w: revision %d by %s at %s won; your revision %d was discarded: review the change (zkprom config diff) and push again",
		ErrConflict, p.Revision, p.Author, p.Time.Format(time.RFC3339), mine)
}

// Push creates a revision from b and moves the current pointer to it in
// one transaction that checks the pointer's version and that no canary
// rollout runs. Two concurrent pushes cannot both win: the loser gets
// ErrConflict and its revision is deleted. Validate the bundle first.
func (s *Store) Push(ctx context.Context, b *bundle.Bundle, pm PushMeta) (*PushResult, error) {
	if err := s.Ensure(ctx); err != nil {
		return nil, err
	}
	cur, version, exists, err := s.readCurrent(ctx)
	if err != nil {
		return nil, err
	}
	if c, err := s.Canary(ctx); err != nil {
		return nil, err
	} else if c != nil {
		return nil, fmt.Errorf("push to cluster %s: %w (revision %d by %s on %s); wait for it or stop it", s.opts.Cluster, ErrCanaryInProgress, c.Revision, c.Author, strings.Join(c.Members, ","))
	}
	m, err := s.createRevision(ctx, b, pm, cur.Revision)
	if err != nil {
		return nil, fmt.Errorf("push to cluster %s: %w", s.opts.Cluster, err)
	}
	ptr, _ := json.Marshal(Pointer{Revision: m.Revision, Checksum: m.Checksum, Author: m.Author, Time: m.Time})
	ops := []zk.Op{
		// Creating and deleting the canary node in the same transaction
		// asserts that no canary rollout started meanwhile.
		zk.CreateOp(s.CanaryPath(), nil, zk.Persistent, s.access.ACL(KindStatus)),
		zk.DeleteOp(s.CanaryPath(), -1),
	}
	if exists {
		ops = append(ops, zk.SetOp(s.CurrentPath(), ptr, version))
	} else {
		ops = append(ops, zk.CreateOp(s.CurrentPath(), ptr, zk.Persistent, s.access.ACL(KindStatus)))
	}
	if _, err := s.c.Multi(ctx, ops...); err != nil {
		s.deleteRevision(context.WithoutCancel(ctx), m.Revision)
		return nil, s.commitErr(ctx, err, m.Revision)
	}
	committed := time.Now()
	s.logger.Debug("pushed revision", "cluster", s.opts.Cluster, "revision", m.Revision, "previous", cur.Revision, "author", m.Author)
	if err := s.Prune(ctx); err != nil {
		s.logger.Warn("could not prune history", "cluster", s.opts.Cluster, "err", err)
	}
	return &PushResult{Meta: m, Previous: cur.Revision, Committed: committed}, nil
}

func (s *Store) commitErr(ctx context.Context, err error, mine int) error {
	var me *zk.MultiError
	if errors.As(err, &me) {
		switch {
		case me.Path == s.CanaryPath() && errors.Is(err, zk.ErrNodeExists):
			c, _ := s.Canary(ctx)
			if c != nil {
				return fmt.Errorf("push to cluster %s: %w (revision %d by %s); your revision %d was discarded", s.opts.Cluster, ErrCanaryInProgress, c.Revision, c.Author, mine)
			}
			return fmt.Errorf("push to cluster %s: %w; your revision %d was discarded", s.opts.Cluster, ErrCanaryInProgress, mine)
		case me.Path == s.CurrentPath() && (errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode)):
			return fmt.Errorf("push to cluster %s: %w", s.opts.Cluster, s.conflictErr(ctx, mine))
		}
	}
	return fmt.Errorf("push to cluster %s: move current pointer to revision %d: %w", s.opts.Cluster, mine, err)
}

// CanaryRollout is a running canary rollout: the revision exists and the canary
// node sends it to the chosen members; the current pointer still names the
// previous revision.
type CanaryRollout struct {
	s       *Store
	Meta    Meta
	Pointer CanaryPointer
	version int32 // of the current node, bumped when the canary started
	cur     Pointer
}

// StartCanary creates a revision and sends it to n live members first
// (sorted by name) by creating the ephemeral canary node. The current
// pointer's version is bumped in the same transaction, so a concurrent
// push conflicts. If this process dies, the canary node goes with its
// session and the canaries return to the current revision.
func (s *Store) StartCanary(ctx context.Context, b *bundle.Bundle, pm PushMeta, n int) (*CanaryRollout, error) {
	if n < 1 {
		return nil, fmt.Errorf("canary count %d: want at least 1", n)
	}
	if err := s.Ensure(ctx); err != nil {
		return nil, err
	}
	cur, version, exists, err := s.readCurrent(ctx)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, fmt.Errorf("canary push to cluster %s: the cluster has no revision yet; push the first one without --canary", s.opts.Cluster)
	}
	members, err := s.Members(ctx)
	if err != nil {
		return nil, err
	}
	members = LiveMembers(members)
	if len(members) < n {
		return nil, fmt.Errorf("canary push to cluster %s: %d canaries asked for, %d agents live", s.opts.Cluster, n, len(members))
	}
	chosen := make([]string, 0, n)
	for _, m := range members[:n] {
		chosen = append(chosen, m.Name)
	}
	m, err := s.createRevision(ctx, b, pm, cur.Revision)
	if err != nil {
		return nil, fmt.Errorf("canary push to cluster %s: %w", s.opts.Cluster, err)
	}
	cp := CanaryPointer{Revision: m.Revision, Previous: cur.Revision, Checksum: m.Checksum, Members: chosen, Author: m.Author, Time: m.Time}
	cdata, _ := json.Marshal(cp)
	curData, _ := json.Marshal(cur)
	res, err := s.c.Multi(ctx,
		zk.SetOp(s.CurrentPath(), curData, version),
		zk.CreateOp(s.CanaryPath(), cdata, zk.Ephemeral, s.access.ACL(KindStatus)),
	)
	if err != nil {
		s.deleteRevision(context.WithoutCancel(ctx), m.Revision)
		return nil, s.commitErr(ctx, err, m.Revision)
	}
	s.logger.Debug("started canary", "cluster", s.opts.Cluster, "revision", m.Revision, "members", chosen)
	return &CanaryRollout{s: s, Meta: m, Pointer: cp, version: res[0].Stat.Version, cur: cur}, nil
}

// Promote moves the current pointer to the canary revision and ends the
// canary, in one transaction.
func (c *CanaryRollout) Promote(ctx context.Context) (*PushResult, error) {
	s := c.s
	ptr, _ := json.Marshal(Pointer{Revision: c.Meta.Revision, Checksum: c.Meta.Checksum, Author: c.Meta.Author, Time: time.Now().UTC()})
	if _, err := s.c.Multi(ctx, zk.SetOp(s.CurrentPath(), ptr, c.version), zk.DeleteOp(s.CanaryPath(), -1)); err != nil {
		return nil, s.commitErr(ctx, err, c.Meta.Revision)
	}
	committed := time.Now()
	if err := s.Prune(ctx); err != nil {
		s.logger.Warn("could not prune history", "cluster", s.opts.Cluster, "err", err)
	}
	return &PushResult{Meta: c.Meta, Previous: c.cur.Revision, Committed: committed}, nil
}

// Abort ends the canary: the canary node and the revision are deleted, so
// the canaries return to the current revision.
func (c *CanaryRollout) Abort(ctx context.Context) error {
	s := c.s
	if err := s.c.Delete(ctx, s.CanaryPath(), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("stop canary of cluster %s: %w", s.opts.Cluster, err)
	}
	s.deleteRevision(ctx, c.Meta.Revision)
	return nil
}

// Rollback pushes a copy of an earlier revision's bundle as a new revision
// (history stays linear; agents see a newer revision). to=0 means the
// parent of the current revision.
func (s *Store) Rollback(ctx context.Context, to int, pm PushMeta) (*PushResult, error) {
	if err := s.Ensure(ctx); err != nil {
		return nil, err // a writer's work: say so before reading bundles
	}
	cur, _, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	if to == 0 {
		m, err := s.Meta(ctx, cur.Revision)
		if err != nil {
			return nil, err
		}
		to = m.Parent
		if m.RollbackOf != 0 {
			// Rolling back a rollback goes on further back.
			if rm, err := s.Meta(ctx, m.RollbackOf); err == nil {
				to = rm.Parent
			}
		}
		if to == 0 {
			return nil, fmt.Errorf("rollback cluster %s: revision %d has no earlier revision: %w", s.opts.Cluster, cur.Revision, ErrNoRevision)
		}
	}
	if to == cur.Revision {
		return nil, fmt.Errorf("rollback cluster %s: revision %d is already current", s.opts.Cluster, to)
	}
	_, b, err := s.Revision(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("rollback cluster %s: %w", s.opts.Cluster, err)
	}
	if pm.Message == "" {
		pm.Message = fmt.Sprintf("rollback to revision %d", to)
	}
	pm.RollbackOf = to
	return s.Push(ctx, b, pm)
}

// History returns the revisions from the current one back along their
// parents, newest first, as far as they are kept.
func (s *Store) History(ctx context.Context) ([]Meta, error) {
	cur, _, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	var out []Meta
	for rev := cur.Revision; rev != 0; {
		m, err := s.Meta(ctx, rev)
		if errors.Is(err, ErrNoRevision) {
			break
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
		rev = m.Parent
	}
	return out, nil
}

// Revisions lists the revision numbers stored, ascending.
func (s *Store) Revisions(ctx context.Context) ([]int, error) {
	names, _, err := s.c.Children(ctx, s.RevisionsPath())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list revisions of cluster %s: %w", s.opts.Cluster, err)
	}
	var revs []int
	for _, n := range names {
		if r, err := ParseRevision(n); err == nil {
			revs = append(revs, r)
		}
	}
	sort.Ints(revs)
	return revs, nil
}

// Prune deletes revisions beyond the history depth: it keeps the newest
// HistoryDepth revisions of the current history, the canary's, and every
// revision a live agent reports as applied; revisions newer than the
// current one (a push in flight) are left alone.
func (s *Store) Prune(ctx context.Context) error {
	cur, _, err := s.Current(ctx)
	if err != nil {
		return err
	}
	keep := map[int]bool{cur.Revision: true}
	rev := cur.Revision
	for i := 0; i < s.opts.HistoryDepth && rev != 0; i++ {
		keep[rev] = true
		m, err := s.Meta(ctx, rev)
		if err != nil {
			break
		}
		rev = m.Parent
	}
	if c, err := s.Canary(ctx); err != nil {
		return err
	} else if c != nil {
		keep[c.Revision] = true
		keep[c.Previous] = true
	}
	members, err := s.Members(ctx)
	if err != nil {
		return err
	}
	for _, m := range LiveMembers(members) {
		keep[m.Status.Revision] = true
	}
	revs, err := s.Revisions(ctx)
	if err != nil {
		return err
	}
	for _, r := range revs {
		if r >= cur.Revision || keep[r] {
			continue
		}
		if err := s.c.DeleteAll(ctx, s.RevisionPath(r)); err != nil {
			return fmt.Errorf("prune revision %d of cluster %s: %w", r, s.opts.Cluster, err)
		}
		s.logger.Debug("pruned revision", "cluster", s.opts.Cluster, "revision", r)
	}
	return nil
}
