package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// sampleJobs are the zkprom sd jobs whose targets are the sample
// registrations: nothing real runs there, so the demo answers for them.
var sampleJobs = []string{"spring", "dubbo", "kafka"}

// sampleAddrs asks zkprom sd for the targets of the sample jobs, waiting
// until each job has found its registrations.
func sampleAddrs(ctx context.Context) ([]string, error) {
	var addrs []string
	for _, job := range sampleJobs {
		u := "http://" + sdAddr + "/sd/" + job
		deadline := time.Now().Add(30 * time.Second)
		for {
			var groups []struct {
				Targets []string `json:"targets"`
			}
			if err := getJSON(ctx, u, &groups); err == nil && len(groups) > 0 {
				for _, g := range groups {
					addrs = append(addrs, g.Targets...)
				}
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, fmt.Errorf("%s listed no target within 30s (see sd.log in the demo directory)", u)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}

// serveTargets answers every path of each address with a few metrics of
// its own (a scrape counter, what it stands for), so that the targets the
// demo registers and shards are up.
func (d *demo) serveTargets(addrs []string) error {
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("a demo target needs %s, which is in use: stop what listens there (ss -ltnp | grep %s) and try again", addr, addr)
		}
		reg := prometheus.NewRegistry()
		scrapes := prometheus.NewCounter(prometheus.CounterOpts{Name: "demo_target_scrapes_total", Help: "Scrapes of this demo target."})
		info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "demo_target_info", Help: "A target the zkprom demo serves for a sample registration or a sharded node.",
			ConstLabels: prometheus.Labels{"address": addr}})
		info.Set(1)
		reg.MustRegister(scrapes, info)
		metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scrapes.Inc()
			metrics.ServeHTTP(w, r)
		})}
		go srv.Serve(l)
		d.servers = append(d.servers, srv)
	}
	return nil
}

// shardedAddrs are the addresses of the nodes the sharded job splits.
func shardedAddrs() []string {
	addrs := make([]string, shardedTargets)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", shardedBasePort+i)
	}
	return addrs
}

// watchSharded prints, whenever it changes, how many of the sharded
// targets each Prometheus scrapes with success and how many are up at all:
// killing an agent moves its share, and none is lost.
func watchSharded(ctx context.Context) {
	last := ""
	for {
		union := map[string]bool{}
		var parts []string
		for _, m := range members {
			var r struct {
				Data struct {
					Result []struct {
						Metric map[string]string `json:"metric"`
					} `json:"result"`
				} `json:"data"`
			}
			q := url.Values{"query": {`up{job="sharded"} == 1`}}
			if err := getJSON(ctx, "http://"+m.promAddr+"/api/v1/query?"+q.Encode(), &r); err != nil {
				parts = append(parts, m.name+" -")
				continue
			}
			for _, s := range r.Data.Result {
				union[s.Metric["instance"]] = true
			}
			parts = append(parts, fmt.Sprintf("%s %d", m.name, len(r.Data.Result)))
		}
		sort.Strings(parts)
		line := fmt.Sprintf("sharded targets up: %d of %d (%s)", len(union), shardedTargets, strings.Join(parts, ", "))
		if line != last {
			fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), line)
			last = line
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v)
}
