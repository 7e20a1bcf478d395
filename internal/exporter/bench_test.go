package exporter

import (
	"context"
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

	"github.com/prometheus/client_golang/prometheus"

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

func measure(b *testing.B, n int, f func() error) measured {
	b.Helper()
	for range 10 { // warm up connections and the JIT
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, n)
	c0 := cpuTime()
	for i := range lat {
		s := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(s)
	}
	cpu := (cpuTime() - c0) / time.Duration(n)
	slices.Sort(lat)
	return measured{p50: lat[n/2], p99: lat[n*99/100], cpu: cpu}
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

// rawMntr is the floor: mntr to every server at once, nothing parsed.
func rawMntr(servers []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			a, err := fourLetterWord(ctx, s, "mntr", nil)
			if err == nil && !strings.HasPrefix(a, "zk_version") {
				err = fmt.Errorf("mntr from %s: %q", s, firstLine(a))
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
	scrape := func(name string) func() error {
		return func() error {
			c, err := x.EnsembleCollector(context.Background(), name)
			if err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			mfs, err := reg.Gather()
			if err != nil {
				return err
			}
			if len(mfs) < 100 {
				return fmt.Errorf("only %d families", len(mfs))
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
		floor := measure(b, benchScrapes, func() error { return rawMntr(servers) })
		adminFloor := measure(b, benchScrapes, func() error { return rawMonitor(hc, urls) })
		admin := measure(b, benchScrapes, scrape("main"))
		words := measure(b, benchScrapes, scrape("words"))
		floor.report(b, "floor", measured{})
		adminFloor.report(b, "floor-monitor", measured{})
		admin.report(b, "admin", floor)
		b.ReportMetric(float64(admin.p50)/float64(adminFloor.p50), "admin-p50-x-floor-monitor")
		words.report(b, "4lw", floor)
	}
}

// BenchmarkExporterProcess runs the real binary against the ensemble and
// scrapes /metrics over HTTP: latency, CPU per scrape and RSS of the
// exporter process.
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
	ports, err := zktest.FreePorts(1)
	if err != nil {
		b.Fatal(err)
	}
	var urls []string
	for _, s := range ens.Servers {
		urls = append(urls, s.AdminURL)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	cmd := exec.Command(bin, "exporter", "--web.listen-address="+addr, "--zookeeper.servers="+ens.Connect(),
		"--zookeeper.admin.urls="+strings.Join(urls, ","), "--log.level=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	client := &http.Client{Timeout: 10 * time.Second}
	get := func() error {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "zookeeper_ensemble_leaders") {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for get() != nil {
		if time.Now().After(deadline) {
			b.Fatal("exporter did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	for range b.N {
		c0 := procCPU(b, pid)
		m := measure(b, benchScrapes, get)
		cpu := (procCPU(b, pid) - c0) / time.Duration(benchScrapes+10)
		b.ReportMetric(ms(m.p50), "http-p50-ms")
		b.ReportMetric(ms(m.p99), "http-p99-ms")
		b.ReportMetric(ms(cpu), "exporter-cpu-ms/scrape")
		b.ReportMetric(procRSS(b, pid), "exporter-rss-MB")
	}
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

// BenchmarkParseAndGather: the exporter's own work for one 3.8 leader's
// monitor answer (parse, build metrics, gather), without any network.
func BenchmarkParseAndGather(b *testing.B) {
	body := []byte(fixture(b, "leader_admin_monitor.json"))
	cache := newSeriesCache()
	for b.Loop() {
		s, err := ParseMonitor(body)
		if err != nil {
			b.Fatal(err)
		}
		r := &ServerResult{Server: "zk1:2181", Source: SourceAdmin, Up: true, Stats: &s}
		reg := prometheus.NewRegistry()
		reg.MustRegister(resultsCollector{results: []*ServerResult{r}, cache: cache})
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
