package exporter

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

// ens is the package's one 3-node ensemble (nil under -short).
var ens *zktest.Ensemble

func TestMain(m *testing.M) {
	flag.Parse()
	if serveFloor() { // BenchmarkExporterProcess's floor server
		return
	}
	if testing.Short() {
		os.Exit(m.Run())
	}
	e, err := zktest.StartEnsemble(zktest.Options{Servers: 3})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start ZooKeeper ensemble:", err)
		os.Exit(1)
	}
	ens = e
	code := m.Run()
	e.Close()
	os.Exit(code)
}

func needZooKeeper(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (needs a real ZooKeeper)")
	}
}

// mainConfig is the 3-node ensemble as "main" (AdminServer) and as
// "words" (four-letter words only).
func mainConfig(timeout time.Duration) *Config {
	urls := map[string]string{}
	for _, s := range ens.Servers {
		urls[s.ClientAddr] = s.AdminURL
	}
	return &Config{Ensembles: []EnsembleConfig{
		{Name: "main", Config: zk.Config{Servers: ens.Connect()}, Timeout: timeout, Admin: AdminConfig{URLs: urls},
			Cons: true, ConsLimit: 5, ZnodePaths: []string{"/zookeeper"}},
		{Name: "words", Config: zk.Config{Servers: ens.Connect()}, Timeout: timeout, Admin: AdminConfig{Disabled: true}, Cons: true, Wchs: true},
	}}
}

