package zk

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	gozk "github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
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

func (c *Client) addWatch(p string) chan WatchEvent {
	ch := make(chan WatchEvent, 1)
	fp := c.full(p)
	c.mu.Lock()
	c.watches[fp] = append(c.watches[fp], ch)
	c.mu.Unlock()
	return ch
}

func (c *Client) dropWatch(p string, ch chan WatchEvent) {
	fp := c.full(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.watches[fp]
	for i, w := range list {
		if w == ch {
			c.watches[fp] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(c.watches[fp]) == 0 {
		delete(c.watches, fp)
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

// dispatch turns the library's callback events into session events and
// fired watches, in order, on one goroutine.
func (c *Client) dispatch() {
	defer close(c.loopDone)
	for ev := range c.events.out() {
		if ev.Type == gozk.EventSession {
			c.onSession(ev)
			continue
		}
		we := WatchEvent{Path: c.rel(ev.Path), Err: ev.Err}
		fire := true // whether watches registered at this path fire
		switch ev.Type {
		case gozk.EventNodeCreated:
			we.Type = NodeCreated
		case gozk.EventNodeDeleted:
			we.Type = NodeDeleted
		case gozk.EventNodeDataChanged:
			we.Type = NodeDataChanged
		case gozk.EventNodeChildrenChanged:
			we.Type = NodeChildrenChanged
		case gozk.EventNotWatching:
			we.Type = WatchLost
		default:
			fire = false
		}
		if !fire {
			continue
		}
		c.mu.Lock()
		chans := c.watches[ev.Path]
		delete(c.watches, ev.Path)
		hooks := make([]*nodeHook, 0, len(c.hooks))
		for h := range c.hooks {
			hooks = append(hooks, h)
		}
		c.mu.Unlock()
		for _, ch := range chans {
			ch <- we
			close(ch)
		}
		for _, h := range hooks {
			h.fn(we)
		}
	}
	// Closed: whoever still waits on a watch learns it is gone.
	c.mu.Lock()
	for p, chans := range c.watches {
		for _, ch := range chans {
			ch <- WatchEvent{Type: WatchLost, Path: c.rel(p), Err: ErrClosing}
			close(ch)
		}
	}
	c.watches = map[string][]chan WatchEvent{}
	subs := c.subs
	c.subs = map[*subscription]struct{}{}
	c.mu.Unlock()
	for s := range subs {
		s.box.close()
	}
}

func (c *Client) onSession(ev gozk.Event) {
	var st State
	switch ev.State {
	case gozk.StateHasSession:
		st = StateConnected
	case gozk.StateDisconnected:
		st = StateDisconnected
	case gozk.StateExpired:
		st = StateExpired
		c.m.expirations.Inc()
	case gozk.StateAuthFailed:
		st = StateAuthFailed
	default: // connecting, connected (TCP only)
		return
	}
	se := SessionEvent{State: st}
	c.mu.Lock()
	if st == StateConnected {
		se.SessionID = c.conn.SessionID()
		se.NewSession = se.SessionID != c.sessionID
		c.sessionID = se.SessionID
	}
	if c.state == st && !se.NewSession {
		c.mu.Unlock()
		return
	}
	c.state = st
	for s := range c.subs {
		s.box.put(se)
	}
	c.mu.Unlock()
	c.m.setState(st)
	c.logger.Debug("ZooKeeper session state", "state", st, "session", fmt.Sprintf("0x%x", se.SessionID), "server", ev.Server)
}

type clientMetrics struct {
	state           *prometheus.GaugeVec
	expirations     prometheus.Counter
	requestDuration *prometheus.HistogramVec
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
	}
	m.setState(StateConnecting)
	if reg == nil {
		return m, nil
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"zookeeper": connect}, reg)
	for _, col := range []prometheus.Collector{m.state, m.expirations, m.requestDuration} {
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

// slogAdapter sends the library's chatter to slog at debug level, and
// keeps its failed connection attempts: they are what an operator needs
// when no server can be reached.
type slogAdapter struct{ c *Client }

func (a slogAdapter) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.c.logger.Debug(msg, "library", "go-zookeeper")
	if strings.HasPrefix(format, "failed to connect to") && len(args) == 2 {
		a.c.noteDialError(fmt.Sprint(args[0]), fmt.Sprint(args[1]))
	}
	// The library keeps the granted timeout to itself but logs it.
	if strings.HasPrefix(format, "authenticated: id=") && len(args) == 2 {
		if ms, ok := args[1].(int32); ok && ms > 0 {
			a.c.noteNegotiated(time.Duration(ms) * time.Millisecond)
		}
	}
}

// noteDialError records a failed connection attempt and warns about it,
// at most every 10 seconds.
func (c *Client) noteDialError(server, err string) {
	c.mu.Lock()
	c.lastDialErr = fmt.Sprintf("%s: %s", server, err)
	warn := time.Since(c.lastDialWarn) >= 10*time.Second
	if warn {
		c.lastDialWarn = time.Now()
	}
	c.mu.Unlock()
	if warn {
		c.logger.Warn("cannot reach ZooKeeper server; retrying", "server", server, "err", err, "servers", c.cs.String())
	}
}

// resolvingHostProvider hands out host:port strings without resolving
// them, so that the dialer resolves a name again on every connection
// attempt (the library's default resolves once, at start).
type resolvingHostProvider struct {
	mu      sync.Mutex
	servers []string
	next    int
	tried   int
}

func (h *resolvingHostProvider) Init(servers []string) error {
	h.servers = servers
	return nil
}

func (h *resolvingHostProvider) Len() int { return len(h.servers) }

func (h *resolvingHostProvider) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.servers[h.next]
	h.next = (h.next + 1) % len(h.servers)
	retryStart := h.tried >= len(h.servers)
	if retryStart {
		h.tried = 0
	}
	h.tried++
	return s, retryStart
}

func (h *resolvingHostProvider) Connected() {
	h.mu.Lock()
	h.tried = 0
	h.mu.Unlock()
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

func (t TLSConfig) dialer() (gozk.Dialer, error) {
	cfg, err := t.Config()
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return net.DialTimeout, nil
	}
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c := cfg.Clone()
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			c.ServerName = host
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: c}
		conn, err := d.Dial(network, addr)
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
// (the library's callback) and one consumer.
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
