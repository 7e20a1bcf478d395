package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

// writeLog keeps what settle logs: which writes lost their answer, and
// which of them had landed.
type writeLog struct {
	mu   sync.Mutex
	lost []string // the write attribute of each lost answer
	had  []string // ... of each that had landed
}

func (l *writeLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *writeLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *writeLog) WithGroup(string) slog.Handler            { return l }
func (l *writeLog) Handle(_ context.Context, r slog.Record) error {
	var what string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "write" {
			what = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	switch r.Message {
	case "the answer to a write was lost; reading whether it landed":
		l.lost = append(l.lost, what)
	case "the write had landed":
		l.had = append(l.had, what)
	}
	return nil
}

func (l *writeLog) take() (lost, had []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lost, had, l.lost, l.had = l.lost, l.had, nil, nil
	return lost, had
}

// proxied is a writer's client through a proxy that a test drops, and
// what its stores log.
func proxied(t *testing.T) (*zk.Client, *zktest.Proxy, *writeLog) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs ZooKeeper")
	}
	px, err := zktest.NewProxy(ens.Servers[0].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, zk.Config{Servers: px.Addr(), AuthFile: writerAuth}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, px, &writeLog{}
}

func storeFor(t *testing.T, c *zk.Client, cluster string, l *writeLog) *Store {
	t.Helper()
	var logger *slog.Logger
	if l != nil {
		logger = slog.New(l)
	}
	s, err := New(c, Options{Cluster: cluster, ChunkSize: 1024, HistoryDepth: 2, Access: &Access{Agents: []string{agentID.String()}}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dropBundle is a bundle of several 1 KiB chunks.
func dropBundle(tag string) *bundle.Bundle {
	return &bundle.Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global: {}\n# " + tag + "\n"), "blob.bin": randomBytes(3000)}}
}

// checkCluster checks what a reader sees after a write the connection
// dropped under: the current pointer is want and names a revision that
// reads back whole with its checksum, no canary runs, and the revisions
// newer than before are only want's: no orphan. (Older ones a prune cut
// short may be left; the next prune takes them.)
func checkCluster(t *testing.T, s *Store, want Pointer, before int) {
	t.Helper()
	ctx := context.Background()
	if err := s.c.Sync(ctx, s.base); err != nil {
		t.Fatal(err)
	}
	cur, _, err := s.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Revision != want.Revision || cur.Checksum != want.Checksum {
		t.Errorf("current names revision %d (%s), want %d (%s)", cur.Revision, cur.Checksum, want.Revision, want.Checksum)
	}
	if _, b, err := s.Revision(ctx, cur.Revision); err != nil {
		t.Errorf("the current revision does not read back: %v", err)
	} else if b.Checksum() != cur.Checksum {
		t.Errorf("current revision's bundle has checksum %s, pointer says %s", b.Checksum(), cur.Checksum)
	}
	if c, err := s.Canary(ctx); err != nil || c != nil {
		t.Errorf("canary after the write: %+v %v", c, err)
	}
	revs, err := s.Revisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(revs, before) {
		t.Errorf("revisions %v: the one current before, %d, is gone", revs, before)
	}
	for _, r := range revs {
		if r > before && r != want.Revision {
			t.Errorf("revisions %v: orphan %d", revs, r)
		}
	}
}

// sweep calibrates an undisturbed write (prepare's bytes from the server,
// then the write's), then runs it once for each drop offset: through the
// preparation (reads) every 151 bytes, through the rest every 19 (an
// answer to a guarded write is some 70 to 180 bytes long). A first
// write brings the cluster to the size it keeps (the preparation reads
// every node).
func sweep(t *testing.T, px *zktest.Proxy, prepare func() error, run func(n int64) bool) {
	t.Helper()
	if !run(-1) {
		t.Fatal("the undisturbed write failed")
	}
	from := px.Served()
	if err := prepare(); err != nil {
		t.Fatal(err)
	}
	skip := px.Served() - from
	from = px.Served()
	if !run(-1) {
		t.Fatal("the undisturbed write failed")
	}
	total := px.Served() - from
	t.Logf("one write: %d bytes from the server, %d of them preparation", total, skip)
	for n := int64(0); n < total && !t.Failed(); {
		if !run(n) {
			return
		}
		if n < skip-200 {
			n += 151
		} else {
			n += 19
		}
	}
}

// counted records the writes whose answers were lost in one run.
func counted(count map[string]int, lost, had []string) {
	for _, w := range lost {
		count["lost: "+stage(w)]++
	}
	for _, w := range had {
		count["had landed: "+stage(w)]++
	}
}

// TestPushLosesNothingWhenDropped drops the connection at every stage of
// a push, including just after the server applied the commit but before
// its answer came, and after the revision's create: the push either
// succeeds and the pointer names the whole revision, or fails and
// nothing changed; no orphan is left; a drop under one of the writes it
// guards never fails it.
func TestPushLosesNothingWhenDropped(t *testing.T) {
	t.Parallel() // each waits on ZooKeeper's disk most of the time
	direct := connect(t, writerAuth)
	via, px, l := proxied(t)
	ctx := context.Background()
	cluster := "drop-push-" + randomText(6)
	ds, vs := storeFor(t, direct, cluster, nil), storeFor(t, via, cluster, l)
	if _, err := ds.Push(ctx, small("first"), PushMeta{Author: "t"}); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	sweep(t, px, func() error { return vs.Ensure(ctx) }, func(n int64) bool {
		before, _, err := ds.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b := dropBundle(fmt.Sprint(n))
		if n >= 0 {
			px.DropAfter(n)
		}
		res, err := vs.Push(ctx, b, PushMeta{Author: "t", Message: "dropped"})
		px.DropAfter(math.MaxInt64) // not in a later request
		lost, had := l.take()
		counted(count, lost, had)
		checkOutcome(t, ds, n, "push", err, res, b, before, lost, count)
		if t.Failed() {
			t.Logf("drop after %d bytes: push: %v; lost answers: %q, had landed: %q", n, err, lost, had)
		}
		return !t.Failed()
	})
	t.Logf("outcomes: %v", count)
	// The sweep must have hit the windows that lost data before.
	for _, k := range []string{"had landed: create", "lost: chunk", "had landed: chunk", "had landed: commit"} {
		if count[k] == 0 {
			t.Errorf("no drop hit %q: the sweep is too coarse", k)
		}
	}
}

// stage names the write settle logged, for counting.
func stage(what string) string {
	switch {
	case strings.HasPrefix(what, "creating a revision"):
		return "create"
	case strings.HasPrefix(what, "writing revision"):
		return "chunk"
	case strings.HasPrefix(what, "committing"), strings.HasPrefix(what, "promoting"):
		return "commit"
	case strings.HasPrefix(what, "starting the canary"):
		return "canary"
	case strings.HasPrefix(what, "creating cluster"):
		return "cluster"
	case strings.HasPrefix(what, "setting the ACL"):
		return "acl"
	case strings.HasPrefix(what, "recording the access settings"):
		return "access"
	case strings.HasPrefix(what, "creating a node to learn"):
		return "whoami"
	case strings.HasPrefix(what, "creating /"):
		return "node"
	}
	return "other"
}

// TestCanaryLosesNothingWhenDropped does the same for a canary push's two
// commits: starting the canary and promoting it (an aborted one, as
// PushCanary aborts, leaves the cluster as it was).
func TestCanaryLosesNothingWhenDropped(t *testing.T) {
	t.Parallel() // each waits on ZooKeeper's disk most of the time
	direct := connect(t, writerAuth)
	via, px, l := proxied(t)
	ctx := context.Background()
	cluster := "drop-canary-" + randomText(6)
	ds, vs := storeFor(t, direct, cluster, nil), storeFor(t, via, cluster, l)
	first, err := ds.Push(ctx, small("first"), PushMeta{Author: "t"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(Status{Member: "m1", Cluster: cluster, Revision: first.Meta.Revision, State: StateApplied})
	if _, err := direct.Create(ctx, ds.MemberPath("m1"), st, zk.Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	sweep(t, px, func() error { return vs.Ensure(ctx) }, func(n int64) bool {
		before, _, err := ds.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b := dropBundle(fmt.Sprint(n))
		if n >= 0 {
			px.DropAfter(n)
		}
		c, err := vs.StartCanary(ctx, b, PushMeta{Author: "t"}, 1)
		var res *PushResult
		if err == nil {
			if cp, cerr := ds.Canary(ctx); cerr != nil || cp == nil || cp.Revision != c.Meta.Revision {
				t.Errorf("canary started, canary pointer %+v %v", cp, cerr)
			}
			if res, err = c.Promote(ctx); err != nil {
				if aerr := c.Abort(ctx); aerr != nil {
					t.Errorf("abort: %v", aerr)
				}
			}
		}
		px.DropAfter(math.MaxInt64)
		lost, had := l.take()
		counted(count, lost, had)
		checkOutcome(t, ds, n, "canary push", err, res, b, before, lost, count)
		if t.Failed() {
			t.Logf("drop after %d bytes: %v; lost answers: %q, had landed: %q", n, err, lost, had)
		}
		return !t.Failed()
	})
	t.Logf("outcomes: %v", count)
	for _, k := range []string{"had landed: canary", "had landed: commit"} {
		if count[k] == 0 {
			t.Errorf("no drop hit %q: the sweep is too coarse", k)
		}
	}
}

// TestCreateClusterWhenDropped drops the connection at every stage of
// making a cluster (a first push's Ensure): the cluster is either made
// whole, with its settings, or a second try makes it; a drop under one of
// the writes it guards never fails it.
func TestCreateClusterWhenDropped(t *testing.T) {
	t.Parallel()
	direct := connect(t, writerAuth)
	via, px, l := proxied(t)
	ctx := context.Background()
	count := map[string]int{}
	var total int64
	prefix := "drop-create-" + randomText(6)
	for n := int64(-1); n < total && !t.Failed(); n += 17 {
		cluster := fmt.Sprintf("%s-%d", prefix, n)
		from := px.Served()
		if n >= 0 {
			px.DropAfter(n)
		}
		err := storeFor(t, via, cluster, l).Ensure(ctx)
		px.DropAfter(math.MaxInt64)
		if n < 0 {
			if err != nil {
				t.Fatal(err)
			}
			total = px.Served() - from
			t.Logf("making a cluster: %d bytes from the server", total)
			n = -17
		}
		lost, had := l.take()
		counted(count, lost, had)
		if err != nil {
			if len(lost) > 0 {
				t.Errorf("drop after %d bytes, under %q: %v", n, lost, err)
			}
			count["failed"]++
			err = storeFor(t, direct, cluster, nil).Ensure(ctx)
		}
		if err != nil {
			t.Errorf("drop after %d bytes: the cluster cannot be made again: %v", n, err)
			continue
		}
		ds := storeFor(t, direct, cluster, nil)
		a, _, err := ds.Access(ctx)
		if err != nil || len(a.Writers) == 0 || !slices.Equal(a.Agents, []string{agentID.String()}) {
			t.Errorf("drop after %d bytes: access settings %+v %v", n, a, err)
		}
		if problems, err := ds.CheckACLs(ctx, a, true); err != nil || len(problems) > 0 {
			t.Errorf("drop after %d bytes: ACLs %v %v", n, problems, err)
		}
		for _, p := range []string{ds.RevisionsPath(), ds.MembersPath(), ds.HAPath()} {
			if ok, _, err := direct.Exists(ctx, p); err != nil || !ok {
				t.Errorf("drop after %d bytes: %s missing (%v)", n, p, err)
			}
		}
	}
	t.Logf("outcomes: %v", count)
	for _, k := range []string{"lost: cluster", "lost: acl", "had landed: access", "lost: whoami", "lost: node"} {
		if count[k] == 0 {
			t.Errorf("no drop hit %q: the sweep is too coarse", k)
		}
	}
}

// TestDeleteRevisionSparesPointers: a revision given up on is not
// deleted while a pointer names it (a lost commit may have landed).
func TestDeleteRevisionSparesPointers(t *testing.T) {
	c := connect(t, writerAuth)
	ctx := context.Background()
	s := newStore(t, c, Options{})
	res, err := s.Push(ctx, small("a"), PushMeta{Author: "t"})
	if err != nil {
		t.Fatal(err)
	}
	s.deleteRevision(ctx, res.Meta.Revision)
	if _, _, err := s.Revision(ctx, res.Meta.Revision); err != nil {
		t.Errorf("the current revision was deleted: %v", err)
	}
	st, _ := json.Marshal(Status{Member: "m1", Cluster: s.Cluster(), Revision: res.Meta.Revision, State: StateApplied})
	if _, err := c.Create(ctx, s.MemberPath("m1"), st, zk.Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	can, err := s.StartCanary(ctx, small("b"), PushMeta{Author: "t"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.deleteRevision(ctx, can.Meta.Revision)
	if _, _, err := s.Revision(ctx, can.Meta.Revision); err != nil {
		t.Errorf("the canary's revision was deleted: %v", err)
	}
	if err := can.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Meta(ctx, can.Meta.Revision); !errors.Is(err, ErrNoRevision) {
		t.Errorf("aborted canary's revision kept: %v", err)
	}
}

// TestWasCurrent: a commit landed when the pointer names the revision, or
// when a later push has it as parent (it moved the pointer on since).
func TestWasCurrent(t *testing.T) {
	c := connect(t, writerAuth)
	ctx := context.Background()
	s := newStore(t, c, Options{})
	a, err := s.Push(ctx, small("a"), PushMeta{Author: "t"})
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := s.createRevision(ctx, small("orphan"), PushMeta{Author: "t"}, a.Meta.Revision)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		m := []Meta{a.Meta, orphan}[i]
		if got, err := s.wasCurrent(ctx, m); err != nil || got != want {
			t.Errorf("before the next push: wasCurrent(%d) = %t, %v; want %t", m.Revision, got, err, want)
		}
	}
	other := a.Meta
	other.Checksum = "not-ours"
	if got, _ := s.wasCurrent(ctx, other); got {
		t.Error("a pointer to a revision with another checksum counted as ours")
	}
	if _, err := s.Push(ctx, small("b"), PushMeta{Author: "t"}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		m := []Meta{a.Meta, orphan}[i]
		if got, err := s.wasCurrent(ctx, m); err != nil || got != want {
			t.Errorf("after the next push: wasCurrent(%d) = %t, %v; want %t", m.Revision, got, err, want)
		}
	}
}

// TestOrphansPruned: revisions a crashed push left (one without chunks,
// one whole but never committed) are never current, and the next push
// prunes them.
func TestOrphansPruned(t *testing.T) {
	c := connect(t, writerAuth)
	ctx := context.Background()
	s := newStore(t, c, Options{})
	a, err := s.Push(ctx, small("a"), PushMeta{Author: "t"})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := s.createRevision(ctx, small("whole"), PushMeta{Author: "t"}, a.Meta.Revision)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(Meta{Parent: a.Meta.Revision, Chunks: 1, PushID: "crashed"})
	empty, err := c.Create(ctx, zk.Join(s.RevisionsPath(), "r-"), meta, zk.PersistentSequential, s.access.ACL(KindStatus))
	if err != nil {
		t.Fatal(err)
	}
	if cur, _, err := s.Current(ctx); err != nil || cur.Revision != a.Meta.Revision {
		t.Fatalf("current %+v %v, want revision %d", cur, err, a.Meta.Revision)
	}
	if h, err := s.History(ctx); err != nil || len(h) != 1 {
		t.Errorf("history %+v %v: want only revision %d", h, err, a.Meta.Revision)
	}
	b, err := s.Push(ctx, small("b"), PushMeta{Author: "t"})
	if err != nil {
		t.Fatal(err)
	}
	revs, _ := s.Revisions(ctx)
	if !slices.Equal(revs, []int{a.Meta.Revision, b.Meta.Revision}) {
		t.Errorf("revisions %v after the next push; orphans %d and %s should be pruned", revs, whole.Revision, zk.Base(empty))
	}
}

// checkOutcome checks one dropped write against the invariants: a success
// names a complete revision with b's checksum, a failure leaves the
// pointer as before and never follows a lost answer, and the outcome is
// never left unknown.
func checkOutcome(t *testing.T, ds *Store, n int64, what string, err error, res *PushResult, b *bundle.Bundle, before Pointer, lost []string, count map[string]int) {
	t.Helper()
	switch {
	case err == nil:
		checkCluster(t, ds, Pointer{Revision: res.Meta.Revision, Checksum: b.Checksum()}, before.Revision)
		count["ok"]++
	case unknown(err):
		t.Errorf("drop after %d bytes: one drop left the outcome unknown: %v", n, err)
	default:
		checkCluster(t, ds, before, before.Revision)
		if len(lost) > 0 {
			t.Errorf("drop after %d bytes, under %q: the %s failed: %v", n, lost, what, err)
		}
		count["failed"]++
	}
}
