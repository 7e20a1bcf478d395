package agent

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkTenAgentsStream: ten agents share one sharded job of
// ZKPROM_STREAM_BASE targets (default 20,000, in groups of 10,000), then
// ZKPROM_STREAM_ADD more (default 5,000) arrive 100 at a time into a new
// group. It reports the process's CPU time and allocations per added
// target, once all ten shares hold every target exactly once. The share
// files are sampled once a second only, so the test's own reading counts
// little. ZKPROM_STREAM_HEAP names a file for a heap profile taken then,
// with the agents still running.
func BenchmarkTenAgentsStream(b *testing.B) {
	base, add := envInt("ZKPROM_STREAM_BASE", 20000), envInt("ZKPROM_STREAM_ADD", 5000)
	for range b.N {
		cluster, root, c, targets := shardedJob(b, base)
		dirs := startTenAgents(b, cluster)
		waitSlow := func(targets []string) {
			deadline := time.Now().Add(20 * time.Minute)
			for {
				ok, msg := sample(b, dirs).exact(targets, 1)
				if ok {
					return
				}
				if time.Now().After(deadline) {
					b.Fatalf("not settled: %s", msg)
				}
				time.Sleep(time.Second)
			}
		}
		waitSlow(targets)
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		cpu0, t0 := cpuTime(), time.Now()
		more := slices.Concat(targets, registerTargetsFrom(b, c, fmt.Sprintf("%s/s-%03d", root, 900), base, add))
		waitSlow(more)
		cpu := cpuTime() - cpu0
		runtime.ReadMemStats(&m1)
		if f := os.Getenv("ZKPROM_STREAM_HEAP"); f != "" {
			// The live heap with the ten agents still running.
			runtime.GC()
			out, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			pprof.WriteHeapProfile(out)
			out.Close()
		}
		b.ReportMetric(float64(cpu.Microseconds())/float64(add), "cpu-us/added")
		b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(add), "B/added")
		b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(add), "allocs/added")
		b.ReportMetric(float64(m1.HeapInuse)/1e6, "heap-MB")
		b.Logf("base %d, added %d in %v: cpu %v, alloc %d MB, heap in use %d MB, sys %d MB",
			base, add, time.Since(t0).Round(time.Millisecond), cpu.Round(time.Millisecond),
			(m1.TotalAlloc-m0.TotalAlloc)>>20, m1.HeapInuse>>20, m1.Sys>>20)
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
