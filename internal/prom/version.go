// What differs between the Prometheus versions zkprom works with (Debian
// 12's 2.42 and the current 3.x) and matters to zkprom, in one place:
// docs/prometheus-versions.md has the table.

package prom

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Version is a Prometheus or promtool release as it reports itself.
type Version struct {
	Major, Minor, Patch int
	// Text is the version as reported, e.g. "2.42.0+ds"; "" when the
	// build does not say (a plain go install stamps no version).
	Text string
}

// ParseVersion reads "MAJOR.MINOR.PATCH" and whatever follows ("+ds",
// "-rc.0"); "" is the unknown version.
func ParseVersion(s string) (Version, error) {
	v := Version{Text: strings.TrimSpace(s)}
	if v.Text == "" {
		return v, nil
	}
	parts := strings.SplitN(strings.TrimPrefix(v.Text, "v"), ".", 3)
	nums := []*int{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		if i == 2 {
			p = p[:len(p)-len(strings.TrimLeft(p, "0123456789"))]
		}
		n, err := strconv.Atoi(p)
		if err != nil || len(parts) != 3 {
			return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", s)
		}
		*nums[i] = n
	}
	return v, nil
}

// Known reports whether the build said its version.
func (v Version) Known() bool { return v.Text != "" }

func (v Version) String() string {
	if !v.Known() {
		return "unknown"
	}
	return v.Text
}

// SameRelease reports whether v and w are the same major.minor release:
// what promtool accepts, a Prometheus of another minor release may refuse
// (new or removed config keys, PromQL functions, name validation).
func (v Version) SameRelease(w Version) bool { return v.Major == w.Major && v.Minor == w.Minor }

// UIPath is the path of one of Prometheus's web pages ("targets",
// "alerts", "service-discovery"): 2.x serves its server-rendered pages
// under /classic/, 3.x has one UI at the root.
func (v Version) UIPath(page string) string {
	if v.Major < 3 {
		return "/classic/" + page
	}
	return "/" + page
}

// AutoReloadFlag is Prometheus 3's flag that makes it poll the checksum
// of its configuration and rule files and reload on a change
// (--config.auto-reload, every --config.auto-reload-interval, 30s by
// default); 2.x has no such flag.
const AutoReloadFlag = "config.auto-reload"

// BuildVersion reads the version Prometheus reports in
// /api/v1/status/buildinfo.
func (c *Client) BuildVersion(ctx context.Context) (Version, error) {
	bi, err := c.BuildInfo(ctx)
	if err != nil {
		return Version{}, err
	}
	return ParseVersion(bi.Version)
}

// BinaryVersion runs `BIN --version` (promtool or prometheus; a path or a
// name looked up in $PATH) and reads the version from its first line,
// "promtool, version 2.42.0+ds (branch: ...)".
func BinaryVersion(ctx context.Context, name string) (Version, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return Version{}, fmt.Errorf("%s not found: %w", name, err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Version{}, fmt.Errorf("run %s --version: %w: %s", bin, err, strings.TrimSpace(out.String()))
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	_, rest, ok := strings.Cut(line, "version ")
	if !ok {
		return Version{}, fmt.Errorf("%s --version: no version in %q", bin, line)
	}
	text, _, _ := strings.Cut(rest, " ") // "" when not stamped: "version  (branch: ...)"
	return ParseVersion(text)
}
