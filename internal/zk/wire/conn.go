// Package wire is zkprom's own ZooKeeper client protocol, one connection
// and its session at a time: the connect handshake (session id, password,
// read-only flag, negotiated timeout), pings, pipelined requests matched by
// xid with a bound on how many are in flight, watch notifications delivered
// in order and never dropped, and close.
//
// It knows nothing of chroots, reconnects or retries: a session layer above
// it dials the next server with SessionID and Password to resume the session
// (and re-registers watches with setWatches2). Records are encoded by
// package jute.
package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zkprom/zkprom/internal/zk/jute"
)

// DefaultMaxBuffer is ZooKeeper's default jute.maxbuffer (1 MiB): the
// largest frame read or written.
const DefaultMaxBuffer = 1 << 20

// DefaultMaxInFlight bounds the requests sent and not yet answered.
const DefaultMaxInFlight = 1024

// Config says how to open a connection. The zero value asks for a new
// session with a 10 s timeout.
type Config struct {
	// SessionTimeout asked of the server (it grants 2–20 ticks whatever is
	// asked: see Conn.SessionTimeout). 0 means 10 s.
	SessionTimeout time.Duration
	// SessionID and Password resume an existing session (0 and nil: new).
	SessionID int64
	Password  []byte
	// LastZxid is the largest zxid this client has seen (resuming); a server
	// that is behind it refuses the connection.
	LastZxid int64
	// CanBeReadOnly lets a partitioned server in read-only mode accept the
	// session (Conn.ReadOnly then says so).
	CanBeReadOnly bool
	// MaxBuffer is the largest frame accepted or sent (jute.maxbuffer);
	// 0 means DefaultMaxBuffer.
	MaxBuffer int
	// MaxInFlight bounds the requests awaiting an answer; 0 means
	// DefaultMaxInFlight. More wait (honouring their context).
	MaxInFlight int
	// Dial opens the TCP (or TLS) connection; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger gets the connection's debug chatter; nil discards it.
	Logger *slog.Logger

	// book is the session's record of its watches, kept by the writer
	// and the reader in wire order (nil: a bare connection).
	book watchBook
}

// watchBook is told of a session's watches in the order they go over the
// wire; Session keeps one across connections, to set them again.
type watchBook interface {
	// sending is told by the writer of a request that leaves a watch of
	// kind k on path, before it goes out. For a one-shot watch, false
	// says not to ask the server for it: a persistent watch of the
	// session on path delivers its events (servers before 3.9 keep one
	// watch mode per path and session, and the one-shot would replace
	// the persistent watch).
	sending(k watchKind, path string) bool
	// replied is told by the reader of the answer (nil or the server's
	// error code), before any event read after it.
	replied(k watchKind, path string, err error)
	// notified is told by the reader of every notification the
	// connection delivers, as it queues it (never of one dropped because
	// the connection ended). ok asks for extra to be delivered after it.
	notified(ev Event) (extra Event, ok bool)
}

// watchKind is what kind of watch a request leaves.
type watchKind int8

const (
	watchData watchKind = iota + 1
	watchExist
	watchChild
	watchPersistent
	watchPersistentRecursive
)

