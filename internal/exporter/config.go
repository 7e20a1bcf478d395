package exporter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/zkprom/zkprom/internal/zk"
)

// Defaults of an ensemble's settings.
const (
	DefaultAdminPort   = 8080
	DefaultTimeout     = 5 * time.Second
	DefaultConsLimit   = 100
	DefaultEnsemble    = "default"
	defaultAdminScheme = "http"
)

// Config is the exporter's configuration file: named ensembles.
type Config struct {
	Ensembles []EnsembleConfig `yaml:"ensembles"`
	// Probe says which other servers /probe?target= may ask.
	Probe ProbePolicy `yaml:"probe,omitempty"`
}

// EnsembleConfig says how to reach one ZooKeeper ensemble and what to
// collect from it.
type EnsembleConfig struct {
	Name string `yaml:"name"`
	// Config is how to reach the ensemble, its keys (servers, tls,
	// auth_file, session_timeout) inline. Servers is a connect string:
	// host:port[,host:port...] (a chroot is allowed and ignored, except
	// for znode paths). TLS is for the client ports named in Servers
	// (four-letter words over TLS) and for an https AdminServer. AuthFile
	// and SessionTimeout apply to the session that reads ZnodePaths.
	zk.Config `yaml:",inline"`
	Admin     AdminConfig `yaml:"admin,omitempty"`
	// Timeout is the hard deadline for everything asked of one server in
	// one scrape (cut further by the scrape's own deadline).
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// Cons turns on per-connection metrics from cons, at most ConsLimit
	// connections per server (the busiest ones).
	Cons      bool `yaml:"cons,omitempty"`
	ConsLimit int  `yaml:"cons_limit,omitempty"`
	// Wchs turns on the watch summary from wchs.
	Wchs bool `yaml:"wchs,omitempty"`
	// ZnodePaths are znodes whose number of children is exported, read
	// through a ZooKeeper session (auth_file and session_timeout apply).
	ZnodePaths []string `yaml:"znode_paths,omitempty"`
}

// AdminConfig says where each server's AdminServer is.
type AdminConfig struct {
	// Disabled skips the AdminServer: four-letter words only.
	Disabled bool `yaml:"disabled,omitempty"`
	// Port of the AdminServer on each server's host (default 8080).
	Port int `yaml:"port,omitempty"`
	// Scheme is http (default) or https.
	Scheme string `yaml:"scheme,omitempty"`
	// URLs gives the AdminServer of individual servers ("host:port" as in
	// servers -> "http://host:adminport"), overriding port and scheme.
	URLs map[string]string `yaml:"urls,omitempty"`
}

// ParseConfig reads a config strictly (unknown fields are errors), fills
// in defaults and validates it.
func ParseConfig(b []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse exporter config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read exporter config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate fills in defaults and checks every ensemble.
func (c *Config) Validate() error {
	if err := c.Probe.Validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range c.Ensembles {
		e := &c.Ensembles[i]
		if err := e.Validate(); err != nil {
			return fmt.Errorf("ensembles[%d]: %w", i, err)
		}
		if seen[e.Name] {
			return fmt.Errorf("ensembles[%d]: ensemble name %q is used twice", i, e.Name)
		}
		seen[e.Name] = true
	}
	return nil
}

// Validate fills in defaults and checks one ensemble.
func (e *EnsembleConfig) Validate() error {
	if e.Name == "" {
		return fmt.Errorf("ensemble needs a name")
	}
	if strings.ContainsAny(e.Name, " \t\n/?&=") {
		return fmt.Errorf("ensemble %q: a name must not hold spaces or any of / ? & =", e.Name)
	}
	servers, err := e.ServerList()
	if err != nil {
		return fmt.Errorf("ensemble %q: %w", e.Name, err)
	}
	if e.Timeout == 0 {
		e.Timeout = DefaultTimeout
	}
	if e.Timeout < 0 {
		return fmt.Errorf("ensemble %q: timeout must be positive, got %s", e.Name, e.Timeout)
	}
	if e.ConsLimit == 0 {
		e.ConsLimit = DefaultConsLimit
	}
	if e.ConsLimit < 0 {
		return fmt.Errorf("ensemble %q: cons_limit must be positive, got %d", e.Name, e.ConsLimit)
	}
	if e.Admin.Port == 0 {
		e.Admin.Port = DefaultAdminPort
	}
	if e.Admin.Port < 0 || e.Admin.Port > 65535 {
		return fmt.Errorf("ensemble %q: admin port %d is out of range", e.Name, e.Admin.Port)
	}
	if e.Admin.Scheme == "" {
		e.Admin.Scheme = defaultAdminScheme
	}
	if e.Admin.Scheme != "http" && e.Admin.Scheme != "https" {
		return fmt.Errorf("ensemble %q: admin scheme must be http or https, got %q", e.Name, e.Admin.Scheme)
	}
	known := map[string]bool{}
	for _, s := range servers {
		known[s] = true
	}
	for s, u := range e.Admin.URLs {
		if !known[s] {
			return fmt.Errorf("ensemble %q: admin URL given for %q, which is not in servers", e.Name, s)
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("ensemble %q: admin URL %q for %s: want http(s)://host:port", e.Name, u, s)
		}
	}
	if _, err := e.TLS.Config(); err != nil {
		return fmt.Errorf("ensemble %q: %w", e.Name, err)
	}
	if e.AuthFile != "" {
		if err := (zk.Config{Servers: e.Servers, AuthFile: e.AuthFile}).Validate(); err != nil {
			return fmt.Errorf("ensemble %q: %w", e.Name, err)
		}
	}
	for _, p := range e.ZnodePaths {
		if err := zk.ValidatePath(p); err != nil {
			return fmt.Errorf("ensemble %q: znode path: %w", e.Name, err)
		}
	}
	return nil
}

// ServerList returns the servers of the connect string, checked.
func (e *EnsembleConfig) ServerList() ([]string, error) {
	if strings.TrimSpace(e.Servers) == "" {
		return nil, fmt.Errorf("no servers (want host:port[,host:port...])")
	}
	cs, err := zk.ParseConnectString(e.Servers)
	if err != nil {
		return nil, fmt.Errorf("servers %q: %w", e.Servers, err)
	}
	seen := map[string]bool{}
	for _, s := range cs.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("server %q: want host:port: %w", s, err)
		}
		if seen[s] {
			return nil, fmt.Errorf("server %q is listed twice", s)
		}
		seen[s] = true
	}
	return cs.Servers, nil
}

// AdminURL is the AdminServer base URL of one server ("" when disabled).
func (e *EnsembleConfig) AdminURL(server string) string {
	if e.Admin.Disabled {
		return ""
	}
	if u, ok := e.Admin.URLs[server]; ok {
		return strings.TrimRight(u, "/")
	}
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return ""
	}
	u := url.URL{Scheme: e.Admin.Scheme, Host: net.JoinHostPort(host, fmt.Sprint(e.Admin.Port))}
	if p, err := url.Parse(u.String()); err != nil || p.Hostname() != host {
		return "" // a host that is not one (user info, a query...): no AdminServer
	}
	return u.String()
}
