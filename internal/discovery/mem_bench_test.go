package discovery

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
)

// memNow is the live heap after a full collection, and the bytes and
// objects allocated so far.
func memNow() (live, total, mallocs float64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc), float64(ms.TotalAlloc), float64(ms.Mallocs)
}

// memBefore are BenchmarkMemory's figures at 100,000 members before the
// memory work (commit 4378124, same machine): each figure is also
// reported as a ratio to them (<1: less than before).
var memBefore = map[string]float64{
	"cache-B/member":        984.3,
	"engine-B/member":       2404,
	"engine-alloc-B/member": 9874,
	"engine-allocs/member":  114.8,
}

// BenchmarkMemory: the heap `zkprom sd` holds after the first complete
// sync of a serverset job of 100,000 members (1,000 services), measured
// in process after a full GC: the tree cache alone, then the whole
// engine (tree cache, job state, rendered http_sd/file_sd list). Also
// what the engine's sync allocated in total, and the largest heap
// (live and not yet collected) seen from its start to the first list.
// ZKPROM_BENCH_SMALL=1 uses 10,000 members; ZKPROM_HEAP_PROFILE=FILE
// writes heap profiles of the engine (FILE) and the cache (FILE.cache).
func BenchmarkMemory(b *testing.B) {
	needEnsemble(b)
	members := 100000
	if os.Getenv("ZKPROM_BENCH_SMALL") != "" {
		members = 10000
	}
	root := fmt.Sprintf("/bench/sync%d", members)
	w := writer(b, ensemble.Connect())
	populate(b, w, root, 1000, members)
	var cacheLive, engLive, engAlloc, engMallocs, peak float64
	cfg, err := ParseConfig([]byte("zookeeper: {servers: '" + ensemble.Connect() + "'}\njobs: [{name: big, format: serverset, paths: [" + root + "]}]\n"))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		// The tree cache alone, as the job configures it.
		c, err := zk.Connect(context.Background(), zk.Config{Servers: ensemble.Connect(), SessionTimeout: 30 * time.Second}, testLogger(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		l0, _, _ := memNow()
		ctx, cancel := context.WithCancel(context.Background())
		tc := zk.NewTreeCache(c, []string{root}, newJob(cfg.Jobs[0], testLogger(b)).cacheOptions())
		go func() {
			for range tc.Events() {
			}
		}()
		done := make(chan struct{})
		go func() { tc.Run(ctx); close(done) }()
		<-tc.Synced()
		l1, _, _ := memNow()
		if f := os.Getenv("ZKPROM_HEAP_PROFILE"); f != "" {
			writeHeapProfile(b, f+".cache")
		}
		if _, ok := tc.Get(root + "/svc0000/member_0000000000"); !ok {
			b.Fatal("tree cache lacks a member")
		}
		cacheLive += l1 - l0
		cancel()
		<-done
		c.Close()
		settle()

		// The whole engine.
		l0, t0, m0 := memNow()
		stopPeak := peakHeap()
		ctx, cancel = context.WithCancel(context.Background())
		m, err := NewManager(ctx, Options{})
		if err != nil {
			b.Fatal(err)
		}
		m.ApplyConfig(cfg)
		select {
		case <-m.synced("big"):
		case <-time.After(5 * time.Minute):
			b.Fatal("no sync")
		}
		m.mu.Lock()
		j := m.jobs["big"].j
		m.mu.Unlock()
		body, _, _ := j.outputGen()
		peak += stopPeak() - l0
		l1, t1, m1 := memNow()
		if f := os.Getenv("ZKPROM_HEAP_PROFILE"); f != "" {
			writeHeapProfile(b, f) // what the engine holds: go tool pprof -sample_index=inuse_space
		}
		if got := countEntries(body); got != members {
			b.Fatalf("output has %d targets, want %d", got, members)
		}
		engLive += l1 - l0
		engAlloc += t1 - t0
		engMallocs += m1 - m0
		cancel()
		m.Close()
		settle()
	}
	n := float64(b.N) * float64(members)
	report := func(v float64, unit string) {
		b.ReportMetric(v, unit)
		if before := memBefore[unit]; before > 0 && members == 100000 {
			b.ReportMetric(v/before, unit+"-vs-before-x")
		}
	}
	report(cacheLive/n, "cache-B/member")
	report(engLive/n, "engine-B/member")
	report(engAlloc/n, "engine-alloc-B/member")
	report(engMallocs/n, "engine-allocs/member")
	b.ReportMetric(engLive/float64(b.N)/(1<<20), "engine-live-MiB")
	b.ReportMetric(peak/float64(b.N)/(1<<20), "engine-sync-peak-MiB")
}

// peakHeap samples the heap (live and not yet collected objects) until
// the returned function is called, which returns the largest sample.
func peakHeap() func() float64 {
	stop, done := make(chan struct{}), make(chan float64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		most := 0.0
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			most = max(most, float64(s[0].Value.Uint64()))
			select {
			case <-stop:
				done <- most
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 { close(stop); return <-done }
}

// settle waits until what a closed session held is collected (its
// goroutines end after Close returns), so the next reading starts clean.
func settle() {
	prev, _, _ := memNow()
	for i := 0; i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		live, _, _ := memNow()
		if live > prev*0.99 && live < prev*1.01 {
			return
		}
		prev = live
	}
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// countEntries counts the targets of a list (each entry one).
func countEntries(l *list) int {
	n := 0
	for _, g := range l.groups {
		for _, e := range g {
			n += bytes.Count(e, []byte(`"targets":[`))
		}
	}
	return n
}
