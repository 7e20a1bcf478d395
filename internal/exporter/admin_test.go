package exporter

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestAdminKeepAlive: AdminServer commands reuse one connection.
func TestAdminKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"command":"ruok","error":null}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newAdminClient(nil)
	for range 10 {
		a, err := adminCommand(context.Background(), c, srv.URL, "ruok")
		if err != nil || a.Status != http.StatusOK {
			t.Fatalf("%v %v", a, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 10 commands, want 1 (keep-alive)", n)
	}
}

// TestAdminDeadline: an AdminServer that never answers costs the deadline.
func TestAdminDeadline(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := adminCommand(ctx, newAdminClient(nil), srv.URL, "monitor")
	if err == nil || errorReason(err) != "timeout" {
		t.Errorf("err = %v (reason %q), want a timeout", err, errorReason(err))
	}
}

// TestFourLetterDeadline: a server that accepts and never answers costs
// the deadline.
func TestFourLetterDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, read nothing, answer nothing
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = fourLetterWord(ctx, ln.Addr().String(), "mntr", nil)
	if err == nil || errorReason(err) != "timeout" {
		t.Errorf("err = %v (reason %q), want a timeout", err, errorReason(err))
	}
}
