package zktest

import (
	"net"
	"testing"
)

// Serve listens on a free 127.0.0.1 port until the test ends and runs
// handle on each connection it accepts, in its own goroutine; it returns
// the address. Fake servers of tests are built on it.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}
