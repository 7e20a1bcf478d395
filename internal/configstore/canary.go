package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zkprom/zkprom/internal/zk"

	"github.com/zkprom/zkprom/internal/bundle"
)

// CanaryError is a canary rollout that failed: nobody else was touched.
type CanaryError struct {
	Revision int
	Err      error
}

func (e *CanaryError) Error() string {
	return fmt.Sprintf("canary rollout of revision %d failed; the revision was withdrawn and no other agent was touched: %v", e.Revision, e.Err)
}

func (e *CanaryError) Unwrap() error { return e.Err }

// PushCanary sends b to n agents first: it starts the canary, waits (at
// most timeout) until each of them applied the revision and its Prometheus
// reports a successful reload, and only then moves the current pointer so
// that every agent gets it. If a canary fails, leaves, or the time runs
// out, the canary is withdrawn (the canaries go back to the current
// revision) and a *CanaryError says why.
func (s *Store) PushCanary(ctx context.Context, b *bundle.Bundle, pm PushMeta, n int, timeout time.Duration, progress func(Rollout)) (*PushResult, *CanaryRollout, error) {
	c, err := s.StartCanary(ctx, b, pm, n)
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	err = s.WaitRollout(wctx, c.Meta.Revision, c.Pointer.Members, progress)
	cancel()
	if err == nil {
		err = s.checkCanaryReloads(ctx, c)
	}
	if err != nil {
		if aerr := c.Abort(context.WithoutCancel(ctx)); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return nil, c, &CanaryError{Revision: c.Meta.Revision, Err: err}
	}
	res, err := c.Promote(ctx)
	if err != nil {
		c.Abort(context.WithoutCancel(ctx))
		return nil, c, err
	}
	return res, c, nil
}

// checkCanaryReloads insists that every canary's Prometheus reported a
// successful reload of the revision.
func (s *Store) checkCanaryReloads(ctx context.Context, c *CanaryRollout) error {
	members, err := s.Members(ctx)
	if err != nil {
		return err
	}
	for _, m := range LiveMembers(members) {
		if !c.Pointer.Has(m.Name) {
			continue
		}
		if m.Status.Revision != c.Meta.Revision || !m.Status.ReloadSuccessful {
			return fmt.Errorf("canary %s: revision %d, reload successful %t", m.Name, m.Status.Revision, m.Status.ReloadSuccessful)
		}
	}
	return nil
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
	err = s.settle(ctx, fmt.Sprintf("starting the canary of revision %d", m.Revision), func(ctx context.Context) error {
		_, err := s.c.Multi(ctx,
			zk.SetOp(s.CurrentPath(), curData, version),
			zk.CreateOp(s.CanaryPath(), cdata, zk.Ephemeral, s.access.ACL(KindStatus)),
		)
		return err
	}, func(ctx context.Context) (bool, error) {
		c, err := s.Canary(ctx)
		return c != nil && c.Revision == m.Revision && c.Checksum == m.Checksum, err
	})
	if unknown(err) {
		return nil, fmt.Errorf("canary push to cluster %s: %w. If the canary started, it ends with this process (its node goes with the session); the next push prunes revision %d", s.opts.Cluster, err, m.Revision)
	}
	if err != nil {
		s.deleteRevision(ctx, m.Revision)
		return nil, s.commitErr(ctx, err, m.Revision)
	}
	s.logger.Debug("started canary", "cluster", s.opts.Cluster, "revision", m.Revision, "members", chosen)
	// The set in the transaction bumped the version by one.
	return &CanaryRollout{s: s, Meta: m, Pointer: cp, version: version + 1, cur: cur}, nil
}

// Promote moves the current pointer to the canary revision and ends the
// canary, in one transaction.
func (c *CanaryRollout) Promote(ctx context.Context) (*PushResult, error) {
	s := c.s
	ptr, _ := json.Marshal(Pointer{Revision: c.Meta.Revision, Checksum: c.Meta.Checksum, Author: c.Meta.Author, Time: time.Now().UTC()})
	err := s.settle(ctx, fmt.Sprintf("promoting the canary revision %d (moving the current pointer to it)", c.Meta.Revision), func(ctx context.Context) error {
		_, err := s.c.Multi(ctx, zk.SetOp(s.CurrentPath(), ptr, c.version), zk.DeleteOp(s.CanaryPath(), -1))
		return err
	}, func(ctx context.Context) (bool, error) { return s.wasCurrent(ctx, c.Meta) })
	if unknown(err) {
		return nil, fmt.Errorf("canary push to cluster %s: %w. Revision %d is kept: zkprom config status shows whether it is current", s.opts.Cluster, err, c.Meta.Revision)
	}
	if err != nil {
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
	err := s.settle(ctx, "ending the canary", func(ctx context.Context) error {
		if err := s.c.Delete(ctx, s.CanaryPath(), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		return nil
	}, nil)
	if err != nil {
		return fmt.Errorf("stop canary of cluster %s: %w", s.opts.Cluster, err)
	}
	s.deleteRevision(ctx, c.Meta.Revision) // not when a lost promotion made it current
	return nil
}
