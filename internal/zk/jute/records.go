package jute

// Operation codes (ZooDefs.OpCode), the type field of a RequestHeader and of
// a MultiHeader.
const (
	OpNotification     int32 = 0
	OpCreate           int32 = 1
	OpDelete           int32 = 2
	OpExists           int32 = 3
	OpGetData          int32 = 4
	OpSetData          int32 = 5
	OpGetACL           int32 = 6
	OpSetACL           int32 = 7
	OpGetChildren      int32 = 8
	OpSync             int32 = 9
	OpPing             int32 = 11
	OpGetChildren2     int32 = 12
	OpCheck            int32 = 13
	OpMulti            int32 = 14
	OpCreate2          int32 = 15
	OpReconfig         int32 = 16
	OpCheckWatches     int32 = 17
	OpRemoveWatches    int32 = 18
	OpCreateContainer  int32 = 19
	OpDeleteContainer  int32 = 20
	OpCreateTTL        int32 = 21
	OpMultiRead        int32 = 22
	OpAuth             int32 = 100
	OpSetWatches       int32 = 101
	OpSASL             int32 = 102
	OpGetEphemerals    int32 = 103
	OpGetAllChildrenNr int32 = 104
	OpSetWatches2      int32 = 105
	OpAddWatch         int32 = 106
	OpWhoAmI           int32 = 107
	OpCreateSession    int32 = -10
	OpCloseSession     int32 = -11
	OpError            int32 = -1
)

// Reserved xids of the client protocol.
const (
	XidNotification int32 = -1
	XidPing         int32 = -2
	XidAuth         int32 = -4
	XidSetWatches   int32 = -8
)

// Create flags (CreateMode).
const (
	FlagPersistent          int32 = 0
	FlagEphemeral           int32 = 1
	FlagSequential          int32 = 2
	FlagEphemeralSequential int32 = 3
	FlagContainer           int32 = 4
	FlagTTL                 int32 = 5
	FlagSequentialTTL       int32 = 6
)

// Permission bits of an ACL.
const (
	PermRead   int32 = 1 << 0
	PermWrite  int32 = 1 << 1
	PermCreate int32 = 1 << 2
	PermDelete int32 = 1 << 3
	PermAdmin  int32 = 1 << 4
	PermAll    int32 = 0x1f
)

// Modes of addWatch.
const (
	AddWatchPersistent          int32 = 0
	AddWatchPersistentRecursive int32 = 1
)

// Watcher types of removeWatches.
const (
	WatcherChildren int32 = 1
	WatcherData     int32 = 2
	WatcherAny      int32 = 3
)

// ConnectRequest opens or resumes a session. ReadOnly is the field that 3.4+
// servers read after the password when it is there.
type ConnectRequest struct {
	ProtocolVersion int32
	LastZxidSeen    int64
	TimeOut         int32
	SessionID       int64
	Passwd          []byte
	ReadOnly        bool
}

func (r *ConnectRequest) Encode(e *Encoder) {
	e.Int(r.ProtocolVersion)
	e.Long(r.LastZxidSeen)
	e.Int(r.TimeOut)
	e.Long(r.SessionID)
	e.Buffer(r.Passwd)
	e.Bool(r.ReadOnly)
}

func (r *ConnectRequest) Decode(d *Decoder) {
	r.ProtocolVersion = d.Int()
	r.LastZxidSeen = d.Long()
	r.TimeOut = d.Int()
	r.SessionID = d.Long()
	r.Passwd = d.Buffer()
	if d.Remaining() > 0 {
		r.ReadOnly = d.Bool()
	}
}

// ConnectResponse is the server's answer: the granted timeout (0 when the
// session is gone), the session id and password, and whether the server is
// read-only (absent from servers before 3.4).
type ConnectResponse struct {
	ProtocolVersion int32
	TimeOut         int32
	SessionID       int64
	Passwd          []byte
	ReadOnly        bool
}

func (r *ConnectResponse) Encode(e *Encoder) {
	e.Int(r.ProtocolVersion)
	e.Int(r.TimeOut)
	e.Long(r.SessionID)
	e.Buffer(r.Passwd)
	e.Bool(r.ReadOnly)
}

