// Package atomicfile writes files that readers see whole or not at all,
// and that survive a crash once written: a temporary file in the same
// folder, fsynced, renamed over the target, and the folder fsynced.
package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile makes path hold data with the given mode. A file that already
// holds data is left alone (its mode corrected), so readers that watch it
// see no change; changed says whether it was written.
func WriteFile(path string, data []byte, mode os.FileMode) (changed bool, err error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == mode.Perm() {
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