func (c Config) withDefaults() Config {
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.MaxBuffer <= 0 {
		c.MaxBuffer = DefaultMaxBuffer
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats counts what went over one connection.
type Stats struct {
	Requests  int64 // requests written (pings excluded)
	Pings     int64 // pings written
	Frames    int64 // frames read after the handshake
	Events    int64 // notifications read
	BytesRead int64
}

// Conn is one connection to one server, carrying one session.
type Conn struct {
	cfg       Config
	nc        net.Conn
	br        *bufio.Reader
	addr      string
	sessionID int64
	passwd    []byte
	timeout   time.Duration
	readOnly  bool

	sendq chan *request
	sem   chan struct{}
	done  chan struct{} // closed when the connection is gone
	wdone chan struct{} // closed when the writer has stopped

	mu      sync.Mutex
	pending map[int32]*request
	// Requests with a reserved xid (auth -4, setWatches -8), answered in
	// order per xid; auth answers come outside the request pipeline.
	special  map[int32][]*request
	err      error // why the connection ended
	closing  bool
	lastZxid atomic.Int64

	events *eventQueue

	requests, pings, frames, nevents, bytesRead atomic.Int64
}

type request struct {
	op   int32
	xid  int32
	body jute.Record
	resp func(d *jute.Decoder, hdr jute.ReplyHeader) // nil: no body expected
	// decodeOnError: multi and multiRead answers carry per-op results even
	// when the header has an error code.
	decodeOnError bool
	// watch is the watch the request leaves when it succeeds (for the
	// session's record of its watches), on path.
	watch watchKind
	path  string

	hdr     jute.ReplyHeader
	replied bool // the server answered (set before done is closed)
	err     error
	done    chan struct{}
}

// Dial connects to addr (host:port) and performs the handshake.
func Dial(ctx context.Context, addr string, cfg Config) (*Conn, error) {
	cfg = cfg.withDefaults()
	nc, err := cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial zookeeper %s: %w", addr, err)
	}
	c, err := NewConn(ctx, nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// NewConn performs the handshake on an open connection (TLS already
// established) and starts the connection's reader and writer.
func NewConn(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	cfg = cfg.withDefaults()
	c := &Conn{
		cfg:     cfg,
		nc:      nc,
		addr:    nc.RemoteAddr().String(),
		sendq:   make(chan *request, cfg.MaxInFlight),
		sem:     make(chan struct{}, cfg.MaxInFlight),
		done:    make(chan struct{}),
		wdone:   make(chan struct{}),
		pending: map[int32]*request{},
		special: map[int32][]*request{},
		events:  newEventQueue(),
	}
	// One reader for the handshake and after: nothing the server sent
	// behind the connect response is lost.
	c.br = bufio.NewReaderSize(nc, 64<<10)
	c.lastZxid.Store(cfg.LastZxid)
	if err := c.handshake(ctx); err != nil {
		return nil, fmt.Errorf("connect to zookeeper %s: %w", c.addr, err)
	}
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

func (c *Conn) handshake(ctx context.Context) error {
	deadline := time.Now().Add(c.cfg.SessionTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.nc.SetDeadline(deadline)
	defer c.nc.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	passwd := c.cfg.Password
	if passwd == nil {
		passwd = make([]byte, 16)
	}
	req := jute.ConnectRequest{
		LastZxidSeen: c.cfg.LastZxid,
		TimeOut:      int32(c.cfg.SessionTimeout / time.Millisecond),
		SessionID:    c.cfg.SessionID,
		Passwd:       passwd,
		ReadOnly:     c.cfg.CanBeReadOnly,
	}
	if err := writeFrame(c.nc, nil, &req); err != nil {
		return c.ctxErr(ctx, err)
	}
	frame, err := readFrame(c.br, c.cfg.MaxBuffer)
	if err != nil {
		return c.ctxErr(ctx, err)
	}
	if err := readOnlyRefusal(frame); err != nil {
		return err
	}
	var resp jute.ConnectResponse
	if err := jute.Decode(frame, &resp); err != nil {
		return fmt.Errorf("%w: connect response: %v", ErrProtocol, err)
	}
	if resp.TimeOut <= 0 {
		return ErrSessionExpiredAtConnect
	}
	c.sessionID = resp.SessionID
	c.passwd = append([]byte(nil), resp.Passwd...)
	c.timeout = time.Duration(resp.TimeOut) * time.Millisecond
	c.readOnly = resp.ReadOnly
	c.cfg.Logger.Debug("zookeeper session", "server", c.addr, "session", fmt.Sprintf("0x%x", c.sessionID), "timeout", c.timeout, "read_only", c.readOnly)
	return nil
}

// readOnlyRefusal recognizes a read-only server's answer to a request
// for a new session when it has no local sessions (localSessionsEnabled
// off): a reply header with ZNOTREADONLY instead of a connect response.
// Only a session made on a server with a quorum can come to it.
func readOnlyRefusal(frame []byte) error {
	var h jute.ReplyHeader
	if len(frame) != 16 || jute.Decode(frame, &h) != nil || Error(h.Err) != ErrNotReadOnly {
		return nil
	}
	return fmt.Errorf("%w: it makes no new session (its localSessionsEnabled is off): one made on a server with a quorum can come", ErrNotReadOnly)
}

func (c *Conn) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), err)
	}
	return err
}

// writeFrame writes one length-prefixed frame made of records.
func writeFrame(w io.Writer, buf []byte, rs ...jute.Record) error {
	e := jute.NewEncoder(append(buf[:0], 0, 0, 0, 0))
	for _, r := range rs {
		r.Encode(e)
	}
	b := e.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := w.Write(b)
	return err
}

// readFrame reads one frame of at most max bytes into a fresh slice (the
// records decoded from it may alias it).
func readFrame(r io.Reader, max int) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(l[:]))
	if n < 0 || int64(n) > int64(max) {
		return nil, &frameTooLarge{n: int64(n), max: max}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// frameTooLarge is a frame whose length is over the limit (or negative).
type frameTooLarge struct {
	n   int64
	max int
}

func (e *frameTooLarge) Error() string {
	return fmt.Sprintf("%v: frame of %d bytes (limit %d)", ErrFrameTooLarge, e.n, e.max)
}

func (e *frameTooLarge) Unwrap() error { return ErrFrameTooLarge }

// SessionID is the session's id.
func (c *Conn) SessionID() int64 { return c.sessionID }

// Password is the session's password (to resume it on another connection).
func (c *Conn) Password() []byte { return append([]byte(nil), c.passwd...) }

// SessionTimeout is the timeout the server granted.
func (c *Conn) SessionTimeout() time.Duration { return c.timeout }

// ReadOnly says whether the server accepted the session in read-only mode.
func (c *Conn) ReadOnly() bool { return c.readOnly }

// Server is the remote address.
func (c *Conn) Server() string { return c.addr }

// LastZxid is the largest zxid seen in a reply or notification.
func (c *Conn) LastZxid() int64 { return c.lastZxid.Load() }

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// dead says whether the connection has ended.
func (c *Conn) dead() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Err is why the connection ended (ErrConnClosed joined with the cause),
// or nil while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats {
	return Stats{
		Requests: c.requests.Load(), Pings: c.pings.Load(), Frames: c.frames.Load(),
		Events: c.nevents.Load(), BytesRead: c.bytesRead.Load(),
	}
}

