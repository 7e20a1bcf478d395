// Package zktest starts real ZooKeeper servers (Debian's zookeeper package)
// and real Prometheus servers for zkprom's integration tests, and offers a
// loopback TCP proxy that a test can stall or cut.
//
// Start one ensemble per test package (in TestMain), not one per test.
package zktest

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Classpath of a ZooKeeper server from Debian's package: zookeeper.jar's
// manifest misses the servlet API (the AdminServer needs it), an slf4j
// binding (else every log line is lost) and two netty jars (TLS needs them).
var zookeeperClasspath = strings.Join([]string{
	"/usr/share/java/zookeeper.jar",
	"/usr/share/java/servlet-api.jar",
	"/usr/share/java/slf4j-simple.jar",
	"/usr/share/java/netty-codec.jar",
	"/usr/share/java/netty-resolver.jar",
}, ":")

// ServerOptions changes one server's configuration.
type ServerOptions struct {
	// Whitelist is 4lw.commands.whitelist; "" means "*". Use "-" to leave
	// the line out (ZooKeeper's default then allows only srvr).
	Whitelist string
	// DisableAdmin turns the AdminServer off.
	DisableAdmin bool
}

// Options says what ensemble to start.
type Options struct {
	Servers int  // 1 (standalone) or an odd number; 0 means 3
	TLS     bool // also open a secure client port (certificates are generated)
	// ClientAuth is ssl.clientAuth for the secure port: "need", "want" or
	// "none" (default "none").
	ClientAuth string
	// PerServer options by server index (0-based).
	PerServer map[int]ServerOptions
	TickTime  time.Duration // default 2s (session timeouts 4s–40s)
	// Extra lines for every zoo.cfg.
	Extra []string
	// ReadOnlyMode lets a server that loses its quorum serve reads
	// (readonlymode.enabled, a JVM property).
	ReadOnlyMode bool
	// SASLUsers, when set, turns on SASL DIGEST-MD5 authentication: a
	// server JAAS file (a Server section with DigestLoginModule and a
	// user_<name>="<password>" entry per user, passed with
	// -Djava.security.auth.login.config) and the sasl ACL scheme
	// (authProvider.sasl). Clients may still connect without SASL.
	SASLUsers map[string]string
}

