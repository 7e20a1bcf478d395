package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Auth is one set of credentials a session adds (addAuth) on every
// connection.
type Auth struct {
	Scheme string
	Data   []byte
}

// SessionConfig says how to keep a session over connections.
type SessionConfig struct {
	// Servers are host:port addresses, tried in turn from the first; host
	// names are resolved again at each dial. ParseConnectString gives them
	// and Chroot from a connect string.
	Servers []string
	// Chroot, when set, is the node every path is relative to: it is put
	// before every path sent and taken off every path received (events,
	// created paths, multi results, ephemerals). "" or "/" means none.
	Chroot string
	// Conn is every connection's settings (SessionID, Password and
	// LastZxid are the session's own and are ignored).
	Conn Config
	// Auth is re-sent on every connection before anything else.
	Auth []Auth
	// SASL, when set, authenticates every connection (after Auth, before
	// the watches are set again). A refusal ends the session
	// (StateAuthFailed), as it would on every server.
	SASL SASLMechanism
	// RetryDelay is the pause after every server was tried in vain; 0
	// means 200 ms.
	RetryDelay time.Duration
	Logger     *slog.Logger
}

// Session is one ZooKeeper session kept across connections: when a
// connection fails, the next server is dialed with the session's id and
// password, the credentials are sent again and every watch is set again
// (setWatches2) with the last zxid seen, so one-shot watches fire for
// what changed meanwhile and persistent ones come back.
//
// A request in flight when a connection fails gets ErrConnectionLoss (it
// may or may not have been applied); a new request waits for the next
// connection (bounded by its context). Once the server says the session
// expired it stays expired: every request gets ErrSessionExpired and the
// caller makes a new Session.
type Session struct {
	cfg    SessionConfig
	root   chroot
	logger *slog.Logger
	events *eventQueue

	mu       sync.Mutex
	conn     *Conn         // nil while reconnecting
	ready    chan struct{} // closed when conn is set; replaced when it goes
	err      error         // terminal: expired or closed
	closed   bool
	watches  watchSet
	lastZxid int64
	next     int // index of the server to dial next
	id       int64
	passwd   []byte
	timeout  time.Duration
	// seenRW: a server with a quorum accepted the session. Until then
	// the session is a read-only server's own, which no other server
	// knows: a reconnect asks for a new one.
	seenRW bool

	stop context.CancelFunc
	done chan struct{}
}

// watchSet is the session's record of its watches, kept to set them again.
// It holds the one-shot watches the server was not asked for too (see
// Session.sending): they are set again like the others, since the
// server reports what a one-shot watch missed while disconnected, and
// setWatches2 applies the persistent watches after the one-shot ones (on
// 3.8 the persistent mode then stays).
type watchSet map[watchKind]map[string]struct{}

func (w watchSet) has(k watchKind, p string) bool {
	_, ok := w[k][p]
	return ok
}

func (w watchSet) add(k watchKind, p string) {
	if w[k] == nil {
		w[k] = map[string]struct{}{}
	}
	w[k][p] = struct{}{}
}

func (w watchSet) list(k watchKind) []string {
	out := make([]string, 0, len(w[k]))
	for p := range w[k] {
		out = append(out, p)
	}
	return out
}

// fired removes the one-shot watches an event has triggered.
func (w watchSet) fired(ev Event) {
	switch ev.Type {
	case EventNodeCreated, EventNodeDataChanged:
		delete(w[watchData], ev.Path)
		delete(w[watchExist], ev.Path)
	case EventNodeDeleted:
		delete(w[watchData], ev.Path)
		delete(w[watchExist], ev.Path)
		delete(w[watchChild], ev.Path)
	case EventNodeChildrenChanged:
		delete(w[watchChild], ev.Path)
	}
}

