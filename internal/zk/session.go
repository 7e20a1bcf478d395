package zk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/zk/wire"
)

// State is the state of the client's session as other parts see it.
type State int

const (
	StateConnecting   State = iota // no session yet, trying servers
	StateConnected                 // a session is established and usable
	StateDisconnected              // connection lost; the session may still be alive
	StateExpired                   // the session expired; ephemerals and watches are gone
	StateAuthFailed                // the server refused the credentials
)

var stateNames = [...]string{"connecting", "connected", "disconnected", "expired", "auth_failed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// SessionEvent is one change of session state.
type SessionEvent struct {
	State     State
	SessionID int64 // for StateConnected: the session now in use
	// NewSession is true for StateConnected when the session differs from
	// the one before (the first session, or a new one after expiry): all
	// watches and ephemeral nodes of the old one are gone.
	NewSession bool
	// ReadOnly is true for StateConnected when the server is cut off from
	// its quorum and serves reads only (Config.ReadOnly).
	ReadOnly bool
}

// Subscription delivers session events in order; it never blocks the
// client. Close it when done.
type Subscription struct {
	C   <-chan SessionEvent
	sub *subscription
	c   *Client
}

type subscription struct {
	box *mailbox[SessionEvent]
}

// Subscribe returns a stream of session events from now on.
func (c *Client) Subscribe() *Subscription {
	s := &subscription{box: newMailbox[SessionEvent]()}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	return &Subscription{C: s.box.out(), sub: s, c: c}
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.c.mu.Lock()
	delete(s.c.subs, s.sub)
	s.c.mu.Unlock()
	s.sub.box.close()
}

// State returns the current session state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// ReadOnly says whether the session is on a read-only server now.
func (c *Client) ReadOnly() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == StateConnected && c.readOnly
}

// WatchEventType says what fired a watch.
type WatchEventType int

const (
	NodeCreated WatchEventType = iota
	NodeDeleted
	NodeDataChanged
	NodeChildrenChanged
	// WatchLost: the watch is gone without firing (session expired or
	// client closed); re-read to learn the state.
	WatchLost
)

// WatchEvent is a fired watch.
type WatchEvent struct {
	Type WatchEventType
	Path string
	Err  error // for WatchLost
}

// watchKey names the one-shot watches of a path: data and exists watches
// (fired by created, deleted and data changed) or children watches (fired
// by deleted and children changed).
type watchKey struct {
	path  string
	child bool
}

func (c *Client) addWatch(p string, child bool) chan WatchEvent {
	ch := make(chan WatchEvent, 1)
	k := watchKey{p, child}
	c.mu.Lock()
	c.watches[k] = append(c.watches[k], ch)
	c.mu.Unlock()
	return ch
}

