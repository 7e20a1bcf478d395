package zk

import (
	"path"
	"strings"

	"github.com/zkprom/zkprom/internal/zk/wire"
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
	servers, chroot, err := wire.ParseConnectString(s)
	return ConnectString{Servers: servers, Chroot: chroot}, err
}

// String gives the connect string back in canonical form.
func (cs ConnectString) String() string {
	return strings.Join(cs.Servers, ",") + cs.Chroot
}

// ValidatePath reports whether p is a valid absolute ZooKeeper path.
func ValidatePath(p string) error { return wire.ValidatePath(p) }

// Join joins path elements into a ZooKeeper path.
func Join(elem ...string) string {
	return path.Join(append([]string{"/"}, elem...)...)
}

// Parent returns the parent of p ("/" for a top-level node).
func Parent(p string) string { return path.Dir(p) }

// Base returns the last element of p.
func Base(p string) string { return path.Base(p) }
