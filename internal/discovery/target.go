package discovery

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/zkprom/zkprom/internal/targetgroup"
)

// rules are a job's metrics and filter settings, applied to members.
type rules struct {
	metrics MetricsConfig
	filter  FilterConfig
	labels  model.LabelSet
}

func newRules(j JobConfig) rules {
	r := rules{metrics: j.Metrics, filter: j.Filter, labels: model.LabelSet{}}
	for k, v := range j.Labels {
		r.labels[model.LabelName(k)] = model.LabelValue(v)
	}
	return r
}

// keep applies the filters.
func (r rules) keep(m Member) bool {
	if len(r.filter.Status) > 0 && !slices.Contains(r.filter.Status, m.Status) {
		return false
	}
	if r.filter.EnabledOnly && m.Disabled {
		return false
	}
	return true
}

func lookupEndpoint(eps map[string]Endpoint, name string) (Endpoint, bool) {
	if e, ok := eps[name]; ok {
		return e, true
	}
	for k, e := range eps {
		if strings.EqualFold(k, name) {
			return e, true
		}
	}
	return Endpoint{}, false
}

// address picks the scrape address of a member.
func (r rules) address(m Member) string {
	rule := m.Defaults
	if r.metrics.picksAddress() {
		rule = MetricsConfig{Endpoint: r.metrics.Endpoint, PortField: r.metrics.PortField, Port: r.metrics.Port}
	}
	host := m.Host
	switch {
	case rule.Port != 0 && host != "":
		return joinHostPort(host, rule.Port)
	case rule.PortField != "" && host != "":
		if p, err := strconv.Atoi(m.Fields[rule.PortField]); err == nil && validPort(p) {
			return joinHostPort(host, p)
		}
	case rule.Endpoint != "":
		if e, ok := lookupEndpoint(m.Endpoints, rule.Endpoint); ok {
			return joinHostPort(e.Host, e.Port)
		}
	}
	if m.Address != "" {
		return m.Address
	}
	return joinHostPort(m.Host, m.Port)
}

// target builds a member's label set: its own labels, the address, the
// scrape settings and the job's labels. Labels Prometheus would reject
// make an *InvalidError.
func (r rules) target(m Member) (model.LabelSet, error) {
	for k, v := range m.Labels {
		if !k.IsValidLegacy() || !v.IsValid() {
			return nil, invalid(ReasonBadLabel, "label %s=%q is not valid", k, v)
		}
	}
	l := make(model.LabelSet, len(m.Labels)+len(r.labels)+4)
	for k, v := range m.Labels {
		l[k] = v
	}
	l[model.AddressLabel] = model.LabelValue(r.address(m))
	scheme, path, params := m.Defaults.Scheme, m.Defaults.Path, m.Defaults.Params
	if r.metrics.Scheme != "" {
		scheme = r.metrics.Scheme
	}
	if r.metrics.Path != "" {
		path = r.metrics.Path
	}
	if r.metrics.Params != nil {
		params = r.metrics.Params
	}
	if scheme != "" {
		l[model.SchemeLabel] = model.LabelValue(scheme)
	}
	if path != "" {
		l[model.MetricsPathLabel] = model.LabelValue(path)
	}
	for k, v := range params {
		l[model.LabelName(model.ParamLabelPrefix+k)] = model.LabelValue(v)
	}
	for k, v := range r.labels {
		l[k] = v
	}
	if a := l[model.AddressLabel]; !a.IsValid() {
		return nil, invalid(ReasonNoAddress, "address %q is not valid", a)
	}
	return l, nil
}

// render encodes one target as a file_sd list element.
func render(l model.LabelSet) []byte {
	e := targetgroup.Group{Targets: []string{string(l[model.AddressLabel])}, Labels: make(map[string]string, len(l))}
	for k, v := range l {
		if k != model.AddressLabel {
			e.Labels[string(k)] = string(v)
		}
	}
	b, _ := json.Marshal(e) // strings and maps of strings always encode
	return b
}
