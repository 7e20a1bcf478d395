package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

const benchScrapes = 300

// measured is the latency distribution and CPU of a run of scrapes.
type measured struct {
	p50, p99 time.Duration
	cpu      time.Duration // per scrape
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs each of fs n times, interleaved round by round (so that a
// slow spell of the machine or of ZooKeeper falls on all of them alike),
// after 10 rounds to warm up connections and the JIT.
func measure(b *testing.B, n int, fs ...func() error) []measured {
	b.Helper()
	lat := make([][]time.Duration, len(fs))
	cpu := make([]time.Duration, len(fs))
	for round := -10; round < n; round++ {
		for i, f := range fs {
			c, s := cpuTime(), time.Now()
			if err := f(); err != nil {
				b.Fatal(err)
			}
			if round >= 0 {
				lat[i] = append(lat[i], time.Since(s))
				cpu[i] += cpuTime() - c
			}
		}
	}
	out := make([]measured, len(fs))
	for i := range fs {
		slices.Sort(lat[i])
		out[i] = measured{p50: lat[i][n/2], p99: lat[i][n*99/100], cpu: cpu[i] / time.Duration(n)}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (m measured) report(b *testing.B, prefix string, floor measured) {
	b.ReportMetric(ms(m.p50), prefix+"-p50-ms")
	b.ReportMetric(ms(m.p99), prefix+"-p99-ms")
	b.ReportMetric(ms(m.cpu), prefix+"-cpu-ms/scrape")
	if floor.p50 > 0 {
		b.ReportMetric(float64(m.p50)/float64(floor.p50), prefix+"-p50-x-floor")
	}
}

// rawWords sends each of words to every server at once, nothing parsed:
// mntr alone is the floor of four-letter words; mntr and srvr are what a
// scrape needs (srvr is the only answer with the zxid).
func rawWords(servers []string, words ...string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(servers)*len(words))
	for i, s := range servers {
		for j, w := range words {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				a, err := fourLetterWord(ctx, s, w, nil)
				if err == nil && !strings.HasPrefix(a, "zk_version") && !strings.HasPrefix(a, "Zookeeper version") {
					err = fmt.Errorf("%s from %s: %q", w, s, firstLine(a))
				}
				errs[i*len(words)+j] = err
			}()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// rawMonitor is the AdminServer's floor: GET /commands/monitor from every
// server at once over keep-alive connections, nothing parsed.
func rawMonitor(c *http.Client, urls []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(urls))
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(u + "/commands/monitor")
			if err != nil {
				errs[i] = err
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("monitor from %s: HTTP %d", u, resp.StatusCode)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// rawMonitorSrvr is the floor of what an AdminServer-mode scrape asks:
// monitor from the AdminServer and srvr on the client port, all at once.
func rawMonitorSrvr(c *http.Client, urls, servers []string) error {
	var monitorErr, srvrErr error
	parallel(func() { monitorErr = rawMonitor(c, urls) }, func() { srvrErr = rawWords(servers, "srvr") })
	return errors.Join(monitorErr, srvrErr)
}

// BenchmarkScrape: one scrape of the 3-node ensemble (every server asked,
// parsed, turned into metrics and gathered), through the AdminServer and
// through four-letter words, beside the floor of raw parallel mntr.
func BenchmarkScrape(b *testing.B) {
	if ens == nil {
		b.Skip("needs the package's ZooKeeper ensemble")
	}
	servers := strings.Split(ens.Connect(), ",")
	cfg := mainConfig(5 * time.Second)
	for i := range cfg.Ensembles {
		cfg.Ensembles[i].Cons, cfg.Ensembles[i].Wchs, cfg.Ensembles[i].ZnodePaths = false, false, nil
	}
	x, err := New(cfg, EnsembleConfig{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	var buf []byte
	scrape := func(name string) func() error {
		return func() error {
			sc, err := x.ensembleScrape(context.Background(), name)
			if err != nil {
				return err
			}
			p := sc.run()
			if buf = p.appendText(buf[:0]); len(p.families) < 100 || len(buf) < 10_000 {
				return fmt.Errorf("only %d families", len(p.families))
			}
			return nil
		}
	}
	var urls []string
	for _, s := range ens.Servers {
		urls = append(urls, s.AdminURL)
	}
	hc := newAdminClient(nil)
	for range b.N {
		m := measure(b, benchScrapes, func() error { return rawWords(servers, "mntr") }, func() error { return rawMonitor(hc, urls) },
			func() error { return rawWords(servers, "mntr", "srvr") }, func() error { return rawMonitorSrvr(hc, urls, servers) },
			scrape("main"), scrape("words"))
		floor, adminFloor, commands, adminCommands, admin, words := m[0], m[1], m[2], m[3], m[4], m[5]
		floor.report(b, "floor", measured{})
		adminFloor.report(b, "floor-monitor", measured{})
		commands.report(b, "floor-mntr-srvr", measured{})
		adminCommands.report(b, "floor-monitor-srvr", measured{})
		admin.report(b, "admin", floor)
		b.ReportMetric(float64(admin.p50)/float64(adminFloor.p50), "admin-p50-x-floor-monitor")
		b.ReportMetric(float64(admin.p50)/float64(adminCommands.p50), "admin-p50-x-floor-monitor-srvr")
		words.report(b, "4lw", floor)
		b.ReportMetric(float64(words.p50)/float64(commands.p50), "4lw-p50-x-floor-mntr-srvr")
	}
}

// BenchmarkExporterProcess runs the real binary against the ensemble and
// scrapes /metrics over HTTP: latency (beside raw monitor and mntr, the
// floors, interleaved), CPU per scrape and RSS of the exporter process.
// With ZKPROM_BENCH_BASELINE naming another zkprom binary (an older
// build, say), that one is scraped too, interleaved, as the baseline.
func BenchmarkExporterProcess(b *testing.B) {
	if ens == nil {
		b.Skip("needs the package's ZooKeeper ensemble")
	}
	bin := filepath.Join(b.TempDir(), "zkprom")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", bin, "github.com/zkprom/zkprom/cmd/zkprom")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build zkprom: %v\n%s", err, out)
	}
	var urls []string
	for _, s := range ens.Servers {
		urls = append(urls, s.AdminURL)
	}
	servers := strings.Split(ens.Connect(), ",")
	hc := newAdminClient(nil)
	fs := []func() error{func() error { return rawMonitor(hc, urls) }, func() error { return rawWords(servers, "mntr") },
		func() error { return rawMonitorSrvr(hc, urls, servers) }}
	names := []string{"exporter"}
	procs := []exporterProcess{startExporter(b, bin, urls)}
	if base := os.Getenv("ZKPROM_BENCH_BASELINE"); base != "" {
		names = append(names, "baseline")
		procs = append(procs, startExporter(b, base, urls))
	}
	// The floor of an exporter over HTTP: a process (this test binary
	// again) that asks the same commands, then sends a page as large as
	// the exporter's, gzipped as it is, and nothing parsed or built. In a
	// process of its own, like the exporter: served from this one, it
	// would be spared the wake-up of another process on every request.
	page, err := procs[0].page()
	if err != nil {
		b.Fatal(err)
	}
	floorURL, floorPid := startFloorServer(b, page, urls, servers)
	floorClient := &http.Client{Timeout: 10 * time.Second}
	fs = append(fs, func() error {
		resp, err := floorClient.Get(floorURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && (resp.StatusCode != http.StatusOK || n != int64(len(page))) {
			err = fmt.Errorf("floor server: HTTP %d, %d bytes", resp.StatusCode, n)
		}
		return err
	})
	for _, p := range procs {
		fs = append(fs, p.get)
	}
	for range b.N {
		cpu0 := make([]time.Duration, len(procs))
		for i, p := range procs {
			cpu0[i] = procCPU(b, p.pid)
		}
		floorCPU0 := procCPU(b, floorPid)
		all := measure(b, benchScrapes, fs...)
		monitor, mntr, monitorSrvr, httpFloor := all[0], all[1], all[2], all[3]
		httpFloor.cpu = (procCPU(b, floorPid) - floorCPU0) / time.Duration(benchScrapes+10) // the server's, not the client's
		httpFloor.report(b, "floor-http", measured{})
		for i, p := range procs {
			m, name := all[4+i], names[i]
			cpu := (procCPU(b, p.pid) - cpu0[i]) / time.Duration(benchScrapes+10)
			b.ReportMetric(ms(m.p50), name+"-http-p50-ms")
			b.ReportMetric(ms(m.p99), name+"-http-p99-ms")
			b.ReportMetric(float64(m.p50)/float64(monitor.p50), name+"-http-p50-x-floor-monitor")
			b.ReportMetric(float64(m.p50)/float64(mntr.p50), name+"-http-p50-x-floor")
			b.ReportMetric(float64(m.p50)/float64(monitorSrvr.p50), name+"-http-p50-x-floor-monitor-srvr")
			b.ReportMetric(float64(m.p50)/float64(httpFloor.p50), name+"-http-p50-x-floor-http")
			b.ReportMetric(ms(cpu), name+"-cpu-ms/scrape")
			b.ReportMetric(procRSS(b, p.pid), name+"-rss-MB")
		}
	}
}

// The floor server's settings, passed from BenchmarkExporterProcess to
// the test binary it runs as the floor.
const (
	floorEnvAddr    = "ZKPROM_BENCH_FLOOR_ADDR"
	floorEnvPage    = "ZKPROM_BENCH_FLOOR_PAGE"
	floorEnvAdmin   = "ZKPROM_BENCH_FLOOR_ADMIN"
	floorEnvServers = "ZKPROM_BENCH_FLOOR_SERVERS"
)

// startFloorServer runs this test binary as the HTTP floor server (see
// serveFloor) until the benchmark ends, and returns its URL and pid.
func startFloorServer(b *testing.B, page []byte, adminURLs, servers []string) (string, int) {
	dir := b.TempDir()
	pageFile := filepath.Join(dir, "page")
	if err := os.WriteFile(pageFile, page, 0o644); err != nil {
		b.Fatal(err)
	}
	ports, err := zktest.FreePorts(1)
	if err != nil {
		b.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), floorEnvAddr+"="+addr, floorEnvPage+"="+pageFile,
		floorEnvAdmin+"="+strings.Join(adminURLs, ","), floorEnvServers+"="+strings.Join(servers, ","))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, cmd.Process.Pid
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("the floor server did not come up")
		}
	}
}

// serveFloor is the floor server's process: when the environment names
// an address (see startFloorServer), it serves there for good and reports
// true; else it returns false at once.
func serveFloor() bool {
	addr := os.Getenv(floorEnvAddr)
	if addr == "" {
		return false
	}
	page, err := os.ReadFile(os.Getenv(floorEnvPage))
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor server:", err)
		os.Exit(1)
	}
	urls, servers := strings.Split(os.Getenv(floorEnvAdmin), ","), strings.Split(os.Getenv(floorEnvServers), ",")
	hc := newAdminClient(nil)
	err = http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rawMonitorSrvr(hc, urls, servers); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		gz := gzipWriters.get()
		defer gzipWriters.put(gz)
		gz.Reset(w)
		w.Header().Set("Content-Encoding", "gzip")
		gz.Write(page)
		gz.Close()
	}))
	fmt.Fprintln(os.Stderr, "floor server:", err)
	os.Exit(1)
	return true
}

