package configstore

import (
	"context"
	"errors"
	"fmt"
	"time"

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
