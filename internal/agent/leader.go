// The leader variant of a revision: its directory beside the plain one,
// rendering it (leader.yml merged into prometheus.yml, plus the leader
// marker), and switching the applied revision between the two variants
// when this agent's HA leadership changes.

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
)

// leaderSuffix names the revision directory of the leader variant:
// DIR/revisions/r-0000000012.leader is r-0000000012 with leader.yml
// merged into prometheus.yml.
const leaderSuffix = ".leader"

// variantDir is the directory of revision rev, or of its leader variant.
func (d disk) variantDir(rev int, leader bool) string {
	return filepath.Join(d.dir, relVariantDir(rev, leader))
}

func relVariantDir(rev int, leader bool) string {
	if leader {
		return relRevDir(rev) + leaderSuffix
	}
	return relRevDir(rev)
}

// linkedLeader reports whether DIR/current points at a leader variant.
func (d disk) linkedLeader() bool {
	return strings.HasSuffix(d.linkTarget(), leaderSuffix)
}

// pruneVariants removes leader variants other than keep's and the live
// one, older than age (a younger one may be in the middle of an apply).
func (d disk) pruneVariants(keep int, age time.Duration) error {
	entries, err := os.ReadDir(filepath.Join(d.dir, revisionsDir))
	if err != nil {
		return err
	}
	live := d.linkTarget()
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, leaderSuffix) || name == configstore.RevisionName(keep)+leaderSuffix ||
			filepath.Join(revisionsDir, name) == live {
			continue
		}
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < age {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.dir, revisionsDir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// renderVariant renders a bundle for this member: placeholders filled in,
// and for the leader variant leader.yml merged into prometheus.yml.
func renderVariant(b *bundle.Bundle, v bundle.Vars, leader bool) (*bundle.Bundle, error) {
	r, err := b.Render(v)
	if err != nil || !leader {
		return r, err
	}
	overlay, ok := r.Files[bundle.LeaderFile]
	if !ok {
		return r, nil
	}
	merged, err := bundle.MergeOverlay(r.Files[bundle.MainFile], overlay)
	if err == nil {
		merged, err = addRuleFile(merged, bundle.LeaderMarker)
	}
	if err != nil {
		return nil, err
	}
	r.Files[bundle.MainFile] = merged
	r.Files[bundle.LeaderMarker] = []byte(markerContent)
	return r, nil
}

// markerContent is the leader marker (bundle.LeaderMarker) that the leader
// variant adds to rule_files. It shows in the configuration a Prometheus
// has loaded (/api/v1/status/config), which lets the next leader see
// whether the previous leader's Prometheus still runs the overlay, even
// when that agent is frozen or dead.
const markerContent = "# Written by zkprom agent: this Prometheus runs its HA group's leader overlay.\n" +
	"# It holds no rules; the next leader looks for its name (docs/fleet.md).\ngroups: []\n"

// addRuleFile appends name to the rule_files of prometheus.yml.
func addRuleFile(main []byte, name string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(main, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a YAML mapping", bundle.MainFile)
	}
	m := doc.Content[0]
	entry := &yaml.Node{Kind: yaml.ScalarNode, Value: name}
	found := false
	for k := 0; k+1 < len(m.Content); k += 2 {
		if m.Content[k].Value != "rule_files" {
			continue
		}
		v := m.Content[k+1]
		switch {
		case v.Kind == yaml.SequenceNode:
			v.Content = append(v.Content, entry)
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			m.Content[k+1] = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{entry}}
		default:
			return nil, fmt.Errorf("%s line %d: rule_files is not a list", bundle.MainFile, v.Line)
		}
		found = true
	}
	if !found {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "rule_files"},
			&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{entry}})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// runsOverlay reports whether a configuration Prometheus has loaded (the