// Events delivers the session's watch notifications in the order the
// server sent them, none dropped (they queue in memory until read). When
// the connection ends a last event with Type EventNone and the final State
// (Disconnected, Expired, AuthFailed or Closed) is delivered, then the
// channel is closed. A notification is queued before any reply that
// follows it on the wire is handed to its caller.
//
// Once Events has been called, read the channel until it is closed.
func (c *Conn) Events() <-chan Event { return c.events.channel() }

// fail ends the connection once: every pending request gets the error.
func (c *Conn) fail(cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	state := StateDisconnected
	switch {
	case c.closing:
		state = StateClosed
	case errors.Is(cause, ErrSessionExpired):
		state = StateExpired
	case errors.Is(cause, ErrAuthFailed):
		state = StateAuthFailed
	}
	c.err = errors.Join(ErrConnClosed, cause)
	pending := c.pending
	special := c.special
	c.pending, c.special = map[int32]*request{}, map[int32][]*request{}
	c.mu.Unlock()
	c.nc.Close()
	close(c.done)
	for _, r := range pending {
		c.finish(r, c.err)
	}
	for _, rs := range special {
		for _, r := range rs {
			c.finish(r, c.err)
		}
	}
	c.events.close(Event{Type: EventNone, State: state, Err: c.err})
	c.cfg.Logger.Debug("zookeeper connection ended", "server", c.addr, "session", fmt.Sprintf("0x%x", c.sessionID), "err", cause)
}

func (c *Conn) finish(r *request, err error) {
	r.err = err
	close(r.done)
	<-c.sem
}

// Close ends the session (closeSession: its ephemeral nodes go at once) and
// the connection. It waits at most a second for the server's answer.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.do(ctx, &request{op: jute.OpCloseSession, body: jute.Empty{}}, true)
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.fail(errors.New("closed by the client"))
	<-c.wdone
	if err != nil && !errors.Is(err, ErrConnClosed) {
		return fmt.Errorf("close zookeeper session 0x%x: %w", c.sessionID, err)
	}
	return nil
}

// Disconnect drops the connection and keeps the session (another
// connection may resume it with SessionID and Password until it expires).
func (c *Conn) Disconnect() {
	c.fail(errors.New("disconnected by the client"))
	<-c.wdone
}

