// Command demo runs zkprom's local demo: a 3-node ZooKeeper ensemble, a
// Prometheus and zkprom's parts wired together on 127.0.0.1. `make demo`
// runs it; Ctrl-C stops everything.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

func main() {
	zkprom := flag.String("zkprom", "bin/zkprom", "path of the zkprom binary")
	dir := flag.String("dir", ".demo", "directory for the demo's files and logs")
	flag.Parse()
	if err := run(*zkprom, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type demo struct {
	zkprom string
	dir    string
	procs  []*exec.Cmd
	lines  []string // what runs where
}

func run(zkprom, dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	zkprom, err := filepath.Abs(zkprom)
	if err != nil {
		return err
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dir, _ = filepath.Abs(dir)
	d := &demo{zkprom: zkprom, dir: dir}
	defer d.stopAll()

	fmt.Println("starting a 3-node ZooKeeper ensemble ...")
	zk, err := zktest.StartEnsemble(zktest.Options{Servers: 3})
	if err != nil {
		return err
	}
	defer zk.Close()
	for _, s := range zk.Servers {
		d.note("ZooKeeper server %d: client %s, AdminServer %s/commands", s.ID, s.ClientAddr, s.AdminURL)
	}

	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(prometheusConfig()), 0o644); err != nil {
		return err
	}
	fmt.Println("starting Prometheus ...")
	prom, err := zktest.StartPrometheus(zktest.PrometheusOptions{ConfigFile: promCfg})
	if err != nil {
		return err
	}
	defer prom.Close()
	d.note("Prometheus: %s (targets: %s/targets)", prom.URL, prom.URL)

	fmt.Println()
	fmt.Println("zkprom demo is running:")
	for _, l := range d.lines {
		fmt.Println("  " + l)
	}
	fmt.Printf("  files and logs: %s\n", dir)
	fmt.Printf("  ZooKeeper connect string: %s\n", zk.Connect())
	fmt.Println("Press Ctrl-C to stop.")
	<-ctx.Done()
	fmt.Println("\nstopping ...")
	return nil
}

func (d *demo) note(format string, args ...any) { d.lines = append(d.lines, fmt.Sprintf(format, args...)) }

// start runs zkprom with args, logging to dir/<name>.log.
func (d *demo) start(name string, args ...string) error {
	logf, err := os.Create(filepath.Join(d.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(d.zkprom, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start zkprom %s: %w", strings.Join(args, " "), err)
	}
	d.procs = append(d.procs, cmd)
	return nil
}

func (d *demo) stopAll() {
	for _, p := range d.procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range d.procs {
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.Process.Kill()
		}
	}
}

func prometheusConfig() string {
	return `global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:9090']
`
}
