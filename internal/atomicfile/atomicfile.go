// Package atomicfile writes files that readers see whole or not at all,
// and that survive a crash once written: a temporary file in the same
// folder, fsynced, renamed over the target, and the folder fsynced.
package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile makes path hold data with the given mode. A file that already
// holds data is left alone (its mode corrected), so readers that watch it
// see no change; changed says whether it was written.
func WriteFile(path string, data []byte, mode os.FileMode) (changed bool, err error) {
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
	_, err = f.Write(data)
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
func holds(path string, data []byte) (os.FileInfo, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(data)) {
		return nil, false
	}
	buf := make([]byte, 64<<10)
	for rest := data; len(rest) > 0; {
		n, err := io.ReadFull(f, buf[:min(len(buf), len(rest))])
		if err != nil || !bytes.Equal(buf[:n], rest[:n]) {
			return nil, false
		}
		rest = rest[n:]
	}
	return fi, true
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