// do sends a request and waits for its answer. replied says the server's
// answer came (err is then nil or the server's error code) and whatever
// r.resp decoded may be read. An ended ctx returns at once with replied
// false; the answer, when it comes, is dropped (its slot is freed then).
func (c *Conn) do(ctx context.Context, r *request, closing bool) (replied bool, err error) {
	r.done = make(chan struct{})
	select {
	case c.sem <- struct{}{}:
	case <-c.done:
		return false, c.Err()
	case <-ctx.Done():
		return false, ctx.Err()
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		<-c.sem
		return false, err
	}
	if closing {
		c.closing = true
	}
	c.mu.Unlock()
	c.sendq <- r // never blocks: it has room for every slot of sem
	select {
	case <-r.done:
	case <-c.done:
		// The writer may have stopped before taking r.
		select {
		case <-r.done:
		default:
			return false, c.Err()
		}
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return r.replied, r.err
}

func (c *Conn) writeLoop() {
	defer close(c.wdone)
	w := bufio.NewWriterSize(c.nc, 64<<10)
	interval := c.timeout / 3
	ping := time.NewTimer(interval)
	defer ping.Stop()
	var buf []byte
	xid := int32(0)
	for {
		select {
		case <-c.done:
			return
		case <-ping.C:
			err := writeFrame(w, buf, &jute.RequestHeader{Xid: jute.XidPing, Type: jute.OpPing})
			if err == nil {
				err = w.Flush()
			}
			if err != nil {
				c.fail(fmt.Errorf("write ping: %w", err))
				return
			}
			c.pings.Add(1)
			ping.Reset(interval)
		case r := <-c.sendq:
			for {
				if err := c.write(w, r, &xid, &buf); err != nil {
					c.fail(fmt.Errorf("write: %w", err))
					return
				}
				// Batch whatever else is queued into the same flush.
				select {
				case r = <-c.sendq:
					continue
				default:
				}
				break
			}
			if err := w.Flush(); err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				return
			}
			ping.Reset(interval)
		}
	}
}

// write encodes one request and registers it as pending. A request larger
// than MaxBuffer fails alone, before anything is written.
func (c *Conn) write(w *bufio.Writer, r *request, xid *int32, buf *[]byte) error {
	hdr := jute.RequestHeader{Type: r.op}
	switch r.op {
	case jute.OpAuth:
		hdr.Xid = jute.XidAuth
	case jute.OpSetWatches, jute.OpSetWatches2:
		hdr.Xid = jute.XidSetWatches
	default:
		*xid++
		if *xid <= 0 {
			*xid = 1
		}
		hdr.Xid = *xid
	}
	r.xid = hdr.Xid
	if r.watch != 0 && c.cfg.book != nil && !c.cfg.book.sending(r.watch, r.path) {
		r.body.(*jute.PathWatch).Watch = false // the session fires it (see watchBook)
	}
	e := jute.NewEncoder(append((*buf)[:0], 0, 0, 0, 0))
	hdr.Encode(e)
	r.body.Encode(e)
	b := e.Bytes()
	*buf = b
	if len(b)-4 > c.cfg.MaxBuffer {
		err := fmt.Errorf("%w: request of %d bytes (limit %d)", ErrFrameTooLarge, len(b)-4, c.cfg.MaxBuffer)
		if r.watch != 0 && c.cfg.book != nil {
			c.cfg.book.replied(r.watch, r.path, err)
		}
		c.finish(r, err)
		return nil
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		c.finish(r, err)
		return nil
	}
	if r.xid < 0 {
		c.special[r.xid] = append(c.special[r.xid], r)
	} else {
		c.pending[r.xid] = r
	}
	c.requests.Add(1)
	c.mu.Unlock()
	_, err := w.Write(b)
	return err
}

func (c *Conn) readLoop() {
	r := c.br
	readTimeout := c.timeout * 2 / 3
	for {
		c.nc.SetReadDeadline(time.Now().Add(readTimeout))
		frame, err := readFrame(r, c.cfg.MaxBuffer)
		var big *frameTooLarge
		if errors.As(err, &big) {
			if err = c.skipReply(r, big.n); err == nil {
				continue
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("nothing from the server for %s (2/3 of the session timeout): %w", readTimeout, err)
			}
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		c.frames.Add(1)
		c.bytesRead.Add(int64(len(frame)) + 4)
		if err := c.dispatch(frame); err != nil {
			c.fail(err)
			return
		}
	}
}

// skipReply reads the header of a reply of n bytes that is over
// MaxBuffer and discards the rest unbuffered: the request fails alone with
// ErrFrameTooLarge and the connection stays. (Dropping the connection, as
// the Java client does, only makes the caller's retry reconnect and read
// the same reply again.) A frame that is no reply to a pending request
// ends the connection.
func (c *Conn) skipReply(r io.Reader, n int64) error {
	tooLarge := &frameTooLarge{n: n, max: c.cfg.MaxBuffer}
	if n < 16 {
		return tooLarge
	}
	var h [16]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fmt.Errorf("%w: %w", tooLarge, err)
	}
	var hdr jute.ReplyHeader
	hdr.Decode(jute.NewDecoder(h[:]))
	if hdr.Xid <= 0 {
		return tooLarge // a notification or a special reply: never this large
	}
	if _, err := io.CopyN(io.Discard, r, n-16); err != nil {
		return fmt.Errorf("%w: %w", tooLarge, err)
	}
	c.frames.Add(1)
	c.bytesRead.Add(n + 4)
	c.noteZxid(hdr.Zxid)
	req, err := c.claim(hdr.Xid)
	if err != nil {
		return err
	}
	if req.watch != 0 && c.cfg.book != nil {
		c.cfg.book.replied(req.watch, req.path, codeErr(hdr.Err)) // the server left the watch
	}
	req.hdr = hdr
	c.finish(req, fmt.Errorf("%w: reply of %d bytes (limit %d)", ErrFrameTooLarge, n, c.cfg.MaxBuffer))
	return nil
}

