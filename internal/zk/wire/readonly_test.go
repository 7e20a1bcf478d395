package wire

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk/jute"
	"github.com/zkprom/zkprom/internal/zktest"
)

// fakeQuorumServer answers isro with rw and takes sessions read-write
// (it answers nothing after the handshake); asked gets the session id of
// each connect request.
func fakeQuorumServer(t *testing.T, asked chan<- int64) string {
	t.Helper()
	return zktest.Serve(t, func(nc net.Conn) {
		defer nc.Close()
		r := bufio.NewReader(nc)
		head, err := r.Peek(4)
		if err != nil {
			return
		}
		if string(head) == "isro" {
			nc.Write([]byte("rw"))
			return
		}
		f, err := readFrame(r, DefaultMaxBuffer)
		var req jute.ConnectRequest
		if err != nil || jute.Decode(f, &req) != nil {
			return
		}
		asked <- req.SessionID
		resp := goodResp
		if err := writeFrame(nc, nil, &resp); err != nil {
			return
		}
		io.Copy(io.Discard, r)
	})
}

// TestSessionLeavesReadOnlyServer: a session on a read-only server asks
// the others whether they have a quorum (isro) and moves to the first
// that has; the read-only server's own session id is not taken along.
func TestSessionLeavesReadOnlyServer(t *testing.T) {
	ro := goodResp
	ro.ReadOnly, ro.SessionID = true, 0x77
	roAddr := fakeServer(t, ro, nil, func(nc net.Conn, r *bufio.Reader) { io.Copy(io.Discard, r) })
	asked := make(chan int64, 1)
	rwAddr := fakeQuorumServer(t, asked)
	ctx := ctxT(t, 30*time.Second)
	s, err := NewSession(ctx, SessionConfig{Servers: []string{roAddr, rwAddr}, Conn: Config{CanBeReadOnly: true, SessionTimeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := s.Events()
	wantState(t, events, StateConnectedReadOnly)
	if !s.ReadOnly() {
		t.Error("ReadOnly() false on a read-only server")
	}
	wantState(t, events, StateDisconnected)
	wantState(t, events, StateSyncConnected)
	if id := <-asked; id != 0 {
		t.Errorf("asked the quorum server for session 0x%x, the read-only server's own: want a new one", id)
	}
	if s.ReadOnly() || s.SessionID() != goodResp.SessionID {
		t.Errorf("after the move: read-only %v, session 0x%x, want the quorum server's 0x%x", s.ReadOnly(), s.SessionID(), goodResp.SessionID)
	}
}
