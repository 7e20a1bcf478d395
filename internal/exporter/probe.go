package exporter

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// requestContext bounds a scrape by Prometheus's scrape timeout.
func requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	if d, ok := scrapeTimeout(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")); ok {
		return context.WithTimeout(r.Context(), d)
	}
	return context.WithCancel(r.Context())
}

// MetricsHandler serves /metrics: every configured ensemble, scraped now,
// plus what own (the exporter's long-lived registry) gathers.
func (x *Exporter) MetricsHandler(own prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := requestContext(r)
		defer cancel()
		c, err := x.EnsembleCollector(ctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		x.serve(w, r, prometheus.Gatherers{own, registryWith(c)})
	})
}

// ProbeHandler serves /probe in the blackbox exporter's style, with a
// fresh registry per request:
//
//	/probe?target=host:port[&module=ENSEMBLE]  one server
//	/probe?ensemble=NAME                       a configured ensemble, with its view
//
// At most the policy's MaxConcurrent probes run at once; more get 503.
func (x *Exporter) ProbeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x.mu.RLock()
		tokens := x.probing
		x.mu.RUnlock()
		select {
		case tokens <- struct{}{}:
			defer func() { <-tokens }()
		default:
			http.Error(w, fmt.Sprintf("too many probes at once (at most %d): try again later", cap(tokens)), http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := requestContext(r)
		defer cancel()
		q := r.URL.Query()
		target, ens, module := q.Get("target"), q.Get("ensemble"), q.Get("module")
		var (
			c   prometheus.Collector
			err error
		)
		switch {
		case target != "" && ens != "":
			err = fmt.Errorf("give either target=host:port or ensemble=NAME, not both")
		case target != "":
			c, err = x.TargetCollector(ctx, target, module)
		case ens != "":
			c, err = x.EnsembleCollector(ctx, ens)
		default:
			err = fmt.Errorf("missing parameter: give target=host:port or ensemble=NAME")
		}
		if err != nil {
			status := http.StatusBadRequest
			switch {
			case errors.Is(err, ErrUnknownEnsemble):
				status = http.StatusNotFound
			case errors.Is(err, ErrNotAllowed):
				status = http.StatusForbidden
			}
			http.Error(w, err.Error(), status)
			return
		}
		x.serve(w, r, registryWith(c))
	})
}

func registryWith(c prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return reg
}

// serve writes what g gathers, gzipped at the fastest level when the
// client takes gzip: a scrape's answer is large (about 170 KB for three
// servers) and the default level costs several milliseconds of CPU for a
// few percent less.
// Series the registry refuses are left out, counted and logged; the rest
// is served.
func (x *Exporter) serve(w http.ResponseWriter, r *http.Request, g prometheus.Gatherer) {
	counted := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		if err != nil {
			n, first := 1, err
			if me, ok := err.(prometheus.MultiError); ok && len(me) > 0 {
				n, first = len(me), me[0]
			}
			x.refusedSeries.Add(float64(n))
			msg := first.Error()
			if len(msg) > 300 { // it quotes the series, which the server made up
				msg = strings.ToValidUTF8(msg[:300], "") + "…"
			}
			x.logger.Warn("series left out of the scrape", "count", n, "first", msg)
		}
		return mfs, err
	})
	h := promhttp.HandlerFor(counted, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, DisableCompression: true})
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.ServeHTTP(w, r)
		return
	}
	gz := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(gz)
	gz.Reset(w)
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Add("Vary", "Accept-Encoding")
	h.ServeHTTP(gzipResponseWriter{ResponseWriter: w, w: gz}, r)
	gz.Close()
}

var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return gz
}}

type gzipResponseWriter struct {
	http.ResponseWriter
	w io.Writer
}

func (g gzipResponseWriter) Write(b []byte) (int, error) { return g.w.Write(b) }

// acceptsGzip reads an Accept-Encoding header: gzip listed, not with q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// Reload loads a new configuration with load and applies it; on any error
// the running configuration stays and the reload gauge says 0.
func (x *Exporter) Reload(load func() (*Config, error)) error {
	cfg, err := load()
	if err != nil {
		x.reloadSuccess.Set(0)
		return fmt.Errorf("reload exporter config: %w", err)
	}
	return x.ApplyConfig(cfg)
}

// ReloadHandler serves POST /-/reload.
func (x *Exporter) ReloadHandler(load func() (*Config, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST or PUT to reload", http.StatusMethodNotAllowed)
			return
		}
		if err := x.Reload(load); err != nil {
			x.logger.Error("reload failed", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		x.logger.Info("configuration reloaded", "ensembles", x.Ensembles())
	})
}
