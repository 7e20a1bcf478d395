package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
)

// WaitRollout learns of each change of a member node from its watch:
// an agent that applies the revision ends the wait at once, one that
// does not is named when the time runs out.
func TestWaitRolloutWatches(t *testing.T) {
	c := connect(t, writerAuth)
	ctx := context.Background()
	s := newStore(t, c, Options{})
	res, err := s.Push(ctx, small("a"), PushMeta{Author: "t"})
	if err != nil {
		t.Fatal(err)
	}
	rev := res.Meta.Revision
	status := func(state string, applied int) []byte {
		b, _ := json.Marshal(Status{Member: "m1", Cluster: s.Cluster(), Revision: applied, Target: rev, State: state})
		return b
	}
	if _, err := c.Create(ctx, s.MemberPath("m1"), status(StateApplying, 0), zk.Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = s.WaitRollout(short, rev, nil, nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still waiting for m1 (applying, revision 0)") {
		t.Fatalf("pending rollout: %v", err)
	}

	seen := make(chan Rollout, 16)
	done := make(chan error, 1)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() { done <- s.WaitRollout(wctx, rev, nil, func(r Rollout) { seen <- r }) }()
	if r := <-seen; r.Pending != 1 {
		t.Fatalf("first view: %+v", r)
	}
	start := time.Now()
	if _, err := c.Set(ctx, s.MemberPath("m1"), status(StateApplied, rev), -1); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := <-seen; r.Applied != 1 {
		t.Errorf("last view: %+v", r)
	}
	t.Logf("the wait ended %s after the write", time.Since(start))
}
