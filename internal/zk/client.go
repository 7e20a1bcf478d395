// Package zk is zkprom's ZooKeeper session layer: the only package that
// speaks ZooKeeper. It runs on zkprom's own client (package wire: one
// session kept over connections) and adds what every part of zkprom
// needs: contexts, a new session after expiry, digest and SASL
// credentials from files, verified TLS, session state as a stream and as
// metrics, one-shot watches as channels, a watched tree cache and the
// recipes built on them.
package zk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/zk/wire"
)

// Stat is a node's metadata.
type Stat = wire.Stat

// Errors callers test for with errors.Is.
var (
	ErrNoNode                  error = wire.ErrNoNode
	ErrNodeExists              error = wire.ErrNodeExists
	ErrBadVersion              error = wire.ErrBadVersion
	ErrNotEmpty                error = wire.ErrNotEmpty
	ErrNoAuth                  error = wire.ErrNoAuth
	ErrSessionExpired          error = wire.ErrSessionExpired
	ErrConnectionLoss          error = wire.ErrConnectionLoss
	ErrAuthFailed              error = wire.ErrAuthFailed
	ErrNoChildrenForEphemerals error = wire.ErrNoChildrenForEphemerals
	ErrInvalidACL              error = wire.ErrInvalidACL
	// ErrClosing: the client was closed.
	ErrClosing = wire.ErrClosing
	// ErrNoSession: there is no session right now (between an expiry and
	// the next session).
	ErrNoSession = errors.New("no ZooKeeper session")
)

