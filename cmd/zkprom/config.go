package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

// configCommands are `zkprom config push|get|diff|history|rollback|status`.
type configCommands map[string]command

func (cs configCommands) register(a *app) {
	for name, c := range cs {
		a.add(name, c)
	}
}

// configCommon is what every config subcommand shares.
type configCommon struct {
	out     io.Writer
	zk      *zk.Config
	cluster string
	root    string
	depth   int
	timeout time.Duration
}

func addConfigCommon(cmd *kingpin.CmdClause, out io.Writer) *configCommon {
	c := &configCommon{out: out}
	c.zk = addZooKeeperFlags(cmd, "127.0.0.1:2181")
	cmd.Flag("cluster", "Name of the cluster (a group of Prometheus servers sharing one configuration).").Required().StringVar(&c.cluster)
	cmd.Flag("root", "ZooKeeper path under which clusters live.").Default(configstore.DefaultRoot).StringVar(&c.root)
	cmd.Flag("history.depth", "Revisions kept per cluster; older ones are pruned after each push.").Default(fmt.Sprint(configstore.DefaultHistoryDepth)).IntVar(&c.depth)
	cmd.Flag("timeout", "Time allowed for the ZooKeeper work (not counting --wait).").Default("1m").DurationVar(&c.timeout)
	return c
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

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "zkprom config: "+format+"\n", args...)
	return 1
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newConfigCommands(app *kingpin.Application, out io.Writer) configCommands {
	cmd := app.Command("config", "Keep the configuration of a cluster of Prometheus servers in ZooKeeper.")
	return configCommands{
		"config push":     newConfigPushCommand(cmd, out),
		"config get":      newConfigGetCommand(cmd, out),
		"config diff":     newConfigDiffCommand(cmd, out),
		"config history":  newConfigHistoryCommand(cmd, out),
		"config rollback": newConfigRollbackCommand(cmd, out),
		"config status":   newConfigStatusCommand(cmd, out),
		"config identity": newConfigIdentityCommand(cmd, out),
	}
}

// ---- push ----

type configPushCommand struct {
	*configCommon
	dir, message, author    string
	wait                    bool
	waitTimeout             time.Duration
	canary                  int
	promtool                string
	valConfigDir, valMember string
	dryRun, force           bool
	access                  *accessFlags
}

// accessFlags say who may do what in a cluster (docs/security.md).
type accessFlags struct {
	agentsAuthFile string
	agents         []string
	readers        []string
	open           bool
	repair         bool
}

func addAccessFlags(cmd *kingpin.CmdClause) *accessFlags {
	f := &accessFlags{}
	cmd.Flag("agents.auth-file", "Auth file of the cluster's agents (user:password lines): their digest identities get the agents' rights. Needed at the first push unless --agents.id is given; later pushes keep the cluster's agents.").StringVar(&f.agentsAuthFile)
	cmd.Flag("agents.id", "Identity of the cluster's agents as ZooKeeper names it (digest:user:hash, x509:<subject>; repeatable). zkprom config identity prints the digest identity of an auth file.").StringsVar(&f.agents)
	cmd.Flag("readers.id", "Identity that may read the cluster's status, never a bundle (repeatable; \"none\": only writers and agents). Default at the first push: world:anyone; later pushes keep the cluster's.").StringsVar(&f.readers)
	cmd.Flag("unsafe.open-cluster", "Make the cluster writable by ANYONE who reaches ZooKeeper, without credentials (a lab only: anyone can then hand every agent a configuration).").BoolVar(&f.open)
	cmd.Flag("repair-acls", "Set zkprom's model ACL on cluster nodes that grant more (after checking what they hold: zkprom config status lists them).").BoolVar(&f.repair)
	return f
}

// unchanged reports whether the flags change nothing in the settings.
func (f *accessFlags) unchanged() bool {
	return f.agentsAuthFile == "" && f.agents == nil && f.readers == nil && !f.open && !f.repair
}

