package zk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zkprom/zkprom/internal/zk/wire"
	"github.com/zkprom/zkprom/internal/zktest"
)

// lockedBuffer is a log sink the cache's goroutines write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTreeCacheWideParentOverMaxBuffer: a parent whose children listing
// is over the client's max buffer. The cache does not sync; the error
// names the reply's size, the limit and the setting, once at Warn; while
// children come and go below it, the re-reads back off and the client
// keeps its one connection (it used to reconnect and re-read at full
// speed). With the limit raised the cache syncs.
func TestTreeCacheWideParentOverMaxBuffer(t *testing.T) {
	needEnsemble(t)
	ctx := ctxT(t, 90*time.Second)
	w := connect(t, Config{})
	const root = "/tc-wide"
	if err := w.DeleteAll(ctx, root); err != nil {
		t.Fatal(err)
	}
	w.Create(ctx, root, nil, Persistent, nil)
	parent := root + "/targets"
	w.Create(ctx, parent, nil, Persistent, nil)
	const n, nameLen = 1500, 60 // a listing of about 1500·64 = 96 KB
	var ops []Op
	for i := 0; i < n; i++ {
		ops = append(ops, CreateOp(fmt.Sprintf("%s/%0*d", parent, nameLen, i), nil, Persistent, nil))
		if len(ops) == 500 || i == n-1 {
			if _, err := w.Multi(ctx, ops...); err != nil {
				t.Fatal(err)
			}
			ops = nil
		}
	}

	for _, mode := range []CacheMode{CacheModeAuto, CachePerNodeWatches} {
		for _, max := range []int{32 << 10, 64 << 10} {
			t.Run(fmt.Sprintf("%s/%d", mode, max), func(t *testing.T) {
				px, err := zktest.NewProxy(ensemble.Servers[0].ClientAddr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(px.Close)
				var logs lockedBuffer
				logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
				c, err := Connect(ctx, Config{Servers: px.Addr(), MaxBuffer: max}, logger, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.Close)

				_, _, err = c.Children(ctx, parent)
				if !errors.Is(err, wire.ErrFrameTooLarge) {
					t.Fatalf("listing %s: %v, want ErrFrameTooLarge", parent, err)
				}
				for _, want := range []string{"children " + parent, fmt.Sprintf("(limit %d)", max), "--zookeeper.max-buffer", "max_buffer"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}

				before := listings(t, c)
				tc := NewTreeCache(c, []string{root}, CacheOptions{Data: true, Mode: mode, Logger: logger})
				cctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); tc.Run(cctx) }()
				go func() {
					for range tc.Events() {
					}
				}()
				// Children come and go below the wide parent for 3 s:
				// every change wakes the cache.
				churn := 0
				for end := time.Now().Add(3 * time.Second); time.Now().Before(end); churn++ {
					p := fmt.Sprintf("%s/churn-%d", parent, churn)
					w.Create(ctx, p, nil, Persistent, nil)
					w.Delete(ctx, p, -1)
					time.Sleep(10 * time.Millisecond)
				}
				select {
				case <-tc.Synced():
					t.Fatal("synced with a listing over the max buffer")
				default:
				}
				reads := listings(t, c) - before
				cancel()
				<-done
				// Backoff from 100 ms doubling: about 5 reads in 3 s, not
				// one per change (churn) or per reconnect.
				if reads > 16 { // 2 listings (root, parent) per read
					t.Errorf("%d listings in 3 s with %d changes: no backoff", reads, churn)
				}
				if opened := px.Opened(); opened != 1 {
					t.Errorf("%d connections: the oversized reply reconnected", opened)
				}
				if got := testutil.ToFloat64(c.m.tooLarge.WithLabelValues("children")); got < 2 {
					t.Errorf("frames_too_large_total{op=children} = %v", got)
				}
				out := logs.String()
				if warns := strings.Count(out, "level=WARN msg=\"tree cache read failed"); warns != 1 {
					t.Errorf("%d warnings for one streak of failures (want 1):\n%s", warns, out)
				}
				for _, want := range []string{"reply of", fmt.Sprintf("max_buffer=%d", max), "--zookeeper.max-buffer"} {
					if !strings.Contains(out, want) {
						t.Errorf("log does not say %q:\n%s", want, out)
					}
				}
				t.Logf("%d listings, %d changes, %d connections in 3 s", reads, churn, px.Opened())
			})
		}
	}

	// Raised, it syncs.
	c := connect(t, Config{MaxBuffer: 256 << 10})
	tc := NewTreeCache(c, []string{root}, CacheOptions{Data: true, Logger: testLogger()})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go tc.Run(cctx)
	go func() {
		for range tc.Events() {
		}
	}()
	select {
	case <-tc.Synced():
	case <-ctx.Done():
		t.Fatal("no sync with the max buffer raised")
	}
	if got := len(tc.Snapshot()); got != n+1 {
		t.Errorf("%d nodes mirrored, want %d", got, n+1)
	}
}
