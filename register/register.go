// Package register keeps one service instance registered in ZooKeeper for
// as long as it is healthy: an ephemeral znode in the zkprom format (a
// file_sd-style target group), as a Finagle serverset member with a
// "metrics" endpoint, or as an Apache Curator service instance. `zkprom
// sd` (and Prometheus's own serverset_sd_configs for the serverset form)
// then finds it.
//
// Go services can import it to register themselves:
//
//	r, err := register.Start(ctx, register.Config{
//		ZooKeeper: register.ZooKeeper{Servers: "zk1:2181,zk2:2181/prod"},
//		Format:    register.FormatZkprom,
//		Path:      "/zkprom/targets/api",
//		Address:   "10.0.0.5:8080",
//	}, logger, prometheus.DefaultRegisterer)
//	...
//	defer r.Close(context.Background())
package register

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/targetgroup"
	"github.com/zkprom/zkprom/internal/zk"
)

// Formats of registration.
const (
	FormatZkprom    = "zkprom"
	FormatServerset = "serverset"
	FormatCurator   = "curator"

	// Payloads of the curator format (Config.CuratorPayload).
	CuratorPayloadMap    = "map"
	CuratorPayloadSpring = "spring"
)

// ZooKeeper says how to reach the ensemble: zkprom's one settings type
// for it (what the --zookeeper.* flags fill in). Servers is
// host:port[,host:port...][/chroot]; AuthFile holds digest credentials,
// one user:password per line; TLS.CAFile turns TLS on; SessionTimeout
// defaults to 10s.
type ZooKeeper = zk.Config

// TLS is the TLS part of ZooKeeper: CAFile, CertFile, KeyFile, ServerName.
type TLS = zk.TLSConfig

// Defaults of the health check.
const (
	DefaultCheckInterval = 5 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
)

// DefaultConfig is a Config with every default filled in (Validate fills
// in the same); the command line's flags start from it.
func DefaultConfig() Config {
	return Config{
		Format:         FormatZkprom,
		CuratorPayload: CuratorPayloadMap,
		Check:          HealthCheck{Interval: DefaultCheckInterval, Timeout: DefaultCheckTimeout},
	}
}

// HealthCheck says how to check the instance. With neither HTTP nor TCP
// the instance counts as healthy.
type HealthCheck struct {
	HTTP     string        // URL answered with 2xx or 3xx when healthy
	TCP      string        // host:port that accepts connections when healthy
	Interval time.Duration // default 5s
	Timeout  time.Duration // default 2s
}

// Config is what to register.
type Config struct {
	ZooKeeper ZooKeeper
	// Format is zkprom (default), serverset or curator.
	Format string
	// Path is the folder the node goes in: the node is <Path>/<ID>
	// (zkprom), <Path>/member_<sequence> (serverset) or
	// <Path>/<Service>/<ID> (curator; Path defaults to /services).
	Path string
	// Service names the service (curator: required; serverset, zkprom:
	// unused).
	Service string
	// ID names the instance (zkprom default: the address; curator
	// default: a random UUID).
	ID string
	// Address is the instance's host:port.
	Address string
	// MetricsAddress is where its metrics are (default: Address).
	MetricsAddress string
	// Labels go in the zkprom group's labels, or the Curator payload.
	Labels map[string]string
	// CuratorPayload is the payload a curator registration carries:
	// "map" (default) a plain JSON object of the labels, what any Curator
	// consumer reads (ServiceDiscoveryBuilder.builder(Map.class) and
	// untyped ones); "spring" a Spring Cloud Zookeeper ZookeeperInstance
	// with the labels as metadata, for Spring consumers (others cannot
	// resolve its class).
	CuratorPayload string
	// Shard is the serverset shard number.
	Shard int
	Check HealthCheck
}

func splitHostPort(what, s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w (want host:port)", what, s, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 || h == "" {
		return "", 0, fmt.Errorf("%s %q: want host:port with a port in 1-65535", what, s)
	}
	return h, port, nil
}

