package zk

import (
	"context"
	"fmt"
	"strings"
	"sync"
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

// TestWatchesSurviveReconnect cuts the connection and makes changes while
// no server answers: on the next connection (the same session, another
// server) the one-shot watches are set again (setWatches2) and fire for
// what they missed; later changes fire the hooks in the order made.
func TestWatchesSurviveReconnect(t *testing.T) {
	needEnsemble(t)
	var pxs []*zktest.Proxy
	for _, srv := range ensemble.Servers[:2] {
		px, err := zktest.NewProxy(srv.ClientAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(px.Close)
		pxs = append(pxs, px)
	}
	ctx := ctxT(t, 60*time.Second)
	c := connect(t, Config{Servers: pxs[0].Addr() + "," + pxs[1].Addr(), SessionTimeout: 20 * time.Second})
	writer := connect(t, Config{})
	const root = "/watch-reconnect"
	writer.DeleteAll(ctx, root)
	for _, p := range []string{root + "/data", root + "/kids", root + "/order"} {
		if err := writer.CreateAll(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	defer writer.DeleteAll(context.Background(), root)
	if err := c.Sync(ctx, root); err != nil {
		t.Fatal(err)
	}
	_, _, wData, err := c.GetW(ctx, root+"/data")
	if err != nil {
		t.Fatal(err)
	}
	_, _, wKids, err := c.ChildrenW(ctx, root+"/kids")
	if err != nil {
		t.Fatal(err)
	}
	_, _, wMissing, err := c.ExistsW(ctx, root+"/missing")
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe()
	defer sub.Close()
	id := c.SessionID()

	for _, px := range pxs {
		px.Stall()
	}
	pxs[0].Cut()
	pxs[1].Cut()
	waitState(t, sub, StateDisconnected)
	writer.Set(ctx, root+"/data", []byte("changed"), -1)
	writer.Create(ctx, root+"/kids/new", nil, Persistent, nil)
	writer.Create(ctx, root+"/missing", nil, Persistent, nil)
	for _, px := range pxs {
		px.Resume()
	}
	if ev := waitState(t, sub, StateConnected); ev.NewSession || ev.SessionID != id {
		t.Fatalf("reconnected to session 0x%x (new %v), want 0x%x", ev.SessionID, ev.NewSession, id)
	}
	for _, w := range []struct {
		ch   <-chan WatchEvent
		typ  WatchEventType
		path string
	}{
		{wData, NodeDataChanged, root + "/data"},
		{wKids, NodeChildrenChanged, root + "/kids"},
		{wMissing, NodeCreated, root + "/missing"},
	} {
		select {
		case ev := <-w.ch:
			if ev.Type != w.typ || ev.Path != w.path {
				t.Errorf("watch on %s: %+v, want %v", w.path, ev, w.typ)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("watch on %s did not fire for the change it missed", w.path)
		}
	}

	// Events reach the hooks in the order of the changes.
	var mu sync.Mutex
	var seen []string
	h := c.addHook(func(ev WatchEvent) {
		mu.Lock()
		seen = append(seen, ev.Path)
		mu.Unlock()
	})
	defer c.removeHook(h)
	var want []string
	for i := range 20 {
		p := fmt.Sprintf("%s/order/n%02d", root, i)
		if _, err := c.Create(ctx, p, nil, Persistent, nil); err != nil { // read on the server it is made on
			t.Fatal(err)
		}
		if _, _, err := c.get(ctx, p, true); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	for _, p := range want {
		writer.Set(ctx, p, []byte("x"), -1)
	}
	eventually(t, 10*time.Second, "every data change seen", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < len(want) {
			return fmt.Errorf("%d of %d events", len(seen), len(want))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("events in the order %v, want %v", seen, want)
	}
}

func waitState(t *testing.T, sub *Subscription, want State) SessionEvent {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-sub.C:
			if ev.State == want {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s session event", want)
		}
	}
}
