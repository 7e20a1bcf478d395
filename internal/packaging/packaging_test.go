package packaging

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const repo = "../.."

func TestDebianVersion(t *testing.T) {
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.3", "1.2.3-1"},
		{"1.2.3", "1.2.3-1"},
		{"v1.2.3-rc.1", "1.2.3~rc.1-1"},
		{"v1.2.3-rc-1", "1.2.3~rc.1-1"},
		{"v1.2.3-4-gabc1234", "1.2.3+4.gabc1234-1"},
		{"v1.2.3-rc.1-4-gabc1234", "1.2.3~rc.1+4.gabc1234-1"},
		{"v1.2.3-dirty", "1.2.3+dirty-1"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty-1"},
		{"abc1234", "0.0.0+gabc1234-1"},
		{"abc1234-dirty", "0.0.0+gabc1234.dirty-1"},
		{"dev", ""},
		{"v1.2_3", ""},
		{"", ""},
	} {
		got, err := DebianVersion(tc.describe)
		if tc.want == "" {
			if err == nil {
				t.Errorf("DebianVersion(%q) = %q, want an error", tc.describe, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("DebianVersion(%q) = %q, %v, want %q", tc.describe, got, err, tc.want)
		}
	}
}

// Debian sorts the versions in the order the tags and commits were made.
func TestDebianVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg is not installed: the order of Debian versions is not checked")
	}
	order := []string{"abc1234", "v0.1.0-rc.1", "v0.1.0-rc.1-3-gabc1234", "v0.1.0", "v0.1.0-2-gabc1234", "v0.1.0-2-gabc1234-dirty", "v0.1.1"}
	for i := 1; i < len(order); i++ {
		a, _ := DebianVersion(order[i-1])
		b, _ := DebianVersion(order[i])
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("%s (%s) does not sort before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}

// The copyright file names every Go module linked into zkprom, and no other.
func TestCopyrightListsEveryModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}}{{end}}{{end}}", "../../cmd/zkprom").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	want := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		want[m] = true
	}
	data, err := os.ReadFile(filepath.Join(repo, "deploy/package/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^Files: (\S+)/\*$`).FindAllStringSubmatch(string(data), -1) {
		if m[1] != "std" {
			got[m[1]] = true
		}
	}
	for m := range want {
		if !got[m] {
			t.Errorf("deploy/package/copyright: no Files: %s/* paragraph (copyright and license from the module's LICENSE)", m)
		}
	}
	for m := range got {
		if !want[m] {
			t.Errorf("deploy/package/copyright: %s is not linked into zkprom any more: remove its paragraph", m)
		}
	}
}

// The version the test's binary and packages carry.
const testVersion = "v1.2.3-rc.1-4-gabc1234"

// TestPackage builds zkprom once and packages it: the tarball is unpacked
// and run; the Debian package is installed on this machine, checked and
// removed again.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds zkprom and its packages")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "zkprom")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/prometheus/common/version.Version="+testVersion, "../../cmd/zkprom")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	o := Options{Repo: repo, Binary: bin, Version: testVersion, GOARCH: runtime.GOARCH, Date: time.Unix(1700000000, 0), Out: dir}
	t.Run("tarball", func(t *testing.T) { testTarball(t, o) })
	t.Run("deb", func(t *testing.T) { testDeb(t, o) })
}

