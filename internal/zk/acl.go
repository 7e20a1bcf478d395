package zk

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/zkprom/zkprom/internal/zk/jute"
	"github.com/zkprom/zkprom/internal/zk/wire"
)

// Permission bits of an ACL entry.
const (
	PermRead   = jute.PermRead
	PermWrite  = jute.PermWrite
	PermCreate = jute.PermCreate
	PermDelete = jute.PermDelete
	PermAdmin  = jute.PermAdmin
	PermAll    = jute.PermAll
)

// ACL is one entry of a node's ACL: perms granted to scheme:id.
type ACL struct {
	Perms  int32
	Scheme string
	ID     string
}

// wireACL and fromWireACL convert to and from the protocol's shape.
func wireACL(acl []ACL) []wire.ACL {
	out := make([]wire.ACL, len(acl))
	for i, a := range acl {
		out[i] = wire.ACL{Perms: a.Perms, ID: wire.ID{Scheme: a.Scheme, ID: a.ID}}
	}
	return out
}

func fromWireACL(acl []wire.ACL) []ACL {
	out := make([]ACL, len(acl))
	for i, a := range acl {
		out[i] = ACL{Perms: a.Perms, Scheme: a.ID.Scheme, ID: a.ID.ID}
	}
	return out
}

// ACLCreatorAllWorldRead gives the authenticated creator every permission
// and everyone else read access. It needs credentials on the session; only
// the default ACL (nil) falls back to something a session without
// credentials may create.
func ACLCreatorAllWorldRead() []ACL {
	return []ACL{{Perms: PermAll, Scheme: "auth", ID: ""}, {Perms: PermRead, Scheme: "world", ID: "anyone"}}
}

// ACLCreatorOnly gives the authenticated creator every permission and
// nobody else anything.
func ACLCreatorOnly() []ACL { return []ACL{{Perms: PermAll, Scheme: "auth", ID: ""}} }

// ACLOpen lets everyone do everything (ZooKeeper's OPEN_ACL_UNSAFE).
func ACLOpen() []ACL { return Grant(PermAll, World) }

// Identity is whom an ACL entry names: digest:user:hash, x509:<subject>,
// sasl:<principal>, ip:<address>, or world:anyone.
type Identity struct{ Scheme, ID string }

// World is everyone, authenticated or not.
var World = Identity{Scheme: "world", ID: "anyone"}

func (i Identity) String() string { return i.Scheme + ":" + i.ID }

// ParseIdentity reads scheme:id as ZooKeeper's CLI writes it
// (digest:agent:Q2xhc3NpZmllZA==, x509:CN=agent,O=example, world:anyone).
func ParseIdentity(s string) (Identity, error) {
	scheme, id, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || id == "" {
		return Identity{}, fmt.Errorf("identity %q: want scheme:id (digest:user:hash, x509:subject, sasl:principal, ip:address or world:anyone)", s)
	}
	switch scheme {
	case "digest":
		if u, h, ok := strings.Cut(id, ":"); !ok || u == "" || h == "" {
			return Identity{}, fmt.Errorf("identity %q: a digest identity is digest:user:base64(sha1(user:password)) (zkprom config identity prints it from an auth file)", s)
		}
	case "world":
		if id != "anyone" {
			return Identity{}, fmt.Errorf("identity %q: the only world identity is world:anyone", s)
		}
	case "x509", "sasl", "ip":
	default:
		return Identity{}, fmt.Errorf("identity %q: unknown scheme %q (want digest, x509, sasl, ip or world)", s, scheme)
	}
	return Identity{Scheme: scheme, ID: id}, nil
}

// DigestIdentity is the identity ZooKeeper gives a session that added
// digest credentials user:password.
func DigestIdentity(user, password string) Identity {
	h := sha1.Sum([]byte(user + ":" + password))
	return Identity{Scheme: "digest", ID: user + ":" + base64.StdEncoding.EncodeToString(h[:])}
}

// AuthFileIdentities returns the digest identities of an auth file's
// credentials (the passwords stay in memory only).
func AuthFileIdentities(path string) ([]Identity, error) {
	creds, err := readAuthFile(path)
	if err != nil {
		return nil, err
	}
	var out []Identity
	for _, c := range creds {
		u, p, _ := strings.Cut(c, ":")
		out = append(out, DigestIdentity(u, p))
	}
	return out, nil
}

// Grant is an ACL giving each identity perms.
func Grant(perms int32, ids ...Identity) []ACL {
	out := make([]ACL, 0, len(ids))
	for _, id := range ids {
		out = append(out, ACL{Perms: perms, Scheme: id.Scheme, ID: id.ID})
	}
	return out
}

// MergeACL combines ACLs, one entry per identity with the union of its
// permissions, in a stable order.
func MergeACL(acls ...[]ACL) []ACL {
	var out []ACL
	for _, acl := range acls {
		for _, a := range acl {
			i := slices.IndexFunc(out, func(o ACL) bool { return o.Scheme == a.Scheme && o.ID == a.ID })
			if i < 0 {
				out = append(out, a)
			} else {
				out[i].Perms |= a.Perms
			}
		}
	}
	return out
}

// Excess returns what acl grants beyond allowed: for each entry, the
// permissions allowed does not give the same identity. An empty result
// means acl is within allowed.
//
// ZooKeeper shows a digest identity's hash only to clients with the admin
// right on the node; others read digest:user:x. Such an entry is matched
// by its user name alone.
func Excess(acl, allowed []ACL) []ACL {
	var out []ACL
	for _, a := range acl {
		var ok int32
		for _, b := range allowed {
			if a.Scheme == b.Scheme && (a.ID == b.ID || (a.Scheme == "digest" && maskedDigest(a.ID, b.ID))) {
				ok |= b.Perms
			}
		}
		if extra := a.Perms &^ ok; extra != 0 {
			out = append(out, ACL{Perms: extra, Scheme: a.Scheme, ID: a.ID})
		}
	}
	return out
}

// maskedDigest reports whether got is want's user with the hash hidden.
func maskedDigest(got, want string) bool {
	user, hash, _ := strings.Cut(got, ":")
	wuser, _, _ := strings.Cut(want, ":")
	return hash == "x" && user == wuser
}

// FormatACL renders an ACL as ZooKeeper's CLI does: scheme:id:perms.
func FormatACL(acl []ACL) string {
	parts := make([]string, len(acl))
	for i, a := range acl {
		parts[i] = fmt.Sprintf("%s:%s:%s", a.Scheme, a.ID, formatPerms(a.Perms))
	}
	return strings.Join(parts, ",")
}

// formatPerms renders permission bits as ZooKeeper's CLI does (cdrwa).
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
