// What the agent's state machines need of ZooKeeper, as small
// interfaces named for what they do. The real types satisfy them
// unchanged (*configstore.Store, *zk.Client; *zk.Election through
// zkElection, which only retypes Campaign's result), so that the apply
// path and the HA candidacy run against an in-memory fake in unit tests
// (fakezk_test.go) while the integration tests use a real ensemble.

package agent

import (
	"context"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

// revisionSource hands out a revision's bundle (the apply path's fetch).
type revisionSource interface {
	Revision(ctx context.Context, rev int) (configstore.Meta, *bundle.Bundle, error)
}

// accessSource reads the cluster's access settings and checks the ACLs
// of the nodes the agent relies on (checkAccess).
type accessSource interface {
	Access(ctx context.Context) (configstore.Access, *zk.Stat, error)
	CheckACLs(ctx context.Context, a configstore.Access, deep bool) ([]configstore.ACLProblem, error)
	CheckGroupACLs(ctx context.Context, a configstore.Access, group string) ([]configstore.ACLProblem, error)
}

// nodeReader reads nodes and arms one-shot watches on them.
type nodeReader interface {
	Get(ctx context.Context, p string) ([]byte, *zk.Stat, error)
	GetW(ctx context.Context, p string) ([]byte, *zk.Stat, <-chan zk.WatchEvent, error)
	Exists(ctx context.Context, p string) (bool, *zk.Stat, error)
	ExistsW(ctx context.Context, p string) (bool, *zk.Stat, <-chan zk.WatchEvent, error)
}

// pointerSession is what the main loop reads of ZooKeeper: the pointers
// (with watches) and who this session is.
type pointerSession interface {
	nodeReader
	Authenticated() bool
	DigestIdentities() []zk.Identity
}

// groupSession is what the HA candidacy reads of ZooKeeper besides the
// election: the leader record, the candidates, with watches.
type groupSession interface {
	nodeReader
	ChildrenW(ctx context.Context, p string) ([]string, *zk.Stat, <-chan zk.WatchEvent, error)
	SessionTimeout() time.Duration
}

// groupElection is one candidacy in an HA group's election.
type groupElection interface {
	Campaign(ctx context.Context) (leadership, error)
	Leader(ctx context.Context) ([]byte, int64, error)
}

// leadership is a won election, held until its context ends.
type leadership interface {
	Context() context.Context
	Term() int64
	Check() error
	Multi(ctx context.Context, ops ...zk.Op) ([]zk.OpResult, error)
	Release()
	Resign(ctx context.Context) error
}

// zkElection is a *zk.Election as a groupElection.
type zkElection struct{ *zk.Election }

func (e zkElection) Campaign(ctx context.Context) (leadership, error) {
	l, err := e.Election.Campaign(ctx)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// newElection is the HA group's election on the client c.
func newElection(c *zk.Client) func(path string, candidate []byte, opts zk.ElectionOptions) groupElection {
	return func(path string, candidate []byte, opts zk.ElectionOptions) groupElection {
		return zkElection{zk.NewElection(c, path, candidate, opts)}
	}
}
