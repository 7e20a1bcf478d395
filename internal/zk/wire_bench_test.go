package zk

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk/wire"
)

// BenchmarkWireInitialRead reads a tree of 100 parents × 100 members
// (~90-byte payloads) whole from a fresh session, four ways, interleaved
// in the same run against the same server:
//   - internal/zk's Client: getChildren per parent, getData per member, 64
//     requests in flight;
//   - zkprom's own client (internal/zk/wire) directly, the same per-node
//     reads;
//   - the own client with getData in multiRead batches (100 and 1,000 per
//     batch, 4 batches in flight).
//
// No watches are set in any variant: it compares the protocol and the
// client, not the server's watch bookkeeping.
func BenchmarkWireInitialRead(b *testing.B) {
	if ensemble == nil {
		b.Skip("needs the real ensemble")
	}
	const parents, members = 100, 10_000
	root := "/bench-wire-read"
	setup := connectB(b, nil)
	populate(b, setup, root, parents, members)
	setup.Close()
	addr := ensemble.Servers[0].ClientAddr

	type variant struct {
		name string
		read func(b *testing.B) (nodes int, requests int64)
	}
	variants := []variant{
		{"client-getData", func(b *testing.B) (int, int64) { return readClient(b, addr, root) }},
		{"wire-getData", func(b *testing.B) (int, int64) { return readWire(b, addr, root, 0) }},
		{"wire-multiRead100", func(b *testing.B) (int, int64) { return readWire(b, addr, root, 100) }},
		{"wire-multiRead1000", func(b *testing.B) (int, int64) { return readWire(b, addr, root, 1000) }},
	}
	secs := make([]float64, len(variants))
	reqs := make([]float64, len(variants))
	for i := 0; i < b.N; i++ {
		for k := range variants {
			v := variants[(k+i)%len(variants)] // rotate the order each round
			idx := (k + i) % len(variants)
			start := time.Now()
			n, r := v.read(b)
			secs[idx] += time.Since(start).Seconds()
			reqs[idx] += float64(r)
			if n != members {
				b.Fatalf("%s read %d members, want %d", v.name, n, members)
			}
		}
	}
	n := float64(b.N)
	for k, v := range variants {
		b.ReportMetric(secs[k]/n*1000, v.name+"-ms")
		b.ReportMetric(reqs[k]/n, v.name+"-requests")
	}
	b.ReportMetric(secs[0]/secs[1], "wire-vs-client-x")
	b.ReportMetric(secs[0]/secs[3], "multiRead1000-vs-client-x")
}

// readClient reads every member's data through internal/zk's Client, 64
// in flight.
func readClient(b *testing.B, addr, root string) (int, int64) {
	ctx := context.Background()
	c, err := Connect(ctx, Config{Servers: addr, SessionTimeout: 30 * time.Second}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var requests atomic.Int64
	dirs, _, err := c.Children(ctx, root)
	requests.Add(1)
	if err != nil {
		b.Fatal(err)
	}
	paths := make(chan string, 1024)
	var read atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range paths {
				if _, _, err := c.Get(ctx, p); err != nil {
					b.Error(err)
				}
				requests.Add(1)
				read.Add(1)
			}
		}()
	}
	for _, d := range dirs {
		kids, _, err := c.Children(ctx, root+"/"+d)
		requests.Add(1)
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range kids {
			paths <- root + "/" + d + "/" + k
		}
	}
	close(paths)
	wg.Wait()
	return int(read.Load()), requests.Load()
}

// readWire reads every member with the own client: per node (batch 0, 64
// in flight) or in multiRead batches of batch paths (4 in flight).
func readWire(b *testing.B, addr, root string, batch int) (int, int64) {
	ctx := context.Background()
	c, err := wire.Dial(ctx, addr, wire.Config{SessionTimeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	dirs, _, err := c.Children(ctx, root, false)
	if err != nil {
		b.Fatal(err)
	}
	var read atomic.Int64
	var wg sync.WaitGroup
	workers := 64
	if batch > 0 {
		workers = 4
	}
	work := make(chan []string, 64)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ps := range work {
				if batch == 0 {
					if _, _, err := c.Get(ctx, ps[0], false); err != nil {
						b.Error(err)
					}
					read.Add(1)
					continue
				}
				ops := make([]wire.ReadOp, len(ps))
				for i, p := range ps {
					ops[i] = wire.GetDataOp(p)
				}
				res, err := c.MultiRead(ctx, ops...)
				if err != nil {
					b.Error(err)
					continue
				}
				for _, r := range res {
					if r.Err != nil {
						b.Error(r.Err)
					}
				}
				read.Add(int64(len(res)))
			}
		}()
	}
	var pending []string
	for _, d := range dirs {
		kids, _, err := c.Children(ctx, root+"/"+d, false)
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range kids {
			p := root + "/" + d + "/" + k
			if batch == 0 {
				work <- []string{p}
				continue
			}
			pending = append(pending, p)
			if len(pending) == batch {
				work <- pending
				pending = nil
			}
		}
	}
	if len(pending) > 0 {
		work <- pending
	}
	close(work)
	wg.Wait()
	return int(read.Load()), c.Stats().Requests
}
