// Package zk is zkprom's ZooKeeper session layer: the only package that
// imports go-zookeeper. It adds what the library lacks and every part of
// zkprom needs: contexts, chroot, digest auth from a file, verified TLS,
// DNS names re-resolved on every reconnect, session state as a stream and
// as metrics, a watched tree cache and the recipes built on them.
package zk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	gozk "github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
)

// Types shared with go-zookeeper, re-exported so that no other package
// imports it.
type (
	Stat = gozk.Stat
	ACL  = gozk.ACL
)

// Errors callers test for with errors.Is.
var (
	ErrNoNode                  = gozk.ErrNoNode
	ErrNodeExists              = gozk.ErrNodeExists
	ErrBadVersion              = gozk.ErrBadVersion
	ErrNotEmpty                = gozk.ErrNotEmpty
	ErrNoAuth                  = gozk.ErrNoAuth
	ErrSessionExpired          = gozk.ErrSessionExpired
	ErrConnectionClosed        = gozk.ErrConnectionClosed
	ErrClosing                 = gozk.ErrClosing
	ErrNoChildrenForEphemerals = gozk.ErrNoChildrenForEphemerals
	ErrInvalidACL              = gozk.ErrInvalidACL
)

// Config says how to reach a ZooKeeper ensemble. It is what the common
// --zookeeper.* flags and the zookeeper: blocks of config files fill in.
type Config struct {
	Servers        string        `yaml:"servers"`
	AuthFile       string        `yaml:"auth_file,omitempty"`
	TLS            TLSConfig     `yaml:"tls,omitempty"`
	SessionTimeout time.Duration `yaml:"session_timeout,omitempty"`
}

// DefaultSessionTimeout is used when Config.SessionTimeout is zero.
const DefaultSessionTimeout = 10 * time.Second

// Client is one ZooKeeper session (renewed by the library after expiry)
// with a context-first API. Paths are relative to the connect string's
// chroot.
type Client struct {
	conn    *gozk.Conn
	chroot  string
	cs      ConnectString
	timeout time.Duration
	authed  bool       // digest credentials were added, or a client certificate is presented
	ids     []Identity // the digest identities of the credentials
	logger  *slog.Logger
	m       *clientMetrics

	events *mailbox[gozk.Event]

	mu        sync.Mutex
	state     State
	sessionID int64
	subs      map[*subscription]struct{}
	watches   map[string][]chan WatchEvent // by full path
	hooks     map[*nodeHook]struct{}
	closed    chan struct{}
	closeOnce sync.Once
	loopDone  chan struct{}

	lastDialErr  string // last failed connection attempt
	lastDialWarn time.Time
	negotiated   time.Duration // the session timeout the server granted
	granted      chan struct{} // closed when negotiated is first known
	grantedOnce  sync.Once
}

