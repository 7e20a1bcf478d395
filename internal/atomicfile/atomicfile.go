// Package atomicfile writes files that readers see whole or not at all,
// and that survive a crash once written: a temporary file in the same
// folder, fsynced, renamed over the target, and the folder fsynced.
package atomicfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Content is what a file is to hold, written out on demand: a content of
// tens of MB need not be one slice.
type Content interface {
	Size() int64
	io.WriterTo
}

type bytesContent []byte

func (b bytesContent) Size() int64 { return int64(len(b)) }

func (b bytesContent) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// WriteFile makes path hold data with the given mode. A file that already
// holds data is left alone (its mode corrected), so readers that watch it
// see no change; changed says whether it was written.
func WriteFile(path string, data []byte, mode os.FileMode) (changed bool, err error) {
	return Write(path, bytesContent(data), mode)
}

// Write is WriteFile for any Content.
func Write(path string, data Content, mode os.FileMode) (changed bool, err error) {
	if fi, same := holds(path, data); same {
		if fi.Mode().Perm() == mode.Perm() {
			return false, nil
		}
		if err := os.Chmod(path, mode); err != nil {
			return false, fmt.Errorf("write %s: %w", path, err)
		}
		return false, nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 64<<10)
	_, err = data.WriteTo(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		return true, fmt.Errorf("write %s: sync folder: %w", path, err)
	}
	return true, nil
}

// holds says whether the file at path holds exactly data. It compares in
// small chunks, and not at all when the sizes differ: a file_sd list can
// be tens of MB, and reading it whole would hold it twice in memory.
func holds(path string, data Content) (os.FileInfo, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != data.Size() {
		return nil, false
	}
	c := &comparer{r: f, buf: make([]byte, 64<<10)}
	if _, err := data.WriteTo(c); err != nil {
		return nil, false
	}
	return fi, true
}

var errDiffers = errors.New("content differs")

// comparer is a Writer that fails as soon as what is written differs
// from what r holds.
type comparer struct {
	r   io.Reader
	buf []byte
}

func (c *comparer) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		n, err := io.ReadFull(c.r, c.buf[:min(len(c.buf), len(rest))])
		if err != nil || !bytes.Equal(c.buf[:n], rest[:n]) {
			return 0, errDiffers
		}
		rest = rest[n:]
	}
	return len(p), nil
}

// SyncDir fsyncs a folder, so that the names created, renamed or removed
// in it last.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
