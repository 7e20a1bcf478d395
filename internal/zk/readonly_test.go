package zk

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk/wire"
	"github.com/zkprom/zkprom/internal/zktest"
)

// TestTreeCacheReadOnly: a client that only reads (Config.ReadOnly) keeps
// its tree cache served when its server is cut off from the quorum and
// serves reads only, marked stale (read again on a session of that
// server's own); when the quorum is back the cache is fresh and follows
// changes again. Both cache modes.
func TestTreeCacheReadOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node ensemble")
	}
	e, err := zktest.StartEnsemble(zktest.Options{Servers: 3, ReadOnlyMode: true, Extra: []string{"localSessionsEnabled=true"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := ctxT(t, 4*time.Minute)
	w, err := Connect(ctx, Config{Servers: e.Servers[0].ClientAddr}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/ro", "/ro/a", "/ro/b"} {
		if _, err := w.Create(ctx, p, []byte(p), Persistent, nil); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	// Server 1 first: it is the one left alone.
	connect := e.Servers[0].ClientAddr + "," + e.Servers[1].ClientAddr + "," + e.Servers[2].ClientAddr
	var caches []*TreeCache
	for _, mode := range []CacheMode{CacheModeAuto, CachePerNodeWatches} {
		c, err := Connect(ctx, Config{Servers: connect, ReadOnly: true, SessionTimeout: 4 * time.Second}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tc := NewTreeCache(c, []string{"/ro"}, CacheOptions{Data: true, Mode: mode})
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { tc.Run(cctx); close(done) }()
		defer func() { cancel(); <-done }()
		go func() {
			for range tc.Events() {
			}
		}()
		<-tc.Synced()
		caches = append(caches, tc)
	}
	has := func(tc *TreeCache, p string) bool { n, ok := tc.Get(p); return ok && string(n.Data) == p }
	for _, tc := range caches {
		if !has(tc, "/ro/a") || tc.Stale() {
			t.Fatalf("%s: before the partition /ro/a %v, stale %v", tc.Mode(), has(tc, "/ro/a"), tc.Stale())
		}
	}

	for _, i := range []int{1, 2} {
		if err := e.Stop(i); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 60*time.Second, "server 1 in read-only mode", func() bool { m, _ := e.Mode(0); return m == "read-only" })
	for _, tc := range caches {
		waitUntil(t, 60*time.Second, tc.Mode().String()+" cache on the read-only server", func() bool { return tc.c.ReadOnly() })
		waitUntil(t, 30*time.Second, tc.Mode().String()+" cache read again there", func() bool { return tc.Stale() && has(tc, "/ro/a") && has(tc, "/ro/b") })
	}
	// Such a session reads but cannot write.
	ro := caches[0].c
	roID := ro.SessionID()
	if data, _, err := ro.Get(ctx, "/ro/a"); err != nil || string(data) != "/ro/a" {
		t.Fatalf("read on the read-only server: %q, %v", data, err)
	}
	if _, err := ro.Create(ctx, "/ro/x", nil, Persistent, nil); !errors.Is(err, wire.ErrNotReadOnly) {
		t.Fatalf("write on the read-only server: %v, want a read-only refusal", err)
	}

	for _, i := range []int{1, 2} {
		if err := e.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.WaitServing(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	w, err = Connect(ctx, Config{Servers: connect}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Create(ctx, "/ro/c", []byte("/ro/c"), Persistent, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range caches {
		waitUntil(t, 90*time.Second, tc.Mode().String()+" cache fresh with /ro/c", func() bool { return !tc.Stale() && has(tc, "/ro/c") })
	}
	// The read-only server's own session stays behind: no other server
	// knows it. The new one writes.
	if ro.SessionID() == roID {
		t.Error("the read-only server's own session was kept")
	}
	if _, err := ro.Create(ctx, "/ro/d", nil, Persistent, nil); err != nil {
		t.Errorf("write after the quorum came back: %v", err)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}
