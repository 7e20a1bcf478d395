package exporter

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/zkprom/zkprom/internal/zk"
)

// sumCounter sums the series of c whose labels include labels ("k=v").
func sumCounter(c prometheus.Collector, labels ...string) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
next:
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			continue
		}
		have := map[string]string{}
		for _, lp := range pb.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				continue next
			}
		}
		sum += pb.GetCounter().GetValue()
	}
	return sum
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// The scrape error counter says which server failed, over which source
// and why; its series follow the configuration across reloads.
func TestScrapeErrorsPerServer(t *testing.T) {
	a, b, c := closedAddr(t), closedAddr(t), closedAddr(t)
	cfg := &Config{Ensembles: []EnsembleConfig{
		{Name: "both", Config: zk.Config{Servers: a + "," + b}, Timeout: 5 * time.Second},
		{Name: "words", Config: zk.Config{Servers: a}, Timeout: 5 * time.Second, Admin: AdminConfig{Disabled: true}},
	}, Probe: ProbePolicy{Allow: []string{"127.0.0.0/8"}}}
	ts := newTestServer(t, cfg, nil)
	ts.scrape(t, "/metrics")
	ts.scrape(t, "/probe?target="+c)

	for _, l := range [][]string{
		{"ensemble=both", "server=" + a, "source=" + SourceAdmin},
		{"ensemble=both", "server=" + a, "source=" + SourceFourLetter},
		{"ensemble=both", "server=" + b, "source=" + SourceAdmin},
		{"ensemble=both", "server=" + b, "source=" + SourceFourLetter},
		{"ensemble=words", "server=" + a, "source=" + SourceFourLetter},
		{"ensemble=", "server=" + c, "source=" + SourceFourLetter}, // probe defaults: no AdminServer
	} {
		if v := errorsCounted(ts, "connection_refused", l...); v == 0 {
			t.Errorf("no connection_refused counted for %v", l)
		}
	}
	if v := errorsCounted(ts, "connection_refused", "ensemble=words", "source="+SourceAdmin); v != 0 {
		t.Errorf("%v AdminServer errors counted for an ensemble without the AdminServer", v)
	}
	// Every series names a server; none is shared by two servers.
	if v, w := sumCounter(ts.x.scrapeErrors), sumCounter(ts.x.scrapeErrors, "server="+a)+
		sumCounter(ts.x.scrapeErrors, "server="+b)+sumCounter(ts.x.scrapeErrors, "server="+c); v != w {
		t.Errorf("errors in total %v, per server %v", v, w)
	}
	s := ts.scrape(t, "/metrics")
	if _, ok := s.value("zookeeper_exporter_scrape_errors_total", "ensemble=both", "server="+b, "reason=connection_refused"); !ok {
		t.Errorf("/metrics has no per-server scrape error series:\n%s", s.text)
	}

	// A reload without b (and the probed c) drops their series.
	cfg2 := &Config{Ensembles: []EnsembleConfig{{Name: "both", Config: zk.Config{Servers: a}, Timeout: 5 * time.Second}}}
	if err := ts.x.ApplyConfig(cfg2); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][]string{{"server=" + b}, {"server=" + c}, {"ensemble=words"}} {
		if v := sumCounter(ts.x.scrapeErrors, l...); v != 0 {
			t.Errorf("%v: %v errors left after a reload without it", l, v)
		}
	}
	if v := errorsCounted(ts, "connection_refused", "ensemble=both", "server="+a); v == 0 {
		t.Error("the errors of a server still configured were dropped by a reload")
	}
}