type exporterProcess struct {
	pid  int
	get  func() error           // one scrape of /metrics
	page func() ([]byte, error) // one /metrics page
}

// startExporter runs bin's exporter against the ensemble (AdminServer
// mode) until the benchmark ends.
func startExporter(b *testing.B, bin string, adminURLs []string) exporterProcess {
	ports, err := zktest.FreePorts(1)
	if err != nil {
		b.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cmd := exec.Command(bin, "exporter", "--web.listen-address="+addr, "--zookeeper.servers="+ens.Connect(),
		"--zookeeper.admin.urls="+strings.Join(adminURLs, ","), "--log.level=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	client := &http.Client{Timeout: 10 * time.Second}
	page := func() ([]byte, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("zookeeper_ensemble_leaders")) {
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return body, nil
	}
	get := func() error { _, err := page(); return err }
	deadline := time.Now().Add(20 * time.Second)
	for get() != nil {
		if time.Now().After(deadline) {
			b.Fatalf("%s exporter did not come up", bin)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return exporterProcess{pid: cmd.Process.Pid, get: get, page: page}
}

// procCPU is a process's user+system time from /proc/<pid>/stat.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

func procRSS(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkParseAndWrite: the exporter's own work for one 3.8 leader's
// monitor answer (parse, make the series, write them), without any network.
func BenchmarkParseAndWrite(b *testing.B) {
	body := []byte(fixture(b, "leader_admin_monitor.json"))
	cache := newSeriesCache()
	var buf []byte
	for b.Loop() {
		s, err := ParseMonitor(body)
		if err != nil {
			b.Fatal(err)
		}
		r := &ServerResult{Server: "zk1:2181", Source: SourceAdmin, Up: true, Stats: &s}
		if buf = resultsPage([]*ServerResult{r}, cache).appendText(buf[:0]); len(buf) == 0 {
			b.Fatal("nothing written")
		}
	}
}
