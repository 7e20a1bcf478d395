package configstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"

	"github.com/zkprom/zkprom/internal/bundle"
)

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// aclOf reads a node's ACL as ZooKeeper's CLI prints it, entries sorted.
func aclOf(t *testing.T, c *zk.Client, p string) string {
	t.Helper()
	acl, _, err := c.GetACL(context.Background(), p)
	if err != nil {
		t.Fatalf("get ACL of %s: %v", p, err)
	}
	parts := strings.Split(zk.FormatACL(acl), ",")
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func sorted(parts ...string) string {
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Without credentials nothing is created; the message says how to give
// them, and how to open a lab cluster instead.
func TestPushNeedsCredentials(t *testing.T) {
	anon := connect(t, "")
	ctx := ctxT(t)
	for _, opts := range []Options{
		{Cluster: "anon-" + randomText(6)},
		{Cluster: "anon-" + randomText(6), Access: &Access{Agents: []string{agentID.String()}}},
		{Cluster: "anon-" + randomText(6), Access: &Access{Agents: []string{agentID.String()}}, RepairACLs: true},
	} {
		s := newStore(t, anon, opts)
		_, err := s.Push(ctx, small("a"), PushMeta{Author: "anon"})
		if err == nil || !strings.Contains(err.Error(), "--zookeeper.auth-file") || !strings.Contains(err.Error(), "--unsafe.open-cluster") {
			t.Errorf("anonymous push to %s: %v, want a refusal saying how to give credentials", opts.Cluster, err)
		}
		if ok, _, _ := anon.Exists(ctx, s.Path()); ok {
			t.Errorf("anonymous push created %s", s.Path())
		}
	}
	// Nor to a cluster a writer made.
	writer := connect(t, writerAuth)
	made := newStore(t, writer, Options{Cluster: "made-" + randomText(6)})
	if _, err := made.Push(ctx, small("a"), PushMeta{}); err != nil {
		t.Fatal(err)
	}
	for _, access := range []*Access{nil, {Agents: []string{agentID.String()}}} {
		s := newStore(t, anon, Options{Cluster: made.Cluster()})
		s.opts.Access = access
		if _, err := s.Push(ctx, small("b"), PushMeta{}); err == nil || !strings.Contains(err.Error(), "--zookeeper.auth-file") {
			t.Errorf("anonymous push to an existing cluster (settings %+v): %v", access, err)
		}
	}
	// A writer's first push must name the agents.
	s, err := New(writer, Options{Cluster: "no-agents-" + randomText(6)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Push(ctx, small("a"), PushMeta{}); err == nil || !strings.Contains(err.Error(), "--agents.auth-file") {
		t.Errorf("first push without agents: %v", err)
	}
}

// An open cluster (a lab) is what its name says: anyone may push, and
// the settings say it is open.
func TestOpenCluster(t *testing.T) {
	anon := connect(t, "")
	ctx := ctxT(t)
	root := "/lab-" + randomText(6)
	s := newStore(t, anon, Options{Root: root, Cluster: "lab", Access: &Access{Open: true}})
	if _, err := s.Push(ctx, small("a"), PushMeta{}); err != nil {
		t.Fatal(err)
	}
	a, _, err := s.Access(ctx)
	if err != nil || !a.Open {
		t.Fatalf("access %+v (%v): want open", a, err)
	}
	if got := aclOf(t, anon, s.CurrentPath()); got != "world:anyone:cdrwa" {
		t.Errorf("open cluster's current: ACL %s", got)
	}
	// Any later anonymous push works: the cluster stays open.
	s2 := newStore(t, connect(t, ""), Options{Root: root, Cluster: "lab"})
	s2.opts.Access = nil
	if _, err := s2.Push(ctx, small("b"), PushMeta{}); err != nil {
		t.Errorf("anonymous push to an open cluster: %v", err)
	}
	// A writer closes it by naming the agents: anonymous pushes stop.
	// The open root is refused until it is narrowed.
	writer := connect(t, writerAuth)
	ws := newStore(t, writer, Options{Root: root, Cluster: "lab"})
	if _, err := ws.Push(ctx, small("c"), PushMeta{}); err == nil || !strings.Contains(err.Error(), "anyone may create") {
		t.Fatalf("closing push under an open root: %v", err)
	}
	if err := writer.SetACL(ctx, root, zk.ACLCreatorAllWorldRead(), -1); err != nil {
		t.Fatal(err)
	}
	// Anyone may have planted anything meanwhile: the nodes are checked
	// against the closed model, and taken over only after a look.
	var ae *ACLError
	if _, err := ws.Push(ctx, small("c"), PushMeta{}); !errors.As(err, &ae) {
		t.Fatalf("closing push without --repair-acls: %v", err)
	}
	ws.opts.RepairACLs = true
	if _, err := ws.Push(ctx, small("c"), PushMeta{}); err != nil {
		t.Fatalf("closing push: %v", err)
	}
	if a, _, err := ws.Access(ctx); err != nil || a.Open || len(a.Writers) != 1 {
		t.Errorf("after the closing push: %+v (%v)", a, err)
	}
	if _, err := s2.Push(ctx, small("d"), PushMeta{}); err == nil {
		t.Error("anonymous push to a closed cluster")
	}
}

// Every node a push creates gets the model's ACL: writers all, agents
// read (and create/delete below members and ha), status readers read,
// bundle chunks for writers and agents only.
func TestModelACLs(t *testing.T) {
	writer := connect(t, writerAuth)
	ctx := ctxT(t)
	s := newStore(t, writer, Options{ChunkSize: 1024})
	b := &bundle.Bundle{Files: map[string][]byte{"prometheus.yml": []byte("global: {}\n"), "blob.bin": randomBytes(3000)}}
	res, err := s.Push(ctx, b, PushMeta{Author: "w", Message: "acl"})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := s.Access(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wid := zk.DigestIdentity("writer", strings.TrimSpace(strings.TrimPrefix(readFile(t, writerAuth), "writer:"))).String()
	if !slices.Equal(a.Writers, []string{wid}) || !slices.Equal(a.Agents, []string{agentID.String()}) || !slices.Equal(a.Readers, DefaultReaders) || a.Open {
		t.Fatalf("access settings %+v: want writer %s, agent %s, readers world", a, wid, agentID)
	}
	w, ag := wid+":cdrwa", agentID.String()
	status := sorted(w, ag+":r", "world:anyone:r")
	for _, p := range []string{s.Path(), s.RevisionsPath(), s.RevisionPath(res.Meta.Revision), s.CurrentPath()} {
		if got := aclOf(t, writer, p); got != status {
			t.Errorf("%s: ACL %s, want %s", p, got, status)
		}
	}
	if got, want := aclOf(t, writer, s.AccessPath()), sorted(w, ag+":r"); got != want {
		t.Errorf("%s: ACL %s, want %s", s.AccessPath(), got, want)
	}
	for i := 0; i < res.Meta.Chunks; i++ {
		p := zk.Join(s.RevisionPath(res.Meta.Revision), chunkName(i))
		if got, want := aclOf(t, writer, p), sorted(w, ag+":r"); got != want {
			t.Errorf("%s: ACL %s, want %s", p, got, want)
		}
	}
	for _, p := range []string{s.MembersPath(), s.HAPath()} {
		if got, want := aclOf(t, writer, p), sorted(w, ag+":cdr", "world:anyone:r"); got != want {
			t.Errorf("%s: ACL %s, want %s", p, got, want)
		}
	}
	if problems, err := s.CheckACLs(ctx, a, true); err != nil || len(problems) > 0 {
		t.Errorf("check of a fresh cluster: %v %v", problems, err)
	}
}

// What an anonymous client (network access only) can and cannot do in a
// cluster made by a writer's push, with several payloads.
func TestAnonymousAttacks(t *testing.T) {
	writer := connect(t, writerAuth)
	anon := connect(t, "")
	agent := connect(t, agentAuth)
	ctx := ctxT(t)
	s := newStore(t, writer, Options{})
	res, err := s.Push(ctx, small("a"), PushMeta{Author: "w"})
	if err != nil {
		t.Fatal(err)
	}
	chunk := zk.Join(s.RevisionPath(res.Meta.Revision), chunkName(0))
	for i, payload := range [][]byte{
		[]byte(`{"revision":1}`),
		[]byte(fmt.Sprintf(`{"revision":%d,"checksum":"sha256:%s"}`, res.Meta.Revision+1000, randomText(64))),
		randomBytes(200),
		[]byte{},
	} {
		if _, err := anon.Set(ctx, s.CurrentPath(), payload, -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("payload %d: anonymous move of current: %v", i, err)
		}
		for _, p := range []string{zk.Join(s.RevisionsPath(), "r-9999999999"), zk.Join(s.RevisionPath(res.Meta.Revision), "c-0001"),
			s.CanaryPath(), zk.Join(s.MembersPath(), "x-"+randomText(5)), zk.Join(s.HAPath(), "g"+randomText(5))} {
			for _, mode := range []zk.CreateMode{zk.Persistent, zk.Ephemeral} {
				if _, err := anon.Create(ctx, p, payload, mode, zk.ACLOpen()); !errors.Is(err, zk.ErrNoAuth) {
					t.Errorf("payload %d: anonymous create %s (mode %d): %v", i, p, mode, err)
				}
			}
		}
	}
	for _, p := range []string{chunk, s.CurrentPath(), s.RevisionPath(res.Meta.Revision)} {
		if err := anon.Delete(ctx, p, -1); !errors.Is(err, zk.ErrNoAuth) && !errors.Is(err, zk.ErrNotEmpty) {
			t.Errorf("anonymous delete %s: %v", p, err)
		}
		if err := anon.SetACL(ctx, p, zk.ACLOpen(), -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("anonymous set ACL of %s: %v", p, err)
		}
	}
	for _, p := range []string{chunk, s.AccessPath()} {
		if _, _, err := anon.Get(ctx, p); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("anonymous read of %s: %v", p, err)
		}
	}
	// What anonymous clients do see of ACLs hides the digest hashes.
	if acl := aclOf(t, anon, s.CurrentPath()); strings.Contains(acl, strings.SplitN(agentID.ID, ":", 2)[1]) {
		t.Errorf("anonymous getAcl shows the agents' digest hash: %s", acl)
	}
	if _, _, err := newStore(t, anon, Options{Cluster: s.Cluster()}).Revision(ctx, res.Meta.Revision); !errors.Is(err, zk.ErrNoAuth) || !strings.Contains(err.Error(), "writers and agents may read them") {
		t.Errorf("anonymous read of a revision: %v", err)
	}
	// The status stays readable to everyone (the default readers).
	if _, _, err := newStore(t, anon, Options{Cluster: s.Cluster()}).Current(ctx); err != nil {
		t.Errorf("anonymous read of the status: %v", err)
	}
	// The agents read bundles and register, and cannot push.
	as := newStore(t, agent, Options{Cluster: s.Cluster()})
	if _, _, err := as.Revision(ctx, res.Meta.Revision); err != nil {
		t.Errorf("agent read of a revision: %v", err)
	}
	if _, err := agent.Create(ctx, s.MemberPath("agent-x"), []byte("{}"), zk.Ephemeral, s.access.ACL(KindAgentNode)); err != nil {
		t.Errorf("agent registration: %v", err)
	}
	if _, err := agent.Set(ctx, s.CurrentPath(), []byte(`{"revision":1}`), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("agent move of current: %v", err)
	}
	if _, err := as.Push(ctx, small("agent"), PushMeta{}); err == nil || !strings.Contains(err.Error(), "not one of the cluster's writers") {
		t.Errorf("agent push: %v", err)
	}
	// Nor can an anonymous client create a cluster under the root a
	// writer's push made.
	if _, err := anon.Create(ctx, zk.Join(DefaultRoot, "evil-"+randomText(4)), nil, zk.Persistent, zk.ACLOpen()); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("anonymous cluster under the root: %v", err)
	}
}

// With no status readers, anonymous clients read nothing of the cluster.
func TestReadersNone(t *testing.T) {
	writer := connect(t, writerAuth)
	anon := connect(t, "")
	ctx := ctxT(t)
	s := newStore(t, writer, Options{Access: &Access{Agents: []string{agentID.String()}, Readers: []string{}}})
	if _, err := s.Push(ctx, small("a"), PushMeta{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.Path(), s.CurrentPath(), s.RevisionPath(1), s.MembersPath()} {
		if _, _, err := anon.Get(ctx, p); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("anonymous read of %s with no readers: %v", p, err)
		}
	}
	if _, _, err := newStore(t, connect(t, agentAuth), Options{Cluster: s.Cluster()}).Current(ctx); err != nil {
		t.Errorf("agent read of current with no readers: %v", err)
	}
}

// Nodes an anonymous client made first are checked, not adopted: the
// writer's push stops naming the node and its ACL; --repair-acls (after
// a look) takes them over with the model's ACL.
func TestSquattedCluster(t *testing.T) {
	writer := connect(t, writerAuth)
	anon := connect(t, "")
	ctx := ctxT(t)
	wid := zk.DigestIdentity("writer", strings.TrimSpace(strings.TrimPrefix(readFile(t, writerAuth), "writer:")))
	// A root anyone may create in (made by someone else): squatters make
	// clusters there before their first push.
	root := "/shared-" + randomText(6)
	if _, err := anon.Create(ctx, root, nil, zk.Persistent, zk.ACLOpen()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Such a root is refused as long as it stays open.
		s := newStore(t, writer, Options{Root: root, Cluster: "late-" + randomText(4)})
		if err := writer.SetACL(ctx, root, zk.ACLOpen(), -1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Push(ctx, small("a"), PushMeta{}); err == nil || !strings.Contains(err.Error(), "anyone may create") || !strings.Contains(err.Error(), root) {
			t.Errorf("push under a root anyone may create in: %v", err)
		}
	}()
	for i, squat := range []struct {
		name  string
		nodes map[string][]zk.ACL // below the cluster node ("" is the cluster node)
		data  []byte
	}{
		{"open cluster node", map[string][]zk.ACL{"": zk.ACLOpen()}, nil},
		{"planted settings", map[string][]zk.ACL{"": zk.ACLOpen(), "/access": zk.ACLOpen()}, []byte(`{"writers":["world:anyone"],"agents":["world:anyone"]}`)},
		{"writer's digest plus anyone", map[string][]zk.ACL{"": zk.MergeACL(zk.Grant(zk.PermAll, wid), zk.Grant(zk.PermAll, zk.World))}, nil},
		{"open members and ha", map[string][]zk.ACL{"": zk.ACLOpen(), "/members": zk.ACLOpen(), "/ha": zk.ACLOpen(), "/revisions": zk.ACLOpen()}, nil},
		{"planted current", map[string][]zk.ACL{"": zk.ACLOpen(), "/access": zk.ACLOpen(), "/current": zk.Grant(zk.PermAll, zk.World)}, []byte(`{"writers":["` + wid.String() + `"],"agents":["digest:evil:aGFja2Vy"]}`)},
	} {
		cluster := fmt.Sprintf("squat-%d-%s", i, randomText(4))
		base := zk.Join(root, cluster)
		for _, rel := range []string{"", "/access", "/revisions", "/members", "/ha", "/current"} {
			acl, ok := squat.nodes[rel]
			if !ok {
				continue
			}
			data := []byte(nil)
			if rel == "/access" {
				data = squat.data
			} else if rel == "/current" {
				data = []byte(`{"revision":7}`)
			}
			if _, err := anon.Create(ctx, base+rel, data, zk.Persistent, acl); err != nil {
				t.Fatalf("%s: squat %s: %v", squat.name, base+rel, err)
			}
		}
		s := newStore(t, writer, Options{Root: root, Cluster: cluster})
		_, err := s.Push(ctx, small("a"), PushMeta{})
		if err == nil || !strings.Contains(err.Error(), "anyone may create") {
			t.Errorf("%s: push under an open root: %v", squat.name, err)
		}
		// The operator narrows the root; the squatted nodes stay.
		if err := writer.SetACL(ctx, root, zk.MergeACL(zk.Grant(zk.PermAll, wid), zk.Grant(zk.PermRead, zk.World)), -1); err != nil {
			t.Fatal(err)
		}
		_, err = s.Push(ctx, small("a"), PushMeta{})
		var ae *ACLError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), base) || !strings.Contains(err.Error(), "world:anyone") || !strings.Contains(err.Error(), "--repair-acls") {
			t.Errorf("%s: push into a squatted cluster: %v, want an ACL error naming %s and its ACL", squat.name, err, base)
			continue
		}
		if ok, _, _ := writer.Exists(ctx, zk.Join(base, "revisions", "r-0000000001")); ok {
			t.Errorf("%s: a revision was written into the squatted cluster", squat.name)
		}
		s.opts.RepairACLs = true
		if _, err := s.Push(ctx, small("a"), PushMeta{}); err != nil {
			t.Errorf("%s: push --repair-acls: %v", squat.name, err)
			continue
		}
		a, _, err := s.Access(ctx)
		if err != nil || !slices.Equal(a.Agents, []string{agentID.String()}) || !slices.Equal(a.Writers, []string{wid.String()}) {
			t.Errorf("%s: settings after repair %+v (%v)", squat.name, a, err)
		}
		if problems, err := s.CheckACLs(ctx, a, true); err != nil || len(problems) > 0 {
			t.Errorf("%s: after repair: %v %v", squat.name, problems, err)
		}
		if _, err := anon.Set(ctx, s.CurrentPath(), []byte(`{"revision":1}`), -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: anonymous write after repair: %v", squat.name, err)
		}
		// Open again for the next squatter.
		if err := writer.SetACL(ctx, root, zk.ACLOpen(), -1); err != nil {
			t.Fatal(err)
		}
	}
}

// A node under members is a live agent's only when it is ephemeral and
// its status is sane; anything else is left out and says why.
func TestParseMember(t *testing.T) {
	live := &zk.Stat{EphemeralOwner: 0x1234}
	status := func(mod func(*Status)) []byte {
		s := Status{Member: "a1", Cluster: "c", State: StateApplied, Fleet: &FleetStatus{ShardMember: "a1", Weight: 1}}
		if mod != nil {
			mod(&s)
		}
		b, _ := json.Marshal(s)
		return b
	}
	for _, tc := range []struct {
		name   string
		data   []byte
		stat   *zk.Stat
		reason string
	}{
		{"live agent", status(nil), live, ""},
		{"older agent without fleet", status(func(s *Status) { s.Fleet = nil }), live, ""},
		{"largest weight", status(func(s *Status) { s.Fleet.Weight = MaxWeight }), live, ""},
		{"persistent", status(nil), &zk.Stat{}, "persistent"},
		{"weight 1e300", []byte(`{"member":"a1","cluster":"c","fleet":{"shard_member":"a1","weight":1e300}}`), live, "bad_weight"},
		{"weight 1e999", []byte(`{"member":"a1","cluster":"c","fleet":{"shard_member":"a1","weight":1e999}}`), live, "bad_data"},
		{"negative weight", status(func(s *Status) { s.Fleet.Weight = -1 }), live, "bad_weight"},
		{"zero weight", status(func(s *Status) { s.Fleet.Weight = 0 }), live, "bad_weight"},
		{"tiny weight above max", status(func(s *Status) { s.Fleet.Weight = math.Nextafter(MaxWeight, math.Inf(1)) }), live, "bad_weight"},
		{"other member's name", status(func(s *Status) { s.Member = "a2" }), live, "wrong_member"},
		{"other cluster", status(func(s *Status) { s.Cluster = "d" }), live, "wrong_cluster"},
		{"bad shard member", status(func(s *Status) { s.Fleet.ShardMember = "../x" }), live, "bad_name"},
		{"empty shard member", status(func(s *Status) { s.Fleet.ShardMember = "" }), live, "bad_name"},
		{"bad HA group", status(func(s *Status) { s.Fleet.HAGroup = "a b" }), live, "bad_name"},
		{"not JSON", randomBytes(40), live, "bad_data"},
		{"null", []byte("null"), live, "wrong_member"},
		{"oversized", append(status(nil)[:1], []byte(`"pad":"`+strings.Repeat("x", maxMemberData)+`",`+string(status(nil)[1:]))...), live, "too_large"},
	} {
		_, err := ParseMember("c", "a1", tc.data, tc.stat)
		var me *MemberError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.reason != "" && (!errors.As(err, &me) || me.Reason != tc.reason):
			t.Errorf("%s: %v, want reason %s", tc.name, err, tc.reason)
		}
	}
}

// A persistent node under members (here the writer's: nobody else may
// create there) is listed with the reason and left out of rollouts.
func TestMembersIgnoresPersistent(t *testing.T) {
	writer := connect(t, writerAuth)
	ctx := ctxT(t)
	s := newStore(t, writer, Options{})
	if _, err := s.Push(ctx, small("a"), PushMeta{}); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(Status{Member: "x", Cluster: s.Cluster(), State: StateApplied, Fleet: &FleetStatus{ShardMember: "x", Weight: 1}})
	if _, err := writer.Create(ctx, s.MemberPath("x"), data, zk.Persistent, s.access.ACL(KindAgentNode)); err != nil {
		t.Fatal(err)
	}
	ms, err := s.Members(ctx)
	if err != nil || len(ms) != 1 || ms[0].Err == nil || !strings.Contains(ms[0].Err.Error(), "persistent") {
		t.Fatalf("members %+v (%v): want x ignored as persistent", ms, err)
	}
	if live := LiveMembers(ms); len(live) != 0 {
		t.Errorf("live members %+v", live)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.WaitRollout(wctx, 1, nil, nil); err != nil {
		t.Errorf("rollout waits on a persistent member node: %v", err)
	}
}

// Where the ensemble takes client certificates, a writer proves itself
// with one: its x509 identity becomes the cluster's writer, and a
// client without a certificate cannot push.
func TestX509Writer(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ZooKeeper")
	}
	e, err := zktest.StartEnsemble(zktest.Options{Servers: 1, TLS: true, ClientAuth: "want"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := ctxT(t)
	dial := func(tls zk.TLSConfig) *zk.Client {
		c, err := zk.Connect(ctx, zk.Config{Servers: e.SecureConnect(), TLS: tls}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	certified := dial(zk.TLSConfig{CAFile: e.TLS.CAFile, CertFile: e.TLS.ClientCert, KeyFile: e.TLS.ClientKey})
	plain := dial(zk.TLSConfig{CAFile: e.TLS.CAFile})
	s := newStore(t, certified, Options{Cluster: "x509"})
	if _, err := s.Push(ctx, small("a"), PushMeta{}); err != nil {
		t.Fatal(err)
	}
	a, _, err := s.Access(ctx)
	if err != nil || len(a.Writers) != 1 || !strings.HasPrefix(a.Writers[0], "x509:") || !strings.Contains(a.Writers[0], "CN=") {
		t.Fatalf("writers %+v (%v): want the client certificate's x509 identity", a.Writers, err)
	}
	if _, err := newStore(t, plain, Options{Cluster: "x509"}).Push(ctx, small("b"), PushMeta{}); err == nil {
		t.Error("a client without a certificate pushed")
	}
	if _, err := plain.Set(ctx, s.CurrentPath(), []byte(`{"revision":1}`), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("client without certificate moves current: %v", err)
	}
	if _, err := s.Push(ctx, small("c"), PushMeta{}); err != nil {
		t.Errorf("second push with the certificate: %v", err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A cluster as the previous zkprom made it (no access settings, members
// and HA nodes open to everyone, the HA group's nodes without any admin
// right, member nodes of agents with and without credentials, a leader
// record with a password in its URL) is refused until its writer names
// the agents and repairs it; the repair removes what agents made outside
// the model and leaves every node with the model's ACL.
func TestLegacyClusterUpgrade(t *testing.T) {
	writer := connect(t, writerAuth)
	oldAgent := connect(t, agentAuth)
	anon := connect(t, "")
	ctx := ctxT(t)
	cluster := "legacy-" + randomText(5)
	base := zk.Join(DefaultRoot, cluster)
	creatorWorldRead := zk.ACLCreatorAllWorldRead()
	oldMembers := append(zk.ACLCreatorOnly(), zk.ACL{Perms: zk.PermRead | zk.PermCreate | zk.PermDelete, Scheme: "world", ID: "anyone"})
	oldGroup := []zk.ACL{{Perms: zk.PermRead | zk.PermWrite | zk.PermCreate | zk.PermDelete, Scheme: "world", ID: "anyone"}}
	for _, n := range []struct {
		path string
		data string
		acl  []zk.ACL
	}{
		{base, "", creatorWorldRead},
		{base + "/revisions", "", creatorWorldRead},
		{base + "/current", `{"revision":1}`, creatorWorldRead},
		{base + "/members", "", oldMembers},
		{base + "/ha", "", oldMembers},
	} {
		if err := writer.CreateAll(ctx, zk.Parent(n.path), creatorWorldRead); err != nil {
			t.Fatal(err)
		}
		if _, err := writer.Create(ctx, n.path, []byte(n.data), zk.Persistent, n.acl); err != nil {
			t.Fatal(err)
		}
	}
	// Revision 1 (sequence 0 is skipped, as a push does).
	rev, err := writer.Create(ctx, base+"/revisions/r-", nil, zk.PersistentSequential, creatorWorldRead)
	if err == nil {
		err = writer.Delete(ctx, rev, -1)
	}
	if err == nil {
		rev, err = writer.Create(ctx, base+"/revisions/r-", []byte(`{"chunks":1}`), zk.PersistentSequential, creatorWorldRead)
	}
	if err != nil || !strings.HasSuffix(rev, "r-0000000001") {
		t.Fatal(rev, err)
	}
	chunk := rev + "/c-0000"
	if _, err := writer.Create(ctx, chunk, []byte("bundle"), zk.Persistent, creatorWorldRead); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base + "/ha/pair", base + "/ha/pair/election"} {
		if _, err := anon.Create(ctx, p, nil, zk.Persistent, oldGroup); err != nil {
			t.Fatal(err)
		}
	}
	secret := "pw-" + randomText(8)
	if _, err := anon.Create(ctx, base+"/ha/pair/leader", []byte(`{"member":"a","term":1,"prometheus":"http://u:`+secret+`@127.0.0.1:9090"}`), zk.Persistent, oldGroup); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Create(ctx, base+"/ha/pair/election/n_0000000001", nil, zk.Ephemeral, zk.ACLOpen()); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Create(ctx, base+"/members/old-anon", []byte(`{"member":"old-anon"}`), zk.Ephemeral, zk.ACLOpen()); err != nil {
		t.Fatal(err)
	}
	if _, err := oldAgent.Create(ctx, base+"/members/old-creds", []byte(`{"member":"old-creds"}`), zk.Ephemeral, creatorWorldRead); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, writer, Options{Cluster: cluster})
	s.opts.Access = nil
	if _, err := s.Push(ctx, small("a"), PushMeta{}); err == nil || !strings.Contains(err.Error(), "no access settings") || !strings.Contains(err.Error(), "--repair-acls") {
		t.Errorf("push without agents to a legacy cluster: %v", err)
	}
	s.opts.Access = &Access{Agents: []string{agentID.String()}}
	var ae *ACLError
	if _, err := s.Push(ctx, small("a"), PushMeta{}); !errors.As(err, &ae) || !strings.Contains(err.Error(), "c-0000") {
		t.Errorf("push with agents to a legacy cluster: %v, want the chunks named as too open", err)
	}
	s.opts.RepairACLs = true
	if _, err := s.Push(ctx, small("a"), PushMeta{}); err != nil {
		t.Fatalf("repair push: %v", err)
	}
	for _, p := range []string{base + "/ha/pair", base + "/members/old-anon", base + "/members/old-creds"} {
		if ok, _, _ := writer.Exists(ctx, p); ok {
			t.Errorf("%s outside the model survived the repair", p)
		}
	}
	a, _, err := s.Access(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := s.CheckACLs(ctx, a, true); err != nil || len(problems) > 0 {
		t.Errorf("after the repair: %v %v", problems, err)
	}
	if _, _, err := anon.Get(ctx, chunk); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("anonymous read of an old chunk after the repair: %v", err)
	}
}

// Nodes the agents' identity (or anyone in an earlier open phase) made
// under members and ha with an ACL outside the model are removed by the
// writer's next push, which goes on: such a node takes nothing over and
// blocks nothing. The hash hidden from non-admins does not fool the
// writer: an entry naming the writer's user with another password is not
// the writer's.
func TestPushRemovesForeignAgentNodes(t *testing.T) {
	writer := connect(t, writerAuth)
	ctx := ctxT(t)
	s := newStore(t, writer, Options{})
	if _, err := s.Push(ctx, small("a"), PushMeta{}); err != nil {
		t.Fatal(err)
	}
	// Someone holding the agents' credentials.
	dir := t.TempDir()
	mallory := filepath.Join(dir, "m")
	os.WriteFile(mallory, []byte(readFile(t, agentAuth)), 0o600)
	m := connect(t, mallory)
	fakeWriter := zk.DigestIdentity("writer", "guess-"+randomText(6))
	planted := []string{s.MemberPath("evil"), zk.Join(s.HAGroupPath("pair"), "leader")}
	acls := [][]zk.ACL{
		zk.MergeACL(zk.Grant(zk.PermAll, fakeWriter), zk.Grant(zk.PermRead, zk.World)),
		zk.Grant(zk.PermRead|zk.PermWrite, zk.World),
	}
	if err := m.CreateAll(ctx, s.HAGroupPath("pair"), s.access.ACL(KindAgentDir)); err != nil {
		t.Fatal(err)
	}
	for i, p := range planted {
		if _, err := m.Create(ctx, p, []byte(`{"member":"evil","cluster":"`+s.Cluster()+`"}`), zk.Persistent, acls[i]); err != nil {
			t.Fatalf("plant %s: %v", p, err)
		}
	}
	if ok, err := s.RecordTrusted(ctx, s.access, "pair"); err != nil || ok {
		t.Errorf("a record with a foreign ACL is trusted: %t %v", ok, err)
	}
	if _, err := s.Push(ctx, small("b"), PushMeta{}); err != nil {
		t.Fatalf("push with foreign agent nodes: %v", err)
	}
	for _, p := range planted {
		if ok, _, _ := writer.Exists(ctx, p); ok {
			t.Errorf("%s survived the push", p)
		}
	}
}
