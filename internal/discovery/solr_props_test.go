package discovery

import (
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/zktest"
)

func TestSolrClusterProps(t *testing.T) {
	f := solrFormat{}
	for _, p := range [][2]string{{"/live_nodes", "/clusterprops.json"}, {"/solr/live_nodes", "/solr/clusterprops.json"}} {
		if got := f.PropsPath(p[0]); got != p[1] {
			t.Errorf("PropsPath(%s) = %s, want %s", p[0], got, p[1])
		}
	}
	for _, tc := range []struct {
		data, want, err string
		missing         bool
	}{
		{missing: true},
		{data: "", want: ""},
		{data: "{}", want: ""},
		{data: `{"urlScheme":"https"}`, want: "https"},
		{data: `{"urlScheme":"HTTPS","defaults":{"collection":{"numShards":2}}}`, want: "https"},
		{data: `{"urlScheme":"http"}`, want: "http"},
		{data: `{"urlScheme":null}`, want: ""},
		{data: `{"urlScheme":""}`, want: ""},
		{data: `{"urlScheme":"ftp"}`, err: `urlScheme "ftp" is neither http nor https`},
		{data: `{"urlScheme":1}`, err: "urlScheme 1 is not a string"},
		{data: `["https"]`, err: "not a JSON object"},
		{data: `{"urlScheme":"https"`, err: "not a JSON object"},
	} {
		var data []byte
		if !tc.missing {
			data = []byte(tc.data)
		}
		got, err := f.ParseProps(data)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: err = %v, want one containing %q", tc.data, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.data, err)
		case got != tc.want:
			t.Errorf("%q: scheme %q, want %q", tc.data, got, tc.want)
		}
	}
}

