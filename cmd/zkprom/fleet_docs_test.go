package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkprom/zkprom/internal/agent"
	"github.com/zkprom/zkprom/internal/prom"
)

// fleetFlagsDoc renders the agent's fleet flags and `zkprom shards`.
func fleetFlagsDoc() string {
	a := newApp(io.Discard, io.Discard)
	var b strings.Builder
	for _, c := range a.root.Model().Commands {
		switch c.FullCommand {
		case "agent":
			b.WriteString("### zkprom agent (sharding and HA flags; the others are in [config.md](config.md#flags))\n\n")
			var flags []*kingpin.FlagModel
			for _, f := range c.Flags {
				if strings.HasPrefix(f.Name, "shard.") || strings.HasPrefix(f.Name, "ha.") {
					flags = append(flags, f)
				}
			}
			writeFlags(&b, flags)
		case "shards":
			fmt.Fprintf(&b, "### zkprom shards\n\n%s\n\n", c.Help)
			writeFlags(&b, c.Flags)
		}
	}
	return b.String()
}

// fleetMetricsDoc renders the sharding and HA metrics of an agent in an
// HA group.
func fleetMetricsDoc() (string, error) {
	reg := prometheus.NewRegistry()
	a, err := agent.New(nil, agent.Config{Cluster: "c", Member: "m", ConfigDir: os.TempDir(),
		Prometheus: prom.Config{URL: "http://127.0.0.1:9090"}, Fleet: agent.FleetConfig{HAGroup: "g"}}, nil, reg)
	if err != nil {
		return "", err
	}
	a.DocumentMetrics()
	fams, err := reg.Gather()
	if err != nil {
		return "", err
	}
	return metricsTable(fams, func(name string) bool {
		return strings.HasPrefix(name, "zkprom_shard_") || strings.HasPrefix(name, "zkprom_ha_")
	}), nil
}

// TestDocumentationFleet keeps the generated tables of docs/fleet.md equal
// to the code (`make docs` rewrites them).
func TestDocumentationFleet(t *testing.T) {
	const path = "../../docs/fleet.md"
	metrics, err := fleetMetricsDoc()
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]string{"FLAGS": fleetFlagsDoc(), "METRICS": metrics}
	checkGeneratedDoc(t, path, parts)
}