// NewSession opens a new session on the first server that answers.
func NewSession(ctx context.Context, cfg SessionConfig) (*Session, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("zookeeper session: no servers")
	}
	if cfg.Chroot != "" {
		if err := ValidatePath(cfg.Chroot); err != nil {
			return nil, fmt.Errorf("zookeeper session: chroot: %w", err)
		}
		if cfg.Chroot == "/" {
			cfg.Chroot = ""
		}
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		cfg:     cfg,
		root:    chroot(cfg.Chroot),
		logger:  cfg.Logger,
		events:  newEventQueue(),
		ready:   make(chan struct{}),
		watches: watchSet{},
		done:    make(chan struct{}),
	}
	c, err := s.dialRound(ctx)
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.setConn(c)
	go s.run(runCtx, c)
	return s, nil
}

// SessionID, Password and SessionTimeout are the session's.
func (s *Session) SessionID() int64 { s.mu.Lock(); defer s.mu.Unlock(); return s.id }

// Password is the session's password.
func (s *Session) Password() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.passwd...)
}

// ReadOnly says whether the session is on a read-only server now (one
// cut off from its quorum, with Config.CanBeReadOnly): what it reads may
// be behind.
func (s *Session) ReadOnly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil && s.conn.ReadOnly()
}

// SessionTimeout is the timeout the server granted (on the last connection).
func (s *Session) SessionTimeout() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timeout
}

// Events delivers watch events and the session's state changes in order,
// none dropped: Disconnected when a connection fails, SyncConnected (or
// ConnectedReadOnly) on the next, Expired or Closed last, then the channel
// closes. Once called, read it until it is closed.
func (s *Session) Events() <-chan Event { return s.events.channel() }

// Close ends the session and waits for its goroutine.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	c := s.conn
	s.mu.Unlock()
	var err error
	if c != nil {
		err = c.Close()
	}
	s.stop()
	<-s.done
	return err
}

// Conn waits for the current connection (for what Session does not wrap).
// The connection knows no chroot: its paths are the server's.
func (s *Session) Conn(ctx context.Context) (*Conn, error) {
	for {
		s.mu.Lock()
		c, err := s.conn, s.err
		if c != nil && c.dead() {
			// The connection has failed, but run may not have seen its
			// last event yet: a request sent on it would fail at once
			// with a connection loss though the session can go on. Take
			// it down here and wait for the next, like run does.
			s.dropConn(c)
			c = nil
		}
		ready := s.ready
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if c != nil {
			return c, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("zookeeper: waiting for a connection: %w", ctx.Err())
		}
	}
}

// dropConn takes c, failed, down as the current connection (s.mu held):
// new requests wait for the next. Once only per connection, whether
// Conn or run comes first: waiters on s.ready must see it closed by
// setConn.
func (s *Session) dropConn(c *Conn) {
	if s.conn == c {
		s.conn = nil
		s.ready = make(chan struct{})
	}
}

// setConn makes c the current connection, unless the session was closed
// meanwhile (false).
func (s *Session) setConn(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conn = c
	s.id, s.passwd, s.timeout = c.SessionID(), c.Password(), c.SessionTimeout()
	s.seenRW = s.seenRW || !c.ReadOnly()
	close(s.ready)
	return true
}

