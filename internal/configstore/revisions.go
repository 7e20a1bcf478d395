package configstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/zkprom/zkprom/internal/zk"

	"github.com/zkprom/zkprom/internal/bundle"
)

// Meta describes one revision; it is the data of the revision's znode and
// never changes.
type Meta struct {
	Revision   int       `json:"-"`
	Parent     int       `json:"parent"` // the revision current pointed at when this one was pushed (0: none)
	Author     string    `json:"author"`
	Message    string    `json:"message"`
	Time       time.Time `json:"time"`
	Checksum   string    `json:"checksum"` // bundle.Bundle.Checksum
	Encoding   string    `json:"encoding"` // "tar+gzip"
	Size       int       `json:"size"`     // uncompressed
	Compressed int       `json:"compressed_size"`
	Chunks     int       `json:"chunks"`
	Files      []string  `json:"files"`
	RollbackOf int       `json:"rollback_of,omitempty"` // set by rollback: the revision whose bundle this copies
	// PushID is random, made by the push that wrote the revision: it
	// finds its revision again when the answer to the create was lost.
	// (Older zkprom ignores it: JSON fields it does not know.)
	PushID string `json:"push_id,omitempty"`
}

// ShownMessage is the message as people see it: secrets masked, and a
// rollback named as one.
func (m Meta) ShownMessage() string {
	msg := bundle.MaskSecrets(m.Message)
	if m.RollbackOf != 0 && !strings.Contains(msg, "rollback") {
		msg = fmt.Sprintf("rollback to %d: %s", m.RollbackOf, msg)
	}
	return msg
}

