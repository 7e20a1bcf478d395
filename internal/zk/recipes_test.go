package zk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

const sessionTimeout = 4 * time.Second // the least tickTime 2000 allows

// proxiedClient connects through a proxy to one server, so that the test
// can silence the session until it expires.
func proxiedClient(t testing.TB, server int) (*Client, *zktest.Proxy) {
	t.Helper()
	px := newProxy(t, server)
	return connect(t, Config{Servers: px.Addr(), SessionTimeout: sessionTimeout}), px
}

// newProxy is a proxy to the ensemble's server, closed when the test ends.
func newProxy(t testing.TB, server int) *zktest.Proxy {
	t.Helper()
	px, err := zktest.NewProxy(ensemble.Servers[server].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	return px
}

// expire silences the proxy until the server has expired the session and
// the client has a new one.
func expire(t testing.TB, c *Client, px *zktest.Proxy, during func()) {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	old := c.SessionID()
	// An ephemeral node of the session tells when the server has expired
	// it: a little after sessionTimeout (rounded up to a tick, then
	// committed), later on a loaded machine. Reconnecting before would
	// resume the old session.
	probe := fmt.Sprintf("/expire-probe-%x", old)
	if _, err := c.Create(ctx, probe, nil, Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	observer := connect(t, Config{})
	sub := c.Subscribe()
	defer sub.Close()
	px.Stall()
	time.Sleep(sessionTimeout)
	eventually(t, 30*time.Second, "the server expires the silent session", func() error {
		if ok, _, err := observer.Exists(ctx, probe); err != nil || ok {
			return fmt.Errorf("probe %s still there (%v)", probe, err)
		}
		return nil
	})
	if during != nil {
		during()
	}
	px.Cut() // drop the silent connection so the client reconnects at once
	px.Resume()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-sub.C:
			if ev.State == StateConnected && ev.SessionID != old {
				if !ev.NewSession {
					t.Fatal("a different session was not flagged NewSession")
				}
				return
			}
		case <-deadline:
			t.Fatal("no new session after the old one expired")
		}
	}
}

