package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/bundle"
)

type configGetCommand struct {
	*configCommon
	rev         string
	outDir      string
	showSecrets bool
}

func newConfigGetCommand(parent *kingpin.CmdClause, out, errOut io.Writer) *configGetCommand {
	cmd := parent.Command("get", "Print a revision (secrets masked) or write its files to a directory.")
	c := &configGetCommand{configCommon: addConfigCommon(cmd, "config", out, errOut)}
	cmd.Arg("revision", "Revision (default: current).").StringVar(&c.rev)
	cmd.Flag("out", "Write the bundle's files into this directory (as pushed, secrets included).").StringVar(&c.outDir)
	cmd.Flag("show-secrets", "Print secret values instead of masking them.").BoolVar(&c.showSecrets)
	return c
}

func (c *configGetCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, s openStore) error {
		rev, err := c.resolve(ctx, s, c.rev)
		if err != nil {
			return err
		}
		m, b, err := s.Revision(ctx, rev)
		if err != nil {
			return err
		}
		if c.outDir != "" {
			if entries, err := os.ReadDir(c.outDir); err == nil && len(entries) > 0 {
				return fmt.Errorf("write revision %d to %s: the directory is not empty", rev, c.outDir)
			}
			if err := b.WriteDir(c.outDir); err != nil {
				return fmt.Errorf("write revision %d to %s: %w", rev, c.outDir, err)
			}
			fmt.Fprintf(c.out, "revision %d written to %s (%d files)\n", rev, c.outDir, len(b.Files))
			return nil
		}
		fmt.Fprintf(c.out, "# revision %d by %s at %s: %s\n# %s\n", m.Revision, m.Author, m.Time.Format(time.RFC3339), bundle.MaskSecrets(m.Message), m.Checksum)
		for _, n := range b.Names() {
			text := string(b.Files[n])
			if !c.showSecrets {
				text = bundle.MaskSecrets(text)
			}
			fmt.Fprintf(c.out, "# ---- %s ----\n%s", n, text)
			if !strings.HasSuffix(text, "\n") {
				fmt.Fprintln(c.out)
			}
		}
		return nil
	})
}
