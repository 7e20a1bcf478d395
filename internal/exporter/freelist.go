package exporter

import (
	"bytes"
	"io"

	"github.com/klauspost/compress/gzip"
)

// Page buffers, buffers for four-letter answers and gzip writers are kept
// for the next scrapes in small free lists (a sync.Pool is emptied by
// every other garbage collection, which comes every few scrapes). A
// buffer that a hostile page or answer made larger than real ones is not
// kept.
var (
	pageBuffers   = bufferList(4, 4<<20)
	answerBuffers = bufferList(16, 256<<10)
	gzipWriters   = freeList[*gzip.Writer]{
		free: make(chan *gzip.Writer, 4),
		make: func() *gzip.Writer { gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed); return gz },
		keep: func(gz *gzip.Writer) bool { gz.Reset(io.Discard); return true }, // let go of the response
	}
)

// bufferList keeps up to n buffers of at most maxCap bytes.
func bufferList(n, maxCap int) freeList[*bytes.Buffer] {
	return freeList[*bytes.Buffer]{
		free: make(chan *bytes.Buffer, n),
		make: func() *bytes.Buffer { return new(bytes.Buffer) },
		keep: func(b *bytes.Buffer) bool { b.Reset(); return b.Cap() <= maxCap },
	}
}

type freeList[T any] struct {
	free chan T
	make func() T
	keep func(T) bool
}

func (l freeList[T]) get() T {
	select {
	case v := <-l.free:
		return v
	default:
		return l.make()
	}
}

func (l freeList[T]) put(v T) {
	if !l.keep(v) {
		return
	}
	select {
	case l.free <- v:
	default:
	}
}
