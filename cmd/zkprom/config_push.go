package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

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

func newConfigPushCommand(parent *kingpin.CmdClause, out, errOut io.Writer) *configPushCommand {
	cmd := parent.Command("push", "Validate a bundle directory (prometheus.yml and the files it uses) and make it the cluster's new revision.")
	c := &configPushCommand{configCommon: addConfigCommon(cmd, "config", out, errOut)}
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

func (c *configPushCommand) run(logger *slog.Logger) int {
	return c.untilSignal(logger, c.push)
}

func (c *configPushCommand) push(ctx context.Context, logger *slog.Logger) error {
	b, err := bundle.LoadDir(c.dir)
	if err != nil {
		return err
	}
	opts := bundle.ValidateOptions{Promtool: c.promtool, Vars: bundle.Vars{
		Member: c.valMember, Cluster: c.cluster, ConfigDir: c.valConfigDir,
	}}
	v, err := bundle.Validate(ctx, b, opts)
	if err != nil {
		var ve *bundle.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("refused: the bundle in %s is invalid; nothing was pushed.\n%s", c.dir, ve.Output)
		}
		return fmt.Errorf("validate %s: %v", c.dir, err)
	}
	if err := bundle.ValidateFleet(ctx, b, opts, *c.zk); err != nil {
		return fmt.Errorf("refused: the bundle in %s is invalid; nothing was pushed.\n%v", c.dir, err)
	}
	if v.Note != "" {
		fmt.Fprintf(c.out, "note: %s\n", v.Note)
	}
	fmt.Fprintf(c.out, "valid (%s): %d files, %d bytes, %s\n", v.Method, len(b.Files), b.Size(), b.Checksum())
	if c.dryRun {
		return nil
	}
	if c.author == "" {
		c.author = defaultAuthor()
	}
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	client, s, err := c.open(tctx, logger, c.access)
	if err != nil {
		return err
	}
	defer client.Close()
	if cur, _, err := s.Current(tctx); err == nil && cur.Checksum == b.Checksum() && !c.force {
		if !c.access.unchanged() {
			if err := s.Ensure(tctx); err != nil {
				return err
			}
			fmt.Fprintln(c.out, "access settings applied")
		}
		fmt.Fprintf(c.out, "the bundle is identical to the current revision %d: nothing pushed (--force pushes it anyway)\n", cur.Revision)
		if c.wait {
			return waitRollout(ctx, s, cur.Revision, c.waitTimeout, c.out)
		}
		return nil
	}
	pm := configstore.PushMeta{Author: c.author, Message: c.message}
	var res *configstore.PushResult
	if c.canary > 0 {
		fmt.Fprintf(c.out, "canary: sending to %d agent(s) first\n", c.canary)
		var can *configstore.CanaryRollout
		res, can, err = s.PushCanary(ctx, b, pm, c.canary, c.waitTimeout, progressPrinter(c.out))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.out, "canary passed on %s: revision %d is now current (was %d)\n", strings.Join(can.Pointer.Members, ", "), res.Meta.Revision, res.Previous)
	} else {
		res, err = s.Push(tctx, b, pm)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.out, "pushed revision %d (was %d) to cluster %s\n", res.Meta.Revision, res.Previous, c.cluster)
		if c.access.open {
			fmt.Fprintf(c.out, "WARNING: cluster %s is open: anyone who reaches ZooKeeper can change its configuration\n", c.cluster)
		}
	}
	if !c.wait {
		return nil
	}
	return waitRollout(ctx, s, res.Meta.Revision, c.waitTimeout, c.out)
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
