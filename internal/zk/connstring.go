package zk

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
)

// ConnectString is a parsed ZooKeeper connect string such as
// "zk1:2181,zk2:2181,[::1]:2181/kafka".
type ConnectString struct {
	Servers []string // host:port, in the order written; port 2181 when omitted
	Chroot  string   // "" or an absolute path without a trailing slash
}

// ParseConnectString parses a connect string the way ZooKeeper's own
// clients do: servers separated by commas, an optional chroot after the
// first slash.
func ParseConnectString(s string) (ConnectString, error) {
	var cs ConnectString
	s = strings.TrimSpace(s)
	if s == "" {
		return cs, fmt.Errorf("empty ZooKeeper connect string: give host:port[,host:port...][/chroot]")
	}
	hosts := s
	if i := strings.Index(s, "/"); i >= 0 {
		hosts, cs.Chroot = s[:i], s[i:]
		if cs.Chroot != "/" {
			if err := ValidatePath(cs.Chroot); err != nil {
				return cs, fmt.Errorf("chroot of connect string %q: %w", s, err)
			}
		}
		if cs.Chroot == "/" {
			cs.Chroot = ""
		}
	}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port given: "zk1" or "[::1]" or "::1".
			host, port = strings.Trim(h, "[]"), "2181"
			if strings.Contains(host, ":") && net.ParseIP(host) == nil {
				return cs, fmt.Errorf("connect string %q: server %q is not host:port", s, h)
			}
		}
		if host == "" {
			return cs, fmt.Errorf("connect string %q: server %q has no host", s, h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return cs, fmt.Errorf("connect string %q: server %q has no valid port (want host:port, e.g. zk1:2181)", s, h)
		}
		cs.Servers = append(cs.Servers, net.JoinHostPort(host, port))
	}
	if len(cs.Servers) == 0 {
		return cs, fmt.Errorf("connect string %q names no server", s)
	}
	return cs, nil
}

// String gives the connect string back in canonical form.
func (cs ConnectString) String() string {
	return strings.Join(cs.Servers, ",") + cs.Chroot
}

// ValidatePath reports whether p is a valid absolute ZooKeeper path.
func ValidatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case p[0] != '/':
		return fmt.Errorf("path %q is not absolute", p)
	case p == "/":
		return nil
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("path %q ends with /", p)
	case strings.Contains(p, "//"):
		return fmt.Errorf("path %q has an empty element", p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains a NUL byte", p)
	}
	for _, el := range strings.Split(p[1:], "/") {
		if el == "." || el == ".." {
			return fmt.Errorf("path %q has a relative element %q", p, el)
		}
	}
	return nil
}

// Join joins path elements into a ZooKeeper path.
func Join(elem ...string) string {
	return path.Join(append([]string{"/"}, elem...)...)
}

// Parent returns the parent of p ("/" for a top-level node).
func Parent(p string) string { return path.Dir(p) }

// Base returns the last element of p.
func Base(p string) string { return path.Base(p) }
