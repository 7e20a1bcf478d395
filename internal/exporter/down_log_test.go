package exporter

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// A server of a configured ensemble that goes away is logged once with
// the reason, and once when it is back: not on every scrape. Servers
// asked through /probe only are not logged (anyone may name them).
func TestUnreachableLoggedOnChange(t *testing.T) {
	var buf bytes.Buffer
	x, err := New(&Config{}, EnsembleConfig{}, slog.New(slog.NewTextHandler(&buf, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	down := &ServerResult{Server: "zk1:2181", Commands: []CommandResult{{Command: "mntr", Err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}}}
	x.countErrors("main", down)
	x.countErrors("main", down)
	x.countErrors("main", &ServerResult{Server: "zk1:2181", Up: true})
	x.countErrors("main", &ServerResult{Server: "zk1:2181", Up: true})
	x.countErrors("", &ServerResult{Server: "probed:2181", Commands: down.Commands})
	out := buf.String()
	if strings.Contains(out, "probed:2181") {
		t.Errorf("a probed server is logged:\n%s", out)
	}
	if n := strings.Count(out, "ZooKeeper server unreachable"); n != 1 || !strings.Contains(out, "reason=connection_refused") {
		t.Errorf("want one unreachable line with its reason, got:\n%s", out)
	}
	if n := strings.Count(out, "reachable again"); n != 1 {
		t.Errorf("want one line when the server is back, got:\n%s", out)
	}
}
