package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/zkprom/zkprom/internal/atomicfile"
	"github.com/zkprom/zkprom/internal/bundle"
	"github.com/zkprom/zkprom/internal/configstore"
)

// On-disk layout below --config-dir (DIR):
//
//	DIR/current -> revisions/r-0000000012   symlink, swapped by rename
//	DIR/revisions/r-0000000012/              a complete, rendered revision
//	DIR/revisions/r-0000000012/.zkprom/manifest.json
//	DIR/.staging-r-0000000012-<pid>/         being written (removed at start)
//	DIR/state.json                           last applied and last failed revision
const (
	currentLink  = "current"
	revisionsDir = "revisions"
	stagingPfx   = ".staging-"
	stateFile    = "state.json"
	manifestDir  = ".zkprom"
	manifestFile = "manifest.json"
)

// manifest is written into each revision directory: which revision it is
// and the checksum of every rendered file, so that "whole" can be checked.
type manifest struct {
	Revision int               `json:"revision"`
	Checksum string            `json:"checksum"` // of the bundle as pushed
	Member   string            `json:"member"`
	Files    map[string]string `json:"files"` // name => sha256 of the rendered file
	Written  time.Time         `json:"written"`
}

// savedState is what the agent remembers across restarts (DIR/state.json).
type savedState struct {
	Applied        int       `json:"applied"`
	Checksum       string    `json:"checksum,omitempty"`
	AppliedAt      time.Time `json:"applied_at,omitzero"`
	FailedRevision int       `json:"failed_revision,omitempty"`
	FailedStep     string    `json:"failed_step,omitempty"`
	FailedError    string    `json:"failed_error,omitempty"`
}

type disk struct {
	dir string
	// onLink, when set, is called after every attempt to re-point
	// DIR/current (the shards then read shards.yml of what is live).
	onLink func()
}

func (d disk) revDir(rev int) string {
	return filepath.Join(d.dir, revisionsDir, configstore.RevisionName(rev))
}
func (d disk) current() string { return filepath.Join(d.dir, currentLink) }

