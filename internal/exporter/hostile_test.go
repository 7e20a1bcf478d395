package exporter

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

// fakeZK answers four-letter words with answer(cmd) on 127.0.0.1 (over
// TLS when tlsConf is set) and records what it saw.
type fakeZK struct {
	addr     string
	conns    atomic.Int64
	mu       sync.Mutex
	certSeen bool // a client certificate was presented
}

func startFakeZK(t *testing.T, tlsConf *tls.Config, answer func(cmd string) string) *fakeZK {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	f := &fakeZK{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if tc, ok := c.(*tls.Conn); ok {
					if tc.Handshake() != nil {
						return
					}
					f.mu.Lock()
					f.certSeen = f.certSeen || len(tc.ConnectionState().PeerCertificates) > 0
					f.mu.Unlock()
				}
				cmd := make([]byte, 4)
				if _, err := io.ReadFull(c, cmd); err != nil {
					return
				}
				io.WriteString(c, answer(string(cmd)))
			}()
		}
	}()
	return f
}

// mntrAnswer is a small, real-looking mntr answer (two numeric keys)
// plus extra lines.
func mntrAnswer(extra string) func(string) string {
	return func(cmd string) string {
		switch cmd {
		case "mntr":
			return "zk_version\t3.8.0-fake\nzk_server_state\tstandalone\nzk_avg_latency\t0\nzk_znode_count\t5\n" + extra
		case "srvr":
			return "Zookeeper version: 3.8.0-fake\nZxid: 0x100000002\nMode: standalone\n"
		}
		return ""
	}
}

func wordsEnsemble(name string, servers ...string) EnsembleConfig {
	return EnsembleConfig{Name: name, Config: zk.Config{Servers: strings.Join(servers, ",")}, Timeout: 2 * time.Second, Admin: AdminConfig{Disabled: true}}
}

// An invalid target (bytes that are not UTF-8, control characters, no
// port) is refused with 400; it cannot wedge the exporter: scrapes with
// failed commands keep answering afterwards.
func TestProbeInvalidTargets(t *testing.T) {
	down := closedAddr(t)
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{wordsEnsemble("main", down)}, Probe: ProbePolicy{AllowAny: true}}, nil)
	for _, target := range []string{"%FF:2181", "%FF%FE%FD:1", "h%C3%28:2181", "a%1B%5B2J:2181", "%00:2181", "host-without-port", "h:99999", "h:0", strings.Repeat("a", 400) + ":1",
		"u%40h:2181", "h%3Fx:2181", "h%23x:2181", "[fe80::1%25eth0]:2181", "h:+80", "h:0080", "h%20:2181"} {
		code, body := ts.get(t, "/probe?target="+target, "5")
		if code != http.StatusBadRequest || strings.Contains(body, "goroutine") {
			t.Errorf("target %q: HTTP %d: %s", target, code, body)
		}
	}
	for i := 0; i < 3; i++ {
		s := ts.scrape(t, "/metrics")
		s.want(t, 0, "zookeeper_up", "server="+down)
	}
}

