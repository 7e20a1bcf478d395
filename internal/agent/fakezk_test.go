package agent

import (
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

// fakeZK is an in-memory ZooKeeper for the agent's unit tests: nodes with
// data versions, ephemeral nodes owned by a session, sequential names,
// watches that fire once, and sessions that expire (their ephemerals go,
// their watches are lost). It implements what seams.go names, no more.
type fakeZK struct {
	mu       sync.Mutex
	nodes    map[string]*fakeNode
	watches  []*fakeWatch
	sessions int64
}

type fakeNode struct {
	data    []byte
	version int32
	owner   int64 // ephemeral: the session that made it; 0: persistent
	seq     int64 // next sequence number of a sequential child
}

type fakeWatch struct {
	path     string
	children bool
	session  int64
	ch       chan zk.WatchEvent
}

func newFakeZK() *fakeZK {
	return &fakeZK{nodes: map[string]*fakeNode{"/": {}}}
}

// session opens a new session.
func (z *fakeZK) session() *fakeSession {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.sessions++
	return &fakeSession{z: z, id: z.sessions, timeout: 2 * time.Second}
}

// fire sends an event of typ to the watches on p of the kind (z.mu
// held) and drops them: a watch fires once.
func (z *fakeZK) fire(p string, children bool, typ zk.WatchEventType) {
	kept := z.watches[:0]
	for _, w := range z.watches {
		if w.path == p && w.children == children {
			w.ch <- zk.WatchEvent{Type: typ, Path: p}
			continue
		}
		kept = append(kept, w)
	}
	z.watches = kept
}

// set creates or changes a persistent node (as a writer would), making
// missing parents; it fires the watches ZooKeeper fires.
func (z *fakeZK) set(p string, data []byte) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if n, ok := z.nodes[p]; ok {
		n.data, n.version = data, n.version+1
		z.fire(p, false, zk.NodeDataChanged)
		return
	}
	z.createAll(path.Dir(p))
	z.create(p, data, 0)
}

// createAll makes p and its missing parents, persistent and empty (z.mu
// held).
func (z *fakeZK) createAll(p string) {
	if _, ok := z.nodes[p]; ok {
		return
	}
	z.createAll(path.Dir(p))
	z.create(p, nil, 0)
}

// create adds node p (z.mu held, the parent exists).
func (z *fakeZK) create(p string, data []byte, owner int64) {
	z.nodes[p] = &fakeNode{data: data, owner: owner}
	z.fire(p, false, zk.NodeCreated)
	z.fire(path.Dir(p), true, zk.NodeChildrenChanged)
}

// remove deletes node p (z.mu held).
func (z *fakeZK) remove(p string) {
	delete(z.nodes, p)
	z.fire(p, false, zk.NodeDeleted)
	z.fire(p, true, zk.NodeDeleted)
	z.fire(path.Dir(p), true, zk.NodeChildrenChanged)
}

// get returns the data of p.
func (z *fakeZK) get(p string) ([]byte, bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	n, ok := z.nodes[p]
	if !ok {
		return nil, false
	}
	return n.data, true
}

// fakeSession is one client session of a fakeZK.
type fakeSession struct {
	z       *fakeZK
	id      int64
	timeout time.Duration

	mu      sync.Mutex
	expired bool
	onLoss  []context.CancelCauseFunc // leaderships, cancelled on expiry
}

var errFakeExpired = fmt.Errorf("fake zookeeper: %w", zk.ErrSessionExpired)

// check fails once the session expired.
func (s *fakeSession) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expired {
		return errFakeExpired
	}
	return nil
}

// expire ends the session as the server does once its timeout passed:
// its ephemeral nodes are deleted (firing the others' watches) and its
// own watches are lost.
func (s *fakeSession) expire() {
	s.mu.Lock()
	s.expired = true
	loss := s.onLoss
	s.onLoss = nil
	s.mu.Unlock()
	for _, cancel := range loss {
		cancel(errors.New("session expired"))
	}
	z := s.z
	z.mu.Lock()
	defer z.mu.Unlock()
	var own []string
	for p, n := range z.nodes {
		if n.owner == s.id {
			own = append(own, p)
		}
	}
	for _, p := range own {
		z.remove(p)
	}
	kept := z.watches[:0]
	for _, w := range z.watches {
		if w.session == s.id {
			w.ch <- zk.WatchEvent{Type: zk.WatchLost, Path: w.path, Err: zk.ErrSessionExpired}
			continue
		}
		kept = append(kept, w)
	}
	z.watches = kept
}

