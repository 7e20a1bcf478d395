package wire

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type evKey struct {
	Type EventType
	Path string
}

func TestOneShotWatches(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	w := dial(t, Config{})
	events := w.Events()
	c := dial(t, Config{})
	root := testRoot(t, c)

	if _, ok, err := w.Exists(ctx, root+"/n", true); ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, _, err := w.Children(ctx, root, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Create(ctx, root+"/n", []byte("a"), nil, Persistent); err != nil {
		t.Fatal(err)
	}
	got := map[evKey]bool{}
	for range 2 {
		ev := nextEvent(t, events, 5*time.Second)
		if ev.State != StateSyncConnected {
			t.Errorf("event state %s", ev.State)
		}
		got[evKey{ev.Type, ev.Path}] = true
	}
	for _, want := range []evKey{{EventNodeCreated, root + "/n"}, {EventNodeChildrenChanged, root}} {
		if !got[want] {
			t.Errorf("missing event %v (got %v)", want, got)
		}
	}
	if _, _, err := w.Get(ctx, root+"/n", true); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, root+"/n", []byte("b"), -1)
	c.Set(ctx, root+"/n", []byte("c"), -1) // the watch fired already: no second event
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != EventNodeDataChanged || ev.Path != root+"/n" {
		t.Errorf("event = %+v, want data change of %s/n", ev, root)
	}
	select {
	case ev := <-events:
		t.Errorf("a one-shot watch fired twice: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	w.Close()
	last := nextEvent(t, events, 5*time.Second)
	if last.Type != EventNone || last.State != StateClosed || !errors.Is(last.Err, ErrConnClosed) {
		t.Errorf("last event = %+v, want none/closed", last)
	}
	if _, ok := <-events; ok {
		t.Error("event channel not closed after the last event")
	}
}

// TestPersistentRecursiveWatchOrder makes many changes under a watched root
// from another session while nobody reads the events, then checks that
// every one arrives, in the order the server applied them (czxid order).
func TestPersistentRecursiveWatchOrder(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	w := dial(t, Config{})
	c := dial(t, Config{})
	root := testRoot(t, c)
	if err := w.AddWatch(ctx, root, true); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, _, err := c.Create(ctx, fmt.Sprintf("%s/p%02d", root, i%20), nil, nil, Persistent)
			if err != nil && !errors.Is(err, ErrNodeExists) {
				errs <- err
				return
			}
			_, _, err = c.Create(ctx, fmt.Sprintf("%s/p%02d/m%05d", root, i%20, i), nil, nil, Persistent)
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A set and a delete below, then the order must hold across types.
	last := root + "/p00/m00000"
	if _, err := c.Set(ctx, last, []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, last, -1); err != nil {
		t.Fatal(err)
	}

	events := w.Events()
	var prev int64
	created := 0
	for created < n+20 {
		ev := nextEvent(t, events, 10*time.Second)
		if ev.Type != EventNodeCreated {
			t.Fatalf("event %d: %+v, want only creations first (no children events on a recursive watch)", created, ev)
		}
		_, st, err := c.Get(ctx, ev.Path, false)
		if err != nil && ev.Path != last {
			t.Fatal(err)
		}
		if err == nil {
			if st.Czxid <= prev {
				t.Fatalf("event for %s (czxid %d) after one with czxid %d: out of order", ev.Path, st.Czxid, prev)
			}
			prev = st.Czxid
		}
		created++
	}
	for _, want := range []evKey{{EventNodeDataChanged, last}, {EventNodeDeleted, last}} {
		if ev := nextEvent(t, events, 5*time.Second); ev.Type != want.Type || ev.Path != want.Path {
			t.Errorf("event = %v %s, want %v", ev.Type, ev.Path, want)
		}
	}
	if s := w.Stats(); s.Events != n+22 {
		t.Errorf("stats: %d events, want %d", s.Events, n+22)
	}
}

func TestPersistentWatchAndRemove(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	w := dial(t, Config{})
	events := w.Events()
	c := dial(t, Config{})
	root := testRoot(t, c)
	if err := w.AddWatch(ctx, root, false); err != nil {
		t.Fatal(err)
	}
	c.Create(ctx, root+"/a", nil, nil, Persistent)
	c.Create(ctx, root+"/a/deep", nil, nil, Persistent) // below: not seen by a non-recursive watch
	c.Set(ctx, root, []byte("1"), -1)
	c.Set(ctx, root, []byte("2"), -1) // a persistent watch stays after firing
	for _, want := range []evKey{{EventNodeChildrenChanged, root}, {EventNodeDataChanged, root}, {EventNodeDataChanged, root}} {
		if ev := nextEvent(t, events, 5*time.Second); ev.Type != want.Type || ev.Path != want.Path {
			t.Errorf("event = %v %s, want %v", ev.Type, ev.Path, want)
		}
	}
	if err := w.RemoveWatches(ctx, root, WatcherAny); err != nil {
		t.Fatal(err)
	}
	// The server sends no event for a removed watch (Java's client makes
	// one up itself); nothing comes any more.
	c.Set(ctx, root, []byte("3"), -1)
	select {
	case ev := <-events:
		t.Errorf("event after the watch was removed: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	if err := w.RemoveWatches(ctx, root, WatcherAny); !errors.Is(err, ErrNoWatcher) {
		t.Errorf("removing a watch twice: %v, want ErrNoWatcher", err)
	}
	// A recursive watch goes the same way (3.8 knows no persistent watcher
	// types in removeWatches: it answers 4 and 5 with a marshalling error).
	if err := w.AddWatch(ctx, root, true); err != nil {
		t.Fatal(err)
	}
	if err := w.RemoveWatches(ctx, root, WatcherAny); err != nil {
		t.Errorf("remove a recursive watch: %v", err)
	}
	c.Create(ctx, root+"/b", nil, nil, Persistent)
	select {
	case ev := <-events:
		t.Errorf("event after the recursive watch was removed: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestSetWatchesOnResumedSession: the session's watches, set again on a new
// connection with the last zxid seen, fire for what changed while no
// connection was up, and the persistent ones keep working.
func TestSetWatchesOnResumedSession(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	c := dial(t, Config{})
	root := testRoot(t, c)
	c.Create(ctx, root+"/d", nil, nil, Persistent)
	c.Create(ctx, root+"/tree", nil, nil, Persistent)
	c.Create(ctx, root+"/same", nil, nil, Persistent)

	a := dial(t, Config{SessionTimeout: 10 * time.Second})
	if _, _, err := a.Get(ctx, root+"/d", true); err != nil {
		t.Fatal(err)
	}
	a.Get(ctx, root+"/same", true)
	a.Exists(ctx, root+"/e", true)
	a.Children(ctx, root, true)
	if err := a.AddWatch(ctx, root+"/tree", true); err != nil {
		t.Fatal(err)
	}
	zxid := a.LastZxid()
	a.Disconnect()

	c.Set(ctx, root+"/d", []byte("new"), -1)
	c.Create(ctx, root+"/e", nil, nil, Persistent)
	c.Create(ctx, root+"/tree/missed", nil, nil, Persistent)

	b := dial(t, Config{SessionID: a.SessionID(), Password: a.Password(), LastZxid: zxid})
	events := b.Events()
	err := b.SetWatches(ctx, zxid, Watches{
		Data:                []string{root + "/d", root + "/same"},
		Exist:               []string{root + "/e"},
		Child:               []string{root},
		PersistentRecursive: []string{root + "/tree"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[evKey]bool{}
	for range 3 {
		ev := nextEvent(t, events, 5*time.Second)
		got[evKey{ev.Type, ev.Path}] = true
	}
	for _, want := range []evKey{{EventNodeDataChanged, root + "/d"}, {EventNodeCreated, root + "/e"}, {EventNodeChildrenChanged, root}} {
		if !got[want] {
			t.Errorf("missing %v after setWatches (got %v)", want, got)
		}
	}
	// The persistent recursive watch is back (what it missed is not
	// replayed: a cache re-reads after a reconnect); the untouched node's
	// data watch is still armed.
	c.Create(ctx, root+"/tree/after", nil, nil, Persistent)
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != EventNodeCreated || ev.Path != root+"/tree/after" {
		t.Errorf("event = %v %s, want created %s/tree/after", ev.Type, ev.Path, root)
	}
	c.Set(ctx, root+"/same", []byte("x"), -1)
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != EventNodeDataChanged || ev.Path != root+"/same" {
		t.Errorf("event = %v %s, want data change of %s/same", ev.Type, ev.Path, root)
	}
}

func TestSetWatchesSplitsLongLists(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	c := dial(t, Config{})
	root := testRoot(t, c)
	var paths []string
	for i := range 3000 {
		paths = append(paths, fmt.Sprintf("%s/%s-%04d", root, strings.Repeat("n", 80), i)) // ~300 KB of paths
	}
	before := c.Stats().Requests
	if err := c.SetWatches(ctx, c.LastZxid(), Watches{Exist: paths}); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Requests - before; n < 3 {
		t.Errorf("%d setWatches2 packets for ~300 KB of paths, want at least 3 of at most 128 KiB", n)
	}
	events := c.Events()
	c.Create(ctx, paths[2999], nil, nil, Persistent)
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != EventNodeCreated || ev.Path != paths[2999] {
		t.Errorf("event = %+v", ev)
	}
}