// A server's answer with bytes that are not UTF-8 in a label value makes
// a scrape error for that series, never a panic, and the exporter goes on.
func TestInvalidUTF8Answer(t *testing.T) {
	for _, version := range []string{"3.8\xff", "\xc3\x28", "ok\xed\xa0\x80"} {
		f := startFakeZK(t, nil, func(cmd string) string {
			if cmd == "srvr" {
				return "Zookeeper version: " + version + "\nZxid: 0x1\nMode: standalone\n"
			}
			return mntrAnswer("zk_version\t" + version + "\n")(cmd)
		})
		ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{wordsEnsemble("main", f.addr)}}, nil)
		for i := 0; i < 2; i++ {
			code, body := ts.get(t, "/metrics", "5")
			// The series after the bad one are there too: the scrape
			// went on (a panic, recovered by the registry, would end it).
			if code != http.StatusOK || !strings.Contains(body, "zookeeper_up{ensemble=\"main\",server=\""+f.addr+"\"} 1") ||
				!strings.Contains(body, "zookeeper_zxid_epoch{ensemble=\"main\",server=\""+f.addr+"\"}") {
				t.Errorf("version %q: HTTP %d\n%s", version, code, body)
			}
			if strings.Contains(body, "goroutine") || !utf8Valid(body) {
				t.Errorf("version %q: body shows a panic or invalid UTF-8", version)
			}
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

// /probe?target= asks only servers of configured ensembles, and what the
// allow-list names; anything else is 403 with a body saying so. The
// exporter does not even connect to a refused target.
func TestProbeAllowList(t *testing.T) {
	listed := startFakeZK(t, nil, mntrAnswer(""))
	other := startFakeZK(t, nil, mntrAnswer(""))
	for _, tc := range []struct {
		policy ProbePolicy
		target string
		want   int
	}{
		{ProbePolicy{}, listed.addr, 200},
		{ProbePolicy{}, other.addr, 403},
		{ProbePolicy{}, "10.1.2.3:2181", 403},
		{ProbePolicy{}, "evil.example.com:2181", 403},
		{ProbePolicy{}, "[::1]:2181", 403},
		{ProbePolicy{Allow: []string{"10.0.0.0/8"}}, other.addr, 403},
		{ProbePolicy{Allow: []string{"127.0.0.0/8"}}, other.addr, 200},
		{ProbePolicy{Allow: []string{"zk-*.example.com"}}, "zk-1.example.com:2181", 200},
		{ProbePolicy{Allow: []string{"zk-*.example.com"}}, "zk-1.example.com.evil.net:2181", 403},
		{ProbePolicy{AllowAny: true}, other.addr, 200},
		// A pattern's * must not reach past the host: user info, a
		// query or a fragment would send the AdminServer request
		// elsewhere.
		{ProbePolicy{Allow: []string{"zk-*"}}, "zk-a@" + other.addr, 400},
		{ProbePolicy{Allow: []string{"zk-*.example.com"}}, "zk-1@127.0.0.1?.example.com:2181", 400},
		{ProbePolicy{Allow: []string{"*.example.com"}}, "127.0.0.1#.example.com:2181", 400},
		{ProbePolicy{Allow: []string{"*"}}, "a/b:2181", 400},
	} {
		before := other.conns.Load()
		ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{wordsEnsemble("main", listed.addr)}, Probe: tc.policy}, nil)
		code, body := ts.get(t, "/probe?target="+tc.target, "3")
		if code == http.StatusOK && tc.want == 200 {
			continue // an unreachable name still answers 200 (zookeeper_up 0)
		}
		if code != tc.want {
			t.Errorf("policy %+v, target %s: HTTP %d, want %d: %s", tc.policy, tc.target, code, tc.want, body)
		}
		if tc.want == 403 && (!strings.Contains(body, "not allowed") || !strings.Contains(body, "--probe.allow")) {
			t.Errorf("403 body does not say why: %s", body)
		}
		if tc.want == 403 && other.conns.Load() != before {
			t.Errorf("policy %+v: the exporter connected to the refused target %s", tc.policy, tc.target)
		}
	}
}

// The AdminServer's redirects are answers, never followed.
func TestAdminRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `{"command":"monitor","error":null,"znode_count":1}`)
	}))
	defer elsewhere.Close()
	for _, code := range []int{301, 302, 307, 308} {
		admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, code)
		}))
		zkAddr := closedAddr(t)
		e := EnsembleConfig{Name: "main", Config: zk.Config{Servers: zkAddr}, Timeout: 2 * time.Second, Admin: AdminConfig{URLs: map[string]string{zkAddr: admin.URL}}}
		ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{e}}, nil)
		ts.scrape(t, "/metrics")
		admin.Close()
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("redirects were followed %d times", n)
	}
}

// A configured client certificate goes to the servers of its ensemble
// only: a probed server outside it (even with that ensemble as module)
// gets none.
func TestClientCertStaysInEnsemble(t *testing.T) {
	certs, err := zktest.GenerateCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certs.CAFile)
	pool.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequestClientCert, ClientCAs: pool}
	member := startFakeZK(t, tlsConf, mntrAnswer(""))
	outsider := startFakeZK(t, tlsConf, mntrAnswer(""))
	e := wordsEnsemble("secure", member.addr)
	e.TLS = zk.TLSConfig{CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{e}, Probe: ProbePolicy{Allow: []string{"127.0.0.1/32"}}}, nil)
	ts.scrape(t, "/metrics")
	ts.scrape(t, "/probe?target="+url.QueryEscape(outsider.addr)+"&module=secure")
	ts.scrape(t, "/probe?target="+url.QueryEscape(member.addr))
	member.mu.Lock()
	sawMember := member.certSeen
	member.mu.Unlock()
	outsider.mu.Lock()
	sawOutsider := outsider.certSeen
	outsider.mu.Unlock()
	if !sawMember {
		t.Error("the ensemble's own server got no client certificate")
	}
	if sawOutsider || outsider.conns.Load() == 0 {
		t.Errorf("outsider: client certificate %t, connections %d (want none and some)", sawOutsider, outsider.conns.Load())
	}
}

