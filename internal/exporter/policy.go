package exporter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultProbeConcurrency bounds the /probe requests served at once.
const DefaultProbeConcurrency = 16

// ProbePolicy says which servers /probe?target= may ask. Servers of the
// configured ensembles are always allowed (with their ensemble's
// settings); anything else only when Allow matches it, or with AllowAny.
// The exporter's port is reachable by whoever reaches Prometheus: without
// a policy it would connect anywhere it is told to.
type ProbePolicy struct {
	// Allow lists host patterns (path.Match globs such as
	// "zk-*.example.com", matched against the target's host) and CIDRs
	// ("10.1.0.0/16", matched against a literal IP address).
	Allow []string `yaml:"allow,omitempty"`
	// AllowAny lets /probe ask any host:port, as the blackbox exporter
	// does: only behind a firewall or authentication.
	AllowAny bool `yaml:"allow_any,omitempty"`
	// MaxConcurrent bounds the probes served at once (default
	// DefaultProbeConcurrency); more are refused with 503.
	MaxConcurrent int `yaml:"max_concurrent,omitempty"`
}

// ErrNotAllowed is a /probe?target= the policy does not allow.
var ErrNotAllowed = errors.New("target not allowed")

// Validate checks the patterns and fills in defaults.
func (p *ProbePolicy) Validate() error {
	for _, a := range p.Allow {
		if strings.Contains(a, "/") {
			if _, err := netip.ParsePrefix(a); err != nil {
				return fmt.Errorf("probe allow %q: not a CIDR: %w", a, err)
			}
			continue
		}
		if _, err := path.Match(a, ""); err != nil || a == "" {
			return fmt.Errorf("probe allow %q: want a host pattern such as zk-*.example.com or a CIDR such as 10.0.0.0/8", a)
		}
	}
	if p.MaxConcurrent == 0 {
		p.MaxConcurrent = DefaultProbeConcurrency
	}
	if p.MaxConcurrent < 1 {
		return fmt.Errorf("probe max_concurrent %d: want at least 1", p.MaxConcurrent)
	}
	return nil
}

// allows reports whether the allow-list (or AllowAny) admits host.
func (p ProbePolicy) allows(host string) bool {
	if p.AllowAny {
		return true
	}
	ip, ipErr := netip.ParseAddr(host)
	for _, a := range p.Allow {
		if strings.Contains(a, "/") {
			if pfx, err := netip.ParsePrefix(a); err == nil && ipErr == nil && pfx.Contains(ip.Unmap()) {
				return true
			}
			continue
		}
		if ok, _ := path.Match(strings.ToLower(a), strings.ToLower(host)); ok {
			return true
		}
	}
	return false
}

// parseTarget checks a /probe?target= value: one host:port whose host is
// a literal IP address (no zone) or a DNS name of letters, digits, '.',
// '-' and '_' (nothing a URL or a pattern could read otherwise: '@', '?',
// '#', '/', '*'), and a port in range. It returns the host, lower case.
func parseTarget(t string) (string, error) {
	if len(t) > 300 || !utf8.ValidString(t) {
		return "", fmt.Errorf("probe target %q: not a host:port", t)
	}
	host, port, err := net.SplitHostPort(t)
	if err != nil || host == "" {
		return "", fmt.Errorf("probe target %q: give one host:port", t)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", fmt.Errorf("probe target %q: port %q out of range", t, port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("probe target %q: an address with a zone", t)
		}
		return strings.ToLower(host), nil
	}
	if len(host) > 253 || strings.ContainsFunc(host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
	}) {
		return "", fmt.Errorf("probe target %q: the host is neither an IP address nor a DNS name", t)
	}
	return strings.ToLower(host), nil
}
