package zk

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// populate makes members serverset znodes of ~90 bytes spread over
// parents under root (populateMembers).
func populate(b *testing.B, c *Client, root string, parents, members int) {
	payload := []byte(`{"serviceEndpoint":{"host":"10.0.0.1","port":8080},"additionalEndpoints":{},"status":"ALIVE"}`)
	populateMembers(b, c, root, parents, members, payload)
}

// oneAtATime reads the tree the way Prometheus's built-in cache does: one
// node at a time, a children watch and a data watch on each.
func oneAtATime(ctx context.Context, c *Client, p string) (int, error) {
	children, _, _, err := c.ChildrenW(ctx, p)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ch := range children {
		cp := Join(p, ch)
		if _, _, _, err := c.GetW(ctx, cp); err != nil {
			return n, err
		}
		k, err := oneAtATime(ctx, c, cp)
		if err != nil {
			return n, err
		}
		n += 1 + k
	}
	return n, nil
}

func requests(reg *prometheus.Registry) float64 {
	mfs, _ := reg.Gather()
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "zkprom_zookeeper_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkTreeCacheInitialSync compares the cache's pipelined first read
// with a one-at-a-time reader over the same tree, in the same run.
func BenchmarkTreeCacheInitialSync(b *testing.B) {
	if ensemble == nil {
		b.Skip("needs the real ensemble")
	}
	for _, size := range benchSizes() {
		root := fmt.Sprintf("/bench-tree-%d", size)
		setup := connectB(b, nil)
		populate(b, setup, root, 1000, size)
		setup.Close()
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			var cacheSecs, baseSecs, cacheReqs, baseReqs, cacheHeap float64
			for i := 0; i < b.N; i++ {
				reg := prometheus.NewRegistry()
				c := connectB(b, reg)
				h0 := heapInUse()
				start := time.Now()
				tc := NewTreeCache(c, []string{root}, CacheOptions{MaxDepth: 2, Data: true})
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					for range tc.Events() {
					}
				}()
				go tc.Run(ctx)
				<-tc.Synced()
				cacheSecs += time.Since(start).Seconds()
				cacheReqs += requests(reg)
				if got := len(tc.Snapshot()); got != size+1000 {
					b.Fatalf("cache holds %d nodes, want %d", got, size+1000)
				}
				cacheHeap += float64(heapInUse() - h0)
				cancel()
				c.Close()

				reg = prometheus.NewRegistry()
				c = connectB(b, reg)
				start = time.Now()
				n, err := oneAtATime(context.Background(), c, root)
				if err != nil || n != size+1000 {
					b.Fatalf("one-at-a-time read %d nodes: %v", n, err)
				}
				baseSecs += time.Since(start).Seconds()
				baseReqs += requests(reg)
				c.Close()
			}
			n := float64(b.N)
			b.ReportMetric(cacheSecs/n, "cache-s")
			b.ReportMetric(baseSecs/n, "one-at-a-time-s")
			b.ReportMetric(baseSecs/cacheSecs, "speedup-x")
			b.ReportMetric(cacheReqs/n, "cache-requests")
			b.ReportMetric(baseReqs/n, "one-at-a-time-requests")
			b.ReportMetric(cacheHeap/n/(1<<20), "cache-heap-MiB")
		})
	}
}

func connectB(b *testing.B, reg prometheus.Registerer) *Client {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Connect(ctx, Config{Servers: ensemble.Connect(), SessionTimeout: 30 * time.Second}, testLogger(), reg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// benchSizes are the tree sizes benchmarked; ZKPROM_BENCH_SMALL=1 keeps
// only the small one for quick runs.
func benchSizes() []int {
	if os.Getenv("ZKPROM_BENCH_SMALL") != "" {
		return []int{10_000}
	}
	return []int{10_000, 100_000}
}

// BenchmarkTreeCacheSoak is the randomized convergence test, longer:
// rounds of random changes, every third with a session expiry, each
// ending in a check against a fresh read. It reports the rounds run.
func BenchmarkTreeCacheSoak(b *testing.B) {
	if ensemble == nil {
		b.Skip("needs the real ensemble")
	}
	rounds := 30
	for i := 0; i < b.N; i++ {
		seed := time.Now().UnixNano()
		b.Logf("seed %d", seed)
		rng := rand.New(rand.NewSource(seed))
		cacheClient, px := proxiedClient(b, 2)
		writer := connect(b, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		root := fmt.Sprintf("/tc-soak-%d", seed)
		writer.CreateAll(ctx, root, nil)
		full := NewTreeCache(cacheClient, []string{root}, CacheOptions{Data: true, Concurrency: 8})
		m := follow(full)
		go full.Run(ctx)
		for r := 0; r < rounds; r++ {
			if r%3 == 2 {
				expire(b, cacheClient, px, func() { randomOps(ctx, b, writer, rng, root, 50) })
			} else {
				randomOps(ctx, b, writer, rng, root, 200)
			}
			converged(b, ctx, writer, full, m, root, 0, true)
		}
		writer.DeleteAll(context.Background(), root)
		cancel()
	}
	b.ReportMetric(float64(rounds), "rounds-converged")
}
