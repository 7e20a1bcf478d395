package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad input to `zkprom config push` is refused before ZooKeeper is
// contacted, with a clear error.
func TestConfigPushBadInput(t *testing.T) {
	var errOut bytes.Buffer
	if code := run([]string{"config", "push", "/nonexistent", "--cluster=c", "-m", "x"}, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), "nonexistent") {
		t.Errorf("missing dir: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"config", "push", t.TempDir(), "--cluster=c"}, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), "message") {
		t.Errorf("missing message: exit %d: %s", code, errOut.String())
	}
	// No prometheus.yml: exit 1 (printed to the process's stderr).
	if code := run([]string{"config", "push", t.TempDir(), "--cluster=c", "-m", "x", "--zookeeper.servers=127.0.0.1:1"}, io.Discard, io.Discard); code != 1 {
		t.Errorf("empty bundle: exit %d", code)
	}
	// A valid bundle with --dry-run needs no ZooKeeper.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global: {}\n"), 0o644)
	var out bytes.Buffer
	if code := run([]string{"config", "push", dir, "--cluster=c", "-m", "x", "--dry-run", "--promtool=none", "--zookeeper.servers=127.0.0.1:1"}, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "valid (builtin)") || !strings.Contains(out.String(), "promtool disabled") {
		t.Errorf("dry run: exit %d: %s", code, out.String())
	}
}

func TestAgentBadInput(t *testing.T) {
	var errOut bytes.Buffer
	if code := run([]string{"agent", "--cluster=c"}, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), "config-dir") {
		t.Errorf("missing --config-dir: exit %d: %s", code, errOut.String())
	}
}
