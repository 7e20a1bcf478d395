package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/bundle"
)

// promDouble is a Prometheus for unit tests: it runs
// --config.file=DIR/current/prometheus.yml and on POST /-/reload reads
// that file. A file with the line "# fake: refuse reload" is refused
// (HTTP 500); one with "# fake: fail after reload" is accepted, but the
// reload then reports failure (as when a rule file does not load).
// While away, it drops every connection unanswered. With autoReload it
// acts as Prometheus 3's --config.auto-reload whose poll comes before
// every request: it reloads by itself when the file differs from the one
// it last loaded (or after a failed reload).
type promDouble struct {
	srv *httptest.Server
	dir string

	mu          sync.Mutex
	away        bool
	autoReload  bool
	ok          bool
	lastSuccess time.Time
	loaded      string // the configuration it runs (YAML)
	reloads     int
	autoReloads int // of reloads
}

func newPromDouble(t *testing.T, dir string) *promDouble {
	p := &promDouble{dir: dir, ok: true, lastSuccess: time.Now().Add(-time.Minute)}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *promDouble) setAway(away bool) {
	p.mu.Lock()
	p.away = away
	p.mu.Unlock()
}

func (p *promDouble) setAutoReload(on bool) {
	p.mu.Lock()
	p.autoReload = on
	p.mu.Unlock()
}

func (p *promDouble) autoReloaded() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.autoReloads
}

func (p *promDouble) state() (loaded string, reloads int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loaded, p.reloads
}

func (p *promDouble) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.away {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	reply := func(data any) { json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data}) }
	if p.autoReload && r.URL.Path != "/-/reload" {
		if data, _ := os.ReadFile(filepath.Join(p.dir, currentLink, bundle.MainFile)); !p.ok || string(data) != p.loaded {
			p.autoReloads++
			p.reload(nil)
		}
	}
	switch r.URL.Path {
	case "/api/v1/status/flags":
		reply(map[string]string{"config.file": filepath.Join(p.dir, currentLink, bundle.MainFile), "config.auto-reload": fmt.Sprint(p.autoReload)})
	case "/api/v1/status/buildinfo":
		reply(map[string]string{"version": "3.16.0"})
	case "/api/v1/status/runtimeinfo":
		reply(map[string]any{"reloadConfigSuccess": p.ok, "lastConfigTime": p.lastSuccess.Truncate(time.Second)})
	case "/api/v1/status/config":
		reply(map[string]string{"yaml": p.loaded})
	case "/metrics":
		fmt.Fprintf(w, "# TYPE prometheus_config_last_reload_successful gauge\nprometheus_config_last_reload_successful %d\n", map[bool]int{true: 1}[p.ok])
		fmt.Fprintf(w, "# TYPE prometheus_config_last_reload_success_timestamp_seconds gauge\nprometheus_config_last_reload_success_timestamp_seconds %.6f\n", float64(p.lastSuccess.UnixNano())/1e9)
	case "/-/ready":
	case "/-/reload":
		p.reload(w)
	default:
		http.NotFound(w, r)
	}
}

// reload reads the configuration; w, when not nil, gets the answer of
// POST /-/reload.
func (p *promDouble) reload(w http.ResponseWriter) {
	p.reloads++
	refuse := func(msg string) {
		p.ok = false
		if w != nil {
			http.Error(w, msg, http.StatusInternalServerError)
		}
	}
	data, err := os.ReadFile(filepath.Join(p.dir, currentLink, bundle.MainFile))
	switch {
	case err != nil:
		refuse("couldn't load configuration: " + err.Error())
	case strings.Contains(string(data), "# fake: refuse reload"):
		refuse("couldn't load configuration (--config.file=prometheus.yml): refused by the fake")
	case strings.Contains(string(data), "# fake: fail after reload"):
		p.ok = false
	default:
		p.ok, p.lastSuccess, p.loaded = true, time.Now(), string(data)
	}
}