// Connect opens a session and waits, within ctx, until it is established,
// the credentials of the auth file are added and the chroot is found.
func Connect(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cs, err := ParseConnectString(cfg.Servers)
	if err != nil {
		return nil, err
	}
	creds, err := readAuthFile(cfg.AuthFile)
	if err != nil {
		return nil, err
	}
	dialer, err := cfg.TLS.dialer()
	if err != nil {
		return nil, err
	}
	timeout := cfg.SessionTimeout
	if timeout == 0 {
		timeout = DefaultSessionTimeout
	}
	c := &Client{
		chroot:   cs.Chroot,
		timeout:  timeout,
		cs:       cs,
		logger:   logger,
		events:   newMailbox[gozk.Event](),
		state:    StateConnecting,
		subs:     map[*subscription]struct{}{},
		watches:  map[string][]chan WatchEvent{},
		hooks:    map[*nodeHook]struct{}{},
		closed:   make(chan struct{}),
		loopDone: make(chan struct{}),
		granted:  make(chan struct{}),
	}
	c.m, err = newClientMetrics(reg, cs.String())
	if err != nil {
		return nil, err
	}
	connected := c.Subscribe()
	defer connected.Close()

	conn, _, err := gozk.Connect(cs.Servers, timeout,
		gozk.WithHostProvider(&resolvingHostProvider{}),
		gozk.WithDialer(dialer),
		gozk.WithLogger(slogAdapter{c}),
		gozk.WithLogInfo(true), // at debug level; its "authenticated" line carries the granted timeout
		gozk.WithEventCallback(func(ev gozk.Event) { c.events.put(ev) }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to ZooKeeper %s: %w", cs, err)
	}
	c.conn = conn
	go c.dispatch()

	if err := c.waitSession(ctx, connected); err != nil {
		c.Close()
		return nil, err
	}
	// The library logs the granted timeout just after it reports the
	// session: wait for that line, briefly, so that SessionTimeout is the
	// server's from the start.
	select {
	case <-c.granted:
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	c.authed = len(creds) > 0 || cfg.TLS.CertFile != ""
	for _, cr := range creds {
		u, p, _ := strings.Cut(cr, ":")
		c.ids = append(c.ids, DigestIdentity(u, p))
		if err := conn.AddAuth("digest", []byte(cr)); err != nil {
			c.Close()
			return nil, fmt.Errorf("add digest credentials from %s: %w", cfg.AuthFile, err)
		}
	}
	if c.chroot != "" {
		ok, _, err := conn.Exists(c.chroot)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("check chroot %s: %w", c.chroot, err)
		}
		if !ok {
			c.Close()
			return nil, fmt.Errorf("chroot %s of connect string %s does not exist: create it first (zkCli.sh create %s)", c.chroot, cs, c.chroot)
		}
	}
	return c, nil
}

func (c *Client) waitSession(ctx context.Context, sub *Subscription) error {
	var last State
	for {
		if c.State() == StateConnected {
			return nil
		}
		select {
		case ev := <-sub.C:
			last = ev.State
			if ev.State == StateAuthFailed {
				return fmt.Errorf("connect to ZooKeeper %s: authentication failed", c.cs)
			}
		case <-ctx.Done():
			c.mu.Lock()
			dialErr := c.lastDialErr
			c.mu.Unlock()
			if dialErr != "" {
				return fmt.Errorf("connect to ZooKeeper %s: no session established: last attempt %s (check --zookeeper.servers and that ZooKeeper runs): %w", c.cs, dialErr, ctx.Err())
			}
			return fmt.Errorf("connect to ZooKeeper %s: no session established (last state %s): %w", c.cs, last, ctx.Err())
		}
	}
}

// Validate checks a configuration without connecting: the connect string,
// the auth file and the TLS files.
func (cfg Config) Validate() error {
	if _, err := ParseConnectString(cfg.Servers); err != nil {
		return err
	}
	if _, err := readAuthFile(cfg.AuthFile); err != nil {
		return err
	}
	if _, err := cfg.TLS.Config(); err != nil {
		return err
	}
	if cfg.SessionTimeout < 0 {
		return fmt.Errorf("negative ZooKeeper session timeout %s", cfg.SessionTimeout)
	}
	return nil
}

// ConnectString returns the connect string the client was made with.
func (c *Client) ConnectString() ConnectString { return c.cs }

// SessionTimeout returns the session timeout the server granted (it
// clamps the one asked for to [2, 20] × its tickTime), or the one asked
// for before a session was established.
func (c *Client) SessionTimeout() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.negotiated > 0 {
		return c.negotiated
	}
	return c.timeout
}

// noteNegotiated records the session timeout the server granted, warning
// when it is not the one asked for: what the timeout bounds (expiry of
// ephemeral nodes, an HA leader's grace) follows the server's.
func (c *Client) noteNegotiated(d time.Duration) {
	c.mu.Lock()
	changed := d != c.negotiated
	c.negotiated = d
	c.mu.Unlock()
	c.grantedOnce.Do(func() { close(c.granted) })
	if changed && d != c.timeout {
		c.logger.Warn("ZooKeeper granted another session timeout than asked for (it allows 2 to 20 ticks)",
			"asked", c.timeout, "granted", d, "servers", c.cs.String())
	}
}

