package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

func newConfigStatusCommand(parent *kingpin.CmdClause, out, errOut io.Writer) *storeCommand {
	cmd := parent.Command("status", "Show every agent of the cluster: revision, state, error, age. Exits 1 when an agent is failing or behind.")
	return &storeCommand{addConfigCommon(cmd, "config", out, errOut), writeStatus}
}

// writeStatus prints every agent of the cluster and who may do what; it
// fails when an agent is behind or a node's ACL is wider than the model.
func writeStatus(ctx context.Context, out io.Writer, s openStore) error {
	cs, err := s.Status(ctx)
	if err != nil {
		return err
	}
	cur := cs.Current
	fmt.Fprintf(out, "cluster %s: current revision %d (by %s at %s)\n", s.Cluster(), cur.Revision, cur.Author, cur.Time.Format(time.RFC3339))
	if cs.Canary != nil {
		fmt.Fprintf(out, "canary: revision %d on %s\n", cs.Canary.Revision, strings.Join(cs.Canary.Members, ", "))
	}
	accessBad, err := writeAccess(ctx, out, s)
	if err != nil {
		return err
	}
	writeMembers(out, cs.Members, time.Now())
	if len(cs.Members) == 0 {
		fmt.Fprintln(out, "no live agents")
	}
	if bad := cs.Behind(); bad > 0 {
		return fmt.Errorf("%d of %d agents failing or behind (or not agents)", bad, len(cs.Members))
	}
	if accessBad != "" {
		return errors.New(accessBad)
	}
	return nil
}

// writeMembers prints one line per member node.
func writeMembers(out io.Writer, members []configstore.MemberStatus, now time.Time) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTATE\tREVISION\tTARGET\tUPDATED\tLAST RELOAD\tERROR")
	for _, m := range members {
		st := m.Status
		if m.Err != nil {
			fmt.Fprintf(tw, "%s\t?\t\t\t\t\t%v\n", m.Name, m.Err)
			continue
		}
		errText := ""
		if st.Error != "" {
			errText = fmt.Sprintf("revision %d, %s: %s", st.FailedRevision, st.FailedStep, oneLine(bundle.CleanText(st.Error)))
		}
		reload := "-"
		if !st.LastReload.IsZero() {
			reload = fmt.Sprintf("%s ago (ok=%t)", now.Sub(st.LastReload).Round(time.Second), st.ReloadSuccessful)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s ago\t%s\t%s\n", m.Name, st.State, st.Revision, m.Want, now.Sub(st.Updated).Round(time.Second), reload, errText)
	}
	tw.Flush()
	for _, m := range members {
		if w := m.Status.VersionWarning; m.Err == nil && w != "" {
			fmt.Fprintf(out, "warning: %s: %s\n", m.Name, w)
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// writeAccess prints who may do what in the cluster and checks every
// node's ACL against that model. It returns what is wrong ("" when
// nothing is).
func writeAccess(ctx context.Context, out io.Writer, s openStore) (string, error) {
	acc, _, err := s.Access(ctx)
	if errors.Is(err, zk.ErrNoAuth) {
		who := "give their credentials to see it and check every node's ACL"
		if len(s.client.DigestIdentities()) > 0 {
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
