package wire

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseConnectString(t *testing.T) {
	for _, tc := range []struct {
		in      string
		servers []string
		chroot  string
		bad     bool
	}{
		{in: "zk1:2181", servers: []string{"zk1:2181"}},
		{in: " zk1:2181, zk2 ,[::1]:2182,::1/kafka/prod", servers: []string{"zk1:2181", "zk2:2181", "[::1]:2182", "[::1]:2181"}, chroot: "/kafka/prod"},
		{in: "zk1/", servers: []string{"zk1:2181"}},
		{in: "", bad: true},
		{in: "/kafka", bad: true},
		{in: "zk1:0", bad: true},
		{in: "zk1:http", bad: true},
		{in: ":2181", bad: true},
		{in: "zk1:2181/kafka/", bad: true},
		{in: "zk1:2181/a//b", bad: true},
		{in: "zk1:2181/a/../b", bad: true},
		{in: "a:b:c", bad: true},
	} {
		servers, chroot, err := ParseConnectString(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: parsed as %q %q", tc.in, servers, chroot)
			}
			continue
		}
		if err != nil || !slices.Equal(servers, tc.servers) || chroot != tc.chroot {
			t.Errorf("%q = %q %q %v, want %q %q", tc.in, servers, chroot, err, tc.servers, tc.chroot)
		}
	}
}

func TestChrootPaths(t *testing.T) {
	c := chroot("/kafka")
	for client, server := range map[string]string{"/": "/kafka", "/a": "/kafka/a", "/a/b": "/kafka/a/b"} {
		if got := c.server(client); got != server {
			t.Errorf("server(%q) = %q, want %q", client, got, server)
		}
		if got := c.client(server); got != client {
			t.Errorf("client(%q) = %q, want %q", server, got, client)
		}
	}
	if got := c.client("/kafka2/a"); got != "/kafka2/a" {
		t.Errorf("client of a path outside = %q", got)
	}
	if c.within("/kafka2") || !c.within("/kafka") || !c.within("/kafka/x") {
		t.Error("within is wrong")
	}
	if chroot("").server("/a") != "/a" || chroot("").client("/a") != "/a" {
		t.Error("no chroot changed a path")
	}
}

// TestSessionChroot runs a Session from a connect string with a host name
// and a chroot: every path sent is under the chroot, every path received
// (created, sequential, multi results, sync, ephemerals, events of one-shot
// and persistent recursive watches, the chroot's own node as "/") comes
// back without it, also after a reconnect, and each dial gets the name.
func TestSessionChroot(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	p := proxy(t)
	raw := dial(t, Config{})
	root := testRoot(t, raw)
	_, port, _ := net.SplitHostPort(p.Addr())
	servers, ch, err := ParseConnectString("localhost:" + port + root)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var dialed []string
	var d net.Dialer
	s, err := NewSession(ctx, SessionConfig{
		Servers: servers,
		Chroot:  ch,
		Conn: Config{SessionTimeout: 20 * time.Second, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			mu.Unlock()
			return d.DialContext(ctx, network, addr)
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := s.Events()
	wantState(t, events, StateSyncConnected)

	if got, _, err := s.Create(ctx, "/a", []byte("1"), nil, Persistent); err != nil || got != "/a" {
		t.Fatalf("create /a = %q, %v", got, err)
	}
	if data, _, err := raw.Get(ctx, root+"/a", false); err != nil || string(data) != "1" {
		t.Fatalf("the server's %s/a = %q, %v", root, data, err)
	}
	if got, _, err := s.Create(ctx, "/seq-", nil, nil, PersistentSequential); err != nil || !strings.HasPrefix(got, "/seq-") {
		t.Errorf("sequential create = %q, %v", got, err)
	}
	if kids, _, err := s.Children(ctx, "/", false); err != nil || len(kids) != 2 {
		t.Errorf("children of / = %q, %v", kids, err)
	}
	if _, ok, err := s.Exists(ctx, "/a", false); !ok || err != nil {
		t.Errorf("exists /a = %v, %v", ok, err)
	}
	if got, err := s.Sync(ctx, "/a"); err != nil || got != "/a" {
		t.Errorf("sync = %q, %v", got, err)
	}
	res, err := s.Multi(ctx, CreateOp("/m", nil, nil, Persistent), SetOp("/a", []byte("2"), -1), CheckOp("/", -1))
	if err != nil || len(res) != 3 || res[0].Path != "/m" {
		t.Errorf("multi = %+v, %v", res, err)
	}
	rr, err := s.MultiRead(ctx, GetDataOp("/a"), GetChildrenOp("/"))
	if err != nil || string(rr[0].Data) != "2" || len(rr[1].Children) != 3 {
		t.Errorf("multiRead = %+v, %v", rr, err)
	}

	// Ephemerals: the chroot's own, not those of a sibling sharing its
	// name's start (made through the raw connection, which has no chroot).
	if _, _, err := s.Create(ctx, "/e", nil, nil, Ephemeral); err != nil {
		t.Fatal(err)
	}
	sc, err := s.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sc.Create(ctx, root+"x", nil, nil, Ephemeral); err != nil {
		t.Fatal(err)
	}
	if eph, err := s.GetEphemerals(ctx, "/"); err != nil || !slices.Equal(eph, []string{"/e"}) {
		t.Errorf("ephemerals = %q, %v", eph, err)
	}

	// Events: a one-shot data watch, a persistent recursive watch on "/".
	if _, _, err := s.Get(ctx, "/a", true); err != nil {
		t.Fatal(err)
	}
	if err := s.AddWatch(ctx, "/", true); err != nil {
		t.Fatal(err)
	}
	raw.Set(ctx, root+"/a", []byte("3"), -1)
	// One event: the server sends one per connection and change, however
	// many of its watches the change fires.
	if ev := nextEvent(t, events, 10*time.Second); ev.Type != EventNodeDataChanged || ev.Path != "/a" {
		t.Errorf("event %v %q, want data_changed /a", ev.Type, ev.Path)
	}
	if _, err := raw.Set(ctx, root, []byte("r"), -1); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events, 10*time.Second); ev.Type != EventNodeDataChanged || ev.Path != "/" {
		t.Errorf("event %v %q, want data_changed /", ev.Type, ev.Path)
	}

	// After a reconnect the watch is set again at the server's path.
	p.Cut()
	wantState(t, events, StateDisconnected)
	p.Resume()
	wantState(t, events, StateSyncConnected)
	raw.Create(ctx, root+"/c", nil, nil, Persistent)
	if ev := nextEvent(t, events, 10*time.Second); ev.Type != EventNodeCreated || ev.Path != "/c" {
		t.Errorf("event after the reconnect %v %q, want created /c", ev.Type, ev.Path)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) < 2 || slices.ContainsFunc(dialed, func(a string) bool { return a != "localhost:"+port }) {
		t.Errorf("dialed %q, want localhost:%s every time", dialed, port)
	}
}
