// Package jute encodes and decodes the records of ZooKeeper's client
// protocol (ZooKeeper's jute serialization: big-endian integers, int-length
// prefixed strings and buffers with -1 for null, int-count prefixed vectors).
//
// Decoding never panics and never allocates more than the input could hold:
// every length and count is checked against the bytes that remain, and the
// first problem sticks (Decoder.Err) so that a record's Decode can read field
// after field and check once.
package jute

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrShort means a record needs more bytes than the frame holds.
var ErrShort = errors.New("jute: record truncated")

// ErrLength means a length or count field is negative (other than -1 for
// null) or larger than the rest of the frame.
var ErrLength = errors.New("jute: bad length")

// Encoder appends records to a byte slice.
type Encoder struct {
	b []byte
}

// NewEncoder returns an encoder appending to buf (which may be nil).
func NewEncoder(buf []byte) *Encoder { return &Encoder{b: buf} }

// Bytes returns what was encoded.
func (e *Encoder) Bytes() []byte { return e.b }

// Len is the number of bytes encoded so far.
func (e *Encoder) Len() int { return len(e.b) }

// Reset empties the encoder, keeping its memory.
func (e *Encoder) Reset() { e.b = e.b[:0] }

// Int writes a 32-bit integer.
func (e *Encoder) Int(v int32) { e.b = binary.BigEndian.AppendUint32(e.b, uint32(v)) }

// Long writes a 64-bit integer.
func (e *Encoder) Long(v int64) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }

// Bool writes a boolean as one byte.
func (e *Encoder) Bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// String writes a ustring (never null).
func (e *Encoder) String(s string) {
	e.Int(int32(len(s)))
	e.b = append(e.b, s...)
}

// Buffer writes a buffer; nil is written as null (-1).
func (e *Encoder) Buffer(p []byte) {
	if p == nil {
		e.Int(-1)
		return
	}
	e.Int(int32(len(p)))
	e.b = append(e.b, p...)
}

// Strings writes a vector of ustrings; nil is written as an empty vector
// (ZooKeeper treats a null vector in a request as an error in places).
func (e *Encoder) Strings(v []string) {
	e.Int(int32(len(v)))
	for _, s := range v {
		e.String(s)
	}
}

// Record is anything with a jute encoding.
type Record interface {
	Encode(e *Encoder)
	Decode(d *Decoder)
}

// Decoder reads records from one frame. The first error sticks: later reads
// return zero values.
type Decoder struct {
	b   []byte
	off int
	err error
}

// NewDecoder reads from b. Decoded buffers alias b unless copied by the
// caller (strings are always copies).
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err is the first problem met, or nil.
func (d *Decoder) Err() error { return d.err }

// Remaining is the number of bytes not read yet.
func (d *Decoder) Remaining() int { return len(d.b) - d.off }

// Offset is the number of bytes read so far.
func (d *Decoder) Offset() int { return d.off }

func (d *Decoder) fail(err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%w at byte %d of %d", err, d.off, len(d.b))
	}
}

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail(ErrShort)
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

// Int reads a 32-bit integer.
func (d *Decoder) Int() int32 {
	p := d.take(4)
	if p == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(p))
}

// Long reads a 64-bit integer.
func (d *Decoder) Long() int64 {
	p := d.take(8)
	if p == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(p))
}

// Bool reads a one-byte boolean (any non-zero byte is true, as in Java).
func (d *Decoder) Bool() bool {
	p := d.take(1)
	return p != nil && p[0] != 0
}

// length reads a length or count: -1 is null (ok, -1), anything else must
// fit in what remains when each element takes at least min bytes.
func (d *Decoder) length(min int) (int, bool) {
	n := d.Int()
	if d.err != nil {
		return 0, false
	}
	if n == -1 {
		return -1, true
	}
	if n < 0 || (min > 0 && int64(n)*int64(min) > int64(len(d.b)-d.off)) {
		d.fail(fmt.Errorf("%w %d", ErrLength, n))
		return 0, false
	}
	return int(n), true
}

// String reads a ustring; null reads as "".
func (d *Decoder) String() string {
	n, ok := d.length(1)
	if !ok || n <= 0 {
		return ""
	}
	return string(d.take(n))
}

// Buffer reads a buffer; null reads as nil, empty as a non-nil empty slice.
// The slice aliases the frame.
func (d *Decoder) Buffer() []byte {
	n, ok := d.length(1)
	if !ok || n < 0 {
		return nil
	}
	if n == 0 {
		return []byte{}
	}
	return d.take(n)
}

// Strings reads a vector of ustrings; null reads as nil.
func (d *Decoder) Strings() []string {
	n, ok := d.length(4)
	if !ok || n < 0 {
		return nil
	}
	v := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		v = append(v, d.String())
	}
	return v
}

// Count reads a vector's element count when each element takes at least
// min bytes; null reads as -1. On a bad count it returns 0 and the error
// sticks.
func (d *Decoder) Count(min int) int {
	n, ok := d.length(min)
	if !ok {
		return 0
	}
	return n
}

// Encode encodes records one after the other into a new slice.
func Encode(rs ...Record) []byte {
	e := NewEncoder(nil)
	for _, r := range rs {
		r.Encode(e)
	}
	return e.Bytes()
}

// Decode decodes b into r and insists that every byte was used.
func Decode(b []byte, r Record) error {
	d := NewDecoder(b)
	r.Decode(d)
	if d.err != nil {
		return d.err
	}
	if d.Remaining() != 0 {
		return fmt.Errorf("jute: %d bytes left after %T", d.Remaining(), r)
	}
	return nil
}

// Int32Len reports whether n fits a jute length (helps encoders refuse
// values the protocol cannot carry).
func Int32Len(n int) bool { return n >= 0 && n <= math.MaxInt32 }
