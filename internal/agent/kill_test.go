package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/zktest"
)

// largeBundle has jobs static scrape jobs and rules recording rules (in
// groups of 50, spread over 10 files).
func largeBundle(jobs, rules int, salt string) *bundle.Bundle {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: 60s\n  external_labels:\n    replica: ${ZKPROM_MEMBER}\n    salt: %q\nrule_files:\n  - rules/*.yml\nscrape_configs:\n", salt)
	for j := 0; j < jobs; j++ {
		fmt.Fprintf(&b, "  - job_name: job_%04d\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n", j, 20000+j)
	}
	files := map[string][]byte{"prometheus.yml": []byte(b.String())}
	const files_ = 10
	per := (rules + files_ - 1) / files_
	n := 0
	for f := 0; f < files_ && n < rules; f++ {
		var r strings.Builder
		r.WriteString("groups:\n")
		for g := 0; n < rules && g*50 < per; g++ {
			fmt.Fprintf(&r, "  - name: g_%02d_%03d\n    interval: 5m\n    rules:\n", f, g)
			for k := 0; k < 50 && n < rules; k++ {
				fmt.Fprintf(&r, "      - record: job:r%05d:sum\n        expr: sum by (job) (up{job=\"job_%04d\"}) * %d\n", n, n%max(jobs, 1), n)
				n++
			}
		}
		files[fmt.Sprintf("rules/r%02d.yml", f)] = []byte(r.String())
	}
	return &bundle.Bundle{Files: files}
}

// checkWhole asserts that DIR/current is the bootstrap or a revision
// directory whose every file matches its manifest; it returns the
// revision (0 for the bootstrap).
func checkWhole(t *testing.T, dir string) int {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, "current"))
	if err != nil {
		t.Fatalf("current link: %v", err)
	}
	if target == "bootstrap" {
		return 0
	}
	m, err := readManifest(filepath.Join(dir, target))
	if err != nil {
		t.Fatalf("current -> %s has no manifest: %v", target, err)
	}
	if err := verifyDir(filepath.Join(dir, target), m); err != nil {
		t.Fatalf("current -> %s is not whole: %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(dir, target, "prometheus.yml")); err != nil {
		t.Fatal(err)
	}
	return m.Revision
}

// The agent binary killed with -9 during applies: the disk always holds
// the old or the new bundle whole, and the restarted agent finishes.
func TestAgentKill9DuringApply(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	ports, err := zktest.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(env.binary, "agent",
			"--zookeeper.servers="+env.ens.Connect(), "--zookeeper.session-timeout=4s", "--zookeeper.auth-file="+env.agentAuth,
			"--cluster="+cluster, "--member=agent-0", "--config-dir="+env.dirs[0],
			"--prometheus.url="+env.proms[0].URL, "--retry.interval=200ms",
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[0]), "--log.level=warn")
		logf, _ := os.OpenFile(filepath.Join(env.tmp, "agent-kill.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	ensureCluster(t, cluster)
	cmd := start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx := context.Background()
	waitFor(t, 30*time.Second, "agent registered", func() (bool, string) {
		ms, err := s.Members(ctx)
		return err == nil && len(ms) == 1, fmt.Sprint(ms, err)
	})
	r := push(t, s, largeBundle(200, 1000, "first"), "first")
	if err := waitRollout(t, s, r.Meta.Revision); err != nil {
		t.Fatal(err)
	}
	delays := []time.Duration{0, 30 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond}
	for i, d := range delays {
		old := r.Meta.Revision
		r = push(t, s, largeBundle(1000, 5000, fmt.Sprint("round", i)), fmt.Sprint("round ", i))
		waitFor(t, 30*time.Second, "agent applying", func() (bool, string) {
			ms, err := s.Members(ctx)
			if err != nil || len(ms) == 0 {
				return false, fmt.Sprint(ms, err)
			}
			st := ms[0].Status
			return st.Target == r.Meta.Revision, st.State
		})
		time.Sleep(d)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		got := checkWhole(t, env.dirs[0])
		if got != old && got != r.Meta.Revision {
			t.Fatalf("after kill -9 (delay %s) current is revision %d, want %d or %d", d, got, old, r.Meta.Revision)
		}
		t.Logf("kill -9 after %s: disk holds revision %d whole (old %d, new %d)", d, got, old, r.Meta.Revision)
		restarted := time.Now()
		cmd = start()
		// The killed agent's member znode lives until its session
		// expires: wait for the new one.
		waitFor(t, 30*time.Second, "restarted agent registered", func() (bool, string) {
			ms, err := s.Members(ctx)
			if err != nil || len(ms) == 0 {
				return false, fmt.Sprint(ms, err)
			}
			return ms[0].Status.Started.After(restarted), ms[0].Status.State
		})
		if err := waitRollout(t, s, r.Meta.Revision); err != nil {
			t.Fatal(err)
		}
		if got := checkWhole(t, env.dirs[0]); got != r.Meta.Revision {
			t.Fatalf("restarted agent left revision %d, want %d", got, r.Meta.Revision)
		}
		entries, _ := os.ReadDir(env.dirs[0])
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), stagingPfx) {
				t.Errorf("staging directory %s left after restart", e.Name())
			}
		}
	}
	ri, err := promClient(t, 0).RuntimeInfo(ctx)
	if err != nil || !ri.ReloadConfigSuccess {
		t.Errorf("prometheus 0 at the end: %+v %v", ri, err)
	}
	// The agent's endpoint: its metrics (linted by promtool) and status.
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`zkprom_agent_applied_revision{cluster="%s",member="agent-0"} %d`, cluster, r.Meta.Revision),
		`zkprom_agent_state{cluster="` + cluster + `",member="agent-0",state="applied"} 1`,
		`zkprom_agent_apply_duration_seconds_count{cluster="` + cluster + `",member="agent-0",step="reload"}`,
		`zkprom_agent_apply_failures_total{cluster="` + cluster + `",member="agent-0",reason="validate"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("agent metrics lack %s", want)
		}
	}
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = strings.NewReader(metrics)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	if st := httpGet(t, base+"/status"); !strings.Contains(st, `"state":"applied"`) {
		t.Errorf("agent /status: %s", st)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
