package zk

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zkprom/zkprom/internal/zk/jute"
	"github.com/zkprom/zkprom/internal/zk/wire"
	"github.com/zkprom/zkprom/internal/zktest"
)

// oldServer is a proxy to a real server that answers addWatch and
// multiRead as a server before 3.6 does: unimplemented.
func oldServer(t *testing.T, upstream string) string {
	t.Helper()
	return zktest.Serve(t, func(cl net.Conn) { serveOld(cl, upstream) })
}

func serveOld(cl net.Conn, upstream string) {
	defer cl.Close()
	srv, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer srv.Close()
	var wmu sync.Mutex // whole frames to the client
	go func() {
		defer cl.Close()
		for {
			f, err := rawFrame(srv)
			if err != nil {
				return
			}
			wmu.Lock()
			_, err = cl.Write(f)
			wmu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	for first := true; ; first = false {
		f, err := rawFrame(cl)
		if err != nil {
			return
		}
		// After the connect request: a request header is xid, type.
		if !first && len(f) >= 12 {
			if op := int32(binary.BigEndian.Uint32(f[8:12])); op == jute.OpAddWatch || op == jute.OpMultiRead {
				code := int32(wire.ErrUnimplemented)
				reply := make([]byte, 20) // length, xid, zxid 0, err
				binary.BigEndian.PutUint32(reply[0:4], 16)
				copy(reply[4:8], f[4:8])
				binary.BigEndian.PutUint32(reply[16:20], uint32(code))
				wmu.Lock()
				cl.Write(reply)
				wmu.Unlock()
				continue
			}
		}
		if _, err := srv.Write(f); err != nil {
			return
		}
	}
}

// rawFrame reads one length-prefixed frame, the prefix included.
func rawFrame(r io.Reader) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	f := make([]byte, 4+binary.BigEndian.Uint32(l[:]))
	copy(f, l[:])
	_, err := io.ReadFull(r, f[4:])
	return f, err
}

// TestTreeCacheFallback: against a server without persistent watches the
// default mode falls back to a watch per node, says so in the metric, and
// mirrors changes.
func TestTreeCacheFallback(t *testing.T) {
	needEnsemble(t)
	ctx := ctxT(t, 60*time.Second)
	writer := connect(t, Config{})
	const root = "/tc-fallback"
	writer.DeleteAll(ctx, root)
	writer.CreateAll(ctx, root+"/svc", nil)
	writer.Create(ctx, root+"/svc/m1", []byte("one"), Persistent, nil)
	defer writer.DeleteAll(ctx, root)

	c := connect(t, Config{Servers: oldServer(t, ensemble.Servers[0].ClientAddr)})
	if err := c.Sync(ctx, root); err != nil {
		t.Fatal(err)
	}
	tc := NewTreeCache(c, []string{root}, CacheOptions{Data: true})
	m := follow(tc)
	go tc.Run(ctx)
	select {
	case <-tc.Synced():
	case <-time.After(30 * time.Second):
		t.Fatal("not synced")
	}
	if tc.Mode() != CachePerNodeWatches {
		t.Fatalf("mode %s against a server without addWatch, want per_node_watches", tc.Mode())
	}
	if v := testutil.ToFloat64(c.m.treeCacheMode.WithLabelValues(CachePerNodeWatches.String())); v != 1 {
		t.Errorf("zkprom_zookeeper_tree_cache_mode{mode=\"per_node_watches\"} = %v, want 1", v)
	}
	writer.Set(ctx, root+"/svc/m1", []byte("uno"), -1)
	writer.Create(ctx, root+"/svc/m2", []byte("two"), Persistent, nil)
	converged(t, ctx, writer, tc, m, root, 0, true)
}
