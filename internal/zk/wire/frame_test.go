package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk/jute"
)

// fakeServer accepts one connection, answers the handshake with resp (or
// with raw bytes when raw is set), then hands the connection to serve.
func fakeServer(t *testing.T, resp jute.ConnectResponse, raw []byte, serve func(nc net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		r := bufio.NewReader(nc)
		if _, err := readFrame(r, DefaultMaxBuffer); err != nil {
			return
		}
		if raw != nil {
			nc.Write(raw)
		} else if err := writeFrame(nc, nil, &resp); err != nil {
			return
		}
		if serve != nil {
			serve(nc, r)
		}
	}()
	return ln.Addr().String()
}

var goodResp = jute.ConnectResponse{TimeOut: 10000, SessionID: 0x1234, Passwd: make([]byte, 16)}

func frame(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func TestHandshakeErrors(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	for _, tc := range []struct {
		name string
		raw  []byte
		resp jute.ConnectResponse
		want error
	}{
		{"truncated", frame([]byte{0, 0, 0, 0, 0, 0}), jute.ConnectResponse{}, ErrProtocol},
		{"expired", nil, jute.ConnectResponse{TimeOut: 0, Passwd: make([]byte, 16)}, ErrSessionExpired},
		{"huge length", []byte{0x7f, 0xff, 0xff, 0xff}, jute.ConnectResponse{}, ErrFrameTooLarge},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xf0}, jute.ConnectResponse{}, ErrFrameTooLarge},
		{"password length past the end", frame(append(make([]byte, 16), 0x7f, 0, 0, 0)), jute.ConnectResponse{}, ErrProtocol},
		// What a read-only 3.8 server without local sessions sends (seen).
		{"read-only, no new session", frame([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0x89}), jute.ConnectResponse{}, ErrNotReadOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, tc.resp, tc.raw, nil)
			c, err := Dial(ctx, addr, Config{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("dial: %v, want %v", err, tc.want)
			}
			if c != nil {
				t.Fatal("a connection despite the error")
			}
		})
	}
}

// TestBadFramesEndConnection: whatever the server sends after the
// handshake, the connection ends with an error for the requests in flight;
// nothing panics.
func TestBadFramesEndConnection(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	hdr := func(xid int32, err int32) []byte { return jute.Encode(&jute.ReplyHeader{Xid: xid, Zxid: 5, Err: err}) }
	for _, tc := range []struct {
		name  string
		reply []byte // written raw after the first request arrives
		want  error
	}{
		{"frame over max buffer, cut short", []byte{0x00, 0x10, 0x00, 0x01}, ErrFrameTooLarge},
		{"unknown xid", frame(hdr(99, 0)), ErrProtocol},
		{"short header", frame([]byte{0, 0, 0, 1, 0}), ErrProtocol},
		{"truncated data reply", frame(append(hdr(1, 0), 0, 0, 0, 10, 'a')), ErrProtocol},
		{"bytes after the reply", frame(append(append(hdr(1, 0), jute.Encode(&jute.GetDataResponse{Data: []byte("x")})...), 0xee)), ErrProtocol},
		{"bad notification", frame(append(hdr(-1, 0), 0, 0, 0, 1)), ErrProtocol},
		{"eof inside a frame", []byte{0, 0, 0, 50, 1, 2, 3}, ErrConnClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, goodResp, nil, func(nc net.Conn, r *bufio.Reader) {
				if _, err := readFrame(r, DefaultMaxBuffer); err != nil {
					return
				}
				nc.Write(tc.reply)
				time.Sleep(100 * time.Millisecond)
			})
			c, err := Dial(ctx, addr, Config{MaxBuffer: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			events := c.Events()
			_, _, err = c.Get(ctx, "/x", false)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrConnClosed) {
				t.Fatalf("get: %v, want %v", err, tc.want)
			}
			<-c.Done()
			if !errors.Is(c.Err(), tc.want) {
				t.Errorf("Err() = %v, want %v", c.Err(), tc.want)
			}
			if _, _, err := c.Get(ctx, "/x", false); !errors.Is(err, ErrConnClosed) {
				t.Errorf("get after the end: %v", err)
			}
			ev := <-events
			if ev.Type != EventNone || ev.State != StateDisconnected {
				t.Errorf("last event = %+v", ev)
			}
		})
	}
}

