package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/prom"
	"github.com/zkprom/zkprom/internal/zk"
)

// leaderSuffix names the revision directory of the leader variant:
// DIR/revisions/r-0000000012.leader is r-0000000012 with leader.yml
// merged into prometheus.yml.
const leaderSuffix = ".leader"

// variantDir is the directory of revision rev, or of its leader variant.
func (d disk) variantDir(rev int, leader bool) string {
	return filepath.Join(d.dir, relVariantDir(rev, leader))
}

func relVariantDir(rev int, leader bool) string {
	if leader {
		return relRevDir(rev) + leaderSuffix
	}
	return relRevDir(rev)
}

// linkedLeader reports whether DIR/current points at a leader variant.
func (d disk) linkedLeader() bool {
	return strings.HasSuffix(d.linkTarget(), leaderSuffix)
}

// pruneVariants removes leader variants other than keep's and the live
// one, older than age (a younger one may be in the middle of an apply).
func (d disk) pruneVariants(keep int, age time.Duration) error {
	entries, err := os.ReadDir(filepath.Join(d.dir, revisionsDir))
	if err != nil {
		return err
	}
	live := d.linkTarget()
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, leaderSuffix) || name == configstore.RevisionName(keep)+leaderSuffix ||
			filepath.Join(revisionsDir, name) == live {
			continue
		}
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < age {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.dir, revisionsDir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// renderVariant renders a bundle for this member: placeholders filled in,
// and for the leader variant leader.yml merged into prometheus.yml.
func renderVariant(b *bundle.Bundle, v bundle.Vars, leader bool) (*bundle.Bundle, error) {
	r, err := b.Render(v)
	if err != nil || !leader {
		return r, err
	}
	overlay, ok := r.Files[bundle.LeaderFile]
	if !ok {
		return r, nil
	}
	merged, err := bundle.MergeOverlay(r.Files[bundle.MainFile], overlay)
	if err == nil {
		merged, err = addRuleFile(merged, bundle.LeaderMarker)
	}
	if err != nil {
		return nil, err
	}
	r.Files[bundle.MainFile] = merged
	r.Files[bundle.LeaderMarker] = []byte(markerContent)
	return r, nil
}

// markerContent is the leader marker (bundle.LeaderMarker) that the leader
// variant adds to rule_files. It shows in the configuration a Prometheus
// has loaded (/api/v1/status/config), which lets the next leader see
// whether the previous leader's Prometheus still runs the overlay, even
// when that agent is frozen or dead.
const markerContent = "# Written by zkprom agent: this Prometheus runs its HA group's leader overlay.\n" +
	"# It holds no rules; the next leader looks for its name (docs/fleet.md).\ngroups: []\n"

// addRuleFile appends name to the rule_files of prometheus.yml.
func addRuleFile(main []byte, name string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(main, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a YAML mapping", bundle.MainFile)
	}
	m := doc.Content[0]
	entry := &yaml.Node{Kind: yaml.ScalarNode, Value: name}
	found := false
	for k := 0; k+1 < len(m.Content); k += 2 {
		if m.Content[k].Value != "rule_files" {
			continue
		}
		v := m.Content[k+1]
		switch {
		case v.Kind == yaml.SequenceNode:
			v.Content = append(v.Content, entry)
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			m.Content[k+1] = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{entry}}
		default:
			return nil, fmt.Errorf("%s line %d: rule_files is not a list", bundle.MainFile, v.Line)
		}
		found = true
	}
	if !found {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "rule_files"},
			&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{entry}})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// runsOverlay reports whether a configuration Prometheus has loaded (the
// YAML of /api/v1/status/config) is a leader variant: one of its
// rule_files is the marker.
func runsOverlay(loaded string) (bool, error) {
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal([]byte(loaded), &cfg); err != nil {
		return false, fmt.Errorf("parse the loaded configuration: %w", err)
	}
	for _, f := range cfg.RuleFiles {
		if filepath.Base(f) == bundle.LeaderMarker {
			return true, nil
		}
	}
	return false, nil
}

// ha is this agent's candidacy in its HA group.
type ha struct {
	f      *fleet
	group  string
	path   string
	logger *slog.Logger

	mu           sync.Mutex
	lead         *zk.Leadership
	since        time.Time
	transitions  int
	leaderName   string // the current leader as last seen
	leaderTerm   int64
	leaderKnown  bool
	lastHandover time.Time
	waiting      string // why an elected member does not take over yet

	// The member in the leader record, and how long its Prometheus has
	// not answered (kept by watchHolder).
	holder        configstore.HALeader
	holderTrusted bool
	silence       silence
}

