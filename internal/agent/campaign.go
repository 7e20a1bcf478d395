package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

// ha is this agent's candidacy in its HA group: it campaigns, takes over
// once the previous leader's Prometheus no longer runs the overlay (asked
// through prevLeader), records the hand-over, holds the leadership and
// follows who leads. What it needs from the agent is handed in (haDeps);
// it tells the agent of changes through haDeps's funcs.
type ha struct {
	cfg    haConfig
	d      haDeps
	prev   *prevLeader
	logger *slog.Logger

	mu           sync.Mutex
	lead         leadership
	since        time.Time
	transitions  int
	leaderName   string // the current leader as last seen
	leaderTerm   int64
	leaderKnown  bool
	lastHandover time.Time
	waiting      string // why an elected member does not take over yet

	// The member in the leader record as last read (kept by follow, read
	// by prevLeader.watch).
	holder        configstore.HALeader
	holderTrusted bool
}

// haConfig is the candidacy's settings.
type haConfig struct {
	member          string // this agent's member name
	group           string
	electionPath    string // the candidates' nodes
	recordPath      string // the leader record
	advertiseURL    string // this agent's Prometheus, as recorded for the others
	ownURL          string // this agent's --prometheus.url
	disconnectGrace time.Duration
	checkTimeout    time.Duration // asking the previous leader's Prometheus
	untrustedWait   time.Duration
	retry           time.Duration // before standing again after an error
}

// haDeps is what the candidacy needs from the agent.
type haDeps struct {
	c groupSession
	// elect makes a candidacy in the group's election (newElection).
	elect func(path string, candidate []byte, opts zk.ElectionOptions) groupElection
	// access returns the cluster's access settings (ACLs of the nodes it
	// makes, whether the cluster is open).
	access func() configstore.Access
	// recordTrusted reports whether the leader record's ACL is the model's.
	recordTrusted func(ctx context.Context, acc configstore.Access) (bool, error)
	// leadershipChanged is called when this member became or stopped
	// being the acting leader (the agent switches the variant).
	leadershipChanged func(ctx context.Context)
	// viewChanged is called when what view() shows changed otherwise.
	viewChanged func(ctx context.Context)
	transitions prometheus.Counter // zkprom_ha_leaderships_total
	untrusted   prometheus.Counter // zkprom_ha_untrusted_takeovers_total
}

func newHA(cfg haConfig, d haDeps, logger *slog.Logger) *ha {
	logger = logger.With("part", "ha", "ha_group", cfg.group)
	return &ha{cfg: cfg, d: d, logger: logger, prev: &prevLeader{member: cfg.member, advertise: cfg.advertiseURL,
		ownURL: cfg.ownURL, timeout: cfg.checkTimeout, logger: logger}}
}

// holderView is the leader record as last read, for prevLeader.watch.
func (h *ha) holderView() (configstore.HALeader, bool, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holder, h.holderTrusted, h.lead != nil
}

// leading reports whether this agent may act as leader right now: it
// holds the leadership and the server confirmed its session within the
// grace (a process that was paused fails this at once on waking).
func (h *ha) leading() bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	l := h.lead
	h.mu.Unlock()
	return l != nil && l.Check() == nil
}

// run campaigns until ctx ends. Once elected it takes over (see
// takeOver) and wakes the agent to apply the overlay; when leadership is
// lost (or fails Check) it wakes the agent to remove it.
func (h *ha) run(ctx context.Context) {
	candidate, _ := json.Marshal(map[string]string{"member": h.cfg.member})
	// A new election per campaign: its nodes get the ACL of the access
	// settings as they are then.
	election := func() groupElection {
		acc := h.d.access()
		return h.d.elect(h.cfg.electionPath, candidate, zk.ElectionOptions{DisconnectGrace: h.cfg.disconnectGrace,
			ACL: acc.ACL(configstore.KindAgentDir), CandidateACL: acc.ACL(configstore.KindAgentNode), Logger: h.logger})
	}
	go h.follow(ctx, election())
	go h.prev.watch(ctx, h.holderView)
	resign := func(l leadership) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		l.Resign(rctx) // hand over at once on a clean exit
		cancel()
	}
	for ctx.Err() == nil {
		l, err := election().Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, zk.ErrNoAuth) {
				h.logger.Warn("election failed; standing again: the cluster's ha node admits only its agents (their identity is named at push; zkprom config status shows it)", "err", err)
			} else {
				h.logger.Warn("election failed; standing again", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(h.cfg.retry):
			}
			continue
		}
		h.logger.Info("elected leader of the HA group", "term", l.Term())
		if !h.takeOver(ctx, l) {
			if ctx.Err() != nil {
				resign(l)
			} else {
				l.Release() // the next campaign finds the node again if it is still ours
			}
			continue
		}
		h.mu.Lock()
		h.lead, h.since = l, time.Now()
		h.transitions++
		h.mu.Unlock()
		h.logger.Info("leader of the HA group", "term", l.Term())
		h.d.transitions.Inc()
		h.d.leadershipChanged(ctx)
		h.hold(ctx, l)
		h.mu.Lock()
		h.lead = nil
		h.mu.Unlock()
		reason := "the session was not confirmed within the grace"
		if err := context.Cause(l.Context()); err != nil {
			reason = err.Error()
		} else if ctx.Err() != nil {
			reason = "shutting down"
		}
		if ctx.Err() != nil {
			resign(l)
		} else {
			l.Release()
		}
		h.logger.Info("no longer leader of the HA group", "term", l.Term(), "reason", reason)
		h.d.leadershipChanged(ctx)
	}
}

