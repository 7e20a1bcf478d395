package wire

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ParseConnectString splits a connect string
// "host:port[,host:port...][/chroot]" the way ZooKeeper's clients read it:
// servers separated by commas (port 2181 when left out, IPv6 addresses in
// brackets), an optional chroot from the first slash on ("/" means none).
// Host names are kept as written: every dial resolves them again.
func ParseConnectString(s string) (servers []string, chroot string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, "", fmt.Errorf("empty ZooKeeper connect string: give host:port[,host:port...][/chroot]")
	}
	hosts := s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		hosts, chroot = s[:i], s[i:]
		if err := ValidatePath(chroot); err != nil {
			return nil, "", fmt.Errorf("chroot of connect string %q: %w", s, err)
		}
		if chroot == "/" {
			chroot = ""
		}
	}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil { // no port: "zk1", "[::1]" or "::1"
			host, port = strings.Trim(h, "[]"), "2181"
			if strings.Contains(host, ":") && net.ParseIP(host) == nil {
				return nil, "", fmt.Errorf("connect string %q: server %q is not host:port", s, h)
			}
		}
		if host == "" {
			return nil, "", fmt.Errorf("connect string %q: server %q has no host", s, h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, "", fmt.Errorf("connect string %q: server %q has no valid port (want host:port, e.g. zk1:2181)", s, h)
		}
		servers = append(servers, net.JoinHostPort(host, port))
	}
	if len(servers) == 0 {
		return nil, "", fmt.Errorf("connect string %q names no server", s)
	}
	return servers, chroot, nil
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

// chroot maps the client's paths to the server's and back. The zero value
// maps nothing.
type chroot string

// server is the path sent for the client's p ("/" is the chroot itself).
func (c chroot) server(p string) string {
	if c == "" {
		return p
	}
	if p == "/" {
		return string(c)
	}
	return string(c) + p
}

// client is the client's path for the server's p: the chroot itself is
// "/"; a path outside it (which the server should never send) is left as
// it is.
func (c chroot) client(p string) string {
	if c == "" {
		return p
	}
	if p == string(c) {
		return "/"
	}
	if rest, ok := strings.CutPrefix(p, string(c)); ok && strings.HasPrefix(rest, "/") {
		return rest
	}
	return p
}

// within says whether the server's p is the chroot or below it.
func (c chroot) within(p string) bool {
	if c == "" {
		return true
	}
	return p == string(c) || strings.HasPrefix(p, string(c)+"/")
}
