package zktest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/prom"
)

func TestEnsembleFaults(t *testing.T) {
	e, err := StartEnsemble(Options{Servers: 3, PerServer: map[int]ServerOptions{2: {Whitelist: "-", DisableAdmin: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Leader() < 0 {
		t.Fatal("no leader")
	}
	if out, _ := FourLetterWord(e.Servers[2].ClientAddr, "mntr", time.Second); !strings.Contains(out, "not in the whitelist") {
		t.Errorf("server 3 should refuse mntr, said %q", out)
	}
	if e.Servers[2].AdminURL != "" {
		t.Errorf("server 3 has an AdminServer URL")
	}
	resp, err := http.Get(e.Servers[0].AdminURL + "/commands/ruok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// Pause returns only once every thread has stopped: kill(2) returning
	// is not enough (several of ten pauses found threads still running).
	for range 10 {
		if err := e.Pause(0); err != nil {
			t.Fatal(err)
		}
		if n, err := runningThreads(e.Pid(0)); n != 0 || err != nil {
			t.Fatalf("Pause returned with %d threads running (%v)", n, err)
		}
		if err := e.Resume(0); err != nil {
			t.Fatal(err)
		}
	}
	// A paused server keeps its port but answers nothing.
	if err := e.Pause(0); err != nil {
		t.Fatal(err)
	}
	if _, err := FourLetterWord(e.Servers[0].ClientAddr, "ruok", 500*time.Millisecond); err == nil {
		t.Error("a paused server answered ruok")
	}
	e.Resume(0)
	if err := e.WaitServerServing(0, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Kill one, restart it, quorum again.
	if err := e.Kill(1); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(1); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitServing(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// A follower paused past syncLimit (10 s) is dropped by the leader; once
// resumed it still answers srvr as a follower for a moment, then rejoins.
// WaitServing must wait for that, or the next test finds it not serving.
func TestWaitServingAfterLongPause(t *testing.T) {
	t.Parallel()
	e, err := StartEnsemble(Options{Servers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	leader := e.Leader()
	if leader < 0 {
		t.Fatal("no leader")
	}
	f := (leader + 1) % 3
	if err := e.Pause(f); err != nil {
		t.Fatal(err)
	}
	time.Sleep(13 * time.Second)
	if err := e.Resume(f); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for i := range e.Servers {
			if _, err := e.Mode(i); err != nil {
				t.Fatalf("after WaitServing: %v", err)
			}
		}
	}
}

func TestTLSStandalone(t *testing.T) {
	e, err := StartEnsemble(Options{Servers: 1, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pem, _ := os.ReadFile(e.TLS.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", e.Servers[0].SecureAddr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS to the secure port: %v", err)
	}
	conn.Write([]byte("ruok"))
	buf := make([]byte, 4)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	n, _ := conn.Read(buf)
	conn.Close()
	if string(buf[:n]) != "imok" {
		t.Errorf("ruok over TLS = %q", buf[:n])
	}
}

// TestPrometheus starts each Prometheus the tests run against: it
// answers, reloads, and reports the version the harness read from its
// binary.
func TestPrometheus(t *testing.T) {
	ForEachPrometheus(t, func(t *testing.T, b PrometheusBuild) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "prometheus.yml")
		os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1s\n"), 0o644)
		p, err := StartPrometheus(PrometheusOptions{Build: b, ConfigFile: cfg})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		resp, err := http.Post(p.URL+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("reload: %s", resp.Status)
		}
		c, err := prom.New(prom.Config{URL: p.URL})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := c.BuildVersion(context.Background()); err != nil || v != b.Version {
			t.Errorf("buildinfo says %+v (%v), the binary %+v", v, err, b.Version)
		}
	})
}