// apply puts the flags into the store options.
func (f *accessFlags) apply(o *configstore.Options) error {
	o.RepairACLs = f.repair
	if f.agentsAuthFile == "" && f.agents == nil && f.readers == nil && !f.open {
		return nil // keep the cluster's settings
	}
	a := &configstore.Access{Open: f.open}
	if f.agentsAuthFile != "" {
		ids, err := zk.AuthFileIdentities(f.agentsAuthFile)
		if err != nil {
			return fmt.Errorf("--agents.auth-file: %w", err)
		}
		for _, id := range ids {
			a.Agents = append(a.Agents, id.String())
		}
	}
	for _, id := range f.agents {
		parsed, err := zk.ParseIdentity(id)
		if err != nil {
			return fmt.Errorf("--agents.id: %w", err)
		}
		a.Agents = append(a.Agents, parsed.String())
	}
	if f.readers != nil {
		a.Readers = []string{}
		for _, id := range f.readers {
			if id == "none" {
				continue
			}
			parsed, err := zk.ParseIdentity(id)
			if err != nil {
				return fmt.Errorf("--readers.id: %w", err)
			}
			a.Readers = append(a.Readers, parsed.String())
		}
	}
	if f.open && a.Agents != nil {
		return errors.New("--unsafe.open-cluster and agent identities exclude each other: an open cluster admits anyone")
	}
	o.Access = a
	return nil
}

func newConfigPushCommand(parent *kingpin.CmdClause, out io.Writer) *configPushCommand {
	cmd := parent.Command("push", "Validate a bundle directory (prometheus.yml and the files it uses) and make it the cluster's new revision.")
	c := &configPushCommand{configCommon: addConfigCommon(cmd, out)}
	cmd.Arg("dir", "Bundle directory: prometheus.yml at its top, rule files and other files below it.").Required().ExistingDirVar(&c.dir)
	cmd.Flag("message", "What this revision changes.").Short('m').Required().StringVar(&c.message)
	cmd.Flag("author", "Author recorded with the revision (default: user@host).").StringVar(&c.author)
	cmd.Flag("wait", "Show the rollout agent by agent until every live agent applied the revision or one failed (non-zero exit naming it).").BoolVar(&c.wait)
	cmd.Flag("wait.timeout", "How long --wait and --canary wait.").Default("5m").DurationVar(&c.waitTimeout)
	cmd.Flag("canary", "Send the revision to this many agents first; only when they applied it and their Prometheus reloaded it successfully does it go to all.").IntVar(&c.canary)
	cmd.Flag("promtool", "promtool used for validation (\"none\": built-in checks only).").Default("promtool").StringVar(&c.promtool)
	cmd.Flag("validate.config-dir", "Value of ${ZKPROM_CONFIG_DIR} during validation (an agent's --config-dir, when the bundle refers to files there).").StringVar(&c.valConfigDir)
	cmd.Flag("validate.member", "Value of ${ZKPROM_MEMBER} during validation.").Default("validation").StringVar(&c.valMember)
	cmd.Flag("dry-run", "Validate only.").BoolVar(&c.dryRun)
	cmd.Flag("force", "Push even when the bundle is identical to the current revision.").BoolVar(&c.force)
	c.access = addAccessFlags(cmd)
	return c
}

func defaultAuthor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	h, _ := os.Hostname()
	return name + "@" + h
}

