package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	for i, step := range []struct {
		data    string
		mode    os.FileMode
		changed bool
	}{
		{"one", 0o600, true},
		{"one", 0o600, false}, // same content: left alone
		{"one", 0o644, false}, // same content, other mode: mode corrected, not rewritten
		{"two", 0o644, true},
		{"", 0o600, true},
	} {
		changed, err := WriteFile(p, []byte(step.data), step.mode)
		if err != nil || changed != step.changed {
			t.Fatalf("step %d: changed %v, %v; want %v", i, changed, err, step.changed)
		}
		got, _ := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if string(got) != step.data || fi.Mode().Perm() != step.mode {
			t.Fatalf("step %d: %q %v, want %q %v", i, got, fi.Mode().Perm(), step.data, step.mode)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// A folder that cannot be written keeps the old file and no temporary.
func TestWriteFileFails(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	if _, err := WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if _, err := WriteFile(p, []byte("new"), 0o600); err == nil {
		t.Fatal("no error writing into a read-only folder")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("file is %q, want the old content", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("entries: %v", entries)
	}
	if _, err := WriteFile(filepath.Join(dir, "missing", "b"), nil, 0o600); err == nil {
		t.Error("no error for a missing folder")
	}
}
