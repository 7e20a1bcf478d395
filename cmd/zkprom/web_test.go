package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that opens a connection and never finishes its request headers
// (slowloris) is cut off by the listeners' server, not held for good.
func TestServerCutsSlowClients(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	go srv.Serve(ln)
	defer srv.Close()

	partials := []string{"", "GET /metrics HTTP/1.1\r\n", "GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: "}
	conns := make([]net.Conn, len(partials))
	for i, partial := range partials {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, partial)
		// Longer than the header timeout: without it the read below waits
		// for this deadline and fails the test.
		c.SetReadDeadline(time.Now().Add(srv.ReadHeaderTimeout + 20*time.Second))
		conns[i] = c
	}
	for i, c := range conns {
		_, err := bufio.NewReader(c).ReadString('\n')
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			t.Errorf("request %q: the server kept the connection open", partials[i])
		case err == nil, err == io.EOF, strings.Contains(err.Error(), "reset"):
			// Closed, or answered (408): cut off either way.
		default:
			t.Errorf("request %q: %v", partials[i], err)
		}
	}
}
