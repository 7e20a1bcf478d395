package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/agent"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

type shardsCommand struct{ *configCommon }

func newShardsCommand(app *kingpin.Application, out io.Writer) *shardsCommand {
	cmd := app.Command("shards", "Show the cluster's sharding (targets owned per agent and sharded job, weights) and HA groups (leader, term, last hand-over).")
	return &shardsCommand{configCommon: addConfigCommon(cmd, out)}
}

func (c *shardsCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, client *zk.Client, s *configstore.Store) int {
		if err := agent.WriteFleetStatus(ctx, client, s, c.out); err != nil {
			fmt.Fprintf(os.Stderr, "zkprom shards: %v\n", err)
			return 1
		}
		return 0
	})
}
