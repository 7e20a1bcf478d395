package discovery

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

// The benchmarks run `zkprom sd`'s engine in a child process (the test
// binary itself, see benchChild) so that its memory and CPU are measured
// alone, apart from the benchmark's own readers and writers, beside
// Debian's Prometheus with serverset_sd_configs on the same tree.

const childEnv = "ZKPROM_SD_BENCH_CHILD" // config file path
const childAddrEnv = "ZKPROM_SD_BENCH_ADDR"
const childFilesEnv = "ZKPROM_SD_BENCH_FILE_SD_DIR"  // optional: file_sd folder
const childProfileEnv = "ZKPROM_SD_BENCH_CPUPROFILE" // optional: CPU profile, written on SIGTERM

// benchChild serves a Manager over HTTP until killed or, with a CPU
// profile, until SIGTERM (called from TestMain in the child).
func benchChild() int {
	ctx := context.Background()
	if prof := os.Getenv(childProfileEnv); prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(0)
		}()
	}
	m, err := NewManager(ctx, Options{FileSDDir: os.Getenv(childFilesEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	path := os.Getenv(childEnv)
	if err := m.Reload(path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/sd/", m)
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Reload(path); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	if err := http.ListenAndServe(os.Getenv(childAddrEnv), mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return 1
}

// populate writes members serverset znodes spread over services below
// root (Multi batches in parallel); an existing complete tree is kept.
func populate(b *testing.B, c *zk.Client, root string, services, members int) {
	ctx := context.Background()
	if n, _, err := c.Children(ctx, root); err == nil && len(n) == services {
		return
	}
	if err := c.CreateAll(ctx, root, nil); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	per := members / services
	for s := 0; s < services; s++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dir := zk.Join(root, fmt.Sprintf("svc%04d", s))
			ops := []zk.Op{zk.CreateOp(dir, nil, zk.Persistent, nil)}
			for m := 0; m < per; m++ {
				i := s*per + m
				data := fmt.Appendf(nil, `{"serviceEndpoint":{"host":"127.0.%d.%d","port":%d},"additionalEndpoints":{"metrics":{"host":"127.0.%d.%d","port":9100}},"status":"ALIVE","shard":%d}`,
					i/250%250, i%250+1, 10000+i%50000, i/250%250, i%250+1, m)
				ops = append(ops, zk.CreateOp(zk.Join(dir, fmt.Sprintf("member_%010d", m)), data, zk.Persistent, nil))
			}
			if _, err := c.Multi(ctx, ops...); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}

// rssBytes reads a process's resident set size.
func rssBytes(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

func freeAddr(b *testing.B) string {
	ports, err := zktest.FreePorts(1)
	if err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0])
}

func post(url string) error {
	resp, err := http.Post(url, "", nil)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, body)
	}
	return nil
}

// countTargets counts `"targets":[` in an http_sd body (one per target).
func countTargets(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		return -1, nil
	}
	body, err := io.ReadAll(resp.Body)
	return bytes.Count(body, []byte(`"targets":[`)), err
}

// promActive counts Prometheus's active targets of a scrape pool.
func promActive(url, pool string) (int, error) {
	resp, err := http.Get(url + "/api/v1/targets?state=active&scrapePool=" + pool)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return bytes.Count(body, []byte(`"scrapePool":"`+pool+`"`)), err
}

func waitCount(b *testing.B, what string, limit time.Duration, want int, f func() (int, error)) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit {
		n, err := f()
		if err == nil && n == want {
			return time.Since(start), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Logf("%s: not all %d targets within %s", what, want, limit)
	return time.Since(start), false
}

// BenchmarkInitialSync: time and memory for the first complete sync of
// 10,000 and 100,000 members across 1,000 services, zkprom sd beside
// Prometheus's built-in serverset_sd_configs on the same tree. Both are
// started with an empty job, measured, then reloaded with the big job:
// time from reload to the full list, and RSS growth.
func BenchmarkInitialSync(b *testing.B) {
	needEnsemble(b)
	for _, members := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			root := fmt.Sprintf("/bench/sync%d", members)
			w := writer(b, ensemble.Connect())
			populate(b, w, root, 1000, members)
			put(b, w, "/bench/empty", nil)
			for i := 0; i < b.N; i++ {
				benchSyncOnce(b, root, members)
			}
		})
	}
}

