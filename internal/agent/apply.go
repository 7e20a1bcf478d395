package agent

import (
	"context"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
)

// localApply marks a context of an apply that must not wait for
// ZooKeeper (an HA step-down while ZooKeeper may be unreachable).
type localApply struct{}

// publishTimeout bounds publishing the status to the member node: the
// session timeout, or a moment during a local apply (the status is
// published again when the session is back).
func (a *Agent) publishTimeout(ctx context.Context) time.Duration {
	if ctx.Value(localApply{}) != nil {
		return 100 * time.Millisecond
	}
	return a.c.SessionTimeout()
}

// fetchRevision returns revision rev: from the disk when the wanted
// variant of the applied revision is complete there (no ZooKeeper
// needed), else from ZooKeeper.
func (a *Agent) fetchRevision(ctx context.Context, rev int, leader bool) (configstore.Meta, *bundle.Bundle, error) {
	a.mu.Lock()
	applied, checksum := a.state.Applied, a.state.Checksum
	a.mu.Unlock()
	// Both variants on disk (the plain one is the source: the leader's
	// prometheus.yml has the overlay merged in): nothing to stage.
	if rev == applied && checksum != "" && a.disk.completeVariant(rev, false, checksum) &&
		(!leader || a.disk.completeVariant(rev, true, checksum)) {
		if b, err := bundle.LoadDir(a.disk.revDir(rev)); err == nil {
			return configstore.Meta{Revision: rev, Checksum: checksum}, b, nil
		}
	}
	if _, err := a.checkAccess(ctx); err != nil {
		return configstore.Meta{}, nil, err
	}
	return a.store.Revision(ctx, rev)
}

// stageRevision lays down the wanted variant of rev; with the leader
// variant it also lays down the plain one, so that stepping down never
// needs ZooKeeper.
func (a *Agent) stageRevision(rev int, leader bool, checksum string, bundle *bundle.Bundle) error {
	for _, v := range []bool{leader, false} {
		if a.disk.completeVariant(rev, v, checksum) {
			continue
		}
		r, err := renderVariant(bundle, a.variantVars(rev, v), v)
		if err != nil {
			return err
		}
		if err := a.disk.stageVariant(rev, v, checksum, a.cfg.Member, r); err != nil {
			return err
		}
		if !leader {
			break
		}
	}
	return nil
}
