package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
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
		sc, err := x.ensembleScrape(ctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The exporter's own metrics are gathered while the servers are
		// asked (reading /proc is a good part of a scrape's time); the
		// errors of this scrape are counted in the next.
		var mfs []*dto.MetricFamily
		gathered := make(chan struct{})
		go func() {
			defer close(gathered)
			var err error
			if mfs, err = own.Gather(); err != nil {
				x.logger.Error("the exporter's own metrics", "err", err)
			}
		}()
		p := sc.run()
		<-gathered
		x.serve(w, r, p, mfs)
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
			sc  *scrape
			err error
		)
		switch {
		case target != "" && ens != "":
			err = fmt.Errorf("give either target=host:port or ensemble=NAME, not both")
		case target != "":
			sc, err = x.targetScrape(ctx, target, module)
		case ens != "":
			sc, err = x.ensembleScrape(ctx, ens)
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
		x.serve(w, r, sc.run(), nil)
	})
}

// serve writes page p, after the families own (the exporter's long-lived
// metrics), in the text format; gzipped at the fastest
// level when the client takes gzip: a scrape's answer is large (about
// 160 KB for three servers), and a higher level costs more CPU than the
// rest of the scrape for a few percent less. Series left out of the page
// (refused, see emitter.series) are counted and logged.
func (x *Exporter) serve(w http.ResponseWriter, r *http.Request, p *page, own []*dto.MetricFamily) {
	if p.refused > 0 {
		x.refusedSeries.Add(float64(p.refused))
		x.logger.Warn("series left out of the scrape: a label value is not valid UTF-8", "count", p.refused, "first_family", strings.ToValidUTF8(p.first, "?"))
	}
	buf := pageBuffers.get()
	defer pageBuffers.put(buf)
	for _, mf := range own {
		expfmt.MetricFamilyToText(buf, mf)
	}
	buf.Write(p.appendText(buf.AvailableBuffer()))
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		w.Write(buf.Bytes())
		return
	}
	gz := gzipWriters.get()
	defer gzipWriters.put(gz)
	gz.Reset(w)
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Add("Vary", "Accept-Encoding")
	gz.Write(buf.Bytes())
	gz.Close()
}

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