func (c *Client) dropWatch(p string, child bool, ch chan WatchEvent) {
	k := watchKey{p, child}
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.watches[k]
	for i, w := range list {
		if w == ch {
			c.watches[k] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(c.watches[k]) == 0 {
		delete(c.watches, k)
	}
}

// nodeHook receives every node event of the session (the tree cache uses
// it instead of one channel per watched node).
type nodeHook struct{ fn func(WatchEvent) }

func (c *Client) addHook(fn func(WatchEvent)) *nodeHook {
	h := &nodeHook{fn: fn}
	c.mu.Lock()
	c.hooks[h] = struct{}{}
	c.mu.Unlock()
	return h
}

func (c *Client) removeHook(h *nodeHook) {
	c.mu.Lock()
	delete(c.hooks, h)
	c.mu.Unlock()
}

// run follows the sessions' event streams, one session after another: a
// new session is made when one expires (or its credentials are refused)
// until the client is closed. It turns the events into session events and
// fired watches, in order, on one goroutine.
func (c *Client) run(s *wire.Session) {
	defer close(c.loopDone)
	for s != nil {
		end := c.follow(s)
		if end == wire.StateClosed {
			break
		}
		s = c.renew(end)
	}
	// Closed: whoever still waits on a watch learns it is gone.
	c.mu.Lock()
	lost := c.takeWatches()
	subs := c.subs
	c.subs = map[*subscription]struct{}{}
	c.mu.Unlock()
	fireLost(lost, ErrClosing)
	for s := range subs {
		s.box.close()
	}
}

// follow handles one session's events until its end, which it returns
// (expired, auth_failed or closed).
func (c *Client) follow(s *wire.Session) wire.State {
	for ev := range s.Events() {
		if ev.Type != wire.EventNone {
			c.fire(ev)
			continue
		}
		switch ev.State {
		case wire.StateSyncConnected, wire.StateConnectedReadOnly:
			c.setState(StateConnected, s, ev.State == wire.StateConnectedReadOnly)
		case wire.StateDisconnected:
			c.setState(StateDisconnected, nil, false)
			c.logger.Debug("ZooKeeper connection lost", "err", ev.Err)
		case wire.StateExpired, wire.StateAuthFailed, wire.StateClosed:
			c.mu.Lock()
			c.sess = nil
			c.ready = make(chan struct{})
			lost := c.takeWatches()
			c.mu.Unlock()
			s.Close()
			switch ev.State {
			case wire.StateExpired:
				fireLost(lost, ErrSessionExpired)
				c.m.expirations.Inc()
				c.setState(StateExpired, nil, false)
			case wire.StateAuthFailed:
				fireLost(lost, ErrAuthFailed)
				c.setState(StateAuthFailed, nil, false)
				c.logger.Warn("ZooKeeper refused the session's credentials; making a new session", "err", ev.Err, "servers", c.cs.String())
			default:
				fireLost(lost, ErrClosing)
			}
			return ev.State
		}
	}
	return wire.StateClosed
}

// fire hands a watch event to the one-shot watches it triggers and to the
// hooks.
func (c *Client) fire(ev wire.Event) {
	we := WatchEvent{Path: ev.Path}
	var data, child bool // which one-shot watches of the path it fires
	switch ev.Type {
	case wire.EventNodeCreated:
		we.Type, data = NodeCreated, true
	case wire.EventNodeDeleted:
		we.Type, data, child = NodeDeleted, true, true
	case wire.EventNodeDataChanged:
		we.Type, data = NodeDataChanged, true
	case wire.EventNodeChildrenChanged:
		we.Type, child = NodeChildrenChanged, true
	default:
		return
	}
	c.mu.Lock()
	var chans []chan WatchEvent
	if data {
		chans = append(chans, c.watches[watchKey{ev.Path, false}]...)
		delete(c.watches, watchKey{ev.Path, false})
	}
	if child {
		chans = append(chans, c.watches[watchKey{ev.Path, true}]...)
		delete(c.watches, watchKey{ev.Path, true})
	}
	hooks := make([]*nodeHook, 0, len(c.hooks))
	for h := range c.hooks {
		hooks = append(hooks, h)
	}
	c.mu.Unlock()
	for _, ch := range chans {
		ch <- we // never blocks: room for one, and only one is sent
		close(ch)
	}
	for _, h := range hooks {
		h.fn(we)
	}
}

// takeWatches removes every one-shot watch (c.mu held).
func (c *Client) takeWatches() map[watchKey][]chan WatchEvent {
	w := c.watches
	c.watches = map[watchKey][]chan WatchEvent{}
	return w
}

// fireLost tells the holders of watches that they are gone.
func fireLost(watches map[watchKey][]chan WatchEvent, err error) {
	for k, chans := range watches {
		for _, ch := range chans {
			ch <- WatchEvent{Type: WatchLost, Path: k.path, Err: err}
			close(ch)
		}
	}
}

// setState records and publishes a state. s is the session for
// StateConnected.
func (c *Client) setState(st State, s *wire.Session, readOnly bool) {
	se := SessionEvent{State: st, ReadOnly: readOnly}
	if st == StateConnected {
		// Before the state is seen: SessionTimeout is the server's then.
		c.noteNegotiated(s.SessionTimeout())
	}
	c.mu.Lock()
	if st == StateConnected {
		se.SessionID = s.SessionID()
		se.NewSession = se.SessionID != c.sessionID
		c.sessionID = se.SessionID
	}
	if c.state == st && c.readOnly == readOnly && !se.NewSession {
		c.mu.Unlock()
		return
	}
	c.state, c.readOnly = st, readOnly
	for sub := range c.subs {
		sub.box.put(se)
	}
	c.mu.Unlock()
	c.m.setState(st)
	c.logger.Debug("ZooKeeper session state", "state", st, "session", fmt.Sprintf("0x%x", se.SessionID))
}

// renew makes a new session after the last one ended, retrying until it
// succeeds or the client is closed (nil).
func (c *Client) renew(why wire.State) *wire.Session {
	backoff := c.scfg.RetryDelay
	if why == wire.StateAuthFailed {
		backoff = 5 * time.Second // the same credentials: not at once again
	}
	for {
		select {
		case <-c.closed:
			return nil
		case <-time.After(backoff):
		}
		s, err := c.newSession(c.closedCtx)
		if err == nil {
			if !c.install(s) {
				s.Close()
				return nil
			}
			return s
		}
		c.logger.Debug("no new ZooKeeper session yet; retrying", "err", err)
		backoff = min(max(2*backoff, 200*time.Millisecond), 5*time.Second)
	}
}

// install makes s the client's session, unless the client was closed.
func (c *Client) install(s *wire.Session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return false
	}
	c.sess = s
	c.running = true
	close(c.ready)
	return true
}

type clientMetrics struct {
	state           *prometheus.GaugeVec
	expirations     prometheus.Counter
	requestDuration *prometheus.HistogramVec
	treeCacheMode   *prometheus.GaugeVec
	tooLarge        *prometheus.CounterVec
}

func newClientMetrics(reg prometheus.Registerer, connect string) (*clientMetrics, error) {
	m := &clientMetrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "zkprom_zookeeper_session_state",
			Help: "Current state of the ZooKeeper session (1 for the current state).",
		}, []string{"state"}),
		expirations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zkprom_zookeeper_session_expirations_total",
			Help: "ZooKeeper sessions that expired.",
		}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "zkprom_zookeeper_request_duration_seconds",
			Help:    "Duration of ZooKeeper requests by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op"}),
		treeCacheMode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "zkprom_zookeeper_tree_cache_mode",
			Help: "Tree caches running on the ZooKeeper session by how they learn of changes (persistent_watch: one persistent recursive watch per root, 3.6+; per_node_watches: a watch per node).",
		}, []string{"mode"}),
		tooLarge: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkprom_zookeeper_frames_too_large_total",
			Help: "ZooKeeper requests that failed because the request or its reply was over the client's max buffer (--zookeeper.max-buffer), by operation.",
		}, []string{"op"}),
	}
	m.setState(StateConnecting)
	for _, mode := range []CacheMode{CachePersistentWatch, CachePerNodeWatches} {
		m.treeCacheMode.WithLabelValues(mode.String())
	}
	if reg == nil {
		return m, nil
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"zookeeper": connect}, reg)
	for _, col := range []prometheus.Collector{m.state, m.expirations, m.requestDuration, m.treeCacheMode, m.tooLarge} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register ZooKeeper session metrics for %s: %w", connect, err)
		}
	}
	return m, nil
}

