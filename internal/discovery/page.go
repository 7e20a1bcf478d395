package discovery

import (
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/zkprom/zkprom/internal/statuspage"
)

var (
	//go:embed page_jobs.html
	jobsHTML string
	//go:embed page_job.html
	jobHTML string
	//go:embed page_lookup.html
	lookupHTML string
	// the lookup form, refusals and targets tables
	//go:embed page_shared.html
	sharedHTML string
)

// pageRefresh is how often the pages load again.
const pageRefresh = 10 * time.Second

// StatusHandler serves the pages of `zkprom sd`, each with its JSON twin
// at ?format=json:
//
//	/                      every job: members, targets, refusals, session
//	/jobs/NAME             one job's targets, their labels and znodes
//	/lookup?q=X[&job=NAME] why is this address or znode (not) a target?
//
// links are the listener's own (metrics, http_sd).
func (m *Manager) StatusHandler(page statuspage.Page) http.Handler {
	funcs := template.FuncMap{
		"lookupQuery": func(job, q string) Lookup { return Lookup{Job: job, Query: q} },
		"maxRefusals": func() int { return maxRefusalsPerReason },
	}
	jobs := statuspage.MustParse(jobsHTML+sharedHTML, funcs)
	job := statuspage.MustParse(jobHTML+sharedHTML, funcs)
	lookup := statuspage.MustParse(lookupHTML+sharedHTML, funcs)
	page.Refresh = pageRefresh
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := page
		switch name, isJob := strings.CutPrefix(r.URL.Path, "/jobs/"); {
		case r.URL.Path == "/":
			jobs.Serve(w, r, p, m.Status())
		case isJob:
			jt, ok := m.JobTargets(name)
			if !ok {
				http.Error(w, "no discovery job "+name, http.StatusNotFound)
				return
			}
			p.Title = "job " + name
			job.Serve(w, r, p, jt)
		case r.URL.Path == "/lookup":
			q := r.URL.Query()
			if len(q.Get("q")) > maxLookupQuery || len(q.Get("job")) > maxLookupQuery {
				// A lookup holds a job's lock while it scans: no made-up megabyte.
				http.Error(w, fmt.Sprintf("lookup: give a znode path or host:port of at most %d bytes", maxLookupQuery), http.StatusBadRequest)
				return
			}
			p.Title, p.Refresh = "lookup", 0
			lookup.Serve(w, r, p, m.Lookup(q.Get("job"), q.Get("q")))
		default:
			http.NotFound(w, r)
		}
	})
}
