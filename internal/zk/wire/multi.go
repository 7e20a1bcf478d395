package wire

import (
	"context"
	"fmt"

	"github.com/zkprom/zkprom/internal/zk/jute"
)

// Op is one operation of a Multi transaction. Build it with CreateOp,
// DeleteOp, SetOp or CheckOp.
type Op struct {
	Type    int32
	Path    string
	Data    []byte
	ACL     []ACL
	Mode    CreateMode
	Version int32
}

// CreateOp creates a node (a nil acl means WorldAll).
func CreateOp(path string, data []byte, acl []ACL, mode CreateMode) Op {
	if acl == nil {
		acl = WorldAll
	}
	t := jute.OpCreate
	if mode == Container {
		t = jute.OpCreateContainer
	}
	return Op{Type: t, Path: path, Data: data, ACL: acl, Mode: mode}
}

// DeleteOp deletes a node at a version (-1: any).
func DeleteOp(path string, version int32) Op {
	return Op{Type: jute.OpDelete, Path: path, Version: version}
}

// SetOp sets a node's data at a version (-1: any).
func SetOp(path string, data []byte, version int32) Op {
	return Op{Type: jute.OpSetData, Path: path, Data: data, Version: version}
}

// CheckOp makes the transaction fail unless path is at version.
func CheckOp(path string, version int32) Op {
	return Op{Type: jute.OpCheck, Path: path, Version: version}
}

// OpResult is one op's outcome. After a failed transaction every result
// has an Err: the op that failed its own, the others ErrRuntimeInconsistency
// (or nil for the ops before it, as the server reports them).
type OpResult struct {
	Type int32
	Path string // created path
	Stat Stat   // setData's (and a container create's) stat
	Err  error
}

type multiRequest struct{ ops []Op }

func (m *multiRequest) Encode(e *jute.Encoder) {
	for _, op := range m.ops {
		(&jute.MultiHeader{Type: op.Type, Done: false, Err: -1}).Encode(e)
		switch op.Type {
		case jute.OpCreate, jute.OpCreate2, jute.OpCreateContainer:
			(&jute.CreateRequest{Path: op.Path, Data: op.Data, ACL: op.ACL, Flags: int32(op.Mode)}).Encode(e)
		case jute.OpDelete, jute.OpCheck:
			(&jute.PathVersion{Path: op.Path, Version: op.Version}).Encode(e)
		case jute.OpSetData:
			(&jute.SetDataRequest{Path: op.Path, Data: op.Data, Version: op.Version}).Encode(e)
		case jute.OpGetData, jute.OpGetChildren:
			(&jute.PathWatch{Path: op.Path}).Encode(e)
		}
	}
	(&jute.MultiHeader{Type: -1, Done: true, Err: -1}).Encode(e)
}

func (m *multiRequest) Decode(*jute.Decoder) {}

// multiResult is one result as read: the header and what followed it.
type multiResult struct {
	typ      int32
	err      int32
	path     string
	stat     Stat
	data     []byte
	children []string
}

// decodeMulti reads results until the closing header. Each result is
// decoded by the type its header names; an unknown type stops it.
func decodeMulti(d *jute.Decoder) []multiResult {
	var out []multiResult
	for d.Err() == nil {
		var h jute.MultiHeader
		h.Decode(d)
		if d.Err() != nil || h.Done {
			break
		}
		r := multiResult{typ: h.Type, err: h.Err}
		switch h.Type {
		case jute.OpCreate:
			r.path = d.String()
		case jute.OpCreate2, jute.OpCreateContainer, jute.OpCreateTTL:
			r.path = d.String()
			r.stat.Decode(d)
		case jute.OpDelete, jute.OpCheck:
		case jute.OpSetData:
			r.stat.Decode(d)
		case jute.OpGetData:
			r.data = d.Buffer()
			r.stat.Decode(d)
		case jute.OpGetChildren:
			r.children = d.Strings()
		case jute.OpError:
			r.err = d.Int()
		default:
			// The rest cannot be framed: the bytes left make the reply a
			// protocol error (and too few results make it one otherwise).
			return out
		}
		out = append(out, r)
	}
	return out
}

