// Package bundle is what a Prometheus configuration bundle is: its files
// (prometheus.yml, rule files, the fleet's shards.yml and leader.yml), its
// placeholders, its encoding and checksum, and how it is validated,
// masked for printing and diffed. It speaks no ZooKeeper: the configstore
// keeps bundles there, the agent applies them, and the push validates
// them here, the fleet files included (shards.yml's jobs are checked as
// zkprom sd jobs, so bundle reuses discovery's job settings).
package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/zkprom/zkprom/internal/atomicfile"
)

// MainFile is the file of a bundle that Prometheus is started with.
const MainFile = "prometheus.yml"

// Bundle files of the fleet part (sharding and HA), read by the agent.
const (
	// ShardsFile declares the sharded jobs of a cluster.
	ShardsFile = "shards.yml"
	// LeaderFile is the leader-only overlay: its top-level keys replace
	// those of prometheus.yml on the leader of each HA group.
	LeaderFile = "leader.yml"
)

// MaxBundleSize bounds the uncompressed size of a bundle.
const MaxBundleSize = 64 << 20

// Bundle is one complete configuration: prometheus.yml plus every file it
// uses (rule files, and anything else the bundle carries), by slash path
// relative to the bundle's directory.
type Bundle struct {
	Files map[string][]byte
}

// LoadDir reads every regular file below dir into a bundle. Hidden files
// and directories (starting with ".") are left out; symlinks are followed
// only when they point at regular files.
func LoadDir(dir string) (*Bundle, error) {
	b := &Bundle{Files: map[string][]byte{}}
	total := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		total += len(data)
		if total > MaxBundleSize {
			return fmt.Errorf("bundle is larger than %d bytes", MaxBundleSize)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b.Files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read bundle directory %s: %w", dir, err)
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("read bundle directory %s: %w", dir, err)
	}
	return b, nil
}

// Check verifies that the bundle has prometheus.yml and only clean
// relative paths.
func (b *Bundle) Check() error {
	if _, ok := b.Files[MainFile]; !ok {
		return fmt.Errorf("bundle has no %s at its top level", MainFile)
	}
	for name := range b.Files {
		if err := checkName(name); err != nil {
			return err
		}
	}
	return nil
}

func checkName(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("bad file name %q in bundle: want a clean relative path", name)
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return fmt.Errorf("bad file name %q in bundle: hidden files are not allowed", name)
		}
	}
	return nil
}

// Names returns the file names, sorted.
func (b *Bundle) Names() []string {
	names := make([]string, 0, len(b.Files))
	for n := range b.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Size is the total uncompressed size.
func (b *Bundle) Size() int {
	n := 0
	for _, d := range b.Files {
		n += len(d)
	}
	return n
}

// Checksum is "sha256:" and the hex SHA-256 over every file's name and
// content in name order: it does not depend on compression.
func (b *Bundle) Checksum() string {
	h := sha256.New()
	for _, n := range b.Names() {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b.Files[n]))
		h.Write(b.Files[n])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Encode returns the bundle as a gzip-compressed tar archive, byte for
// byte the same for the same files.
func (b *Bundle) Encode() ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for _, n := range b.Names() {
		d := b.Files[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(d)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, fmt.Errorf("encode bundle file %s: %w", n, err)
		}
		if _, err := tw.Write(d); err != nil {
			return nil, fmt.Errorf("encode bundle file %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode reverses Encode.
func Decode(data []byte) (*Bundle, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decode bundle: %w", err)
	}
	tr := tar.NewReader(io.LimitReader(zr, MaxBundleSize*2))
	b := &Bundle{Files: map[string][]byte{}}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decode bundle: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("decode bundle: %s is not a regular file", h.Name)
		}
		if err := checkName(h.Name); err != nil {
			return nil, fmt.Errorf("decode bundle: %w", err)
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("decode bundle file %s: %w", h.Name, err)
		}
		b.Files[h.Name] = d
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("decode bundle: %w", err)
	}
	return b, nil
}

// WriteDir writes the bundle's files below dir (which must not exist yet
// or be empty), every file fsynced, then the directories. Files and
// directories are for their owner only: a bundle holds secrets.
func (b *Bundle) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dirs := map[string]bool{dir: true}
	for _, n := range b.Names() {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		dirs[filepath.Dir(p)] = true
		if err := writeSynced(p, b.Files[n], 0o600); err != nil {
			return err
		}
	}
	for d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func writeSynced(p string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Placeholders that a bundle may use for what differs between servers.
// Each agent fills them in before it writes the files; everything else
// (including Prometheus's own ${1} and $1 in relabel replacements) stays
// as it is.
const (
	PlaceholderMember      = "ZKPROM_MEMBER"       // the agent's member name
	PlaceholderCluster     = "ZKPROM_CLUSTER"      // the cluster name
	PlaceholderConfigDir   = "ZKPROM_CONFIG_DIR"   // the agent's --config-dir
	PlaceholderRevisionDir = "ZKPROM_REVISION_DIR" // the directory of this revision
	PlaceholderRevision    = "ZKPROM_REVISION"     // the revision number
)

var placeholderRE = regexp.MustCompile(`\$\{(ZKPROM_[A-Za-z0-9_]*)\}`)

// Vars are the values of the placeholders.
type Vars struct {
	Member, Cluster, ConfigDir, RevisionDir string
	Revision                                int
}

func (v Vars) lookup(name string) (string, bool) {
	switch name {
	case PlaceholderMember:
		return v.Member, true
	case PlaceholderCluster:
		return v.Cluster, true
	case PlaceholderConfigDir:
		return v.ConfigDir, true
	case PlaceholderRevisionDir:
		return v.RevisionDir, true
	case PlaceholderRevision:
		return strconv.Itoa(v.Revision), true
	}
	return "", false
}

// Render returns a copy of the bundle with every ${ZKPROM_*} placeholder
// filled in; an unknown ZKPROM_ placeholder is an error.
func (b *Bundle) Render(v Vars) (*Bundle, error) {
	out := &Bundle{Files: make(map[string][]byte, len(b.Files))}
	var errs []error
	for _, n := range b.Names() {
		d := b.Files[n]
		if !bytes.Contains(d, []byte("${ZKPROM_")) {
			out.Files[n] = d
			continue
		}
		out.Files[n] = placeholderRE.ReplaceAllFunc(d, func(m []byte) []byte {
			name := string(m[2 : len(m)-1])
			val, ok := v.lookup(name)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown placeholder ${%s} (known: ${%s}, ${%s}, ${%s}, ${%s}, ${%s})", n, name,
					PlaceholderMember, PlaceholderCluster, PlaceholderConfigDir, PlaceholderRevisionDir, PlaceholderRevision))
				return m
			}
			return []byte(val)
		})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
