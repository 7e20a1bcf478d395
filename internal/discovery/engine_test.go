package discovery

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

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
	var es []fileSDEntry
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