// hold returns when leadership is lost, fails its check, or ctx ends.
func (h *ha) hold(ctx context.Context, l leadership) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.Context().Done():
			return
		case <-t.C:
			if err := l.Check(); err != nil {
				// Not confirmed within the grace (e.g. the process was
				// paused): step down now. When the node is still ours,
				// the next campaign finds it again.
				h.logger.Warn("leadership check failed; stepping down", "err", err)
				return
			}
		}
	}
}

// takeOver turns an elected member into the acting leader. The leader
// record names the last member that may run the overlay; while that
// member's Prometheus still runs it (its agent frozen, or dead with
// Prometheus alive), the old Prometheus still does the leader's work and
// the new leader waits, so that two never run it. A Prometheus that does
// not answer runs nothing. Then the hand-over is recorded with a fenced
// write, before any overlay is applied. False when leadership or ctx
// ended first.
func (h *ha) takeOver(ctx context.Context, l leadership) bool {
	defer h.setWaiting(ctx, "")
	var warned time.Time
	start := time.Now()
	for {
		if err := l.Check(); err != nil || ctx.Err() != nil {
			return false
		}
		prev, exists, err := h.readRecord(ctx)
		trusted := false
		if err == nil && exists {
			trusted, err = h.trusted(ctx)
		}
		if err == nil && exists && !trusted && !h.d.access().Open {
			// In a closed cluster only agents write the record with the
			// model's ACL: this one was not written that way. Its URL is
			// not asked; the record is replaced.
			h.d.untrusted.Inc()
			h.logger.Warn("the leader record's ACL is not the model's (someone else wrote it): taking over without asking the Prometheus it names", "previous", prev.Member, "url", prev.Prometheus)
			prev = configstore.HALeader{}
		}
		if err == nil {
			why := h.prev.runsOverlay(ctx, prev)
			if why != "" && !trusted {
				// Anyone may have written this record (an open cluster):
				// wait on it, but not for long.
				if left := h.cfg.untrustedWait - time.Since(start); left > 0 {
					why += fmt.Sprintf(" (the leader record is not protected by ACLs: taking over in %s at the latest)", left.Round(time.Second))
				} else {
					h.d.untrusted.Inc()
					h.logger.Warn("taking over: waited the longest allowed for a leader record anyone could have written", "waited", time.Since(start).Round(time.Millisecond), "previous", prev.Member, "reason", why)
					why = ""
				}
			}
			if why != "" {
				err = errors.New(why)
			} else if err = h.record(ctx, l, prev, exists, trusted); err == nil {
				return true
			}
		}
		h.setWaiting(ctx, err.Error())
		if time.Since(warned) >= 10*time.Second {
			h.logger.Warn("elected, not taking over yet", "term", l.Term(), "err", err)
			warned = time.Now()
		}
		select {
		case <-ctx.Done():
			return false
		case <-l.Context().Done():
			return false
		case <-time.After(takeoverRetry):
		}
	}
}

// trusted reports whether the group's leader record can only have been
// written by the cluster's agents or writers (its ACL is the model's, in a
// cluster that is not open).
func (h *ha) trusted(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, h.d.c.SessionTimeout())
	defer cancel()
	ok, err := h.d.recordTrusted(ctx, h.d.access())
	if errors.Is(err, zk.ErrNoNode) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the leader record's ACL: %w", err)
	}
	return ok, nil
}

// takeoverRetry is how often an elected member looks again at the
// previous leader's Prometheus.
const takeoverRetry = 250 * time.Millisecond

func (h *ha) setWaiting(ctx context.Context, why string) {
	why = bundle.CleanText(why) // it may quote a record anyone could write
	h.mu.Lock()
	changed := h.waiting != why
	h.waiting = why
	h.mu.Unlock()
	if changed {
		h.d.viewChanged(ctx)
	}
}

func (h *ha) readRecord(ctx context.Context) (rec configstore.HALeader, exists bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.d.c.SessionTimeout())
	defer cancel()
	data, _, err := h.d.c.Get(ctx, h.cfg.recordPath)
	if errors.Is(err, zk.ErrNoNode) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("read the leader record: %w", err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		h.logger.Warn("leader record is not JSON: overwriting it, without checking the previous leader's Prometheus", "err", err)
	}
	return rec, true, nil
}