func TestHealthyEnsemble(t *testing.T) {
	needZooKeeper(t)
	ts := newTestServer(t, mainConfig(10*time.Second), nil)
	// Client traffic on every server between two scrapes: its packets
	// counters must grow (no scrape resets them).
	var clients []*zk.Client
	for _, s := range ens.Servers {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := zk.Connect(ctx, zk.Config{Servers: s.ClientAddr}, nil, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	traffic := func() {
		for _, c := range clients {
			for range 5 {
				if _, _, err := c.Exists(context.Background(), "/zookeeper"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	traffic()
	first := ts.scrape(t, "/metrics")
	traffic()
	second := ts.scrape(t, "/metrics")
	for _, name := range []string{"main", "words"} {
		l := "ensemble=" + name
		second.want(t, 3, "zookeeper_ensemble_servers", l)
		second.want(t, 3, "zookeeper_ensemble_servers_up", l)
		second.want(t, 3, "zookeeper_ensemble_servers_serving", l)
		second.want(t, 1, "zookeeper_ensemble_leaders", l)
		second.want(t, 3, "zookeeper_ensemble_voters", l)
		second.want(t, 2, "zookeeper_ensemble_quorum_size", l)
		second.want(t, 1, "zookeeper_ensemble_failures_tolerated", l)
		second.want(t, 1, "zookeeper_ensemble_versions", l)
		source := map[string]string{"main": SourceAdmin, "words": SourceFourLetter}[name]
		for i, s := range ens.Servers {
			sl := "server=" + s.ClientAddr
			second.want(t, 1, "zookeeper_up", l, sl)
			second.want(t, 1, "zookeeper_serving", l, sl)
			second.want(t, 0, "zookeeper_read_only", l, sl)
			second.want(t, 1, "zookeeper_exporter_source", l, sl, "source="+source)
			second.want(t, 1, "zookeeper_exporter_server_scrape_success", l, sl)
			mode, _ := ens.Mode(i)
			second.want(t, 1, "zookeeper_server_state", l, sl, "state="+mode)
			second.want(t, 1, "zookeeper_server_info", l, sl, "version=3.8.0")
			if _, ok := second.value("zookeeper_zxid_epoch", l, sl); !ok {
				t.Errorf("%s %s: no zxid epoch", name, s.ClientAddr)
			}
			if _, ok := second.value("zookeeper_ensemble_zxid_lag", l, sl); !ok {
				t.Errorf("%s %s: no zxid lag", name, s.ClientAddr)
			}
			if _, ok := second.value("zookeeper_readlatency", l, sl); !ok {
				t.Errorf("%s %s: no read latency summary", name, s.ClientAddr)
			}
			// Nothing resets the server's statistics: packets only grow.
			a, _ := first.value("zookeeper_packets_received_total", l, sl)
			b, ok := second.value("zookeeper_packets_received_total", l, sl)
			if !ok || b <= a {
				t.Errorf("%s %s: zk_packets_received went from %v to %v, want growth", name, s.ClientAddr, a, b)
			}
			second.absent(t, "zookeeper_exporter_command_refused", l, sl)
		}
	}
	second.want(t, 1, "zookeeper_exporter_znode_read_success", "ensemble=main", "path=/zookeeper")
	if n, ok := second.value("zookeeper_znode_children", "ensemble=main", "path=/zookeeper"); !ok || n < 1 {
		t.Errorf("children of /zookeeper = %v (%v), want >= 1", n, ok)
	}
	if _, ok := second.value("zookeeper_exporter_connections_omitted", "ensemble=main"); !ok {
		t.Error("cons enabled but no connection metrics via the AdminServer")
	}
	if _, ok := second.value("zookeeper_connection_packets_received_total", "ensemble=words"); !ok {
		t.Error("cons enabled but no per-connection metrics via four-letter words")
	}
	if _, ok := second.value("zookeeper_wchs_watches", "ensemble=words"); !ok {
		t.Error("wchs enabled but no watch summary")
	}
	promtoolCheckMetrics(t, second.text)

	// /probe: one server, one ensemble, bad requests.
	p := ts.scrape(t, "/probe?target="+ens.Servers[0].ClientAddr)
	p.want(t, 1, "zookeeper_up", "server="+ens.Servers[0].ClientAddr)
	p.want(t, 1, "zookeeper_exporter_source", "source="+SourceAdmin)
	if _, ok := p.value("zookeeper_ensemble_leaders"); ok {
		t.Error("/probe?target= has an ensemble view")
	}
	promtoolCheckMetrics(t, p.text)
	p = ts.scrape(t, "/probe?target="+ens.Servers[1].ClientAddr+"&module=words")
	p.want(t, 1, "zookeeper_exporter_source", "source="+SourceFourLetter)
	p = ts.scrape(t, "/probe?ensemble=main")
	p.want(t, 1, "zookeeper_ensemble_leaders", "ensemble=main")
	if _, ok := p.value("zookeeper_ensemble_leaders", "ensemble=words"); ok {
		t.Error("/probe?ensemble=main shows other ensembles")
	}
	for path, code := range map[string]int{"/probe": 400, "/probe?ensemble=nope": 404, "/probe?target=a:1&ensemble=main": 400, "/probe?target=a:1&module=nope": 404} {
		if got, body := ts.get(t, path, ""); got != code {
			t.Errorf("GET %s: HTTP %d (%s), want %d", path, got, body, code)
		}
	}
}

// waitFor scrapes until cond holds (a server's view changes over seconds).
func waitFor(t *testing.T, ts *testServer, path string, what string, cond func(scraped) bool) scraped {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := ts.scrape(t, path)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last scrape:\n%s", what, grepLines(s.text, "zookeeper_ensemble_", "zookeeper_up", "zookeeper_serving"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func grepLines(text string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

func restart(t *testing.T, idx ...int) {
	t.Helper()
	for _, i := range idx {
		if !ens.Running(i) {
			if err := ens.Start(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ens.WaitServing(90 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// followers returns the servers that are not the leader.
func followers(t *testing.T) []int {
	_, f := roles(t)
	return f
}

// roles returns the leader and the other servers. The leader is asked
// once: a mode query that fails under load must not make the leader
// look like a follower.
func roles(t *testing.T) (leader int, followers []int) {
	t.Helper()
	if leader = ens.Leader(); leader < 0 {
		restart(t) // waits for a leader
		if leader = ens.Leader(); leader < 0 {
			t.Fatal("no leader")
		}
	}
	for i := range ens.Servers {
		if i != leader {
			followers = append(followers, i)
		}
	}
	return leader, followers
}

func TestKillFollower(t *testing.T) {
	needZooKeeper(t)
	f := followers(t)[0]
	defer restart(t, f)
	if err := ens.Kill(f); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, mainConfig(5*time.Second), nil)
	for _, name := range []string{"main", "words"} {
		l := "ensemble=" + name
		s := waitFor(t, ts, "/probe?ensemble="+name, "failures_tolerated=0", func(s scraped) bool {
			v, _ := s.value("zookeeper_ensemble_failures_tolerated", l)
			return v == 0
		})
		s.want(t, 0, "zookeeper_up", l, "server="+ens.Servers[f].ClientAddr)
		s.absent(t, "zookeeper_serving", l, "server="+ens.Servers[f].ClientAddr)
		s.want(t, 2, "zookeeper_ensemble_servers_up", l)
		s.want(t, 1, "zookeeper_ensemble_leaders", l)
		if v := errorsCounted(ts, "connection_refused", l, "server="+ens.Servers[f].ClientAddr); v == 0 {
			t.Errorf("%s: connection refused not counted for the killed server", name)
		}
		if v := errorsCounted(ts, "connection_refused", l, "server="+ens.Servers[ens.Leader()].ClientAddr); v != 0 {
			t.Errorf("%s: %v errors counted for the leader, which answers", name, v)
		}
	}
}

func TestKillTwo(t *testing.T) {
	needZooKeeper(t)
	leader, f := roles(t)
	killed, survivor := []int{leader, f[0]}, f[1]
	defer restart(t, killed...)
	for _, i := range killed {
		if err := ens.Kill(i); err != nil {
			t.Fatal(err)
		}
	}
	ts := newTestServer(t, mainConfig(5*time.Second), nil)
	sl := "server=" + ens.Servers[survivor].ClientAddr
	for _, name := range []string{"main", "words"} {
		l := "ensemble=" + name
		s := waitFor(t, ts, "/probe?ensemble="+name, "the survivor to stop serving", func(s scraped) bool {
			v, ok := s.value("zookeeper_serving", l, sl)
			return ok && v == 0
		})
		s.want(t, 1, "zookeeper_up", l, sl)
		s.want(t, 0, "zookeeper_serving", l, sl)
		s.absent(t, "zookeeper_read_only", l, sl)
		s.want(t, 0, "zookeeper_ensemble_leaders", l)
		s.want(t, 1, "zookeeper_ensemble_servers_up", l)
		s.want(t, 0, "zookeeper_ensemble_servers_serving", l)
		s.want(t, -2, "zookeeper_ensemble_failures_tolerated", l)
		// Unreadable data stays unreadable, never zeros.
		s.absent(t, "zookeeper_packets_received_total", l, sl)
		promtoolCheckMetrics(t, s.text)
	}
}

func TestPausedServer(t *testing.T) {
	needZooKeeper(t)
	f := followers(t)[0]
	ts := newTestServer(t, mainConfig(3*time.Second), nil)
	ts.scrape(t, "/metrics") // connections open, as in a running exporter
	browser := zktest.NewBrowser(t)
	checkPage(t, browser, ts, -1)
	if err := ens.Pause(f); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ens.Resume(f); err != nil {
			t.Error(err)
		}
		restart(t)
	}()
	for _, name := range []string{"main", "words"} {
		l := "ensemble=" + name
		// The request itself is bounded (60 s) in get; a hanging scrape
		// fails there instead of passing.
		s := ts.scrape(t, "/probe?ensemble="+name)
		for i, srv := range ens.Servers {
			want := 1.0
			if i == f {
				want = 0
			}
			s.want(t, want, "zookeeper_up", l, "server="+srv.ClientAddr)
		}
		s.want(t, 1, "zookeeper_ensemble_leaders", l)
		if v := errorsCounted(ts, "timeout", l, "server="+ens.Servers[f].ClientAddr); v == 0 {
			t.Errorf("%s: timeout not counted", name)
		}
	}
	checkPage(t, browser, ts, f)
}

// errorsCounted sums the exporter's scrape error counter (it lives in the
// exporter's own registry, which /probe leaves out) over the series with
// reason and the given labels ("k=v" pairs).
func errorsCounted(ts *testServer, reason string, labels ...string) float64 {
	return sumCounter(ts.x.scrapeErrors, append(labels, "reason="+reason)...)
}

func startStandalone(t *testing.T, opts zktest.Options) *zktest.Ensemble {
	t.Helper()
	opts.Servers = 1
	e, err := zktest.StartEnsemble(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestDefaultWhitelist(t *testing.T) {
	needZooKeeper(t)
	t.Parallel()
	withAdmin := startStandalone(t, zktest.Options{PerServer: map[int]zktest.ServerOptions{0: {Whitelist: "-"}}})
	noAdmin := startStandalone(t, zktest.Options{PerServer: map[int]zktest.ServerOptions{0: {Whitelist: "-", DisableAdmin: true}}})
	ports, err := zktest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	a, b := withAdmin.Servers[0], noAdmin.Servers[0]
	closed := fmt.Sprintf("127.0.0.1:%d", ports[1])
	silent := silentListener(t)
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{
		{Name: "admin", Config: zk.Config{Servers: a.ClientAddr}, Admin: AdminConfig{URLs: map[string]string{a.ClientAddr: a.AdminURL}}},
		{Name: "nosrvr", Config: zk.Config{Servers: closed}, Admin: AdminConfig{URLs: map[string]string{closed: a.AdminURL}}},
		{Name: "silent", Config: zk.Config{Servers: silent}, Timeout: 2 * time.Second, Admin: AdminConfig{URLs: map[string]string{silent: a.AdminURL}}},
		{Name: "noadmin", Config: zk.Config{Servers: b.ClientAddr}, Admin: AdminConfig{URLs: map[string]string{b.ClientAddr: fmt.Sprintf("http://127.0.0.1:%d", ports[0])}}},
	}}, nil)
	s := ts.scrape(t, "/metrics")

	al := []string{"ensemble=admin", "server=" + a.ClientAddr}
	s.want(t, 1, "zookeeper_exporter_source", append(al, "source="+SourceAdmin)...)
	s.want(t, 1, "zookeeper_serving", al...)
	s.want(t, 1, "zookeeper_server_state", append(al, "state=standalone")...)
	if _, ok := s.value("zookeeper_packets_received_total", al...); !ok {
		t.Error("default whitelist + AdminServer: no mntr data")
	}
	if _, ok := s.value("zookeeper_readlatency", al...); !ok {
		t.Error("default whitelist + AdminServer: no latency summary")
	}
	s.absent(t, "zookeeper_exporter_command_refused", al...)
	s.want(t, 1, "zookeeper_exporter_command_success", append(al, "command=srvr", "source="+SourceFourLetter)...)
	s.want(t, 1, "zookeeper_ensemble_leaders", "ensemble=admin")

	// No srvr on the client port (nothing listens there, or it never
	// answers): the AdminServer's srvr gives the zxid within the deadline,
	// and nothing is reported missing, in this scrape and the next.
	next := ts.scrape(t, "/metrics")
	for _, c := range []struct {
		s  scraped
		cl []string
	}{
		{s, []string{"ensemble=nosrvr", "server=" + closed}}, {next, []string{"ensemble=nosrvr", "server=" + closed}},
		{s, []string{"ensemble=silent", "server=" + silent}}, {next, []string{"ensemble=silent", "server=" + silent}},
	} {
		s, cl := c.s, c.cl
		s.want(t, 1, "zookeeper_exporter_source", append(cl, "source="+SourceAdmin)...)
		s.want(t, 1, "zookeeper_exporter_server_scrape_success", cl...)
		s.want(t, 1, "zookeeper_exporter_command_success", append(cl, "command=srvr", "source="+SourceAdmin)...)
		s.absent(t, "zookeeper_exporter_command_refused", cl...)
		if _, ok := s.value("zookeeper_zxid_epoch", cl...); !ok {
			t.Error("srvr refused on the client port: no zxid")
		}
		s.want(t, 0, "zookeeper_read_only", cl...)
	}

	bl := []string{"ensemble=noadmin", "server=" + b.ClientAddr}
	s.want(t, 1, "zookeeper_up", bl...)
	s.want(t, 1, "zookeeper_exporter_source", append(bl, "source="+SourceFourLetter)...)
	s.want(t, 1, "zookeeper_exporter_command_refused", append(bl, "command=mntr")...)
	s.absent(t, "zookeeper_exporter_command_refused", append(bl, "command=srvr")...)
	// srvr is allowed: state, zxid and its counters still come through;
	// what only mntr knows is absent, not zero.
	s.want(t, 1, "zookeeper_serving", bl...)
	s.want(t, 1, "zookeeper_server_state", append(bl, "state=standalone")...)
	if _, ok := s.value("zookeeper_packets_received_total", bl...); !ok {
		t.Error("srvr counters missing")
	}
	if _, ok := s.value("zookeeper_zxid_epoch", bl...); !ok {
		t.Error("srvr zxid missing")
	}
	s.want(t, 0, "zookeeper_read_only", bl...)
	s.absent(t, "zookeeper_watches", bl...)
	promtoolCheckMetrics(t, s.text)
}

func TestTLS(t *testing.T) {
	needZooKeeper(t)
	t.Parallel()
	e := startStandalone(t, zktest.Options{TLS: true, ClientAuth: "want"})
	srv := e.Servers[0]
	certs := e.TLS
	cfg := func(name string, tls EnsembleConfig) EnsembleConfig {
		tls.Name, tls.Servers, tls.Admin = name, srv.SecureAddr, AdminConfig{Disabled: true}
		return tls
	}
	withCert := cfg("cert", EnsembleConfig{})
	withCert.TLS.CAFile, withCert.TLS.CertFile, withCert.TLS.KeyFile = certs.CAFile, certs.ClientCert, certs.ClientKey
	noCert := cfg("nocert", EnsembleConfig{})
	noCert.TLS.CAFile = certs.CAFile
	wrongCA := cfg("wrongca", EnsembleConfig{})
	wrongCA.TLS.CAFile = certs.OtherCAFile
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{withCert, noCert, wrongCA}}, nil)
	s := ts.scrape(t, "/metrics")
	for _, name := range []string{"cert", "nocert"} {
		l := []string{"ensemble=" + name, "server=" + srv.SecureAddr}
		s.want(t, 1, "zookeeper_up", l...)
		s.want(t, 1, "zookeeper_serving", l...)
		if _, ok := s.value("zookeeper_packets_received_total", l...); !ok {
			t.Errorf("%s: no mntr data over TLS", name)
		}
	}
	s.want(t, 0, "zookeeper_up", "ensemble=wrongca", "server="+srv.SecureAddr)
	if v := errorsCounted(ts, "tls", "ensemble=wrongca", "server="+srv.SecureAddr, "source="+SourceFourLetter); v == 0 {
		t.Error("certificate from an unknown CA not counted as a TLS error")
	}
	promtoolCheckMetrics(t, s.text)
}

// TestAdminNotZooKeeper: an AdminServer address where something else
// answers (HTTP 404) does not count as an answer: four-letter words are
// used, and the failed AdminServer commands are reported.
func TestAdminNotZooKeeper(t *testing.T) {
	needZooKeeper(t)
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	urls := map[string]string{}
	for _, s := range ens.Servers {
		urls[s.ClientAddr] = other.URL
	}
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{{Name: "x", Config: zk.Config{Servers: ens.Connect()}, Admin: AdminConfig{URLs: urls}}}}, nil)
	s := ts.scrape(t, "/metrics")
	for _, srv := range ens.Servers {
		l := []string{"ensemble=x", "server=" + srv.ClientAddr}
		s.want(t, 1, "zookeeper_up", l...)
		s.want(t, 1, "zookeeper_exporter_source", append(l, "source="+SourceFourLetter)...)
		s.want(t, 0, "zookeeper_exporter_command_success", append(l, "source="+SourceAdmin, "command=monitor")...)
		s.want(t, 1, "zookeeper_exporter_command_success", append(l, "source="+SourceFourLetter, "command=mntr")...)
	}
	if v := errorsCounted(ts, "http_status", "ensemble=x", "source="+SourceAdmin); v == 0 {
		t.Error("HTTP 404 from the AdminServer address not counted")
	}
}

// A server with read-only mode enabled that loses its quorum serves reads:
// both sources say read-only from mntr's state and srvr (no isro asked).
func TestReadOnlyServer(t *testing.T) {
	needZooKeeper(t)
	t.Parallel()
	ro, err := zktest.StartEnsemble(zktest.Options{ReadOnlyMode: true, TickTime: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ro.Close)
	survivor := (ro.Leader() + 1) % 3
	for i := range ro.Servers {
		if i != survivor {
			if err := ro.Kill(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv := ro.Servers[survivor]
	ts := newTestServer(t, &Config{Ensembles: []EnsembleConfig{
		{Name: "admin", Config: zk.Config{Servers: srv.ClientAddr}, Admin: AdminConfig{URLs: map[string]string{srv.ClientAddr: srv.AdminURL}}},
		{Name: "words", Config: zk.Config{Servers: srv.ClientAddr}, Admin: AdminConfig{Disabled: true}},
	}}, nil)
	for _, name := range []string{"admin", "words"} {
		l := []string{"ensemble=" + name, "server=" + srv.ClientAddr}
		s := waitFor(t, ts, "/probe?ensemble="+name, "read-only mode", func(s scraped) bool {
			v, ok := s.value("zookeeper_read_only", l...)
			return ok && v == 1
		})
		s.want(t, 1, "zookeeper_up", l...)
		s.want(t, 1, "zookeeper_serving", l...)
		s.want(t, 1, "zookeeper_server_state", append(l, "state=other")...)
		s.absent(t, "zookeeper_exporter_command_refused", l...)
	}
}

// silentListener accepts connections and never answers.
func silentListener(t *testing.T) string {
	return zktest.Serve(t, func(c net.Conn) { t.Cleanup(func() { c.Close() }) })
}
