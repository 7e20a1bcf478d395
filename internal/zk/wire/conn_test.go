package wire

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConnectNegotiatesSession(t *testing.T) {
	for _, tc := range []struct {
		ask, want time.Duration
	}{
		{100 * time.Second, 40 * time.Second}, // 20 ticks of 2 s
		{time.Second, 4 * time.Second},        // 2 ticks
		{6 * time.Second, 6 * time.Second},
	} {
		c := dial(t, Config{SessionTimeout: tc.ask})
		if c.SessionID() == 0 {
			t.Error("no session id")
		}
		if len(c.Password()) != 16 {
			t.Errorf("password of %d bytes, want 16", len(c.Password()))
		}
		if got := c.SessionTimeout(); got != tc.want {
			t.Errorf("asked %s: granted %s, want %s", tc.ask, got, tc.want)
		}
		if c.ReadOnly() {
			t.Error("read-only session from a server with a quorum")
		}
	}
}

func TestResumeSessionOnNewConnection(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	a := dial(t, Config{SessionTimeout: 10 * time.Second})
	root := testRoot(t, a)
	if _, _, err := a.Create(ctx, root+"/eph", nil, nil, Ephemeral); err != nil {
		t.Fatal(err)
	}
	zxid := a.LastZxid()
	a.Disconnect()
	if _, _, err := a.Get(ctx, root, false); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("get on a dropped connection: %v, want ErrConnClosed", err)
	}
	b := dial(t, Config{SessionTimeout: 10 * time.Second, SessionID: a.SessionID(), Password: a.Password(), LastZxid: zxid})
	if b.SessionID() != a.SessionID() {
		t.Fatalf("resumed session 0x%x, want 0x%x", b.SessionID(), a.SessionID())
	}
	eph, err := b.GetEphemerals(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(eph, []string{root + "/eph"}) {
		t.Errorf("ephemerals after resuming = %v", eph)
	}
	// Closing the session removes its ephemerals at once.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, Config{})
	if _, ok, err := c.Exists(ctx, root+"/eph", false); err != nil || ok {
		t.Errorf("ephemeral after close: exists=%v err=%v", ok, err)
	}
	// A closed session cannot be resumed.
	_, err = Dial(ctx, ensemble.Servers[0].ClientAddr, Config{SessionID: a.SessionID(), Password: a.Password()})
	if !errors.Is(err, ErrSessionExpired) {
		t.Errorf("resuming a closed session: %v, want ErrSessionExpired", err)
	}
}