// Authenticated reports whether the session proves an identity: digest
// credentials from the auth file, or a TLS client certificate (ZooKeeper
// maps it to x509:<subject>).
func (c *Client) Authenticated() bool { return c.authed }

// DigestIdentities returns the identities of the session's digest
// credentials (none for a session with only a client certificate).
func (c *Client) DigestIdentities() []Identity { return c.ids }

// SessionID returns the current session's id (0 when there is none).
func (c *Client) SessionID() int64 { return c.conn.SessionID() }

// Close ends the session: ephemeral nodes go at once.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		if c.conn != nil {
			c.conn.Close()
		}
		c.events.close()
		if c.conn != nil {
			<-c.loopDone
		}
	})
}

// Done is closed when the client is closed.
func (c *Client) Done() <-chan struct{} { return c.closed }

func (c *Client) full(p string) string {
	if c.chroot == "" {
		return p
	}
	if p == "/" {
		return c.chroot
	}
	return c.chroot + p
}

func (c *Client) rel(p string) string {
	if c.chroot == "" {
		return p
	}
	r := strings.TrimPrefix(p, c.chroot)
	if r == "" {
		return "/"
	}
	return r
}

// call runs f, which blocks in the library, honouring ctx: when ctx ends
// first the caller gets ctx's error and the reply is dropped.
func call[T any](ctx context.Context, c *Client, op string, f func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	start := time.Now()
	defer func() { c.m.requestDuration.WithLabelValues(op).Observe(time.Since(start).Seconds()) }()
	if ctx.Done() == nil {
		return f()
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// PathError records a failed operation on a path. For a permission error it
// carries the ACL that refused it.
type PathError struct {
	Op   string
	Path string
	ACL  []ACL // set for ErrNoAuth when the ACL could be read
	Err  error
}

func (e *PathError) Error() string {
	msg := fmt.Sprintf("zookeeper %s %s: %v", e.Op, e.Path, e.Err)
	if errors.Is(e.Err, ErrNoAuth) {
		if e.ACL != nil {
			msg += fmt.Sprintf(" (ACL %s; check --zookeeper.auth-file)", FormatACL(e.ACL))
		} else {
			msg += " (check --zookeeper.auth-file)"
		}
	}
	return msg
}

func (e *PathError) Unwrap() error { return e.Err }

func (c *Client) pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("zookeeper %s %s: %w", op, p, err)
	}
	pe := &PathError{Op: op, Path: p, Err: err}
	if errors.Is(err, ErrNoAuth) {
		aclPath := p
		if op == "create" {
			aclPath = Parent(p) // create is checked against the parent
			pe.Path = p + " (parent " + aclPath + ")"
		}
		if acl, _, aerr := c.conn.GetACL(c.full(aclPath)); aerr == nil {
			pe.ACL = acl
		}
	}
	return pe
}

func check(p string) error {
	if err := ValidatePath(p); err != nil {
		return fmt.Errorf("invalid ZooKeeper path: %w", err)
	}
	return nil
}

// Get reads a node's data.
func (c *Client) Get(ctx context.Context, p string) ([]byte, *Stat, error) {
	if err := check(p); err != nil {
		return nil, nil, err
	}
	r, err := call(ctx, c, "get", func() (pair[[]byte], error) {
		d, s, err := c.conn.Get(c.full(p))
		return pair[[]byte]{d, s}, err
	})
	return r.v, r.stat, c.pathErr("get", p, err)
}

// GetW reads a node's data and leaves a data watch on it.
func (c *Client) GetW(ctx context.Context, p string) ([]byte, *Stat, <-chan WatchEvent, error) {
	if err := check(p); err != nil {
		return nil, nil, nil, err
	}
	w := c.addWatch(p)
	r, err := call(ctx, c, "get", func() (pair[[]byte], error) {
		d, s, _, err := c.conn.GetW(c.full(p))
		return pair[[]byte]{d, s}, err
	})
	if err != nil {
		c.dropWatch(p, w)
		return nil, nil, nil, c.pathErr("get", p, err)
	}
	return r.v, r.stat, w, nil
}