// OutcomeUnknown says whether a write that failed with err may still have
// been applied: the connection dropped or the session expired before its
// reply came, or its context ended or the client closed while it was
// under way. (Some of these also come before the request was sent; no
// error says which, so they all count, but ErrNoSession: nothing was
// sent.) Read what the write would have changed before trying it again
// or undoing what came before it.
func OutcomeUnknown(err error) bool {
	if errors.Is(err, ErrNoSession) {
		return false
	}
	return errors.Is(err, ErrConnectionLoss) || errors.Is(err, ErrSessionExpired) || errors.Is(err, ErrClosing) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Config says how to reach a ZooKeeper ensemble. It is what the common
// --zookeeper.* flags and the zookeeper: blocks of config files fill in.
type Config struct {
	Servers        string        `yaml:"servers"`
	AuthFile       string        `yaml:"auth_file,omitempty"`
	SASL           SASLConfig    `yaml:"sasl,omitempty"`
	TLS            TLSConfig     `yaml:"tls,omitempty"`
	SessionTimeout time.Duration `yaml:"session_timeout,omitempty"`
	// ReadOnly lets a client that only reads use a server cut off from
	// its quorum that serves reads (readonlymode.enabled, and
	// localSessionsEnabled for its own sessions): what it reads there may
	// be behind, and writes fail.
	ReadOnly bool `yaml:"read_only,omitempty"`
	// MaxBuffer is the largest reply (and request) in bytes the client
	// takes, as the Java client's jute.maxbuffer; 0 means
	// DefaultMaxBuffer. Raise it for a parent whose children listing is
	// larger (about 1 MiB per 100,000 names of 10 bytes).
	MaxBuffer int `yaml:"max_buffer,omitempty"`
}

// DefaultSessionTimeout is used when Config.SessionTimeout is zero.
const DefaultSessionTimeout = 10 * time.Second

// Bounds of Config.MaxBuffer: the default is ZooKeeper's own; a frame is
// read whole into memory, so the top is kept at what a server sends.
const (
	DefaultMaxBuffer = wire.DefaultMaxBuffer
	MinMaxBuffer     = 16 << 10
	MaxMaxBuffer     = 256 << 20
)

// maxBufferHint says what to do about ErrFrameTooLarge.
const maxBufferHint = "raise the client's max buffer: --zookeeper.max-buffer, max_buffer in a zookeeper: block"

// Client is one ZooKeeper session at a time, with a context-first API: a
// session that expires is followed by a new one (SessionEvent.NewSession
// says so). Paths are relative to the connect string's chroot.
type Client struct {
	cs        ConnectString
	timeout   time.Duration // asked for
	maxBuffer int
	scfg      wire.SessionConfig
	authed    bool       // digest or SASL credentials, or a client certificate
	ids       []Identity // the digest identities of the credentials
	logger    *slog.Logger
	m         *clientMetrics

	closed    chan struct{}
	closedCtx context.Context // ends when the client is closed
	cancel    context.CancelFunc
	closeOnce sync.Once
	loopDone  chan struct{}

	mu           sync.Mutex
	sess         *wire.Session // nil between sessions
	ready        chan struct{} // closed when sess is set; replaced when it goes
	isClosed     bool
	running      bool // a session was installed: run follows it
	state        State
	readOnly     bool // StateConnected to a read-only server
	sessionID    int64
	subs         map[*subscription]struct{}
	watches      map[watchKey][]chan WatchEvent
	hooks        map[*nodeHook]struct{}
	lastDialErr  string // last failed connection attempt
	lastDialWarn time.Time
	negotiated   time.Duration // the session timeout the server granted
}

// Connect opens a session and waits, within ctx, until it is established
// (the credentials sent, the chroot found), trying the servers in turn.
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
	sasl, err := cfg.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	dial, err := cfg.TLS.dialer()
	if err != nil {
		return nil, err
	}
	timeout := cfg.SessionTimeout
	if timeout == 0 {
		timeout = DefaultSessionTimeout
	}
	if err := cfg.validateMaxBuffer(); err != nil {
		return nil, err
	}
	maxBuffer := cfg.MaxBuffer
	if maxBuffer == 0 {
		maxBuffer = DefaultMaxBuffer
	}
	c := &Client{
		cs:        cs,
		timeout:   timeout,
		maxBuffer: maxBuffer,
		logger:    logger,
		authed:    len(creds) > 0 || sasl != nil || cfg.TLS.CertFile != "",
		closed:    make(chan struct{}),
		loopDone:  make(chan struct{}),
		ready:     make(chan struct{}),
		state:     StateConnecting,
		subs:      map[*subscription]struct{}{},
		watches:   map[watchKey][]chan WatchEvent{},
		hooks:     map[*nodeHook]struct{}{},
	}
	c.closedCtx, c.cancel = context.WithCancel(context.Background())
	c.scfg = wire.SessionConfig{
		Servers: cs.Servers,
		Chroot:  cs.Chroot,
		Conn: wire.Config{
			SessionTimeout: timeout,
			CanBeReadOnly:  cfg.ReadOnly,
			MaxBuffer:      maxBuffer,
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				nc, err := dial(ctx, network, addr)
				if err != nil && ctx.Err() == nil { // not cut short by the caller
					c.noteDialError(addr, err)
				}
				return nc, err
			},
			Logger: logger,
		},
		SASL:   sasl,
		Logger: logger,
	}
	for _, cr := range creds {
		u, p, _ := strings.Cut(cr, ":")
		c.ids = append(c.ids, DigestIdentity(u, p))
		c.scfg.Auth = append(c.scfg.Auth, wire.Auth{Scheme: "digest", Data: []byte(cr)})
	}
	c.m, err = newClientMetrics(reg, cs.String())
	if err != nil {
		c.Close()
		return nil, err
	}
	s, err := c.firstSession(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	connected := c.Subscribe()
	defer connected.Close()
	c.install(s)
	go c.run(s)
	if err := c.waitConnected(ctx, connected); err != nil {
		c.Close()
		return nil, err
	}
	if cs.Chroot != "" {
		ok, _, err := c.Exists(ctx, "/")
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("check chroot %s: %w", cs.Chroot, err)
		}
		if !ok {
			c.Close()
			return nil, fmt.Errorf("chroot %s of connect string %s does not exist: create it first (zkCli.sh create %s)", cs.Chroot, cs, cs.Chroot)
		}
	}
	return c, nil
}