// Pointer is the data of the current node.
type Pointer struct {
	Revision int       `json:"revision"`
	Checksum string    `json:"checksum"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
}

// Current reads the current pointer; ErrNoRevision when nothing was pushed.
func (s *Store) Current(ctx context.Context) (Pointer, *zk.Stat, error) {
	data, st, err := s.c.Get(ctx, s.CurrentPath())
	if errors.Is(err, zk.ErrNoNode) {
		return Pointer{}, nil, fmt.Errorf("cluster %s: %w: nothing was pushed yet", s.opts.Cluster, ErrNoRevision)
	}
	if err != nil {
		return Pointer{}, nil, fmt.Errorf("read current revision of cluster %s: %w", s.opts.Cluster, err)
	}
	var p Pointer
	if err := json.Unmarshal(data, &p); err != nil {
		return Pointer{}, nil, fmt.Errorf("read current revision of cluster %s: bad data in %s: %w", s.opts.Cluster, s.CurrentPath(), err)
	}
	return p, st, nil
}

// ParsePointer decodes the current node's data.
func ParsePointer(data []byte) (Pointer, error) {
	var p Pointer
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("bad current pointer data: %w", err)
	}
	return p, nil
}

// Meta reads a revision's metadata.
func (s *Store) Meta(ctx context.Context, rev int) (Meta, error) {
	data, _, err := s.c.Get(ctx, s.RevisionPath(rev))
	if errors.Is(err, zk.ErrNoNode) {
		return Meta{}, fmt.Errorf("cluster %s revision %d: %w (pruned, or never pushed)", s.opts.Cluster, rev, ErrNoRevision)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("read cluster %s revision %d: %w", s.opts.Cluster, rev, err)
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, fmt.Errorf("read cluster %s revision %d: bad metadata: %w", s.opts.Cluster, rev, err)
	}
	m.Revision = rev
	return m, nil
}

// Revision reads a revision's metadata and whole bundle, checking its
// checksum.
func (s *Store) Revision(ctx context.Context, rev int) (Meta, *bundle.Bundle, error) {
	m, err := s.Meta(ctx, rev)
	if err != nil {
		return Meta{}, nil, err
	}
	var blob []byte
	for i := 0; i < m.Chunks; i++ {
		p := zk.Join(s.RevisionPath(rev), chunkName(i))
		d, _, err := s.c.Get(ctx, p)
		if errors.Is(err, zk.ErrNoAuth) {
			return Meta{}, nil, fmt.Errorf("read cluster %s revision %d: bundles hold secrets and only the cluster's writers and agents may read them: give their credentials (--zookeeper.auth-file): %w", s.opts.Cluster, rev, err)
		}
		if err != nil {
			return Meta{}, nil, fmt.Errorf("read cluster %s revision %d chunk %d of %d: %w", s.opts.Cluster, rev, i, m.Chunks, err)
		}
		blob = append(blob, d...)
	}
	if len(blob) != m.Compressed {
		return Meta{}, nil, fmt.Errorf("read cluster %s revision %d: %d compressed bytes, metadata says %d", s.opts.Cluster, rev, len(blob), m.Compressed)
	}
	b, err := bundle.Decode(blob)
	if err != nil {
		return Meta{}, nil, fmt.Errorf("read cluster %s revision %d: %w", s.opts.Cluster, rev, err)
	}
	if sum := b.Checksum(); sum != m.Checksum {
		return Meta{}, nil, fmt.Errorf("read cluster %s revision %d: checksum %s, metadata says %s", s.opts.Cluster, rev, sum, m.Checksum)
	}
	return m, b, nil
}

func chunkName(i int) string { return fmt.Sprintf("c-%04d", i) }

// PushMeta is what the operator says about a push.
type PushMeta struct {
	Author     string
	Message    string
	RollbackOf int
}

// PushResult is a successful push.
type PushResult struct {
	Meta      Meta
	Previous  int       // 0 when this is the cluster's first revision
	Committed time.Time // when the pointer moved (before pruning)
}

// createRevision writes a new, not yet referenced revision and returns its
// number.
func (s *Store) createRevision(ctx context.Context, b *bundle.Bundle, pm PushMeta, parent int) (Meta, error) {
	if err := b.Check(); err != nil {
		return Meta{}, err
	}
	blob, err := b.Encode()
	if err != nil {
		return Meta{}, err
	}
	m := Meta{
		Parent: parent, Author: pm.Author, Message: pm.Message, Time: time.Now().UTC(),
		Checksum: b.Checksum(), Encoding: "tar+gzip", Size: b.Size(), Compressed: len(blob),
		Chunks: (len(blob) + s.opts.ChunkSize - 1) / s.opts.ChunkSize, Files: b.Names(), RollbackOf: pm.RollbackOf,
		PushID: rand.Text(),
	}
	data, err := json.Marshal(m)
	if err != nil {
		return Meta{}, err
	}
	var created string
	err = s.settle(ctx, "creating a revision in "+s.RevisionsPath(), func(ctx context.Context) error {
		var err error
		created, err = s.c.Create(ctx, zk.Join(s.RevisionsPath(), "r-"), data, zk.PersistentSequential, s.access.ACL(KindStatus))
		return err
	}, func(ctx context.Context) (bool, error) {
		var err error
		created, err = s.findPush(ctx, parent, m.PushID)
		return created != "", err
	})
	if unknown(err) {
		return Meta{}, fmt.Errorf("%w (a revision it made is not current, and the next push prunes it)", err)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("create revision in %s: %w", s.RevisionsPath(), err)
	}
	rev, err := ParseRevision(zk.Base(created))
	if err != nil {
		return Meta{}, err
	}
	if rev == 0 {
		// The first sequence number is 0, which means "no revision":
		// take the next one.
		if err := s.deleteAll(ctx, created); err != nil {
			return Meta{}, fmt.Errorf("create revision in %s: %w", s.RevisionsPath(), err)
		}
		return s.createRevision(ctx, b, pm, parent)
	}
	m.Revision = rev
	for i := 0; i < m.Chunks; i++ {
		chunk := blob[i*s.opts.ChunkSize : min((i+1)*s.opts.ChunkSize, len(blob))]
		p := zk.Join(created, chunkName(i))
		err := s.settle(ctx, fmt.Sprintf("writing revision %d chunk %d of %d", rev, i, m.Chunks), func(ctx context.Context) error {
			_, err := s.c.Create(ctx, p, chunk, zk.Persistent, s.access.ACL(KindPrivate))
			return err
		}, func(ctx context.Context) (bool, error) {
			d, _, err := s.c.Get(ctx, p)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				return false, nil
			case err != nil:
				return false, err
			case !bytes.Equal(d, chunk):
				return false, fmt.Errorf("%s holds other data than this push wrote", p)
			}
			return true, nil
		})
		if err != nil {
			s.deleteRevision(ctx, rev)
			return Meta{}, fmt.Errorf("write revision %d chunk %d of %d: %w (the revision was discarded)", rev, i, m.Chunks, err)
		}
	}
	return m, nil
}

// findPush returns the path of the revision whose push id is id, among
// the newest revisions from after on ("" when there is none): a push's
// revision is newer than the one current named when the push began.
func (s *Store) findPush(ctx context.Context, after int, id string) (string, error) {
	revs, err := s.Revisions(ctx)
	if err != nil {
		return "", err
	}
	for i := len(revs) - 1; i >= 0 && revs[i] >= after && i >= len(revs)-findNewest; i-- {
		m, err := s.Meta(ctx, revs[i])
		if zk.OutcomeUnknown(err) {
			return "", err
		}
		if err == nil && m.PushID == id {
			return s.RevisionPath(revs[i]), nil
		}
	}
	return "", nil
}

// deleteRevision removes a revision this process made and gave up on,
// unless a pointer (current or canary) names it: a commit whose answer
// was lost may have moved one there after all. Whatever it cannot
// remove, a later push prunes.
func (s *Store) deleteRevision(ctx context.Context, rev int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	err := s.c.Sync(ctx, s.base)
	var named bool
	if err == nil {
		named, err = s.named(ctx, rev)
	}
	if named {
		s.logger.Error("not deleting a revision given up on: a pointer names it", "cluster", s.opts.Cluster, "revision", rev)
		return
	}
	if err == nil {
		err = s.deleteAll(ctx, s.RevisionPath(rev))
	}
	if err != nil {
		s.logger.Warn("could not delete revision; the next push prunes it", "cluster", s.opts.Cluster, "revision", rev, "err", err)
	}
}

// named says whether the current or the canary pointer names rev.
func (s *Store) named(ctx context.Context, rev int) (bool, error) {
	cur, _, err := s.Current(ctx)
	if err == nil && cur.Revision == rev {
		return true, nil
	}
	if err != nil && !errors.Is(err, ErrNoRevision) {
		return false, err
	}
	c, err := s.Canary(ctx)
	return c != nil && c.Revision == rev, err
}

// deleteAll removes p and what is below it, again when the answer was
// lost (a node already gone is no error).
func (s *Store) deleteAll(ctx context.Context, p string) error {
	return s.settle(ctx, "deleting "+p, func(ctx context.Context) error { return s.c.DeleteAll(ctx, p) }, nil)
}

// wasCurrent says whether the current pointer names m, or did: then the
// push that moved it on has m as its parent (it read the pointer after
// m's commit).
func (s *Store) wasCurrent(ctx context.Context, m Meta) (bool, error) {
	p, _, err := s.Current(ctx)
	if errors.Is(err, ErrNoRevision) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if p.Revision == m.Revision {
		return p.Checksum == m.Checksum, nil
	}
	for rev := p.Revision; rev > m.Revision; {
		pm, err := s.Meta(ctx, rev)
		if errors.Is(err, ErrNoRevision) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		rev = pm.Parent
		if rev == m.Revision {
			return true, nil
		}
	}
	return false, nil
}

// readCurrent returns the current pointer and its version; version -1 and
// exists=false when there is none yet.
func (s *Store) readCurrent(ctx context.Context) (Pointer, int32, bool, error) {
	p, st, err := s.Current(ctx)
	if errors.Is(err, ErrNoRevision) {
		return Pointer{}, -1, false, nil
	}
	if err != nil {
		return Pointer{}, 0, false, err
	}
	return p, st.Version, true, nil
}

// conflictErr explains who won a race.
func (s *Store) conflictErr(ctx context.Context, mine int) error {
	p, _, err := s.Current(ctx)
	if err != nil {
		return fmt.Errorf("%w (your revision %d was discarded; push again)", ErrConflict, mine)
	}
	return fmt.Errorf("%w: revision %d by %s at %s won; your revision %d was discarded: review the change (zkprom config diff) and push again",
		ErrConflict, p.Revision, p.Author, p.Time.Format(time.RFC3339), mine)
}

// Push creates a revision from b and moves the current pointer to it in
// one transaction that checks the pointer's version and that no canary
// rollout runs. Two concurrent pushes cannot both win: the loser gets
// ErrConflict and its revision is deleted. Validate the bundle first.
func (s *Store) Push(ctx context.Context, b *bundle.Bundle, pm PushMeta) (*PushResult, error) {
	if err := s.Ensure(ctx); err != nil {
		return nil, err
	}
	cur, version, exists, err := s.readCurrent(ctx)
	if err != nil {
		return nil, err
	}
	if c, err := s.Canary(ctx); err != nil {
		return nil, err
	} else if c != nil {
		return nil, fmt.Errorf("push to cluster %s: %w (revision %d by %s on %s); wait for it or stop it", s.opts.Cluster, ErrCanaryInProgress, c.Revision, c.Author, strings.Join(c.Members, ","))
	}
	m, err := s.createRevision(ctx, b, pm, cur.Revision)
	if err != nil {
		return nil, fmt.Errorf("push to cluster %s: %w", s.opts.Cluster, err)
	}
	ptr, _ := json.Marshal(Pointer{Revision: m.Revision, Checksum: m.Checksum, Author: m.Author, Time: m.Time})
	ops := []zk.Op{
		// Creating and deleting the canary node in the same transaction
		// asserts that no canary rollout started meanwhile.
		zk.CreateOp(s.CanaryPath(), nil, zk.Persistent, s.access.ACL(KindStatus)),
		zk.DeleteOp(s.CanaryPath(), -1),
	}
	if exists {
		ops = append(ops, zk.SetOp(s.CurrentPath(), ptr, version))
	} else {
		ops = append(ops, zk.CreateOp(s.CurrentPath(), ptr, zk.Persistent, s.access.ACL(KindStatus)))
	}
	err = s.settle(ctx, fmt.Sprintf("committing revision %d (moving the current pointer to it)", m.Revision), func(ctx context.Context) error {
		_, err := s.c.Multi(ctx, ops...)
		return err
	}, func(ctx context.Context) (bool, error) { return s.wasCurrent(ctx, m) })
	if unknown(err) {
		// Deleting the revision now could leave the pointer naming
		// nothing.
		return nil, fmt.Errorf("push to cluster %s: %w. Revision %d is kept: zkprom config status shows whether it is current; if it is not, push again (the next push prunes it)", s.opts.Cluster, err, m.Revision)
	}
	if err != nil {
		s.deleteRevision(ctx, m.Revision)
		return nil, s.commitErr(ctx, err, m.Revision)
	}
	committed := time.Now()
	s.logger.Debug("pushed revision", "cluster", s.opts.Cluster, "revision", m.Revision, "previous", cur.Revision, "author", m.Author)
	if err := s.Prune(ctx); err != nil {
		s.logger.Warn("could not prune history", "cluster", s.opts.Cluster, "err", err)
	}
	return &PushResult{Meta: m, Previous: cur.Revision, Committed: committed}, nil
}

func (s *Store) commitErr(ctx context.Context, err error, mine int) error {
	var me *zk.MultiError
	if errors.As(err, &me) {
		switch {
		case me.Path == s.CanaryPath() && errors.Is(err, zk.ErrNodeExists):
			c, _ := s.Canary(ctx)
			if c != nil {
				return fmt.Errorf("push to cluster %s: %w (revision %d by %s); your revision %d was discarded", s.opts.Cluster, ErrCanaryInProgress, c.Revision, c.Author, mine)
			}
			return fmt.Errorf("push to cluster %s: %w; your revision %d was discarded", s.opts.Cluster, ErrCanaryInProgress, mine)
		case me.Path == s.CurrentPath() && (errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode)):
			return fmt.Errorf("push to cluster %s: %w", s.opts.Cluster, s.conflictErr(ctx, mine))
		}
	}
	var lost *LostWriteError
	if errors.As(err, &lost) {
		return fmt.Errorf("push to cluster %s: %w; your revision %d was discarded: push again", s.opts.Cluster, err, mine)
	}
	return fmt.Errorf("push to cluster %s: move current pointer to revision %d: %w", s.opts.Cluster, mine, err)
}

// Rollback pushes a copy of an earlier revision's bundle as a new revision
// (history stays linear; agents see a newer revision). to=0 means the
// parent of the current revision.
func (s *Store) Rollback(ctx context.Context, to int, pm PushMeta) (*PushResult, error) {
	if err := s.Ensure(ctx); err != nil {
		return nil, err // a writer's work: say so before reading bundles
	}
	cur, _, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	if to == 0 {
		m, err := s.Meta(ctx, cur.Revision)
		if err != nil {
			return nil, err
		}
		to = m.Parent
		if m.RollbackOf != 0 {
			// Rolling back a rollback goes on further back.
			if rm, err := s.Meta(ctx, m.RollbackOf); err == nil {
				to = rm.Parent
			}
		}
		if to == 0 {
			return nil, fmt.Errorf("rollback cluster %s: revision %d has no earlier revision: %w", s.opts.Cluster, cur.Revision, ErrNoRevision)
		}
	}
	if to == cur.Revision {
		return nil, fmt.Errorf("rollback cluster %s: revision %d is already current", s.opts.Cluster, to)
	}
	_, b, err := s.Revision(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("rollback cluster %s: %w", s.opts.Cluster, err)
	}
	if pm.Message == "" {
		pm.Message = fmt.Sprintf("rollback to revision %d", to)
	}
	pm.RollbackOf = to
	return s.Push(ctx, b, pm)
}

// History returns the revisions from the current one back along their
// parents, newest first, as far as they are kept.
func (s *Store) History(ctx context.Context) ([]Meta, error) {
	cur, _, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	var out []Meta
	for rev := cur.Revision; rev != 0; {
		m, err := s.Meta(ctx, rev)
		if errors.Is(err, ErrNoRevision) {
			break
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
		rev = m.Parent
	}
	return out, nil
}

// Revisions lists the revision numbers stored, ascending.
func (s *Store) Revisions(ctx context.Context) ([]int, error) {
	names, _, err := s.c.Children(ctx, s.RevisionsPath())
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list revisions of cluster %s: %w", s.opts.Cluster, err)
	}
	var revs []int
	for _, n := range names {
		if r, err := ParseRevision(n); err == nil {
			revs = append(revs, r)
		}
	}
	sort.Ints(revs)
	return revs, nil
}

// Prune deletes revisions beyond the history depth: it keeps the newest
// HistoryDepth revisions of the current history, the canary's, and every
// revision a live agent reports as applied; revisions newer than the
// current one (a push in flight) are left alone. So a revision that a
// failed or killed push left behind, never current, goes with the prune
// after the next push.
func (s *Store) Prune(ctx context.Context) error {
	cur, _, err := s.Current(ctx)
	if err != nil {
		return err
	}
	keep := map[int]bool{cur.Revision: true}
	rev := cur.Revision
	for i := 0; i < s.opts.HistoryDepth && rev != 0; i++ {
		keep[rev] = true
		m, err := s.Meta(ctx, rev)
		if errors.Is(err, ErrNoRevision) {
			break
		}
		if err != nil {
			return err // not knowing the history is no reason to delete it
		}
		rev = m.Parent
	}
	if c, err := s.Canary(ctx); err != nil {
		return err
	} else if c != nil {
		keep[c.Revision] = true
		keep[c.Previous] = true
	}
	members, err := s.Members(ctx)
	if err != nil {
		return err
	}
	for _, m := range LiveMembers(members) {
		keep[m.Status.Revision] = true
	}
	revs, err := s.Revisions(ctx)
	if err != nil {
		return err
	}
	for _, r := range revs {
		if r >= cur.Revision || keep[r] {
			continue
		}
		if err := s.deleteAll(ctx, s.RevisionPath(r)); err != nil {
			return fmt.Errorf("prune revision %d of cluster %s: %w", r, s.opts.Cluster, err)
		}
		s.logger.Debug("pruned revision", "cluster", s.opts.Cluster, "revision", r)
	}
	return nil
}
