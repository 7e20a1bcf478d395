package agent

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/zktest"
)

// zkprom runs the built binary.
func zkprom(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(env.binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	defer func() {
		t.Logf("$ zkprom %s\n%s%s", strings.Join(args[:min(len(args), 3)], " "), out.String(), errb.String())
	}()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func writeBundle(t *testing.T, b *bundle.Bundle) string {
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The operator's CLI against real agents: push --wait, a bad PromQL push
// refused with promtool's text (nothing changes), a push one host rejects
// (--wait fails naming it), status (exit 1, secrets masked), history,
// get, diff, rollback --wait.
func TestConfigCLI(t *testing.T) {
	skipShort(t)
	reset(t)
	cluster := clusterName(t)
	common := []string{"--zookeeper.servers=" + env.ens.Connect(), "--zookeeper.auth-file=" + env.writerAuth, "--cluster=" + cluster, "--log.level=warn"}
	for i := 0; i < 2; i++ {
		writeFile(t, filepath.Join(env.dirs[i], "secrets", "scrape.password"), "s3cret")
	}
	startAgents(t, cluster, nil)
	s := newStore(t, connect(t), cluster)

	good := testBundle([]string{"job_a"}, []string{"group_a"}, "", nil)
	good.Files["prometheus.yml"] = append(good.Files["prometheus.yml"], []byte("  - job_name: remote\n    basic_auth:\n      username: u\n      password: hunter2\n    static_configs:\n      - targets: ['127.0.0.1:1']\n")...)
	out, errOut, code := zkprom(t, append([]string{"config", "push", writeBundle(t, good), "-m", "first", "--wait"}, common...)...)
	if code != 0 {
		t.Fatalf("push --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "applied by every live agent") || !strings.Contains(out, "agent agent-2: applied") {
		t.Errorf("push --wait output:\n%s", out)
	}
	cur, _, err := s.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// The same bundle again: nothing pushed.
	out, errOut, code = zkprom(t, append([]string{"config", "push", writeBundle(t, good), "-m", "again"}, common...)...)
	if now, _, _ := s.Current(context.Background()); code != 0 || !strings.Contains(out, "identical to the current revision") || now.Revision != cur.Revision {
		t.Errorf("identical push: exit %d, current %d (was %d)\n%s\n%s", code, now.Revision, cur.Revision, out, errOut)
	}

	// Bad PromQL: refused at push with promtool's text; nothing changes.
	bad := testBundle([]string{"job_a"}, []string{"group_a"}, "", nil)
	bad.Files["rules/main.yml"] = []byte("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(rate(up[5m])\n")
	out, errOut, code = zkprom(t, append([]string{"config", "push", writeBundle(t, bad), "-m", "bad"}, common...)...)
	if code == 0 || !strings.Contains(errOut, "refused") || !strings.Contains(errOut, "parse error") {
		t.Errorf("bad PromQL push: exit %d\n%s\n%s", code, out, errOut)
	}
	if now, _, _ := s.Current(context.Background()); now.Revision != cur.Revision {
		t.Errorf("a refused push moved current from %d to %d", cur.Revision, now.Revision)
	}

	// Valid where pushed, but agent-2 has no secret file: --wait fails
	// naming agent-2.
	needs := testBundle([]string{"job_a"}, []string{"group_a"}, "", nil)
	needs.Files["prometheus.yml"] = append(needs.Files["prometheus.yml"], []byte("  - job_name: with_auth\n    basic_auth:\n      username: u\n      password_file: ${ZKPROM_CONFIG_DIR}/secrets/scrape.password\n    static_configs:\n      - targets: ['127.0.0.1:1']\n")...)
	out, errOut, code = zkprom(t, append([]string{"config", "push", writeBundle(t, needs), "-m", "needs a secret", "--wait", "--wait.timeout=60s", "--validate.config-dir=" + env.dirs[0]}, common...)...)
	if code == 0 || !strings.Contains(errOut, "agent agent-2 failed") || !strings.Contains(errOut, "scrape.password") {
		t.Errorf("push --wait with a host that rejects: exit %d\n%s\n%s", code, out, errOut)
	}

	// status: exit 1 (agent-2 failing), error shown.
	out, errOut, code = zkprom(t, append([]string{"config", "status"}, common...)...)
	if code != 1 || !strings.Contains(out, "agent-2") || !strings.Contains(out, "failed") {
		t.Errorf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	// history: no secrets.
	out, _, code = zkprom(t, append([]string{"config", "history"}, common...)...)
	if code != 0 || !strings.Contains(out, "needs a secret") || strings.Contains(out, "hunter2") {
		t.Errorf("history: exit %d\n%s", code, out)
	}
	// get masks, get --out does not.
	out, _, code = zkprom(t, append([]string{"config", "get", "1"}, common...)...)
	if code != 0 || strings.Contains(out, "hunter2") || !strings.Contains(out, "password: <secret>") {
		t.Errorf("get: exit %d\n%s", code, out)
	}
	outDir := filepath.Join(t.TempDir(), "out")
	if _, errOut, code = zkprom(t, append([]string{"config", "get", "1", "--out", outDir}, common...)...); code != 0 {
		t.Fatalf("get --out: %s", errOut)
	}
	if data, _ := os.ReadFile(filepath.Join(outDir, "prometheus.yml")); !strings.Contains(string(data), "hunter2") {
		t.Errorf("get --out lost the file content")
	}
	// diff.
	out, _, code = zkprom(t, append([]string{"config", "diff", "1", "2"}, common...)...)
	if code != 0 || !strings.Contains(out, "+  - job_name: with_auth") || !strings.Contains(out, "--- r1/prometheus.yml") {
		t.Errorf("diff: exit %d\n%s", code, out)
	}
	// rollback --wait: everyone healthy again, status exit 0.
	out, errOut, code = zkprom(t, append([]string{"config", "rollback", "--wait", "--wait.timeout=60s"}, common...)...)
	if code != 0 || !strings.Contains(out, "copy of revision 1") {
		t.Fatalf("rollback: exit %d\n%s\n%s", code, out, errOut)
	}
	waitFor(t, 10*time.Second, "status healthy", func() (bool, string) {
		out, errOut, code := zkprom(t, append([]string{"config", "status"}, common...)...)
		return code == 0, out + errOut
	})
	for i := range env.proms {
		waitServed(t, i, []string{"job_a", "remote"}, []string{"group_a"})
	}
	// A canary push: first agent-0, then all.
	canary := testBundle([]string{"job_a", "job_c"}, []string{"group_a"}, "", nil)
	out, errOut, code = zkprom(t, append([]string{"config", "push", writeBundle(t, canary), "-m", "canary", "--canary=1", "--wait", "--wait.timeout=60s"}, common...)...)
	if code != 0 || !strings.Contains(out, "canary passed on agent-0") || !strings.Contains(out, "applied by every live agent") {
		t.Errorf("canary push: exit %d\n%s\n%s", code, out, errOut)
	}
	for i := range env.proms {
		waitServed(t, i, []string{"job_a", "job_c"}, []string{"group_a"})
	}
}

// The agent's endpoint honours --web.config.file (the example in
// deploy/config: basic auth).
func TestAgentWebConfig(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	ensureCluster(t, cluster)
	ports, err := zktest.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	webConfig, err := filepath.Abs("../../deploy/config/web-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env.binary, "agent", "--zookeeper.servers="+env.ens.Connect(), "--zookeeper.auth-file="+env.agentAuth, "--cluster="+cluster,
		"--member=web", "--config-dir="+t.TempDir(), "--prometheus.url="+env.proms[0].URL,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[0]), "--web.config.file="+webConfig, "--log.level=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0])
	var code int
	waitFor(t, 10*time.Second, "agent endpoint", func() (bool, string) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		code = resp.StatusCode
		return true, ""
	})
	if code != http.StatusUnauthorized {
		t.Errorf("without credentials: HTTP %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth("prometheus", "change-me")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with credentials: HTTP %d", resp.StatusCode)
	}
}

// `zkprom shards` on a cluster that does not exist (nothing pushed, no
// agent) fails naming the cluster; a cluster with a revision but no live
// agent is no error.
func TestShardsCLIUnknownCluster(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	s := newStore(t, connect(t), cluster)
	push(t, s, testBundle([]string{"job_a"}, nil, "", nil), "first")
	out, errOut, code := zkprom(t, "shards", "--zookeeper.servers="+env.ens.Connect(), "--cluster=nope", "--log.level=warn")
	if code != 1 || !strings.Contains(errOut, "cluster nope") || !strings.Contains(errOut, "nothing was pushed yet") ||
		!strings.Contains(errOut, "no agent has joined it") || !strings.Contains(errOut, cluster) {
		t.Errorf("unknown cluster: exit %d, want 1 with an error naming it and the known clusters\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, errOut, code = zkprom(t, "shards", "--zookeeper.servers="+env.ens.Connect(), "--cluster="+cluster, "--log.level=warn")
	if code != 0 || !strings.Contains(out, "no live agents") {
		t.Errorf("cluster without agents: exit %d, want 0 and 'no live agents'\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// The access flags from the command line: an anonymous push is refused
// saying what to do; a lab cluster opened by the loudly named flag says so
// in its status; `config identity` prints the agents' digest identity
// without the password; status without credentials tells a closed cluster
// and with the writer's names who may do what.
func TestAccessCLI(t *testing.T) {
	skipShort(t)
	cluster := clusterName(t)
	dir := writeBundle(t, testBundle([]string{"job_a"}, nil, "", nil))
	zkFlags := []string{"--zookeeper.servers=" + env.ens.Connect(), "--cluster=" + cluster, "--log.level=warn"}
	_, errOut, code := zkprom(t, append([]string{"config", "push", dir, "-m", "anon", "--agents.auth-file=" + env.agentAuth}, zkFlags...)...)
	if code != 1 || !strings.Contains(errOut, "--zookeeper.auth-file") || !strings.Contains(errOut, "--unsafe.open-cluster") {
		t.Errorf("anonymous push: exit %d\n%s", code, errOut)
	}

	lab := append([]string{"--root=/lab-" + cluster}, zkFlags...)
	out, errOut, code := zkprom(t, append([]string{"config", "push", dir, "-m", "lab", "--unsafe.open-cluster"}, lab...)...)
	if code != 0 || !strings.Contains(out, "WARNING") || !strings.Contains(out, "open") {
		t.Errorf("open push: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = zkprom(t, append([]string{"config", "status"}, lab...)...)
	if !strings.Contains(out, "access: OPEN") {
		t.Errorf("status of an open cluster: exit %d\n%s%s", code, out, errOut)
	}

	out, _, code = zkprom(t, "config", "identity", env.agentAuth)
	pass := strings.TrimSpace(strings.SplitN(string(must(os.ReadFile(env.agentAuth))), ":", 2)[1])
	if code != 0 || strings.TrimSpace(out) != env.agentID.String() || strings.Contains(out, pass) {
		t.Errorf("config identity: exit %d: %q, want %s", code, out, env.agentID)
	}

	writer := append([]string{"--zookeeper.auth-file=" + env.writerAuth}, zkFlags...)
	if out, errOut, code = zkprom(t, append([]string{"config", "push", dir, "-m", "first", "--agents.id=" + env.agentID.String()}, writer...)...); code != 0 {
		t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = zkprom(t, append([]string{"config", "status"}, zkFlags...)...)
	if !strings.Contains(out, "access: closed") {
		t.Errorf("anonymous status of a closed cluster:\n%s", out)
	}
	out, _, _ = zkprom(t, append([]string{"config", "status"}, writer...)...)
	if !strings.Contains(out, "access: writers digest:writer:") || !strings.Contains(out, "agents "+env.agentID.String()) {
		t.Errorf("writer's status of a closed cluster:\n%s", out)
	}
	// Anonymous writes to the closed cluster say what is wrong: a rollback
	// needs credentials, opening it is the writers' call.
	if _, errOut, code = zkprom(t, append([]string{"config", "rollback"}, zkFlags...)...); code != 1 || !strings.Contains(errOut, "--zookeeper.auth-file") {
		t.Errorf("anonymous rollback: exit %d: %s", code, errOut)
	}
	out, errOut, code = zkprom(t, append([]string{"config", "push", dir, "-m", "open it", "--force", "--unsafe.open-cluster"}, zkFlags...)...)
	if code != 1 || !strings.Contains(errOut, "only its writers may open it") || strings.Contains(out, "WARNING") {
		t.Errorf("anonymous push opening a closed cluster: exit %d\n%s%s", code, out, errOut)
	}
	// Credentials of neither a writer nor an agent.
	other := filepath.Join(t.TempDir(), "other.auth")
	writeFile(t, other, "intruder:"+randomPassword()+"\n")
	out, _, _ = zkprom(t, append([]string{"config", "status", "--zookeeper.auth-file=" + other}, zkFlags...)...)
	if !strings.Contains(out, "neither a writer's nor an agent's") {
		t.Errorf("status with foreign credentials:\n%s", out)
	}
	if _, errOut, code = zkprom(t, append([]string{"config", "push", dir, "-m", "x", "--force", "--zookeeper.auth-file=" + other}, zkFlags...)...); code != 1 || !strings.Contains(errOut, "digest:intruder:") || !strings.Contains(errOut, "not one of the cluster's writers") {
		t.Errorf("push with foreign credentials: exit %d: %s", code, errOut)
	}
}
