package zk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// RegisterOptions changes how Register keeps a node.
type RegisterOptions struct {
	// Sequential makes an ephemeral-sequential node: the path is then a
	// prefix such as /services/api/member_.
	Sequential bool
	ACL        []ACL
	// ACLFunc, when set, gives the ACL at each creation instead of ACL
	// (settings that may change while the registration lives).
	ACLFunc func() []ACL
	Logger  *slog.Logger
}

func (o RegisterOptions) acl() []ACL {
	if o.ACLFunc != nil {
		return o.ACLFunc()
	}
	return o.ACL
}

// Registration is an ephemeral node kept present for as long as it is
// open: it is created again on the new session after an expiry, and a node
// left behind by one of its own earlier sessions is replaced.
type Registration struct {
	c      *Client
	path   string
	opts   RegisterOptions
	logger *slog.Logger

	mu        sync.Mutex
	data      []byte
	actual    string         // path of the node while registered
	sessions  map[int64]bool // sessions this registration has used
	suspended bool
	closed    bool

	stop chan struct{}
	done chan struct{}
	poke chan struct{} // Resume: watch the node again
}

// Register creates the node and keeps it until Close.
func Register(ctx context.Context, c *Client, path string, data []byte, opts RegisterOptions) (*Registration, error) {
	if err := ValidatePath(path); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = c.logger
	}
	r := &Registration{
		c: c, path: path, opts: opts, data: data,
		logger:   opts.Logger.With("component", "registration", "path", path),
		sessions: map[int64]bool{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		poke:     make(chan struct{}, 1),
	}
	sub := c.Subscribe()
	if err := r.ensure(ctx); err != nil {
		sub.Close()
		return nil, err
	}
	go r.keep(sub)
	return r, nil
}

// Path returns the node's path (with the sequence number for sequential
// registrations); "" while not registered.
func (r *Registration) Path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.actual
}

