package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestSDConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte("zookeeper: {servers: 'zk1:2181,zk2:2181/chroot'}\njobs: [{name: aurora, format: serverset, paths: [/aurora]}]\n"), 0o644)
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("zookeeper: {servers: 'zk1:2181'}\njobs: [{name: aurora, format: serverset, pathz: [/aurora]}]\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"sd", "--config.file=" + good, "--config.check"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "configuration OK: 1 job(s)") {
		t.Errorf("good config: exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"sd", "--config.file=" + bad, "--config.check"}, &out, &errb); code != 1 {
		t.Errorf("bad config: exit %d", code)
	}
	if code := run([]string{"sd", "--config.check"}, &out, &errb); code != 2 {
		t.Errorf("no --config.file: exit %d", code)
	}
}

func TestRegisterBadInput(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"register", "--zookeeper.servers=127.0.0.1:1", "--path=/a", "--address=h:1", "--label=novalue"}, &out, &errb); code != 2 {
		t.Errorf("--label without =: exit %d", code)
	}
	if code := run([]string{"register", "--zookeeper.servers=127.0.0.1:1", "--path=/a", "--address=h"}, &out, &errb); code != 1 {
		t.Errorf("bad address: exit %d", code)
	}
	if code := run([]string{"register", "--path=/a"}, &out, &errb); code != 2 {
		t.Errorf("no --address: exit %d", code)
	}
}

// sd and the agent run the collector at 75 % unless GOGC says otherwise.
func TestGCForLongLivedHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	gcForLongLivedHeap()
	if got := debug.SetGCPercent(100); got != 75 {
		t.Errorf("GOGC unset: collector target %d %%, want 75", got)
	}
	t.Setenv("GOGC", "100")
	gcForLongLivedHeap()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100: collector target %d %%, want it left at 100", got)
	}
}
