// Package packaging builds zkprom's Debian package (with dpkg-deb, from a
// staged tree) and its Prometheus-style release tarball from a built binary
// and the files of the repository (deploy/package and the documentation).
package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// maintainer is the Maintainer field of the package and the signature of
// its changelog (a placeholder address until the project names a contact).
const maintainer = "zkprom developers <zkprom-dev@example.org>"

// Options says what to package.
type Options struct {
	Repo    string    // the repository's top directory
	Binary  string    // the built zkprom binary
	Version string    // as `git describe --tags --always --dirty` prints it
	GOARCH  string    // the binary's architecture (amd64, arm64, ...)
	Date    time.Time // of the sources (the last commit): changelog and file times
	Out     string    // directory the package or tarball is written to
}

// File is one file of the package or tarball.
type File struct {
	Src  string // relative to the repository ("" for the binary)
	Dst  string // path inside the package or tarball
	Mode fs.FileMode
}

// Conffile reports whether dpkg keeps the file as configuration.
func (f File) Conffile() bool { return strings.HasPrefix(f.Dst, "etc/") }

const (
	units = "usr/lib/systemd/system/"
	doc   = "usr/share/doc/zkprom/"
)

// debFiles lists what the Debian package installs, except the generated
// changelog.Debian.gz and the man page's gzip (both added by BuildDeb).
func debFiles(repo string) ([]File, error) {
	files := []File{
		{"", "usr/bin/zkprom", 0o755},
		{"deploy/package/zkprom-exporter.service", units + "zkprom-exporter.service", 0o644},
		{"deploy/package/zkprom-sd.service", units + "zkprom-sd.service", 0o644},
		{"deploy/package/zkprom-agent@.service", units + "zkprom-agent@.service", 0o644},
		{"deploy/package/zkprom-register@.service", units + "zkprom-register@.service", 0o644},
		{"deploy/package/zkprom-.service.d/hardening.conf", units + "zkprom-.service.d/hardening.conf", 0o644},
		{"deploy/package/copyright", doc + "copyright", 0o644},
		{"deploy/config/prometheus.args", doc + "examples/prometheus.args", 0o644},
		{"deploy/config/prometheus-zkprom.conf", doc + "examples/prometheus-zkprom.conf", 0o644},
		{"deploy/exporter/alerts.yml", doc + "examples/alerts.yml", 0o644},
	}
	for _, u := range []string{"exporter", "sd", "agent", "register"} {
		files = append(files, File{"deploy/package/default/zkprom-" + u, "etc/default/zkprom-" + u, 0o644})
	}
	docs, err := docFiles(repo, doc)
	return append(append(files, docs...), configs("etc/zkprom/")...), err
}

// configs are the example configurations, in /etc/zkprom of the package
// and at the top of the tarball.
func configs(dir string) []File {
	return []File{
		{"deploy/exporter/exporter.yml", dir + "exporter.yml", 0o644},
		{"deploy/discovery/sd.yml", dir + "sd.yml", 0o644},
		{"deploy/package/agent-main.args", dir + "agent-main.args", 0o644},
		{"deploy/package/register-example.args", dir + "register-example.args", 0o644},
	}
}

// docFiles are the README and the docs it links to, under dir.
func docFiles(repo, dir string) ([]File, error) {
	files := []File{{"README.md", dir + "README.md", 0o644}}
	docs, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	for _, d := range docs {
		rel := "docs/" + filepath.Base(d)
		files = append(files, File{rel, dir + rel, 0o644})
	}
	return files, err
}

// tarballFiles lists the tarball's files below its top directory: the
// binary, LICENSE and NOTICE when the repository has them, the README and
// docs, and the example configurations.
func tarballFiles(repo string) ([]File, error) {
	files := []File{{"", "zkprom", 0o755}}
	for _, name := range []string{"LICENSE", "NOTICE"} {
		if _, err := os.Stat(filepath.Join(repo, name)); err == nil {
			files = append(files, File{name, name, 0o644})
		}
	}
	docs, err := docFiles(repo, "")
	return append(append(files, docs...), configs("")...), err
}