// silence counts the probes in a row that found nothing serving at one
// record holder's Prometheus.
type silence struct {
	holder    string // holderKey of the record
	failures  int
	since     time.Time // start of the first failed probe
	lastProbe time.Time
}

func newHA(f *fleet) *ha {
	p := f.a.store.HAGroupPath(f.cfg.HAGroup)
	return &ha{f: f, group: f.cfg.HAGroup, path: p, logger: f.logger.With("part", "ha", "ha_group", f.cfg.HAGroup)}
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
	candidate, _ := json.Marshal(map[string]string{"member": h.f.a.cfg.Member})
	// A new election per campaign: its nodes get the ACL of the access
	// settings as they are then.
	election := func() *zk.Election {
		acc := h.f.a.Access()
		return zk.NewElection(h.f.a.c, zk.Join(h.path, "election"), candidate, zk.ElectionOptions{DisconnectGrace: h.f.cfg.DisconnectGrace,
			ACL: acc.ACL(configstore.KindAgentDir), CandidateACL: acc.ACL(configstore.KindAgentNode), Logger: h.logger})
	}
	go h.follow(ctx, election())
	go h.watchHolder(ctx)
	resign := func(l *zk.Leadership) {
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
			case <-time.After(h.f.a.cfg.RetryInterval):
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
		h.f.m.haTransitions.Inc()
		h.f.wakeAgent()
		h.f.publishHA()
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
		h.f.wakeAgent()
		h.f.publishHA()
	}
}

