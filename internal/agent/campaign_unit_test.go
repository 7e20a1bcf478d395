package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
)

const unitGroupPath = "/zkprom/c/ha/pair"

// overlayProm is a member's Prometheus as its peers see it: it answers
// /-/ready and shows a loaded configuration with or without the leader
// overlay's marker rule file.
type overlayProm struct {
	srv     *httptest.Server
	overlay atomic.Bool
}

func newOverlayProm(t *testing.T) *overlayProm {
	p := &overlayProm{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/status/config" {
			return // ready
		}
		yml := "rule_files:\n- /d/current/rules.yml\n"
		if p.overlay.Load() {
			yml += "- /d/current/" + bundle.LeaderMarker + "\n"
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]string{"yaml": yml}})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// candidate is one member's HA candidacy on a fakeZK session.
type candidate struct {
	h       *ha
	s       *fakeSession
	prom    *overlayProm
	changes atomic.Int32 // leadershipChanged calls
	done    chan struct{}
}

func runCandidate(t *testing.T, z *fakeZK, member string) *candidate {
	c := &candidate{s: z.session(), prom: newOverlayProm(t), done: make(chan struct{})}
	c.h = newHA(haConfig{
		member: member, group: "pair", electionPath: unitGroupPath + "/election", recordPath: unitGroupPath + "/leader",
		advertiseURL: c.prom.srv.URL, ownURL: c.prom.srv.URL,
		checkTimeout: 500 * time.Millisecond, untrustedWait: time.Minute, retry: 50 * time.Millisecond,
	}, haDeps{
		c: c.s, elect: c.s.elect,
		access: func() configstore.Access { return configstore.Access{Open: true} },
		// Only agents wrote the record (its ACL is the model's).
		recordTrusted: func(ctx context.Context, acc configstore.Access) (bool, error) {
			_, ok := z.get(unitGroupPath + "/leader")
			return ok, nil
		},
		leadershipChanged: func(context.Context) { c.changes.Add(1) },
		viewChanged:       func(context.Context) {},
		transitions:       prometheus.NewCounter(prometheus.CounterOpts{Name: "t"}),
		untrusted:         prometheus.NewCounter(prometheus.CounterOpts{Name: "u"}),
	}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { defer close(c.done); c.h.run(ctx) }()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// record is the group's leader record in the fake ZooKeeper.
func record(t *testing.T, z *fakeZK) configstore.HALeader {
	return recordAt(t, z, unitGroupPath)
}

// recordAt is the leader record of the group at group.
func recordAt(t *testing.T, z *fakeZK, group string) configstore.HALeader {
	t.Helper()
	var rec configstore.HALeader
	if data, ok := z.get(group + "/leader"); ok {
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatal(err)
		}
	}
	return rec
}

func leads(c *candidate) func() (bool, string) {
	return func() (bool, string) {
		v := c.h.view()
		return c.h.leading(), fmt.Sprintf("leader %t, waiting %q", v.Leader, v.Waiting)
	}
}

func TestUnitHAWinsElection(t *testing.T) {
	z := newFakeZK()
	a := runCandidate(t, z, "a")
	waitFor(t, 5*time.Second, "a leads", leads(a))
	rec := record(t, z)
	if rec.Member != "a" || rec.Prometheus != a.prom.srv.URL || rec.Previous != "" {
		t.Fatalf("leader record %+v, want a's with its Prometheus", rec)
	}
	if n := a.changes.Load(); n != 1 {
		t.Fatalf("leadershipChanged called %d times, want 1", n)
	}
	if n := testutil.ToFloat64(a.h.d.transitions); n != 1 {
		t.Fatalf("transitions %v, want 1", n)
	}

	b := runCandidate(t, z, "b")
	waitFor(t, 5*time.Second, "b sees a lead", func() (bool, string) {
		v := b.h.view()
		return v.LeaderKnown && v.LeaderName == "a" && v.LeaderTerm == rec.Term, fmt.Sprintf("%+v", v)
	})
	time.Sleep(300 * time.Millisecond)
	if b.h.leading() || !a.h.leading() || b.changes.Load() != 0 {
		t.Fatalf("two candidates: a leads %t, b leads %t (%d changes)", a.h.leading(), b.h.leading(), b.changes.Load())
	}
}

func TestUnitHAStepsDownOnSessionExpiry(t *testing.T) {
	z := newFakeZK()
	a := runCandidate(t, z, "a")
	waitFor(t, 5*time.Second, "a leads", leads(a))
	b := runCandidate(t, z, "b")
	waitFor(t, 5*time.Second, "b is a candidate", func() (bool, string) {
		return len(z.childrenOf(unitGroupPath+"/election")) == 2, "one candidate"
	})
	term := record(t, z).Term

	a.s.expire() // a's agent lost its session (its Prometheus runs no overlay)
	waitFor(t, 5*time.Second, "a steps down", func() (bool, string) {
		return !a.h.leading() && a.changes.Load() == 2, fmt.Sprintf("leading %t, %d changes", a.h.leading(), a.changes.Load())
	})
	waitFor(t, 5*time.Second, "b takes over", leads(b))
	rec := record(t, z)
	if rec.Member != "b" || rec.Previous != "a" || rec.PreviousTerm != term || rec.Term <= term {
		t.Fatalf("leader record %+v, want b's after a's term %d", rec, term)
	}
	if a.h.leading() {
		t.Fatal("a leads again on an expired session")
	}
}

func TestUnitHAWaitsWhilePreviousLeaderRunsOverlay(t *testing.T) {
	z := newFakeZK()
	a := runCandidate(t, z, "a")
	waitFor(t, 5*time.Second, "a leads", leads(a))
	a.prom.overlay.Store(true) // a's agent applied the overlay
	b := runCandidate(t, z, "b")
	waitFor(t, 5*time.Second, "b is a candidate", func() (bool, string) {
		return len(z.childrenOf(unitGroupPath+"/election")) == 2, "one candidate"
	})

	a.s.expire() // a's agent is frozen; its Prometheus still runs the overlay
	waitFor(t, 5*time.Second, "b elected, waiting", func() (bool, string) {
		v := b.h.view()
		return strings.Contains(v.Waiting, "drop the leader overlay"), fmt.Sprintf("%+v", v)
	})
	time.Sleep(time.Second) // several takeover checks
	if b.h.leading() || b.changes.Load() != 0 {
		t.Fatal("b took over while a's Prometheus runs the overlay")
	}
	if rec := record(t, z); rec.Member != "a" {
		t.Fatalf("the leader record changed while b waits: %+v", rec)
	}

	a.prom.overlay.Store(false) // a's Prometheus dropped it
	waitFor(t, 5*time.Second, "b takes over", leads(b))
	if rec := record(t, z); rec.Member != "b" || rec.Previous != "a" {
		t.Fatalf("leader record %+v", rec)
	}
	if v := b.h.view(); v.Waiting != "" || b.changes.Load() != 1 {
		t.Fatalf("after the take-over: %+v, %d changes", v, b.changes.Load())
	}
}

// TestUnitHAVariantFollowsLeadership ties the candidacy to the apply
// path: elected, the agent switches its Prometheus to the leader variant
// from the files on disk; its session expired, it switches back.
func TestUnitHAVariantFollowsLeadership(t *testing.T) {
	u := newUnitAgentWith(t, func(c *Config) { c.Fleet.HAGroup = "pair" })
	z := u.zk
	s := u.a.pointers.(*fakeSession)
	h := u.a.fleet.ha
	h.d.c, h.d.elect = s, s.elect
	h.d.access = func() configstore.Access { return configstore.Access{Open: true} }
	h.d.recordTrusted = func(context.Context, configstore.Access) (bool, error) { return true, nil }

	const overlay = "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['am:9093']\n"
	u.pushFiles(1, map[string]string{bundle.MainFile: ymlOne, bundle.LeaderFile: overlay})
	u.step()
	u.expect(configstore.StateApplied, 1, ymlOne) // not leader: the plain variant
	if u.a.disk.linkedLeader() {
		t.Fatal("the leader variant is live before any election")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.run(ctx) }()
	defer func() { cancel(); <-done }()
	// Run's loop: a wake from the candidacy switches the variant.
	switched := func(leader bool) func() (bool, string) {
		return func() (bool, string) {
			select {
			case <-u.a.fleet.wakeC():
				u.a.fleetStep(ctx)
			default:
			}
			loaded, _ := u.prom.state()
			return u.a.disk.linkedLeader() == leader && strings.Contains(loaded, bundle.LeaderMarker) == leader,
				fmt.Sprintf("leading %t, linked leader %t, Prometheus runs %q", h.leading(), u.a.disk.linkedLeader(), loaded)
		}
	}
	waitFor(t, 5*time.Second, "the leader variant live", switched(true))
	rev, live := u.live()
	if rev != 1 || !strings.Contains(live, "am:9093") || !strings.Contains(live, bundle.LeaderMarker) {
		t.Fatalf("leader variant of revision %d: %q", rev, live)
	}
	if rec := recordAt(t, z, strings.TrimSuffix(h.cfg.recordPath, "/leader")); rec.Member != "m1" || rec.Prometheus != u.prom.srv.URL {
		t.Fatalf("leader record %+v", rec)
	}
	if st := u.a.Status(); st.State != configstore.StateApplied || st.Revision != 1 {
		t.Fatalf("status %+v", st)
	}

	s.expire()
	waitFor(t, 5*time.Second, "back on the plain variant", switched(false))
	u.expect(configstore.StateApplied, 1, ymlOne)
}
