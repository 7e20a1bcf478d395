package exporter

import (
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// A scrape sends about 550 series per server. They are not built as
// client_golang metrics and checked by a registry, which cost more than
// asking the servers: an emitter adds them to a page, which is written
// in the text format. What stays the same from one scrape to the next
// (label sets, already encoded, and what a key is called and means) is
// kept in a seriesCache, so that a series costs its value and a slot.
// The page itself keeps what the registry checked: one help and type per
// family, valid UTF-8, no series named like a summary's parts (see
// page.family); the tests check every page the exporter writes with the
// registry.

// seriesCache keeps encoded label sets and the meaning of keys. Both come
// from what servers send, so each map is bounded by maxCached: beyond,
// entries are made for the scrape and not kept, and an answer an attacker
// controls cannot grow it.
type seriesCache struct {
	mu     sync.Mutex
	labels map[labelKey]labelSet
	keys   map[string]*keyInfo
	plans  map[string]*statsPlan // by the leading labels of a server's emitter
}

const maxCached = 4096

// maxCachedLen is the longest key or label value kept: real ones are far
// shorter, and a made-up megabyte key is not kept 4,096 times.
const maxCachedLen = 256

func newSeriesCache() *seriesCache {
	return &seriesCache{labels: map[labelKey]labelSet{}, keys: map[string]*keyInfo{}, plans: map[string]*statsPlan{}}
}

// size is the number of entries kept.
func (c *seriesCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.labels) + len(c.keys) + len(c.plans)
}

// maxPlans bounds the servers whose plan is kept (they are the configured
// ones: a server outside them gets a cache of its own for one scrape). A
// plan is kept only when all its keys and label sets are, so it holds
// little more than pointers.
const maxPlans = 256

// statsPlan returns the plan for nums, the keys of the server whose
// emitter has leading labels sig, and their values in the plan's order.
// A server sends the same keys scrape after scrape: its plan is kept
// until they change.
func (c *seriesCache) statsPlan(e *emitter, nums map[string]float64) (*statsPlan, []float64) {
	sig := e.sig
	c.mu.Lock()
	p := c.plans[sig]
	c.mu.Unlock()
	if p != nil && len(p.keys) == len(nums) {
		vals := make([]float64, len(p.keys))
		same := true
		for i, info := range p.keys {
			v, ok := nums[info.key]
			vals[i], same = v, same && ok
		}
		if same {
			return p, vals
		}
	}
	p, keep := newStatsPlan(e, nums)
	vals := make([]float64, len(p.keys))
	for i, info := range p.keys {
		vals[i] = nums[info.key]
	}
	c.mu.Lock()
	// Kept only when the cache holds all its keys and label sets too.
	keep = keep && len(sig) <= 2*maxCachedLen && len(c.labels) < maxCached
	if _, ok := c.plans[sig]; keep && (ok || len(c.plans) < maxPlans) {
		c.plans[sig] = p
	} else if ok {
		delete(c.plans, sig)
	}
	c.mu.Unlock()
	return p, vals
}

// labelKey names a label set: the emitter's leading labels and up to two
// more pairs.
type labelKey struct{ leading, n1, v1, n2, v2 string }

// labelSet is a label set encoded for the text format, `{a="b",c="d"}`
// sorted by name ("" for none); valid is false when a value is not UTF-8.
type labelSet struct {
	text  string
	valid bool
}

func (c *seriesCache) labelSet(leading []labelPair, sig string, extra []string) labelSet {
	if len(extra) > 4 { // not used by the exporter; correct, just not cached
		return encodeLabels(leading, extra)
	}
	k := labelKey{leading: sig}
	if len(extra) >= 2 {
		k.n1, k.v1 = extra[0], extra[1]
	}
	if len(extra) == 4 {
		k.n2, k.v2 = extra[2], extra[3]
	}
	keep := len(k.v1) <= maxCachedLen && len(k.v2) <= maxCachedLen && len(sig) <= 2*maxCachedLen
	c.mu.Lock()
	l, ok := c.labels[k]
	c.mu.Unlock()
	if ok {
		return l
	}
	l = encodeLabels(leading, extra)
	c.mu.Lock()
	if keep && len(c.labels) < maxCached {
		c.labels[k] = l
	}
	c.mu.Unlock()
	return l
}