func TestInFlightBound(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	got := make(chan int, 1)
	addr := fakeServer(t, goodResp, nil, func(nc net.Conn, r *bufio.Reader) {
		n := 0
		nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			if _, err := readFrame(r, DefaultMaxBuffer); err != nil {
				break
			}
			n++
		}
		got <- n
	})
	c, err := Dial(ctx, addr, Config{MaxInFlight: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Get(short, "/x", false) }()
	}
	wg.Wait()
	if n := <-got; n != 4 {
		t.Errorf("server saw %d requests, want 4 (the bound)", n)
	}
}

func TestSilentServerEndsConnection(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	resp := goodResp
	resp.TimeOut = 600 // the server "grants" 600 ms: reads time out after 400 ms
	addr := fakeServer(t, resp, nil, func(nc net.Conn, r *bufio.Reader) {
		time.Sleep(time.Second)
	})
	c, err := Dial(ctx, addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-c.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("connection to a silent server still up")
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("ended after %s, want about 400 ms", d)
	}
	if !strings.Contains(c.Err().Error(), "nothing from the server") {
		t.Errorf("err = %v", c.Err())
	}
	if c.Stats().Pings < 1 {
		t.Error("no ping sent in 2/3 of the session timeout")
	}
}

// TestMaxBufferRealServer: a reply over the client's MaxBuffer fails its
// request alone, naming its size; the connection goes on (no reconnect
// that would read it again). A request over it is refused before it is
// sent and the connection goes on.
func TestMaxBufferRealServer(t *testing.T) {
	ctx := ctxT(t, 20*time.Second)
	c := dial(t, Config{})
	root := testRoot(t, c)
	big := bytes.Repeat([]byte("z"), 8000)
	if _, _, err := c.Create(ctx, root+"/big", big, nil, Persistent); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, root+"/big", make([]byte, DefaultMaxBuffer+1), -1); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("set over jute.maxbuffer: %v, want ErrFrameTooLarge", err)
	}
	if data, _, err := c.Get(ctx, root+"/big", false); err != nil || len(data) != 8000 {
		t.Errorf("after a refused request: %d bytes, %v", len(data), err)
	}

	for _, max := range []int{4096, 6000} {
		small := dial(t, Config{MaxBuffer: max})
		_, _, err := small.Get(ctx, root+"/big", true)
		if !errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrConnClosed) {
			t.Fatalf("get of 8000 bytes with a %d-byte buffer: %v", max, err)
		}
		if want := fmt.Sprintf("reply of %d bytes (limit %d)", 16+4+8000+68, max); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		if _, _, err := small.Get(ctx, root, false); err != nil || small.dead() {
			t.Errorf("after the oversized reply: %v", err)
		}
	}
}