func (s *fakeSession) watch(p string, children bool) <-chan zk.WatchEvent {
	w := &fakeWatch{path: p, children: children, session: s.id, ch: make(chan zk.WatchEvent, 1)}
	s.z.watches = append(s.z.watches, w)
	return w.ch
}

func (s *fakeSession) SessionTimeout() time.Duration   { return s.timeout }
func (s *fakeSession) Authenticated() bool             { return false }
func (s *fakeSession) DigestIdentities() []zk.Identity { return nil }

func (s *fakeSession) Get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	data, st, _, err := s.read(p, false)
	return data, st, err
}

func (s *fakeSession) GetW(ctx context.Context, p string) ([]byte, *zk.Stat, <-chan zk.WatchEvent, error) {
	return s.read(p, true)
}

func (s *fakeSession) read(p string, watch bool) ([]byte, *zk.Stat, <-chan zk.WatchEvent, error) {
	if err := s.check(); err != nil {
		return nil, nil, nil, err
	}
	s.z.mu.Lock()
	defer s.z.mu.Unlock()
	n, ok := s.z.nodes[p]
	if !ok {
		return nil, nil, nil, fmt.Errorf("fake zookeeper get %s: %w", p, zk.ErrNoNode)
	}
	var ch <-chan zk.WatchEvent
	if watch {
		ch = s.watch(p, false)
	}
	return append([]byte(nil), n.data...), &zk.Stat{Version: n.version, EphemeralOwner: n.owner}, ch, nil
}

func (s *fakeSession) Exists(ctx context.Context, p string) (bool, *zk.Stat, error) {
	ok, st, _, err := s.exists(p, false)
	return ok, st, err
}

func (s *fakeSession) ExistsW(ctx context.Context, p string) (bool, *zk.Stat, <-chan zk.WatchEvent, error) {
	return s.exists(p, true)
}

func (s *fakeSession) exists(p string, watch bool) (bool, *zk.Stat, <-chan zk.WatchEvent, error) {
	if err := s.check(); err != nil {
		return false, nil, nil, err
	}
	s.z.mu.Lock()
	defer s.z.mu.Unlock()
	var ch <-chan zk.WatchEvent
	if watch {
		ch = s.watch(p, false)
	}
	n, ok := s.z.nodes[p]
	if !ok {
		return false, nil, ch, nil
	}
	return true, &zk.Stat{Version: n.version, EphemeralOwner: n.owner}, ch, nil
}

func (s *fakeSession) ChildrenW(ctx context.Context, p string) ([]string, *zk.Stat, <-chan zk.WatchEvent, error) {
	if err := s.check(); err != nil {
		return nil, nil, nil, err
	}
	s.z.mu.Lock()
	defer s.z.mu.Unlock()
	if _, ok := s.z.nodes[p]; !ok {
		return nil, nil, nil, fmt.Errorf("fake zookeeper children %s: %w", p, zk.ErrNoNode)
	}
	return s.z.children(p), &zk.Stat{}, s.watch(p, true), nil
}

// children lists the names below p, sorted (z.mu held).
func (z *fakeZK) children(p string) []string {
	var out []string
	for q := range z.nodes {
		if q != p && path.Dir(q) == p {
			out = append(out, path.Base(q))
		}
	}
	sort.Strings(out)
	return out
}

