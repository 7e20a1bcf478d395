package zk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotLeader is returned for leader-only work attempted without (or
// after losing) leadership.
var ErrNotLeader = errors.New("not the leader")

const electionPrefix = "n_"

// ElectionOptions tunes an election.
type ElectionOptions struct {
	// DisconnectGrace is how long a leader stays leader while disconnected
	// (default: a third of the session timeout, so it steps down well
	// before its session can expire and someone else can win; at most
	// half of the timeout the server granted).
	DisconnectGrace time.Duration
	// ACL of the election's path when the election creates it (and its
	// missing parents); nil: the client's default.
	ACL []ACL
	// CandidateACL is the ACL of the candidates' nodes; nil: the client's
	// default.
	CandidateACL []ACL
	Logger       *slog.Logger
}

// Election is ZooKeeper's leader election recipe: candidates create
// ephemeral-sequential nodes; the lowest is leader; each other candidate
// watches the one just before it.
type Election struct {
	c         *Client
	path      string
	candidate []byte
	opts      ElectionOptions
	logger    *slog.Logger
}

// NewElection prepares a candidacy under path with candidate as its data.
func NewElection(c *Client, path string, candidate []byte, opts ElectionOptions) *Election {
	if opts.Logger == nil {
		opts.Logger = c.logger
	}
	return &Election{c: c, path: path, candidate: candidate, opts: opts,
		logger: opts.Logger.With("component", "election", "path", path)}
}

// grace is how long a disconnected leader stays leader: the option
// (default a third of the session timeout the server granted), never more
// than half of that timeout. A grace near the timeout could outlive the
// session, and another leader could be elected meanwhile.
func (e *Election) grace() time.Duration {
	t := e.c.SessionTimeout()
	switch g := e.opts.DisconnectGrace; {
	case g <= 0:
		return t / 3
	case g > t/2:
		return t / 2
	default:
		return g
	}
}

// Leadership is held until its context is cancelled.
type Leadership struct {
	e       *Election
	node    string
	term    int64
	session int64
	ctx     context.Context
	cancel  context.CancelCauseFunc

	mu        sync.Mutex
	confirmed time.Time // last time the server confirmed the session
}

// Campaign waits until this candidate is leader (or ctx ends).
func (e *Election) Campaign(ctx context.Context) (*Leadership, error) {
	if err := e.c.CreateAll(ctx, e.path, e.opts.ACL); err != nil {
		return nil, fmt.Errorf("election %s: %w", e.path, err)
	}
	sub := e.c.Subscribe()
	defer sub.Close()
	var own string
	var ownSession int64
	for {
		if err := ctx.Err(); err != nil {
			e.withdraw(own)
			return nil, err
		}
		session := e.c.SessionID()
		if own == "" || session != ownSession {
			p, err := e.candidacy(ctx, session)
			if err != nil {
				if !e.wait(ctx, sub, nil) {
					return nil, ctx.Err()
				}
				continue
			}
			own, ownSession = p, session
		}
		nodes, err := e.candidates(ctx)
		if err != nil {
			if !e.wait(ctx, sub, nil) {
				e.withdraw(own)
				return nil, ctx.Err()
			}
			continue
		}
		idx := -1
		for i, n := range nodes {
			if n.path == own {
				idx = i
			}
		}
		if idx < 0 {
			own = "" // our node is gone (expired session): stand again
			continue
		}
		if idx == 0 {
			l := e.lead(own, nodes[0].seq, ownSession)
			e.logger.Info("became leader", "term", l.term, "node", own)
			return l, nil
		}
		ok, _, w, err := e.c.ExistsW(ctx, nodes[idx-1].path)
		if err != nil || !ok {
			continue
		}
		if !e.wait(ctx, sub, w) {
			e.withdraw(own)
			return nil, ctx.Err()
		}
	}
}

// wait blocks until the watch fires, the session changes, or ctx ends.
func (e *Election) wait(ctx context.Context, sub *Subscription, w <-chan WatchEvent) bool {
	var retry <-chan time.Time
	if w == nil {
		retry = time.After(200 * time.Millisecond)
	}
	select {
	case <-ctx.Done():
		return false
	case <-w:
	case <-sub.C:
	case <-retry:
	}
	return true
}

func (e *Election) withdraw(own string) {
	if own == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.c.Delete(ctx, own, -1)
}

// candidacy finds or creates this session's candidate node.
func (e *Election) candidacy(ctx context.Context, session int64) (string, error) {
	children, _, err := e.c.Children(ctx, e.path)
	if err != nil {
		return "", err
	}
	for _, ch := range children {
		p := Join(e.path, ch)
		if ok, st, err := e.c.Exists(ctx, p); err == nil && ok && st.EphemeralOwner == session {
			return p, nil
		}
	}
	return e.c.Create(ctx, Join(e.path, electionPrefix), e.candidate, EphemeralSequential, e.opts.CandidateACL)
}

type candidateNode struct {
	path string
	seq  int64
}

func (e *Election) candidates(ctx context.Context) ([]candidateNode, error) {
	children, _, err := e.c.Children(ctx, e.path)
	if err != nil {
		return nil, err
	}
	var out []candidateNode
	for _, ch := range children {
		seq, ok := sequenceOf(ch)
		if !ok {
			continue
		}
		out = append(out, candidateNode{path: Join(e.path, ch), seq: seq})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out, nil
}

func sequenceOf(name string) (int64, bool) {
	if !strings.HasPrefix(name, electionPrefix) || len(name) < 10 {
		return 0, false
	}
	seq, err := strconv.ParseInt(name[len(name)-10:], 10, 64)
	return seq, err == nil
}

// Leader returns the current leader's candidate data and term.
func (e *Election) Leader(ctx context.Context) ([]byte, int64, error) {
	for {
		nodes, err := e.candidates(ctx)
		if err != nil {
			return nil, 0, err
		}
		if len(nodes) == 0 {
			return nil, 0, fmt.Errorf("election %s: no leader", e.path)
		}
		data, _, err := e.c.Get(ctx, nodes[0].path)
		if errors.Is(err, ErrNoNode) {
			continue // it just left
		}
		return data, nodes[0].seq, err
	}
}

func (e *Election) lead(node string, term, session int64) *Leadership {
	ctx, cancel := context.WithCancelCause(context.Background())
	l := &Leadership{e: e, node: node, term: term, session: session, ctx: ctx, cancel: cancel, confirmed: time.Now()}
	go l.watch()
	return l
}

// Context is cancelled when leadership is lost: on expiry, after a
// disconnect longer than the grace, when the own node is gone, or on
// Resign. context.Cause tells why.
func (l *Leadership) Context() context.Context { return l.ctx }

// Term is the leader's term: the sequence number of its election node,
// larger for every later leader.
func (l *Leadership) Term() int64 { return l.term }

// Node is the path of the own election node.
func (l *Leadership) Node() string { return l.node }

// Check reports whether leadership still holds right now, without a round
// trip: the context is live and the server confirmed the session within
// the grace. A process that was paused past its grace fails this check at
// once on waking, before any ZooKeeper event reaches it.
func (l *Leadership) Check() error {
	if err := context.Cause(l.ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	l.mu.Lock()
	// The monotonic clock stops while the machine is suspended; the wall
	// clock does not. The larger gap counts (a suspended VM wakes after
	// its session expired, like a paused process).
	since := max(time.Since(l.confirmed), time.Now().Round(0).Sub(l.confirmed.Round(0)))
	l.mu.Unlock()
	if since > l.e.grace() {
		return fmt.Errorf("%w: session not confirmed for %s", ErrNotLeader, since.Round(time.Millisecond))
	}
	return nil
}

// Multi applies ops only while this leadership holds: the transaction
// carries a version check on the own election node, which is gone once
// the session that made it has expired.
func (l *Leadership) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	res, err := l.e.c.Multi(ctx, append([]Op{CheckOp(l.node, 0)}, ops...)...)
	var me *MultiError
	if errors.As(err, &me) && me.Index == 0 {
		l.cancel(fmt.Errorf("election node %s is gone", l.node))
		return nil, fmt.Errorf("%w: fenced write refused: %v", ErrNotLeader, err)
	}
	if len(res) > 0 {
		res = res[1:]
	}
	return res, err
}

// Release gives this Leadership value up without removing the own node:
// its watch stops. A later Campaign of the same session finds the node
// again (a leader that failed Check and stands again).
func (l *Leadership) Release() { l.cancel(errors.New("released")) }

// Resign gives leadership up and removes the own node.
func (l *Leadership) Resign(ctx context.Context) error {
	l.cancel(errors.New("resigned"))
	err := l.e.c.Delete(ctx, l.node, -1)
	if errors.Is(err, ErrNoNode) {
		return nil
	}
	return err
}

// watch cancels the leadership when it can no longer be trusted.
func (l *Leadership) watch() {
	sub := l.e.c.Subscribe()
	defer sub.Close()
	grace := time.NewTimer(time.Hour)
	grace.Stop()
	confirm := time.NewTicker(l.e.grace() / 2)
	defer confirm.Stop()
	w := l.verify()
	for {
		select {
		case <-l.ctx.Done():
			return
		case ev := <-sub.C:
			switch ev.State {
			case StateConnected:
				grace.Stop()
				if ev.SessionID != l.session {
					l.lose("session expired")
					return
				}
				w = l.verify() // re-check the own node after every reconnect
			case StateDisconnected:
				grace.Reset(l.e.grace())
			case StateExpired, StateAuthFailed:
				l.lose("session " + ev.State.String())
				return
			}
		case <-grace.C:
			l.lose(fmt.Sprintf("disconnected for longer than %s", l.e.grace()))
			return
		case ev, ok := <-w:
			if ok && ev.Type == NodeDeleted {
				l.lose("election node deleted")
				return
			}
			w = nil
			if l.e.c.State() == StateConnected {
				w = l.verify()
			}
		case <-confirm.C:
			if l.e.c.State() == StateConnected {
				l.confirm()
			}
		}
	}
}

// confirm checks with the server that the own node is still ours and
// records when, without leaving another watch.
func (l *Leadership) confirm() {
	ctx, cancel := context.WithTimeout(l.ctx, l.e.grace())
	defer cancel()
	start := time.Now()
	ok, st, err := l.e.c.Exists(ctx, l.node)
	switch {
	case err != nil:
		return
	case !ok || st.EphemeralOwner != l.session:
		l.lose("election node gone")
		return
	}
	l.mu.Lock()
	l.confirmed = start
	l.mu.Unlock()
}

// verify checks with the server that the own node is there and ours,
// records the confirmation time and returns a watch on the node.
func (l *Leadership) verify() <-chan WatchEvent {
	ctx, cancel := context.WithTimeout(l.ctx, l.e.grace())
	defer cancel()
	start := time.Now()
	ok, st, w, err := l.e.c.ExistsW(ctx, l.node)
	switch {
	case err != nil:
		return nil
	case !ok || st.EphemeralOwner != l.session:
		l.lose("election node gone")
		return nil
	}
	l.mu.Lock()
	l.confirmed = start
	l.mu.Unlock()
	return w
}

func (l *Leadership) lose(why string) {
	if l.ctx.Err() == nil {
		l.e.logger.Warn("lost leadership", "term", l.term, "reason", why)
	}
	l.cancel(errors.New(why))
}