// hold returns when leadership is lost, fails its check, or ctx ends.
func (h *ha) hold(ctx context.Context, l *zk.Leadership) {
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
func (h *ha) takeOver(ctx context.Context, l *zk.Leadership) bool {
	defer h.setWaiting("")
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
		if err == nil && exists && !trusted && !h.f.a.Access().Open {
			// In a closed cluster only agents write the record with the
			// model's ACL: this one was not written that way. Its URL is
			// not asked; the record is replaced.
			h.f.m.haUntrusted.Inc()
			h.logger.Warn("the leader record's ACL is not the model's (someone else wrote it): taking over without asking the Prometheus it names", "previous", prev.Member, "url", prev.Prometheus)
			prev = configstore.HALeader{}
		}
		if err == nil {
			why := h.previousRunsOverlay(ctx, prev)
			if why != "" && !trusted {
				// Anyone may have written this record (an open cluster):
				// wait on it, but not for long.
				if left := h.f.cfg.UntrustedRecordWait - time.Since(start); left > 0 {
					why += fmt.Sprintf(" (the leader record is not protected by ACLs: taking over in %s at the latest)", left.Round(time.Second))
				} else {
					h.f.m.haUntrusted.Inc()
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
		h.setWaiting(err.Error())
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
	ctx, cancel := context.WithTimeout(ctx, h.f.a.c.SessionTimeout())
	defer cancel()
	ok, err := h.f.a.store.RecordTrusted(ctx, h.f.a.Access(), h.group)
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

func (h *ha) setWaiting(why string) {
	why = bundle.CleanText(why) // it may quote a record anyone could write
	h.mu.Lock()
	changed := h.waiting != why
	h.waiting = why
	h.mu.Unlock()
	if changed {
		h.f.publishHA()
	}
}

func (h *ha) readRecord(ctx context.Context) (rec configstore.HALeader, exists bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.f.a.c.SessionTimeout())
	defer cancel()
	data, _, err := h.f.a.c.Get(ctx, zk.Join(h.path, "leader"))
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

// previousRunsOverlay asks the Prometheus of the member in the leader
// record whether it still runs the overlay. It returns why this member
// must wait, or "" when it may take over.
func (h *ha) previousRunsOverlay(ctx context.Context, prev configstore.HALeader) string {
	if prev.Member == "" {
		return "" // no leader before
	}
	if prev.Member == h.f.a.cfg.Member && prev.Prometheus == h.f.cfg.AdvertiseURL && prev.Host == hostname() {
		return "" // this agent's own Prometheus: its own apply decides
	}
	if prev.Prometheus == "" {
		h.logger.Warn("taking over without checking the previous leader's Prometheus: the leader record does not name it (written by an older agent)", "previous", prev.Member)
		return ""
	}
	if !reachable(prev) {
		h.logger.Warn("taking over without checking the previous leader's Prometheus: its URL is a loopback address on another host (set --ha.advertise-url there)",
			"previous", prev.Member, "url", prev.Prometheus, "host", prev.Host)
		return ""
	}
	if silent, since := h.silentFor(prev); silent {
		h.logger.Warn("taking over: the previous leader's Prometheus has not answered for a while (host down or frozen)",
			"previous", prev.Member, "url", prev.Prometheus, "silent_for", since.Round(time.Millisecond))
		return ""
	}
	pc, err := prom.New(prom.Config{URL: h.peerURL(prev.Prometheus), HTTPClient: &http.Client{Timeout: h.f.cfg.TakeoverCheckTimeout}})
	if err != nil {
		h.logger.Warn("taking over without checking the previous leader's Prometheus: its URL is unusable", "previous", prev.Member, "err", err)
		return ""
	}
	// Two tries: one lost packet or slow answer must not count as a
	// Prometheus that runs nothing.
	var loaded string
	for try := 0; try < 2; try++ {
		if loaded, err = pc.LoadedConfig(ctx); err == nil || !notServing(err) {
			break
		}
	}
	if err != nil && notServing(err) {
		h.logger.Warn("taking over: the previous leader's Prometheus does not answer (host down or frozen)", "previous", prev.Member, "err", err)
		return ""
	}
	if err == nil {
		var on bool
		if on, err = runsOverlay(loaded); err == nil && !on {
			return ""
		} else if err == nil {
			return fmt.Sprintf("waiting for %s's Prometheus (%s on %s) to drop the leader overlay: its agent is frozen or dead; restart that agent, or stop that Prometheus",
				prev.Member, prev.Prometheus, prev.Host)
		}
	}
	return fmt.Sprintf("cannot tell whether %s's Prometheus (%s on %s) still runs the leader overlay: %v", prev.Member, prev.Prometheus, prev.Host, err)
}

// notServing reports whether err says that nothing serves at the address:
// refused, unreachable, reset, or no answer in time. Any other error (TLS,
// a name that does not resolve, an HTTP error) proves nothing either way.
func notServing(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// silentProbes is how many probes in a row must find nothing serving at
// the record holder's Prometheus before a new leader takes over without
// asking it again.
const silentProbes = 3

// silentFor reports whether the Prometheus of prev has not answered the
// last silentProbes probes, the latest one recent, and for how long.
func (h *ha) silentFor(prev configstore.HALeader) (bool, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	recent := time.Since(h.silence.lastProbe) <= h.f.cfg.TakeoverCheckTimeout+2*takeoverRetry
	if h.silence.holder != holderKey(prev) || h.silence.failures < silentProbes || !recent {
		return false, 0
	}
	return true, time.Since(h.silence.since)
}

func holderKey(r configstore.HALeader) string {
	return fmt.Sprintf("%s %d %s", r.Member, r.Term, r.Prometheus)
}

// watchHolder asks, while this member does not lead, whether the
// Prometheus of the member in the leader record answers at all
// (/-/ready). A new leader whose predecessor's Prometheus has been
// silent since before the election (a frozen or dead host) then takes over
// without asking it again.
func (h *ha) watchHolder(ctx context.Context) {
	hc := &http.Client{Timeout: h.f.cfg.TakeoverCheckTimeout}
	for {
		h.mu.Lock()
		rec, trusted, leading := h.holder, h.holderTrusted, h.lead != nil
		h.mu.Unlock()
		url := rec.Prometheus
		// Only a URL an agent of the cluster recorded is probed: a record
		// anyone could write must not send the followers anywhere.
		if leading || !trusted || rec.Member == "" || rec.Member == h.f.a.cfg.Member || url == "" || !reachable(rec) {
			url = ""
		}
		var failed bool
		if url != "" {
			start := time.Now()
			pc, err := prom.New(prom.Config{URL: h.peerURL(url), HTTPClient: hc})
			if err == nil {
				err = pc.Ready(ctx) // any HTTP answer (even "starting up") is an answer
			}
			failed = err != nil && notServing(err)
			h.mu.Lock()
			key := holderKey(rec)
			if h.silence.holder != key || !failed {
				h.silence = silence{holder: key}
			}
			if failed {
				if h.silence.failures == 0 {
					h.silence.since = start
				}
				h.silence.failures++
			}
			h.silence.lastProbe = time.Now()
			h.mu.Unlock()
		} else {
			h.mu.Lock()
			h.silence = silence{}
			h.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(takeoverRetry):
		}
	}
}

// peerURL is a recorded Prometheus URL (stored without credentials) with
// the user info of this agent's own --prometheus.url: the members of a
// group reach each other's Prometheus as they reach their own.
func (h *ha) peerURL(recorded string) string {
	own, err1 := url.Parse(h.f.a.cfg.Prometheus.URL)
	u, err2 := url.Parse(recorded)
	if err1 != nil || err2 != nil || own.User == nil || u.User != nil {
		return recorded
	}
	u.User = own.User
	return u.String()
}

// reachable reports whether the Prometheus URL of a record can mean the
// same server from here: not a loopback address recorded on another host.
func reachable(r configstore.HALeader) bool {
	return !loopbackURL(r.Prometheus) || r.Host == hostname()
}

func loopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// record writes the group's leader record, fenced by the election node:
// it fails once another member can have taken over.
// A record whose ACL is not the model's is replaced (deleted and created
// again) in the same transaction.
func (h *ha) record(ctx context.Context, l *zk.Leadership, prev configstore.HALeader, exists, trusted bool) error {
	p := zk.Join(h.path, "leader")
	ctx, cancel := context.WithTimeout(ctx, h.f.a.c.SessionTimeout())
	defer cancel()
	rec := configstore.HALeader{Member: h.f.a.cfg.Member, Term: l.Term(), Since: time.Now().UTC(),
		Prometheus: h.f.cfg.AdvertiseURL, Host: hostname()}
	if prev.Member != "" && prev.Term != l.Term() {
		rec.Previous, rec.PreviousTerm = prev.Member, prev.Term
	}
	out, _ := json.Marshal(rec)
	acc := h.f.a.Access()
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
// metrics on every member).
func (h *ha) follow(ctx context.Context, e *zk.Election) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, h.f.a.c.SessionTimeout())
		data, term, err := e.Leader(rctx)
		var rec configstore.HALeader
		rdata, _, rerr := h.f.a.c.Get(rctx, zk.Join(h.path, "leader"))
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
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

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
	v := haView{Group: h.group, Transitions: h.transitions, LeaderName: h.leaderName, LeaderTerm: h.leaderTerm, LeaderKnown: h.leaderKnown, LastHandover: h.lastHandover, Waiting: h.waiting}
	if h.lead != nil && h.lead.Check() == nil {
		v.Leader, v.Term, v.Since = true, h.lead.Term(), h.since
	}
	return v
}

// variantVars are the placeholder values for a revision's variant.
func (a *Agent) variantVars(rev int, leader bool) bundle.Vars {
	v := a.vars(rev)
	v.RevisionDir = a.disk.variantDir(rev, leader)
	return v
}

// variantChanged reports whether the applied revision rev is live in the
// other variant than this agent's HA role wants (the overlay must be
// added or removed). A variant that failed to apply is not retried.
func (a *Agent) variantChanged(rev int) bool {
	if l, err := a.disk.linked(); err != nil || l != rev {
		return false
	}
	a.mu.Lock()
	failed := a.state.FailedRevision == rev
	a.mu.Unlock()
	_, err := os.Stat(filepath.Join(a.cfg.ConfigDir, currentLink, bundle.LeaderFile))
	leading := a.fleet.leading() && err == nil // without leader.yml there is no overlay
	// A refused overlay is not tried again; removing one always is.
	return a.disk.linkedLeader() != leading && !(failed && leading)
}

// dropOverlay switches a leader's Prometheus back to the plain revision:
// on a clean exit, before the agent resigns (the next leader then never
// overlaps with it), and at start (an agent is never leader at start; a
// leader variant left by a crashed run must not outlive it). Best effort
// within the verify timeout.
func (a *Agent) dropOverlay(why string) {
	if !a.disk.linkedLeader() {
		return
	}
	rev, err := a.disk.linked()
	if err != nil || rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.VerifyTimeout+5*time.Second)
	defer cancel()
	a.mu.Lock()
	checksum := a.state.Checksum
	a.mu.Unlock()
	if !a.disk.complete(rev, checksum) {
		meta, b, err := a.store.Revision(ctx, rev)
		if err == nil {
			var r *bundle.Bundle
			if r, err = renderVariant(b, a.variantVars(rev, false), false); err == nil {
				err = a.disk.stage(rev, meta.Checksum, a.cfg.Member, r)
			}
		}
		if err == nil {
			_, err = bundle.ValidateDir(ctx, a.disk.revDir(rev), a.cfg.Promtool)
		}
		if err != nil {
			a.logger.Error(why+": could not lay down the revision without the overlay; Prometheus keeps it", "revision", rev, "err", err)
			return
		}
	}
	if err := a.disk.link(rev); err != nil {
		a.logger.Error(why+": could not switch back from the overlay", "err", err)
		return
	}
	before, err := a.reloadState(ctx)
	if err == nil {
		err = a.prom.Reload(ctx)
	}
	if err == nil {
		_, err = a.verify(ctx, before)
	}
	if err != nil {
		a.logger.Warn(why+": overlay removed on disk, Prometheus reload not verified", "err", err)
		return
	}
	a.logger.Info(why+": leader overlay removed", "revision", rev)
}

// localApply marks a context of an apply that must not wait for
// ZooKeeper (an HA step-down while ZooKeeper may be unreachable).
type localApply struct{}

// publishTimeout bounds publishing the status to the member node: the
// session timeout, or a moment during a local apply (the status is
// published again when the session is back).
func (a *Agent) publishTimeout(ctx context.Context) time.Duration {
	if ctx.Value(localApply{}) != nil {
		return 100 * time.Millisecond
	}
	return a.c.SessionTimeout()
}

// fleetStep switches the applied revision to the variant the HA role
// wants, from the files on disk, without reading ZooKeeper: a leader
// that lost its session's confirmation removes its overlay at once.
func (a *Agent) fleetStep(ctx context.Context) {
	a.mu.Lock()
	rev, pending := a.state.Applied, a.pending
	canary := a.status.Canary
	a.mu.Unlock()
	if pending != nil {
		// Prometheus is down, a switch waits for it to verify: when no
		// longer leader, switch the files back at once, so that it never
		// starts with the overlay (the pending verify then checks them).
		if !a.fleet.leading() && a.disk.linkedLeader() && a.disk.complete(pending.rev, pending.checksum) {
			if err := a.disk.link(pending.rev); err != nil {
				a.logger.Error("could not switch back from the overlay while Prometheus is down", "err", err)
			} else {
				a.logger.Info("no longer leader: overlay removed on disk while Prometheus is down", "revision", pending.rev)
			}
		}
		return
	}
	if rev == 0 || !a.variantChanged(rev) {
		return
	}
	a.apply(context.WithValue(ctx, localApply{}, true), rev, canary)
}

// fetchRevision returns revision rev: from the disk when the wanted
// variant of the applied revision is complete there (no ZooKeeper
// needed), else from ZooKeeper.
func (a *Agent) fetchRevision(ctx context.Context, rev int, leader bool) (configstore.Meta, *bundle.Bundle, error) {
	a.mu.Lock()
	applied, checksum := a.state.Applied, a.state.Checksum
	a.mu.Unlock()
	// Both variants on disk (the plain one is the source: the leader's
	// prometheus.yml has the overlay merged in): nothing to stage.
	if rev == applied && checksum != "" && a.disk.completeVariant(rev, false, checksum) &&
		(!leader || a.disk.completeVariant(rev, true, checksum)) {
		if b, err := bundle.LoadDir(a.disk.revDir(rev)); err == nil {
			return configstore.Meta{Revision: rev, Checksum: checksum}, b, nil
		}
	}
	if _, err := a.checkAccess(ctx); err != nil {
		return configstore.Meta{}, nil, err
	}
	return a.store.Revision(ctx, rev)
}

// stageRevision lays down the wanted variant of rev; with the leader
// variant it also lays down the plain one, so that stepping down never
// needs ZooKeeper.
func (a *Agent) stageRevision(rev int, leader bool, checksum string, bundle *bundle.Bundle) error {
	for _, v := range []bool{leader, false} {
		if a.disk.completeVariant(rev, v, checksum) {
			continue
		}
		r, err := renderVariant(bundle, a.variantVars(rev, v), v)
		if err != nil {
			return err
		}
		if err := a.disk.stageVariant(rev, v, checksum, a.cfg.Member, r); err != nil {
			return err
		}
		if !leader {
			break
		}
	}
	return nil
}
