package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --config.check also checks the files the sessions need.
func TestSDConfigCheckFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sd.yml")
	write := func(auth string) {
		os.WriteFile(cfg, []byte("zookeeper:\n  servers: 127.0.0.1:2181\n  auth_file: "+auth+"\njobs:\n  - name: a\n    format: zkprom\n    paths: [/x]\n"), 0o644)
	}
	write(filepath.Join(dir, "missing"))
	var out, errb bytes.Buffer
	if code := run([]string{"sd", "--config.file=" + cfg, "--config.check"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "read ZooKeeper auth file") {
		t.Errorf("missing auth file: exit %d, stderr %q", code, errb.String())
	}
	auth := filepath.Join(dir, "auth")
	os.WriteFile(auth, []byte("sd:secret\n"), 0o600)
	write(auth)
	out.Reset()
	if code := run([]string{"sd", "--config.file=" + cfg, "--config.check"}, &out, io.Discard); code != 0 || strings.Contains(out.String(), "secret") {
		t.Errorf("good config: exit %d, %q", code, out.String())
	}
}

// The --zookeeper.* flags give the ensemble of a config without a
// zookeeper block; a block in the file wins.
func TestSDZooKeeperFlagsAsDefault(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sd.yml")
	os.WriteFile(cfg, []byte("jobs:\n  - name: a\n    format: zkprom\n    paths: [/x]\n"), 0o644)
	var out bytes.Buffer
	if code := run([]string{"sd", "--config.file=" + cfg, "--config.check"}, &out, io.Discard); code != 1 {
		t.Errorf("no ZooKeeper anywhere: exit %d", code)
	}
	out.Reset()
	if code := run([]string{"sd", "--config.file=" + cfg, "--config.check", "--zookeeper.servers=zk1:2181/kafka"}, &out, io.Discard); code != 0 {
		t.Errorf("servers from the flag: exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"sd", "--config.file=" + cfg, "--config.check", "--zookeeper.servers=zk1:x"}, &out, io.Discard); code != 1 {
		t.Errorf("a bad connect string in the flag: exit %d, %q", code, out.String())
	}
}

// The --zookeeper.sasl.* flags reach the ZooKeeper config: incomplete SASL
// credentials fail the check with what to give, never the password.
func TestSASLFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sd.yml")
	os.WriteFile(cfg, []byte("jobs:\n  - name: a\n    format: zkprom\n    paths: [/x]\n"), 0o644)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("alice-secret\n"), 0o600)
	check := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"sd", "--config.file=" + cfg, "--config.check", "--zookeeper.servers=zk1:2181"}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := check("--zookeeper.sasl.user=alice", "--zookeeper.sasl.password-file="+pw); code != 0 {
		t.Errorf("SASL user and password file: exit %d, %q", code, out)
	}
	code, out := check("--zookeeper.sasl.user=alice")
	if code != 1 || !strings.Contains(out, "--zookeeper.sasl.password-file") {
		t.Errorf("SASL user without a password file: exit %d, %q", code, out)
	}
	code, out = check("--zookeeper.sasl.mechanism=GSSAPI", "--zookeeper.sasl.user=alice", "--zookeeper.sasl.password-file="+pw)
	if code != 1 || !strings.Contains(out, "DIGEST-MD5") || strings.Contains(out, "alice-secret") {
		t.Errorf("an unsupported mechanism: exit %d, %q", code, out)
	}
}
