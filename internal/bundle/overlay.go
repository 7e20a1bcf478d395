package bundle

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// MergeOverlay returns prometheus.yml with the leader overlay merged in:
// mappings key by key, lists and scalars replaced whole (see mergeInto).
// Comments and order of main are kept.
func MergeOverlay(main, overlay []byte) ([]byte, error) {
	var md, od yaml.Node
	if err := yaml.Unmarshal(main, &md); err != nil {
		return nil, fmt.Errorf("%s: %w", MainFile, err)
	}
	if err := yaml.Unmarshal(overlay, &od); err != nil {
		return nil, fmt.Errorf("%s: %w", LeaderFile, err)
	}
	if len(od.Content) == 0 {
		return main, nil // an empty overlay
	}
	om := od.Content[0]
	if om.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a mapping of prometheus.yml top-level keys (such as remote_write, alerting)", LeaderFile)
	}
	if len(md.Content) == 0 {
		md = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	mm := md.Content[0]
	if mm.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a YAML mapping", MainFile)
	}
	for i := 0; i+1 < len(om.Content); i += 2 {
		key, val := om.Content[i], om.Content[i+1]
		if !topLevelKeys[key.Value] {
			return nil, fmt.Errorf("%s line %d: %q is not a top-level key of prometheus.yml", LeaderFile, key.Line, key.Value)
		}
		mergeInto(mm, key, val)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&md); err != nil {
		return nil, fmt.Errorf("merge %s into %s: %w", LeaderFile, MainFile, err)
	}
	return buf.Bytes(), nil
}

// mergeInto sets key to val in the mapping m: when both the old value and
// val are mappings, key by key (so `global: {external_labels: {a: b}}`
// adds a label and keeps the scrape interval); anything else (a list, a
// scalar) replaces the old value whole.
func mergeInto(m, key, val *yaml.Node) {
	for k := 0; k+1 < len(m.Content); k += 2 {
		if m.Content[k].Value != key.Value {
			continue
		}
		old := m.Content[k+1]
		if old.Kind == yaml.MappingNode && val.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(val.Content); i += 2 {
				mergeInto(old, val.Content[i], val.Content[i+1])
			}
		} else {
			m.Content[k+1] = val
		}
		return
	}
	m.Content = append(m.Content, key, val)
}