func benchSyncOnce(b *testing.B, root string, members int) {
	dir := b.TempDir()
	// zkprom sd, in a child process.
	cfg := filepath.Join(dir, "sd.yml")
	small := "zookeeper: {servers: '" + ensemble.Connect() + "'}\njobs: [{name: big, format: serverset, paths: [/bench/empty]}]\n"
	os.WriteFile(cfg, []byte(small), 0o644)
	addr := freeAddr(b)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+cfg, childAddrEnv+"="+addr)
	child.Stderr = os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	url := "http://" + addr
	if _, ok := waitCount(b, "zkprom sd start", 30*time.Second, 0, func() (int, error) { return countTargets(url + "/sd/big") }); !ok {
		b.Fatal("zkprom sd child did not start")
	}
	base := rssBytes(child.Process.Pid)
	os.WriteFile(cfg, []byte(strings.Replace(small, "/bench/empty", root, 1)), 0o644)
	if err := post(url + "/-/reload"); err != nil {
		b.Fatal(err)
	}
	d, ok := waitCount(b, "zkprom sd", 5*time.Minute, members, func() (int, error) { return countTargets(url + "/sd/big") })
	if ok {
		b.ReportMetric(d.Seconds(), "zkprom_sync_s")
		b.ReportMetric((rssBytes(child.Process.Pid)-base)/1e6, "zkprom_rss_growth_MB")
		b.ReportMetric(rssBytes(child.Process.Pid)/1e6, "zkprom_rss_MB")
	}
	child.Process.Kill()
	child.Wait()

	// Prometheus with its built-in serverset discovery.
	var servers []string
	for _, s := range ensemble.Servers {
		servers = append(servers, fmt.Sprintf("%q", s.ClientAddr))
	}
	pcfg := filepath.Join(dir, "prometheus.yml")
	promYAML := func(path string) []byte {
		return []byte("global: {scrape_interval: 1h, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: big\n    serverset_sd_configs: [{servers: [" +
			strings.Join(servers, ", ") + "], paths: [" + path + "]}]\n")
	}
	os.WriteFile(pcfg, promYAML("/bench/empty"), 0o644)
	p, err := zktest.StartPrometheus(zktest.PrometheusOptions{ConfigFile: pcfg})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	time.Sleep(time.Second)
	pbase := rssBytes(p.Pid())
	os.WriteFile(pcfg, promYAML(root), 0o644)
	if err := post(p.URL + "/-/reload"); err != nil {
		b.Fatal(err)
	}
	d, ok = waitCount(b, "prometheus", 10*time.Minute, members, func() (int, error) { return promActive(p.URL, "big") })
	if ok {
		b.ReportMetric(d.Seconds(), "prometheus_sync_s")
		b.ReportMetric((rssBytes(p.Pid())-pbase)/1e6, "prometheus_rss_growth_MB")
	}
}

