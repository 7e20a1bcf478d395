package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/zk"
	"github.com/zkprom/zkprom/register"
)

type registerCommand struct {
	zk     *zk.Config
	cfg    register.Config
	labels []string
}

func newRegisterCommand(app *kingpin.Application) *registerCommand {
	cmd := app.Command("register", "Keep one instance registered in ZooKeeper (ephemeral node) while its health check passes; remove it on SIGTERM.")
	c := &registerCommand{}
	c.zk = addZooKeeperFlags(cmd, "127.0.0.1:2181")
	d := register.DefaultConfig()
	r := &c.cfg
	cmd.Flag("format", "Registration format: zkprom (a file_sd-style target group), serverset (with a metrics endpoint) or curator (a Curator / Spring Cloud service instance).").
		Default(d.Format).EnumVar(&r.Format, register.FormatZkprom, register.FormatServerset, register.FormatCurator)
	cmd.Flag("path", "Folder of the node: <path>/<id> (zkprom), <path>/member_<seq> (serverset), <path>/<service>/<id> (curator, default /services).").
		StringVar(&r.Path)
	cmd.Flag("service", "Service name (curator format).").StringVar(&r.Service)
	cmd.Flag("id", "Instance id (default: the address for zkprom, a random UUID for curator).").StringVar(&r.ID)
	cmd.Flag("address", "host:port of the instance.").Required().StringVar(&r.Address)
	cmd.Flag("metrics-address", "host:port of its metrics (default: --address).").StringVar(&r.MetricsAddress)
	cmd.Flag("label", "A label name=value (zkprom: target label; curator: a payload field, or metadata with --curator.payload=spring); repeatable.").StringsVar(&c.labels)
	cmd.Flag("curator.payload", "Payload of a curator registration: map (the labels as a plain JSON object: what every Curator consumer reads) or spring (a Spring Cloud Zookeeper ZookeeperInstance with the labels as metadata: only for Spring consumers).").
		Default(d.CuratorPayload).EnumVar(&r.CuratorPayload, register.CuratorPayloadMap, register.CuratorPayloadSpring)
	cmd.Flag("shard", "Serverset shard number.").IntVar(&r.Shard)
	cmd.Flag("check.http", "Health check: URL that answers 2xx/3xx while the instance is healthy.").StringVar(&r.Check.HTTP)
	cmd.Flag("check.tcp", "Health check: host:port that accepts connections while the instance is healthy.").StringVar(&r.Check.TCP)
	cmd.Flag("check.interval", "Time between health checks.").Default(d.Check.Interval.String()).DurationVar(&r.Check.Interval)
	cmd.Flag("check.timeout", "Deadline of one health check.").Default(d.Check.Timeout.String()).DurationVar(&r.Check.Timeout)
	return c
}

func (c *registerCommand) run(logger *slog.Logger) int {
	cfg := c.cfg
	cfg.ZooKeeper = *c.zk
	if len(c.labels) > 0 {
		cfg.Labels = map[string]string{}
		for _, l := range c.labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				logger.Error(fmt.Sprintf("--label %q: want name=value", l))
				return 2
			}
			cfg.Labels[k] = v
		}
	}
	ctx, stop := signalContext()
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	r, err := register.Start(startCtx, cfg, logger, nil)
	cancel()
	if err != nil {
		logger.Error("could not register", "err", err)
		return 1
	}
	logger.Info("registration running", "node", r.Path(), "healthy", r.Healthy())
	<-ctx.Done()
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(closeCtx); err != nil {
		logger.Error("could not remove the registration (it goes when the session ends)", "err", err)
		return 1
	}
	logger.Info("registration removed")
	return 0
}