func (c *configPushCommand) run(logger *slog.Logger) int {
	ctx, stop := signalContext()
	defer stop()
	b, err := bundle.LoadDir(c.dir)
	if err != nil {
		return fail("%v", err)
	}
	v, err := bundle.Validate(ctx, b, bundle.ValidateOptions{Promtool: c.promtool, Vars: bundle.Vars{
		Member: c.valMember, Cluster: c.cluster, ConfigDir: c.valConfigDir,
	}})
	if err != nil {
		var ve *bundle.ValidationError
		if errors.As(err, &ve) {
			return fail("refused: the bundle in %s is invalid; nothing was pushed.\n%s", c.dir, ve.Output)
		}
		return fail("validate %s: %v", c.dir, err)
	}
	if err := bundle.ValidateFleet(ctx, b, bundle.ValidateOptions{Promtool: c.promtool, Vars: bundle.Vars{
		Member: c.valMember, Cluster: c.cluster, ConfigDir: c.valConfigDir,
	}}, *c.zk); err != nil {
		return fail("refused: the bundle in %s is invalid; nothing was pushed.\n%v", c.dir, err)
	}
	if v.Note != "" {
		fmt.Fprintf(c.out, "note: %s\n", v.Note)
	}
	fmt.Fprintf(c.out, "valid (%s): %d files, %d bytes, %s\n", v.Method, len(b.Files), b.Size(), b.Checksum())
	if c.dryRun {
		return 0
	}
	if c.author == "" {
		c.author = defaultAuthor()
	}
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	client, s, err := c.open(tctx, logger, c.access)
	if err != nil {
		return fail("%v", err)
	}
	defer client.Close()
	if cur, _, err := s.Current(tctx); err == nil && cur.Checksum == b.Checksum() && !c.force {
		if !c.access.unchanged() {
			if err := s.Ensure(tctx); err != nil {
				return fail("%v", err)
			}
			fmt.Fprintln(c.out, "access settings applied")
		}
		fmt.Fprintf(c.out, "the bundle is identical to the current revision %d: nothing pushed (--force pushes it anyway)\n", cur.Revision)
		if c.wait {
			return waitRollout(ctx, s, cur.Revision, c.waitTimeout, c.out)
		}
		return 0
	}
	pm := configstore.PushMeta{Author: c.author, Message: c.message}
	var res *configstore.PushResult
	if c.canary > 0 {
		fmt.Fprintf(c.out, "canary: sending to %d agent(s) first\n", c.canary)
		var can *configstore.CanaryRollout
		res, can, err = s.PushCanary(ctx, b, pm, c.canary, c.waitTimeout, progressPrinter(c.out))
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(c.out, "canary passed on %s: revision %d is now current (was %d)\n", strings.Join(can.Pointer.Members, ", "), res.Meta.Revision, res.Previous)
	} else {
		res, err = s.Push(tctx, b, pm)
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(c.out, "pushed revision %d (was %d) to cluster %s\n", res.Meta.Revision, res.Previous, c.cluster)
		if c.access.open {
			fmt.Fprintf(c.out, "WARNING: cluster %s is open: anyone who reaches ZooKeeper can change its configuration\n", c.cluster)
		}
	}
	if !c.wait {
		return 0
	}
	return waitRollout(ctx, s, res.Meta.Revision, c.waitTimeout, c.out)
}

func waitRollout(ctx context.Context, s *configstore.Store, rev int, timeout time.Duration, out io.Writer) int {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.WaitRollout(wctx, rev, nil, progressPrinter(out)); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(out, "revision %d applied by every live agent\n", rev)
	return 0
}

// progressPrinter prints one line per agent whose state changed. Its
// [applied/agents] count is the one after that line's change: when several
// agents changed within one poll, the count goes up line by line instead
// of showing the poll's final count on each.
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

// ---- identity ----

type configIdentityCommand struct {
	out      io.Writer
	authFile string
}

func newConfigIdentityCommand(parent *kingpin.CmdClause, out io.Writer) *configIdentityCommand {
	cmd := parent.Command("identity", "Print the ZooKeeper digest identity (digest:user:hash) of each credential in an auth file, for --agents.id and --readers.id; the passwords are not printed.")
	c := &configIdentityCommand{out: out}
	cmd.Arg("auth-file", "Auth file: user:password lines.").Required().StringVar(&c.authFile)
	return c
}

func (c *configIdentityCommand) run(*slog.Logger) int {
	ids, err := zk.AuthFileIdentities(c.authFile)
	if err != nil {
		return fail("%v", err)
	}
	for _, id := range ids {
		fmt.Fprintln(c.out, id)
	}
	return 0
}

