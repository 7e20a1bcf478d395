package wire

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk/jute"
)

// saslUsers are the DIGEST-MD5 users of the test server's JAAS file.
var saslUsers = map[string]string{"alice": "alice-secret", "bob": `b"o\b secret`}

// TestDigestMD5RFC2831 checks the computation against the example of RFC
// 2831 section 4 (IMAP, user chris, password secret).
func TestDigestMD5RFC2831(t *testing.T) {
	m := &DigestMD5{Username: "chris", Password: "secret", DigestURI: "imap/elwood.innosoft.com",
		cnonce: func() (string, error) { return "OA6MHXh6VqTrRk", nil }}
	ex, err := m.Start("elwood.innosoft.com:143")
	if err != nil {
		t.Fatal(err)
	}
	if tok, done, err := ex.Step(nil); err != nil || done || tok == nil || len(tok) != 0 {
		t.Fatalf("first step = %q %v %v, want an empty token", tok, done, err)
	}
	resp, done, err := ex.Step([]byte(`realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8`))
	if err != nil || done {
		t.Fatalf("second step: %v %v", done, err)
	}
	kv, err := parseDigestChallenge(resp)
	if err != nil {
		t.Fatalf("parse own response %q: %v", resp, err)
	}
	for k, want := range map[string]string{
		"username": "chris", "realm": "elwood.innosoft.com", "nonce": "OA6MG9tEQGm2hh", "cnonce": "OA6MHXh6VqTrRk",
		"nc": "00000001", "qop": "auth", "digest-uri": "imap/elwood.innosoft.com", "charset": "utf-8",
		"response": "d388dad90d4bbd760a152321f2143af7",
	} {
		if got := kv[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q (response %s)", k, got, want, resp)
		}
	}
	if _, _, err := ex.Step([]byte("rspauth=00000000000000000000000000000000")); err == nil {
		t.Error("a wrong rspauth was accepted")
	}
	ex, _ = m.Start("")
	ex.Step(nil)
	ex.Step([]byte(`realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8`))
	if tok, done, err := ex.Step([]byte("rspauth=ea40f60335c427b5527b84dbabcdfffd")); err != nil || !done || tok != nil {
		t.Errorf("last step = %q %v %v, want done", tok, done, err)
	}
}

