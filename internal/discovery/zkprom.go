package discovery

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/targetgroup"
)

// zkpromFormat reads znodes holding a file_sd-style target group
// {"targets":[...],"labels":{...}} (or a list of them): what `zkprom
// register` writes, and what anything else can write by hand.
type zkpromFormat struct{}

func (zkpromFormat) Name() string    { return "zkprom" }
func (zkpromFormat) Tree() TreeNeeds { return TreeNeeds{MaxDepth: 0, Data: true} }

func (f zkpromFormat) Parse(n Node) ([]Member, error) {
	if isEmpty(n.Data) {
		return nil, nil
	}
	var groups []targetgroup.Group
	d := bytes.TrimSpace(n.Data)
	if len(d) > 0 && d[0] == '[' {
		if err := json.Unmarshal(d, &groups); err != nil {
			return nil, invalid(ReasonMalformed, "decode target groups: %w", err)
		}
	} else {
		var g targetgroup.Group
		if err := json.Unmarshal(d, &g); err != nil {
			return nil, invalid(ReasonMalformed, "decode target group: %w", err)
		}
		groups = []targetgroup.Group{g}
	}
	var out []Member
	for _, g := range groups {
		l := model.LabelSet{}
		for k, v := range g.Labels {
			if err := targetgroup.CheckLabel(k, v); err != nil {
				return nil, invalid(ReasonBadLabel, "%w", err)
			}
			l[model.LabelName(k)] = model.LabelValue(v)
		}
		for k, v := range commonLabels(f.Name(), n.Path) {
			l[k] = v
		}
		for _, t := range g.Targets {
			if t == "" || strings.ContainsAny(t, " /\t\r\n") {
				return nil, invalid(ReasonNoAddress, "target %q is not host:port", t)
			}
			m := Member{Address: t, Labels: l}
			if h, p, err := net.SplitHostPort(t); err == nil {
				port, err := strconv.Atoi(p)
				if err != nil || !validPort(port) || h == "" {
					return nil, invalid(ReasonNoAddress, "target %q is not host:port", t)
				}
				m.Host, m.Port = h, port
			} else {
				m.Host = t
			}
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, invalid(ReasonNoAddress, "target group lists no targets")
	}
	return out, nil
}