// Children lists a node's children (unsorted, as the server returns them).
func (c *Client) Children(ctx context.Context, p string) ([]string, *Stat, error) {
	if err := check(p); err != nil {
		return nil, nil, err
	}
	r, err := call(ctx, c, "children", func() (pair[[]string], error) {
		ch, s, err := c.conn.Children(c.full(p))
		return pair[[]string]{ch, s}, err
	})
	return r.v, r.stat, c.pathErr("children", p, err)
}

// ChildrenW lists a node's children and leaves a children watch on it.
func (c *Client) ChildrenW(ctx context.Context, p string) ([]string, *Stat, <-chan WatchEvent, error) {
	if err := check(p); err != nil {
		return nil, nil, nil, err
	}
	w := c.addWatch(p)
	r, err := call(ctx, c, "children", func() (pair[[]string], error) {
		ch, s, _, err := c.conn.ChildrenW(c.full(p))
		return pair[[]string]{ch, s}, err
	})
	if err != nil {
		c.dropWatch(p, w)
		return nil, nil, nil, c.pathErr("children", p, err)
	}
	return r.v, r.stat, w, nil
}

// Exists reports whether a node exists; the stat is nil when it does not.
func (c *Client) Exists(ctx context.Context, p string) (bool, *Stat, error) {
	if err := check(p); err != nil {
		return false, nil, err
	}
	r, err := call(ctx, c, "exists", func() (pair[bool], error) {
		ok, s, err := c.conn.Exists(c.full(p))
		return pair[bool]{ok, s}, err
	})
	if !r.v {
		r.stat = nil
	}
	return r.v, r.stat, c.pathErr("exists", p, err)
}

// ExistsW is Exists with a watch that fires on create, delete or change.
func (c *Client) ExistsW(ctx context.Context, p string) (bool, *Stat, <-chan WatchEvent, error) {
	if err := check(p); err != nil {
		return false, nil, nil, err
	}
	w := c.addWatch(p)
	r, err := call(ctx, c, "exists", func() (pair[bool], error) {
		ok, s, _, err := c.conn.ExistsW(c.full(p))
		return pair[bool]{ok, s}, err
	})
	if err != nil {
		c.dropWatch(p, w)
		return false, nil, nil, c.pathErr("exists", p, err)
	}
	if !r.v {
		r.stat = nil
	}
	return r.v, r.stat, w, nil
}

type pair[T any] struct {
	v    T
	stat *Stat
}

// CreateMode says what kind of node Create makes.
type CreateMode int32

const (
	Persistent           CreateMode = gozk.FlagPersistent
	Ephemeral            CreateMode = gozk.FlagEphemeral
	PersistentSequential CreateMode = gozk.FlagSequence
	EphemeralSequential  CreateMode = gozk.FlagEphemeralSequential
	Container            CreateMode = gozk.FlagContainer
)

// Create makes a node and returns its path (with the sequence number for
// sequential modes).
func (c *Client) Create(ctx context.Context, p string, data []byte, mode CreateMode, acl []ACL) (string, error) {
	if err := check(p); err != nil {
		return "", err
	}
	acl, err := c.resolveACL(acl)
	if err != nil {
		return "", fmt.Errorf("zookeeper create %s: %w", p, err)
	}
	created, err := call(ctx, c, "create", func() (string, error) {
		if mode == Container {
			return c.conn.CreateContainer(c.full(p), data, int32(mode), acl)
		}
		return c.conn.Create(c.full(p), data, int32(mode), acl)
	})
	if err != nil {
		return "", c.pathErr("create", p, err)
	}
	return c.rel(created), nil
}

// CreateAll makes p and any missing parents as persistent nodes; it is not
// an error when p exists already. It creates from p upwards only as far as
// needed: ZooKeeper checks the parent's ACL before it reports that a node
// exists, so touching existing ancestors would fail for a client that may
// create only deep below (an agent under a writer's cluster node).
func (c *Client) CreateAll(ctx context.Context, p string, acl []ACL) error {
	if err := check(p); err != nil {
		return err
	}
	if p == "/" {
		return nil
	}
	_, err := c.Create(ctx, p, nil, Persistent, acl)
	if errors.Is(err, ErrNoNode) {
		if err := c.CreateAll(ctx, Parent(p), acl); err != nil {
			return err
		}
		_, err = c.Create(ctx, p, nil, Persistent, acl)
	}
	if err != nil && !errors.Is(err, ErrNodeExists) {
		return err
	}
	return nil
}