// FuzzFrames feeds arbitrary bytes to the connection as what the server
// sends after the handshake, with requests of every reply shape in flight:
// never a panic, and every request is answered (a reply or an error).
func FuzzFrames(f *testing.F) {
	hdr := func(xid int32) []byte { return jute.Encode(&jute.ReplyHeader{Xid: xid, Zxid: 7}) }
	st := jute.Stat{Version: 1}
	multi := append(jute.Encode(&jute.MultiHeader{Type: jute.OpGetData}, &jute.GetDataResponse{Data: []byte("d"), Stat: st},
		&jute.MultiHeader{Type: jute.OpError, Err: -101}, &jute.ErrorResponse{Err: -101},
		&jute.MultiHeader{Type: jute.OpGetChildren}, &jute.StringsResponse{Strings: []string{"a"}}), jute.Encode(&jute.MultiHeader{Type: -1, Done: true, Err: -1})...)
	f.Add(frame(append(hdr(1), jute.Encode(&jute.GetDataResponse{Data: []byte("x"), Stat: st})...)))
	f.Add(frame(append(hdr(2), jute.Encode(&jute.ChildrenResponse{Children: []string{"a", "b"}, WithStat: true, Stat: st})...)))
	f.Add(frame(append(hdr(3), multi...)))
	f.Add(frame(append(hdr(4), jute.Encode(&jute.WhoAmIResponse{ClientInfo: []jute.ClientInfo{{AuthScheme: "ip", User: "x"}}})...)))
	f.Add(append(frame(append(hdr(-1), jute.Encode(&jute.WatcherEvent{Type: 1, State: 3, Path: "/a"})...)), frame(hdr(-2))...))
	f.Add(frame(jute.Encode(&jute.ReplyHeader{Xid: 1, Err: -101})))
	f.Add(append(frame(hdr(-8)), frame(hdr(-8))...))
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		defer server.Close()
		c := &Conn{
			cfg:     Config{MaxBuffer: 4096, MaxInFlight: 8}.withDefaults(),
			nc:      client,
			timeout: time.Second,
			sendq:   make(chan *request, 8),
			sem:     make(chan struct{}, 8),
			done:    make(chan struct{}),
			pending: map[int32]*request{},
			events:  newEventQueue(),
		}
		var getResp jute.GetDataResponse
		children := jute.ChildrenResponse{WithStat: true}
		var who jute.WhoAmIResponse
		var raw []multiResult
		reqs := []*request{
			{op: jute.OpGetData, resp: func(d *jute.Decoder, _ jute.ReplyHeader) { getResp.Decode(d) }},
			{op: jute.OpGetChildren2, resp: func(d *jute.Decoder, _ jute.ReplyHeader) { children.Decode(d) }},
			{op: jute.OpMultiRead, decodeOnError: true, resp: func(d *jute.Decoder, _ jute.ReplyHeader) { raw = decodeMulti(d) }},
			{op: jute.OpWhoAmI, resp: func(d *jute.Decoder, _ jute.ReplyHeader) { who.Decode(d) }},
			{op: jute.OpDelete},
		}
		for i, r := range reqs {
			r.xid = int32(i + 1)
			r.done = make(chan struct{})
			c.sem <- struct{}{}
			c.pending[r.xid] = r
		}
		auth := &request{op: jute.OpAuth, done: make(chan struct{})}
		sw := &request{op: jute.OpSetWatches2, done: make(chan struct{})}
		c.special = map[int32][]*request{jute.XidAuth: {auth}, jute.XidSetWatches: {sw}}
		c.sem <- struct{}{}
		c.sem <- struct{}{}
		rd := bytes.NewReader(b)
		for {
			fr, err := readFrame(rd, c.cfg.MaxBuffer)
			if err != nil {
				c.fail(err)
				break
			}
			if err := c.dispatch(fr); err != nil {
				c.fail(err)
				break
			}
		}
		_ = raw
		for _, r := range append(reqs, auth, sw) {
			select {
			case <-r.done:
			default:
				t.Fatalf("request op %d neither answered nor failed", r.op)
			}
		}
		if len(c.sem) != 0 {
			t.Fatalf("%d in-flight slots not released", len(c.sem))
		}
	})
}

// TestHandshakeFields: what the client asks (timeout, session, password,
// last zxid, the read-only flag) is what the server reads, and what the
// server grants is what the connection reports.
func TestHandshakeFields(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	asked := make(chan jute.ConnectRequest, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		fr, err := readFrame(nc, DefaultMaxBuffer)
		if err != nil {
			return
		}
		var req jute.ConnectRequest
		jute.Decode(fr, &req)
		asked <- req
		writeFrame(nc, nil, &jute.ConnectResponse{TimeOut: 7000, SessionID: 0x77, Passwd: []byte("0123456789abcdef"), ReadOnly: true})
		time.Sleep(200 * time.Millisecond)
	}()
	c, err := Dial(ctx, ln.Addr().String(), Config{SessionTimeout: 9 * time.Second, SessionID: 0x77, Password: []byte("fedcba9876543210"), LastZxid: 1234, CanBeReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	req := <-asked
	want := jute.ConnectRequest{TimeOut: 9000, SessionID: 0x77, Passwd: []byte("fedcba9876543210"), LastZxidSeen: 1234, ReadOnly: true}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("server read %+v, want %+v", req, want)
	}
	if !c.ReadOnly() || c.SessionTimeout() != 7*time.Second || c.SessionID() != 0x77 || string(c.Password()) != "0123456789abcdef" {
		t.Errorf("connection reports read-only %v, timeout %s, session 0x%x, password %q", c.ReadOnly(), c.SessionTimeout(), c.SessionID(), c.Password())
	}
}