var (
	tagRE     = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.]*)(?:-([0-9A-Za-z.-]+))?$`)
	commitsRE = regexp.MustCompile(`-([0-9]+)-g([0-9a-f]+)$`) // commits since the tag
	hashRE    = regexp.MustCompile(`^[0-9a-f]{7,40}$`)        // no tag yet
)

// DebianVersion turns what `git describe --tags --always --dirty` prints
// into a Debian version that sorts the same way, with the Debian revision 1:
//
//	v1.2.3                → 1.2.3-1
//	v1.2.3-rc.1           → 1.2.3~rc.1-1     (before 1.2.3)
//	v1.2.3-4-gabc1234     → 1.2.3+4.gabc1234-1
//	abc1234 (no tag yet)  → 0.0.0+gabc1234-1
//	...-dirty             → ...+dirty or ....dirty
func DebianVersion(describe string) (string, error) {
	s, dirty := strings.CutSuffix(describe, "-dirty")
	var v string
	if hashRE.MatchString(s) {
		v = "0.0.0+g" + s
	} else {
		var since string
		if m := commitsRE.FindStringSubmatch(s); m != nil {
			s, since = strings.TrimSuffix(s, m[0]), "+"+m[1]+".g"+m[2]
		}
		m := tagRE.FindStringSubmatch(s)
		if m == nil {
			return "", fmt.Errorf("make a Debian version of %q: expected vX.Y.Z[-PRE][-N-gHASH][-dirty] or a commit hash from git describe", describe)
		}
		v = m[1]
		if m[2] != "" {
			v += "~" + strings.ReplaceAll(m[2], "-", ".")
		}
		v += since
	}
	if dirty {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			v += "+dirty"
		}
	}
	return v + "-1", nil
}

// debArch maps Go's architecture names to Debian's.
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64", "386": "i386", "arm": "armhf",
	"ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}

// debName is the file name of the Debian package.
func debName(o Options) (string, error) {
	v, err := DebianVersion(o.Version)
	if err != nil {
		return "", err
	}
	arch, ok := debArch[o.GOARCH]
	if !ok {
		return "", fmt.Errorf("no Debian architecture known for GOARCH %q", o.GOARCH)
	}
	return fmt.Sprintf("zkprom_%s_%s.deb", v, arch), nil
}

// tarballName is the file name of the tarball: zkprom-VERSION.linux-ARCH.tar.gz.
func tarballName(o Options) string {
	return fmt.Sprintf("zkprom-%s.linux-%s.tar.gz", strings.TrimPrefix(o.Version, "v"), o.GOARCH)
}

// BuildDeb stages the package's tree in a temporary directory and builds
// it with dpkg-deb (files owned by root; gzip: xz takes six times as long
// for a tenth less); it returns the package's path.
func BuildDeb(o Options) (string, error) {
	name, err := debName(o)
	if err != nil {
		return "", err
	}
	version, _ := DebianVersion(o.Version)
	stage, err := os.MkdirTemp("", "zkprom-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	files, err := debFiles(o.Repo)
	if err != nil {
		return "", err
	}
	generated := map[string][]byte{}
	if generated[doc+"changelog.Debian.gz"], err = gzipped(changelog(version, o.Date)); err != nil {
		return "", err
	}
	man, err := os.ReadFile(filepath.Join(o.Repo, "docs/zkprom.1"))
	if err != nil {
		return "", err
	}
	if generated["usr/share/man/man1/zkprom.1.gz"], err = gzipped(man); err != nil {
		return "", err
	}
	var sums, conffiles strings.Builder
	var size int64
	write := func(dst string, data []byte, mode fs.FileMode) error {
		fmt.Fprintf(&sums, "%x  %s\n", md5.Sum(data), dst)
		size += int64(len(data))
		return writeFile(filepath.Join(stage, dst), data, mode, o.Date)
	}
	for _, f := range files {
		data, err := o.read(f)
		if err != nil {
			return "", err
		}
		if err := write(f.Dst, data, f.Mode); err != nil {
			return "", err
		}
		if f.Conffile() {
			conffiles.WriteString("/" + f.Dst + "\n")
		}
	}
	for _, dst := range sortedKeys(generated) {
		if err := write(dst, generated[dst], 0o644); err != nil {
			return "", err
		}
	}
	control := fmt.Sprintf(`Package: zkprom