func (c *Conn) noteZxid(zxid int64) {
	for zxid > 0 {
		old := c.lastZxid.Load()
		if zxid <= old || c.lastZxid.CompareAndSwap(old, zxid) {
			return
		}
	}
}

// dispatch handles one frame read after the handshake. An error ends the
// connection.
func (c *Conn) dispatch(frame []byte) error {
	d := jute.NewDecoder(frame)
	var hdr jute.ReplyHeader
	hdr.Decode(d)
	if d.Err() != nil {
		return fmt.Errorf("%w: reply header: %v", ErrProtocol, d.Err())
	}
	c.noteZxid(hdr.Zxid)
	switch hdr.Xid {
	case jute.XidNotification:
		var ev jute.WatcherEvent
		ev.Decode(d)
		if d.Err() != nil {
			return fmt.Errorf("%w: notification: %v", ErrProtocol, d.Err())
		}
		c.nevents.Add(1)
		if State(ev.State) == StateExpired {
			return ErrSessionExpired // the last event says so
		}
		e := Event{Type: EventType(ev.Type), State: State(ev.State), Path: ev.Path, Zxid: hdr.Zxid}
		if c.cfg.book != nil {
			c.events.pushNotified(e, c.cfg.book)
		} else {
			c.events.push(e)
		}
		return nil
	case jute.XidPing:
		return nil
	case jute.XidAuth, jute.XidSetWatches:
		c.mu.Lock()
		var r *request
		if q := c.special[hdr.Xid]; len(q) > 0 {
			r, c.special[hdr.Xid] = q[0], q[1:]
		}
		c.mu.Unlock()
		if r == nil {
			return fmt.Errorf("%w: unexpected reply with xid %d", ErrProtocol, hdr.Xid)
		}
		r.hdr = hdr
		r.replied = true
		c.finish(r, codeErr(hdr.Err))
		if hdr.Xid == jute.XidAuth && hdr.Err == int32(ErrAuthFailed) {
			return ErrAuthFailed // the server closes the connection after it
		}
		return nil
	}
	r, err := c.claim(hdr.Xid)
	if err != nil {
		return err
	}
	// r is ours now: nobody else finishes it.
	err = codeErr(hdr.Err)
	if r.resp != nil && (err == nil || (r.decodeOnError && d.Remaining() > 0)) {
		r.resp(d, hdr)
		var perr error
		if d.Err() != nil {
			perr = fmt.Errorf("%w: reply to op %d: %v", ErrProtocol, r.op, d.Err())
		} else if d.Remaining() != 0 {
			perr = fmt.Errorf("%w: reply to op %d: %d bytes left over", ErrProtocol, r.op, d.Remaining())
		}
		if perr != nil {
			// A reply that does not parse ends the connection.
			c.finish(r, errors.Join(ErrConnClosed, perr))
			return perr
		}
	}
	r.hdr = hdr
	r.replied = true
	if r.watch != 0 && c.cfg.book != nil {
		c.cfg.book.replied(r.watch, r.path, err)
	}
	saslRefused := r.op == jute.OpSASL && Error(hdr.Err) == ErrAuthFailed
	c.finish(r, err)
	if saslRefused {
		return ErrAuthFailed // the server closes the connection after it
	}
	return nil
}

// claim takes the pending request a reply with xid answers: nobody else
// finishes it then.
func (c *Conn) claim(xid int32) (*request, error) {
	c.mu.Lock()
	r, ok := c.pending[xid]
	delete(c.pending, xid)
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: reply with unknown xid %d", ErrProtocol, xid)
	}
	return r, nil
}