// ---- get ----

type configGetCommand struct {
	*configCommon
	rev         string
	outDir      string
	showSecrets bool
}

func newConfigGetCommand(parent *kingpin.CmdClause, out io.Writer) *configGetCommand {
	cmd := parent.Command("get", "Print a revision (secrets masked) or write its files to a directory.")
	c := &configGetCommand{configCommon: addConfigCommon(cmd, out)}
	cmd.Arg("revision", "Revision (default: current).").StringVar(&c.rev)
	cmd.Flag("out", "Write the bundle's files into this directory (as pushed, secrets included).").StringVar(&c.outDir)
	cmd.Flag("show-secrets", "Print secret values instead of masking them.").BoolVar(&c.showSecrets)
	return c
}

func (c *configCommon) resolve(ctx context.Context, s *configstore.Store, rev string) (int, error) {
	if rev == "" || rev == "current" {
		p, _, err := s.Current(ctx)
		return p.Revision, err
	}
	return configstore.ParseRevision(rev)
}

func (c *configGetCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, client *zk.Client, s *configstore.Store) int {
		rev, err := c.resolve(ctx, s, c.rev)
		if err != nil {
			return fail("%v", err)
		}
		m, b, err := s.Revision(ctx, rev)
		if err != nil {
			return fail("%v", err)
		}
		if c.outDir != "" {
			if entries, err := os.ReadDir(c.outDir); err == nil && len(entries) > 0 {
				return fail("write revision %d to %s: the directory is not empty", rev, c.outDir)
			}
			if err := b.WriteDir(c.outDir); err != nil {
				return fail("write revision %d to %s: %v", rev, c.outDir, err)
			}
			fmt.Fprintf(c.out, "revision %d written to %s (%d files)\n", rev, c.outDir, len(b.Files))
			return 0
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
		return 0
	})
}

// ---- diff ----

type configDiffCommand struct {
	*configCommon
	rev1, rev2  string
	showSecrets bool
}

func newConfigDiffCommand(parent *kingpin.CmdClause, out io.Writer) *configDiffCommand {
	cmd := parent.Command("diff", "Unified diff, file by file, between two revisions (secrets masked).")
	c := &configDiffCommand{configCommon: addConfigCommon(cmd, out)}
	cmd.Arg("rev1", "Older revision.").Required().StringVar(&c.rev1)
	cmd.Arg("rev2", "Newer revision (default: current).").StringVar(&c.rev2)
	cmd.Flag("show-secrets", "Show secret values instead of masking them.").BoolVar(&c.showSecrets)
	return c
}

func (c *configDiffCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, client *zk.Client, s *configstore.Store) int {
		r1, err := c.resolve(ctx, s, c.rev1)
		if err != nil {
			return fail("%v", err)
		}
		r2, err := c.resolve(ctx, s, c.rev2)
		if err != nil {
			return fail("%v", err)
		}
		_, b1, err := s.Revision(ctx, r1)
		if err != nil {
			return fail("%v", err)
		}
		_, b2, err := s.Revision(ctx, r2)
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprint(c.out, bundle.UnifiedDiff(b1, b2, fmt.Sprintf("r%d", r1), fmt.Sprintf("r%d", r2), c.showSecrets))
		return 0
	})
}

// ---- history ----

type configHistoryCommand struct{ *configCommon }

func newConfigHistoryCommand(parent *kingpin.CmdClause, out io.Writer) *configHistoryCommand {
	cmd := parent.Command("history", "List the cluster's revisions, newest first.")
	return &configHistoryCommand{configCommon: addConfigCommon(cmd, out)}
}

