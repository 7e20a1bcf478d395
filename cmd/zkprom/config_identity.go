package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/zk"
)

type configIdentityCommand struct {
	out, errOut io.Writer
	authFile    string
}

func newConfigIdentityCommand(parent *kingpin.CmdClause, out, errOut io.Writer) *configIdentityCommand {
	cmd := parent.Command("identity", "Print the ZooKeeper digest identity (digest:user:hash) of each credential in an auth file, for --agents.id and --readers.id; the passwords are not printed.")
	c := &configIdentityCommand{out: out, errOut: errOut}
	cmd.Arg("auth-file", "Auth file: user:password lines.").Required().StringVar(&c.authFile)
	return c
}

func (c *configIdentityCommand) run(*slog.Logger) int {
	ids, err := zk.AuthFileIdentities(c.authFile)
	if err != nil {
		return failed(c.errOut, "config", err)
	}
	for _, id := range ids {
		fmt.Fprintln(c.out, id)
	}
	return 0
}
