package zk

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkTreeCacheModes compares, in the same run and on the same tree
// (1,000 parents, reused across rounds), the first sync of the tree cache
// in its persistent watch mode (one persistent recursive watch,
// getChildren2 per parent, getData in multiRead batches) and in its
// per-node mode (a children watch per parent and a data watch per member,
// pipelined). Each round uses fresh sessions; the order alternates.
func BenchmarkTreeCacheModes(b *testing.B) {
	if ensemble == nil {
		b.Skip("needs the real ensemble")
	}
	for _, size := range benchSizes() {
		root := fmt.Sprintf("/bench-wire-cache-%d", size)
		setup := connectB(b, nil)
		populateMembers(b, setup, root, 1000, size, memberPayload150)
		setup.Close()
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			var persistentSecs, perNodeSecs float64
			for i := 0; i < b.N; i++ {
				runs := []func(){
					func() {
						start := time.Now()
						syncCache(b, root, size, CachePersistentWatch)
						persistentSecs += time.Since(start).Seconds()
					},
					func() {
						start := time.Now()
						syncCache(b, root, size, CachePerNodeWatches)
						perNodeSecs += time.Since(start).Seconds()
					},
				}
				for k := range runs {
					runs[(i+k)%len(runs)]()
				}
			}
			n := float64(b.N)
			b.ReportMetric(persistentSecs/n, "persistent-cache-s")
			b.ReportMetric(perNodeSecs/n, "pernode-cache-s")
			b.ReportMetric(perNodeSecs/persistentSecs, "persistent-speedup-x")
		})
	}
}

// memberPayload150 is a serverset member of 150 bytes.
var memberPayload150 = []byte(`{"serviceEndpoint":{"host":"10.20.30.40","port":8080},"additionalEndpoints":{"http":{"host":"10.20.30.40","port":8081}},"status":"ALIVE","shard":17}`)

// populateMembers makes members znodes of payload under parents below
// root, a Multi of 101 creates per parent, 8 in flight; a tree already
// complete is kept (rounds and runs reuse it).
func populateMembers(b *testing.B, c *Client, root string, parents, members int, payload []byte) {
	ctx := context.Background()
	if n, _, err := c.Children(ctx, root); err == nil && len(n) == parents {
		total := 0
		for _, p := range n {
			_, st, _ := c.Exists(ctx, Join(root, p))
			total += int(st.NumChildren)
		}
		if total == members {
			return
		}
	}
	c.DeleteAll(ctx, root)
	if err := c.CreateAll(ctx, root, nil); err != nil {
		b.Fatal(err)
	}
	sem := make(chan struct{}, 8)
	errs := make(chan error, parents)
	for p := 0; p < parents; p++ {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			dir := Join(root, fmt.Sprintf("svc%04d", p))
			ops := []Op{CreateOp(dir, nil, Persistent, nil)}
			for m := 0; m < members/parents; m++ {
				ops = append(ops, CreateOp(Join(dir, fmt.Sprintf("member_%010d", m)), payload, Persistent, nil))
			}
			_, err := c.Multi(ctx, ops...)
			errs <- err
		}()
	}
	for p := 0; p < parents; p++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// syncCache runs internal/zk's cache in a mode until its first snapshot.
func syncCache(b *testing.B, root string, size int, mode CacheMode) {
	c := connectB(b, nil)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tc := NewTreeCache(c, []string{root}, CacheOptions{MaxDepth: 2, Data: true, Mode: mode})
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
