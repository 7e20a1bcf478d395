package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/zkprom/zkprom/internal/exporter"
	"github.com/zkprom/zkprom/internal/statuspage"
	"github.com/zkprom/zkprom/internal/zk"
)

type exporterCommand struct {
	out          io.Writer
	errOut       io.Writer
	zk           *zk.Config
	ensemble     exporter.EnsembleConfig
	adminURLs    string
	configFile   string
	configCheck  bool
	web          *web.FlagConfig
	readTimeout  time.Duration
	ensembleName string
	probe        exporter.ProbePolicy
}

func newExporterCommand(app *kingpin.Application, out, errOut io.Writer) *exporterCommand {
	cmd := app.Command("exporter", "Export ZooKeeper metrics: every server (AdminServer or four-letter words, each within a deadline) and each ensemble's quorum, on /metrics and /probe.")
	c := &exporterCommand{out: out, errOut: errOut}
	c.zk = addZooKeeperFlags(cmd, "")
	e := &c.ensemble
	cmd.Flag("zookeeper.ensemble-name", "Name (ensemble label) of the ensemble given by --zookeeper.servers.").
		Default(exporter.DefaultEnsemble).StringVar(&c.ensembleName)
	cmd.Flag("zookeeper.timeout", "Hard deadline for everything asked of one server in one scrape (also cut by Prometheus's scrape timeout).").
		Default(exporter.DefaultTimeout.String()).DurationVar(&e.Timeout)
	cmd.Flag("zookeeper.admin.port", "Port of the AdminServer on each server's host.").
		Default(fmt.Sprint(exporter.DefaultAdminPort)).IntVar(&e.Admin.Port)
	cmd.Flag("zookeeper.admin.scheme", "Scheme of the AdminServer: http or https (https is verified with --zookeeper.tls.ca-file).").
		Default("http").EnumVar(&e.Admin.Scheme, "http", "https")
	cmd.Flag("zookeeper.admin.urls", "AdminServer base URLs, comma-separated, in the order of --zookeeper.servers (overrides the port and scheme).").
		StringVar(&c.adminURLs)
	cmd.Flag("zookeeper.admin.disable", "Never ask the AdminServer: four-letter words only.").
		BoolVar(&e.Admin.Disabled)
	cmd.Flag("collect.cons", "Per-connection metrics from cons (off by default: one series set per client connection).").
		BoolVar(&e.Cons)
	cmd.Flag("collect.cons.limit", "At most this many connections per server (the busiest) in the per-connection metrics.").
		Default(fmt.Sprint(exporter.DefaultConsLimit)).IntVar(&e.ConsLimit)
	cmd.Flag("collect.wchs", "Watch summary from wchs.").BoolVar(&e.Wchs)
	cmd.Flag("collect.znode-children", "Export the number of children of this znode (repeatable), read through a ZooKeeper session.").
		StringsVar(&e.ZnodePaths)
	cmd.Flag("probe.allow", "Host pattern (zk-*.example.com) or CIDR (10.0.0.0/8) that /probe?target= may ask besides the servers of the configured ensembles (repeatable; adds to probe.allow of the config file).").
		StringsVar(&c.probe.Allow)
	cmd.Flag("probe.allow-any-target", "Let /probe?target= ask ANY host:port, as the blackbox exporter does: only where nobody untrusted reaches this port (see docs/exporter.md).").
		BoolVar(&c.probe.AllowAny)
	cmd.Flag("probe.max-concurrent", "Probes served at once; more get HTTP 503 (default: the config file's, else 16).").
		IntVar(&c.probe.MaxConcurrent)
	cmd.Flag("config.file", "YAML file with named ensembles (see docs/exporter.md); reloaded on SIGHUP and POST /-/reload.").
		StringVar(&c.configFile)
	cmd.Flag("config.check", "Check the configuration and exit.").BoolVar(&c.configCheck)
	c.web = kingpinflag.AddFlags(cmd, ":9141")
	return c
}