func TestOperations(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	c := dial(t, Config{})
	root := testRoot(t, c)

	// create: persistent, sequential, ephemeral, container.
	p, st, err := c.Create(ctx, root+"/a", []byte("one"), nil, Persistent)
	if err != nil || p != root+"/a" || st.Version != 0 || st.DataLength != 3 || st.Czxid == 0 {
		t.Fatalf("create = %q %+v %v", p, st, err)
	}
	if _, _, err := c.Create(ctx, root+"/a", nil, nil, Persistent); !errors.Is(err, ErrNodeExists) {
		t.Errorf("create twice: %v, want ErrNodeExists", err)
	} else if !strings.Contains(err.Error(), root+"/a") {
		t.Errorf("error does not name the path: %v", err)
	}
	s1, _, err := c.Create(ctx, root+"/seq-", nil, nil, PersistentSequential)
	s2, _, err2 := c.Create(ctx, root+"/seq-", nil, nil, EphemeralSequential)
	if err != nil || err2 != nil || s1 != root+"/seq-0000000001" || s2 != root+"/seq-0000000002" {
		t.Errorf("sequential creates = %q %q %v %v", s1, s2, err, err2)
	}
	_, est, err := c.Create(ctx, root+"/eph", nil, nil, Ephemeral)
	if err != nil || est.EphemeralOwner != c.SessionID() {
		t.Errorf("ephemeral: owner 0x%x want 0x%x: %v", est.EphemeralOwner, c.SessionID(), err)
	}
	if _, _, err := c.Create(ctx, root+"/box", nil, nil, Container); err != nil {
		t.Fatalf("container: %v", err)
	}
	if _, _, err := c.Create(ctx, root+"/box/item", nil, nil, Persistent); err != nil {
		t.Fatal(err)
	}

	// getData, exists.
	data, st, err := c.Get(ctx, root+"/a", false)
	if err != nil || string(data) != "one" || st.Version != 0 {
		t.Errorf("get = %q %+v %v", data, st, err)
	}
	if _, _, err := c.Get(ctx, root+"/missing", false); !errors.Is(err, ErrNoNode) {
		t.Errorf("get missing: %v, want ErrNoNode", err)
	}
	if _, ok, err := c.Exists(ctx, root+"/missing", false); ok || err != nil {
		t.Errorf("exists missing = %v %v", ok, err)
	}
	if est, ok, err := c.Exists(ctx, root+"/a", false); !ok || err != nil || est.DataLength != 3 {
		t.Errorf("exists = %+v %v %v", est, ok, err)
	}

	// getChildren2.
	ch, pst, err := c.Children(ctx, root, false)
	slices.Sort(ch)
	if err != nil || !slices.Equal(ch, []string{"a", "box", "eph", "seq-0000000001", "seq-0000000002"}) || pst.NumChildren != 5 {
		t.Errorf("children = %v %+v %v", ch, pst, err)
	}

	// setData with versions.
	st, err = c.Set(ctx, root+"/a", []byte("two"), 0)
	if err != nil || st.Version != 1 {
		t.Errorf("set = %+v %v", st, err)
	}
	if _, err := c.Set(ctx, root+"/a", []byte("x"), 0); !errors.Is(err, ErrBadVersion) {
		t.Errorf("set at an old version: %v, want ErrBadVersion", err)
	}

	// delete with versions; a node with children.
	if err := c.Delete(ctx, root+"/a", 0); !errors.Is(err, ErrBadVersion) {
		t.Errorf("delete at an old version: %v", err)
	}
	if err := c.Delete(ctx, root+"/a", 1); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := c.Delete(ctx, root+"/box", -1); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("delete non-empty: %v, want ErrNotEmpty", err)
	}
	// The container goes once its last child does (the server checks
	// containers every minute by default: only the delete is checked here).
	if err := c.Delete(ctx, root+"/box/item", -1); err != nil {
		t.Error(err)
	}

	// sync, getACL, getEphemerals, whoAmI.
	if p, err := c.Sync(ctx, root); err != nil || p != root {
		t.Errorf("sync = %q %v", p, err)
	}
	acl, ast, err := c.GetACL(ctx, root)
	if err != nil || !slices.Equal(acl, WorldAll) || ast.Aversion != 0 {
		t.Errorf("getACL = %+v %+v %v", acl, ast, err)
	}
	eph, err := c.GetEphemerals(ctx, root)
	slices.Sort(eph)
	if err != nil || !slices.Equal(eph, []string{root + "/eph", root + "/seq-0000000002"}) {
		t.Errorf("getEphemerals = %v %v", eph, err)
	}
	who, err := c.WhoAmI(ctx)
	if err != nil || len(who) != 1 || who[0].AuthScheme != "ip" || who[0].User != "127.0.0.1" {
		t.Errorf("whoAmI = %+v %v", who, err)
	}

	// setACL with the ACL version.
	readOnly := []ACL{{Perms: 1, ID: ID{Scheme: "world", ID: "anyone"}}}
	if _, err := c.SetACL(ctx, root+"/eph", readOnly, 5); !errors.Is(err, ErrBadVersion) {
		t.Errorf("setACL at a wrong version: %v, want ErrBadVersion", err)
	}
	if st, err := c.SetACL(ctx, root+"/eph", readOnly, 0); err != nil || st.Aversion != 1 {
		t.Errorf("setACL = %+v %v", st, err)
	}
	if _, err := c.Set(ctx, root+"/eph", []byte("x"), -1); !errors.Is(err, ErrNoAuth) {
		t.Errorf("set on a read-only node: %v, want ErrNoAuth", err)
	}
}

