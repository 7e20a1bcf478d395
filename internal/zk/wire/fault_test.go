package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// bigTree makes n members of size bytes each under a fresh root: about
// n*size bytes of multiRead replies to read.
func bigTree(t *testing.T, c *Conn, n, size int) string {
	t.Helper()
	root := testRoot(t, c)
	data := bytes.Repeat([]byte("d"), size)
	ctx := ctxT(t, 60*time.Second)
	for i := 0; i < n; i += 200 {
		var ops []Op
		for j := i; j < min(i+200, n); j++ {
			ops = append(ops, CreateOp(fmt.Sprintf("%s/m%05d", root, j), data, nil, Persistent))
		}
		if _, err := c.Multi(ctx, ops...); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestConnDroppedMidFrame: the connection closes in the middle of a large
// reply. The request fails with a connection loss, never a hang or a
// panic; the session dials again and the same read succeeds.
func TestConnDroppedMidFrame(t *testing.T) {
	c := dial(t, Config{})
	root := testRoot(t, c)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20_000) // 320 KB
	mustCreate(t, c, root+"/big", string(big))

	p := proxy(t)
	ctx := ctxT(t, 60*time.Second)
	s, err := NewSession(ctx, SessionConfig{Servers: []string{p.Addr()}, Conn: Config{SessionTimeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantState(t, s.Events(), StateSyncConnected)
	id := s.SessionID()
	for _, cut := range []int64{1, 15, 100_000} { // in the header, the stat, the data
		p.DropAfter(cut)
		_, _, err := s.Get(ctx, root+"/big", false)
		if !errors.Is(err, ErrConnectionLoss) {
			t.Fatalf("dropped after %d bytes of the reply: err %v, want a connection loss", cut, err)
		}
		var data []byte
		for deadline := time.Now().Add(20 * time.Second); ; {
			if data, _, err = s.Get(ctx, root+"/big", false); !errors.Is(err, ErrConnectionLoss) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no reconnect within 20 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || !bytes.Equal(data, big) {
			t.Fatalf("after the reconnect: %d bytes, err %v", len(data), err)
		}
	}
	if s.SessionID() != id {
		t.Error("a new session: the old one should have been kept")
	}
}

// TestTreeCacheDroppedMidMultiRead: the connection closes in the middle of
// the initial read's multiRead replies. The cache reads again from the
// start and its snapshot and its events both equal a fresh read: nothing
// of the cut read is half applied.
func TestTreeCacheDroppedMidMultiRead(t *testing.T) {
	c := dial(t, Config{})
	root := bigTree(t, c, 1500, 600) // ~900 KB of data, ~20 KB of children lists
	p := proxy(t)
	p.DropAfter(400_000)
	tc, f := startCache(t, CacheConfig{Root: root, BatchBytes: 64 << 10, Session: SessionConfig{Servers: []string{p.Addr()}}})
	converge(t, c, tc, f, root)
	if st := tc.Stats(); st.FullReads < 2 {
		t.Errorf("stats %+v: the cut read was not started again", st)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.last) == 0 || len(f.last[0].Events) != 1501 {
		t.Errorf("the first batch of events has %d nodes, want the whole tree (1501) at once", len(f.last[0].Events))
	}
}

// TestTreeCacheServerKilledDuringRead kills the server (standalone, so
// the session survives a quick restart) while the cache is half way
// through its initial read, and starts it again: the cache reconnects,
// reads again and converges.
func TestTreeCacheServerKilledDuringRead(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the package's ZooKeeper")
	}
	c := dial(t, Config{})
	root := bigTree(t, c, 1500, 600)
	c.Close()
	p := proxy(t)
	p.StallAfter(400_000)
	tc := NewTreeCache(CacheConfig{Root: root, BatchBytes: 64 << 10,
		Session: SessionConfig{Servers: []string{p.Addr()}, Conn: Config{SessionTimeout: 30 * time.Second}}})
	f := follow(tc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); !p.Stalled(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the initial read did not reach 400 KB within 30 s")
		}
	}
	select {
	case <-tc.Synced():
		t.Fatal("synced with part of the tree")
	default:
	}
	if err := ensemble.Kill(0); err != nil {
		t.Fatal(err)
	}
	if err := ensemble.Start(0); err != nil {
		t.Fatal(err)
	}
	if err := ensemble.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	p.Resume()
	select {
	case <-tc.Synced():
	case <-time.After(60 * time.Second):
		t.Fatal("not synced 60 s after the restart")
	}
	converge(t, dial(t, Config{}), tc, f, root)
}
