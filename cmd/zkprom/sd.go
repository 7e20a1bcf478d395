package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/zkprom/zkprom/internal/discovery"
	"github.com/zkprom/zkprom/internal/statuspage"
	"github.com/zkprom/zkprom/internal/zk"
)

type sdCommand struct {
	out         io.Writer
	errOut      io.Writer
	configFile  string
	configCheck bool
	fileSDDir   string
	zk          *zk.Config
	web         *web.FlagConfig
}

func newSDCommand(app *kingpin.Application, out, errOut io.Writer) *sdCommand {
	cmd := app.Command("sd", "Discover Prometheus targets registered in ZooKeeper (serverset, nerve, curator, dubbo, kafka, solr, hbase, druid, zkprom) and serve them as http_sd (/sd/<job>) and file_sd files.")
	c := &sdCommand{out: out, errOut: errOut}
	cmd.Flag("config.file", "Discovery configuration (YAML, see docs/discovery.md); reloaded on SIGHUP and POST /-/reload.").
		Required().StringVar(&c.configFile)
	cmd.Flag("config.check", "Check the configuration and exit.").BoolVar(&c.configCheck)
	cmd.Flag("file-sd.dir", "Also write one file_sd file <job>.json per job into this folder (atomically, only when it changes, at most once a second while changes keep coming).").
		StringVar(&c.fileSDDir)
	// The ZooKeeper flags are the config's zookeeper block when it has none.
	c.zk = addZooKeeperFlags(cmd, "")
	cmd.Flag("zookeeper.read-only", "Also read from a ZooKeeper server cut off from its quorum that serves reads (readonlymode.enabled and localSessionsEnabled on the server): targets stay served, marked stale.").
		BoolVar(&c.zk.ReadOnly)
	c.web = kingpinflag.AddFlags(cmd, ":9142")
	return c
}

func (c *sdCommand) run(logger *slog.Logger) int {
	gcForLongLivedHeap()
	cfg, err := discovery.LoadConfigDefault(c.configFile, *c.zk)
	if err != nil {
		return badConfig(c.configCheck, c.errOut, "sd", logger, err)
	}
	if c.configCheck {
		// Beyond the structure: the files each job's session needs.
		var errs []error
		for _, j := range cfg.Jobs {
			if err := j.ZooKeeper.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("job %q: %w", j.Name, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return checkFailed(c.errOut, "sd", err)
		}
		fmt.Fprintf(c.out, "configuration OK: %d job(s)\n", len(cfg.Jobs))
		return 0
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("zkprom_sd"))
	ctx, stop := signalContext()
	defer stop()
	m, err := discovery.NewManager(ctx, discovery.Options{FileSDDir: c.fileSDDir, DefaultZooKeeper: *c.zk, Logger: logger, Registerer: reg})
	if err != nil {
		logger.Error("could not start discovery", "err", err)
		return 1
	}
	defer m.Close()
	if err := m.Reload(c.configFile); err != nil {
		logger.Error("invalid configuration", "err", err)
		return 1
	}

	var reloadMu sync.Mutex
	reload := func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		return m.Reload(c.configFile)
	}
	defer onSIGHUP(ctx, func() { reload() })()

	mux := http.NewServeMux()
	mux.Handle("/sd/", m)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST or PUT", http.StatusMethodNotAllowed)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "OK") })
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, r *http.Request) {
		if ok, waiting := m.Ready(); !ok {
			http.Error(w, "waiting for the first sync of: "+strings.Join(waiting, ", "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	mux.Handle("/", m.StatusHandler(statuspage.Page{
		Name:        "zkprom sd",
		Description: "Prometheus targets registered in ZooKeeper: what each job found, emitted and refused",
		Links:       []statuspage.Link{{Address: "/metrics", Text: "Metrics", Description: "the discovery's own metrics"}},
	}))
	return serveWeb(ctx, mux, c.web, logger)
}