// newSession opens a session on the first server that answers (each tried
// once).
func (c *Client) newSession(ctx context.Context) (*wire.Session, error) {
	s, err := wire.NewSession(ctx, c.scfg)
	if err != nil {
		return nil, fmt.Errorf("connect to ZooKeeper %s: %w", c.cs, err)
	}
	return s, nil
}

// firstSession tries the servers until one grants a session or ctx ends.
func (c *Client) firstSession(ctx context.Context) (*wire.Session, error) {
	delay := 200 * time.Millisecond
	for {
		s, err := c.newSession(ctx)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, wire.ErrAuthFailed) || errors.Is(err, wire.ErrSASL) {
			return nil, fmt.Errorf("%w (check --zookeeper.auth-file and --zookeeper.sasl.*)", err)
		}
		c.logger.Debug("no ZooKeeper session yet; retrying", "err", err)
		select {
		case <-time.After(delay):
			delay = min(2*delay, 2*time.Second)
		case <-ctx.Done():
			c.mu.Lock()
			dialErr := c.lastDialErr
			c.mu.Unlock()
			if dialErr == "" {
				dialErr = err.Error()
			}
			return nil, fmt.Errorf("connect to ZooKeeper %s: no session established: last attempt %s (check --zookeeper.servers and that ZooKeeper runs): %w", c.cs, dialErr, ctx.Err())
		}
	}
}

func (c *Client) waitConnected(ctx context.Context, sub *Subscription) error {
	for c.State() != StateConnected {
		select {
		case ev := <-sub.C:
			if ev.State == StateAuthFailed {
				return fmt.Errorf("connect to ZooKeeper %s: authentication failed", c.cs)
			}
		case <-ctx.Done():
			return fmt.Errorf("connect to ZooKeeper %s: no session established (last state %s): %w", c.cs, c.State(), ctx.Err())
		}
	}
	return nil
}

// Validate checks a configuration without connecting: the connect string,
// the credential files and the TLS files.
func (cfg Config) Validate() error {
	if _, err := ParseConnectString(cfg.Servers); err != nil {
		return err
	}
	if _, err := readAuthFile(cfg.AuthFile); err != nil {
		return err
	}
	if _, err := cfg.SASL.mechanism(); err != nil {
		return err
	}
	if _, err := cfg.TLS.Config(); err != nil {
		return err
	}
	if cfg.SessionTimeout < 0 {
		return fmt.Errorf("negative ZooKeeper session timeout %s", cfg.SessionTimeout)
	}
	return cfg.validateMaxBuffer()
}

func (cfg Config) validateMaxBuffer() error {
	if cfg.MaxBuffer != 0 && (cfg.MaxBuffer < MinMaxBuffer || cfg.MaxBuffer > MaxMaxBuffer) {
		return fmt.Errorf("ZooKeeper max buffer of %d bytes: want %d to %d (--zookeeper.max-buffer, max_buffer)", cfg.MaxBuffer, MinMaxBuffer, MaxMaxBuffer)
	}
	return nil
}

// MaxBuffer is the largest reply in bytes the client takes.
func (c *Client) MaxBuffer() int { return c.maxBuffer }

// ConnectString returns the connect string the client was made with.
func (c *Client) ConnectString() ConnectString { return c.cs }

// SessionTimeout returns the session timeout the server granted in the
// handshake (it clamps the one asked for to [2, 20] × its tickTime), or
// the one asked for before a session was established.
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
	if changed && d != c.timeout {
		c.logger.Warn("ZooKeeper granted another session timeout than asked for (it allows 2 to 20 ticks)",
			"asked", c.timeout, "granted", d, "servers", c.cs.String())
	}
}

// Authenticated reports whether the session proves an identity: digest
// credentials from the auth file, SASL credentials, or a TLS client
// certificate (ZooKeeper maps it to x509:<subject>).
func (c *Client) Authenticated() bool { return c.authed }

// DigestIdentities returns the identities of the session's digest
// credentials (none for a session with only SASL or a client certificate).
func (c *Client) DigestIdentities() []Identity { return c.ids }

// SessionID returns the current session's id (0 when there is none).
func (c *Client) SessionID() int64 {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.SessionID()
}

