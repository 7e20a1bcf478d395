package discovery

import (
	"bufio"
	"io"
)

// list is a job's file_sd and http_sd output, a JSON array of every
// target's entry, groups by source and entries by id. It points at the
// job's entries rather than copying them: a list of 100,000 targets is
// tens of MB, and one copy beside the entries would double that. Entries
// are never changed in place, so a list handed out stays whole while the
// job moves on.
type list struct {
	groups [][][]byte // each group's entries, in order
	size   int64      // of the JSON
}

// Size is the length of the JSON.
func (l *list) Size() int64 { return l.size }

// WriteTo writes the JSON.
func (l *list) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteByte('[')
	first := true
	for _, g := range l.groups {
		for _, e := range g {
			if !first {
				bw.WriteByte(',')
			}
			first = false
			bw.Write(e)
		}
	}
	bw.WriteByte(']')
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return l.size, nil
}