// BenchmarkPropagation: members created and deleted at 100 changes/s in
// a tree of 10,000; latency from the ZooKeeper write to the change being
// in the file_sd file and in the http_sd body.
//
// zkprom's Manager runs in a child process (benchChild), so that its
// heap, GC and CPU are its own; this process holds the writer and the
// readers. The http_sd reader polls every millisecond with If-None-Match
// (a 304 while unchanged), the file_sd reader wakes on inotify's rename
// of the file; each reads a new body once and finds every pending change
// in one pass over it, whatever the number pending. The CPU of both
// processes over the changes is reported, so that the harness's share
// can be told from zkprom's. ZKPROM_BENCH_CPUPROFILE=FILE writes the
// child's CPU profile there (the last run's, with -count).
func BenchmarkPropagation(b *testing.B) {
	needEnsemble(b)
	const members, changes = 10000, 300
	root := fmt.Sprintf("/bench/prop%d", time.Now().UnixNano()) // its own tree per run: the run changes it
	w := writer(b, ensemble.Connect())
	populate(b, w, root, 100, members)
	dir := b.TempDir()
	files := filepath.Join(dir, "file_sd")
	if err := os.Mkdir(files, 0o755); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "sd.yml")
	yml := "zookeeper: {servers: '" + ensemble.Connect() + "'}\njobs: [{name: prop, format: serverset, paths: [" + root + "]}]\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		b.Fatal(err)
	}
	sd := startChild(b, cfg, files, os.Getenv("ZKPROM_BENCH_CPUPROFILE"))
	defer sd.stop()
	url := sd.url + "/sd/prop"
	if _, ok := waitCount(b, "zkprom sd", time.Minute, members, func() (int, error) { return countTargets(url) }); !ok {
		b.Fatal("no sync")
	}
	file := filepath.Join(files, "prop.json")

	type change struct {
		addr    string
		present bool
		start   time.Time
		acked   time.Time // when ZooKeeper acknowledged the write
		fileAt  time.Time // when the file showed it
		httpAt  time.Time // when the HTTP body showed it
	}
	var mu sync.Mutex
	all := make([]*change, 0, changes)
	pending := map[string]*change{} // by address, until both outputs showed it
	var fileLat, httpLat, writeLat []time.Duration
	found := map[*change]bool{}
	// check finds the pending changes a new body shows: one pass over it,
	// each target's address looked up among the pending ones.
	check := func(body []byte, isFile bool) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		clear(found)
		key := []byte(`{"targets":["`)
		for rest := body; ; {
			i := bytes.Index(rest, key)
			if i < 0 {
				break
			}
			rest = rest[i+len(key):]
			j := bytes.IndexByte(rest, '"')
			if j < 0 {
				break
			}
			if c, ok := pending[string(rest[:j])]; ok {
				found[c] = true
			}
			rest = rest[j:]
		}
		for a, c := range pending {
			at, lat := &c.httpAt, &httpLat
			if isFile {
				at, lat = &c.fileAt, &fileLat
			}
			if at.IsZero() && found[c] == c.present {
				*at = now
				*lat = append(*lat, now.Sub(c.start))
			}
			if !c.fileAt.IsZero() && !c.httpAt.IsZero() {
				delete(pending, a)
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bodies, polls int
	wg.Add(2)
	go func() { // http_sd poller
		defer wg.Done()
		client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		var body bytes.Buffer
		etag := ""
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if etag != "" {
				req.Header.Set("If-None-Match", etag)
			}
			resp, err := client.Do(req)
			if err != nil {
				continue
			}
			polls++
			body.Reset()
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				bodies++
				etag = resp.Header.Get("ETag")
				check(body.Bytes(), false)
			}
		}
	}()
	events := watchRenames(b, files)
	go func() { // file_sd reader: reads the file when it is renamed into place
		defer wg.Done()
		var body bytes.Buffer
		for {
			select {
			case <-stop:
				return
			case name := <-events:
				if name != "prop.json" {
					continue
				}
			}
			f, err := os.Open(file)
			if err != nil {
				continue
			}
			body.Reset()
			body.ReadFrom(f)
			f.Close()
			check(body.Bytes(), true)
		}
	}()
	zkCPU0, _ := procStat(sd.cmd.Process.Pid)
	selfCPU0, phase0 := selfCPU(), time.Now()
	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond) // 100 changes/s
	var writes sync.WaitGroup
	for n := 0; n < changes; n++ {
		<-tick.C
		// Even changes create a new member, odd ones delete a member of
		// the initial tree: every change names its own address, so the
		// writes go out at a steady 100/s, each in its own goroutine.
		var addr, p string
		var data []byte
		if n%2 == 0 {
			i := members + n/2
			addr = fmt.Sprintf("127.1.%d.%d:8080", i/250%250, i%250+1)
			p = fmt.Sprintf("%s/svc%04d/member_x%010d", root, i%100, i)
			data = fmt.Appendf(nil, `{"serviceEndpoint":{"host":"127.1.%d.%d","port":8080},"status":"ALIVE"}`, i/250%250, i%250+1)
		} else {
			i := (n / 2) * 37 % members
			addr = fmt.Sprintf("127.0.%d.%d:%d", i/250%250, i%250+1, 10000+i%50000)
			p = fmt.Sprintf("%s/svc%04d/member_%010d", root, i/100, i%100)
		}
		c := &change{addr: addr, present: n%2 == 0, start: time.Now()}
		mu.Lock()
		pending[addr] = c
		all = append(all, c)
		mu.Unlock()
		writes.Add(1)
		go func() {
			defer writes.Done()
			var err error
			if c.present {
				_, err = w.Create(context.Background(), p, data, zk.Persistent, nil)
			} else {
				err = w.Delete(context.Background(), p, -1)
			}
			acked := time.Now()
			if err != nil {
				b.Error(err)
			}
			mu.Lock()
			c.acked = acked
			writeLat = append(writeLat, acked.Sub(c.start))
			mu.Unlock()
		}()
	}
	writes.Wait()
	tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := len(pending) == 0
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	zkCPU1, _ := procStat(sd.cmd.Process.Pid)
	selfCPU1, phase := selfCPU(), time.Since(phase0)
	close(stop)
	wg.Wait()
	b.StopTimer()
	pct := func(l []time.Duration, q float64) float64 {
		if len(l) == 0 {
			return -1
		}
		s := append([]time.Duration(nil), l...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[min(len(s)-1, int(q*float64(len(s))))].Seconds() * 1000
	}
	b.ReportMetric(pct(fileLat, 0.5), "file_p50_ms")
	b.ReportMetric(pct(fileLat, 0.99), "file_p99_ms")
	b.ReportMetric(pct(httpLat, 0.5), "http_p50_ms")
	b.ReportMetric(pct(httpLat, 0.99), "http_p99_ms")
	// zkprom's own part: from ZooKeeper's acknowledgement of the write to
	// the output (0 when the output was first).
	var fileAfter, httpAfter []time.Duration
	for _, c := range all {
		if !c.fileAt.IsZero() {
			fileAfter = append(fileAfter, max(0, c.fileAt.Sub(c.acked)))
		}
		if !c.httpAt.IsZero() {
			httpAfter = append(httpAfter, max(0, c.httpAt.Sub(c.acked)))
		}
	}
	b.ReportMetric(pct(fileAfter, 0.5), "file_after_ack_p50_ms")
	b.ReportMetric(pct(fileAfter, 0.99), "file_after_ack_p99_ms")
	b.ReportMetric(pct(httpAfter, 0.5), "http_after_ack_p50_ms")
	b.ReportMetric(pct(httpAfter, 0.99), "http_after_ack_p99_ms")
	// Baseline: the ZooKeeper write itself (create/delete acknowledged).
	b.ReportMetric(pct(writeLat, 0.5), "zk_write_p50_ms")
	b.ReportMetric(pct(writeLat, 0.99), "zk_write_p99_ms")
	b.ReportMetric(float64(len(fileLat)), "file_changes_seen")
	b.ReportMetric(float64(len(httpLat)), "http_changes_seen")
	// Where the CPU went while the changes ran: zkprom's process (its
	// share of serving the poller included), and this one (the readers
	// and the writer's session).
	b.ReportMetric((zkCPU1 - zkCPU0).Seconds(), "zkprom_cpu_s")
	b.ReportMetric(float64((zkCPU1-zkCPU0).Microseconds())/1000/changes, "zkprom_cpu_ms/change")
	b.ReportMetric((selfCPU1 - selfCPU0).Seconds(), "harness_cpu_s")
	b.ReportMetric(phase.Seconds(), "phase_s")
	b.ReportMetric(float64(bodies), "http_bodies")
	b.ReportMetric(float64(polls), "http_polls")
	b.ReportMetric(loadAverage(), "load1")
}

