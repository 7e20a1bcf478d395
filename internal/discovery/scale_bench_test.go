package discovery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

// The real `zkprom sd` binary, timed from its start: issue 13's goals.

// buildZkprom builds cmd/zkprom into a temporary folder.
func buildZkprom(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "zkprom")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/zkprom/zkprom/cmd/zkprom").CombinedOutput(); err != nil {
		b.Fatalf("build zkprom: %v\n%s", err, out)
	}
	return bin
}

// sdProcess is a running `zkprom sd` with one job named job.
type sdProcess struct {
	cmd   *exec.Cmd
	url   string
	files string // its file_sd folder
	start time.Time
}

func startSD(b *testing.B, bin, job, root string) *sdProcess {
	b.Helper()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "sd.yml")
	yml := fmt.Sprintf("zookeeper: {servers: '%s'}\njobs: [{name: %s, format: serverset, paths: [%s]}]\n", ensemble.Connect(), job, root)
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		b.Fatal(err)
	}
	addr := freeAddr(b)
	p := &sdProcess{url: "http://" + addr, files: filepath.Join(dir, "file_sd")}
	os.MkdirAll(p.files, 0o755)
	p.cmd = exec.Command(bin, "sd", "--config.file="+cfg, "--web.listen-address="+addr, "--file-sd.dir="+p.files, "--log.level=warn")
	p.cmd.Stderr = os.Stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.stop)
	return p
}

func (p *sdProcess) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// metric reads one sample of the process's /metrics (-1 when absent).
func metric(url, series string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// waitMetric waits until series reads want; it polls /metrics, which costs
// the process little beside serving a whole target list.
func waitMetric(b *testing.B, url, series string, want float64, limit time.Duration, poll time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if metric(url, series) == want {
			return time.Now(), true
		}
		time.Sleep(poll)
	}
	b.Logf("%s did not reach %v within %s (last %v)", series, want, limit, metric(url, series))
	return time.Now(), false
}

// procStat reads a process's CPU time (user+system) and peak RSS.
func procStat(pid int) (cpu time.Duration, peakRSS float64) {
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
	}
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				peakRSS = kb * 1024
			}
		}
	}
	return cpu, peakRSS
}

