package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

// configCommands are `zkprom config push|get|diff|history|rollback|status|identity`,
// one file each (config_*.go).
type configCommands map[string]command

func (cs configCommands) register(a *app) {
	for name, c := range cs {
		a.add(name, c)
	}
}

func newConfigCommands(app *kingpin.Application, out, errOut io.Writer) configCommands {
	cmd := app.Command("config", "Keep the configuration of a cluster of Prometheus servers in ZooKeeper.")
	return configCommands{
		"config push":     newConfigPushCommand(cmd, out, errOut),
		"config get":      newConfigGetCommand(cmd, out, errOut),
		"config diff":     newConfigDiffCommand(cmd, out, errOut),
		"config history":  newConfigHistoryCommand(cmd, out, errOut),
		"config rollback": newConfigRollbackCommand(cmd, out, errOut),
		"config status":   newConfigStatusCommand(cmd, out, errOut),
		"config identity": newConfigIdentityCommand(cmd, out, errOut),
	}
}

// configCommon is what every command on a cluster's store shares (the
// config subcommands and `zkprom shards`).
type configCommon struct {
	out, errOut io.Writer
	name        string // in error messages: "zkprom <name>: ..."
	zk          *zk.Config
	cluster     string
	root        string
	depth       int
	timeout     time.Duration
}

func addConfigCommon(cmd *kingpin.CmdClause, name string, out, errOut io.Writer) *configCommon {
	c := &configCommon{out: out, errOut: errOut, name: name}
	c.zk = addZooKeeperFlags(cmd, "127.0.0.1:2181")
	cmd.Flag("cluster", "Name of the cluster (a group of Prometheus servers sharing one configuration).").Required().StringVar(&c.cluster)
	cmd.Flag("root", "ZooKeeper path under which clusters live.").Default(configstore.DefaultRoot).StringVar(&c.root)
	cmd.Flag("history.depth", "Revisions kept per cluster; older ones are pruned after each push.").Default(fmt.Sprint(configstore.DefaultHistoryDepth)).IntVar(&c.depth)
	cmd.Flag("timeout", "Time allowed for the ZooKeeper work (not counting --wait).").Default("1m").DurationVar(&c.timeout)
	return c
}

// exit turns a command's error into its exit code, printing it.
func (c *configCommon) exit(err error) int {
	if err == nil {
		return 0
	}
	return failed(c.errOut, c.name, err)
}

func (c *configCommon) open(ctx context.Context, logger *slog.Logger, access *accessFlags) (*zk.Client, *configstore.Store, error) {
	opts := configstore.Options{Root: c.root, Cluster: c.cluster, HistoryDepth: c.depth}
	if access != nil {
		if err := access.apply(&opts); err != nil {
			return nil, nil, err
		}
	}
	client, err := zk.Connect(ctx, *c.zk, logger.With("component", "zookeeper"), nil)
	if err != nil {
		return nil, nil, err
	}
	s, err := configstore.New(client, opts, logger)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return client, s, nil
}

// openStore is a cluster's store on an open session.
type openStore struct {
	*configstore.Store
	client *zk.Client
}

// session runs f with the cluster's store, within the command's timeout,
// and returns the exit code.
func (c *configCommon) session(logger *slog.Logger, f func(ctx context.Context, s openStore) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	client, s, err := c.open(ctx, logger, nil)
	if err != nil {
		return c.exit(err)
	}
	defer client.Close()
	return c.exit(f(ctx, openStore{Store: s, client: client}))
}

// storeCommand is a command that does one piece of work on a cluster's
// store and prints it to out (history, status, shards).
type storeCommand struct {
	*configCommon
	work func(ctx context.Context, out io.Writer, s openStore) error
}

func (c *storeCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, s openStore) error { return c.work(ctx, c.out, s) })
}

// untilSignal runs f until it returns or SIGINT or SIGTERM ends its
// context, and returns the exit code.
func (c *configCommon) untilSignal(logger *slog.Logger, f func(ctx context.Context, logger *slog.Logger) error) int {
	ctx, stop := signalContext()
	defer stop()
	return c.exit(f(ctx, logger))
}

// resolve turns a revision argument ("", "current", 12, r12) into a number.
func (c *configCommon) resolve(ctx context.Context, s openStore, rev string) (int, error) {
	if rev == "" || rev == "current" {
		p, _, err := s.Current(ctx)
		return p.Revision, err
	}
	return configstore.ParseRevision(rev)
}

func defaultAuthor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	h, _ := os.Hostname()
	return name + "@" + h
}

// waitRollout shows the rollout of rev agent by agent until every live
// agent applied it (push --wait, rollback --wait).
func waitRollout(ctx context.Context, s *configstore.Store, rev int, timeout time.Duration, out io.Writer) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.WaitRollout(wctx, rev, nil, progressPrinter(out)); err != nil {
		return err
	}
	fmt.Fprintf(out, "revision %d applied by every live agent\n", rev)
	return nil
}

// progressPrinter prints one line per agent whose state changed. Its
// [applied/agents] count is the one after that line's change: when several
// agents changed at once, the count goes up line by line instead of
// showing the final count on each.
func progressPrinter(out io.Writer) func(configstore.Rollout) {
	seen := map[string]string{}
	applied := map[string]bool{} // as of the last line printed for the agent
	return func(r configstore.Rollout) {
		count := func() int {
			n := 0
			for _, m := range r.Members {
				if applied[m.Name] {
					n++
				}
			}
			return n
		}
		for _, m := range r.Members {
			st := m.Status
			line := fmt.Sprintf("agent %s: %s (revision %d", m.Name, st.State, st.Revision)
			if st.Target != 0 && st.Target != st.Revision {
				line += fmt.Sprintf(", target %d", st.Target)
			}
			line += ")"
			if st.State == configstore.StateFailed && st.FailedRevision == r.Target {
				line += fmt.Sprintf(": %s failed: %s", st.FailedStep, bundle.CleanText(st.Error))
			}
			if seen[m.Name] != line {
				seen[m.Name] = line
				applied[m.Name] = st.Revision >= r.Target && st.State == configstore.StateApplied
				fmt.Fprintf(out, "[%d/%d] %s\n", count(), len(r.Members), line)
			}
		}
		if len(r.Members) == 0 {
			fmt.Fprintln(out, "no live agents in the cluster")
		}
	}
}