func (r *ConnectResponse) Decode(d *Decoder) {
	r.ProtocolVersion = d.Int()
	r.TimeOut = d.Int()
	r.SessionID = d.Long()
	r.Passwd = d.Buffer()
	if d.Remaining() > 0 {
		r.ReadOnly = d.Bool()
	}
}

// RequestHeader starts every request after the handshake.
type RequestHeader struct {
	Xid  int32
	Type int32
}

func (r *RequestHeader) Encode(e *Encoder) { e.Int(r.Xid); e.Int(r.Type) }
func (r *RequestHeader) Decode(d *Decoder) { r.Xid = d.Int(); r.Type = d.Int() }

// ReplyHeader starts every reply and notification.
type ReplyHeader struct {
	Xid  int32
	Zxid int64
	Err  int32
}

func (r *ReplyHeader) Encode(e *Encoder) { e.Int(r.Xid); e.Long(r.Zxid); e.Int(r.Err) }
func (r *ReplyHeader) Decode(d *Decoder) { r.Xid = d.Int(); r.Zxid = d.Long(); r.Err = d.Int() }

// Stat is a znode's metadata.
type Stat struct {
	Czxid          int64
	Mzxid          int64
	Ctime          int64
	Mtime          int64
	Version        int32
	Cversion       int32
	Aversion       int32
	EphemeralOwner int64
	DataLength     int32
	NumChildren    int32
	Pzxid          int64
}

// StatSize is the encoded size of a Stat.
const StatSize = 68

func (s *Stat) Encode(e *Encoder) {
	e.Long(s.Czxid)
	e.Long(s.Mzxid)
	e.Long(s.Ctime)
	e.Long(s.Mtime)
	e.Int(s.Version)
	e.Int(s.Cversion)
	e.Int(s.Aversion)
	e.Long(s.EphemeralOwner)
	e.Int(s.DataLength)
	e.Int(s.NumChildren)
	e.Long(s.Pzxid)
}

func (s *Stat) Decode(d *Decoder) {
	s.Czxid = d.Long()
	s.Mzxid = d.Long()
	s.Ctime = d.Long()
	s.Mtime = d.Long()
	s.Version = d.Int()
	s.Cversion = d.Int()
	s.Aversion = d.Int()
	s.EphemeralOwner = d.Long()
	s.DataLength = d.Int()
	s.NumChildren = d.Int()
	s.Pzxid = d.Long()
}

// ID is an identity: a scheme and an id within it (world:anyone,
// digest:user:hash, x509:..., sasl:user).
type ID struct {
	Scheme string
	ID     string
}

// ACL grants Perms to an identity.
type ACL struct {
	Perms int32
	ID    ID
}

func encodeACLs(e *Encoder, acl []ACL) {
	e.Int(int32(len(acl)))
	for _, a := range acl {
		e.Int(a.Perms)
		e.String(a.ID.Scheme)
		e.String(a.ID.ID)
	}
}

func decodeACLs(d *Decoder) []ACL {
	n := d.Count(12)
	if n <= 0 {
		return nil
	}
	acl := make([]ACL, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		var a ACL
		a.Perms = d.Int()
		a.ID.Scheme = d.String()
		a.ID.ID = d.String()
		acl = append(acl, a)
	}
	return acl
}

// PathWatch is the body of getData, exists, getChildren and getChildren2.
type PathWatch struct {
	Path  string
	Watch bool
}

func (r *PathWatch) Encode(e *Encoder) { e.String(r.Path); e.Bool(r.Watch) }
func (r *PathWatch) Decode(d *Decoder) { r.Path = d.String(); r.Watch = d.Bool() }

// PathRequest is a body that is a path alone (sync, getACL, getEphemerals,
// and the answers of sync and create).
type PathRequest struct {
	Path string
}

func (r *PathRequest) Encode(e *Encoder) { e.String(r.Path) }
func (r *PathRequest) Decode(d *Decoder) { r.Path = d.String() }

// PathVersion is the body of delete and of a multi's check.
type PathVersion struct {
	Path    string
	Version int32
}

func (r *PathVersion) Encode(e *Encoder) { e.String(r.Path); e.Int(r.Version) }
func (r *PathVersion) Decode(d *Decoder) { r.Path = d.String(); r.Version = d.Int() }

