package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// newServer is the HTTP server of every listener. Its timeouts keep
// slow or idle clients from holding connections: a request has 10 s for
// its headers and 30 s in all, an answer 2 min (the largest http_sd body,
// a 30 s pprof profile), an idle keep-alive connection 2 min.
func newServer(handler http.Handler) *http.Server {
	return &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
}

// serveWeb serves handler on the addresses and with the TLS and auth of
// the exporter-toolkit flags until ctx ends; it returns the exit code.
func serveWeb(ctx context.Context, handler http.Handler, flags *web.FlagConfig, logger *slog.Logger) int {
	srv := newServer(handler)
	webErr := make(chan error, 1)
	go func() { webErr <- web.ListenAndServe(srv, flags, logger) }()
	select {
	case err := <-webErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("web server failed", "err", err)
			return 1
		}
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}
	return 0
}

// onSIGHUP calls reload on every SIGHUP until ctx ends; call the function
// it returns to stop listening.
func onSIGHUP(ctx context.Context, reload func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload()
			}
		}
	}()
	return func() { signal.Stop(hup) }
}
