package exporter

import (
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/zkprom/zkprom/internal/statuspage"
)

// Status is what the exporter's page shows: every configured ensemble,
// asked when the page is asked for, by the same scrape as /metrics.
type Status struct {
	Ensembles []EnsembleStatus `json:"ensembles"`
}

// EnsembleStatus is one ensemble: its view and its servers.
type EnsembleStatus struct {
	Name    string      `json:"name"`
	View    ViewStatus  `json:"view"`
	Servers []ServerRow `json:"servers"`
}

// ViewStatus is the ensemble view (ensembleView) as the page shows it.
// Pointers are unknown facts (null in JSON), as in the metrics.
type ViewStatus struct {
	Servers           int      `json:"servers"`
	ServersUp         int      `json:"servers_up"`
	ServersServing    *int     `json:"servers_serving"`
	Leaders           *int     `json:"leaders"`
	Voters            int      `json:"voters"`
	QuorumSize        int      `json:"quorum_size"`
	FailuresTolerated *int     `json:"failures_tolerated"`
	Versions          []string `json:"versions"`
}

// ServerRow is one server's ServerResult as the page shows it.
type ServerRow struct {
	Server   string   `json:"server"`
	Up       bool     `json:"up"`
	Serving  *bool    `json:"serving"`
	ReadOnly *bool    `json:"read_only"`
	State    string   `json:"state,omitempty"`
	Zxid     string   `json:"zxid,omitempty"`     // hexadecimal, as ZooKeeper prints it
	ZxidLag  *float64 `json:"zxid_lag,omitempty"` // behind the leader, same epoch only
	Version  string   `json:"version,omitempty"`
	Source   string   `json:"source,omitempty"` // admin, fourletter; "" when nothing answered
	Refused  []string `json:"refused_commands,omitempty"`
	Error    string   `json:"last_error,omitempty"` // the first failed command of this scrape
	Duration float64  `json:"duration_seconds"`
}

// Status asks every configured ensemble now, within ctx and each
// server's timeout, as a /metrics scrape does (failed commands are
// counted the same way).
func (x *Exporter) Status(ctx context.Context) Status {
	sc, _ := x.ensembleScrape(ctx) // no names: no error
	st := Status{Ensembles: []EnsembleStatus{}}
	for _, res := range sc.collect() {
		st.Ensembles = append(st.Ensembles, ensembleStatus(res.e.cfg.Name, res.servers))
	}
	return st
}

func ensembleStatus(name string, results []*ServerResult) EnsembleStatus {
	v := ensembleView(results)
	es := EnsembleStatus{Name: name, View: ViewStatus{Servers: v.Servers, ServersUp: v.ServersUp, Voters: v.Voters,
		QuorumSize: v.QuorumSize, Versions: v.Versions}}
	if v.ServingKnown {
		es.View.ServersServing = &v.ServersServing
	}
	if v.StateKnown {
		es.View.Leaders = &v.Leaders
	}
	if v.ServingKnown && v.StateKnown {
		es.View.FailuresTolerated = &v.FailuresTolerated
	}
	if es.View.Versions == nil {
		es.View.Versions = []string{}
	}
	for _, r := range results {
		s := ServerRow{Server: r.Server, Up: r.Up, Serving: r.Serving, ReadOnly: r.ReadOnly, State: r.State,
			Version: r.Version, Source: r.Source, Refused: r.Refused(), Duration: r.Duration.Seconds()}
		if r.HasZxid {
			s.Zxid = fmt.Sprintf("0x%x", r.Zxid)
		}
		if lag, ok := v.ZxidLag[r.Server]; ok {
			s.ZxidLag = &lag
		}
		for _, c := range r.Commands {
			if c.Err != nil {
				s.Error = fmt.Sprintf("%s (%s): %v", c.Command, c.Source, c.Err)
				break
			}
		}
		es.Servers = append(es.Servers, s)
	}
	return es
}

//go:embed status.html
var statusHTML string

// StatusHandler serves the exporter's page at / (and its JSON twin at
// /?format=json): links, and every ensemble asked now, bounded like a
// scrape (Prometheus's scrape timeout header, each server's timeout).
func (x *Exporter) StatusHandler(page statuspage.Page) http.Handler {
	t := statuspage.MustParse(statusHTML, template.FuncMap{"int": func(p *int) int { return *p }})
	if page.Refresh == 0 {
		page.Refresh = 10 * time.Second
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		ctx, cancel := requestContext(r)
		defer cancel()
		t.Serve(w, r, page, x.Status(ctx))
	})
}