// Set writes a node's data if its version matches (-1 matches any).
func (c *Client) Set(ctx context.Context, p string, data []byte, version int32) (*Stat, error) {
	if err := check(p); err != nil {
		return nil, err
	}
	s, err := call(ctx, c, "set", func() (*Stat, error) { return c.conn.Set(c.full(p), data, version) })
	return s, c.pathErr("set", p, err)
}

// Delete removes a node if its version matches (-1 matches any).
func (c *Client) Delete(ctx context.Context, p string, version int32) error {
	if err := check(p); err != nil {
		return err
	}
	_, err := call(ctx, c, "delete", func() (struct{}, error) { return struct{}{}, c.conn.Delete(c.full(p), version) })
	return c.pathErr("delete", p, err)
}

// DeleteAll removes p and everything below it; a missing node is no error.
func (c *Client) DeleteAll(ctx context.Context, p string) error {
	children, _, err := c.Children(ctx, p)
	if errors.Is(err, ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ch := range children {
		if err := c.DeleteAll(ctx, Join(p, ch)); err != nil {
			return err
		}
	}
	err = c.Delete(ctx, p, -1)
	if errors.Is(err, ErrNoNode) {
		return nil
	}
	return err
}

// Sync makes the server this client talks to catch up with the leader, so
// that a read after it sees every write committed before it.
func (c *Client) Sync(ctx context.Context, p string) error {
	if err := check(p); err != nil {
		return err
	}
	_, err := call(ctx, c, "sync", func() (string, error) { return c.conn.Sync(c.full(p)) })
	return c.pathErr("sync", p, err)
}

// GetACL reads a node's ACL.
func (c *Client) GetACL(ctx context.Context, p string) ([]ACL, *Stat, error) {
	if err := check(p); err != nil {
		return nil, nil, err
	}
	r, err := call(ctx, c, "get_acl", func() (pair[[]ACL], error) {
		a, s, err := c.conn.GetACL(c.full(p))
		return pair[[]ACL]{a, s}, err
	})
	return r.v, r.stat, c.pathErr("get_acl", p, err)
}

// SetACL replaces a node's ACL if its ACL version matches (-1 matches any).
func (c *Client) SetACL(ctx context.Context, p string, acl []ACL, aversion int32) error {
	if err := check(p); err != nil {
		return err
	}
	acl, err := c.resolveACL(acl)
	if err != nil {
		return fmt.Errorf("zookeeper set_acl %s: %w", p, err)
	}
	_, err = call(ctx, c, "set_acl", func() (*Stat, error) { return c.conn.SetACL(c.full(p), acl, aversion) })
	return c.pathErr("set_acl", p, err)
}

// Op is one operation of a Multi transaction.
type Op struct {
	kind    string
	path    string
	data    []byte
	version int32
	mode    CreateMode
	acl     []ACL
}

// CreateOp creates a node within a Multi.
func CreateOp(p string, data []byte, mode CreateMode, acl []ACL) Op {
	return Op{kind: "create", path: p, data: data, mode: mode, acl: acl}
}

// SetOp sets a node's data within a Multi.
func SetOp(p string, data []byte, version int32) Op {
	return Op{kind: "set", path: p, data: data, version: version}
}

// DeleteOp deletes a node within a Multi.
func DeleteOp(p string, version int32) Op { return Op{kind: "delete", path: p, version: version} }

// CheckOp fails the whole Multi unless the node exists with this version.
func CheckOp(p string, version int32) Op { return Op{kind: "check", path: p, version: version} }

// OpResult is the outcome of one operation of a Multi.
type OpResult struct {
	Path string // the created path, for create operations
	Stat *Stat  // for set operations
	Err  error
}

// MultiError tells which operation of a Multi failed.
type MultiError struct {
	Index int
	Op    string
	Path  string
	Err   error
}

func (e *MultiError) Error() string {
	return fmt.Sprintf("zookeeper multi: operation %d (%s %s): %v", e.Index, e.Op, e.Path, e.Err)
}

func (e *MultiError) Unwrap() error { return e.Err }

// Multi applies all ops atomically, or none of them.
func (c *Client) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	reqs := make([]any, len(ops))
	for i, op := range ops {
		if err := check(op.path); err != nil {
			return nil, err
		}
		fp := c.full(op.path)
		switch op.kind {
		case "create":
			acl, err := c.resolveACL(op.acl)
			if err != nil {
				return nil, fmt.Errorf("zookeeper multi: create %s: %w", op.path, err)
			}
			op.acl = acl
			reqs[i] = &gozk.CreateRequest{Path: fp, Data: op.data, Acl: op.acl, Flags: int32(op.mode)}
		case "set":
			reqs[i] = &gozk.SetDataRequest{Path: fp, Data: op.data, Version: op.version}
		case "delete":
			reqs[i] = &gozk.DeleteRequest{Path: fp, Version: op.version}
		case "check":
			reqs[i] = &gozk.CheckVersionRequest{Path: fp, Version: op.version}
		default:
			return nil, fmt.Errorf("zookeeper multi: unknown operation %q", op.kind)
		}
	}
	resp, err := call(ctx, c, "multi", func() ([]gozk.MultiResponse, error) { return c.conn.Multi(reqs...) })
	out := make([]OpResult, len(resp))
	var first *MultiError
	for i, r := range resp {
		out[i] = OpResult{Path: c.rel(r.String), Stat: r.Stat, Err: r.Error}
		if r.Error != nil && first == nil && i < len(ops) && !errors.Is(r.Error, gozk.ErrAPIError) && !errors.Is(r.Error, gozk.ErrUnknown) {
			first = &MultiError{Index: i, Op: ops[i].kind, Path: ops[i].path, Err: r.Error}
		}
	}
	if err != nil {
		if first != nil {
			return out, first
		}
		return out, fmt.Errorf("zookeeper multi: %w", err)
	}
	return out, nil
}

