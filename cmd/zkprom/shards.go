package main

import (
	"context"
	"io"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/agent"
)

func newShardsCommand(app *kingpin.Application, out, errOut io.Writer) *storeCommand {
	cmd := app.Command("shards", "Show the cluster's sharding (targets owned per agent and sharded job, weights) and HA groups (leader, term, last hand-over).")
	return &storeCommand{addConfigCommon(cmd, "shards", out, errOut), func(ctx context.Context, out io.Writer, s openStore) error {
		return agent.WriteFleetStatus(ctx, s.client, s.Store, out)
	}}
}