// Close ends the session: ephemeral nodes go at once.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.isClosed = true
		s, running := c.sess, c.running
		c.mu.Unlock()
		close(c.closed)
		c.cancel()
		if s != nil {
			s.Close()
		}
		if running {
			<-c.loopDone
		}
	})
}

// Done is closed when the client is closed.
func (c *Client) Done() <-chan struct{} { return c.closed }

// session waits for the current session (bounded by ctx).
func (c *Client) session(ctx context.Context) (*wire.Session, error) {
	for {
		c.mu.Lock()
		s, ready, closed := c.sess, c.ready, c.isClosed
		c.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosing
		case s != nil:
			return s, nil
		}
		select {
		case <-ready:
		case <-c.closed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoSession, ctx.Err())
		}
	}
}

// start checks ctx, waits for the session and times a request by op
// (done records the duration).
func (c *Client) start(ctx context.Context, op string) (s *wire.Session, done func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	begin := time.Now()
	done = func() { c.m.requestDuration.WithLabelValues(op).Observe(time.Since(begin).Seconds()) }
	if s, err = c.session(ctx); err != nil {
		done()
		return nil, nil, err
	}
	return s, done, nil
}

// call runs one request on the current session, timed by operation, and
// turns its error into a PathError on p.
func call[T any](ctx context.Context, c *Client, op, p string, f func(s *wire.Session) (T, error)) (T, error) {
	var zero T
	s, done, err := c.start(ctx, op)
	if err != nil {
		return zero, c.pathErr(ctx, op, p, err)
	}
	defer done()
	v, err := f(s)
	if err != nil {
		c.noteTooLarge(op, err)
		return v, c.pathErr(ctx, op, p, err)
	}
	return v, nil
}

func (c *Client) noteTooLarge(op string, err error) {
	if errors.Is(err, wire.ErrFrameTooLarge) {
		c.m.tooLarge.WithLabelValues(op).Inc()
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
			msg += fmt.Sprintf(" (ACL %s; check --zookeeper.auth-file or --zookeeper.sasl.*)", FormatACL(e.ACL))
		} else {
			msg += " (check --zookeeper.auth-file or --zookeeper.sasl.*)"
		}
	}
	if errors.Is(e.Err, wire.ErrFrameTooLarge) {
		msg += " (" + maxBufferHint + ")"
	}
	return msg
}

func (e *PathError) Unwrap() error { return e.Err }

func (c *Client) pathErr(ctx context.Context, op, p string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("zookeeper %s %s: %w", op, p, err)
	}
	pe := &PathError{Op: op, Path: p, Err: bare(err)}
	if errors.Is(err, ErrNoAuth) {
		aclPath := p
		if op == "create" {
			aclPath = Parent(p) // create is checked against the parent
			pe.Path = p + " (parent " + aclPath + ")"
		}
		if s, serr := c.session(ctx); serr == nil {
			if acl, _, aerr := s.GetACL(ctx, aclPath); aerr == nil {
				pe.ACL = fromWireACL(acl)
			}
		}
	}
	return pe
}

// bare is a server's error code without the layers below naming the
// request again (with the server's path, chroot included).
func bare(err error) error {
	var code wire.Error
	if errors.As(err, &code) {
		return code
	}
	return err
}

func check(p string) error {
	if err := ValidatePath(p); err != nil {
		return fmt.Errorf("invalid ZooKeeper path: %w", err)
	}
	return nil
}

// read is what a read returns: a value and the node's stat.
type read[T any] struct {
	v    T
	stat *Stat
}

func readOf[T any](v T, st wire.Stat, err error) (read[T], error) {
	return read[T]{v, &st}, err
}

// Get reads a node's data.
func (c *Client) Get(ctx context.Context, p string) ([]byte, *Stat, error) {
	return c.get(ctx, p, false)
}

// get, children and exists with watch leave a watch whose event reaches
// only the hooks (the tree cache's way: no channel per node).
func (c *Client) get(ctx context.Context, p string, watch bool) ([]byte, *Stat, error) {
	if err := check(p); err != nil {
		return nil, nil, err
	}
	r, err := call(ctx, c, "get", p, func(s *wire.Session) (read[[]byte], error) {
		return readOf(s.Get(ctx, p, watch))
	})
	return r.v, r.stat, err
}

