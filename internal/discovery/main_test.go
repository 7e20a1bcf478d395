package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/targetgroup"
	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

// ensemble is the package's one ZooKeeper ensemble (nil under -short).
var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv(childEnv) != "" {
		return benchChild()
	}
	if !shortFlag() {
		e, err := zktest.StartEnsemble(zktest.Options{Servers: 3, TickTime: 500 * time.Millisecond})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start ZooKeeper ensemble:", err)
			return 1
		}
		defer e.Close()
		ensemble = e
	}
	return m.Run()
}

// shortFlag reads -test.short before testing.Short can be called.
func shortFlag() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

func needEnsemble(t testing.TB) {
	t.Helper()
	if testing.Short() || ensemble == nil {
		t.Skip("integration test: needs ZooKeeper (not with -short)")
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ZKPROM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// writer is a plain session the tests write registrations with.
func writer(t testing.TB, servers string) *zk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, zk.Config{Servers: servers, SessionTimeout: 4 * time.Second}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func put(t testing.TB, c *zk.Client, p string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.CreateAll(ctx, zk.Parent(p), nil); err != nil && p != "/" {
		t.Fatalf("create parents of %s: %v", p, err)
	}
	if _, err := c.Create(ctx, p, data, zk.Persistent, nil); err != nil {
		if _, err2 := c.Set(ctx, p, data, -1); err2 != nil {
			t.Fatalf("create %s: %v / %v", p, err, err2)
		}
	}
}

func del(t testing.TB, c *zk.Client, p string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.DeleteAll(ctx, p); err != nil {
		t.Fatalf("delete %s: %v", p, err)
	}
}

// startManager runs a manager with cfg; its http_sd is served by an
// httptest server.
func startManager(t testing.TB, cfgYAML, fileDir string) (*Manager, *httptest.Server) {
	t.Helper()
	cfg, err := ParseConfig([]byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, err := NewManager(ctx, Options{FileSDDir: fileDir, Logger: testLogger(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	m.ApplyConfig(cfg)
	srv := httptest.NewServer(m)
	t.Cleanup(func() { srv.Close(); cancel(); m.Close() })
	return m, srv
}

// fetch GETs /sd/<job>.
func fetch(t testing.TB, srv *httptest.Server, job string) (int, []targetgroup.Group) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/sd/" + job)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	var out []targetgroup.Group
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	if out == nil {
		t.Fatalf("body %q is not a list", b)
	}
	return 200, out
}

// addresses lists the targets of an http_sd answer, sorted.
func addresses(es []targetgroup.Group) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Targets...)
	}
	sort.Strings(out)
	return out
}

// eventually polls f until it returns "" or the deadline passes.
func eventually(t testing.TB, d time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		if last = f(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not reached within %s: %s", d, last)
}

func waitTargets(t testing.TB, srv *httptest.Server, job string, want []string) []targetgroup.Group {
	t.Helper()
	var got []targetgroup.Group
	eventually(t, 30*time.Second, func() string {
		code, es := fetch(t, srv, job)
		if code != 200 {
			return fmt.Sprintf("status %d", code)
		}
		got = es
		if a := addresses(es); strings.Join(a, " ") != strings.Join(want, " ") {
			return fmt.Sprintf("targets %v, want %v", a, want)
		}
		return ""
	})
	return got
}