func testTarball(t *testing.T, o Options) {
	path, err := BuildTarball(o)
	if err != nil {
		t.Fatal(err)
	}
	if want := "zkprom-1.2.3-rc.1-4-gabc1234.linux-" + runtime.GOARCH + ".tar.gz"; filepath.Base(path) != want {
		t.Errorf("tarball %s, want %s", filepath.Base(path), want)
	}
	files, err := tarballFiles(repo)
	if err != nil {
		t.Fatal(err)
	}
	top := strings.TrimSuffix(filepath.Base(path), ".tar.gz") + "/"
	want := map[string]fs.FileMode{}
	for _, f := range files {
		want[top+f.Dst] = f.Mode
	}
	for _, name := range []string{"zkprom", "README.md", "docs/install.md", "exporter.yml", "sd.yml", "agent-main.args"} {
		if _, ok := want[top+name]; !ok {
			t.Errorf("the tarball's file list has no %s", name)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	unpacked := t.TempDir()
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || !strings.HasPrefix(hdr.Name, top) {
			t.Errorf("%s: owner %d:%d, want 0:0, below %s", hdr.Name, hdr.Uid, hdr.Gid, top)
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		mode, ok := want[hdr.Name]
		if !ok {
			t.Errorf("unexpected %s in the tarball", hdr.Name)
			continue
		}
		delete(want, hdr.Name)
		if fs.FileMode(hdr.Mode) != mode {
			t.Errorf("%s: mode %o, want %o", hdr.Name, hdr.Mode, mode)
		}
		if filepath.Base(hdr.Name) == "zkprom" {
			data, _ := io.ReadAll(tr)
			if err := os.WriteFile(filepath.Join(unpacked, "zkprom"), data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range want {
		t.Errorf("%s is missing from the tarball", name)
	}
	checkVersion(t, filepath.Join(unpacked, "zkprom"))
}

// checkVersion runs zkprom --version and looks for the test's version.
func checkVersion(t *testing.T, bin string) {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "zkprom, version "+testVersion+" ") {
		t.Errorf("%s --version: %v: %s, want version %s", bin, err, out, testVersion)
	}
}

func testDeb(t *testing.T, o Options) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed: the Debian package is not built (Debian and Ubuntu have it)")
	}
	deb, err := BuildDeb(o)
	if err != nil {
		t.Fatal(err)
	}
	if want := "zkprom_1.2.3~rc.1+4.gabc1234-1_"; !strings.HasPrefix(filepath.Base(deb), want) {
		t.Errorf("package %s, want %s<arch>.deb", filepath.Base(deb), want)
	}
	if _, err := exec.LookPath("lintian"); err == nil {
		out, _ := exec.Command("lintian", "--no-tag-display-limit", deb).CombinedOutput()
		t.Logf("lintian:\n%s", out)
		if regexp.MustCompile(`(?m)^E: `).Match(out) {
			t.Errorf("lintian reports errors (above)")
		}
	} else {
		t.Log("lintian is not installed: not run")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: the package is not installed (make test runs as root in CI)")
	}
	if err := exec.Command("dpkg-query", "-W", "zkprom").Run(); err == nil {
		t.Skip("a zkprom package is installed on this machine: not touching it")
	}
	for _, p := range []string{"/etc/zkprom", "/var/lib/zkprom", "/var/lib/zkprom-agent"} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists on this machine: not touching it", p)
		}
	}
	if exec.Command("getent", "passwd", "zkprom").Run() == nil {
		t.Skip("a user zkprom exists on this machine: not touching it")
	}
	files, err := debFiles(repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("dpkg", "--purge", "zkprom").Run() })
	dpkg(t, "-i", deb)

	t.Run("installed", func(t *testing.T) {
		checkVersion(t, "/usr/bin/zkprom")
		if got := query(t, "${Version} ${db:Status-Abbrev}"); got != "1.2.3~rc.1+4.gabc1234-1 ii " {
			t.Errorf("dpkg-query: %q, want version 1.2.3~rc.1+4.gabc1234-1 installed (ii)", got)
		}
		checkFiles(t, files)
		if out, err := exec.Command("getent", "passwd", "zkprom").Output(); err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), ":/nonexistent:/usr/sbin/nologin") {
			t.Errorf("user zkprom: %v %q, want a system user without home or shell", err, out)
		}
	})
	t.Run("units", func(t *testing.T) { checkUnits(t) })
	t.Run("command lines", func(t *testing.T) { checkCommandLines(t) })

	// What the operator and the units leave behind: kept on remove, gone on purge.
	leftovers := []string{"/etc/zkprom/agent.auth", "/var/lib/zkprom/sd/api.json", "/var/lib/zkprom-agent/main/state.json"}
	for _, p := range leftovers {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dpkg(t, "-r", "zkprom")
	if got := query(t, "${db:Status-Abbrev}"); got != "rc " {
		t.Errorf("after dpkg -r: status %q, want rc (removed, config files kept)", got)
	}
	for _, f := range files {
		_, err := os.Stat("/" + f.Dst)
		if f.Conffile() && err != nil {
			t.Errorf("after dpkg -r: conffile /%s is gone: %v", f.Dst, err)
		}
		if !f.Conffile() && err == nil {
			t.Errorf("after dpkg -r: /%s is still there", f.Dst)
		}
	}
	for _, p := range leftovers {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after dpkg -r: %s is gone: %v", p, err)
		}
	}
	if exec.Command("getent", "passwd", "zkprom").Run() != nil {
		t.Error("after dpkg -r: the user zkprom is gone")
	}

	dpkg(t, "--purge", "zkprom")
	if err := exec.Command("dpkg-query", "-W", "zkprom").Run(); err == nil {
		t.Error("after dpkg --purge: dpkg still knows zkprom")
	}
	for _, p := range append([]string{"/etc/zkprom", "/var/lib/zkprom", "/var/lib/zkprom-agent", "/etc/default/zkprom-agent"}, leftovers...) {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("after dpkg --purge: %s is still there", p)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if exec.Command("getent", db, "zkprom").Run() == nil {
			t.Errorf("after dpkg --purge: zkprom is still in %s", db)
		}
	}
}