// serverWatches sums the watches every server of the ensemble holds (wchs).
func serverWatches(b *testing.B) int {
	n, err := ensemble.Watches()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkSDFromStart: `zkprom sd` (the real binary) over 100,000
// serverset members in 1,000 services under one path, from process start
// to all listed: time, its own CPU seconds, peak RSS, and the watches it
// put on the servers. Then, from the start of both, a Prometheus fed by
// its file_sd file (the newest release) beside Prometheus with its own
// serverset_sd_configs on the same tree (each release): the time until
// each has all 100,000 in its scrape pool, and Prometheus's peak RSS.
// ZKPROM_BENCH_SD_ONLY=1 measures `zkprom sd` alone and skips the
// Prometheus comparisons (minutes), for quick before/after runs.
func BenchmarkSDFromStart(b *testing.B) {
	needEnsemble(b)
	const members = 100000
	root := "/bench/sync100000" // BenchmarkInitialSync's tree, kept
	populate(b, writer(b, ensemble.Connect()), root, 1000, members)
	bin := buildZkprom(b)
	for range b.N {
		before := serverWatches(b)
		sd := startSD(b, bin, "big", root)
		listed, ok := waitMetric(b, sd.url, `zkprom_sd_targets{format="serverset",job="big"}`, members, 5*time.Minute, 50*time.Millisecond)
		if !ok {
			b.Fatal("zkprom sd did not list every member")
		}
		cpu, peak := procStat(sd.cmd.Process.Pid)
		if n, err := countTargets(sd.url + "/sd/big"); err != nil || n != members {
			b.Fatalf("http_sd lists %d targets (%v), want %d", n, err, members)
		}
		watches := serverWatches(b) - before
		b.ReportMetric(listed.Sub(sd.start).Seconds(), "sd-listed-from-start-s")
		b.ReportMetric(cpu.Seconds(), "sd-cpu-s")
		b.ReportMetric(peak/1e6, "sd-peak-rss-MB")
		b.ReportMetric(float64(watches), "sd-server-watches")
		sd.stop()
		if os.Getenv("ZKPROM_BENCH_SD_ONLY") != "" {
			continue
		}

		// Prometheus on zkprom's file_sd, both started at once, beside
		// Prometheus's own serverset discovery.
		dir := b.TempDir()
		fileSD := startSD(b, bin, "big", root)
		pcfg := filepath.Join(dir, "file.yml")
		os.WriteFile(pcfg, []byte("global: {scrape_interval: 1h, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: big\n    file_sd_configs: [{files: ['"+
			filepath.Join(fileSD.files, "big.json")+"']}]\n"), 0o644)
		builds, err := zktest.PrometheusBuilds()
		if err != nil {
			b.Fatal(err)
		}
		newest := builds[len(builds)-1]
		fed, _ := timePrometheus(b, newest, pcfg, members, fileSD.start)
		fileSD.stop()
		b.ReportMetric(fed.Seconds(), newest.Name+"-fed-by-file-sd-s")
		var servers []string
		for _, s := range ensemble.Servers {
			servers = append(servers, fmt.Sprintf("%q", s.ClientAddr))
		}
		scfg := filepath.Join(dir, "serverset.yml")
		os.WriteFile(scfg, []byte("global: {scrape_interval: 1h, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: big\n    serverset_sd_configs: [{servers: ["+
			strings.Join(servers, ", ")+"], paths: ["+root+"]}]\n"), 0o644)
		for _, build := range builds {
			own, peak := timePrometheus(b, build, scfg, members, time.Now())
			b.ReportMetric(own.Seconds(), build.Name+"-serverset-sd-s")
			b.ReportMetric(peak/1e6, build.Name+"-serverset-sd-peak-rss-MB")
			if build == newest {
				b.ReportMetric(own.Seconds()/fed.Seconds(), newest.Name+"-serverset-sd-x-file-sd")
			}
		}
	}
}

// timePrometheus starts Prometheus build on cfg and returns the time from
// since until its scrape pool big holds want targets, and its peak RSS.
func timePrometheus(b *testing.B, build zktest.PrometheusBuild, cfg string, want int, since time.Time) (time.Duration, float64) {
	p, err := zktest.StartPrometheus(zktest.PrometheusOptions{ConfigFile: cfg, Build: build})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	at, ok := waitMetric(b, p.URL, `prometheus_target_scrape_pool_targets{scrape_job="big"}`, float64(want), 10*time.Minute, 200*time.Millisecond)
	if !ok {
		b.Fatalf("%s did not get every target", build.Name)
	}
	_, peak := procStat(p.Pid())
	return at.Sub(since), peak
}

// BenchmarkChurn: 10,000 ephemeral serverset members under 20 parents,
// all replaced by a new generation at about 2,000 changes/s (a new
// session creates the new ones while the old session deletes its own);
// then the new session closes. Measured: how long after the last change
// `zkprom sd` lists exactly the new set, and how long after the session's
// end its 10,000 members have left the list.
func BenchmarkChurn(b *testing.B) {
	needEnsemble(b)
	const parents, members, batch = 20, 10000, 10
	root := "/bench/churn"
	w := writer(b, ensemble.Connect())
	for i := range parents {
		put(b, w, fmt.Sprintf("%s/p%02d", root, i), nil)
	}
	bin := buildZkprom(b)
	sd := startSD(b, bin, "churn", root)
	if _, ok := waitMetric(b, sd.url, `zkprom_sd_targets{format="serverset",job="churn"}`, 0, time.Minute, 50*time.Millisecond); !ok {
		b.Fatal("zkprom sd did not start")
	}
	ctx := context.Background()
	member := func(gen, i int) (string, []byte) {
		return fmt.Sprintf("%s/p%02d/g%d_%05d", root, i%parents, gen, i),
			fmt.Appendf(nil, `{"serviceEndpoint":{"host":"127.0.0.1","port":%d},"additionalEndpoints":{},"status":"ALIVE"}`, 10000*gen+i)
	}
	session := func() *zk.Client {
		c, err := zk.Connect(ctx, zk.Config{Servers: ensemble.Connect(), SessionTimeout: 10 * time.Second}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	for range b.N {
		old := session()
		for i := 0; i < members; i += 100 {
			var ops []zk.Op
			for j := i; j < i+100; j++ {
				p, data := member(1, j)
				ops = append(ops, zk.CreateOp(p, data, zk.Ephemeral, nil))
			}
			if _, err := old.Multi(ctx, ops...); err != nil {
				b.Fatal(err)
			}
		}
		if _, ok := waitMetric(b, sd.url, `zkprom_sd_targets{format="serverset",job="churn"}`, members, time.Minute, 50*time.Millisecond); !ok {
			b.Fatal("the first generation was not listed")
		}

		// A batch of creates and one of deletes every 10 ms: 2,000 changes/s,
		// up to 32 batches in flight while ZooKeeper catches up.
		next := session()
		start := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		inFlight := make(chan struct{}, 32)
		errc := make(chan error, 2*members/batch)
		var wg sync.WaitGroup
		for i := 0; i < members; i += batch {
			<-tick.C
			var creates, deletes []zk.Op
			for j := i; j < i+batch; j++ {
				p, data := member(2, j)
				creates = append(creates, zk.CreateOp(p, data, zk.Ephemeral, nil))
				p, _ = member(1, j)
				deletes = append(deletes, zk.DeleteOp(p, -1))
			}
			inFlight <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-inFlight; wg.Done() }()
				_, err := next.Multi(ctx, creates...)
				errc <- err
				_, err = old.Multi(ctx, deletes...)
				errc <- err
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
		last := time.Now()
		b.ReportMetric(float64(2*members)/last.Sub(start).Seconds(), "changes/s")
		exact := func() bool {
			body, err := httpGet(sd.url + "/sd/churn")
			return err == nil && bytes.Count(body, []byte(`"targets":[`)) == members &&
				bytes.Count(body, []byte(`"targets":["127.0.0.1:2`)) == members
		}
		for !exact() {
			if time.Since(last) > time.Minute {
				b.Fatal("the new generation was not listed exactly within a minute")
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.ReportMetric(float64(time.Since(last).Milliseconds()), "exact-set-after-last-change-ms")
		old.Close()

		next.Close() // closeSession: the server deletes its 10,000 ephemerals
		closed := time.Now()
		gone, ok := waitMetric(b, sd.url, `zkprom_sd_targets{format="serverset",job="churn"}`, 0, time.Minute, 5*time.Millisecond)
		if !ok {
			b.Fatal("the closed session's members did not leave")
		}
		b.ReportMetric(float64(gone.Sub(closed).Milliseconds()), "session-members-gone-ms")
	}
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
