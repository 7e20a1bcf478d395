package exporter

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/statuspage"
)

// scraped is one parsed exposition.
type scraped struct {
	text string
	mfs  map[string]*dto.MetricFamily
}

// parseExposition parses an exposition the exporter wrote and checks it
// with client_golang's registry: every series must be one a registry
// takes (valid names and UTF-8, one help and type per family, no series
// twice, none named like a summary's parts).
func parseExposition(t testing.TB, text string) scraped {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, text)
	}
	if err := registryCheck(mfs); err != nil {
		t.Fatalf("the registry refuses the exposition: %v", err)
	}
	return scraped{text: text, mfs: mfs}
}

// registryCheck collects mfs again through a registry (unchecked, as
// the exporter's families follow what servers send).
func registryCheck(mfs map[string]*dto.MetricFamily) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(uncheckedCollector(func(ch chan<- prometheus.Metric) {
		for name, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var names, values []string
				for _, lp := range m.GetLabel() {
					names, values = append(names, lp.GetName()), append(values, lp.GetValue())
				}
				desc := prometheus.NewDesc(name, mf.GetHelp(), names, nil)
				var (
					pm  prometheus.Metric
					err error
				)
				switch mf.GetType() {
				case dto.MetricType_COUNTER:
					pm, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
				case dto.MetricType_GAUGE:
					pm, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
				case dto.MetricType_SUMMARY:
					qs := map[float64]float64{}
					for _, q := range m.GetSummary().GetQuantile() {
						qs[q.GetQuantile()] = q.GetValue()
					}
					pm, err = prometheus.NewConstSummary(desc, m.GetSummary().GetSampleCount(), m.GetSummary().GetSampleSum(), qs, values...)
				default:
					pm, err = prometheus.NewConstMetric(desc, prometheus.UntypedValue, m.GetUntyped().GetValue(), values...)
				}
				if err != nil {
					pm = prometheus.NewInvalidMetric(desc, err)
				}
				ch <- pm
			}
		}
	}))
	_, err := reg.Gather()
	return err
}

type uncheckedCollector func(chan<- prometheus.Metric)

func (uncheckedCollector) Describe(chan<- *prometheus.Desc)      {}
func (c uncheckedCollector) Collect(ch chan<- prometheus.Metric) { c(ch) }

// pageText writes p as the exporter serves it.
func pageText(p *page) string { return string(p.appendText(nil)) }

// resultsPage emits results as the servers of ensemble "fixture", with
// the ensemble's view.
func resultsPage(results []*ServerResult, cache *seriesCache) *page {
	p := newPage(len(results))
	base := newEmitter(p, cache).with("ensemble", "fixture")
	for _, r := range results {
		emitServer(base.with("server", r.Server), r, 1)
	}
	emitView(base, ensembleView(results))
	return p
}

// serverPage is a page that emit fills for server zk1:2181.
func serverPage(cache *seriesCache, emit func(e *emitter)) *page {
	p := newPage(1)
	emit(newEmitter(p, cache).with("server", "zk1:2181"))
	return p
}

// value returns the value of the series of name whose labels include
// labels ("k=v" pairs).
func (s scraped) value(name string, labels ...string) (float64, bool) {
	mf, ok := s.mfs[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		case m.Summary != nil:
			return float64(m.GetSummary().GetSampleCount()), true
		}
	}
	return 0, false
}

// want checks one series' value.
func (s scraped) want(t testing.TB, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := s.value(name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
		return
	}
	if got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

// absent checks that a series does not exist.
func (s scraped) absent(t testing.TB, name string, labels ...string) {
	t.Helper()
	if got, ok := s.value(name, labels...); ok {
		t.Errorf("%s%v = %v, want no series", name, labels, got)
	}
}

func (s scraped) names() []string {
	var out []string
	for n := range s.mfs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// testServer serves an exporter's /metrics, /probe and /-/reload.
type testServer struct {
	x   *Exporter
	reg *prometheus.Registry
	srv *httptest.Server
	// refusalsExpected: the test feeds series that must be refused.
	refusalsExpected bool
}

func newTestServer(t testing.TB, cfg *Config, load func() (*Config, error)) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	x, err := New(cfg, EnsembleConfig{Timeout: 2 * time.Second, Admin: AdminConfig{Disabled: true}}, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", x.MetricsHandler(reg))
	mux.Handle("/probe", x.ProbeHandler())
	mux.Handle("/", x.StatusHandler(statuspage.Page{Name: "zkprom exporter"}))
	if load != nil {
		mux.Handle("/-/reload", x.ReloadHandler(load))
	}
	ts := &testServer{x: x, reg: reg, srv: httptest.NewServer(mux)}
	t.Cleanup(func() { ts.srv.Close(); x.Close() })
	return ts
}

// get fetches a path; header is the scrape timeout in seconds ("" none).
func (ts *testServer) get(t testing.TB, path, timeout string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.srv.URL+path, nil)
	if timeout != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ts *testServer) scrape(t testing.TB, path string) scraped {
	t.Helper()
	before := testutil.ToFloat64(ts.x.refusedSeries)
	code, body := ts.get(t, path, "30")
	if code != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", path, code, body)
	}
	if n := testutil.ToFloat64(ts.x.refusedSeries) - before; n > 0 && !ts.refusalsExpected {
		t.Errorf("GET %s: %v series refused", path, n)
	}
	return parseExposition(t, body)
}
