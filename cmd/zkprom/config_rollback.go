package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/configstore"
)

type configRollbackCommand struct {
	*configCommon
	to, message, author string
	wait                bool
	waitTimeout         time.Duration
}

func newConfigRollbackCommand(parent *kingpin.CmdClause, out, errOut io.Writer) *configRollbackCommand {
	cmd := parent.Command("rollback", "Make an earlier revision current again (as a new revision that copies it).")
	c := &configRollbackCommand{configCommon: addConfigCommon(cmd, "config", out, errOut)}
	cmd.Flag("to", "Revision to return to (default: the one before the current).").StringVar(&c.to)
	cmd.Flag("message", "Why (default: \"rollback to revision N\").").Short('m').StringVar(&c.message)
	cmd.Flag("author", "Author recorded (default: user@host).").StringVar(&c.author)
	cmd.Flag("wait", "Wait until every live agent applied it.").BoolVar(&c.wait)
	cmd.Flag("wait.timeout", "How long --wait waits.").Default("5m").DurationVar(&c.waitTimeout)
	return c
}

func (c *configRollbackCommand) run(logger *slog.Logger) int {
	return c.untilSignal(logger, c.rollback)
}

func (c *configRollbackCommand) rollback(ctx context.Context, logger *slog.Logger) error {
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	client, s, err := c.open(tctx, logger, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	to := 0
	if c.to != "" {
		if to, err = configstore.ParseRevision(c.to); err != nil {
			return err
		}
	}
	if c.author == "" {
		c.author = defaultAuthor()
	}
	res, err := s.Rollback(tctx, to, configstore.PushMeta{Author: c.author, Message: c.message})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "rolled back: revision %d is a copy of revision %d (was %d)\n", res.Meta.Revision, res.Meta.RollbackOf, res.Previous)
	if !c.wait {
		return nil
	}
	return waitRollout(ctx, s, res.Meta.Revision, c.waitTimeout, c.out)
}
