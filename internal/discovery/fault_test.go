package discovery

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

func member(i int) []byte {
	return []byte(fmt.Sprintf(`{"serviceEndpoint":{"host":"10.0.%d.%d","port":8080},"status":"ALIVE","shard":%d}`, i/250, i%250+1, i))
}

func memberAddr(i int) string { return fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1) }

func jobOf(m *Manager, name string) *job {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jobs[name].j
}

func isStale(j *job) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stale
}

// TestServerLoss: one ZooKeeper server killed: nothing visible; two
// killed (no quorum): the last good list is still served, flagged stale;
// restored: the output converges to what ZooKeeper holds.
func TestServerLoss(t *testing.T) {
	needEnsemble(t)
	if err := ensemble.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	w := writer(t, ensemble.Connect())
	for i := 0; i < 20; i++ {
		put(t, w, fmt.Sprintf("/loss/svc%d/member_%010d", i%4, i), member(i))
	}
	var want []string
	for i := 0; i < 20; i++ {
		want = append(want, memberAddr(i))
	}
	m, srv := startManager(t, `
zookeeper: {servers: '`+ensemble.Connect()+`', session_timeout: 4s}
jobs: [{name: loss, format: serverset, paths: [/loss]}]
`, "")
	waitTargets(t, srv, "loss", sortedCopy(want))

	// Poll the output all along: it must always be 200 and complete.
	var bad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var expect atomic.Value
	expect.Store(strings.Join(sortedCopy(want), " "))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			code, es := fetch(t, srv, "loss")
			got := strings.Join(addresses(es), " ")
			if code != 200 || got != expect.Load().(string) {
				bad.Store(fmt.Sprintf("status %d targets %s", code, got))
			}
		}
	}()

	// The server the discovery's session uses is unknown: kill each in
	// turn (one at a time) and check nothing shows.
	for i := range ensemble.Servers {
		if err := ensemble.Kill(i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := ensemble.Start(i); err != nil {
			t.Fatal(err)
		}
		if err := ensemble.WaitServing(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatalf("a single server loss was visible: %v", b)
	}
	j := jobOf(m, "loss")

	// No quorum: kill two.
	ensemble.Kill(1)
	ensemble.Kill(2)
	eventually(t, 30*time.Second, func() string {
		if !isStale(j) {
			return "not stale"
		}
		return ""
	})
	if code, es := fetch(t, srv, "loss"); code != 200 || strings.Join(addresses(es), " ") != strings.Join(sortedCopy(want), " ") {
		t.Fatalf("without quorum: status %d, %v", code, addresses(es))
	}
	if err := ensemble.Start(1); err != nil {
		t.Fatal(err)
	}
	if err := ensemble.Start(2); err != nil {
		t.Fatal(err)
	}
	if err := ensemble.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Changes after the restore show up, and staleness clears.
	del(t, w, "/loss/svc0")
	put(t, w, "/loss/svc9/member_0000000100", member(100))
	var want2 []string
	for i := 0; i < 20; i++ {
		if i%4 != 0 {
			want2 = append(want2, memberAddr(i))
		}
	}
	want2 = append(want2, memberAddr(100))
	waitTargets(t, srv, "loss", sortedCopy(want2))
	eventually(t, 30*time.Second, func() string {
		if isStale(j) {
			return "still stale"
		}
		return ""
	})
}

// TestSessionExpiry: the discovery's session expires (its connection is
// stalled longer than the session timeout) while members come and go;
// the output then converges to exactly what ZooKeeper holds.
func TestSessionExpiry(t *testing.T) {
	needEnsemble(t)
	if err := ensemble.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	w := writer(t, ensemble.Connect())
	for i := 0; i < 30; i++ {
		put(t, w, fmt.Sprintf("/expiry/svc%d/member_%010d", i%3, i), member(i))
	}
	px, err := zktest.NewProxy(ensemble.Servers[0].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	m, srv := startManager(t, `
zookeeper: {servers: '`+px.Addr()+`', session_timeout: 2s}
jobs: [{name: expiry, format: serverset, paths: [/expiry]}]
`, "")
	var want []string
	for i := 0; i < 30; i++ {
		want = append(want, memberAddr(i))
	}
	waitTargets(t, srv, "expiry", sortedCopy(want))
	j := jobOf(m, "expiry")
	m.mu.Lock()
	client := m.clients[px.Addr()].client
	m.mu.Unlock()
	session := client.SessionID()

	px.Stall()
	// Members come and go while the discovery cannot see it.
	for i := 0; i < 30; i += 2 {
		del(t, w, fmt.Sprintf("/expiry/svc%d/member_%010d", i%3, i))
	}
	for i := 30; i < 40; i++ {
		put(t, w, fmt.Sprintf("/expiry/svc%d/member_%010d", i%5, i), member(i))
	}
	put(t, w, "/expiry/svc1/member_0000000001", member(1001)) // changed data
	eventually(t, 30*time.Second, func() string {
		if !isStale(j) {
			return "not stale"
		}
		return ""
	})
	// Still the last good list while stale.
	if code, es := fetch(t, srv, "expiry"); code != 200 || len(es) != 30 {
		t.Fatalf("while stale: status %d, %d targets", code, len(es))
	}
	time.Sleep(3 * time.Second) // longer than the session timeout: the server expires it
	px.Resume()
	var want2 []string
	for i := 3; i < 40; i++ {
		if i < 30 && i%2 == 0 {
			continue
		}
		want2 = append(want2, memberAddr(i))
	}
	want2 = append(want2, memberAddr(1001))
	waitTargets(t, srv, "expiry", sortedCopy(want2))
	if client.SessionID() == session {
		t.Errorf("the session did not expire (0x%x)", session)
	}
	eventually(t, 30*time.Second, func() string {
		if isStale(j) {
			return "still stale"
		}
		return ""
	})
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
