package wire

import (
	"context"
	"testing"
	"time"
)

// Servers before 3.9 (ZOOKEEPER-4466) keep one watch mode per path and
// session: these tests set one-shot watches on the very path of a
// persistent recursive watch of the same session, in both orders and
// across a reconnect, and check that both kinds keep working.

func newTestSession(t *testing.T, servers ...string) *Session {
	t.Helper()
	needEnsemble(t)
	if len(servers) == 0 {
		servers = []string{ensemble.Servers[0].ClientAddr}
	}
	s, err := NewSession(ctxT(t, 10*time.Second), SessionConfig{Servers: servers, Conn: Config{SessionTimeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// wantEvents reads the next events, which must be want in order (state
// changes in between are skipped), then checks that nothing else comes
// for a moment.
func wantEvents(t *testing.T, events <-chan Event, want ...evKey) {
	t.Helper()
	for _, w := range want {
		var ev Event
		for ev.Type == 0 || ev.Type == EventNone {
			var ok bool
			select {
			case ev, ok = <-events:
				if !ok {
					t.Fatalf("events closed, want %v %s", w.Type, w.Path)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no event after 5s, want %v %s", w.Type, w.Path)
			}
		}
		if ev.Type != w.Type || ev.Path != w.Path {
			t.Fatalf("event %v %s, want %v %s", ev.Type, ev.Path, w.Type, w.Path)
		}
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %v %s", ev.Type, ev.Path)
	case <-time.After(300 * time.Millisecond):
	}
}

// recorded says which one-shot watches the session keeps for path.
func recorded(s *Session, path string) []watchKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []watchKind
	for _, k := range []watchKind{watchData, watchExist, watchChild} {
		if _, ok := s.watches[k][path]; ok {
			out = append(out, k)
		}
	}
	return out
}

// TestOneShotBesideRecursiveWatch: a one-shot data or exists watch on the
// path of the session's persistent recursive watch fires once, and the
// recursive watch goes on delivering the subtree's changes after it (on
// 3.8 the one-shot took the path's mode and, once fired, the recursive
// watch was gone).
func TestOneShotBesideRecursiveWatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exists  bool // the node is there before
		oneShot func(ctx context.Context, s *Session, p string) error
	}{
		{"get", true, func(ctx context.Context, s *Session, p string) error { _, _, err := s.Get(ctx, p, true); return err }},
		{"exists", true, func(ctx context.Context, s *Session, p string) error { _, _, err := s.Exists(ctx, p, true); return err }},
		{"exists of a missing node", false, func(ctx context.Context, s *Session, p string) error {
			_, _, err := s.Exists(ctx, p, true)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			s := newTestSession(t)
			events := s.Events()
			wantState(t, events, StateSyncConnected)
			c := dial(t, Config{})
			x := testRoot(t, c) + "/x"
			if tc.exists {
				c.Create(ctx, x, nil, nil, Persistent)
			}
			if err := s.AddWatch(ctx, x, true); err != nil {
				t.Fatal(err)
			}
			if err := tc.oneShot(ctx, s, x); err != nil {
				t.Fatal(err)
			}
			if len(recorded(s, x)) != 1 {
				t.Fatalf("one-shot watches recorded on %s: %v, want one", x, recorded(s, x))
			}
			if tc.exists {
				c.Set(ctx, x, []byte("1"), -1)
				wantEvents(t, events, evKey{EventNodeDataChanged, x})
			} else {
				c.Create(ctx, x, nil, nil, Persistent)
				wantEvents(t, events, evKey{EventNodeCreated, x})
			}
			if k := recorded(s, x); len(k) != 0 {
				t.Errorf("one-shot watches still recorded on %s after firing: %v", x, k)
			}
			c.Create(ctx, x+"/a", nil, nil, Persistent)
			c.Set(ctx, x+"/a", []byte("2"), -1)
			c.Delete(ctx, x+"/a", -1)
			c.Set(ctx, x, []byte("3"), -1)
			wantEvents(t, events, evKey{EventNodeCreated, x + "/a"}, evKey{EventNodeDataChanged, x + "/a"},
				evKey{EventNodeDeleted, x + "/a"}, evKey{EventNodeDataChanged, x})
		})
	}
}

// TestChildWatchBesideRecursiveWatch: a one-shot children watch on the
// path of the session's persistent recursive watch fires once, whichever
// came first (on 3.8 a recursive watch added over a pending children
// watch took its mode, and a recursive watch gets no children events).
func TestChildWatchBesideRecursiveWatch(t *testing.T) {
	for _, recursiveFirst := range []bool{true, false} {
		name := "children watch first"
		if recursiveFirst {
			name = "recursive watch first"
		}
		t.Run(name, func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			s := newTestSession(t)
			events := s.Events()
			wantState(t, events, StateSyncConnected)
			c := dial(t, Config{})
			x := testRoot(t, c) + "/x"
			c.Create(ctx, x, nil, nil, Persistent)
			if recursiveFirst {
				if err := s.AddWatch(ctx, x, true); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := s.Children(ctx, x, true); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Exists(ctx, x, true); err != nil {
				t.Fatal(err)
			}
			if !recursiveFirst {
				if err := s.AddWatch(ctx, x, true); err != nil {
					t.Fatal(err)
				}
			}
			c.Create(ctx, x+"/a", nil, nil, Persistent)
			wantEvents(t, events, evKey{EventNodeCreated, x + "/a"}, evKey{EventNodeChildrenChanged, x})
			c.Set(ctx, x, []byte("1"), -1)
			wantEvents(t, events, evKey{EventNodeDataChanged, x})
			if k := recorded(s, x); len(k) != 0 {
				t.Errorf("one-shot watches still recorded on %s after firing: %v", x, k)
			}
			// Both fired: only the recursive watch's events now.
			c.Create(ctx, x+"/b", nil, nil, Persistent)
			c.Set(ctx, x, []byte("2"), -1)
			wantEvents(t, events, evKey{EventNodeCreated, x + "/b"}, evKey{EventNodeDataChanged, x})
		})
	}
}

// TestOneShotsBesideRecursiveWatchAcrossReconnect: one-shot watches on the
// path of a persistent recursive watch are set again on the next
// connection (setWatches2 applies the persistent ones last: on 3.8 they
// take the path's mode), fire for what they missed, and the recursive
// watch goes on.
func TestOneShotsBesideRecursiveWatchAcrossReconnect(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	p1, p2 := proxy(t), proxy(t)
	s := newTestSession(t, p1.Addr(), p2.Addr())
	events := s.Events()
	wantState(t, events, StateSyncConnected)
	c := dial(t, Config{})
	x := testRoot(t, c) + "/x"
	c.Create(ctx, x, nil, nil, Persistent)
	if err := s.AddWatch(ctx, x, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, x, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Children(ctx, x, true); err != nil {
		t.Fatal(err)
	}

	p2.Stall()
	p1.Cut()
	wantState(t, events, StateDisconnected)
	c.Set(ctx, x, []byte("missed"), -1)
	p2.Resume()
	wantState(t, events, StateSyncConnected)
	wantEvents(t, events, evKey{EventNodeDataChanged, x}) // the data watch, set again
	c.Create(ctx, x+"/a", nil, nil, Persistent)
	wantEvents(t, events, evKey{EventNodeCreated, x + "/a"}, evKey{EventNodeChildrenChanged, x})
	if k := recorded(s, x); len(k) != 0 {
		t.Errorf("one-shot watches still recorded on %s after firing: %v", x, k)
	}
	c.Set(ctx, x, []byte("after"), -1)
	c.Create(ctx, x+"/a/deep", nil, nil, Persistent)
	wantEvents(t, events, evKey{EventNodeDataChanged, x}, evKey{EventNodeCreated, x + "/a/deep"})
}
