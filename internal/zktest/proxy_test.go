package zktest

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// sender listens and writes payload to every connection, then closes it.
func sender(t *testing.T, payload []byte) string {
	t.Helper()
	return Serve(t, func(c net.Conn) { c.Write(payload); c.Close() })
}

func TestProxyBudget(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 10_000)
	p, err := NewProxy(sender(t, payload))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	read := func() []byte {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		return b
	}

	// Dropped after 3,001 bytes: the client gets exactly those, then EOF,
	// and the next connection is served in full.
	p.DropAfter(3001)
	if got := read(); !bytes.Equal(got, payload[:3001]) {
		t.Fatalf("after DropAfter(3001) read %d bytes, want the first 3001", len(got))
	}
	if got := read(); !bytes.Equal(got, payload) {
		t.Fatalf("after the drop read %d bytes, want all %d", len(got), len(payload))
	}
	if n := p.Served(); n != int64(3001+len(payload)) {
		t.Fatalf("Served() = %d, want %d", n, 3001+len(payload))
	}

	// Stalled after 1,000 bytes: nothing more until Resume, then the rest.
	p.StallAfter(1000)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := make([]byte, 1000)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, first); err != nil || !bytes.Equal(first, payload[:1000]) {
		t.Fatalf("first 1000 bytes: %v", err)
	}
	if !p.Stalled() {
		t.Fatal("not stalled after the budget")
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d bytes while stalled (%v)", n, err)
	}
	p.Resume()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := io.ReadAll(c)
	if !bytes.Equal(append(first, rest...), payload) {
		t.Fatalf("after Resume got %d more bytes, want %d", len(rest), len(payload)-1000)
	}
}