// dialRound tries every server once, from s.next on.
func (s *Session) dialRound(ctx context.Context) (*Conn, error) {
	var errs []error
	for range s.cfg.Servers {
		s.mu.Lock()
		addr := s.cfg.Servers[s.next%len(s.cfg.Servers)]
		s.next++
		cfg := s.cfg.Conn
		if s.seenRW {
			cfg.SessionID, cfg.Password = s.id, s.passwd
		}
		cfg.LastZxid = s.lastZxid
		s.mu.Unlock()
		cfg.book = s
		dctx, cancel := context.WithTimeout(ctx, max(cfg.withDefaults().SessionTimeout/3, time.Second))
		c, err := Dial(dctx, addr, cfg)
		cancel()
		if err == nil {
			err = s.restore(ctx, c)
			if err == nil {
				return c, nil
			}
			c.Disconnect()
		}
		if errors.Is(err, ErrSessionExpired) || errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrSASL) {
			return nil, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// restore sends the credentials and the watches on a fresh connection.
func (s *Session) restore(ctx context.Context, c *Conn) error {
	for _, a := range s.cfg.Auth {
		if err := c.AddAuth(ctx, a.Scheme, a.Data); err != nil {
			return err
		}
	}
	if s.cfg.SASL != nil {
		if err := c.SASL(ctx, s.cfg.SASL); err != nil {
			return err
		}
	}
	s.mu.Lock()
	w := Watches{
		Data: s.watches.list(watchData), Exist: s.watches.list(watchExist), Child: s.watches.list(watchChild),
		Persistent: s.watches.list(watchPersistent), PersistentRecursive: s.watches.list(watchPersistentRecursive),
	}
	zxid := s.lastZxid
	s.mu.Unlock()
	if len(w.Data)+len(w.Exist)+len(w.Child)+len(w.Persistent)+len(w.PersistentRecursive) == 0 {
		return nil
	}
	return c.SetWatches(ctx, zxid, w)
}

// Session is its connections' watchBook. Servers before 3.9
// (ZOOKEEPER-4466) keep one watch mode per path and session: a one-shot
// data or exists watch set on the path of a persistent recursive watch
// replaces it (from then on the recursive watch sees no creation or
// change below, only deletions), and a persistent recursive watch set
// over a pending children watch (also by setWatches2 on a reconnect)
// takes it over, and recursive watches get no children events. So a
// one-shot watch on a path with a persistent watch is not asked of the
// server: the persistent watch's events at the path fire it, and a
// children watch beside a recursive watch fires on the creation or
// deletion of a child, with a children event made up after it (3.9+
// sends one itself when its children watch was set before the recursive
// one: then it comes twice).
func (s *Session) sending(k watchKind, p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch k {
	case watchPersistent, watchPersistentRecursive:
		// Recorded as it goes out, not when answered: a one-shot watch
		// sent after it knows it is there, as the server will.
		s.watches.add(k, p)
		return true
	}
	return !s.watches.has(watchPersistent, p) && !s.watches.has(watchPersistentRecursive, p)
}

func (s *Session) replied(k watchKind, p string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case k == watchPersistent || k == watchPersistentRecursive:
		if err != nil { // refused (a server before 3.6)
			delete(s.watches[k], p)
		}
	case err == nil && k == watchExist:
		s.watches.add(watchData, p) // exists on a node leaves a data watch
	case err == nil:
		s.watches.add(k, p)
	case k == watchExist && errors.Is(err, ErrNoNode):
		s.watches.add(watchExist, p)
	}
}

func (s *Session) notified(ev Event) (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watches.fired(ev)
	if ev.Type != EventNodeCreated && ev.Type != EventNodeDeleted || ev.Path == "/" {
		return Event{}, false
	}
	parent := ev.Path[:max(strings.LastIndexByte(ev.Path, '/'), 1)]
	if !s.watches.has(watchChild, parent) || !s.watches.has(watchPersistentRecursive, parent) {
		return Event{}, false
	}
	children := Event{Type: EventNodeChildrenChanged, State: ev.State, Path: parent, Zxid: ev.Zxid}
	s.watches.fired(children)
	return children, true
}

// run forwards each connection's events and, when one ends, dials the next.
func (s *Session) run(ctx context.Context, c *Conn) {
	defer close(s.done)
	for {
		state := StateSyncConnected
		if c.ReadOnly() {
			state = StateConnectedReadOnly
			go s.seekReadWrite(ctx, c)
		}
		s.events.push(Event{Type: EventNone, State: state})
		var last Event
		for ev := range c.Events() {
			if ev.Type == EventNone && ev.Err != nil {
				last = ev
				continue
			}
			ev.Path = s.root.client(ev.Path)
			s.events.push(ev)
		}
		s.mu.Lock()
		s.dropConn(c)
		s.lastZxid = max(s.lastZxid, c.LastZxid())
		closed := s.closed
		s.mu.Unlock()
		if closed {
			s.end(ErrClosing, StateClosed)
			return
		}
		if last.State == StateExpired || last.State == StateAuthFailed {
			s.end(last.Err, last.State)
			return
		}
		s.events.push(Event{Type: EventNone, State: StateDisconnected, Err: last.Err})
		s.logger.Debug("zookeeper connection lost, reconnecting", "server", c.Server(), "err", last.Err)
		lost := time.Now()
		for {
			if s.cfg.Conn.CanBeReadOnly && time.Since(lost) > s.SessionTimeout() {
				// No server took the session for longer than its timeout:
				// the ensemble has expired it, and a read-only server
				// refuses it. The owner's new session can be one a
				// read-only server accepts.
				s.end(fmt.Errorf("%w: no server took it within its timeout (%s)", ErrSessionExpired, s.SessionTimeout()), StateExpired)
				return
			}
			next, err := s.dialRound(ctx)
			if err == nil {
				if !s.setConn(next) { // Close came while dialing: it saw no connection
					next.Close()
					s.end(ErrClosing, StateClosed)
					return
				}
				c = next
				break
			}
			s.logger.Debug("zookeeper: no server took the session, trying again", "err", err)
			if errors.Is(err, ErrSessionExpired) {
				s.end(err, StateExpired)
				return
			}
			if errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrSASL) {
				s.end(err, StateAuthFailed)
				return
			}
			select {
			case <-ctx.Done():
				s.end(ErrClosing, StateClosed)
				return
			case <-time.After(s.cfg.RetryDelay):
			}
		}
	}
}

