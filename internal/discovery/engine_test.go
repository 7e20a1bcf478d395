package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/zkprom/zkprom/internal/targetgroup"
	"github.com/zkprom/zkprom/internal/zk"
)

// countingHandler counts log records by level.
type countingHandler struct {
	mu    sync.Mutex
	warns []string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.mu.Lock()
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "path" {
				h.warns = append(h.warns, a.Value.String())
			}
			return true
		})
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func ev(t zk.CacheEventType, p string, data string) zk.CacheEvent {
	e := zk.CacheEvent{Type: t, Path: p}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

func outputAddrs(t *testing.T, j *job) []string {
	t.Helper()
	b, ok := j.output()
	if !ok {
		t.Fatal("not synced")
	}
	var es []targetgroup.Group
	if err := json.Unmarshal(b, &es); err != nil {
		t.Fatalf("output %s: %v", b, err)
	}
	return addresses(es)
}

// TestJobApply drives the engine with tree changes, without ZooKeeper.
func TestJobApply(t *testing.T) {
	h := &countingHandler{}
	j := newJob(JobConfig{Name: "x", Format: "serverset", Paths: []string{"/s"}, Filter: FilterConfig{Status: []string{"ALIVE"}}}, slog.New(h))
	if _, ok := j.output(); ok {
		t.Fatal("output before sync")
	}
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{
		ev(zk.Added, "/s/a", ""),
		ev(zk.Added, "/s/a/member_1", string(member(1))),
		ev(zk.Added, "/s/a/member_2", `{}`),
		ev(zk.Added, "/s/b/member_3", `{"serviceEndpoint":{"host":"h","port":1},"status":"DEAD"}`),
	}})
	j.markSynced()
	if got := strings.Join(outputAddrs(t, j), " "); got != memberAddr(1) {
		t.Errorf("targets %s", got)
	}
	// The same bad data again (a data watch fired): counted, not logged again.
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{ev(zk.Updated, "/s/a/member_2", `{}`)}})
	if len(h.warns) != 1 || j.invalidTotal[ReasonNoAddress] != 2 || len(j.invalid) != 1 {
		t.Errorf("warnings %v, invalid total %v, invalid now %v", h.warns, j.invalidTotal, j.invalid)
	}
	// Fixed: it joins; the filtered one becomes ALIVE.
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{
		ev(zk.Updated, "/s/a/member_2", string(member(2))),
		ev(zk.Updated, "/s/b/member_3", string(member(3))),
	}})
	if got := strings.Join(outputAddrs(t, j), " "); got != strings.Join(sortedCopy([]string{memberAddr(1), memberAddr(2), memberAddr(3)}), " ") {
		t.Errorf("targets %s", got)
	}
	if len(j.invalid) != 0 || j.nTargets != 3 || j.members() != 3 {
		t.Errorf("invalid %v targets %d members %d", j.invalid, j.nTargets, j.members())
	}
	// Stale flag and removal.
	j.apply(zk.CacheBatch{Stale: true})
	if !j.stale {
		t.Error("not stale")
	}
	gen := j.gen
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{ev(zk.Removed, "/s/a/member_1", ""), ev(zk.Removed, "/s/a/member_2", ""), ev(zk.Removed, "/s/a", "")}})
	if j.stale || j.gen == gen || len(j.groups) != 1 {
		t.Errorf("stale %v gen %d groups %d", j.stale, j.gen, len(j.groups))
	}
	if got := strings.Join(outputAddrs(t, j), " "); got != memberAddr(3) {
		t.Errorf("targets %s", got)
	}
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{ev(zk.Removed, "/s/b/member_3", "")}})
	if b, _ := j.output(); string(b) != "[]" {
		t.Errorf("empty output %q", b)
	}
}

// TestJobDedupe: Dubbo interfaces of one process fold into one target,
// which follows its znodes coming and going.
func TestJobDedupe(t *testing.T) {
	j := newJob(JobConfig{Name: "d", Format: "dubbo", Paths: []string{"/dubbo"}}, slog.New(slog.DiscardHandler))
	name := func(iface, host string) string {
		return "/dubbo/" + iface + "/providers/" + url.QueryEscape("dubbo://"+host+":20880/"+iface+"?application=app&interface="+iface)
	}
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{
		ev(zk.Added, name("A", "10.0.0.1"), ""), ev(zk.Added, name("B", "10.0.0.1"), ""), ev(zk.Added, name("A", "10.0.0.2"), ""),
	}})
	j.markSynced()
	if got := strings.Join(outputAddrs(t, j), " "); got != "10.0.0.1:22222 10.0.0.2:22222" {
		t.Fatalf("targets %s", got)
	}
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{ev(zk.Removed, name("A", "10.0.0.1"), "")}})
	b, _ := j.output()
	if !strings.Contains(string(b), `",B,"`) || strings.Contains(string(b), `",A,B,"`) {
		t.Errorf("after removing A from 10.0.0.1: %s", b)
	}
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{ev(zk.Removed, name("B", "10.0.0.1"), "")}})
	if got := strings.Join(outputAddrs(t, j), " "); got != "10.0.0.2:22222" {
		t.Errorf("targets %s", got)
	}
	if j.nTargets != 1 || len(j.keyed) != 1 {
		t.Errorf("targets %d keys %d", j.nTargets, len(j.keyed))
	}
}

