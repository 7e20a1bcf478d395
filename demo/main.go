// Command demo runs zkprom's local demo on 127.0.0.1: a 3-node ZooKeeper
// ensemble; zkprom exporter watching it; services registered in ZooKeeper
// (zkprom register, plus sample Curator/Spring, Dubbo and Kafka
// registrations) found by zkprom sd; and three Prometheus servers in one
// cluster, each kept on the cluster's configuration by a zkprom agent. The
// configuration (scrape jobs over http_sd, ZooKeeper alert rules) is pushed
// to ZooKeeper with zkprom config. The cluster is closed: the demo makes
// credentials for its writer and for its agents (writer.auth, agent.auth in
// the demo directory); pushes use the writer's and name the agents', the
// agents run with theirs. `make demo` runs it; Ctrl-C stops all.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/internal/zktest"
)

// Fixed loopback ports, so that the URLs the README shows are stable.
const (
	exporterAddr = "127.0.0.1:9141"
	sdAddr       = "127.0.0.1:9142"
	cluster      = "demo"
)

// prom-a and prom-b are an HA pair (one shard member; the leader alone
// gets leader.yml); prom-c is a second shard member.
var members = []struct{ name, promAddr, agentAddr, haGroup string }{
	{"prom-a", "127.0.0.1:9090", "127.0.0.1:9793", "pair"},
	{"prom-b", "127.0.0.1:9091", "127.0.0.1:9794", "pair"},
	{"prom-c", "127.0.0.1:9092", "127.0.0.1:9795", ""},
}

// shardedTargets is how many synthetic targets the sharded job splits,
// on ports from shardedBasePort; the demo answers for them.
const (
	shardedTargets  = 30
	shardedBasePort = 19100
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
	zkprom  string
	dir     string
	connect string
	procs   []*exec.Cmd
	exited  map[string]chan struct{} // by log name: closed when that zkprom exits
	others  []*exec.Cmd              // Alertmanager
	servers []*http.Server           // the demo's targets and webhook
	lines   []string                 // what runs where

	// The ZooKeeper auth files (user:password) of the cluster's writer
	// (its pushes) and of its agents.
	writerAuth, agentAuth string
}

