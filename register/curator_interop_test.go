package register

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/discovery"
	"github.com/zkprom/zkprom/internal/zk"
)

// curatorJava runs testdata/CuratorInterop.java, a plain Apache Curator
// x-discovery client (Debian's libcurator-discovery-java), with args.
func curatorJava(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	var cp []string
	for _, j := range []string{"curator-x-discovery", "curator-framework", "curator-client", "zookeeper", "zookeeper-jute",
		"guava", "jackson-databind", "jackson-core", "jackson-annotations", "slf4j-api"} {
		p := filepath.Join("/usr/share/java", j+".jar")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: the Curator interop test needs Debian's libcurator-discovery-java (scripts/install-deps.sh installs it)", p)
		}
		cp = append(cp, p)
	}
	return exec.Command("java", append([]string{"-cp", strings.Join(cp, ":"), "testdata/CuratorInterop.java"}, args...)...)
}

// What `zkprom register --format=curator` writes, a plain Curator
// consumer (ServiceDiscoveryBuilder.builder(Map.class)) reads without
// error, labels included; and what the real Curator library registers
// with a Map payload, zkprom's discovery reads with the payload's fields
// as labels.
func TestCuratorInterop(t *testing.T) {
	if testing.Short() || ensemble == nil {
		t.Skip("integration test: needs ZooKeeper and Java")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	connect := ensemble.Connect()

	// zkprom -> Curator, with labels of several sizes and characters.
	labels := map[string]string{"team": "payments", "zone": "eu-west-1", "note": strings.Repeat("ü", 50)}
	r, err := Start(ctx, Config{ZooKeeper: ZooKeeper{Servers: connect}, Format: FormatCurator, Path: "/interop", Service: "orders",
		ID: "zk-1", Address: "10.0.0.5:8080", MetricsAddress: "10.0.0.5:9100", Labels: labels}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	out, err := curatorJava(t, "query", connect, "/interop", "orders").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "instance id=zk-1 address=10.0.0.5 port=8080") ||
		!strings.Contains(string(out), "team=payments") || !strings.Contains(string(out), "metrics.port=9100") {
		t.Fatalf("Curator's queryForInstances of zkprom's registration: %v\n%s", err, out)
	}

	// Curator -> zkprom.
	cmd := curatorJava(t, "register", connect, "/interop", "billing", "cur-1", "10.0.0.6", "8081", "team=billing", "metrics.port=9101", "a.b=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "registered" {
		t.Fatalf("Curator registration: %q %v", sc.Text(), sc.Err())
	}
	c, err := zk.Connect(ctx, zk.Config{Servers: connect}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data, _, err := c.Get(ctx, "/interop/billing/cur-1")
	if err != nil {
		t.Fatal(err)
	}
	targets, err := discovery.ParseMember(discovery.JobConfig{Format: "curator", Metrics: discovery.MetricsConfig{PortField: "metrics.port"}}, "/interop/billing/cur-1", data)
	if err != nil || len(targets) != 1 {
		t.Fatalf("zkprom's discovery of Curator's registration %s: %v %v", data, targets, err)
	}
	l := targets[0]
	for k, want := range map[string]string{"__address__": "10.0.0.6:9101", "__meta_zookeeper_curator_payload_team": "billing",
		"__meta_zookeeper_curator_payload_a_b": "1", "__meta_zookeeper_curator_name": "billing", "__meta_zookeeper_curator_id": "cur-1"} {
		if got := string(l[model.LabelName(k)]); got != want {
			t.Errorf("%s = %q, want %q (registration %s)", k, got, want, data)
		}
	}
}
