package exporter

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/zkprom/zkprom/internal/zktest"
)

// checkPage loads the exporter's page in a browser and checks what it
// shows of both ensembles of mainConfig: every server up but paused
// (an index, -1 for none), which is down, with its error, and the
// ensemble line that follows.
func checkPage(t *testing.T, b *zktest.Browser, ts *testServer, paused int) {
	t.Helper()
	p, err := b.Open(context.Background(), ts.srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Elements("script")); n != 0 {
		t.Errorf("the page has %d script elements", n)
	}
	tolerated := "failures tolerated: 1"
	if paused >= 0 {
		tolerated = "failures tolerated: 0"
	}
	for name, source := range map[string]string{"main": "AdminServer", "words": "four-letter words"} {
		summary := p.TextOf("summary-" + name)
		for _, want := range []string{"leaders: 1", "quorum size: 2", tolerated, "versions: 3.8.0"} {
			if !strings.Contains(summary, want) {
				t.Errorf("ensemble %s: the line %q does not say %q", name, summary, want)
			}
		}
		table := "servers-" + name
		for i, s := range ens.Servers {
			up, src, lastErr := p.Cell(table, s.ClientAddr, "up"), p.Cell(table, s.ClientAddr, "source"), p.Cell(table, s.ClientAddr, "last error")
			if i == paused {
				if up != "down" || src != "none" || lastErr == "" {
					t.Errorf("%s: paused server %s shows up=%q source=%q error=%q, want down, none and its error", name, s.ClientAddr, up, src, lastErr)
				}
				continue
			}
			mode, _ := ens.Mode(i)
			if state := p.Cell(table, s.ClientAddr, "state"); up != "up" || src != source || state != mode {
				t.Errorf("%s: server %s shows up=%q source=%q state=%q, want up, %s, %s", name, s.ClientAddr, up, src, state, source, mode)
			}
		}
	}
	// The JSON twin carries the same facts.
	code, body := ts.get(t, "/?format=json", "")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || len(st.Ensembles) != 2 {
		t.Fatalf("JSON twin: HTTP %d, %v, %d ensembles:\n%s", code, err, len(st.Ensembles), body)
	}
	if paused >= 0 && st.Ensembles[0].Servers[paused].Up {
		t.Errorf("JSON twin: paused server up")
	}
}