// record writes the group's leader record, fenced by the election node:
// it fails once another member can have taken over.
// A record whose ACL is not the model's is replaced (deleted and created
// again) in the same transaction.
func (h *ha) record(ctx context.Context, l leadership, prev configstore.HALeader, exists, trusted bool) error {
	p := h.cfg.recordPath
	ctx, cancel := context.WithTimeout(ctx, h.d.c.SessionTimeout())
	defer cancel()
	rec := configstore.HALeader{Member: h.cfg.member, Term: l.Term(), Since: time.Now().UTC(),
		Prometheus: h.cfg.advertiseURL, Host: hostname()}
	if prev.Member != "" && prev.Term != l.Term() {
		rec.Previous, rec.PreviousTerm = prev.Member, prev.Term
	}
	out, _ := json.Marshal(rec)
	acc := h.d.access()
	ops := []zk.Op{zk.SetOp(p, out, -1)}
	switch {
	case !exists:
		ops = []zk.Op{zk.CreateOp(p, out, zk.Persistent, acc.ACL(configstore.KindAgentNode))}
	case !trusted && !acc.Open:
		ops = []zk.Op{zk.DeleteOp(p, -1), zk.CreateOp(p, out, zk.Persistent, acc.ACL(configstore.KindAgentNode))}
	}
	if _, err := l.Multi(ctx, ops...); err != nil {
		return fmt.Errorf("record the leadership: %w", err)
	}
	h.mu.Lock()
	h.leaderName, h.leaderTerm, h.leaderKnown, h.lastHandover = rec.Member, rec.Term, true, rec.Since
	h.mu.Unlock()
	return nil
}

// follow keeps the current leader of the group known (for status and
// metrics on every member). It reads the election and the leader record
// again when a ZooKeeper watch on either fires, and every followRecheck
// all the same: no watch fires when the record's ACL changes.
func (h *ha) follow(ctx context.Context, e groupElection) {
	electionPath, recordPath := h.cfg.electionPath, h.cfg.recordPath
	var candidates, record <-chan zk.WatchEvent // armed watches; nil: arm at the next read
	for {
		rctx, cancel := context.WithTimeout(ctx, h.d.c.SessionTimeout())
		// Armed before reading: a change after the read fires them.
		if candidates == nil {
			if _, _, ch, err := h.d.c.ChildrenW(rctx, electionPath); err == nil {
				candidates = ch
			}
		}
		if record == nil {
			if _, _, ch, err := h.d.c.ExistsW(rctx, recordPath); err == nil {
				record = ch
			}
		}
		data, term, err := e.Leader(rctx)
		var rec configstore.HALeader
		rdata, _, rerr := h.d.c.Get(rctx, recordPath)
		cancel()
		if err == nil {
			var c struct{ Member string }
			json.Unmarshal(data, &c)
			h.mu.Lock()
			h.leaderName, h.leaderTerm, h.leaderKnown = c.Member, term, true
			if rerr == nil && json.Unmarshal(rdata, &rec) == nil && rec.Term == term {
				h.lastHandover = rec.Since
			}
			h.mu.Unlock()
		}
		if rerr == nil {
			trusted, terr := h.trusted(ctx)
			h.mu.Lock()
			h.holder, h.holderTrusted = rec, trusted && terr == nil
			h.mu.Unlock()
		}
		wait := followRecheck
		if candidates == nil || record == nil {
			wait = followRetry // no watch (ZooKeeper away, no election yet): look again soon
		}
		select {
		case <-ctx.Done():
			return
		case <-candidates:
			candidates = nil
		case <-record:
			record = nil
		case <-time.After(wait):
		}
	}
}

// followRecheck is how often follow reads the group again without a
// watch firing; followRetry is the pause while a watch cannot be armed.
const (
	followRecheck = 10 * time.Second
	followRetry   = time.Second
)

// haView is what status and metrics show of the HA group.
type haView struct {
	Group        string
	Leader       bool
	Term         int64 // own term while leader
	Since        time.Time
	Transitions  int
	LeaderName   string
	LeaderTerm   int64
	LeaderKnown  bool
	LastHandover time.Time
	Waiting      string
}

func (h *ha) view() haView {
	if h == nil {
		return haView{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v := haView{Group: h.cfg.group, Transitions: h.transitions, LeaderName: h.leaderName, LeaderTerm: h.leaderTerm, LeaderKnown: h.leaderKnown, LastHandover: h.lastHandover, Waiting: h.waiting}
	if h.lead != nil && h.lead.Check() == nil {
		v.Leader, v.Term, v.Since = true, h.lead.Term(), h.since
	}
	return v
}
