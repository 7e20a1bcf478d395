package wire

import (
	"context"
	"errors"
	"fmt"

	"github.com/zkprom/zkprom/internal/zk/jute"
)

// Every operation below reads what the reply decoded into only when do
// says the reply came (err nil, or a server's error code): after an ended
// context the reader may still be writing it.

// Stat, ACL and ID are jute's records.
type (
	Stat       = jute.Stat
	ACL        = jute.ACL
	ID         = jute.ID
	ClientInfo = jute.ClientInfo
)

// CreateMode says what kind of node Create makes.
type CreateMode int32

// Create modes.
const (
	Persistent           = CreateMode(jute.FlagPersistent)
	Ephemeral            = CreateMode(jute.FlagEphemeral)
	PersistentSequential = CreateMode(jute.FlagSequential)
	EphemeralSequential  = CreateMode(jute.FlagEphemeralSequential)
	// Container nodes are deleted by the server once their last child goes.
	Container = CreateMode(jute.FlagContainer)
)

// WatcherType says which watches RemoveWatches removes.
type WatcherType int32

// Watcher types. Persistent watches are removed with WatcherAny (3.8
// answers the types 4 and 5 of later versions with a marshalling error).
const (
	WatcherChildren WatcherType = 1
	WatcherData     WatcherType = 2
	WatcherAny      WatcherType = 3
)

// WorldAll is the ACL world:anyone with every permission.
var WorldAll = []ACL{{Perms: jute.PermAll, ID: ID{Scheme: "world", ID: "anyone"}}}

func opErr(op, path string, err error) error {
	if err == nil {
		return nil
	}
	if path == "" {
		return fmt.Errorf("zookeeper %s: %w", op, err)
	}
	return fmt.Errorf("zookeeper %s %s: %w", op, path, err)
}

