package zk

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk/wire"
)

// BenchmarkWireTreeCacheInitialSync compares, in the same run and on the
// same tree (1,000 parents, reused across rounds), the first sync of the
// tree cache on zkprom's own client (one persistent recursive watch,
// getChildren2 per parent, getData in multiRead batches) with today's tree
// cache on go-zookeeper (a children watch per parent and a data watch per
// member, pipelined). Each round uses fresh sessions; the order alternates.
func BenchmarkWireTreeCacheInitialSync(b *testing.B) {
	if ensemble == nil {
		b.Skip("needs the real ensemble")
	}
	for _, size := range benchSizes() {
		root := fmt.Sprintf("/bench-tree-%d", size)
		setup := connectB(b, nil)
		populate(b, setup, root, 1000, size)
		setup.Close()
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			var wireSecs, oldSecs, wireReqs float64
			for i := 0; i < b.N; i++ {
				runs := []func(){
					func() {
						start := time.Now()
						wireReqs += syncWireCache(b, root, size)
						wireSecs += time.Since(start).Seconds()
					},
					func() {
						start := time.Now()
						syncOldCache(b, root, size)
						oldSecs += time.Since(start).Seconds()
					},
				}
				runs[i%2]()
				runs[(i+1)%2]()
			}
			n := float64(b.N)
			b.ReportMetric(wireSecs/n, "wire-cache-s")
			b.ReportMetric(oldSecs/n, "gozk-cache-s")
			b.ReportMetric(oldSecs/wireSecs, "speedup-x")
			b.ReportMetric(wireReqs/n, "wire-cache-requests")
		})
	}
}

// syncWireCache runs the own client's cache until its first snapshot and
// returns how many requests it sent.
func syncWireCache(b *testing.B, root string, size int) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	servers, _, err := wire.ParseConnectString(ensemble.Connect())
	if err != nil {
		b.Fatal(err)
	}
	tc := wire.NewTreeCache(wire.CacheConfig{Root: root, Session: wire.SessionConfig{Servers: servers}})
	done := make(chan struct{})
	go func() {
		for range tc.Events() {
		}
		close(done)
	}()
	go tc.Run(ctx)
	select {
	case <-tc.Synced():
	case <-time.After(2 * time.Minute):
		b.Fatal("wire cache not synced after 2 minutes")
	}
	if got := tc.Len(); got != size+1000+1 {
		b.Fatalf("wire cache holds %d nodes, want %d", got, size+1001)
	}
	st := tc.Stats()
	cancel()
	<-done
	return float64(st.MultiReads + st.Children + 1)
}

// syncOldCache runs today's cache (go-zookeeper) until its first snapshot.
func syncOldCache(b *testing.B, root string, size int) {
	c := connectB(b, nil)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tc := NewTreeCache(c, []string{root}, CacheOptions{MaxDepth: 2, Data: true})
	go func() {
		for range tc.Events() {
		}
	}()
	go tc.Run(ctx)
	<-tc.Synced()
	if got := len(tc.Snapshot()); got != size+1000 {
		b.Fatalf("cache holds %d nodes, want %d", got, size+1000)
	}
}