func (c *configHistoryCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, client *zk.Client, s *configstore.Store) int {
		h, err := s.History(ctx)
		if err != nil {
			return fail("%v", err)
		}
		canary, _ := s.Canary(ctx)
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REVISION\tTIME\tAUTHOR\tFILES\tSIZE\tCHECKSUM\tMESSAGE")
		if canary != nil {
			fmt.Fprintf(tw, "%d (canary on %s)\t%s\t%s\t\t\t%s\t\n", canary.Revision, strings.Join(canary.Members, ","), canary.Time.Format(time.RFC3339), canary.Author, short(canary.Checksum))
		}
		for i, m := range h {
			mark := ""
			if i == 0 {
				mark = " (current)"
			}
			msg := bundle.MaskSecrets(m.Message)
			if m.RollbackOf != 0 && !strings.Contains(msg, "rollback") {
				msg = fmt.Sprintf("rollback to %d: %s", m.RollbackOf, msg)
			}
			fmt.Fprintf(tw, "%d%s\t%s\t%s\t%d\t%d\t%s\t%s\n", m.Revision, mark, m.Time.Format(time.RFC3339), m.Author, len(m.Files), m.Size, short(m.Checksum), msg)
		}
		tw.Flush()
		return 0
	})
}

func short(sum string) string {
	if len(sum) > 19 {
		return sum[:19]
	}
	return sum
}

// ---- rollback ----

type configRollbackCommand struct {
	*configCommon
	to, message, author string
	wait                bool
	waitTimeout         time.Duration
}

func newConfigRollbackCommand(parent *kingpin.CmdClause, out io.Writer) *configRollbackCommand {
	cmd := parent.Command("rollback", "Make an earlier revision current again (as a new revision that copies it).")
	c := &configRollbackCommand{configCommon: addConfigCommon(cmd, out)}
	cmd.Flag("to", "Revision to return to (default: the one before the current).").StringVar(&c.to)
	cmd.Flag("message", "Why (default: \"rollback to revision N\").").Short('m').StringVar(&c.message)
	cmd.Flag("author", "Author recorded (default: user@host).").StringVar(&c.author)
	cmd.Flag("wait", "Wait until every live agent applied it.").BoolVar(&c.wait)
	cmd.Flag("wait.timeout", "How long --wait waits.").Default("5m").DurationVar(&c.waitTimeout)
	return c
}

func (c *configRollbackCommand) run(logger *slog.Logger) int {
	ctx, stop := signalContext()
	defer stop()
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	client, s, err := c.open(tctx, logger, nil)
	if err != nil {
		return fail("%v", err)
	}
	defer client.Close()
	to := 0
	if c.to != "" {
		if to, err = configstore.ParseRevision(c.to); err != nil {
			return fail("%v", err)
		}
	}
	if c.author == "" {
		c.author = defaultAuthor()
	}
	res, err := s.Rollback(tctx, to, configstore.PushMeta{Author: c.author, Message: c.message})
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(c.out, "rolled back: revision %d is a copy of revision %d (was %d)\n", res.Meta.Revision, res.Meta.RollbackOf, res.Previous)
	if !c.wait {
		return 0
	}
	return waitRollout(ctx, s, res.Meta.Revision, c.waitTimeout, c.out)
}

// ---- status ----

type configStatusCommand struct{ *configCommon }

func newConfigStatusCommand(parent *kingpin.CmdClause, out io.Writer) *configStatusCommand {
	cmd := parent.Command("status", "Show every agent of the cluster: revision, state, error, age. Exits 1 when an agent is failing or behind.")
	return &configStatusCommand{configCommon: addConfigCommon(cmd, out)}
}

