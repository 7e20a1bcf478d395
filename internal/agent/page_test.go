package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/statuspage"
	"github.com/zkprom/zkprom/internal/zktest"
)

// pageServer serves an agent's page.
func pageServer(t *testing.T, a *Agent) string {
	srv := httptest.NewServer(a.StatusHandler(statuspage.Page{Name: "zkprom agent"}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// The page of a canary whose revision Prometheus refuses: the member
// shows its error, the others see it in the cluster's table, and the
// history names the revisions with author and message.
func TestPageFailedCanary(t *testing.T) {
	skipShort(t)
	reset(t)
	b := zktest.NewBrowser(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	agents := startAgents(t, cluster, nil)
	r1 := push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
	if err := waitRollout(t, s, r1.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	bad := testBundle([]string{"job_a"}, nil, "", nil)
	bad.Files["prometheus.yml"] = append(bad.Files["prometheus.yml"], []byte(
		"  - job_name: with_auth\n    basic_auth:\n      username: u\n      password_file: ${ZKPROM_CONFIG_DIR}/secrets/absent.password\n    static_configs:\n      - targets: ['127.0.0.1:1']\n")...)
	_, c, err := s.PushCanary(context.Background(), bad, configstore.PushMeta{Author: "page-test", Message: "a canary that fails"}, 1, time.Minute, nil)
	var ce *configstore.CanaryError
	if !errors.As(err, &ce) || c == nil || len(c.Pointer.Members) != 1 {
		t.Fatalf("canary push: %v, want a CanaryError", err)
	}
	canaryRev, victim := strconv.Itoa(c.Pointer.Revision), c.Pointer.Members[0]
	var other *Agent
	for _, r := range agents {
		if r.a.cfg.Member != victim {
			other = r.a
		}
	}
	p := b.Wait(t, pageServer(t, other), 30*time.Second, "the canary member's error", func(p *zktest.Page) bool {
		return strings.Contains(p.Cell("members", victim, "error"), "revision "+canaryRev)
	})
	if got := p.Cell("members", victim, "error"); !strings.Contains(got, "absent.password") {
		t.Errorf("the canary's error does not say what failed: %q", got)
	}
	if got := p.Cell("members", other.cfg.Member, "error"); got != "" {
		t.Errorf("a member outside the canary shows an error: %q", got)
	}
	if got := p.Cell("history", strconv.Itoa(r1.Meta.Revision), "message"); got != "first" {
		t.Errorf("history row of revision %d: message %q", r1.Meta.Revision, got)
	}
	if got := p.TextOf("member"); !strings.Contains(got, "Prometheus http://") || !strings.Contains(got, "version 2.") {
		t.Errorf("this member's table does not name its Prometheus and version: %q", got)
	}

	// The canary member's own page.
	var self *Agent
	for _, r := range agents {
		if r.a.cfg.Member == victim {
			self = r.a
		}
	}
	p, err = b.Open(context.Background(), pageServer(t, self))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.TextOf("member"); !strings.Contains(got, "last error revision "+canaryRev) || !strings.Contains(got, "absent.password") {
		t.Errorf("the canary member's page does not show its error: %q", got)
	}
}

// Three agents share 30 targets; one is stopped (its session closed, as
// when its process ends): the page of another shows the two left owning
// all 30.
func TestPageShardsAfterKill(t *testing.T) {
	skipShort(t)
	b := zktest.NewBrowser(t)
	cluster := clusterName(t)
	c := connect(t)
	base := "/" + cluster + "/services"
	registerTargets(t, c, base, 30)
	s := newStore(t, c, cluster)
	ensureCluster(t, cluster)
	push(t, s, fleetBundle(base, 1, false), "sharded")
	var agents []*runningAgent
	for i := range 3 {
		agents = append(agents, startFleetAgent(t, cluster, fmt.Sprintf("agent-%d", i), filepath.Join(env.tmp, cluster, fmt.Sprintf("agent-%d", i)), 4*time.Second))
	}
	url := pageServer(t, agents[0].a)
	owned := func(p *zktest.Page, member string) int {
		n, _, _ := strings.Cut(p.Cell("shards", member, fleetJob), "/")
		v, _ := strconv.Atoi(n)
		return v
	}
	b.Wait(t, url, 60*time.Second, "three members owning the 30 targets", func(p *zktest.Page) bool {
		return owned(p, "agent-0")+owned(p, "agent-1")+owned(p, "agent-2") == 30 && owned(p, "agent-2") > 0
	})
	agents[2].stop()
	p := b.Wait(t, url, 60*time.Second, "the two members left owning all 30 targets", func(p *zktest.Page) bool {
		return p.Row("shards", "agent-2") == nil && owned(p, "agent-0")+owned(p, "agent-1") == 30
	})
	if got := p.TextOf("fleet"); !strings.Contains(got, fleetJob+": 30 discovered targets, 30 assignments over 2 shard members") {
		t.Errorf("the totals: %q", got)
	}
}
