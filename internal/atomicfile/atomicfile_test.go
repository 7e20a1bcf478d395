package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"strings"
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

// pieces is content written in small pieces, as a list of entries is.
type pieces []string

func (p pieces) Size() int64 {
	n := 0
	for _, s := range p {
		n += len(s)
	}
	return int64(n)
}

func (p pieces) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, s := range p {
		k, err := io.WriteString(w, s)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Content in pieces is compared with the file piece by piece: the same
// bytes leave the file alone, a difference anywhere rewrites it.
func TestWritePieces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.json")
	big := strings.Repeat("x", 100<<10) // beyond one compare chunk
	for i, step := range []struct {
		content pieces
		changed bool
	}{
		{pieces{"[", big, ",", big, "]"}, true},
		{pieces{"[" + big, "," + big + "]"}, false},
		{pieces{"[", big, ";", big, "]"}, true}, // same size, one byte differs
		{pieces{"[", big, ";", big[1:], "]"}, true},
	} {
		changed, err := Write(p, step.content, 0o644)
		if err != nil || changed != step.changed {
			t.Fatalf("step %d: changed %v, %v; want %v", i, changed, err, step.changed)
		}
		got, _ := os.ReadFile(p)
		if want := strings.Join(step.content, ""); string(got) != want {
			t.Fatalf("step %d: the file holds %d bytes, want %d", i, len(got), len(want))
		}
	}
}