func (d disk) init() error {
	// Rendered revisions hold the bundle's secrets: only this user (the
	// one Prometheus runs as) reads them.
	if err := os.MkdirAll(filepath.Join(d.dir, revisionsDir), 0o700); err != nil {
		return fmt.Errorf("create config directory %s: %w", d.dir, err)
	}
	if err := os.Chmod(filepath.Join(d.dir, revisionsDir), 0o700); err != nil {
		return fmt.Errorf("restrict %s: %w", filepath.Join(d.dir, revisionsDir), err)
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("read config directory %s: %w", d.dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stagingPfx) || strings.HasPrefix(e.Name(), ".current-") {
			if err := os.RemoveAll(filepath.Join(d.dir, e.Name())); err != nil {
				return fmt.Errorf("remove leftover %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// linked returns the revision DIR/current points at (0 when none).
func (d disk) linked() (int, error) {
	t, err := os.Readlink(d.current())
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read symlink %s: %w", d.current(), err)
	}
	rev, err := configstore.ParseRevision(strings.TrimSuffix(filepath.Base(t), leaderSuffix))
	if err != nil || filepath.Dir(t) != revisionsDir {
		return 0, nil // not one of ours (e.g. a bootstrap configuration)
	}
	return rev, nil
}

// linkTarget returns what DIR/current points at ("" when missing).
func (d disk) linkTarget() string {
	t, _ := os.Readlink(d.current())
	return t
}

// relRevDir is a revision directory as the symlink names it.
func relRevDir(rev int) string { return filepath.Join(revisionsDir, configstore.RevisionName(rev)) }

func (d disk) readState() (savedState, error) {
	var s savedState
	data, err := os.ReadFile(filepath.Join(d.dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read agent state: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("read agent state %s: %w", filepath.Join(d.dir, stateFile), err)
	}
	return s, nil
}

func (d disk) writeState(s savedState) error {
	data, _ := json.MarshalIndent(s, "", "  ")
	return writeAtomic(filepath.Join(d.dir, stateFile), data)
}

// writeAtomic writes a file readable by its owner only, atomically.
func writeAtomic(p string, data []byte) error {
	_, err := atomicfile.WriteFile(p, data, 0o600)
	return err
}

// complete reports whether the revision directory exists with a manifest
// for this revision and checksum and every file matches it.
func (d disk) complete(rev int, checksum string) bool { return d.completeVariant(rev, false, checksum) }

// completeVariant is complete for a revision or its leader variant.
func (d disk) completeVariant(rev int, leader bool, checksum string) bool {
	m, err := readManifest(d.variantDir(rev, leader))
	if err != nil || m.Revision != rev || m.Checksum != checksum {
		return false
	}
	if _, marked := m.Files[bundle.LeaderMarker]; leader && !marked {
		return false // laid down by an agent from before the marker
	}
	return verifyDir(d.variantDir(rev, leader), m) == nil
}

// readManifest reads a revision directory's manifest.
func readManifest(dir string) (manifest, error) {
	var m manifest
	data, err := os.ReadFile(filepath.Join(dir, manifestDir, manifestFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("read manifest of %s: %w", dir, err)
	}
	return m, nil
}

// verifyDir checks every file of a revision directory against its
// manifest.
func verifyDir(dir string, m manifest) error {
	for name, sum := range m.Files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return err
		}
		if fileSum(data) != sum {
			return fmt.Errorf("%s/%s does not match its manifest", dir, name)
		}
	}
	return nil
}

func fileSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// stage writes the rendered bundle into a staging directory and renames
// it to its final place, so a revision directory is always whole.
func (d disk) stage(rev int, checksum, member string, rendered *bundle.Bundle) error {
	return d.stageVariant(rev, false, checksum, member, rendered)
}

// stageVariant is stage for a revision or its leader variant.
func (d disk) stageVariant(rev int, leader bool, checksum, member string, rendered *bundle.Bundle) error {
	final := d.variantDir(rev, leader)
	if _, err := os.Stat(final); err == nil {
		// Left over from an earlier attempt whose content no longer
		// matches (complete() said no): replace it, unless it is live.
		if d.linkTarget() == relVariantDir(rev, leader) {
			return fmt.Errorf("revision directory %s is live but does not match revision %d", final, rev)
		}
		if err := os.RemoveAll(final); err != nil {
			return err
		}
	}
	staging := filepath.Join(d.dir, fmt.Sprintf("%s%s-%d", stagingPfx, configstore.RevisionName(rev), os.Getpid()))
	os.RemoveAll(staging)
	if err := rendered.WriteDir(staging); err != nil {
		os.RemoveAll(staging)
		return fmt.Errorf("write revision %d to %s: %w", rev, staging, err)
	}
	m := manifest{Revision: rev, Checksum: checksum, Member: member, Files: map[string]string{}, Written: time.Now().UTC()}
	for n, data := range rendered.Files {
		m.Files[n] = fileSum(data)
	}
	mdata, _ := json.MarshalIndent(m, "", "  ")
	if err := os.MkdirAll(filepath.Join(staging, manifestDir), 0o700); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(staging, manifestDir, manifestFile), mdata); err != nil {
		os.RemoveAll(staging)
		return err
	}
	if err := atomicfile.SyncDir(staging); err != nil {
		return err
	}
	if err := os.Rename(staging, final); err != nil {
		os.RemoveAll(staging)
		return fmt.Errorf("move revision %d into place: %w", rev, err)
	}
	return atomicfile.SyncDir(filepath.Join(d.dir, revisionsDir))
}

// link points DIR/current at a revision directory atomically: a new
// symlink is made beside it and renamed over it. rev 0 removes the link.
func (d disk) link(rev int) error { return d.linkTo(relRevDir(rev)) }

// linkTo points DIR/current at target ("" removes the link).
func (d disk) linkTo(target string) error {
	if d.onLink != nil {
		defer d.onLink()
	}
	if target == "" {
		if err := os.Remove(d.current()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return atomicfile.SyncDir(d.dir)
	}
	tmp := filepath.Join(d.dir, fmt.Sprintf(".current-%d", os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("create symlink to %s: %w", target, err)
	}
	if err := os.Rename(tmp, d.current()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("swap %s to %s: %w", d.current(), target, err)
	}
	return atomicfile.SyncDir(d.dir)
}

// prune removes revision directories beyond keep, never the ones in live.
func (d disk) prune(keep int, live ...int) error {
	entries, err := os.ReadDir(filepath.Join(d.dir, revisionsDir))
	if err != nil {
		return err
	}
	var revs []int
	for _, e := range entries {
		if r, err := configstore.ParseRevision(e.Name()); err == nil && e.IsDir() {
			revs = append(revs, r)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(revs)))
	isLive := map[int]bool{}
	for _, l := range live {
		isLive[l] = true
	}
	for i, r := range revs {
		if i < keep || isLive[r] {
			continue
		}
		if err := os.RemoveAll(d.revDir(r)); err != nil {
			return err
		}
	}
	return nil
}