func (m *clientMetrics) setState(st State) {
	for i, name := range stateNames {
		v := 0.0
		if State(i) == st {
			v = 1
		}
		m.state.WithLabelValues(name).Set(v)
	}
}

// noteDialError records a failed connection attempt and warns about it,
// at most every 10 seconds.
func (c *Client) noteDialError(server string, err error) {
	c.mu.Lock()
	c.lastDialErr = fmt.Sprintf("%s: %v", server, err)
	warn := time.Since(c.lastDialWarn) >= 10*time.Second
	if warn {
		c.lastDialWarn = time.Now()
	}
	c.mu.Unlock()
	if warn {
		c.logger.Warn("cannot reach ZooKeeper server; retrying", "server", server, "err", err, "servers", c.cs.String())
	}
}

// TLSConfig says how to reach ZooKeeper's secure client port. The server's
// certificate is always verified.
type TLSConfig struct {
	CAFile     string `yaml:"ca_file,omitempty"`
	CertFile   string `yaml:"cert_file,omitempty"`
	KeyFile    string `yaml:"key_file,omitempty"`
	ServerName string `yaml:"server_name,omitempty"`
}

// Enabled reports whether TLS is asked for.
func (t TLSConfig) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// Config builds the crypto/tls configuration (nil when TLS is off).
func (t TLSConfig) Config() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	if t.CAFile == "" {
		return nil, fmt.Errorf("ZooKeeper TLS: a CA file is needed to verify the server (--zookeeper.tls.ca-file)")
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ZooKeeper TLS: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ZooKeeper TLS: CA file %s holds no PEM certificate", t.CAFile)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("ZooKeeper TLS: give both a client certificate and its key, or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ZooKeeper TLS: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// dialer opens a connection to a server, by TLS when it is configured. A
// host name is resolved at every dial, so a replaced server is found.
func (t TLSConfig) dialer() (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	cfg, err := t.Config()
	if err != nil {
		return nil, err
	}
	var nd net.Dialer
	if cfg == nil {
		return nd.DialContext, nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c := cfg.Clone()
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			c.ServerName = host
		}
		d := &tls.Dialer{NetDialer: &nd, Config: c}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("TLS to %s: %w", addr, err)
		}
		return conn, nil
	}, nil
}

// readAuthFile reads digest credentials, one "user:password" per line
// ('#' starts a comment).
func readAuthFile(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ZooKeeper auth file: %w", err)
	}
	var creds []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "digest:")
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("ZooKeeper auth file %s line %d: want user:password", path, i+1)
		}
		creds = append(creds, line)
	}
	if len(creds) == 0 {
		return nil, fmt.Errorf("ZooKeeper auth file %s holds no user:password line", path)
	}
	return creds, nil
}

// mailbox is an unbounded FIFO between a producer that must never block
// (the session's event loop) and one consumer.
type mailbox[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	signal chan struct{}
	ch     chan T
}

func newMailbox[T any]() *mailbox[T] {
	m := &mailbox[T]{signal: make(chan struct{}, 1), ch: make(chan T)}
	go m.run()
	return m
}

func (m *mailbox[T]) put(v T) {
	m.mu.Lock()
	if !m.closed {
		m.items = append(m.items, v)
	}
	m.mu.Unlock()
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

func (m *mailbox[T]) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

func (m *mailbox[T]) out() <-chan T { return m.ch }

func (m *mailbox[T]) run() {
	defer close(m.ch)
	for {
		m.mu.Lock()
		items, closed := m.items, m.closed
		m.items = nil
		m.mu.Unlock()
		for _, v := range items {
			m.ch <- v
		}
		if closed && len(items) == 0 {
			return
		}
		if len(items) == 0 {
			<-m.signal
		}
	}
}
