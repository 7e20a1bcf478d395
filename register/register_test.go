package register

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/discovery"
	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	os.Exit(func() int {
		short := false
		for _, a := range os.Args[1:] {
			short = short || a == "-test.short" || a == "-test.short=true"
		}
		if !short {
			e, err := zktest.StartEnsemble(zktest.Options{Servers: 1, TickTime: 250 * time.Millisecond})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer e.Close()
			ensemble = e
		}
		return m.Run()
	}())
}

func TestValidate(t *testing.T) {
	zkc := ZooKeeper{Servers: "127.0.0.1:2181"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no servers", Config{Path: "/a", Address: "h:1"}, "no ZooKeeper servers"},
		{"no address", Config{ZooKeeper: zkc, Path: "/a"}, "no address"},
		{"bad address", Config{ZooKeeper: zkc, Path: "/a", Address: "h"}, "want host:port"},
		{"port 0", Config{ZooKeeper: zkc, Path: "/a", Address: "h:0"}, "port in 1-65535"},
		{"no path", Config{ZooKeeper: zkc, Address: "h:1"}, "no path"},
		{"bad path", Config{ZooKeeper: zkc, Path: "a", Address: "h:1"}, "path"},
		{"bad format", Config{ZooKeeper: zkc, Path: "/a", Address: "h:1", Format: "eureka"}, "unknown format"},
		{"curator no service", Config{ZooKeeper: zkc, Address: "h:1", Format: FormatCurator}, "service name"},
		{"bad label", Config{ZooKeeper: zkc, Path: "/a", Address: "h:1", Labels: map[string]string{"a-b": "c"}}, "label name"},
		{"two checks", Config{ZooKeeper: zkc, Path: "/a", Address: "h:1", Check: HealthCheck{HTTP: "http://h/", TCP: "h:1"}}, "not both"},
		{"bad http check", Config{ZooKeeper: zkc, Path: "/a", Address: "h:1", Check: HealthCheck{HTTP: "h/x"}}, "http://"},
		{"bad tcp check", Config{ZooKeeper: zkc, Path: "/a", Address: "h:1", Check: HealthCheck{TCP: "h"}}, "host:port"},
		{"bad id", Config{ZooKeeper: zkc, Path: "/a", Address: "h:1", ID: "a/b"}, "must not contain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestDataParses: what each format writes is what zkprom sd reads, with
// the metrics address where a job finds it.
func TestDataParses(t *testing.T) {
	for _, tc := range []struct {
		cfg    Config
		job    discovery.JobConfig
		target string
	}{
		{Config{Format: FormatZkprom, Path: "/zkprom/targets/api"}, discovery.JobConfig{}, "10.0.0.5:9100"},
		{Config{Format: FormatServerset, Path: "/aurora/api"}, discovery.JobConfig{Metrics: discovery.MetricsConfig{Endpoint: "metrics"}}, "10.0.0.5:9100"},
		{Config{Format: FormatCurator, Service: "api"}, discovery.JobConfig{Metrics: discovery.MetricsConfig{PortField: "metrics.port"}}, "10.0.0.5:9100"},
	} {
		t.Run(tc.cfg.Format, func(t *testing.T) {
			cfg := tc.cfg
			cfg.ZooKeeper.Servers = "127.0.0.1:2181"
			cfg.Address, cfg.MetricsAddress = "10.0.0.5:8080", "10.0.0.5:9100"
			cfg.Labels = map[string]string{"team": "a"}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			data, err := cfg.Data(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			p := cfg.NodePath()
			if cfg.Format == FormatServerset {
				p += "0000000001"
			}
			tc.job.Name, tc.job.Format = "x", cfg.Format
			got, err := discovery.ParseMember(tc.job, p, data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || string(got[0]["__address__"]) != tc.target {
				t.Errorf("targets %v, want address %s", got, tc.target)
			}
		})
	}
}

func exists(t *testing.T, c *zk.Client, p string) bool {
	t.Helper()
	ok, _, err := c.Exists(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthExpiryClose: the node follows the health check, comes back
// after a session expiry, and goes at once on Close.
func TestHealthExpiryClose(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	var healthy atomic.Bool
	healthy.Store(true)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer hs.Close()
	px, err := zktest.NewProxy(ensemble.Servers[0].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	ctx := context.Background()
	watcher, err := zk.Connect(ctx, zk.Config{Servers: ensemble.Connect()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()

	r, err := Start(ctx, Config{
		ZooKeeper: ZooKeeper{Servers: px.Addr(), SessionTimeout: time.Second},
		Path:      "/zkprom/targets/api",
		Address:   "127.0.0.1:8080",
		Check:     HealthCheck{HTTP: hs.URL + "/health", Interval: 50 * time.Millisecond, Timeout: time.Second},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	node := "/zkprom/targets/api/127.0.0.1:8080"
	if !exists(t, watcher, node) {
		t.Fatal("not registered after Start")
	}
	healthy.Store(false)
	waitFor(t, "node removed while unhealthy", func() bool { return !exists(t, watcher, node) })
	healthy.Store(true)
	waitFor(t, "node restored when healthy", func() bool { return exists(t, watcher, node) })

	// Session expiry: stall the connection longer than the session.
	_, st, _ := watcher.Exists(ctx, node)
	owner := st.EphemeralOwner
	px.Stall()
	waitFor(t, "node expired", func() bool { return !exists(t, watcher, node) })
	px.Resume()
	waitFor(t, "node re-registered on a new session", func() bool {
		ok, st, _ := watcher.Exists(ctx, node)
		return ok && st.EphemeralOwner != owner
	})

	start := time.Now()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(t, watcher, node) {
		t.Errorf("node still there after Close (took %s)", time.Since(start))
	}
}

// TestTCPCheckNeverHealthy: an instance that never passes its check is
// never registered.
func TestTCPCheckNeverHealthy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ports, _ := zktest.FreePorts(1)
	ctx := context.Background()
	r, err := Start(ctx, Config{
		ZooKeeper: ZooKeeper{Servers: ensemble.Connect()},
		Format:    FormatServerset,
		Path:      "/aurora/never",
		Address:   "127.0.0.1:8080",
		Check:     HealthCheck{TCP: fmt.Sprintf("127.0.0.1:%d", ports[0]), Interval: 50 * time.Millisecond},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	time.Sleep(200 * time.Millisecond)
	if r.Registered() || r.Healthy() {
		t.Error("registered although the TCP check fails")
	}
}

// The flags start from DefaultConfig; Validate fills in the same.
func TestDefaultConfigIsWhatValidateFillsIn(t *testing.T) {
	c := Config{ZooKeeper: ZooKeeper{Servers: "127.0.0.1:2181"}, Path: "/a", Address: "h:1"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.Format != d.Format || c.Check != d.Check {
		t.Errorf("Validate filled in %s %+v, DefaultConfig has %s %+v", c.Format, c.Check, d.Format, d.Check)
	}
	cur := Config{ZooKeeper: ZooKeeper{Servers: "127.0.0.1:2181"}, Address: "h:1", Format: FormatCurator, Service: "s"}
	if err := cur.Validate(); err != nil || cur.CuratorPayload != d.CuratorPayload {
		t.Errorf("curator payload %q (%v), DefaultConfig has %q", cur.CuratorPayload, err, d.CuratorPayload)
	}
}
