package agent

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/discovery"
	"github.com/zkprom/zkprom/internal/shard"
	"github.com/zkprom/zkprom/internal/targetgroup"
)

// jobTargets is a sharded job's discovered targets, kept up to date from
// discovery's changes at a cost of the change's size: per group and
// target id the target's assignment key and labels, and per key the
// targets that have it (the share gets the first; the others are
// duplicates, e.g. one member registered twice).
type jobTargets struct {
	job   string
	bySrc map[string]map[string]*shardItem // source -> target id -> item
	byKey map[string][]*shardItem
}

type shardItem struct {
	key    string
	labels map[string]string
}

func newJobTargets(job string) *jobTargets {
	return &jobTargets{job: job, bySrc: map[string]map[string]*shardItem{}, byKey: map[string][]*shardItem{}}
}

// apply takes discovery's changes and returns what changed for the
// share: the targets (by key) to set and the keys gone.
func (t *jobTargets) apply(changes []discovery.GroupChange) (set []shard.Target, removed []string) {
	touched := map[string]bool{}
	for _, c := range changes {
		ids := t.bySrc[c.Source]
		for _, id := range c.Removed {
			if it := ids[id]; it != nil {
				t.unhold(it)
				touched[it.key] = true
				delete(ids, id)
			}
		}
		for id, l := range c.Targets {
			if ids == nil {
				ids = map[string]*shardItem{}
				t.bySrc[c.Source] = ids
			}
			key := shardTargetKey(t.job, l)
			labels := make(map[string]string, len(l))
			for k, v := range l {
				labels[string(k)] = string(v)
			}
			it := ids[id]
			if it == nil {
				it = &shardItem{key: key}
				ids[id] = it
				t.byKey[key] = append(t.byKey[key], it)
			} else if it.key != key {
				t.unhold(it)
				touched[it.key] = true
				it.key = key
				t.byKey[key] = append(t.byKey[key], it)
			}
			it.labels = labels
			touched[key] = true
		}
		if len(ids) == 0 {
			delete(t.bySrc, c.Source)
		}
	}
	for key := range touched {
		if holders := t.byKey[key]; len(holders) > 0 {
			set = append(set, shard.Target{Key: key, Labels: holders[0].labels})
		} else {
			removed = append(removed, key)
		}
	}
	return set, removed
}

func (t *jobTargets) unhold(it *shardItem) {
	holders := slices.DeleteFunc(t.byKey[it.key], func(x *shardItem) bool { return x == it })
	if len(holders) == 0 {
		delete(t.byKey, it.key)
	} else {
		t.byKey[it.key] = holders
	}
}

// all returns every target once.
func (t *jobTargets) all() []shard.Target {
	out := make([]shard.Target, 0, len(t.byKey))
	for key, holders := range t.byKey {
		out = append(out, shard.Target{Key: key, Labels: holders[0].labels})
	}
	return out
}

// shareRender renders a share file from each target's entry, rendered
// once and kept until the target changes or leaves the share.
type shareRender struct {
	entries map[string][]byte // target key -> its entry
}

// forget drops the entries of keys whose target changed or went.
func (r *shareRender) forget(keys ...string) {
	for _, k := range keys {
		delete(r.entries, k)
	}
}

// render is renderShareFile(targets), from the kept entries.
func (r *shareRender) render(targets []shard.Target) []byte {
	if r.entries == nil || len(r.entries) > 2*len(targets)+64 {
		old := r.entries
		r.entries = make(map[string][]byte, len(targets))
		for _, t := range targets {
			if e, ok := old[t.Key]; ok {
				r.entries[t.Key] = e
			}
		}
	}
	if len(targets) == 0 {
		return []byte("[]\n")
	}
	size := 4
	es := make([][]byte, len(targets))
	for i, t := range targets {
		e, ok := r.entries[t.Key]
		if !ok {
			e = renderShareEntry(t)
			r.entries[t.Key] = e
		}
		es[i] = e
		size += len(e) + 4
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString("[\n")
	for i, e := range es {
		if i > 0 {
			b.WriteString(",\n")
		}
		b.WriteString("  ")
		b.Write(e)
	}
	b.WriteString("\n]\n")
	return b.Bytes()
}

// renderShareEntry is one target's group in a share file, indented as an
// element of the file's list.
func renderShareEntry(t shard.Target) []byte {
	e := targetgroup.Group{Labels: make(map[string]string, len(t.Labels))}
	for k, v := range t.Labels {
		if k == model.AddressLabel {
			e.Targets = []string{v}
			continue
		}
		e.Labels[k] = v
	}
	b, _ := json.MarshalIndent(e, "  ", "  ")
	return b
}

// renderShareFile is the file_sd content for a share: one group per
// target, in the given order (Owned sorts by key), "[]" when empty.
func renderShareFile(targets []shard.Target) []byte {
	return (&shareRender{}).render(targets)
}
