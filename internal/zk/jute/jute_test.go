package jute

import (
	"errors"
	"reflect"
	"testing"
)

// records lists one value of every record type, filled in.
func records() []Record {
	st := Stat{Czxid: 1, Mzxid: 2, Ctime: 3, Mtime: 4, Version: 5, Cversion: 6, Aversion: 7, EphemeralOwner: 8, DataLength: 9, NumChildren: 10, Pzxid: 11}
	acl := []ACL{{Perms: PermAll, ID: ID{Scheme: "world", ID: "anyone"}}, {Perms: PermRead, ID: ID{Scheme: "digest", ID: "u:h"}}}
	return []Record{
		&ConnectRequest{ProtocolVersion: 0, LastZxidSeen: 42, TimeOut: 4000, SessionID: 7, Passwd: make([]byte, 16), ReadOnly: true},
		&ConnectResponse{TimeOut: 4000, SessionID: 7, Passwd: []byte("0123456789abcdef"), ReadOnly: true},
		&RequestHeader{Xid: 3, Type: OpGetData},
		&ReplyHeader{Xid: 3, Zxid: 99, Err: -101},
		&st,
		&PathWatch{Path: "/a/b", Watch: true},
		&PathRequest{Path: "/"},
		&PathVersion{Path: "/x", Version: -1},
		&GetDataResponse{Data: []byte("hello"), Stat: st},
		&StatResponse{Stat: st},
		&ChildrenResponse{Children: []string{"a", "b"}, Stat: st, WithStat: true},
		&ChildrenResponse{Children: []string{"c"}},
		&CreateRequest{Path: "/c", Data: []byte{1, 2}, ACL: acl, Flags: FlagEphemeralSequential},
		&Create2Response{Path: "/c0000000001", Stat: st},
		&SetDataRequest{Path: "/s", Data: []byte("v"), Version: 3},
		&SetACLRequest{Path: "/s", ACL: acl, Version: 1},
		&ACLResponse{ACL: acl, Stat: st},
		&AuthPacket{Scheme: "digest", Auth: []byte("u:p")},
		&GetSASLRequest{Token: []byte{}},
		&SetSASLResponse{Token: []byte("rspauth=0123")},
		&WatcherEvent{Type: 3, State: 3, Path: "/w"},
		&MultiHeader{Type: -1, Done: true, Err: -1},
		&ErrorResponse{Err: -103},
		&PathMode{Path: "/w", Mode: AddWatchPersistentRecursive},
		&StringsResponse{Strings: []string{"/e1", "/e2"}},
		&WhoAmIResponse{ClientInfo: []ClientInfo{{AuthScheme: "ip", User: "127.0.0.1"}}},
		&SetWatches2{RelativeZxid: 5, DataWatches: []string{"/d"}, ExistWatches: []string{}, ChildWatches: []string{"/c"}, PersistentWatches: []string{}, PersistentRecursiveWatches: []string{"/"}},
	}
}

func fresh(r Record) Record {
	v := reflect.New(reflect.TypeOf(r).Elem())
	if c, ok := r.(*ChildrenResponse); ok {
		v.Interface().(*ChildrenResponse).WithStat = c.WithStat
	}
	return v.Interface().(Record)
}

func TestRoundTrip(t *testing.T) {
	for _, r := range records() {
		b := Encode(r)
		got := fresh(r)
		if err := Decode(b, got); err != nil {
			t.Fatalf("%T: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%T: round trip gave %+v, want %+v", r, got, r)
		}
		// Every strict prefix is an error, never a panic.
		for n := 0; n < len(b); n++ {
			switch r.(type) {
			case *ConnectRequest, *ConnectResponse:
				if n == len(b)-1 {
					continue // the readOnly byte is optional
				}
			}
			if err := Decode(b[:n], fresh(r)); err == nil {
				t.Errorf("%T: %d of %d bytes decoded without error", r, n, len(b))
			}
		}
	}
}

func TestWireFormat(t *testing.T) {
	// Known bytes: a getData request body for "/a" with a watch, and a
	// null buffer.
	if got, want := Encode(&PathWatch{Path: "/a", Watch: true}), []byte{0, 0, 0, 2, '/', 'a', 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("PathWatch = %v, want %v", got, want)
	}
	e := NewEncoder(nil)
	e.Buffer(nil)
	if got, want := e.Bytes(), []byte{0xff, 0xff, 0xff, 0xff}; !reflect.DeepEqual(got, want) {
		t.Errorf("null buffer = %v, want %v", got, want)
	}
	var r GetDataResponse
	if err := Decode(append([]byte{0xff, 0xff, 0xff, 0xff}, make([]byte, StatSize)...), &r); err != nil || r.Data != nil {
		t.Errorf("null data: %v %v", r.Data, err)
	}
}

func TestHugeLengthsRefused(t *testing.T) {
	for _, b := range [][]byte{
		{0x7f, 0xff, 0xff, 0xff},         // a string of 2 GiB in 4 bytes
		{0x80, 0, 0, 0},                  // negative length
		{0xff, 0xff, 0xff, 0xfe},         // -2
		{0x10, 0, 0, 0, 0, 0, 0, 1, 'a'}, // count larger than the frame
	} {
		var r StringsResponse
		err := Decode(b, &r)
		if !errors.Is(err, ErrLength) {
			t.Errorf("%v: err = %v, want ErrLength", b, err)
		}
	}
}

// FuzzDecode decodes arbitrary bytes as every record: never a panic, and
// whatever decodes whole encodes back to the same bytes (booleans aside,
// which Java reads as any non-zero byte).
func FuzzDecode(f *testing.F) {
	for _, r := range records() {
		f.Add(Encode(r))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, proto := range records() {
			r := fresh(proto)
			if err := Decode(b, r); err != nil {
				continue
			}
			again := fresh(proto)
			if err := Decode(Encode(r), again); err != nil {
				t.Fatalf("%T: re-encoded record does not decode: %v", r, err)
			}
			if !reflect.DeepEqual(normalize(again), normalize(r)) {
				t.Fatalf("%T: %+v re-decoded as %+v", r, r, again)
			}
		}
	})
}

// normalize maps the null/empty distinctions that the encoder does not keep
// (vectors are always written non-null).
func normalize(r Record) Record {
	v := reflect.ValueOf(r).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Slice && f.Type().Elem().Kind() != reflect.Uint8 && f.Len() == 0 {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return r
}