// Validate checks the config and fills in defaults.
func (c *Config) Validate() error {
	if c.ZooKeeper.Servers == "" {
		return errors.New("no ZooKeeper servers")
	}
	if c.Format == "" {
		c.Format = FormatZkprom
	}
	if c.Address == "" {
		return errors.New("no address: give the instance's host:port")
	}
	if _, _, err := splitHostPort("address", c.Address); err != nil {
		return err
	}
	if c.MetricsAddress == "" {
		c.MetricsAddress = c.Address
	}
	if _, _, err := splitHostPort("metrics address", c.MetricsAddress); err != nil {
		return err
	}
	switch c.Format {
	case FormatZkprom:
		if c.ID == "" {
			c.ID = c.Address
		}
	case FormatServerset:
	case FormatCurator:
		if c.Path == "" {
			c.Path = "/services"
		}
		if c.Service == "" {
			return errors.New("curator format: give the service name (--service)")
		}
		switch c.CuratorPayload {
		case "":
			c.CuratorPayload = CuratorPayloadMap
		case CuratorPayloadMap, CuratorPayloadSpring:
		default:
			return fmt.Errorf("curator payload %q: want %s or %s", c.CuratorPayload, CuratorPayloadMap, CuratorPayloadSpring)
		}
		if strings.Contains(c.Service, "/") {
			return fmt.Errorf("service name %q must not contain /", c.Service)
		}
		if c.ID == "" {
			c.ID = uuid()
		}
	default:
		return fmt.Errorf("unknown format %q (use zkprom, serverset or curator)", c.Format)
	}
	if c.Path == "" {
		return errors.New("no path: give the folder the registration goes in (--path)")
	}
	if err := zk.ValidatePath(c.Path); err != nil {
		return fmt.Errorf("path %q: %w", c.Path, err)
	}
	if strings.Contains(c.ID, "/") {
		return fmt.Errorf("id %q must not contain /", c.ID)
	}
	for k, v := range c.Labels {
		if c.Format == FormatZkprom {
			if err := targetgroup.CheckLabel(k, v); err != nil {
				return err // the rule discovery reads by
			}
		} else if !model.LabelValue(v).IsValid() {
			return fmt.Errorf("label %q: value is not valid UTF-8", k)
		}
	}
	if c.Check.HTTP != "" && c.Check.TCP != "" {
		return errors.New("give an HTTP or a TCP health check, not both")
	}
	if c.Check.HTTP != "" {
		u, err := url.Parse(c.Check.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("HTTP health check %q: want an http:// or https:// URL", c.Check.HTTP)
		}
	}
	if c.Check.TCP != "" {
		if _, _, err := splitHostPort("TCP health check", c.Check.TCP); err != nil {
			return err
		}
	}
	if c.Check.Interval <= 0 {
		c.Check.Interval = DefaultCheckInterval
	}
	if c.Check.Timeout <= 0 {
		c.Check.Timeout = DefaultCheckTimeout
	}
	return nil
}

// NodePath is the node the registration makes (for serverset: the prefix
// of the sequential node).
func (c *Config) NodePath() string {
	switch c.Format {
	case FormatServerset:
		return zk.Join(c.Path, "member_")
	case FormatCurator:
		return zk.Join(c.Path, c.Service, c.ID)
	}
	return zk.Join(c.Path, c.ID)
}

// Data is what the node holds.
func (c *Config) Data(now time.Time) ([]byte, error) {
	host, port, _ := splitHostPort("address", c.Address)
	mhost, mport, _ := splitHostPort("metrics address", c.MetricsAddress)
	switch c.Format {
	case FormatServerset:
		type ep struct {
			Host string `json:"host"`
			Port int    `json:"port"`
		}
		return json.Marshal(struct {
			ServiceEndpoint     ep            `json:"serviceEndpoint"`
			AdditionalEndpoints map[string]ep `json:"additionalEndpoints"`
			Status              string        `json:"status"`
			Shard               int           `json:"shard"`
		}{ep{host, port}, map[string]ep{"metrics": {mhost, mport}}, "ALIVE", c.Shard})
	case FormatCurator:
		md := map[string]string{}
		for k, v := range c.Labels {
			md[k] = v
		}
		if c.MetricsAddress != c.Address {
			md["metrics.port"] = strconv.Itoa(mport)
		}
		// Curator types the payload by its "@class" (defaultImpl Object):
		// without one, every consumer reads it as a map.
		var payload any = md
		if c.CuratorPayload == CuratorPayloadSpring {
			md["instance_status"] = "UP"
			payload = map[string]any{
				"@class":   "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
				"id":       c.ID,
				"name":     c.Service,
				"metadata": md,
			}
		}
		return json.Marshal(map[string]any{
			"name":                c.Service,
			"id":                  c.ID,
			"address":             host,
			"port":                port,
			"sslPort":             nil,
			"payload":             payload,
			"registrationTimeUTC": now.UnixMilli(),
			"serviceType":         "DYNAMIC",
			"uriSpec":             map[string]any{"parts": []map[string]any{{"value": "scheme", "variable": true}, {"value": "://", "variable": false}, {"value": "address", "variable": true}, {"value": ":", "variable": false}, {"value": "port", "variable": true}}},
			"enabled":             true,
		})
	}
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return json.Marshal(targetgroup.Group{Targets: []string{c.MetricsAddress}, Labels: labels})
}

func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Registrar keeps the registration while the instance is healthy.
type Registrar struct {
	cfg    Config
	c      *zk.Client
	logger *slog.Logger
	base   *slog.Logger
	client *http.Client

	mu      sync.Mutex
	reg     *zk.Registration
	healthy bool
	checks  map[bool]float64

	cancel context.CancelFunc
	done   chan struct{}
}