Version: %s
Architecture: %s
maintainer: %s
Installed-Size: %d
Depends: passwd
Suggests: prometheus
Section: net
Priority: optional
Description: Apache ZooKeeper and Prometheus, working together
 One binary, zkprom, with systemd units for its parts: the exporter of
 ZooKeeper's metrics (zkprom-exporter), discovery of Prometheus targets
 registered in ZooKeeper (zkprom-sd, zkprom-register@), and the agent that
 keeps a Prometheus's configuration from ZooKeeper (zkprom-agent@).
`, version, debArch[o.GOARCH], maintainer, (size+1023)/1024)
	debian := map[string][]byte{"control": []byte(control), "md5sums": []byte(sums.String()), "conffiles": []byte(conffiles.String())}
	for _, name := range sortedKeys(debian) {
		if err := writeFile(filepath.Join(stage, "DEBIAN", name), debian[name], 0o644, o.Date); err != nil {
			return "", err
		}
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		data, err := os.ReadFile(filepath.Join(o.Repo, "deploy/package", script))
		if err != nil {
			return "", err
		}
		if err := writeFile(filepath.Join(stage, "DEBIAN", script), data, 0o755, o.Date); err != nil {
			return "", err
		}
	}
	// Directories as dpkg should create them, whatever this umask.
	err = filepath.WalkDir(stage, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chmod(path, 0o755)
	})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(o.Out, name)
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", stage, out)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", o.Date.Unix()))
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build: %w: %s", err, msg)
	}
	return out, nil
}

// changelog is the package's changelog.Debian: one entry for this build.
func changelog(version string, date time.Time) []byte {
	return []byte(fmt.Sprintf("zkprom (%s) unstable; urgency=medium\n\n  * Built from the zkprom sources (make package).\n\n -- %s  %s\n",
		version, maintainer, date.UTC().Format(time.RFC1123Z)))
}

// BuildTarball writes zkprom-VERSION.linux-ARCH.tar.gz, its files under a
// top directory of the same name, owned by root; it returns its path.
func BuildTarball(o Options) (string, error) {
	files, err := tarballFiles(o.Repo)
	if err != nil {
		return "", err
	}
	name := tarballName(o)
	top := strings.TrimSuffix(name, ".tar.gz") + "/"
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{}
	for _, f := range files {
		data, err := o.read(f)
		if err != nil {
			return "", err
		}
		for _, d := range parents(top + f.Dst) {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: o.Date, Format: tar.FormatPAX}); err != nil {
					return "", err
				}
			}
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: top + f.Dst, Mode: int64(f.Mode), Size: int64(len(data)), ModTime: o.Date, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(o.Out, name)
	return out, os.WriteFile(out, buf.Bytes(), 0o644)
}

// parents lists the directories above a path, outermost first, each with a
// trailing slash.
func parents(p string) []string {
	var dirs []string
	for i := range p {
		if p[i] == '/' {
			dirs = append(dirs, p[:i+1])
		}
	}
	return dirs
}

func (o Options) read(f File) ([]byte, error) {
	if f.Src == "" {
		return os.ReadFile(o.Binary)
	}
	return os.ReadFile(filepath.Join(o.Repo, f.Src))
}

func writeFile(path string, data []byte, mode fs.FileMode, date time.Time) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil { // not narrowed by the umask
		return err
	}
	return os.Chtimes(path, date, date)
}

func gzipped(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := io.Copy(gz, bytes.NewReader(data)); err != nil {
		return nil, err
	}
	err := gz.Close()
	return buf.Bytes(), err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
