package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/zkprom/zkprom/internal/configstore"
	"github.com/zkprom/zkprom/internal/zk"
)

// errNotAllowed is an agent that must not run in its cluster as it is
// configured (wrong identity, or cluster nodes wider than the model):
// retrying would not help.
var errNotAllowed = errors.New("not allowed")

// checkAccess reads the cluster's access settings and checks that this
// agent may run there: the nodes it relies on grant no more than the
// model, and, unless the cluster is open, it is one of the agents. The
// settings it admits the agent under are kept (Agent.accessSettings): the nodes
// the agent makes get their ACL from them.
func (a *Agent) checkAccess(ctx context.Context) (configstore.Access, error) {
	acc, _, err := a.admission.Access(ctx)
	if errors.Is(err, zk.ErrNoAuth) {
		who := "an anonymous agent (no --zookeeper.auth-file)"
		if own := a.pointers.DigestIdentities(); len(own) > 0 {
			who = "identity " + own[0].String()
		} else if a.pointers.Authenticated() {
			who = "this agent's client certificate"
		}
		return acc, fmt.Errorf("%w: cluster %s admits only its agents, and %s is not one of them (it may not read the cluster's access settings): run the agent with --zookeeper.auth-file holding the agents' credentials, or have the writer name this identity (zkprom config push --agents.id)",
			errNotAllowed, a.cfg.Cluster, who)
	}
	if err != nil {
		return acc, err
	}
	if !acc.Open {
		if len(acc.Writers) == 0 {
			// Retried: the agent starts once the writer upgraded the cluster.
			return acc, fmt.Errorf("cluster %s has no access settings (made by an older zkprom): its writer must push once with --agents.auth-file or --agents.id and --repair-acls", a.cfg.Cluster)
		}
		if !a.pointers.Authenticated() {
			return acc, fmt.Errorf("%w: cluster %s admits only its agents (%s): run the agent with --zookeeper.auth-file holding the agents' credentials, or a client certificate ZooKeeper maps to one of them",
				errNotAllowed, a.cfg.Cluster, strings.Join(acc.Agents, ", "))
		}
		if own := a.pointers.DigestIdentities(); len(own) > 0 && !anyAgent(acc, own) {
			return acc, fmt.Errorf("%w: this agent's identity %s is not one of cluster %s's agents (%s): use the agents' credentials, or have the writer name it (zkprom config push --agents.id)",
				errNotAllowed, own[0], a.cfg.Cluster, strings.Join(acc.Agents, ", "))
		}
	}
	problems, err := a.admission.CheckACLs(ctx, acc, false)
	if err == nil && a.cfg.Fleet.HAGroup != "" {
		var more []configstore.ACLProblem
		more, err = a.admission.CheckGroupACLs(ctx, acc, a.cfg.Fleet.HAGroup)
		problems = append(problems, more...)
	}
	if err != nil {
		return acc, err
	}
	if len(problems) > 0 {
		return acc, fmt.Errorf("%w: %w", errNotAllowed, &configstore.ACLError{Cluster: a.cfg.Cluster, Problems: problems})
	}
	a.mu.Lock()
	a.acc = acc
	a.mu.Unlock()
	return acc, nil
}

func anyAgent(acc configstore.Access, ids []zk.Identity) bool {
	for _, id := range ids {
		if acc.IsAgent(id) {
			return true
		}
	}
	return false
}
