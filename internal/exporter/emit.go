package exporter

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A scrape sends about 550 series per server. What stays the same from one
// scrape to the next (descriptors, label pairs, what a key is called and
// means) is kept in a seriesCache, so that a series costs a sample and its
// slice of label pairs, not a dozen allocations.

// seriesCache keeps descriptors, label pairs and the meaning of keys. The
// families come from the keys servers send, so each map is bounded by
// maxCached: beyond, entries are made for the scrape and not kept, and an
// answer an attacker controls cannot grow it.
type seriesCache struct {
	mu    sync.Mutex
	descs map[descKey]*prometheus.Desc
	pairs map[[2]string]*dto.LabelPair
	keys  map[string]*keyInfo
}

const maxCached = 4096

// maxCachedLen is the longest key, name or label value kept: real ones
// are far shorter, and a made-up megabyte key is not kept 4,096 times.
const maxCachedLen = 256

func newSeriesCache() *seriesCache {
	return &seriesCache{descs: map[descKey]*prometheus.Desc{}, pairs: map[[2]string]*dto.LabelPair{}, keys: map[string]*keyInfo{}}
}

// size is the number of entries kept.
func (c *seriesCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.descs) + len(c.pairs) + len(c.keys)
}

// descKey names a family and its label names: the emitter's leading
// labels, joined, and up to two more.
type descKey struct{ leading, name, extra1, extra2 string }

func (c *seriesCache) desc(leading []string, sig, name, help string, extra []string) *prometheus.Desc {
	k := descKey{leading: sig, name: name}
	if len(extra) > 0 {
		k.extra1 = extra[0]
	}
	if len(extra) > 2 {
		k.extra2 = extra[2]
	}
	if len(extra) > 4 { // not used by the exporter; correct, just not cached
		return newDesc(leading, name, help, extra)
	}
	if d, ok := c.descs[k]; ok {
		return d
	}
	d := newDesc(leading, name, help, extra)
	if len(c.descs) < maxCached && len(name) <= maxCachedLen {
		c.descs[k] = d
	}
	return d
}

func newDesc(leading []string, name, help string, extra []string) *prometheus.Desc {
	names := append([]string{}, leading...)
	for i := 0; i+1 < len(extra); i += 2 {
		names = append(names, extra[i])
	}
	return prometheus.NewDesc(name, help, names, nil)
}

func (c *seriesCache) pair(name, value string) *dto.LabelPair {
	k := [2]string{name, value}
	if p, ok := c.pairs[k]; ok {
		return p
	}
	p := &dto.LabelPair{Name: &k[0], Value: &k[1]}
	if len(c.pairs) < maxCached && len(value) <= maxCachedLen {
		c.pairs[k] = p
	}
	return p
}

// key returns what a mntr key means, worked out on first sight.
func (c *seriesCache) key(k string) *keyInfo {
	c.mu.Lock()
	info, ok := c.keys[k]
	c.mu.Unlock()
	if ok {
		return info
	}
	info = newKeyInfo(k)
	c.mu.Lock()
	if len(c.keys) < maxCached && len(k) <= maxCachedLen {
		c.keys[k] = info
	}
	c.mu.Unlock()
	return info
}

// sample is one series. Its label pairs are shared with other series and
// scrapes: nothing changes them once made (the registry copies before it
// sorts).
type sample struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	kind    prometheus.ValueType
	value   float64
	summary *dto.Summary
}

func (s *sample) Desc() *prometheus.Desc { return s.desc }

func (s *sample) Write(m *dto.Metric) error {
	m.Label = s.labels
	switch {
	case s.summary != nil:
		m.Summary = s.summary
	case s.kind == prometheus.CounterValue:
		m.Counter = &dto.Counter{Value: &s.value}
	default:
		m.Gauge = &dto.Gauge{Value: &s.value}
	}
	return nil
}

// emitter sends series that share leading labels (ensemble, server). It
// is used by one goroutine.
type emitter struct {
	ch     chan<- prometheus.Metric
	cache  *seriesCache
	names  []string         // leading label names
	sig    string           // names, joined
	leader []*dto.LabelPair // leading label pairs, sorted by name
	// families are the names the servers' keys made in this scrape, shared
	// by the emitters of one scrape: servers that disagree on what a name
	// is (a summary on one, a gauge on the other) cannot fail the family.
	families familyNames
}

func (e *emitter) with(name, value string) *emitter {
	names := append(append([]string{}, e.names...), name)
	e.cache.mu.Lock()
	p := e.cache.pair(name, value)
	e.cache.mu.Unlock()
	return &emitter{ch: e.ch, cache: e.cache, families: e.families, names: names, sig: strings.Join(names, "\xff"),
		leader: insertSorted(append([]*dto.LabelPair{}, e.leader...), p)}
}

// insertSorted adds p to pairs sorted by name.
func insertSorted(pairs []*dto.LabelPair, p *dto.LabelPair) []*dto.LabelPair {
	i := len(pairs)
	pairs = append(pairs, p)
	for ; i > 0 && pairs[i-1].GetName() > p.GetName(); i-- {
		pairs[i] = pairs[i-1]
	}
	pairs[i] = p
	return pairs
}

// series starts a sample of family name with extra label name/value pairs.
func (e *emitter) series(name, help string, extra []string) *sample {
	labels := make([]*dto.LabelPair, len(e.leader), len(e.leader)+len(extra)/2)
	copy(labels, e.leader)
	e.cache.mu.Lock()
	d := e.cache.desc(e.names, e.sig, name, help, extra)
	for i := 0; i+1 < len(extra); i += 2 {
		labels = insertSorted(labels, e.cache.pair(extra[i], extra[i+1]))
	}
	e.cache.mu.Unlock()
	return &sample{desc: d, labels: labels}
}

// emit sends one sample. A label value that is not valid UTF-8 (from a
// server's answer) is refused by the registry: a scrape error for that
// series, never a panic.
func (e *emitter) emit(name, help string, t prometheus.ValueType, v float64, extra ...string) {
	s := e.series(name, help, extra)
	s.kind, s.value = t, v
	e.ch <- s
}

func (e *emitter) gauge(name, help string, v float64, extra ...string) {
	e.emit(name, help, prometheus.GaugeValue, v, extra...)
}

// summary sends a summary; quantiles are in increasing order.
func (e *emitter) summary(name, help string, count uint64, sum float64, quantiles []*dto.Quantile, extra ...string) {
	s := e.series(name, help, extra)
	s.summary = &dto.Summary{SampleCount: &count, SampleSum: &sum, Quantile: quantiles}
	e.ch <- s
}
