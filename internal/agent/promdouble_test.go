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
// While away, it drops every connection unanswered.
type promDouble struct {
	srv *httptest.Server
	dir string

	mu          sync.Mutex
	away        bool
	ok          bool
	lastSuccess time.Time
	loaded      string // the configuration it runs (YAML)
	reloads     int
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
	switch r.URL.Path {
	case "/api/v1/status/flags":
		reply(map[string]string{"config.file": filepath.Join(p.dir, currentLink, bundle.MainFile)})
	case "/api/v1/status/runtimeinfo":
		reply(map[string]any{"reloadConfigSuccess": p.ok, "lastConfigTime": p.lastSuccess.Truncate(time.Second)})
	case "/api/v1/status/config":
		reply(map[string]string{"yaml": p.loaded})
	case "/metrics":
		fmt.Fprintf(w, "# TYPE prometheus_config_last_reload_successful gauge\nprometheus_config_last_reload_successful %d\n", map[bool]int{true: 1}[p.ok])
		fmt.Fprintf(w, "# TYPE prometheus_config_last_reload_success_timestamp_seconds gauge\nprometheus_config_last_reload_success_timestamp_seconds %.6f\n", float64(p.lastSuccess.UnixNano())/1e9)
	case "/-/ready":
	case "/-/reload":
		p.reloads++
		data, err := os.ReadFile(filepath.Join(p.dir, currentLink, bundle.MainFile))
		switch {
		case err != nil:
			p.ok = false
			http.Error(w, "couldn't load configuration: "+err.Error(), http.StatusInternalServerError)
		case strings.Contains(string(data), "# fake: refuse reload"):
			p.ok = false
			http.Error(w, "couldn't load configuration (--config.file=prometheus.yml): refused by the fake", http.StatusInternalServerError)
		case strings.Contains(string(data), "# fake: fail after reload"):
			p.ok = false
		default:
			p.ok, p.lastSuccess, p.loaded = true, time.Now(), string(data)
		}
	default:
		http.NotFound(w, r)
	}
}