func run(zkprom, dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	zkprom, err := filepath.Abs(zkprom)
	if err != nil {
		return err
	}
	if _, err := os.Stat(zkprom); err != nil {
		return fmt.Errorf("zkprom binary: %w (run make build)", err)
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dir, _ = filepath.Abs(dir)
	d := &demo{zkprom: zkprom, dir: dir, exited: map[string]chan struct{}{}}
	defer d.stopAll()
	if err := portsFree(); err != nil {
		return err
	}
	// New credentials each run: the demo directory was just emptied, and
	// the ensemble (the cluster and its ACLs) is new each run too.
	if d.writerAuth, err = writeCredentials(dir, "writer"); err != nil {
		return err
	}
	if d.agentAuth, err = writeCredentials(dir, "agent"); err != nil {
		return err
	}

	step("starting a 3-node ZooKeeper ensemble")
	ens, err := zktest.StartEnsemble(zktest.Options{Servers: 3})
	if err != nil {
		return err
	}
	defer ens.Close()
	d.connect = ens.Connect()
	var adminURLs []string
	for _, s := range ens.Servers {
		adminURLs = append(adminURLs, s.AdminURL)
		d.note("ZooKeeper server %d      client %s, AdminServer %s/commands (pid %d)", s.ID, s.ClientAddr, s.AdminURL, ens.Pid(s.ID-1))
	}

	step("starting zkprom exporter")
	if err := d.start("exporter", "exporter", "--zookeeper.servers="+d.connect,
		"--zookeeper.admin.urls="+strings.Join(adminURLs, ","), "--zookeeper.ensemble-name=demo",
		"--collect.znode-children=/zkprom/targets", "--web.listen-address="+exporterAddr); err != nil {
		return err
	}
	if err := d.waitHTTP(ctx, "exporter", "http://"+exporterAddr+"/metrics"); err != nil {
		return err
	}
	d.note("zkprom exporter        http://%s/ (status page), /metrics, /probe?ensemble=demo, /probe?target=%s", exporterAddr, ens.Servers[0].ClientAddr)

	step("writing sample Curator/Spring, Dubbo and Kafka registrations, and targets to shard")
	if err := writeSamples(ctx, d.connect); err != nil {
		return err
	}

	step("starting zkprom sd")
	if err := os.MkdirAll(filepath.Join(dir, "file_sd"), 0o755); err != nil {
		return err
	}
	sdConfig, err := d.rewrite("deploy/discovery/sd-demo.yml", "sd.yml", "servers: 127.0.0.1:2181", "servers: "+d.connect)
	if err != nil {
		return err
	}
	if err := d.start("sd", "sd", "--config.file="+sdConfig, "--web.listen-address="+sdAddr,
		"--file-sd.dir="+filepath.Join(dir, "file_sd")); err != nil {
		return err
	}
	if err := d.waitHTTP(ctx, "sd", "http://"+sdAddr+"/-/ready"); err != nil {
		return err
	}
	d.note("zkprom sd              http://%s/ (status page)   (http_sd per job: /sd/registered, /sd/serverset, /sd/spring, /sd/dubbo, /sd/kafka)", sdAddr)

	step("serving the sample registrations' and the sharded nodes' targets")
	samples, err := sampleAddrs(ctx)
	if err != nil {
		return err
	}
	if err := d.serveTargets(append(samples, shardedAddrs()...)); err != nil {
		return err
	}
	d.note("demo targets           %s and 30 sharded nodes %s-%d (each answers /metrics)", strings.Join(samples, ", "), shardedAddrs()[0], shardedBasePort+shardedTargets-1)

	step("starting Alertmanager (the HA pair's leader sends it alerts)")
	if err := d.startAlertmanager(); err != nil {
		return err
	}
	d.note("Alertmanager           http://%s/#/alerts   (notifications are printed here)", alertmanagerAddr)

	step("pushing the Prometheus configuration to ZooKeeper (zkprom config push)")
	bundle, err := d.bundle()
	if err != nil {
		return err
	}
	if err := d.zkprom1("push", "config", "push", bundle, "--zookeeper.servers="+d.connect,
		"--zookeeper.auth-file="+d.writerAuth, "--agents.auth-file="+d.agentAuth,
		"--cluster="+cluster, "-m", "demo: scrape jobs over zkprom sd, ZooKeeper alert rules"); err != nil {
		return err
	}

	for _, m := range members {
		step("starting zkprom agent and Prometheus " + m.name)
		cfgDir := filepath.Join(dir, m.name)
		args := []string{"agent", "--zookeeper.servers=" + d.connect, "--zookeeper.auth-file=" + d.agentAuth,
			"--zookeeper.session-timeout=4s",
			"--cluster=" + cluster, "--member=" + m.name, "--config-dir=" + cfgDir,
			"--prometheus.url=http://" + m.promAddr, "--web.listen-address=" + m.agentAddr}
		if m.haGroup != "" {
			args = append(args, "--ha.group="+m.haGroup)
		}
		if err := d.start("agent-"+m.name, args...); err != nil {
			return err
		}
		if err := d.restartScript("agent-"+m.name, args); err != nil {
			return err
		}
		promCfg := filepath.Join(cfgDir, "current", "prometheus.yml")
		if err := d.waitFile(ctx, "agent-"+m.name, promCfg); err != nil {
			return err
		}
		// Alerts are sent again every 10 s (not every minute): a new
		// leader's show in Alertmanager soon after a hand-over.
		p, err := zktest.StartPrometheus(zktest.PrometheusOptions{ConfigFile: promCfg, Addr: m.promAddr, Args: []string{"--rules.alert.resend-delay=10s"}})
		if err != nil {
			return err
		}
		defer p.Close()
		role := "shard member"
		if m.haGroup != "" {
			role = "HA group " + m.haGroup
		}
		v := p.Build.Version
		d.note("Prometheus %s       http://%s%s, %s   (pid %d; agent http://%s/, pid %d; %s)",
			m.name, m.promAddr, v.UIPath("targets"), v.UIPath("alerts"), p.Pid(), m.agentAddr, d.procs[len(d.procs)-1].Process.Pid, role)
		if err := d.start("register-"+m.name, "register", "--zookeeper.servers="+d.connect,
			"--path=/zkprom/targets/"+m.name, "--address="+m.promAddr, "--label=component=prometheus",
			"--check.http=http://"+m.promAddr+"/-/ready"); err != nil {
			return err
		}
	}

	step("registering the exporter and zkprom sd itself (zkprom register)")
	if err := d.start("register-exporter", "register", "--zookeeper.servers="+d.connect,
		"--path=/zkprom/targets/exporter", "--address="+exporterAddr, "--label=component=exporter",
		"--check.http=http://"+exporterAddr+"/-/healthy"); err != nil {
		return err
	}
	if err := d.start("register-sd", "register", "--zookeeper.servers="+d.connect, "--format=serverset",
		"--path=/aurora/sd", "--address="+sdAddr, "--check.tcp="+sdAddr); err != nil {
		return err
	}

	fmt.Println()
	fmt.Println("zkprom demo is running on 127.0.0.1:")
	for _, l := range d.lines {
		fmt.Println("  " + l)
	}
	fmt.Printf("  ZooKeeper connect string: %s\n", d.connect)
	fmt.Printf("  files and logs: %s\n", dir)
	fmt.Printf("  cluster %s is closed: pushes, rollbacks, config get and diff need the writer's credentials,\n", cluster)
	fmt.Printf("    --zookeeper.auth-file=%s (the agents': %s); status, history and shards need none\n", rel(d.writerAuth), rel(d.agentAuth))
	fmt.Println()
	fmt.Println("Try (see README.md, 'The demo'):")
	fmt.Printf("  %s config status --zookeeper.servers=%s --cluster=%s\n", rel(zkprom), d.connect, cluster)
	fmt.Printf("  %s config history --zookeeper.servers=%s --cluster=%s\n", rel(zkprom), d.connect, cluster)
	fmt.Printf("  %s shards --zookeeper.servers=%s --cluster=%s\n", rel(zkprom), d.connect, cluster)
	fmt.Println("Press Ctrl-C to stop.")
	if err := os.WriteFile(filepath.Join(dir, "connect"), []byte(d.connect+"\n"), 0o644); err != nil {
		return err
	}
	go watchSharded(ctx)
	<-ctx.Done()
	fmt.Println("\nstopping ...")
	d.stopAll() // before ZooKeeper stops: registrations leave cleanly
	return nil
}

func step(s string) { fmt.Println("==> " + s) }

// writeCredentials writes dir/<user>.auth, "user:password" with a random
// password, readable by its owner alone, and returns its path. The
// password is never printed.
func writeCredentials(dir, user string) (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("credentials for %s: %w", user, err)
	}
	path := filepath.Join(dir, user+".auth")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = fmt.Fprintf(f, "%s:%s\n", user, hex.EncodeToString(b))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return path, err
}