func TestParseDigestChallenge(t *testing.T) {
	kv, err := parseDigestChallenge([]byte(` realm="a",realm="b\"c", ,qop="auth,auth-int" , nonce=xyz,algorithm=md5-sess`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kv["realm"], []string{"a", `b"c`}) || kv["qop"][0] != "auth,auth-int" || kv["nonce"][0] != "xyz" {
		t.Errorf("parsed %q", kv)
	}
	for _, bad := range []string{`realm="a`, `=x`, `nonce="a"b`, "novalue", strings.Repeat("a", 5000)} {
		if _, err := parseDigestChallenge([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzDigestChallenge: whatever the server sends, the exchange errs or
// answers, never panics.
func FuzzDigestChallenge(f *testing.F) {
	f.Add([]byte(`realm="zk-sasl-md5",nonce="n",qop="auth",charset=utf-8,algorithm=md5-sess`))
	f.Add([]byte(`nonce="\`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ex, _ := (&DigestMD5{Username: "u", Password: "p"}).Start("")
		ex.Step(nil)
		ex.Step(b)
		ex.Step(b)
	})
}

// TestSASLDigestMD5 authenticates against the real server's JAAS users:
// whoAmI shows sasl:<user>, a node whose ACL names that identity is
// readable by it and not by an anonymous session; a wrong password and an
// unknown user are refused with ErrAuthFailed and the connection ends.
func TestSASLDigestMD5(t *testing.T) {
	needEnsemble(t)
	ctx := ctxT(t, 30*time.Second)
	for user, pass := range saslUsers {
		t.Run("user", func(t *testing.T) {
			c := dial(t, Config{})
			if err := c.SASL(ctx, &DigestMD5{Username: user, Password: pass}); err != nil {
				t.Fatal(err)
			}
			who, err := c.WhoAmI(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(who, ClientInfo{AuthScheme: "sasl", User: user}) {
				t.Fatalf("whoAmI = %v, want sasl:%s among them", who, user)
			}
			root := testRoot(t, c)
			only := []ACL{{Perms: 0x1f, ID: ID{Scheme: "sasl", ID: user}}}
			if _, _, err := c.Create(ctx, root+"/private", []byte("p"), only, Persistent); err != nil {
				t.Fatal(err)
			}
			if data, _, err := c.Get(ctx, root+"/private", false); err != nil || string(data) != "p" {
				t.Errorf("read as sasl:%s = %q, %v", user, data, err)
			}
			anon := dial(t, Config{})
			if _, _, err := anon.Get(ctx, root+"/private", false); !errors.Is(err, ErrNoAuth) {
				t.Errorf("read anonymously: %v, want ErrNoAuth", err)
			}
		})
	}
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", "alice", "not-alice-secret"},
		// A password nobody has: 3.8.0 checks an unknown user against the
		// password of the last known user that tried (ZOOKEEPER-4839).
		{"unknown user", "mallory", "mallory-secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, Config{})
			events := c.Events()
			err := c.SASL(ctx, &DigestMD5{Username: tc.user, Password: tc.pass})
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("SASL as %s: %v, want ErrAuthFailed", tc.user, err)
			}
			if strings.Contains(err.Error(), tc.pass) {
				t.Errorf("the error shows the password: %v", err)
			}
			t.Log(err)
			if ev := nextEvent(t, events, 10*time.Second); ev.State != StateAuthFailed {
				t.Errorf("last event %v, want auth_failed", ev.State)
			}
		})
	}
}

// TestSessionSASL: a Session authenticates every connection; after a cut
// the next connection is authenticated again. A refused one fails
// NewSession.
func TestSessionSASL(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	p1, p2 := proxy(t), proxy(t)
	s, err := NewSession(ctx, SessionConfig{
		Servers: []string{p1.Addr(), p2.Addr()},
		Conn:    Config{SessionTimeout: 20 * time.Second},
		SASL:    &DigestMD5{Username: "alice", Password: saslUsers["alice"]},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := s.Events()
	wantState(t, events, StateSyncConnected)
	root := testRoot(t, dial(t, Config{}))
	only := []ACL{{Perms: 0x1f, ID: ID{Scheme: "sasl", ID: "alice"}}}
	if _, _, err := s.Create(ctx, root+"/private", []byte("p"), only, Persistent); err != nil {
		t.Fatal(err)
	}
	p1.Cut()
	wantState(t, events, StateDisconnected)
	wantState(t, events, StateSyncConnected)
	if _, _, err := s.Get(ctx, root+"/private", false); err != nil {
		t.Errorf("read after the reconnect: %v", err)
	}
	who, err := s.WhoAmI(ctx)
	if err != nil || !slices.Contains(who, ClientInfo{AuthScheme: "sasl", User: "alice"}) {
		t.Errorf("whoAmI after the reconnect = %v, %v", who, err)
	}

	_, err = NewSession(ctx, SessionConfig{
		Servers: []string{p2.Addr()},
		SASL:    &DigestMD5{Username: "alice", Password: "wrong"},
	})
	if !errors.Is(err, ErrAuthFailed) {
		t.Errorf("NewSession with a wrong password: %v, want ErrAuthFailed", err)
	}
}

// TestSASLClientRefuses: against fake servers, a server with no SASL set
// up (it answers with no token) and one that does not prove it knows the
// password are refused with ErrSASL and a message saying which.
func TestSASLClientRefuses(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	challenge := []byte(`realm="zk-sasl-md5",nonce="n0",qop="auth",charset=utf-8,algorithm=md5-sess`)
	for _, tc := range []struct {
		name   string
		tokens [][]byte // the server's answers, in turn
		want   string
	}{
		{"no SASL on the server", [][]byte{nil}, "sent no challenge"},
		{"wrong rspauth", [][]byte{challenge, []byte("rspauth=0123456789abcdef0123456789abcdef")}, "did not prove"},
		{"unsupported qop", [][]byte{[]byte(`nonce="n0",qop="auth-conf",algorithm=md5-sess`)}, "only auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, goodResp, nil, func(nc net.Conn, r *bufio.Reader) {
				for _, tok := range tc.tokens {
					b, err := readFrame(r, DefaultMaxBuffer)
					if err != nil {
						return
					}
					d := jute.NewDecoder(b)
					var hdr jute.RequestHeader
					hdr.Decode(d)
					if hdr.Type != jute.OpSASL {
						t.Errorf("request type %d, want sasl", hdr.Type)
					}
					writeFrame(nc, nil, &jute.ReplyHeader{Xid: hdr.Xid, Zxid: 1}, &jute.SetSASLResponse{Token: tok})
				}
				io.Copy(io.Discard, r)
			})
			c, err := Dial(ctx, addr, Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Disconnect()
			err = c.SASL(ctx, &DigestMD5{Username: "alice", Password: "pw"})
			if !errors.Is(err, ErrSASL) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SASL: %v, want ErrSASL saying %q (conn: %v)", err, tc.want, c.Err())
			}
		})
	}
}

// flipMech authenticates with good on the first connection and with bad
// on every later one.
type flipMech struct {
	good, bad SASLMechanism
	n         int
}

func (m *flipMech) Name() string { return m.good.Name() }
func (m *flipMech) Start(addr string) (SASLExchange, error) {
	m.n++
	if m.n == 1 {
		return m.good.Start(addr)
	}
	return m.bad.Start(addr)
}

// TestSessionSASLRefusedOnReconnect: credentials refused on a later
// connection end the session (auth_failed last), and requests then fail.
func TestSessionSASLRefusedOnReconnect(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	p1, p2 := proxy(t), proxy(t)
	s, err := NewSession(ctx, SessionConfig{
		Servers: []string{p1.Addr(), p2.Addr()},
		Conn:    Config{SessionTimeout: 20 * time.Second},
		SASL: &flipMech{good: &DigestMD5{Username: "alice", Password: saslUsers["alice"]},
			bad: &DigestMD5{Username: "alice", Password: "changed"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := s.Events()
	wantState(t, events, StateSyncConnected)
	p1.Cut()
	wantState(t, events, StateDisconnected)
	if ev := wantState(t, events, StateAuthFailed); !errors.Is(ev.Err, ErrAuthFailed) {
		t.Errorf("last event's error %v, want ErrAuthFailed", ev.Err)
	}
	if _, _, err := s.Get(ctx, "/", false); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("get after the refusal: %v, want ErrAuthFailed", err)
	}
}