// schemes returns address=scheme for every target of job ("-" no
// __scheme__ label).
func schemes(t testing.TB, srv *httptest.Server, job string) string {
	code, es := fetch(t, srv, job)
	if code != 200 {
		return fmt.Sprintf("status %d", code)
	}
	var out []string
	for _, e := range es {
		s := e.Labels["__scheme__"]
		if s == "" {
			s = "-"
		}
		for _, a := range e.Targets {
			out = append(out, a+"="+s)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func waitSchemes(t testing.TB, srv *httptest.Server, job, want string) {
	t.Helper()
	eventually(t, 30*time.Second, func() string {
		if got := schemes(t, srv, job); got != want {
			return fmt.Sprintf("%s: %s, want %s", job, got, want)
		}
		return ""
	})
}

// The urlScheme of Solr's clusterprops.json (beside live_nodes, under the
// chroot) is the scheme of the nodes, followed as it changes; a
// malformed file falls back to http; metrics.scheme still wins.
func TestSolrSchemeFromClusterProps(t *testing.T) {
	needEnsemble(t)
	root := writer(t, ensemble.Connect())
	put(t, root, "/solrprops", nil)
	w := writer(t, ensemble.Connect()+"/solrprops")
	put(t, w, "/a/clusterprops.json", []byte(`{"urlScheme":"https"}`))
	put(t, w, "/a/live_nodes/10.5.0.1:8983_solr", nil)
	put(t, w, "/b/live_nodes/10.5.1.1:8983_solr", nil) // no clusterprops.json
	put(t, w, "/c/clusterprops.json", []byte(`{"urlScheme":`))
	put(t, w, "/c/live_nodes/10.5.2.1:8983_solr", nil)
	cfg := `
zookeeper:
  servers: ` + ensemble.Connect() + `/solrprops
  session_timeout: 4s
jobs:
  - {name: a, format: solr, paths: [/a/live_nodes]}
  - {name: explicit, format: solr, paths: [/a/live_nodes], metrics: {scheme: http}}
  - {name: two, format: solr, paths: [/a/live_nodes, /b/live_nodes]}
  - {name: bad, format: solr, paths: [/c/live_nodes]}
`
	_, srv := startManager(t, cfg, "")
	// The first answer already has the scheme: the job is synced only
	// once the properties were read.
	eventually(t, 30*time.Second, func() string {
		if code, _ := fetch(t, srv, "a"); code != 200 {
			return fmt.Sprintf("status %d", code)
		}
		return ""
	})
	if got := schemes(t, srv, "a"); got != "10.5.0.1:8983=https" {
		t.Errorf("first answer: %s", got)
	}
	waitSchemes(t, srv, "explicit", "10.5.0.1:8983=http")
	waitSchemes(t, srv, "two", "10.5.0.1:8983=https 10.5.1.1:8983=-")
	waitSchemes(t, srv, "bad", "10.5.2.1:8983=-")

	// A node that joins later gets the scheme too.
	put(t, w, "/a/live_nodes/10.5.0.2:8983_solr", nil)
	waitSchemes(t, srv, "a", "10.5.0.1:8983=https 10.5.0.2:8983=https")

	// Changes of the properties are followed.
	put(t, w, "/a/clusterprops.json", []byte(`{"urlScheme":"http"}`))
	waitSchemes(t, srv, "a", "10.5.0.1:8983=http 10.5.0.2:8983=http")
	put(t, w, "/a/clusterprops.json", []byte(`not json`))
	waitSchemes(t, srv, "a", "10.5.0.1:8983=- 10.5.0.2:8983=-")
	put(t, w, "/a/clusterprops.json", []byte(`{"urlScheme":"https"}`))
	waitSchemes(t, srv, "a", "10.5.0.1:8983=https 10.5.0.2:8983=https")
	del(t, w, "/a/clusterprops.json")
	waitSchemes(t, srv, "a", "10.5.0.1:8983=- 10.5.0.2:8983=-")
	put(t, w, "/c/clusterprops.json", []byte(`{"urlScheme":"https"}`))
	waitSchemes(t, srv, "bad", "10.5.2.1:8983=https")
	put(t, w, "/b/clusterprops.json", []byte(`{"urlScheme":"https"}`))
	waitSchemes(t, srv, "two", "10.5.0.1:8983=- 10.5.0.2:8983=- 10.5.1.1:8983=https")
	waitSchemes(t, srv, "explicit", "10.5.0.1:8983=http 10.5.0.2:8983=http")
}

// A change of clusterprops.json made while the session is cut off and
// then expires is seen once a new session reads it again.
func TestSolrSchemeAfterSessionExpiry(t *testing.T) {
	needEnsemble(t)
	if err := ensemble.WaitServing(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	w := writer(t, ensemble.Connect())
	put(t, w, "/solrexp/clusterprops.json", []byte(`{"urlScheme":"https"}`))
	put(t, w, "/solrexp/live_nodes/10.6.0.1:8983_solr", nil)
	px, err := zktest.NewProxy(ensemble.Servers[0].ClientAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	m, srv := startManager(t, `
zookeeper: {servers: '`+px.Addr()+`', session_timeout: 2s}
jobs: [{name: solr, format: solr, paths: [/solrexp/live_nodes]}]
`, "")
	waitSchemes(t, srv, "solr", "10.6.0.1:8983=https")
	m.mu.Lock()
	client := m.clients[px.Addr()].client
	m.mu.Unlock()
	session := client.SessionID()

	px.Stall()
	put(t, w, "/solrexp/clusterprops.json", []byte(`{"urlScheme":"http"}`))
	eventually(t, 30*time.Second, func() string {
		if !isStale(jobOf(m, "solr")) {
			return "not stale"
		}
		return ""
	})
	time.Sleep(3 * time.Second) // longer than the session timeout: the server expires it
	px.Resume()
	waitSchemes(t, srv, "solr", "10.6.0.1:8983=http")
	if client.SessionID() == session {
		t.Errorf("the session did not expire (0x%x)", session)
	}
}
