package wire

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk/jute"
	"github.com/zkprom/zkprom/internal/zktest"
)

// TestReadOnlyMode cuts a server off from its quorum (the other two
// stopped; read-only mode and local sessions on: a 3.8 server in
// read-only mode takes no global session, old or new). A tree cache that
// may read from a read-only server keeps its mirror, marked stale, and
// after its session's timeout reads the tree again on a session of the
// read-only server's; such a session reads but cannot write. When the
// quorum is back, both move to a server that has it (isro), on new
// sessions (the read-only server's are its own), and the cache is fresh.
func TestReadOnlyMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node ensemble")
	}
	e, err := zktest.StartEnsemble(zktest.Options{Servers: 3, ReadOnlyMode: true, Extra: []string{"localSessionsEnabled=true"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var servers []string
	for _, s := range e.Servers {
		servers = append(servers, s.ClientAddr)
	}
	ctx := ctxT(t, 4*time.Minute)
	w, err := Dial(ctx, servers[0], Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/ro", "/ro/a", "/ro/b"} {
		if _, _, err := w.Create(ctx, p, []byte(p), nil, Persistent); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	roConfig := SessionConfig{Servers: servers, Conn: Config{CanBeReadOnly: true, SessionTimeout: 4 * time.Second}}
	tc := NewTreeCache(CacheConfig{Root: "/ro", Session: roConfig})
	f := follow(tc)
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tc.Run(cctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-tc.Synced():
	case <-time.After(30 * time.Second):
		t.Fatal("not synced")
	}
	want := snapshotMap(tc)
	if len(want) != 3 || tc.Stale() {
		t.Fatalf("before the partition: %d nodes, stale %v", len(want), tc.Stale())
	}

	// Server 1 alone: read-only.
	for _, i := range []int{1, 2} {
		if err := e.Stop(i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "server 1 in read-only mode", func() bool { m, _ := e.Mode(0); return m == "read-only" })
	waitFor(t, 30*time.Second, "the cache stale", tc.Stale)
	waitFor(t, 60*time.Second, "the cache read again from the read-only server", func() bool { return tc.Stats().FullReads >= 2 })
	if d := diffMaps(want, snapshotMap(tc)); d != "[]" || !tc.Stale() {
		t.Fatalf("cache on the read-only server: %s, stale %v", d, tc.Stale())
	}
	if d := diffMaps(want, f.snapshot()); d != "[]" {
		t.Fatalf("events on the read-only server: %s", d)
	}
	s, err := NewSession(ctx, roConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := s.Events()
	wantState(t, events, StateConnectedReadOnly)
	roID := s.SessionID()
	if data, _, err := s.Get(ctx, "/ro/a", false); err != nil || string(data) != "/ro/a" {
		t.Fatalf("read on the read-only server: %q, %v", data, err)
	}
	if _, _, err := s.Create(ctx, "/ro/c", nil, nil, Persistent); !errors.Is(err, ErrNotReadOnly) {
		t.Fatalf("write on the read-only server: %v, want ErrNotReadOnly", err)
	}

	// The quorum is back.
	for _, i := range []int{1, 2} {
		if err := e.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	for {
		ev := nextEvent(t, events, 90*time.Second)
		if ev.Type == EventNone && ev.State == StateSyncConnected {
			break
		}
	}
	if s.SessionID() == roID {
		t.Error("the read-only server's own session was kept: no other server knows it")
	}
	if _, _, err := s.Create(ctx, "/ro/c", []byte("/ro/c"), nil, Persistent); err != nil {
		t.Fatalf("write after the quorum came back: %v", err)
	}
	waitFor(t, 60*time.Second, "the cache fresh with /ro/c", func() bool { return !tc.Stale() && snapshotMap(tc)["/ro/c"] == "/ro/c" })
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

// fakeQuorumServer answers isro with rw and takes sessions read-write
// (it answers nothing after the handshake); asked gets the session id of
// each connect request.
func fakeQuorumServer(t *testing.T, asked chan<- int64) string {
	t.Helper()
	return zktest.Serve(t, func(nc net.Conn) {
		defer nc.Close()
		r := bufio.NewReader(nc)
		head, err := r.Peek(4)
		if err != nil {
			return
		}
		if string(head) == "isro" {
			nc.Write([]byte("rw"))
			return
		}
		f, err := readFrame(r, DefaultMaxBuffer)
		var req jute.ConnectRequest
		if err != nil || jute.Decode(f, &req) != nil {
			return
		}
		asked <- req.SessionID
		resp := goodResp
		if err := writeFrame(nc, nil, &resp); err != nil {
			return
		}
		io.Copy(io.Discard, r)
	})
}

// TestSessionLeavesReadOnlyServer: a session on a read-only server asks
// the others whether they have a quorum (isro) and moves to the first
// that has; the read-only server's own session id is not taken along.
func TestSessionLeavesReadOnlyServer(t *testing.T) {
	ro := goodResp
	ro.ReadOnly, ro.SessionID = true, 0x77
	roAddr := fakeServer(t, ro, nil, func(nc net.Conn, r *bufio.Reader) { io.Copy(io.Discard, r) })
	asked := make(chan int64, 1)
	rwAddr := fakeQuorumServer(t, asked)
	ctx := ctxT(t, 30*time.Second)
	s, err := NewSession(ctx, SessionConfig{Servers: []string{roAddr, rwAddr}, Conn: Config{CanBeReadOnly: true, SessionTimeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := s.Events()
	wantState(t, events, StateConnectedReadOnly)
	if !s.ReadOnly() {
		t.Error("ReadOnly() false on a read-only server")
	}
	wantState(t, events, StateDisconnected)
	wantState(t, events, StateSyncConnected)
	if id := <-asked; id != 0 {
		t.Errorf("asked the quorum server for session 0x%x, the read-only server's own: want a new one", id)
	}
	if s.ReadOnly() || s.SessionID() != goodResp.SessionID {
		t.Errorf("after the move: read-only %v, session 0x%x, want the quorum server's 0x%x", s.ReadOnly(), s.SessionID(), goodResp.SessionID)
	}
}