// Multi runs ops as one transaction: all or none. The error, when the
// transaction failed, names the first op that failed and why.
func (c *Conn) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	var raw []multiResult
	replied, err := c.do(ctx, &request{op: jute.OpMulti, body: &multiRequest{ops: ops}, decodeOnError: true,
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { raw = decodeMulti(d) }}, false)
	if !replied || (err != nil && raw == nil) {
		return nil, opErr("multi", "", err)
	}
	if len(raw) != len(ops) {
		return nil, fmt.Errorf("zookeeper multi: %w: %d results for %d ops", ErrProtocol, len(raw), len(ops))
	}
	res := make([]OpResult, len(raw))
	var first error
	for i, r := range raw {
		res[i] = OpResult{Type: r.typ, Path: r.path, Stat: r.stat, Err: codeErr(r.err)}
		if first == nil && r.err != 0 && Error(r.err) != ErrRuntimeInconsistency {
			first = fmt.Errorf("zookeeper multi: op %d (%s): %w", i, ops[i].Path, Error(r.err))
		}
	}
	if first == nil && err != nil {
		first = opErr("multi", "", err)
	}
	return res, first
}

// ReadOp is one read of a MultiRead: GetDataOp or GetChildrenOp.
type ReadOp struct {
	Type int32
	Path string
}

// GetDataOp reads a node's data and stat.
func GetDataOp(path string) ReadOp { return ReadOp{Type: jute.OpGetData, Path: path} }

// GetChildrenOp lists a node's children (no stat).
func GetChildrenOp(path string) ReadOp { return ReadOp{Type: jute.OpGetChildren, Path: path} }

// ReadResult is one read's outcome; errors are per read (a missing node
// does not fail the others).
type ReadResult struct {
	Data     []byte
	Stat     Stat // getData only
	Children []string
	Err      error
}

// MultiRead runs reads in one request and one reply (3.6+). It sets no
// watches. Keep the expected reply under MaxBuffer: a reply over it fails
// with ErrFrameTooLarge.
func (c *Conn) MultiRead(ctx context.Context, ops ...ReadOp) ([]ReadResult, error) {
	mops := make([]Op, len(ops))
	for i, op := range ops {
		mops[i] = Op{Type: op.Type, Path: op.Path}
	}
	var raw []multiResult
	_, err := c.do(ctx, &request{op: jute.OpMultiRead, body: &multiRequest{ops: mops}, decodeOnError: true,
		resp: func(d *jute.Decoder, _ jute.ReplyHeader) { raw = decodeMulti(d) }}, false)
	if err != nil {
		return nil, opErr("multiRead", "", err)
	}
	if len(raw) != len(ops) {
		return nil, fmt.Errorf("zookeeper multiRead: %w: %d results for %d reads", ErrProtocol, len(raw), len(ops))
	}
	res := make([]ReadResult, len(raw))
	for i, r := range raw {
		res[i] = ReadResult{Data: r.data, Stat: r.stat, Children: r.children, Err: codeErr(r.err)}
		if r.err != 0 {
			res[i].Err = fmt.Errorf("zookeeper multiRead %s: %w", ops[i].Path, Error(r.err))
		}
	}
	return res, nil
}

// multiRead sizes: a result's header (type, done, err), the data's length,
// the stat; a request's op header, path length and watch flag.
const (
	readReplyOverhead = 9 + 4 + 68
	readReqOverhead   = 9 + 4 + 1
)

// ReadBatches cuts paths into runs for MultiRead of getData whose request
// and expected reply stay under budget bytes (guessing each node's data as
// est bytes), at most maxBatch reads each: [lo, hi) index pairs in order.
func ReadBatches(paths []string, est, budget, maxBatch int) [][2]int {
	var spans [][2]int
	lo, size, reqSize := 0, 0, 0
	for i, p := range paths {
		r, q := readReplyOverhead+est, readReqOverhead+len(p)
		if i > lo && (size+r > budget || reqSize+q > budget || i-lo >= maxBatch) {
			spans = append(spans, [2]int{lo, i})
			lo, size, reqSize = i, 0, 0
		}
		size += r
		reqSize += q
	}
	if lo < len(paths) {
		spans = append(spans, [2]int{lo, len(paths)})
	}
	return spans
}
