// Package prom talks to one Prometheus server the way zkprom's agent needs:
// it triggers a configuration reload (POST /-/reload, or SIGHUP to a pid
// for a Prometheus started without --web.enable-lifecycle), reads the
// outcome (/api/v1/status/runtimeinfo and the metric
// prometheus_config_last_reload_successful), waits for readiness, and runs
// `promtool check config` over a configuration on disk.
package prom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Config says how to reach one Prometheus server.
type Config struct {
	// URL is Prometheus's base URL, e.g. http://127.0.0.1:9090 (with its
	// --web.route-prefix, if any).
	URL string
	// PID, when not zero, makes Reload send SIGHUP to this process instead
	// of POST /-/reload.
	PID int
	// PIDFile, when set, is read on every reload for the pid (as written by
	// a service manager).
	PIDFile string
	// HTTPClient is used for every request; nil means a client with a 30s
	// timeout.
	HTTPClient *http.Client
}

// Client talks to one Prometheus server.
type Client struct {
	base *url.URL
	cfg  Config
	http *http.Client
}

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url's error quotes the whole URL, credentials included.
		return nil, errors.New("parse Prometheus URL: not a URL: want http(s)://[user:password@]host:port[/prefix]")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("Prometheus URL %q: want http(s)://host:port[/prefix]", shownURL(u))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: u, cfg: cfg, http: hc}, nil
}

// URL returns the base URL without its user info.
func (c *Client) URL() string { return shownURL(c.base) }

// shownURL is u without its user info: credentials in --prometheus.url
// never reach a log, an error or a znode.
func shownURL(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

func (c *Client) endpoint(p string) string { return c.base.String() + p }

// ReloadError is a reload that Prometheus refused; Message is Prometheus's
// own error text.
type ReloadError struct {
	Status  int
	Message string
}

func (e *ReloadError) Error() string {
	return fmt.Sprintf("Prometheus refused the configuration (HTTP %d): %s", e.Status, e.Message)
}

// ErrUnreachable marks errors where Prometheus did not answer at all.
var ErrUnreachable = errors.New("prometheus unreachable")

// Reload asks Prometheus to reload its configuration. With a pid it sends
// SIGHUP and returns at once (the outcome must then be read with
// RuntimeInfo); otherwise it POSTs /-/reload and returns a *ReloadError
// with Prometheus's text when the reload failed.
func (c *Client) Reload(ctx context.Context) error {
	if pid, err := c.pid(); err != nil {
		return err
	} else if pid != 0 {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("send SIGHUP to Prometheus pid %d: %w", pid, err)
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint("/-/reload"), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w: %w", shownURL(req.URL), ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("POST %s: %s (start Prometheus with --web.enable-lifecycle, or give the agent its pid for SIGHUP)", shownURL(req.URL), msg)
	}
	return &ReloadError{Status: resp.StatusCode, Message: msg}
}

// SignalMode reports whether reloads go by SIGHUP.
func (c *Client) SignalMode() bool { return c.cfg.PID != 0 || c.cfg.PIDFile != "" }

func (c *Client) pid() (int, error) {
	if c.cfg.PIDFile == "" {
		return c.cfg.PID, nil
	}
	b, err := readFile(c.cfg.PIDFile)
	if err != nil {
		return 0, fmt.Errorf("read Prometheus pid file: %w", err)
	}
	var pid int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &pid); err != nil || pid <= 0 {
		return 0, fmt.Errorf("read Prometheus pid file %s: no pid in %q", c.cfg.PIDFile, strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// RuntimeInfo is the part of /api/v1/status/runtimeinfo the agent uses.
type RuntimeInfo struct {
	StartTime           time.Time `json:"startTime"`
	CWD                 string    `json:"CWD"`
	ReloadConfigSuccess bool      `json:"reloadConfigSuccess"`
	LastConfigTime      time.Time `json:"lastConfigTime"`
}

// RuntimeInfo reads /api/v1/status/runtimeinfo.
func (c *Client) RuntimeInfo(ctx context.Context) (RuntimeInfo, error) {
	var ri RuntimeInfo
	err := c.getAPI(ctx, "/api/v1/status/runtimeinfo", &ri)
	return ri, err
}

// getAPI reads an answer of Prometheus's HTTP API, {"status", "data",
// "error"}, and decodes its data into data.
func (c *Client) getAPI(ctx context.Context, p string, data any) error {
	var out struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := c.getJSON(ctx, p, &out); err != nil {
		return err
	}
	if out.Status != "success" {
		return fmt.Errorf("GET %s: status %q: %s", c.endpoint(p), out.Status, out.Error)
	}
	if err := json.Unmarshal(out.Data, data); err != nil {
		return fmt.Errorf("GET %s: decode data: %w", c.endpoint(p), err)
	}
	return nil
}

func (c *Client) getJSON(ctx context.Context, p string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(p), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w: %w", shownURL(req.URL), ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", shownURL(req.URL), err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %s", shownURL(req.URL), resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", shownURL(req.URL), err)
	}
	return nil
}

// ReloadMetrics reads prometheus_config_last_reload_successful and
// prometheus_config_last_reload_success_timestamp_seconds from /metrics.
func (c *Client) ReloadMetrics(ctx context.Context) (successful bool, lastSuccess time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("/metrics"), nil)
	if err != nil {
		return false, time.Time{}, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.http.Do(req)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("GET %s: %w: %w", shownURL(req.URL), ErrUnreachable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, time.Time{}, fmt.Errorf("GET %s: HTTP %d", shownURL(req.URL), resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("GET %s: parse: %w", shownURL(req.URL), err)
	}
	ok, found := gauge(fams, "prometheus_config_last_reload_successful")
	if !found {
		return false, time.Time{}, fmt.Errorf("GET %s: no prometheus_config_last_reload_successful", shownURL(req.URL))
	}
	ts, found := gauge(fams, "prometheus_config_last_reload_success_timestamp_seconds")
	if !found {
		return false, time.Time{}, fmt.Errorf("GET %s: no prometheus_config_last_reload_success_timestamp_seconds", shownURL(req.URL))
	}
	return ok == 1, time.Unix(0, int64(ts*1e9)), nil
}

// Ready reports whether /-/ready answers 200.
func (c *Client) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("/-/ready"), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w: %w", shownURL(req.URL), ErrUnreachable, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d (Prometheus is starting up)", shownURL(req.URL), resp.StatusCode)
	}
	return nil
}