func (c *configStatusCommand) run(logger *slog.Logger) int {
	return c.session(logger, func(ctx context.Context, client *zk.Client, s *configstore.Store) int {
		cur, _, err := s.Current(ctx)
		if err != nil {
			return fail("%v", err)
		}
		canary, err := s.Canary(ctx)
		if err != nil {
			return fail("%v", err)
		}
		members, err := s.Members(ctx)
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(c.out, "cluster %s: current revision %d (by %s at %s)\n", c.cluster, cur.Revision, cur.Author, cur.Time.Format(time.RFC3339))
		if canary != nil {
			fmt.Fprintf(c.out, "canary: revision %d on %s\n", canary.Revision, strings.Join(canary.Members, ", "))
		}
		accessBad, err := writeAccess(ctx, c.out, client, s)
		if err != nil {
			return fail("%v", err)
		}
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tSTATE\tREVISION\tTARGET\tUPDATED\tLAST RELOAD\tERROR")
		bad := 0
		now := time.Now()
		for _, m := range members {
			st := m.Status
			if m.Err != nil {
				bad++
				fmt.Fprintf(tw, "%s\t?\t\t\t\t\t%v\n", m.Name, m.Err)
				continue
			}
			want := cur.Revision
			if canary.Has(m.Name) {
				want = canary.Revision
			}
			behind := st.Revision != want || st.State != configstore.StateApplied
			if behind {
				bad++
			}
			errText := ""
			if st.Error != "" {
				errText = fmt.Sprintf("revision %d, %s: %s", st.FailedRevision, st.FailedStep, oneLine(bundle.CleanText(st.Error)))
			}
			reload := "-"
			if !st.LastReload.IsZero() {
				reload = fmt.Sprintf("%s ago (ok=%t)", now.Sub(st.LastReload).Round(time.Second), st.ReloadSuccessful)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s ago\t%s\t%s\n", m.Name, st.State, st.Revision, want, now.Sub(st.Updated).Round(time.Second), reload, errText)
		}
		tw.Flush()
		if len(members) == 0 {
			fmt.Fprintln(c.out, "no live agents")
		}
		if bad > 0 {
			return fail("%d of %d agents failing or behind (or not agents)", bad, len(members))
		}
		if accessBad != "" {
			return fail("%s", accessBad)
		}
		return 0
	})
}

// writeAccess prints who may do what in the cluster and checks every
// node's ACL against that model. It returns what is wrong ("" when
// nothing is).
func writeAccess(ctx context.Context, out io.Writer, c *zk.Client, s *configstore.Store) (string, error) {
	acc, _, err := s.Access(ctx)
	if errors.Is(err, zk.ErrNoAuth) {
		who := "give their credentials to see it and check every node's ACL"
		if len(c.DigestIdentities()) > 0 {
			who = "the credentials given are neither a writer's nor an agent's"
		}
		fmt.Fprintf(out, "access: closed (who may write is readable by the cluster's writers and agents only; %s)\n", who)
		return "", nil
	}
	if err != nil {
		return "", err
	}
	switch {
	case acc.Open:
		fmt.Fprintln(out, "access: OPEN: anyone who reaches ZooKeeper can change this cluster's configuration and membership (pushed with --unsafe.open-cluster)")
		return "", nil
	case len(acc.Writers) == 0:
		fmt.Fprintln(out, "access: none recorded (made by an older zkprom): its nodes are as open as they were made")
		return "the cluster has no access settings: push once with --agents.auth-file or --agents.id and --repair-acls", nil
	}
	readers := strings.Join(acc.Readers, ", ")
	if readers == "" {
		readers = "none"
	}
	fmt.Fprintf(out, "access: writers %s; agents %s; status readers %s\n", strings.Join(acc.Writers, ", "), strings.Join(acc.Agents, ", "), readers)
	problems, err := s.CheckACLs(ctx, acc, true)
	if err != nil {
		return "", err
	}
	for _, p := range problems {
		fmt.Fprintf(out, "ACL WIDER THAN THE MODEL: %s\n", p)
	}
	if len(problems) > 0 {
		return (&configstore.ACLError{Cluster: s.Cluster(), Problems: problems}).Error(), nil
	}
	return "", nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// session runs f with the cluster's store, within the command's timeout.
func (c *configCommon) session(logger *slog.Logger, f func(ctx context.Context, client *zk.Client, s *configstore.Store) int) int {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	client, s, err := c.open(ctx, logger, nil)
	if err != nil {
		return fail("%v", err)
	}
	defer client.Close()
	return f(ctx, client, s)
}