// multi applies ops all or none. The ops are read with reflect, since
// zk.Op keeps its fields to itself; creates are persistent whatever
// their mode (the candidacy's record is), ACLs are not kept.
func (s *fakeSession) multi(ops []zk.Op) ([]zk.OpResult, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	z := s.z
	z.mu.Lock()
	defer z.mu.Unlock()
	type op struct {
		kind, path string
		data       []byte
		version    int32
	}
	var list []op
	for _, o := range ops {
		v := reflect.ValueOf(o)
		list = append(list, op{kind: v.FieldByName("kind").String(), path: v.FieldByName("path").String(),
			data: append([]byte(nil), v.FieldByName("data").Bytes()...), version: int32(v.FieldByName("version").Int())})
	}
	// Check on a copy of what exists: all or none.
	exists := map[string]int32{}
	for p, n := range z.nodes {
		exists[p] = n.version
	}
	for i, o := range list {
		ver, ok := exists[o.path]
		var err error
		switch o.kind {
		case "create":
			if ok {
				err = zk.ErrNodeExists
			} else if _, ok := exists[path.Dir(o.path)]; !ok {
				err = zk.ErrNoNode
			}
			exists[o.path] = 0
		case "set", "check", "delete":
			if !ok {
				err = zk.ErrNoNode
			} else if o.version >= 0 && o.version != ver {
				err = zk.ErrBadVersion
			}
			if o.kind == "delete" {
				delete(exists, o.path)
			} else if o.kind == "set" {
				exists[o.path] = ver + 1
			}
		}
		if err != nil {
			return nil, &zk.MultiError{Index: i, Op: o.kind, Path: o.path, Err: err}
		}
	}
	out := make([]zk.OpResult, len(list))
	for i, o := range list {
		out[i].Path = o.path
		switch o.kind {
		case "create":
			z.create(o.path, o.data, 0)
		case "set":
			n := z.nodes[o.path]
			n.data, n.version = o.data, n.version+1
			z.fire(o.path, false, zk.NodeDataChanged)
		case "delete":
			z.remove(o.path)
		}
	}
	return out, nil
}

// fakeElection is ZooKeeper's election recipe on a fakeZK: an
// ephemeral sequential node per candidate, the lowest leads.
type fakeElection struct {
	s         *fakeSession
	path      string
	candidate []byte
}

func (s *fakeSession) elect(p string, candidate []byte, _ zk.ElectionOptions) groupElection {
	return &fakeElection{s: s, path: p, candidate: candidate}
}