// flagEnsemble is the ensemble given by the --zookeeper.* flags (nil
// without --zookeeper.servers); validated.
func (c *exporterCommand) flagEnsemble() (*exporter.EnsembleConfig, error) {
	e := c.ensemble
	e.Name = c.ensembleName
	e.Config = *c.zk
	if c.adminURLs != "" {
		if e.Servers == "" {
			return nil, fmt.Errorf("--zookeeper.admin.urls needs --zookeeper.servers")
		}
		servers, err := e.ServerList()
		if err != nil {
			return nil, fmt.Errorf("--zookeeper.servers: %w", err)
		}
		urls := strings.Split(c.adminURLs, ",")
		if len(urls) != len(servers) {
			return nil, fmt.Errorf("--zookeeper.admin.urls has %d URLs for %d servers: give one per server, in the same order", len(urls), len(servers))
		}
		e.Admin.URLs = map[string]string{}
		for i, s := range servers {
			e.Admin.URLs[s] = strings.TrimSpace(urls[i])
		}
	}
	if e.Servers == "" {
		return nil, nil
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("--zookeeper.* flags: %w", err)
	}
	return &e, nil
}

// load reads the config file (if any) and adds the flags' ensemble.
func (c *exporterCommand) load() (*exporter.Config, error) {
	cfg := &exporter.Config{}
	if c.configFile != "" {
		var err error
		if cfg, err = exporter.LoadConfig(c.configFile); err != nil {
			return nil, err
		}
	}
	fe, err := c.flagEnsemble()
	if err != nil {
		return nil, err
	}
	if fe != nil {
		cfg.Ensembles = append(cfg.Ensembles, *fe)
	}
	cfg.Probe.Allow = append(cfg.Probe.Allow, c.probe.Allow...)
	cfg.Probe.AllowAny = cfg.Probe.AllowAny || c.probe.AllowAny
	if c.probe.MaxConcurrent != 0 {
		cfg.Probe.MaxConcurrent = c.probe.MaxConcurrent
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *exporterCommand) run(logger *slog.Logger) int {
	cfg, err := c.load()
	if err != nil {
		return badConfig(c.configCheck, c.errOut, "exporter", logger, err)
	}
	if c.configCheck {
		fmt.Fprintf(c.out, "configuration OK: %d ensemble(s)\n", len(cfg.Ensembles))
		return 0
	}
	if len(cfg.Ensembles) == 0 {
		logger.Warn("no ensemble configured (--zookeeper.servers or --config.file): only /probe?target= will work")
	}
	probeDefaults := c.ensemble
	probeDefaults.TLS = c.zk.TLS
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("zookeeper_exporter"))
	x, err := exporter.New(cfg, probeDefaults, logger.With("component", "exporter"), reg)
	if err != nil {
		logger.Error("could not start the exporter", "err", err)
		return 1
	}
	defer x.Close()

	ctx, stop := signalContext()
	defer stop()
	defer onSIGHUP(ctx, func() {
		if err := x.Reload(c.load); err != nil {
			logger.Error("reload failed; the previous configuration stays", "err", err)
		} else {
			logger.Info("configuration reloaded", "ensembles", x.Ensembles())
		}
	})()

	mux := http.NewServeMux()
	mux.Handle("/metrics", x.MetricsHandler(reg))
	mux.Handle("/probe", x.ProbeHandler())
	mux.Handle("/-/reload", x.ReloadHandler(c.load))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "OK") })
	mux.Handle("/", x.StatusHandler(statuspage.Page{
		Name:        "zkprom exporter",
		Description: "ZooKeeper servers and ensembles, for Prometheus: every configured ensemble, asked now",
		Links: []statuspage.Link{
			{Address: "/metrics", Text: "Metrics", Description: "every configured ensemble and the exporter itself"},
			{Address: "/probe?ensemble=" + firstEnsemble(cfg), Text: "Probe an ensemble", Description: "/probe?ensemble=NAME"},
			{Address: "/probe?target=" + firstServer(cfg), Text: "Probe a server", Description: "/probe?target=host:port (a configured server, or one of --probe.allow)"},
		},
	}))
	return serveWeb(ctx, mux, c.web, logger)
}

func firstServer(cfg *exporter.Config) string {
	if len(cfg.Ensembles) > 0 {
		if servers, err := cfg.Ensembles[0].ServerList(); err == nil && len(servers) > 0 {
			return servers[0]
		}
	}
	return "127.0.0.1:2181"
}

func firstEnsemble(cfg *exporter.Config) string {
	if len(cfg.Ensembles) == 0 {
		return exporter.DefaultEnsemble
	}
	return cfg.Ensembles[0].Name
}
