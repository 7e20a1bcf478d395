package discovery

import (
	"fmt"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/zk"
)

// ParseMember decodes one znode the way job j does (its format, metrics
// rules, filters and labels) and returns its targets: for tools and
// tests that check what a registration will look like.
func ParseMember(j JobConfig, path string, data []byte) ([]model.LabelSet, error) {
	f, ok := Formats()[j.Format]
	if !ok {
		return nil, fmt.Errorf("unknown format %q", j.Format)
	}
	parent := zk.Parent(path)
	ms, err := f.Parse(Node{Path: path, Name: zk.Base(path), Parent: zk.Base(parent), Data: data})
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	r := newRules(j)
	var out []model.LabelSet
	for _, m := range ms {
		if !r.keep(m) {
			continue
		}
		l, err := r.target(m)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		out = append(out, l)
	}
	return out, nil
}