func (e *fakeElection) Campaign(ctx context.Context) (leadership, error) {
	if err := e.s.check(); err != nil {
		return nil, err
	}
	z := e.s.z
	z.mu.Lock()
	own := ""
	for _, c := range z.children(e.path) { // this session's node from before (Release)
		if n := z.nodes[e.path+"/"+c]; n.owner == e.s.id {
			own = c
		}
	}
	if own == "" {
		z.createAll(e.path)
		parent := z.nodes[e.path]
		own = fmt.Sprintf("n_%010d", parent.seq)
		parent.seq++
		z.create(e.path+"/"+own, e.candidate, e.s.id)
	}
	z.mu.Unlock()
	for {
		if err := e.s.check(); err != nil {
			return nil, err
		}
		z.mu.Lock()
		if _, ok := z.nodes[e.path+"/"+own]; !ok {
			z.mu.Unlock()
			return nil, fmt.Errorf("fake election: own node %s is gone", own)
		}
		all := z.children(e.path)
		i := sort.SearchStrings(all, own)
		if i == 0 {
			ctx, cancel := context.WithCancelCause(context.Background())
			e.s.mu.Lock()
			e.s.onLoss = append(e.s.onLoss, cancel)
			e.s.mu.Unlock()
			z.mu.Unlock()
			return &fakeLeadership{e: e, node: e.path + "/" + own, term: seqOf(own), ctx: ctx, cancel: cancel}, nil
		}
		ch := e.s.watch(e.path+"/"+all[i-1], false)
		z.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

func seqOf(name string) int64 {
	var n int64
	fmt.Sscanf(strings.TrimPrefix(name, "n_"), "%d", &n)
	return n
}

func (e *fakeElection) Leader(ctx context.Context) ([]byte, int64, error) {
	if err := e.s.check(); err != nil {
		return nil, 0, err
	}
	z := e.s.z
	z.mu.Lock()
	defer z.mu.Unlock()
	all := z.children(e.path)
	if len(all) == 0 {
		return nil, 0, fmt.Errorf("fake election %s: no leader: %w", e.path, zk.ErrNoNode)
	}
	return z.nodes[e.path+"/"+all[0]].data, seqOf(all[0]), nil
}

type fakeLeadership struct {
	e      *fakeElection
	node   string
	term   int64
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (l *fakeLeadership) Context() context.Context { return l.ctx }
func (l *fakeLeadership) Term() int64              { return l.term }
func (l *fakeLeadership) Release()                 { l.cancel(errors.New("released")) }

func (l *fakeLeadership) Check() error {
	if err := context.Cause(l.ctx); err != nil {
		return fmt.Errorf("%w: %v", zk.ErrNotLeader, err)
	}
	return l.e.s.check()
}

// Multi is fenced like the real one: a check of the own node first.
func (l *fakeLeadership) Multi(ctx context.Context, ops ...zk.Op) ([]zk.OpResult, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	res, err := l.e.s.multi(append([]zk.Op{zk.CheckOp(l.node, -1)}, ops...))
	var me *zk.MultiError
	if errors.As(err, &me) && me.Index == 0 {
		l.cancel(errors.New("election node gone"))
		return nil, fmt.Errorf("%w: fenced write refused: %v", zk.ErrNotLeader, err)
	}
	if len(res) > 0 {
		res = res[1:]
	}
	return res, err
}

func (l *fakeLeadership) Resign(ctx context.Context) error {
	l.cancel(errors.New("resigned"))
	z := l.e.s.z
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.nodes[l.node]; ok {
		z.remove(l.node)
	}
	return nil
}

// fakeStore is the cluster's store for the apply path: revisions held
// in memory (configstore's chunked layout is tested against a real
// ensemble), an open cluster whose ACLs are all the model's.
type fakeStore struct {
	mu   sync.Mutex
	revs map[int]*bundle.Bundle
}

func (f *fakeStore) Revision(ctx context.Context, rev int) (configstore.Meta, *bundle.Bundle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.revs[rev]
	if !ok {
		return configstore.Meta{}, nil, fmt.Errorf("fake store: revision %d: %w", rev, zk.ErrNoNode)
	}
	return configstore.Meta{Revision: rev, Checksum: b.Checksum()}, b, nil
}

func (f *fakeStore) Access(ctx context.Context) (configstore.Access, *zk.Stat, error) {
	return configstore.Access{Open: true}, &zk.Stat{}, nil
}

func (f *fakeStore) CheckACLs(ctx context.Context, a configstore.Access, deep bool) ([]configstore.ACLProblem, error) {
	return nil, nil
}

func (f *fakeStore) CheckGroupACLs(ctx context.Context, a configstore.Access, group string) ([]configstore.ACLProblem, error) {
	return nil, nil
}

// childrenOf lists the names below p.
func (z *fakeZK) childrenOf(p string) []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.children(p)
}

// TestFakeZK checks the fake where the agent relies on ZooKeeper's
// behaviour: versions, one-shot watches, ephemerals and expiry.
func TestFakeZK(t *testing.T) {
	ctx := context.Background()
	z := newFakeZK()
	s1, s2 := z.session(), z.session()
	z.set("/a/b", []byte("1"))
	data, st, w, err := s1.GetW(ctx, "/a/b")
	if err != nil || string(data) != "1" || st.Version != 0 {
		t.Fatalf("get: %q %+v %v", data, st, err)
	}
	z.set("/a/b", []byte("2"))
	z.set("/a/b", []byte("3"))
	if ev := <-w; ev.Type != zk.NodeDataChanged || ev.Path != "/a/b" {
		t.Fatalf("watch: %+v", ev)
	}
	select {
	case ev := <-w:
		t.Fatalf("a watch fired twice: %+v", ev)
	default:
	}
	if _, st, _ := s1.Get(ctx, "/a/b"); st.Version != 2 {
		t.Fatalf("version %d after two sets, want 2", st.Version)
	}
	if _, err := s1.multi([]zk.Op{zk.SetOp("/a/b", []byte("x"), 1)}); !errors.Is(err, zk.ErrBadVersion) {
		t.Fatalf("set with a stale version: %v", err)
	}

	e := s2.elect("/a/election", nil, zk.ElectionOptions{})
	l, err := e.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kids, _, cw, _ := s1.ChildrenW(ctx, "/a/election")
	if len(kids) != 1 || l.Check() != nil {
		t.Fatalf("candidates %v, check %v", kids, l.Check())
	}
	s2.expire()
	if ev := <-cw; ev.Type != zk.NodeChildrenChanged {
		t.Fatalf("children watch: %+v", ev)
	}
	if ok, _, _ := s1.Exists(ctx, "/a/election/"+kids[0]); ok {
		t.Fatal("the expired session's ephemeral node stays")
	}
	if l.Check() == nil || l.Context().Err() == nil {
		t.Fatal("leadership holds on an expired session")
	}
	if _, _, err := s2.Get(ctx, "/a/b"); !errors.Is(err, zk.ErrSessionExpired) {
		t.Fatalf("get on an expired session: %v", err)
	}
}
