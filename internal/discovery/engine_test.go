package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand"
	"net/url"
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
	if len(j.invalid) != 0 || j.nTargets != 3 || len(j.paths) != 3 {
		t.Errorf("invalid %v targets %d members %d", j.invalid, j.nTargets, len(j.paths))
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
// built from the final members in one go gives; and once taken, every
// entry shares its bytes with it (the JSON is held once).
func TestJobOutputIncremental(t *testing.T) {
	cfg := JobConfig{Name: "x", Format: "serverset", Paths: []string{"/s"}}
	j := newJob(cfg, slog.New(slog.DiscardHandler))
	rng := rand.New(rand.NewSource(1))
	live := map[string][]byte{}
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
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(got)))
		for _, g := range j.groups {
			for id, e := range g.targets {
				if p := uintptr(unsafe.Pointer(unsafe.SliceData(e))); p < lo || p+uintptr(len(e)) > lo+uintptr(len(got)) || cap(e) != len(e) {
					t.Fatalf("step %d: entry of %s is not a closed slice of the list", step, id)
				}
			}
		}
	}
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
