package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/zk"
)

// Config is the file `zkprom sd --config.file` reads.
type Config struct {
	// ZooKeeper is the ensemble jobs read unless they name their own.
	ZooKeeper zk.Config   `yaml:"zookeeper"`
	Jobs      []JobConfig `yaml:"jobs"`
}

// JobConfig is one discovery job: one output (file and /sd/<name>).
type JobConfig struct {
	Name   string   `yaml:"name"`
	Format string   `yaml:"format"`
	Paths  []string `yaml:"paths,omitempty"`
	// ZooKeeper replaces the top-level zookeeper block for this job.
	ZooKeeper *zk.Config        `yaml:"zookeeper,omitempty"`
	Metrics   MetricsConfig     `yaml:"metrics,omitempty"`
	Filter    FilterConfig      `yaml:"filter,omitempty"`
	Labels    map[string]string `yaml:"labels,omitempty"`
	Limits    LimitsConfig      `yaml:"limits,omitempty"`
}

// LimitsConfig bounds what registrations can make a job hold: any service
// may write any bytes into its znode. A znode over a limit is refused
// whole, with reason too_large; the rest of the job is unaffected. Zero
// takes the default.
type LimitsConfig struct {
	TargetsPerZnode     int   `yaml:"targets_per_znode,omitempty"`      // default 1,000
	LabelBytesPerTarget int   `yaml:"label_bytes_per_target,omitempty"` // default 16 KiB
	LabelBytesPerZnode  int   `yaml:"label_bytes_per_znode,omitempty"`  // default 1 MiB
	TargetsPerJob       int   `yaml:"targets_per_job,omitempty"`        // default 1,000,000
	LabelBytesPerJob    int64 `yaml:"label_bytes_per_job,omitempty"`    // default 1 GiB
}

// DefaultLimits are the limits of a job that sets none.
var DefaultLimits = LimitsConfig{TargetsPerZnode: 1000, LabelBytesPerTarget: 16 << 10, LabelBytesPerZnode: 1 << 20,
	TargetsPerJob: 1_000_000, LabelBytesPerJob: 1 << 30}

func (l *LimitsConfig) fill() error {
	d := DefaultLimits
	for _, f := range []struct {
		v   *int
		def int
	}{{&l.TargetsPerZnode, d.TargetsPerZnode}, {&l.LabelBytesPerTarget, d.LabelBytesPerTarget}, {&l.LabelBytesPerZnode, d.LabelBytesPerZnode}, {&l.TargetsPerJob, d.TargetsPerJob}} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return fmt.Errorf("limits: %d is negative", *f.v)
		}
	}
	if l.LabelBytesPerJob == 0 {
		l.LabelBytesPerJob = d.LabelBytesPerJob
	}
	if l.LabelBytesPerJob < 0 {
		return fmt.Errorf("limits: label_bytes_per_job %d is negative", l.LabelBytesPerJob)
	}
	return nil
}

// MetricsConfig says where a member's metrics are: the address (at most
// one of endpoint, port_field, port; else the address the member
// advertises), and the scheme, path and parameters of the scrape.
type MetricsConfig struct {
	// Endpoint names an endpoint the member advertises besides its main
	// address: a serverset additional endpoint, a Kafka listener, a Dubbo
	// 3 protocol, hbase "rpc", druid "plaintext"/"tls".
	Endpoint string `yaml:"endpoint,omitempty"`
	// PortField names a payload field holding the port (Curator payload
	// metadata, e.g. Spring's management.port; Kafka jmx_port).
	PortField string `yaml:"port_field,omitempty"`
	// Port is a fixed port on the member's host.
	Port   int               `yaml:"port,omitempty"`
	Scheme string            `yaml:"scheme,omitempty"`
	Path   string            `yaml:"path,omitempty"`
	Params map[string]string `yaml:"params,omitempty"`
}

func (m MetricsConfig) picksAddress() bool {
	return m.Endpoint != "" || m.PortField != "" || m.Port != 0
}

// FilterConfig drops members.
type FilterConfig struct {
	// Status keeps only members whose status is listed (serverset
	// status; Spring Cloud instance_status).
	Status []string `yaml:"status,omitempty"`
	// EnabledOnly drops Curator instances registered with enabled=false.
	EnabledOnly bool `yaml:"enabled_only,omitempty"`
}

var jobNameRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$`)

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) {
	return LoadConfigDefault(path, zk.Config{})
}

// LoadConfigDefault is LoadConfig where def (the --zookeeper.* flags) is
// the top-level zookeeper block when the file has none.
func LoadConfigDefault(path string, def zk.Config) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read discovery config: %w", err)
	}
	c, err := parseConfig(b, def)
	if err != nil {
		return nil, fmt.Errorf("load discovery config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes strict YAML (unknown fields are errors) and
// validates it.
func ParseConfig(b []byte) (*Config, error) { return parseConfig(b, zk.Config{}) }

func parseConfig(b []byte, def zk.Config) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	c := &Config{}
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("decode YAML: %w", err)
	}
	if c.ZooKeeper.Servers == "" && def.Servers != "" {
		c.ZooKeeper = def
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the config and fills in defaults (paths, ZooKeeper).
func (c *Config) Validate() error {
	if len(c.Jobs) == 0 {
		return errors.New("no jobs: add at least one under jobs:")
	}
	formats := Formats()
	seen := map[string]bool{}
	byServers := map[string]zk.Config{}
	var errs []error
	for i := range c.Jobs {
		j := &c.Jobs[i]
		if err := j.validate(formats, c.ZooKeeper); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[j.Name] {
			errs = append(errs, fmt.Errorf("job %q: name used twice", j.Name))
		}
		seen[j.Name] = true
		zc := *j.ZooKeeper
		if prev, ok := byServers[zc.Servers]; ok && prev != zc {
			errs = append(errs, fmt.Errorf("job %q: connect string %s is used by another job with other auth, TLS or session settings: jobs share one session per connect string, so give them the same settings", j.Name, zc.Servers))
		}
		byServers[zc.Servers] = zc
	}
	return errors.Join(errs...)
}

func (j *JobConfig) validate(formats map[string]Format, top zk.Config) error {
	if !jobNameRE.MatchString(j.Name) {
		return fmt.Errorf("job %q: name must match %s (it names a file and a URL)", j.Name, jobNameRE)
	}
	f, ok := formats[j.Format]
	if !ok {
		return fmt.Errorf("job %q: unknown format %q (known: %s)", j.Name, j.Format, strings.Join(FormatNames(), ", "))
	}
	if len(j.Paths) == 0 {
		j.Paths = slices.Clone(f.Tree().DefaultPaths)
	}
	if len(j.Paths) == 0 {
		return fmt.Errorf("job %q: format %s has no default path: list the znodes to watch under paths:", j.Name, j.Format)
	}
	for _, p := range j.Paths {
		if err := zk.ValidatePath(p); err != nil {
			return fmt.Errorf("job %q: path %q: %w", j.Name, p, err)
		}
	}
	if j.ZooKeeper == nil {
		zc := top
		j.ZooKeeper = &zc
	}
	if j.ZooKeeper.Servers == "" {
		return fmt.Errorf("job %q: no ZooKeeper servers: set zookeeper.servers at the top or in the job", j.Name)
	}
	if _, err := zk.ParseConnectString(j.ZooKeeper.Servers); err != nil {
		return fmt.Errorf("job %q: %w", j.Name, err)
	}
	m := j.Metrics
	n := 0
	for _, set := range []bool{m.Endpoint != "", m.PortField != "", m.Port != 0} {
		if set {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("job %q: metrics: set at most one of endpoint, port_field and port", j.Name)
	}
	if m.Port < 0 || m.Port > 65535 {
		return fmt.Errorf("job %q: metrics.port %d is not a port", j.Name, m.Port)
	}
	if m.Scheme != "" && m.Scheme != "http" && m.Scheme != "https" {
		return fmt.Errorf("job %q: metrics.scheme %q: use http or https", j.Name, m.Scheme)
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		return fmt.Errorf("job %q: metrics.path %q must start with /", j.Name, m.Path)
	}
	for k := range m.Params {
		if k == "" {
			return fmt.Errorf("job %q: metrics.params has an empty name", j.Name)
		}
	}
	if err := j.Limits.fill(); err != nil {
		return fmt.Errorf("job %q: %w", j.Name, err)
	}
	if len(j.Filter.Status) > 0 && j.Format != "serverset" && j.Format != "curator" {
		return fmt.Errorf("job %q: filter.status applies to the serverset and curator formats only", j.Name)
	}
	if j.Filter.EnabledOnly && j.Format != "curator" {
		return fmt.Errorf("job %q: filter.enabled_only applies to the curator format only", j.Name)
	}
	for k, v := range j.Labels {
		ln := model.LabelName(k)
		if !ln.IsValidLegacy() || strings.HasPrefix(k, model.MetaLabelPrefix) || ln == model.AddressLabel {
			return fmt.Errorf("job %q: label name %q is not allowed (use [a-zA-Z_][a-zA-Z0-9_]*, not __meta_* or __address__)", j.Name, k)
		}
		if !model.LabelValue(v).IsValid() {
			return fmt.Errorf("job %q: label %q has an invalid value", j.Name, k)
		}
	}
	return nil
}
