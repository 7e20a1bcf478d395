package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/discovery"
	"github.com/zkprom/zkprom/internal/zk"
)

// LeaderMarker is an empty rule file that the agent adds to the
// rule_files of the Prometheus that runs its HA group's leader overlay: a
// bundle may not use the name.
const LeaderMarker = "zkprom-leader-overlay.rules.yml"

// ShardedJobs is the bundle's shards.yml: zkprom sd job definitions
// whose targets are split among the cluster's live agents.
type ShardedJobs struct {
	// ZooKeeper is the ensemble the jobs read (default: the agent's own).
	ZooKeeper *zk.Config `yaml:"zookeeper,omitempty"`
	// Defaults for every job.
	Replicas  int            `yaml:"replicas,omitempty"`
	Overlap   model.Duration `yaml:"overlap,omitempty"`
	JoinDelay model.Duration `yaml:"join_delay,omitempty"`
	Jobs      []ShardedJob   `yaml:"jobs"`
}

// ShardedJob is a zkprom sd job plus how to shard it.
type ShardedJob struct {
	discovery.JobConfig `yaml:",inline"`
	// Replicas is how many shard members scrape each target (default 1).
	Replicas int `yaml:"replicas,omitempty"`
	// Overlap is how long the old owner keeps a moved target (default
	// 15s, one scrape interval).
	Overlap model.Duration `yaml:"overlap,omitempty"`
	// JoinDelay is how long a new member must stay before it gets targets
	// (default 2s).
	JoinDelay model.Duration `yaml:"join_delay,omitempty"`
}

// ParseShardedJobs decodes a shards.yml strictly and validates it; zc is
// the agent's ensemble, used by jobs that name none.
func ParseShardedJobs(data []byte, zc zk.Config) (*ShardedJobs, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	c := &ShardedJobs{}
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%s: decode YAML: %w", ShardsFile, err)
	}
	if c.ZooKeeper == nil {
		c.ZooKeeper = &zc
	}
	var errs []error
	check := func(where string, replicas int, overlap, join model.Duration) {
		if replicas < 0 {
			errs = append(errs, fmt.Errorf("%s: replicas %d: want 1 or more", where, replicas))
		}
		if overlap < 0 || join < 0 {
			errs = append(errs, fmt.Errorf("%s: overlap and join_delay must not be negative", where))
		}
	}
	check("shards.yml", c.Replicas, c.Overlap, c.JoinDelay)
	dc := discovery.Config{ZooKeeper: *c.ZooKeeper}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		check(fmt.Sprintf("job %q", j.Name), j.Replicas, j.Overlap, j.JoinDelay)
		if j.Replicas == 0 {
			j.Replicas = c.Replicas
		}
		if j.Overlap == 0 {
			j.Overlap = c.Overlap
		}
		if j.JoinDelay == 0 {
			j.JoinDelay = c.JoinDelay
		}
		dc.Jobs = append(dc.Jobs, j.JobConfig)
	}
	if err := dc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", ShardsFile, errors.Join(errs...))
	}
	for i := range c.Jobs {
		c.Jobs[i].JobConfig = dc.Jobs[i] // with defaults filled in
	}
	return c, nil
}

// DiscoveryConfig is the jobs as zkprom sd jobs.
func (c *ShardedJobs) DiscoveryConfig() *discovery.Config {
	dc := &discovery.Config{ZooKeeper: *c.ZooKeeper}
	for _, j := range c.Jobs {
		dc.Jobs = append(dc.Jobs, j.JobConfig)
	}
	return dc
}

// ValidateFleetDir checks the fleet files of a rendered revision
// directory (shards.yml, leader.yml) when they are there.
func ValidateFleetDir(dir string, zc zk.Config) error {
	var errs []error
	if data, err := os.ReadFile(filepath.Join(dir, ShardsFile)); err == nil {
		if _, err := ParseShardedJobs(data, zc); err != nil {
			errs = append(errs, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, LeaderFile)); err == nil {
		main, err := os.ReadFile(filepath.Join(dir, MainFile))
		if err == nil {
			_, err = MergeOverlay(main, data)
		}
		if err != nil {
			errs = append(errs, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ValidateFleet checks a bundle's fleet files before a push:
// shards.yml parses and validates, and the leader variant (prometheus.yml
// with leader.yml merged) passes the same validation as the
func ValidateFleet(ctx context.Context, b *Bundle, opts ValidateOptions, zc zk.Config) error {
	// The marker must mean "runs the overlay": a bundle may not use it.
	for name, data := range b.Files {
		if path.Base(name) == LeaderMarker || (name == MainFile || name == LeaderFile) && bytes.Contains(data, []byte(LeaderMarker)) {
			return fmt.Errorf("%s: the name %s is reserved: the agent adds it to the rule_files of the leader's Prometheus to mark the leader overlay", name, LeaderMarker)
		}
	}
	if data, ok := b.Files[ShardsFile]; ok {
		r, err := (&Bundle{Files: map[string][]byte{ShardsFile: data}}).Render(opts.Vars)
		if err != nil {
			return err
		}
		if _, err := ParseShardedJobs(r.Files[ShardsFile], zc); err != nil {
			return err
		}
	}
	overlay, ok := b.Files[LeaderFile]
	if !ok {
		return nil
	}
	merged, err := MergeOverlay(b.Files[MainFile], overlay)
	if err != nil {
		return err
	}
	lb := &Bundle{Files: maps.Clone(b.Files)}
	lb.Files[MainFile] = merged
	if _, err := Validate(ctx, lb, opts); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("the leader variant (prometheus.yml with leader.yml merged) is invalid:\n%s", ve.Output)
		}
		return fmt.Errorf("validate the leader variant: %w", err)
	}
	return nil
}
