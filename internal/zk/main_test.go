package zk

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

// ensemble is the package's one real ZooKeeper ensemble.
var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	if os.Getenv(candidateEnv) != "" {
		os.Exit(runCandidate())
	}
	flag.Parse()
	if !testing.Short() {
		var err error
		ensemble, err = zktest.StartEnsemble(zktest.Options{Servers: 3})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start ZooKeeper ensemble:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if ensemble != nil {
		ensemble.Close()
	}
	os.Exit(code)
}

func needEnsemble(t testing.TB) {
	t.Helper()
	if ensemble == nil {
		t.Skip("integration test: needs the real ZooKeeper ensemble (not in -short mode)")
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("ZKTEST_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func connect(t testing.TB, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if cfg.Servers == "" {
		cfg.Servers = ensemble.Connect()
	}
	c, err := Connect(ctx, cfg, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still not true after %s: %v", what, d, err)
}
