package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/bundle"
)

type configDiffCommand struct {
	*configCommon
	rev1, rev2  string
	showSecrets bool
}

func newConfigDiffCommand(parent *kingpin.CmdClause, out, errOut io.Writer) *configDiffCommand {
	cmd := parent.Command("diff", "Unified diff, file by file, between two revisions (secrets masked).")
	c := &configDiffCommand{configCommon: addConfigCommon(cmd, "config", out, errOut)}
	cmd.Arg("rev1", "Older revision.").Required().StringVar(&c.rev1)
	cmd.Arg("rev2", "Newer revision (default: current).").StringVar(&c.rev2)
	cmd.Flag("show-secrets", "Show secret values instead of masking them.").BoolVar(&c.showSecrets)
	return c
}

func (c *configDiffCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, s openStore) error {
		r1, err := c.resolve(ctx, s, c.rev1)
		if err != nil {
			return err
		}
		r2, err := c.resolve(ctx, s, c.rev2)
		if err != nil {
			return err
		}
		_, b1, err := s.Revision(ctx, r1)
		if err != nil {
			return err
		}
		_, b2, err := s.Revision(ctx, r2)
		if err != nil {
			return err
		}
		fmt.Fprint(c.out, bundle.UnifiedDiff(b1, b2, fmt.Sprintf("r%d", r1), fmt.Sprintf("r%d", r2), c.showSecrets))
		return nil
	})
}
