package discovery

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zkprom/zkprom/internal/statuspage"
	"github.com/zkprom/zkprom/internal/zktest"
)

// TestStatusPages looks at `zkprom sd`'s pages in a browser, on the real
// ensemble: a target with a hostile label value shows it as text, a
// refused member appears with its reason and why, and the lookup answers
// for a refused znode and for a target's address.
func TestStatusPages(t *testing.T) {
	needEnsemble(t)
	b := zktest.NewBrowser(t)
	w := writer(t, ensemble.Connect())
	const script = `<script>alert(1)</script>`
	put(t, w, "/pages/web/ok", []byte(`{"targets":["10.1.0.1:9100"],"labels":{"team":"`+script+`"}}`))
	put(t, w, "/pages/web/broken", []byte(`not json`))
	put(t, w, "/pages/web/reserved", []byte(`{"targets":["10.1.0.2:9100"],"labels":{"job":"x"}}`))
	m, _ := startManager(t, "zookeeper: {servers: '"+ensemble.Connect()+"'}\njobs: [{name: web, format: zkprom, paths: [/pages/web]}]\n", "")
	srv := httptest.NewServer(m.StatusHandler(statuspage.Page{Name: "zkprom sd"}))
	defer srv.Close()

	p := b.Wait(t, srv.URL+"/", 30*time.Second, "the job synced with its refusals", func(p *zktest.Page) bool {
		return p.Cell("jobs", "web", "synced") == "yes"
	})
	row := func(header string) string { return p.Cell("jobs", "web", header) }
	if row("targets") != "1" || row("session") != "connected" || row("stale") != "no" ||
		!strings.Contains(row("refused now"), "malformed: 1") || !strings.Contains(row("refused now"), "bad_label: 1") {
		t.Errorf("job row %v", p.Row("jobs", "web"))
	}
	text := p.Text()
	for _, want := range []string{"/pages/web/broken malformed", "/pages/web/reserved bad_label", "reserved"} {
		if !strings.Contains(text, want) {
			t.Errorf("the overview does not show %q:\n%s", want, text)
		}
	}

	p, err := b.Open(context.Background(), srv.URL+"/jobs/web")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Elements("script")); n != 0 {
		t.Errorf("a label became %d script elements", n)
	}
	if labels, znode := p.Cell("targets", "10.1.0.1:9100", "labels"), p.Cell("targets", "10.1.0.1:9100", "znode"); !strings.Contains(labels, `team="`+script+`"`) || znode != "/pages/web/ok" {
		t.Errorf("the job page does not show the target with its label as text and its znode:\n%s", p.Text())
	}

	p, err = b.Open(context.Background(), srv.URL+"/lookup?q="+url.QueryEscape("/pages/web/reserved"))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.TextOf("answer-web"); !strings.Contains(got, "refused (bad_label)") || !strings.Contains(got, `"job" is reserved`) {
		t.Errorf("lookup of the refused znode: %q", got)
	}

	// A query no znode or address could be is refused before any job is
	// locked and scanned.
	for _, param := range []string{"q", "job"} {
		resp, err := http.Get(srv.URL + "/lookup?" + param + "=/" + strings.Repeat("a", maxLookupQuery))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "at most 1024 bytes") {
			t.Errorf("a %d-byte %s: HTTP %d %q, want 400 saying the bound", maxLookupQuery+1, param, resp.StatusCode, body)
		}
	}

	// The lookups of the target, by address and by znode, through the JSON twin.
	for _, q := range []string{"10.1.0.1:9100", "/pages/web/ok"} {
		resp, err := http.Get(srv.URL + "/lookup?job=web&format=json&q=" + url.QueryEscape(q))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var l Lookup
		if err := json.Unmarshal(body, &l); err != nil || len(l.Answers) != 1 || l.Answers[0].Verdict != VerdictTarget ||
			l.Answers[0].Targets[0].Labels["team"] != script {
			t.Errorf("lookup of %s: %v %s", q, err, body)
		}
	}
}
