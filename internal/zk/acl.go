package zk

import (
	"fmt"
	"strings"

	gozk "github.com/go-zookeeper/zk"
)

// Permission bits of an ACL entry.
const (
	PermRead   = gozk.PermRead
	PermWrite  = gozk.PermWrite
	PermCreate = gozk.PermCreate
	PermDelete = gozk.PermDelete
	PermAdmin  = gozk.PermAdmin
	PermAll    = gozk.PermAll
)

// ACLCreatorAllWorldRead gives the authenticated creator every permission
// and everyone else read access: what zkprom writes for data others read.
// Without credentials on the session it falls back to world-all, because
// ZooKeeper rejects an "auth" ACL from an unauthenticated session.
func ACLCreatorAllWorldRead() []ACL {
	return []ACL{{Perms: PermAll, Scheme: "auth", ID: ""}, {Perms: PermRead, Scheme: "world", ID: "anyone"}}
}

// ACLCreatorOnly gives the authenticated creator every permission and
// nobody else anything.
func ACLCreatorOnly() []ACL { return []ACL{{Perms: PermAll, Scheme: "auth", ID: ""}} }

// ACLOpen lets everyone do everything (ZooKeeper's OPEN_ACL_UNSAFE).
func ACLOpen() []ACL { return gozk.WorldACL(PermAll) }

// DigestACL gives user (with password) the permissions perms.
func DigestACL(perms int32, user, password string) []ACL {
	return gozk.DigestACL(perms, user, password)
}

// FormatACL renders an ACL as ZooKeeper's CLI does: scheme:id:perms.
func FormatACL(acl []ACL) string {
	parts := make([]string, len(acl))
	for i, a := range acl {
		parts[i] = fmt.Sprintf("%s:%s:%s", a.Scheme, a.ID, formatPerms(a.Perms))
	}
	return strings.Join(parts, ",")
}

func formatPerms(p int32) string {
	var b strings.Builder
	for _, x := range []struct {
		bit int32
		c   byte
	}{{PermCreate, 'c'}, {PermDelete, 'd'}, {PermRead, 'r'}, {PermWrite, 'w'}, {PermAdmin, 'a'}} {
		if p&x.bit != 0 {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}