// Start connects, checks the instance and registers it when healthy; it
// keeps checking in the background until Close.
func Start(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Registrar, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	c, err := zk.Connect(ctx, cfg.ZooKeeper, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", cfg.NodePath(), err)
	}
	if err := c.CreateAll(ctx, zk.Parent(cfg.NodePath()), nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("register: create the folder of %s: %w", cfg.NodePath(), err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &Registrar{
		cfg: cfg, c: c, logger: logger.With("component", "register", "node", cfg.NodePath()), base: logger,
		client: &http.Client{Timeout: cfg.Check.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		checks: map[bool]float64{}, cancel: cancel, done: make(chan struct{}),
	}
	if reg != nil {
		if err := reg.Register(r.collector()); err != nil {
			cancel()
			c.Close()
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	r.step(ctx)
	go r.loop(runCtx)
	return r, nil
}

// Healthy reports the last health check's result.
func (r *Registrar) Healthy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.healthy
}

// Registered reports whether the node is there (registered and not
// suspended).
func (r *Registrar) Registered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reg != nil && !r.reg.Suspended() && r.reg.Path() != ""
}

// Path is the node's path while registered.
func (r *Registrar) Path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reg == nil {
		return ""
	}
	return r.reg.Path()
}

func (r *Registrar) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Check.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.step(ctx)
		}
	}
}

// check runs the health check once.
func (r *Registrar) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Check.Timeout)
	defer cancel()
	switch {
	case r.cfg.Check.HTTP != "":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.Check.HTTP, nil)
		if err != nil {
			return err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", r.cfg.Check.HTTP, resp.Status)
		}
	case r.cfg.Check.TCP != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", r.cfg.Check.TCP)
		if err != nil {
			return err
		}
		conn.Close()
	}
	return nil
}

// step checks once and registers, suspends or resumes accordingly.
func (r *Registrar) step(ctx context.Context) {
	err := r.check(ctx)
	healthy := err == nil
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[healthy]++
	if healthy != r.healthy {
		if healthy {
			r.logger.Info("instance healthy: registering")
		} else {
			r.logger.Warn("instance unhealthy: removing its registration", "err", err)
		}
	}
	r.healthy = healthy
	opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case healthy && r.reg == nil:
		data, err := r.cfg.Data(time.Now())
		if err != nil {
			r.logger.Error("cannot encode the registration", "err", err)
			return
		}
		reg, err := zk.Register(opCtx, r.c, r.cfg.NodePath(), data, zk.RegisterOptions{Sequential: r.cfg.Format == FormatServerset, Logger: r.base})
		if err != nil {
			r.logger.Error("cannot register; retrying at the next check", "err", err)
			return
		}
		r.reg = reg
	case healthy && r.reg.Suspended():
		if err := r.reg.Resume(opCtx); err != nil {
			r.logger.Error("cannot restore the registration; retrying at the next check", "err", err)
		}
	case !healthy && r.reg != nil && !r.reg.Suspended():
		if err := r.reg.Suspend(opCtx); err != nil {
			r.logger.Error("cannot remove the registration; retrying at the next check", "err", err)
		}
	}
}

// Close removes the registration at once and ends the session.
func (r *Registrar) Close(ctx context.Context) error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	reg := r.reg
	r.reg = nil
	r.mu.Unlock()
	var err error
	if reg != nil {
		err = reg.Close(ctx)
	}
	r.c.Close() // ends the session: the ephemeral node goes in any case
	if err != nil {
		return fmt.Errorf("remove registration %s: %w", r.cfg.NodePath(), err)
	}
	return nil
}

type registrarCollector struct{ r *Registrar }

var (
	descRegistered = prometheus.NewDesc("zkprom_register_registered", "1 while the instance's node is in ZooKeeper.", nil, nil)
	descHealthy    = prometheus.NewDesc("zkprom_register_healthy", "Result of the last health check (1 healthy).", nil, nil)
	descChecks     = prometheus.NewDesc("zkprom_register_health_checks_total", "Health checks by result.", []string{"result"}, nil)
)

func (r *Registrar) collector() prometheus.Collector { return registrarCollector{r} }

func (c registrarCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRegistered
	ch <- descHealthy
	ch <- descChecks
}

func (c registrarCollector) Collect(ch chan<- prometheus.Metric) {
	reg := c.r.Registered()
	c.r.mu.Lock()
	healthy, ok, bad := c.r.healthy, c.r.checks[true], c.r.checks[false]
	c.r.mu.Unlock()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(descRegistered, prometheus.GaugeValue, b(reg))
	ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, b(healthy))
	ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, ok, "healthy")
	ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, bad, "unhealthy")
}