// seekReadWrite asks the servers, while c is a read-only server's
// connection, whether they have a quorum (the four-letter word isro,
// allowed wherever read-only mode is on), from every 100 ms to every
// minute; at the first that has, it drops c, and the session moves there.
func (s *Session) seekReadWrite(ctx context.Context, c *Conn) {
	wait := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
		for i, addr := range s.cfg.Servers {
			if addr == c.Server() || !isReadWrite(ctx, addr, s.cfg.Conn.withDefaults().Dial) {
				continue
			}
			s.logger.Info("zookeeper: a server with a quorum answers, leaving the read-only one", "server", addr, "read_only", c.Server())
			s.mu.Lock()
			s.next = i
			s.mu.Unlock()
			c.Disconnect()
			return
		}
	}
}

// isReadWrite says whether the server at addr answers isro with rw; it
// dials as the connections do (TLS included).
func isReadWrite(ctx context.Context, addr string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("isro")); err != nil {
		return false
	}
	answer := make([]byte, 2)
	_, err = io.ReadFull(conn, answer)
	return err == nil && string(answer) == "rw"
}

// ErrClosing: the session was closed by its owner.
var ErrClosing = errors.New("zookeeper session closed")

func (s *Session) end(err error, state State) {
	s.mu.Lock()
	s.err = err
	close(s.ready) // wake waiters: they see s.err
	s.mu.Unlock()
	s.events.close(Event{Type: EventNone, State: state, Err: err})
}

// connLoss marks errors of a connection that failed under a request.
func connLoss(err error) error {
	if err != nil && errors.Is(err, ErrConnClosed) && !errors.Is(err, ErrSessionExpired) {
		return fmt.Errorf("%w: %w", ErrConnectionLoss, err)
	}
	return err
}

// Get, Exists, Children, Create, Delete, Set, Multi, MultiRead, Sync,
// GetACL, SetACL, AddWatch, RemoveWatches, GetEphemerals and WhoAmI are the
// connection's, on the current connection, with paths relative to the
// chroot.

func (s *Session) Get(ctx context.Context, path string, watch bool) ([]byte, Stat, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return nil, Stat{}, opErr("get", path, err)
	}
	data, st, err := c.Get(ctx, s.root.server(path), watch)
	return data, st, connLoss(err)
}

func (s *Session) Exists(ctx context.Context, path string, watch bool) (Stat, bool, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return Stat{}, false, opErr("exists", path, err)
	}
	st, ok, err := c.Exists(ctx, s.root.server(path), watch)
	return st, ok, connLoss(err)
}

func (s *Session) Children(ctx context.Context, path string, watch bool) ([]string, Stat, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return nil, Stat{}, opErr("children", path, err)
	}
	ch, st, err := c.Children(ctx, s.root.server(path), watch)
	return ch, st, connLoss(err)
}

func (s *Session) Create(ctx context.Context, path string, data []byte, acl []ACL, mode CreateMode) (string, Stat, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return "", Stat{}, opErr("create", path, err)
	}
	p, st, err := c.Create(ctx, s.root.server(path), data, acl, mode)
	if err != nil {
		return "", st, connLoss(err)
	}
	return s.root.client(p), st, nil
}

