package zktest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/prom"
)

// PrometheusBuild is one Prometheus release the tests run against: its
// two binaries and the version they report.
type PrometheusBuild struct {
	Name       string // "prometheus-2.42": the subtest name
	Prometheus string // path of prometheus
	Promtool   string // path of promtool
	Version    prom.Version
}

// DebianPrometheus is Debian's package (2.42 on Debian 12): prometheus and
// promtool in $PATH.
func DebianPrometheus() (PrometheusBuild, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return PrometheusBuild{}, fmt.Errorf("prometheus is not installed (apt-get install prometheus; make deps does it): %w", err)
	}
	tool, err := exec.LookPath("promtool")
	if err != nil {
		return PrometheusBuild{}, fmt.Errorf("promtool is not installed (apt-get install prometheus; make deps does it): %w", err)
	}
	return newBuild(bin, tool)
}

// PinnedPrometheus is the Prometheus 3.x pinned in
// scripts/prometheus-version (a module version of
// github.com/prometheus/prometheus), which make deps builds into
// $(go env GOPATH)/zkprom/prometheus-<module version>/.
func PinnedPrometheus() (PrometheusBuild, error) {
	dir, err := pinnedDir()
	if err != nil {
		return PrometheusBuild{}, err
	}
	bin, tool := filepath.Join(dir, "prometheus"), filepath.Join(dir, "promtool")
	for _, f := range []string{bin, tool} {
		if _, err := os.Stat(f); err != nil {
			return PrometheusBuild{}, fmt.Errorf("the pinned Prometheus 3.x is not built (run make deps, or scripts/install-deps.sh): %w", err)
		}
	}
	return newBuild(bin, tool)
}

// pinnedDir is where scripts/install-deps.sh installs the pinned version.
func pinnedDir() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "scripts", "prometheus-version"))
	if err != nil {
		return "", fmt.Errorf("read the pinned Prometheus version: %w", err)
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPATH: %w", err)
	}
	gopath := filepath.SplitList(strings.TrimSpace(string(out)))
	if len(gopath) == 0 {
		return "", errors.New("go env GOPATH: empty")
	}
	return filepath.Join(gopath[0], "zkprom", "prometheus-"+strings.TrimSpace(string(b))), nil
}

// moduleRoot is the nearest directory above the working directory (a
// test's package directory) with a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func newBuild(bin, tool string) (PrometheusBuild, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := prom.BinaryVersion(ctx, bin)
	if err != nil {
		return PrometheusBuild{}, err
	}
	if !v.Known() {
		return PrometheusBuild{}, fmt.Errorf("%s reports no version (built without -ldflags -X github.com/prometheus/common/version.Version=...; scripts/install-deps.sh stamps it)", bin)
	}
	return PrometheusBuild{Name: fmt.Sprintf("prometheus-%d.%d", v.Major, v.Minor), Prometheus: bin, Promtool: tool, Version: v}, nil
}

// PrometheusBuilds is every build the tests run against: Debian's 2.42,
// then the pinned 3.x.
func PrometheusBuilds() ([]PrometheusBuild, error) {
	debian, err := DebianPrometheus()
	if err != nil {
		return nil, err
	}
	pinned, err := PinnedPrometheus()
	if err != nil {
		return nil, err
	}
	return []PrometheusBuild{debian, pinned}, nil
}

// ForEachPrometheus runs f as a subtest per build (PrometheusBuilds), named
// for it: "prometheus-2.42", "prometheus-3.16".
func ForEachPrometheus(t *testing.T, f func(t *testing.T, b PrometheusBuild)) {
	t.Helper()
	builds, err := PrometheusBuilds()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range builds {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// PrometheusOptions says how to start a Prometheus.
type PrometheusOptions struct {
	// Build is the release to run; the zero value is Debian's
	// (DebianPrometheus).
	Build      PrometheusBuild
	ConfigFile string   // required: path of prometheus.yml
	Addr       string   // listen address; default a free 127.0.0.1 port
	Args       []string // extra flags
	// NoLifecycle leaves out --web.enable-lifecycle.
	NoLifecycle bool
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	URL   string // http://127.0.0.1:port
	Addr  string
	Dir   string
	Build PrometheusBuild

	opts PrometheusOptions
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPrometheus starts Prometheus on a free loopback port and waits until
// it is ready.
func StartPrometheus(opts PrometheusOptions) (*Prometheus, error) {
	if opts.Build.Prometheus == "" {
		b, err := DebianPrometheus()
		if err != nil {
			return nil, err
		}
		opts.Build = b
	}
	addr := opts.Addr
	if addr == "" {
		ports, err := FreePorts(1)
		if err != nil {
			return nil, err
		}
		addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	}
	dir, err := os.MkdirTemp("", "zktest-prometheus-")
	if err != nil {
		return nil, err
	}
	p := &Prometheus{Addr: addr, Dir: dir, Build: opts.Build, opts: opts}
	p.URL = "http://" + p.Addr
	if err := p.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// Start (re)starts the process and waits until it is ready.
func (p *Prometheus) Start() error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return fmt.Errorf("prometheus is already running")
	}
	args := []string{
		"--config.file=" + p.opts.ConfigFile,
		"--storage.tsdb.path=" + filepath.Join(p.Dir, "data"),
		"--web.listen-address=" + p.Addr,
		"--log.level=warn",
	}
	if !p.opts.NoLifecycle {
		args = append(args, "--web.enable-lifecycle")
	}
	args = append(args, p.opts.Args...)
	logf, err := os.OpenFile(filepath.Join(p.Dir, "prometheus.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	cmd := exec.Command(p.Build.Prometheus, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.mu.Unlock()
		return fmt.Errorf("start prometheus: %w", err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(p.done)
	done := p.done
	p.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(p.Dir, "prometheus.log"))
			return fmt.Errorf("%s exited at start: %s", p.Build.Name, log)
		default:
		}
		resp, err := http.Get(p.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("prometheus at %s not ready after 30s (log: %s)", p.URL, filepath.Join(p.Dir, "prometheus.log"))
}

// Pid returns the process id (0 when not running).
func (p *Prometheus) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Signal sends sig to the process.
func (p *Prometheus) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("prometheus is not running")
	}
	return p.cmd.Process.Signal(sig)
}

// Stop stops the process (SIGTERM, then SIGKILL) and waits for it.
func (p *Prometheus) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Close stops Prometheus and removes its directory.
func (p *Prometheus) Close() {
	p.Stop()
	if os.Getenv("ZKTEST_KEEP") == "" {
		os.RemoveAll(p.Dir)
	}
}