func rel(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return p
}

func (d *demo) note(format string, args ...any) {
	d.lines = append(d.lines, fmt.Sprintf(format, args...))
}

// rewrite copies a file of the repository into the demo directory with one
// string replaced.
func (d *demo) rewrite(src, name, old, new string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	if !strings.Contains(string(b), old) {
		return "", fmt.Errorf("%s does not contain %q", src, old)
	}
	out := filepath.Join(d.dir, name)
	return out, os.WriteFile(out, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

// bundle lays out the cluster's configuration: the discovery jobs of
// deploy/discovery/prometheus-demo.yml, the exporter, and the ZooKeeper
// alert rules of deploy/exporter/alerts.yml.
func (d *demo) bundle() (string, error) {
	dir := filepath.Join(d.dir, "bundle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	jobs, err := os.ReadFile("deploy/discovery/prometheus-demo.yml")
	if err != nil {
		return "", err
	}
	_, scrape, ok := strings.Cut(string(jobs), "scrape_configs:\n")
	if !ok {
		return "", fmt.Errorf("deploy/discovery/prometheus-demo.yml has no scrape_configs")
	}
	// The exporter registers itself too; its own job scrapes it (once).
	const zkPathRule = "      - {source_labels: [__meta_zookeeper_path], target_label: zk_path}\n"
	if !strings.Contains(scrape, zkPathRule) {
		return "", fmt.Errorf("deploy/discovery/prometheus-demo.yml: the registered job changed; update the demo")
	}
	scrape = strings.Replace(scrape, zkPathRule, zkPathRule+"      - {source_labels: [component], regex: exporter, action: drop}\n", 1)
	rules, err := os.ReadFile("deploy/exporter/alerts.yml")
	if err != nil {
		return "", err
	}
	global := `global:
  scrape_interval: 5s
  evaluation_interval: 5s
  external_labels:
    cluster: ${ZKPROM_CLUSTER}
    replica: ${ZKPROM_MEMBER}
`
	cfg := "# The demo cluster's configuration, kept in ZooKeeper by zkprom config.\n" + global + `rule_files: [zookeeper-alerts.yml, demo-alerts.yml]
scrape_configs:
  - job_name: zookeeper
    scrape_timeout: 4s
    static_configs: [{targets: ['` + exporterAddr + `']}]
  - job_name: sharded   # this member's share, written by its agent (shards.yml)
    file_sd_configs: [{files: ['${ZKPROM_CONFIG_DIR}/shards/sharded.json']}]
` + scrape
	files := map[string]string{
		"prometheus.yml": cfg,
		// Only the leader of an HA group gets this label (leader.yml
		// merges mappings key by key: the rest of global stays).
		"leader.yml":      "# On the HA leader only: its label, and alerts go to Alertmanager from it alone.\nglobal:\n  external_labels:\n    ha_role: leader\n" + leaderAlerting,
		"demo-alerts.yml": demoRules,
		"shards.yml": `# Targets split among the cluster's members (the HA pair counts once).
replicas: 1
overlap: 5s
join_delay: 2s
jobs:
  - name: sharded   # as the scrape job; its agent writes shards/sharded.json
    format: zkprom
    paths: [/demo/nodes]
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return dir, os.WriteFile(filepath.Join(dir, "zookeeper-alerts.yml"), rules, 0o644)
}

// writeSamples writes deploy/discovery/samples.json into ZooKeeper.
func writeSamples(ctx context.Context, connect string) error {
	b, err := os.ReadFile("deploy/discovery/samples.json")
	if err != nil {
		return err
	}
	var f struct {
		Samples []struct {
			Path string          `json:"path"`
			Data json.RawMessage `json:"data"`
		} `json:"samples"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("deploy/discovery/samples.json: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := zk.Connect(cctx, zk.Config{Servers: connect}, nil, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range f.Samples {
		var data []byte
		if string(s.Data) != "null" {
			data = s.Data
		}
		if err := c.CreateAll(cctx, zk.Parent(s.Path), nil); err != nil {
			return err
		}
		if _, err := c.Create(cctx, s.Path, data, zk.Persistent, nil); err != nil {
			return err
		}
	}
	// Node-exporter-like targets for the sharded job (the demo answers
	// for them), spread over the shard members.
	if err := c.CreateAll(cctx, "/demo/nodes", nil); err != nil {
		return err
	}
	for i, addr := range shardedAddrs() {
		group := fmt.Sprintf(`{"targets":[%q],"labels":{"rack":"r%d"}}`, addr, i%3)
		if _, err := c.Create(cctx, fmt.Sprintf("/demo/nodes/node-%02d", i), []byte(group), zk.Persistent, nil); err != nil {
			return err
		}
	}
	return nil
}

// start runs zkprom in the background, logging to dir/<name>.log.
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
	done := make(chan struct{})
	d.exited[name] = done
	go func() { cmd.Wait(); close(done) }()
	return nil
}

// restartScript writes dir/<name>.sh, which runs that zkprom again with the
// same arguments in the foreground (its log on the terminal, Ctrl-C stops
// it): it brings back an agent killed during the demo.
func (d *demo) restartScript(name string, args []string) error {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	line := "exec " + q(d.zkprom)
	for _, a := range args {
		line += " " + q(a)
	}
	script := fmt.Sprintf("#!/bin/sh\n# Runs zkprom %s of the demo again, in the foreground; Ctrl-C stops it.\n%s\n", name, line)
	return os.WriteFile(filepath.Join(d.dir, name+".sh"), []byte(script), 0o755)
}

// failed returns an error with the end of a zkprom's log if it exited.
func (d *demo) failed(name string) error {
	select {
	case <-d.exited[name]:
		log, _ := os.ReadFile(filepath.Join(d.dir, name+".log"))
		lines := strings.Split(strings.TrimSpace(string(log)), "\n")
		return fmt.Errorf("zkprom %s exited:\n  %s", name, strings.Join(lines[max(0, len(lines)-5):], "\n  "))
	default:
		return nil
	}
}

// zkprom1 runs zkprom once and fails with its output.
func (d *demo) zkprom1(name string, args ...string) error {
	out, err := exec.Command(d.zkprom, args...).CombinedOutput()
	os.WriteFile(filepath.Join(d.dir, name+".log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("zkprom %s: %w\n%s", strings.Join(args[:2], " "), err, out)
	}
	return nil
}

func (d *demo) stopAll() {
	for _, p := range append(d.procs, d.others...) {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, s := range d.servers {
		s.Close()
	}
	for name, done := range d.exited {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			fmt.Fprintf(os.Stderr, "zkprom %s did not stop within 5s: killed\n", name)
		}
	}
	for _, p := range append(d.procs, d.others...) {
		p.Process.Kill()
		if slices.Contains(d.others, p) {
			p.Wait()
		}
	}
	d.procs, d.others, d.servers, d.exited = nil, nil, nil, map[string]chan struct{}{}
}

// portsFree checks the demo's fixed ports before anything starts.
func portsFree() error {
	addrs := append([]string{exporterAddr, sdAddr, alertmanagerAddr, webhookAddr}, shardedAddrs()...)
	for _, m := range members {
		addrs = append(addrs, m.promAddr, m.agentAddr)
	}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("the demo needs %s, which is in use: stop what listens there (ss -ltnp | grep %s) and try again", a, a)
		}
		l.Close()
	}
	return nil
}

// waitHTTP waits until url answers 200, or the zkprom named proc exits.
func (d *demo) waitHTTP(ctx context.Context, proc, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err := d.failed(proc); err != nil {
			return err
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within 30s (see %s.log in the demo directory)", url, proc)
}

// waitFile waits until path exists, or the zkprom named proc exits.
func (d *demo) waitFile(ctx context.Context, proc, path string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err := d.failed(proc); err != nil {
			return err
		}
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear within 60s (see the agent's log in the demo directory)", path)
}