// TestJobOutputIncremental: after any sequence of changes, with the list
// taken in between or not, the list is byte for byte the one a job
// built from the final members in one go gives; the list points at the
// job's entries (the JSON is held once); and a list handed out stays as
// it was.
func TestJobOutputIncremental(t *testing.T) {
	cfg := JobConfig{Name: "x", Format: "serverset", Paths: []string{"/s"}}
	j := newJob(cfg, slog.New(slog.DiscardHandler))
	rng := rand.New(rand.NewSource(1))
	live := map[string][]byte{}
	var held []*list
	var heldBytes [][]byte
	j.apply(zk.CacheBatch{})
	j.markSynced()
	for step := 0; step < 300; step++ {
		var evs []zk.CacheEvent
		for k := 0; k < 1+rng.Intn(5); k++ {
			p := fmt.Sprintf("/s/svc%d/member_%d", rng.Intn(4), rng.Intn(12))
			if _, ok := live[p]; ok && rng.Intn(2) == 0 {
				delete(live, p)
				evs = append(evs, zk.CacheEvent{Type: zk.Removed, Path: p})
				continue
			}
			typ := zk.Added
			if _, ok := live[p]; ok {
				typ = zk.Updated
			}
			live[p] = member(rng.Intn(1000))
			evs = append(evs, zk.CacheEvent{Type: typ, Path: p, Data: live[p]})
		}
		sort.SliceStable(evs, func(a, b int) bool { return evs[a].Path < evs[b].Path })
		j.apply(zk.CacheBatch{Events: dedupeEvents(evs)})
		if rng.Intn(3) > 0 {
			continue // changes pile up between two reads of the list
		}
		got, _ := j.output()
		fresh := newJob(cfg, slog.New(slog.DiscardHandler))
		var all []zk.CacheEvent
		for p, d := range live {
			all = append(all, zk.CacheEvent{Type: zk.Added, Path: p, Data: d})
		}
		fresh.apply(zk.CacheBatch{Events: all})
		fresh.markSynced()
		want, _ := fresh.output()
		if !bytes.Equal(got, want) {
			t.Fatalf("step %d: list\n%s\nwant\n%s", step, got, want)
		}
		var mine, theirs []string
		j.eachMember(func(p string) { mine = append(mine, p) })
		fresh.eachMember(func(p string) { theirs = append(theirs, p) })
		slices.Sort(mine)
		slices.Sort(theirs)
		if j.members() != len(live) || fresh.members() != len(live) || !slices.Equal(mine, theirs) {
			t.Fatalf("step %d: members %d (%v), a fresh job %d (%v), want %d", step, j.members(), mine, fresh.members(), theirs, len(live))
		}
		// The list points at the job's entries: no copy of them.
		l, _, _ := j.outputGen()
		if l.Size() != int64(len(got)) {
			t.Fatalf("step %d: list of %d bytes says it has %d", step, len(got), l.Size())
		}
		shared := map[*byte]bool{}
		for _, g := range l.groups {
			for _, e := range g {
				shared[unsafe.SliceData(e)] = true
			}
		}
		for _, g := range j.groups {
			for id, e := range g.targets {
				if !shared[unsafe.SliceData(e)] {
					t.Fatalf("step %d: the list holds a copy of the entry of %s", step, id)
				}
			}
		}
		// Lists handed out stay as they were while the job changes.
		if len(held) < 5 {
			held = append(held, l)
			heldBytes = append(heldBytes, got)
		}
	}
	for i, l := range held {
		if got := l.Bytes(); !bytes.Equal(got, heldBytes[i]) {
			t.Fatalf("a list handed out changed later:\n%s\nwas\n%s", got, heldBytes[i])
		}
	}
}

// output is the job's current list as one slice.
func (j *job) output() ([]byte, bool) {
	l, _, ok := j.outputGen()
	if !ok {
		return nil, false
	}
	return l.Bytes(), true
}

// dedupeEvents keeps the last event of each path (a batch names a path
// once).
func dedupeEvents(evs []zk.CacheEvent) []zk.CacheEvent {
	var out []zk.CacheEvent
	for i, e := range evs {
		if i+1 < len(evs) && evs[i+1].Path == e.Path {
			continue
		}
		out = append(out, e)
	}
	return out
}

// TestListWriteTo: a list written out is its Bytes, of its Size, and
// valid JSON, for any shape of groups (none, empty ones, one entry, many).
func TestListWriteTo(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for range 200 {
		l := &list{size: 2}
		n := 0
		for range rng.Intn(4) {
			var g [][]byte
			for range rng.Intn(4) {
				e := fmt.Appendf(nil, `{"targets":["h%d:1"],"labels":{}}`, rng.Intn(1000))
				g = append(g, e)
				l.size += int64(len(e))
				n++
			}
			l.groups = append(l.groups, g)
		}
		l.size += int64(max(n-1, 0))
		var buf bytes.Buffer
		if _, err := l.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), l.Bytes()) || int64(buf.Len()) != l.Size() || !json.Valid(buf.Bytes()) {
			t.Fatalf("written %q (%d bytes), Bytes %q, Size %d", buf.Bytes(), buf.Len(), l.Bytes(), l.Size())
		}
	}
}

// Bytes is the JSON as one slice (for tests; zkprom writes it out).
func (l *list) Bytes() []byte {
	b := make([]byte, 0, l.size)
	for _, g := range l.groups {
		for _, e := range g {
			b = append(b, ',')
			b = append(b, e...)
		}
	}
	if len(b) == 0 {
		return []byte("[]")
	}
	b[0] = '['
	return append(b, ']')
}
