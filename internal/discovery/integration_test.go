package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zkprom/zkprom/internal/targetgroup"
)

// TestFormatsEndToEnd writes each format's registrations into the real
// ensemble, under a chroot, and reads them back through http_sd and
// file_sd.
func TestFormatsEndToEnd(t *testing.T) {
	needEnsemble(t)
	root := writer(t, ensemble.Connect())
	put(t, root, "/e2e", nil)
	w := writer(t, ensemble.Connect()+"/e2e")

	put(t, w, "/aurora/web/member_0000000001", []byte(`{"serviceEndpoint":{"host":"10.0.0.1","port":31000},"additionalEndpoints":{"metrics":{"host":"10.0.0.1","port":31001}},"status":"ALIVE","shard":0}`))
	put(t, w, "/aurora/web/member_0000000002", []byte(`{"serviceEndpoint":{"host":"10.0.0.2","port":31000},"status":"STOPPING","shard":1}`))
	put(t, w, "/aurora/web/member_0000000003", []byte(`{}`))
	put(t, w, "/nerve/web/i-1_0000000001", []byte(`{"host":"10.1.0.1","port":8080,"name":"i-1"}`))
	put(t, w, "/services/orders/a", []byte(`{"name":"orders","id":"a","address":"10.2.0.1","port":8080,"payload":null,"serviceType":"DYNAMIC"}`))
	put(t, w, "/services/billing/b", []byte(`{"name":"billing","id":"b","address":"10.2.0.2","port":8081,"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","metadata":{"instance_status":"UP"}},"serviceType":"DYNAMIC","enabled":true}`))
	for _, iface := range []string{"org.example.A", "org.example.B"} {
		u := "dubbo://10.3.0.1:20880/" + iface + "?application=demo&interface=" + iface + "&side=provider"
		put(t, w, "/dubbo/"+iface+"/providers/"+url.QueryEscape(u), nil)
		put(t, w, "/dubbo/"+iface+"/consumers/"+url.QueryEscape("consumer://10.9.9.9/"+iface+"?application=c"), nil)
	}
	put(t, w, "/brokers/ids/1", []byte(`{"listener_security_protocol_map":{"SSL":"SSL"},"endpoints":["SSL://10.4.0.1:9093"],"jmx_port":-1,"host":null,"port":-1,"version":5}`))
	put(t, w, "/live_nodes/10.5.0.1:8983_solr", nil)
	put(t, w, "/hbase/rs/10.6.0.1,16020,1700000000000", hbaseData("regionserver:16020", []byte{0x08, 0x9e, 0x7d}))
	put(t, w, "/druid/internal-discovery/broker/10.7.0.1:8082", gz([]byte(`{"druidNode":{"service":"druid/broker","host":"10.7.0.1","plaintextPort":8082,"tlsPort":-1},"nodeType":"broker"}`)))
	put(t, w, "/zkprom/targets/node/a", []byte(`{"targets":["10.8.0.1:9100"],"labels":{"env":"prod"}}`))

	dir := t.TempDir()
	cfg := `
zookeeper:
  servers: ` + ensemble.Connect() + `/e2e
  session_timeout: 4s
jobs:
  - {name: aurora, format: serverset, paths: [/aurora], filter: {status: [ALIVE]}, metrics: {endpoint: metrics}}
  - {name: nerve, format: nerve, paths: [/nerve]}
  - {name: curator, format: curator}
  - {name: dubbo, format: dubbo}
  - {name: kafka, format: kafka, metrics: {port: 7071}}
  - {name: solr, format: solr}
  - {name: hbase, format: hbase}
  - {name: druid, format: druid}
  - {name: zkprom, format: zkprom, paths: [/zkprom/targets], labels: {team: a}}
`
	m, srv := startManager(t, cfg, dir)
	want := map[string][]string{
		"aurora":  {"10.0.0.1:31001"},
		"nerve":   {"10.1.0.1:8080"},
		"curator": {"10.2.0.1:8080", "10.2.0.2:8081"},
		"dubbo":   {"10.3.0.1:22222"},
		"kafka":   {"10.4.0.1:7071"},
		"solr":    {"10.5.0.1:8983"},
		"hbase":   {"10.6.0.1:16030"},
		"druid":   {"10.7.0.1:8082"},
		"zkprom":  {"10.8.0.1:9100"},
	}
	for job, addrs := range want {
		es := waitTargets(t, srv, job, addrs)
		// The file says the same as the HTTP answer.
		eventually(t, 10*time.Second, func() string {
			b, err := os.ReadFile(filepath.Join(dir, job+".json"))
			if err != nil {
				return err.Error()
			}
			var fes []targetgroup.Group
			if err := json.Unmarshal(b, &fes); err != nil {
				return err.Error()
			}
			if fmt.Sprint(fes) != fmt.Sprint(es) {
				return fmt.Sprintf("file %v, http %v", fes, es)
			}
			return ""
		})
	}
	_, es := fetch(t, srv, "dubbo")
	if got := es[0].Labels["__meta_zookeeper_dubbo_interfaces"]; got != ",org.example.A,org.example.B," {
		t.Errorf("dubbo interfaces %q", got)
	}
	_, es = fetch(t, srv, "zkprom")
	if es[0].Labels["team"] != "a" || es[0].Labels["env"] != "prod" {
		t.Errorf("zkprom labels %v", es[0].Labels)
	}
	if code, _ := fetch(t, srv, "nope"); code != 404 {
		t.Errorf("unknown job: %d", code)
	}
	m.mu.Lock()
	sessions := len(m.clients)
	m.mu.Unlock()
	if sessions != 1 {
		t.Errorf("9 jobs on one connect string use %d sessions, want 1", sessions)
	}
	// The metrics pass the linter, and report what the jobs see.
	reg := m.opts.Registerer.(*prometheus.Registry)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP zkprom_sd_targets Targets in the job's output (after filters and de-duplication).
# TYPE zkprom_sd_targets gauge
zkprom_sd_targets{format="curator",job="curator"} 2
zkprom_sd_targets{format="druid",job="druid"} 1
zkprom_sd_targets{format="dubbo",job="dubbo"} 1
zkprom_sd_targets{format="hbase",job="hbase"} 1
zkprom_sd_targets{format="kafka",job="kafka"} 1
zkprom_sd_targets{format="nerve",job="nerve"} 1
zkprom_sd_targets{format="serverset",job="aurora"} 1
zkprom_sd_targets{format="solr",job="solr"} 1
zkprom_sd_targets{format="zkprom",job="zkprom"} 1
`), "zkprom_sd_targets"); err != nil {
		t.Error(err)
	}
	// The {} member is skipped and counted.
	m.mu.Lock()
	j := m.jobs["aurora"].j
	m.mu.Unlock()
	j.mu.Lock()
	inv := j.invalidTotal[ReasonNoAddress]
	j.mu.Unlock()
	if inv != 1 {
		t.Errorf("invalid no_address = %v, want 1", inv)
	}

	// Changes: a member comes, a member goes, a member changes.
	put(t, w, "/aurora/web/member_0000000004", []byte(`{"serviceEndpoint":{"host":"10.0.0.4","port":31000},"additionalEndpoints":{"metrics":{"host":"10.0.0.4","port":31001}},"status":"ALIVE"}`))
	put(t, w, "/aurora/web/member_0000000002", []byte(`{"serviceEndpoint":{"host":"10.0.0.2","port":31000},"status":"ALIVE","shard":1}`))
	waitTargets(t, srv, "aurora", []string{"10.0.0.1:31001", "10.0.0.2:31000", "10.0.0.4:31001"})
	del(t, w, "/aurora/web/member_0000000001")
	waitTargets(t, srv, "aurora", []string{"10.0.0.2:31000", "10.0.0.4:31001"})
	// A dubbo interface goes: the process stays, with one interface.
	del(t, w, "/dubbo/org.example.A")
	eventually(t, 10*time.Second, func() string {
		_, es := fetch(t, srv, "dubbo")
		if len(es) != 1 || es[0].Labels["__meta_zookeeper_dubbo_interfaces"] != ",org.example.B," {
			return fmt.Sprint(es)
		}
		return ""
	})
	del(t, w, "/dubbo")
	waitTargets(t, srv, "dubbo", nil)
	if b, _ := os.ReadFile(filepath.Join(dir, "dubbo.json")); string(b) != "[]" {
		eventually(t, 10*time.Second, func() string {
			b, _ := os.ReadFile(filepath.Join(dir, "dubbo.json"))
			if string(b) != "[]" {
				return string(b)
			}
			return ""
		})
	}

	// Reload: drop a job (its file goes), change one, keep the others.
	cfg2, err := ParseConfig([]byte(strings.Replace(strings.Replace(cfg, "  - {name: solr, format: solr}\n", "", 1), "metrics: {port: 7071}", "metrics: {port: 7072}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	m.ApplyConfig(cfg2)
	if _, err := os.Stat(filepath.Join(dir, "solr.json")); !os.IsNotExist(err) {
		t.Errorf("solr.json should be gone: %v", err)
	}
	waitTargets(t, srv, "kafka", []string{"10.4.0.1:7072"})
	if code, _ := fetch(t, srv, "solr"); code != 404 {
		t.Errorf("removed job: %d", code)
	}
}

// TestNotSynced: until the first complete sync the answer is 503 and no
// file is written.
func TestNotSynced(t *testing.T) {
	needEnsemble(t)
	dir := t.TempDir()
	// Nothing listens on this connect string's port.
	_, srv := startManager(t, "zookeeper: {servers: '127.0.0.1:1'}\njobs: [{name: a, format: serverset, paths: [/a]}]\n", dir)
	time.Sleep(200 * time.Millisecond)
	if code, _ := fetch(t, srv, "a"); code != 503 {
		t.Errorf("status %d, want 503", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.json")); !os.IsNotExist(err) {
		t.Errorf("file written before sync: %v", err)
	}
}

// listOf is a list of one group of entries.
func listOf(entries ...string) *list {
	l := &list{groups: [][][]byte{nil}, size: int64(1 + len(entries))}
	for _, e := range entries {
		l.groups[0] = append(l.groups[0], []byte(e))
		l.size += int64(len(e))
	}
	if len(entries) == 0 {
		l.size = 2
	}
	return l
}

// TestFileWritesThrottled: a stream of changes gives writes at least the
// interval apart, the first at once, the last after the last change; a
// failed write is tried again without a new change.
func TestFileWritesThrottled(t *testing.T) {
	const every = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	var mu sync.Mutex
	var state, written int // the output's version, and the one last written
	var at []time.Time
	fail := 0 // writes still to fail
	wrote := make(chan struct{}, 1)
	go throttle(ctx, changed, every, func() bool {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		defer func() {
			select {
			case wrote <- struct{}{}:
			default:
			}
		}()
		if fail > 0 {
			fail--
			return false
		}
		written = state
		return true
	})
	signal := func() {
		mu.Lock()
		state++
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	waitWritten := func(want int) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			mu.Lock()
			w := written
			mu.Unlock()
			if w == want {
				return
			}
			select {
			case <-wrote:
			case <-deadline:
				t.Fatalf("written %d, want %d", w, want)
			}
		}
	}
	signal()
	waitWritten(1) // the first change after a quiet spell: no wait
	start := time.Now()
	for time.Since(start) < 10*every {
		signal()
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	last := state
	mu.Unlock()
	waitWritten(last)
	mu.Lock()
	n := len(at)
	for i := 1; i < n; i++ {
		if gap := at[i].Sub(at[i-1]); gap < every {
			t.Errorf("writes %d and %d %s apart, want at least %s", i-1, i, gap, every)
		}
	}
	if n > last/2 {
		t.Errorf("%d writes for %d changes: not throttled", n, last)
	}
	fail = 1
	mu.Unlock()
	signal()
	waitWritten(last + 1) // the failed write retried, no change needed
}

// TestWriteOnlyOnChange: the file's mtime stays when nothing changes.
func TestFileWrittenOnlyOnChange(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := NewManager(ctx, Options{FileSDDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.writeFile("x", listOf()); err != nil {
		t.Fatal(err)
	}
	if err := m.writeFile("x", listOf()); err != nil {
		t.Fatal(err)
	}
	if m.writes["x"] != 1 {
		t.Errorf("writes %v, want 1", m.writes["x"])
	}
	if err := m.writeFile("x", listOf(`{"targets":["a:1"],"labels":{}}`)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "x.json"))
	if !bytes.Contains(b, []byte("a:1")) || m.writes["x"] != 2 {
		t.Errorf("file %s writes %v", b, m.writes["x"])
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
	if _, err := NewManager(ctx, Options{FileSDDir: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "create it first") {
		t.Errorf("a missing file_sd dir: %v", err)
	}
	if _, err := NewManager(ctx, Options{FileSDDir: filepath.Join(dir, "x.json")}); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("a file as file_sd dir: %v", err)
	}
}

// TestGroupUpdates: groups keep stable sources; a vanished group is sent
// once, empty.
func TestGroupUpdates(t *testing.T) {
	needEnsemble(t)
	w := writer(t, ensemble.Connect())
	put(t, w, "/groups/a/member_0000000001", member(1))
	put(t, w, "/groups/a/member_0000000002", member(2))
	put(t, w, "/groups/b/member_0000000001", member(3))
	m, _ := startManager(t, "zookeeper: {servers: '"+ensemble.Connect()+"'}\njobs: [{name: g, format: serverset, paths: [/groups]}]\n", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := m.Subscribe(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Subscribe(ctx, "nope"); err == nil {
		t.Error("subscribing to an unknown job should fail")
	}
	// state is what the changes add up to: source -> target id -> address.
	state := map[string]map[string]string{}
	// recv returns the groups an update changed, each as its addresses in
	// id order after the change (none: the group is gone).
	recv := func() map[string][]string {
		t.Helper()
		select {
		case gs := <-ch:
			out := map[string][]string{}
			for _, g := range gs {
				if state[g.Source] == nil {
					state[g.Source] = map[string]string{}
				}
				for _, id := range g.Removed {
					delete(state[g.Source], id)
				}
				for id, l := range g.Targets {
					state[g.Source][id] = string(l["__address__"])
				}
				ids := slices.Sorted(maps.Keys(state[g.Source]))
				out[g.Source] = []string{}
				for _, id := range ids {
					out[g.Source] = append(out[g.Source], state[g.Source][id])
				}
			}
			return out
		case <-time.After(20 * time.Second):
			t.Fatal("no update")
			return nil
		}
	}
	if got := fmt.Sprint(recv()); got != fmt.Sprint(map[string][]string{"/groups/a": {memberAddr(1), memberAddr(2)}, "/groups/b": {memberAddr(3)}}) {
		t.Fatalf("initial groups %s", got)
	}
	del(t, w, "/groups/b")
	if got := fmt.Sprint(recv()); got != fmt.Sprint(map[string][]string{"/groups/b": {}}) {
		t.Fatalf("vanished group: %s", got)
	}
	put(t, w, "/groups/a/member_0000000003", member(4))
	if got := fmt.Sprint(recv()); got != fmt.Sprint(map[string][]string{"/groups/a": {memberAddr(1), memberAddr(2), memberAddr(4)}}) {
		t.Fatalf("changed group: %s", got)
	}
}

// TestReloadMovesSession: a job moved to another connect string gets a
// new session, the old one closes (its metrics go), and moving back works.
func TestReloadMovesSession(t *testing.T) {
	needEnsemble(t)
	w := writer(t, ensemble.Connect())
	put(t, w, "/mv/a/member_0000000001", member(1))
	put(t, w, "/mvroot/mv/a/member_0000000001", member(2))
	cfgA := "zookeeper: {servers: '" + ensemble.Connect() + "'}\njobs: [{name: mv, format: serverset, paths: [/mv]}]\n"
	cfgB := "zookeeper: {servers: '" + ensemble.Connect() + "/mvroot'}\njobs: [{name: mv, format: serverset, paths: [/mv]}]\n"
	m, srv := startManager(t, cfgA, "")
	waitTargets(t, srv, "mv", []string{memberAddr(1)})
	for i, c := range []string{cfgB, cfgA, cfgB} {
		cfg, err := ParseConfig([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		m.ApplyConfig(cfg)
		want := memberAddr(2)
		if i == 1 {
			want = memberAddr(1)
		}
		waitTargets(t, srv, "mv", []string{want})
		m.mu.Lock()
		n := len(m.clients)
		m.mu.Unlock()
		if n != 1 {
			t.Errorf("step %d: %d sessions, want 1", i, n)
		}
	}
	reg := m.opts.Registerer.(*prometheus.Registry)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "zkprom_zookeeper_session_state" {
			for _, x := range mf.GetMetric() {
				for _, l := range x.GetLabel() {
					if l.GetName() == "zookeeper" && !strings.HasSuffix(l.GetValue(), "/mvroot") {
						t.Errorf("metrics of a closed session left: %v", l.GetValue())
					}
				}
			}
		}
	}
}
