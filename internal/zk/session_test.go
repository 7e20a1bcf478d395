package zk

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zkprom/zkprom/internal/zktest"
)

// TestSessionStreamAndMetrics follows a session through a disconnect and
// an expiry, as subscribers and as metrics.
func TestSessionStreamAndMetrics(t *testing.T) {
	needEnsemble(t)
	px, err := zktest.NewProxy(ensemble.Servers[0].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	reg := prometheus.NewPedanticRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Connect(ctx, Config{Servers: px.Addr(), SessionTimeout: sessionTimeout}, testLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub := c.Subscribe()
	defer sub.Close()
	if _, _, err := c.Get(ctx, "/"); err != nil {
		t.Fatal(err)
	}

	expire(t, c, px, nil)
	var states []string
	deadline := time.After(10 * time.Second)
collect:
	for {
		select {
		case ev := <-sub.C:
			states = append(states, ev.State.String())
			if ev.State == StateConnected {
				break collect
			}
		case <-deadline:
			break collect
		}
	}
	got := strings.Join(states, ",")
	if !strings.Contains(got, "disconnected") || !strings.Contains(got, "expired") || !strings.HasSuffix(got, "connected") {
		t.Errorf("session stream %q: want disconnected, expired, then connected", got)
	}

	labels := prometheus.Labels{"zookeeper": px.Addr()}
	if v := testutil.ToFloat64(counterFrom(t, reg, "zkprom_zookeeper_session_expirations_total", labels)); v != 1 {
		t.Errorf("expirations_total = %v, want 1", v)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP zkprom_zookeeper_session_state Current state of the ZooKeeper session (1 for the current state).
# TYPE zkprom_zookeeper_session_state gauge
zkprom_zookeeper_session_state{state="auth_failed",zookeeper="`+px.Addr()+`"} 0
zkprom_zookeeper_session_state{state="connected",zookeeper="`+px.Addr()+`"} 1
zkprom_zookeeper_session_state{state="connecting",zookeeper="`+px.Addr()+`"} 0
zkprom_zookeeper_session_state{state="disconnected",zookeeper="`+px.Addr()+`"} 0
zkprom_zookeeper_session_state{state="expired",zookeeper="`+px.Addr()+`"} 0
`), "zkprom_zookeeper_session_state"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "zkprom_zookeeper_request_duration_seconds"); err != nil || n == 0 {
		t.Errorf("request duration histogram: %d series, %v", n, err)
	}
	// A second client with the same connect string on the same registry
	// is refused with a clear error instead of a panic.
	if _, err := Connect(ctx, Config{Servers: px.Addr()}, testLogger(), reg); err == nil || !strings.Contains(err.Error(), "register ZooKeeper session metrics") {
		t.Errorf("duplicate registration: %v", err)
	}
}

func counterFrom(t *testing.T, reg *prometheus.Registry, name string, labels prometheus.Labels) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, ConstLabels: labels})
			c.Add(mf.GetMetric()[0].GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("%s not gathered", name)
	return nil
}
