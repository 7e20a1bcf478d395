package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/agent"
)

type shardsCommand struct{ *configCommon }

func newShardsCommand(app *kingpin.Application, out, errOut io.Writer) *shardsCommand {
	cmd := app.Command("shards", "Show the cluster's sharding (targets owned per agent and sharded job, weights) and HA groups (leader, term, last hand-over).")
	return &shardsCommand{configCommon: addConfigCommon(cmd, "shards", out, errOut)}
}

func (c *shardsCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, s openStore) error {
		return agent.WriteFleetStatus(ctx, s.client, s.Store, c.out)
	})
}
