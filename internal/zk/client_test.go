package zk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

func TestParseConnectString(t *testing.T) {
	for _, tc := range []struct {
		in      string
		servers []string
		chroot  string
		err     string
	}{
		{in: "zk1:2181", servers: []string{"zk1:2181"}},
		{in: "zk1:2181,zk2:2182,[::1]:2183/kafka", servers: []string{"zk1:2181", "zk2:2182", "[::1]:2183"}, chroot: "/kafka"},
		{in: "zk1,zk2/a/b", servers: []string{"zk1:2181", "zk2:2181"}, chroot: "/a/b"},
		{in: "zk1:2181/", servers: []string{"zk1:2181"}},
		{in: "[::1]", servers: []string{"[::1]:2181"}},
		{in: "", err: "empty"},
		{in: "/chroot", err: "names no server"},
		{in: "zk1/a/", err: "ends with /"},
		{in: "zk1/a//b", err: "empty element"},
		{in: "zk1:notaport", err: "no valid port"},
		{in: "zk1:0,zk2:2181", err: "no valid port"},
		{in: "zk1:70000", err: "no valid port"},
		{in: "garbage::", err: "not host:port"},
		{in: "::1", servers: []string{"[::1]:2181"}},
	} {
		cs, err := ParseConnectString(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if strings.Join(cs.Servers, ",") != strings.Join(tc.servers, ",") || cs.Chroot != tc.chroot {
			t.Errorf("%q: got %v %q, want %v %q", tc.in, cs.Servers, cs.Chroot, tc.servers, tc.chroot)
		}
	}
}

// Host names reach the dialer as written, so that every connection attempt
// resolves them again (a replaced server is found under its name).
func TestDialerResolvesNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := Connect(ctx, Config{Servers: "zk-a.invalid:2181,zk-b.invalid:2181"}, testLogger(), nil)
	if err == nil || !strings.Contains(err.Error(), "last attempt zk-") || !strings.Contains(err.Error(), ".invalid") {
		t.Fatalf("connect to unresolvable names: %v, want the name handed to the dialer", err)
	}
}

func TestAuthFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, err string }{
		{"alice:secret\n", ""},
		{"# writers\ndigest:alice:secret\n\nbob:x\n", ""},
		{"alice\n", "want user:password"},
		{"\n# nothing\n", "holds no user:password"},
	} {
		f := filepath.Join(dir, "auth")
		os.WriteFile(f, []byte(tc.content), 0o600)
		_, err := readAuthFile(f)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: error %v, want %q", tc.content, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error prints the secret: %v", err)
		}
	}
	if _, err := readAuthFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing auth file accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Servers: "zk1:2181"}, ""},
		{Config{Servers: "zk1:x"}, "no valid port"},
		{Config{Servers: "zk1:2181", AuthFile: filepath.Join(dir, "missing")}, "read ZooKeeper auth file"},
		{Config{Servers: "zk1:2181", TLS: TLSConfig{CAFile: filepath.Join(dir, "missing-ca.pem")}}, "read CA file"},
		{Config{Servers: "zk1:2181", MaxBuffer: 4 << 20}, ""},
		{Config{Servers: "zk1:2181", MaxBuffer: 1000}, "max buffer of 1000 bytes: want 16384 to 268435456 (--zookeeper.max-buffer"},
		{Config{Servers: "zk1:2181", MaxBuffer: 1 << 30}, "max buffer of 1073741824 bytes"},
		{Config{Servers: "zk1:2181", MaxBuffer: -1}, "max buffer of -1 bytes"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// An unreachable ZooKeeper gives an error that names the cause.
func TestConnectUnreachable(t *testing.T) {
	ports, _ := zktest.FreePorts(1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := Connect(ctx, Config{Servers: fmt.Sprintf("127.0.0.1:%d", ports[0])}, testLogger(), nil)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "--zookeeper.servers") {
		t.Fatalf("unreachable ZooKeeper: %v", err)
	}
}

func TestOperations(t *testing.T) {
	needEnsemble(t)
	c := connect(t, Config{})
	ctx := ctxT(t, 30*time.Second)
	base := "/ops-test"
	if err := c.CreateAll(ctx, base+"/a/b", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, base+"/a/b", nil, Persistent, nil); !errors.Is(err, ErrNodeExists) {
		t.Fatalf("create existing: %v", err)
	}
	st, err := c.Set(ctx, base+"/a/b", []byte("v1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, base+"/a/b", []byte("v2"), 0); !errors.Is(err, ErrBadVersion) {
		t.Fatalf("set with an old version: %v", err)
	}
	data, _, err := c.Get(ctx, base+"/a/b")
	if err != nil || string(data) != "v1" {
		t.Fatalf("get: %q %v", data, err)
	}
	seq, err := c.Create(ctx, base+"/s-", []byte("x"), EphemeralSequential, nil)
	if err != nil || !strings.HasPrefix(seq, base+"/s-") || len(seq) != len(base+"/s-")+10 {
		t.Fatalf("sequential create: %q %v", seq, err)
	}
	if _, err := c.Create(ctx, base+"/container", nil, Container, nil); err != nil {
		t.Fatalf("container: %v", err)
	}
	// Multi: a version check that fails rolls back everything.
	_, err = c.Multi(ctx, CreateOp(base+"/m1", nil, Persistent, nil), CheckOp(base+"/a/b", 0))
	var me *MultiError
	if !errors.As(err, &me) || me.Index != 1 || !errors.Is(err, ErrBadVersion) {
		t.Fatalf("multi with a failing check: %v", err)
	}
	if ok, _, _ := c.Exists(ctx, base+"/m1"); ok {
		t.Fatal("multi applied partly")
	}
	res, err := c.Multi(ctx, CreateOp(base+"/m1", nil, Persistent, nil), CheckOp(base+"/a/b", st.Version), SetOp(base+"/a/b", []byte("v3"), st.Version))
	if err != nil || res[0].Path != base+"/m1" {
		t.Fatalf("multi: %v %v", res, err)
	}
	// Watches.
	_, _, w, err := c.GetW(ctx, base+"/a/b")
	if err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, base+"/a/b", []byte("v4"), -1)
	select {
	case ev := <-w:
		if ev.Type != NodeDataChanged || ev.Path != base+"/a/b" {
			t.Errorf("watch event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("data watch did not fire")
	}
	if err := c.Sync(ctx, base); err != nil {
		t.Fatal(err)
	}
	// A context that ends first wins over a blocked call.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.Get(cctx, base); !errors.Is(err, context.Canceled) {
		t.Errorf("get with a cancelled context: %v", err)
	}
	if _, _, err := c.Get(ctx, "relative"); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("relative path: %v", err)
	}
	if err := c.DeleteAll(ctx, base); err != nil {
		t.Fatal(err)
	}
}

func TestChroot(t *testing.T) {
	needEnsemble(t)
	root := connect(t, Config{})
	ctx := ctxT(t, 30*time.Second)
	if err := root.CreateAll(ctx, "/chroot-test/kafka", nil); err != nil {
		t.Fatal(err)
	}
	c := connect(t, Config{Servers: ensemble.Connect() + "/chroot-test/kafka"})
	p, err := c.Create(ctx, "/brokers", []byte("x"), Persistent, nil)
	if err != nil || p != "/brokers" {
		t.Fatalf("create in chroot: %q %v", p, err)
	}
	if data, _, err := root.Get(ctx, "/chroot-test/kafka/brokers"); err != nil || string(data) != "x" {
		t.Fatalf("node not under the chroot: %q %v", data, err)
	}
	seq, err := c.Create(ctx, "/brokers/id-", nil, EphemeralSequential, nil)
	if err != nil || !strings.HasPrefix(seq, "/brokers/id-") {
		t.Fatalf("sequential path must be chroot-relative: %q %v", seq, err)
	}
	ch, _, w, err := c.ChildrenW(ctx, "/brokers")
	if err != nil || len(ch) != 1 {
		t.Fatalf("children: %v %v", ch, err)
	}
	root.Create(ctx, "/chroot-test/kafka/brokers/other", nil, Persistent, nil)
	select {
	case ev := <-w:
		if ev.Path != "/brokers" {
			t.Errorf("watch path %q is not chroot-relative", ev.Path)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("children watch did not fire")
	}

	_, err = Connect(ctx, Config{Servers: ensemble.Connect() + "/no/such/chroot"}, testLogger(), nil)
	if err == nil || !strings.Contains(err.Error(), "/no/such/chroot does not exist") {
		t.Fatalf("missing chroot: %v", err)
	}
	root.DeleteAll(ctx, "/chroot-test")
}

func TestAuthAndACL(t *testing.T) {
	needEnsemble(t)
	dir := t.TempDir()
	authFile := filepath.Join(dir, "zk-auth")
	os.WriteFile(authFile, []byte("writer:s3cret\n"), 0o600)
	writer := connect(t, Config{AuthFile: authFile})
	anon := connect(t, Config{})
	ctx := ctxT(t, 30*time.Second)

	if _, err := writer.Create(ctx, "/acl-private", []byte("hidden"), Persistent, ACLCreatorOnly()); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Create(ctx, "/acl-shared", []byte("public"), Persistent, ACLCreatorAllWorldRead()); err != nil {
		t.Fatal(err)
	}
	defer writer.Delete(context.Background(), "/acl-private", -1)
	defer writer.Delete(context.Background(), "/acl-shared", -1)

	if data, _, err := writer.Get(ctx, "/acl-private"); err != nil || string(data) != "hidden" {
		t.Fatalf("creator read: %q %v", data, err)
	}
	if data, _, err := anon.Get(ctx, "/acl-shared"); err != nil || string(data) != "public" {
		t.Fatalf("world read: %q %v", data, err)
	}
	_, err := anon.Set(ctx, "/acl-shared", []byte("defaced"), -1)
	if !errors.Is(err, ErrNoAuth) {
		t.Fatalf("anonymous write: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"set /acl-shared", "digest:writer:", "world:anyone:r"} {
		if !strings.Contains(msg, want) {
			t.Errorf("permission error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("permission error prints the password: %q", msg)
	}
	if _, _, err := anon.Get(ctx, "/acl-private"); !errors.Is(err, ErrNoAuth) || !strings.Contains(err.Error(), "/acl-private") {
		t.Fatalf("anonymous read of a private node: %v", err)
	}
	if _, err := anon.Create(ctx, "/acl-shared/child", nil, Persistent, nil); !errors.Is(err, ErrNoAuth) || !strings.Contains(err.Error(), "parent /acl-shared") {
		t.Fatalf("anonymous create under a protected node: %v", err)
	}
	// CreateAll below an open node under a protected one: it must not
	// touch the protected ancestors that exist.
	open := append(ACLCreatorOnly(), ACL{Perms: PermRead | PermCreate, Scheme: "world", ID: "anyone"})
	if _, err := writer.Create(ctx, "/acl-shared/open", nil, Persistent, open); err != nil {
		t.Fatal(err)
	}
	defer writer.DeleteAll(context.Background(), "/acl-shared/open")
	if err := anon.CreateAll(ctx, "/acl-shared/open/group/election", nil); err != nil {
		t.Errorf("anonymous CreateAll below an open node: %v", err)
	}
	if err := anon.CreateAll(ctx, "/acl-shared/open/group/election", nil); err != nil {
		t.Errorf("anonymous CreateAll of an existing path: %v", err)
	}
	if err := anon.CreateAll(ctx, "/acl-shared/other/x", nil); !errors.Is(err, ErrNoAuth) {
		t.Errorf("anonymous CreateAll below a protected node: %v", err)
	}
}

func TestTLS(t *testing.T) {
	needEnsemble(t)
	e, err := zktest.StartEnsemble(zktest.Options{Servers: 1, TLS: true, ClientAuth: "want"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := ctxT(t, 60*time.Second)
	for _, tc := range []struct {
		name string
		tls  TLSConfig
		ok   bool
	}{
		{"right CA", TLSConfig{CAFile: e.TLS.CAFile}, true},
		{"right CA and client certificate", TLSConfig{CAFile: e.TLS.CAFile, CertFile: e.TLS.ClientCert, KeyFile: e.TLS.ClientKey}, true},
		{"server name localhost", TLSConfig{CAFile: e.TLS.CAFile, ServerName: "localhost"}, true},
		{"wrong CA", TLSConfig{CAFile: e.TLS.OtherCAFile}, false},
		{"wrong server name", TLSConfig{CAFile: e.TLS.CAFile, ServerName: "zk.elsewhere"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			c, err := Connect(cctx, Config{Servers: e.SecureConnect(), TLS: tc.tls}, testLogger(), nil)
			if !tc.ok {
				if err == nil {
					c.Close()
					t.Fatal("connected although the certificate must not verify")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Create(cctx, "/tls-"+strings.ReplaceAll(tc.name, " ", "-"), nil, Ephemeral, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := (TLSConfig{CertFile: e.TLS.ClientCert, KeyFile: e.TLS.ClientKey}).Config(); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("TLS without a CA must be refused: %v", err)
	}
}

// The server clamps the session timeout to [2, 20] ticks (tick 2 s here):
// SessionTimeout reports what it granted, and an election's grace follows
// the granted timeout, never more than half of it.
func TestNegotiatedSessionTimeout(t *testing.T) {
	needEnsemble(t)
	for _, tc := range []struct{ asked, granted time.Duration }{
		{time.Second, 4 * time.Second},
		{6 * time.Second, 6 * time.Second},
		{60 * time.Second, 40 * time.Second},
	} {
		c := connect(t, Config{SessionTimeout: tc.asked})
		if got := c.SessionTimeout(); got != tc.granted {
			t.Errorf("asked %s: SessionTimeout() = %s, want %s granted by the server", tc.asked, got, tc.granted)
		}
		for _, g := range []struct{ opt, want time.Duration }{
			{0, tc.granted / 3},
			{time.Second, time.Second},
			{time.Hour, tc.granted / 2},
		} {
			if got := NewElection(c, "/x", nil, ElectionOptions{DisconnectGrace: g.opt}).grace(); got != g.want {
				t.Errorf("session %s, grace option %s: grace %s, want %s", tc.granted, g.opt, got, g.want)
			}
		}
	}
}

func TestOutcomeUnknown(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&PathError{Op: "create", Path: "/a", Err: ErrConnectionLoss}, true},
		{fmt.Errorf("zookeeper multi: %w", ErrConnectionLoss), true},
		{&PathError{Op: "set", Path: "/a", Err: ErrSessionExpired}, true},
		{fmt.Errorf("zookeeper create /a: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("zookeeper create /a: %w", context.Canceled), true},
		{ErrClosing, true},
		// Waiting for a session: nothing was sent.
		{&PathError{Op: "create", Path: "/a", Err: fmt.Errorf("%w: %w", ErrNoSession, context.DeadlineExceeded)}, false},
		{&PathError{Op: "create", Path: "/a", Err: ErrNodeExists}, false},
		{&MultiError{Index: 2, Op: "set", Path: "/a", Err: ErrBadVersion}, false},
		{nil, false},
	} {
		if got := OutcomeUnknown(tc.err); got != tc.want {
			t.Errorf("OutcomeUnknown(%v) = %t, want %t", tc.err, got, tc.want)
		}
	}
}
