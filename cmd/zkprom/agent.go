package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/zkprom/zkprom/internal/agent"
	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/statuspage"
	"github.com/zkprom/zkprom/internal/zk"
)

type agentCommand struct {
	zk  *zk.Config
	cfg agent.Config
	web *web.FlagConfig
}

func newAgentCommand(app *kingpin.Application) *agentCommand {
	cmd := app.Command("agent", "Run beside one Prometheus: apply the cluster's configuration revisions from ZooKeeper safely, roll back on failure, report status.")
	c := &agentCommand{}
	c.zk = addZooKeeperFlags(cmd, "127.0.0.1:2181")
	d := agent.DefaultConfig()
	cmd.Flag("cluster", "Name of the cluster this Prometheus belongs to.").Required().StringVar(&c.cfg.Cluster)
	cmd.Flag("root", "ZooKeeper path under which clusters live.").Default(d.Root).StringVar(&c.cfg.Root)
	cmd.Flag("member", "This agent's name in the cluster (default: the host name); fills ${ZKPROM_MEMBER}.").StringVar(&c.cfg.Member)
	cmd.Flag("config-dir", "Directory the agent owns: Prometheus must run with --config.file=DIR/current/prometheus.yml.").Required().StringVar(&c.cfg.ConfigDir)
	cmd.Flag("prometheus.url", "Prometheus's base URL (reload, runtimeinfo, metrics).").Default(d.Prometheus.URL).StringVar(&c.cfg.Prometheus.URL)
	cmd.Flag("prometheus.pid", "Reload by SIGHUP to this pid instead of POST /-/reload (for a Prometheus without --web.enable-lifecycle).").IntVar(&c.cfg.Prometheus.PID)
	cmd.Flag("prometheus.pid-file", "Like --prometheus.pid, read from this file at every reload.").StringVar(&c.cfg.Prometheus.PIDFile)
	cmd.Flag("promtool", "promtool used to validate each revision before the switch (\"none\": built-in checks only).").Default(d.Promtool).StringVar(&c.cfg.Promtool)
	cmd.Flag("verify.timeout", "How long to wait for Prometheus to confirm a reload.").Default(d.VerifyTimeout.String()).DurationVar(&c.cfg.VerifyTimeout)
	cmd.Flag("retry.interval", "Pause before retrying after ZooKeeper errors, and between polls of a Prometheus that does not answer.").Default(d.RetryInterval.String()).DurationVar(&c.cfg.RetryInterval)
	cmd.Flag("keep-revisions", "Revision directories kept on disk.").Default(fmt.Sprint(d.KeepRevisions)).IntVar(&c.cfg.KeepRevisions)
	cmd.Flag("shard.weight", "This member's share of the targets of sharded jobs, relative to the others (2 takes twice as many).").Default(fmt.Sprint(d.Fleet.Weight)).Float64Var(&c.cfg.Fleet.Weight)
	cmd.Flag("ha.group", "HA group of this agent in the cluster: the group's members scrape the same share, and its leader alone runs the leader overlay (leader.yml).").StringVar(&c.cfg.Fleet.HAGroup)
	cmd.Flag("ha.advertise-url", "URL of this agent's Prometheus as the other members of its HA group reach it: before taking over, a new leader checks that the previous leader's Prometheus no longer runs the overlay (default: --prometheus.url). Stored without user info; the members use the basic-auth credentials of their own --prometheus.url for each other's.").StringVar(&c.cfg.Fleet.AdvertiseURL)
	cmd.Flag("ha.takeover-check-timeout", "How long a new leader waits for the previous leader's Prometheus to answer (also the followers' /-/ready probes of it); nothing serving there (refused, or no answer twice) counts as not running the overlay.").Default(d.Fleet.TakeoverCheckTimeout.String()).DurationVar(&c.cfg.Fleet.TakeoverCheckTimeout)
	cmd.Flag("ha.untrusted-record-wait", "Longest wait of a new HA leader on a leader record anyone could have written (an open cluster) before it takes over; in a closed cluster a record not written by an agent is not waited on at all.").Default(d.Fleet.UntrustedRecordWait.String()).DurationVar(&c.cfg.Fleet.UntrustedRecordWait)
	cmd.Flag("ha.disconnect-grace", "How long a disconnected HA leader keeps leading (default: a third of the session timeout; at most half of the timeout ZooKeeper grants).").DurationVar(&c.cfg.Fleet.DisconnectGrace)
	c.web = kingpinflag.AddFlags(cmd, ":9793")
	return c
}

func (c *agentCommand) run(logger *slog.Logger) int {
	gcForLongLivedHeap()
	ctx, stop := signalContext()
	defer stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	client, err := connectWaiting(ctx, *c.zk, logger, reg)
	if err != nil {
		logger.Error("could not connect to ZooKeeper", "err", err)
		return 1
	}
	defer client.Close()
	c.cfg.Fleet.ZooKeeper = *c.zk // sharded jobs read this ensemble unless shards.yml names one
	a, err := agent.New(client, c.cfg, logger, reg)
	if err != nil {
		logger.Error("could not start the agent", "err", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		st := a.Status()
		st.Error = bundle.CleanText(st.Error)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "OK") })
	mux.Handle("/", a.StatusHandler(statuspage.Page{
		Name:        "zkprom agent",
		Description: "beside one Prometheus: this member, its cluster's revisions, shards and HA groups",
		Links: []statuspage.Link{
			{Address: "/metrics", Text: "Metrics", Description: "the agent's own metrics"},
			{Address: "/status", Text: "/status", Description: "this member's status as JSON (as in its member znode)"},
		},
	}))
	srv := newServer(mux)
	webErr := make(chan error, 1)
	go func() { webErr <- web.ListenAndServe(srv, c.web, logger) }()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	select {
	case err := <-webErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("web server failed", "err", err)
			stop()
			<-runErr
			return 1
		}
	case err := <-runErr:
		srv.Close()
		if err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("agent failed", "err", err)
			return 1
		}
		return 0
	}
	return 0
}

// connectWaiting connects to ZooKeeper and waits, for as long as ctx
// lasts, until a session is established (the client keeps trying the
// servers): the agent starts even while ZooKeeper is down (Prometheus
// keeps its last applied revision). What no wait mends (a bad connect
// string or auth file, refused credentials, a missing chroot) fails at
// once.
func connectWaiting(ctx context.Context, cfg zk.Config, logger *slog.Logger, reg prometheus.Registerer) (*zk.Client, error) {
	logger.Info("connecting to ZooKeeper (waiting until it answers)", "servers", cfg.Servers)
	return zk.Connect(ctx, cfg, logger.With("component", "zookeeper"), reg)
}
