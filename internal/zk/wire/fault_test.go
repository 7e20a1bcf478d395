package wire

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func mustCreate(t testing.TB, c *Conn, p, data string) {
	t.Helper()
	if _, _, err := c.Create(ctxT(t, 5*time.Second), p, []byte(data), nil, Persistent); err != nil {
		t.Fatal(err)
	}
}

// TestConnDroppedMidFrame: the connection closes in the middle of a large
// reply. The request fails with a connection loss, never a hang or a
// panic; the session dials again and the same read succeeds.
func TestConnDroppedMidFrame(t *testing.T) {
	c := dial(t, Config{})
	root := testRoot(t, c)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20_000) // 320 KB
	mustCreate(t, c, root+"/big", string(big))

	p := proxy(t)
	ctx := ctxT(t, 60*time.Second)
	s, err := NewSession(ctx, SessionConfig{Servers: []string{p.Addr()}, Conn: Config{SessionTimeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantState(t, s.Events(), StateSyncConnected)
	id := s.SessionID()
	for _, cut := range []int64{1, 15, 100_000} { // in the header, the stat, the data
		p.DropAfter(cut)
		_, _, err := s.Get(ctx, root+"/big", false)
		if !errors.Is(err, ErrConnectionLoss) {
			t.Fatalf("dropped after %d bytes of the reply: err %v, want a connection loss", cut, err)
		}
		var data []byte
		for deadline := time.Now().Add(20 * time.Second); ; {
			if data, _, err = s.Get(ctx, root+"/big", false); !errors.Is(err, ErrConnectionLoss) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no reconnect within 20 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || !bytes.Equal(data, big) {
			t.Fatalf("after the reconnect: %d bytes, err %v", len(data), err)
		}
	}
	if s.SessionID() != id {
		t.Error("a new session: the old one should have been kept")
	}
}