func TestAuthDigest(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	c := dial(t, Config{})
	root := testRoot(t, c)
	if err := c.AddAuth(ctx, "digest", []byte("alice:secret")); err != nil {
		t.Fatal(err)
	}
	who, err := c.WhoAmI(ctx)
	if err != nil || !slices.Contains(who, ClientInfo{AuthScheme: "digest", User: "alice"}) {
		t.Errorf("whoAmI after addAuth = %+v %v", who, err)
	}
	authACL := []ACL{{Perms: 0x1f, ID: ID{Scheme: "auth", ID: ""}}}
	if _, _, err := c.Create(ctx, root+"/private", []byte("x"), authACL, Persistent); err != nil {
		t.Fatal(err)
	}
	acl, _, err := c.GetACL(ctx, root+"/private")
	if err != nil || len(acl) != 1 || acl[0].ID.Scheme != "digest" || !strings.HasPrefix(acl[0].ID.ID, "alice:") {
		t.Errorf("ACL of a node created with auth = %+v %v", acl, err)
	}
	other := dial(t, Config{})
	if _, _, err := other.Get(ctx, root+"/private", false); !errors.Is(err, ErrNoAuth) {
		t.Errorf("get without credentials: %v, want ErrNoAuth", err)
	}
	if err := other.AddAuth(ctx, "digest", []byte("alice:secret")); err != nil {
		t.Fatal(err)
	}
	if data, _, err := other.Get(ctx, root+"/private", false); err != nil || string(data) != "x" {
		t.Errorf("get with credentials = %q %v", data, err)
	}
	// An unknown scheme is refused and the server ends the connection.
	bad := dial(t, Config{})
	err = bad.AddAuth(ctx, "nosuchscheme", []byte("x"))
	if !errors.Is(err, ErrAuthFailed) {
		t.Errorf("unknown scheme: %v, want ErrAuthFailed", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows credentials: %v", err)
	}
	select {
	case <-bad.Done():
	case <-time.After(5 * time.Second):
		t.Error("connection still up after auth failed")
	}
}

func TestMulti(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	c := dial(t, Config{})
	root := testRoot(t, c)
	res, err := c.Multi(ctx,
		CreateOp(root+"/m", []byte("v0"), nil, Persistent),
		CreateOp(root+"/m/s-", nil, nil, PersistentSequential),
		CreateOp(root+"/box", nil, nil, Container),
		SetOp(root+"/m", []byte("v1"), 0),
		CheckOp(root+"/m", 1),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 5 || res[0].Path != root+"/m" || res[1].Path != root+"/m/s-0000000000" || res[2].Path != root+"/box" || res[3].Stat.Version != 1 {
		t.Errorf("results = %+v", res)
	}
	// A failed check: nothing applies, the error names the op.
	res, err = c.Multi(ctx,
		SetOp(root+"/m", []byte("v2"), -1),
		CheckOp(root+"/m", 0),
		DeleteOp(root+"/box", -1),
	)
	if !errors.Is(err, ErrBadVersion) || !strings.Contains(err.Error(), "op 1") {
		t.Errorf("failed multi: %v, want ErrBadVersion naming op 1", err)
	}
	if len(res) != 3 || !errors.Is(res[1].Err, ErrBadVersion) || !errors.Is(res[2].Err, ErrRuntimeInconsistency) {
		t.Errorf("failed multi results = %+v", res)
	}
	if data, st, _ := c.Get(ctx, root+"/m", false); string(data) != "v1" || st.Version != 1 {
		t.Errorf("after a failed multi: %q version %d, want v1 version 1", data, st.Version)
	}
	if _, ok, _ := c.Exists(ctx, root+"/box", false); !ok {
		t.Error("a failed multi deleted a node")
	}
	if _, err := c.Multi(ctx, DeleteOp(root+"/m/s-0000000000", -1), DeleteOp(root+"/m", 1)); err != nil {
		t.Error(err)
	}
}

func TestMultiRead(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	c := dial(t, Config{})
	root := testRoot(t, c)
	for _, n := range []string{"x", "y"} {
		if _, _, err := c.Create(ctx, root+"/"+n, []byte("data-"+n), nil, Persistent); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.MultiRead(ctx, GetDataOp(root+"/x"), GetDataOp(root+"/missing"), GetChildrenOp(root), GetDataOp(root+"/y"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	if string(res[0].Data) != "data-x" || res[0].Stat.DataLength != 6 || res[0].Err != nil {
		t.Errorf("result 0 = %+v", res[0])
	}
	if !errors.Is(res[1].Err, ErrNoNode) {
		t.Errorf("result 1 = %+v, want ErrNoNode", res[1])
	}
	slices.Sort(res[2].Children)
	if !slices.Equal(res[2].Children, []string{"x", "y"}) || res[2].Err != nil {
		t.Errorf("result 2 = %+v", res[2])
	}
	if string(res[3].Data) != "data-y" {
		t.Errorf("result 3 = %+v", res[3])
	}
}

func TestManyInFlight(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	c := dial(t, Config{MaxInFlight: 8})
	root := testRoot(t, c)
	const n = 500
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			p, _, err := c.Create(ctx, root+"/n-", []byte{byte(i)}, nil, PersistentSequential)
			if err == nil {
				var data []byte
				data, _, err = c.Get(ctx, p, false)
				if err == nil && !bytes.Equal(data, []byte{byte(i)}) {
					err = errors.New("reply matched to the wrong request")
				}
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, st, err := c.Children(ctx, root, false); err != nil || st.NumChildren != n {
		t.Errorf("children = %d %v", st.NumChildren, err)
	}
}

func TestPingsKeepSessionAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 6 s")
	}
	ctx := ctxT(t, 20*time.Second)
	c := dial(t, Config{SessionTimeout: 4 * time.Second})
	time.Sleep(6 * time.Second) // 1.5 session timeouts of silence from us
	if p := c.Stats().Pings; p < 3 || p > 6 {
		t.Errorf("%d pings in 6 s with a 4 s session, want about 4 (one per 4/3 s)", p)
	}
	if _, _, err := c.Get(ctx, "/", false); err != nil {
		t.Fatalf("session did not survive idle time: %v", err)
	}
}

func TestContextEndsWait(t *testing.T) {
	c := dial(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.Get(ctx, "/", false); err == nil {
		t.Error("a cancelled context still ran the request")
	}
	// Contexts ending while replies are on their way (run with -race: a
	// late reply must not write into what the caller already returned).
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%30)*50*time.Microsecond)
			defer cancel()
			data, st, err := c.Get(ctx, "/", false)
			if err != nil && (data != nil || st.Czxid != 0) {
				t.Errorf("an error with data: %v", err)
			}
		}()
	}
	wg.Wait()
	// The connection is still usable and every slot came back.
	if _, _, err := c.Get(ctxT(t, 5*time.Second), "/", false); err != nil {
		t.Error(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(c.sem); n != 0 {
		t.Errorf("%d in-flight slots still taken", n)
	}
}