// Get reads a node's data and stat; watch leaves a data watch.
func (c *Conn) Get(ctx context.Context, path string, watch bool) ([]byte, Stat, error) {
	var resp jute.GetDataResponse
	_, err := c.do(ctx, &request{op: jute.OpGetData, body: &jute.PathWatch{Path: path, Watch: watch}, watch: ifWatch(watch, watchData), path: path,
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return nil, Stat{}, opErr("get", path, err)
	}
	return resp.Data, resp.Stat, nil
}

// Exists reads a node's stat; ok is false (and err nil) when there is no
// such node. watch leaves a watch that fires on creation too.
func (c *Conn) Exists(ctx context.Context, path string, watch bool) (Stat, bool, error) {
	var resp jute.StatResponse
	_, err := c.do(ctx, &request{op: jute.OpExists, body: &jute.PathWatch{Path: path, Watch: watch}, watch: ifWatch(watch, watchExist), path: path,
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if errors.Is(err, ErrNoNode) {
		return Stat{}, false, nil
	}
	if err != nil {
		return Stat{}, false, opErr("exists", path, err)
	}
	return resp.Stat, true, nil
}

// Children lists a node's children and its stat (getChildren2); watch
// leaves a child watch.
func (c *Conn) Children(ctx context.Context, path string, watch bool) ([]string, Stat, error) {
	resp := jute.ChildrenResponse{WithStat: true}
	_, err := c.do(ctx, &request{op: jute.OpGetChildren2, body: &jute.PathWatch{Path: path, Watch: watch}, watch: ifWatch(watch, watchChild), path: path,
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return nil, Stat{}, opErr("children", path, err)
	}
	return resp.Children, resp.Stat, nil
}

// Create makes a node and returns its path (with the sequence number of a
// sequential node) and stat. A nil acl means WorldAll.
func (c *Conn) Create(ctx context.Context, path string, data []byte, acl []ACL, mode CreateMode) (string, Stat, error) {
	if acl == nil {
		acl = WorldAll
	}
	op := jute.OpCreate2
	if mode == Container {
		op = jute.OpCreateContainer
	}
	var resp jute.Create2Response
	_, err := c.do(ctx, &request{op: op, body: &jute.CreateRequest{Path: path, Data: data, ACL: acl, Flags: int32(mode)},
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return "", Stat{}, opErr("create", path, err)
	}
	return resp.Path, resp.Stat, nil
}

// Delete removes a node when its version matches (-1: any version).
func (c *Conn) Delete(ctx context.Context, path string, version int32) error {
	_, err := c.do(ctx, &request{op: jute.OpDelete, body: &jute.PathVersion{Path: path, Version: version}}, false)
	return opErr("delete", path, err)
}

// Set replaces a node's data when its version matches (-1: any version).
func (c *Conn) Set(ctx context.Context, path string, data []byte, version int32) (Stat, error) {
	var resp jute.StatResponse
	_, err := c.do(ctx, &request{op: jute.OpSetData, body: &jute.SetDataRequest{Path: path, Data: data, Version: version},
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return Stat{}, opErr("set", path, err)
	}
	return resp.Stat, nil
}

// Sync makes the server this session talks to catch up with the leader as
// of now (reads after it see every write committed before it).
func (c *Conn) Sync(ctx context.Context, path string) (string, error) {
	var resp jute.PathRequest
	_, err := c.do(ctx, &request{op: jute.OpSync, body: &jute.PathRequest{Path: path},
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return "", opErr("sync", path, err)
	}
	return resp.Path, nil
}

// GetACL reads a node's ACL and stat.
func (c *Conn) GetACL(ctx context.Context, path string) ([]ACL, Stat, error) {
	var resp jute.ACLResponse
	_, err := c.do(ctx, &request{op: jute.OpGetACL, body: &jute.PathRequest{Path: path},
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return nil, Stat{}, opErr("getACL", path, err)
	}
	return resp.ACL, resp.Stat, nil
}

// SetACL replaces a node's ACL when its ACL version matches (-1: any).
func (c *Conn) SetACL(ctx context.Context, path string, acl []ACL, version int32) (Stat, error) {
	var resp jute.StatResponse
	_, err := c.do(ctx, &request{op: jute.OpSetACL, body: &jute.SetACLRequest{Path: path, ACL: acl, Version: version},
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return Stat{}, opErr("setACL", path, err)
	}
	return resp.Stat, nil
}

// AddAuth adds credentials to the session ("digest", "user:password").
// Refused credentials end the connection (ErrAuthFailed), as the server
// closes it. The credentials never appear in errors.
func (c *Conn) AddAuth(ctx context.Context, scheme string, auth []byte) error {
	_, err := c.do(ctx, &request{op: jute.OpAuth, body: &jute.AuthPacket{Scheme: scheme, Auth: auth}}, false)
	return opErr("addAuth", scheme, err)
}

// AddWatch leaves a persistent watch on path (3.6+): it stays after firing
// and sees created, deleted, data and (non-recursive only) children
// changes; recursive extends it to every node below.
func (c *Conn) AddWatch(ctx context.Context, path string, recursive bool) error {
	mode, kind := jute.AddWatchPersistent, watchPersistent
	if recursive {
		mode, kind = jute.AddWatchPersistentRecursive, watchPersistentRecursive
	}
	_, err := c.do(ctx, &request{op: jute.OpAddWatch, body: &jute.PathMode{Path: path, Mode: mode}, watch: kind, path: path}, false)
	return opErr("addWatch", path, err)
}

// RemoveWatches removes this session's watches of the given type on path;
// ErrNoWatcher when there is none. The server sends no event for it (Java's
// client makes up a *WatchRemoved event itself).
func (c *Conn) RemoveWatches(ctx context.Context, path string, t WatcherType) error {
	_, err := c.do(ctx, &request{op: jute.OpRemoveWatches, body: &jute.PathMode{Path: path, Mode: int32(t)}}, false)
	return opErr("removeWatches", path, err)
}

// GetEphemerals lists the session's ephemeral nodes whose path starts with
// prefix ("/" for all), in no particular order (3.6+).
func (c *Conn) GetEphemerals(ctx context.Context, prefix string) ([]string, error) {
	var resp jute.StringsResponse
	_, err := c.do(ctx, &request{op: jute.OpGetEphemerals, body: &jute.PathRequest{Path: prefix},
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return nil, opErr("getEphemerals", prefix, err)
	}
	return resp.Strings, nil
}

// WhoAmI lists the identities the server gives this session (3.7+).
func (c *Conn) WhoAmI(ctx context.Context) ([]ClientInfo, error) {
	var resp jute.WhoAmIResponse
	_, err := c.do(ctx, &request{op: jute.OpWhoAmI, body: jute.Empty{},
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { resp.Decode(d) }}, false)
	if err != nil {
		return nil, opErr("whoAmI", "", err)
	}
	return resp.ClientInfo, nil
}

// Watches names the watches a session had, to set again on a new
// connection with SetWatches.
type Watches struct {
	Data, Exist, Child              []string // one-shot watches
	Persistent, PersistentRecursive []string
}

// setWatchesMaxBytes bounds one setWatches2 packet (the Java client cuts
// at 128 KiB too, far below any jute.maxbuffer).
const setWatchesMaxBytes = 128 << 10

// SetWatches registers watches again after the session moved to this
// connection (setWatches2, 3.6+). Events for changes after relativeZxid
// (the last zxid the client saw) are sent at once: a data watch whose node
// changed meanwhile fires, an exist watch whose node appeared fires, and
// so on. Long lists go in several packets.
func (c *Conn) SetWatches(ctx context.Context, relativeZxid int64, w Watches) error {
	var packets []*jute.SetWatches2
	cur := &jute.SetWatches2{RelativeZxid: relativeZxid}
	size := 8
	add := func(list *[]string, p string) {
		if size+4+len(p) > setWatchesMaxBytes && size > 8 {
			packets = append(packets, cur)
			cur = &jute.SetWatches2{RelativeZxid: relativeZxid}
			size = 8
		}
		*list = append(*list, p)
		size += 4 + len(p)
	}
	for _, p := range w.Data {
		add(&cur.DataWatches, p)
	}
	for _, p := range w.Exist {
		add(&cur.ExistWatches, p)
	}
	for _, p := range w.Child {
		add(&cur.ChildWatches, p)
	}
	for _, p := range w.Persistent {
		add(&cur.PersistentWatches, p)
	}
	for _, p := range w.PersistentRecursive {
		add(&cur.PersistentRecursiveWatches, p)
	}
	packets = append(packets, cur)
	for _, sw := range packets {
		if _, err := c.do(ctx, &request{op: jute.OpSetWatches2, body: sw}, false); err != nil {
			return opErr("setWatches2", "", err)
		}
	}
	return nil
}

func ifWatch(watch bool, k watchKind) watchKind {
	if watch {
		return k
	}
	return 0
}