// GetW reads a node's data and leaves a data watch on it.
func (c *Client) GetW(ctx context.Context, p string) ([]byte, *Stat, <-chan WatchEvent, error) {
	if err := check(p); err != nil {
		return nil, nil, nil, err
	}
	w := c.addWatch(p, false)
	data, st, err := c.get(ctx, p, true)
	if err != nil {
		c.dropWatch(p, false, w)
		return nil, nil, nil, err
	}
	return data, st, w, nil
}

// Children lists a node's children (unsorted, as the server returns them).
func (c *Client) Children(ctx context.Context, p string) ([]string, *Stat, error) {
	return c.children(ctx, p, false)
}

func (c *Client) children(ctx context.Context, p string, watch bool) ([]string, *Stat, error) {
	if err := check(p); err != nil {
		return nil, nil, err
	}
	r, err := call(ctx, c, "children", p, func(s *wire.Session) (read[[]string], error) {
		return readOf(s.Children(ctx, p, watch))
	})
	return r.v, r.stat, err
}

// ChildrenW lists a node's children and leaves a children watch on it.
func (c *Client) ChildrenW(ctx context.Context, p string) ([]string, *Stat, <-chan WatchEvent, error) {
	if err := check(p); err != nil {
		return nil, nil, nil, err
	}
	w := c.addWatch(p, true)
	ch, st, err := c.children(ctx, p, true)
	if err != nil {
		c.dropWatch(p, true, w)
		return nil, nil, nil, err
	}
	return ch, st, w, nil
}

// Exists reports whether a node exists; the stat is nil when it does not.
func (c *Client) Exists(ctx context.Context, p string) (bool, *Stat, error) {
	return c.exists(ctx, p, false)
}

func (c *Client) exists(ctx context.Context, p string, watch bool) (bool, *Stat, error) {
	if err := check(p); err != nil {
		return false, nil, err
	}
	r, err := call(ctx, c, "exists", p, func(s *wire.Session) (read[bool], error) {
		st, ok, err := s.Exists(ctx, p, watch)
		return readOf(ok, st, err)
	})
	if !r.v {
		r.stat = nil
	}
	return r.v, r.stat, err
}

// ExistsW is Exists with a watch that fires on create, delete or change.
func (c *Client) ExistsW(ctx context.Context, p string) (bool, *Stat, <-chan WatchEvent, error) {
	if err := check(p); err != nil {
		return false, nil, nil, err
	}
	w := c.addWatch(p, false)
	ok, st, err := c.exists(ctx, p, true)
	if err != nil {
		c.dropWatch(p, false, w)
		return false, nil, nil, err
	}
	return ok, st, w, nil
}

// CreateMode says what kind of node Create makes.
type CreateMode = wire.CreateMode

const (
	Persistent           = wire.Persistent
	Ephemeral            = wire.Ephemeral
	PersistentSequential = wire.PersistentSequential
	EphemeralSequential  = wire.EphemeralSequential
	// Container nodes are deleted by the server once their last child
	// goes.
	Container = wire.Container
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
	return call(ctx, c, "create", p, func(s *wire.Session) (string, error) {
		created, _, err := s.Create(ctx, p, data, wireACL(acl), mode)
		return created, err
	})
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
	return call(ctx, c, "set", p, func(s *wire.Session) (*Stat, error) {
		st, err := s.Set(ctx, p, data, version)
		return &st, err
	})
}

// Delete removes a node if its version matches (-1 matches any).
func (c *Client) Delete(ctx context.Context, p string, version int32) error {
	if err := check(p); err != nil {
		return err
	}
	_, err := call(ctx, c, "delete", p, func(s *wire.Session) (struct{}, error) {
		return struct{}{}, s.Delete(ctx, p, version)
	})
	return err
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
	_, err := call(ctx, c, "sync", p, func(s *wire.Session) (string, error) { return s.Sync(ctx, p) })
	return err
}

