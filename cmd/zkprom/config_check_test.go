package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captureStderr runs f with os.Stderr (where the logger writes) sent to a
// file, and returns what was written there.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	old := os.Stderr
	os.Stderr = tmp
	defer func() { os.Stderr = old }()
	f()
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// --config.check is for a person: a bad configuration is one plain
// message on stderr (no log line), nothing on stdout, and exit 1.
func TestConfigCheckPlainErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.yml")
	for _, tc := range []struct {
		name string
		args []string
		want []string // in the message, in this order
	}{
		{"exporter unknown field", []string{"exporter", "--config.file", file("e1.yml", "ensembles:\n  - name: a\n    servers: zk1:2181\n    timeuot: 1s\n")},
			[]string{"zkprom exporter: configuration check failed: ", "e1.yml", "timeuot"}},
		{"exporter bad timeout", []string{"exporter", "--zookeeper.servers", "a:1", "--zookeeper.timeout=-1s"},
			[]string{"zkprom exporter: configuration check failed: ", "timeout must be positive"}},
		{"exporter missing file", []string{"exporter", "--config.file", missing},
			[]string{"zkprom exporter: configuration check failed: ", "missing.yml"}},
		{"sd unknown field", []string{"sd", "--config.file", file("s1.yml", "zookeeper: {servers: 'zk1:2181'}\njobs: [{name: a, format: serverset, pathz: [/a]}]\n")},
			[]string{"zkprom sd: configuration check failed: ", "s1.yml", "pathz"}},
		{"sd missing file", []string{"sd", "--config.file", missing},
			[]string{"zkprom sd: configuration check failed: ", "missing.yml"}},
		{"sd two jobs without auth files", []string{"sd", "--config.file", file("s2.yml", "zookeeper: {servers: 'zk1:2181', auth_file: "+filepath.Join(dir, "none")+"}\n"+
			"jobs: [{name: a, format: zkprom, paths: [/a]}, {name: b, format: zkprom, paths: [/b]}]\n")},
			[]string{"zkprom sd: configuration check failed: ", `job "a"`, "read ZooKeeper auth file", `job "b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			var code int
			logged := captureStderr(t, func() {
				code = run(append(tc.args, "--config.check"), &out, &errb)
			})
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			msg := errb.String()
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("stderr %q: want %q (in the order %q)", msg, w, tc.want)
					break
				}
				rest = rest[i+len(w):]
			}
			if !strings.HasPrefix(msg, "zkprom ") || strings.Contains(msg, "level=") || strings.Contains(msg, "msg=") {
				t.Errorf("stderr is not a plain message: %q", msg)
			}
			if logged != "" {
				t.Errorf("a check logged: %q", logged)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
	// A good configuration still says so on stdout.
	var out bytes.Buffer
	if code := run([]string{"exporter", "--zookeeper.servers", "a:1", "--config.check"}, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "configuration OK") {
		t.Errorf("good config: exit %d, %q", code, out.String())
	}
}
