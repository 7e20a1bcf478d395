package exporter

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func BenchmarkTmpHTTP(b *testing.B) {
	cfg := mainConfig(5 * time.Second)
	for i := range cfg.Ensembles {
		cfg.Ensembles[i].Cons, cfg.Ensembles[i].Wchs, cfg.Ensembles[i].ZnodePaths = false, false, nil
	}
	x, err := New(cfg, EnsembleConfig{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := x.EnsembleCollector(context.Background(), "main")
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	})
	for b.Loop() {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		io.Copy(io.Discard, rec.Body)
	}
}
