package zktest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// PrometheusOptions says how to start a Prometheus.
type PrometheusOptions struct {
	ConfigFile string   // required: path of prometheus.yml
	Addr       string   // listen address; default a free 127.0.0.1 port
	Args       []string // extra flags
	// NoLifecycle leaves out --web.enable-lifecycle.
	NoLifecycle bool
}

// Prometheus is a running Prometheus server from Debian's package.
type Prometheus struct {
	URL  string // http://127.0.0.1:port
	Addr string
	Dir  string

	opts PrometheusOptions
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPrometheus starts Prometheus on a free loopback port and waits until
// it is ready.
func StartPrometheus(opts PrometheusOptions) (*Prometheus, error) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		return nil, fmt.Errorf("prometheus is not installed (apt-get install prometheus; make test does it): %w", err)
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
	p := &Prometheus{Addr: addr, Dir: dir, opts: opts}
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
	cmd := exec.Command("prometheus", args...)
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
			return fmt.Errorf("prometheus exited at start: %s", log)
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
