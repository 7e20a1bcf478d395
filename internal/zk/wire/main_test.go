package wire

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

// ensemble is the package's one real ZooKeeper (standalone: the connection
// layer talks to one server at a time), with a TLS port that wants a client
// certificate.
var ensemble *zktest.Ensemble

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		var err error
		ensemble, err = zktest.StartEnsemble(zktest.Options{Servers: 1, TLS: true, ClientAuth: "need", SASLUsers: saslUsers})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start ZooKeeper:", err)
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
		t.Skip("integration test: needs the real ZooKeeper (not in -short mode)")
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dial(t testing.TB, cfg Config) *Conn {
	t.Helper()
	needEnsemble(t)
	c, err := Dial(ctxT(t, 10*time.Second), ensemble.Servers[0].ClientAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var rootSeq atomic.Int64

// testRoot creates a fresh persistent node for one test.
func testRoot(t testing.TB, c *Conn) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	p := fmt.Sprintf("/wire-%s-%d-%d", name, os.Getpid(), rootSeq.Add(1))
	if _, _, err := c.Create(ctxT(t, 5*time.Second), p, nil, nil, Persistent); err != nil {
		t.Fatal(err)
	}
	return p
}

// nextEvent waits for one event.
func nextEvent(t testing.TB, ch <-chan Event, d time.Duration) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event after %s", d)
	}
	return Event{}
}
