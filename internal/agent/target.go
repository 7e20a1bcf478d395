// What revision this member should run (the current pointer, or the
// canary pointer when it is one of the canaries), read with watches, and
// the step the main loop takes towards it.

package agent

import (
	"context"
	"errors"
	"time"

	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

// step reads the target revision (arming watches) and works towards it.
// It returns whether to retry after RetryInterval.
func (a *Agent) step(ctx context.Context, w *watches) bool {
	target, canary, err := a.target(ctx, w)
	if err != nil {
		a.logger.Warn("could not read the cluster's revision; keeping the applied one", "err", err)
		return true
	}
	if target == 0 {
		a.setStatus(ctx, func(s *configstore.Status) { s.Target = 0 })
		return false
	}
	a.mu.Lock()
	if _, ok := a.noticed[target]; !ok {
		a.noticed[target] = time.Now()
	}
	st, pending := a.state, a.pending
	a.mu.Unlock()

	if pending != nil {
		if pending.rev == target {
			if again := a.finishPending(ctx, canary); again || !a.variantChanged(target) {
				return again
			}
			// The HA role changed while Prometheus was away: the
			// variant switch was deferred until now.
			return a.apply(ctx, target, canary)
		}
		a.mu.Lock()
		a.pending = nil
		a.mu.Unlock()
	}
	switch {
	case target == st.Applied && a.variantChanged(target):
		return a.apply(ctx, target, canary) // HA leadership changed: add or remove the overlay
	case target == st.Applied:
		switch cur := a.Status(); {
		case cur.State == configstore.StateApplied && cur.Target == target && cur.Canary == canary:
			return false
		case cur.State == configstore.StateApplied || cur.State == configstore.StateFailed:
			// Back on the applied revision (a canary ended, or a failed
			// revision was replaced by this one): nothing to do on disk.
			// The last failure stays in the status for the record.
			a.setStatus(ctx, func(s *configstore.Status) {
				s.State, s.Target, s.Canary = configstore.StateApplied, target, canary
			})
			return false
		}
		// Restart with the revision already applied: change nothing, just
		// check that Prometheus runs it.
		return a.confirm(ctx, target, canary)
	case target == st.FailedRevision:
		a.setStatus(ctx, func(s *configstore.Status) {
			s.Target, s.Canary, s.State = target, canary, configstore.StateFailed
		})
		return false
	}
	return a.apply(ctx, target, canary)
}

// target returns the revision this member should run: the canary's when
// it is one of the canaries, else current's. It arms the watches that are
// not armed.
func (a *Agent) target(ctx context.Context, w *watches) (int, bool, error) {
	var ok bool
	var err error
	if w.access == nil {
		if _, _, ch, err := a.pointers.GetW(ctx, a.store.AccessPath()); err == nil {
			w.access = ch
		}
	}
	if w.canary == nil {
		var ch <-chan zk.WatchEvent
		ok, _, ch, err = a.pointers.ExistsW(ctx, a.store.CanaryPath())
		if err == nil {
			w.canary = ch
		}
	} else {
		ok, _, err = a.pointers.Exists(ctx, a.store.CanaryPath())
	}
	if err != nil {
		return 0, false, err
	}
	var canary *configstore.CanaryPointer
	if ok {
		data, _, err := a.pointers.Get(ctx, a.store.CanaryPath())
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return 0, false, err
		}
		if err == nil {
			if canary, err = configstore.ParseCanary(data); err != nil {
				return 0, false, err
			}
		}
	}
	var data []byte
	if w.current == nil {
		var ch <-chan zk.WatchEvent
		data, _, ch, err = a.pointers.GetW(ctx, a.store.CurrentPath())
		if errors.Is(err, zk.ErrNoNode) {
			// Nothing pushed yet: wait for the node to appear.
			ok, _, ch, err = a.pointers.ExistsW(ctx, a.store.CurrentPath())
			if err != nil {
				return 0, false, err
			}
			w.current = ch
			if !ok {
				return 0, false, nil
			}
			w.current = nil
			return a.target(ctx, w)
		}
		if err == nil {
			w.current = ch
		}
	} else {
		data, _, err = a.pointers.Get(ctx, a.store.CurrentPath())
		if errors.Is(err, zk.ErrNoNode) {
			return 0, false, nil
		}
	}
	if err != nil {
		return 0, false, err
	}
	p, err := configstore.ParsePointer(data)
	if err != nil {
		return 0, false, err
	}
	if canary.Has(a.cfg.Member) {
		return canary.Revision, true, nil
	}
	return p.Revision, false, nil
}