// GetDataResponse is a node's data and stat.
type GetDataResponse struct {
	Data []byte
	Stat Stat
}

func (r *GetDataResponse) Encode(e *Encoder) { e.Buffer(r.Data); r.Stat.Encode(e) }
func (r *GetDataResponse) Decode(d *Decoder) { r.Data = d.Buffer(); r.Stat.Decode(d) }

// StatResponse is the answer of exists and setData.
type StatResponse struct {
	Stat Stat
}

func (r *StatResponse) Encode(e *Encoder) { r.Stat.Encode(e) }
func (r *StatResponse) Decode(d *Decoder) { r.Stat.Decode(d) }

// ChildrenResponse is the answer of getChildren (no stat) and of
// getChildren2 (with stat, WithStat set).
type ChildrenResponse struct {
	Children []string
	Stat     Stat
	WithStat bool
}

func (r *ChildrenResponse) Encode(e *Encoder) {
	e.Strings(r.Children)
	if r.WithStat {
		r.Stat.Encode(e)
	}
}

func (r *ChildrenResponse) Decode(d *Decoder) {
	r.Children = d.Strings()
	if r.WithStat {
		r.Stat.Decode(d)
	}
}

// CreateRequest creates a node (create, create2, createContainer).
type CreateRequest struct {
	Path  string
	Data  []byte
	ACL   []ACL
	Flags int32
}

func (r *CreateRequest) Encode(e *Encoder) {
	e.String(r.Path)
	e.Buffer(r.Data)
	encodeACLs(e, r.ACL)
	e.Int(r.Flags)
}

func (r *CreateRequest) Decode(d *Decoder) {
	r.Path = d.String()
	r.Data = d.Buffer()
	r.ACL = decodeACLs(d)
	r.Flags = d.Int()
}

// Create2Response is the created path (sequence number included) and stat.
type Create2Response struct {
	Path string
	Stat Stat
}

func (r *Create2Response) Encode(e *Encoder) { e.String(r.Path); r.Stat.Encode(e) }
func (r *Create2Response) Decode(d *Decoder) { r.Path = d.String(); r.Stat.Decode(d) }

// SetDataRequest replaces a node's data when its version matches (-1: any).
type SetDataRequest struct {
	Path    string
	Data    []byte
	Version int32
}

func (r *SetDataRequest) Encode(e *Encoder) { e.String(r.Path); e.Buffer(r.Data); e.Int(r.Version) }
func (r *SetDataRequest) Decode(d *Decoder) {
	r.Path = d.String()
	r.Data = d.Buffer()
	r.Version = d.Int()
}

// SetACLRequest replaces a node's ACL when its aversion matches.
type SetACLRequest struct {
	Path    string
	ACL     []ACL
	Version int32
}

func (r *SetACLRequest) Encode(e *Encoder) { e.String(r.Path); encodeACLs(e, r.ACL); e.Int(r.Version) }
func (r *SetACLRequest) Decode(d *Decoder) {
	r.Path = d.String()
	r.ACL = decodeACLs(d)
	r.Version = d.Int()
}

// ACLResponse is the answer of getACL.
type ACLResponse struct {
	ACL  []ACL
	Stat Stat
}

func (r *ACLResponse) Encode(e *Encoder) { encodeACLs(e, r.ACL); r.Stat.Encode(e) }
func (r *ACLResponse) Decode(d *Decoder) { r.ACL = decodeACLs(d); r.Stat.Decode(d) }

// AuthPacket adds credentials to the session (addAuth).
type AuthPacket struct {
	Type   int32
	Scheme string
	Auth   []byte
}

func (r *AuthPacket) Encode(e *Encoder) { e.Int(r.Type); e.String(r.Scheme); e.Buffer(r.Auth) }
func (r *AuthPacket) Decode(d *Decoder) {
	r.Type = d.Int()
	r.Scheme = d.String()
	r.Auth = d.Buffer()
}

// GetSASLRequest carries one SASL token from the client (OpCode sasl).
type GetSASLRequest struct {
	Token []byte
}

func (r *GetSASLRequest) Encode(e *Encoder) { e.Buffer(r.Token) }
func (r *GetSASLRequest) Decode(d *Decoder) { r.Token = d.Buffer() }