// Targets returns the scrape pools of the active targets
// (/api/v1/targets?state=active), pool => number of targets.
func (c *Client) Targets(ctx context.Context) (map[string]int, error) {
	var out struct {
		Data struct {
			ActiveTargets []struct {
				ScrapePool string `json:"scrapePool"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := c.getJSON(ctx, "/api/v1/targets?state=active", &out); err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, t := range out.Data.ActiveTargets {
		m[t.ScrapePool]++
	}
	return m, nil
}

// RuleGroups returns the loaded rule groups (/api/v1/rules), group name =>
// number of rules.
func (c *Client) RuleGroups(ctx context.Context) (map[string]int, error) {
	var out struct {
		Data struct {
			Groups []struct {
				Name  string            `json:"name"`
				File  string            `json:"file"`
				Rules []json.RawMessage `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := c.getJSON(ctx, "/api/v1/rules", &out); err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, g := range out.Data.Groups {
		m[g.Name] += len(g.Rules)
	}
	return m, nil
}

// CheckResult is the outcome of promtool check config.
type CheckResult struct {
	// Output is promtool's combined output (Prometheus's own error text).
	Output string
}

// ErrPromtoolNotFound is returned by CheckConfig when promtool is missing.
var ErrPromtoolNotFound = errors.New("promtool not found")

// CheckError is a configuration promtool refused.
type CheckError struct {
	File   string
	Output string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("promtool check config %s: %s", e.File, e.Output)
}

// CheckConfig runs `promtool check config FILE` (promtool is a path or a
// name looked up in $PATH). It returns *CheckError with promtool's text
// when the configuration is invalid, and ErrPromtoolNotFound when there is
// no promtool.
func CheckConfig(ctx context.Context, promtool, file string) (CheckResult, error) {
	if promtool == "" {
		promtool = "promtool"
	}
	bin, err := exec.LookPath(promtool)
	if err != nil {
		return CheckResult{}, fmt.Errorf("%w: %s: %w", ErrPromtoolNotFound, promtool, err)
	}
	cmd := exec.CommandContext(ctx, bin, "check", "config", file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	text := strings.TrimSpace(out.String())
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			return CheckResult{Output: text}, &CheckError{File: file, Output: text}
		}
		return CheckResult{Output: text}, fmt.Errorf("run %s check config %s: %w", bin, file, err)
	}
	return CheckResult{Output: text}, nil
}

// LoadedConfig returns the configuration Prometheus runs now, as the YAML
// of /api/v1/status/config (secrets masked by Prometheus).
func (c *Client) LoadedConfig(ctx context.Context) (string, error) {
	var out struct {
		Data struct {
			YAML string `json:"yaml"`
		} `json:"data"`
	}
	if err := c.getJSON(ctx, "/api/v1/status/config", &out); err != nil {
		return "", err
	}
	return out.Data.YAML, nil
}

// Flags reads /api/v1/status/flags (flag name without dashes => value).
func (c *Client) Flags(ctx context.Context) (map[string]string, error) {
	var out struct {
		Data map[string]string `json:"data"`
	}
	if err := c.getJSON(ctx, "/api/v1/status/flags", &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// RunFlags is what the agent needs of the flags Prometheus runs with.
type RunFlags struct {
	// ConfigFile is the absolute path of --config.file (a relative one is
	// resolved against Prometheus's working directory).
	ConfigFile string
	// AutoReload is --config.auto-reload (3.x): Prometheus reloads by
	// itself when its files change.
	AutoReload bool
}

// RunFlags reads the flags Prometheus runs with.
func (c *Client) RunFlags(ctx context.Context) (RunFlags, error) {
	flags, err := c.Flags(ctx)
	if err != nil {
		return RunFlags{}, err
	}
	f, ok := flags["config.file"]
	if !ok {
		return RunFlags{}, fmt.Errorf("GET %s: no config.file flag", c.endpoint("/api/v1/status/flags"))
	}
	if !filepath.IsAbs(f) {
		ri, err := c.RuntimeInfo(ctx)
		if err != nil {
			return RunFlags{}, err
		}
		f = filepath.Join(ri.CWD, f)
	}
	return RunFlags{ConfigFile: filepath.Clean(f), AutoReload: flags[AutoReloadFlag] == "true"}, nil
}
