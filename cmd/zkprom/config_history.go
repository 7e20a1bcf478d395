package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

func newConfigHistoryCommand(parent *kingpin.CmdClause, out, errOut io.Writer) *storeCommand {
	cmd := parent.Command("history", "List the cluster's revisions, newest first.")
	return &storeCommand{addConfigCommon(cmd, "config", out, errOut), writeHistory}
}

// writeHistory prints the revisions, newest first (a running canary's on top).
func writeHistory(ctx context.Context, out io.Writer, s openStore) error {
	h, err := s.History(ctx)
	if err != nil {
		return err
	}
	canary, _ := s.Canary(ctx)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tTIME\tAUTHOR\tFILES\tSIZE\tCHECKSUM\tMESSAGE")
	if canary != nil {
		fmt.Fprintf(tw, "%d (canary on %s)\t%s\t%s\t\t\t%s\t\n", canary.Revision, strings.Join(canary.Members, ","), canary.Time.Format(time.RFC3339), canary.Author, short(canary.Checksum))
	}
	for i, m := range h {
		mark := ""
		if i == 0 {
			mark = " (current)"
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%d\t%d\t%s\t%s\n", m.Revision, mark, m.Time.Format(time.RFC3339), m.Author, len(m.Files), m.Size, short(m.Checksum), m.ShownMessage())
	}
	tw.Flush()
	return nil
}

func short(sum string) string {
	if len(sum) > 19 {
		return sum[:19]
	}
	return sum
}