// The tree cache learns of fired watches through a hook, so it sets watches
// without the per-call channels of GetW and friends.

func (c *Client) getWatched(ctx context.Context, p string) ([]byte, *Stat, error) {
	r, err := call(ctx, c, "get", func() (pair[[]byte], error) {
		d, s, _, err := c.conn.GetW(c.full(p))
		return pair[[]byte]{d, s}, err
	})
	return r.v, r.stat, c.pathErr("get", p, err)
}

func (c *Client) childrenWatched(ctx context.Context, p string) ([]string, *Stat, error) {
	r, err := call(ctx, c, "children", func() (pair[[]string], error) {
		ch, s, _, err := c.conn.ChildrenW(c.full(p))
		return pair[[]string]{ch, s}, err
	})
	return r.v, r.stat, c.pathErr("children", p, err)
}

func (c *Client) existsWatched(ctx context.Context, p string) (bool, error) {
	ok, err := call(ctx, c, "exists", func() (bool, error) {
		ok, _, _, err := c.conn.ExistsW(c.full(p))
		return ok, err
	})
	return ok, c.pathErr("exists", p, err)
}

// resolveACL turns the default (nil) into creator-all + world-read, or,
// for a session without credentials, into world-all (service
// registrations from anonymous clients). An explicit ACL is used as given:
// an "auth" entry without credentials is refused here with a clear
// message, never silently widened.
func (c *Client) resolveACL(acl []ACL) ([]ACL, error) {
	if acl == nil {
		if !c.authed {
			return ACLOpen(), nil
		}
		return ACLCreatorAllWorldRead(), nil
	}
	if c.authed {
		return acl, nil
	}
	for _, a := range acl {
		if a.Scheme == "auth" {
			return nil, fmt.Errorf("an ACL for the creator needs credentials: give --zookeeper.auth-file (digest user:password) or a TLS client certificate (--zookeeper.tls.cert-file)")
		}
	}
	return acl, nil
}
