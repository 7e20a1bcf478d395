package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"

	"github.com/zkprom/zkprom/internal/bundle"
)

var ens *zktest.Ensemble

// Credentials of the tests' writer and agents (random passwords).
var (
	writerAuth, agentAuth string
	agentID               zk.Identity
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "zkprom-configstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	writerAuth, agentAuth = filepath.Join(dir, "writer"), filepath.Join(dir, "agent")
	agentPass := randomText(12)
	os.WriteFile(writerAuth, []byte("writer:"+randomText(12)+"\n"), 0o600)
	os.WriteFile(agentAuth, []byte("agent:"+agentPass+"\n"), 0o600)
	agentID = zk.DigestIdentity("agent", agentPass)
	ens, err = zktest.StartEnsemble(zktest.Options{Servers: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	ens.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func connect(t *testing.T, authFile string) *zk.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs ZooKeeper")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, zk.Config{Servers: ens.Connect(), AuthFile: authFile}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newStore(t *testing.T, c *zk.Client, opts Options) *Store {
	t.Helper()
	if opts.Cluster == "" {
		// A suffix of its own: with -count=N each run gets a new cluster.
		opts.Cluster = strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + randomText(6)
	}
	if opts.Access == nil {
		opts.Access = &Access{Agents: []string{agentID.String()}}
	}
	s, err := New(c, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func small(tag string) *bundle.Bundle {
	return &bundle.Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global:\n  external_labels:\n    tag: " + tag + "\n")}}
}

func TestChunkedRevisions(t *testing.T) {
	c := connect(t, writerAuth)
	ctx := context.Background()
	// Small chunks: many children.
	s := newStore(t, c, Options{ChunkSize: 1024})
	b := &bundle.Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global: {}\n"), "blob.bin": randomBytes(10_000)}}
	res, err := s.Push(ctx, b, PushMeta{Author: "t", Message: "chunks"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Chunks < 10 {
		t.Errorf("%d chunks for 10 kB at 1 kB each", res.Meta.Chunks)
	}
	m, got, err := s.Revision(ctx, res.Meta.Revision)
	if err != nil || got.Checksum() != b.Checksum() || m.Chunks != res.Meta.Chunks {
		t.Fatalf("read back: %v", err)
	}
	// Default chunk size: a bundle larger than one znode is split, never
	// truncated.
	s2 := newStore(t, c, Options{Cluster: "big"})
	big := &bundle.Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global: {}\n"), "blob.bin": randomBytes(2_500_000)}}
	res, err = s2.Push(ctx, big, PushMeta{Author: "t", Message: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Chunks != 3 {
		t.Errorf("2.5 MB in %d chunks, want 3", res.Meta.Chunks)
	}
	_, got, err = s2.Revision(ctx, res.Meta.Revision)
	if err != nil || got.Checksum() != big.Checksum() {
		t.Fatalf("read back big: %v", err)
	}
	// A damaged chunk is detected.
	if _, err := c.Set(ctx, zk.Join(s2.RevisionPath(res.Meta.Revision), "c-0001"), []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s2.Revision(ctx, res.Meta.Revision); err == nil {
		t.Error("a damaged revision was read without error")
	}
}

func TestHistoryAndPrune(t *testing.T) {
	c := connect(t, writerAuth)
	ctx := context.Background()
	s := newStore(t, c, Options{HistoryDepth: 3})
	var revs []int
	for i := 0; i < 6; i++ {
		res, err := s.Push(ctx, small(fmt.Sprint(i)), PushMeta{Author: "t", Message: fmt.Sprint("push ", i)})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, res.Meta.Revision)
	}
	h, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].Revision != revs[5] || h[2].Revision != revs[3] || h[0].Message != "push 5" {
		t.Errorf("history %+v", h)
	}
	stored, _ := s.Revisions(ctx)
	if len(stored) != 3 {
		t.Errorf("stored %v, want 3 after pruning", stored)
	}
	if _, err := s.Meta(ctx, revs[0]); !errors.Is(err, ErrNoRevision) {
		t.Errorf("pruned revision: %v", err)
	}
	// A revision a live agent still runs is kept.
	st, _ := json.Marshal(Status{Member: "m", Cluster: s.Cluster(), Revision: revs[3], State: StateApplied})
	if _, err := c.Create(ctx, s.MemberPath("m"), st, zk.Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Push(ctx, small(fmt.Sprint("x", i)), PushMeta{Author: "t", Message: "more"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Meta(ctx, revs[3]); err != nil {
		t.Errorf("revision %d run by a live agent was pruned: %v", revs[3], err)
	}
	// Rollback errors.
	if _, err := s.Rollback(ctx, revs[0], PushMeta{}); !errors.Is(err, ErrNoRevision) {
		t.Errorf("rollback to a pruned revision: %v", err)
	}
	cur, _, _ := s.Current(ctx)
	if _, err := s.Rollback(ctx, cur.Revision, PushMeta{}); err == nil || !strings.Contains(err.Error(), "already current") {
		t.Errorf("rollback to current: %v", err)
	}
	fresh := newStore(t, c, Options{Cluster: "fresh-" + randomText(6)})
	if _, err := fresh.Rollback(ctx, 0, PushMeta{}); !errors.Is(err, ErrNoRevision) {
		t.Errorf("rollback of an empty cluster: %v", err)
	}
	if _, err := fresh.Push(ctx, small("one"), PushMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Rollback(ctx, 0, PushMeta{}); !errors.Is(err, ErrNoRevision) {
		t.Errorf("rollback of a single revision: %v", err)
	}
}

func TestCanaryBlocksPushes(t *testing.T) {
	c := connect(t, writerAuth)
	ctx := context.Background()
	s := newStore(t, c, Options{})
	if _, err := s.StartCanary(ctx, small("a"), PushMeta{}, 1); err == nil {
		t.Error("canary on an empty cluster accepted")
	}
	base, err := s.Push(ctx, small("a"), PushMeta{Author: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartCanary(ctx, small("b"), PushMeta{}, 1); err == nil || !strings.Contains(err.Error(), "0 agents live") {
		t.Errorf("canary without agents: %v", err)
	}
	st, _ := json.Marshal(Status{Member: "m1", Cluster: s.Cluster(), Revision: base.Meta.Revision, State: StateApplied})
	if _, err := c.Create(ctx, s.MemberPath("m1"), st, zk.Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	can, err := s.StartCanary(ctx, small("b"), PushMeta{Author: "canary"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := s.Canary(ctx); err != nil || !cp.Has("m1") || cp.Revision != can.Meta.Revision {
		t.Errorf("canary pointer %+v %v", cp, err)
	}
	if _, err := s.Push(ctx, small("c"), PushMeta{}); !errors.Is(err, ErrCanaryInProgress) {
		t.Errorf("push during a canary: %v", err)
	}
	if _, err := s.StartCanary(ctx, small("d"), PushMeta{}, 1); !errors.Is(err, ErrCanaryInProgress) && !errors.Is(err, ErrConflict) {
		t.Errorf("second canary: %v", err)
	}
	if err := can.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Meta(ctx, can.Meta.Revision); !errors.Is(err, ErrNoRevision) {
		t.Errorf("aborted canary revision still stored: %v", err)
	}
	if cur, _, _ := s.Current(ctx); cur.Revision != base.Meta.Revision {
		t.Errorf("abort moved current to %d", cur.Revision)
	}
	if _, err := s.Push(ctx, small("e"), PushMeta{}); err != nil {
		t.Errorf("push after the canary: %v", err)
	}
	// A canary ends with its session.
	c2 := connect(t, writerAuth)
	s2 := newStore(t, c2, Options{Cluster: s.Cluster()})
	if _, err := s2.StartCanary(ctx, small("f"), PushMeta{}, 1); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if cp, err := s.Canary(ctx); err != nil || cp != nil {
		t.Errorf("canary of a closed session: %+v %v", cp, err)
	}
}

func TestStoreOptions(t *testing.T) {
	for _, o := range []Options{
		{Cluster: ""},
		{Cluster: "a/b"},
		{Cluster: "a", Root: "relative"},
		{Cluster: "a", HistoryDepth: -1},
		{Cluster: "a", ChunkSize: 10},
		{Cluster: "a", ChunkSize: 2 << 20},
	} {
		if _, err := New(nil, o, nil); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}
