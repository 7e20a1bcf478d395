package exporter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Every parser of what a server (or whatever answers on its port) sends
// is fuzzed: no panic, and what it accepts turns into series within the
// exporter's limits.

// seedAnswers adds every captured answer in testdata to f.
func seedAnswers(f *testing.F, match string) {
	files, _ := filepath.Glob(filepath.Join("testdata", match))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkSeries writes r's series: a registry must take them (see
// parseExposition), only a version from the answer may be refused (it is
// not UTF-8), and the keys of one answer stay within maxKeys.
func checkSeries(t *testing.T, r *ServerResult) {
	t.Helper()
	p := resultsPage([]*ServerResult{r}, newSeriesCache())
	if p.refused > 0 && r.Version == "" {
		t.Fatalf("%d series refused (the first of %s)", p.refused, p.first)
	}
	n := 0
	for _, mf := range parseExposition(t, pageText(p)).mfs {
		n += len(mf.Metric)
	}
	if r.Stats != nil && n > maxKeys+200 {
		t.Fatalf("%d series from %d numeric keys", n, len(r.Stats.Numbers))
	}
}

func FuzzParseMntr(f *testing.F) {
	seedAnswers(f, "*mntr*.txt")
	f.Add([]byte("zk_a\t1\nzk_b\tx\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseMntr(string(b))
		if err != nil {
			return
		}
		r := &ServerResult{Server: "zk1:2181", Source: SourceFourLetter, Up: true, Stats: &s}
		applyStatus(r, ServerStatus{})
		checkSeries(t, r)
	})
}

func FuzzParseSrvr(f *testing.F) {
	seedAnswers(f, "*srvr*.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseSrvr(string(b))
		if err != nil {
			return
		}
		r := &ServerResult{Server: "zk1:2181", Source: SourceFourLetter, Up: true}
		applyStatus(r, st)
		checkSeries(t, r)
	})
}

func FuzzParseMonitor(f *testing.F) {
	seedAnswers(f, "*admin_monitor.json")
	f.Add([]byte(`{"a":1,"b":"x","c":{"d":[1,"}"]},"e":true,"f":null,"error":null}`))
	f.Add([]byte(`{"error":"This ZooKeeper instance is not currently serving requests"}`))
	f.Add([]byte(` { "k\u0041" : 1e3 , "s":"\ud83d\ude00\"" } `))
	f.Add([]byte(`{"a":1,"a":"x","b":2}`))
	f.Add([]byte(`{"a":1,"a":{"x":1},"b":2,"b":null,"c":"y","c":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseMonitor(b)
		want, wantErr := parseMonitorByMap(b)
		if (err == nil) != (wantErr == nil) || errors.Is(err, ErrNotServing) != errors.Is(wantErr, ErrNotServing) {
			t.Fatalf("ParseMonitor(%q): err %v, decoding by map: %v", b, err, wantErr)
		}
		if err != nil {
			return
		}
		if !maps.Equal(s.Numbers, want.Numbers) || !maps.Equal(s.Strings, want.Strings) {
			t.Fatalf("ParseMonitor(%q) = %v, decoding by map = %v", b, s, want)
		}
		r := &ServerResult{Server: "zk1:2181", Source: SourceAdmin, Up: true, Stats: &s}
		applyStatus(r, ServerStatus{})
		checkSeries(t, r)
	})
}

// parseMonitorByMap is the plain way to read a monitor answer (decode it
// into a map, then each value): ParseMonitor must agree with it.
func parseMonitorByMap(body []byte) (Stats, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return Stats{}, err
	}
	if err := adminError(m); err != nil {
		return Stats{}, err
	}
	s := newStats(len(m))
	for k, raw := range m {
		if k == "command" || k == "error" {
			continue
		}
		raw = bytes.TrimSpace(raw)
		switch raw[0] {
		case '"':
			var str string
			if json.Unmarshal(raw, &str) == nil {
				s.Strings[k] = str
			}
		case 't':
			s.Numbers[k] = 1
		case 'f':
			s.Numbers[k] = 0
		case '{', '[', 'n':
		default:
			if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
				s.Numbers[k] = f
			}
		}
	}
	if len(s.Numbers) == 0 {
		return Stats{}, fmt.Errorf("no numeric keys")
	}
	return s, nil
}

func FuzzParseAdminSrvr(f *testing.F) {
	seedAnswers(f, "*admin_srvr.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseAdminSrvr(b)
		if err != nil {
			return
		}
		r := &ServerResult{Server: "zk1:2181", Source: SourceAdmin, Up: true}
		applyStatus(r, st)
		checkSeries(t, r)
	})
}

func FuzzParseVotingView(f *testing.F) {
	seedAnswers(f, "*voting_view.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseVotingView(b)
	})
}

func FuzzParseConnections(f *testing.F) {
	seedAnswers(f, "*cons.txt")
	seedAnswers(f, "*admin_connections.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, parse := range []func([]byte) ([]Connection, error){
			func(b []byte) ([]Connection, error) { return ParseCons(string(b)) }, ParseAdminConnections,
		} {
			conns, err := parse(b)
			if err != nil {
				continue
			}
			r := &ServerResult{Server: "zk1:2181", Source: SourceAdmin, Up: true, Conns: conns, HasConns: true}
			// A client address that is not UTF-8 is refused, never a panic.
			parseExposition(t, pageText(resultsPage([]*ServerResult{r}, newSeriesCache())))
		}
	})
}

func FuzzParseWchs(f *testing.F) {
	seedAnswers(f, "*wchs.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseWchs(string(b))
	})
}