// keep re-creates the node after reconnects and session changes, and at
// once when someone else deletes it (a watch on the node).
func (r *Registration) keep(sub *Subscription) {
	defer close(r.done)
	defer sub.Close()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := 100 * time.Millisecond
	watch := r.watch()
	for {
		select {
		case <-r.stop:
			return
		case <-r.c.Done():
			return
		case ev := <-sub.C:
			if ev.State != StateConnected {
				continue
			}
		case ev := <-watch:
			watch = nil
			if ev.Type == WatchLost && ev.Err != nil {
				retry.Reset(backoff) // the watch could not be set: look again later
				backoff = min(2*backoff, 10*time.Second)
				continue
			}
			if ev.Type == NodeDataChanged {
				watch = r.watch() // an Update: the node is there
				continue
			}
			if ev.Type == NodeDeleted && r.deletedByOther(ev.Path) {
				r.logger.Warn("the registration's node was deleted by another client; re-creating it", "node", ev.Path)
			}
		case <-r.poke:
		case <-retry.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.c.SessionTimeout())
		err := r.ensure(ctx)
		cancel()
		if err != nil {
			r.logger.Warn("could not restore registration; retrying", "err", err, "backoff", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if watch == nil {
			watch = r.watch()
		}
	}
}

// watch leaves a watch on the registered node. It returns nil while the
// registration is suspended or closed, and a channel that has fired when
// the node is already gone.
func (r *Registration) watch() <-chan WatchEvent {
	r.mu.Lock()
	p, idle := r.actual, r.closed || r.suspended
	r.mu.Unlock()
	if p == "" || idle {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.c.SessionTimeout())
	defer cancel()
	ok, _, w, err := r.c.ExistsW(ctx, p)
	if err != nil {
		ch := make(chan WatchEvent, 1) // look again through ensure
		ch <- WatchEvent{Type: WatchLost, Path: p, Err: err}
		return ch
	}
	if !ok {
		ch := make(chan WatchEvent, 1)
		ch <- WatchEvent{Type: NodeDeleted, Path: p}
		return ch
	}
	return w
}

// deletedByOther reports whether the node at p vanished while this
// registration meant to hold it (not a Suspend or Close of its own).
func (r *Registration) deletedByOther(p string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closed && !r.suspended && r.actual == p
}

// ensure makes sure the node exists and belongs to the current session.
func (r *Registration) ensure(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.suspended {
		return nil
	}
	session := r.c.SessionID()
	if session == 0 {
		return ErrNoSession
	}
	r.sessions[session] = true
	if r.actual != "" {
		ok, st, err := r.c.Exists(ctx, r.actual)
		if err != nil {
			return err
		}
		if ok && st.EphemeralOwner == session {
			return nil
		}
		if ok {
			if err := r.dropStale(ctx, r.actual, st); err != nil {
				return err
			}
		}
		r.actual = ""
	}
	if r.opts.Sequential {
		// A create whose reply was lost may have made our node already.
		if own, err := r.findOwn(ctx, session); err != nil || own != "" {
			r.actual = own
			return err
		}
		p, err := r.c.Create(ctx, r.path, r.data, EphemeralSequential, r.opts.acl())
		if err != nil {
			return err
		}
		r.actual = p
		r.logger.Info("registered", "node", p)
		return nil
	}
	_, err := r.c.Create(ctx, r.path, r.data, Ephemeral, r.opts.acl())
	if errors.Is(err, ErrNodeExists) {
		ok, st, serr := r.c.Exists(ctx, r.path)
		if serr != nil {
			return serr
		}
		switch {
		case ok && st.EphemeralOwner == session:
			r.actual = r.path
			return nil
		case ok:
			if err := r.dropStale(ctx, r.path, st); err != nil {
				return err
			}
		}
		_, err = r.c.Create(ctx, r.path, r.data, Ephemeral, r.opts.acl())
	}
	if err != nil {
		return err
	}
	r.actual = r.path
	r.logger.Info("registered", "node", r.path)
	return nil
}

// dropStale deletes a node left by one of this registration's own earlier
// sessions (its server has not expired it yet); a node of anyone else is
// an error.
func (r *Registration) dropStale(ctx context.Context, p string, st *Stat) error {
	if !r.sessions[st.EphemeralOwner] {
		return fmt.Errorf("register %s: the node is held by another session 0x%x (another instance registered under the same name?)", p, st.EphemeralOwner)
	}
	err := r.c.Delete(ctx, p, st.Version)
	if err != nil && !errors.Is(err, ErrNoNode) {
		return err
	}
	r.logger.Info("removed node of an earlier session", "node", p, "session", fmt.Sprintf("0x%x", st.EphemeralOwner))
	return nil
}

func (r *Registration) findOwn(ctx context.Context, session int64) (string, error) {
	dir, prefix := Parent(r.path), Base(r.path)
	children, _, err := r.c.Children(ctx, dir)
	if err != nil {
		return "", err
	}
	for _, ch := range children {
		if !strings.HasPrefix(ch, prefix) {
			continue
		}
		p := Join(dir, ch)
		ok, st, err := r.c.Exists(ctx, p)
		if err != nil {
			return "", err
		}
		if !ok {
			continue
		}
		if st.EphemeralOwner == session {
			return p, nil
		}
		if r.sessions[st.EphemeralOwner] {
			if err := r.dropStale(ctx, p, st); err != nil {
				return "", err
			}
		}
	}
	return "", nil
}

// Update changes the node's data (and what later re-creations write).
func (r *Registration) Update(ctx context.Context, data []byte) error {
	r.mu.Lock()
	r.data = data
	p := r.actual
	r.mu.Unlock()
	if p == "" {
		return nil
	}
	_, err := r.c.Set(ctx, p, data, -1)
	return err
}

// Suspend removes the node but keeps the registration, for Resume.
func (r *Registration) Suspend(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suspended = true
	return r.remove(ctx)
}

// Resume creates the node again after Suspend.
func (r *Registration) Resume(ctx context.Context) error {
	r.mu.Lock()
	r.suspended = false
	r.mu.Unlock()
	err := r.ensure(ctx)
	select {
	case r.poke <- struct{}{}:
	default:
	}
	return err
}

// Suspended reports whether the registration is suspended.
func (r *Registration) Suspended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.suspended
}

// Close deletes the node and stops keeping it.
func (r *Registration) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	err := r.remove(ctx)
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	return err
}

func (r *Registration) remove(ctx context.Context) error {
	if r.actual == "" {
		return nil
	}
	ok, st, err := r.c.Exists(ctx, r.actual)
	if err == nil && ok && st.EphemeralOwner == r.c.SessionID() {
		err = r.c.Delete(ctx, r.actual, st.Version)
	}
	if errors.Is(err, ErrNoNode) {
		err = nil
	}
	if err == nil {
		r.actual = ""
	}
	return err
}
