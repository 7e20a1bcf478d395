package discovery

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/zkprom/zkprom/internal/zk"
)

// TestHTTPSD checks the answers Prometheus's http_sd needs, without
// ZooKeeper.
func TestHTTPSD(t *testing.T) {
	m, err := NewManager(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	j := newJob(JobConfig{Name: "a", Format: "serverset", Paths: []string{"/a"}}, slog.New(slog.DiscardHandler))
	m.jobs["a"] = &runningJob{j: j, done: make(chan struct{})}
	srv := httptest.NewServer(m)
	defer srv.Close()
	get := func(method, path, etag string) (*http.Response, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if r, _ := get("GET", "/sd/a", ""); r.StatusCode != 503 {
		t.Errorf("before sync: %d", r.StatusCode)
	}
	if ok, waiting := m.Ready(); ok || len(waiting) != 1 {
		t.Errorf("ready before sync: %v %v", ok, waiting)
	}
	j.markSynced()
	if ok, _ := m.Ready(); !ok {
		t.Error("not ready after sync")
	}
	r, body := get("GET", "/sd/a", "")
	if r.StatusCode != 200 || body != "[]" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("empty: %d %q %q", r.StatusCode, body, r.Header.Get("Content-Type"))
	}
	etag := r.Header.Get("ETag")
	if r, _ := get("GET", "/sd/a", etag); r.StatusCode != 304 {
		t.Errorf("unchanged with If-None-Match: %d", r.StatusCode)
	}
	j.apply(zk.CacheBatch{Events: []zk.CacheEvent{ev(zk.Added, "/a/member_1", string(member(1)))}})
	r, body = get("GET", "/sd/a", etag)
	if r.StatusCode != 200 || r.Header.Get("ETag") == etag || body == "[]" {
		t.Errorf("changed: %d %q", r.StatusCode, body)
	}
	j.apply(zk.CacheBatch{Stale: true})
	if r, _ := get("GET", "/sd/a", ""); r.StatusCode != 200 || r.Header.Get("X-Zkprom-Stale") != "true" {
		t.Errorf("stale: %d %v", r.StatusCode, r.Header)
	}
	if r, _ := get("HEAD", "/sd/a", ""); r.StatusCode != 200 {
		t.Errorf("HEAD: %d", r.StatusCode)
	}
	if r, _ := get("POST", "/sd/a", ""); r.StatusCode != 405 {
		t.Errorf("POST: %d", r.StatusCode)
	}
	for _, p := range []string{"/sd/b", "/sd/"} {
		if r, _ := get("GET", p, ""); r.StatusCode != 404 {
			t.Errorf("%s: %d", p, r.StatusCode)
		}
	}
}