// childSD is benchChild running in a process of its own.
type childSD struct {
	cmd     *exec.Cmd
	url     string
	profile bool
}

// startChild starts benchChild with the config file cfg, a file_sd folder
// (optional) and a CPU profile file (optional).
func startChild(b *testing.B, cfg, files, profile string) *childSD {
	addr := freeAddr(b)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfg, childAddrEnv+"="+addr, childFilesEnv+"="+files, childProfileEnv+"="+profile)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return &childSD{cmd: cmd, url: "http://" + addr, profile: profile != ""}
}

// stop ends the child; with a profile, by SIGTERM, so that it writes it.
func (c *childSD) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	if c.profile {
		c.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
			return
		case <-time.After(10 * time.Second):
		}
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// watchRenames sends the names of the files renamed into dir (inotify's
// IN_MOVED_TO) until the benchmark ends.
func watchRenames(b *testing.B, dir string) <-chan string {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		b.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	b.Cleanup(func() { f.Close() })
	out := make(chan string, 64)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			for rest := buf[:n]; len(rest) >= syscall.SizeofInotifyEvent; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&rest[0]))
				name := rest[syscall.SizeofInotifyEvent : syscall.SizeofInotifyEvent+int(ev.Len)]
				rest = rest[syscall.SizeofInotifyEvent+int(ev.Len):]
				select {
				case out <- string(bytes.TrimRight(name, "\x00")):
				default: // the reader is behind: it reads the newest file anyway
				}
			}
		}
	}()
	return out
}

// selfCPU is this process's CPU time (user+system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the one-minute load average.
func loadAverage() float64 {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