// Keys an answer makes up cannot grow the exporter: a probed server's
// metric names are never kept, a configured one's at most maxDescs; at
// most maxKeys keys per server are exported, the rest counted.
func TestUnboundedKeys(t *testing.T) {
	var round atomic.Int64
	answer := func(cmd string) string {
		if cmd != "mntr" {
			return mntrAnswer("")(cmd)
		}
		var b strings.Builder
		r := round.Add(1)
		for i := 0; i < maxKeys+500; i++ {
			fmt.Fprintf(&b, "zk_made_up_%d_%d\t%d\n", r, i, i)
		}
		return mntrAnswer(b.String())(cmd)
	}
	probed := startFakeZK(t, nil, answer)
	configured := startFakeZK(t, nil, answer)
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{wordsEnsemble("main", configured.addr)}, Probe: ProbePolicy{Allow: []string{"127.0.0.1/32"}}}, nil)
	for i := 0; i < 3; i++ {
		p := ts.scrape(t, "/probe?target="+url.QueryEscape(probed.addr))
		p.want(t, 502, "zookeeper_exporter_keys_dropped", "server="+probed.addr, "reason=too_many")
	}
	n := ts.x.series.size()
	if n != 0 {
		t.Errorf("probing kept %d cached descriptors, label pairs or keys", n)
	}
	for i := 0; i < 4; i++ {
		ts.scrape(t, "/metrics")
	}
	n = ts.x.series.size()
	if n > 3*maxCached {
		t.Errorf("%d descriptors, label pairs and keys kept, at most %d", n, 3*maxCached)
	}
}

// An answer longer than the command's bound is an error (too_large), not
// read to the end.
func TestAnswerBound(t *testing.T) {
	big := strings.Repeat("zk_x\t1\n", maxAnswer/6+10)
	f := startFakeZK(t, nil, func(cmd string) string {
		if cmd == "mntr" {
			return big
		}
		return mntrAnswer("")(cmd)
	})
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{wordsEnsemble("main", f.addr)}}, nil)
	ts.scrape(t, "/metrics")
	if v := errorsCounted(ts, "too_large", "server="+f.addr); v == 0 {
		t.Error("an oversized mntr answer was not counted as too_large")
	}
}

// At most MaxConcurrent probes run at once; the next one gets 503 at once.
func TestProbeConcurrency(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	slow := startFakeZK(t, nil, func(cmd string) string { <-release; return mntrAnswer("")(cmd) })
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{wordsEnsemble("main", slow.addr)}, Probe: ProbePolicy{MaxConcurrent: 2}}, nil)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); ts.get(t, "/probe?target="+url.QueryEscape(slow.addr), "5") }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for slow.conns.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	code, body := ts.get(t, "/probe?target="+url.QueryEscape(slow.addr), "5")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "at most 2") {
		t.Errorf("third probe at once: HTTP %d: %s", code, body)
	}
	once.Do(func() { close(release) })
	wg.Wait()
	if code, _ := ts.get(t, "/probe?target="+url.QueryEscape(slow.addr), "5"); code != http.StatusOK {
		t.Errorf("probe after the others finished: HTTP %d", code)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{"gzip": true, "deflate, gzip;q=1.0, *;q=0.5": true, "GZIP": true, "gzip;q=0": false, "identity": false, "": false, "x-gzip": false} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %t", h, got)
		}
	}
}

// Keys and label values far longer than real ones are used for the
// scrape and never kept: the cache cannot hold 4,096 made-up megabytes.
func TestLongKeysNotCached(t *testing.T) {
	for _, n := range []int{maxCachedLen + 1, 10_000, 1 << 20} {
		c := newSeriesCache()
		long := strings.Repeat("k", n)
		p := serverPage(c, func(e *emitter) {
			emitStats(e, Stats{Numbers: map[string]float64{long: 1, "min_" + long: 0, "max_" + long: 2}, Strings: map[string]string{}})
			e.gauge("zookeeper_server_info", "info", 1, "build", long)
			e.with("peer", long).gauge("zookeeper_server_info", "info", 1)
		})
		out := parseExposition(t, pageText(p))
		out.want(t, 1, "zookeeper_server_info", "build="+long)
		for k := range c.keys {
			t.Errorf("key of %d bytes: key %.20q… kept", n, k)
		}
		if len(c.plans) > 0 {
			t.Errorf("key of %d bytes: a plan that holds it kept", n)
		}
		for k := range c.labels {
			if len(k.leading) > 2*maxCachedLen || len(k.v1) > maxCachedLen || len(k.v2) > maxCachedLen {
				t.Errorf("key of %d bytes: label set %.40q… kept", n, k)
			}
		}
	}
}