func (s *Session) Delete(ctx context.Context, path string, version int32) error {
	c, err := s.Conn(ctx)
	if err != nil {
		return opErr("delete", path, err)
	}
	return connLoss(c.Delete(ctx, s.root.server(path), version))
}

func (s *Session) Set(ctx context.Context, path string, data []byte, version int32) (Stat, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return Stat{}, opErr("set", path, err)
	}
	st, err := c.Set(ctx, s.root.server(path), data, version)
	return st, connLoss(err)
}

func (s *Session) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return nil, opErr("multi", "", err)
	}
	if s.root != "" {
		ops = slices.Clone(ops)
		for i := range ops {
			ops[i].Path = s.root.server(ops[i].Path)
		}
	}
	res, err := c.Multi(ctx, ops...)
	for i := range res {
		if res[i].Path != "" {
			res[i].Path = s.root.client(res[i].Path)
		}
	}
	return res, connLoss(err)
}

func (s *Session) MultiRead(ctx context.Context, ops ...ReadOp) ([]ReadResult, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return nil, opErr("multiRead", "", err)
	}
	if s.root != "" {
		ops = slices.Clone(ops)
		for i := range ops {
			ops[i].Path = s.root.server(ops[i].Path)
		}
	}
	res, err := c.MultiRead(ctx, ops...)
	return res, connLoss(err)
}

func (s *Session) AddWatch(ctx context.Context, path string, recursive bool) error {
	c, err := s.Conn(ctx)
	if err != nil {
		return opErr("addWatch", path, err)
	}
	return connLoss(c.AddWatch(ctx, s.root.server(path), recursive))
}

// RemoveWatches removes watches on the server and from the session's record.
func (s *Session) RemoveWatches(ctx context.Context, path string, t WatcherType) error {
	c, err := s.Conn(ctx)
	if err != nil {
		return opErr("removeWatches", path, err)
	}
	path = s.root.server(path)
	if err := c.RemoveWatches(ctx, path, t); err != nil {
		return connLoss(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch t {
	case WatcherData:
		delete(s.watches[watchData], path)
		delete(s.watches[watchExist], path)
	case WatcherChildren:
		delete(s.watches[watchChild], path)
	default:
		for _, m := range s.watches {
			delete(m, path)
		}
	}
	return nil
}

func (s *Session) Sync(ctx context.Context, path string) (string, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return "", opErr("sync", path, err)
	}
	p, err := c.Sync(ctx, s.root.server(path))
	if err != nil {
		return "", connLoss(err)
	}
	return s.root.client(p), nil
}

func (s *Session) GetACL(ctx context.Context, path string) ([]ACL, Stat, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return nil, Stat{}, opErr("getACL", path, err)
	}
	acl, st, err := c.GetACL(ctx, s.root.server(path))
	return acl, st, connLoss(err)
}

func (s *Session) SetACL(ctx context.Context, path string, acl []ACL, version int32) (Stat, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return Stat{}, opErr("setACL", path, err)
	}
	st, err := c.SetACL(ctx, s.root.server(path), acl, version)
	return st, connLoss(err)
}

// GetEphemerals lists the session's ephemerals under the chroot whose path
// starts with prefix (the server matches by string prefix: those of a
// sibling of the chroot that shares its name's start are left out).
func (s *Session) GetEphemerals(ctx context.Context, prefix string) ([]string, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return nil, opErr("getEphemerals", prefix, err)
	}
	e, err := c.GetEphemerals(ctx, s.root.server(prefix))
	if err != nil {
		return nil, connLoss(err)
	}
	out := e[:0]
	for _, p := range e {
		if s.root.within(p) {
			out = append(out, s.root.client(p))
		}
	}
	return out, nil
}

func (s *Session) WhoAmI(ctx context.Context) ([]ClientInfo, error) {
	c, err := s.Conn(ctx)
	if err != nil {
		return nil, opErr("whoAmI", "", err)
	}
	who, err := c.WhoAmI(ctx)
	return who, connLoss(err)
}