// SetSASLResponse carries the server's SASL token (a challenge, or the last
// word of the exchange); nil when the server has none.
type SetSASLResponse struct {
	Token []byte
}

func (r *SetSASLResponse) Encode(e *Encoder) { e.Buffer(r.Token) }
func (r *SetSASLResponse) Decode(d *Decoder) { r.Token = d.Buffer() }

// WatcherEvent is the body of a notification (xid -1).
type WatcherEvent struct {
	Type  int32
	State int32
	Path  string
}

func (r *WatcherEvent) Encode(e *Encoder) { e.Int(r.Type); e.Int(r.State); e.String(r.Path) }
func (r *WatcherEvent) Decode(d *Decoder) {
	r.Type = d.Int()
	r.State = d.Int()
	r.Path = d.String()
}

// MultiHeader precedes each op of a multi or multiRead and each result, and
// ends the list (Type -1, Done true).
type MultiHeader struct {
	Type int32
	Done bool
	Err  int32
}

func (r *MultiHeader) Encode(e *Encoder) { e.Int(r.Type); e.Bool(r.Done); e.Int(r.Err) }
func (r *MultiHeader) Decode(d *Decoder) { r.Type = d.Int(); r.Done = d.Bool(); r.Err = d.Int() }

// ErrorResponse is a failed op's result inside a multi.
type ErrorResponse struct {
	Err int32
}

func (r *ErrorResponse) Encode(e *Encoder) { e.Int(r.Err) }
func (r *ErrorResponse) Decode(d *Decoder) { r.Err = d.Int() }

// PathMode is the body of addWatch (mode) and removeWatches (watcher type).
type PathMode struct {
	Path string
	Mode int32
}

func (r *PathMode) Encode(e *Encoder) { e.String(r.Path); e.Int(r.Mode) }
func (r *PathMode) Decode(d *Decoder) { r.Path = d.String(); r.Mode = d.Int() }

// StringsResponse is a vector of strings alone (getChildren without stat,
// getEphemerals).
type StringsResponse struct {
	Strings []string
}

func (r *StringsResponse) Encode(e *Encoder) { e.Strings(r.Strings) }
func (r *StringsResponse) Decode(d *Decoder) { r.Strings = d.Strings() }

// ClientInfo is one identity of a session, as whoAmI reports it.
type ClientInfo struct {
	AuthScheme string
	User       string
}

// WhoAmIResponse lists the session's identities.
type WhoAmIResponse struct {
	ClientInfo []ClientInfo
}

func (r *WhoAmIResponse) Encode(e *Encoder) {
	e.Int(int32(len(r.ClientInfo)))
	for _, c := range r.ClientInfo {
		e.String(c.AuthScheme)
		e.String(c.User)
	}
}

func (r *WhoAmIResponse) Decode(d *Decoder) {
	n := d.Count(8)
	if n <= 0 {
		r.ClientInfo = nil
		return
	}
	r.ClientInfo = make([]ClientInfo, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		r.ClientInfo = append(r.ClientInfo, ClientInfo{AuthScheme: d.String(), User: d.String()})
	}
}

// SetWatches2 re-registers watches after a reconnect (xid -8).
type SetWatches2 struct {
	RelativeZxid               int64
	DataWatches                []string
	ExistWatches               []string
	ChildWatches               []string
	PersistentWatches          []string
	PersistentRecursiveWatches []string
}

func (r *SetWatches2) Encode(e *Encoder) {
	e.Long(r.RelativeZxid)
	e.Strings(r.DataWatches)
	e.Strings(r.ExistWatches)
	e.Strings(r.ChildWatches)
	e.Strings(r.PersistentWatches)
	e.Strings(r.PersistentRecursiveWatches)
}

func (r *SetWatches2) Decode(d *Decoder) {
	r.RelativeZxid = d.Long()
	r.DataWatches = d.Strings()
	r.ExistWatches = d.Strings()
	r.ChildWatches = d.Strings()
	r.PersistentWatches = d.Strings()
	r.PersistentRecursiveWatches = d.Strings()
}

// Empty is a body with no fields (delete's and check's results, addWatch's
// answer, whoAmI's request).
type Empty struct{}

func (Empty) Encode(*Encoder) {}
func (Empty) Decode(*Decoder) {}