// GetACL reads a node's ACL.
func (c *Client) GetACL(ctx context.Context, p string) ([]ACL, *Stat, error) {
	if err := check(p); err != nil {
		return nil, nil, err
	}
	r, err := call(ctx, c, "get_acl", p, func(s *wire.Session) (read[[]ACL], error) {
		acl, st, err := s.GetACL(ctx, p)
		return readOf(fromWireACL(acl), st, err)
	})
	return r.v, r.stat, err
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
	_, err = call(ctx, c, "set_acl", p, func(s *wire.Session) (wire.Stat, error) {
		return s.SetACL(ctx, p, wireACL(acl), aversion)
	})
	return err
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
	reqs := make([]wire.Op, len(ops))
	for i, op := range ops {
		if err := check(op.path); err != nil {
			return nil, err
		}
		switch op.kind {
		case "create":
			acl, err := c.resolveACL(op.acl)
			if err != nil {
				return nil, fmt.Errorf("zookeeper multi: create %s: %w", op.path, err)
			}
			reqs[i] = wire.CreateOp(op.path, op.data, wireACL(acl), op.mode)
		case "set":
			reqs[i] = wire.SetOp(op.path, op.data, op.version)
		case "delete":
			reqs[i] = wire.DeleteOp(op.path, op.version)
		case "check":
			reqs[i] = wire.CheckOp(op.path, op.version)
		default:
			return nil, fmt.Errorf("zookeeper multi: unknown operation %q", op.kind)
		}
	}
	s, done, err := c.start(ctx, "multi")
	if err != nil {
		return nil, fmt.Errorf("zookeeper multi: %w", err)
	}
	defer done()
	resp, err := s.Multi(ctx, reqs...)
	out := make([]OpResult, len(resp))
	var first *MultiError
	for i, r := range resp {
		out[i] = OpResult{Path: r.Path, Err: bare(r.Err)}
		if ops[i].kind == "set" && r.Err == nil {
			out[i].Stat = &r.Stat
		}
		if r.Err != nil && first == nil && !errors.Is(r.Err, wire.ErrRuntimeInconsistency) {
			first = &MultiError{Index: i, Op: ops[i].kind, Path: ops[i].path, Err: bare(r.Err)}
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

// addPersistentWatch leaves a persistent recursive watch on p (3.6+; on
// a node that does not exist too): every created, deleted and data
// changed event at p and below reaches the hooks, and the session sets it
// again on every connection (what it missed meanwhile is not replayed).
// It stays until the session ends: 3.8 cannot remove a persistent watch
// alone (RemoveWatches of any kind would take the path's one-shot watches
// too).
func (c *Client) addPersistentWatch(ctx context.Context, p string) error {
	_, err := call(ctx, c, "add_watch", p, func(s *wire.Session) (struct{}, error) {
		return struct{}{}, s.AddWatch(ctx, p, true)
	})
	return err
}

// multiRead reads the data and stat of paths in one request (3.6+); a
// missing node is a result with ErrNoNode. A reply over the connection's
// buffer (jute.maxbuffer) fails with ErrFrameTooLarge in the chain.
func (c *Client) multiRead(ctx context.Context, paths []string) ([]wire.ReadResult, error) {
	s, done, err := c.start(ctx, "multi_read")
	if err != nil {
		return nil, fmt.Errorf("zookeeper multi_read: %w", err)
	}
	defer done()
	ops := make([]wire.ReadOp, len(paths))
	for i, p := range paths {
		ops[i] = wire.GetDataOp(p)
	}
	res, err := s.MultiRead(ctx, ops...)
	if err != nil {
		c.noteTooLarge("multi_read", err)
		return nil, fmt.Errorf("zookeeper multi_read of %d nodes from %s: %w", len(paths), paths[0], err)
	}
	return res, nil
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
			return nil, fmt.Errorf("an ACL for the creator needs credentials: give --zookeeper.auth-file (digest user:password), SASL credentials (--zookeeper.sasl.*) or a TLS client certificate (--zookeeper.tls.cert-file)")
		}
	}
	return acl, nil
}