// YAML of /api/v1/status/config) is a leader variant: one of its
// rule_files is the marker.
func runsOverlay(loaded string) (bool, error) {
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal([]byte(loaded), &cfg); err != nil {
		return false, fmt.Errorf("parse the loaded configuration: %w", err)
	}
	for _, f := range cfg.RuleFiles {
		if filepath.Base(f) == bundle.LeaderMarker {
			return true, nil
		}
	}
	return false, nil
}

// variantVars are the placeholder values for a revision's variant.
func (a *Agent) variantVars(rev int, leader bool) bundle.Vars {
	v := a.vars(rev)
	v.RevisionDir = a.disk.variantDir(rev, leader)
	return v
}

// variantChanged reports whether the applied revision rev is live in the
// other variant than this agent's HA role wants (the overlay must be
// added or removed). A variant that failed to apply is not retried.
func (a *Agent) variantChanged(rev int) bool {
	if l, err := a.disk.linked(); err != nil || l != rev {
		return false
	}
	a.mu.Lock()
	failed := a.state.FailedRevision == rev
	a.mu.Unlock()
	_, err := os.Stat(filepath.Join(a.cfg.ConfigDir, currentLink, bundle.LeaderFile))
	leading := a.fleet.leading() && err == nil // without leader.yml there is no overlay
	// A refused overlay is not tried again; removing one always is.
	return a.disk.linkedLeader() != leading && !(failed && leading)
}

// dropOverlay switches a leader's Prometheus back to the plain revision:
// on a clean exit, before the agent resigns (the next leader then never
// overlaps with it), and at start (an agent is never leader at start; a
// leader variant left by a crashed run must not outlive it). Best effort
// within the verify timeout.
func (a *Agent) dropOverlay(why string) {
	if !a.disk.linkedLeader() {
		return
	}
	rev, err := a.disk.linked()
	if err != nil || rev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.VerifyTimeout+5*time.Second)
	defer cancel()
	a.mu.Lock()
	checksum := a.state.Checksum
	a.mu.Unlock()
	if !a.disk.complete(rev, checksum) {
		meta, b, err := a.revisions.Revision(ctx, rev)
		if err == nil {
			var r *bundle.Bundle
			if r, err = renderVariant(b, a.variantVars(rev, false), false); err == nil {
				err = a.disk.stage(rev, meta.Checksum, a.cfg.Member, r)
			}
		}
		if err == nil {
			_, err = bundle.ValidateDir(ctx, a.disk.revDir(rev), a.cfg.Promtool)
		}
		if err != nil {
			a.logger.Error(why+": could not lay down the revision without the overlay; Prometheus keeps it", "revision", rev, "err", err)
			return
		}
	}
	if _, err := a.switchTo(ctx, relRevDir(rev)); err != nil {
		a.logger.Warn(why+": could not remove the leader overlay and verify Prometheus's reload", "err", err)
		return
	}
	a.logger.Info(why+": leader overlay removed", "revision", rev)
}

// fleetStep switches the applied revision to the variant the HA role
// wants, from the files on disk, without reading ZooKeeper: a leader
// that lost its session's confirmation removes its overlay at once.
func (a *Agent) fleetStep(ctx context.Context) {
	a.mu.Lock()
	rev, pending := a.state.Applied, a.pending
	canary := a.status.Canary
	a.mu.Unlock()
	if pending != nil {
		// Prometheus is down, a switch waits for it to verify: when no
		// longer leader, switch the files back at once, so that it never
		// starts with the overlay (the pending verify then checks them).
		if !a.fleet.leading() && a.disk.linkedLeader() && a.disk.complete(pending.rev, pending.checksum) {
			if err := a.disk.link(pending.rev); err != nil {
				a.logger.Error("could not switch back from the overlay while Prometheus is down", "err", err)
			} else {
				a.logger.Info("no longer leader: overlay removed on disk while Prometheus is down", "revision", pending.rev)
			}
		}
		return
	}
	if rev == 0 || !a.variantChanged(rev) {
		return
	}
	a.carry(ctx, a.newAttempt(rev, canary, true)) // from local files: no waiting for ZooKeeper
}
