package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/agent"
)

type shardsCommand struct{ *configCommon }

func newShardsCommand(app *kingpin.Application, out io.Writer) *shardsCommand {
	cmd := app.Command("shards", "Show the cluster's sharding (targets owned per agent and sharded job, weights) and HA groups (leader, term, last hand-over).")
	return &shardsCommand{configCommon: addConfigCommon(cmd, out)}
}

func (c *shardsCommand) run(logger *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	client, s, err := c.open(ctx, logger)
	if err != nil {
		return fail("%v", err)
	}
	defer client.Close()
	if err := agent.WriteFleetStatus(ctx, client, s, c.out); err != nil {
		return fail("%v", err)
	}
	return 0
}
