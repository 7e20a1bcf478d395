package wire

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

func proxy(t *testing.T) *zktest.Proxy {
	t.Helper()
	needEnsemble(t)
	p, err := zktest.NewProxy(ensemble.Servers[0].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func wantState(t *testing.T, events <-chan Event, want State) Event {
	t.Helper()
	ev := nextEvent(t, events, 15*time.Second)
	if ev.Type != EventNone || ev.State != want {
		t.Fatalf("event = %v %v %s (%v), want state %v", ev.Type, ev.State, ev.Path, ev.Err, want)
	}
	return ev
}

// TestSessionReconnect cuts the session's connection while a request is in
// flight, keeps the other server silent while things change, then lets it
// answer: the session moves to it with its id, credentials, ephemerals and
// watches (the one-shot watch fires for the change it missed, the
// persistent recursive one goes on), and a request made while no
// connection was up waits and succeeds.
func TestSessionReconnect(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	p1, p2 := proxy(t), proxy(t)
	s, err := NewSession(ctx, SessionConfig{
		Servers: []string{p1.Addr(), p2.Addr()},
		Conn:    Config{SessionTimeout: 20 * time.Second},
		Auth:    []Auth{{Scheme: "digest", Data: []byte("bob:bobsecret")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := s.Events()
	wantState(t, events, StateSyncConnected)
	id := s.SessionID()

	c := dial(t, Config{})
	root := testRoot(t, c)
	c.Create(ctx, root+"/d", nil, nil, Persistent)
	c.Create(ctx, root+"/tree", nil, nil, Persistent)
	creatorOnly := []ACL{{Perms: 0x1f, ID: ID{Scheme: "auth"}}}
	if _, _, err := s.Create(ctx, root+"/private", []byte("p"), creatorOnly, Persistent); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, root+"/eph", nil, nil, Ephemeral); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, root+"/d", true); err != nil {
		t.Fatal(err)
	}
	if err := s.AddWatch(ctx, root+"/tree", true); err != nil {
		t.Fatal(err)
	}

	// A request in flight when the connection goes: ErrConnectionLoss.
	p1.Stall()
	p2.Stall()
	inFlight := make(chan error, 1)
	go func() { _, _, err := s.Get(ctx, root, false); inFlight <- err }()
	time.Sleep(100 * time.Millisecond)
	p1.Cut()
	if err := <-inFlight; !errors.Is(err, ErrConnectionLoss) {
		t.Errorf("request in flight at the cut: %v, want ErrConnectionLoss", err)
	}
	wantState(t, events, StateDisconnected)

	// While no server answers: a request waits; changes happen.
	waiting := make(chan error, 1)
	go func() { _, _, err := s.Get(ctx, root+"/private", false); waiting <- err }()
	c.Set(ctx, root+"/d", []byte("changed"), -1)
	c.Create(ctx, root+"/tree/missed", nil, nil, Persistent)
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-waiting:
		t.Fatalf("a request returned without a connection: %v", err)
	default:
	}
	p2.Resume()

	wantState(t, events, StateSyncConnected)
	if err := <-waiting; err != nil {
		t.Errorf("waiting request after the reconnect (auth re-sent?): %v", err)
	}
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != EventNodeDataChanged || ev.Path != root+"/d" {
		t.Errorf("event = %v %s, want the missed data change of %s/d", ev.Type, ev.Path, root)
	}
	c.Create(ctx, root+"/tree/after", nil, nil, Persistent)
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != EventNodeCreated || ev.Path != root+"/tree/after" {
		t.Errorf("event = %v %s, want created %s/tree/after", ev.Type, ev.Path, root)
	}
	if s.SessionID() != id {
		t.Errorf("session 0x%x after the reconnect, want 0x%x", s.SessionID(), id)
	}
	eph, err := s.GetEphemerals(ctx, root)
	if err != nil || !slices.Equal(eph, []string{root + "/eph"}) {
		t.Errorf("ephemerals after the reconnect = %v %v", eph, err)
	}
	// The one-shot watch fired: it is not set again by a second reconnect.
	p2.Cut()
	p1.Resume()
	wantState(t, events, StateDisconnected)
	wantState(t, events, StateSyncConnected)
	c.Set(ctx, root+"/d", []byte("again"), -1)
	c.Create(ctx, root+"/tree/third", nil, nil, Persistent)
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != EventNodeCreated || ev.Path != root+"/tree/third" {
		t.Errorf("event = %v %s, want only the recursive watch's created %s/tree/third", ev.Type, ev.Path, root)
	}

	if err := s.Close(); err != nil {
		t.Error(err)
	}
	wantState(t, events, StateClosed)
	if _, ok := <-events; ok {
		t.Error("events not closed after Closed")
	}
	if _, _, err := s.Get(ctx, "/", false); !errors.Is(err, ErrClosing) {
		t.Errorf("get after close: %v", err)
	}
	if _, ok, _ := c.Exists(ctx, root+"/eph", false); ok {
		t.Error("ephemeral still there after close")
	}
}

// TestSessionExpiry keeps the only server silent past the session timeout:
// the next connection learns the session expired; the session stays
// expired and its ephemerals are gone.
func TestSessionExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 8 s")
	}
	ctx := ctxT(t, 60*time.Second)
	p := proxy(t)
	s, err := NewSession(ctx, SessionConfig{Servers: []string{p.Addr()}, Conn: Config{SessionTimeout: 4 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := s.Events()
	wantState(t, events, StateSyncConnected)
	c := dial(t, Config{})
	root := testRoot(t, c)
	if _, _, err := s.Create(ctx, root+"/eph", nil, nil, Ephemeral); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	wantState(t, events, StateDisconnected) // 2/3 of 4 s without a byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, ok, _ := c.Exists(ctx, root+"/eph", false); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not expire the session")
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Resume()
	ev := wantState(t, events, StateExpired)
	if !errors.Is(ev.Err, ErrSessionExpired) {
		t.Errorf("expiry event error = %v", ev.Err)
	}
	if _, ok := <-events; ok {
		t.Error("events not closed after Expired")
	}
	if _, _, err := s.Get(ctx, "/", false); !errors.Is(err, ErrSessionExpired) {
		t.Errorf("get on an expired session: %v, want ErrSessionExpired", err)
	}
}

// TestSessionRequestAfterLoss: a request made right after the session's
// connection is known dead (its Done is closed) waits for the next
// connection and succeeds; it is not sent on the dead one to fail with a
// connection loss. The window was the time the session took to notice,
// so the drop is repeated many times.
func TestSessionRequestAfterLoss(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	p := proxy(t)
	s, err := NewSession(ctx, SessionConfig{Servers: []string{p.Addr()}, Conn: Config{SessionTimeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	root := testRoot(t, dial(t, Config{}))
	id := s.SessionID()
	const drops = 100
	failed := 0
	for i := range drops {
		c, err := s.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.Drop()
		<-c.Done()
		if _, _, err := s.Get(ctx, root, false); err != nil {
			if failed == 0 {
				t.Errorf("drop %d: get at once after the loss: %v, want it to wait for the next connection", i, err)
			}
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests made after a loss failed", failed, drops)
	}
	if s.SessionID() != id {
		t.Error("a new session: the old one should have been kept")
	}
}