// Server is one ZooKeeper server of an ensemble.
type Server struct {
	ID         int
	ClientAddr string // 127.0.0.1:port
	SecureAddr string // TLS client port, when Options.TLS
	AdminURL   string // http://127.0.0.1:port ("" when disabled)
	Dir        string

	opts     ServerOptions
	quorum   int
	election int
	admin    int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Ensemble is a running set of ZooKeeper servers.
type Ensemble struct {
	Servers []*Server
	TLS     *Certs // set when Options.TLS
	Dir     string
	opts    Options
}

// StartEnsemble starts servers and waits until they serve (one leader).
func StartEnsemble(opts Options) (*Ensemble, error) {
	if opts.Servers == 0 {
		opts.Servers = 3
	}
	if opts.TickTime == 0 {
		opts.TickTime = 2 * time.Second
	}
	if _, err := os.Stat("/usr/share/java/zookeeper.jar"); err != nil {
		return nil, fmt.Errorf("ZooKeeper is not installed (apt-get install zookeeper; make test does it): %w", err)
	}
	dir, err := os.MkdirTemp("", "zktest-ensemble-")
	if err != nil {
		return nil, err
	}
	e := &Ensemble{Dir: dir, opts: opts}
	if len(opts.SASLUsers) > 0 {
		if err := writeJAAS(filepath.Join(dir, "jaas.conf"), opts.SASLUsers); err != nil {
			return nil, err
		}
	}
	if opts.TLS {
		if e.TLS, err = GenerateCerts(filepath.Join(dir, "tls")); err != nil {
			return nil, err
		}
	}
	for i := 0; i < opts.Servers; i++ {
		ports, err := FreePorts(5)
		if err != nil {
			return nil, err
		}
		s := &Server{
			ID:         i + 1,
			ClientAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
			admin:      ports[1],
			quorum:     ports[2],
			election:   ports[3],
			Dir:        filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			opts:       opts.PerServer[i],
		}
		if !s.opts.DisableAdmin {
			s.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", s.admin)
		}
		if opts.TLS {
			s.SecureAddr = fmt.Sprintf("127.0.0.1:%d", ports[4])
		}
		e.Servers = append(e.Servers, s)
	}
	for _, s := range e.Servers {
		if err := e.writeConfig(s); err != nil {
			e.Close()
			return nil, err
		}
	}
	for i := range e.Servers {
		if err := e.Start(i); err != nil {
			e.Close()
			return nil, err
		}
	}
	if err := e.WaitServing(60 * time.Second); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Ensemble) writeConfig(s *Server) error {
	if err := os.MkdirAll(filepath.Join(s.Dir, "data"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "data", "myid"), []byte(strconv.Itoa(s.ID)+"\n"), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	// initLimit and syncLimit count ticks: keep them at 20 s and 10 s
	// whatever the tick, so a short tick does not drop followers of a busy
	// machine.
	tick := e.opts.TickTime.Milliseconds()
	fmt.Fprintf(&b, "tickTime=%d\ninitLimit=%d\nsyncLimit=%d\n", tick, max(10, (20000+tick-1)/tick), max(5, (10000+tick-1)/tick))
	fmt.Fprintf(&b, "dataDir=%s\n", filepath.Join(s.Dir, "data"))
	host, port, _ := net.SplitHostPort(s.ClientAddr)
	fmt.Fprintf(&b, "clientPortAddress=%s\nclientPort=%s\n", host, port)
	switch s.opts.Whitelist {
	case "":
		b.WriteString("4lw.commands.whitelist=*\n")
	case "-":
	default:
		fmt.Fprintf(&b, "4lw.commands.whitelist=%s\n", s.opts.Whitelist)
	}
	if s.opts.DisableAdmin {
		b.WriteString("admin.enableServer=false\n")
	} else {
		fmt.Fprintf(&b, "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort=%d\n", s.admin)
	}
	if e.TLS != nil {
		_, sport, _ := net.SplitHostPort(s.SecureAddr)
		clientAuth := e.opts.ClientAuth
		if clientAuth == "" {
			clientAuth = "none"
		}
		fmt.Fprintf(&b, "secureClientPortAddress=127.0.0.1\nsecureClientPort=%s\n", sport)
		b.WriteString("serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n")
		fmt.Fprintf(&b, "ssl.keyStore.location=%s\nssl.keyStore.type=PEM\n", e.TLS.ServerKeyStore)
		fmt.Fprintf(&b, "ssl.trustStore.location=%s\nssl.trustStore.type=PEM\n", e.TLS.CAFile)
		fmt.Fprintf(&b, "ssl.clientAuth=%s\n", clientAuth)
	}
	if len(e.Servers) > 1 {
		for _, o := range e.Servers {
			fmt.Fprintf(&b, "server.%d=127.0.0.1:%d:%d\n", o.ID, o.quorum, o.election)
		}
	}
	if len(e.opts.SASLUsers) > 0 {
		b.WriteString("authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n")
	}
	for _, l := range e.opts.Extra {
		b.WriteString(l + "\n")
	}
	return os.WriteFile(filepath.Join(s.Dir, "zoo.cfg"), []byte(b.String()), 0o644)
}

// writeJAAS writes a server JAAS file for DIGEST-MD5 users.
func writeJAAS(path string, users map[string]string) error {
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	var b strings.Builder
	b.WriteString("Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required")
	for _, u := range slices.Sorted(maps.Keys(users)) {
		fmt.Fprintf(&b, "\n  user_%s=\"%s\"", u, q.Replace(users[u]))
	}
	b.WriteString(";\n};\n")
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// Connect returns the connect string of all client ports.
func (e *Ensemble) Connect() string {
	addrs := make([]string, len(e.Servers))
	for i, s := range e.Servers {
		addrs[i] = s.ClientAddr
	}
	return strings.Join(addrs, ",")
}

// SecureConnect returns the connect string of all TLS client ports.
func (e *Ensemble) SecureConnect() string {
	addrs := make([]string, len(e.Servers))
	for i, s := range e.Servers {
		addrs[i] = s.SecureAddr
	}
	return strings.Join(addrs, ",")
}

// Start starts (or restarts) server i.
func (e *Ensemble) Start(i int) error {
	s := e.Servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("zookeeper server %d is already running", s.ID)
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.admin.idleTimeout=60000"}
	if e.opts.ReadOnlyMode {
		args = append(args, "-Dreadonlymode.enabled=true")
	}
	if len(e.opts.SASLUsers) > 0 {
		args = append(args, "-Djava.security.auth.login.config="+filepath.Join(e.Dir, "jaas.conf"))
	}
	args = append(args, "-cp", zookeeperClasspath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(s.Dir, "zoo.cfg"))
	cmd := exec.Command("java", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start zookeeper server %d: %w", s.ID, err)
	}
	s.cmd, s.log, s.done = cmd, logf, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(s.done)
	return nil
}

func (s *Server) signal(sig syscall.Signal, wait bool) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	if wait {
		s.cmd = nil
	}
	s.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("zookeeper server %d is not running", s.ID)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return err
	}
	if wait {
		cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot act on SIGTERM
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	return nil
}

// Stop stops server i with SIGTERM and waits for it to exit.
func (e *Ensemble) Stop(i int) error { return e.Servers[i].signal(syscall.SIGTERM, true) }

// Kill kills server i with SIGKILL.
func (e *Ensemble) Kill(i int) error { return e.Servers[i].signal(syscall.SIGKILL, true) }

// Pause freezes server i with SIGSTOP and returns once all its threads
// have stopped: it keeps its sockets but answers nothing.
func (e *Ensemble) Pause(i int) error {
	pid := e.Pid(i)
	if pid == 0 {
		return fmt.Errorf("zookeeper server %d is not running", e.Servers[i].ID)
	}
	return Freeze(pid)
}

// Resume continues a paused server.
func (e *Ensemble) Resume(i int) error { return e.Servers[i].signal(syscall.SIGCONT, false) }

// Running reports whether server i's process is running (paused counts).
func (e *Ensemble) Running(i int) bool {
	s := e.Servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Pid returns server i's process id (0 when it is not running).
func (e *Ensemble) Pid(i int) int {
	s := e.Servers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Close stops every server and removes the ensemble's directory.
func (e *Ensemble) Close() {
	var wg sync.WaitGroup
	for _, s := range e.Servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.signal(syscall.SIGKILL, true) }()
	}
	wg.Wait()
	if os.Getenv("ZKTEST_KEEP") == "" {
		os.RemoveAll(e.Dir)
	}
}

// Mode asks server i with srvr for its mode: leader, follower, observer,
// standalone, or an error when it does not serve.
func (e *Ensemble) Mode(i int) (string, error) {
	out, err := FourLetterWord(e.Servers[i].ClientAddr, "srvr", 2*time.Second)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if m, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("server %d: not serving: %s", e.Servers[i].ID, strings.TrimSpace(out))
}

// Leader returns the index of the leader (or -1).
func (e *Ensemble) Leader() int {
	for i := range e.Servers {
		if m, err := e.Mode(i); err == nil && (m == "leader" || m == "standalone") {
			return i
		}
	}
	return -1
}

// adminAnswers says whether the AdminServer at url answers ruok.
func adminAnswers(url string) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url + "/commands/ruok")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("AdminServer %s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// WaitServing waits until every running server serves, there is exactly
// one leader (or the standalone server serves), and the leader counts
// every other running server as a synced follower. A follower resumed
// after a pause longer than syncLimit still answers srvr as a follower
// for a moment before it notices the leader dropped it, and the leader
// counts a rejoining follower before its sync ends: so the servers are
// asked again after the leader.
func (e *Ensemble) WaitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var leader, running int
		if leader, running, err = e.serving(); err == nil {
			var synced int
			if synced, err = e.syncedFollowers(leader); err == nil && synced >= 0 && synced < running-1 {
				err = fmt.Errorf("the leader has %d of %d followers synced", synced, running-1)
			}
			if err == nil {
				if _, _, err = e.serving(); err == nil {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("zookeeper ensemble in %s not serving after %s: %v (server logs: %s/node*/server.log)", e.Dir, timeout, err, e.Dir)
}

// serving checks that every running server serves (client port, secure
// port and AdminServer) and that exactly one leads; it returns the leader
// and the number of running servers.
func (e *Ensemble) serving() (int, int, error) {
	leader, leaders, running := -1, 0, 0
	for i := range e.Servers {
		if !e.Running(i) {
			continue
		}
		running++
		m, err := e.Mode(i)
		if err == nil && e.Servers[i].SecureAddr != "" {
			// The secure port (Netty) may open after the client port.
			var c net.Conn
			if c, err = net.DialTimeout("tcp", e.Servers[i].SecureAddr, time.Second); err == nil {
				c.Close()
			}
		}
		if err == nil && e.Servers[i].AdminURL != "" {
			// So may the AdminServer (Jetty), on a loaded machine.
			err = adminAnswers(e.Servers[i].AdminURL)
		}
		if err != nil {
			return 0, 0, err
		}
		if m == "leader" || m == "standalone" {
			leaders++
			leader = i
		}
	}
	if running == 0 || leaders != 1 {
		return 0, 0, fmt.Errorf("%d running servers, %d leaders", running, leaders)
	}
	return leader, running, nil
}

// syncedFollowers returns zk_synced_followers from server i's mntr, or -1
// when the server does not say (standalone, or mntr not whitelisted).
func (e *Ensemble) syncedFollowers(i int) (int, error) {
	out, err := FourLetterWord(e.Servers[i].ClientAddr, "mntr", 2*time.Second)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if v, found := strings.CutPrefix(line, "zk_synced_followers\t"); found {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return -1, nil
}

// WaitServerServing waits until server i serves requests.
func (e *Ensemble) WaitServerServing(i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if _, err = e.Mode(i); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// FourLetterWord sends a four-letter word and returns the whole answer.
func FourLetterWord(addr, cmd string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b strings.Builder
	r := bufio.NewReader(conn)
	_, err = r.WriteTo(&b)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return b.String(), err
	}
	return b.String(), nil
}

var totalWatches = regexp.MustCompile(`Total watches:(\d+)`)

// Watches sums the watches every running server of the ensemble holds
// (wchs).
func (e *Ensemble) Watches() (int, error) {
	n := 0
	for i, s := range e.Servers {
		if !e.Running(i) {
			continue
		}
		out, err := FourLetterWord(s.ClientAddr, "wchs", 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("wchs on %s: %w", s.ClientAddr, err)
		}
		m := totalWatches.FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("wchs on %s: no total in %q", s.ClientAddr, out)
		}
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n, nil
}