// key returns what a mntr key means, worked out on first sight, and
// whether it is kept.
func (c *seriesCache) key(k string) (*keyInfo, bool) {
	c.mu.Lock()
	info, ok := c.keys[k]
	c.mu.Unlock()
	if ok {
		return info, true
	}
	info = newKeyInfo(k)
	c.mu.Lock()
	kept := len(c.keys) < maxCached && len(k) <= maxCachedLen
	if kept {
		c.keys[k] = info
	}
	c.mu.Unlock()
	return info, kept
}

type labelPair struct{ name, value string }

// encodeLabels encodes leading (sorted by name) and the extra name/value
// pairs, sorted by name.
func encodeLabels(leading []labelPair, extra []string) labelSet {
	pairs := append(make([]labelPair, 0, len(leading)+len(extra)/2), leading...)
	valid := true
	for i := 0; i+1 < len(extra); i += 2 {
		pairs = insertSorted(pairs, labelPair{extra[i], extra[i+1]})
		valid = valid && utf8.ValidString(extra[i+1])
	}
	if len(pairs) == 0 || !valid {
		return labelSet{valid: valid}
	}
	var b []byte
	for i, p := range pairs {
		b = append(b, ',')
		if i == 0 {
			b[0] = '{'
		}
		b = append(b, p.name...)
		b = append(b, `="`...)
		b = appendEscaped(b, p.value, true)
		b = append(b, '"')
	}
	return labelSet{text: string(append(b, '}')), valid: true}
}

// insertSorted adds p to pairs sorted by name.
func insertSorted(pairs []labelPair, p labelPair) []labelPair {
	i, _ := slices.BinarySearchFunc(pairs, p.name, func(q labelPair, name string) int { return strings.Compare(q.name, name) })
	return slices.Insert(pairs, i, p)
}

// emitter adds series that share leading labels (ensemble, server) to a
// page. It is used by one goroutine.
type emitter struct {
	page    *page
	cache   *seriesCache
	leading []labelPair // sorted by name
	sig     string      // leading, joined: the cache key of the leading labels
	invalid bool        // a leading value is not UTF-8: every series is refused
}

func newEmitter(p *page, c *seriesCache) *emitter { return &emitter{page: p, cache: c} }

func (e *emitter) with(name, value string) *emitter {
	// Values are UTF-8 (else the emitter refuses everything), which has no
	// 0xff byte: the signature cannot be made to match another's.
	return &emitter{page: e.page, cache: e.cache, leading: insertSorted(slices.Clone(e.leading), labelPair{name, value}),
		sig: e.sig + name + "\xff" + value + "\xff", invalid: e.invalid || !utf8.ValidString(value)}
}

// labelSet is the emitter's label set with extra name/value pairs.
func (e *emitter) labelSet(extra ...string) labelSet {
	if e.invalid {
		return labelSet{}
	}
	return e.cache.labelSet(e.leading, e.sig, extra)
}

// add adds a series with labels l to family name (made with help and
// kind, unless the page has it already). claimed is false when the
// family's name clashes; s is nil then, and when a label value is not
// UTF-8 (the series is refused, and counted).
func (e *emitter) add(name, help string, kind familyKind, l labelSet) (s *sample, claimed bool) {
	f := e.page.family(name, help, kind)
	if f == nil {
		return nil, false
	}
	if !l.valid {
		e.page.refuse(name)
		return nil, true
	}
	f.samples = append(f.samples, sample{labels: l.text})
	return &f.samples[len(f.samples)-1], true
}

// emit adds one gauge or counter; false when its family's name clashes.
func (e *emitter) emit(name, help string, kind familyKind, v float64, extra ...string) bool {
	s, claimed := e.add(name, help, kind, e.labelSet(extra...))
	if s != nil {
		s.value = v
	}
	return claimed
}

func (e *emitter) gauge(name, help string, v float64, extra ...string) {
	e.emit(name, help, familyGauge, v, extra...)
}