func TestRegistrationSurvivesExpiry(t *testing.T) {
	needEnsemble(t)
	c, px := proxiedClient(t, 0)
	observer := connect(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	observer.CreateAll(ctx, "/reg-test", nil)
	// c talks to another server, which may not have seen the create yet.
	if err := c.Sync(ctx, "/reg-test"); err != nil {
		t.Fatal(err)
	}

	r, err := Register(ctx, c, "/reg-test/member_", []byte("me"), RegisterOptions{Sequential: true})
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := Register(ctx, c, "/reg-test/fixed", []byte("me"), RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := r.Path()
	_, st, _ := observer.Exists(ctx, first)
	oldOwner := st.EphemeralOwner

	// A second instance under the same fixed name is refused, not stolen.
	if _, err := Register(ctx, observer, "/reg-test/fixed", nil, RegisterOptions{}); err == nil || !strings.Contains(err.Error(), "held by another session") {
		t.Fatalf("registering a name another session holds: %v", err)
	}

	expire(t, c, px, nil)
	eventually(t, 20*time.Second, "registrations restored on the new session", func() error {
		for _, p := range []string{r.Path(), "/reg-test/fixed"} {
			ok, st, err := observer.Exists(ctx, p)
			if err != nil || !ok {
				return fmt.Errorf("%s missing (%v)", p, err)
			}
			if st.EphemeralOwner != c.SessionID() || st.EphemeralOwner == oldOwner {
				return fmt.Errorf("%s owned by 0x%x, want 0x%x", p, st.EphemeralOwner, c.SessionID())
			}
		}
		return nil
	})
	children, _, _ := observer.Children(ctx, "/reg-test")
	if len(children) != 2 {
		t.Errorf("want exactly the two registrations after expiry, have %v", children)
	}
	if r.Path() == first {
		t.Errorf("sequential registration kept its old path %s", first)
	}
	if err := fixed.Update(ctx, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := fixed.Suspend(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := observer.Exists(ctx, "/reg-test/fixed"); ok {
		t.Fatal("suspended registration still present")
	}
	if err := fixed.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if data, _, err := observer.Get(ctx, "/reg-test/fixed"); err != nil || string(data) != "v2" {
		t.Fatalf("resumed registration: %q %v", data, err)
	}
	r.Close(ctx)
	fixed.Close(ctx)
	if children, _, _ := observer.Children(ctx, "/reg-test"); len(children) != 0 {
		t.Errorf("closed registrations left %v", children)
	}
}

func TestGroupMembership(t *testing.T) {
	needEnsemble(t)
	a, b := connect(t, Config{}), connect(t, Config{})
	ctx := ctxT(t, 60*time.Second)
	a.CreateAll(ctx, "/group-test", nil)
	g := WatchGroup(ctx, a, "/group-test", testLogger())
	ra, err := Register(ctx, a, "/group-test/a", []byte("A"), RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Register(ctx, b, "/group-test/b", []byte("B"), RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitView := func(want string) {
		t.Helper()
		eventually(t, 15*time.Second, "view "+want, func() error {
			v := g.View()
			var got []string
			for _, m := range v.Members {
				got = append(got, m.Name+"="+string(m.Data))
			}
			if strings.Join(got, ",") != want {
				return fmt.Errorf("view %v", got)
			}
			return nil
		})
	}
	waitView("a=A,b=B")
	rb.Update(ctx, []byte("B2"))
	waitView("a=A,b=B2")
	b.Close() // b's session ends: its member goes
	waitView("a=A")
	ra.Close(ctx)
	waitView("")
}

// The election tests run candidates as separate processes (this test
// binary re-executed), so that a leader can really be killed and paused.
const candidateEnv = "ZKPROM_TEST_CANDIDATE"

func runCandidate() int {
	spec := strings.SplitN(os.Getenv(candidateEnv), "|", 3) // servers|path|name
	ctx := context.Background()
	c, err := Connect(ctx, Config{Servers: spec[0], SessionTimeout: sessionTimeout}, testLogger(), nil)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	e := NewElection(c, spec[1], []byte(spec[2]), ElectionOptions{})
	for {
		l, err := e.Campaign(ctx)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("leader", l.Term())
		// Act as leader every 20 ms, each time checking first; report every
		// act so that the test can see who acted when.
		for {
			began := time.Now() // an act is stamped with when it began
			if err := l.Check(); err != nil {
				fmt.Println("lost", strings.ReplaceAll(err.Error(), "\n", " "))
				break
			}
			if _, err := l.Multi(ctx, SetOp(spec[1], []byte(spec[2]), -1)); err != nil {
				fmt.Println("fenced", strings.ReplaceAll(err.Error(), "\n", " "))
				break
			}
			fmt.Println("acted", l.Term(), began.UnixNano())
			time.Sleep(20 * time.Millisecond)
		}
	}
}

type candidate struct {
	name  string
	cmd   *exec.Cmd
	lines chan string
}

func startCandidate(t *testing.T, path, name string) *candidate {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), candidateEnv+"="+ensemble.Connect()+"|"+path+"|"+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &candidate{name: name, cmd: cmd, lines: make(chan string, 100000)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			c.lines <- s.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return c
}

// next waits for a line with one of the prefixes, skipping "acted" lines.
func (c *candidate) next(t *testing.T, d time.Duration, prefixes ...string) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("candidate %s exited", c.name)
			}
			for _, p := range prefixes {
				if strings.HasPrefix(l, p) {
					return l
				}
			}
		case <-deadline:
			t.Fatalf("candidate %s: no %v within %s", c.name, prefixes, d)
		}
	}
}

func TestElectionKillAndPause(t *testing.T) {
	needEnsemble(t)
	c := connect(t, Config{})
	ctx := ctxT(t, 120*time.Second)
	const path = "/election-test"
	c.CreateAll(ctx, path, nil)

	a := startCandidate(t, path, "a")
	a.next(t, 20*time.Second, "leader")
	b := startCandidate(t, path, "b")
	cc := startCandidate(t, path, "c")
	time.Sleep(500 * time.Millisecond) // let b and c stand

	// Kill the leader: one of the others takes over once its session expires.
	a.cmd.Process.Kill()
	next := firstLeader(t, sessionTimeout+15*time.Second, b, cc)
	other := b
	if next == b {
		other = cc
	}
	leaderData, term, err := NewElection(c, path, nil, ElectionOptions{}).Leader(ctx)
	if err != nil || string(leaderData) != next.name {
		t.Fatalf("Leader() = %q (term %d), %v; want %s", leaderData, term, err, next.name)
	}

	// Pause the new leader past its session timeout.
	drain(next)
	if err := zktest.Freeze(next.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	other.next(t, sessionTimeout+15*time.Second, "leader")
	tookOver := time.Now()
	next.cmd.Process.Signal(syscall.SIGCONT)
	// Woken, the old leader must step down without acting again. Lines
	// written before the pause may still sit in the pipe, and an act that
	// began before the pause may be printed after it: only an act that
	// began after the other took over is a second leader acting.
	var l string
	for {
		l = next.next(t, 15*time.Second, "lost", "fenced", "acted")
		if !strings.HasPrefix(l, "acted") {
			break
		}
		f := strings.Fields(l)
		ns, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
		if at := time.Unix(0, ns); at.After(tookOver) {
			t.Fatalf("paused leader acted at %s, after the other took over at %s", at.Format(time.StampMilli), tookOver.Format(time.StampMilli))
		}
	}
	t.Logf("woken leader: %s", l)
	// It stands again and waits behind the new leader.
	if v, _, _ := c.Get(ctx, path); len(v) == 0 {
		t.Error("fenced writes never reached the election node")
	}
}

// firstLeader waits until one of two candidates reports leadership.
func firstLeader(t *testing.T, d time.Duration, x, y *candidate) *candidate {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l := <-x.lines:
			if strings.HasPrefix(l, "leader") {
				return x
			}
		case l := <-y.lines:
			if strings.HasPrefix(l, "leader") {
				return y
			}
		case <-deadline:
			t.Fatal("nobody took over from the killed leader")
		}
	}
}

func drain(c *candidate) {
	for {
		select {
		case <-c.lines:
		default:
			return
		}
	}
}

func TestLeadershipFencing(t *testing.T) {
	needEnsemble(t)
	c, px := proxiedClient(t, 1)
	ctx := ctxT(t, 60*time.Second)
	e := NewElection(c, "/fence-test", []byte("x"), ElectionOptions{})
	l, err := e.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Multi(ctx, CreateOp("/fence-test-data", nil, Persistent, nil)); err != nil {
		t.Fatalf("fenced write as leader: %v", err)
	}
	expire(t, c, px, nil)
	select {
	case <-l.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("leadership context not cancelled after expiry")
	}
	if _, err := l.Multi(ctx, SetOp("/fence-test-data", []byte("late"), -1)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write after losing leadership: %v", err)
	}
	c.Delete(ctx, "/fence-test-data", -1)
}