func dpkg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("dpkg", args...).CombinedOutput(); err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func query(t *testing.T, format string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", format, "zkprom").Output()
	if err != nil {
		t.Fatalf("dpkg-query -W zkprom: %v", err)
	}
	return string(out)
}

// checkFiles compares what dpkg installed with the package's file list:
// every file there with its mode and owner root, nothing else, and the
// files in /etc (and only those) conffiles.
func checkFiles(t *testing.T, files []File) {
	want := map[string]fs.FileMode{
		"/usr/share/doc/zkprom/changelog.Debian.gz": 0o644,
		"/usr/share/man/man1/zkprom.1.gz":           0o644,
	}
	var conffiles []string
	for _, f := range files {
		want["/"+f.Dst] = f.Mode
		if f.Conffile() {
			conffiles = append(conffiles, "/"+f.Dst)
		}
	}
	out, err := exec.Command("dpkg", "-L", "zkprom").Output()
	if err != nil {
		t.Fatalf("dpkg -L zkprom: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("dpkg -L lists %s: %v", p, err)
			continue
		}
		if fi.IsDir() {
			continue
		}
		mode, ok := want[p]
		if !ok {
			t.Errorf("unexpected file %s in the package", p)
			continue
		}
		delete(want, p)
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), mode)
		}
		if uid, gid := owner(fi); uid != 0 || gid != 0 {
			t.Errorf("%s: owner %d:%d, want root", p, uid, gid)
		}
	}
	for p := range want {
		t.Errorf("%s was not installed", p)
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(query(t, "${Conffiles}")))
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 {
			got = append(got, fields[0])
		}
	}
	sort.Strings(got)
	sort.Strings(conffiles)
	if strings.Join(got, " ") != strings.Join(conffiles, " ") {
		t.Errorf("conffiles %v, want %v", got, conffiles)
	}
}

// The installed units, by name (instances for the templates), so that
// systemd loads them as it would: with the zkprom-.service.d drop-in.
var installedUnits = []string{"zkprom-exporter.service", "zkprom-sd.service", "zkprom-agent@main.service", "zkprom-register@example.service"}

// checkCommandLines runs each installed unit's ExecStart, as systemd would
// expand it for the instance (without $ARGS), with --help: the flags of the
// unit and of the example .args files exist, and the @file can be read.
func checkCommandLines(t *testing.T) {
	for _, u := range installedUnits {
		name, instance, _ := strings.Cut(strings.TrimSuffix(u, ".service"), "@")
		file := "/usr/lib/systemd/system/" + name + ".service"
		if instance != "" {
			file = "/usr/lib/systemd/system/" + name + "@.service"
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^ExecStart=(.*) \$ARGS$`).FindSubmatch(data)
		if m == nil {
			t.Errorf("%s: no ExecStart=... $ARGS", file)
			continue
		}
		args := strings.Fields(strings.ReplaceAll(string(m[1]), "%i", instance))
		if out, err := exec.Command(args[0], append(args[1:], "--help")...).CombinedOutput(); err != nil {
			t.Errorf("%s: %s --help: %v\n%s", u, strings.Join(args, " "), err, out)
		}
	}
}

// checkUnits runs systemd-analyze verify and security (offline) on every
// installed unit. Without systemd as PID 1, verify still parses the unit
// and its drop-ins (an unknown key or a bad value is a warning on stderr:
// an error here), checks that ExecStart's binary exists and, where man is
// installed, that the Documentation= man page does.
func checkUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed: the units are not verified")
	}
	// The check itself catches a broken unit (a misspelt value).
	broken := filepath.Join(t.TempDir(), "zkprom-broken.service")
	if err := os.WriteFile(broken, []byte("[Service]\nExecStart=/usr/bin/zkprom exporter\nProtectSystem=strictly\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verify(broken); err == nil {
		t.Fatal("systemd-analyze verify found nothing wrong with a unit with ProtectSystem=strictly: this check would miss errors")
	}
	for _, u := range installedUnits {
		if err := verify(u); err != nil {
			t.Error(err)
		}
		// The sandbox of hardening.conf applies: exposure at most 3.0
		// ("OK"; about 9.6, "UNSAFE", without it). The threshold is in tenths.
		out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=30", u).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security %s: exposure above 3.0: %v\n%s", u, err, out)
		}
	}
}

func verify(unit string) error {
	args := []string{"verify"}
	if _, err := exec.LookPath("man"); err != nil {
		args = append(args, "--man=no") // man is not installed: Documentation= is not checked
	}
	cmd := exec.Command("systemd-analyze", append(args, unit)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		return fmt.Errorf("systemd-analyze verify %s (exit: %v):\n%s", unit, err, stderr.String())
	}
	return nil
}

func owner(fi fs.FileInfo) (uid, gid uint32) {
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}
